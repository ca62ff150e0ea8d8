"""``parens``: LSTMVis's synthetic nesting language.

The generator reproduces ``model/notebooks/Parenthesis Generation.ipynb`` of LSTMVis: one stream
that starts at depth 0 and, at every step, picks uniformly among the allowed tokens

* at depth 0: ``(`` or ``0``;
* at depth ``MAX_NESTING`` (4): ``)`` or ``4``;
* otherwise: ``)``, ``(`` or the digit equal to the current depth;

then updates the depth after ``(`` and ``)``. Train has 1,000,000 tokens and valid 100,000 as in
LSTMVis (test, which LSTMVis did not have, 100,000); each split has its own seed.

Items: the stream of a split is cut after the first token at which the depth is back to 0 once an
item has at least ``item_length`` tokens. Every item therefore starts at depth 0 with all of its
brackets matched, except possibly the last one (the remainder of the stream), and concatenating the
items gives back exactly the generated stream. ``item_length=None`` keeps the stream as one item.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import AnnotationSpec, DatasetSpec, SequenceDataset, SequenceItem, check_int, check_split

MAX_NESTING = 4
VOCAB = ["<pad>", "(", ")", "0", "1", "2", "3", "4"]
OPEN, CLOSE, DIGIT0 = 1, 2, 3  # token ids; the digit d has id DIGIT0 + d
SPLITS = ("train", "valid", "test")
DEFAULT_TOKENS = {"train": 1_000_000, "valid": 100_000, "test": 100_000}
DEPTH_LABELS = tuple(str(d) for d in range(MAX_NESTING + 1))
CLASS_LABELS = ("open", "close", "digit")

# A uniform draw r in 0..5 picks allowed[r % len(allowed)]: exactly uniform for 2 or 3 choices.
N_DRAW = 6


def allowed_tokens(depth: int) -> list[str]:
    """The tokens the generator may emit at ``depth``, in the notebook's order."""
    if depth == 0:
        return ["(", "0"]
    if depth == MAX_NESTING:
        return [")", str(depth)]
    return [")", "(", str(depth)]


def _tables() -> tuple[list[list[int]], list[list[int]]]:
    """(token id, next depth) for every (depth, draw)."""
    tok, nxt = [], []
    for depth in range(MAX_NESTING + 1):
        allowed = allowed_tokens(depth)
        picks = [allowed[r % len(allowed)] for r in range(N_DRAW)]
        tok.append([VOCAB.index(p) for p in picks])
        nxt.append([depth + 1 if p == "(" else depth - 1 if p == ")" else depth for p in picks])
    return tok, nxt


_TOKEN_TABLE, _NEXT_TABLE = _tables()


