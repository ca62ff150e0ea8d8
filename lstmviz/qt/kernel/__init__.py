"""The NTK spectrum panel: the eigen-spectrum of the recording's model's tangent kernel on its items, with
the label energy per eigendirection (Bietti & Mairal's spectral bias; Baratin et al.'s alignment).

``panel`` (the dock's widget), ``views`` (``SpectrumView``; ``KernelCurvesView``, which the Probes panel
shows beside its probe curves over training). Registered as ``PANEL`` (``lstmviz.qt.panels``).
"""

from lstmviz.qt.panel_description import PanelDescription

PANEL = PanelDescription(name="kernel", title="NTK spectrum", widget="lstmviz.qt.kernel.panel:KernelPanel",
                         area="bottom", group="results", order=85, scroll=False, size=0.45, menu="&Analysis")
