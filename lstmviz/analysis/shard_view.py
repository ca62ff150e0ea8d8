"""The shards of a recording read as one recording, for analyses that stream rows (probes).

``ShardedRecording`` answers the reading part of ``Recording``'s interface (items, tokens, tap
rows, annotations, offsets) over a ``ShardSet``: a read of rows ``[a, b)`` is split at shard
boundaries and each piece is read from its own shard file, so a streaming pass (``SlabReader``, the
probes' passes over a tap) reads shard after shard and never holds a whole tap. Every row comes back
exactly as stored, so an analysis gives the single file's result.

``probe_stats`` gives the per-unit statistics the probes standardise with: ``shard_index.global_stats``
(per-shard tasks on a backend, merged exactly). Caches derived from the view (probe reports) live in
the cache folder of ``ShardSet.cache_home`` and are keyed by every shard's fingerprint: ``path`` is
that file and ``provenance["created"]`` carries the shards' joint fingerprint (what
``cache.recording_fingerprint`` reads).

Not supported on shards: recordings of several checkpoints (``at_checkpoint``) and graph geometry
(edge lists) reads; they raise ``ValueError``.
"""

from __future__ import annotations

import numpy as np

from lstmviz.analysis.shard_exec import InlineBackend


class ShardedRecording:
    """A read-only view of ``shards`` (a ``ShardSet``) as one recording; see the module docstring."""

    checkpoint = None

    def __init__(self, shards, *, backend=None):
        from lstmviz.recording import open_recording

        self.shards = shards
        self.backend = backend or InlineBackend()
        self._recs = []
        try:
            for s in shards.shards:
                self._recs.append(open_recording(s.path))
        except BaseException:
            self.close()
            raise
        first = self._recs[0]
        self.path = shards.cache_home()
        self.vocab = first.vocab
        self.taps = first.taps
        self.annotations = first.annotations
        self.axes = first.axes
        self.format_version = first.format_version
        self.provenance = {**first.provenance,
                           "created": f"{first.provenance.get('created', '')} shards={shards.fingerprint()}"}
        self.n_items = shards.n_items
        self._offsets = {axis: shards.item_offsets(axis) for axis in self.axes}
        self._rows = {axis: shards.position_offsets(axis) for axis in self.axes}
        self._items = shards.item_starts()
        self.item_offsets = self._offsets["positions"]
        self.n_positions = int(self.item_offsets[-1])

    @property
    def checkpoints(self) -> list:
        return []

    def at_checkpoint(self, name: str):
        raise ValueError("recordings of several checkpoints cannot be read over shards")

    # --- items -------------------------------------------------------------------------------

    def axis_offsets(self, axis: str = "positions") -> np.ndarray:
        if axis not in self._offsets:
            raise KeyError(f"the shards have no axis {axis!r} (axes: {', '.join(self._offsets)})")
        return self._offsets[axis]

    def axis_length(self, axis: str = "positions") -> int:
        return int(self.axis_offsets(axis)[-1])

    def item_range(self, item: int, axis: str = "positions") -> tuple[int, int]:
        if not 0 <= int(item) < self.n_items:
            raise IndexError(f"item {item} is outside 0..{self.n_items - 1} ({self.n_items} items)")
        o = self.axis_offsets(axis)
        return int(o[item]), int(o[item + 1])

    def item_of(self, position):
        scalar = np.ndim(position) == 0
        p = np.asarray(position)
        if p.size and (p.min() < 0 or p.max() >= self.n_positions):
            bad = p.min() if p.min() < 0 else p.max()
            raise IndexError(f"position {bad} is outside 0..{self.n_positions - 1} ({self.n_positions} positions)")
        items = np.searchsorted(self.item_offsets, p, side="right") - 1
        return int(items) if scalar else items.astype(np.int64)

    def axis_geometry(self, axis: str = "positions"):
        return self._recs[0].axis_geometry(axis)

    def axis_has_tokens(self, axis: str = "positions") -> bool:
        return self._recs[0].axis_has_tokens(axis)

    # --- rows ----------------------------------------------------------------------------------

    def _pieces(self, bounds: np.ndarray, start, stop, n: int, what: str):
        """``(shard, local start, local stop, out start)`` for rows ``[start, stop)`` of a concatenation
        whose shard ``j`` holds ``[bounds[j], bounds[j + 1])``."""
        a = 0 if start is None else int(start)
        b = n if stop is None else int(stop)
        if not 0 <= a <= b <= n:
            raise IndexError(f"{what} range {a}..{b} is outside 0..{n}")
        j = int(np.searchsorted(bounds, a, side="right")) - 1
        out = []
        while a < b:
            j = min(j, len(bounds) - 2)
            end = min(b, int(bounds[j + 1]))
            if end > a:
                out.append((j, a - int(bounds[j]), end - int(bounds[j]), a))
            a = end
            j += 1
        return out, (0 if start is None else int(start)), b

    def raw_states(self, tap: str, start=None, stop=None, out=None) -> np.ndarray:
        info = self._tap(tap)
        pieces, a, b = self._pieces(self._rows[info.axis], start, stop, self.axis_length(info.axis), f"tap {tap!r} row")
        dtype = np.dtype(info.dtype)
        if out is None:
            out = np.empty((b - a, info.units), dtype)
        elif out.shape != (b - a, info.units) or out.dtype != dtype or not out.flags.c_contiguous:
            raise ValueError(f"out must be a C-contiguous {dtype} array of shape {(b - a, info.units)}")
        for j, lo, hi, at in pieces:
            self._recs[j].raw_states(tap, lo, hi, out=out[at - a:at - a + hi - lo])
        return out

    def states(self, tap: str, start=None, stop=None, units=None) -> np.ndarray:
        info = self._tap(tap)
        pieces, a, b = self._pieces(self._rows[info.axis], start, stop, self.axis_length(info.axis), f"tap {tap!r} row")
        parts = [self._recs[j].states(tap, lo, hi, units) for j, lo, hi, _ in pieces]
        if parts:
            return np.concatenate(parts)
        return self._recs[0].states(tap, 0, 0, units)

    def item_states(self, tap: str, item: int, units=None) -> np.ndarray:
        a, b = self.item_range(item, self._tap(tap).axis)
        return self.states(tap, a, b, units)

    def token_ids(self, start: int, stop: int, axis: str = "positions") -> np.ndarray:
        pieces, _, _ = self._pieces(self._rows[axis], start, stop, self.axis_length(axis), "position")
        parts = [self._recs[j].token_ids(lo, hi, axis) for j, lo, hi, _ in pieces]
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    def item_token_ids(self, item: int, axis: str = "positions") -> np.ndarray:
        return self.token_ids(*self.item_range(item, axis), axis)

    def tokens(self, start: int, stop: int, axis: str = "positions") -> list[str]:
        ids = self.token_ids(start, stop, axis)
        return [self.vocab[i] for i in ids] if self.vocab else [str(i) for i in ids]

    def annotation(self, name: str, start=None, stop=None) -> np.ndarray:
        info = self.annotations.get(name)
        if info is None:
            return self._recs[0].annotation(name)  # the reader's error lists the annotations
        bounds = self._rows["positions"] if info.level == "position" else self._items
        n = int(bounds[-1])
        pieces, _, _ = self._pieces(bounds, start, stop, n, info.level)
        parts = [self._recs[j].annotation(name, lo, hi) for j, lo, hi, _ in pieces]
        return np.concatenate(parts) if parts else self._recs[0].annotation(name, 0, 0)

    def probe_stats(self, tap: str, task=None):
        from lstmviz.analysis.shard_index import global_stats

        return global_stats(self.shards, tap, self.backend, task=task)

    def _tap(self, tap: str):
        info = self.taps.get(tap)
        if info is None:
            raise KeyError(f"the shards have no tap {tap!r} (taps: {', '.join(self.taps)})")
        return info

    # --- life cycle ----------------------------------------------------------------------------

    def close(self) -> None:
        for rec in self._recs:
            rec.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ShardedRecording({len(self.shards)} shards, {self.n_items} items, {self.n_positions} positions)"
