"""The Selection panel: the active pane's selected units and the ranked candidates (``panel``,
``table_models``). Registered as ``PANEL`` (``lstmviz.qt.panels``)."""

from lstmviz.qt.panel_description import PanelDescription

PANEL = PanelDescription(name="selection", title="Selection", widget="lstmviz.qt.selection.panel:SelectionPanel",
                         area="right", group="side", order=10, visible=True, size=330)
