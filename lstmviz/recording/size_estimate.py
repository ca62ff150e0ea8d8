"""How big a recording will be, before it is recorded (``lstmviz record`` prints it and refuses above a limit).

The taps dominate: positions × units × bytes per value, once per checkpoint; tokens add 4 bytes and
each position-level annotation 4 (categorical) or 8 (numeric) bytes per position. The units of each
signal are found by running the model on a few tokens of the first item inside a ``Recorder``, so
the estimate is right for any model, not only built-in engines. HDF5's own overhead (chunk index,
attributes) is well under 1 % for recordings where the size matters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_PROBE_TOKENS = 4


@dataclass(frozen=True)
class SizeEstimate:
    positions: int
    items: int
    units: dict[str, int]  # signal -> units
    itemsize: int  # bytes per stored value (2: float16, 4: float32)
    checkpoints: int  # how many model states are recorded over the same items
    annotation_bytes_per_position: int
    exact_positions: bool  # False when positions were scaled from the dataset's size (max_items)

    @property
    def tap_bytes(self) -> int:
        return self.positions * sum(self.units.values()) * self.itemsize * self.checkpoints

    @property
    def total_bytes(self) -> int:
        return self.tap_bytes + self.positions * (4 + self.annotation_bytes_per_position) + 8 * (self.items + 1)

    def describe(self) -> str:
        """``about 509 MB: 82,430 positions × 1,560 units × 2 bytes (float16)``, ``× 9 checkpoints``."""
        dtype = {2: "float16", 4: "float32"}.get(self.itemsize, f"{self.itemsize}-byte values")
        text = (f"{'about ' if not self.exact_positions else ''}{format_bytes(self.total_bytes)}: "
                f"{self.positions:,} positions × {sum(self.units.values()):,} units in {len(self.units)} "
                f"signal{'s' if len(self.units) != 1 else ''} × {self.itemsize} bytes ({dtype})")
        if self.checkpoints > 1:
            text += f" × {self.checkpoints} checkpoints"
        return text


def format_bytes(n: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{int(n):,} bytes" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return ""


def parse_size(text: str) -> float:
    """``"2G"``, ``"500MB"``, ``"1.5T"``, ``"123456"`` (bytes; powers of 1000) or ``"none"`` (inf)."""
    raw = str(text).strip().lower()
    if raw in ("none", "inf", "unlimited"):
        return float("inf")
    number = raw.rstrip("b").rstrip()
    scale = 1
    if number and number[-1] in "kmgt":
        scale = 1000 ** ("kmgt".index(number[-1]) + 1)
        number = number[:-1]
    try:
        value = float(number) * scale
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"a size like 2G, 500M or 10GB (or none), got {text!r}")
    return value


def estimate_size(model, data, *, signals=None, dtype: str = "float32", max_items: int | None = None,
                  checkpoints: int = 1, batch_first: bool = True, forward=None, device="cpu") -> SizeEstimate:
    """Estimate the size of ``record(model, data, ..., signals=signals, dtype=dtype, max_items=...)``.

    ``data`` as for ``record``: a dataset (its ``token_stream()`` gives the positions cheaply; with
    ``max_items`` they are scaled by the share of items) or a sequence of token-id sequences.
    Unknown signals raise ValueError (the recorder's sentence, listing what exists).
    """
    import torch

    from lstmviz.recording.recorder_context import Recorder
    from lstmviz.recording.recorder_data import DataSource

    itemsize = np.dtype(dtype).itemsize
    source = DataSource(data, max_items)
    first = next(iter(source), None)
    if first is None:
        raise ValueError("no items to record: data is empty")
    recorder = Recorder(model, signals, batch_first=batch_first, accumulate=True)
    tokens = torch.as_tensor(first.tokens[:_PROBE_TOKENS], dtype=torch.int64)[None].to(device)
    if not batch_first:
        tokens = tokens.t().contiguous()
    training = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad(), recorder:
            if forward is None:
                model(tokens)
            else:
                forward(model, tokens, torch.tensor([tokens.numel()], dtype=torch.int64))
            states = recorder.collect()
    finally:
        for module, flag in training:
            module.training = flag
    units = {name: int(value.shape[-1]) for name, value in states.items()}

    positions, items, exact = _positions(data, source, max_items)
    per_position = 0
    for spec in source.specs:
        if spec.level == "position":
            per_position += 4 if spec.kind == "categorical" else 8
    return SizeEstimate(positions=positions, items=items, units=units, itemsize=itemsize,
                        checkpoints=max(1, int(checkpoints)), annotation_bytes_per_position=per_position,
                        exact_positions=exact)


def _positions(data, source, max_items) -> tuple[int, int, bool]:
    if source.dataset and hasattr(data, "token_stream"):
        n_items = len(data)
        positions = len(data.token_stream())
        if max_items is None or max_items >= n_items:
            return positions, n_items, True
        return max(1, round(positions * max_items / max(1, n_items))), int(max_items), False
    lengths = [len(item.tokens) for item in source]
    return int(sum(lengths)), len(lengths), True
