r"""Engine ``pf-gru``: a GRU language model trained with professor forcing (Lamb et al. 2016).

"Professor Forcing: A New Algorithm for Training Recurrent Networks", Alex Lamb, Anirudh Goyal, Ying
Zhang, Saizheng Zhang, Aaron Courville, Yoshua Bengio (NeurIPS 2016, arXiv:1610.09038).

The generator G (parameters θ) is the stacked GRU language model of engine ``gru`` (same layers, taps
and forward). Per training segment (x, y = next tokens) it runs twice from the same initial state:

- teacher-forced: inputs ``x_t``; behaviour ``B_TF = (b_1 .. b_T)``;
- free-running: input ``x_1``, then ``x̂_{t+1} ~ softmax(logits_t)`` (sampled, never argmax); ``B_FR``;

where ``b_t`` is every layer's hidden state ``[h^1_t; ...; h^L_t]`` (with ``disc_logits``, also the
pre-softmax logits). The discriminator D (parameters φ) reads a behaviour sequence ``[T, B, F]`` and gives
the logit of ``P(teacher-forced)``. The losses (with ``BCE(l, 1) = −log σ(l)``):

.. math::
    L_D &= -\log D(B_{TF}) - \log(1 - D(B_{FR}))                       && \text{(φ only)} \\
    C_f &= -\log D(B_{FR}),\quad C_t = -\log(1 - D(B_{TF}))           && \text{(φ held fixed)} \\
    L_G &= NLL_{TF} + \lambda\, g_G\, (C_f + \mu\, C_t)                  && \text{(θ only)}

with λ = ``pf_weight`` (0: plain teacher forcing, the baseline: no free-running run, no D update), μ =
``teacher_weight`` (C_t is optional in the paper; 0 by default). Sampled tokens are constants: no gradient
reaches the sampling op (no REINFORCE); ``∂C_f/∂θ`` flows through the free-running hidden states.

Heuristics of the paper (as in the authors' code): ``g_G = 1`` only while D's accuracy on the batch (its
TF and FR decisions at 0.5) is above ``adversary_gate`` (0.75), so a confused D does not steer G; D is
not updated while its accuracy is above ``disc_gate`` (0.99), so it does not saturate (vanishing C_f).
The accuracy is measured on the current batch before the update.

**One optimiser, two objectives.** lstmviz's shared loop (``engines/training.py``) steps one optimiser
over ``model.parameters()`` with one ``loss.backward()``. :meth:`loss` (the language-model objective's
engine-owned loss hook) returns ``NLL + λ g_G (C_f + μ C_t) + g_D L_D`` where the two halves cannot mix
gradients: L_D reads the behaviours *detached* (its gradient reaches φ only), and C_f / C_t run D through
``torch.func.functional_call`` with φ *detached* (their gradient reaches θ only). So θ receives
``∇_θ(NLL + λ C_f)`` and φ receives ``∇_φ L_D``, exactly the two players' gradients. When D is gated off,
L_D is left out, φ's gradients stay ``None`` and Adam skips φ (no momentum step). Gradient clipping
(``clip``) takes each player's own norm (:meth:`clip_groups`), so D's gradient never rescales G's.

**D's structure** (the authors' ``Descriminator_Hidden.py``, anirudh9119/LM_GANS): three GRU layers,
the middle one reading time backwards (so D is bidirectional), each fed the behaviour features and the
previous layer's ReLU output; ReLU, mean over time; three ReLU dense layers; a logit. D is a plain
``nn.GRU`` stack (never recorded; no taps).

Choices the paper leaves open, made here: the behaviour is every layer's h (``disc_logits`` adds the
logits); the free-running run starts from the teacher-forced run's initial state (the carried state of
stateful truncated BPTT; ``pf_start="zero"``: both behaviour runs start from the zero state, the paper's
runs over whole sequences, and the NLL is still computed from the carried state; on a stream cut at
arbitrary positions the teacher-forced behaviour from the zero state is itself off the data's distribution,
and in docs/engines.md a long run with it degraded G) with the segment's first data token; both runs have the segment's length
(``bptt``); λ = 1; D's hidden size ``disc_hidden`` (default 64); D's and G's parameters are drawn from the
same ``U(-init_range, init_range)``; dropout (if any) applies in both runs with independent masks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..families.language_model.free_running import sampler, teacher, unroll
from ..spec import EngineSpec, Paper
from .gru import GRULanguageModel, GRULayer
from .language_model import LANGUAGE_MODEL_TRAIN_DEFAULTS, _positive_int


PF_STARTS = ("carried", "zero")


class BehaviourDiscriminator(nn.Module):
    """D: ``forward(behaviour [T, B, F]) -> logit [B]`` of "this behaviour came from teacher forcing".

    Three GRU layers over time (forward, backward, forward), each reading ``[features; ReLU(previous
    layer)]``; mean over time of the last ReLU output; three ReLU dense layers of ``hidden_size``; a logit.
    """

    def __init__(self, features: int, hidden_size: int = 64):
        super().__init__()
        self.features = _positive_int("features", features)
        self.hidden_size = _positive_int("disc_hidden", hidden_size)
        self.rnn = nn.ModuleList(nn.GRU(features + (0 if k == 0 else hidden_size), hidden_size) for k in range(3))
        self.mlp = nn.Sequential(nn.Linear(hidden_size, hidden_size), nn.ReLU(),
                                 nn.Linear(hidden_size, hidden_size), nn.ReLU(),
                                 nn.Linear(hidden_size, hidden_size), nn.ReLU(),
                                 nn.Linear(hidden_size, 1))

    def forward(self, behaviour: Tensor) -> Tensor:
        if behaviour.dim() != 3 or behaviour.shape[2] != self.features:
            raise ValueError(f"expected a behaviour sequence [time, batch, {self.features}], "
                             f"got shape {tuple(behaviour.shape)}")
        x = behaviour
        for k, rnn in enumerate(self.rnn):
            inp = behaviour if k == 0 else torch.cat([behaviour, x], dim=2)
            if k == 1:  # the middle layer reads time backwards
                out, _ = rnn(inp.flip(0))
                out = out.flip(0)
            else:
                out, _ = rnn(inp)
            x = torch.relu(out)
        return self.mlp(x.mean(0)).squeeze(1)

    def extra_repr(self) -> str:
        return f"features={self.features}, hidden_size={self.hidden_size}"


def _fraction(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"expected {name} to be a number in [0, 1], got {value!r}")
    return float(value)


def _weight(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"expected {name} to be a number >= 0, got {value!r}")
    return float(value)


class ProfessorForcingGRU(GRULanguageModel):
    r"""A GRU language model (engine ``gru``) with a behaviour discriminator ``discriminator`` and the
    professor-forcing loss :meth:`loss` (see the module docstring). ``forward`` is the GRU LM's:

    .. math::
        r^l_t &= \sigma(W^l_{ir} h^{l-1}_t + W^l_{hr} h^l_{t-1} + b^l_r),\quad
        z^l_t = \sigma(W^l_{iz} h^{l-1}_t + W^l_{hz} h^l_{t-1} + b^l_z) \\
        n^l_t &= \tanh(W^l_{in} h^{l-1}_t + b^l_{in} + r^l_t \odot (W^l_{hn} h^l_{t-1} + b^l_{hn})),\quad
        h^l_t = (1 - z^l_t) \odot n^l_t + z^l_t \odot h^l_{t-1}

    and the behaviour D reads at step t is ``[h^1_t; ...; h^L_t]``.

    Extra keywords: ``pf_weight`` (λ; 0 = teacher forcing only), ``teacher_weight`` (μ, weight of C_t),
    ``disc_hidden``, ``disc_logits`` (D also reads the pre-softmax logits), ``adversary_gate`` (0.75),
    ``disc_gate`` (0.99), ``pf_start`` (``"carried"``: both behaviour runs start from the carried TBPTT state;
    ``"zero"``: from the zero state, as the paper's whole sequences do, while the NLL keeps the carried state).
    """

    #: D runs only during training, over behaviour sequences: the recorder offers none of its signals
    unrecorded_modules = ("discriminator",)

    def __init__(self, *, vocab_size: int, embedding_dim: int = 128, hidden_size: int = 128, num_layers: int = 2,
                 dropout: float = 0.0, init_range: float = 0.1, pf_weight: float = 1.0, teacher_weight: float = 0.0,
                 disc_hidden: int = 64, disc_logits: bool = False, adversary_gate: float = 0.75,
                 disc_gate: float = 0.99, pf_start: str = "carried"):
        super().__init__(vocab_size=vocab_size, embedding_dim=embedding_dim, hidden_size=hidden_size,
                         num_layers=num_layers, dropout=dropout, init_range=init_range)
        self.pf_weight = _weight("pf_weight", pf_weight)
        self.teacher_weight = _weight("teacher_weight", teacher_weight)
        self.adversary_gate = _fraction("adversary_gate", adversary_gate)
        self.disc_gate = _fraction("disc_gate", disc_gate)
        if not isinstance(disc_logits, bool):
            raise ValueError(f"expected disc_logits to be a bool, got {disc_logits!r}")
        self.disc_logits = disc_logits
        if pf_start not in PF_STARTS:
            raise ValueError(f"expected pf_start to be one of {', '.join(PF_STARTS)}, got {pf_start!r}")
        self.pf_start = pf_start
        features = num_layers * hidden_size + (vocab_size if disc_logits else 0)
        self.discriminator = BehaviourDiscriminator(features, disc_hidden)
        with torch.no_grad():  # G's parameters were drawn by the GRU LM's reset; D's from the same range
            for p in self.discriminator.parameters():
                p.uniform_(-self.init_range, self.init_range)
        self.pf_stats = {"steps": 0, "adversary_on": 0, "disc_updated": 0, "disc_accuracy": None}

    @property
    def config(self) -> dict:
        return {**super().config, "pf_weight": self.pf_weight, "teacher_weight": self.teacher_weight,
                "disc_hidden": self.discriminator.hidden_size, "disc_logits": self.disc_logits,
                "adversary_gate": self.adversary_gate, "disc_gate": self.disc_gate, "pf_start": self.pf_start}

    def generator_parameters(self):
        """θ: every parameter but the discriminator's."""
        return [p for name, p in self.named_parameters() if not name.startswith("discriminator.")]

    def clip_groups(self):
        """θ and φ: the shared training loop clips each player's gradient by its own norm."""
        return [self.generator_parameters(), list(self.discriminator.parameters())]

    # ------------------------------------------------------------------ the two players' losses

    def behaviour(self, run) -> Tensor:
        """What D reads from an unroll: ``[T, B, L*H]`` (plus the logits with ``disc_logits``)."""
        if not self.disc_logits:
            return run.hidden
        return torch.cat([run.hidden, run.logits.transpose(0, 1)], dim=2)

    def discriminate_fixed(self, behaviour: Tensor) -> Tensor:
        """D's logit with φ held fixed (detached): its gradient reaches the behaviour (θ) only."""
        fixed = {name: p.detach() for name, p in self.discriminator.named_parameters()}
        return torch.func.functional_call(self.discriminator, fixed, (behaviour,))

    def pf_terms(self, x: Tensor, y: Tensor, state=None, next_token=None) -> dict:
        """The terms of one segment (``x``, ``y`` [B, T]): ``nll``, ``c_f``, ``c_t``, ``d_loss``,
        ``d_accuracy``, ``adversary_on``, ``disc_on``, the unrolls ``tf`` / ``fr`` and ``state`` (the
        teacher-forced run's last). ``next_token``: the free-running sampler (default: sampling)."""
        T = x.shape[1]
        tf = unroll(self, x[:, 0], T, teacher(x), state)
        nll = F.cross_entropy(tf.logits.reshape(-1, tf.logits.shape[-1]), y.reshape(-1))
        carried = tf.state
        if self.pf_start == "zero" and state is not None:  # the two behaviour runs start from the zero state
            tf = unroll(self, x[:, 0], T, teacher(x), None)
            state = None
        fr = unroll(self, x[:, 0], T, next_token or sampler(), state)
        b_tf, b_fr = self.behaviour(tf), self.behaviour(fr)
        ones, zeros = b_tf.new_ones(x.shape[0]), b_tf.new_zeros(x.shape[0])
        d_tf, d_fr = self.discriminator(b_tf.detach()), self.discriminator(b_fr.detach())
        d_loss = (F.binary_cross_entropy_with_logits(d_tf, ones) + F.binary_cross_entropy_with_logits(d_fr, zeros))
        accuracy = 0.5 * (float((d_tf > 0).double().mean()) + float((d_fr < 0).double().mean()))
        c_f = F.binary_cross_entropy_with_logits(self.discriminate_fixed(b_fr), ones)  # -log D(B_FR)
        c_t = (F.binary_cross_entropy_with_logits(self.discriminate_fixed(b_tf), zeros)  # -log(1 - D(B_TF))
               if self.teacher_weight > 0 else nll.new_zeros(()))
        return {"nll": nll, "c_f": c_f, "c_t": c_t, "d_loss": d_loss, "d_accuracy": accuracy,
                "adversary_on": accuracy > self.adversary_gate, "disc_on": accuracy <= self.disc_gate,
                "tf": tf, "fr": fr, "state": carried}

    def loss(self, x: Tensor, y: Tensor, state=None):
        """The language-model objective's engine-owned loss: ``(loss, state to carry)``; see the module docstring.

        With ``pf_weight = 0`` it is plain teacher forcing (the GRU LM's next-token cross-entropy).
        """
        if self.pf_weight == 0:
            logits, new_state = self(x, state)
            return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)), new_state
        terms = self.pf_terms(x, y, state)
        total = terms["nll"]
        if terms["adversary_on"]:
            total = total + self.pf_weight * (terms["c_f"] + self.teacher_weight * terms["c_t"])
        if terms["disc_on"]:
            total = total + terms["d_loss"]
        stats = self.pf_stats
        stats["steps"] += 1
        stats["adversary_on"] += int(terms["adversary_on"])
        stats["disc_updated"] += int(terms["disc_on"])
        stats["disc_accuracy"] = round(terms["d_accuracy"], 4)
        return total, terms["state"]

    def training_metrics(self) -> dict:
        """What the training loop adds to the checkpoint's metrics: how often each gate was open."""
        s = self.pf_stats
        if not s["steps"]:
            return {}
        return {"pf_adversary_on": round(s["adversary_on"] / s["steps"], 4),
                "pf_disc_updated": round(s["disc_updated"] / s["steps"], 4),
                "pf_last_disc_accuracy": s["disc_accuracy"]}


SPEC = EngineSpec(
    name="pf-gru",
    description="GRU language model trained with professor forcing (Lamb et al. 2016): a discriminator on "
                "teacher-forced vs free-running hidden states; pf_weight=0 is the teacher-forcing baseline",
    family="language-model",
    paper=Paper(
        title="Professor Forcing: A New Algorithm for Training Recurrent Networks",
        authors="Alex Lamb, Anirudh Goyal, Ying Zhang, Saizheng Zhang, Aaron Courville, Yoshua Bengio",
        arxiv="1610.09038",
        year=2016,
    ),
    build=ProfessorForcingGRU,
    default_config={"embedding_dim": 32, "hidden_size": 64, "num_layers": 1, "init_range": 0.1,
                    "pf_weight": 1.0, "teacher_weight": 0.0, "disc_hidden": 64, "disc_logits": False,
                    "adversary_gate": 0.75, "disc_gate": 0.99},
    taps=GRULayer.tap_patterns(),
    default_dataset="parens",
    train_defaults={**LANGUAGE_MODEL_TRAIN_DEFAULTS, "steps": 600, "bptt": 25, "dropout": 0.0},
)
