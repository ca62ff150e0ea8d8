"""Fixtures of the perturbation tests: tiny trained models recorded by the CLI, and a script's own nn.LSTM."""

from __future__ import annotations

import pytest
import torch

from perturb_fixtures import SCRIPT_VOCAB, UserLM, script_items, train_and_record


@pytest.fixture(scope="session")
def lstm_files(tmp_path_factory):
    return train_and_record(tmp_path_factory.mktemp("lstm"), "lstm")


@pytest.fixture(scope="session")
def gru_files(tmp_path_factory):
    return train_and_record(tmp_path_factory.mktemp("gru"), "gru")


@pytest.fixture
def lstm_rec(lstm_files):
    from lstmviz.recording import open_recording

    with open_recording(lstm_files[1]) as rec:
        yield rec


@pytest.fixture
def lstm_live(lstm_rec):
    from lstmviz.perturb import load_live_model

    return load_live_model(lstm_rec)


@pytest.fixture(scope="session")
def script_files(tmp_path_factory):
    """(model, recording path): UserLM recorded by lstmviz.record() from a script, float32."""
    import lstmviz

    torch.manual_seed(0)
    model = UserLM().eval()
    path = tmp_path_factory.mktemp("script") / "script.h5"
    lstmviz.record(model, script_items(), path, vocab=SCRIPT_VOCAB, batch_size=2, dtype="float32", progress=False)
    return model, path


@pytest.fixture
def script_rec(script_files):
    from lstmviz.recording import open_recording

    with open_recording(script_files[1]) as rec:
        yield rec


@pytest.fixture
def script_live(script_files):
    from lstmviz.perturb import live_model

    return live_model(script_files[0], vocab=SCRIPT_VOCAB)
