"""Recording format v3: position geometry written, validated and read back (docs/format.md, "Position geometry")."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from lstmviz.geometry import AxisGeometry, GeometryError, GraphGeometry, ImageGeometry, SetGeometry
from lstmviz.recording import FORMAT_VERSION, RecordingError, RecordingWriter, open_recording
from lstmviz.recording import format as fmt

# two graphs: item 0 has a self-loop (2 -> 2) and an isolated node (3); item 1 is a path 0 - 1 - 2
EDGES = [np.array([[0, 1], [1, 2], [2, 2]]), np.array([[0, 1], [1, 2]])]
NODES = [4, 3]
POOL = [np.array([0, 0, 1, -1]), np.array([0, 0, 0])]  # item 0: node 3 pools nowhere
COARSE = [2, 1]
FILLER = [np.array([False, True]), None]  # item 0's coarse node 1 is filler; item 1 gives none


def _graph_states(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3)).astype(np.float32)


def _write_graphs(path, *, weights: bool = True, names: bool = True) -> dict:
    """A graph main axis, a pooled axis with pooling maps and filler, and a scalar axis."""
    truth = {"h": [], "p": [], "g": []}
    with RecordingWriter(path, provenance={"engine": "test"}) as w:
        w.set_geometry("positions", "graph")
        w.add_axis("level1", description="pooled", geometry=AxisGeometry("graph", pooled_from="positions"))
        w.add_axis("graph", geometry="scalar")
        w.add_tap("h", 3)
        w.add_tap("p", 3, axis="level1")
        w.add_tap("g", 3, axis="graph")
        for i, (n, edges) in enumerate(zip(NODES, EDGES)):
            coords = np.arange(2 * n, dtype=float).reshape(n, 2) + 10 * i
            g = GraphGeometry.from_edges(
                n, edges, weights=np.arange(1, len(edges) + 1) / 4 if weights else None, coordinates=coords,
                node_names=[f"n{i}.{k}" for k in range(n)] if names else None)
            c = GraphGeometry.from_edges(COARSE[i], [[0, 1]] if COARSE[i] == 2 else [], pooling_map=POOL[i],
                                         filler=FILLER[i], finer_nodes=n)
            states = {"h": _graph_states(n, i), "p": _graph_states(COARSE[i], 10 + i), "g": _graph_states(1, 20 + i)}
            for k, v in states.items():
                truth[k].append(v)
            w.append_item(np.arange(n), states, geometry={"positions": g, "level1": c})
    return truth


@pytest.fixture
def graphs(tmp_path):
    path = tmp_path / "graphs.h5"
    truth = _write_graphs(path)
    return path, truth


def test_graph_round_trip(graphs):
    path, truth = graphs
    with open_recording(path) as rec:
        assert rec.format_version == FORMAT_VERSION == 3
        assert list(rec.axes) == ["positions", "graph", "level1"] and rec.axes["level1"] == "pooled"
        assert rec.axis_geometry() == AxisGeometry("graph")
        assert rec.axis_geometry("level1") == AxisGeometry("graph", pooled_from="positions")
        assert rec.axis_geometry("graph").kind == "scalar"
        assert rec.item_offsets.tolist() == [0, 4, 7] and rec.axis_offsets("level1").tolist() == [0, 2, 3]
        for i in range(2):
            g = rec.item_geometry(i)
            assert isinstance(g, GraphGeometry) and g.num_nodes == NODES[i]
            assert g.edges.dtype == np.int64 and g.edges.tolist() == EDGES[i].tolist()
            assert g.weights.tolist() == (np.arange(1, len(EDGES[i]) + 1) / 4).tolist()
            assert g.coordinates.tolist() == (np.arange(2 * NODES[i]).reshape(-1, 2) + 10 * i).tolist()
            assert g.node_names == tuple(f"n{i}.{k}" for k in range(NODES[i]))
            assert g.filler is None and g.pooling_map is None
            c = rec.item_geometry(i, "level1")
            assert c.num_nodes == COARSE[i] and c.pooling_map.tolist() == POOL[i].tolist()
            assert c.filler.tolist() == ([False, True] if i == 0 else [False])  # padded for the item without
            assert rec.item_geometry(i, "graph") is None
            assert np.array_equal(rec.item_states("h", i), truth["h"][i])
            assert np.array_equal(rec.item_states("p", i), truth["p"][i])
            assert np.array_equal(rec.item_states("g", i), truth["g"][i])
        edges, offsets = rec.graph_edges()
        assert offsets.tolist() == [0, 3, 5]
        assert edges.tolist() == [[0, 1], [1, 2], [2, 2], [4, 5], [5, 6]]  # absolute rows
        assert rec.graph_edges("level1")[0].tolist() == [[0, 1]]
        assert rec.filler("level1").tolist() == [False, True, False]
        assert rec.filler().tolist() == [False] * 7 and rec.filler("graph").tolist() == [False, False]
        assert rec.pooling_map("level1").tolist() == [0, 0, 1, -1, 2, 2, 2]


def test_storage_is_as_documented(graphs):
    path, _ = graphs
    with h5py.File(path, "r") as f:
        main, pooled = f["axes/positions"], f["axes/level1"]
        assert main.attrs["geometry"] == "graph" and main.attrs["pooled_from"] == "" and main.attrs["directed"] == 0
        assert pooled.attrs["pooled_from"] == "positions" and f["axes/graph"].attrs["geometry"] == "scalar"
        assert main["edge_offsets"].dtype == np.int64 and main["edge_offsets"][()].tolist() == [0, 3, 5]
        assert main["edges"].dtype == np.int32 and main["edges"][()].tolist() == [[0, 1], [1, 2], [2, 2], [0, 1], [1, 2]]
        assert main["edge_weights"].dtype == np.float32 and main["coordinates"].shape == (7, 2)
        assert main["node_names"].asstr()[()].tolist()[4] == "n1.0"
        assert pooled["pooling_map"].dtype == np.int32 and pooled["pooling_map"][()].tolist() == [0, 0, 1, -1, 0, 0, 0]
        assert pooled["filler"].dtype == np.uint8 and pooled["filler"][()].tolist() == [0, 1, 0]
        assert "pooling_map" not in main and "filler" not in main and "edges" not in f["axes/graph"]
        for name in ("edge_offsets", "edges", "edge_weights", "coordinates", "node_names"):
            assert "crc32" in main[name].attrs, name
        assert "crc32" in pooled["pooling_map"].attrs and "crc32" in pooled["filler"].attrs


def _write_image_and_set(path) -> None:
    with RecordingWriter(path) as w:
        w.add_axis("map", geometry=AxisGeometry("image", stride=2, receptive_field=(3, 5), offset=(0.5, 1.5)))
        w.add_axis("modality", geometry=AxisGeometry("set", members=("audio", "video", "text")))
        w.add_tap("h", 2)
        w.add_tap("m", 1, axis="map")
        w.add_tap("s", 1, axis="modality")
        for i, (hh, ww, member) in enumerate([(2, 3, [0, 2]), (1, 2, [1, 1, 0])]):
            w.append_item([0, 1], {"h": np.zeros((2, 2)), "m": np.arange(hh * ww)[:, None], "s": np.zeros((len(member), 1))},
                          geometry={"map": ImageGeometry(hh, ww), "modality": SetGeometry.of(member, ("audio", "video", "text"))})


def test_image_and_set_round_trip(tmp_path):
    path = tmp_path / "img.h5"
    _write_image_and_set(path)
    with open_recording(path) as rec:
        assert rec.axis_geometry("positions").kind == "tokens" and rec.item_geometry(0) is None
        g = rec.axis_geometry("map")
        assert (g.kind, g.stride, g.receptive_field, g.offset) == ("image", (2, 2), (3, 5), (0.5, 1.5))
        assert rec.item_geometry(0, "map") == ImageGeometry(2, 3) and rec.item_geometry(1, "map") == ImageGeometry(1, 2)
        assert rec.axis_geometry("modality").members == ("audio", "video", "text")
        assert rec.item_geometry(1, "modality").member.tolist() == [1, 1, 0]
        assert rec.item_states("m", 0)[:, 0].tolist() == list(range(6))
        with pytest.raises(RecordingError, match="'map' is a image axis, not a graph"):
            rec.graph_edges("map")
        with pytest.raises(RecordingError, match="has no axis 'nope'"):
            rec.axis_geometry("nope")


def test_a_v2_recording_has_tokens_geometry_everywhere():
    from pathlib import Path

    v2 = Path(__file__).resolve().parents[1] / "data" / "recording_v2.h5"
    with open_recording(v2) as rec:
        assert rec.format_version == 2
        assert [rec.axis_geometry(a).kind for a in rec.axes] == ["tokens", "tokens"]
        assert rec.item_geometry(0) is None and rec.filler("half").tolist() == [False] * 8
        with pytest.raises(RecordingError, match="not a graph"):
            rec.graph_edges()


# --- the writer refuses, naming the item and axis, and stores nothing --------------------------------------


def _graph_writer(path) -> RecordingWriter:
    w = RecordingWriter(path)
    w.set_geometry("positions", "graph")
    w.add_axis("level1", geometry=AxisGeometry("graph", pooled_from="positions"))
    w.add_tap("h", 1)
    w.add_tap("p", 1, axis="level1")
    return w


def _good(n=3):
    return {"positions": GraphGeometry.from_edges(n, [[0, 1]]),
            "level1": GraphGeometry.from_edges(1, [], pooling_map=[0] * n)}


REFUSED = [
    ("missing", lambda g: {"positions": g["positions"]}, "item 1, axis 'level1': every item needs its graph geometry"),
    ("wrong type", lambda g: {**g, "positions": ImageGeometry(1, 3)}, "needs a GraphGeometry, got ImageGeometry"),
    ("node count", lambda g: {**g, "positions": GraphGeometry.from_edges(4, [])}, "a graph of 4 nodes, but the item has 3 rows"),
    ("edge outside", lambda g: {**g, "positions": GraphGeometry(3, np.array([[0, 3]]))}, r"edge 0 \(0 -> 3\) points outside"),
    ("no pooling map", lambda g: {**g, "level1": GraphGeometry.from_edges(1, [])}, "every item needs a pooling map"),
    ("pool length", lambda g: {**g, "level1": GraphGeometry.from_edges(1, [], pooling_map=[0, 0])},
     "the pooling map has 2 entries for the item's 3 nodes"),
    ("pool range", lambda g: {**g, "level1": GraphGeometry(1, np.zeros((0, 2), int), pooling_map=np.array([0, 1, 0]))},
     r"names nodes outside 0 \.\. 0"),
    ("map on level 0", lambda g: {**g, "positions": GraphGeometry.from_edges(3, [], pooling_map=[0, 0, 0])},
     "not pooled from another"),
    ("unknown axis", lambda g: {**g, "other": None}, "axis 'other', which is not declared"),
    ("coords switch", lambda g: {**g, "positions": GraphGeometry.from_edges(3, [], coordinates=np.zeros((3, 2)))},
     "node coordinates must be given for every item or for none"),
]


@pytest.mark.parametrize("case,geometry,message", REFUSED, ids=[c[0] for c in REFUSED])
def test_bad_item_geometry_is_refused_before_anything_is_stored(tmp_path, case, geometry, message):
    w = _graph_writer(tmp_path / "x.h5")
    states = {"h": np.zeros((3, 1)), "p": np.zeros((1, 1))}
    w.append_item([0, 1, 2], states, geometry=_good())
    with pytest.raises(ValueError, match=message):
        w.append_item([0, 1, 2], states, geometry=geometry(_good()))
    w.append_item([0, 1, 2], states, geometry=_good())  # the writer is as it was
    w.close()
    with open_recording(tmp_path / "x.h5") as rec:
        assert rec.n_items == 2 and rec.graph_edges()[1].tolist() == [0, 1, 2]
        assert rec.pooling_map("level1").tolist() == [0, 0, 0, 1, 1, 1]


def test_scalar_axis_needs_one_row_and_tokens_axis_no_geometry(tmp_path):
    w = RecordingWriter(tmp_path / "x.h5")
    w.add_axis("graph", geometry="scalar")
    w.add_tap("h", 1)
    w.add_tap("g", 1, axis="graph")
    with pytest.raises(GeometryError, match="item 0, axis 'graph': a scalar axis has exactly one position per item, got 2"):
        w.append_item([0, 1], {"h": np.zeros((2, 1)), "g": np.zeros((2, 1))})
    with pytest.raises(GeometryError, match="item 0, axis 'positions': a tokens axis has no item geometry"):
        w.append_item([0, 1], {"h": np.zeros((2, 1)), "g": np.zeros((1, 1))},
                      geometry={"positions": GraphGeometry.from_edges(2, [])})
    w.abort()


@pytest.mark.parametrize("declare,message", [
    (lambda w: w.add_axis("a", geometry=AxisGeometry("graph", pooled_from="nope")), "pooled from axis 'nope', which is not declared"),
    (lambda w: w.add_axis("a", geometry=AxisGeometry("graph", pooled_from="positions")), "a tokens axis; pooling maps"),
    (lambda w: (w.set_geometry("positions", AxisGeometry("graph", pooled_from="a")),
                w.add_axis("a", geometry=AxisGeometry("graph", pooled_from="positions"))), "is a cycle"),
])
def test_bad_pooling_declarations_are_refused(tmp_path, declare, message):
    w = RecordingWriter(tmp_path / "x.h5")
    declare(w)
    w.add_tap("h", 1)
    if "a" in w.geometries:
        w.add_tap("p", 1, axis="a")
    with pytest.raises(GeometryError, match=message):
        w.append_item([0], {"h": np.zeros((1, 1)), **({"p": np.zeros((1, 1))} if "a" in w.geometries else {})})
    w.abort()


def test_set_geometry_checks(tmp_path):
    w = RecordingWriter(tmp_path / "x.h5")
    with pytest.raises(ValueError, match="axis 'nope' is not declared"):
        w.set_geometry("nope", "graph")
    with pytest.raises(GeometryError, match="unknown position geometry 'graf'"):
        w.set_geometry("positions", "graf")
    w.add_tap("h", 1)
    w.append_item([0], {"h": np.zeros((1, 1))})
    with pytest.raises(RuntimeError, match="before the first append_item"):
        w.set_geometry("positions", "graph")
    w.abort()


def test_text_checksum_covers_the_geometry_attributes(graphs):
    path, _ = graphs
    with h5py.File(path, "r+") as f:  # still a valid layout: only the checksum can tell
        f["axes/graph"].attrs[fmt.GEOMETRY_ATTR] = "tokens"
    with pytest.raises(RecordingError, match="the text attributes .* do not match their checksum"):
        open_recording(path)


def _as_v2(path) -> None:
    """Turn a v3 file of tokens axes into what a v2 writer wrote: no geometry, its text checksum."""
    with h5py.File(path, "r+") as f:
        for axis in f["axes"]:
            del f["axes"][axis].attrs[fmt.GEOMETRY_ATTR]
        f.attrs[fmt.VERSION_ATTR] = np.int64(2)
        f.attrs[fmt.TEXT_CHECKSUM_ATTR] = np.int64(fmt.crc32_of_text_attributes(f))  # v2's entries only


def test_the_text_checksum_of_a_v2_file_carries_over_the_migration(tmp_path):
    path = tmp_path / "v2.h5"
    with RecordingWriter(path) as w:
        w.add_axis("half", description="one row per two tokens")
        w.add_tap("h", 1)
        w.add_tap("p", 1, axis="half")
        w.append_item([0, 1], {"h": np.zeros((2, 1)), "p": np.zeros((1, 1))})
    _as_v2(path)
    with open_recording(path) as rec:  # the checksum continues over the added geometry attributes
        assert rec.format_version == 2 and rec.axis_geometry("half").kind == "tokens"
    with h5py.File(path, "r+") as f:
        f["axes/half"].attrs["description"] = "one row per three tokens"
    with pytest.raises(RecordingError, match="the text attributes .* do not match their checksum"):
        open_recording(path)


# --- open refuses a damaged geometry with "<path>: <problem>" ---------------------------------------------


def _replace(f: h5py.File, name: str, data) -> None:
    attrs = dict(f[name].attrs)
    del f[name]
    f.create_dataset(name, data=data)
    f[name].attrs.update(attrs)


def _set_attr(name, attr, value):
    def edit(f):
        f[name].attrs[attr] = value
    return edit


def _delete(name):
    def edit(f):
        del f[name]
    return edit


def _change(name, fn):
    def edit(f):
        _replace(f, name, fn(f[name][()]))
    return edit


def _edges_out_of_range(a):
    a[2] = [2, 4]  # item 0 has 4 nodes
    return a


def _coords_nan(a):
    a[5, 1] = np.nan
    return a


DAMAGED = [
    ("geometry missing", lambda f: f["axes/level1"].attrs.__delitem__("geometry"), "axis 'level1' has no 'geometry' attribute"),
    ("geometry unknown", _set_attr("axes/positions", "geometry", "mesh"), "position geometry 'mesh'; expected one of"),
    ("directed bad", _set_attr("axes/positions", "directed", 7), "needs an integer 'directed' attribute"),
    ("pooled_from missing", lambda f: f["axes/level1"].attrs.__delitem__("pooled_from"), "has no 'pooled_from' attribute"),
    ("pooled_from unknown", _set_attr("axes/level1", "pooled_from", "level0"), "pooled from axis 'level0', which the file does not define"),
    ("pooled_from scalar", _set_attr("axes/level1", "pooled_from", "graph"), "a scalar axis; only graph axes are pooled"),
    ("pooling cycle", _set_attr("axes/positions", "pooled_from", "level1"), "is a cycle"),
    ("edges missing", _delete("axes/positions/edges"), "missing required dataset '/axes/positions/edges'"),
    ("edge offsets missing", _delete("axes/level1/edge_offsets"), "'/axes/level1/edge_offsets'"),
    ("edges shape", _change("axes/positions/edges", lambda a: a[:, :1]), "must be integer pairs [E, 2]"),
    ("edges float", _change("axes/positions/edges", lambda a: a.astype(float)), "must be integer pairs [E, 2]"),
    ("edge outside", _change("axes/positions/edges", _edges_out_of_range), "edge 2 (2 -> 4) of item 0 on graph axis 'positions' points outside the item's 4 nodes"),
    ("negative edge", _change("axes/positions/edges", lambda a: -a), "points outside"),
    ("offsets decrease", _change("axes/positions/edge_offsets", lambda a: np.array([0, 4, 3])), "decrease"),
    ("offsets short", _change("axes/positions/edge_offsets", lambda a: a[:-1]), "one more than the 2 items"),
    ("offsets end", _change("axes/positions/edge_offsets", lambda a: np.array([0, 3, 4])), "end at 4, not at the 5 edges"),
    ("offsets start", _change("axes/positions/edge_offsets", lambda a: a + 1), "do not start at 0"),
    ("pooling map missing", _delete("axes/level1/pooling_map"), "'/axes/level1/pooling_map'"),
    ("pooling map short", _change("axes/level1/pooling_map", lambda a: a[:-1]), "must be 7 integers (one per row of 'positions')"),
    ("pooling map range", _change("axes/level1/pooling_map", lambda a: a + [0, 0, 0, 0, 1, 0, 0]), "maps row 4 (item 1) to node 1, outside the item's nodes 0 .. 0"),
    ("pooling map below", _change("axes/level1/pooling_map", lambda a: a - 1), "outside the item's nodes"),
    ("pooling map unpooled", lambda f: f["axes/positions"].create_dataset("pooling_map", data=np.zeros(7, np.int32)), "has a pooling map but is not pooled"),
    ("weights length", _change("axes/positions/edge_weights", lambda a: a[:-1]), "edge weights of graph axis 'positions' must be floats of shape (5,)"),
    ("weights inf", _change("axes/positions/edge_weights", lambda a: np.full_like(a, np.inf)), "must be finite numbers; row 0"),
    ("coordinates nan", _change("axes/positions/coordinates", _coords_nan), "node coordinates of graph axis 'positions' must be finite numbers; row 5"),
    ("coordinates shape", _change("axes/positions/coordinates", lambda a: a[:, :1]), "must be floats of shape (7, 2)"),
    ("node names", _change("axes/positions/node_names", lambda a: a[:3]), "must be 7 strings"),
    ("filler shape", _change("axes/level1/filler", lambda a: a[:2]), "filler mask of graph axis 'level1' must be 3 integers"),
    ("scalar rows", _change("axes/graph/item_offsets", lambda a: a * 2), "scalar axis (one position per item) but item 0 has 2 rows"),
    ("edges crc", _change("axes/positions/edges", lambda a: a[::-1].copy()), "the edges of graph axis 'positions' ('/axes/positions/edges') do not match their checksum"),
    ("pooling crc", _change("axes/level1/pooling_map", lambda a: np.where(a == 1, 0, a)), "do not match their checksum"),
]


@pytest.mark.parametrize("case,edit,fragment", DAMAGED, ids=[c[0] for c in DAMAGED])
def test_a_damaged_geometry_is_refused_with_file_and_problem(tmp_path, case, edit, fragment):
    path = tmp_path / "g.h5"
    _write_graphs(path)
    with h5py.File(path, "r+") as f:
        edit(f)
    with pytest.raises(RecordingError) as info:
        open_recording(path)
    e = info.value
    assert str(e) == f"{path}: {e.problem}" and fragment in e.problem, (fragment, e.problem)
    assert e.__cause__ is None and (e.__context__ is None or e.__suppress_context__)


DAMAGED_IMAGE_SET = [
    ("stride", _set_attr("axes/map", "stride", np.array([0, 2])), "axis 'map': stride must be positive"),
    ("stride shape", _set_attr("axes/map", "stride", 2), "needs the attribute 'stride': two numbers"),
    ("offset", _set_attr("axes/map", "offset", "x"), "needs the attribute 'offset'"),
    ("height", _change("axes/map/height", lambda a: a + 1), "item 0 on image axis 'map' is 3 x 3 positions but has 6 rows"),
    ("width missing", _delete("axes/map/width"), "'/axes/map/width'"),
    ("members duplicate", _change("axes/modality/members", lambda a: np.array(["a", "a", "b"], dtype=object)), "set members must be distinct"),
    ("members missing", _delete("axes/modality/members"), "'/axes/modality/members'"),
    ("member id", _change("axes/modality/member", lambda a: a + 1), "row 1 names member 3, outside 0 .. 2"),
    ("member crc", _change("axes/modality/member", lambda a: a[::-1].copy()), "do not match their checksum"),
]


@pytest.mark.parametrize("case,edit,fragment", DAMAGED_IMAGE_SET, ids=[c[0] for c in DAMAGED_IMAGE_SET])
def test_a_damaged_image_or_set_geometry_is_refused(tmp_path, case, edit, fragment):
    path = tmp_path / "i.h5"
    _write_image_and_set(path)
    with h5py.File(path, "r+") as f:
        edit(f)
    with pytest.raises(RecordingError) as info:
        open_recording(path)
    assert fragment in info.value.problem, (fragment, info.value.problem)


def test_geometry_is_buffered_and_optional_datasets_are_padded_across_flushes(tmp_path):
    """Small flushes: weights and filler appear only at item 5, after earlier items were written out."""
    path = tmp_path / "many.h5"
    rng = np.random.default_rng(3)
    written = []
    with RecordingWriter(path) as w:
        w._flush_bytes = 256  # flush after nearly every item
        w.set_geometry("positions", "graph")
        w.add_tap("h", 2)
        for i in range(12):
            n = int(rng.integers(1, 9))
            edges = rng.integers(0, n, (int(rng.integers(0, 2 * n)), 2))
            weights = rng.random(len(edges)) if i >= 5 and i % 2 else None
            filler = (rng.random(n) < 0.3) & (np.arange(n) > 0) if i == 5 else None
            g = GraphGeometry(n, edges, weights=weights, filler=filler)
            written.append(g)
            w.append_item(np.zeros(n, int), {"h": np.full((n, 2), float(i))}, geometry={"positions": g})
    with open_recording(path) as rec:
        for i, g in enumerate(written):
            got = rec.item_geometry(i)
            assert got.edges.tolist() == g.edges.tolist()
            want_w = np.ones(len(g.edges)) if g.weights is None else g.weights
            assert np.allclose(got.weights, want_w)
            assert got.filler.tolist() == (np.zeros(g.num_nodes, bool) if g.filler is None else g.filler).tolist()
            assert (rec.item_states("h", i) == i).all()


def test_checkpoint_states_of_a_graph_recording(tmp_path):
    path = tmp_path / "ck.h5"
    with RecordingWriter(path) as w:
        w.set_geometry("positions", "graph")
        w.add_axis("level1", geometry=AxisGeometry("graph", pooled_from="positions"))
        w.add_tap("h", 1)
        w.add_tap("p", 1, axis="level1")
        w.add_checkpoint("step-000001", step=1)
        w.add_checkpoint("step-000002", step=2)
        for n in (3, 2):
            geometry = {"positions": GraphGeometry.from_edges(n, [[0, 1]]),
                        "level1": GraphGeometry.from_edges(1, [], pooling_map=[0] * n)}
            w.append_item(np.zeros(n, int), {"h": np.full((n, 1), 2.0), "p": [[2.0]]}, geometry=geometry)
            w.append_checkpoint_item("step-000001", {"h": np.full((n, 1), 1.0), "p": [[1.0]]})
    with open_recording(path) as rec:
        early = rec.at_checkpoint("step-000001")
        assert early.states("h").ravel().tolist() == [1.0] * 5 and rec.states("p").ravel().tolist() == [2.0, 2.0]
        assert early.item_geometry(1).edges.tolist() == [[0, 1]] and early.pooling_map("level1").tolist() == [0] * 3 + [1] * 2
