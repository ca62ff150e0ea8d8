"""What a drag or click on a pane's token row means: brush a range, or move a padding edge.

Positions are snapped to whole tokens and kept inside the item where the gesture started (a brush
never crosses an item boundary, and off-padding beyond the item would constrain nothing). A drag that
starts on a padding handle (``TokenAxis.handle_at``) sets that side's padding; any other drag brushes
``[first, last]`` of the tokens it covers, updating the pane on every move; a click brushes one token.
"""

from __future__ import annotations

from lstmviz.qt.pane import Pane
from lstmviz.qt.token_axis import TokenAxis, TokenDrag


def brush_range(anchor: int, x: float, item: tuple[int, int]) -> tuple[int, int]:
    """``[start, stop)`` from the token at ``anchor`` to the one under data x, inside ``item``."""
    low, high = sorted((int(anchor), round(x)))
    low = max(low, item[0])
    high = min(high, item[1] - 1)
    return low, max(low, high) + 1


def padding_from(side: str, x: float, brush: tuple[int, int], item: tuple[int, int]) -> int:
    """The padding width that puts ``side``'s outer edge on the token boundary nearest to data x."""
    boundary = round(x + 0.5)  # boundary b lies between positions b-1 and b, at x = b - 0.5
    if side == "left":
        return max(0, min(brush[0] - boundary, brush[0] - item[0]))
    return max(0, min(boundary - brush[1], item[1] - brush[1]))


class BrushGesture:
    """Turns a token row's drags and clicks into brush and padding changes of one pane."""

    def __init__(self, pane: Pane, axis: TokenAxis):
        self.pane = pane
        self.axis = axis
        self._mode: str | None = None  # "brush", "left", "right" while a drag runs
        self._anchor = 0
        self._item = (0, 0)
        axis.dragged.connect(self.drag)
        axis.clicked.connect(self.click)

    def _item_at(self, position: int) -> tuple[int, int] | None:
        ws = self.pane.workspace
        if ws.recording is None or not 0 <= position < ws.n_positions:
            return None
        return ws.item_range(int(ws.recording.item_of(position)))

    def click(self, x: float) -> None:
        item = self._item_at(round(x))
        if item is not None:
            self.pane.set_brush(*brush_range(round(x), x, item))

    def drag(self, drag: TokenDrag) -> None:
        if drag.is_start:
            self._begin(drag)
        if self._mode == "brush":
            self.pane.set_brush(*brush_range(self._anchor, drag.x, self._item))
        elif self._mode in ("left", "right") and self.pane.brush is not None:
            width = padding_from(self._mode, drag.x, self.pane.brush, self._item)
            if self._mode == "left":
                self.pane.set_padding(width, self.pane.pad_right)
            else:
                self.pane.set_padding(self.pane.pad_left, width)
        if drag.is_finish:
            self._mode = None

    def _begin(self, drag: TokenDrag) -> None:
        self._mode = None
        side = self.axis.handle_at(drag.start_x) if self.pane.brush is not None else None
        if side is not None:
            item = self._item_at(self.pane.brush[0])
            if item is not None:
                self._mode, self._item = side, item
            return
        anchor = round(drag.start_x)
        item = self._item_at(anchor)
        if item is not None:
            self._mode, self._anchor, self._item = "brush", anchor, item
