"""The Probes panel: how linearly decodable a label is from each tap.

``panel`` (the dock's widget), ``chart`` (accuracy per tap), ``detail`` (one probe), ``curves_view``
(accuracy over training), ``figure`` (the exported detail), ``state`` (its part of the workspace file,
Qt-free). Registered as ``PANEL`` (``lstmviz.qt.panels``).
"""

from lstmviz.qt.panel_description import PanelDescription
from lstmviz.qt.probes.state import PROBE_STATE

PANEL = PanelDescription(name="probes", title="Probes", widget="lstmviz.qt.probes.panel:ProbePanel",
                         area="bottom", group="results", order=50, scroll=True, size=0.45, menu="&Analysis",
                         state=PROBE_STATE)
