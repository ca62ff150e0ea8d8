"""The Image panel's Sets tab: a tap on a set axis shows one panel per member with its name and the image's
values, one colour scale for all members, greys a member the image lacks, and follows the image shown.
Recordings: tests/qt/qt_image_recordings.py (``with_set``)."""

import numpy as np

from lstmviz.qt.image.set_view import resolve_style
from qt_image_recordings import SET_ABSENT_ITEM, SET_MEMBERS, set_values, write_image_recording


def open_with_set(window, tmp_path, **kw):
    assert window.open_file(write_image_recording(tmp_path / "sets.h5", with_set=True, **kw))
    window.show_panel("image")
    return window.panels["image"]


def test_a_set_tap_shows_one_panel_per_member_with_its_name_and_values(window, tmp_path, qtbot):
    panel = open_with_set(window, tmp_path)
    assert [panel.set_combo.itemData(i) for i in range(panel.set_combo.count())] == ["modalities"]
    assert panel.tabs.isTabEnabled(panel.sets_tab)
    assert "modalities" not in [panel.tap_combo.itemData(i) for i in range(panel.tap_combo.count())]
    assert "modalities" not in [panel.scalar_combo.itemData(i) for i in range(panel.scalar_combo.count())]
    with qtbot.waitSignal(panel.set_shown) as blocker:
        panel.show_set_tap("modalities")
    assert blocker.args == [0, "modalities"]
    assert panel.tabs.currentIndex() == panel.sets_tab
    view = panel.set_view
    assert view.member_names() == list(SET_MEMBERS)
    expected = set_values(0)
    for row, values in zip(view.rows, expected):
        assert np.array_equal(row.values.values, values) and not row.values.absent
        assert row.values.levels == view.levels  # one scale for every member
    assert view.levels == (0.0, float(expected.max()))
    assert view.style == "bars"  # 6 units: bars automatically
    panel.set_style_combo.setCurrentIndex(panel.set_style_combo.findData("strip"))
    assert view.style == "strip" and all(row.values.style == "strip" for row in view.rows)


def test_selecting_another_image_updates_the_members_and_greys_an_absent_one(window, tmp_path, qtbot):
    panel = open_with_set(window, tmp_path)
    panel.show_set_tap("modalities")
    with qtbot.waitSignal(panel.set_shown) as blocker:
        panel.next_button.click()
    assert blocker.args == [1, "modalities"]
    assert np.array_equal(np.stack([row.values.values for row in panel.set_view.rows]), set_values(1))
    with qtbot.waitSignal(panel.set_shown) as blocker:
        window.workspace.go_to_item(SET_ABSENT_ITEM)
    assert blocker.args == [SET_ABSENT_ITEM, "modalities"]
    rows = panel.set_view.rows
    assert [row.values.absent for row in rows] == [False, True, False, False]
    assert rows[1].name_label.text() == "blurred (absent)"
    assert "1 absent" in panel.set_legend.text()
    present = np.delete(set_values(SET_ABSENT_ITEM), 1, axis=0)
    assert panel.set_view.levels == (0.0, float(present.max()))


def test_a_recording_without_set_taps_disables_the_tab(window, tmp_path):
    assert window.open_file(write_image_recording(tmp_path / "plain.h5"))
    panel = window.panels["image"]
    assert panel.set_combo.count() == 0 and not panel.tabs.isTabEnabled(panel.sets_tab)
    assert panel.set_view.rows == []


def test_automatic_style_is_bars_for_few_units_and_a_strip_for_many():
    assert resolve_style("auto", 3) == "bars" and resolve_style("auto", 16) == "strip"
    assert resolve_style("bars", 16) == "bars"
