"""Per-character annotations of Python source from the ``tokenize`` module.

``annotate_source(text)`` labels every character of ``text`` with

* ``token_type``: the tokenize type of the token that covers the character (``NAME``, ``OP``,
  ``STRING``, ...); characters between tokens are ``WHITESPACE``, except an explicit line
  continuation (the backslash and its newline), which is ``CONTINUATION``;
* ``bracket_depth``: the number of ``(``, ``[``, ``{`` operator tokens opened and not yet closed
  after reading the character (so an opening bracket already counts itself and a closing bracket no
  longer does); brackets inside strings and comments are not tokens and do not count;
* ``indent_level``: the block level of the logical line, i.e. INDENT minus DEDENT tokens in effect.
  tokenize emits DEDENT only at the next statement, so blank and comment-only lines carry the level
  that is in effect before them; continuation lines carry the level of their logical line.
"""

from __future__ import annotations

import io
import tokenize
from dataclasses import dataclass

import numpy as np

TOKEN_TYPES = (
    "WHITESPACE", "CONTINUATION", "NAME", "NUMBER", "STRING", "OP", "COMMENT", "NEWLINE", "NL", "INDENT",
    # Python 3.12+ splits f-strings (3.14+ t-strings) into these; earlier versions emit one STRING.
    "FSTRING_START", "FSTRING_MIDDLE", "FSTRING_END", "TSTRING_START", "TSTRING_MIDDLE", "TSTRING_END",
    "OTHER",  # anything else tokenize may emit with a width (e.g. ERRORTOKEN)
)
BRACKET_CAP = 7  # stdlib nests brackets at most 7 deep; the last label collects everything deeper
INDENT_CAP = 10  # and indents at most 10 levels
BRACKET_LABELS = tuple(str(d) for d in range(BRACKET_CAP)) + (f"{BRACKET_CAP}+",)
INDENT_LABELS = tuple(str(d) for d in range(INDENT_CAP)) + (f"{INDENT_CAP}+",)

_TYPE_ID = {name: i for i, name in enumerate(TOKEN_TYPES)}
_WS, _CONT, _OTHER = _TYPE_ID["WHITESPACE"], _TYPE_ID["CONTINUATION"], _TYPE_ID["OTHER"]
_OPENING, _CLOSING = frozenset("([{"), frozenset(")]}")


@dataclass
class SourceAnnotations:
    """int8 label ids, one per character."""

    token_type: np.ndarray
    bracket_depth: np.ndarray
    indent_level: np.ndarray


def code_points(text: str) -> np.ndarray:
    """The Unicode code point of every character (uint32)."""
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def line_starts(codes: np.ndarray) -> np.ndarray:
    """Offset of the first character of every line (lines end at ``\\n``, as tokenize reads them)."""
    return np.concatenate([[0], np.flatnonzero(codes == 10) + 1]).astype(np.int64)


def annotate_source(text: str) -> SourceAnnotations:
    """Annotate every character of ``text`` (see the module docstring).

    Raises ``tokenize.TokenError`` or ``SyntaxError`` (e.g. inconsistent dedent) if tokenize fails.
    """
    codes = code_points(text)
    lines = line_starts(codes).tolist()
    starts: list[int] = []
    ends: list[int] = []
    types: list[int] = []
    depths: list[int] = []
    levels: list[int] = []
    depth = level = 0
    tok_name = tokenize.tok_name
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        kind = tok.type
        if kind == tokenize.INDENT:
            level += 1
        elif kind == tokenize.DEDENT:
            level -= 1
            continue
        if not tok.string:  # zero width: ENDMARKER, the NEWLINE added at the end of a file
            continue
        if kind == tokenize.OP:
            if tok.string in _OPENING:
                depth += 1
            elif tok.string in _CLOSING:
                depth = max(depth - 1, 0)
        (srow, scol), (erow, ecol) = tok.start, tok.end
        starts.append(lines[srow - 1] + scol)
        ends.append(lines[erow - 1] + ecol)
        types.append(_TYPE_ID.get(tok_name[kind], _OTHER))
        depths.append(depth)
        levels.append(level)
    return _spread(codes, np.asarray(starts, np.int64), np.asarray(ends, np.int64), np.asarray(types, np.int8),
                   np.asarray(depths, np.int64), np.asarray(levels, np.int64))


def _spread(codes: np.ndarray, starts: np.ndarray, ends: np.ndarray, types: np.ndarray, depths: np.ndarray,
            levels: np.ndarray) -> SourceAnnotations:
    """Token-level values -> character-level labels."""
    n = len(codes)
    if not len(starts):  # nothing but whitespace
        z = np.zeros(n, np.int8)
        return SourceAnnotations(np.full(n, _WS, np.int8), z, z.copy())
    pos = np.arange(n)
    # the last token starting at or before each character (-1 before the first token)
    idx = np.searchsorted(starts, pos, side="right") - 1
    has_prev = idx >= 0
    prev = np.maximum(idx, 0)
    covered = has_prev & (pos < ends[prev])

    token_type = np.where(covered, types[prev], _WS).astype(np.int8)
    gap = ~covered
    backslash = gap & (codes == ord("\\"))
    after = np.zeros(n, bool)
    after[1:] = backslash[:-1] & gap[1:] & (codes[1:] == 10)
    token_type[backslash | after] = _CONT

    # between tokens the depth is the one after the previous token
    depth = np.where(has_prev, depths[prev], 0)
    # a gap takes the level of the next token (a dedented line's indentation belongs to the new level)
    nxt = np.minimum(idx + 1, len(starts) - 1)
    level = np.where(covered, levels[prev], np.where(idx + 1 < len(starts), levels[nxt], 0))
    return SourceAnnotations(
        token_type=token_type,
        bracket_depth=np.minimum(depth, BRACKET_CAP).astype(np.int8),
        indent_level=np.minimum(level, INDENT_CAP).astype(np.int8),
    )
