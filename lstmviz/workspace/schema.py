"""A declarative schema for small JSON files: every entry's type, range and default, and how it reads in a
message.

``schema.read(value, where)`` checks parsed JSON against a schema and returns plain Python values; the
first problem raises ``Invalid`` with a sentence that names the entry (``where``). The workspace file
(``lstmviz.workspace.file``) and every panel's part of it (``lstmviz.workspace.panel_state``) are
described with these, so loading and saving check the same rules and a saved file always loads.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

#: names (taps, annotations, labels) and paths
MAX_NAME_CHARS = 1024
MAX_PATH_CHARS = 4096
MAX_UNIT = 2**31 - 1
MAX_LISTED = 65_536

REQUIRED = object()


class Invalid(Exception):
    """A value that does not fit the schema; the text is the sentence."""


def show_value(value) -> str:
    """A short rendering of a JSON value for a message (never the whole of a huge or deep one)."""
    if isinstance(value, dict):
        return "a JSON object"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if isinstance(value, int) and not isinstance(value, bool):
        if abs(value) < 10**15:
            return f"{value:,}"
        try:
            return f"a number of {len(str(abs(value)))} digits"
        except ValueError:  # more digits than Python converts to text
            return "a number of thousands of digits"
    text = json.dumps(value) if value is None or isinstance(value, (bool, int, float, str)) else repr(value)
    return text if len(text) <= 60 else text[:57] + "…"


def _number(value) -> str:
    """A bound or a value in a message: whole numbers with thousands separators."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    return f"{value:,}" if isinstance(value, int) else f"{value:g}"


@dataclass(frozen=True)
class Whole:
    """A whole number in ``[low, high]`` (or null when ``nullable``)."""

    low: int
    high: int
    nullable: bool = False

    def read(self, value, where: str):
        if value is None and self.nullable:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid(f"{where} must be a whole number, got {show_value(value)}")
        if not self.low <= value <= self.high:
            raise Invalid(f"{where} must be between {_number(self.low)} and {_number(self.high)}, "
                           f"got {show_value(value)}")
        return value


@dataclass(frozen=True)
class Sign:
    """+1 or -1."""

    def read(self, value, where: str):
        if isinstance(value, bool) or value not in (1, -1) or not isinstance(value, int):
            raise Invalid(f"{where} must be 1 or -1, got {show_value(value)}")
        return value


