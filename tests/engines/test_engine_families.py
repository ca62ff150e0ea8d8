"""Families: an engine names its family, which builds, trains and reloads it; nothing assumes token models.

A toy regression family (vectors in, vectors out, trained by mean squared error) is registered for
these tests the way a plugin would be, to show that building, training settings, training, the
checkpoint and the CLI's checks all go through the family and not through a vocabulary.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lstmviz.engines import ConfigError, EngineSpec, Family, Paper, UnknownName, build_engine, families, registry
from lstmviz.engines.checkpoint import CheckpointError, atomic_torch_save, load_checkpoint, save_checkpoint
from lstmviz.engines.families.language_model import TokenData
from lstmviz.engines.training import train, train_settings_for


@dataclass(frozen=True)
class VectorData:
    in_features: int = field(metadata={"meaning": "the number of input features"})
    outputs: int = field(metadata={"meaning": "the number of outputs"})


class VectorDataset:
    name = "toy-vectors"

    def __init__(self, n=64, seed=0):
        rng = np.random.default_rng(seed)
        self.x = rng.normal(size=(n, 3)).astype(np.float32)
        self.y = np.stack([self.x[:, 0] - self.x[:, 1], 2 * self.x[:, 2]], axis=1).astype(np.float32)


class MeanSquaredError:
    count_name = "samples"
    rate_unit = "samples/s"

    @staticmethod
    def check_settings(s, need, is_int):
        need("noise", s["noise"] >= 0, "a number >= 0")

    def prepare(self, dataset_train, dataset_valid, settings, device):
        self.x, self.y = torch.from_numpy(dataset_train.x).to(device), torch.from_numpy(dataset_train.y).to(device)

    def train_step(self, model):
        return F.mse_loss(model(self.x), self.y), len(self.x)

    def evaluate(self, model):
        return None


class MLP(nn.Module):
    """y = W2 tanh(W1 x)."""

    def __init__(self, *, in_features: int, outputs: int, hidden: int = 8):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_features, hidden), nn.Tanh(), nn.Linear(hidden, outputs))

    def forward(self, x):
        return self.net(x)


TOY_FAMILY = Family(
    name="toy-regression",
    description="vectors in, vectors out",
    data=VectorData,
    describe_dataset=lambda ds: VectorData(ds.x.shape[1], ds.y.shape[1]),
    describe_checkpoint=lambda p: VectorData(p["state_dict"]["net.0.weight"].shape[1],
                                             p["state_dict"]["net.2.weight"].shape[0]),
    sample_inputs=lambda data, *, batch=3, length=1, seed=0: torch.randn(
        batch, data.in_features, generator=torch.Generator().manual_seed(seed)),
    objective=f"{__name__}:MeanSquaredError",
    contract=__name__,
    train_settings={"noise": 0.0},
)
TOY_ENGINE = EngineSpec(name="toy-mlp", description="a two-layer perceptron", family="toy-regression",
                        paper=Paper("a toy", "nobody", "0000.00000", 2000), build=MLP, default_config={"hidden": 8},
                        train_defaults={"steps": 60, "lr": 0.05, "eval_every": 0})
CHECKS = ()


@pytest.fixture
def toy(monkeypatch):
    families.names(), registry.names()  # entry points first: the toy entries are added on top
    monkeypatch.setitem(families._specs, TOY_FAMILY.name, TOY_FAMILY)
    monkeypatch.setitem(registry._specs, TOY_ENGINE.name, TOY_ENGINE)
    return TOY_ENGINE


def test_the_language_model_family_describes_token_data():
    family = families.get("language-model")
    assert registry.get("lstm").family_spec is family
    assert family.data_fields() == ("vocab_size",) and family.data_field_meaning("vocab_size") == "the vocabulary size"

    class Tokens:
        vocab = ["<pad>", "a", "b"]

    assert family.describe_dataset(Tokens()) == TokenData(vocab_size=3)
    assert family.describe_checkpoint({"vocab": ["x", "y"]}) == TokenData(vocab_size=2)
    with pytest.raises(TypeError, match="expected a TokenData .* got VectorData"):
        family.build_kwargs(VectorData(1, 1))
    assert family.objective_class().__name__ == "TruncatedBPTT"
    assert {"bptt", "valid_tokens"} <= set(train_settings_for(family))
    with pytest.raises(UnknownName, match="unknown family 'sound'; available: graph, image, knowledge-lm, language-model"):
        families.get("sound")


def test_an_engine_is_built_from_its_family_data_description():
    torch.manual_seed(0)
    by_description = build_engine("gru", TokenData(vocab_size=6), hidden_size=4, num_layers=1)
    torch.manual_seed(0)
    by_keywords = build_engine("gru", vocab_size=6, hidden_size=4, num_layers=1)
    assert by_description.vocab_size == 6
    assert all(torch.equal(a, b) for a, b in zip(by_description.parameters(), by_keywords.parameters()))
    with pytest.raises(TypeError, match="needs vocab_size"):
        build_engine("gru", hidden_size=4)


def test_an_engine_without_a_default_dataset_uses_its_family_s():
    assert dataclasses.replace(registry.get("lstm"), default_dataset=None).training_dataset() == "parens"
    assert registry.get("lstm").training_dataset() == "parens"


def test_another_family_builds_trains_and_reloads_without_a_vocabulary(toy, tmp_path):
    assert toy.config_keys() == ["hidden"]  # the data fields are not hyperparameters
    model = build_engine("toy-mlp", in_features=3, outputs=2)
    assert isinstance(model, MLP) and model.net[0].in_features == 3 and model.net[2].out_features == 2
    assert set(train_settings_for(TOY_FAMILY)) >= {"noise", "steps", "lr"} and "bptt" not in train_settings_for(TOY_FAMILY)
    with pytest.raises(ConfigError, match="unknown training setting 'bptt'"):
        train("toy-mlp", VectorDataset(), out=tmp_path / "x.pt", bptt=5)

    metrics = train("toy-mlp", VectorDataset(), out=tmp_path / "toy.pt")
    assert metrics["samples"] == 60 * 64 and "samples_per_s" in metrics and "tokens" not in metrics
    assert metrics["train_loss"] < 0.5 * metrics["first_train_loss"]
    loaded, meta = load_checkpoint(tmp_path / "toy.pt")
    assert meta["family"] == "toy-regression" and meta["vocab"] == [] and isinstance(loaded, MLP)
    x = torch.from_numpy(VectorDataset(8, seed=1).x)
    with torch.no_grad():
        assert torch.equal(loaded(x), loaded(x)) and loaded(x).shape == (8, 2)


def test_a_checkpoint_without_a_family_is_a_language_model_and_a_wrong_family_is_refused(tmp_path):
    model = build_engine("lstm", vocab_size=4, hidden_size=3, embedding_dim=2, num_layers=1)
    path = save_checkpoint(tmp_path / "lm.pt", model, engine="lstm", config=model.config, vocab=list("abcd"),
                           dataset=None, step=1, metrics={})
    payload = torch.load(path, weights_only=True)
    assert payload["family"] == "language-model"
    del payload["family"]  # as written before families existed (e.g. the demo's checkpoint)
    atomic_torch_save(payload, tmp_path / "old.pt")
    loaded, meta = load_checkpoint(tmp_path / "old.pt")
    assert meta["family"] == "language-model" and loaded.vocab_size == 4
    payload["family"] = "toy-regression"
    atomic_torch_save(payload, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="a checkpoint of the 'toy-regression' family, but engine 'lstm' is of "
                                              "the 'language-model' family"):
        load_checkpoint(tmp_path / "other.pt")
    payload["family"], payload["vocab"] = "language-model", []
    atomic_torch_save(payload, tmp_path / "empty.pt")
    with pytest.raises(CheckpointError, match="bad 'vocab': expected a non-empty list of token strings"):
        load_checkpoint(tmp_path / "empty.pt")


def test_the_cli_refuses_a_data_field_of_any_family_as_a_hyperparameter(toy, capsys):
    from lstmviz.cli import main

    assert main(["train", "toy-mlp", "--out", "x.pt", "--set", "in_features=3"]) == 2
    assert "--set in_features: the number of input features is the dataset's, not a hyperparameter" in (
        capsys.readouterr().err)


def test_the_bundled_demo_s_provenance_rebuilds_its_model_through_the_family():
    """A recording names its engine, config and vocabulary; the model they describe is built as before."""
    from importlib.resources import files

    from lstmviz.hooks import find_taps
    from lstmviz.recording import open_recording

    with open_recording(str(files("lstmviz.assets") / "demo" / "parens-lstm.h5")) as rec:
        provenance, vocab, recorded = rec.provenance, list(rec.vocab), dict(rec.taps)
    spec = registry.get(provenance["engine"])
    assert spec.family == "language-model"  # the demo predates families: its checkpoint names none
    model = spec.build_model(spec.family_spec.describe_checkpoint({"vocab": vocab}), **provenance["config"])
    assert f"{type(model).__module__}.{type(model).__qualname__}" == provenance["model"]
    assert list(find_taps(model)) == list(recorded)  # the same signals, in the order they were recorded
    assert {info.units for info in recorded.values()} == {provenance["config"]["hidden_size"]}
