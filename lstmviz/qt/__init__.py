"""The desktop GUI: the only package of lstmviz that imports PySide6 or pyqtgraph.

Entry points live in ``lstmviz.qt.app`` (``run`` and ``screenshot``). The state of the GUI lives in
one evented model, ``lstmviz.qt.workspace.Workspace``; every view is built from it and subscribes to
its signals. Importing this package imports no Qt module.
"""
