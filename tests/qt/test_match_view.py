"""The match results table: virtual (100k rows read lazily), aligned tokens, blank outside the item,
strips and painted backgrounds in the right colours, hover text, click / Enter activation."""

import numpy as np
import pytest
from PySide6 import QtCore, QtGui, QtWidgets
from test_match_helpers import ITEM_LENGTH, N_ITEMS, PLANTED, write_planted_recording

from lstmviz.analysis.match_types import MatchQuery, MatchResults
from lstmviz.qt.match.table_model import COUNT_STRIP, MatchTableModel
from lstmviz.qt.match.view import (
    COUNT_RAMP,
    DIVERGING,
    MASK_MIN_ALPHA,
    STRIP_GAP,
    STRIP_HEIGHT,
    TOP_PAD,
    MatchView,
    legend_html,
    strip_rgb,
)
from lstmviz.qt.palette import label_colors
from lstmviz.qt.token_text import display_token
from lstmviz.recording import open_recording


@pytest.fixture
def planted(tmp_path):
    path, runs = write_planted_recording(tmp_path / "planted.h5")
    recording = open_recording(path)
    yield recording, runs
    recording.close()


def make_results(starts, lengths, recording, query=None):
    starts = np.asarray(starts, np.int64)
    lengths = np.asarray(lengths, np.int64)
    n = len(starts)
    items = np.asarray(recording.item_of(starts), np.int64)
    query = query or MatchQuery(units=PLANTED)
    inter = np.full(n, 3, np.int32)
    union = np.full(n, 4, np.int32)
    jac = inter / union
    return MatchResults(query, starts, lengths, items, inter, inter, union, jac, np.ones(n), jac.copy())


class CountingCounter:
    """A match-count function that remembers which positions it was asked about."""

    def __init__(self, value=2):
        self.value = value
        self.calls = 0

    def __call__(self, start, stop):
        self.calls += 1
        return np.full(stop - start, self.value, np.int32)


def show_view(qtbot, model, width=1000, height=600):
    view = MatchView(model)
    qtbot.addWidget(view)
    view.resize(width, height)
    view.show()
    qtbot.waitExposed(view)
    return view


def test_100k_results_stay_virtual(qtbot, planted):
    recording, _ = planted
    rng = np.random.default_rng(1)
    n = 100_000
    items = rng.integers(0, N_ITEMS, n)
    starts = items * ITEM_LENGTH + rng.integers(0, ITEM_LENGTH - 5, n)
    results = make_results(starts, rng.integers(1, 5, n), recording)
    counter = CountingCounter()
    model = MatchTableModel()
    model.set_annotations(["depth", "signal"])
    model.set_results(results, recording, counter=counter, units_total=3)
    view = show_view(qtbot, model)
    assert model.rowCount() == n
    view.viewport().repaint()
    visible = len(view.visible_rows())
    assert 5 <= visible < 60
    assert model.rows_read <= 2 * visible + 5  # only what is on screen was read
    assert counter.calls == model.rows_read
    view.scrollTo(model.index(50_000, 0), QtWidgets.QAbstractItemView.ScrollHint.PositionAtTop)
    view.viewport().repaint()
    assert 50_000 in view.visible_rows()
    assert model.rows_read <= 4 * visible + 10
    row = model.row_data(50_000)
    assert row.start == int(starts[50_000])
    # no widget per row: the view's children are its scroll bars, headers and viewport
    assert len(view.findChildren(QtWidgets.QWidget)) < 40
    assert view.indexWidget(model.index(50_000, model.column_of_offset(0))) is None


