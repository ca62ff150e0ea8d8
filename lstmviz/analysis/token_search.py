"""Text search over a recording's tokens: a phrase of whole tokens, or a regular expression over the text.

Both searches read the token ids in blocks of whole items (never the whole corpus at once), report
progress to a ``Task`` after every block, and never match across an item boundary. Results come in
corpus order and stop at ``limit``.
"""

from __future__ import annotations

import re

import numpy as np

from lstmviz.tasks import Task, ensure_task

#: positions of token ids read per block
BLOCK_POSITIONS = 1 << 20
_SPECIAL = re.compile(r"<[^<>\s]+>")


class SearchError(ValueError):
    """A search the user typed that cannot run (an empty phrase, an invalid regular expression)."""


def is_character_vocab(vocab: list[str]) -> bool:
    """True when every token is one character, apart from special tokens written like ``<pad>``.

    Character models keep a few whole-word specials (``<pad>``, ``<unk>``, ``</s>``); they do not make
    the text a sequence of words.
    """
    tokens = [t for t in vocab if not _SPECIAL.fullmatch(t)]
    return bool(tokens) and all(len(t) == 1 for t in tokens)


def default_joiner(vocab: list[str]) -> str:
    """``""`` for a character vocabulary (see ``is_character_vocab``), else ``" "``."""
    return "" if is_character_vocab(vocab) else " "


def _phrase_tokens(phrase) -> list[str]:
    if isinstance(phrase, str):
        tokens = phrase.split()
    else:
        tokens = [str(t) for t in phrase]
    if not tokens:
        raise SearchError("the phrase is empty: type at least one token")
    return tokens


def _ids_for(token: str, vocab: list[str], lowered: list[str] | None) -> np.ndarray:
    """Every token id whose text is ``token`` (compared lower-cased when ``lowered`` is given)."""
    if not vocab:  # a recording without a vocabulary shows ids as text
        return np.array([int(token)], np.int64) if token.isdigit() else np.zeros(0, np.int64)
    if lowered is None:
        return np.array([i for i, t in enumerate(vocab) if t == token], np.int64)
    key = token.lower()
    return np.array([i for i, t in enumerate(lowered) if t == key], np.int64)


def _item_blocks(recording, block: int):
    """``(start, stop)`` ranges of whole items, about ``block`` positions each (an item is never split)."""
    offsets = np.asarray(recording.item_offsets, dtype=np.int64)
    start, i, n_items = 0, 0, len(offsets) - 1
    while i < n_items:
        j = int(np.searchsorted(offsets, start + block, side="right")) - 1
        j = min(max(j, i + 1), n_items)
        stop = int(offsets[j])
        yield start, stop, i, j
        start, i = stop, j


def find_phrase(recording, phrase, *, limit: int | None = 1000, case_sensitive: bool = False,
                task: Task | None = None) -> np.ndarray:
    """int64 start positions where the tokens of ``phrase`` occur in a row inside one item, in corpus order.

    ``phrase`` is a string (split on whitespace) or a list of token strings. Matching is on token ids:
    each phrase token stands for every vocabulary id whose text equals it (lower-cased on both sides
    unless ``case_sensitive``). A token that is in no vocabulary entry gives an empty result. For a
    character model pass ``list(text)`` (or use ``find_regex``), since whitespace splitting makes words.
    A recording without a vocabulary is searched by id: the phrase tokens are decimal ids.
    ``limit`` (None: all) stops the scan once that many starts are found.
    """
    task = ensure_task(task)
    tokens = _phrase_tokens(phrase)
    if limit is not None and limit < 1:
        raise SearchError("limit must be >= 1")
    vocab = list(recording.vocab)
    lowered = None if case_sensitive else [t.lower() for t in vocab]
    id_sets = [_ids_for(t, vocab, lowered) for t in tokens]
    if any(ids.size == 0 for ids in id_sets):
        return np.zeros(0, np.int64)
    size = len(vocab) if vocab else int(max(ids.max() for ids in id_sets)) + 1
    # one boolean lookup row per phrase token; ids outside the table map to the last entry, always False
    table = np.zeros((len(tokens), size + 1), dtype=bool)
    for j, ids in enumerate(id_sets):
        table[j, ids[ids < size]] = True
    k = len(tokens)
    n = int(recording.n_positions)
    offsets = np.asarray(recording.item_offsets, dtype=np.int64)
    found: list[np.ndarray] = []
    total = 0
    task.progress(0, n, "searching")
    for start, stop, _, _ in _item_blocks(recording, BLOCK_POSITIONS):
        ids = np.minimum(recording.token_ids(start, stop), size)
        m = ids.size - k + 1
        if m > 0:
            hit = table[0, ids[:m]]
            for j in range(1, k):
                hit &= table[j, ids[j:j + m]]
            starts = np.flatnonzero(hit).astype(np.int64) + start
            if starts.size:
                # an occurrence must end inside the item it starts in
                item_stop = offsets[np.searchsorted(offsets, starts, side="right")]
                starts = starts[starts + k <= item_stop]
                found.append(starts)
                total += starts.size
        task.progress(stop, n, f"{total} found")
        if limit is not None and total >= limit:
            break
    result = np.concatenate(found) if found else np.zeros(0, np.int64)
    return result if limit is None else result[:limit]


