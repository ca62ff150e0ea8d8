"""The graph datasets (datasets/graphs): sizes, splits, determinism, annotations, geometry, bad options."""

import networkx as nx
import numpy as np
import pytest

from lstmviz.datasets import DatasetError, load_dataset, registry
from lstmviz.datasets.graph_base import GraphDataset, GraphItem
from lstmviz.geometry import GraphGeometry

SOCIAL = {"karate": nx.karate_club_graph, "lesmis": nx.les_miserables_graph,
          "florentine": nx.florentine_families_graph}


def _splits(name, **options):
    return {s: load_dataset(name, s, **options) for s in ("train", "valid", "test")}


def _check_annotations(ds: GraphDataset, item: GraphItem):
    n = len(item)
    assert {s.name for s in ds.annotation_specs if s.level == "position"} == set(item.annotations)
    for spec in ds.annotation_specs:
        if spec.level == "item":
            value = item.item_annotations[spec.name]
            assert 0 <= value < len(spec.labels)
            continue
        values = item.annotations[spec.name]
        assert values.shape == (n,), spec.name
        if spec.kind == "categorical":
            assert values.dtype == np.int64
            assert values.min() >= -1 and values.max() < len(spec.labels), spec.name
        else:
            finite = values[np.isfinite(values)]
            assert finite.min() >= 0


def _check_geometry(item: GraphItem):
    g = item.geometry
    assert isinstance(g, GraphGeometry) and g.num_nodes == len(item.tokens) == len(item.features)
    assert g.edges.dtype == np.int64 and g.edges.min() >= 0 and g.edges.max() < g.num_nodes
    assert item.features.dtype == np.float32 and item.tokens.dtype == np.int64


def _nx_wl(G):
    """networkx's own hashes on the unlabelled graph, two refinements after the degree.

    Without node attributes networkx (>= 3.5) counts the degree as the first iteration (hash list
    entry 0), so two aggregation steps from the degree are entry 2 of ``iterations=3``.
    """
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        h = nx.weisfeiler_lehman_subgraph_hashes(G, iterations=3)
    return [h[v][2] for v in G.nodes]


def _check_wl_matches(ids: np.ndarray, hashes: list[str]):
    """ids and hashes are the same partition, and ids are numbered in first-seen order."""
    pairs = set(zip(ids.tolist(), hashes))
    assert len(pairs) == len(set(ids.tolist())) == len(set(hashes))
    first_seen = list(dict.fromkeys(ids.tolist()))
    assert first_seen == sorted(first_seen)


# --- karate, lesmis, florentine ------------------------------------------------------------------------

def test_karate_sizes_targets_and_tokens():
    splits = _splits("karate")
    G = nx.karate_club_graph()
    club = np.array([["Mr. Hi", "Officer"].index(G.nodes[v]["club"]) for v in G.nodes])
    for split, ds in splits.items():
        assert ds.task == "node" and len(ds) == 1 and ds.class_names == ("Mr. Hi", "Officer")
        item = ds[0]
        assert len(item) == 34 and len(item.geometry.edges) == 78
        assert ds.vocab == [str(v) for v in G.nodes] and item.tokens.tolist() == list(range(34))
        assert list(item.geometry.node_names) == ds.vocab
        np.testing.assert_array_equal(item.features, np.eye(34, dtype=np.float32))
        assert ds.num_features == 34
        labelled = item.node_target >= 0
        np.testing.assert_array_equal(item.node_target[labelled], club[labelled])
        np.testing.assert_array_equal(item.annotations["community"], club)
        _check_annotations(ds, item)
        _check_geometry(item)
    train = splits["train"][0].node_target
    assert np.bincount(train[train >= 0]).tolist() == [2, 2]


@pytest.mark.parametrize("name", sorted(SOCIAL))
def test_social_splits_are_disjoint_and_cover_the_graph(name):
    splits = _splits(name)
    masks = np.stack([ds[0].node_target >= 0 for ds in splits.values()])
    assert (masks.sum(axis=0) == 1).all()
    split_annotation = splits["train"][0].annotations["split"]
    np.testing.assert_array_equal(split_annotation, masks.argmax(axis=0))
    # the same graph (edges, features) in every split
    for ds in splits.values():
        np.testing.assert_array_equal(ds[0].geometry.edges, splits["train"][0].geometry.edges)
    assert splits["train"][0].geometry.num_nodes == SOCIAL[name]().number_of_nodes()


@pytest.mark.parametrize("name", sorted(SOCIAL))
def test_social_determinism_by_seed(name):
    a = load_dataset(name, "train", seed=3)[0]
    b = load_dataset(name, "train", seed=3)[0]
    c = load_dataset(name, "train", seed=4)[0]
    np.testing.assert_array_equal(a.node_target, b.node_target)
    for key in a.annotations:
        np.testing.assert_array_equal(a.annotations[key], b.annotations[key])
    assert not np.array_equal(a.node_target, c.node_target)


