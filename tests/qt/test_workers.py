"""TaskRunner: each request answers on its own handle, on the GUI thread; the latest request on a
channel wins (the one it replaces says ``superseded`` and nothing else); cancel works."""

import threading

import pytest

from lstmviz.qt.workers import TaskRunner
from lstmviz.tasks import Cancelled


@pytest.fixture
def runner(qtbot):
    r = TaskRunner()
    yield r
    assert r.shutdown()


def answers(request):
    """Every answer the request gives, in order."""
    seen = []
    request.progress.connect(lambda done, total, msg: seen.append(("progress", done, total, msg)))
    request.finished.connect(lambda result: seen.append(("finished", result)))
    request.failed.connect(lambda exc: seen.append(("failed", exc)))
    request.cancelled.connect(lambda: seen.append(("cancelled",)))
    request.superseded.connect(lambda: seen.append(("superseded",)))
    return seen


def test_result_and_progress_reach_the_gui_thread_on_the_handle(qtbot, runner):
    channel_progress = []
    runner.progress.connect(lambda ch, rid, done, total, msg: channel_progress.append((ch, rid, done)))

    def work(task):
        for i in range(3):
            task.progress(i + 1, 3, "step")
        return threading.current_thread() is threading.main_thread()

    request = runner.submit("x", work)
    seen = answers(request)
    with qtbot.waitSignal(request.finished, timeout=5000) as blocker:
        pass
    assert blocker.args == [False]  # computed on a worker thread, delivered here
    assert seen[-1] == ("finished", False) and ("progress", 3, 3, "step") in seen
    assert (request.channel, request.done) == ("x", True)
    assert channel_progress and channel_progress[-1] == ("x", request.id, 3)  # the status bar's view
    assert not runner.is_busy("x")


def test_an_answer_reaches_only_the_request_that_asked(qtbot, runner):
    first = runner.submit("a", lambda task: "first")
    second = runner.submit("b", lambda task: "second")
    seen_first, seen_second = answers(first), answers(second)
    with qtbot.waitSignals([first.finished, second.finished], timeout=5000):
        pass
    assert seen_first == [("finished", "first")] and seen_second == [("finished", "second")]


def test_newer_request_supersedes_older(qtbot, runner):
    started, release = threading.Event(), threading.Event()

    def slow(task):
        started.set()
        while not release.wait(0.01):
            task.check()
        return "old"

    first = runner.submit("match", slow)
    seen_first = answers(first)
    assert started.wait(5)
    with qtbot.waitSignal(first.superseded, timeout=5000):
        second = runner.submit("match", lambda task: "new")
    seen_second = answers(second)
    with qtbot.waitSignal(second.finished, timeout=5000):
        release.set()
    assert runner.shutdown()
    qtbot.wait_until(lambda: not runner.is_busy("match"))
    assert seen_first == [("superseded",)]  # and never its result nor a cancel
    assert seen_second == [("finished", "new")]
    first.cancel()  # cancelling a superseded request does not touch the newer one
    assert second.done


def test_cancel_and_failure(qtbot, runner):
    started = threading.Event()

    def endless(task):
        started.set()
        while True:
            task.check()

    request = runner.submit("index", endless)
    with qtbot.waitSignal(request.cancelled, timeout=5000):
        assert started.wait(5)
        request.cancel()
    assert request.done

    def broken(task):
        raise ValueError("bad input")

    request = runner.submit("index", broken)
    with qtbot.waitSignal(request.failed, timeout=5000) as blocker:
        pass
    assert isinstance(blocker.args[0], ValueError) and not isinstance(blocker.args[0], Cancelled)
    assert "Traceback" in blocker.args[0].lstmviz_traceback and "bad input" in blocker.args[0].lstmviz_traceback
