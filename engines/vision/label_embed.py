r"""Engine ``label-embed``: a CNN that regresses onto information-theoretical label embeddings (Chollet 2016,
"Information-theoretical label embeddings for large-scale image classification", arXiv:1607.05691).

**Label embeddings** (fixed before training, from the training labels ``Y ∈ {0,1}^{N×L}``; a ``class``
dataset gives one-hot rows):

.. math::
    C &= Y^\top Y \qquad (C_{ij} = \#\{\text{images with labels } i \text{ and } j\},\ C_{ii} = \#\{\text{images with } i\}) \\
    \mathrm{PMI}_{ij} &= \log \frac{(C_{ij} + \alpha)\, N}{(C_{ii} + \alpha)(C_{jj} + \alpha)}
        \qquad (\alpha = \texttt{smoothing};\ \alpha = 0 \text{ is } \log \tfrac{P(i,j)}{P(i)P(j)}) \\
    M &= \mathrm{PMI} \quad\text{or, with } \texttt{positive\_pmi},\quad M = \max(\mathrm{PMI}, 0) \\
    M &= U \Sigma V^\top \ \text{(SVD)}, \qquad E^{\circ} = U_{:, :d}\, \Sigma_{:d}^{1/2}, \qquad
        E_i = E^{\circ}_i / \lVert E^{\circ}_i \rVert

**Network**: the trunk of the ``cnn`` engine (``num_layers`` conv3×3+ReLU blocks, 2×2 max pool after the
first two, global average pool ``p``), then a linear map to the embedding space and cosine scores:

.. math::
    \hat y = W\, \mathrm{dropout}(p) + b \in R^d, \qquad s_i = \cos(\hat y, E_i) = \hat y^\top E_i / \lVert \hat y \rVert

**Loss** (cosine proximity, shifted by 1 so that it lies in [0, 2]): for an image with label set ``S``,
``t = Σ_{i∈S} E_i / ‖Σ_{i∈S} E_i‖`` and ``ℓ = 1 − cos(ŷ, t)``, averaged over the batch. ``ℓ`` is
invariant to the scale of ``ŷ`` (``ℓ(cŷ) = ℓ(ŷ)`` for ``c > 0``), its gradient
``∇_ŷ ℓ = −(t − cos(ŷ,t) ŷ/‖ŷ‖)/‖ŷ‖`` is orthogonal to ``ŷ`` and is zero exactly when ``ŷ ∝ t`` (tested).

**Decoding** ranks the labels by ``s_i``. ``class``: the top label. ``multilabel``: the top ``|S|``
labels given the number of labels (:func:`top_count_sets`), the rule used by the claims benchmark;
mAP is reported independently of any rule. The family's "logit > 0" rule is *not* meaningful here
(``s_i`` are cosines).

Choices the paper leaves open, written down:

- ``smoothing`` ``α = 1`` (add-one on every count of the PMI formula above, including the diagonal and
  the marginals), signed PMI by default (``positive_pmi=False``): the negative entries are what says
  "these labels are never seen together", the information the themes of ``digits-themes`` carry.
- The diagonal is ``P(i, i) = P(i)``, so ``PMI_ii = log N/(C_ii + α)`` (the label's self-information).
- ``E = U Σ^{1/2}`` (left singular vectors). The PMI is symmetric but not always positive semi-definite;
  for a negative eigenvalue λ the SVD has ``v = −u`` and ``σ = |λ|``, so ``E Eᵀ = U Σ Uᵀ`` is the matrix
  with ``|λ|`` in place of λ; ``E^{\circ} (V Σ^{1/2})ᵀ`` reproduces ``M`` exactly at full rank (tested).
  Each column's sign is fixed so that its largest-magnitude entry is positive (reproducible tables).
- Rows of ``E`` are L2-normalised (every label has the same weight in the target and in decoding).
- ``embed_size`` ``d > L``: the table is padded with zero columns (``ŷ``'s extra coordinates are
  regressed to 0); ``d`` is a build setting so the head's shape never depends on the data.
- The table is computed from the *training split's* labels by :meth:`LabelEmbedCNN.prepare_training`,
  which the shared training loop calls once before the first step. A model trained without it (the
  bare family objective) fits its table from the labels of the first batch that reaches :meth:`loss`.

The table (``label_table`` [L, d]), the PMI matrix, the singular values and whether the table is fitted
are buffers: they are saved in the checkpoint; :meth:`LabelEmbedCNN.label_embeddings` returns ``E``.

Taps: ``conv{i}`` (IMAGE, axis ``conv{i}``, as in ``cnn``), ``pooled`` (SCALAR), ``embedding`` (SCALAR,
``ŷ`` [B, d]), ``logits`` (SCALAR, the cosine scores ``s`` [B, L], one unit per label).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmviz.hooks import SCALAR, Tap

from ..spec import ConfigError, EngineSpec, Paper
from .cnn import CNN, POOLED_BLOCKS

ENGINE = "label-embed"


def cooccurrence(labels) -> tuple[np.ndarray, int]:
    """``(C = Yᵀ Y [L, L] float64, N)`` of a 0/1 label matrix ``Y [N, L]``."""
    y = np.asarray(labels, dtype=np.float64)
    if y.ndim != 2 or not len(y):
        raise ValueError(f"expected a label matrix [images, labels] with at least one image, got shape {y.shape}")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("expected 0/1 labels")
    return y.T @ y, len(y)


def pmi_matrix(counts: np.ndarray, n: int, *, smoothing: float = 1.0, positive: bool = False) -> np.ndarray:
    """``PMI_ij = log((C_ij + α) N / ((C_ii + α)(C_jj + α)))`` (module docstring); ``positive``: ``max(PMI, 0)``.

    With ``α = 0`` a pair never seen together has PMI ``-inf`` (and a label never seen, NaN): refused."""
    c = np.asarray(counts, dtype=np.float64)
    marginal = np.diag(c) + smoothing
    with np.errstate(divide="ignore", invalid="ignore"):
        pmi = np.log((c + smoothing) * n) - np.log(np.outer(marginal, marginal))
    if not np.isfinite(pmi).all():
        raise ValueError("the PMI has log 0 entries (labels never seen together, or never seen): use smoothing > 0")
    return np.maximum(pmi, 0.0) if positive else pmi


def svd_embeddings(matrix: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(E° = U_{:, :d} Σ_d^{1/2} [L, size], F° = V_{:, :d} Σ_d^{1/2} [L, size], σ [L])`` of a square matrix;
    columns beyond ``L`` are zero; each column's sign makes its largest-magnitude entry of ``U`` positive."""
    u, s, vt = np.linalg.svd(np.asarray(matrix, dtype=np.float64))
    flip = np.sign(u[np.abs(u).argmax(0), np.arange(u.shape[1])])
    flip[flip == 0] = 1.0
    u, vt = u * flip, vt * flip[:, None]
    k = min(size, len(s))
    e = np.zeros((len(s), size))
    f = np.zeros((len(s), size))
    e[:, :k] = u[:, :k] * np.sqrt(s[:k])
    f[:, :k] = vt[:k].T * np.sqrt(s[:k])
    return e, f, s


