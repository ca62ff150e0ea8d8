"""The Image panel: an item's input image with a heatmap of a feature map's units over it, box brushing
with the box Select rule, the top-activating images of the selected units, and image match (issue 16).

``panel`` (the dock's widget), ``canvas`` (the image, the overlay, the box and receptive-field outlines,
gestures), ``thumbnails`` (image thumbnails with one box outlined), ``data`` (what the panel reads from
a recording; Qt-free), ``state`` (its part of the workspace file, Qt-free). Registered as ``PANEL``
(``lstmviz.qt.panels``). Analysis: ``lstmviz.analysis.image_regions`` (box selection), ``image_match`` (match) and
``lstmviz.analysis.image_top`` (top-activating images).
"""

from lstmviz.qt.image.state import IMAGE_STATE
from lstmviz.qt.panel_description import PanelDescription

PANEL = PanelDescription(name="image", title="Image", widget="lstmviz.qt.image.panel:ImagePanel", area="bottom",
                         group="results", order=75, scroll=False, size=0.5, menu="&Analysis", state=IMAGE_STATE)
