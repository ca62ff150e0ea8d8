"""The one-line description of what is under the pointer, shared by the plot and the status bar."""

from __future__ import annotations

from lstmviz.qt.plain_text import escape
from lstmviz.qt.token_text import display_token
from lstmviz.workspace.hover import Hover


def describe_hover(hover: Hover) -> str:
    """HTML naming the hovered position, item, token, nearest unit and annotation labels."""
    parts = [
        f"position {hover.position:,}",
        f"item {hover.item:,}",
        f"token <b>{escape(display_token(hover.token))}</b>",
    ]
    if hover.unit is not None:
        parts.append(f"unit <b>{hover.unit}</b> = {hover.value:.4g}")
    parts += [f"{escape(name)}: {escape(label)}" for name, label in hover.labels.items()]
    return " · ".join(parts)
