"""TreeNN: a recursive network over expression trees (Zaremba, Kurach & Fergus 2014, the "TNN").

Each node ``v`` of a tree gets a vector ``phi(v)`` in ``R^d`` from its children, bottom-up:

    leaf:              phi(v) = E^T f_v                              (a learned vector per leaf symbol)
    unary op o:        phi(v) = ReLU(W_o phi(c))
    binary op o:       phi(v) = ReLU(T_o x_3 phi(c_1) . phi(c_2)),   (T_o x_3 u . w)_j = sum_{k,l} T_o[j,k,l] u_k w_l
    logits:            z = H phi(root) + b                           (softmax over equivalence classes)

``f_v`` is the node's feature vector (a one-hot of its symbol in the ``expressions`` data), and the
operator ``o`` of an inner node is the arg-max of ``f_v``: every symbol owns a unary matrix ``W_s``
``[d, d]`` and a bilinear tensor ``T_s`` ``[d, d, d]``, and a node uses the one its number of children
calls for (in expression trees a leaf symbol never has children, so its ``W``/``T`` stay unused). The
bilinear map is not symmetric in its two arguments, so ``x - y`` and ``y - x`` get different vectors.

**Identity initialisation** (the paper's essential trick; ``init="identity"``): ``W_s = I + noise``,
``T_s[j,j,j] = 1 + noise`` and 0 + noise elsewhere (``noise`` ~ N(0, ``init_noise``^2)), so at
initialisation a unary chain maps ``a`` to about ``ReLU(a)`` and a binary node to about
``ReLU(u * w)`` (element-wise). ``init="random"`` draws ``W ~ N(0, 1/d)``, ``T ~ N(0, 1/d^2)``
(the paper's ablation: random init gives ~1% test accuracy against identity init).
Leaf vectors start at ``N(0, 1)``.

Trees (what ``prepare`` reads): the graph's breadth-first tree from node 0 (the root), a node's
children in increasing node order. For an expression tree stored in pre-order (the ``expressions``
dataset: edges parent -> child, the left child before the right) this is the expression tree itself.
Other graphs (the contract's random graphs) get their BFS tree; a node with ``k > 2`` children folds
them left with its bilinear map, ``phi = B(B(c_1, c_2), c_3) ...`` with a ReLU after each step
(beyond the paper, whose operators have arity 1 or 2); nodes unreachable from node 0 start their own
trees (roots in node order) and do not reach the logits. Nodes are evaluated by height (all leaves,
then every node whose children are done ...), each height's nodes of one arity batched.

Choices the paper leaves open or that differ from it (written down): the scalar polynomial grammar of
the ``expressions`` data instead of the matrix grammar; ``d = 30`` default as in the paper; no
curriculum over degrees; no ×100 learning rate on the softmax layer (the shared training loop has one
learning rate; with Adam the per-parameter step scale differs from the paper's SGD + momentum 0.9 anyway).

Taps (``[1, positions, units]``, :data:`lstmviz.hooks.GRAPH`, axis ``positions`` = the tree's nodes):
``node/phi`` (``phi(v)``), ``node/pre`` (the node's pre-activation: ``W_o phi(c)`` or the bilinear
form, the leaf vector at leaves) and ``node/logits`` (``H phi(v) + b`` at every node: how the subtree
alone would be classified; the root's row is the model's output).
"""

from __future__ import annotations

from collections import deque

import numpy as np
import torch
from torch import Tensor, nn

from lstmviz.engines.families.graph.api import GraphLevel, PreparedGraph
from lstmviz.engines.spec import EngineSpec, Paper
from lstmviz.hooks import GRAPH, Tap

INITS = ("identity", "random")


