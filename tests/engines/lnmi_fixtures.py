"""Helpers of the ln-* and mi-* engine tests: tiny float64 models, runs from a given state, weight edits."""

from __future__ import annotations

import torch

from lstmviz.engines import registry
from lstmviz.engines.families.language_model import TokenData
from lstmviz.hooks import find_taps

VOCAB, B, T = 7, 3, 6
TINY = {"embedding_dim": 6, "hidden_size": 8, "num_layers": 2, "init_range": 0.3}


def tiny(name: str, seed: int = 0, **config):
    torch.manual_seed(seed)
    spec = registry.get(name)
    return spec.build_model(TokenData(vocab_size=VOCAB), **spec.resolve_config({**TINY, **config})).double().eval()


def tokens(seed: int = 0, batch: int = B, steps: int = T) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, steps), generator=torch.Generator().manual_seed(seed))


def random_state(model, seed: int = 1, batch: int = B):
    """A non-zero initial state (LN of W_h h_0 is then defined even with eps = 0)."""
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.rand(s.shape, generator=g, dtype=torch.float64) - 0.5 for s in model.init_state(batch))


def run(model, x, state=None):
    """``(logits, state)`` without autograd."""
    with torch.no_grad():
        return model(x, state)


def trace(model, x, names, state=None) -> dict:
    """{tap name: [T, B, H]} of one forward pass."""
    taps = find_taps(model)
    seen = {n: [] for n in names}
    handles = [taps[n].register_forward_hook(lambda m, a, out: seen[m.name].append(out.detach().clone()))
               for n in names]
    try:
        run(model, x, state)
    finally:
        for h in handles:
            h.remove()
    return {n: torch.stack(v) for n, v in seen.items()}


def additive_pair(name: str, additive: str):
    """(MI model with alpha = 0, beta1 = beta2 = 1 and the additive model's weights, the additive model)."""
    reference = tiny(additive, seed=4)
    model = tiny(name, seed=5, alpha_init=0.0, beta_init=1.0)
    missing, unexpected = model.load_state_dict(reference.state_dict(), strict=False)
    assert not unexpected and missing and all(".mi_" in key for key in missing)
    with torch.no_grad():
        for layer in model.layers:
            for p in (layer.mi_alpha, layer.mi_beta1, layer.mi_beta2):
                p.zero_()
    return model, reference


def assert_rounding_equal(got: torch.Tensor, expected: torch.Tensor) -> None:
    """Equal up to float64 rounding of a fused addmm vs a matmul and an add: a few ulps of values ~1."""
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-14)