@dataclass(frozen=True)
class Real:
    """A finite number in ``[low, high]`` (``(low, high]`` when ``low_open``)."""

    low: float
    high: float
    low_open: bool = False

    def read(self, value, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Invalid(f"{where} must be a finite number, got {show_value(value)}")
        try:
            number = float(value)
        except OverflowError:  # an integer beyond any float
            number = math.inf
        if not math.isfinite(number):
            raise Invalid(f"{where} must be a finite number, got {show_value(value)}")
        if self.low_open and not self.low < number <= self.high:
            raise Invalid(f"{where} must be in ({_number(self.low)}, {_number(self.high)}], got {number:g}")
        if not self.low_open and not self.low <= number <= self.high:
            raise Invalid(f"{where} must be between {_number(self.low)} and {_number(self.high)}, got {number:g}")
        return number


@dataclass(frozen=True)
class Text:
    """A string of at most ``max_chars`` characters, without NUL or unpaired surrogates (it must be
    writable as UTF-8 and usable as a file name); one of ``choices`` when given."""

    max_chars: int = MAX_NAME_CHARS
    nullable: bool = False
    choices: tuple[str, ...] = ()

    def read(self, value, where: str):
        if value is None and self.nullable:
            return None
        if not isinstance(value, str):
            raise Invalid(f"{where} must be a string, got {show_value(value)}")
        if len(value) > self.max_chars:
            raise Invalid(f"{where} is {len(value):,} characters long; at most {self.max_chars:,} are allowed")
        if "\x00" in value:
            raise Invalid(f"{where} contains a NUL character")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise Invalid(f"{where} is not valid text (it holds an unpaired surrogate)") from None
        if self.choices and value not in self.choices:
            shown = repr(value) if len(value) <= 60 else repr(value[:57]) + "…"
            raise Invalid(f"{where} is {shown}, which is not one of {', '.join(self.choices)}")
        return value


@dataclass(frozen=True)
class Flag:
    """true or false."""

    def read(self, value, where: str) -> bool:
        if not isinstance(value, bool):
            raise Invalid(f"{where} must be true or false, got {show_value(value)}")
        return value


@dataclass(frozen=True)
class ListOf:
    """A list of at most ``max_items`` entries of ``item``; entry ``i`` is named ``name`` (a format of
    ``where`` and ``i``) in messages."""

    item: object
    max_items: int
    name: str = "{where}[{i}]"
    nullable: bool = False

    def read(self, value, where: str):
        if value is None and self.nullable:
            return None
        if not isinstance(value, list):
            raise Invalid(f"{where} must be a list, got {show_value(value)}")
        if len(value) > self.max_items:
            raise Invalid(f"{where} has {len(value):,} entries; at most {self.max_items:,} are allowed")
        return [self.item.read(v, self.name.format(where=where, i=i)) for i, v in enumerate(value)]


@dataclass(frozen=True)
class Pair:
    """A list of exactly two entries, ``[first, second]``, named ``names`` in messages."""

    first: object
    second: object
    names: tuple[str, str]
    nullable: bool = False

    def read(self, value, where: str):
        if value is None and self.nullable:
            return None
        if not isinstance(value, list) or len(value) != 2:
            raise Invalid(f"{where} must be [{', '.join(self.names)}], got {show_value(value)}")
        return (self.first.read(value[0], f"{where} {self.names[0]}"),
                self.second.read(value[1], f"{where} {self.names[1]}"))


@dataclass(frozen=True)
class Record:
    """A JSON object: ``fields`` maps each key to (schema, default); ``REQUIRED`` keys must be there.
    Unknown keys are ignored. ``check(values, where)`` runs after the fields were read."""

    fields: dict
    nullable: bool = False
    check: object = None
    title: str = ""  # how the object is named when a key is missing (default: ``where``)

    def read(self, value, where: str):
        if value is None and self.nullable:
            return None
        if not isinstance(value, dict):
            got = "null" if value is None else ("list" if isinstance(value, list) else show_value(value))
            raise Invalid(f"{where} must be a JSON object, got {got}")
        out = {}
        for key, (schema, default) in self.fields.items():
            if key not in value:
                if default is REQUIRED:
                    raise Invalid(f"{self.title or where} has no {key!r} entry")
                out[key] = default
            else:
                out[key] = schema.read(value[key], f"{where} {key}".strip())
        if self.check is not None:
            self.check(out, where)
        return out


@dataclass(frozen=True)
class MapOf:
    """A JSON object of at most ``max_items`` entries whose keys are ``Text`` and values ``item``; entry
    ``key`` is named ``"{where} {key}"`` in messages. Returns a dict in the file's order."""

    item: object
    max_items: int
    key: Text = Text()

    def read(self, value, where: str):
        if not isinstance(value, dict):
            got = "null" if value is None else ("list" if isinstance(value, list) else show_value(value))
            raise Invalid(f"{where} must be a JSON object, got {got}")
        if len(value) > self.max_items:
            raise Invalid(f"{where} has {len(value):,} entries; at most {self.max_items:,} are allowed")
        out = {}
        for key, entry in value.items():
            name = self.key.read(key, f"a name in {where}")
            out[name] = self.item.read(entry, f"{where} {name}")
        return out


class Anything:
    """Any JSON value, kept as it is (a part of the file this version does not read)."""

    def read(self, value, where: str):
        return value


def _brush_not_empty(start_stop, where: str) -> None:
    if start_stop is not None and start_stop[1] <= start_stop[0]:
        raise Invalid(f"{where} [{start_stop[0]}, {start_stop[1]}) is empty")


@dataclass(frozen=True)
class Brush(Pair):
    """A range ``[start, stop)`` of positions that is not empty."""

    def read(self, value, where: str):
        pair = super().read(value, where)
        _brush_not_empty(pair, where)
        return pair


def listed(values, show=repr, most: int = 10) -> str:
    """The first ``most`` values, then how many more (a sentence stays readable for any file)."""
    values = list(values)
    text = ", ".join(show(v) for v in values[:most])
    return text + (f" and {len(values) - most:,} more" if len(values) > most else "")
