"""TaskRunner: results arrive on the GUI thread, the latest request on a channel wins, cancel works."""

import threading

import pytest

from lstmviz.qt.workers import TaskRunner
from lstmviz.tasks import Cancelled


@pytest.fixture
def runner(qtbot):
    r = TaskRunner()
    yield r
    assert r.shutdown()


def test_result_and_progress_reach_the_gui_thread(qtbot, runner):
    seen = []
    runner.progress.connect(lambda ch, rid, done, total, msg: seen.append((done, total, msg)))

    def work(task):
        for i in range(3):
            task.progress(i + 1, 3, "step")
        return threading.current_thread() is threading.main_thread()

    with qtbot.waitSignal(runner.finished, timeout=5000) as blocker:
        rid = runner.submit("x", work)
    channel, request_id, on_main = blocker.args
    assert (channel, request_id, on_main) == ("x", rid, False)
    assert seen and seen[-1] == (3, 3, "step")
    assert not runner.is_busy("x")


def test_newer_request_supersedes_older(qtbot, runner):
    started, release = threading.Event(), threading.Event()
    results = []
    runner.finished.connect(lambda ch, rid, res: results.append(res))
    cancelled = []
    runner.cancelled.connect(lambda ch, rid: cancelled.append(rid))

    def slow(task):
        started.set()
        while not release.wait(0.01):
            task.check()
        return "old"

    first = runner.submit("match", slow)
    assert started.wait(5)
    with qtbot.waitSignal(runner.finished, timeout=5000):
        runner.submit("match", lambda task: "new")
    release.set()
    assert runner.shutdown()
    qtbot.wait_until(lambda: not runner.is_busy("match"))
    assert results == ["new"]
    assert first not in cancelled  # a superseded request reports nothing


def test_cancel_and_failure(qtbot, runner):
    started = threading.Event()

    def endless(task):
        started.set()
        while True:
            task.check()

    with qtbot.waitSignal(runner.cancelled, timeout=5000):
        runner.submit("index", endless)
        assert started.wait(5)
        runner.cancel("index")

    def broken(task):
        raise ValueError("bad input")

    with qtbot.waitSignal(runner.failed, timeout=5000) as blocker:
        runner.submit("index", broken)
    assert isinstance(blocker.args[2], ValueError) and not isinstance(blocker.args[2], Cancelled)
