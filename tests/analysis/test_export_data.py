"""CSV / NPY tables read back with the csv module and numpy; the columns of selections, matches and tables."""

import csv

import numpy as np
import pytest

from lstmviz.analysis.aggregate import aggregate
from lstmviz.analysis.export_data import (
    label_table_columns,
    match_columns,
    selection_columns,
    write_table,
)
from lstmviz.analysis.match_types import MatchQuery, MatchResults
from lstmviz.analysis.selection import rank_candidates, select_units
from lstmviz.analysis.selection_types import SelectionSpec
from lstmviz.recording import RecordingWriter, open_recording

COLUMNS = {
    "i": np.array([1, -2, 3], dtype=np.int64),
    "x": np.array([0.1, np.nan, 1e-300]),
    "s": ["plain", 'comma, "quote"', "new\nline ünï"],
    "b": np.array([True, False, True]),
}


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def test_csv_reads_back_exactly(tmp_path):
    path = write_table(tmp_path / "t.csv", COLUMNS)
    rows = read_csv(path)
    assert rows[0] == ["i", "x", "s", "b"]
    assert [int(r[0]) for r in rows[1:]] == [1, -2, 3]
    x = [float(r[1]) for r in rows[1:]]
    assert x[0] == 0.1 and np.isnan(x[1]) and x[2] == 1e-300
    assert [r[2] for r in rows[1:]] == COLUMNS["s"]
    assert [r[3] for r in rows[1:]] == ["true", "false", "true"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]  # no temporary file left


def test_npy_is_a_structured_array_with_the_same_values(tmp_path):
    path = write_table(tmp_path / "t.NPY", COLUMNS)
    table = np.load(path, allow_pickle=False)
    assert table.dtype.names == ("i", "x", "s", "b")
    assert table["i"].tolist() == [1, -2, 3] and table["i"].dtype == np.int64
    np.testing.assert_array_equal(table["x"], COLUMNS["x"])
    assert table["s"].dtype.kind == "U" and table["s"].tolist() == COLUMNS["s"]
    assert table["b"].tolist() == [True, False, True]


def test_bad_tables_are_refused_and_leave_no_file(tmp_path):
    with pytest.raises(ValueError, match=r"\.csv or \.npy"):
        write_table(tmp_path / "t.xlsx", COLUMNS)
    with pytest.raises(ValueError, match="differ in length"):
        write_table(tmp_path / "t.csv", {"a": [1, 2], "b": [1]})
    with pytest.raises(ValueError, match="1-D"):
        write_table(tmp_path / "t.npy", {"a": np.zeros((2, 2))})
    with pytest.raises(ValueError, match="mixes strings"):
        write_table(tmp_path / "t.npy", {"a": ["x", 1]})
    with pytest.raises(ValueError, match="at least one column"):
        write_table(tmp_path / "t.csv", {})
    assert list(tmp_path.iterdir()) == []


