"""Image match: 8-connected cell regions where the selected units are on together, ranked; brute force."""

import math

import numpy as np
import pytest
from image_recordings import STRIDE2, random_maps, write_image_recording

from lstmviz.analysis.bitindex import BitIndex
from lstmviz.analysis.image_match import (
    ImageCorpus,
    ImageMatchQuery,
    aggregate_cells,
    cell_pixels,
    image_match,
    image_match_index,
)
from lstmviz.analysis.image_regions import BoxSpec, box_of_cells, grid_graph, select_box_units
from lstmviz.geometry import AxisGeometry, ImageGeometry
from lstmviz.recording import open_recording
from lstmviz.tasks import Cancelled, Task

UNIT = AxisGeometry(kind="image")


def random_bits(seed, n_items=25, units=5, p_on=0.55):
    rng = np.random.default_rng(seed)
    sizes = [(int(rng.integers(1, 7)), int(rng.integers(1, 7))) for _ in range(n_items)]
    n = sum(h * w for h, w in sizes)
    return sizes, rng.random((n, units)) < p_on, rng.random((n, units)) < p_on


def brute_force(sizes, on_pos, on_neg, units, signs, ring, need, min_cells=1, max_cells=None):
    """(item, cells, size, score) of every region: flood fill over 8-neighbours, ring by Chebyshev distance."""
    cols = [(on_pos if s > 0 else on_neg)[:, u] for u, s in zip(units, signs)]
    count = np.sum(cols, axis=0)
    k = len(units)
    out, base = [], 0
    for item, (h, w) in enumerate(sizes):
        c = count[base:base + h * w].reshape(h, w)
        on = c >= need
        seen = np.zeros_like(on)
        for y0 in range(h):
            for x0 in range(w):
                if not on[y0, x0] or seen[y0, x0]:
                    continue
                stack, comp = [(y0, x0)], []
                seen[y0, x0] = True
                while stack:
                    y, x = stack.pop()
                    comp.append((y, x))
                    for dy in (-1, 0, 1):
                        for dx in (-1, 0, 1):
                            yy, xx = y + dy, x + dx
                            if 0 <= yy < h and 0 <= xx < w and on[yy, xx] and not seen[yy, xx]:
                                seen[yy, xx] = True
                                stack.append((yy, xx))
                if len(comp) < min_cells or (max_cells is not None and len(comp) > max_cells):
                    continue
                ys, xs = np.array(comp).T
                gy, gx = np.mgrid[0:h, 0:w]
                cheb = np.max([np.abs(gy[..., None] - ys), np.abs(gx[..., None] - xs)], axis=0).min(axis=-1)
                ring_mask = (cheb >= 1) & (cheb <= ring)
                score = len(comp) - int(c[ring_mask].sum()) / k
                cells = tuple(sorted(int(y * w + x) for y, x in comp))
                out.append((item, cells, len(comp), score))
        base += h * w
    out.sort(key=lambda m: (-m[3], -m[2], m[0], m[1][0]))
    return out


def as_list(res):
    return [(int(res.items[i]), tuple(int(v) for v in res.match_cells(i)), int(res.sizes[i]), float(res.score[i]))
            for i in range(len(res))]


def corpus_of(sizes, geometry=UNIT):
    return ImageCorpus([h for h, _ in sizes], [w for _, w in sizes], geometry)


@pytest.mark.parametrize("seed,units,signs,ring,tolerance", [
    (0, (0,), (1,), 1, 1.0), (1, (0, 2), (1, 1), 1, 1.0), (2, (1, 3), (1, -1), 2, 1.0),
    (3, (0, 1), (1, 1), 0, 1.0), (4, (2,), (-1,), 1, 1.0), (5, (0, 3, 4), (1, 1, -1), 3, 1.0),
    (6, (0, 1, 2), (1, 1, 1), 1, 0.6), (7, (0, 1, 2, 4), (1, -1, 1, 1), 2, 0.5), (8, (0,), (1,), 9, 1.0),
])
def test_equals_brute_force(seed, units, signs, ring, tolerance):
    sizes, on_pos, on_neg = random_bits(seed)
    offsets = np.concatenate([[0], np.cumsum([h * w for h, w in sizes])])
    index = BitIndex.from_bool(on_pos, on_neg, offsets)
    query = ImageMatchQuery(units, signs, ring=ring, tolerance=tolerance, limit=None, candidate_cap=None)
    res = image_match_index(index, corpus_of(sizes), query)
    expected = brute_force(sizes, on_pos, on_neg, units, signs, ring, query.need)
    assert len(expected) > 5
    assert as_list(res) == expected
    assert res.exact and res.graph.n_components == len(expected)
    # the top 10 with the early stop is the head of the full ranking
    top = image_match_index(index, corpus_of(sizes), ImageMatchQuery(units, signs, ring=ring, tolerance=tolerance,
                                                                     limit=10))
    assert as_list(top) == expected[:10] and top.exact


