"""HookScope: hooks exist only inside `with`, are removed even on errors, and writers run before readers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lstmviz.hooks import HookScope


def _no_hooks(module: nn.Module) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks and "forward" not in m.__dict__
               for m in module.modules())


def test_hooks_exist_only_inside_the_scope_and_are_removed_on_an_error():
    net = nn.Sequential(nn.Linear(2, 2), nn.Tanh())
    seen = []
    with pytest.raises(RuntimeError, match="boom"):
        with HookScope() as hooks:
            hooks.read(net[0], lambda m, a, k, out: seen.append(out))
            hooks.write(net[1], lambda m, a, k, out: out * 0)
            hooks.before_forward(net, lambda m, a: seen.append("pre"))
            net(torch.ones(1, 2))
            raise RuntimeError("boom")
    assert len(seen) == 2 and _no_hooks(net)
    net(torch.ones(1, 2))
    assert len(seen) == 2  # nothing is called after the scope
    with pytest.raises(RuntimeError, match="inside `with HookScope"):
        HookScope().read(net[0], lambda *a: None)


def test_writers_run_before_readers_whatever_the_order_they_were_added_in():
    layer = nn.Identity()
    seen = []
    with HookScope() as reading:
        reading.read(layer, lambda m, a, k, out: seen.append(out.clone()))
        with HookScope() as writing:  # added later, still applied first
            writing.write(layer, lambda m, a, k, out: out + 1)
            writing.write(layer, lambda m, a, k, out: out * 10)  # within a scope: in the order added
            result = layer(torch.zeros(2))
        assert torch.equal(result, torch.full((2,), 10.0)) and torch.equal(seen[0], result)
        assert torch.equal(layer(torch.zeros(2)), torch.zeros(2))  # the writers are gone, the reader is not
    assert len(seen) == 2 and _no_hooks(layer)


def test_a_writer_that_returns_none_keeps_the_value_and_a_scope_is_not_reentrant():
    layer = nn.Identity()
    with HookScope() as hooks:
        hooks.write(layer, lambda m, a, k, out: None)
        x = torch.ones(3)
        assert layer(x) is x
        with pytest.raises(RuntimeError, match="not re-entrant"):
            hooks.__enter__()