def test_tokens_aligned_and_blank_outside_the_item(qtbot, planted):
    recording, _ = planted
    item1 = ITEM_LENGTH  # first position of item 1
    results = make_results([item1, item1 + ITEM_LENGTH - 2, 25], [3, 2, 4], recording)
    model = MatchTableModel()
    model.set_results(results, recording)
    col = model.column_of_offset
    assert [model.headerData(c, QtCore.Qt.Orientation.Horizontal) for c in (col(-3), col(0), col(20))] == \
        ["−3", "0", "+20"]
    # a match at an item start: nothing before it
    for offset in (-3, -2, -1):
        assert model.data(model.index(0, col(offset))) == ""
        assert model.cell_info(0, offset) is None
    for offset in range(21):
        token = recording.tokens(item1 + offset, item1 + offset + 1)[0]
        assert model.data(model.index(0, col(offset))) == display_token(token)
    # a match at an item end: nothing after it
    assert model.data(model.index(1, col(1))) != ""
    assert model.data(model.index(1, col(2))) == ""
    info = model.cell_info(2, 3)
    assert info["position"] == 28 and info["in_match"]
    assert not model.cell_info(2, 4)["in_match"] and not model.cell_info(2, -1)["in_match"]

    model.set_context(2, 5, "end")
    assert list(model.offsets) == list(range(-2, 6)) and model.columnCount() == model.n_fixed + 8
    assert model.row_data(2).anchor == 28
    assert model.cell_info(2, 0)["in_match"] and model.cell_info(2, -2)["in_match"]
    assert not model.cell_info(2, 1)["in_match"]
    with pytest.raises(ValueError, match="alignment"):
        model.set_context(3, 20, "middle")


def test_strip_values_colours_and_hover(qtbot, planted):
    recording, runs = planted
    start, length = runs[2]
    results = make_results([start], [length], recording)
    model = MatchTableModel()
    model.set_annotations(["depth", "signal", "kind"])
    model.set_results(results, recording, counter=CountingCounter(3), units_total=3)
    strips = {s.name: s for s in model.strips}
    assert list(strips) == [COUNT_STRIP, "depth", "signal", "kind"]
    assert strips["signal"].diverging  # the numeric track crosses 0
    assert strips["signal"].vmin == pytest.approx(-2.0, abs=0.05)
    row = model.row_data(0)
    depth = recording.annotation("depth", start - 3, start + 21)
    np.testing.assert_array_equal(row.values["depth"], depth)
    # colours: categorical from the palette, count white->purple, numeric diverging
    colors = label_colors(["0", "1", "2", "3"])
    assert strip_rgb(strips["depth"], 3) == colors[3]
    assert strip_rgb(strips["depth"], -1) is None
    assert strip_rgb(strips[COUNT_STRIP], 3) == COUNT_RAMP[-1]
    assert strip_rgb(strips[COUNT_STRIP], 0) == COUNT_RAMP[0]
    top = max(abs(strips["signal"].vmin), abs(strips["signal"].vmax))
    assert strip_rgb(strips["signal"], -top) == DIVERGING[0]
    assert strip_rgb(strips["signal"], 0.0) == DIVERGING[2]
    assert strip_rgb(strips["signal"], float("nan")) is None
    # hover: the labels of every strip and the count
    text = model.describe_cell(0, 0, rich=False)
    assert f"position {start:,}" in text and "in the match" in text
    assert "match count: 3 of 3 units on" in text and "depth: 3" in text
    assert f"kind: {'even' if recording.item_of(start) % 2 == 0 else 'odd'}" in text
    assert "depth: 3" in model.data(model.index(0, model.column_of_offset(0)), QtCore.Qt.ItemDataRole.ToolTipRole)
    legend = legend_html(model)
    assert "match count" in legend and "signal" in legend and "even" in legend

    view = show_view(qtbot, model)
    hovered = []
    view.hovered.connect(hovered.append)
    view.entered.emit(model.index(0, model.column_of_offset(0)))
    assert hovered == [text]


def _pixel(image: QtGui.QImage, x: int, y: int) -> tuple[int, int, int]:
    c = image.pixelColor(x, y)
    return c.red(), c.green(), c.blue()


