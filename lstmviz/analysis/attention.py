"""Attention matrices of a seq2seq recording (``lstmviz/recording/seq2seq_recorder.py``).

A tap whose units are the item's source positions (tap attribute ``units_are = "positions"``, e.g.
``decoder/attention`` on the axis ``decoder``) holds, per decoder step, a distribution over the source
tokens of the same item; :func:`attention_matrix` cuts one item's rows to ``[T_dec, S]``.
"""

from __future__ import annotations

import numpy as np

ATTENTION = "decoder/attention"


def attention_matrix(rec, item: int, tap: str = ATTENTION) -> tuple[np.ndarray, list[str], list[str]]:
    """``(matrix [T_dec, S] float32, source tokens [S], decoder tokens [T_dec])`` of ``item``.

    Row ``t`` is decoder step ``t`` (the step that emits decoder token ``t``), column ``j`` source position
    ``j``; ``S`` is the item's source length (the stored units past it are 0 and are cut off). The decoder
    tokens come from the tap's axis (``Recording.tokens(..., axis=)``), or are ``[]`` when it stores none.
    """
    info = rec.taps.get(tap)
    if info is None:
        raise KeyError(f"the recording has no tap {tap!r} (taps: {', '.join(rec.taps)})")
    if getattr(info, "units_are", "") != "positions":
        raise ValueError(f"tap {tap!r}: its units are not source positions (no units_are = 'positions'); it is "
                         f"no attention over the source")
    start, stop = rec.item_range(item)
    source = rec.tokens(start, stop)
    a, b = rec.item_range(item, info.axis)
    matrix = rec.states(tap, a, b)[:, : stop - start]
    decoder = rec.tokens(a, b, axis=info.axis) if rec.axis_has_tokens(info.axis) else []
    return np.ascontiguousarray(matrix, dtype=np.float32), source, decoder


__all__ = ["ATTENTION", "attention_matrix"]
