"""A name -> spec registry filled from Python entry points.

Built-in engines and datasets register exactly the way a third-party plugin does: an entry point in
the group ``lstmviz.engines`` or ``lstmviz.datasets`` whose object is a spec with a ``name``.
"""

from __future__ import annotations

import warnings
from importlib.metadata import entry_points
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownName(KeyError):
    """A name that is not in a registry; the message lists the names that are."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class Registry(Generic[T]):
    def __init__(self, group: str, what: str):
        self.group = group
        self.what = what
        self._specs: dict[str, T] = {}
        self._loaded = False

    def register(self, spec: T) -> T:
        name = getattr(spec, "name", None)
        if not isinstance(name, str) or not name:
            raise TypeError(f"a {self.what} spec needs a non-empty string `name`, got {name!r}")
        existing = self._specs.get(name)
        if existing is not None and existing is not spec:
            raise ValueError(f"{self.what} {name!r} is already registered")
        self._specs[name] = spec
        return spec

    def _load_entry_points(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for ep in entry_points(group=self.group):
            try:
                spec = ep.load()
            except Exception as exc:  # a broken plugin must not take the application down
                warnings.warn(f"could not load {self.what} plugin {ep.name!r} ({ep.value}): {exc}", stacklevel=2)
                continue
            if getattr(spec, "name", None) != ep.name:
                warnings.warn(
                    f"{self.what} entry point {ep.name!r} names a spec called {getattr(spec, 'name', None)!r}; skipped",
                    stacklevel=2,
                )
                continue
            self._specs.setdefault(ep.name, spec)

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._specs)

    def get(self, name: str) -> T:
        self._load_entry_points()
        try:
            return self._specs[name]
        except KeyError:
            known = ", ".join(self.names()) or "none"
            raise UnknownName(f"unknown {self.what} {name!r}; available: {known}") from None

    def all(self) -> dict[str, T]:
        self._load_entry_points()
        return dict(sorted(self._specs.items()))