def find_regex(recording, pattern: str, *, joiner: str | None = None, limit: int | None = 1000,
               task: Task | None = None) -> list[tuple[int, int]]:
    """``[start, stop)`` position ranges whose text matches the regular expression ``pattern``.

    Each item's tokens are joined with ``joiner`` (None: ``default_joiner(vocab)``) and searched with
    ``re.finditer`` (non-overlapping matches; flags go inline, e.g. ``(?i)``). A match covers every token
    whose text it touches; a match that touches no token (only joiner characters) or has zero length is
    skipped, and a range equal to the one before it (two matches inside one token) is reported once.
    Matches never cross items. Items are processed block by block until ``limit`` ranges are found.
    An invalid pattern raises ``SearchError`` with ``re``'s message.
    """
    task = ensure_task(task)
    try:
        regex = re.compile(pattern)
    except re.error as e:
        raise SearchError(f"invalid regular expression {pattern!r}: {e}") from None
    if limit is not None and limit < 1:
        raise SearchError("limit must be >= 1")
    vocab = list(recording.vocab)
    if joiner is None:
        joiner = default_joiner(vocab) if vocab else " "
    n = int(recording.n_positions)
    offsets = np.asarray(recording.item_offsets, dtype=np.int64)
    texts = np.array(vocab if vocab else [], dtype=object)
    lengths = np.fromiter((len(t) for t in vocab), np.int64, len(vocab))
    gap = len(joiner)
    hits: list[tuple[int, int]] = []
    task.progress(0, n, "searching")
    for start, stop, first_item, last_item in _item_blocks(recording, BLOCK_POSITIONS):
        ids = recording.token_ids(start, stop)
        if vocab:
            if ids.size and ids.max() >= len(vocab):
                raise SearchError(f"token id {int(ids.max())} is outside the vocabulary of {len(vocab)} entries")
            words, sizes = texts[ids], lengths[ids]
        else:
            words = np.array([str(i) for i in ids], dtype=object)
            sizes = np.fromiter((len(w) for w in words), np.int64, len(words))
        for item in range(first_item, last_item):
            if item % 1024 == 0:
                task.check()
            a, b = int(offsets[item]) - start, int(offsets[item + 1]) - start
            item_words, item_sizes = words[a:b], sizes[a:b]
            text = joiner.join(item_words.tolist())
            ends = np.cumsum(item_sizes + gap) - gap
            begins = ends - item_sizes
            previous = None
            for m in regex.finditer(text):
                cs, ce = m.span()
                if ce == cs:
                    continue
                first = int(np.searchsorted(ends, cs, side="right"))
                after = int(np.searchsorted(begins, ce, side="left"))
                if after <= first:
                    continue
                span = (int(offsets[item]) + first, int(offsets[item]) + after)
                if span == previous:
                    continue
                previous = span
                hits.append(span)
                if limit is not None and len(hits) >= limit:
                    task.progress(int(offsets[item + 1]), n, f"{len(hits)} found")
                    return hits
        task.progress(stop, n, f"{len(hits)} found")
    return hits
