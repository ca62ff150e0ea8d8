"""The desktop GUI: the only package of lstmviz that imports PySide6 or pyqtgraph.

Entry points live in ``lstmviz.qt.app`` (``run`` and ``screenshot``). The state of the GUI lives in
one evented, Qt-free model (``lstmviz.workspace.model.WorkspaceModel``); ``lstmviz.qt.workspace``
forwards its events as Qt signals, and every view is built from it and subscribes to them. Each dock is
a panel: a folder here with one registered description (``lstmviz.qt.panels``). Importing this package
imports no Qt module.
"""
