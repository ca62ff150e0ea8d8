"""The Embedding geometry panel's widget (see the package docstring).

Top row: where the table comes from: **Checkpoint** (the open recording's checkpoint, found as the
Perturb panel finds it; every table it offers is in the Table box: an embedding, decoder rows, subgraph2vec
Phi/Psi, label embeddings), **Class means** (of a tap per label of a categorical annotation, optionally
crossed with a second one: rows ``label|by-label``), or **File** (CSV/TSV/NPY/word2vec). **Load** reads it on
the worker (channel "embedding"; a tap is streamed in blocks).

Tabs, each exportable as a figure (PNG/SVG/PDF, the tab as shown) and as a table (CSV/NPY):

- *Neighbours*: the ``k`` rows of highest cosine with a typed token (completion over the names);
- *Analogy*: ``a : a* :: b : ?`` answered by the chosen method (3CosAdd, 3CosMul, ONLY-B, IGNORE-A,
  ADD-OPPOSITE), premises excluded unless unticked, ranked answers with scores;
- *Relations*: questions generated from the vocabulary's morphology, from the crossed annotations of class
  means, or read from a Google-analogy file; accuracy of every method side by side per relation, with
  chance (on the worker);
- *Map*: PCA (or UMAP, with ``lstmviz[umap]``) of the unit rows, the neighbours and analogy words marked.

Neighbours and analogies are one matrix product and run on the GUI thread. Every name is shown as plain
text (item views, ``TextItem.setText``) or escaped (axis titles), never read as HTML.
"""

from __future__ import annotations

from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets

from lstmviz.analysis.analogy import METHOD_TITLES, METHODS
from lstmviz.analysis.embedding_projection import UMAP_HINT, umap_available
from lstmviz.errors import describe
from lstmviz.qt.binding import StateBinding
from lstmviz.qt.embedding.map_view import EmbeddingMap
from lstmviz.qt.embedding.state import EMBEDDING_STATE, K_RANGE, EmbeddingState
from lstmviz.qt.plain_text import literal
from lstmviz.qt.task_panel import TaskPanel, labelled
from lstmviz.qt.widget_export import (
    DATA_FORMATS,
    VIEW_FORMATS,
    FullRowsOnVectorExport,
    export_table,
    export_widget,
    with_suffix,
)

PANEL_NAME = EMBEDDING_STATE.name
CHANNEL = "embedding"
TABS = ("neighbours", "analogy", "relations", "map")
QUERY_METHODS = [m for m in METHODS if not m.startswith("reverse")]
SOURCE_TITLES = {"checkpoint": "Checkpoint", "class-means": "Class means", "file": "File"}
RELATION_TITLES = {"morphology": "Morphology of the names", "crossed": "Crossed annotations (class means)",
                   "file": "Relations file"}
NONE = "(none)"


class _Table(FullRowsOnVectorExport, QtWidgets.QTableView):
    pass


def _table_view(model: QtGui.QStandardItemModel) -> QtWidgets.QTableView:
    view = _Table()
    view.setModel(model)
    view.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
    view.verticalHeader().setVisible(False)
    view.horizontalHeader().setStretchLastSection(True)
    view.setAlternatingRowColors(True)
    return view


def _fill(model: QtGui.QStandardItemModel, headers: list[str], rows: list[list]) -> None:
    model.clear()
    model.setHorizontalHeaderLabels(headers)
    for row in rows:
        items = []
        for value in row:
            item = QtGui.QStandardItem(value if isinstance(value, str) else (f"{value:.4f}" if isinstance(value, float)
                                                                               else str(value)))
            if isinstance(value, str):
                item.setToolTip(literal(value))
            else:
                item.setTextAlignment(QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter)
            items.append(item)
        model.appendRow(items)


def load_job(source: str, recording, settings: EmbeddingState, task):
    """The worker's job for Load: ``("checkpoint", CheckpointTables)`` or ``("table", EmbeddingTable)``."""
    from lstmviz.analysis import embedding_tables

    if source == "checkpoint":
        from lstmviz.perturb.live_model import find_checkpoint

        if recording is None:
            raise ValueError("No recording is open, so there is no checkpoint to read: open one, or load a table file.")
        return "checkpoint", embedding_tables.checkpoint_tables(find_checkpoint(recording))
    if source == "class-means":
        if recording is None:
            raise ValueError("No recording is open: class means are read from a recording's tap.")
        if not settings.tap or not settings.annotation:
            raise ValueError("Pick a tap and a categorical annotation for the class means.")
        return "table", embedding_tables.class_means(recording, settings.tap, settings.annotation, by=settings.by,
                                                     task=task)
    if not settings.file:
        raise ValueError("Choose a table file first (CSV, TSV, NPY with a .names.txt beside it, word2vec text).")
    return "table", embedding_tables.table_from_file(settings.file)