def walk(draws: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run the generator on uniform draws in ``0..5`` from depth 0.

    Returns token ids (int64) and the depth after each token (int8).
    """
    tok_t, next_t = _TOKEN_TABLE, _NEXT_TABLE
    n = len(draws)
    tokens = [0] * n
    depths = [0] * n
    depth = 0
    for i, r in enumerate(draws.tolist()):  # a plain list loop: 1M steps in about 0.1 s
        tokens[i] = tok_t[depth][r]
        depth = next_t[depth][r]
        depths[i] = depth
    return np.asarray(tokens, dtype=np.int64), np.asarray(depths, dtype=np.int8)


def generate(n_tokens: int, seed: int, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The stream of ``split``: token ids and depth after each token; deterministic in (seed, split)."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), SPLITS.index(split)]))
    return walk(rng.integers(0, N_DRAW, size=n_tokens, dtype=np.int8))


def cut_items(depths: np.ndarray, item_length: int | None) -> np.ndarray:
    """Item offsets ``[0, ..., len(depths)]``: cut after the first depth-0 token once an item has
    ``item_length`` tokens; the remainder is the last item."""
    n = len(depths)
    if item_length is None or n == 0:
        return np.array([0, n], dtype=np.int64)
    zeros = np.flatnonzero(depths == 0)
    offsets = [0]
    start = 0
    while start < n:
        k = np.searchsorted(zeros, start + item_length - 1)
        end = int(zeros[k]) + 1 if k < len(zeros) else n
        offsets.append(end)
        start = end
    return np.asarray(offsets, dtype=np.int64)


def match_distance(tokens: np.ndarray, depths: np.ndarray) -> np.ndarray:
    """For each bracket the distance (in tokens) to its partner; NaN for digits and unmatched brackets.

    ``tokens``/``depths`` must start at depth 0. For a fixed depth d, the ``(`` that reach d and the
    ``)`` that leave it alternate, so each ``(`` matches the first such ``)`` after it.
    """
    out = np.full(len(tokens), np.nan, dtype=np.float64)
    positions = np.arange(len(tokens))
    for d in range(1, MAX_NESTING + 1):
        opens = positions[(tokens == OPEN) & (depths == d)]
        closes = positions[(tokens == CLOSE) & (depths == d - 1)]
        k = np.searchsorted(closes, opens)
        matched = k < len(closes)
        o, c = opens[matched], closes[k[matched]]
        out[o] = c - o
        out[c] = c - o
    return out


ANNOTATIONS = [
    AnnotationSpec(
        "depth", "categorical", labels=DEPTH_LABELS,
        description="nesting depth after reading the token: the number of '(' read in the item and not "
        "yet closed, counting this token (a digit token equals it; '(' shows the new depth, ')' the depth "
        "it returns to)",
    ),
    AnnotationSpec(
        "token_class", "categorical", labels=CLASS_LABELS,
        description="open for '(', close for ')', digit for '0'..'4'",
    ),
    AnnotationSpec(
        "match_distance", "numeric",
        description="for a bracket, the number of tokens to its matching bracket (same value on both); "
        "NaN for digits and for brackets whose partner is not in the item",
    ),
    AnnotationSpec(
        "max_depth", "categorical", level="item", labels=DEPTH_LABELS,
        description="the greatest depth reached in the item",
    ),
]


class ParensDataset(SequenceDataset):
    """One split of the parenthesis language; see the module docstring."""

    def __init__(self, split: str = "train", *, tokens: int | None = None, item_length: int | None = 200,
                 seed: int = 0):
        check_split("parens", split, SPLITS)
        n = check_int("tokens", tokens, minimum=1, allow_none=True)
        n = DEFAULT_TOKENS[split] if n is None else n
        item_length = check_int("item_length", item_length, minimum=1, allow_none=True)
        seed = check_int("seed", seed, minimum=0)
        self.name, self.split = "parens", split
        self.vocab = list(VOCAB)
        self.annotation_specs = list(ANNOTATIONS)
        self.options = {"tokens": tokens, "item_length": item_length, "seed": seed}
        self.source = SOURCE
        self._tokens, self._depths = generate(n, seed, split)
        self.offsets = cut_items(self._depths, item_length)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def _item(self, i: int) -> SequenceItem:
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        tokens = self._tokens[a:b].copy()
        depths = self._depths[a:b]
        token_class = np.where(tokens == OPEN, 0, np.where(tokens == CLOSE, 1, 2)).astype(np.int64)
        return SequenceItem(
            tokens=tokens,
            annotations={
                "depth": depths.astype(np.int64),
                "token_class": token_class,
                "match_distance": match_distance(tokens, depths),
            },
            item_annotations={"max_depth": int(depths.max()) if len(depths) else 0},
            text=" ".join(VOCAB[t] for t in tokens.tolist()),
        )

    def token_stream(self) -> np.ndarray:
        return self._tokens.copy()

    def provenance(self) -> dict[str, Any]:
        prov = super().provenance()
        prov["tokens"] = int(len(self._tokens))
        return prov


SOURCE = ("synthetic; the generator of LSTMVis (Strobelt et al., 'LSTMVis: A Tool for Visual Analysis of "
          "Hidden State Dynamics in Recurrent Neural Networks', arXiv:1606.07461), "
          "model/notebooks/Parenthesis Generation.ipynb, reimplemented with numpy's PCG64")

SPEC = DatasetSpec(
    name="parens",
    description="LSTMVis's nesting language: '(' ')' and digits equal to the depth, max nesting 4",
    build=ParensDataset,
    splits=SPLITS,
    options={"tokens": None, "item_length": 200, "seed": 0},
    annotations=tuple(a.name for a in ANNOTATIONS),
    source=SOURCE,
)
