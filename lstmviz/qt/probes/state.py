"""The Probes panel's part of the workspace: its settings and whether it showed a result (Qt-free).

``ProbeState`` is what the panel's controls show and what it shows (kept equal to it by the panel);
``PROBE_STATE`` keeps it in the workspace file (``"panels": {"probes": {...}}``, version 1; a version 1
workspace file had the same entries at the top level, "probes") and says what of it fits a recording.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from lstmviz.analysis.probe_report import AT_CHOICES as PROBE_POSITIONS
from lstmviz.analysis.probes import INPUT_TAP as PROBE_INPUT
from lstmviz.workspace.panel_state import PanelStateFormat
from lstmviz.workspace.schema import MAX_LISTED, Flag, ListOf, Record, Text, Whole, listed

#: the label shifts the panel offers (its spin box's range), inclusive
PROBE_SHIFT_RANGE = (-3, 3)


@dataclass(frozen=True)
class ProbeState:
    """The Probes panel: what Run asks for (as ``lstmviz.qt.probes.panel.ProbeSettings``) and what it showed.

    ``label``: the categorical annotation (None: the panel's default, the first one); ``taps``: the
    ticked taps (None: every tap); ``curves``: curves over training were asked for (``kernel``: with the
    tangent-kernel curves); ``shown``: a result
    was shown (or being computed), so reopening the workspace runs the probes again (instant from the
    cache); ``open_probe``: the probe open in the detail (a tap, or ``PROBE_INPUT``).
    """

    label: str | None = None
    shift: int = 0
    at: str = "all"
    taps: tuple[str, ...] | None = None
    control: bool = True
    baseline: bool = True
    curves: bool = False
    shown: bool = False
    open_probe: str | None = None
    kernel: bool = False  # the tangent-kernel curves over training too (with ``curves``)

    def __post_init__(self):
        if self.taps is not None and not isinstance(self.taps, tuple):
            object.__setattr__(self, "taps", tuple(self.taps))


class ProbeStateFormat(PanelStateFormat):
    name = "probes"
    title = "the Probes panel"
    version = 1
    schema = Record({
        "label": (Text(nullable=True), None),
        "shift": (Whole(*PROBE_SHIFT_RANGE), 0),
        "at": (Text(choices=PROBE_POSITIONS), "all"),
        "taps": (ListOf(Text(), MAX_LISTED, nullable=True), None),
        "control": (Flag(), True),
        "baseline": (Flag(), True),
        "curves": (Flag(), False),
        "shown": (Flag(), False),
        "open_probe": (Text(nullable=True), None),
        "kernel": (Flag(), False),
    })

    def from_values(self, values: dict) -> ProbeState:
        taps = values["taps"]
        return ProbeState(**{**values, "taps": None if taps is None else tuple(dict.fromkeys(taps))})

    def to_values(self, state: ProbeState) -> dict:
        values = asdict(state)
        values["taps"] = None if state.taps is None else list(state.taps)
        if not state.kernel:
            del values["kernel"]  # written only when asked for: files without it read the same (default False)
        return values

    def for_new_recording(self, state: ProbeState) -> None:
        return None  # labels and taps of the recording that was open; the panel sets its own again

    def fit(self, p: ProbeState, recording, problems: list[str]) -> ProbeState:
        """``p`` without what does not fit ``recording`` (a sentence in ``problems`` for each thing): a label
        that is not a categorical annotation of the recording, taps it lacks, a probe to reopen that will not
        be there, a shift on an item's label, curves over training of a recording of one model state;
        without a label or a tap to probe, the result is not run again."""
        label, shift, taps, open_probe, curves, shown = p.label, p.shift, p.taps, p.open_probe, p.curves, p.shown
        kernel = p.kernel
        not_again = []  # why the result that was shown cannot be computed again
        if label is not None:
            info = recording.annotations.get(label)
            if info is None:
                problems.append(f"probes: the recording has no annotation {label!r} to probe; the Probes panel shows "
                                f"its first label instead")
            elif info.kind != "categorical" or not info.labels:
                problems.append(f"probes: the annotation {label!r} is not categorical, so it cannot be probed; the "
                                f"Probes panel shows its first label instead")
                info = None
            elif info.level == "item" and shift != 0:
                problems.append(f"probes: {label!r} labels whole items, so its shift {shift} was set to 0")
                shift = 0
            if info is None:
                label = None
                not_again.append("its label")
        position_taps = [name for name, info in recording.taps.items()
                         if getattr(info, "axis", "positions") == "positions"]
        if taps is not None:
            missing = [t for t in taps if t not in position_taps]
            if missing:
                kept = tuple(t for t in taps if t in position_taps)
                what = f"tap {missing[0]!r}" if len(missing) == 1 else f"taps {listed(missing)}"
                if kept:
                    problems.append(f"probes: the recording has no {what} over positions to probe; "
                                    f"{'it was' if len(missing) == 1 else 'they were'} left out")
                    taps = kept
                else:
                    problems.append(f"probes: the recording has no {what} over positions to probe; every tap is "
                                    f"ticked instead")
                    taps = None
                    not_again.append("its taps")
        if curves and len(getattr(recording, "checkpoints", None) or []) < 2:
            problems.append("probes: the recording holds the states of one model only, so the curves over training "
                            "were left out")
            curves = False
            kernel = False
        if shown and not_again:
            problems.append(f"probes: the probe result that was shown was not computed again ({' and '.join(not_again)} "
                            f"did not fit); press Run in the Probes panel")
            shown = False
        if open_probe is not None:
            probed = position_taps if taps is None else taps
            if not shown:
                open_probe = None  # nothing to reopen (said above when it was shown)
            elif open_probe == PROBE_INPUT and not p.baseline:
                problems.append("probes: the input-token baseline is not computed, so its probe cannot be reopened; "
                                "the detail shows the best tap")
                open_probe = None
            elif open_probe != PROBE_INPUT and open_probe not in probed:
                problems.append(f"probes: the probe of {open_probe!r} cannot be reopened (it is not among the taps "
                                f"probed); the detail shows the best tap")
                open_probe = None
        return replace(p, label=label, shift=shift, taps=taps, curves=curves, shown=shown, open_probe=open_probe,
                       kernel=kernel)


PROBE_STATE = ProbeStateFormat()
