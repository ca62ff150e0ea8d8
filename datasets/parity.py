"""``parity``: the parity of a string of bits, a hard long-range task for a language model.

Every item is ``length`` random bits, the separator ``=`` and the answer, ``even`` or ``odd`` (the
parity of the number of ``1`` bits): ``1 0 1 1 = odd``. The bits are uniform and independent, so a
language model can do no better than ln 2 nats on each bit and ``=`` is certain; all the learnable
signal is the answer token, which depends on every bit of the item, at distances 2 .. length + 1. A
model that has not found parity predicts the answer at chance (ln 2 nats); one that has, at ~0. Items
follow each other in one stream (a language model reads them back to back).

Each split has its own seed; the items of a split are deterministic in (seed, split). The generator is
numpy's PCG64 (``np.random.default_rng``).
"""

from __future__ import annotations

import numpy as np

from .base import AnnotationSpec, DatasetSpec, SequenceDataset, SequenceItem, check_int, check_split

VOCAB = ["<pad>", "0", "1", "=", "even", "odd"]
ZERO, ONE, SEP, EVEN, ODD = 1, 2, 3, 4, 5  # token ids
SPLITS = ("train", "valid", "test")
DEFAULT_ITEMS = {"train": 20_000, "valid": 1_000, "test": 1_000}
PARITY_LABELS = ("even", "odd")
CLASS_LABELS = ("bit", "separator", "answer")

ANNOTATIONS = [
    AnnotationSpec(
        "running_parity", "categorical", labels=PARITY_LABELS,
        description="parity of the number of 1 bits read so far in the item, counting this token (on the "
        "separator and the answer: the item's parity)",
    ),
    AnnotationSpec(
        "token_class", "categorical", labels=CLASS_LABELS,
        description="bit for '0'/'1', separator for '=', answer for 'even'/'odd'",
    ),
    AnnotationSpec(
        "bits_left", "numeric",
        description="bits still to come before the separator (length - 1 on the first bit, 0 on the last bit, "
        "the separator and the answer)",
    ),
    AnnotationSpec(
        "parity", "categorical", level="item", labels=PARITY_LABELS,
        description="the item's answer: parity of the number of 1 bits",
    ),
]


def generate(items: int, length: int, seed: int, split: str) -> np.ndarray:
    """The bits of every item, ``[items, length]`` uint8; deterministic in (seed, split)."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), SPLITS.index(split), 1608_04980]))
    return rng.integers(0, 2, size=(items, length), dtype=np.uint8)


class ParityDataset(SequenceDataset):
    """One split of the parity task; see the module docstring."""

    def __init__(self, split: str = "train", *, items: int | None = None, length: int = 16, seed: int = 0):
        check_split("parity", split, SPLITS)
        n = check_int("items", items, minimum=1, allow_none=True)
        n = DEFAULT_ITEMS[split] if n is None else n
        self.length = check_int("length", length, minimum=1)
        seed = check_int("seed", seed, minimum=0)
        self.name, self.split = "parity", split
        self.vocab = list(VOCAB)
        self.annotation_specs = list(ANNOTATIONS)
        self.options = {"items": items, "length": self.length, "seed": seed}
        self.source = SOURCE
        self._bits = generate(n, self.length, seed, split)
        answers = np.where(self._bits.sum(axis=1) % 2 == 1, ODD, EVEN)
        self._tokens = np.concatenate(
            [self._bits.astype(np.int64) + ZERO, np.full((n, 1), SEP), answers[:, None]], axis=1
        ).astype(np.int64)

    def __len__(self) -> int:
        return len(self._bits)

    def _item(self, i: int) -> SequenceItem:
        bits = self._bits[i].astype(np.int64)
        running = np.cumsum(bits) % 2
        parity = int(running[-1])
        length = self.length
        return SequenceItem(
            tokens=self._tokens[i].copy(),
            annotations={
                "running_parity": np.concatenate([running, [parity, parity]]).astype(np.int64),
                "token_class": np.array([0] * length + [1, 2], dtype=np.int64),
                "bits_left": np.concatenate([np.arange(length - 1, -1, -1), [0, 0]]).astype(np.float64),
            },
            item_annotations={"parity": parity},
            text=" ".join(VOCAB[t] for t in self._tokens[i].tolist()),
        )

    def token_stream(self) -> np.ndarray:
        return self._tokens.reshape(-1).copy()

    def answer_mask(self) -> np.ndarray:
        """True at the answer token of every item in :meth:`token_stream` (where the loss is learnable)."""
        mask = np.zeros(self._tokens.shape, dtype=bool)
        mask[:, -1] = True
        return mask.reshape(-1)


SOURCE = ("synthetic; uniform random bits with their parity as the answer (the parity task of the continuation "
          "and long-range-dependency literature, e.g. Gulcehre et al., 'Mollifying Networks', arXiv:1608.04980), "
          "numpy PCG64")

SPEC = DatasetSpec(
    name="parity",
    description="random bits, '=', then 'even'/'odd': a long-range dependency on every bit of the item",
    build=ParityDataset,
    splits=SPLITS,
    options={"items": None, "length": 16, "seed": 0},
    annotations=tuple(a.name for a in ANNOTATIONS),
    source=SOURCE,
)
