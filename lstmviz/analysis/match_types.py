"""What a match request asks for and what it returns (shared by the matcher, the views and exports)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MODES = ("lstmvis", "scored")
#: which signed units count as "on" in a candidate: positive only, negative only, or both
UNIT_SPACES = ("positive", "negative", "both")


@dataclass(frozen=True)
class MatchQuery:
    """A whole-corpus search for ranges where the selected (signed) units are on together.

    ``units[i]`` with ``signs[i]`` (+1: on means >= threshold; -1: on means <= -threshold).
    Off-padding: ``pad_left`` positions before and ``pad_right`` after a candidate must be off for a
    unit to count as pattern-active there (padding outside the candidate's item is not checked).
    """

    units: tuple[int, ...]
    signs: tuple[int, ...] = ()  # empty = all +1
    mode: str = "lstmvis"
    pad_left: int = 1
    pad_right: int = 0
    min_length: int = 1  # LSTMVis itself uses 2: single-token patterns cannot match there
    max_length: int | None = None
    limit: int | None = 1000  # results returned, best first; None = every candidate scored
    #: lstmvis mode: stop collecting candidate runs once this many are collected (theirs: 10,000 in
    #: precise mode), then keep the best `candidate_cap` by boundary sharpness; None = no cap.
    #: scored mode: a safety bound on candidates scored (the result says whether it is exact).
    candidate_cap: int | None = 10000
    #: scored mode: the user's selection length L_s and the weight b of the length term
    #: (min(L, L_s) / max(L, L_s)) ** b
    selection_length: int | None = None
    length_weight: float = 0.5
    unit_space: str | None = None  # None: the signs present in the selection

    def __post_init__(self):
        if not self.signs:
            object.__setattr__(self, "signs", tuple(1 for _ in self.units))
        object.__setattr__(self, "units", tuple(int(u) for u in self.units))
        object.__setattr__(self, "signs", tuple(int(s) for s in self.signs))
        if len(self.signs) != len(self.units):
            raise ValueError(f"{len(self.units)} units but {len(self.signs)} signs")
        if any(s not in (1, -1) for s in self.signs):
            raise ValueError("signs must be +1 or -1")
        if len(set(zip(self.units, self.signs))) != len(self.units):
            raise ValueError("a (unit, sign) pair appears twice in the selection")
        if not self.units:
            raise ValueError("select at least one unit to match")
        if self.mode not in MODES:
            raise ValueError(f"unknown scoring mode {self.mode!r}; choose one of {', '.join(MODES)}")
        if self.pad_left < 0 or self.pad_right < 0:
            raise ValueError("off-padding must be >= 0 positions")
        if self.min_length < 1:
            raise ValueError("min_length must be >= 1")
        if self.max_length is not None and self.max_length < self.min_length:
            raise ValueError("max_length must be >= min_length")
        if self.limit is not None and self.limit < 1:
            raise ValueError("limit must be >= 1 or None")
        if self.candidate_cap is not None and self.candidate_cap < 1:
            raise ValueError("candidate_cap must be >= 1 or None")
        if self.unit_space is not None and self.unit_space not in UNIT_SPACES:
            raise ValueError(f"unknown unit space {self.unit_space!r}; choose one of {', '.join(UNIT_SPACES)}")

    @property
    def k(self) -> int:
        return len(self.units)

    @property
    def space(self) -> str:
        if self.unit_space is not None:
            return self.unit_space
        signs = set(self.signs)
        return "both" if signs == {1, -1} else ("positive" if signs == {1} else "negative")


@dataclass(frozen=True)
class MatchResults:
    """Ranked matches, best first. Every array has one entry per match.

    lstmvis mode ranks by (-intersection, union, -length) as LSTMVis does; ``score`` is the Jaccard.
    scored mode ranks by ``score = jaccard * length_factor`` (ties: larger intersection, then earlier).
    """

    query: MatchQuery
    starts: np.ndarray  # int64, first position of the matched run
    lengths: np.ndarray  # int64
    items: np.ndarray  # int64, the item holding the run
    levels: np.ndarray  # int32, m: at least m selected units are on at every position of the run
    intersection: np.ndarray  # int32, |A & S|: selected units pattern-active over the run
    union: np.ndarray  # int32, |A | S|
    jaccard: np.ndarray  # float64
    length_factor: np.ndarray  # float64 (1.0 in lstmvis mode)
    score: np.ndarray  # float64
    n_candidates: int = 0  # candidate runs scored
    exact: bool = True  # scored mode: the top `limit` is proven; lstmvis: its own semantics
    lowest_level: int = 0  # the lowest strictness level m that was collected
    elapsed_s: float = 0.0
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.starts)

    @property
    def stops(self) -> np.ndarray:
        return self.starts + self.lengths

    @classmethod
    def empty(cls, query: MatchQuery) -> "MatchResults":
        i64 = np.zeros(0, np.int64)
        i32 = np.zeros(0, np.int32)
        f64 = np.zeros(0, np.float64)
        return cls(query, i64, i64.copy(), i64.copy(), i32, i32.copy(), i32.copy(), f64, f64.copy(), f64.copy())

    def take(self, order) -> "MatchResults":
        """The matches at ``order`` (indices or a mask), keeping everything else."""
        pick = np.asarray(order)
        return MatchResults(
            self.query, self.starts[pick], self.lengths[pick], self.items[pick], self.levels[pick],
            self.intersection[pick], self.union[pick], self.jaccard[pick], self.length_factor[pick],
            self.score[pick], self.n_candidates, self.exact, self.lowest_level, self.elapsed_s, dict(self.extra),
        )
