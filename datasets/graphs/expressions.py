"""``expressions``: polynomial expression trees in ``x`` and ``y``, classified by equivalence class.

A scalar version of the data of Zaremba, Kurach & Fergus 2014 ("Learning to Discover Efficient
Mathematical Identities", §17 of models_recurrent.md), whose grammar is over Matlab-style matrix
operations; here the grammar is the brief's small scalar one:

* leaves ``x``, ``y``, ``1``; unary ``neg`` (``-u``); binary ``+``, ``-``, ``*`` (``-`` is not
  commutative: the order of a node's children matters).

Every tree with at most ``max_ops`` operator nodes is enumerated (3 ops: 14,133 trees). **Numerical
descriptor** (the paper's): a tree is evaluated on ``N = 64`` random points ``(x_i, y_i)`` drawn
uniformly from ``Z_p`` with ``p = 2^31 - 1`` (a fixed draw, :data:`DESCRIPTOR_SEED`), all arithmetic
mod ``p`` in int64 (values stay below ``p < 2^31``, so a product stays below ``2^62``: no overflow).
Two polynomials of degree ``<= 2^max_ops`` that differ agree on one random point with probability
``<= deg / p`` (Schwartz–Zippel), so equal descriptors mean equal polynomials with overwhelming
probability; trees are grouped into classes by their descriptor.

Classes kept: those with at least ``min_class_size`` trees (so every class has held-out members);
per class at most ``per_class`` trees are drawn (seeded), and each class's trees are split
60 / 20 / 20 into train / valid / test, so a held-out tree is never seen in training but its class is.
A class is named by its cheapest member (fewest operators, then the shortest infix string, then
alphabetical), e.g. ``(x*x)-(y*y)``.

A tree is a graph item: nodes in **pre-order** (node 0 is the root; a node's children follow it, left
child first), edges parent -> child, node names the symbols, stored coordinates a tree layout
(``x`` = in-order rank, ``y`` = minus the depth) so the window's Graph dock draws the tree. Features:
one-hot of the symbol (7 columns, :data:`SYMBOLS`); tokens: the symbol ids. Annotations per node:
``symbol``, ``depth``, ``subtree_size``, ``subtree_class`` (the class of the node's subtree when that is
a kept class, else -1); per graph: ``class``.
"""

from __future__ import annotations

import functools
from typing import Any, Iterator

import numpy as np

from ..base import AnnotationSpec, DatasetError, DatasetSpec, check_int, check_split
from ..graph_base import GraphItem
from .common import SPLITS, GraphListDataset, check_options, freeze, make_geometry

LEAVES = ("x", "y", "1")
UNARY = ("neg",)
BINARY = ("+", "-", "*")
SYMBOLS = LEAVES + UNARY + BINARY
ARITY = {**{s: 0 for s in LEAVES}, **{s: 1 for s in UNARY}, **{s: 2 for s in BINARY}}
PRIME = 2**31 - 1
POINTS = 64
DESCRIPTOR_SEED = 20141201

Tree = tuple  # ("x",) | ("neg", t) | ("+", a, b)


def trees_with_ops(k: int) -> list[Tree]:
    """Every tree with exactly ``k`` operator nodes, in a fixed order."""
    return list(_trees(k))


@functools.lru_cache(maxsize=None)
def _trees(k: int) -> tuple[Tree, ...]:
    if k == 0:
        return tuple((s,) for s in LEAVES)
    out: list[Tree] = [(u, t) for u in UNARY for t in _trees(k - 1)]
    for op in BINARY:
        for i in range(k):
            for a in _trees(i):
                for b in _trees(k - 1 - i):
                    out.append((op, a, b))
    return tuple(out)


def all_trees(max_ops: int) -> Iterator[Tree]:
    for k in range(max_ops + 1):
        yield from _trees(k)


def points(n: int = POINTS, seed: int = DESCRIPTOR_SEED) -> dict[str, np.ndarray]:
    """The evaluation points: int64 ``[n]`` per leaf symbol, in ``0 .. p-1`` (``1`` is the constant)."""
    rng = np.random.default_rng(seed)
    return {"x": rng.integers(0, PRIME, size=n, dtype=np.int64), "y": rng.integers(0, PRIME, size=n, dtype=np.int64),
            "1": np.ones(n, dtype=np.int64)}


