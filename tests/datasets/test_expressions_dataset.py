"""The ``expressions`` dataset (datasets/graphs/expressions.py): mod-p descriptors, classes, tree items."""

from __future__ import annotations

import numpy as np
import pytest

from lstmviz.datasets.base import DatasetError
from lstmviz.datasets.graphs import expressions as E

X, Y, ONE = ("x",), ("y",), ("1",)


def add(a, b):
    return ("+", a, b)


def sub(a, b):
    return ("-", a, b)


def mul(a, b):
    return ("*", a, b)


def test_descriptor_equal_for_equivalent_and_different_otherwise():
    """(x+y)(x-y) and x*x-y*y are the same polynomial; x*x+y*y and y*y-x*x are not."""
    a = E.descriptor(mul(add(X, Y), sub(X, Y)))
    b = E.descriptor(sub(mul(X, X), mul(Y, Y)))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, E.descriptor(add(mul(X, X), mul(Y, Y))))
    assert not np.array_equal(a, E.descriptor(sub(mul(Y, Y), mul(X, X))))  # '-' is not commutative
    assert np.array_equal(E.descriptor(("neg", sub(X, Y))), E.descriptor(sub(Y, X)))
    assert not np.array_equal(E.descriptor(sub(X, Y)), E.descriptor(sub(Y, X)))


def test_descriptor_equals_exact_integer_arithmetic_mod_p():
    """int64 evaluation never overflows: it matches Python big-int evaluation mod p on deep products."""
    at = E.points()

    def exact(tree, i):
        op = tree[0]
        if op in E.LEAVES:
            return int(at[op][i])
        if op == "neg":
            return -exact(tree[1], i)
        a, b = exact(tree[1], i), exact(tree[2], i)
        return a + b if op == "+" else a - b if op == "-" else a * b

    x4 = mul(mul(X, X), mul(X, X))
    tree = sub(mul(x4, mul(Y, x4)), ("neg", add(x4, Y)))
    got = E.descriptor(tree, at)
    assert got.dtype == np.int64 and (got >= 0).all() and (got < E.PRIME).all()
    assert got.tolist() == [exact(tree, i) % E.PRIME for i in range(E.POINTS)]


def test_enumeration_counts():
    # T(0)=3, T(k) = T(k-1) (neg) + 3 * sum_{i+j=k-1} T(i) T(j)
    assert [len(E.trees_with_ops(k)) for k in range(4)] == [3, 30, 570, 13530]


def test_splits_are_disjoint_and_labels_are_the_descriptor_classes():
    at = E.points()
    seen: dict[str, str] = {}
    by_class: dict[int, bytes] = {}
    splits = {s: E.build(s, max_ops=2, min_class_size=5) for s in E.SPLITS}
    names = splits["train"].class_names
    for split, data in splits.items():
        assert data.class_names == names and data.task == "graph" and data.num_features == len(E.SYMBOLS)
        assert {int(it.graph_target) for it in data} == set(range(len(names)))  # every class in every split
        for it in data:
            g = it.geometry
            symbols = list(g.node_names)
            tree = _rebuild(symbols, g.edges)
            key = E.name_of(tree)
            assert seen.setdefault(key, split) == split, f"{key} in {seen[key]} and {split}"
            d = E.descriptor(tree, at).tobytes()
            assert by_class.setdefault(int(it.graph_target), d) == d
            assert np.array_equal(it.tokens, [E.SYMBOLS.index(s) for s in symbols])
            assert np.array_equal(it.features.argmax(1), it.tokens)
            assert it.annotations["subtree_class"][0] == it.graph_target
    # a class is named by a member: its name's tree has the class's descriptor
    for c, name in enumerate(names):
        tree = next(t for t in E.all_trees(2) if E.name_of(t) == name)
        assert E.descriptor(tree, at).tobytes() == by_class[c]


def _rebuild(symbols, edges):
    """The tree from pre-order node names and parent -> child edges (children in node order)."""
    children = {v: [] for v in range(len(symbols))}
    for a, b in np.asarray(edges).reshape(-1, 2):
        assert a < b  # parent before child: pre-order
        children[int(a)].append(int(b))

    def make(v):
        return (symbols[v], *(make(c) for c in sorted(children[v])))

    return make(0)


def test_tree_item_layout_is_a_tree_drawing():
    item = E.tree_item(0, sub(mul(X, Y), ONE))
    assert list(item.geometry.node_names) == ["-", "*", "x", "y", "1"]
    coords = np.asarray(item.geometry.coordinates)
    assert coords[:, 1].tolist() == [0, -1, -2, -2, -1]  # minus the depth
    assert coords[:, 0].tolist() == [3, 1, 0, 2, 4]  # in-order rank: x * y - 1


def test_bad_options_are_refused():
    with pytest.raises(DatasetError, match="max_ops"):
        E.build("train", max_ops=5)
    with pytest.raises(DatasetError):
        E.build("train", max_ops=1, min_class_size=1000)


def test_registered_and_annotations_match_their_specs():
    import json

    from lstmviz.datasets import load_dataset, registry

    spec = registry.get("expressions")
    ds = load_dataset("expressions", "valid", max_ops=2, min_class_size=5)
    assert {s.name for s in ds.annotation_specs} == set(spec.annotations)
    specs = {s.name: s for s in ds.annotation_specs}
    for item in ds:
        for key, values in item.annotations.items():
            s = specs[key]
            assert s.level == "position" and values.shape == (len(item),)
            if s.kind == "categorical":
                assert values.dtype.kind == "i" and ((values >= -1) & (values < len(s.labels))).all()
            else:
                assert values.dtype.kind == "f"
        assert 0 <= item.item_annotations["class"] < len(specs["class"].labels)
    prov = json.loads(json.dumps(ds.provenance()))
    assert prov["name"] == "expressions" and prov["prime"] == E.PRIME and prov["classes"] == list(ds.class_names)
