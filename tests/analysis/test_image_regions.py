"""Select on an image feature map: cells in a box, the Chebyshev ring, tolerance, signs; against brute force."""

import math

import numpy as np
import pytest

from lstmviz.analysis.image_regions import (
    BoxSpec,
    box_of_cells,
    cell_boxes,
    cell_tiles,
    cells_in_box,
    grid_graph,
    select_box_units,
    select_cell_units,
)
from lstmviz.engines.families.image.api import ConvStep, ImageAxis, cell_box, conv_chain
from lstmviz.geometry import AxisGeometry, ImageGeometry

UNIT = AxisGeometry(kind="image")  # stride 1, receptive field 1, offset 0: the input's pixels
POOLED = AxisGeometry(kind="image", stride=2, receptive_field=4, offset=0.5)  # conv 3x3 pad 1, pool 2x2


# --- brute-force references -----------------------------------------------------------------------------

def ref_centres(g, size):
    ys, xs = np.divmod(np.arange(size.height * size.width), size.width)
    return g.offset[0] + ys * g.stride[0] + 0.5, g.offset[1] + xs * g.stride[1] + 0.5


def ref_cells_in_box(g, size, box):
    """Centres in the box per dimension; where none is, the row / column whose tile holds the box centre."""
    y0, x0, y1, x1 = box
    keep = []
    for lo, hi, off, s, n in ((y0, y1, g.offset[0], g.stride[0], size.height),
                              (x0, x1, g.offset[1], g.stride[1], size.width)):
        c = off + np.arange(n) * s + 0.5
        inside = np.flatnonzero((c >= lo) & (c < hi))
        if not inside.size:
            m = (lo + hi) / 2
            inside = np.flatnonzero((c - s / 2 <= m) & (m < c + s / 2))
            if not inside.size:
                inside = np.array([0 if m < c[0] else n - 1])
        keep.append(inside)
    return (keep[0][:, None] * size.width + keep[1][None, :]).ravel()


def ref_select(values, size, cells, threshold, ring, tolerance, direction):
    ys, xs = np.divmod(np.arange(size.height * size.width), size.width)
    cheb = np.max([np.maximum(np.abs(ys[:, None] - ys[None, cells]), np.abs(xs[:, None] - xs[None, cells]))],
                  axis=0).min(axis=1)
    ring_cells = np.flatnonzero((cheb >= 1) & (cheb <= ring))
    need = max(1, math.ceil(tolerance * len(cells) - 1e-9))
    th = np.float32(threshold)
    out = []
    for u in range(values.shape[1]):
        for sign in ((1,) if direction == "positive" else (-1,) if direction == "negative" else (1, -1)):
            v = values[:, u].astype(np.float32)
            on = (v >= th) if sign > 0 else (v <= -th)  # NaN compares False: never on
            if on[cells].sum() >= need and not on[ring_cells].any():
                out.append((u, sign))
    return out, ring_cells


def random_values(rng, size, units=12):
    v = rng.choice(np.array([-1.0, 0.0, 1.0], np.float32), size=(size.height * size.width, units), p=[0.2, 0.3, 0.5])
    v[rng.random(v.shape) < 0.03] = np.nan
    return v


# --- the grid graph -------------------------------------------------------------------------------------

def test_grid_graph_is_the_8_neighbour_grid_and_cached():
    g = grid_graph(3, 4)
    assert g.num_nodes == 12 and len(g.edges) == 3 * 3 + 2 * 4 + 2 * 2 * 3
    assert grid_graph(3, 4) is g
    hops = g.hops_from([5])  # cell (1, 1): hop distance = Chebyshev distance
    ys, xs = np.divmod(np.arange(12), 4)
    assert list(hops) == list(np.maximum(np.abs(ys - 1), np.abs(xs - 1)))
    four = grid_graph(3, 4, diagonal=False)
    assert list(four.hops_from([0])) == list(ys + xs)  # Manhattan without diagonals


# --- cells and boxes ------------------------------------------------------------------------------------

@pytest.mark.parametrize("g", [UNIT, POOLED, AxisGeometry(kind="image", stride=(2, 3), receptive_field=(5, 7),
                                                          offset=(-0.5, 1.0))])