def test_painted_backgrounds_strips_and_mask(qtbot, planted):
    recording, runs = planted
    start, length = runs[0]
    results = make_results([start], [length], recording)
    model = MatchTableModel()
    model.set_annotations(["depth"])
    counts = CountingCounter(0)  # no selected unit on anywhere: the mask fades to 10%
    model.set_results(results, recording, counter=counts, units_total=3)
    view = show_view(qtbot, model)
    view.clearSelection()
    offset = -1  # a context token (depth 1 is planted right before every run)
    index = model.index(0, model.column_of_offset(offset))
    rect = view.visualRect(index)
    x, y = rect.left() + 4, rect.top() + TOP_PAD + 5
    strip_y = rect.top() + TOP_PAD + view.itemDelegate().text_height() + 1 + STRIP_GAP
    depth_rgb = label_colors(["0", "1", "2", "3"])[1]

    def grab():
        return view.viewport().grab().toImage()

    image = grab()
    assert _pixel(image, x, y) == (255, 255, 255)  # plain background
    assert _pixel(image, x, strip_y + 2) == COUNT_RAMP[0]  # the count strip (0 on)
    assert _pixel(image, x, strip_y + STRIP_HEIGHT + STRIP_GAP + 2) == depth_rgb  # the depth strip
    view.set_paint_strip("depth")
    view.set_mask(False)
    assert _pixel(grab(), x, y) == depth_rgb
    view.set_mask(True)
    faded = _pixel(grab(), x, y)
    expected = tuple(round(255 + (c - 255) * MASK_MIN_ALPHA) for c in depth_rgb)
    assert all(abs(a - b) <= 1 for a, b in zip(faded, expected))
    # the matched run is boxed: dark pixels on the top edge of the start token's text area
    first = view.visualRect(model.index(0, model.column_of_offset(0)))
    image = grab()
    assert max(_pixel(image, first.center().x(), first.top() + TOP_PAD + 1)) < 60


def test_click_and_enter_activate(qtbot, planted):
    recording, runs = planted
    results = make_results([s for s, _ in runs], [n for _, n in runs], recording)
    model = MatchTableModel()
    model.set_results(results, recording)
    view = show_view(qtbot, model)
    index = model.index(2, model.column_of_offset(5))
    with qtbot.waitSignal(view.result_activated) as blocker:
        qtbot.mouseClick(view.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=view.visualRect(index).center())
    assert blocker.args == list(runs[2])
    view.setCurrentIndex(model.index(4, 0))
    with qtbot.waitSignal(view.result_activated) as blocker:
        qtbot.keyClick(view, QtCore.Qt.Key.Key_Enter)
    assert blocker.args == list(runs[4])


def test_scored_columns_and_empty(qtbot, planted):
    recording, runs = planted
    query = MatchQuery(units=PLANTED, mode="scored", selection_length=3)
    results = make_results([runs[0][0]], [runs[0][1]], recording, query)
    model = MatchTableModel()
    model.set_results(results, recording)
    headers = [model.headerData(c, QtCore.Qt.Orientation.Horizontal) for c in range(model.n_fixed)]
    assert headers == ["#", "score", "Jacc.", "len×", "len", "item", "position"]
    assert model.data(model.index(0, 1)) == "0.750"
    model.set_results(MatchResults.empty(query), recording)
    assert model.rowCount() == 0
    view = show_view(qtbot, model)
    assert view.visible_rows() == range(0)


def test_numeric_range_exact_then_sampled(planted, monkeypatch):
    from lstmviz.qt.match import table_model as match_model

    recording, _ = planted
    values = recording.annotation("signal", 0, recording.n_positions)
    assert match_model.numeric_range(recording, "signal") == (np.nanmin(values), np.nanmax(values))

    reads = []

    class Counting:
        annotations = recording.annotations
        n_positions = recording.n_positions

        def annotation(self, name, start=None, stop=None):
            reads.append((start, stop))
            return recording.annotation(name, start, stop)

    monkeypatch.setattr(match_model, "RANGE_EXACT", 100)
    monkeypatch.setattr(match_model, "RANGE_SAMPLES", 4)
    monkeypatch.setattr(match_model, "RANGE_WINDOW", 20)
    lo, hi = match_model.numeric_range(Counting(), "signal")
    assert len(reads) == 4 and all(b - a == 20 for a, b in reads)
    assert reads[0][0] == 0 and reads[-1][1] == recording.n_positions
    assert np.nanmin(values) <= lo < hi <= np.nanmax(values)
