"""The contract every registered engine satisfies: its family's suite, run for every engine of every family.

A new engine is covered by being registered; a new family by shipping ``CHECKS`` in the module its
``Family.contract`` names (see engines/families/language_model/contract.py).
"""

from __future__ import annotations

import pytest

from lstmviz.engines import families, registry


def _cases():
    for family_name, family in families.all().items():
        engines = [name for name, spec in registry.all().items() if spec.family == family_name]
        for check in family.contract_checks():
            for engine in engines:
                yield pytest.param(engine, check, id=f"{family_name}:{engine}:{check.__name__}")


CASES = list(_cases())


def test_the_built_in_engines_and_family_are_registered():
    assert {"lstm", "gru"} <= set(registry.names())
    assert "language-model" in families.names()
    assert {case.values[0] for case in CASES} >= {"lstm", "gru"}
    assert families.get("language-model").contract_checks()


def test_every_engine_belongs_to_a_registered_family_so_its_suite_runs():
    assert {spec.family for spec in registry.all().values()} <= set(families.names())
    covered = {case.values[0] for case in CASES}
    assert covered == set(registry.names())


@pytest.mark.parametrize(("engine", "check"), CASES)
def test_contract(engine, check, tmp_path):
    check(registry.get(engine), tmp_path)


def test_the_graph_family_runs_its_suite_for_every_graph_engine():
    graph_engines = {name for name, spec in registry.all().items() if spec.family == "graph"}
    assert "chebnet" in graph_engines
    checks = families.get("graph").contract_checks()
    assert len(checks) >= 7
    ids = {case.id for case in CASES}
    assert {f"graph:{engine}:{check.__name__}" for engine in graph_engines for check in checks} <= ids
