r"""Nearest neighbours and analogies in an embedding table, with Linzen's baselines (issue 20, A7).

An analogy question ``a : a* :: b : ?`` has the answer ``b*``. Every method scores each row ``x`` of the
table by cosines of unit vectors (:math:`\hat v = v / \lVert v \rVert`; :math:`\cos(x, v) = \hat x \cdot
\hat v`) and answers the row of highest score, the *premises* excluded or not (``exclude``):

.. math::
    \text{3CosAdd (offset method, Mikolov et al. 2013):}\quad & \arg\max_x \cos(x,\ \hat a^* - \hat a + \hat b) \\
    \text{3CosMul (Levy \& Goldberg 2014):}\quad & \arg\max_x
        \frac{c(x, a^*)\, c(x, b)}{c(x, a) + \varepsilon},\quad c = \tfrac{1 + \cos}{2} \in [0, 1],\ \varepsilon = 10^{-3} \\
    \text{ONLY-B:}\quad & \arg\max_x \cos(x, \hat b) \\
    \text{IGNORE-A:}\quad & \arg\max_x \cos(x,\ \hat a^* + \hat b) \\
    \text{ADD-OPPOSITE:}\quad & \arg\max_x \cos(x,\ -(\hat a^* - \hat a) + \hat b) \\
    \text{REVERSE (ADD):}\quad & \text{3CosAdd on } a^* : a :: b^* : ?,\ \text{answer } b:\
        \arg\max_x \cos(x,\ \hat a - \hat a^* + \hat b^*) \\
    \text{REVERSE (ONLY-B):}\quad & \text{ONLY-B on the reversed question: } \arg\max_x \cos(x, \hat b^*),\
        \text{answer } b

The premises are ``{a, a*, b}`` (reversed questions: ``{a*, a, b*}``). With ``exclude`` (the usual
evaluation, gensim's ``most_similar``) they are never answers; without it, 3CosAdd often answers ``b``
itself, since :math:`\hat a^* - \hat a` is short when ``a`` and ``a*`` are close. Linzen's point: ONLY-B
and IGNORE-A never look at the offset, yet reach a sizeable part of the offset method's accuracy when
``b*`` is simply ``b``'s neighbour; ADD-OPPOSITE subtracts the offset and should fail if the offset
matters; an offset that is consistent should work both ways (REVERSE). Accuracy is reported per
relation, with the chance level: one over the number of candidates (rows, less the distinct premises
when excluded). Ties go to the lowest row.

What was confirmed, and how: the search tool found the paper's abstract ("Issues in evaluating semantic
spaces using word analogies", Linzen, RepEval 2016, arXiv:1606.07736) and notes on it stating its two
proposals: baselines that answer without the offset ``a* − a`` (to which the offset method is to be
compared) and reversing each question (which should not change a consistent offset's accuracy). The
paper's Table 1 text was not found, so the formulas above follow the project's reference note
(§A7: ONLY-B, IGNORE-A, ADD-OPPOSITE and the REVERSE variants "listed from memory"); REVERSE is
implemented as the reversed question (answer ``b``) for 3CosAdd and for ONLY-B. 3CosMul's shift of the
cosines to [0, 1] and ε = 0.001 follow Levy & Goldberg (2014) and gensim's ``most_similar_cosmul``.

Everything is vectorised: a chunk of questions is one matrix product ``[chunk, dim] x [dim, rows]``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lstmviz.analysis.embedding_tables import EmbeddingTable

#: method name -> its short description (the order of tables and menus)
METHODS = {
    "3cosadd": "3CosAdd: cos(x, a* - a + b)",
    "3cosmul": "3CosMul: c(x,a*) c(x,b) / (c(x,a) + eps)",
    "only-b": "ONLY-B: cos(x, b)",
    "ignore-a": "IGNORE-A: cos(x, a* + b)",
    "add-opposite": "ADD-OPPOSITE: cos(x, -(a* - a) + b)",
    "reverse-add": "REVERSE (ADD): a*:a :: b*:?, answer b",
    "reverse-only-b": "REVERSE (ONLY-B): cos(x, b*), answer b",
}
#: how tables label each method
METHOD_TITLES = {"3cosadd": "3CosAdd", "3cosmul": "3CosMul", "only-b": "ONLY-B", "ignore-a": "IGNORE-A",
                 "add-opposite": "ADD-OPPOSITE", "reverse-add": "REVERSE (ADD)", "reverse-only-b": "REVERSE (ONLY-B)"}
#: 3CosMul's epsilon (Levy & Goldberg 2014)
EPSILON = 1e-3
#: questions scored per matrix product
CHUNK = 256
#: questions generated per relation by default (pairs give n (n - 1) ordered questions)
MAX_QUESTIONS = 2000
GENERATORS = ("morphology", "crossed")


def check_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"unknown analogy method {method!r}; use one of {', '.join(METHODS)}")
    return method


# ---------------------------------------------------------------------------------------------- neighbours


def nearest_neighbours(table: EmbeddingTable, token, k: int = 10, *, exclude=()) -> list[tuple[str, float]]:
    """The ``k`` rows of highest cosine with ``token`` (a name, a row, or a vector), ``token`` itself and
    ``exclude`` (names or rows) left out; ``[(name, cosine), ...]`` best first."""
    unit = table.unit
    banned = set()
    if isinstance(token, np.ndarray) and token.ndim == 1:
        if token.shape[0] != table.dim:
            raise ValueError(f"a query vector of {token.shape[0]} dimensions for a table of {table.dim}")
        norm = float(np.linalg.norm(token))
        query = (token / norm if norm > 0 else token).astype(np.float32)
    else:
        row = int(token) if isinstance(token, (int, np.integer)) else table.index(token)
        query = unit[row]
        banned.add(row)
    banned.update(int(e) if isinstance(e, (int, np.integer)) else table.index(e) for e in exclude)
    scores = unit @ query
    if banned:
        scores[list(banned)] = -np.inf
    k = max(0, min(int(k), len(table) - len(banned)))
    top = _top(scores[None, :], k)[0]
    return [(table.names[i], float(scores[i])) for i in top]


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Per row, the column indices of the ``k`` highest scores, best first (ties: the lowest column)."""
    if k <= 0:
        return np.zeros((len(scores), 0), np.int64)
    n = scores.shape[1]
    if k == 1:
        return np.argmax(scores, axis=1)[:, None]  # the first of tied maxima: the lowest column
    if k >= n:
        return np.argsort(-scores, axis=1, kind="stable")
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    # order the k by score, then by column (stable ties); argpartition may cut a tie at the boundary,
    # so take every column tied with the k-th score before ordering
    out = np.empty((len(scores), k), np.int64)
    for i in range(len(scores)):
        kth = scores[i, part[i]].min()
        cand = np.flatnonzero(scores[i] >= kth)
        order = np.lexsort((cand, -scores[i, cand]))
        out[i] = cand[order][:k]
    return out


