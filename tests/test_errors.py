"""One expected-error base (``lstmviz.errors``): what counts as a problem with the input, and one sentence
for it whether the CLI or the GUI says it."""

import pytest

from lstmviz.errors import ExpectedError, describe, expected_errors, is_expected, one_line
from lstmviz.recording import RecordingError
from lstmviz.registry import UnknownName


def test_expected_problems_are_the_input_errors_of_every_package():
    errors = expected_errors()
    for kind in (ExpectedError, ValueError, KeyError, IndexError, OSError, RecordingError, UnknownName):
        assert issubclass(kind, errors), kind
    assert is_expected(FileNotFoundError(2, "No such file"))
    assert not is_expected(RuntimeError("a bug")) and not is_expected(ZeroDivisionError())
    assert not is_expected(TypeError("a bug"))


def test_a_checkpoint_error_counts_once_its_module_is_loaded():
    from lstmviz.engines.checkpoint import CheckpointError

    assert issubclass(CheckpointError, expected_errors())


def test_the_sentence_is_the_message_without_key_error_quotes():
    assert describe(KeyError("no tap 'x' over positions")) == "no tap 'x' over positions"
    assert str(KeyError("no tap")) == "'no tap'"  # what a plain str() would have shown
    assert describe(ValueError("  bad value \n")) == "bad value"
    assert describe(ValueError()) == "ValueError"
    assert one_line(ValueError("two\n\nparagraphs")) == "two paragraphs"


def test_the_cli_and_the_window_say_the_same_sentence(monkeypatch, capsys):
    """A KeyError from a command is one line naming the problem (no traceback, no quotes), the sentence
    the GUI's ``report_exception`` shows for it."""
    pytest.importorskip("PySide6")
    from lstmviz import cli
    from lstmviz.qt.errors import report_exception

    def broken(args):
        raise KeyError("no annotation 'pos' in this recording")

    monkeypatch.setitem(cli._COMMANDS, "info", broken)
    assert cli.main(["info", "x.h5"]) == 1
    err = capsys.readouterr().err
    assert err == "lstmviz info: error: no annotation 'pos' in this recording\n"
    said = []
    report_exception(KeyError("no annotation 'pos' in this recording"), "Cannot probe",
                     lambda title, message: said.append((title, message)))
    assert said == [("Cannot probe", "no annotation 'pos' in this recording")]


def test_a_bug_is_not_hidden(monkeypatch, capsys):
    from lstmviz import cli

    def broken(args):
        raise RuntimeError("a bug")

    monkeypatch.setitem(cli._COMMANDS, "info", broken)
    with pytest.raises(RuntimeError):
        cli.main(["info", "x.h5"])
    pytest.importorskip("PySide6")
    from lstmviz.qt.errors import report_exception

    said = []
    try:
        raise RuntimeError("a bug")
    except RuntimeError as exc:
        report_exception(exc, "Cannot match", lambda title, message: said.append(message))
    assert said[0].startswith("Something went wrong: a bug") and "Traceback" in capsys.readouterr().err
