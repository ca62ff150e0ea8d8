"""Engine ``qnn-lstm``: an LSTM language model with k-bit weights and activations (Hubara et al. 2016).

"Quantized Neural Networks: Training Neural Networks with Low Precision Weights and Activations"
(arXiv:1609.07061) trains networks whose weights and activations are k-bit numbers, with
full-precision shadow weights and straight-through estimators for the rounding. Its LSTM result: a
PTB language model with 4-bit weights and 4-bit activations comes within a few perplexity points of
the 32-bit one (2 bits degrade strongly).

Choices documented here (the paper leaves them open for RNNs): weights use a signed uniform quantiser
over ``[-s, s)`` with ``s`` the smallest power of two >= max|W| of the matrix; activations are
quantised where they enter a matrix product (the recurrent ``h`` and the next layer's input), with a
signed quantiser over ``[-1, 1)``; gates and the cell state ``c`` (element-wise only), the embedding
(the first layer's input), biases and the decoder (softmax layer) stay full precision. 32 bits is the
identity (the float baseline). All levels are multiples of a power of two, exact in float16 for k <= 11.
"""

from __future__ import annotations

from torch import Tensor

from lstmviz.hooks.taps import TapDecl

from ..spec import EngineSpec, Paper
from ..quantizers import quantize_signed, ste
from ._quant import ShadowWeightLayer, check_bits, pow2_ceil
from .base import State
from .language_model import LANGUAGE_MODEL_TRAIN_DEFAULTS, RecurrentLanguageModel
from .lp_lstm import pre_activation_taps, quantized_lstm_step

_GATES = ("i", "f", "g", "o")


class QNNLSTMLayer(ShadowWeightLayer):
    r"""One LSTM layer with k-bit weights (``weight_bits``) and k-bit activations (``activation_bits``).

    With ``Q_s^k`` the signed k-bit quantiser (straight-through: gradient 1 inside the range, 0
    outside) and ``s`` the power-of-two range of each weight matrix (the smallest >= its max |W|):

    .. math::
        Q_s^k(x; s) &= \operatorname{clip}(\operatorname{round}(x\, 2^{k-1}/s), -2^{k-1}, 2^{k-1}-1)\, s / 2^{k-1},
            \qquad W^q = Q_s^{k_w}(W; s),\quad \hat x_t = Q_s^{k_a}(x_t; 1)\ (\text{layers} > 0) \\
        [a_i, a_f, a_g, a_o] &= W^q_x \hat x_t + W^q_h \hat h_{t-1} + b \\
        i_t &= \sigma(a_i),\ f_t = \sigma(a_f),\ g_t = \tanh(a_g),\ o_t = \sigma(a_o) \\
        c_t &= f_t \odot c_{t-1} + i_t \odot g_t,\qquad h_t = o_t \odot \tanh(c_t),\qquad \hat h_t = Q_s^{k_a}(h_t; 1)

    Activations are quantised where they enter a matrix product: the recurrent state ``\hat h``
    (carried as the state ``h``) and the next layer's input. Gates and ``c`` (element-wise only), the
    first layer's input (the embedding) and the decoder's input stay full precision.

    Taps (``[batch, H]`` per step): ``pre/{i,f,g,o}`` (with ``W^q``), ``latent/{i,f,g,o}`` (with the
    shadow ``W``, recorded only), ``gates/{i,f,g,o}``, ``c``, ``h`` (full precision, the layer's
    output; pre-quantisation) and ``h_q`` (``\hat h_t``; post-quantisation, float16-exact).
    """

    gate_count = 4
    state_names = ("h", "c")
    weight_bits: int = 4
    activation_bits: int = 4
    taps = pre_activation_taps(_GATES) + (
        TapDecl("gates/i", "input gate after the sigmoid, i_t = sigmoid(a_i), in (0, 1)"),
        TapDecl("gates/f", "forget gate after the sigmoid, f_t = sigmoid(a_f), in (0, 1)"),
        TapDecl("gates/g", "candidate cell value after the tanh, g_t = tanh(a_g), in (-1, 1)"),
        TapDecl("gates/o", "output gate after the sigmoid, o_t = sigmoid(a_o), in (0, 1)"),
        TapDecl("c", "cell state c_t = f_t * c_{t-1} + i_t * g_t (full precision, unbounded)"),
        TapDecl("h", "hidden state before quantisation, h_t = o_t * tanh(c_t), in (-1, 1); the layer's output"),
        TapDecl("h_q", "quantised hidden state Q(h_t), k-bit levels m / 2^(k-1) in [-1, 1); the recurrent "
                       "state entering W_h at t+1 and the next layer's input"),
    )

    def quantized_weights(self) -> tuple[Tensor, Tensor]:
        out = []
        for w in (self.weight_ih, self.weight_hh):
            if self.weight_bits >= 32:
                out.append(w)
                continue
            scale = pow2_ceil(float(w.detach().abs().max()))
            out.append(ste(w, quantize_signed(w.detach(), self.weight_bits, scale), -scale, scale))
        return out[0], out[1]

    def quantize_activation(self, x: Tensor) -> Tensor:
        """``Q_s^{k_a}(x; 1)`` with the straight-through gradient inside [-1, 1]."""
        if self.activation_bits >= 32:
            return x
        return ste(x, quantize_signed(x.detach(), self.activation_bits), -1.0, 1.0)

    def project_input(self, x: Tensor) -> Tensor:
        return super().project_input(x if self.layer == 0 else self.quantize_activation(x))

    def step(self, x_t: Tensor, state: State, t: int) -> tuple[Tensor, State]:
        h, c = quantized_lstm_step(self, x_t, *state, t)  # state[0] is the quantised state
        h_q = self.h_q_tap(self.quantize_activation(h), step=t)
        return h, (h_q, c)


