"""Engine ``bn-lstm``: the batch-normalised LSTM of Cooijmans, Ballas, Laurent, Gülçehre & Courville (2016).

"Recurrent Batch Normalization" (arXiv:1603.09025) normalises the input-to-hidden and the
hidden-to-hidden transformations of an LSTM *separately*, and the cell state where it feeds the
output, with statistics estimated separately for every time step (population statistics per step at
test time; steps beyond the longest training sequence T_max reuse the statistics of the last step),
and initialises the BN scales gamma to 0.1 so that the normalised pre-activations do not saturate the
gates. The cell recurrence ``c_t = f * c_{t-1} + i * g`` itself stays unnormalised.

Time steps are counted from the start of the state (a zero state, or ``state=None``): the state carries
the count (state ``step``), so a sequence fed one step at a time uses the same statistics as in one
call, and a stream read window by window (stateful truncated BPTT, validation, recording) keeps its
position; every step from ``max_steps - 1`` on shares the last statistics set.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmviz.hooks.taps import TapDecl

from ..spec import EngineSpec, Paper
from ._norm import StepwiseBatchNorm, check_norm_settings, constant_init_of, reset_norms
from .base import RecurrentLayer, State
from .language_model import LANGUAGE_MODEL_TRAIN_DEFAULTS, RecurrentLanguageModel

_GATES = ("i", "f", "g", "o")
_GATE_WORDS = {"i": "input gate", "f": "forget gate", "g": "candidate", "o": "output gate"}


def _norm_taps(site: str, term: str) -> tuple[TapDecl, ...]:
    return tuple(
        TapDecl(f"{site}/{k}", f"{_GATE_WORDS[k]} block of the normalised {term}, BN({term}; gamma, 0) with "
                               f"this step's statistics (batch in training, population in evaluation)",
                signal=f"{site}_{k}")
        for k in _GATES
    )


class BNLSTMLayer(RecurrentLayer):
    r"""One batch-normalised LSTM layer (Cooijmans et al. 2016), gate order i, f, g, o.

    .. math::
        [\tilde i; \tilde f; \tilde g; \tilde o] &= \mathrm{BN}_t(W_h h_{t-1}; \gamma_h, 0)
            + \mathrm{BN}_t(W_x x_t; \gamma_x, 0) + b \\
        c_t &= \sigma(\tilde f) \odot c_{t-1} + \sigma(\tilde i) \odot \tanh(\tilde g) \\
        h_t &= \sigma(\tilde o) \odot \tanh(\mathrm{BN}_t(c_t; \gamma_c, \beta_c))

    with :math:`\mathrm{BN}_t(z; \gamma, \beta) = \beta + \gamma \odot (z - \hat\mu_t) / \sqrt{\hat\sigma^2_t + \epsilon}`,
    :math:`\hat\mu_t, \hat\sigma^2_t` the statistics of time step ``min(t, max_steps - 1)`` (the batch's in
    training mode, the population's in evaluation mode). ``gamma`` is initialised to ``gamma_init`` (0.1),
    ``beta_c`` to 0; the shifts of the two transitions are fixed at 0 and the single bias ``b`` does
    their job. ``weight_ih`` [4H, input_size], ``weight_hh`` [4H, H], ``bias`` [4H]; ``bn_x``, ``bn_h``
    (4H features, no shift) and ``bn_c`` (H features, with shift), each with ``max_steps`` statistics sets.

    State ``(h, c, step)``: ``step`` holds the time steps since the state was zero (every unit of a row
    holds the same count, clamped at ``max_steps``); it picks the statistics set.

    Taps (one call per step, ``[batch, H]``, ``step=t``): ``layer{l}/norm_x/{i,f,g,o}`` and
    ``layer{l}/norm_h/{i,f,g,o}`` (the normalised transitions, per gate block), ``layer{l}/gates/{i,f,g,o}``
    (post-activation), ``layer{l}/c`` (raw cell state, the recurrence), ``layer{l}/norm_c`` (BN(c_t), what
    the output sees) and ``layer{l}/h``.
    """

    state_names = ("h", "c", "step")
    taps = (
        *_norm_taps("norm_x", "W_x x_t"),
        *_norm_taps("norm_h", "W_h h_{t-1}"),
        TapDecl("gates/i", "input gate sigma(BN(W_h h)_i + BN(W_x x)_i + b_i), in (0, 1)"),
        TapDecl("gates/f", "forget gate sigma(BN(W_h h)_f + BN(W_x x)_f + b_f), in (0, 1)"),
        TapDecl("gates/g", "candidate tanh(BN(W_h h)_g + BN(W_x x)_g + b_g), in (-1, 1)"),
        TapDecl("gates/o", "output gate sigma(BN(W_h h)_o + BN(W_x x)_o + b_o), in (0, 1)"),
        TapDecl("c", "cell state c_t = f_t * c_{t-1} + i_t * g_t (raw; the recurrence is not normalised)"),
        TapDecl("norm_c", "normalised cell state BN(c_t; gamma_c, beta_c), what the output gate sees"),
        TapDecl("h", "hidden state h_t = o_t * tanh(BN(c_t)), in (-1, 1); the layer's output"),
    )

    def __init__(self, input_size: int, hidden_size: int, *, layer: int, max_steps: int = 50, gamma_init: float = 0.1,
                 momentum: float = 0.1, eps: float = 1e-5):
        super().__init__(input_size, hidden_size, layer=layer)
        rows = 4 * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(rows, input_size))
        self.weight_hh = nn.Parameter(torch.empty(rows, hidden_size))
        self.bias = nn.Parameter(torch.empty(rows))
        self.configure_norm(max_steps=max_steps, gamma_init=gamma_init, momentum=momentum, eps=eps)
        bound = hidden_size ** -0.5
        with torch.no_grad():
            for p in (self.weight_ih, self.weight_hh, self.bias):
                p.uniform_(-bound, bound)

    def configure_norm(self, *, max_steps: int, gamma_init: float, momentum: float, eps: float) -> None:
        """(Re)build the three BN sites with ``max_steps`` statistics sets each (fresh statistics)."""
        self.max_steps = max_steps
        settings = dict(gamma_init=gamma_init, momentum=momentum, eps=eps)
        self.bn_x = StepwiseBatchNorm(4 * self.hidden_size, max_steps, shift=False, **settings)
        self.bn_h = StepwiseBatchNorm(4 * self.hidden_size, max_steps, shift=False, **settings)
        self.bn_c = StepwiseBatchNorm(self.hidden_size, max_steps, shift=True, **settings)

    def project_input(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight_ih)  # W_x x for all steps; normalised per step in step()

    def step(self, x_t: Tensor, state: State, t: int) -> tuple[Tensor, State]:
        h_prev, c_prev, count = state
        index = count[:, 0].round().long().clamp(0, self.max_steps - 1)
        nx = self.bn_x(x_t, index).chunk(4, dim=1)
        nh = self.bn_h(F.linear(h_prev, self.weight_hh), index).chunk(4, dim=1)
        nx = [getattr(self, f"norm_x_{k}_tap")(v, step=t) for k, v in zip(_GATES, nx)]
        nh = [getattr(self, f"norm_h_{k}_tap")(v, step=t) for k, v in zip(_GATES, nh)]
        b_i, b_f, b_g, b_o = self.bias.chunk(4)
        i = self.i_tap(torch.sigmoid(nx[0] + nh[0] + b_i), step=t)
        f = self.f_tap(torch.sigmoid(nx[1] + nh[1] + b_f), step=t)
        g = self.g_tap(torch.tanh(nx[2] + nh[2] + b_g), step=t)
        o = self.o_tap(torch.sigmoid(nx[3] + nh[3] + b_o), step=t)
        c = self.c_tap(f * c_prev + i * g, step=t)
        norm_c = self.norm_c_tap(self.bn_c(c, index), step=t)
        h = self.h_tap(o * torch.tanh(norm_c), step=t)
        return h, (h, c, (count + 1).clamp(max=self.max_steps))

    def extra_repr(self) -> str:
        return super().extra_repr() + f", max_steps={self.max_steps}"


class BNLSTMLanguageModel(RecurrentLanguageModel):
    r"""Stacked batch-normalised LSTM language model (Cooijmans et al. 2016, arXiv:1603.09025).

    With D ordinary dropout and ``h^0_t = E[x_t]`` the word embedding, every layer l is a
    :class:`BNLSTMLayer`:

    .. math::
        [\tilde i, \tilde f, \tilde g, \tilde o]^l_t &= \mathrm{BN}_t(W^l_h h^l_{t-1}; \gamma_h, 0)
            + \mathrm{BN}_t(W^l_x D(h^{l-1}_t); \gamma_x, 0) + b^l \\
        c^l_t &= \sigma(\tilde f^l_t) \odot c^l_{t-1} + \sigma(\tilde i^l_t) \odot \tanh(\tilde g^l_t) \\
        h^l_t &= \sigma(\tilde o^l_t) \odot \tanh(\mathrm{BN}_t(c^l_t; \gamma_c, \beta_c)) \\
        \mathrm{logits}_t &= W_{dec} D(h^L_t) + b_{dec}

    Extra hyperparameters: ``max_steps`` (T_max: time steps with their own statistics; later steps share
    the last set), ``gamma_init`` (0.1, the paper's), ``bn_momentum`` and ``bn_eps``. Weights and biases
    are drawn from U(-init_range, init_range); gammas are set to ``gamma_init`` and ``beta_c`` to 0.
    State ``(h, c, step)``, each ``[num_layers, batch, hidden_size]``.
    """

    layer_class = BNLSTMLayer

    def __init__(self, *, vocab_size: int, embedding_dim: int = 128, hidden_size: int = 128, num_layers: int = 2,
                 dropout: float = 0.0, init_range: float = 0.1, max_steps: int = 50, gamma_init: float = 0.1,
                 bn_momentum: float = 0.1, bn_eps: float = 1e-5):
        check_norm_settings("bn-lstm", gamma_init=gamma_init, momentum=bn_momentum, eps=bn_eps, max_steps=max_steps)
        super().__init__(vocab_size=vocab_size, embedding_dim=embedding_dim, hidden_size=hidden_size,
                         num_layers=num_layers, dropout=dropout, init_range=init_range)
        self.max_steps = max_steps
        self.gamma_init = float(gamma_init)
        self.bn_momentum = float(bn_momentum)
        self.bn_eps = float(bn_eps)
        for layer in self.layers:
            layer.configure_norm(max_steps=max_steps, gamma_init=self.gamma_init, momentum=self.bn_momentum,
                                 eps=self.bn_eps)
        self.reset_parameters()

    @property
    def config(self) -> dict:
        return {**super().config, "max_steps": self.max_steps, "gamma_init": self.gamma_init,
                "bn_momentum": self.bn_momentum, "bn_eps": self.bn_eps}

    def reset_parameters(self) -> None:
        """Weights and biases from U(-init_range, init_range); BN gammas = gamma_init, betas 0, statistics reset."""
        super().reset_parameters()
        reset_norms(self)

    def constant_init(self) -> dict[str, float]:
        """The parameters :meth:`reset_parameters` sets to a constant (BN scales and shifts), by name."""
        return constant_init_of(self)


SPEC = EngineSpec(
    name="bn-lstm",
    description="LSTM with per-time-step batch norm of both transitions and of the cell (Cooijmans et al. 2016)",
    family="language-model",
    paper=Paper(
        title="Recurrent Batch Normalization",
        authors="Tim Cooijmans, Nicolas Ballas, César Laurent, Çağlar Gülçehre, Aaron Courville",
        arxiv="1603.09025",
        year=2016,
    ),
    build=BNLSTMLanguageModel,
    default_config={"embedding_dim": 128, "hidden_size": 128, "num_layers": 2, "init_range": 0.1,
                    "max_steps": 50, "gamma_init": 0.1},
    taps=BNLSTMLayer.tap_patterns(),
    default_dataset="parens",
    train_defaults=LANGUAGE_MODEL_TRAIN_DEFAULTS,
)
