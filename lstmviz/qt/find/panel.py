"""The "Find" dock: search the recording's tokens for a phrase or a regular expression.

The search (``lstmviz.analysis.token_search``) runs on the workspace's runner, channel ``"search"``
(a new search cancels the running one), and reads each hit's context there too. Hits are listed
with their context; clicking one moves the window there. A search that cannot run (an invalid
regular expression, an empty phrase) is stated in words under the search field; anything else also
goes through the app's one notifications path (``lstmviz.qt.errors.report_exception``).
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6 import QtCore, QtWidgets

from lstmviz.errors import describe, is_expected
from lstmviz.qt.errors import report_exception
from lstmviz.qt.plain_text import literal, set_plain
from lstmviz.qt.token_text import display_token
from lstmviz.qt.workspace import Workspace

CHANNEL = "search"
LIMIT = 1000
CONTEXT_BEFORE, CONTEXT_AFTER = 4, 6
MODES = ("phrase", "regex")


@dataclass(frozen=True)
class Hit:
    """One search result: positions ``[start, stop)``, its item, and the text around it."""

    start: int
    stop: int
    item: int
    before: str
    text: str
    after: str


def search(recording, mode: str, query: str, *, case_sensitive: bool = False, limit: int = LIMIT,
           task=None) -> list[Hit]:
    """Run a phrase or regex search and read every hit's context (on a worker thread)."""
    from lstmviz.analysis.token_search import default_joiner, find_phrase, find_regex

    if mode == "phrase":
        tokens = query.split()
        starts = find_phrase(recording, query, limit=limit, case_sensitive=case_sensitive, task=task)
        spans = [(int(s), int(s) + len(tokens)) for s in starts]
    else:
        spans = find_regex(recording, query, limit=limit, task=task)
    joiner = default_joiner(list(recording.vocab)) if recording.vocab else " "
    hits = []
    for i, (start, stop) in enumerate(spans):
        if task is not None and i % 64 == 0:
            task.check()
        item = int(recording.item_of(start))
        item_start, item_stop = (int(v) for v in recording.item_range(item))
        left, right = max(item_start, start - CONTEXT_BEFORE), min(item_stop, stop + CONTEXT_AFTER)
        tokens = [display_token(t) for t in recording.tokens(left, right)]
        cut, end = start - left, stop - left
        hits.append(Hit(start, stop, item, joiner.join(tokens[:cut]), joiner.join(tokens[cut:end]),
                        joiner.join(tokens[end:])))
    return hits


