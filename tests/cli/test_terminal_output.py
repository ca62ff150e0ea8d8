"""Strings from a file never reach the terminal as control sequences (issue 10.4)."""

import numpy as np
import pytest

from lstmviz.cli import main
from lstmviz.console import printable, printable_lines
from lstmviz.recording import RecordingWriter

TITLE = "\x1b]0;owned\x07"  # set the terminal's title
CLEAR = "\x1b[2J"  # clear the screen
CONTROL = set(map(chr, range(0x20))) - {"\n"} | {"\x7f"} | set(map(chr, range(0x80, 0xA0)))


@pytest.mark.parametrize("text, shown", [
    (TITLE, "\\x1b]0;owned\\x07"),
    (CLEAR + "x", "\\x1b[2Jx"),
    ("a\rb\nc\td", "a\\x0db\\x0ac\\x09d"),
    ("\x9b31m", "\\x9b31m"),  # C1 CSI
    ("abc\u202edcba", "abc\\u202edcba"),  # right-to-left override
    ("\u2066x\u2069", "\\u2066x\\u2069"),  # isolates
    ("bad\udcffname", "bad\\udcffname"),  # an undecodable byte of a file name (surrogateescape)
    ("Zürich naïve 東京 – ok", "Zürich naïve 東京 – ok"),  # ordinary text is kept
])
def test_printable_escapes_what_a_terminal_would_act_on(text, shown):
    assert printable(text) == shown
    assert printable(printable(text)) == shown  # idempotent: escaping twice changes nothing
    if "\n" not in text:  # printable_lines keeps line breaks, and only those
        assert printable_lines(f"{text}\n{text}") == f"{shown}\n{shown}"


@pytest.fixture
def hostile(tmp_path):
    """A recording whose names, labels, checkpoint and provenance carry escape sequences."""
    path = tmp_path / "hostile.h5"
    with RecordingWriter(path, vocab=["<pad>", TITLE, "b"],
                         provenance={"engine": "lstm" + CLEAR, "checkpoint": f"/tmp/{TITLE}run.pt",
                                     "sha256": CLEAR + "ab", "note": TITLE, CLEAR: "key"}) as w:
        w.add_tap(f"layer0/{CLEAR}h", 3, layer=0, description=TITLE)
        w.add_annotation(f"tag{CLEAR}", kind="categorical", labels=[TITLE, "b\u202e"], description=CLEAR)
        w.add_checkpoint(f"first{CLEAR}", step=1, path=f"/x/{TITLE}.pt", metrics={"train_loss": 1.0})
        w.add_checkpoint("second", step=2, path="/x/b.pt")
        rng = np.random.default_rng(0)
        for _ in range(6):  # a probe needs train, validation and test items
            states = {f"layer0/{CLEAR}h": rng.standard_normal((4, 3)).astype(np.float32)}
            w.append_item([1, 2, 1, 2], states, {f"tag{CLEAR}": np.array([0, 1, 0, 1])})
            w.append_checkpoint_item(f"first{CLEAR}", states)
    return path


def _assert_clean(text):
    assert not CONTROL & set(text), sorted(CONTROL & set(text))
    assert "\u202e" not in text


def test_info_escapes_every_string_from_the_file(hostile, capsys):
    assert main(["info", str(hostile)]) == 0
    out = capsys.readouterr().out
    _assert_clean(out)
    for shown in ("layer0/\\x1b[2Jh", "tag\\x1b[2J", "\\x1b]0;owned\\x07", "first\\x1b[2J", "b\\u202e",
                  "lstm\\x1b[2J", "/tmp/\\x1b]0;owned\\x07run.pt"):
        assert shown in out, shown


def test_error_messages_quoting_the_file_are_escaped(hostile, tmp_path, capsys):
    assert main(["probe", str(hostile), "--label", "nope"]) == 2  # lists the file's annotations
    err = capsys.readouterr().err
    _assert_clean(err)
    assert "tag\\x1b[2J" in err
    assert main(["probe", str(hostile), "--label", f"tag{CLEAR}", "--taps", "nope"]) == 2  # lists its taps
    err = capsys.readouterr().err
    _assert_clean(err)
    assert "layer0/\\x1b[2Jh" in err
    named = tmp_path / f"x{TITLE}.h5"  # a file name that is itself an escape sequence
    named.write_bytes(b"not a recording")
    assert main(["info", str(named)]) == 1
    err = capsys.readouterr().err
    _assert_clean(err)
    assert "x\\x1b]0;owned\\x07.h5" in err


def test_probe_output_escapes_tap_names(hostile, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LSTMVIZ_CACHE_DIR", str(tmp_path / "cache"))
    code = main(["probe", str(hostile), "--label", f"tag{CLEAR}", "--quiet", "--no-control"])
    captured = capsys.readouterr()
    _assert_clean(captured.out + captured.err)
    assert code == 0, captured.err
    assert "layer0/\\x1b[2Jh" in captured.out


def test_argparse_errors_escape_the_offending_argument(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["info", "a.h5", f"--{CLEAR}"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    _assert_clean(err)
    assert "\\x1b[2J" in err
