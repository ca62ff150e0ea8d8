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


# --- graph-families -------------------------------------------------------------------------------------

SMALL_FAMILIES = {"graphs_per_class": 10}


@pytest.mark.parametrize("families, classes", [
    ("sbm", ("sbm-2", "sbm-3")),
    ("ws-ba", ("watts-strogatz", "barabasi-albert")),
    ("all", ("sbm-2", "sbm-3", "watts-strogatz", "barabasi-albert")),
])
def test_families_sizes_splits_and_classes(families, classes):
    splits = _splits("graph-families", families=families, **SMALL_FAMILIES)
    assert [len(ds) for ds in splits.values()] == [6 * len(classes), 2 * len(classes), 2 * len(classes)]
    seen = set()
    for ds in splits.values():
        assert ds.task == "graph" and ds.class_names == classes and ds.num_features == 7
        assert ds.vocab == ["d0", "d1", "d2", "d3", "d4", "d5+"]
        counts = np.bincount([item.graph_target for item in ds], minlength=len(classes))
        assert (counts == counts[0]).all()
        for item in ds:
            assert 15 <= len(item) <= 30
            assert item.item_annotations["class"] == item.graph_target
            np.testing.assert_array_equal(item.annotations["graph_class"], item.graph_target)
            _check_annotations(ds, item)
            _check_geometry(item)
            # features: one-hot capped degree + a constant; tokens: the capped degree
            degree = np.bincount(item.geometry.edges.ravel(), minlength=len(item))
            np.testing.assert_array_equal(item.tokens, np.minimum(degree, 5))
            np.testing.assert_array_equal(item.features[:, :6].argmax(axis=1), item.tokens)
            np.testing.assert_array_equal(item.features.sum(axis=1), 2.0)
            seen.add(item.geometry.edges.tobytes())
    assert len(seen) == 10 * len(classes)  # disjoint splits: no graph twice


def test_families_sbm_blocks_and_matched_density():
    ds = load_dataset("graph-families", families="sbm", graphs_per_class=20)
    mean_degree = {0: [], 1: []}
    for item in ds:
        blocks = item.annotations["community"]
        assert blocks.min() == 0 and blocks.max() == item.graph_target + 1  # 2 or 3 blocks
        assert np.ptp(np.bincount(blocks)) <= 1
        mean_degree[item.graph_target].append(2 * len(item.geometry.edges) / len(item))
    assert abs(np.mean(mean_degree[0]) - np.mean(mean_degree[1])) < 1.0
    for item in load_dataset("graph-families", families="ws-ba", graphs_per_class=5):
        assert (item.annotations["community"] == -1).all()


def test_families_determinism_by_seed():
    a = load_dataset("graph-families", "valid", seed=5, **SMALL_FAMILIES)
    b = load_dataset("graph-families", "valid", seed=5, **SMALL_FAMILIES)
    c = load_dataset("graph-families", "valid", seed=6, **SMALL_FAMILIES)
    assert [x.geometry.edges.tobytes() for x in a] == [x.geometry.edges.tobytes() for x in b]
    assert [x.geometry.edges.tobytes() for x in a] != [x.geometry.edges.tobytes() for x in c]


def test_families_wl_labels_agree_with_networkx_over_all_splits():
    splits = _splits("graph-families", families="all", graphs_per_class=5)
    ids, hashes = [], []
    for ds in splits.values():  # first-seen order runs over train, valid, test
        for item in ds:
            G = nx.Graph()
            G.add_nodes_from(range(len(item)))
            G.add_edges_from(item.geometry.edges.tolist())
            ids.append(item.annotations["wl"])
            hashes += _nx_wl(G)
    _check_wl_matches(np.concatenate(ids), hashes)
    assert len(splits["test"].annotation_spec("wl").labels) == len(set(hashes))
    assert splits["train"].annotation_spec("wl") == splits["test"].annotation_spec("wl")