def tree_plan(num_nodes: int, edges: np.ndarray, ops: np.ndarray) -> dict:
    """BFS forest from node 0 (children in node order), heights, and per height the batches to run.

    Returns ``parent`` int64 ``[n]`` (-1 for roots), ``height`` int64 ``[n]`` and ``steps``: a list over
    heights 1, 2, ... of ``(arity, nodes [m], children [m, arity], ops [m])`` tensors.
    """
    n = int(num_nodes)
    neighbours: list[list[int]] = [[] for _ in range(n)]
    for a, b in np.asarray(edges, dtype=np.int64).reshape(-1, 2):
        if a != b:
            neighbours[int(a)].append(int(b))
            neighbours[int(b)].append(int(a))
    parent = np.full(n, -1, dtype=np.int64)
    seen = np.zeros(n, dtype=bool)
    children: list[list[int]] = [[] for _ in range(n)]
    order: list[int] = []
    for root in range(n):
        if seen[root]:
            continue
        seen[root] = True
        queue = deque([root])
        while queue:
            v = queue.popleft()
            order.append(v)
            for w in sorted(set(neighbours[v])):
                if not seen[w]:
                    seen[w] = True
                    parent[w] = v
                    children[v].append(w)
                    queue.append(w)
    height = np.zeros(n, dtype=np.int64)
    for v in reversed(order):  # children come after their parent in BFS order
        if children[v]:
            height[v] = 1 + max(height[c] for c in children[v])
    steps = []
    for h in range(1, int(height.max()) + 1 if n else 1):
        at = [v for v in range(n) if height[v] == h]
        for arity in sorted({len(children[v]) for v in at}):
            group = [v for v in at if len(children[v]) == arity]
            steps.append((arity, torch.tensor(group, dtype=torch.long),
                          torch.tensor([children[v] for v in group], dtype=torch.long).reshape(len(group), arity),
                          torch.from_numpy(ops[group].astype(np.int64))))
    return {"parent": parent, "height": height, "steps": steps}


