"""``chorales``: melodies of J. S. Bach's four-part chorales from music21's bundled corpus, as note tokens.

Source: the chorales (``music21.corpus.getComposer("bach")``: every score with a part named Soprano,
Alto, Tenor and Bass; 371 chorales in music21 10.5) of the PyPI package ``music21`` (optional extra
``lstmviz[music]``). Nothing is downloaded. Parsing all of them takes about a minute, so the extracted
note sequences are cached once as JSON under the user cache dir
(``$LSTMVIZ_CACHE_DIR/datasets/`` if set, else ``$XDG_CACHE_HOME/lstmviz/`` or ``~/.cache/lstmviz/``),
keyed by music21's version and the extraction options.

Items: one per chorale voice. ``voices="soprano"`` (default: the melody, one item per chorale, as the
monophonic melodies of Colombo et al.) or ``voices="all"`` (each of the four voices a separate item).
Every chorale is transposed to C major or A minor (music21's key analysis of the whole score; the
shift is the smallest one, -6..+5 semitones), as Colombo et al. transpose their tunes to one key.
Tied notes are merged (``stripTies``); grace notes (zero duration) are dropped; a chord (rare) gives
its top note. Each item ends with the token ``end`` (the end-of-tune symbol, so sampling stops and the
concatenated training stream tells the model where a new tune starts). Splits by chorale: every 10th
chorale (index % 10 == 8) is valid, (index % 10 == 9) test, the rest train.

Tokens are notes, a (pitch, duration) pair in one vocabulary, ``id = pitch_index * len(DURATIONS) +
duration_index`` (:func:`note_id`), named readably: the pitch name with sharps or flats as in
``PITCH_NAMES`` (``E4``, ``F#4``, ``Bb3``) or ``rest``, then the duration in quarter notes after a
colon (``E4:1`` a quarter note, ``G4:½`` an eighth, ``C5:2`` a half note); ``end`` ends a tune; id 0
(C2 without a duration, which never occurs) is ``<pad>`` as in every lstmviz vocabulary; other pitch x
duration combinations that never occur (a pitch with the end token's duration ``-``) keep their names. The
duration is also its own stream: the per-position annotation ``duration``. Pitches outside
C2..C6 (never in the chorales) are clamped into it by octaves; a duration not on the grid ``DURATIONS``
(e.g. 1.75, 2.5, fermata-lengthened 5) is mapped to the nearest grid value on a log scale.

Annotations per position (per note): ``pitch_class`` (C .. B, rest, end), ``duration`` (the grid's
labels), ``beat`` (numeric: music21's beat position in the bar, 1 = downbeat; NaN for ``end``),
``voice`` (soprano, alto, tenor, bass); per item: ``chorale`` (index in the corpus list).
"""

from __future__ import annotations

import functools
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from .base import (AnnotationSpec, DatasetError, DatasetSpec, MissingDependency, SequenceDataset, SequenceItem,
                   check_int, check_split)

SPLITS = ("train", "valid", "test")
INSTALL_HINT = 'pip install "lstmviz[music]"  (or: pip install music21)'
VOICES = ("soprano", "alto", "tenor", "bass")
VOICE_OPTIONS = ("soprano", "all")
CACHE_FORMAT = 1

#: durations in quarter notes; index 0 is the end-of-tune token's (no duration)
DURATIONS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)
DURATION_LABELS = ("-", "¼", "½", "¾", "1", "1½", "2", "3", "4", "6", "8")
LOW_MIDI, HIGH_MIDI = 36, 84  # C2 .. C6
_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
PITCH_NAMES = tuple(f"{_NAMES[m % 12]}{m // 12 - 1}" for m in range(LOW_MIDI, HIGH_MIDI + 1)) + ("rest", "end")
REST, END = len(PITCH_NAMES) - 2, len(PITCH_NAMES) - 1
PITCH_CLASS_LABELS = _NAMES + ("rest", "end")


def note_id(pitch: int, duration: int) -> int:
    """The token id of pitch index ``pitch`` (into ``PITCH_NAMES``) and duration index ``duration``."""
    return pitch * len(DURATIONS) + duration


def _token_name(pitch: int, duration: int) -> str:
    if pitch == END and duration == 0:
        return "end"
    if pitch == 0 and duration == 0:  # C2 without a duration never occurs: id 0 is the usual padding id
        return "<pad>"
    return f"{PITCH_NAMES[pitch]}:{DURATION_LABELS[duration]}"


VOCAB = tuple(_token_name(p, d) for p in range(len(PITCH_NAMES)) for d in range(len(DURATIONS)))
END_ID = note_id(END, 0)


def duration_index(quarter_length: float) -> int:
    """The grid index of a duration: the nearest of ``DURATIONS[1:]`` on a log scale."""
    q = max(float(quarter_length), 1e-6)
    return 1 + int(np.argmin([abs(math.log(q / g)) for g in DURATIONS[1:]]))


def pitch_index(midi: int | None) -> int:
    """``PITCH_NAMES`` index of a MIDI number (None: rest), clamped into C2..C6 by octaves."""
    if midi is None or midi < 0:
        return REST
    while midi < LOW_MIDI:
        midi += 12
    while midi > HIGH_MIDI:
        midi -= 12
    return midi - LOW_MIDI


def _music21():
    try:
        import music21
    except ImportError as exc:
        raise MissingDependency(f"the chorales dataset needs the package 'music21': {INSTALL_HINT}") from exc
    return music21


def cache_dir() -> Path:
    """Where extracted corpora are cached (see the module docstring)."""
    root = os.environ.get("LSTMVIZ_CACHE_DIR")
    if root:
        return Path(root) / "datasets"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "lstmviz"


