r"""Engine ``spectral-gcn``: spectral networks and locally connected networks on graphs (Bruna et al. 2014).

"Spectral Networks and Locally Connected Networks on Graphs" (Bruna, Zaremba, Szlam, LeCun,
arXiv:1312.6203) generalises convolutions to graphs in two ways, both here (``variant``):

**Spectral** (``spectral-full``, ``spectral-spline``). With the normalised Laplacian and its
eigendecomposition (ascending eigenvalues, :math:`\lambda \in [0, 2]`)

.. math::
    L = I - D^{-1/2} W D^{-1/2} = U \Lambda U^\top,

one layer maps ``f_in`` channels to ``f_out`` with a learned diagonal multiplier per channel pair:

.. math::
    x_{k+1, j} = h\Big( U_d \sum_{i=1}^{f_{in}} \mathrm{diag}(\theta_{i,j})\, U_d^\top x_{k,i} + b_j \Big),

``h`` = ReLU, :math:`U_d` the first ``d`` eigenvectors (the low frequencies).

- ``spectral-full``: :math:`\theta_{i,j} \in \mathbb{R}^d` free, indexed by the eigen-index (``d`` =
  ``eigenvectors``, default ``num_nodes``, at most the level's size for a ``num_nodes`` graph; a
  smaller graph uses the first ``n``). Tied to one
  eigendecomposition: it does not transfer between graphs, nor inside a degenerate eigenspace.
- ``spectral-spline``: smooth multipliers :math:`\theta_{i,j} = B(\lambda)\, \alpha_{i,j}`, ``B`` the
  ``q`` = ``spline_knots`` cubic B-splines over :math:`\lambda \in [0, 2]` (:mod:`.spline`), so the
  filter is a function of :math:`\lambda`, :math:`\theta(L)`: the same on every graph, independent of
  the eigenvectors chosen in a degenerate eigenspace, and localised in space (smooth in frequency).
  ``eigenvectors`` (default: all) truncates to the ``d`` lowest frequencies.

**Locally connected** (``local``): :class:`~.locally_connected.LocallyConnected` layers on the
neighbourhoods :math:`N_k(j) = \{i: W_k[i,j] > \delta\}` with non-shared weights (see
:mod:`.locally_connected`).

**Pooling** (``levels`` > 0, any variant): a multiscale clustering :math:`\Omega_0 \to \dots \to
\Omega_K` (Ward on the node coordinates, else on the spectral embedding :math:`(u_1, u_2)`),
:math:`|\Omega_{k+1}| = \lceil |\Omega_k| / \text{pool\_ratio} \rceil` at most; layer ``l`` runs on level
:math:`\min(l, K)` and layers ``0 .. K-1`` pool (max or mean) over the clusters after the nonlinearity.
Every level has its own Laplacian :math:`L_k` of :math:`W_k = P^\top W_{k-1} P` and eigenbasis. Positions
are ordered by the clustering tree (clusters contiguous). The graph task reads out the last level by
mean, max or ``flatten`` (zero-padded to the largest level a ``num_nodes`` graph has, then a linear
layer, the paper's fully connected top); the node task (no pooling) classifies every node linearly.

**Conventions.** Weights are symmetrised, negative weights refused; an isolated node has
:math:`L_{ii} = 1`. ``eigh`` once per graph and level in :meth:`SpectralGCN.prepare` (kept in the
prepared graph and in a small cache by content; a forward pass never re-diagonalises). Eigenvector
signs: each column's entry of largest magnitude (first such) is positive.

**Taps** (``[1, positions, hidden_size]``): ``layer{l}/h``, the layer's output :math:`h(\cdot)` on its
level's axis (``positions``, ``level{k}``; layout ``GRAPH``); ``layer{l}/pool`` (layers that pool), on
``level{k+1}``. With ``tap_spectrum=True`` also ``layer{l}/spectrum``, :math:`U_k^\top h` on the axis
``spectrum`` (``spectrum{k}`` for level ``k`` > 0; layout ``SEQUENCE``, geometry ``tokens``: position
``m`` is the ``m``-th eigenvector, ascending frequency :math:`\lambda_m`; the axis is no graph level,
so the recorder learns it from the tap), and the layer's output then flows on as
:math:`U_k (U_k^\top h)`, ``h`` up to rounding, so an edit of the spectrum (zero a band) changes what
follows. Off by default: the graph family's recorder and contract know graph levels only.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmviz.geometry import GraphGeometry
from lstmviz.hooks import GRAPH, SEQUENCE, Tap

from ..families.graph.api import GraphLevel, PreparedGraph
from ..spec import EngineSpec, Paper
from .locally_connected import LocallyConnected, cluster_hierarchy, neighbour_slots, pool_clusters
from .spline import bspline_basis

VARIANTS = ("spectral-full", "spectral-spline", "local")
READOUTS = ("mean", "max", "flatten")
POOLINGS = ("max", "mean")


# --- the graph's spectrum ---------------------------------------------------------------------------

def dense_weights(geometry: GraphGeometry) -> np.ndarray:
    """The symmetric dense float64 ``[n, n]`` weights of a graph (edge weight, default 1; self-loops kept)."""
    w = geometry.adjacency(directed=False).toarray()
    if (w < 0).any():
        raise ValueError("the spectral-gcn engine needs non-negative edge weights (the normalised Laplacian's "
                         "spectrum lies in [0, 2] only then); give weights >= 0")
    return w


def normalized_laplacian(weights: np.ndarray) -> np.ndarray:
    r""":math:`L = I - D^{-1/2} W D^{-1/2}` (float64); a node of degree 0 gets :math:`L_{ii} = 1`."""
    w = np.asarray(weights, dtype=np.float64)
    d = w.sum(axis=1)
    inv = np.zeros_like(d)
    inv[d > 0] = 1.0 / np.sqrt(d[d > 0])
    return np.eye(len(w)) - inv[:, None] * w * inv[None, :]


def eigenbasis(laplacian: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(lam [n], U [n, n])``: ascending eigenvalues, orthonormal eigenvectors with the largest-magnitude
    entry of each column positive (a fixed sign; order and signs are otherwise arbitrary)."""
    lam, u = np.linalg.eigh(np.asarray(laplacian, dtype=np.float64))
    peak = np.argmax(np.abs(u), axis=0)
    u = u * np.where(u[peak, np.arange(u.shape[1])] < 0, -1.0, 1.0)[None, :]
    return lam, u