def test_cells_in_box_equals_brute_force(g):
    rng = np.random.default_rng(1)
    size = ImageGeometry(5, 7)
    span_y = g.offset[0] + 0.5 + 5 * g.stride[0]
    span_x = g.offset[1] + 0.5 + 7 * g.stride[1]
    for _ in range(300):
        y0, y1 = np.sort(rng.uniform(-2, span_y + 2, 2))
        x0, x1 = np.sort(rng.uniform(-2, span_x + 2, 2))
        if rng.random() < 0.3:  # integer (pixel-aligned) boxes: centres on the edges
            y0, y1, x0, x1 = np.floor(y0), np.floor(y1) + 1, np.floor(x0), np.floor(x1) + 1
        box = (y0, x0, y1, x1)
        try:
            got = cells_in_box(g, size, box)
        except ValueError as e:
            assert "outside the image" in str(e)
            t = cell_tiles(g, size, np.arange(35))
            assert y1 <= t[:, 0].min() or y0 >= t[:, 2].max() or x1 <= t[:, 1].min() or x0 >= t[:, 3].max()
            continue
        assert list(got) == list(ref_cells_in_box(g, size, box)), box


def test_small_box_and_edges():
    size = ImageGeometry(4, 4)
    # a box inside one 2x2 tile, holding no centre (centres at 1, 3, 5, 7): the cell of that tile
    assert list(cells_in_box(POOLED, size, (4.2, 6.1, 4.6, 6.3))) == [2 * 4 + 3]
    # the whole input (8x8 pixels) holds every cell
    assert list(cells_in_box(POOLED, size, (0, 0, 8, 8))) == list(range(16))
    # a box half outside is clipped: the top-left 2x2 cells
    assert list(cells_in_box(POOLED, size, (-10, -10, 4, 4))) == [0, 1, 4, 5]
    with pytest.raises(ValueError, match="outside the image"):
        cells_in_box(POOLED, size, (8, 0, 12, 4))
    with pytest.raises(ValueError, match="empty"):
        cells_in_box(POOLED, size, (3, 3, 3, 5))


def test_cell_boxes_match_the_family_cell_box():
    axis = conv_chain(12, 10, [ConvStep(3, 1, 1), ConvStep(2, 2), ConvStep(3, 2, 0)])
    g, size = axis.geometry, axis.size
    cells = np.arange(size.num_positions)
    boxes = cell_boxes(g, size, cells)
    for c in cells:
        y, x = divmod(int(c), size.width)
        assert tuple(boxes[c]) == pytest.approx(cell_box(ImageAxis(g, size), y, x))
    assert box_of_cells(g, size, [0, size.num_positions - 1]) == pytest.approx(
        (boxes[0, 0], boxes[0, 1], boxes[-1, 2], boxes[-1, 3]))
    tiles = cell_tiles(g, size, cells)
    assert np.allclose(tiles[:, 2] - tiles[:, 0], g.stride[0])
    # a centre lies in its own box: a cell's own tile selects it
    for c in (0, 3, size.num_positions - 1):
        assert list(cells_in_box(g, size, tuple(tiles[c]))) == [c]


# --- select -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("g,size", [(UNIT, ImageGeometry(6, 7)), (POOLED, ImageGeometry(5, 4))])
@pytest.mark.parametrize("ring", [0, 1, 2])
def test_select_equals_brute_force(g, size, ring):
    rng = np.random.default_rng(ring + 10 * size.height)
    extent = (g.offset[0] + 0.5 + size.height * g.stride[0], g.offset[1] + 0.5 + size.width * g.stride[1])
    boxes = [(0, 0, 2, 2), (0, extent[1] - 3, 3, extent[1] + 5), (extent[0] - 2, extent[1] - 2, extent[0], extent[1]),
             (-5, -5, extent[0] + 5, extent[1] + 5), (2, 1, 5, 6), (2.2, 2.2, 2.4, 2.4)]  # corners, all, small
    hits = 0
    for box in boxes:
        for tolerance in (1.0, 0.5):
            for direction in ("positive", "negative", "both"):
                values = random_values(rng, size)
                # plant a unit that is on exactly on S so that something is selected
                cells = ref_cells_in_box(g, size, box)
                values[:, 0] = 0
                values[cells, 0] = 1
                values[cells, 1] = -1
                spec = BoxSpec(box, threshold=0.5, ring=ring, tolerance=tolerance, direction=direction)
                sel = select_box_units(values, g, size, spec)
                expected, ring_cells = ref_select(values, size, cells, 0.5, ring, tolerance, direction)
                assert sel.pairs() == expected, (box, tolerance, direction)
                assert list(sel.extra["cells"]) == list(cells)
                assert list(sel.extra["ring"]) == list(ring_cells)
                hits += len(expected)
    assert hits > 20