def test_an_existing_file_is_replaced(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("old")
    write_table(path, {"a": [1]})
    assert read_csv(path) == [["a"], ["1"]]


def test_selection_columns_with_and_without_ranking(tmp_path):
    v = np.zeros((8, 4))
    v[2:5, 1] = 0.9
    v[2:5, 3] = 0.5
    spec = SelectionSpec(2, 5, added=[(0, -1)])
    sel = select_units(v, 0, spec)
    cols = selection_columns(sel)
    assert cols["unit"].tolist() == [0, 1, 3] and cols["sign"].tolist() == [-1, 1, 1]
    ranking = rank_candidates(v, 0, spec)
    cols = selection_columns(sel, ranking)
    assert cols["rank"].tolist() == [-1, 1, 2]  # (0, -1) is not in a positive-direction ranking
    assert np.isnan(cols["margin"][0])
    np.testing.assert_allclose(cols["margin"][1:], [0.9, 0.5])
    np.testing.assert_allclose(cols["on_fraction_range"][1:], [1, 1])
    np.testing.assert_allclose(cols["on_fraction_padding"][1:], [0, 0])
    table = np.load(write_table(tmp_path / "s.npy", cols))
    assert table["unit"].tolist() == [0, 1, 3]


def write_words(path, items, vocab):
    index = {t: i for i, t in enumerate(vocab)}
    with RecordingWriter(path, vocab=vocab) as w:
        w.add_tap("layer0/h", 2)
        w.add_annotation("kind", kind="categorical", labels=["a", "b"])
        for item in items:
            ids = np.array([index[t] for t in item])
            w.append_item(ids, {"layer0/h": np.zeros((len(ids), 2), np.float32)},
                          annotations={"kind": ids % 2})
    return open_recording(path)


def results(starts, lengths, items):
    n = len(starts)
    return MatchResults(
        MatchQuery(units=(1, 2)), np.array(starts, np.int64), np.array(lengths, np.int64),
        np.array(items, np.int64), np.full(n, 2, np.int32), np.array([2, 1][:n], np.int32),
        np.array([3, 4][:n], np.int32), np.array([2 / 3, 1 / 4][:n]), np.ones(n), np.array([2 / 3, 1 / 4][:n]),
    )


def test_match_columns_text_and_context_stay_in_the_item(tmp_path):
    vocab = ["<pad>"] + [f"w{i}" for i in range(30)]
    items = [[f"w{i}" for i in range(10)], [f"w{i}" for i in range(10, 30)]]
    rec = write_words(tmp_path / "w.h5", items, vocab)
    res = results([11, 3], [2, 4], [1, 0])
    cols = match_columns(res, rec, left=3, right=5)
    assert cols["rank"].tolist() == [1, 2]
    assert cols["start"].tolist() == [11, 3] and cols["stop"].tolist() == [13, 7]
    assert cols["item"].tolist() == [1, 0] and cols["length"].tolist() == [2, 4]
    assert cols["level"].tolist() == [2, 2]
    assert cols["intersection"].tolist() == [2, 1] and cols["union"].tolist() == [3, 4]
    np.testing.assert_allclose(cols["jaccard"], [2 / 3, 1 / 4])
    np.testing.assert_allclose(cols["score"], [2 / 3, 1 / 4])
    np.testing.assert_allclose(cols["length_factor"], [1, 1])
    # match 1 starts one after its item's start: only one token of left context (the item boundary)
    assert cols["left_context"].tolist() == ["w10", "w0 w1 w2"]
    assert cols["text"].tolist() == ["w11 w12", "w3 w4 w5 w6"]
    # right context runs to start + right: 16 for the first, 8 for the second
    assert cols["right_context"].tolist() == ["w13 w14 w15", "w7"]
    path = write_table(tmp_path / "m.csv", cols)
    rows = read_csv(path)
    assert rows[0][:3] == ["rank", "start", "stop"] and rows[1][-2] == "w11 w12"
    table = np.load(write_table(tmp_path / "m.npy", cols))
    assert table["text"].tolist() == ["w11 w12", "w3 w4 w5 w6"]
    empty = match_columns(MatchResults.empty(MatchQuery(units=(1,))), rec)
    assert np.load(write_table(tmp_path / "e.npy", empty))["text"].dtype.kind == "U"
    rec.close()


def test_match_columns_join_characters_without_spaces(tmp_path):
    vocab = ["<pad>", "(", ")", "a"]
    rec = write_words(tmp_path / "c.h5", [list("a(()a)")], vocab)
    cols = match_columns(results([1], [3], [0]), rec, left=3, right=20)
    assert cols["left_context"].tolist() == ["a"]
    assert cols["text"].tolist() == ["(()"]
    assert cols["right_context"].tolist() == ["a)"]
    rec.close()


def test_label_table_columns_long_format(tmp_path):
    vocab = ["<pad>", "x", "y"]
    rec = write_words(tmp_path / "l.h5", [list("xyxyyx"), list("yyx")], vocab)
    table = aggregate(rec, "kind", [1, 8], offsets=[-1, 0, 1])  # 8 is the last position
    cols = label_table_columns(table)
    assert list(cols) == ["offset", "label", "count", "n", "fraction", "baseline", "enrichment", "p_value"]
    assert cols["offset"].tolist() == [-1, -1, 0, 0, 1, 1]
    assert cols["label"].tolist() == ["a", "b"] * 3
    assert cols["count"].tolist() == table.counts.reshape(-1).tolist()
    assert cols["n"].tolist() == [2, 2, 2, 2, 1, 1]
    np.testing.assert_allclose(cols["baseline"], np.tile(table.baseline, 3))
    np.testing.assert_allclose(cols["p_value"], table.p_value.reshape(-1))
    rows = read_csv(write_table(tmp_path / "l.csv", cols))
    assert len(rows) == 7 and rows[1][:4] == ["-1", "a", str(table.counts[0, 0]), "2"]
    rec.close()


def test_numeric_table_columns(tmp_path):
    with RecordingWriter(tmp_path / "n.h5", vocab=["<pad>", "x"]) as w:
        w.add_tap("layer0/h", 1)
        w.add_annotation("depth", kind="numeric")
        w.append_item(np.ones(5, np.int64), {"layer0/h": np.zeros((5, 1), np.float32)},
                      annotations={"depth": np.arange(5.0)})
    rec = open_recording(tmp_path / "n.h5")
    table = aggregate(rec, "depth", [1, 2], offsets=[0, 1])
    cols = label_table_columns(table)
    assert list(cols) == ["offset", "n", "mean", "std", "baseline_mean", "baseline_std"]
    assert cols["offset"].tolist() == [0, 1] and cols["n"].tolist() == [2, 2]
    np.testing.assert_allclose(cols["mean"], [1.5, 2.5])
    np.testing.assert_allclose(cols["std"], [0.5, 0.5])
    np.testing.assert_allclose(cols["baseline_mean"], [2.0, 2.0])
    np.testing.assert_allclose(cols["baseline_std"], [np.sqrt(2.0)] * 2)
    rec.close()
    with pytest.raises(TypeError):
        label_table_columns(object())