def test_families_accept_disconnected_and_refuse_empty_graphs(monkeypatch):
    from lstmviz.datasets.graphs import families

    def two_parts(n, seed):  # two components and an isolated node
        G = nx.disjoint_union(nx.path_graph(n // 2), nx.cycle_graph(n - n // 2 - 1))
        G.add_node(n - 1)
        return G

    monkeypatch.setitem(families.GENERATORS, "sbm-2", two_parts)
    families.generate.cache_clear()
    try:
        ds = load_dataset("graph-families", graphs_per_class=3, seed=11)
        item = next(x for x in ds if x.graph_target == 0)
        h = item.annotations["hops"]
        assert np.isnan(h[len(item) // 2:]).all() and np.isfinite(h[:len(item) // 2]).all()
        assert item.annotations["degree"][-1] == 0
        monkeypatch.setitem(families.GENERATORS, "sbm-2", lambda n, seed: nx.empty_graph(0))
        families.generate.cache_clear()
        with pytest.raises(DatasetError, match="sbm-2 generator gave a graph with no nodes"):
            load_dataset("graph-families", graphs_per_class=3, seed=11)
    finally:
        families.generate.cache_clear()


@pytest.mark.parametrize("options, text", [
    ({"families": "er"}, "families.*sbm.*ws-ba.*all"),
    ({"graphs_per_class": 2}, "graphs_per_class.*>= 3"),
    ({"min_nodes": 3}, "min_nodes.*>= 6"),
    ({"min_nodes": 20, "max_nodes": 18}, "max_nodes.*at least.*min_nodes"),
    ({"hop_root": 15}, "hop_root.*min_nodes=15"),
    ({"degree_cap": 0}, "degree_cap"),
])
def test_bad_family_options_are_one_sentence(options, text):
    with pytest.raises(DatasetError, match=text):
        load_dataset("graph-families", **options)


# --- digits-graph ---------------------------------------------------------------------------------------

def test_digits_graph_is_the_pixel_knn_graph():
    ds = load_dataset("digits-graph", "test", max_images=20)
    assert len(ds) == 20 and ds.task == "graph" and ds.num_features == 1 and ds.num_classes == 10
    g = ds[0].geometry
    assert g.num_nodes == 64
    # coordinates: pixel p = 8 y + x drawn at (x, -y)
    y, x = np.divmod(np.arange(64), 8)
    np.testing.assert_array_equal(g.coordinates, np.column_stack([x, -y]))
    # the union of k-NN relations (k = 8): every pixel is linked to all pixels strictly nearer than its
    # 8th neighbour, and an edge exists only where one end is within the other's 8th-neighbour distance
    adjacency = g.adjacency().toarray() > 0
    assert (adjacency.sum(axis=1) >= 8).all() and not adjacency.diagonal().any()
    xy = np.column_stack([x, y]).astype(float)
    dist = np.linalg.norm(xy[:, None] - xy[None], axis=-1)
    kth = np.sort(dist + np.diag(np.full(64, np.inf)), axis=1)[:, 7]
    near = (dist < kth[:, None]) & ~np.eye(64, dtype=bool)
    assert adjacency[near].all()
    within = dist <= kth[:, None]
    assert not (adjacency & ~(within | within.T)).any()
    for p in range(64):  # an interior pixel's own 8 nearest are its 8-neighbourhood ring
        ring = {q for q in range(64) if max(abs(x[q] - x[p]), abs(y[q] - y[p])) == 1}
        if 0 < x[p] < 7 and 0 < y[p] < 7:
            assert ring <= set(np.flatnonzero(adjacency[p]).tolist())
        if 2 < x[p] < 5 and 2 < y[p] < 5:  # the centre: nothing else chose it
            assert set(np.flatnonzero(adjacency[p]).tolist()) == ring
    # Gaussian weights of the coordinate distance, sigma = mean distance to the 8th neighbour
    sigma = kth.mean()
    a, b = g.edges.T
    np.testing.assert_allclose(g.weights, np.exp(-dist[a, b] ** 2 / sigma**2), rtol=1e-6)
    # the same graph for every image
    assert all(item.geometry is g for item in ds)


def test_digits_items_are_the_sklearn_images():
    from sklearn.datasets import load_digits

    digits = load_digits()
    ds = load_dataset("digits-graph", "valid", max_images=15)
    for item in ds:
        intensity = item.annotations["intensity"]
        matches = np.flatnonzero((digits.data == intensity).all(axis=1) & (digits.target == item.graph_target))
        assert len(matches) >= 1
        np.testing.assert_allclose(item.features[:, 0], intensity / 16, rtol=1e-6)
        assert item.item_annotations["class"] == item.graph_target
        np.testing.assert_array_equal(item.tokens, np.digitize(intensity, [1, 5, 9, 13]))
        _check_annotations(ds, item)
        _check_geometry(item)


def test_digits_splits_are_disjoint_and_seeded():
    full = {s: registry.get("digits-graph").build(split=s) for s in ("train", "valid", "test")}
    sizes = [len(ds) for ds in full.values()]
    assert sum(sizes) == 1797 and sizes == [1078, 359, 360]
    keys = [{(item.annotations["intensity"].tobytes(), item.graph_target) for item in ds} for ds in full.values()]
    # sklearn's digits hold a few duplicate images; disjoint index sets leave almost no shared images
    assert len(keys[0] & keys[1]) + len(keys[0] & keys[2]) + len(keys[1] & keys[2]) < 10
    a = load_dataset("digits-graph", "train", max_images=5, seed=1)
    b = load_dataset("digits-graph", "train", max_images=5, seed=1)
    c = load_dataset("digits-graph", "train", max_images=5, seed=2)
    assert [x.annotations["intensity"].tobytes() for x in a] == [x.annotations["intensity"].tobytes() for x in b]
    assert [x.annotations["intensity"].tobytes() for x in a] != [x.annotations["intensity"].tobytes() for x in c]


def test_digits_wl_and_hops_match_networkx():
    item = load_dataset("digits-graph", max_images=1, hop_root=27)[0]
    G = nx.Graph()
    G.add_nodes_from(range(64))
    G.add_edges_from(item.geometry.edges.tolist())
    _check_wl_matches(item.annotations["wl"], _nx_wl(G))
    lengths = nx.single_source_shortest_path_length(G, 27)
    np.testing.assert_array_equal(item.annotations["hops"], [lengths[v] for v in range(64)])


@pytest.mark.parametrize("options, text", [
    ({"hop_root": 64}, "hop_root.*64.*0 .. 63"),
    ({"k": 64}, "k.*choose k < 64"),
    ({"max_images": 0}, "max_images"),
])
def test_bad_digit_options_are_one_sentence(options, text):
    with pytest.raises(DatasetError, match=text):
        load_dataset("digits-graph", **options)