def relations_job(table, settings: EmbeddingState, task):
    from lstmviz.analysis.analogy import evaluate, generate_relations, relations_from_file

    if settings.relations == "file":
        if not settings.relations_file:
            raise ValueError("Choose a relations file (Google-analogy format: ': relation' lines, then 'a a* b b*').")
        relations = relations_from_file(settings.relations_file, table)
    else:
        relations = generate_relations(table, settings.relations)
    if not any(r.questions for r in relations):
        raise ValueError("No question of the relations has all four words in the table.")
    return evaluate(table, relations, list(METHODS), exclude=settings.exclude, task=task)


def projection_job(table, method: str, task):
    from lstmviz.analysis.embedding_projection import project

    task.progress(0, None, f"{method.upper()} of {len(table):,} rows")
    return project(table, method)


class EmbeddingPanel(TaskPanel):
    """See the module docstring."""

    wants_dock = QtCore.Signal()
    #: a table was loaded and is shown (the EmbeddingTable)
    table_loaded = QtCore.Signal(object)
    #: neighbours were shown: [(name, cosine), ...]
    neighbours_shown = QtCore.Signal(list)
    #: an analogy was answered: [(name, score), ...]
    answers_shown = QtCore.Signal(list)
    #: a relations report is shown (AnalogyReport)
    report_ready = QtCore.Signal(object)
    #: a map is drawn (Projection)
    projection_ready = QtCore.Signal(object)
    #: a request failed (the sentence)
    failed = QtCore.Signal(str)

    SUPERSEDED = "The embedding request was superseded by another request; start it again."

    def __init__(self, workspace, parent: QtWidgets.QWidget | None = None):
        super().__init__(workspace, parent)
        self.table = None
        self.checkpoint_tables = None
        self.neighbours: list[tuple[str, float]] = []
        self.answers: list[tuple[str, float]] = []
        self.report = None
        self.projection = None
        self.file: str | None = None
        self.relations_file: str | None = None
        self.binding = StateBinding(self.state, self._show_state, self._store_state, store_shown=True)
        self.status_label = QtWidgets.QLabel()
        self.status_label.setWordWrap(True)
        self._build()
        initial = workspace.panel_state(PANEL_NAME)
        workspace.recording_changed.connect(self._recording_changed)
        workspace.panel_state_changed.connect(self._panel_state_changed)
        self._recording_changed(workspace.recording)
        if initial is not None:
            self.binding.model_changed(initial)

    # ------------------------------------------------------------------ building
    def _build(self) -> None:
        self.build_task_controls("Cancel embedding work", "Stop loading the table or computing")
        push = self.binding.push
        self.source_combo = QtWidgets.QComboBox()
        for key, title in SOURCE_TITLES.items():
            self.source_combo.addItem(title, key)
        self.source_combo.setToolTip("Where the table comes from: the recording's checkpoint, class means of a tap per "
                                     "annotation label, or a file")
        self.source_combo.currentIndexChanged.connect(self._source_changed)
        self.parameter_combo = QtWidgets.QComboBox()
        self.parameter_combo.setToolTip("Which table of the checkpoint (an embedding, decoder rows, label embeddings, "
                                        "subgraph2vec vectors)")
        self.parameter_combo.currentIndexChanged.connect(self._parameter_chosen)
        self.tap_combo = QtWidgets.QComboBox()
        self.tap_combo.currentIndexChanged.connect(push)
        self.annotation_combo = QtWidgets.QComboBox()
        self.annotation_combo.currentIndexChanged.connect(push)
        self.by_combo = QtWidgets.QComboBox()
        self.by_combo.setToolTip("A second annotation: rows are label pairs, and relations can be made from them")
        self.by_combo.currentIndexChanged.connect(push)
        self.file_button = QtWidgets.QPushButton("Choose file…")
        self.file_button.clicked.connect(self.choose_file)
        self.load_button = QtWidgets.QPushButton("Load")
        self.load_button.clicked.connect(self.load)
        self.summary = QtWidgets.QLabel()
        self.summary.setTextFormat(QtCore.Qt.TextFormat.PlainText)
        self.export_button = QtWidgets.QToolButton()
        self.export_button.setText("Export")
        self.export_button.setPopupMode(QtWidgets.QToolButton.ToolButtonPopupMode.InstantPopup)
        self.view_action = self.make_action("Export Embedding View…", self.choose_and_export_view, None,
                                            "The shown tab as PNG, SVG or PDF")
        self.data_action = self.make_action("Export Embedding Table…", self.choose_and_export_table, None,
                                            "The shown tab's table as CSV or NPY")
        self.fill_menu(self.export_button, [self.view_action, self.data_action])

        self.class_box = QtWidgets.QWidget()
        row = QtWidgets.QHBoxLayout(self.class_box)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(labelled("Tap", self.tap_combo))
        row.addWidget(labelled("Label", self.annotation_combo))
        row.addWidget(labelled("by", self.by_combo))
        self.parameter_box = labelled("Table", self.parameter_combo)
        top = QtWidgets.QHBoxLayout()
        top.addWidget(labelled("Source", self.source_combo))
        top.addWidget(self.parameter_box)
        top.addWidget(self.class_box)
        top.addWidget(self.file_button)
        top.addWidget(self.load_button)
        top.addWidget(self.summary, 1)
        top.addWidget(self.progress)
        top.addWidget(self.cancel_button)
        top.addWidget(self.export_button)

        self.tabs = QtWidgets.QTabWidget()
        self.tabs.addTab(self._neighbours_page(), "Neighbours")
        self.tabs.addTab(self._analogy_page(), "Analogy")
        self.tabs.addTab(self._relations_page(), "Relations")
        self.tabs.addTab(self._map_page(), "Map")
        self.build_page([top], self.tabs, "")
        self.stack.setCurrentIndex(1)
        self._source_changed()

    def _neighbours_page(self) -> QtWidgets.QWidget:
        page = QtWidgets.QWidget()
        self.token_edit = QtWidgets.QLineEdit()
        self.token_edit.setPlaceholderText("a token of the table")
        self.completer_model = QtCore.QStringListModel()
        completer = QtWidgets.QCompleter(self.completer_model, self)
        completer.setCaseSensitivity(QtCore.Qt.CaseSensitivity.CaseSensitive)
        self.token_edit.setCompleter(completer)
        self.token_edit.returnPressed.connect(lambda: self.show_neighbours(self.token_edit.text()))
        self.k_spin = QtWidgets.QSpinBox()
        self.k_spin.setRange(*K_RANGE)
        self.k_spin.setValue(10)
        self.k_spin.valueChanged.connect(self.binding.push)
        show = QtWidgets.QPushButton("Show")
        show.clicked.connect(lambda: self.show_neighbours(self.token_edit.text()))
        row = QtWidgets.QHBoxLayout()
        row.addWidget(labelled("Token", self.token_edit))
        row.addWidget(labelled("k", self.k_spin))
        row.addWidget(show)
        row.addStretch(1)
        self.neighbours_model = QtGui.QStandardItemModel(self)
        self.neighbours_view = _table_view(self.neighbours_model)
        layout = QtWidgets.QVBoxLayout(page)
        layout.addLayout(row)
        layout.addWidget(self.neighbours_view, 1)
        return page

    def _analogy_page(self) -> QtWidgets.QWidget:
        page = QtWidgets.QWidget()
        self.a_edit, self.a_star_edit, self.b_edit = (QtWidgets.QLineEdit() for _ in range(3))
        for edit, hint in ((self.a_edit, "a"), (self.a_star_edit, "a*"), (self.b_edit, "b")):
            edit.setPlaceholderText(hint)
            edit.setCompleter(self.token_edit.completer())
            edit.returnPressed.connect(self._ask_from_fields)
        self.method_combo = QtWidgets.QComboBox()
        for method in QUERY_METHODS:
            self.method_combo.addItem(METHOD_TITLES[method], method)
            self.method_combo.setItemData(self.method_combo.count() - 1, METHODS[method], QtCore.Qt.ItemDataRole.ToolTipRole)
        self.method_combo.currentIndexChanged.connect(self.binding.push)
        self.exclude_check = QtWidgets.QCheckBox("Exclude a, a*, b")
        self.exclude_check.setChecked(True)
        self.exclude_check.setToolTip("Premises never answer (the usual evaluation). Untick to see the offset method "
                                      "answer b itself when a and a* are close (Linzen 2016)")
        self.exclude_check.toggled.connect(self.binding.push)
        ask = QtWidgets.QPushButton("Answer")
        ask.clicked.connect(self._ask_from_fields)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.a_edit)
        row.addWidget(QtWidgets.QLabel(":"))
        row.addWidget(self.a_star_edit)
        row.addWidget(QtWidgets.QLabel("::"))
        row.addWidget(self.b_edit)
        row.addWidget(QtWidgets.QLabel(": ?"))
        row.addWidget(labelled("Method", self.method_combo))
        row.addWidget(self.exclude_check)
        row.addWidget(ask)
        self.answers_model = QtGui.QStandardItemModel(self)
        self.answers_view = _table_view(self.answers_model)
        layout = QtWidgets.QVBoxLayout(page)
        layout.addLayout(row)
        layout.addWidget(self.answers_view, 1)
        return page

    def _relations_page(self) -> QtWidgets.QWidget:
        page = QtWidgets.QWidget()
        self.relations_combo = QtWidgets.QComboBox()
        for key, title in RELATION_TITLES.items():
            self.relations_combo.addItem(title, key)
        self.relations_combo.currentIndexChanged.connect(self.binding.push)
        self.relations_file_button = QtWidgets.QPushButton("Relations file…")
        self.relations_file_button.clicked.connect(self.choose_relations_file)
        run = QtWidgets.QPushButton("Run every method")
        run.clicked.connect(self.run_relations)
        self.relations_note = QtWidgets.QLabel()
        self.relations_note.setTextFormat(QtCore.Qt.TextFormat.PlainText)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(labelled("Questions", self.relations_combo))
        row.addWidget(self.relations_file_button)
        row.addWidget(run)
        row.addWidget(self.relations_note, 1)
        self.report_model = QtGui.QStandardItemModel(self)
        self.report_view = _table_view(self.report_model)
        layout = QtWidgets.QVBoxLayout(page)
        layout.addLayout(row)
        layout.addWidget(self.report_view, 1)
        return page

    def _map_page(self) -> QtWidgets.QWidget:
        page = QtWidgets.QWidget()
        self.projection_combo = QtWidgets.QComboBox()
        self.projection_combo.addItem("PCA", "pca")
        self.projection_combo.addItem("UMAP", "umap")
        if not umap_available():
            item = self.projection_combo.model().item(1)
            item.setEnabled(False)
            item.setText("UMAP (pip install 'lstmviz[umap]')")
            item.setToolTip(UMAP_HINT)
        self.projection_combo.currentIndexChanged.connect(self.binding.push)
        draw = QtWidgets.QPushButton("Draw")
        draw.clicked.connect(self.draw_map)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(labelled("Projection", self.projection_combo))
        row.addWidget(draw)
        row.addStretch(1)
        self.map = EmbeddingMap()
        layout = QtWidgets.QVBoxLayout(page)
        layout.addLayout(row)
        layout.addWidget(self.map, 1)
        return page

    def menu_actions(self):
        return [self.view_action, self.data_action, None, self.cancel_action]

    # ------------------------------------------------------------------ state
    def state(self) -> EmbeddingState:
        return EmbeddingState(
            source=self.source_combo.currentData(), parameter=self.parameter_combo.currentData(),
            tap=self.tap_combo.currentText() or None, annotation=self.annotation_combo.currentText() or None,
            by=None if self.by_combo.currentText() in ("", NONE) else self.by_combo.currentText(),
            file=self.file, method=self.method_combo.currentData(), exclude=self.exclude_check.isChecked(),
            k=int(self.k_spin.value()), relations=self.relations_combo.currentData(),
            relations_file=self.relations_file, projection=self.projection_combo.currentData())

    def _store_state(self, state) -> None:
        self.workspace.set_panel_state(PANEL_NAME, state)

    def _panel_state_changed(self, name: str, state) -> None:
        if name == PANEL_NAME:
            self.binding.model_changed(state)

    def _show_state(self, state: EmbeddingState | None) -> None:
        if state is None:
            return
        self.file, self.relations_file = state.file, state.relations_file
        for combo, value in ((self.source_combo, state.source), (self.method_combo, state.method),
                             (self.relations_combo, state.relations), (self.projection_combo, state.projection),
                             (self.parameter_combo, state.parameter)):
            index = combo.findData(value)
            if index >= 0:
                combo.setCurrentIndex(index)
        for combo, value in ((self.tap_combo, state.tap), (self.annotation_combo, state.annotation),
                             (self.by_combo, state.by or NONE)):
            if value is not None and combo.findText(value) >= 0:
                combo.setCurrentText(value)
        self.exclude_check.setChecked(state.exclude)
        self.k_spin.setValue(state.k)
        self._source_changed()

    # ------------------------------------------------------------------ source
    def _recording_changed(self, recording=None) -> None:
        recording = self.workspace.recording
        taps = list(recording.taps) if recording is not None else []
        labels = [n for n, a in recording.annotations.items() if a.kind == "categorical" and a.labels] \
            if recording is not None else []
        with self.binding.batch():
            for combo, items in ((self.tap_combo, taps), (self.annotation_combo, labels),
                                 (self.by_combo, [NONE, *labels])):
                combo.clear()
                combo.addItems(items)
            hidden = [t for t in taps if t.endswith("/h")]
            if hidden:
                self.tap_combo.setCurrentText(hidden[-1])
            self.parameter_combo.clear()
        self.checkpoint_tables = None
        self.abandon()
        self.binding.push()

    def _source_changed(self, *_) -> None:
        source = self.source_combo.currentData()
        self.parameter_box.setVisible(source == "checkpoint")
        self.class_box.setVisible(source == "class-means")
        self.file_button.setVisible(source == "file")
        self.binding.push()

    def _parameter_chosen(self, *_) -> None:
        self.binding.push()
        parameter = self.parameter_combo.currentData()
        if self.binding.setting or self.checkpoint_tables is None or parameter is None:
            return
        if self.source_combo.currentData() == "checkpoint":
            self.set_table(self.checkpoint_tables.table(parameter))

    def choose_file(self) -> None:
        filters = "Embedding tables (*.csv *.tsv *.npy *.txt *.vec);;All files (*)"
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Embedding table", self.file or "", filters)
        if path:
            self.load_file(path)

    def load_file(self, path: str | Path) -> None:
        """Load the table file at ``path`` (source File)."""
        self.file = str(path)
        self.source_combo.setCurrentIndex(self.source_combo.findData("file"))
        self.load()

    def load(self) -> None:
        """Read the table the source controls name, on the worker."""
        settings = self.state()
        source = settings.source
        self.wants_dock.emit()
        self.set_status(f"Loading the table ({SOURCE_TITLES[source].lower()})…")
        recording = self.workspace.recording
        self.submit(CHANNEL, lambda task: load_job(source, recording, settings, task), on_finished=self._loaded,
                    what="load the embedding table", title="Cannot load the embedding table",
                    on_failed=self._failed, stage="load")

    def _loaded(self, result) -> None:
        kind, value = result
        if kind == "checkpoint":
            self.checkpoint_tables = value
            wanted = self.state().parameter
            with self.binding.batch():
                self.parameter_combo.clear()
                for c in value.candidates:
                    self.parameter_combo.addItem(f"{c.parameter} [{c.shape[0]:,} × {c.shape[1]}] {c.kind}", c.parameter)
                index = self.parameter_combo.findData(wanted if wanted in value.tables else value.default)
                self.parameter_combo.setCurrentIndex(max(0, index))
            self.binding.push()
            self.set_table(value.table(self.parameter_combo.currentData()))
        else:
            self.set_table(value)

    def _failed(self, exc) -> None:
        self.failed.emit(describe(exc))

    def set_table(self, table) -> None:
        """Show ``table`` (an EmbeddingTable): its names complete the token fields; the results are cleared."""
        self.table = table
        self.completer_model.setStringList(list(table.names))
        zero = f", {table.zero_rows} all-zero rows" if table.zero_rows else ""
        self.summary.setText(f"{table.source}: {len(table):,} rows × {table.dim}{zero}")
        self.summary.setToolTip(literal(table.source))
        self.neighbours, self.answers, self.report, self.projection = [], [], None, None
        for model in (self.neighbours_model, self.answers_model, self.report_model):
            model.clear()
        self.map.clear()
        self.set_status(f"Loaded {len(table):,} rows. Type a token (Neighbours), ask an analogy, run the relations or "
                        f"draw the map.")
        self.table_loaded.emit(table)

    # ------------------------------------------------------------------ neighbours and analogies
    def _need_table(self) -> bool:
        if self.table is None:
            self.set_status("Load a table first.", problem=True)
            return False
        return True

    def show_neighbours(self, token: str) -> list:
        """The ``k`` nearest rows of ``token`` in the Neighbours tab (and marked on the map)."""
        from lstmviz.analysis.analogy import nearest_neighbours

        if not self._need_table():
            return []
        token = str(token).strip()
        try:
            found = nearest_neighbours(self.table, token, int(self.k_spin.value()))
        except KeyError as exc:
            self.set_status(describe(exc), problem=True)
            return []
        if self.token_edit.text() != token:
            self.token_edit.setText(token)
        self.neighbours = found
        _fill(self.neighbours_model, ["rank", "name", "cosine"], [[i + 1, n, c] for i, (n, c) in enumerate(found)])
        self.map.mark([token, *(n for n, _ in found)])
        self.set_status(f"The {len(found)} nearest neighbours of {token} by cosine.")
        self.neighbours_shown.emit(found)
        return found

    def _ask_from_fields(self) -> None:
        self.ask(self.a_edit.text(), self.a_star_edit.text(), self.b_edit.text())

    def ask(self, a: str, a_star: str, b: str) -> list:
        """Answer ``a : a* :: b : ?`` with the chosen method and exclusion; the ranked answers in the Analogy tab."""
        from lstmviz.analysis.analogy import query

        if not self._need_table():
            return []
        words = [str(w).strip() for w in (a, a_star, b)]
        for edit, word in zip((self.a_edit, self.a_star_edit, self.b_edit), words):
            if edit.text() != word:
                edit.setText(word)
        method = self.method_combo.currentData()
        exclude = self.exclude_check.isChecked()
        try:
            found = query(self.table, *words, method, exclude=exclude, k=int(self.k_spin.value()))
        except KeyError as exc:
            self.set_status(describe(exc), problem=True)
            return []
        self.answers = found
        _fill(self.answers_model, ["rank", "answer", "score"], [[i + 1, n, s] for i, (n, s) in enumerate(found)])
        self.map.mark([*words, *(n for n, _ in found[:3])])
        self.set_status(f"{words[0]} : {words[1]} :: {words[2]} : {found[0][0] if found else '?'}  "
                        f"({METHOD_TITLES[method]}, premises {'excluded' if exclude else 'not excluded'})")
        self.answers_shown.emit(found)
        return found

    # ------------------------------------------------------------------ relations and map
    def choose_relations_file(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Relations (Google-analogy format)",
                                                        self.relations_file or "", "Text files (*.txt);;All files (*)")
        if path:
            self.relations_file = path
            self.relations_combo.setCurrentIndex(self.relations_combo.findData("file"))
            self.binding.push()

    def run_relations(self) -> None:
        """Evaluate every method on the chosen relations (worker); the table arrives in the Relations tab."""
        if not self._need_table():
            return
        table, settings = self.table, self.state()
        self.set_status("Answering every question with every method…")
        self.submit(CHANNEL, lambda task: relations_job(table, settings, task), on_finished=self._report_arrived,
                    what="evaluate the relations", title="Cannot evaluate the relations", on_failed=self._failed,
                    stage="relations")

    def _report_arrived(self, report) -> None:
        self.report = report
        headers = ["relation", "questions", *(METHOD_TITLES[m] for m in report.methods), "chance"]
        rows = []
        for r in report.rows():
            every = r == "all"
            rows.append([r, sum(report.questions.values()) if every else report.questions[r],
                         *(f"{100 * report.accuracy(None if every else r, m):.1f} %" for m in report.methods),
                         f"{100 * (report.overall_chance() if every else report.chance[r]):.3f} %"])
        _fill(self.report_model, headers, rows)
        self.report_view.resizeColumnsToContents()
        skipped = sum(report.skipped.values())
        note = (f"premises {'excluded' if report.exclude else 'NOT excluded'}; accuracy in %; chance = 1 / candidates"
                + (f"; {skipped} question(s) with a word the table lacks were skipped" if skipped else ""))
        self.relations_note.setText(note)
        self.set_status(f"{sum(report.questions.values()):,} questions in {len(report.relations)} relations; {note}.")
        self.report_ready.emit(report)

    def draw_map(self) -> None:
        """Project the table to 2-D (worker) and draw it in the Map tab."""
        if not self._need_table():
            return
        table, method = self.table, self.projection_combo.currentData()
        self.submit(CHANNEL, lambda task: projection_job(table, method, task), on_finished=self._projection_arrived,
                    what=f"draw the {method.upper()} map", title="Cannot draw the map", on_failed=self._failed,
                    stage=method.upper())

    def _projection_arrived(self, projection) -> None:
        self.projection = projection
        if projection.explained is not None:
            titles = tuple(f"PC{j + 1} ({100 * projection.explained[j]:.1f} % of the variance)" for j in range(2))
        else:
            titles = ("UMAP 1", "UMAP 2")
        self.map.set_points(projection.xy, self.table.names, titles, f"{projection.method.upper()} of the unit rows")
        marked = [self.token_edit.text(), *(n for n, _ in self.neighbours)] if self.neighbours else \
            [self.a_edit.text(), self.a_star_edit.text(), self.b_edit.text(), *(n for n, _ in self.answers[:3])]
        self.map.mark([m for m in marked if m])
        self.set_status(f"{projection.method.upper()} map of {len(self.table):,} rows.")
        self.projection_ready.emit(projection)

    # ------------------------------------------------------------------ exports
    def current_tab(self) -> str:
        return TABS[self.tabs.currentIndex()]

    def _tab_page(self, tab: str) -> QtWidgets.QWidget:
        return self.tabs.widget(TABS.index(tab))

    def export_view(self, path: str | Path, tab: str | None = None) -> Path:
        """The tab (default: the shown one) as PNG, SVG or PDF."""
        tab = tab or self.current_tab()
        if self.table is None:
            raise ValueError("There is no table yet: load one first.")
        page = self._tab_page(tab)
        if not page.isVisible():
            self.tabs.setCurrentIndex(TABS.index(tab))
        return export_widget(page, path)

    def table_columns(self, tab: str | None = None) -> dict:
        tab = tab or self.current_tab()
        if tab == "neighbours" and self.neighbours:
            return {"rank": list(range(1, len(self.neighbours) + 1)), "name": [n for n, _ in self.neighbours],
                    "cosine": [c for _, c in self.neighbours]}
        if tab == "analogy" and self.answers:
            method = self.method_combo.currentData()
            return {"rank": list(range(1, len(self.answers) + 1)), "answer": [n for n, _ in self.answers],
                    "score": [s for _, s in self.answers], "method": [method] * len(self.answers),
                    "exclude_premises": [self.exclude_check.isChecked()] * len(self.answers)}
        if tab == "relations" and self.report is not None:
            return self.report.table()
        if tab == "map" and self.projection is not None:
            return {"name": list(self.table.names), "x": self.projection.xy[:, 0], "y": self.projection.xy[:, 1]}
        what = {"neighbours": "neighbours", "analogy": "answers", "relations": "relation accuracies", "map": "map"}[tab]
        raise ValueError(f"There are no {what} to export yet.")

    def export_table(self, path: str | Path, tab: str | None = None) -> Path:
        """The tab's table (default: the shown one) as CSV or NPY."""
        return export_table(path, self.table_columns(tab))

    def choose_and_export_view(self) -> bool:
        path, chosen = QtWidgets.QFileDialog.getSaveFileName(
            self, "Export embedding view", self.default_path(f"embedding-{self.current_tab()}.png"),
            ";;".join(VIEW_FORMATS.values()))
        if not path:
            return False
        return self.export_guarded("Cannot export", lambda: self.export_view(with_suffix(path, chosen, VIEW_FORMATS)))

    def choose_and_export_table(self) -> bool:
        path, chosen = QtWidgets.QFileDialog.getSaveFileName(
            self, "Export embedding table", self.default_path(f"embedding-{self.current_tab()}.csv"),
            ";;".join(DATA_FORMATS.values()))
        if not path:
            return False
        return self.export_guarded("Cannot export", lambda: self.export_table(with_suffix(path, chosen, DATA_FORMATS)))

    def focus(self) -> QtWidgets.QWidget:
        return self.token_edit
