"""The Perturb panel's part of the workspace: what it perturbs, how, and what it showed (Qt-free).

``PerturbState`` is what the panel's controls show: the target (tap; where the units come from — the
active pane's selection, a probe's top units, or a typed list such as ``"3, 17, 40-45"``; where the
positions come from — the brushed range, the whole item, or a typed item-local list), the action with
its settings (the fields of ``lstmviz.perturb.Perturbation``, see ``perturbation_fields``), and the
view choices (the tap of the Δ heatmap, the alpha sweep's range, what "All items" runs over, which
result was shown), the input-side attack (method, item-local position, PGD's radius), and the
loss-model pruning of the model (method MP/LM/QM/OBD, target sparsity, steps, λ, curvature).
``PERTURB_STATE`` keeps it in the workspace file (``"panels": {"perturb": {...}}``,
version 2: version 1 had no pruning settings, which then take their defaults) and says what of it fits a recording (``fit``: a tap the recording lacks is dropped, typed
units are clipped to the tap, annotations it lacks are dropped).

``parse_indices`` reads a typed list of indices (``"3, 17, 40-45"``); a mistake is one sentence.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from lstmviz.workspace.panel_state import PanelStateFormat
from lstmviz.workspace.schema import Pair, Real, Record, Text, Whole

#: the actions of ``lstmviz.perturb.spec.ACTIONS`` (repeated here so the state stays free of torch)
ACTIONS = ("ablate", "clamp", "add", "patch")
#: the directions the panel offers for "add" (``lstmviz.perturb.spec.DIRECTIONS`` without "vector",
#: which only a script can give)
DIRECTIONS = ("unit", "random", "probe", "means")
ABLATE_TO = ("zero", "mean")
#: where the units come from: the active pane's selection, a fitted probe's top units, a typed list
UNITS_FROM = ("selection", "probe", "typed")
#: where the positions come from: the brushed range of the active pane, every position of the item,
#: a typed item-local list
POSITIONS_FROM = ("brush", "all", "typed")
#: what "All items" runs over: every item, or the Match panel's matches
BATCH_OVER = ("items", "matches")
#: the tabs of results
VIEWS = ("effect", "sweep", "items", "attack", "pruning")
#: what was shown (and is computed again when a saved workspace is opened)
SHOWN = ("none", "effect", "sweep", "items", "attack", "pruning", "prune")
#: the input-side attacks (``lstmviz.perturb.adversarial.METHODS``)
ATTACKS = ("hotflip", "pgd", "lbfgs")
EPS_RANGE = (1e-6, 1e6)
#: Laurent et al.'s loss models (``lstmviz.perturb.loss_models.LOSS_MODELS``)
PRUNE_METHODS = ("mp", "lm", "qm", "obd")
#: the curvatures the panel offers for token models (``lstmviz.perturb.curvature.CURVATURES`` without the
#: exact GGN, which needs one prediction per example, and the exact Hessian, one backward per weight)
PRUNE_CURVATURES = ("fisher", "sampled-fisher", "hutchinson")
PRUNE_SPARSITY = (0.0, 0.99)
PRUNE_STEPS = (1, 50)
PRUNE_LAMBDA = (0.0, 1e3)
#: bounds of the numbers the panel's boxes take
VALUE_RANGE = (-1e6, 1e6)
ALPHA_RANGE = (-1e6, 1e6)
SWEEP_STEPS = (2, 101)
MAX_INDEX = 2**31 - 1
MAX_TYPED = 4096  # characters of a typed list


class IndexListError(ValueError):
    """A typed list of indices that cannot be read (the sentence says where)."""


def parse_indices(text: str, what: str = "unit", limit: int | None = None) -> tuple[int, ...]:
    """The indices of a typed list: numbers and inclusive ranges separated by commas or spaces
    (``"3, 17, 40-45"`` -> 3, 17, 40, 41, ..., 45), in order, without repeats.

    ``limit``: indices must be below it (the tap's unit count, the item's length). Raises
    ``IndexListError`` with one sentence naming the bad part.
    """
    text = (text or "").strip()
    if not text:
        raise IndexListError(f"type at least one {what}, e.g. 3, 17, 40-45")
    out: dict[int, None] = {}
    for part in text.replace(",", " ").replace(";", " ").split():
        bounds = part.split("-")
        try:
            if len(bounds) == 1:
                low = high = int(bounds[0])
            elif len(bounds) == 2 and bounds[0] and bounds[1]:
                low, high = int(bounds[0]), int(bounds[1])
            else:
                raise ValueError
        except ValueError:
            raise IndexListError(f"cannot read {part!r} in the {what} list; write {what}s as numbers or "
                                 f"ranges, e.g. 3, 17, 40-45") from None
        if high < low:
            raise IndexListError(f"the range {part!r} in the {what} list runs backwards; write it as "
                                 f"{high}-{low}")
        if limit is not None and high >= limit:
            bad = high if low < limit else low
            raise IndexListError(f"there is no {what} {bad}: the {what}s run from 0 to {limit - 1}")
        if high - low >= 1_000_000:
            raise IndexListError(f"the range {part!r} in the {what} list is too long")
        for i in range(low, high + 1):
            out[i] = None
    return tuple(out)


def format_indices(indices) -> str:
    """A list of indices written back as ``parse_indices`` reads it, runs as ranges (3, 17, 40-45)."""
    values = sorted(set(int(i) for i in indices))
    parts, i = [], 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[j] + 1:
            j += 1
        parts.append(str(values[i]) if j == i else f"{values[i]}-{values[j]}")
        i = j + 1
    return ", ".join(parts)


@dataclass(frozen=True)
class PerturbState:
    """The Perturb panel's settings and what it showed (see the module docstring).

    The action's settings carry the names of ``lstmviz.perturb.Perturbation``'s fields
    (``perturbation_fields``); ``means_a`` / ``means_b`` are its ``means_classes``. ``item``: the item
    the last result was computed on (None: the item shown in the select view); ``checkpoint``: a file
    the user located for a recording whose own checkpoint was missing.
    """

    tap: str | None = None
    action: str = "ablate"
    units_from: str = "selection"
    units_text: str = ""
    positions_from: str = "brush"
    positions_text: str = ""
    ablate_to: str = "zero"
    value: float = 0.0
    direction: str = "unit"
    alpha: float = 1.0
    seed: int = 0
    probe_label: str | None = None
    probe_class: str | None = None
    means_label: str | None = None
    means_a: str | None = None
    means_b: str | None = None
    source_item: int = 0
    source_start: int = 0
    item: int | None = None
    heatmap_tap: str | None = None
    sweep_range: tuple[float, float] = (-4.0, 4.0)
    sweep_steps: int = 9
    batch_over: str = "items"
    view: str = "effect"
    shown: str = "none"
    checkpoint: str | None = None
    attack_method: str = "hotflip"
    attack_position: int = 0
    attack_eps: float = 1.0
    prune_method: str = "qm"
    prune_sparsity: float = 0.5
    prune_steps: int = 5
    prune_lambda: float = 0.0
    prune_curvature: str = "fisher"

    def prune_fields(self) -> dict:
        """The loss-model pruning settings as ``lstmviz.perturb.prune_live.prune_live_model`` keywords."""
        return {"method": self.prune_method, "sparsity": float(self.prune_sparsity), "steps": int(self.prune_steps),
                "lam": float(self.prune_lambda), "curvature": self.prune_curvature}

    def perturbation_fields(self) -> dict:
        """The settings of the action as ``Perturbation`` keywords (without tap, units, positions)."""
        fields = {"action": self.action}
        if self.action == "ablate":
            fields["ablate_to"] = self.ablate_to
        elif self.action == "clamp":
            fields["value"] = float(self.value)
        elif self.action == "add":
            fields.update(direction=self.direction, alpha=float(self.alpha), seed=int(self.seed))
            if self.direction == "probe":
                fields.update(probe_label=self.probe_label, probe_class=self.probe_class)
            elif self.direction == "means":
                classes = None if self.means_a is None or self.means_b is None else (self.means_a, self.means_b)
                fields.update(means_label=self.means_label, means_classes=classes)
        elif self.action == "patch":
            fields.update(source_item=int(self.source_item), source_start=int(self.source_start))
        return fields


def _sweep_check(values: dict, where: str) -> None:
    from lstmviz.workspace.schema import Invalid

    low, high = values["sweep_range"]
    if not low < high:
        raise Invalid(f"{where} sweep_range must go from a smaller alpha to a larger one, got [{low:g}, {high:g}]")


class PerturbStateFormat(PanelStateFormat):
    name = "perturb"
    title = "the Perturb panel"
    version = 2
    schema = Record({
        "tap": (Text(nullable=True), None),
        "action": (Text(choices=ACTIONS), "ablate"),
        "units_from": (Text(choices=UNITS_FROM), "selection"),
        "units_text": (Text(max_chars=MAX_TYPED), ""),
        "positions_from": (Text(choices=POSITIONS_FROM), "brush"),
        "positions_text": (Text(max_chars=MAX_TYPED), ""),
        "ablate_to": (Text(choices=ABLATE_TO), "zero"),
        "value": (Real(*VALUE_RANGE), 0.0),
        "direction": (Text(choices=DIRECTIONS), "unit"),
        "alpha": (Real(*ALPHA_RANGE), 1.0),
        "seed": (Whole(0, MAX_INDEX), 0),
        "probe_label": (Text(nullable=True), None),
        "probe_class": (Text(nullable=True), None),
        "means_label": (Text(nullable=True), None),
        "means_a": (Text(nullable=True), None),
        "means_b": (Text(nullable=True), None),
        "source_item": (Whole(0, MAX_INDEX), 0),
        "source_start": (Whole(0, MAX_INDEX), 0),
        "item": (Whole(0, MAX_INDEX, nullable=True), None),
        "heatmap_tap": (Text(nullable=True), None),
        "sweep_range": (Pair(Real(*ALPHA_RANGE), Real(*ALPHA_RANGE), ("from", "to")), (-4.0, 4.0)),
        "sweep_steps": (Whole(*SWEEP_STEPS), 9),
        "batch_over": (Text(choices=BATCH_OVER), "items"),
        "view": (Text(choices=VIEWS), "effect"),
        "shown": (Text(choices=SHOWN), "none"),
        "checkpoint": (Text(max_chars=4096, nullable=True), None),
        "attack_method": (Text(choices=ATTACKS), "hotflip"),
        "attack_position": (Whole(0, MAX_INDEX), 0),
        "attack_eps": (Real(*EPS_RANGE), 1.0),
        "prune_method": (Text(choices=PRUNE_METHODS), "qm"),
        "prune_sparsity": (Real(*PRUNE_SPARSITY), 0.5),
        "prune_steps": (Whole(*PRUNE_STEPS), 5),
        "prune_lambda": (Real(*PRUNE_LAMBDA), 0.0),
        "prune_curvature": (Text(choices=PRUNE_CURVATURES), "fisher"),
    }, check=_sweep_check)

    def migrate(self, values: dict, version: int) -> dict:
        """Version 1 had no loss-model pruning settings (they take their defaults) and its pruning curve
        named the quadratic saliency ``obd`` (now ``qm``); it saved no method name, so nothing is renamed."""
        return values

    def from_values(self, values: dict) -> PerturbState:
        return PerturbState(**{**values, "sweep_range": tuple(float(v) for v in values["sweep_range"])})

    def to_values(self, state: PerturbState) -> dict:
        values = asdict(state)
        values["sweep_range"] = [float(v) for v in state.sweep_range]
        return values

    def for_new_recording(self, state: PerturbState) -> PerturbState:
        """Another recording: the action and view settings stay; what names its taps, items and
        annotations (and its checkpoint) does not."""
        return replace(state, tap=None, units_text="" if state.units_from == "typed" else state.units_text,
                       probe_label=None, probe_class=None, means_label=None, means_a=None, means_b=None,
                       source_item=0, source_start=0, item=None, heatmap_tap=None, shown="none",
                       checkpoint=None)

    def fit(self, p: PerturbState, recording, problems: list[str]) -> PerturbState:
        """``p`` without what does not fit ``recording`` (a sentence in ``problems`` for each thing): a tap
        it lacks is dropped (the panel picks its default tap; the result that was shown is not computed
        again), typed units beyond the tap are dropped, annotations and classes it lacks are dropped,
        items beyond its items are dropped."""
        changes: dict = {}
        taps = recording.taps
        tap = p.tap
        if tap is not None and tap not in taps:
            problems.append(f"perturb: the recording has no tap {tap!r}; the Perturb panel uses its first tap instead")
            changes["tap"] = tap = None
            if p.shown != "none":
                problems.append("perturb: the perturbation that was shown was not run again (its tap is missing); "
                                "press Run in the Perturb panel")
                changes["shown"] = "none"
        if p.heatmap_tap is not None and p.heatmap_tap not in taps:
            problems.append(f"perturb: the recording has no tap {p.heatmap_tap!r} for the Δ heatmap; it shows the "
                            f"first tap after the edited one instead")
            changes["heatmap_tap"] = None
        if p.units_text.strip() and tap is not None:
            units = int(taps[tap].units)
            try:
                parse_indices(p.units_text, "unit", units)
            except IndexListError:
                try:
                    typed = parse_indices(p.units_text, "unit")
                except IndexListError:
                    typed = None
                if typed is not None:
                    kept = [u for u in typed if u < units]
                    problems.append(f"perturb: tap {tap!r} has {units} units, so the typed units from {units} on "
                                    f"were dropped")
                    changes["units_text"] = format_indices(kept)
        n_items = int(getattr(recording, "n_items", 0))
        for key in ("item", "source_item"):
            value = getattr(p, key)
            if value is not None and value >= n_items and (key == "item" or p.action == "patch"):
                what = "the item perturbed" if key == "item" else "the patch's source item"
                problems.append(f"perturb: the recording has {n_items} items, so {what} ({value}) was reset")
                changes[key] = None if key == "item" else 0
        annotations = recording.annotations
        for label_key, class_keys in (("probe_label", ("probe_class",)), ("means_label", ("means_a", "means_b"))):
            label = getattr(p, label_key)
            if label is None:
                continue
            info = annotations.get(label)
            if info is None or info.kind != "categorical" or not info.labels:
                problems.append(f"perturb: the recording has no categorical annotation {label!r} for the direction; "
                                f"it was dropped")
                changes[label_key] = None
                for key in class_keys:
                    changes[key] = None
                continue
            for key in class_keys:
                value = getattr(p, key)
                if value is not None and value not in info.labels:
                    problems.append(f"perturb: {label!r} has no class {value!r}; it was dropped")
                    changes[key] = None
        return replace(p, **changes) if changes else p


PERTURB_STATE = PerturbStateFormat()
