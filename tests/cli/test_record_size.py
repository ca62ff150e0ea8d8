"""`lstmviz record` says how big the file will be before writing it, refuses above --max-size, and
stores float16 unless asked otherwise (issue 11.4)."""

import re

import pytest

from lstmviz.cli import main
from lstmviz.recording import open_recording
from lstmviz.recording.size_estimate import format_bytes, parse_size

TINY = ["--dataset-option", "tokens=3000", "--quiet"]


def _estimate(err: str) -> float:
    match = re.search(r"will take (?:about )?([\d.,]+) (bytes|kB|MB|GB)", err)
    assert match, err
    return float(match.group(1).replace(",", "")) * {"bytes": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9}[match.group(2)]


@pytest.mark.parametrize("dtype, itemsize", [(None, 2), ("float32", 4)])
def test_the_estimate_is_printed_first_and_close_to_the_file(tmp_path, capsys, dtype, itemsize):
    out = tmp_path / "r.h5"
    extra = [] if dtype is None else ["--dtype", dtype]
    assert main(["record", "lstm", "--out", str(out), *TINY, *extra]) == 0
    err = capsys.readouterr().err
    assert "3,000 positions × 1,536 units in 12 signals × " f"{itemsize} bytes" in err
    estimate, actual = _estimate(err), out.stat().st_size
    assert abs(estimate - actual) < 0.05 * actual, (estimate, actual)
    with open_recording(out) as rec:  # float16 by default, float32 when asked
        assert {t.dtype for t in rec.taps.values()} == {"float16" if dtype is None else "float32"}


def test_above_the_limit_nothing_is_written(tmp_path, capsys):
    out = tmp_path / "r.h5"
    out.write_bytes(b"an older recording")
    assert main(["record", "lstm", "--out", str(out), "--max-size", "1M", *TINY]) == 2
    err = capsys.readouterr().err
    assert "the recording would take 9.3 MB, more than --max-size 1.0 MB: record fewer items (--max-items), " \
           "fewer signals (--signals 'layer*/h'), or allow it with --max-size 10M" in err
    assert out.read_bytes() == b"an older recording" and sorted(p.name for p in tmp_path.iterdir()) == ["r.h5"]
    assert main(["record", "lstm", "--out", str(out), "--max-size", "10M", *TINY]) == 0  # as the message says


def test_sizes_are_read_and_written_in_powers_of_1000():
    assert parse_size("2G") == parse_size("2GB") == parse_size("2 gb") == 2e9
    assert parse_size("500M") == 5e8 and parse_size("1.5T") == 1.5e12 and parse_size("123") == 123
    assert parse_size("none") == float("inf")
    for bad in ("", "G", "-1G", "2X", "nan"):
        with pytest.raises(ValueError, match="a size like 2G"):
            parse_size(bad)
    assert format_bytes(509e6) == "509.0 MB" and format_bytes(3.9e9) == "3.9 GB" and format_bytes(12) == "12 bytes"


def test_checkpoints_multiply_the_states(tmp_path):
    import torch

    from lstmviz.recording.size_estimate import estimate_size

    model = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.LSTM(4, 6, batch_first=True))
    data = [[1, 2, 3], [4, 5, 6, 7, 8]]
    one = estimate_size(model, data, dtype="float32")
    assert one.positions == 8 and one.items == 2 and one.units == {"1/layer0/h": 6, "1/layer0/c": 6,
                                                                    **{f"1/layer0/gates/{g}": 6 for g in "ifgo"}}
    assert one.tap_bytes == 8 * 36 * 4
    three = estimate_size(model, data, dtype="float16", checkpoints=3, signals=["1/layer0/h"])
    assert three.tap_bytes == 8 * 6 * 2 * 3 and "× 3 checkpoints" in three.describe()
