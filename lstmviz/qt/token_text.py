"""How a token string is shown on screen: whitespace and control characters become visible glyphs.

Character-level models read newlines, spaces and tabs as tokens; drawn as they are they would be
invisible. ``display_token`` maps them to glyphs ("⏎", "·", "⇥") so a character model stays readable.
"""

from __future__ import annotations

_GLYPHS = {
    "\n": "⏎",
    "\r": "␍",
    " ": "·",
    "\t": "⇥",
    "\u00a0": "⍽",
}


def display_token(token: str) -> str:
    """The text to draw for a token: whitespace shown as glyphs, other control characters as '�'."""
    if token == "":
        return "∅"
    out = []
    for char in token:
        glyph = _GLYPHS.get(char)
        if glyph is not None:
            out.append(glyph)
        elif ord(char) < 32 or ord(char) == 127:
            out.append("�")
        else:
            out.append(char)
    return "".join(out)
