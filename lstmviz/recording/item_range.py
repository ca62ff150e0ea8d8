"""``items=(start, stop)`` of the recorders: record one contiguous block of a dataset's items.

A shard of a sharded recording (``lstmviz/recording/shards.py``) is an ordinary recording of the items
``[start, stop)``; every recorder takes the block as ``items=`` and checks it here.
"""

from __future__ import annotations

import operator


def select_items(total: int, items) -> range:
    """The indices to record out of ``total`` items: all of them (``items=None``) or ``range(start, stop)``.

    ``items`` must be two integers with ``0 <= start < stop <= total``; ``ValueError`` says what is wrong.
    """
    if items is None:
        return range(total)
    try:
        start, stop = (operator.index(x) for x in items)
    except (TypeError, ValueError):
        raise ValueError(f"items: expected (start, stop), two integers, got {items!r}") from None
    if not 0 <= start < stop <= total:
        raise ValueError(f"items: expected 0 <= start < stop <= {total} (the number of items to record), "
                         f"got ({start}, {stop})")
    return range(start, stop)