_CACHE: OrderedDict = OrderedDict()
_CACHE_SIZE = 256


def laplacian_eigenbasis(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`eigenbasis` of :func:`normalized_laplacian`, cached by the weights' content (256 graphs)."""
    w = np.ascontiguousarray(weights, dtype=np.float64)
    key = (w.shape, hashlib.sha1(w.tobytes()).hexdigest())
    hit = _CACHE.get(key)
    if hit is not None:
        _CACHE.move_to_end(key)
        return hit
    result = eigenbasis(normalized_laplacian(w))
    for a in result:
        a.setflags(write=False)
    _CACHE[key] = result
    if len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return result


# --- the spectral layer -----------------------------------------------------------------------------

class SpectralConv(nn.Module):
    r"""One spectral layer without the nonlinearity: :math:`y_j = U_m \sum_i \mathrm{diag}(\theta_{i,j})
    U_m^\top x_i + b_j`.

    ``multipliers="full"``: ``theta`` ``[eigenvectors, f_in, f_out]``, free per eigen-index.
    ``multipliers="spline"``: ``alpha`` ``[knots, f_in, f_out]``, :math:`\theta = B \alpha` with the
    basis ``B [n, knots]`` at the graph's eigenvalues (:func:`.spline.bspline_basis`).
    :meth:`forward` takes ``x [..., n, f_in]``, ``U [n, n]`` and (spline) ``basis [n, q]``; it uses the
    first ``m = min(eigenvectors, n)`` eigenvectors (all when ``eigenvectors`` is None).
    """

    def __init__(self, in_features: int, out_features: int, *, multipliers: str = "spline",
                 eigenvectors: int | None = None, knots: int = 6, bias: bool = True):
        super().__init__()
        if multipliers not in ("full", "spline"):
            raise ValueError(f"expected multipliers 'full' or 'spline', got {multipliers!r}")
        if multipliers == "full" and eigenvectors is None:
            raise ValueError("full spectral multipliers need the number of eigenvectors they multiply")
        self.multipliers_kind, self.eigenvectors = multipliers, eigenvectors
        rows = eigenvectors if multipliers == "full" else knots
        self.weight = nn.Parameter(torch.empty(rows, in_features, out_features))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # U orthonormal: E|y|^2 = var(theta) * sum_i |x_i|^2, so var 1/f_in keeps the scale
        bound = math.sqrt(3.0 / self.weight.shape[1])
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def multipliers(self, n: int, basis: Tensor | None = None) -> Tensor:
        """:math:`\\theta` ``[m, f_in, f_out]`` for a graph of ``n`` nodes (spline: at the rows of ``basis``)."""
        m = n if self.eigenvectors is None else min(self.eigenvectors, n)
        if self.multipliers_kind == "full":
            return self.weight[:m]
        if basis is None:
            raise ValueError("spline multipliers need the B-spline basis at the graph's eigenvalues")
        return torch.einsum("mq,qio->mio", basis[:m].to(self.weight.dtype), self.weight)

    def forward(self, x: Tensor, eigenvectors: Tensor, basis: Tensor | None = None) -> Tensor:
        theta = self.multipliers(x.shape[-2], basis)
        u = eigenvectors[:, : theta.shape[0]].to(x.dtype)
        spectrum = torch.einsum("nm,...ni->...mi", u, x)
        y = torch.einsum("nm,...mo->...no", u, torch.einsum("...mi,mio->...mo", spectrum, theta))
        return y if self.bias is None else y + self.bias


# --- the model --------------------------------------------------------------------------------------

def _need(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _axis(prefix: str, level: int) -> str:
    return ("positions" if prefix == "level" else "spectrum") if level == 0 else f"{prefix}{level}"


class SpectralGCN(nn.Module):
    """Bruna et al.'s spectral / locally connected graph network (see the module docstring).

    Build keywords: ``num_features``, ``num_classes``, ``task`` (``"node"`` | ``"graph"``) from the data;
    ``variant`` (``spectral-full`` | ``spectral-spline`` | ``local``), ``hidden_size``, ``num_layers``,
    ``levels`` (poolings, 0 .. num_layers), ``pool_ratio``, ``pooling`` (max | mean), ``num_nodes`` (the
    largest graph: local weights, full multipliers' default ``d``, the flatten readout), ``eigenvectors``
    (``d``), ``spline_knots`` (``q``), ``max_neighbours`` (``S``, with the node itself),
    ``neighbour_threshold`` (``δ``), ``readout`` (mean | max | flatten; graph task), ``tap_spectrum``
    (also tap :math:`U^\top h` per layer).
    """

    def __init__(self, num_features: int, num_classes: int, task: str = "node", *, variant: str = "spectral-spline",
                 hidden_size: int = 32, num_layers: int = 2, levels: int = 0, pool_ratio: int = 4,
                 pooling: str = "max", num_nodes: int = 64, eigenvectors: int | None = None,
                 spline_knots: int = 6, max_neighbours: int = 9, neighbour_threshold: float = 0.0,
                 readout: str = "mean", tap_spectrum: bool = False):
        super().__init__()
        _need(task in ("node", "graph"), f"expected task 'node' or 'graph', got {task!r}")
        _need(variant in VARIANTS, f"expected variant of engine 'spectral-gcn' to be one of {', '.join(VARIANTS)}, "
                                   f"got {variant!r}")
        for name, value, low in (("num_features", num_features, 1), ("num_classes", num_classes, 1),
                                 ("hidden_size", hidden_size, 1), ("num_layers", num_layers, 1),
                                 ("pool_ratio", pool_ratio, 2), ("num_nodes", num_nodes, 1),
                                 ("spline_knots", spline_knots, 4), ("max_neighbours", max_neighbours, 1)):
            _need(_is_int(value) and value >= low, f"expected {name} of engine 'spectral-gcn' to be an int >= {low}, "
                                                   f"got {value!r}")
        _need(_is_int(levels) and 0 <= levels <= num_layers,
              f"expected levels (poolings) of engine 'spectral-gcn' to be an int from 0 to num_layers={num_layers}, "
              f"got {levels!r}")
        _need(eigenvectors is None or (_is_int(eigenvectors) and eigenvectors >= 1),
              f"expected eigenvectors of engine 'spectral-gcn' to be an int >= 1 or None (all), got {eigenvectors!r}")
        _need(pooling in POOLINGS, f"expected pooling to be one of {', '.join(POOLINGS)}, got {pooling!r}")
        _need(readout in READOUTS, f"expected readout to be one of {', '.join(READOUTS)}, got {readout!r}")
        _need(isinstance(neighbour_threshold, (int, float)) and not isinstance(neighbour_threshold, bool)
              and math.isfinite(neighbour_threshold),
              f"expected neighbour_threshold to be a finite number, got {neighbour_threshold!r}")
        _need(isinstance(tap_spectrum, bool), f"expected tap_spectrum to be True or False, got {tap_spectrum!r}")
        _need(task == "graph" or levels == 0,
              f"the node task classifies every input node, so it needs levels=0 (no pooling), got levels={levels}")
        self.num_features, self.task, self.variant, self.num_layers, self.levels = (num_features, task, variant,
                                                                                    num_layers, levels)
        self.tap_spectrum = tap_spectrum
        self.pool_ratio, self.pooling, self.num_nodes, self.readout = pool_ratio, pooling, num_nodes, readout
        self.spline_knots, self.max_neighbours = spline_knots, max_neighbours
        self.neighbour_threshold = float(neighbour_threshold)
        self.level_sizes = [num_nodes]
        for _ in range(levels):
            self.level_sizes.append(math.ceil(self.level_sizes[-1] / pool_ratio))
        if variant == "spectral-full" and eigenvectors is None:
            eigenvectors = num_nodes
        self.eigenvectors = eigenvectors
        layers, h_taps, s_taps, p_taps = [], [], [], []
        for layer in range(num_layers):
            level = min(layer, levels)
            f_in = num_features if layer == 0 else hidden_size
            if variant == "local":
                layers.append(LocallyConnected(self.level_sizes[level], max_neighbours, f_in, hidden_size))
            else:
                # a level never has more eigenvectors than the nodes a num_nodes graph has there
                d = None if eigenvectors is None else min(eigenvectors, self.level_sizes[level])
                layers.append(SpectralConv(f_in, hidden_size, multipliers=variant.split("-")[1],
                                           eigenvectors=d, knots=spline_knots))
            h_taps.append(Tap(f"layer{layer}/h", layer=layer, layout=GRAPH, axis=_axis("level", level),
                              description=f"layer {layer}'s output ReLU(conv(x)) per node of level {level}"))
            if tap_spectrum:
                s_taps.append(Tap(f"layer{layer}/spectrum", layer=layer, layout=SEQUENCE, axis=_axis("spectrum", level),
                                  description=f"layer {layer}'s output in the spectral domain, U^T h: position m "
                                              f"is eigenvector m of level {level}'s normalised Laplacian, "
                                              f"ascending frequency lambda_m in [0, 2]"))
            if layer < levels:
                p_taps.append(Tap(f"layer{layer}/pool", layer=layer, layout=GRAPH, axis=_axis("level", level + 1),
                                  description=f"layer {layer}'s output {pooling}-pooled over the clusters of "
                                              f"level {level + 1}"))
        self.layers = nn.ModuleList(layers)
        self.h_taps, self.spectrum_taps = nn.ModuleList(h_taps), nn.ModuleList(s_taps)
        self.pooled_taps = nn.ModuleList(p_taps)
        width = hidden_size * (self.level_sizes[-1] if task == "graph" and readout == "flatten" else 1)
        self.head = nn.Linear(width, num_classes)

    # -- per graph, weights aside -------------------------------------------------------------------

    def prepare(self, item) -> PreparedGraph:
        """The levels (clustering-tree order), each level's eigenbasis, spline basis and neighbour slots."""
        geometry: GraphGeometry = item.geometry
        n = geometry.num_nodes
        shape = np.shape(item.features)
        if len(shape) != 2 or shape != (n, self.num_features):
            raise ValueError(f"the graph's node features have the shape {shape}; this spectral-gcn model reads "
                             f"[{n} nodes, {self.num_features} features]")
        if n > self.num_nodes and (self.variant == "local" or (self.task == "graph" and self.readout == "flatten")):
            raise ValueError(f"a graph of {n} nodes is larger than the num_nodes={self.num_nodes} this spectral-gcn "
                             f"model was built for; rebuild it with --set num_nodes={n} or more")
        w = dense_weights(geometry)
        levels: list[GraphLevel] = []
        tensors: dict = {}
        if self.levels == 0:
            level_weights, parents, order, centroids = [w], [], None, None
        else:
            coords = geometry.coordinates
            if coords is None:
                lam, u = laplacian_eigenbasis(w)
                coords = u[:, 1:3] if n > 2 else np.zeros((n, 2))
            sizes = []
            for _ in range(self.levels):
                sizes.append(math.ceil((sizes[-1] if sizes else n) / self.pool_ratio))
            hierarchy = cluster_hierarchy(w, np.asarray(coords, dtype=np.float64), sizes)
            level_weights, parents, order = list(hierarchy.weights), list(hierarchy.parents), hierarchy.order
            centroids = hierarchy.centroids if geometry.coordinates is not None else None
            tensors["order"] = torch.as_tensor(order)
        for k, wk in enumerate(level_weights):
            lam, u = laplacian_eigenbasis(wk)
            tensors[f"eigenvalues{k}"] = torch.as_tensor(np.array(lam))
            tensors[f"eigenvectors{k}"] = torch.as_tensor(np.array(u))
            if self.variant == "spectral-spline":
                tensors[f"basis{k}"] = torch.as_tensor(bspline_basis(lam, self.spline_knots))
            if self.variant == "local":
                tensors[f"slots{k}"] = torch.as_tensor(neighbour_slots(wk, self.max_neighbours,
                                                                       self.neighbour_threshold))
            if k < len(parents):
                tensors[f"parents{k}"] = torch.as_tensor(parents[k])
            levels.append(self._level(k, geometry, wk, order, parents, centroids))
        features = torch.as_tensor(np.asarray(item.features), dtype=torch.float32)
        return PreparedGraph(levels=tuple(levels), features=features, num_input_nodes=n, tensors=tensors)

    @staticmethod
    def _level(k, geometry, wk, order, parents, centroids) -> GraphLevel:
        if k == 0:
            if order is None:
                return GraphLevel("positions", geometry)
            position = np.empty(len(order), dtype=np.int64)
            position[order] = np.arange(len(order))
            g = GraphGeometry.from_edges(
                geometry.num_nodes, position[geometry.edges], weights=geometry.weights,
                coordinates=None if geometry.coordinates is None else geometry.coordinates[order],
                node_names=None if geometry.node_names is None else [geometry.node_names[i] for i in order],
                filler=None if geometry.filler is None else geometry.filler[order])
            return GraphLevel("positions", g, source_node=np.asarray(order, dtype=np.int64))
        a, b = np.nonzero(np.triu(wk, 1))
        g = GraphGeometry.from_edges(len(wk), np.stack([a, b], axis=1), weights=wk[a, b],
                                     coordinates=None if centroids is None else centroids[k],
                                     pooling_map=parents[k - 1], finer_nodes=len(parents[k - 1]))
        return GraphLevel(_axis("level", k), g)

    def filter_bank(self, prepared: PreparedGraph, layer: int) -> tuple[Tensor, Tensor]:
        r"""``(lam [m], theta [m, f_in, f_out])``: layer ``layer``'s multipliers at its level's eigenvalues,
        the filters :math:`\theta_{i,j}(\lambda)` a view can draw (spectral variants only)."""
        if self.variant == "local":
            raise ValueError("the locally connected variant has no spectral multipliers; use spectral-full or "
                             "spectral-spline")
        if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < self.num_layers:
            raise ValueError(f"expected a layer from 0 to {self.num_layers - 1}, got {layer!r}")
        k = min(layer, self.levels)
        lam = prepared.tensors[f"eigenvalues{k}"]
        theta = self.layers[layer].multipliers(len(lam), prepared.tensors.get(f"basis{k}"))
        return lam[: theta.shape[0]], theta

    # -- the forward pass ---------------------------------------------------------------------------

    def forward(self, prepared: PreparedGraph) -> Tensor:
        """Logits: ``[num_input_nodes, classes]`` (node task, input order) or ``[1, classes]`` (graph task)."""
        features = prepared.features.to(self.head.weight.dtype).unsqueeze(0)
        out = self.forward_batch(prepared, features)
        return out[0] if self.task == "node" else out

    def forward_batch(self, prepared: PreparedGraph, features: Tensor) -> Tensor:
        """Many signals on one graph: ``features [B, n, F]`` (input order) -> ``[B, n, C]`` or ``[B, C]``."""
        t = prepared.tensors
        x = features if "order" not in t else features[:, t["order"]]
        for layer, conv in enumerate(self.layers):
            k = min(layer, self.levels)
            if self.variant == "local":
                x = conv(x, t[f"slots{k}"])
            else:
                x = conv(x, t[f"eigenvectors{k}"], t.get(f"basis{k}"))
            x = self.h_taps[layer](F.relu(x))
            if self.tap_spectrum:
                u = t[f"eigenvectors{k}"].to(x.dtype)
                x = u @ self.spectrum_taps[layer](u.transpose(0, 1) @ x)
            if layer < self.levels:
                parents = t[f"parents{k}"]
                x = self.pooled_taps[layer](pool_clusters(x, parents, int(parents.max()) + 1, self.pooling))
        if self.task == "node":
            return self.head(x)
        if self.readout == "flatten":
            x = F.pad(x, (0, 0, 0, self.level_sizes[-1] - x.shape[-2]))
            return self.head(x.flatten(-2))
        return self.head(x.amax(dim=-2) if self.readout == "max" else x.mean(dim=-2))


SPEC = EngineSpec(
    name="spectral-gcn",
    description="Spectral graph convolutions U diag(theta) U^T x, smooth (spline) multipliers, and the locally "
                "connected variant with cluster pooling (Bruna et al. 2014)",
    family="graph",
    paper=Paper(
        title="Spectral Networks and Locally Connected Networks on Graphs",
        authors="Joan Bruna, Wojciech Zaremba, Arthur Szlam, Yann LeCun",
        arxiv="1312.6203",
        year=2014,
    ),
    build=SpectralGCN,
    default_config={"variant": "spectral-spline", "hidden_size": 32, "num_layers": 2, "spline_knots": 6,
                    "levels": 0, "tap_spectrum": False},
    taps=("layer{layer}/h", "layer{layer}/pool", "layer{layer}/spectrum"),
    train_defaults={"steps": 200, "batch_size": 8, "lr": 0.01, "weight_decay": 5e-4, "eval_every": 50,
                    "optimizer": "adam", "clip": 5.0, "seed": 0},
)

__all__ = ["SPEC", "SpectralConv", "SpectralGCN", "dense_weights", "eigenbasis", "laplacian_eigenbasis",
           "normalized_laplacian"]