class FindPanel(QtWidgets.QWidget):
    """Search field, mode, results with context."""

    #: the hits shown (list of Hit) after a search finished
    results_ready = QtCore.Signal(list)

    def __init__(self, workspace: Workspace, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.workspace = workspace
        self.hits: list[Hit] = []
        self._request = None  # the running search (a Request)
        self.edit = QtWidgets.QLineEdit()
        self.edit.setPlaceholderText("tokens to find, e.g.  ( ( 2")
        self.edit.setClearButtonEnabled(True)
        self.mode_combo = QtWidgets.QComboBox()
        self.mode_combo.addItem("Tokens", "phrase")
        self.mode_combo.addItem("Regex", "regex")
        self.mode_combo.setToolTip("Tokens: whole tokens in a row (separated by spaces).\n"
                                   "Regex: a regular expression over the text of each item (tokens joined by "
                                   "spaces, or by nothing for character models); flags inline, e.g. (?i)")
        self.case_box = QtWidgets.QCheckBox("Match case")
        self.find_button = QtWidgets.QPushButton("Find")
        self.status = QtWidgets.QLabel()
        self.status.setWordWrap(True)
        self.results = QtWidgets.QListWidget()
        self.results.setUniformItemSizes(True)
        self.results.setToolTip("Click a hit to show it")

        top = QtWidgets.QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.edit, 1)
        top.addWidget(self.mode_combo)
        top.addWidget(self.case_box)
        top.addWidget(self.find_button)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.status)
        layout.addWidget(self.results, 1)

        self.edit.returnPressed.connect(self.find)
        self.find_button.clicked.connect(self.find)
        self.mode_combo.currentIndexChanged.connect(self._mode_changed)
        self.results.itemClicked.connect(self._clicked)
        self.results.itemActivated.connect(self._clicked)
        workspace.recording_changed.connect(self._recording_changed)
        self._recording_changed(workspace.recording)

    def focus(self) -> None:
        """Put the cursor in the search field, its text selected (Ctrl+F)."""
        self.edit.setFocus()
        self.edit.selectAll()

    def _mode_changed(self) -> None:
        regex = self.mode_combo.currentData() == "regex"
        self.case_box.setEnabled(not regex)
        self.edit.setPlaceholderText(r"regular expression, e.g.  \( \( [0-4]" if regex else "tokens to find, e.g.  ( ( 2")

    def _recording_changed(self, recording) -> None:
        if self._request is not None:
            self._request.cancel()
        self._request = None
        self.hits = []
        self.results.clear()
        self.status.setText("")
        self.setEnabled(recording is not None)

    def set_query(self, text: str, mode: str = "phrase") -> None:
        self.edit.setText(text)
        self.mode_combo.setCurrentIndex(MODES.index(mode))

    def find(self) -> None:
        """Start searching for the text in the field."""
        recording = self.workspace.recording
        query = self.edit.text()
        if recording is None:
            return
        if not query.strip():
            self._say("Type tokens (or a regular expression) to find.", error=True)
            return
        mode = self.mode_combo.currentData()
        case = self.case_box.isChecked()
        self._say("Searching…")
        if self._request is not None:
            self._request.cancel()
        self._request = self.workspace.runner.submit(
            CHANNEL, lambda task: search(recording, mode, query, case_sensitive=case, task=task)
        )
        self._request.progress.connect(self._progress)
        self._request.finished.connect(self._finished)
        self._request.failed.connect(self._failed)

    def _say(self, text: str, *, error: bool = False) -> None:
        self.status.setStyleSheet("color: rgb(180,40,40)" if error else "")
        set_plain(self.status, text)

    def _answer(self) -> bool:
        """Whether the signal being delivered comes from the search asked last."""
        return self._request is not None and self.sender() is self._request

    def _progress(self, done: int, total, message: str) -> None:
        if self._answer() and total:
            self._say(f"Searching… {100 * done // max(1, total)} %")

    def _finished(self, hits) -> None:
        if not self._answer():
            return
        self._request = None
        self.hits = list(hits)
        self.results.clear()
        for hit in self.hits:
            item = QtWidgets.QListWidgetItem()
            label = (f"{hit.start:,}  ·  item {hit.item:,}  ·  …{hit.before} [{hit.text}] {hit.after}…")
            item.setText(label)
            item.setToolTip(literal(f"positions {hit.start:,}–{hit.stop - 1:,}: {hit.text}"))
            item.setData(QtCore.Qt.ItemDataRole.UserRole, hit.start)
            self.results.addItem(item)
        n = len(self.hits)
        if n == 0:
            self._say("Not found.")
        else:
            more = f" (the first {LIMIT:,}; refine the search to see others)" if n >= LIMIT else ""
            self._say(f"{n:,} hit{'s' if n != 1 else ''}{more}. Click one to show it.")
        self.results_ready.emit(self.hits)

    def _failed(self, exc) -> None:
        if not self._answer():
            return
        self._request = None
        self.hits = []
        self.results.clear()
        self._say(describe(exc), error=True)  # an invalid regular expression, an empty phrase ...
        if not is_expected(exc):  # a bug: said as everywhere else, with its traceback on stderr
            report_exception(exc, "Cannot search", self.workspace.notify)
        self.results_ready.emit([])

    def _clicked(self, item: QtWidgets.QListWidgetItem) -> None:
        self.workspace.go_to_position(int(item.data(QtCore.Qt.ItemDataRole.UserRole)))