# ---------------------------------------------------------------------------------------------- answering


def _as_questions(table: EmbeddingTable, questions) -> np.ndarray:
    """``[q, 4]`` int64 rows ``(a, a*, b, b*)`` (``b*`` = -1 when unknown) of names or rows."""
    out = []
    for q in questions:
        q = list(q)
        if len(q) not in (3, 4):
            raise ValueError(f"an analogy question is (a, a*, b) or (a, a*, b, b*), got {q!r}")
        rows = [int(x) if isinstance(x, (int, np.integer)) else table.index(x) for x in q]
        out.append(rows + ([-1] if len(rows) == 3 else []))
    return np.array(out, np.int64).reshape(-1, 4)


def _scores(unit: np.ndarray, q: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray]:
    """``(scores [len(q), rows], premises [len(q), 3])`` of ``method`` for question rows ``q``."""
    a, a_star, b, b_star = (unit[q[:, j]] for j in range(4))

    def cos_to(target: np.ndarray) -> np.ndarray:
        norms = np.linalg.norm(target, axis=1, keepdims=True)
        return (target / np.where(norms > 0, norms, 1.0)) @ unit.T

    premises = q[:, :3]
    if method == "3cosadd":
        return cos_to(a_star - a + b), premises
    if method == "3cosmul":
        shift = lambda v: (v @ unit.T + 1.0) / 2.0  # noqa: E731 - cosines shifted to [0, 1]
        return shift(a_star) * shift(b) / (shift(a) + EPSILON), premises
    if method == "only-b":
        return b @ unit.T, premises
    if method == "ignore-a":
        return cos_to(a_star + b), premises
    if method == "add-opposite":
        return cos_to(-(a_star - a) + b), premises
    reversed_premises = np.stack([q[:, 1], q[:, 0], q[:, 3]], axis=1)
    if method == "reverse-add":
        return cos_to(a - a_star + b_star), reversed_premises
    if method == "reverse-only-b":
        return b_star @ unit.T, reversed_premises
    raise ValueError(check_method(method))


def _target(q: np.ndarray, method: str) -> np.ndarray:
    return q[:, 2] if method.startswith("reverse") else q[:, 3]


