"""ChebNet: graph convolutions with Chebyshev polynomial filters, Graclus pooling (Defferrard et al. 2016).

A layer maps ``F_in`` channels ``x_i`` (``[positions]`` each) to ``F_out`` channels

    y_j = sum_{i < F_in} sum_{k < K} theta_{k,i,j} T_k(L~) x_i + b_j,        h_j = ReLU(y_j) * m

with ``L~ = 2 L / lambda_max - I`` the rescaled normalised Laplacian ``L = I - D^{-1/2} W D^{-1/2}`` of
the layer's level (self-loops removed, ``D^{-1/2} = 0`` at isolated nodes: :mod:`lstmviz.engines.graph.ops`),
``T_0 x = x``, ``T_1 x = L~ x``, ``T_k x = 2 L~ T_{k-1} x - T_{k-2} x``, and ``m`` the mask of real
(non-filler) positions.

Conventions:

- ``K`` is the **number of terms** (the polynomial has degree ``K - 1``, PyTorch Geometric's ``ChebConv``
  convention): a layer's output at node ``v`` depends only on nodes at most ``K - 1`` hops away, and
  ``L`` layers on nodes at most ``L (K - 1)`` hops away (tested bit-exactly);
- ``lambda_max``: ``"exact"`` (the default: the largest eigenvalue of each level's ``L``, computed once
  per graph in :meth:`ChebNet.prepare`) or a number; ``2.0`` reproduces PyG's ``ChebConv`` with
  ``normalization="sym"`` and the paper's shortcut;
- pooling (``pool_levels`` > 0, the graph task): the graph is coarsened ``pool_levels`` times by Graclus
  and its nodes put in binary-tree order with filler ("fake") positions
  (:mod:`lstmviz.engines.graph.graclus`), so that after each of the first ``pool_levels`` layers a max
  over consecutive pairs of positions pools every cluster. Fillers are isolated and set to 0 after
  every ReLU (the mask ``m``; the bias alone would make them ``ReLU(b) > 0``), so with ReLU outputs
  ``>= 0`` a filler never wins a max it shares with a real node: pooling is neutral to them;
- readout: node task (no pooling): ``logits_v = W h_v + c`` per node, returned in the input's node
  order; graph task: ``logits = W mean_{real v} h_v + c`` over the real positions of the last level.

Taps (``[1, positions of the level, units]``, :data:`lstmviz.hooks.GRAPH`): ``layer{l}/h`` (``h`` after
ReLU and mask, on the axis of the layer's level: ``positions`` for level 0, ``level{k}`` for level k),
``layer{l}/pool`` (the pooled ``h`` on the next level's axis, for the first ``pool_levels`` layers), and
with ``tap_terms=True`` ``layer{l}/T{k}`` (the Chebyshev terms ``T_k(L~) x`` of the layer's input: how
much each hop order carries).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmviz.engines.families.graph.api import PreparedGraph
from lstmviz.engines.spec import EngineSpec, Paper
from lstmviz.hooks import GRAPH, Tap

from .graclus import graph_levels
from .ops import chebyshev_terms, laplacian_of, to_torch_sparse


def level_axis(level: int) -> str:
    """The recording axis of a level's positions: ``positions`` (level 0), ``level1``, ``level2`` ..."""
    return "positions" if level == 0 else f"level{level}"


