"""Engine ``bn-rnn``: batch norm on the input-to-hidden transition only (Laurent, Pereyra, Brakel, Zhang & Bengio 2016).

"Batch Normalized Recurrent Neural Networks" (arXiv:1510.01378) applies batch normalisation to the
vertical (input-to-hidden) projection ``W_x x_t`` of each recurrent layer and leaves the recurrence
``W_h h_{t-1}`` unnormalised (normalising it did not help in their experiments). For
variable-length sequences they take *sequence-wise* statistics: one mean and variance per feature over
every time step and every sequence of the minibatch, so there is one set of population statistics,
not one per step. Their experiments (WSJ speech, Penn Treebank language model) use LSTMs, as this
engine does. The finding is negative for recurrent BN: the training cost drops faster, but the model
generalises no better (often worse, i.e. it overfits more) than the unnormalised one.

In a language model trained by stateful truncated BPTT, the "sequence" of one call is one window of
``bptt`` steps of every row: the statistics are taken over batch x window.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmviz.hooks.taps import TapDecl

from ..spec import EngineSpec, Paper
from ._norm import SequenceBatchNorm, check_norm_settings, constant_init_of, reset_norms
from .base import RecurrentLayer, State
from .language_model import LANGUAGE_MODEL_TRAIN_DEFAULTS, RecurrentLanguageModel

_GATES = ("i", "f", "g", "o")
_GATE_WORDS = {"i": "input gate", "f": "forget gate", "g": "candidate", "o": "output gate"}


class BNRNNLayer(RecurrentLayer):
    r"""One LSTM layer with sequence-wise batch norm on its input projection (Laurent et al. 2016).

    .. math::
        [\tilde i; \tilde f; \tilde g; \tilde o]_t &= \mathrm{BN}(W_x x_t; \gamma, \beta) + W_h h_{t-1} \\
        c_t &= \sigma(\tilde f_t) \odot c_{t-1} + \sigma(\tilde i_t) \odot \tanh(\tilde g_t) \\
        h_t &= \sigma(\tilde o_t) \odot \tanh(c_t)

    with :math:`\mathrm{BN}(z; \gamma, \beta) = \beta + \gamma \odot (z - \hat\mu) / \sqrt{\hat\sigma^2 + \epsilon}`
    and :math:`\hat\mu, \hat\sigma^2` taken over all ``B x T`` positions of the call in training mode
    (sequence-wise) and the population statistics in evaluation mode. BN's shift ``beta`` replaces the
    bias (there is no other); ``gamma`` starts at ``gamma_init`` (1, as in the authors' code), ``beta``
    at 0. ``W_h h_{t-1}`` is not normalised. ``weight_ih`` [4H, input_size], ``weight_hh`` [4H, H],
    ``bn_x`` (4H features, one statistics set).

    Taps (one call per step, ``[batch, H]``, ``step=t``): ``layer{l}/norm_x/{i,f,g,o}`` (the normalised
    input term per gate block), ``layer{l}/rec/{i,f,g,o}`` (the raw recurrent term ``W_h h_{t-1}``: the
    scale mismatch between the two is visible), ``layer{l}/gates/{i,f,g,o}``, ``layer{l}/c``, ``layer{l}/h``.
    """

    state_names = ("h", "c")
    taps = (
        *(TapDecl(f"norm_x/{k}", f"{_GATE_WORDS[k]} block of BN(W_x x_t; gamma, beta), sequence-wise statistics "
                                 f"(batch x time in training, population in evaluation)", signal=f"norm_x_{k}")
          for k in _GATES),
        *(TapDecl(f"rec/{k}", f"{_GATE_WORDS[k]} block of the raw recurrent term W_h h_{{t-1}} (not normalised)",
                  signal=f"rec_{k}")
          for k in _GATES),
        TapDecl("gates/i", "input gate sigma(BN(W_x x)_i + W_hi h_{t-1}), in (0, 1)"),
        TapDecl("gates/f", "forget gate sigma(BN(W_x x)_f + W_hf h_{t-1}), in (0, 1)"),
        TapDecl("gates/g", "candidate tanh(BN(W_x x)_g + W_hg h_{t-1}), in (-1, 1)"),
        TapDecl("gates/o", "output gate sigma(BN(W_x x)_o + W_ho h_{t-1}), in (0, 1)"),
        TapDecl("c", "cell state c_t = f_t * c_{t-1} + i_t * g_t (unbounded)"),
        TapDecl("h", "hidden state h_t = o_t * tanh(c_t), in (-1, 1); the layer's output"),
    )

    def __init__(self, input_size: int, hidden_size: int, *, layer: int, gamma_init: float = 1.0,
                 momentum: float = 0.1, eps: float = 1e-5):
        super().__init__(input_size, hidden_size, layer=layer)
        rows = 4 * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(rows, input_size))
        self.weight_hh = nn.Parameter(torch.empty(rows, hidden_size))
        self.configure_norm(gamma_init=gamma_init, momentum=momentum, eps=eps)
        bound = hidden_size ** -0.5
        with torch.no_grad():
            for p in (self.weight_ih, self.weight_hh):
                p.uniform_(-bound, bound)

    def configure_norm(self, *, gamma_init: float, momentum: float, eps: float) -> None:
        """(Re)build the input projection's BN (fresh statistics)."""
        self.bn_x = SequenceBatchNorm(4 * self.hidden_size, shift=True, gamma_init=gamma_init, momentum=momentum,
                                      eps=eps)

    def project_input(self, x: Tensor) -> Tensor:
        return self.bn_x(F.linear(x, self.weight_ih))  # BN(W_x x) over all B x T positions at once

    def step(self, x_t: Tensor, state: State, t: int) -> tuple[Tensor, State]:
        h_prev, c_prev = state
        nx = [getattr(self, f"norm_x_{k}_tap")(v, step=t) for k, v in zip(_GATES, x_t.chunk(4, dim=1))]
        rec = F.linear(h_prev, self.weight_hh).chunk(4, dim=1)
        rec = [getattr(self, f"rec_{k}_tap")(v, step=t) for k, v in zip(_GATES, rec)]
        i = self.i_tap(torch.sigmoid(nx[0] + rec[0]), step=t)
        f = self.f_tap(torch.sigmoid(nx[1] + rec[1]), step=t)
        g = self.g_tap(torch.tanh(nx[2] + rec[2]), step=t)
        o = self.o_tap(torch.sigmoid(nx[3] + rec[3]), step=t)
        c = self.c_tap(f * c_prev + i * g, step=t)
        h = self.h_tap(o * torch.tanh(c), step=t)
        return h, (h, c)


class BNRNNLanguageModel(RecurrentLanguageModel):
    r"""Stacked LSTM language model with batch norm on every layer's input projection (Laurent et al. 2016).

    With D ordinary dropout and ``h^0_t = E[x_t]`` the word embedding, every layer l is a :class:`BNRNNLayer`:

    .. math::
        [\tilde i, \tilde f, \tilde g, \tilde o]^l_t &= \mathrm{BN}(W^l_x D(h^{l-1}_t); \gamma^l, \beta^l)
            + W^l_h h^l_{t-1} \\
        c^l_t &= \sigma(\tilde f^l_t) \odot c^l_{t-1} + \sigma(\tilde i^l_t) \odot \tanh(\tilde g^l_t) \\
        h^l_t &= \sigma(\tilde o^l_t) \odot \tanh(c^l_t) \\
        \mathrm{logits}_t &= W_{dec} D(h^L_t) + b_{dec}

    Statistics are sequence-wise (over batch x time of each call). Extra hyperparameters: ``gamma_init``
    (1), ``bn_momentum`` and ``bn_eps``. Weights are drawn from U(-init_range, init_range); gamma is set
    to ``gamma_init`` and beta to 0. State ``(h, c)``, each ``[num_layers, batch, hidden_size]``.
    """

    layer_class = BNRNNLayer

    def __init__(self, *, vocab_size: int, embedding_dim: int = 128, hidden_size: int = 128, num_layers: int = 2,
                 dropout: float = 0.0, init_range: float = 0.1, gamma_init: float = 1.0, bn_momentum: float = 0.1,
                 bn_eps: float = 1e-5):
        check_norm_settings("bn-rnn", gamma_init=gamma_init, momentum=bn_momentum, eps=bn_eps)
        super().__init__(vocab_size=vocab_size, embedding_dim=embedding_dim, hidden_size=hidden_size,
                         num_layers=num_layers, dropout=dropout, init_range=init_range)
        self.gamma_init = float(gamma_init)
        self.bn_momentum = float(bn_momentum)
        self.bn_eps = float(bn_eps)
        for layer in self.layers:
            layer.configure_norm(gamma_init=self.gamma_init, momentum=self.bn_momentum, eps=self.bn_eps)
        self.reset_parameters()

    @property
    def config(self) -> dict:
        return {**super().config, "gamma_init": self.gamma_init, "bn_momentum": self.bn_momentum,
                "bn_eps": self.bn_eps}

    def reset_parameters(self) -> None:
        """Weights from U(-init_range, init_range); BN gamma = gamma_init, beta = 0, statistics reset."""
        super().reset_parameters()
        reset_norms(self)

    def constant_init(self) -> dict[str, float]:
        """The parameters :meth:`reset_parameters` sets to a constant (BN scales and shifts), by name."""
        return constant_init_of(self)


SPEC = EngineSpec(
    name="bn-rnn",
    description="LSTM with sequence-wise batch norm on the input-to-hidden term only (Laurent et al. 2016)",
    family="language-model",
    paper=Paper(
        title="Batch Normalized Recurrent Neural Networks",
        authors="César Laurent, Gabriel Pereyra, Philémon Brakel, Ying Zhang, Yoshua Bengio",
        arxiv="1510.01378",
        year=2016,
    ),
    build=BNRNNLanguageModel,
    default_config={"embedding_dim": 128, "hidden_size": 128, "num_layers": 2, "init_range": 0.1,
                    "gamma_init": 1.0},
    taps=BNRNNLayer.tap_patterns(),
    default_dataset="parens",
    train_defaults=LANGUAGE_MODEL_TRAIN_DEFAULTS,
)
