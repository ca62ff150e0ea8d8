"""The Attention panel: for the current item of a sequence-to-sequence recording, the attention matrix
(decoder steps × source tokens) and the distribution of the selected decoder step over the source (issue 18).

``panel`` (the dock's widget). It reads taps whose units are the item's source positions (tap attribute
``units_are = "positions"``, e.g. ``decoder/attention``) through ``lstmviz.analysis.attention``.
Registered as ``PANEL`` (``lstmviz.qt.panels``).
"""

from lstmviz.qt.panel_description import PanelDescription

PANEL = PanelDescription(name="attention", title="Attention", widget="lstmviz.qt.attention.panel:AttentionPanel",
                         area="bottom", group="results", order=80, scroll=False, size=0.45)
