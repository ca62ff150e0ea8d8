"""Read a tap slab by slab on a helper thread while the caller computes on the previous slab.

h5py releases the GIL while HDF5 copies data and the numba kernels release it while they run, so the
read of slab i+1 overlaps the work on slab i. Slabs come back in the stored dtype (no float16 ->
float32 conversion) in a few recycled buffers: a slab is valid until the next one is requested.
"""

from __future__ import annotations

import queue
import threading

import numpy as np

SLAB_BYTES = 16 * 1024 * 1024
"""Stored bytes per slab: big enough that per-slab overheads vanish, small enough to stay in cache."""


def slab_rows(n_units: int, itemsize: int, multiple: int = 64) -> int:
    """Rows per slab: about ``SLAB_BYTES``, a multiple of ``multiple``."""
    rows = SLAB_BYTES // max(1, n_units * itemsize)
    return max(multiple, rows // multiple * multiple)


class SlabReader:
    """``with SlabReader(recording, tap, rows) as slabs: for start, stop, x in slabs: ...``

    ``x`` is ``[stop - start, units]`` in the tap's stored dtype and is reused after the loop body
    asks for the next slab. Leaving the ``with`` block (also by an exception) stops the reader.
    ``ranges``: read these ``(start, stop)`` row ranges (each at most ``rows`` long) in this order
    instead of ``[start, stop)`` in slabs of ``rows``.
    """

    def __init__(self, recording, tap: str, rows: int, *, start: int = 0, stop: int | None = None,
                 buffers: int = 3, ranges=None):
        info = recording.taps[tap]
        self._recording = recording
        self._tap = tap
        self._rows = int(rows)
        start = int(start)
        stop = recording.axis_length(info.axis) if stop is None else int(stop)
        if ranges is None:
            ranges = [(a, min(stop, a + self._rows)) for a in range(start, stop, self._rows)]
        self._ranges = [(int(a), int(b)) for a, b in ranges]
        if any(b - a > self._rows or b < a for a, b in self._ranges):
            raise ValueError(f"every range must hold 0..{self._rows} rows")
        n = max([b - a for a, b in self._ranges], default=0)
        shape = (n if n else 1, info.units)
        self._free: queue.Queue = queue.Queue()
        self._full: queue.Queue = queue.Queue()
        for _ in range(buffers):
            self._free.put(np.empty(shape, np.dtype(info.dtype)))
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._read_all, name=f"read {tap}", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._halt.set()
        self._free.put(None)
        self._thread.join()

    def __iter__(self):
        for _ in self._ranges:
            item = self._full.get()
            if isinstance(item, BaseException):
                raise item
            a, b, buf = item
            yield a, b, buf[: b - a]
            self._free.put(buf)

    def _read_all(self) -> None:
        try:
            for a, b in self._ranges:
                buf = self._free.get()
                if buf is None or self._halt.is_set():
                    return
                self._recording.raw_states(self._tap, a, b, out=buf[: b - a])
                self._full.put((a, b, buf))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, which raises it
            self._full.put(e)
