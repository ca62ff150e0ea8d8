"""Panels as plug-ins: each dock of the main window is one folder under ``lstmviz/qt/`` with one
registered ``PanelDescription``.

A panel's folder exposes ``PANEL`` in its ``__init__.py``: the dock (title, area, the docks it is tabbed
with, whether it starts open, whether it scrolls), the widget to build (``"module:Class"``, imported
only when a window builds the dock, so the description is cheap and Qt-free), the menu its actions go
in, and its versioned part of the workspace file (a ``PanelStateFormat``; registered with the
workspace model when the panel is). The main window, closing, ``--screenshot`` and the workspace file
loop over ``panels()``; none of them names a panel.

The panel widget is built as ``Class(workspace)`` (the Qt ``Workspace``) and may have, all optional:

- ``menu_actions()``: the actions of its menu, in order (None for a separator);
- ``wants_dock``: a signal the panel emits when it has something to show (the window opens its dock);
- ``busy``: whether it is computing (``--screenshot`` waits until no panel is);
- ``restore_work()``: for ``--screenshot`` of a restored workspace, start what the saved workspace showed
  (e.g. the match of the saved selection);
- ``in_front()``: whether its dock goes in front after a workspace was restored;
- ``focus()``: where the keyboard goes when the dock is opened from a menu (e.g. the search field);
- ``shutdown()``: cancel its work before the worker threads stop (closing the window).

Built-in panels are registered here (``BUILT_IN``: one name each); a third-party package registers its
own with an entry point in the group ``lstmviz.panels`` naming its description.
"""

from __future__ import annotations

from lstmviz.qt import attention, embedding, find, graph, image, info, kernel, match, perturb, probes, selection
from lstmviz.qt.panel_description import AREAS, PanelDescription
from lstmviz.registry import Registry
from lstmviz.workspace.panel_state import register_panel_state, unregister_panel_state

PANELS: Registry[PanelDescription] = Registry("lstmviz.panels", "panel")


def register_panel(description: PanelDescription) -> PanelDescription:
    """Register a panel (and its part of the workspace file)."""
    if description.area not in AREAS:
        raise ValueError(f"panel {description.name!r}: area must be one of {', '.join(AREAS)}, got "
                         f"{description.area!r}")
    if description.state is not None and description.state.name != description.name:
        raise ValueError(f"panel {description.name!r} saves its state as {description.state.name!r}; "
                         "a panel's state has the panel's name")
    PANELS.register(description)
    if description.state is not None:
        register_panel_state(description.state)
    return description


def unregister_panel(name: str) -> None:
    """Forget a panel and its part of the workspace file (a plug-in being reloaded; tests)."""
    description = PANELS._specs.pop(name, None)
    if description is not None and description.state is not None:
        unregister_panel_state(description.state.name)


#: the panels of lstmviz itself, registered when this module is imported
BUILT_IN = tuple(register_panel(package.PANEL) for package in (selection, info, find, match, probes, perturb, graph, image,
                                                                   attention, kernel, embedding))


def panels() -> list[PanelDescription]:
    """Every registered panel, in ``order`` (then by name); plug-ins' states are registered too."""
    found = list(PANELS.all().values())
    for description in found:
        if description.state is not None:
            register_panel_state(description.state)
    return sorted(found, key=lambda d: (d.order, d.name))