class ChebConv(nn.Module):
    """``y_j = sum_i sum_{k<K} theta_{k,i,j} T_k(L~) x_i + b_j`` (the module docstring of :mod:`.chebnet`)."""

    def __init__(self, in_features: int, out_features: int, K: int):
        super().__init__()
        self.in_features, self.out_features, self.K = in_features, out_features, K
        self.theta = nn.Parameter(torch.empty(K, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(out_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = math.sqrt(6.0 / (self.K * self.in_features + self.out_features))  # Glorot over the K terms
        nn.init.uniform_(self.theta, -bound, bound)
        nn.init.zeros_(self.bias)

    def forward(self, Lt: Tensor, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        terms = chebyshev_terms(Lt, x, self.K)
        y = torch.einsum("kni,kio->no", torch.stack(terms), self.theta) + self.bias
        return y, terms

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, K={self.K}"


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"expected {name} to be a positive int, got {value!r}")
    return int(value)


class ChebNet(nn.Module):
    """ChebNet (Defferrard, Bresson, Vandergheynst 2016): Chebyshev graph convolutions, ReLU, Graclus max
    pooling; see the module docstring for the equations h = ReLU(sum_k theta_k T_k(L~) x + b) and conventions."""

    def __init__(self, num_features: int, num_classes: int, task: str, *, hidden_size: int = 16,
                 num_layers: int = 2, K: int = 3, pool_levels: int | None = None, lambda_max: float | str = "exact",
                 dropout: float = 0.0, graclus_seed: int = 0, tap_terms: bool = False):
        super().__init__()
        self.num_features = _positive_int("num_features", num_features)
        self.num_classes = _positive_int("num_classes", num_classes)
        if task not in ("node", "graph"):
            raise ValueError(f"expected task to be node or graph, got {task!r}")
        self.task = task
        self.hidden_size = _positive_int("hidden_size", hidden_size)
        self.num_layers = _positive_int("num_layers", num_layers)
        self.K = _positive_int("K (the number of Chebyshev terms)", K)
        if pool_levels is None:
            pool_levels = 0 if task == "node" else min(2, self.num_layers)
        if isinstance(pool_levels, bool) or not isinstance(pool_levels, (int, np.integer)) or not (
                0 <= pool_levels <= self.num_layers):
            raise ValueError(f"expected pool_levels to be an int in 0 .. num_layers={self.num_layers}, "
                             f"got {pool_levels!r}")
        if task == "node" and pool_levels:
            raise ValueError(f"pool_levels={pool_levels} pools nodes away, but the node task needs an output per "
                             f"node; use pool_levels=0 for the node task")
        self.pool_levels = int(pool_levels)
        if isinstance(lambda_max, str):
            if lambda_max != "exact":
                raise ValueError(f"expected lambda_max to be 'exact' or a positive number, got {lambda_max!r}")
        elif isinstance(lambda_max, bool) or not isinstance(lambda_max, (int, float)) or not lambda_max > 0:
            raise ValueError(f"expected lambda_max to be 'exact' or a positive number, got {lambda_max!r}")
        self.lambda_max = lambda_max
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ValueError(f"expected dropout to be a probability in [0, 1), got {dropout!r}")
        self.dropout = float(dropout)
        self.graclus_seed = int(graclus_seed)
        self.tap_terms = bool(tap_terms)

        sizes = [self.num_features] + [self.hidden_size] * self.num_layers
        self.convs = nn.ModuleList(ChebConv(sizes[l], sizes[l + 1], self.K) for l in range(self.num_layers))
        self.h_taps = nn.ModuleList(
            Tap(f"layer{l}/h", signal="h", layer=l, layout=GRAPH, axis=level_axis(self.level_of(l)),
                description=f"layer {l}: h = ReLU(sum_k theta_k T_k(L~) x + b), fillers 0, on level "
                            f"{self.level_of(l)}")
            for l in range(self.num_layers))
        self.pool_taps = nn.ModuleList(
            Tap(f"layer{l}/pool", signal="pool", layer=l, layout=GRAPH, axis=level_axis(l + 1),
                description=f"layer {l}: max of h over each Graclus pair (positions 2p, 2p+1 of level {l}), "
                            f"the nodes of level {l + 1}")
            for l in range(self.pool_levels))
        self.term_taps = nn.ModuleList(
            nn.ModuleList(
                Tap(f"layer{l}/T{k}", signal=f"T{k}", layer=l, layout=GRAPH, axis=level_axis(self.level_of(l)),
                    description=f"layer {l}: Chebyshev term T_{k}(L~) x of the layer's input ({k} hops)")
                for k in range(self.K))
            for l in range(self.num_layers)) if self.tap_terms else None
        self.head = nn.Linear(self.hidden_size, self.num_classes)
        self.reset_parameters()

    def level_of(self, layer: int) -> int:
        """The level (0 = input positions) whose positions layer ``layer`` reads and writes."""
        return min(layer, self.pool_levels)

    def reset_parameters(self) -> None:
        for conv in self.convs:
            conv.reset_parameters()
        self.head.reset_parameters()

    def extra_repr(self) -> str:
        return (f"num_features={self.num_features}, num_classes={self.num_classes}, task={self.task}, "
                f"hidden_size={self.hidden_size}, num_layers={self.num_layers}, K={self.K}, "
                f"pool_levels={self.pool_levels}, lambda_max={self.lambda_max}, dropout={self.dropout}, "
                f"graclus_seed={self.graclus_seed}, tap_terms={self.tap_terms}")

    # ------------------------------------------------------------------------------------------ prepare

    def prepare(self, item) -> PreparedGraph:
        """Levels (Graclus + tree order when pooling), each level's ``L~`` and real-position mask."""
        features = np.asarray(item.features)
        n = item.geometry.num_nodes
        if features.shape != (n, self.num_features):
            raise ValueError(f"expected node features of shape ({n}, {self.num_features}) (nodes, num_features), "
                             f"got {features.shape}")
        levels = graph_levels(item.geometry, self.pool_levels, self.graclus_seed)
        laplacians, lmaxes, masks = [], [], []
        for level in levels:
            g = level.geometry
            Lt, lmax = laplacian_of(g.num_nodes, g.edges, g.weights, lmax=self.lambda_max)
            laplacians.append(to_torch_sparse(Lt))
            lmaxes.append(lmax)
            masks.append(torch.ones(g.num_nodes, dtype=torch.bool) if g.filler is None
                         else torch.from_numpy(~g.filler))
        source = levels[0].source_node
        tensors = {"laplacians": laplacians, "lambda_max": lmaxes, "masks": masks, "cast": {}}
        if source is not None:
            real = source >= 0
            tensors["positions"] = torch.from_numpy(np.flatnonzero(real))  # positions holding input nodes
            tensors["nodes"] = torch.from_numpy(source[real])  # ... and which input node each holds
        return PreparedGraph(levels=levels, features=torch.from_numpy(features.astype(np.float32, copy=False)),
                             num_input_nodes=n, tensors=tensors)

    def _laplacian(self, prepared: PreparedGraph, level: int, like: Tensor) -> Tensor:
        cast = prepared.tensors["cast"]
        key = (level, like.dtype, like.device)
        if key not in cast:
            cast[key] = prepared.tensors["laplacians"][level].to(dtype=like.dtype, device=like.device)
        return cast[key]

    # ------------------------------------------------------------------------------------------ forward

    def forward(self, prepared: PreparedGraph) -> Tensor:
        if not isinstance(prepared, PreparedGraph):
            raise TypeError(f"expected a PreparedGraph (model.prepare(item)), got {type(prepared).__name__}")
        weight = self.head.weight
        x_in = prepared.features.to(dtype=weight.dtype, device=weight.device)
        t = prepared.tensors
        if "positions" in t:
            x = x_in.new_zeros(len(prepared.levels[0].source_node), x_in.shape[1])
            x = x.index_copy(0, t["positions"].to(x.device), x_in[t["nodes"].to(x.device)])
        else:
            x = x_in
        for l, conv in enumerate(self.convs):
            level = self.level_of(l)
            if self.dropout and self.training:
                x = F.dropout(x, self.dropout, training=True)
            y, terms = conv(self._laplacian(prepared, level, x), x)
            if self.term_taps is not None:
                for k, term in enumerate(terms):
                    self.term_taps[l][k](term.unsqueeze(0))
            mask = t["masks"][level].to(device=y.device, dtype=y.dtype).unsqueeze(1)
            h = self.h_taps[l](torch.relu(y).mul(mask).unsqueeze(0)).squeeze(0)
            if l < self.pool_levels:
                h = h.reshape(-1, 2, h.shape[1]).amax(dim=1)
                h = self.pool_taps[l](h.unsqueeze(0)).squeeze(0)
            x = h
        if self.task == "graph":
            mask = t["masks"][self.level_of(self.num_layers)].to(x.device)
            return self.head(x[mask].mean(dim=0, keepdim=True))
        logits = self.head(x)
        if "positions" in t:
            out = logits.new_empty(prepared.num_input_nodes, logits.shape[1])
            return out.index_copy(0, t["nodes"].to(x.device), logits[t["positions"].to(x.device)])
        return logits


def build(num_features: int, num_classes: int, task: str, *, hidden_size: int = 16, num_layers: int = 2, K: int = 3,
          pool_levels: int | None = None, lambda_max: float | str = "exact", dropout: float = 0.0,
          graclus_seed: int = 0, tap_terms: bool = False) -> ChebNet:
    return ChebNet(num_features, num_classes, task, hidden_size=hidden_size, num_layers=num_layers, K=K,
                   pool_levels=pool_levels, lambda_max=lambda_max, dropout=dropout, graclus_seed=graclus_seed,
                   tap_terms=tap_terms)


SPEC = EngineSpec(
    name="chebnet",
    description="Chebyshev spectral graph convolutions (K terms, K-1 hops) with Graclus max pooling",
    family="graph",
    paper=Paper(
        title="Convolutional Neural Networks on Graphs with Fast Localized Spectral Filtering",
        authors="Defferrard, Bresson, Vandergheynst",
        arxiv="1606.09375",
        year=2016,
    ),
    build=build,
    default_config={"hidden_size": 16, "num_layers": 2, "K": 3, "pool_levels": None, "lambda_max": "exact",
                    "graclus_seed": 0, "tap_terms": False},
    taps=("layer{layer}/h", "layer{layer}/pool", "layer{layer}/T*"),
    train_defaults={"steps": 200, "batch_size": 8, "lr": 0.01, "weight_decay": 5e-4, "dropout": 0.5, "eval_every": 50,
                    "optimizer": "adam", "clip": 5.0, "seed": 0},
)
