"""Long commands are never silent: off a terminal they print a progress line every few seconds (issue 11.7)."""

import io

import pytest

from lstmviz.cli import main
from lstmviz.console import ProgressLines, progress_task
from lstmviz.tasks import Cancelled


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_the_first_report_then_one_line_every_few_seconds_and_the_last():
    clock, out = Clock(), io.StringIO()
    task = ProgressLines("train lstm on parens", unit="steps", every=5.0, stream=out, clock=clock)
    task.progress(1, 100, "loss 2.000")
    for step in range(2, 100):
        clock.now += 0.2  # 0.2 s per step: a line every 25 steps
        task.progress(step, 100, f"loss {2 - step / 100:.3f}")
    clock.now += 0.2
    task.progress(100, 100, "loss 1.000")
    lines = out.getvalue().splitlines()
    assert lines[0] == "train lstm on parens: 1/100 steps (1%), loss 2.000, 0:00:00 elapsed"
    assert [line.split(":")[1].split()[0] for line in lines] == ["1/100", "26/100", "51/100", "76/100", "100/100"]
    assert lines[-1] == "train lstm on parens: 100/100 steps (100%), loss 1.000, 0:00:19 elapsed"


def test_cancelling_still_stops_the_work():
    task = ProgressLines("x", stream=io.StringIO())
    task.cancel()
    with pytest.raises(Cancelled):
        task.progress(1, 10)


def test_a_terminal_gets_a_bar_quiet_gets_nothing():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    assert isinstance(progress_task("x", stream=io.StringIO()), ProgressLines)
    assert not isinstance(progress_task("x", stream=Tty()), ProgressLines)
    silent = io.StringIO()
    task = progress_task("x", quiet=True, stream=silent)
    task.progress(5, 10, "hello")
    assert silent.getvalue() == ""


def test_training_into_a_log_prints_steps_loss_and_speed(tmp_path, capsys):
    assert main(["train", "lstm", "--out", str(tmp_path / "m.pt"), "--steps", "4", "--no-valid",
                 "--train", "batch_size=4", "--set", "hidden_size=8", "--set", "embedding_dim=4",
                 "--dataset-option", "tokens=3000"]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("train lstm on parens: ")]
    assert lines[0].startswith("train lstm on parens: 1/4 steps (25%), loss ")
    assert lines[-1].startswith("train lstm on parens: 4/4 steps (100%), loss ") and " tok/s, " in lines[-1]