class QNNLSTMLanguageModel(RecurrentLanguageModel):
    r"""Stacked LSTM language model with k-bit weights and activations (Hubara et al. 2016, arXiv:1609.07061).

    .. math::
        e_t &= D(E[x_t]),\quad [a_i, a_f, a_g, a_o]^l_t = Q(W^l_x)\, Q(D(h^{l-1}_t)) + Q(W^l_h)\, Q(h^l_{t-1}) + b^l
              \quad (\text{no } Q \text{ on } e_t) \\
        c^l_t &= \sigma(a_f) \odot c^l_{t-1} + \sigma(a_i) \odot \tanh(a_g),\quad h^l_t = \sigma(a_o) \odot \tanh(c^l_t),
              \quad \mathrm{logits}_t = W_{dec} D(h^L_t) + b_{dec}

    ``weight_bits`` and ``activation_bits``: 1 .. 11 (levels exact in float16) or 32 (full precision).
    Quantisers pass gradients straight through inside their range; the optimiser updates the
    full-precision shadow weights. Embedding, biases, gates, ``c`` and decoder stay full precision.
    """

    layer_class = QNNLSTMLayer

    def __init__(self, *, vocab_size: int, embedding_dim: int = 128, hidden_size: int = 128, num_layers: int = 2,
                 dropout: float = 0.0, init_range: float = 0.1, weight_bits: int = 4, activation_bits: int = 4):
        weight_bits = check_bits("qnn-lstm", "weight_bits", weight_bits)
        activation_bits = check_bits("qnn-lstm", "activation_bits", activation_bits)
        super().__init__(vocab_size=vocab_size, embedding_dim=embedding_dim, hidden_size=hidden_size,
                         num_layers=num_layers, dropout=dropout, init_range=init_range)
        self.weight_bits, self.activation_bits = weight_bits, activation_bits
        for layer in self.layers:
            layer.weight_bits, layer.activation_bits = weight_bits, activation_bits

    @property
    def config(self) -> dict:
        return {**super().config, "weight_bits": self.weight_bits, "activation_bits": self.activation_bits}


SPEC = EngineSpec(
    name="qnn-lstm",
    description="LSTM language model with k-bit weights and activations, straight-through estimators (Hubara et al. 2016)",
    family="language-model",
    paper=Paper(
        title="Quantized Neural Networks: Training Neural Networks with Low Precision Weights and Activations",
        authors="Itay Hubara, Matthieu Courbariaux, Daniel Soudry, Ran El-Yaniv, Yoshua Bengio",
        arxiv="1609.07061",
        year=2016,
    ),
    build=QNNLSTMLanguageModel,
    default_config={"embedding_dim": 128, "hidden_size": 128, "num_layers": 2, "init_range": 0.1,
                    "weight_bits": 4, "activation_bits": 4},
    taps=QNNLSTMLayer.tap_patterns(),
    default_dataset="parens",
    train_defaults=LANGUAGE_MODEL_TRAIN_DEFAULTS,
)
