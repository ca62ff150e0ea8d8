r"""``cnmm``: a convolutional neural mixture model, a distribution over the CNNs that are sub-networks of one
densely connected DAG, pruned by a threshold on the mixing probabilities for an adaptive inference cost
(Ruiz & Verbeek 2019, "Adaptative Inference Cost With Convolutional Neural Mixture Models", ICCV,
arXiv:1908.06694).

**This is a reconstruction.** The paper was not available offline; what follows implements the reading in
``shared/reference/models_graph_vision.md`` V10 (from the abstract and secondary summaries). Every choice
the paper may make differently is listed under "Open choices" below.

The backbone DAG. Node 0 is the input ``x`` (``C`` channels, ``H×W``). Every other node ``j`` has a depth
``d_j ≥ 1`` and a scale ``s_j ∈ {0, 1}`` (scale 0: ``H×W``, scale 1: ``⌈H/2⌉×⌈W/2⌉``) and
``hidden_size · 2^{s_j}`` channels. With ``num_layers = L`` the nodes are ``(d, s)`` for ``d = 1..L-1`` and
both scales, plus the output node ``(L, 1)``; there is an edge ``e = (i → j)`` for every pair with
``d_i < d_j`` and ``s_i ≤ s_j`` (dense: every earlier node at the same or a finer scale). ``L = 3`` gives
6 nodes and **12 edges**. Each edge is a block

    f_e(h) = ReLU(γ_e ⊙ N(W_e ⋆_{stride} h))      (3×3 conv, padding 1, no bias; stride 2 when s_j = s_i + 1)

with ``N`` a normalisation without statistics over the batch and with a per-channel scale ``γ_e`` and no shift:
``block="conv-ln-relu"`` (default) normalises over the channels of each cell,
``N(y)_{c,u} = (y_{c,u} − mean_{c'} y_{c',u}) / sqrt(var_{c'} y_{c',u} + 1e-5)`` (a LayerNorm per position, i.e. a
GroupNorm of one group applied cell by cell), which keeps every cell's value local to its receptive field;
``block="conv-gn-relu"`` is GroupNorm (groups: the largest divisor of the channels ≤ 4), whose statistics over
all cells make every cell depend on the whole image (the project's geometry test of perturbation locality then
fails for it, so it is not the default); ``block="linear"``: ``f_e(h) = W_e ⋆ h``, for the mixture-mean test.
No form has a bias, so ``f_e(0) = 0`` exactly: a node that receives nothing is exactly zero and so is everything it feeds.

A mask ``z ∈ {0,1}^E`` selects one CNN; the mixture is ``p(y|x) = Σ_z π_θ(z) p(y | x, z)`` with a factorised
Bernoulli ``π_θ(z) = Π_e p_e^{z_e} (1 − p_e)^{1 − z_e}``, ``p_e = σ(θ_e)``. For gates ``g ∈ [0,1]^E`` the forward is

    h_0 = x,    h_j = Σ_{e=(i→j)} g_e f_e(h_i)   (edges in index order; tap ``node{j}``),
    pooled = mean_{y,x} h_out   (tap ``pooled``),    logits = V pooled + c   (tap ``logits``),

and the per-image RMS of every contribution ``g_e f_e(h_i)`` is the tap ``edge_norms`` (``[B, E]``).

- **training** (``model.train()``): one relaxed mask per image, ``g ~ RelaxedBernoulli(τ_t, logits=θ)``
  (Concrete, reparametrised: ``g = σ((θ + log u − log(1−u)) / τ_t)``), so ``θ`` and the weights get gradients.
- **eval** (``model.eval()``): the expectation-propagated output, ``g = p`` (every expected feature map
  propagated through the DAG instead of enumerating ``2^E`` networks). This equals the mixture mean of the
  logits exactly when the blocks are linear (the output is then multilinear in ``z``, each path using
  distinct edges, and the gates are independent); with ReLU/normalised blocks it is an approximation
  (tests/engines/image/test_cnmm.py checks both).
- ``model(images, gates=z)``: any gates ``[E]`` or ``[B, E]`` (``z ∈ {0,1}^E`` is one deterministic CNN).

Training objective (``model.loss``), in training mode:

    L = (1/B) Σ_b ℓ(logits(x_b; g_b), y_b) + λ · E_π[FLOPs] / FLOPs_full,    E_π[FLOPs] = Σ_{e live} p_e · flops_e

(``λ = cost``); in eval mode the plain task loss of the expectation-propagated logits. FLOPs here are the
**multiply-adds** of the convolutions (``H_j W_j C_j C_i · 9`` per edge) plus the head (``C_out · K``);
normalisation and ReLU are not counted. The temperature anneals geometrically with the number of
training-mode ``loss`` calls ``t`` (buffer ``steps_seen``, kept in checkpoints):
``τ_t = τ_0 (τ_min / τ_0)^{min(1, t / anneal_steps)}``.

Pruning: ``model.prune(threshold)`` keeps the edges with ``p_e ≥ threshold``, then drops every kept edge
whose source is unreachable from the input or whose destination cannot reach the output through kept edges
(dead edges), and stores the result in the buffer ``live`` (in the checkpoint). Dead edges are never
computed. After pruning, eval uses ``g_e = p_e`` on live edges (the mixture restricted to them) or, with
``prune(threshold, hard=True)``, ``g_e = 1`` (one deterministic CNN). ``model.flops(mask)`` counts only the
live edges of a mask (plus the head); ``model.unprune()`` restores the full DAG.

Open choices (the paper may differ; each is fixed here and documented in docs/engines.md):

1. Mixing parametrisation: independent Bernoulli per edge, ``p_e = σ(θ_e)`` (not a distribution over paths
   or per-node categorical choices). The logits are stored divided by ``logit_scale``
   (``θ = logit_scale · φ``, ``φ`` the parameter) so that the shared Adam learning rate moves them
   ``logit_scale`` times faster than the weights; initial ``θ_e = init_logit``.
2. What is mixed: feature maps (expected feature maps propagated, "expectation propagation" in the
   sense of the reference note), not class probabilities; the eval output is ``softmax(logits(E-propagated))``,
   not ``Σ_z π(z) softmax(logits(z))``.
3. Normalisation over incoming edges: none — a node is the plain gated **sum** of its incoming blocks.
   Dividing by ``Σ_e g_e`` would make the output non-multilinear in ``z`` (the expected output would then not
   be the mixture mean even for linear blocks) and undefined for a node with no active input; the scale of
   each block is instead controlled by its own normalisation.
4. Objective: one relaxed sample per image of ``E_z[ℓ(x, y; z)]`` (an upper bound on the mixture's negative
   log-likelihood by Jensen's inequality) plus ``λ`` times the normalised expected FLOPs
   ``Σ_e p_e flops_e``, which ignores that an active edge can be dead in a sample (an upper bound on the
   expected cost of the sampled networks).
5. Temperature: geometric annealing from ``temperature`` to ``min_temperature`` over ``anneal_steps``
   training-mode ``loss`` calls, then constant.
6. Pruning criterion: a global threshold on ``p_e`` (not on the probability of whole networks), followed
   by the removal of dead edges; the pruned model is not re-trained.
7. A normalisation without batch statistics, not BatchNorm (BatchNorm statistics would differ per
   sub-network): LayerNorm over the channels of each cell by default — the reference note suggests GroupNorm,
   which is available (``block="conv-gn-relu"``) but not local (module text above) — with no shift, so that
   ``f_e(0) = 0``.
8. A node's recording axis (``image_axes``) gives the **largest** receptive field over the paths from the
   input to it in the full DAG (stride and centre offset are the same on every path); a pruned model's
   node may see less.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmviz.hooks import IMAGE, SCALAR, Tap

from ..families.image.api import SCALAR_AXIS, ConvStep, ImageAxis, Switch, checked_settings, conv_chain
from ..spec import ConfigError, EngineSpec, Paper

ENGINE = "cnmm"
BLOCKS = ("conv-ln-relu", "conv-gn-relu", "linear")
MIN_SIZE = 4


# ------------------------------------------------------------------------------------------------ the DAG
@dataclass(frozen=True)
class DAG:
    """A backbone: ``nodes[k] = (depth, scale)`` (node 0 the input ``(0, 0)``, the last node the output)
    and ``edges[e] = (source, destination)``.

    Every edge goes to a greater depth and to the same or the next coarser scale; the nodes are in
    topological order (by depth). Refused in one sentence otherwise.
    """

    nodes: tuple[tuple[int, int], ...]
    edges: tuple[tuple[int, int], ...]

    def __post_init__(self) -> None:
        nodes = tuple((int(d), int(s)) for d, s in self.nodes)
        edges = tuple((int(a), int(b)) for a, b in self.edges)
        object.__setattr__(self, "nodes", nodes)
        object.__setattr__(self, "edges", edges)
        if len(nodes) < 2 or nodes[0] != (0, 0):
            raise ValueError(f"a cnmm DAG needs the input node (0, 0) first and at least one more node, got {nodes}")
        if any(nodes[k][0] > nodes[k + 1][0] for k in range(len(nodes) - 1)) or any(d < 1 for d, _ in nodes[1:]):
            raise ValueError(f"a cnmm DAG's nodes must be in order of depth, every one after the input at depth >= 1, "
                             f"got {nodes}")
        if not edges:
            raise ValueError("a cnmm DAG needs at least one edge")
        for a, b in edges:
            if not (0 <= a < len(nodes) and 0 <= b < len(nodes)):
                raise ValueError(f"edge {(a, b)} names a node outside 0..{len(nodes) - 1}")
            (da, sa), (db, sb) = nodes[a], nodes[b]
            if not (da < db and sb - sa in (0, 1)):
                raise ValueError(f"edge {(a, b)} must go to a greater depth and to the same or the next coarser "
                                 f"scale, got {nodes[a]} -> {nodes[b]}")
        if len(set(edges)) != len(edges):
            raise ValueError(f"a cnmm DAG has a repeated edge: {edges}")

    @property
    def output(self) -> int:
        return len(self.nodes) - 1

    def live(self, keep) -> list[bool]:
        """Which edges of the kept set ``keep`` (one bool per edge) are live: kept, with a source reachable
        from the input through kept edges and a destination that reaches the output through kept edges."""
        keep = [bool(k) for k in keep]
        if len(keep) != len(self.edges):
            raise ValueError(f"expected a mask of {len(self.edges)} edges, got {len(keep)}")
        reach = [False] * len(self.nodes)
        reach[0] = True
        for _ in range(len(self.nodes)):
            changed = False
            for e, (a, b) in enumerate(self.edges):
                if keep[e] and reach[a] and not reach[b]:
                    reach[b] = changed = True
            if not changed:
                break
        back = [False] * len(self.nodes)
        back[self.output] = True
        for _ in range(len(self.nodes)):
            changed = False
            for e, (a, b) in enumerate(self.edges):
                if keep[e] and back[b] and not back[a]:
                    back[a] = changed = True
            if not changed:
                break
        return [keep[e] and reach[a] and back[b] for e, (a, b) in enumerate(self.edges)]

    def widest_path(self, node: int) -> list[int]:
        """The edges of the path from the input to ``node`` in the full DAG whose 3×3 convolutions give the
        largest receptive field (an edge from scale ``s`` adds ``2 · 2^s`` input pixels); [] if none."""
        best: dict[int, tuple[int, list[int]]] = {0: (1, [])}
        for j in range(1, len(self.nodes)):  # sources precede destinations (nodes are sorted by depth)
            options = [(best[a][0] + 2 * 2 ** self.nodes[a][1], best[a][1] + [e])
                       for e, (a, b) in enumerate(self.edges) if b == j and a in best]
            if options:
                best[j] = max(options, key=lambda o: (o[0], len(o[1])))
        return best[node][1] if node in best else []


def dense_dag(num_layers: int) -> DAG:
    """The dense two-scale backbone of ``num_layers`` depth steps (module docstring): nodes ``(d, s)`` for
    ``d = 1..L-1``, ``s ∈ {0, 1}``, then the output ``(L, 1)``; an edge for every ``d_i < d_j``, ``s_i ≤ s_j``."""
    nodes = [(0, 0)] + [(d, s) for d in range(1, num_layers) for s in (0, 1)] + [(num_layers, 1)]
    edges = [(i, j) for j in range(1, len(nodes)) for i in range(j)
             if nodes[i][0] < nodes[j][0] and nodes[i][1] <= nodes[j][1]]
    return DAG(tuple(nodes), tuple(edges))


def _groups(channels: int) -> int:
    return max(g for g in (1, 2, 3, 4) if channels % g == 0)


def channel_norm(y: Tensor, gamma: Tensor, eps: float = 1e-5) -> Tensor:
    """LayerNorm over the channels of every cell of ``y`` [B, C, H, W], scaled per channel by ``gamma``, no shift."""
    return F.layer_norm(y.permute(0, 2, 3, 1), (y.shape[1],), gamma, None, eps).permute(0, 3, 1, 2)


class EdgeBlock(nn.Module):
    """One edge's block: ``ReLU(γ ⊙ N(W ⋆_stride h))`` with ``N`` a LayerNorm over the channels of each cell
    (``conv-ln-relu``) or GroupNorm (``conv-gn-relu``), or ``W ⋆_stride h`` (``linear``); 3×3, padding 1, no bias,
    no shift (so ``f(0) = 0``)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, kind: str):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.kind, self.stride = kind, stride
        self.groups = _groups(out_channels)
        self.gamma = nn.Parameter(torch.ones(out_channels)) if kind != "linear" else None

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}" + (f", groups={self.groups}" if self.kind == "conv-gn-relu" else "")

    def forward(self, h: Tensor) -> Tensor:
        y = self.conv(h)
        if self.kind == "linear":
            return y
        if self.kind == "conv-gn-relu":
            return F.group_norm(y, self.groups, self.gamma, None).relu()
        return channel_norm(y, self.gamma).relu()