class TreeNN(nn.Module):
    """Recursive tree network (the module docstring of :mod:`lstmviz.engines.graph.treenn`): graph task only."""

    def __init__(self, num_features: int, num_classes: int, task: str, *, dim: int = 30, init: str = "identity",
                 init_noise: float = 0.01):
        super().__init__()
        if task != "graph":
            raise ValueError(f"treenn classifies whole trees (the graph task), not {task!r}")
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"expected dim to be a positive int, got {dim!r}")
        if init not in INITS:
            raise ValueError(f"expected init to be one of {', '.join(INITS)}, got {init!r}")
        if isinstance(init_noise, bool) or not isinstance(init_noise, (int, float)) or init_noise < 0:
            raise ValueError(f"expected init_noise to be a number >= 0, got {init_noise!r}")
        self.num_features, self.num_classes, self.task = int(num_features), int(num_classes), task
        self.dim, self.init, self.init_noise = int(dim), init, float(init_noise)
        F_, d = self.num_features, self.dim
        self.leaf = nn.Parameter(torch.empty(F_, d))
        self.unary = nn.Parameter(torch.empty(F_, d, d))
        self.binary = nn.Parameter(torch.empty(F_, d, d, d))
        self.head = nn.Linear(d, self.num_classes)
        self.phi_tap = Tap("node/phi", signal="phi", layout=GRAPH, axis="positions",
                           description="phi(v): the node's vector, ReLU of its operator applied to its children "
                                       "(the leaf vector at leaves)")
        self.pre_tap = Tap("node/pre", signal="pre", layout=GRAPH, axis="positions",
                           description="the node's pre-activation: W_o phi(c) (unary), T_o x3 phi(c1) . phi(c2) "
                                       "(binary), the leaf vector at leaves")
        self.logits_tap = Tap("node/logits", signal="logits", layout=GRAPH, axis="positions",
                              description="H phi(v) + b at every node: the class scores of the node's subtree "
                                          "(the root's row is the output)")
        self.reset_parameters()

    def reset_parameters(self) -> None:
        d = self.dim
        with torch.no_grad():
            nn.init.normal_(self.leaf, 0.0, 1.0)
            if self.init == "identity":
                self.unary.normal_(0.0, self.init_noise)
                self.binary.normal_(0.0, self.init_noise)
                idx = torch.arange(d)
                self.unary[:, idx, idx] += 1.0
                self.binary[:, idx, idx, idx] += 1.0
            else:
                self.unary.normal_(0.0, 1.0 / d ** 0.5)
                self.binary.normal_(0.0, 1.0 / d)
        self.head.reset_parameters()

    def extra_repr(self) -> str:
        return (f"num_features={self.num_features}, num_classes={self.num_classes}, dim={self.dim}, "
                f"init={self.init}, init_noise={self.init_noise}")

    def prepare(self, item) -> PreparedGraph:
        """The BFS tree from node 0 and its evaluation plan (module docstring)."""
        features = np.asarray(item.features)
        n = item.geometry.num_nodes
        if features.shape != (n, self.num_features):
            raise ValueError(f"expected node features of shape ({n}, {self.num_features}) (nodes, num_features), "
                             f"got {features.shape}")
        ops = features.argmax(axis=1) if n else np.zeros(0, dtype=np.int64)
        plan = tree_plan(n, item.geometry.edges, ops)
        levels = (GraphLevel(axis="positions", geometry=item.geometry),)
        return PreparedGraph(levels=levels, features=torch.from_numpy(features.astype(np.float32, copy=False)),
                             num_input_nodes=n, tensors={"parent": torch.from_numpy(plan["parent"]),
                                                         "height": torch.from_numpy(plan["height"]),
                                                         "steps": plan["steps"]})

    def _bilinear(self, ops: Tensor, u: Tensor, w: Tensor) -> Tensor:
        return torch.einsum("mjkl,mk,ml->mj", self.binary[ops], u, w)

    def node_states(self, prepared: PreparedGraph) -> tuple[Tensor, Tensor]:
        """``(phi, pre)``, each ``[n, d]`` in node order."""
        f = prepared.features.to(dtype=self.leaf.dtype, device=self.leaf.device)
        leaf = f @ self.leaf
        rows: list[Tensor] = list(leaf.unbind(0))
        pre_rows: list[Tensor] = list(leaf.unbind(0))
        for arity, nodes, children, ops in prepared.tensors["steps"]:
            kids = [torch.stack([rows[int(c)] for c in children[:, i]]) for i in range(arity)]
            if arity == 1:
                pre = torch.einsum("mjk,mk->mj", self.unary[ops], kids[0])
                out = torch.relu(pre)
            else:
                acc = kids[0]
                for i in range(1, arity):
                    pre = self._bilinear(ops, acc, kids[i])
                    acc = torch.relu(pre)
                out = acc
            for r, v in enumerate(nodes.tolist()):
                rows[v] = out[r]
                pre_rows[v] = pre[r]
        return torch.stack(rows), torch.stack(pre_rows)

    def forward(self, prepared: PreparedGraph) -> Tensor:
        if not isinstance(prepared, PreparedGraph):
            raise TypeError(f"expected a PreparedGraph (model.prepare(item)), got {type(prepared).__name__}")
        phi, pre = self.node_states(prepared)
        self.pre_tap(pre.unsqueeze(0))
        phi = self.phi_tap(phi.unsqueeze(0)).squeeze(0)
        logits = self.logits_tap(self.head(phi).unsqueeze(0)).squeeze(0)
        return logits[:1]  # node 0 is the root

    def embed(self, prepared: PreparedGraph) -> Tensor:
        """``phi(root)`` ``[d]``: the tree's embedding."""
        return self.node_states(prepared)[0][0]


def build(num_features: int, num_classes: int, task: str, *, dim: int = 30, init: str = "identity",
          init_noise: float = 0.01) -> TreeNN:
    return TreeNN(num_features, num_classes, task, dim=dim, init=init, init_noise=init_noise)


SPEC = EngineSpec(
    name="treenn",
    description="recursive network over expression trees: per-operator linear / bilinear ReLU layers, "
                "identity init, classifies equivalence classes",
    family="graph",
    paper=Paper(
        title="Learning to Discover Efficient Mathematical Identities",
        authors="Zaremba, Kurach, Fergus",
        arxiv="1406.1584",
        year=2014,
    ),
    build=build,
    default_config={"dim": 30, "init": "identity", "init_noise": 0.01},
    default_dataset="expressions",
    taps=("node/phi", "node/pre", "node/logits"),
    train_defaults={"steps": 1500, "batch_size": 16, "lr": 0.003, "weight_decay": 0.0, "eval_every": 500,
                    "optimizer": "adam", "clip": 5.0, "seed": 0,
                    "threads": 1},  # small per-node ops stepped in Python: one torch thread is faster
)

__all__ = ["SPEC", "TreeNN", "build", "tree_plan"]
