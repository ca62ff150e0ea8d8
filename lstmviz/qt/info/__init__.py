"""The Recording panel: what the open recording is — file, provenance, taps and annotations (``panel``).
Registered as ``PANEL`` (``lstmviz.qt.panels``)."""

from lstmviz.qt.panel_description import PanelDescription

PANEL = PanelDescription(name="info", title="Recording", widget="lstmviz.qt.info.panel:InfoPanel", area="right",
                         group="side", order=20, visible=True)