def answer(table: EmbeddingTable, questions, method: str = "3cosadd", *, exclude: bool = True, k: int = 1,
           task=None) -> tuple[np.ndarray, np.ndarray]:
    """``(rows [q, k], scores [q, k])``: the ``k`` best answers of ``method`` to each question, best first.

    ``questions``: ``(a, a*, b)`` or ``(a, a*, b, b*)`` as names or rows (REVERSE methods need ``b*``).
    """
    check_method(method)
    q = _as_questions(table, questions)
    if method.startswith("reverse") and (q[:, 3] < 0).any():
        raise ValueError(f"{METHOD_TITLES[method]} reverses the question, so it needs b* as well: give a, a*, b, b*")
    unit = table.unit
    k = max(1, min(int(k), len(table)))
    rows = np.zeros((len(q), k), np.int64)
    scores = np.zeros((len(q), k), np.float64)
    for lo in range(0, len(q), CHUNK):
        if task is not None:
            task.check()
        chunk = q[lo:lo + CHUNK]
        s, premises = _scores(unit, chunk, method)
        s = s.astype(np.float64)
        if exclude:
            np.put_along_axis(s, premises, -np.inf, axis=1)
        top = _top(s, k)
        rows[lo:lo + len(chunk)] = top
        scores[lo:lo + len(chunk)] = np.take_along_axis(s, top, axis=1)
    return rows, scores


def query(table: EmbeddingTable, a, a_star, b, method: str = "3cosadd", *, exclude: bool = True, k: int = 10,
          b_star=None) -> list[tuple[str, float]]:
    """The ``k`` best answers to ``a : a* :: b : ?`` as ``[(name, score), ...]``."""
    question = (a, a_star, b) if b_star is None else (a, a_star, b, b_star)
    rows, scores = answer(table, [question], method, exclude=exclude, k=k)
    return [(table.names[r], float(s)) for r, s in zip(rows[0], scores[0]) if np.isfinite(s)]


# ---------------------------------------------------------------------------------------------- relations


@dataclass(frozen=True)
class Relation:
    """Named questions ``(a, a*, b, b*)`` (names); ``pairs`` they were made from, when generated."""

    name: str
    questions: tuple[tuple[str, str, str, str], ...]
    pairs: tuple[tuple[str, str], ...] = ()
    skipped: int = 0  # questions of a file with a word the table lacks


def questions_from_pairs(pairs, *, max_questions: int | None = MAX_QUESTIONS, seed: int = 0) -> list[tuple]:
    """Every ordered question ``(a, a*, b, b*)`` from two different pairs, or ``max_questions`` of them drawn
    without replacement (seeded)."""
    pairs = list(dict.fromkeys(tuple(p) for p in pairs))
    n = len(pairs)
    total = n * (n - 1)
    if total == 0:
        return []
    if max_questions is None or total <= max_questions:
        chosen = [(i, j) for i in range(n) for j in range(n) if i != j]
    else:
        flat = np.random.default_rng(seed).choice(total, size=int(max_questions), replace=False)
        flat.sort()
        i, r = flat // (n - 1), flat % (n - 1)
        chosen = list(zip(i.tolist(), (r + (r >= i)).tolist()))
    return [(*pairs[i], *pairs[j]) for i, j in chosen]


def relations_from_file(path, table: EmbeddingTable | None = None) -> list[Relation]:
    """Relations of a Google-analogy file: ``: relation`` header lines, then ``a a* b b*`` lines (``#``
    comments and blank lines skipped). With ``table``, questions with a word it lacks are skipped (counted)."""
    from lstmviz.analysis.embedding_tables import _read_text

    path = Path(path)
    text = _read_text(path)
    relations: list[Relation] = []
    name, questions, skipped = None, [], 0

    def close() -> None:
        if name is not None:
            relations.append(Relation(name, tuple(questions), skipped=skipped))

    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(":"):
            close()
            name, questions, skipped = line[1:].strip() or f"relation {len(relations) + 1}", [], 0
            continue
        words = line.split()
        if len(words) != 4:
            raise ValueError(f"{path}: line {number} has {len(words)} words; an analogy line is `a a* b b*` (a relation "
                             f"starts with a `: name` line)")
        if name is None:
            raise ValueError(f"{path}: line {number} comes before any `: relation` line; start each relation with one")
        if table is not None and not all(w in table for w in words):
            skipped += 1
            continue
        questions.append(tuple(words))
    close()
    if not relations:
        raise ValueError(f"{path}: no `: relation` line; expected Google-analogy format (`: name`, then `a a* b b*` lines)")
    return relations