def _extract_score(score, music21) -> dict[str, list] | None:
    parts = {}
    for part in score.parts:
        name = str(part.partName or part.id or "").strip().lower()
        if name in VOICES and name not in parts:
            parts[name] = part
    if set(parts) != set(VOICES):
        return None
    try:
        key = score.analyze("key")
        tonic = key.tonic.pitchClass
        target = 0 if key.mode == "major" else 9
    except Exception:  # no key can be found: leave the score as it is
        tonic, target = 0, 0
    shift = (target - tonic) % 12
    if shift > 5:
        shift -= 12
    voices = {}
    for name in VOICES:
        notes = []
        for n in parts[name].stripTies().flatten().notesAndRests:
            ql = float(n.quarterLength)
            if ql <= 0:
                continue
            if n.isRest:
                midi = -1
            elif n.isChord:
                midi = max(p.midi for p in n.pitches) + shift
            else:
                midi = n.pitch.midi + shift
            beat = float(n.beat) if n.beat is not None else float("nan")
            notes.append([int(midi), ql, beat])
        voices[name] = notes
    return voices


def extract(progress=None) -> list[dict[str, Any]]:
    """Every chorale's four voices as ``[midi (-1 = rest), quarter length, beat]`` lists (cached)."""
    music21 = _music21()
    path = cache_dir() / f"chorales-m21-{music21.__version__}-v{CACHE_FORMAT}.json"
    if path.exists():
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            pass  # a damaged cache is rebuilt
    from music21 import corpus

    chorales = []
    for source in sorted(str(p) for p in corpus.getComposer("bach")):
        try:
            score = corpus.parse(source)
        except Exception:
            continue
        voices = _extract_score(score, music21)
        if voices is not None:
            chorales.append({"source": Path(source).name, "voices": voices})
        if progress is not None:
            progress(len(chorales))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(chorales))
    tmp.replace(path)
    return chorales


@functools.lru_cache(maxsize=4)
def _chorales() -> tuple:
    return tuple(extract())


def _split_of(index: int) -> str:
    r = index % 10
    return "valid" if r == 8 else "test" if r == 9 else "train"


ANNOTATIONS = [
    AnnotationSpec("pitch_class", "categorical", labels=PITCH_CLASS_LABELS,
                   description="pitch class of the note after transposition to C major / A minor (rest, end)"),
    AnnotationSpec("duration", "categorical", labels=DURATION_LABELS,
                   description="duration in quarter notes on the grid (- for the end token)"),
    AnnotationSpec("beat", "numeric", description="beat position in the bar (music21's beat, 1 = downbeat)"),
    AnnotationSpec("voice", "categorical", labels=VOICES, description="the chorale voice the note belongs to"),
    AnnotationSpec("chorale", "numeric", level="item", description="index of the chorale in the corpus list"),
]


class ChoralesDataset(SequenceDataset):
    """One split of the Bach chorale melodies (see the module docstring)."""

    name = "chorales"

    def __init__(self, split: str = "train", *, voices: str = "soprano", max_items: int | None = None):
        self.split = check_split(self.name, split, SPLITS)
        if voices not in VOICE_OPTIONS:
            raise DatasetError(f"option 'voices' must be one of {VOICE_OPTIONS}, got {voices!r}")
        max_items = check_int("max_items", max_items, minimum=1, allow_none=True)
        self.options = {"voices": voices, "max_items": max_items}
        self.vocab = list(VOCAB)
        self.annotation_specs = list(ANNOTATIONS)
        self.source = "music21 bundled corpus: J. S. Bach chorales"
        wanted = VOICES[:1] if voices == "soprano" else VOICES
        self._items: list[SequenceItem] = []
        for index, chorale in enumerate(_chorales()):
            if _split_of(index) != split:
                continue
            for voice in wanted:
                self._items.append(self._encode(index, voice, chorale["voices"][voice]))
            if max_items is not None and len(self._items) >= max_items:
                self._items = self._items[:max_items]
                break

    @staticmethod
    def _encode(index: int, voice: str, notes: list) -> SequenceItem:
        pitches = [pitch_index(m) for m, _, _ in notes] + [END]
        durations = [duration_index(q) for _, q, _ in notes] + [0]
        tokens = np.array([note_id(p, d) for p, d in zip(pitches, durations)], dtype=np.int64)
        pc = np.array([len(_NAMES) if p == REST else len(_NAMES) + 1 if p == END else (p + LOW_MIDI) % 12
                       for p in pitches], dtype=np.int64)
        beat = np.array([b for _, _, b in notes] + [float("nan")], dtype=np.float64)
        v = VOICES.index(voice)
        return SequenceItem(
            tokens=tokens,
            annotations={"pitch_class": pc, "duration": np.array(durations, dtype=np.int64), "beat": beat,
                         "voice": np.full(len(tokens), v, dtype=np.int64)},
            item_annotations={"chorale": float(index)},
        )

    def __len__(self) -> int:
        return len(self._items)

    def _item(self, i: int) -> SequenceItem:
        return self._items[i]


SPEC = DatasetSpec(
    name="chorales",
    description="Bach chorale melodies (music21's bundled corpus) as note tokens 'E4:1' (pitch:duration), "
                "transposed to C major / A minor",
    build=ChoralesDataset,
    splits=SPLITS,
    options={"voices": "soprano", "max_items": None},
    annotations=tuple(a.name for a in ANNOTATIONS),
    source="music21 (PyPI, optional extra lstmviz[music])",
)