# ---------------------------------------------------------------------------------------------- the model
class CNMM(nn.Module):
    """A convolutional neural mixture model over the sub-networks of a gated DAG (module docstring).

    Args beyond the data's: ``hidden_size`` (channels at scale 0; ``2·hidden_size`` at scale 1),
    ``num_layers`` (depth steps of the dense backbone, ≥ 2), ``block`` (``conv-ln-relu``, ``conv-gn-relu`` or ``linear``),
    ``cost`` (λ of the FLOPs penalty), ``init_logit`` (initial θ_e), ``logit_scale``, ``temperature``,
    ``min_temperature``, ``anneal_steps``; ``dag`` replaces the dense backbone (tests).
    """

    def __init__(self, channels: int, height: int, width: int, num_classes: int, task: str = "class", *,
                 hidden_size: int = 16, num_layers: int = 3, block: str = "conv-ln-relu", cost: float = 0.5,
                 init_logit: float = 3.0, logit_scale: float = 3.0, temperature: float = 1.0,
                 min_temperature: float = 0.2, anneal_steps: int = 600, dag: DAG | None = None):
        super().__init__()
        _check_config(hidden_size=hidden_size, num_layers=num_layers, block=block, cost=cost,
                      init_logit=init_logit, logit_scale=logit_scale, temperature=temperature,
                      min_temperature=min_temperature, anneal_steps=anneal_steps)
        if task not in ("class", "multilabel"):
            raise ValueError(f"expected task 'class' or 'multilabel' for engine {ENGINE!r}, got {task!r}")
        if height < MIN_SIZE or width < MIN_SIZE:
            raise ValueError(f"engine {ENGINE!r} needs images of at least {MIN_SIZE}x{MIN_SIZE} pixels "
                             f"(two scales), got {height}x{width}")
        self.channels, self.height, self.width, self.num_classes, self.task = channels, height, width, num_classes, task
        self.dag = dag if dag is not None else dense_dag(num_layers)
        self.block_kind, self.cost = block, float(cost)
        self.logit_scale = float(logit_scale)
        self.temperature, self.min_temperature, self.anneal_steps = float(temperature), float(min_temperature), int(anneal_steps)
        self.node_channels = [channels] + [hidden_size * 2 ** s for _, s in self.dag.nodes[1:]]
        self.blocks = nn.ModuleList()
        for a, b in self.dag.edges:
            stride = 2 if self.dag.nodes[b][1] > self.dag.nodes[a][1] else 1
            self.blocks.append(EdgeBlock(self.node_channels[a], self.node_channels[b], stride, block))
        self.incoming = [[e for e, (_, b) in enumerate(self.dag.edges) if b == j] for j in range(len(self.dag.nodes))]
        E = len(self.dag.edges)
        self.gate_param = nn.Parameter(torch.full((E,), float(init_logit) / self.logit_scale))
        self.register_buffer("live", torch.tensor(self.dag.live([True] * E)))
        self.register_buffer("hard", torch.zeros((), dtype=torch.bool))
        self.register_buffer("steps_seen", torch.zeros((), dtype=torch.long))
        self.node_taps = nn.ModuleList(
            Tap(f"node{j}", signal="node", layer=j, layout=IMAGE, axis=f"node{j}",
                description=f"DAG node {j} (depth {d}, scale {s}): the gated sum of its incoming edge blocks"
                            + (" (the output node)" if j == self.dag.output else ""))
            for j, (d, s) in enumerate(self.dag.nodes) if j)
        self.edge_tap = Tap("edge_norms", layout=SCALAR, axis="image",
                            description="per edge (in edge order): the RMS of its gated contribution g_e f_e(h_src) "
                                        "over channels and cells; 0 for a pruned edge")
        self.head = nn.Linear(self.node_channels[-1], num_classes)
        self.pooled_tap = Tap("pooled", layout=SCALAR, axis="image",
                              description="global average of the output node's feature map")
        self.logits_tap = Tap("logits", layout=SCALAR, axis="image", description="the class logits")
        self._macs = self._edge_macs(height, width)
        self.image_axes(height, width)

    def extra_repr(self) -> str:
        return (f"nodes={len(self.dag.nodes)}, edges={len(self.dag.edges)}, block={self.block_kind!r}, "
                f"cost={self.cost}, tau={self.temperature}->{self.min_temperature} over {self.anneal_steps}")

    # -- geometry and cost -------------------------------------------------------------------------------------
    def _steps(self, node: int) -> list[ConvStep]:
        return [ConvStep(3, self.blocks[e].stride, 1) for e in self.dag.widest_path(node)]

    def image_axes(self, height: int, width: int) -> dict[str, ImageAxis]:
        axes = {f"node{j}": conv_chain(height, width, self._steps(j)) for j in range(1, len(self.dag.nodes))}
        axes["image"] = SCALAR_AXIS
        return axes

    def _edge_macs(self, height: int, width: int) -> list[int]:
        sizes = [(height, width), ((height + 1) // 2, (width + 1) // 2)]
        macs = []
        for (a, b) in self.dag.edges:
            h, w = sizes[self.dag.nodes[b][1]]
            macs.append(h * w * self.node_channels[b] * self.node_channels[a] * 9)
        return macs

    @property
    def edge_flops(self) -> list[int]:
        """Multiply-adds of every edge's convolution at the model's input size."""
        return list(self._macs)

    @property
    def head_flops(self) -> int:
        return self.head.in_features * self.head.out_features

    def flops(self, mask=None) -> int:
        """Multiply-adds per image of the network that runs the live edges of ``mask`` (default: the model's
        current ``live`` mask): only edges reachable from the input and reaching the output count, plus the head."""
        if mask is None:
            mask = self.live.tolist()
        live = self.dag.live([bool(m) for m in (mask.tolist() if isinstance(mask, Tensor) else mask)])
        return sum(m for m, on in zip(self._macs, live) if on) + self.head_flops

    # -- gates -------------------------------------------------------------------------------------------------
    @property
    def edge_logits(self) -> Tensor:
        """θ [E]."""
        return self.gate_param * self.logit_scale

    def edge_probs(self) -> Tensor:
        """p_e = σ(θ_e) [E]."""
        return torch.sigmoid(self.edge_logits)

    def current_temperature(self) -> float:
        frac = min(1.0, int(self.steps_seen) / self.anneal_steps) if self.anneal_steps else 1.0
        return self.temperature * (self.min_temperature / self.temperature) ** frac

    def expected_flops(self) -> Tensor:
        """``Σ_{e live} p_e flops_e`` (differentiable in θ; the head not included)."""
        macs = torch.tensor(self._macs, dtype=self.gate_param.dtype, device=self.gate_param.device)
        return (self.edge_probs() * macs * self.live.to(macs.dtype)).sum()

    def prune_mask(self, threshold: float) -> Tensor:
        """The live mask (bool [E]) of keeping ``p_e ≥ threshold``; does not change the model."""
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= float(threshold) <= 1.0:
            raise ValueError(f"expected a pruning threshold between 0 and 1, got {threshold!r}")
        with torch.no_grad():
            keep = (self.edge_probs() >= float(threshold)).tolist()
        return torch.tensor(self.dag.live(keep), device=self.live.device)

    def prune(self, threshold: float, hard: bool = False) -> Tensor:
        """Keep the edges with ``p_e ≥ threshold`` and drop dead ones (module docstring); with ``hard`` eval
        then runs the kept CNN with gates 1 instead of ``p_e``. Returns the live mask."""
        mask = self.prune_mask(threshold)
        self.live.copy_(mask)
        self.hard.fill_(bool(hard))
        return mask.clone()

    def set_mask(self, mask, hard: bool = True) -> Tensor:
        """Run only the live edges of an explicit edge mask (bool per edge), hard gates by default."""
        live = self.dag.live([bool(m) for m in (mask.tolist() if isinstance(mask, Tensor) else mask)])
        self.live.copy_(torch.tensor(live))
        self.hard.fill_(bool(hard))
        return self.live.clone()

    PRUNE_CHOICES = ("none", "0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9", "0.95", "0.99")

    def perturbation_switches(self) -> list[Switch]:
        """``prune``: a threshold on the edge probabilities (edges with ``p_e`` below it and the dead ones are
        removed), or ``none`` (the model as it is)."""
        return [Switch("prune", self.PRUNE_CHOICES, "none",
                       "drop the edges whose probability p_e is below this threshold (and the dead ones)")]

    @contextlib.contextmanager
    def switched(self, settings):
        """Run pruned at the ``prune`` switch's threshold (soft gates on the kept edges), the live mask and the
        gate mode restored after."""
        value = checked_settings(self.perturbation_switches(), settings)["prune"]
        saved_live, saved_hard = self.live.clone(), self.hard.clone()
        if value != "none":
            mask = self.prune_mask(float(value)) & saved_live
            if not bool(mask.any()):
                raise ValueError(f"pruning at {value} removes every edge (the largest edge probability is "
                                 f"{float(self.edge_probs().max()):.3g}); choose a lower threshold")
            self.live.copy_(torch.tensor(self.dag.live(mask.tolist()), device=self.live.device))
        try:
            yield self
        finally:
            self.live.copy_(saved_live)
            self.hard.copy_(saved_hard)

    def unprune(self) -> None:
        """Restore the full DAG with the expectation (soft) gates."""
        self.live.copy_(torch.tensor(self.dag.live([True] * len(self.dag.edges))))
        self.hard.fill_(False)

    def _gates(self, images: Tensor, gates: Tensor | None) -> Tensor:
        if gates is not None:
            gates = torch.as_tensor(gates, dtype=images.dtype, device=images.device)
            E = len(self.dag.edges)
            if gates.shape not in ((E,), (images.shape[0], E)):
                raise ValueError(f"expected gates of shape ({E},) or ({images.shape[0]}, {E}), got {tuple(gates.shape)}")
            return gates
        if self.training:
            dist = torch.distributions.RelaxedBernoulli(
                torch.tensor(self.current_temperature(), dtype=images.dtype, device=images.device),
                logits=self.edge_logits.to(images.dtype))
            return dist.rsample((images.shape[0],))
        if bool(self.hard):
            return self.live.to(images.dtype)
        return self.edge_probs().to(images.dtype)

    # -- forward -----------------------------------------------------------------------------------------------
    def forward(self, images: Tensor, gates: Tensor | None = None) -> Tensor:
        """Logits ``[B, K]`` with the gates of the mode (training: relaxed samples; eval: ``p_e``, or 1 on
        live edges after a hard prune) or the given ``gates`` ``[E]`` / ``[B, E]``."""
        if images.dim() != 4 or images.shape[1] != self.channels:
            raise ValueError(f"expected images [B, {self.channels}, H, W], got {tuple(images.shape)}")
        g = self._gates(images, gates)
        per_image = g.dim() == 2
        live = self.live.tolist()
        B = images.shape[0]
        sizes = [tuple(images.shape[2:]), ((images.shape[2] + 1) // 2, (images.shape[3] + 1) // 2)]
        values: list[Tensor | None] = [images] + [None] * (len(self.dag.nodes) - 1)
        norms = images.new_zeros(B, len(self.dag.edges))
        for j in range(1, len(self.dag.nodes)):
            acc = None
            for e in self.incoming[j]:
                if not live[e]:
                    continue
                ge = g[:, e].view(B, 1, 1, 1) if per_image else g[e]
                term = ge * self.blocks[e](values[self.dag.edges[e][0]])
                norms[:, e] = term.pow(2).mean(dim=(1, 2, 3)).sqrt()
                acc = term if acc is None else acc + term
            if acc is None:  # no live input: the node is exactly zero (and feeds no live edge)
                acc = images.new_zeros(B, self.node_channels[j], *sizes[self.dag.nodes[j][1]])
            values[j] = self.node_taps[j - 1](acc)
        self.edge_tap(norms)
        pooled = self.pooled_tap(values[-1].mean(dim=(2, 3)))
        return self.logits_tap(self.head(pooled))

    # -- objective ---------------------------------------------------------------------------------------------
    def task_losses(self, logits: Tensor, batch: dict) -> Tensor:
        if self.task == "multilabel":
            return F.binary_cross_entropy_with_logits(logits, batch["targets"], reduction="none").mean(1)
        return F.cross_entropy(logits, batch["target"], reduction="none")

    def loss(self, images: Tensor, batch: dict) -> tuple[Tensor, int]:
        """``(L, B)``: training mode — task loss of relaxed samples + ``cost`` · expected FLOPs / full FLOPs
        (and one annealing step); eval mode — the task loss of the expectation-propagated logits."""
        if not self.training:
            return self.task_losses(self(images), batch).mean(), len(images)
        task = self.task_losses(self(images), batch).mean()
        self.steps_seen += 1
        full = float(sum(m for m, on in zip(self._macs, self.live.tolist()) if on)) or 1.0
        return task + self.cost * self.expected_flops() / full, len(images)


def _check_config(**c) -> None:
    def bad(key, want):
        raise ConfigError(f"expected {key} of engine {ENGINE!r} to be {want}, got {c[key]!r}")

    def is_int(v):
        return isinstance(v, int) and not isinstance(v, bool)

    def is_num(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    if not is_int(c["hidden_size"]) or c["hidden_size"] < 1:
        bad("hidden_size", "a positive int")
    if not is_int(c["num_layers"]) or c["num_layers"] < 2:
        bad("num_layers", "an int >= 2 (depth steps of the DAG)")
    if c["block"] not in BLOCKS:
        bad("block", f"one of {', '.join(BLOCKS)}")
    if not is_num(c["cost"]) or c["cost"] < 0:
        bad("cost", "a number >= 0")
    if not is_num(c["init_logit"]):
        bad("init_logit", "a finite number")
    if not is_num(c["logit_scale"]) or c["logit_scale"] <= 0:
        bad("logit_scale", "a number > 0")
    if not is_num(c["temperature"]) or c["temperature"] <= 0:
        bad("temperature", "a number > 0")
    if not is_num(c["min_temperature"]) or not 0 < c["min_temperature"] <= c["temperature"]:
        bad("min_temperature", "a number in (0, temperature]")
    if not is_int(c["anneal_steps"]) or c["anneal_steps"] < 0:
        bad("anneal_steps", "an int >= 0")


def build(channels: int, height: int, width: int, num_classes: int, task: str = "class", *,
          hidden_size: int = 16, num_layers: int = 3, block: str = "conv-ln-relu", cost: float = 0.5,
          init_logit: float = 3.0, logit_scale: float = 3.0, temperature: float = 1.0,
          min_temperature: float = 0.2, anneal_steps: int = 600) -> CNMM:
    return CNMM(channels, height, width, num_classes, task, hidden_size=hidden_size, num_layers=num_layers,
                block=block, cost=cost, init_logit=init_logit, logit_scale=logit_scale, temperature=temperature,
                min_temperature=min_temperature, anneal_steps=anneal_steps)


SPEC = EngineSpec(
    name=ENGINE,
    description="a convolutional neural mixture model: a dense two-scale DAG of gated 3x3 conv blocks, trained "
                "with relaxed-Bernoulli edge gates and a FLOPs penalty, pruned by a threshold on the edge "
                "probabilities (reconstruction)",
    family="image",
    paper=Paper(
        title="Adaptative Inference Cost With Convolutional Neural Mixture Models",
        authors="Ruiz, Verbeek",
        arxiv="1908.06694",
        year=2019,
    ),
    build=build,
    default_config={"hidden_size": 16, "num_layers": 3, "block": "conv-ln-relu", "cost": 0.5, "init_logit": 3.0,
                    "logit_scale": 3.0, "temperature": 1.0, "min_temperature": 0.2, "anneal_steps": 600},
    taps=("node{layer}", "edge_norms", "pooled", "logits"),
    train_defaults={"steps": 600, "batch_size": 64, "lr": 0.003, "eval_every": 100, "optimizer": "adam",
                    "clip": 5.0, "seed": 0},
)
