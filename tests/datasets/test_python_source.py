"""The stdlib character corpus: tokenize annotations, chunks, splits, vocabulary, file selection."""

import tokenize

import numpy as np
import pytest

from lstmviz.datasets import load_dataset
from lstmviz.datasets.pysource_annotate import BRACKET_LABELS, INDENT_LABELS, TOKEN_TYPES, annotate_source
from lstmviz.datasets.python_source import VOCAB, PythonSourceDataset, chunk_bounds, split_of


def labelled(text):
    a = annotate_source(text)
    return (
        [TOKEN_TYPES[i] for i in a.token_type],
        [BRACKET_LABELS[i] for i in a.bracket_depth],
        [INDENT_LABELS[i] for i in a.indent_level],
    )


def at(text, needle, nth=0):
    pos = -1
    for _ in range(nth + 1):
        pos = text.index(needle, pos + 1)
    return pos


def test_bracket_depth_counts_operator_brackets_only():
    src = "f(a, [b]) + '(' # ((\n"
    types, depth, _ = labelled(src)
    assert depth[at(src, "f")] == "0"
    assert depth[at(src, "(")] == "1"  # an opening bracket counts itself
    assert depth[at(src, "a")] == "1"
    assert depth[at(src, "[")] == "2"
    assert depth[at(src, "b")] == "2"
    assert depth[at(src, "]")] == "1"
    assert depth[at(src, ")")] == "0"  # a closing bracket no longer counts
    assert depth[at(src, "'(")] == depth[at(src, "'(") + 1] == "0"  # inside a string
    assert depth[at(src, "# ((") + 3] == "0"  # inside a comment
    assert types[at(src, "'(") + 1] == "STRING" and types[at(src, "# ((") + 3] == "COMMENT"


def test_token_types_whitespace_and_continuation():
    src = "x = 1 + \\\n    2  # c\n\n"
    types, _, _ = labelled(src)
    assert types[0] == "NAME" and types[1] == "WHITESPACE" and types[2] == "OP" and types[4] == "NUMBER"
    bs = at(src, "\\")
    assert types[bs] == types[bs + 1] == "CONTINUATION"
    assert types[at(src, "2")] == "NUMBER"
    assert types[at(src, "#")] == "COMMENT"
    assert types[at(src, "\n", 1)] == "NEWLINE"  # end of the logical line
    assert types[at(src, "\n", 2)] == "NL"  # a blank line
    assert len(types) == len(src)


def test_indent_level_follows_tokenize_blocks():
    src = (
        "def f(a):\n"          # 0
        "    if a:\n"          # 1
        "        g(1,\n"       # 2
        "  2)\n"               # continuation line of a level-2 statement
        "# note\n"             # comment-only line: keeps the level in effect (2)
        "    return a\n"       # dedented to 1: its indentation is level 1 too
        "y = 0\n"
    )
    types, _, level = labelled(src)
    assert level[at(src, "def")] == "0"
    assert level[at(src, "if")] == "1" and types[at(src, "if") - 1] == "INDENT" and level[at(src, "if") - 1] == "1"
    assert level[at(src, "g(")] == "2"
    assert level[at(src, "  2)") + 2] == "2"
    assert level[at(src, "# note")] == "2"
    assert level[at(src, "    return")] == "1" and types[at(src, "    return")] == "WHITESPACE"
    assert level[at(src, "return")] == "1"
    assert level[at(src, "y =")] == "0"


def test_tokenize_failures_are_reported():
    with pytest.raises((tokenize.TokenError, SyntaxError)):
        annotate_source("def f(:\n    x = (1,\n")


def test_chunk_bounds_keep_whole_lines_and_cut_long_ones():
    text = "ab\ncdef\n" + "x" * 12 + "\ny\n"
    starts = [0] + [i + 1 for i, c in enumerate(text) if c == "\n"]
    bounds = chunk_bounds(starts, len(text), 8)
    assert "".join(text[a:b] for a, b in bounds) == text
    assert all(b - a <= 8 for a, b in bounds)
    assert [text[a:b] for a, b in bounds] == ["ab\ncdef\n", "x" * 8, "xxxx\ny\n"]
    assert chunk_bounds(starts, len(text), None) == [(0, len(text))]


@pytest.fixture(scope="module")
def decoder_whole():
    rel = "json/decoder.py"
    return load_dataset("python", split_of(rel), include=rel, max_chars_per_item=None)


