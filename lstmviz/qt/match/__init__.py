"""The Match panel: search the whole corpus for a pane's hypothesis and study the results.

``panel`` (the dock's widget), ``view`` / ``table_model`` (one row per match), ``aggregate_view`` (an
annotation around the matches), ``figure`` (the exported figure), ``state`` (its part of the workspace
file, Qt-free). Registered as ``PANEL`` (``lstmviz.qt.panels``).
"""

from lstmviz.qt.match.state import MATCH_STATE
from lstmviz.qt.panel_description import PanelDescription

PANEL = PanelDescription(name="match", title="Match", widget="lstmviz.qt.match.panel:MatchPanel", area="bottom",
                         group="results", order=40, scroll=True, size=0.45, menu="&Match", state=MATCH_STATE)