_WORD = re.compile(r"^[a-z]+$")


def morphology_pairs(names) -> dict[str, list[tuple[str, str]]]:
    """Suffix pairs found in a vocabulary itself (both words present, lower-case letters, stem of 3+ letters).

    ``plural -s`` (x, xs; x not ending in s), ``past -ed`` (x, xed; x ending in e: x, xd), ``gerund -ing`` (x, xing;
    x ending in e: x, x[:-1]ing), ``adverb -ly`` (x, xly), ``comparative -er`` (x, xer). Surface pairs: some are
    not the inflection they look like (new/news), which the accuracy then counts as it is.
    """
    vocab = {n for n in names if _WORD.match(n)}
    found: dict[str, list[tuple[str, str]]] = {"plural -s": [], "past -ed": [], "gerund -ing": [], "adverb -ly": [],
                                               "comparative -er": []}
    for x in sorted(vocab):
        if len(x) < 3:
            continue
        if not x.endswith("s") and x + "s" in vocab:
            found["plural -s"].append((x, x + "s"))
        past = x + "d" if x.endswith("e") else x + "ed"
        if past in vocab:
            found["past -ed"].append((x, past))
        gerund = x[:-1] + "ing" if x.endswith("e") else x + "ing"
        if gerund in vocab and not x.endswith("ing"):
            found["gerund -ing"].append((x, gerund))
        if x + "ly" in vocab:
            found["adverb -ly"].append((x, x + "ly"))
        if x + "er" in vocab and not x.endswith("er"):
            found["comparative -er"].append((x, x + "er"))
    return {k: v for k, v in found.items() if len(v) >= 2}


def morphology_relations(table: EmbeddingTable, *, max_questions: int | None = MAX_QUESTIONS,
                         seed: int = 0) -> list[Relation]:
    """:func:`morphology_pairs` of the table's names as relations (questions from pairs of pairs)."""
    relations = [Relation(name, tuple(questions_from_pairs(pairs, max_questions=max_questions, seed=seed)), tuple(pairs))
                 for name, pairs in morphology_pairs(table.names).items()]
    if not relations:
        raise ValueError(f"{table.source}: no morphological pairs (x/xs, x/xed, x/xing, x/xly, x/xer, two or more each) "
                         f"among its {len(table):,} names; give a relations file instead")
    return relations


def crossed_relations(table: EmbeddingTable, *, max_questions: int | None = MAX_QUESTIONS,
                      seed: int = 0) -> list[Relation]:
    """Relations from class means over two annotations (:func:`~lstmviz.analysis.embedding_tables.class_means`
    with ``by``): for every two values ``u < v`` of the second annotation, the relation "``by``: u → v" pairs
    ``label|u`` with ``label|v`` for every label present with both."""
    if table.parts is None or table.part_names is None:
        raise ValueError(f"{table.source}: relations from metadata need class means over two annotations (an "
                         f"annotation and a second one to cross it with); this table has no such parts")
    rows: dict[str, dict[str, str]] = {}
    order: list[str] = []
    for name, (label, by) in zip(table.names, table.parts):
        rows.setdefault(by, {})[label] = name
        if by not in order:
            order.append(by)
    relations = []
    for i, u in enumerate(order):
        for v in order[i + 1:]:
            pairs = [(rows[u][x], rows[v][x]) for x in rows[u] if x in rows[v]]
            if len(pairs) >= 2:
                relations.append(Relation(f"{table.part_names[1]}: {u} → {v}",
                                          tuple(questions_from_pairs(pairs, max_questions=max_questions, seed=seed)),
                                          tuple(pairs)))
    if not relations:
        raise ValueError(f"{table.source}: no two values of {table.part_names[1]!r} share two or more labels of "
                         f"{table.part_names[0]!r}, so no relation can be formed")
    return relations


def generate_relations(table: EmbeddingTable, how: str, **options) -> list[Relation]:
    """``how``: ``"morphology"`` (:func:`morphology_relations`) or ``"crossed"`` (:func:`crossed_relations`)."""
    if how == "morphology":
        return morphology_relations(table, **options)
    if how == "crossed":
        return crossed_relations(table, **options)
    raise ValueError(f"unknown relation generator {how!r}; use one of {', '.join(GENERATORS)}")


# ---------------------------------------------------------------------------------------------- evaluation


