"""What a panel registers: ``PanelDescription`` (Qt-free, so a panel's folder can describe itself without
importing Qt; see ``lstmviz.qt.panels`` for what the window does with it)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module

from lstmviz.workspace.panel_state import PanelStateFormat

#: where a dock may sit
AREAS = ("right", "bottom")


@dataclass(frozen=True)
class PanelDescription:
    """One panel of the main window (see the module docstring)."""

    #: unique; the dock's object name and the key of its state in the workspace file
    name: str
    #: the dock's title
    title: str
    #: the widget, as ``"package.module:Class"``
    widget: str
    #: the dock area: "right" or "bottom"
    area: str = "bottom"
    #: docks of one group share their place as tabs (the first one opened takes ``share`` of the window)
    group: str = ""
    #: docks are made, tabbed and listed (View menu) in this order
    order: int = 100
    #: open when the window opens (else closed until it has something to show or the View menu opens it)
    visible: bool = False
    #: the panel sits in a scroll area (a wide row of controls may then be scrolled)
    scroll: bool = False
    #: its first size across the dock area, in pixels (right docks: width), or a share of the window
    #: (bottom docks: height) given as a fraction; 0 for Qt's choice
    size: float = 0
    #: the menu its ``menu_actions()`` go in (None: none)
    menu: str | None = None
    #: its part of the workspace file (None: it saves nothing)
    state: PanelStateFormat | None = None

    def widget_class(self):
        """The widget's class (imports its module)."""
        module, _, name = self.widget.partition(":")
        return getattr(import_module(module), name)