def test_size_bounds_positions_and_boxes():
    sizes, on_pos, on_neg = random_bits(9, p_on=0.75)
    offsets = np.concatenate([[0], np.cumsum([h * w for h, w in sizes])])
    index = BitIndex.from_bool(on_pos, on_neg, offsets)
    g = STRIDE2
    res = image_match_index(index, corpus_of(sizes, g), ImageMatchQuery((0, 1), min_cells=2, max_cells=6, limit=None))
    expected = brute_force(sizes, on_pos, on_neg, (0, 1), (1, 1), 1, 2, min_cells=2, max_cells=6)
    assert as_list(res) == expected and len(expected) > 3
    for i in range(len(res)):
        item = int(res.items[i])
        size = ImageGeometry(*sizes[item])
        assert (res.heights[i], res.widths[i]) == sizes[item]
        assert list(res.positions(i)) == list(res.match_cells(i) + offsets[item])
        assert tuple(res.boxes[i]) == pytest.approx(box_of_cells(g, size, res.match_cells(i)))
        assert tuple(res.tiles[i]) == pytest.approx(box_of_cells(g, size, res.match_cells(i), extent="tile"))
        assert list(res.match_yx(i)[:, 0] * size.width + res.match_yx(i)[:, 1]) == list(res.match_cells(i))


def test_corpus_adjacency_is_every_items_grid():
    sizes = [(2, 3), (4, 4), (2, 3), (1, 5)]
    corpus = corpus_of(sizes)
    a = corpus.adjacency().tocoo()
    got = set(zip(a.row.tolist(), a.col.tolist()))
    want, base = set(), 0
    for h, w in sizes:
        for x, y in grid_graph(h, w).edges:
            want |= {(base + x, base + y), (base + y, base + x)}
        base += h * w
    assert got == want
    with pytest.raises(ValueError, match="do not fill the axis's rows"):
        ImageCorpus([2, 2], [2, 3], UNIT, item_offsets=[0, 4, 9])