@dataclass
class AnalogyReport:
    """Accuracy per relation and method, with chance, for one exclusion setting.

    ``correct[relation][method]``: questions answered right; ``questions[relation]``; ``chance[relation]``: the
    mean over questions of 1 / (candidates); ``overall``: over every question of every relation.
    """

    exclude: bool
    methods: tuple[str, ...]
    relations: list[str]
    questions: dict[str, int]
    correct: dict[str, dict[str, int]]
    chance: dict[str, float]
    skipped: dict[str, int] = field(default_factory=dict)
    source: str = ""

    def accuracy(self, relation: str | None, method: str) -> float:
        if relation is None:
            n = sum(self.questions.values())
            return sum(self.correct[r][method] for r in self.relations) / n if n else float("nan")
        n = self.questions[relation]
        return self.correct[relation][method] / n if n else float("nan")

    def overall_chance(self) -> float:
        n = sum(self.questions.values())
        return sum(self.chance[r] * self.questions[r] for r in self.relations) / n if n else float("nan")

    def rows(self) -> list[str]:
        return [*self.relations, "all"]

    def table(self) -> dict:
        """The report as columns (one row per relation, then ``all``) for CSV/NPY export."""
        names = self.rows()
        columns: dict = {"relation": names,
                         "questions": [self.questions[r] for r in self.relations] + [sum(self.questions.values())]}
        for m in self.methods:
            columns[m] = [self.accuracy(r, m) for r in self.relations] + [self.accuracy(None, m)]
        columns["chance"] = [self.chance[r] for r in self.relations] + [self.overall_chance()]
        columns["exclude_premises"] = [bool(self.exclude)] * len(names)
        return columns


def evaluate(table: EmbeddingTable, relations: list[Relation], methods=None, *, exclude: bool = True,
             task=None) -> AnalogyReport:
    """Answer every question of every relation with every method; see :class:`AnalogyReport`."""
    from lstmviz.tasks import Task

    task = task or Task()
    methods = tuple(check_method(m) for m in (methods or METHODS))
    total = sum(len(r.questions) for r in relations) * len(methods)
    done = 0
    report = AnalogyReport(bool(exclude), methods, [], {}, {}, {}, {}, table.source)
    for relation in relations:
        name = relation.name
        while name in report.questions:
            name += "'"
        report.relations.append(name)
        report.skipped[name] = relation.skipped
        q = _as_questions(table, relation.questions) if relation.questions else np.zeros((0, 4), np.int64)
        report.questions[name] = len(q)
        distinct = np.array([len(set(row[:3])) for row in q.tolist()], np.float64)
        candidates = len(table) - (distinct if exclude else 0)
        report.chance[name] = float(np.mean(1.0 / np.maximum(candidates, 1))) if len(q) else float("nan")
        report.correct[name] = {}
        for method in methods:
            rows, _ = answer(table, q, method, exclude=exclude, task=task) if len(q) else (np.zeros((0, 1)), None)
            report.correct[name][method] = int((rows[:, 0] == _target(q, method)).sum()) if len(q) else 0
            done += len(q)
            task.progress(done, total, f"{name}: {METHOD_TITLES[method]}")
    return report


def report_text(report: AnalogyReport) -> str:
    """The report as a fixed-width table (per relation: questions, each method's accuracy in %, chance)."""
    titles = [METHOD_TITLES[m] for m in report.methods]
    width = max(12, *(len(r) for r in report.rows()))
    head = f"{'relation':<{width}} {'n':>6} " + " ".join(f"{t:>{max(8, len(t))}}" for t in titles) + "    chance"
    lines = [f"analogies in {report.source} (premises {'excluded' if report.exclude else 'NOT excluded'})", head]
    for r in report.rows():
        n = sum(report.questions.values()) if r == "all" else report.questions[r]
        cells = " ".join(f"{100 * report.accuracy(None if r == 'all' else r, m):>{max(8, len(t))}.1f}"
                         for m, t in zip(report.methods, titles))
        chance = report.overall_chance() if r == "all" else report.chance[r]
        lines.append(f"{r:<{width}} {n:>6} {cells} {100 * chance:>8.3f}%")
    skipped = sum(report.skipped.values())
    if skipped:
        lines.append(f"note: {skipped} question(s) of the relations file had a word the table lacks and were skipped")
    return "\n".join(lines)


__all__ = ["AnalogyReport", "EPSILON", "GENERATORS", "METHODS", "METHOD_TITLES", "Relation", "answer",
           "crossed_relations", "evaluate", "generate_relations", "morphology_pairs", "morphology_relations",
           "nearest_neighbours", "query", "questions_from_pairs", "relations_from_file", "report_text"]
