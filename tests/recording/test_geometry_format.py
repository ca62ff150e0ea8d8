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


def test_image_and_set_round_trip(tmp_path):
    path = tmp_path / "img.h5"
    with RecordingWriter(path) as w:
        w.add_axis("map", geometry=AxisGeometry("image", stride=2, receptive_field=(3, 5), offset=(0.5, 1.5)))
        w.add_axis("modality", geometry=AxisGeometry("set", members=("audio", "video", "text")))
        w.add_tap("h", 2)
        w.add_tap("m", 1, axis="map")
        w.add_tap("s", 1, axis="modality")
        for i, (hh, ww, member) in enumerate([(2, 3, [0, 2]), (1, 2, [1, 1, 0])]):
            w.append_item([0, 1], {"h": np.zeros((2, 2)), "m": np.arange(hh * ww)[:, None], "s": np.zeros((len(member), 1))},
                          geometry={"map": ImageGeometry(hh, ww), "modality": SetGeometry.of(member, ("audio", "video", "text"))})
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
