"""A workspace as a ``WorkspaceState`` (what a workspace file holds) and back.

``restore_workspace`` opens the recording, drops what does not fit it (``restore_valid`` says what, in
sentences the window shows in a dialog) and restores the rest: panes, window, active pane, match
settings, visible annotation tracks, the aggregated annotation and the Probes panel's settings (the
panel, following ``Workspace.probe_state``, runs the probes again on its worker when a result was
shown, and reopens the probe that was open).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from lstmviz.analysis.workspace_file import WorkspaceState, restore_valid
from lstmviz.qt.pane_model import Pane

if TYPE_CHECKING:
    from lstmviz.qt.workspace import Workspace


def workspace_state(ws: Workspace) -> WorkspaceState:
    """What ``ws`` shows now; ValueError without an open recording."""
    if ws.recording is None:
        raise ValueError("no recording is open: there is no workspace to save")
    return WorkspaceState(
        recording=str(Path(ws.recording.path).resolve()),
        window_start=int(ws.window_start),
        window_width=int(ws.window_width),
        panes=[pane.state() for pane in ws.panes],
        active_pane=int(ws.active_index),
        match=ws.match_settings,
        annotations=list(ws.visible_annotations),
        aggregate_annotation=ws.aggregate_annotation,
        probes=ws.probe_state,
    )


def restore_workspace(ws: Workspace, state: WorkspaceState, path=None) -> list[str]:
    """Open ``path`` (default: the state's recording) in ``ws`` and restore ``state`` on it.

    Opening failures propagate (the previous recording stays open). Returns a sentence for every part
    of the state that did not fit the recording and was left out.
    """
    ws.open(path if path is not None else state.recording)
    valid, problems = restore_valid(state, ws.recording)
    # what does not depend on the panes first, so the views lay out the panes once
    ws.set_window_width(valid.window_width)
    ws.set_window_start(valid.window_start)
    ws.set_match_settings(valid.match)
    ws.set_visible_annotations(valid.annotations)
    ws.set_aggregate_annotation(valid.aggregate_annotation)
    panes: list[Pane] = []
    for i, pane_state in enumerate(valid.panes):
        pane = Pane(ws, pane_state.tap, parent=ws)
        try:
            pane.apply_state(pane_state)
        except (ValueError, KeyError) as exc:
            problems.append(f"pane {i}: {exc}; the pane was left out")
            pane.deleteLater()
            continue
        panes.append(pane)
    if panes:
        ws.replace_panes(panes, valid.active_pane)
    elif state.panes:
        problems.append("no pane of the workspace fits this recording; it shows the default pane")
    if valid.probes is not None:  # a file without probe settings leaves the panel's defaults
        ws.set_probe_state(valid.probes)
    return problems
