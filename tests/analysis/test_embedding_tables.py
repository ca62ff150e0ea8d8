"""Embedding tables (issue 20): from checkpoints (a language model's embedding and decoder rows, subgraph2vec's
Phi), from a recording's class means (streamed, per label or per label pair), from CSV/TSV/NPY/word2vec
files; every bad input is refused with a sentence that says what is wrong."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
import torch

from analogy_tables import write_crossed_recording
from lstmviz.analysis.analogy import crossed_relations, evaluate
from lstmviz.analysis.embedding_projection import pca_2d, project
from lstmviz.analysis.embedding_tables import (
    EmbeddingTable,
    checkpoint_tables,
    class_means,
    table_from_checkpoint,
    table_from_file,
    write_table,
)
from lstmviz.recording import open_recording

VOCAB = ["<unk>", "dog", "dogs", "cat", "cats", "walk", "walked"]


@pytest.fixture(scope="module")
def lm_checkpoint(tmp_path_factory):
    from lstmviz.engines import build_engine
    from lstmviz.engines.checkpoint import save_checkpoint

    torch.manual_seed(0)
    config = {"embedding_dim": 6, "hidden_size": 5, "num_layers": 1}
    model = build_engine("lstm", vocab_size=len(VOCAB), **config)
    path = tmp_path_factory.mktemp("ckpt") / "lm.pt"
    save_checkpoint(path, model, engine="lstm", config=config, vocab=VOCAB, dataset=None, step=1, metrics={})
    return path, model


def test_a_language_models_embedding_and_decoder_rows_are_offered(lm_checkpoint):
    path, model = lm_checkpoint
    tables = checkpoint_tables(path)
    kinds = {c.parameter: (c.shape, c.kind) for c in tables.candidates}
    assert kinds["embedding.weight"] == ((7, 6), "input embedding")
    assert kinds["decoder.weight"] == ((7, 5), "output rows per token")
    assert tables.default == "embedding.weight"
    table = table_from_checkpoint(path)
    assert table.names == tuple(VOCAB)
    np.testing.assert_array_equal(table.vectors, model.embedding.weight.detach().numpy())
    decoder = table_from_checkpoint(path, "decoder.weight")
    np.testing.assert_array_equal(decoder.vectors, model.decoder.weight.detach().numpy())
    with pytest.raises(ValueError, match="no table 'layers.0.weight'.*embedding.weight \\[7, 6\\]"):
        table_from_checkpoint(path, "layers.0.weight")


def test_subgraph2vec_phi_rows_are_named_by_depth_without_the_unseen_row(tmp_path):
    from lstmviz.datasets import load_dataset
    from lstmviz.engines import registry
    from lstmviz.engines.checkpoint import save_checkpoint
    from lstmviz.engines.families.graph import GraphData

    karate = load_dataset("karate", "train")
    data = GraphData(num_features=karate.num_features, num_classes=len(karate.class_names), task=karate.task)
    torch.manual_seed(0)
    config = {"depth": 1, "dim": 4, "max_subgraphs": 64}
    model = registry.get("subgraph2vec").build_model(data, **config)
    model.train()
    model.loss([model.prepare(karate[0])], [karate[0]])  # grows the vocabulary
    model.eval()
    path = save_checkpoint(tmp_path / "s2v.pt", model, engine="subgraph2vec", config=config, vocab=["a"],
                           dataset=None, step=1, metrics={}, family="graph", data=dataclasses.asdict(data))
    tables = checkpoint_tables(path)
    assert tables.default == "phi.weight" and {c.parameter for c in tables.candidates} >= {"phi.weight", "psi.weight"}
    table = tables.table()
    size = len(model.vocabulary)
    assert len(table) == size - 1 and table.names[0].startswith("d0#1")
    np.testing.assert_allclose(table.vectors, model.phi.weight.detach().numpy()[1:size])


def test_label_embeddings_are_the_default_table_of_a_label_embed_checkpoint(tmp_path):
    from lstmviz.engines import registry
    from lstmviz.engines.checkpoint import save_checkpoint
    from lstmviz.engines.families.image import ImageData

    data = ImageData(channels=1, height=8, width=8, num_classes=4)
    torch.manual_seed(0)
    config = {"embed_size": 3}
    model = registry.get("label-embed").build_model(data, **config)
    model.fit_labels(np.eye(4)[[0, 1, 2, 3, 0, 1, 2, 0]])
    path = save_checkpoint(tmp_path / "le.pt", model, engine="label-embed", config=config, vocab=["a"], dataset=None,
                           step=1, metrics={}, family="image", data=dataclasses.asdict(data))
    tables = checkpoint_tables(path)
    assert tables.default == "label_table"
    table = tables.table()
    assert table.names == ("class 0", "class 1", "class 2", "class 3")  # no dataset to name the classes
    np.testing.assert_allclose(table.vectors, model.label_embeddings().numpy(), atol=1e-6)


def test_a_file_that_is_no_checkpoint_is_refused(tmp_path):
    from lstmviz.engines.checkpoint import CheckpointError

    path = tmp_path / "x.pt"
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint"):
        checkpoint_tables(path)


def brute_means(path, tap, key):
    with open_recording(path) as rec:
        states = rec.states(tap)
        labels = key(rec)
    return {k: states[labels == k].mean(axis=0) for k in np.unique(labels) if k >= 0}


def test_class_means_stream_the_tap_and_equal_the_plain_means(tmp_path):
    path = write_crossed_recording(tmp_path / "crossed.h5")
    with open_recording(path) as rec:
        seen = []

        class Progress:
            def progress(self, done, total=None, message=""):
                seen.append(done)

            def check(self):
                pass

        table = class_means(rec, "h", "digit", task=Progress(), block_rows=7)
        odd = class_means(rec, "h", "odd")
    assert len(seen) > 10 and seen[-1] == 4 * 3 * 3 * 5  # streamed in blocks of 7 rows
    assert table.names == ("0", "1", "2", "3") and table.counts.tolist() == [45] * 4

    def item_key(rec):
        return np.repeat(rec.annotation("digit"), np.diff(rec.item_offsets))

    expected = brute_means(path, "h", item_key)
    np.testing.assert_allclose(table.vectors, np.array([expected[k] for k in range(4)]), atol=1e-5)
    expected = brute_means(path, "h", lambda rec: rec.annotation("odd"))
    np.testing.assert_allclose(odd.vectors, np.array([expected[0], expected[1]]), atol=1e-5)


def test_class_means_over_two_annotations_define_relations(tmp_path):
    path = write_crossed_recording(tmp_path / "crossed.h5")
    with open_recording(path) as rec:
        table = class_means(rec, "h", "digit", by="shift")
    assert len(table) == 12 and table.names[:3] == ("0|left", "0|none", "0|right")
    assert table.parts[0] == ("0", "left") and table.part_names == ("digit", "shift")
    relations = crossed_relations(table)
    assert [r.name for r in relations] == ["shift: left → none", "shift: left → right", "shift: none → right"]
    assert relations[0].pairs[0] == ("0|left", "0|none") and len(relations[0].questions) == 12
    report = evaluate(table, relations)
    assert report.accuracy(None, "3cosadd") == 1.0  # digit + shift vectors: exact offsets
    with pytest.raises(ValueError, match="two annotations"):
        crossed_relations(EmbeddingTable(("a", "b"), np.eye(2), "plain"))


def test_class_means_refuse_what_does_not_fit(tmp_path):
    path = write_crossed_recording(tmp_path / "crossed.h5")
    with open_recording(path) as rec:
        with pytest.raises(ValueError, match="no tap 'nope'"):
            class_means(rec, "nope", "digit")
        with pytest.raises(ValueError, match="categorical annotation of the recording: digit, shift, odd; got 'x'"):
            class_means(rec, "h", "x")
        with pytest.raises(ValueError, match="another annotation"):
            class_means(rec, "h", "digit", by="digit")
        with pytest.raises(ValueError, match="fewer than 2 labels"):
            class_means(rec, "h", "digit", min_count=1000)


def test_csv_tsv_word2vec_and_npy_tables_are_read(tmp_path):
    (tmp_path / "t.csv").write_text("name,x,y\nking,1,2\nqueen,3,4.5\n")
    table = table_from_file(tmp_path / "t.csv")
    assert table.names == ("king", "queen") and table.vectors.tolist() == [[1, 2], [3, 4.5]]
    (tmp_path / "t.tsv").write_text("king\t1\t2\nqueen\t3\t4.5\n")  # no header
    assert table_from_file(tmp_path / "t.tsv").vectors.tolist() == [[1, 2], [3, 4.5]]
    (tmp_path / "w.txt").write_text("2 3\nking 1 2 3\nqueen 4 5 6\n")
    assert table_from_file(tmp_path / "w.txt").names == ("king", "queen")
    np.save(tmp_path / "t.npy", np.arange(6.0).reshape(3, 2))
    (tmp_path / "t.names.txt").write_text("a\nb\nc\n")
    assert table_from_file(tmp_path / "t.npy").names == ("a", "b", "c")
    for suffix in (".csv", ".npy"):
        written = write_table(table, tmp_path / f"back{suffix}")
        again = table_from_file(written)
        assert again.names == table.names and np.array_equal(again.vectors, table.vectors)


@pytest.mark.parametrize("name, content, match", [
    ("missing.csv", None, "no such file"),
    ("t.json", "{}", "cannot read a table from a .json file"),
    ("empty.csv", "", "empty"),
    ("ragged.csv", "a,1,2\nb,3\n", "line 2 has 2 fields, the first row 3"),
    ("word.csv", "a,1,2\nb,3,x\n", "line 2: 'x' is not a number"),
    ("dup.csv", "a,1\nb,2\na,3\n", "'a' is on rows 0 and 2; names must be unique"),
    ("nan.csv", "a,1\nb,nan\n", "row 1 \\('b'\\) holds NaN"),
    ("one.csv", "a,1,2\n", "at least 2 rows"),
    ("name-only.csv", "a\nb\n", "line 1 has one field"),
    ("count.txt", "3 2\na 1 2\nb 3 4\n", "announces 3 vectors, the file holds 2"),
    ("binary.csv", b"\xff\xfe\x00bad", "not UTF-8"),
])
def test_bad_table_files_are_refused_with_what_is_wrong(tmp_path, name, content, match):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises((ValueError, OSError), match=match):
        table_from_file(path)


def test_bad_npy_tables_are_refused(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((3, 2)))
    with pytest.raises(ValueError, match="needs its names.*a.names.txt"):
        table_from_file(tmp_path / "a.npy")
    (tmp_path / "names.txt").write_text("x\ny\n")
    with pytest.raises(ValueError, match="2 names for the 3 rows"):
        table_from_file(tmp_path / "a.npy", tmp_path / "names.txt")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="not a NumPy .npy array of numbers"):
        table_from_file(tmp_path / "obj.npy", tmp_path / "names.txt")
    np.save(tmp_path / "flat.npy", np.zeros(4))
    with pytest.raises(ValueError, match="2-D array"):
        table_from_file(tmp_path / "flat.npy", tmp_path / "names.txt")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "table.csv"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="FIFO"):
        table_from_file(fifo)


def test_pca_recovers_the_plane_of_planar_points_and_umap_is_optional():
    rng = np.random.default_rng(0)
    plane = rng.normal(size=(30, 2)) @ rng.normal(size=(2, 6)) + 5.0 * rng.normal(size=6)
    projection = pca_2d(plane)
    assert projection.explained[0] + projection.explained[1] == pytest.approx(1.0)
    # distances within the plane are kept exactly (PCA of a rank-2 centred set is a rotation of it)
    d = lambda x: np.linalg.norm(x[:, None] - x[None], axis=-1)  # noqa: E731
    np.testing.assert_allclose(d(projection.xy), d(plane - plane.mean(0)), atol=1e-8)
    table = EmbeddingTable(tuple(map(str, range(30))), plane, "plane")
    with pytest.raises(ValueError, match="unknown projection"):
        project(table, "tsne")


@pytest.mark.slow  # numba compiles UMAP on first use: about two minutes on 2 busy cores
def test_umap_maps_every_row_when_installed():
    pytest.importorskip("umap")
    rng = np.random.default_rng(0)
    table = EmbeddingTable(tuple(map(str, range(40))), rng.normal(size=(40, 5)), "random")
    projection = project(table, "umap", seed=0)
    assert projection.xy.shape == (40, 2) and np.isfinite(projection.xy).all()


def test_without_umap_the_projection_says_what_to_install(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_umap(name, *args, **kwargs):
        if name == "umap":
            raise ImportError("no umap")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_umap)
    table = EmbeddingTable(tuple(map(str, range(5))), np.eye(5), "eye")
    with pytest.raises(ValueError, match="lstmviz\\[umap\\]"):
        project(table, "umap")
