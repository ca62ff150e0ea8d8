"""The Graph panel: the current item's graph, brushing node sets, the node-set Select rule and the graph
match (issue 15).

``panel`` (the dock's widget), ``canvas`` (nodes, edges, brushing), ``thumbnails`` (the grid of the top
matches), ``data`` (what the panel reads from a recording: graph axes, item geometry, cached layouts and
corpora; Qt-free), ``state`` (its part of the workspace file, Qt-free). Registered as ``PANEL``
(``lstmviz.qt.panels``). Analysis: ``lstmviz.analysis.graph_selection`` and ``graph_match``.
"""

from lstmviz.qt.graph.state import GRAPH_STATE
from lstmviz.qt.panel_description import PanelDescription

PANEL = PanelDescription(name="graph", title="Graph", widget="lstmviz.qt.graph.panel:GraphPanel", area="bottom",
                         group="results", order=70, scroll=False, size=0.5, menu="&Analysis", state=GRAPH_STATE)