@pytest.mark.parametrize("name", sorted(SOCIAL))
def test_social_wl_labels_agree_with_networkx(name):
    ds = load_dataset(name)
    ids = ds[0].annotations["wl"]
    hashes = _nx_wl(SOCIAL[name]())
    _check_wl_matches(ids, hashes)
    assert len(ds.annotation_spec("wl").labels) == len(set(hashes))
    assert [ds.wl_hashes[i] for i in ids] == hashes


@pytest.mark.parametrize("name", sorted(SOCIAL))
def test_social_hops_and_degree_match_networkx(name):
    G = SOCIAL[name]()
    nodes = list(G.nodes)
    root = 5
    item = load_dataset(name, hop_root=root)[0]
    lengths = nx.single_source_shortest_path_length(G, nodes[root])
    np.testing.assert_array_equal(item.annotations["hops"], [lengths[v] for v in nodes])
    spec = load_dataset(name).annotation_spec("degree")
    labels = [spec.labels[b] for b in item.annotations["degree"]]
    for v, label in zip(nodes, labels):
        d = G.degree(v)
        lo, _, hi = label.partition("-")
        assert (int(lo) <= d <= int(hi)) if hi else (d >= int(lo.rstrip("+")) if "+" in lo else d == int(lo))


def test_communities_of_lesmis_are_networkx_greedy_modularity_by_size():
    G = nx.les_miserables_graph()
    item = load_dataset("lesmis")[0]
    found = nx.community.greedy_modularity_communities(G, weight="weight")
    nodes = list(G.nodes)
    got = [{nodes[i] for i in np.flatnonzero(item.annotations["community"] == c)}
           for c in range(item.annotations["community"].max() + 1)]
    assert sorted(map(frozenset, got), key=len) == sorted(map(frozenset, found), key=len)
    assert [len(g) for g in got] == sorted((len(g) for g in got), reverse=True)
    louvain = load_dataset("lesmis", community="louvain", seed=1)
    assert louvain.options["community"] == "louvain"
    assert louvain[0].annotations["community"].min() == 0


def test_spectral_features_are_laplacian_eigenvectors_plus_degree():
    ds = load_dataset("karate", features="spectral", spectral_k=3)
    x = ds[0].features.astype(np.float64)
    assert x.shape == (34, 4) and ds.num_features == 4 and ds.options["features"] == "spectral"
    L = nx.normalized_laplacian_matrix(nx.karate_club_graph(), weight=None).toarray()
    lam = np.linalg.eigvalsh(L)
    for j in range(3):
        u = x[:, j]
        np.testing.assert_allclose(L @ u, lam[j + 1] * u, atol=1e-5)
        assert u[np.abs(u).argmax()] > 0
    degree = np.array([d for _, d in nx.karate_club_graph().degree()])
    np.testing.assert_allclose(x[:, 3], degree / degree.max(), rtol=1e-6)


def test_weighted_option_keeps_networkx_weights():
    G = nx.karate_club_graph()
    g = load_dataset("karate", weighted=True)[0].geometry
    assert load_dataset("karate")[0].geometry.weights is None
    expected = [G.edges[a, b]["weight"] for a, b in g.edges.tolist()]
    np.testing.assert_array_equal(g.weights, expected)


@pytest.mark.parametrize("options, text", [
    ({"hop_root": 34}, "hop_root.*34.*0 .. 33"),
    ({"features": "random"}, "features.*onehot.*spectral"),
    ({"spectral_k": 40, "features": "spectral"}, "spectral_k.*at most 33"),
    ({"labelled_per_class": 0}, "labelled_per_class"),
    ({"weighted": "yes"}, "weighted.*True or False"),
    ({"seed": -1}, "seed"),
])
def test_bad_social_options_are_one_sentence(options, text):
    with pytest.raises(DatasetError, match=text):
        load_dataset("karate", **options)


def test_bad_community_option_and_unknown_option():
    with pytest.raises(DatasetError, match="community.*greedy.*louvain"):
        load_dataset("lesmis", community="spectral")
    with pytest.raises(DatasetError, match="no option 'colour'"):
        registry.get("florentine").build(split="train", colour=1)


def test_registry_lists_the_graph_datasets():
    for name in SOCIAL:
        spec = registry.get(name)
        assert spec.splits == ("train", "valid", "test") and spec.source and spec.description
        ds = load_dataset(name)
        assert {s.name for s in ds.annotation_specs} == set(spec.annotations)
        prov = ds.provenance()
        assert prov["task"] == "node" and prov["options"]["features"] == "onehot"
