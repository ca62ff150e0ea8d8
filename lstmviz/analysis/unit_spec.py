"""Unit lists as users type them (``"3, 17 40-42"``), checked against a tap's width before any list
is built, so ``0-999999999`` is a sentence, not a billion integers."""

from __future__ import annotations


def unit_ranges(text: str) -> list[tuple[int, int]]:
    """The inclusive ranges ``[(3, 3), (17, 17), (40, 42)]`` of ``"3, 17 40-42"``; ValueError says which
    part is not a unit or a rising range. Nothing is expanded."""
    ranges: list[tuple[int, int]] = []
    for part in str(text).replace(",", " ").split():
        low, dash, high = part.partition("-")
        try:
            first = int(low)
            last = int(high) if dash else first
        except ValueError:
            raise ValueError(f"{part!r} is not a unit number or a range like 40-42") from None
        if first < 0 or last < 0:
            raise ValueError(f"{part!r}: unit numbers start at 0")
        if last < first:
            raise ValueError(f"{part!r}: a range goes from the lower unit to the higher, e.g. {last}-{first}")
        ranges.append((first, last))
    if not ranges:
        raise ValueError("no units given; write them like 3,17,40-42")
    return ranges


def check_units(text: str, n_units: int, what: str = "the tap") -> list[tuple[int, int]]:
    """``unit_ranges(text)``, refused (ValueError) when a unit is not below ``n_units``."""
    ranges = unit_ranges(text)
    highest = max(last for _, last in ranges)
    if highest >= n_units:
        raise ValueError(f"unit {highest:,} is beyond {what}, which has {n_units:,} units (0-{n_units - 1:,})")
    return ranges


def parse_units(text: str, n_units: int, what: str = "the tap") -> list[int]:
    """The unit numbers of ``text`` in the order given, after ``check_units`` (so at most a few times
    ``n_units`` of them)."""
    return [u for first, last in check_units(text, n_units, what) for u in range(first, last + 1)]