def test_on_a_recording_with_select_and_aggregate(tmp_path):
    # item 1 has a 2x2 blob of units 0 and 1 at cells (1,1)-(2,2) of a 4x4 map (stride 2); label "object"
    # on the input pixels under it
    maps = [np.zeros((4, 4, 3), np.float32) for _ in range(3)]
    maps[1][1:3, 1:3, 0] = 1
    maps[1][1:3, 1:3, 1] = 1
    maps[1][1:3, 1:3, 2] = 1
    maps[1][0, 0, 2] = 1             # unit 2 also on elsewhere in another region
    maps[2][3, 3, 0] = 1             # a one-cell region of unit 0 in item 2 (unit 1 off)
    labels = [np.zeros((8, 8), np.int32) for _ in range(3)]
    labels[1][2:6, 2:6] = 1
    path = write_image_recording(tmp_path / "img.h5", maps, geometry=STRIDE2, input_size=(8, 8), pixel_labels=labels)
    with open_recording(path) as rec:
        g = rec.axis_geometry("conv0")
        sel = select_box_units(rec.item_states("conv0", 1), g, rec.item_geometry(1, "conv0"),
                               BoxSpec((2, 2, 6, 6), threshold=0.5, ring=1))
        assert sel.pairs() == [(0, 1), (1, 1)]
        query = ImageMatchQuery.from_selection(sel, threshold=0.5)
        res = image_match(rec, "conv0", query)
        assert len(res) == 1 and int(res.items[0]) == 1 and list(res.match_cells(0)) == [5, 6, 9, 10]
        assert float(res.score[0]) == 4.0 and res.tap == "conv0" and res.axis == "conv0"
        assert tuple(res.tiles[0]) == (2.0, 2.0, 6.0, 6.0)   # centres 3 and 5, tiles of 2 pixels
        assert tuple(res.boxes[0]) == (1.0, 1.0, 7.0, 7.0)   # receptive fields of 4 pixels
        # a looser query: unit 0 alone finds both regions, the larger first
        both = image_match(rec, "conv0", ImageMatchQuery((0,), threshold=0.5))
        assert [int(i) for i in both.items] == [1, 2] and list(both.sizes) == [4, 1]
        # centre pixels of stride-2 cells with offset 0.5: the 2x2 pixels around each centre
        table = aggregate_cells(rec, "label", res)
        assert table.counts[0].tolist() == [0, 16]  # the 4x4 pixels 2..5: all "object"
        rf = aggregate_cells(rec, "label", res, pixels="receptive_field")
        assert rf.counts[0].sum() == 36 and rf.counts[0][1] == 16  # pixels 1..6: 6x6, 16 of them object
        task = Task()
        task.cancel()
        with pytest.raises(Cancelled):
            image_match(rec, "conv0", ImageMatchQuery((0,), threshold=0.5), task=task)
        with pytest.raises(ValueError, match="not on an image axis"):
            image_match(rec, "logits", ImageMatchQuery((0,)))
        # the input pixels are an image axis too: matching on them works
        assert image_match(rec, "image", ImageMatchQuery((0,), threshold=0.5)).graph.n_on == 0
        with pytest.raises(ValueError, match="outside tap 'conv0'"):
            image_match(rec, "conv0", ImageMatchQuery((5,)))


def test_cell_pixels_rules():
    # a unit-stride map (offset 0): the centre pixel is the cell's own pixel
    assert list(cell_pixels(UNIT, (3, 3), [4], (3, 3))) == [4]
    # stride 2, offset 0.5: centre on the corner of 4 pixels
    assert list(cell_pixels(STRIDE2, (2, 2), [0], (4, 4))) == [0, 1, 4, 5]
    # receptive field 4 at offset 0.5: pixels -1..2, clipped to 0..2
    assert list(cell_pixels(STRIDE2, (2, 2), [0], (4, 4), pixels="receptive_field")) == [0, 1, 2, 4, 5, 6, 8, 9, 10]
    # a cell centred in the padding gives no pixel
    pad = AxisGeometry(kind="image", stride=1, receptive_field=3, offset=-1)
    assert list(cell_pixels(pad, (1, 1), [0], (2, 2))) == []


def test_bad_queries():
    with pytest.raises(ValueError, match="select at least one unit"):
        ImageMatchQuery(())
    with pytest.raises(ValueError, match="the selection is empty"):
        from lstmviz.analysis.selection_types import Selection
        ImageMatchQuery.from_selection(Selection(np.zeros(0, np.int64), np.zeros(0, np.int8)))
    with pytest.raises(ValueError, match="tolerance"):
        ImageMatchQuery((0,), tolerance=0)
    with pytest.raises(ValueError, match="twice"):
        ImageMatchQuery((0, 0))
    assert ImageMatchQuery((0, 1, 2), tolerance=0.5).need == math.ceil(1.5)


def test_random_recording_round_trip(tmp_path):
    """The recording path (index built from float values at a threshold) equals the bit path."""
    sizes = [(3, 4), (5, 5), (1, 6), (4, 4)] * 3
    maps = random_maps(len(sizes), units=4, seed=11, sizes=sizes, p_on=0.35)
    path = write_image_recording(tmp_path / "r.h5", maps, geometry=UNIT, input_size=[s for s in sizes])
    flat = np.concatenate([m.reshape(-1, 4) for m in maps])
    with np.errstate(invalid="ignore"):
        on_pos, on_neg = flat >= 0.5, flat <= -0.5
    query = ImageMatchQuery((0, 2), (1, -1), threshold=0.5, ring=1, limit=None, candidate_cap=None)
    with open_recording(path) as rec:
        res = image_match(rec, "conv0", query)
    expected = brute_force(sizes, on_pos, on_neg, (0, 2), (1, -1), 1, 2)
    assert as_list(res) == expected and len(expected) > 3
