r"""Engine ``subgraph2vec``: rooted-subgraph embeddings by radial skip-gram (Narayanan et al. 2016).

"subgraph2vec: Learning Distributed Representations of Rooted Sub-graphs from Large Graphs"
(arXiv:1606.08928). Each node ``n`` of a graph and each depth ``d = 0 .. D`` gives a rooted subgraph,
named by its Weisfeiler-Lehman id :math:`\ell_d(n)` in the model's fitted vocabulary
(:mod:`lstmviz.engines.graph.wl`). Two tables :math:`\Phi, \Psi \in \mathbb{R}^{|V| \times \mathrm{dim}}`
(target and context embeddings) are trained by the *radial* skip-gram with negative sampling: the
contexts of :math:`\ell_d(n)` are the neighbours' subgraphs one depth below, at and above,
:math:`c \in \{\ell_{d'}(m) : m \in N(n), |d' - d| \le 1\}` (:func:`~lstmviz.engines.graph.wl.radial_context`;
no sliding window), and for every pair ``(t, c)`` with ``k`` noise ids :math:`c'_j \sim P_n`,
:math:`P_n(i) \propto \mathrm{count}(i)^{3/4}`,

.. math::
    L_{sg} = -\frac{1}{P} \sum_{(t, c)} \Big[\log \sigma(\Phi_t \cdot \Psi_c)
             + \sum_{j=1}^{k} \log \sigma(-\Phi_t \cdot \Psi_{c'_j})\Big].

Deep WL kernel (Yanardag & Vishwanathan's form with subgraph2vec's :math:`\Phi`):
:math:`K(G, G') = \phi(G)^\top M \phi(G')`, :math:`M_{ij} = \langle \Phi_i, \Phi_j \rangle`, so
:math:`K = (\Phi^\top \phi(G)) \cdot (\Phi^\top \phi(G'))` (:func:`deep_wl_kernel`); ``M = I`` is the plain
WL subtree kernel (:func:`~lstmviz.engines.graph.wl.wl_kernel`).

Within the ``graph`` family (:mod:`lstmviz.engines.families.graph.api`):

- ``prepare(item)``: the canonical WL digests ``[D + 1, n]`` of the item's nodes
  (:func:`~lstmviz.engines.graph.wl.wl_digests`) and its radial pairs as indices; it depends on the
  graph only, so the family's objective may cache it.
- the vocabulary (digest -> id) **grows in** :meth:`loss` **while the model is in training mode**
  (``model.train()``), by the graphs it is trained on, and is fixed otherwise (``forward``, eval-mode
  validation, recording): a subgraph it never met gets the id ``UNSEEN`` = 0, whose embedding is the
  zero vector (``padding_idx``). Its capacity is ``max_subgraphs`` (the rows of :math:`\Phi`); subgraphs
  met when it is full are unseen too. It lives in buffers (``vocab_digest``, ``vocab_depth``,
  ``vocab_count``), so checkpoints carry it.
- ``forward(prepared) -> logits``: the node state :math:`h_n = \frac{1}{D+1} \sum_d \Phi[\ell_d(n)]`, then
  a linear readout :math:`W h_n + b` per node (``[n, classes]``, node task) or
  :math:`W \bar h + b` on the mean over nodes (``[1, classes]``, graph task).
- ``loss(prepared_list, items) -> (loss, count)``: :math:`L_{sg}` plus ``readout_weight`` times the
  cross-entropy of the readout on **detached** node states (the readout learns to read the
  embeddings; it never shapes them, so :math:`\Phi` is subgraph2vec's unsupervised embedding). The
  count is the objective's unit: graphs (graph task) or nodes (node task).

Taps (``[1, n, dim]`` on the axis ``positions``; positions are the input nodes in order):
``wl{d}/embedding`` = :math:`\Phi[\ell_d(n)]` for ``d = 0 .. D``, and ``readout/node`` = :math:`h_n`.
An edit of ``wl{d}/embedding`` changes :math:`h_n` and so the logits.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmviz.hooks import GRAPH, Tap

from ..families.graph.api import GraphLevel, PreparedGraph
from ..spec import EngineSpec, Paper
from .wl import LABEL_SCHEMES, UNSEEN, WLVocabulary, check_depth, initial_labels, radial_pairs, subgraph_counts, wl_digests


class Subgraph2Vec(nn.Module):
    """subgraph2vec (see the module docstring for the equations and the family interface).

    Args:
        num_features, num_classes, task: the graph family's data description (features are not read:
            subgraph2vec sees the graph's structure and the initial labels only).
        depth: the largest WL depth D (0 .. 3).
        dim: the embedding dimension.
        max_subgraphs: rows of :math:`\\Phi` and :math:`\\Psi`, the vocabulary's capacity (``UNSEEN`` included).
        label: initial labels, ``"degree"`` (capped at ``degree_cap``) or ``"tokens"`` (the item's tokens).
        degree_cap: the largest degree label.
        negatives: noise ids ``k`` per pair.
        readout_weight: the weight of the readout's cross-entropy in :meth:`loss` (0: embedding only).
    """

    def __init__(self, *, num_features: int, num_classes: int, task: str, depth: int = 2, dim: int = 32,
                 max_subgraphs: int = 4096, label: str = "degree", degree_cap: int = 8, negatives: int = 5,
                 readout_weight: float = 1.0):
        super().__init__()
        if task not in ("node", "graph"):
            raise ValueError(f"subgraph2vec classifies nodes or graphs; task must be 'node' or 'graph', got {task!r}")
        self.depth = check_depth(depth)
        for name, value, low in (("dim", dim, 1), ("max_subgraphs", max_subgraphs, 2), ("negatives", negatives, 0),
                                 ("degree_cap", degree_cap, 1), ("num_classes", num_classes, 1)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if label not in LABEL_SCHEMES:
            raise ValueError(f"label must be one of {', '.join(LABEL_SCHEMES)}, got {label!r}")
        if not isinstance(readout_weight, (int, float)) or not np.isfinite(readout_weight) or readout_weight < 0:
            raise ValueError(f"readout_weight must be a finite number >= 0, got {readout_weight!r}")
        self.num_features, self.num_classes, self.task = int(num_features), int(num_classes), task
        self.dim, self.max_subgraphs = int(dim), int(max_subgraphs)
        self.label, self.degree_cap, self.negatives = label, int(degree_cap), int(negatives)
        self.readout_weight = float(readout_weight)
        self.phi = nn.Embedding(self.max_subgraphs, self.dim, padding_idx=UNSEEN)  # Φ, target embeddings
        self.psi = nn.Embedding(self.max_subgraphs, self.dim, padding_idx=UNSEEN)  # Ψ, context embeddings
        self.readout = nn.Linear(self.dim, self.num_classes)
        self.register_buffer("vocab_digest", torch.zeros(self.max_subgraphs, dtype=torch.int64))
        self.register_buffer("vocab_depth", torch.full((self.max_subgraphs,), -1, dtype=torch.int64))
        self.register_buffer("vocab_count", torch.zeros(self.max_subgraphs, dtype=torch.int64))
        self.register_buffer("vocab_size", torch.ones((), dtype=torch.int64))
        self.embedding_taps = nn.ModuleList(
            Tap(f"wl{d}/embedding", signal="embedding", layer=d, layout=GRAPH, axis="positions",
                description=f"Phi[l_{d}(n)]: the embedding of the node's rooted subgraph of depth {d} "
                            f"(its WL id at iteration {d}; zero for an unseen subgraph)")
            for d in range(self.depth + 1))
        self.node_tap = Tap("readout/node", signal="node", layout=GRAPH, axis="positions",
                            description="h_n = mean over d of Phi[l_d(n)]: the node state the readout reads "
                                        "(per node for the node task, averaged over nodes for the graph task)")
        self.vocabulary = WLVocabulary(self.max_subgraphs)
        self.register_load_state_dict_post_hook(lambda module, _keys: module._vocabulary_from_buffers())
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """word2vec's start: :math:`\\Phi \\sim U(-0.5/\\mathrm{dim}, 0.5/\\mathrm{dim})`, :math:`\\Psi = 0`, row 0 zero."""
        with torch.no_grad():
            self.phi.weight.uniform_(-0.5 / self.dim, 0.5 / self.dim)
            self.phi.weight[UNSEEN].zero_()
            self.psi.weight.zero_()
        self.readout.reset_parameters()

    # -- vocabulary -------------------------------------------------------------------------------
    def _vocabulary_to_buffers(self) -> None:
        arrays = self.vocabulary.to_arrays()
        size = len(self.vocabulary)
        for name in ("digest", "depth", "count"):
            buffer = getattr(self, f"vocab_{name}")
            buffer[:size].copy_(torch.from_numpy(arrays[name]).to(buffer.device))
        self.vocab_size.fill_(size)

    def _vocabulary_from_buffers(self) -> None:
        size = int(self.vocab_size)
        if not 1 <= size <= self.max_subgraphs:
            raise ValueError(f"the subgraph2vec vocabulary holds {size} ids, outside 1 .. {self.max_subgraphs}")
        self.vocabulary = WLVocabulary.from_arrays(self.vocab_digest[:size].cpu().numpy(),
                                                   self.vocab_depth[:size].cpu().numpy(),
                                                   self.vocab_count[:size].cpu().numpy(), capacity=self.max_subgraphs)

    def wl_ids(self, item: Any, *, grow: bool = False) -> np.ndarray:
        """The WL ids ``[D + 1, n]`` of ``item``'s nodes under the vocabulary (grows it if ``grow``)."""
        return self._ids(self._digests(item), grow=grow)

    def _digests(self, item: Any) -> np.ndarray:
        labels0 = initial_labels(item.geometry, self.label, degree_cap=self.degree_cap,
                                 tokens=getattr(item, "tokens", None) if self.label == "tokens" else None)
        return wl_digests(item.geometry, labels0, self.depth)

    def _ids(self, digests: Any, *, grow: bool) -> np.ndarray:
        digests = digests.cpu().numpy() if isinstance(digests, Tensor) else np.asarray(digests)
        ids = self.vocabulary.ids(digests, grow=grow)
        if grow:  # new ids and counts: the buffers (and so checkpoints) follow
            self._vocabulary_to_buffers()
        return ids

    # -- the family interface ---------------------------------------------------------------------
    def prepare(self, item: Any) -> PreparedGraph:
        """The canonical WL digests ``[D + 1, n]`` and the radial pair indices of one graph.

        Depends on the graph only (not on the vocabulary or the weights), so it may be cached.
        """
        features = np.asarray(item.features, dtype=np.float32)
        n = item.geometry.num_nodes
        if features.shape != (n, self.num_features):
            raise ValueError(f"node features of shape {features.shape} for a model built for {self.num_features} "
                             f"features per node; expected ({n}, {self.num_features})")
        targets, contexts = radial_pairs(item.geometry, self.depth)
        return PreparedGraph(
            levels=(GraphLevel("positions", item.geometry),),
            features=torch.from_numpy(features),
            num_input_nodes=n,
            tensors={"digests": torch.from_numpy(self._digests(item)), "pair_targets": torch.from_numpy(targets),
                     "pair_contexts": torch.from_numpy(contexts)},
        )

    def node_states(self, prepared: PreparedGraph, *, taps: bool = True, grow: bool = False) -> Tensor:
        """:math:`h_n = \\mathrm{mean}_d\\, \\Phi[\\ell_d(n)]`, ``[n, dim]`` (through the taps if ``taps``)."""
        ids = torch.from_numpy(self._ids(prepared.tensors["digests"], grow=grow)).to(self.phi.weight.device)
        total = None
        for d in range(self.depth + 1):
            e = self.phi(ids[d]).unsqueeze(0)
            if taps:
                e = self.embedding_taps[d](e)
            total = e if total is None else total + e
        h = total / (self.depth + 1)
        if taps:
            h = self.node_tap(h)
        return h[0]

    def _logits(self, h: Tensor) -> Tensor:
        return self.readout(h) if self.task == "node" else self.readout(h.mean(dim=0, keepdim=True))

    def forward(self, prepared: PreparedGraph) -> Tensor:
        """Logits ``[n, classes]`` (node task) or ``[1, classes]`` (graph task) from the readout."""
        return self._logits(self.node_states(prepared))

    def noise_distribution(self) -> Tensor:
        """:math:`P_n(i) \\propto \\mathrm{count}(i)^{3/4}` over the fitted ids (``UNSEEN`` never drawn)."""
        weights = self.vocab_count.to(torch.float64).pow(0.75)
        weights[UNSEEN] = 0.0
        return weights

    def skipgram_loss(self, targets: Tensor, contexts: Tensor) -> Tensor:
        """:math:`L_{sg}` (mean over the pairs) with ``negatives`` noise ids per pair."""
        device = self.phi.weight.device
        targets, contexts = targets.to(device), contexts.to(device)
        phi_t = self.phi(targets)
        positive = F.logsigmoid((phi_t * self.psi(contexts)).sum(-1))
        loss = -positive
        if self.negatives:
            noise = self.noise_distribution()
            if noise.sum() > 0:
                drawn = torch.multinomial(noise, len(targets) * self.negatives, replacement=True)
            else:  # nothing fitted yet: the noise is unseen too (log sigma(0) per term)
                drawn = torch.zeros(len(targets) * self.negatives, dtype=torch.int64)
            drawn = drawn.view(len(targets), self.negatives).to(device)
            negative = F.logsigmoid(-torch.bmm(self.psi(drawn), phi_t.unsqueeze(-1)).squeeze(-1)).sum(-1)
            loss = loss - negative
        return loss.mean()

    def readout_loss(self, prepared_list: Sequence[PreparedGraph], items: Sequence[Any]) -> Tensor | None:
        """Cross-entropy of the readout on detached node states (``None`` when no item has a target)."""
        logits, targets = [], []
        for prepared, item in zip(prepared_list, items):
            h = self.node_states(prepared, taps=False).detach()
            if self.task == "graph":
                if getattr(item, "graph_target", None) is not None:
                    logits.append(self._logits(h))
                    targets.append(torch.tensor([int(item.graph_target)]))
            elif getattr(item, "node_target", None) is not None:
                target = torch.as_tensor(np.asarray(item.node_target, dtype=np.int64))
                keep = target >= 0
                if keep.any():
                    logits.append(self._logits(h)[keep.to(h.device)])
                    targets.append(target[keep])
        if not logits:
            return None
        return F.cross_entropy(torch.cat(logits), torch.cat(targets).to(logits[0].device))

    def loss(self, prepared_list: Sequence[PreparedGraph], items: Sequence[Any]) -> tuple[Tensor, int]:
        """``(L_sg + readout_weight * CE(readout on detached states), graphs (graph task) or nodes (node task))``.

        In training mode the vocabulary first grows by these graphs. Pairs with an unseen side stay in
        :math:`L_{sg}` (a zero embedding scores :math:`\\log \\sigma(0)`), so a validation loss counts
        the subgraphs the model never met.
        """
        targets, contexts = [], []
        for prepared in prepared_list:
            ids = torch.from_numpy(self._ids(prepared.tensors["digests"], grow=self.training)).reshape(-1)
            targets.append(ids[prepared.tensors["pair_targets"]])
            contexts.append(ids[prepared.tensors["pair_contexts"]])
        targets, contexts = torch.cat(targets), torch.cat(contexts)
        loss = self.skipgram_loss(targets, contexts) if len(targets) else self.phi.weight.sum() * 0.0
        if self.readout_weight:
            readout = self.readout_loss(prepared_list, items)
            if readout is not None:
                loss = loss + self.readout_weight * readout
        count = len(prepared_list) if self.task == "graph" else sum(p.num_input_nodes for p in prepared_list)
        return loss, int(count)

    def pairs(self, prepared: PreparedGraph) -> tuple[Tensor, Tensor]:
        """The graph's radial skip-gram pairs as ids ``(targets, contexts)`` under the vocabulary as it is."""
        ids = torch.from_numpy(self._ids(prepared.tensors["digests"], grow=False)).reshape(-1)
        return ids[prepared.tensors["pair_targets"]], ids[prepared.tensors["pair_contexts"]]

    # -- downstream -------------------------------------------------------------------------------
    def subgraph_embeddings(self) -> np.ndarray:
        """:math:`\\Phi` of the fitted ids, float64 ``[len(vocabulary), dim]`` (row ``UNSEEN`` zero)."""
        return self.phi.weight.detach()[: len(self.vocabulary)].double().cpu().numpy()


def deep_wl_kernel(counts_a: np.ndarray, embeddings: np.ndarray, counts_b: np.ndarray | None = None) -> np.ndarray:
    r"""The deep WL kernel :math:`K = \phi_a M \phi_b^\top`, :math:`M = \Phi \Phi^\top`, as :math:`(\phi_a \Phi)(\phi_b \Phi)^\top`.

    ``counts_*``: ``[graphs, |V|]`` from :func:`~lstmviz.engines.graph.wl.subgraph_counts`; ``embeddings``:
    :math:`\Phi`, ``[|V|, dim]`` (:meth:`Subgraph2Vec.subgraph_embeddings`).
    """
    embeddings = np.asarray(embeddings, dtype=np.float64)
    a = np.asarray(counts_a, dtype=np.float64) @ embeddings
    b = a if counts_b is None else np.asarray(counts_b, dtype=np.float64) @ embeddings
    return a @ b.T


def graph_counts(model: Subgraph2Vec, items: Sequence[Any]) -> np.ndarray:
    r""":math:`\phi(G)` of each item under the model's vocabulary as it is (no growth): ``[items, |V|]``."""
    ids = [model.wl_ids(item, grow=False) for item in items]
    return subgraph_counts(ids, len(model.vocabulary))


SPEC = EngineSpec(
    name="subgraph2vec",
    description="Weisfeiler-Lehman rooted subgraphs embedded by radial skip-gram, with a linear readout "
                "(Narayanan et al. 2016)",
    family="graph",
    paper=Paper(
        title="subgraph2vec: Learning Distributed Representations of Rooted Sub-graphs from Large Graphs",
        authors="Annamalai Narayanan, Mahinthan Chandramohan, Lihui Chen, Yang Liu, Santhoshkumar Saminathan",
        arxiv="1606.08928",
        year=2016,
    ),
    build=Subgraph2Vec,
    default_config={"depth": 2, "dim": 32, "max_subgraphs": 4096, "label": "degree", "degree_cap": 8,
                    "negatives": 5, "readout_weight": 1.0},
    taps=("wl0/embedding", "wl1/embedding", "wl2/embedding", "readout/node"),
    train_defaults={"steps": 300, "lr": 0.01, "optimizer": "adam"},
)

__all__ = ["SPEC", "Subgraph2Vec", "deep_wl_kernel", "graph_counts"]
