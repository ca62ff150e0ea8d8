"""The Perturb panel: edit hidden states of the live model on an item and see what changes (issue 13).

``panel`` (the dock's widget), ``views`` (the effect curves, Δ heatmap, Δ norm per layer, top-k table,
alpha sweep and the batch histogram), ``jobs`` (the worker's jobs over ``lstmviz.perturb``), ``state``
(its part of the workspace file, Qt-free). Registered as ``PANEL`` (``lstmviz.qt.panels``).
"""

from lstmviz.qt.panel_description import PanelDescription
from lstmviz.qt.perturb.state import PERTURB_STATE

PANEL = PanelDescription(name="perturb", title="Perturb", widget="lstmviz.qt.perturb.panel:PerturbPanel",
                         area="bottom", group="results", order=60, scroll=True, size=0.45, menu="&Analysis",
                         state=PERTURB_STATE)