def test_ring_at_the_edge_is_clipped_and_tolerance_counts():
    size = ImageGeometry(4, 4)
    v = np.zeros((16, 4), np.float32)
    v[0, 0] = 1                      # unit 0: on at the corner cell only
    v[[0, 5], 1] = 1                 # unit 1: also on at the diagonal neighbour (ring 1)
    v[[0, 10], 2] = 1                # unit 2: also on at Chebyshev distance 2
    v[0, 3] = np.nan                 # unit 3: NaN at the brushed cell: never on
    box = (0, 0, 1, 1)               # the corner pixel: cell 0 of the unit grid
    assert select_box_units(v, UNIT, size, BoxSpec(box, threshold=0.5, ring=1)).pairs() == [(0, 1), (2, 1)]
    assert select_box_units(v, UNIT, size, BoxSpec(box, threshold=0.5, ring=2)).pairs() == [(0, 1)]
    assert select_box_units(v, UNIT, size, BoxSpec(box, threshold=0.5, ring=0)).pairs() == [(0, 1), (1, 1), (2, 1)]
    assert list(select_box_units(v, UNIT, size, BoxSpec(box, threshold=0.5)).extra["ring"]) == [1, 4, 5]
    # tolerance: 2 of the 4 cells of a 2x2 box
    v2 = np.zeros((16, 1), np.float32)
    v2[[0, 1], 0] = 1
    box4 = (0, 0, 2, 2)
    assert select_box_units(v2, UNIT, size, BoxSpec(box4, threshold=0.5, ring=0)).pairs() == []
    assert select_box_units(v2, UNIT, size, BoxSpec(box4, threshold=0.5, ring=0, tolerance=0.5)).pairs() == [(0, 1)]
    assert select_box_units(v2, UNIT, size, BoxSpec(box4, threshold=0.5, ring=0, tolerance=0.51)).pairs() == []


def test_added_removed_and_cell_sets():
    size = ImageGeometry(3, 3)
    v = np.zeros((9, 3), np.float32)
    v[4, 0] = 1
    v[4, 1] = -1
    spec = BoxSpec((1, 1, 2, 2), threshold=0.5, direction="both", removed=[(0, 1)], added=[(2, -1)])
    assert select_box_units(v, UNIT, size, spec).pairs() == [(1, -1), (2, -1)]
    with pytest.raises(ValueError, match="cannot add unit 7"):
        select_box_units(v, UNIT, size, BoxSpec((1, 1, 2, 2), added=[(7, 1)]))
    # a lasso-like cell set (not a box): the ring of an L shape
    sel = select_cell_units(v, size, [0, 3, 4], threshold=0.5, ring=1)
    assert list(sel.extra["ring"]) == [1, 2, 5, 6, 7, 8]
    with pytest.raises(ValueError, match="no cells are brushed"):
        select_cell_units(v, size, [], threshold=0.5)


def test_bad_input_sentences():
    size = ImageGeometry(3, 3)
    v = np.zeros((9, 2), np.float32)
    with pytest.raises(ValueError, match="not on an image axis"):
        select_box_units(v, AxisGeometry(kind="scalar"), size, BoxSpec((0, 0, 1, 1)))
    with pytest.raises(ValueError, match="outside the image"):
        select_box_units(v, UNIT, size, BoxSpec((5, 5, 9, 9)))
    with pytest.raises(ValueError, match=r"values must be \[cells, units\] with 9 cells"):
        select_box_units(v[:8], UNIT, size, BoxSpec((0, 0, 1, 1)))
    with pytest.raises(ValueError, match="empty"):
        BoxSpec((2, 2, 1, 3))
    with pytest.raises(ValueError, match="off-ring"):
        BoxSpec((0, 0, 1, 1), ring=-1)


def test_select_on_a_recorded_item(tmp_path):
    from image_recordings import STRIDE2, random_maps, write_image_recording

    from lstmviz.recording import open_recording

    maps = random_maps(3, size=(4, 4), units=5, seed=3)
    path = write_image_recording(tmp_path / "img.h5", maps, geometry=STRIDE2, input_size=(8, 8))
    with open_recording(path) as rec:
        g, size = rec.axis_geometry("conv0"), rec.item_geometry(1, "conv0")
        assert g == STRIDE2 and size == ImageGeometry(4, 4) and rec.item_geometry(1) == ImageGeometry(8, 8)
        values = rec.item_states("conv0", 1)
        spec = BoxSpec((2, 2, 6, 6), threshold=0.5, ring=1, direction="both")
        sel = select_box_units(values, g, size, spec)
        cells = ref_cells_in_box(g, size, spec.box)
        assert list(cells) == [5, 6, 9, 10]
        assert sel.pairs() == ref_select(maps[1].reshape(16, 5), size, cells, 0.5, 1, 1.0, "both")[0]
        with pytest.raises(ValueError, match="not on an image axis"):
            select_box_units(values, AxisGeometry(kind="tokens"), size, spec)