def normalize_rows(e: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(e, axis=1, keepdims=True)
    return e / np.where(norm > 0, norm, 1.0)


def label_embeddings(labels, size: int, *, smoothing: float = 1.0, positive: bool = False):
    """``(E [L, size] unit rows, M [L, L], σ [L])`` from a 0/1 label matrix (module docstring)."""
    counts, n = cooccurrence(labels)
    m = pmi_matrix(counts, n, smoothing=smoothing, positive=positive)
    e, _, s = svd_embeddings(m, size)
    return normalize_rows(e), m, s


def cosine_loss(output: Tensor, target: Tensor) -> Tensor:
    """``1 − cos(ŷ, t)`` per row ``[B]`` (zero vectors count as cosine 0)."""
    return 1.0 - F.cosine_similarity(output, target, dim=-1, eps=1e-12)


def top_count_sets(scores: Tensor, counts: Tensor) -> Tensor:
    """0/1 ``[B, L]``: the ``counts[b]`` labels of highest score per image (the multilabel decoding rule)."""
    order = scores.argsort(dim=1, descending=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(scores.shape[1], device=scores.device).expand_as(order))
    return (rank < counts.reshape(-1, 1)).to(scores.dtype)


def label_matrix(dataset) -> np.ndarray:
    """``Y [N, L]`` 0/1 of an image dataset: its ``targets`` (multilabel) or one-hot ``target`` (class)."""
    num = len(dataset.class_names)
    rows = np.zeros((len(dataset), num), np.float64)
    multi = getattr(dataset, "multi", None)
    if dataset.task == "multilabel" and multi is not None:
        return np.asarray(multi, np.float64)
    for i in range(len(dataset)):
        item = dataset[i]
        if dataset.task == "multilabel":
            rows[i] = np.asarray(item.targets, np.float64)
        else:
            rows[i, int(item.target)] = 1.0
    return rows


class LabelEmbedCNN(CNN):
    """The ``cnn`` trunk regressing onto fixed PMI-SVD label embeddings by a cosine loss; its outputs are the
    cosines to every label's embedding (module docstring)."""

    def __init__(self, channels: int, height: int, width: int, num_classes: int, task: str = "class", *,
                 hidden_size: int = 16, num_layers: int = 4, embed_size: int = 8, smoothing: float = 1.0,
                 positive_pmi: bool = False, dropout: float = 0.0):
        if isinstance(embed_size, bool) or not isinstance(embed_size, int) or embed_size < 1:
            raise ConfigError(f"expected embed_size of engine {ENGINE!r} to be a positive int, got {embed_size!r}")
        if isinstance(smoothing, bool) or not isinstance(smoothing, (int, float)) or not smoothing >= 0:
            raise ConfigError(f"expected smoothing of engine {ENGINE!r} to be a number >= 0, got {smoothing!r}")
        super().__init__(channels, height, width, num_classes, task, hidden_size=hidden_size, num_layers=num_layers,
                         dropout=dropout)
        self.num_classes, self.embed_size = int(num_classes), int(embed_size)
        self.smoothing, self.positive_pmi = float(smoothing), bool(positive_pmi)
        self.head = nn.Linear(self.head.in_features, embed_size)
        self.embedding_tap = Tap("embedding", layout=SCALAR, axis="image",
                                 description="the predicted label-space vector (regressed onto the label embeddings)")
        self.logits_tap = Tap("logits", layout=SCALAR, axis="image",
                              description="cosine of the embedding with each label's embedding (one unit per label)")
        # before fitting: random unit rows (from torch's RNG, so a seeded build is reproducible)
        self.register_buffer("label_table", F.normalize(torch.randn(num_classes, embed_size), dim=1))
        self.register_buffer("pmi", torch.zeros(num_classes, num_classes))
        self.register_buffer("singular_values", torch.zeros(num_classes))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    def extra_repr(self) -> str:
        return (f"labels={self.num_classes}, embed_size={self.embed_size}, smoothing={self.smoothing}, "
                f"positive_pmi={self.positive_pmi}")

    def label_embeddings(self) -> Tensor:
        """The label table ``E`` [labels, embed_size] (unit rows once fitted)."""
        return self.label_table.detach().clone()

    @torch.no_grad()
    def fit_labels(self, labels) -> None:
        """Compute the table from a 0/1 label matrix ``[N, labels]`` (the training split's)."""
        y = labels.detach().cpu().numpy() if isinstance(labels, Tensor) else np.asarray(labels)
        if y.ndim != 2 or y.shape[1] != self.num_classes:
            raise ValueError(f"expected labels [images, {self.num_classes}], got shape {tuple(y.shape)}")
        e, m, s = label_embeddings(y, self.embed_size, smoothing=self.smoothing, positive=self.positive_pmi)
        self.label_table.copy_(torch.from_numpy(e))
        self.pmi.copy_(torch.from_numpy(m))
        self.singular_values.copy_(torch.from_numpy(s))
        self.fitted.fill_(True)

    def prepare_training(self, dataset_train) -> None:
        """Called by the shared training loop before the first step: fit the table on the training labels."""
        self.fit_labels(label_matrix(dataset_train))

    def embed(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """``(ŷ [B, d], s [B, L])`` through every tap."""
        x = images
        for i, (conv, tap) in enumerate(zip(self.convs, self.conv_taps)):
            x = tap(conv(x).relu())
            if i < POOLED_BLOCKS:
                x = self.pool(x)
        pooled = self.pooled_tap(x.mean(dim=(2, 3)))
        y = self.embedding_tap(self.head(self.dropout(pooled)))
        scores = F.normalize(y, dim=1, eps=1e-12) @ self.label_table.to(y.dtype).t()
        return y, self.logits_tap(scores)

    def forward(self, images: Tensor) -> Tensor:
        return self.embed(images)[1]

    def targets(self, batch: dict) -> Tensor:
        """The unit targets ``t`` [B, d] of a batch (``targets`` 0/1 [B, L], or class ids ``target`` [B])."""
        y = batch.get("targets")
        if y is None:
            y = F.one_hot(batch["target"], self.num_classes)
        return F.normalize(y.to(self.label_table.dtype) @ self.label_table, dim=1, eps=1e-12)

    def loss(self, images: Tensor, batch: dict) -> tuple[Tensor, int]:
        """The mean cosine loss ``1 − cos(ŷ, t)`` over the batch, and the number of images."""
        if not bool(self.fitted):
            y = batch.get("targets")
            self.fit_labels(F.one_hot(batch["target"], self.num_classes) if y is None else y)
        out, _ = self.embed(images)
        return cosine_loss(out, self.targets(batch).to(out.dtype)).mean(), len(images)


def build(channels: int, height: int, width: int, num_classes: int, task: str = "class", *,
          hidden_size: int = 16, num_layers: int = 4, embed_size: int = 8, smoothing: float = 1.0,
          positive_pmi: bool = False, dropout: float = 0.0) -> LabelEmbedCNN:
    return LabelEmbedCNN(channels, height, width, num_classes, task, hidden_size=hidden_size, num_layers=num_layers,
                         embed_size=embed_size, smoothing=smoothing, positive_pmi=positive_pmi, dropout=dropout)


SPEC = EngineSpec(
    name=ENGINE,
    description="the cnn trunk regressing by a cosine loss onto label embeddings from the SVD of the labels' PMI",
    family="image",
    paper=Paper(
        title="Information-theoretical label embeddings for large-scale image classification",
        authors="Chollet",
        arxiv="1607.05691",
        year=2016,
    ),
    build=build,
    default_config={"hidden_size": 16, "num_layers": 4, "embed_size": 8, "smoothing": 1.0, "positive_pmi": False},
    taps=("conv{layer}", "pooled", "embedding", "logits"),
    default_dataset="digits-themes",
    train_defaults={"steps": 600, "batch_size": 64, "lr": 0.003, "eval_every": 100, "optimizer": "adam",
                    "clip": 5.0, "seed": 0},
)
