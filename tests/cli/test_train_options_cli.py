"""`lstmviz train ... --train optimizer=ekfac|kfac` and `--train privacy=dpsgd ...` end to end, and their bad
values refused in one line."""

from __future__ import annotations

import pytest

from lstmviz.cli import main
from lstmviz.engines import rdp_accountant

TINY_LM = ["--dataset", "parens", "--dataset-option", "tokens=3000", "--dataset-option", "item_length=100",
           "--set", "hidden_size=8", "--set", "embedding_dim=4", "--train", "batch_size=4", "--train", "bptt=10"]
TINY_CNN = ["--dataset", "digits", "--set", "hidden_size=4", "--set", "num_layers=2"]


def test_dpsgd_prints_epsilon_in_the_progress_line_and_the_metrics(tmp_path, capsys):
    code = main(["train", "cnn", *TINY_CNN, "--steps", "3", "--out", str(tmp_path / "dp.pt"), "--no-valid",
                 "--train", "privacy=dpsgd", "--train", "dp_noise=1.0", "--train", "dp_rate=0.02",
                 "--train", "dp_clip=0.5", "--train", "optimizer=sgd", "--train", "lr=0.1"])
    out, err = capsys.readouterr()
    assert code == 0, err
    epsilon = rdp_accountant.epsilon(0.02, 1.0, 3, 1e-5)
    assert f"dp_epsilon: {epsilon:.4g}" in out
    assert f"ε {epsilon:.2f}" in err.splitlines()[-1]


@pytest.mark.parametrize("optimizer", ["kfac", "ekfac"])
def test_kfac_and_ekfac_train_a_recurrent_language_model(tmp_path, capsys, optimizer):
    code = main(["train", "lstm", *TINY_LM, "--steps", "3", "--out", str(tmp_path / "k.pt"), "--quiet", "--no-valid",
                 "--train", f"optimizer={optimizer}", "--train", "lr=0.05", "--train", "ekfac_refresh=2"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"'mode': '{optimizer}'" in out and "'preconditioned': ['decoder.weight', 'decoder.bias']" in out


@pytest.mark.parametrize("setting, message", [
    ("optimizer=lbfgs", "'optimizer': expected one of adam, sgd, kfac, ekfac, got 'lbfgs'"),
    ("ekfac_damping=0", "'ekfac_damping': expected a positive number"),
    ("ekfac_refresh=0.5", "'ekfac_refresh': expected a positive int"),
    ("ekfac_fisher=true", "'ekfac_fisher': expected empirical or sampled"),
    ("privacy=yes", "'privacy': expected one of none, dpsgd, got 'yes'"),
    ("dp_clip=0", "'dp_clip': expected a positive number"),
    ("dp_noise=-1", "'dp_noise': expected a finite number >= 0"),
    ("dp_rate=1.5", "'dp_rate': expected a sampling rate in (0, 1]"),
    ("dp_delta=0", "'dp_delta': expected a number in (0, 1)"),
])
def test_bad_values_are_one_line(tmp_path, capsys, setting, message):
    code = main(["train", "lstm", *TINY_LM, "--steps", "1", "--out", str(tmp_path / "x.pt"), "--quiet",
                 "--train", setting])
    err = capsys.readouterr().err
    assert code == 1 and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.pt").exists()


@pytest.mark.parametrize("extra, message", [
    (["--train", "optimizer=ekfac"], "sgd or adam with privacy=dpsgd"),
    (["--train", "dp_clip=inf"], "dp_clip=inf, no clipping, only with dp_noise=0"),
])
def test_combinations_dp_cannot_account_for_are_refused(tmp_path, capsys, extra, message):
    code = main(["train", "lstm", *TINY_LM, "--steps", "1", "--out", str(tmp_path / "x.pt"), "--quiet",
                 "--train", "privacy=dpsgd", *extra])
    err = capsys.readouterr().err
    assert code == 1 and message in err and len(err.strip().splitlines()) == 1


def test_dp_on_a_batch_norm_engine_is_refused_with_a_sentence(tmp_path, capsys):
    code = main(["train", "bn-lstm", *TINY_LM, "--steps", "1", "--out", str(tmp_path / "x.pt"), "--quiet",
                 "--train", "privacy=dpsgd"])
    err = capsys.readouterr().err
    assert code == 1 and "batch normalisation" in err and "LayerNorm" in err and "Traceback" not in err
