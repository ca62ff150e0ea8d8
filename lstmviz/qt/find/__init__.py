"""The Find panel: search the recording's tokens for a phrase or a regular expression (``panel``).
Registered as ``PANEL`` (``lstmviz.qt.panels``)."""

from lstmviz.qt.panel_description import PanelDescription

PANEL = PanelDescription(name="find", title="Find", widget="lstmviz.qt.find.panel:FindPanel", area="bottom",
                         order=30)