def test_named_module_json_decoder(decoder_whole):
    ds = decoder_whole
    assert len(ds) == 1 and ds.item_location(0) == ("json/decoder.py", 1)
    item = ds[0]
    with tokenize.open(ds.root / "json/decoder.py") as f:
        text = f.read()
    assert item.text == text
    assert "".join("?" if t == "<unk>" else t for t in ds.decode(item.tokens)) == "".join(
        c if c.isascii() and (c.isprintable() or c in "\t\n") else "?" for c in text)
    types = [TOKEN_TYPES[i] for i in item.annotations["token_type"]]
    level = item.annotations["indent_level"]
    depth = item.annotations["bracket_depth"]
    cls = at(text, "class JSONDecoder")
    assert types[cls] == "NAME" and level[cls] == 0
    init = at(text, "def __init__", text.count("def __init__", 0, cls))  # the first __init__ after the class
    assert init > cls and level[init] == 1
    hook = at(text, "object_hook=None", 0)
    assert depth[hook] == 1 and types[hook] == "NAME"
    assert ds.packages[item.item_annotations["package"]] == "json"


def test_chunks_carry_whole_file_annotations(decoder_whole):
    rel = "json/decoder.py"
    chunked = load_dataset("python", split_of(rel), include=rel, max_chars_per_item=300)
    whole = decoder_whole[0]
    assert len(chunked) > 5
    items = list(chunked)
    assert all(len(it) <= 300 for it in items)
    assert "".join(it.text for it in items) == whole.text
    assert all(it.text.endswith("\n") for it in items)  # no line of this file is longer than 300
    for name in ("token_type", "bracket_depth", "indent_level"):
        assert np.array_equal(np.concatenate([it.annotations[name] for it in items]), whole.annotations[name])
    # some chunk starts inside an indented block, where a per-chunk tokenize would have said 0
    assert any(it.annotations["indent_level"][0] > 0 for it in items)
    lines = [chunked.item_location(i)[1] for i in range(len(chunked))]
    assert lines[0] == 1 and lines == sorted(lines) and items[1].item_annotations["line"] == lines[1]


def test_top_level_module_and_fixed_label_sets():
    rel = "textwrap.py"
    ds = load_dataset("python", split_of(rel), include=rel, max_chars_per_item=1000)
    assert ds.packages[ds[0].item_annotations["package"]] == "<top-level>"
    for split in ("train", "valid", "test"):
        other = load_dataset("python", split, include="no-such-file")
        assert len(other) == 0
        assert other.vocab == ds.vocab == VOCAB
        assert [s.labels for s in other.annotation_specs] == [s.labels for s in ds.annotation_specs]
    assert VOCAB[0] == "<pad>" and len(set(VOCAB)) == len(VOCAB) == 99


def test_file_selection_split_and_skips(tmp_path):
    for k in range(40):
        (tmp_path / f"m{k:02d}.py").write_text(f"x{k} = ({k},\n     1)\n")
    for d in ("tests", "site-packages/pkg", "pkg/test", "pkg/idle_test"):
        (tmp_path / d).mkdir(parents=True)
        (tmp_path / d / "skipped.py").write_text("y = 1\n")
    (tmp_path / "pkg" / "__init__.py").write_text("")  # empty: no item
    (tmp_path / "pkg" / "ok.py").write_text("z = 'é'\n")
    broken = "bad.py" if split_of("bad.py") == "train" else "m_bad.py"
    (tmp_path / broken).write_text("def f(:\n  (\n")
    seen = {}
    for split in ("train", "valid", "test"):
        ds = PythonSourceDataset(split, root=tmp_path)
        names = [f.relpath for f in ds.files]
        assert names == sorted(names)
        assert all(split_of(n) == split for n in names)
        assert not any("skipped" in n for n in names) and "pkg/__init__.py" not in names
        seen[split] = set(names) | set(ds.skipped)
    assert broken in seen[split_of(broken)] and broken not in [f.relpath for f in PythonSourceDataset(split_of(broken), root=tmp_path).files]
    expected = {f"m{k:02d}.py" for k in range(40)} | {"pkg/ok.py", broken}
    assert set().union(*seen.values()) == expected
    assert sum(map(len, seen.values())) == len(expected)  # disjoint
    assert all(seen.values())
    ok = PythonSourceDataset(split_of("pkg/ok.py"), root=tmp_path, include="pkg/*")
    assert ok.decode(ok[0].tokens) == list("z = '") + ["<unk>"] + list("'\n")
    assert ok.packages[ok[0].item_annotations["package"]] == "pkg"
    first = PythonSourceDataset("train", root=tmp_path, max_files=2)
    assert len(first.files) == 2
