"""`lstmviz probe` on an image recording: the bundled trained CNN on scikit-learn's digits."""

from __future__ import annotations

from pathlib import Path

import pytest

from lstmviz.cli import main

DEMO = Path(__file__).resolve().parents[2] / "assets" / "demo" / "digits-cnn.h5"


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LSTMVIZ_CACHE_DIR", str(tmp_path / "cache"))


def _rows(text):
    """tap -> its line, for the lines of the table (after the header, before the notes)."""
    lines = text.splitlines()
    out = {}
    for line in lines[2:]:
        if not line.startswith("  "):
            break
        out[line.split()[0]] = line
    return out


def test_class_probes_every_layer_of_the_trained_cnn(tmp_path, capsys):
    out = tmp_path / "probes.csv"
    assert main(["probe", str(DEMO), "--label", "class", "--quiet", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    rows = _rows(text)
    assert list(rows) == ["input", "conv0", "conv1", "conv2", "conv3", "pooled", "logits"]
    accuracy = {t: float(line.split()[1].rstrip("%")) for t, line in rows.items()}
    assert accuracy["logits"] >= 90.0 and accuracy["pooled"] >= 90.0, accuracy  # valid accuracy 0.98
    assert accuracy["conv0"] < accuracy["conv3"]  # deeper maps separate the classes better (linear probes)
    assert "image: one row per image" in rows["logits"]
    assert "conv2: mean over cells" in rows["conv2"]
    assert "positions: pixels flattened" in rows["input"]
    assert "its mean over the map's cells" in text and "(last position of each item)" not in text
    table = out.read_text().splitlines()
    assert table[0].endswith(",axis,rows") and len(table) == 8
    assert table[2].startswith("conv0,") and table[2].endswith(",conv0,mean over cells")


def test_max_pool_and_a_pixel_label(capsys):
    assert main(["probe", str(DEMO), "--label", "class", "--taps", "conv3", "--pool", "max", "--no-control",
                 "--quiet"]) == 0
    assert "conv3: max over cells" in capsys.readouterr().out
    assert main(["probe", str(DEMO), "--label", "stroke", "--taps", "conv1", "input", "pooled", "--no-control",
                 "--quiet"]) == 0
    text = capsys.readouterr().out
    rows = _rows(text)
    assert "conv1: cells (label under the centre)" in rows["conv1"]
    assert float(rows["conv1"].split()[1].rstrip("%")) > 90.0  # stroke is local: early maps carry it
    assert "skipped pooled:" in text and "no row per position" in text


def test_refuses_a_shift_on_cells(capsys):
    assert main(["probe", str(DEMO), "--label", "stroke", "--taps", "conv1", "--shift", "1", "--quiet"]) == 2
    assert "shift" in capsys.readouterr().err
