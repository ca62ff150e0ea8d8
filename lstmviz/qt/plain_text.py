"""Text from a file or the command line, shown as the characters it is made of.

Qt guesses whether a string is rich text (``Qt::mightBeRichText``) in labels, message boxes and
tooltips, and pyqtgraph's titles, axis labels and ``TextItem.setHtml`` are always HTML. Rich text may
name an image (``<img src=...>``) that Qt then opens from disk: a tap, a token or a file named
``<img src=x.fifo>`` would make the window open a local file, and a FIFO hangs it. So every name,
token, label, path or message that comes from a recording, a workspace file or the command line is
shown through one of these:

- ``escape(text)``: inside HTML that we write ourselves (``f"<b>{escape(tap)}</b>"``), and in
  pyqtgraph titles / axis labels, which are HTML;
- ``literal(text)``: a whole string for a tooltip or any other place where Qt guesses the format;
- ``plain_label(text)`` / ``set_plain(label, text)``: a ``QLabel`` that never reads its text as HTML.
"""

from __future__ import annotations

import html

from PySide6 import QtCore, QtWidgets

PLAIN = QtCore.Qt.TextFormat.PlainText


def escape(text) -> str:
    """``text`` (anything; ``str()`` of it) as HTML that shows exactly its characters."""
    return html.escape(str(text), quote=True)


def literal(text) -> str:
    """Rich text that shows ``text`` literally, line breaks kept: for tooltips and other guessed formats.

    Qt reads a string as HTML when its first line looks like a tag; this one always is HTML, with the
    text escaped inside, so neither ``<img ...>`` nor ``&amp;`` in a name is taken as markup.
    """
    text = str(text)
    if not text:
        return ""
    return f"<span style='white-space:pre-wrap'>{escape(text)}</span>"


def plain_label(text: str = "", parent: QtWidgets.QWidget | None = None) -> QtWidgets.QLabel:
    """A label that shows its text as plain text, whatever it looks like."""
    label = QtWidgets.QLabel(parent)
    label.setTextFormat(PLAIN)
    label.setText(str(text))
    return label


def set_plain(label: QtWidgets.QLabel, text) -> None:
    """Show ``text`` in ``label`` as plain text."""
    label.setTextFormat(PLAIN)
    label.setText(str(text))