def descriptor(tree: Tree, at: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """The tree's values mod ``p`` at the evaluation points (int64 ``[N]``)."""
    at = points() if at is None else at
    op = tree[0]
    if ARITY[op] == 0:
        return at[op] % PRIME
    if op == "neg":
        return (-descriptor(tree[1], at)) % PRIME
    a, b = descriptor(tree[1], at), descriptor(tree[2], at)
    if op == "+":
        return (a + b) % PRIME
    if op == "-":
        return (a - b) % PRIME
    return (a * b) % PRIME  # a, b < 2^31: the product < 2^62 fits int64


def infix(tree: Tree) -> str:
    op = tree[0]
    if ARITY[op] == 0:
        return op
    if op == "neg":
        return f"-{infix(tree[1])}"
    return f"({infix(tree[1])}{op}{infix(tree[2])})"


def name_of(tree: Tree) -> str:
    """Infix without the outermost parentheses."""
    text = infix(tree)
    return text[1:-1] if text.startswith("(") and text.endswith(")") and tree[0] in BINARY else text


def ops_of(tree: Tree) -> int:
    return 0 if ARITY[tree[0]] == 0 else 1 + sum(ops_of(c) for c in tree[1:])


def preorder(tree: Tree) -> tuple[list[str], list[tuple[int, int]], list[int], list[Tree]]:
    """``(symbols, edges parent->child, depths, subtrees)`` with nodes numbered in pre-order."""
    symbols: list[str] = []
    edges: list[tuple[int, int]] = []
    depths: list[int] = []
    subtrees: list[Tree] = []

    def visit(t: Tree, parent: int, depth: int) -> None:
        me = len(symbols)
        symbols.append(t[0])
        depths.append(depth)
        subtrees.append(t)
        if parent >= 0:
            edges.append((parent, me))
        for child in t[1:]:
            visit(child, me, depth + 1)

    visit(tree, -1, 0)
    return symbols, edges, depths, subtrees


def tree_layout(tree: Tree) -> np.ndarray:
    """float ``[n, 2]`` in pre-order: x = in-order rank, y = -depth."""
    symbols, _, depths, _ = preorder(tree)
    xs = np.zeros(len(symbols))
    counter = [0]

    def visit(t: Tree, me: int) -> int:
        """Assign the in-order rank; returns the next pre-order index after this subtree."""
        nxt = me + 1
        children = t[1:]
        if len(children) == 2:
            left = nxt
            nxt = visit(children[0], left)
            xs[me] = counter[0]
            counter[0] += 1
            nxt = visit(children[1], nxt)
        else:
            xs[me] = counter[0]
            counter[0] += 1
            for c in children:
                nxt = visit(c, nxt)
        return nxt

    visit(tree, 0)
    return np.stack([xs, -np.asarray(depths, dtype=np.float64)], axis=1)


def _cost(tree: Tree) -> tuple:
    return (ops_of(tree), len(name_of(tree)), name_of(tree))


@functools.lru_cache(maxsize=4)
def classes_of(max_ops: int) -> tuple[dict[bytes, list[Tree]], dict[bytes, Tree]]:
    """Every tree up to ``max_ops`` grouped by descriptor, and each group's cheapest member."""
    at = points()
    groups: dict[bytes, list[Tree]] = {}
    for tree in all_trees(max_ops):
        groups.setdefault(descriptor(tree, at).tobytes(), []).append(tree)
    return groups, {key: min(members, key=_cost) for key, members in groups.items()}


@functools.lru_cache(maxsize=4)
def generate(max_ops: int, min_class_size: int, per_class: int, seed: int
             ) -> tuple[dict[str, list[GraphItem]], tuple[str, ...]]:
    groups, cheapest = classes_of(max_ops)
    kept = sorted((key for key, members in groups.items() if len(members) >= min_class_size),
                  key=lambda key: _cost(cheapest[key]))
    if len(kept) < 2:
        raise DatasetError(f"only {len(kept)} equivalence classes have at least min_class_size={min_class_size} "
                           f"trees with max_ops={max_ops}; lower min_class_size or raise max_ops")
    class_index = {key: c for c, key in enumerate(kept)}
    names = tuple(name_of(cheapest[key]) for key in kept)
    rng = np.random.default_rng(seed)
    at = points()
    chosen: dict[str, list[tuple[int, Tree]]] = {s: [] for s in SPLITS}
    for key in kept:
        members = groups[key]
        take = rng.permutation(len(members))[:per_class]
        n = len(take)
        n_valid = n_test = max(1, int(round(0.2 * n)))
        parts = {"valid": take[:n_valid], "test": take[n_valid:n_valid + n_test], "train": take[n_valid + n_test:]}
        for split, idx in parts.items():
            chosen[split] += [(class_index[key], members[int(i)]) for i in idx]
    out: dict[str, list[GraphItem]] = {}
    for split in SPLITS:
        order = rng.permutation(len(chosen[split]))
        out[split] = [tree_item(*chosen[split][int(i)], class_index=class_index, at=at) for i in order]
    return out, names


def tree_item(c: int, tree: Tree, *, class_index: dict[bytes, int] | None = None,
              at: dict[str, np.ndarray] | None = None) -> GraphItem:
    """One tree as a graph item (module docstring); ``c`` is its class id."""
    symbols, edges, depths, subtrees = preorder(tree)
    n = len(symbols)
    ids = np.array([SYMBOLS.index(s) for s in symbols], dtype=np.int64)
    features = np.zeros((n, len(SYMBOLS)), dtype=np.float32)
    features[np.arange(n), ids] = 1.0
    geometry = make_geometry(n, np.array(edges, dtype=np.int64).reshape(-1, 2), coordinates=tree_layout(tree),
                             node_names=symbols)
    sizes = np.array([_size(t) for t in subtrees], dtype=np.float32)
    sub = np.full(n, -1, dtype=np.int64)
    if class_index is not None:
        at = points() if at is None else at
        for v, t in enumerate(subtrees):
            sub[v] = class_index.get(descriptor(t, at).tobytes(), -1)
    return GraphItem(
        geometry=geometry, features=features, tokens=ids, graph_target=int(c),
        annotations={
            "symbol": freeze(ids.copy()),
            "depth": freeze(np.asarray(depths, dtype=np.float32)),
            "subtree_size": freeze(sizes),
            "subtree_class": freeze(sub),
        },
        item_annotations={"class": int(c)},
    )


def _size(tree: Tree) -> int:
    return 1 + sum(_size(c) for c in tree[1:])


OPTIONS = {"max_ops": 3, "min_class_size": 12, "per_class": 40, "seed": 0}
SOURCE = ("synthetic: every polynomial expression tree over x, y, 1, neg, +, -, * up to max_ops operators, "
          "classed by its values mod 2^31-1 at 64 random points (Zaremba, Kurach & Fergus 2014, arXiv:1406.1584)")


def build(split: str = "train", **options: Any) -> GraphListDataset:
    """One split of the expression trees (see the module docstring)."""
    check_split("expressions", split, SPLITS)
    check_options("expressions", options, OPTIONS)
    opts = {**OPTIONS, **options}
    max_ops = check_int("max_ops", opts["max_ops"], minimum=1)
    if max_ops > 4:
        raise DatasetError(f"option 'max_ops' is {max_ops}; at most 4 (5 operators give millions of trees)")
    min_size = check_int("min_class_size", opts["min_class_size"], minimum=3)
    per_class = check_int("per_class", opts["per_class"], minimum=3)
    seed = check_int("seed", opts["seed"], minimum=0)
    items, names = generate(max_ops, min_size, per_class, seed)
    specs = [
        AnnotationSpec("symbol", "categorical", labels=SYMBOLS, description="the node's symbol"),
        AnnotationSpec("depth", "numeric", description="the node's depth (the root is 0)"),
        AnnotationSpec("subtree_size", "numeric", description="the number of nodes of the node's subtree"),
        AnnotationSpec("subtree_class", "categorical", labels=names,
                       description="the equivalence class of the node's subtree (-1: not a kept class)"),
        AnnotationSpec("class", "categorical", level="item", labels=names,
                       description="the tree's equivalence class, named by its cheapest member"),
    ]
    effective = {"max_ops": max_ops, "min_class_size": min_size, "per_class": per_class, "seed": seed}
    return GraphListDataset(name="expressions", split=split, items=list(items[split]), vocab=list(SYMBOLS),
                            annotation_specs=specs, options=effective, source=SOURCE, task="graph",
                            num_features=len(SYMBOLS), class_names=names,
                            extra={"prime": PRIME, "points": POINTS, "descriptor_seed": DESCRIPTOR_SEED})


SPEC = DatasetSpec(
    name="expressions",
    description="polynomial expression trees in x, y (+, -, *, neg, 1) labelled by equivalence class "
    "(values mod a prime at random points)",
    build=build,
    splits=SPLITS,
    options=dict(OPTIONS),
    annotations=("symbol", "depth", "subtree_size", "subtree_class", "class"),
    source=SOURCE,
)
