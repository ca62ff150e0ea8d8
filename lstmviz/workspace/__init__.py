"""The workspace: what the user is looking at, as a Qt-free, evented model and a versioned file.

``model.WorkspaceModel`` holds the open recordings, the window of positions, the panes (each naming the
recording it shows), the selection, the hover and each panel's saved settings, and announces every
change through ``events`` (``lstmviz.workspace.events``). ``file`` saves and loads it
(``save_workspace``, ``load_workspace``: JSON, version 2, version 1 files migrated), ``state`` holds the
saved types, ``panel_state`` the way a panel's part of the file is described. The GUI's Qt face is
``lstmviz.qt.workspace``; nothing here imports Qt.
"""
