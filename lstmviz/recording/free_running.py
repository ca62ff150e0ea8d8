"""Recording a language model in teacher-forced and free-running mode into one recording.

:class:`ModesDataset` wraps a token dataset and a language model of the ``language-model`` family (any
engine: ``model(tokens [B, T], state) -> (logits, state)``). Every source item ``i`` becomes one item per
mode, next to each other:

- **teacher-forced**: the item's own tokens (and its annotations);
- **free-running**: as many tokens as the item has, the first being the item's first token and each
  next one *sampled* from the model's softmax after the previous (never the argmax), from the zero
  state, with a ``torch.Generator`` seeded by ``seed`` (reproducible). The source's annotations do not
  describe sampled tokens, so they are missing (-1 / NaN / None) on these items.

The recorder then records both kinds of item the ordinary way (each from the zero state). Reading one's
own samples teacher-forced *is* free running, so the free-running items' states are exactly the
free-running dynamics (``engines/families/language_model/free_running.py``).

Added annotations: ``mode`` (item, categorical: teacher-forced / free-running), ``pair`` (item, numeric:
the source item's index; the two items of a pair share it) and ``tf_fr_distance`` (position, numeric, on
both items of a pair: ``‖b_TF,t − b_FR,t‖₂`` where ``b_t`` is every layer's hidden state concatenated, the
model's first state tensor: ``h``). With one mode only, ``tf_fr_distance`` is still computed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from lstmviz.datasets.base import AnnotationSpec, SequenceItem
from lstmviz.engines.families.language_model.free_running import sampler, teacher, unroll

MODES = ("teacher-forced", "free-running")

MODE_SPECS = [
    AnnotationSpec("mode", "categorical", level="item", labels=MODES,
                   description="teacher-forced: the data's tokens; free-running: the model's own samples "
                               "(softmax sampling) from the same first token and zero state"),
    AnnotationSpec("pair", "numeric", level="item",
                   description="index of the source item: the teacher-forced and free-running items of one "
                               "source share it"),
    AnnotationSpec("tf_fr_distance", "numeric",
                   description="Euclidean distance between the teacher-forced and the free-running hidden "
                               "states (every layer's h concatenated) at this step of the pair"),
]


def parse_modes(text: str) -> tuple[str, ...]:
    """``"teacher-forced,free-running"`` -> the modes, checked (``ValueError`` naming the known ones)."""
    modes = tuple(m.strip() for m in text.split(",") if m.strip())
    bad = [m for m in modes if m not in MODES]
    if not modes or bad or len(set(modes)) != len(modes):
        raise ValueError(f"expected a comma-separated list of distinct modes among {', '.join(MODES)}, got {text!r}")
    return modes


class ModesDataset:
    """A token dataset recorded in several modes (see the module docstring); duck-types ``SequenceDataset``."""

    def __init__(self, base, model, modes=MODES, *, seed: int = 0, max_items: int | None = None,
                 batch_size: int = 32):
        self.base = base
        self.modes = tuple(modes)
        bad = [m for m in self.modes if m not in MODES]
        if not self.modes or bad:
            raise ValueError(f"expected modes among {', '.join(MODES)}, got {list(modes)}")
        self.seed = int(seed)
        self.name, self.split = base.name, base.split
        self.vocab = list(base.vocab)
        clash = [s.name for s in base.annotation_specs if s.name in {m.name for m in MODE_SPECS}]
        if clash:
            raise ValueError(f"dataset {base.name!r} already has annotations {clash}; cannot add the mode annotations")
        self.annotation_specs = list(base.annotation_specs) + MODE_SPECS
        self.options = dict(getattr(base, "options", {}))
        self.source = getattr(base, "source", "")
        n = len(base) if max_items is None else min(len(base), int(max_items))
        self._sources = [base[i] for i in range(n)]
        self._samples, self._distances = self._free_run(model, batch_size)

    @torch.no_grad()
    def _free_run(self, model, batch_size: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        generator = torch.Generator(device=device).manual_seed(self.seed)
        samples, distances = [], []
        try:
            for start in range(0, len(self._sources), batch_size):
                chunk = self._sources[start : start + batch_size]
                lengths = [len(item.tokens) for item in chunk]
                steps = max(lengths)
                data = np.zeros((len(chunk), steps), dtype=np.int64)
                for row, item in zip(data, chunk):
                    row[: len(item.tokens)] = item.tokens  # padding past an item's end is never compared
                x = torch.from_numpy(data).to(device)
                tf = unroll(model, x[:, 0], steps, teacher(x))
                fr = unroll(model, x[:, 0], steps, sampler(generator))
                dist = (tf.hidden - fr.hidden).norm(dim=2).t().double().cpu().numpy()  # [B, T]
                tokens = fr.tokens.cpu().numpy()
                for k, n in enumerate(lengths):
                    samples.append(tokens[k, :n].copy())
                    distances.append(dist[k, :n].copy())
        finally:
            model.train(was_training)
        return samples, distances

    def __len__(self) -> int:
        return len(self._sources) * len(self.modes)

    def __getitem__(self, i: int) -> SequenceItem:
        n = len(self)
        if not isinstance(i, (int, np.integer)) or not -n <= i < n:
            raise IndexError(f"item {i} out of range for {n} items")
        i = int(i) % n
        source, mode = divmod(i, len(self.modes))
        mode_name = self.modes[mode]
        item = self._sources[source]
        extra = {"mode": MODES.index(mode_name), "pair": float(source)}
        distance = self._distances[source]
        if mode_name == "teacher-forced":
            return SequenceItem(tokens=np.asarray(item.tokens, dtype=np.int64),
                                annotations={**item.annotations, "tf_fr_distance": distance},
                                item_annotations={**item.item_annotations, **extra}, text=item.text)
        tokens = self._samples[source]
        missing = {s.name: np.full(len(tokens), -1 if s.kind == "categorical" else np.nan)
                   for s in self.base.annotation_specs if s.level == "position"}
        return SequenceItem(tokens=tokens, annotations={**missing, "tf_fr_distance": distance},
                            item_annotations={s.name: None for s in self.base.annotation_specs
                                              if s.level == "item"} | extra,
                            text=" ".join(str(self.vocab[t]) for t in tokens.tolist()))

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def annotation_spec(self, name: str) -> AnnotationSpec:
        for spec in self.annotation_specs:
            if spec.name == name:
                return spec
        raise KeyError(f"{self.name} has no annotation {name!r}")

    def token_stream(self) -> np.ndarray:
        return np.concatenate([self[i].tokens for i in range(len(self))]) if len(self) else np.zeros(0, np.int64)

    def decode(self, ids) -> list[str]:
        return [self.vocab[int(t)] for t in ids]

    def provenance(self) -> dict[str, Any]:
        prov = dict(self.base.provenance())
        prov["items"] = len(self)
        prov["annotations"] = {s.name: s.to_dict() for s in self.annotation_specs}
        prov["modes"] = {
            "modes": list(self.modes), "source_items": len(self._sources), "seed": self.seed,
            "free_running": "first token = the item's first token; then tokens sampled from softmax(logits) "
                            "(torch.multinomial, seeded generator); zero initial state; eval mode",
        }
        return prov
