"""OMP_WAIT_POLICY=PASSIVE is set by importing lstmviz, whoever imports it, unless the user chose a
value or torch (whose OpenMP runtime reads it once) was imported first (issue 11.6)."""

import os
import subprocess
import sys

import pytest


def _policy_after(code: str, **env) -> str:
    environ = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}  # tests/conftest.py sets it
    environ.update(env)
    result = subprocess.run([sys.executable, "-c", f"{code}; import os; print(os.environ.get('OMP_WAIT_POLICY'))"],
                            capture_output=True, text=True, env=environ, check=True)
    return result.stdout.strip()


@pytest.mark.parametrize("code", ["import lstmviz", "import lstmviz.analysis.transforms",
                                  "from lstmviz.engines import registry", "import lstmviz.cli"])
def test_every_entry_point_sets_passive_waiting(code):
    assert _policy_after(code) == "PASSIVE"


def test_a_value_the_user_set_is_kept():
    assert _policy_after("import lstmviz", OMP_WAIT_POLICY="ACTIVE") == "ACTIVE"


def test_nothing_is_set_once_torch_is_loaded_where_it_could_no_longer_help():
    assert _policy_after("import torch, lstmviz") == "None"
