"""What a family of engines is: its data description, sample inputs, training objective and contract suite.

A family (a token language model, a sequence-to-sequence model, a graph network, an image model ...)
decides everything that depends on the kind of data, so that an engine only implements its layer:

- ``data``: the *data description*, a frozen dataclass whose fields are the keywords an engine's
  ``build()`` needs from the data (a language model: ``vocab_size``). It is made from a dataset
  (``describe_dataset``) or from a checkpoint (``describe_checkpoint``), never typed by a user
  (``lstmviz train --set vocab_size=...`` is refused);
- ``sample_inputs(data, batch=, length=, seed=)``: inputs of the shape the family's models take,
  for tests and for the recorder's checks;
- ``objective``: ``"module:Class"`` of its training objective (:class:`Objective`), loaded when
  training starts (so that listing families imports no torch), with ``train_settings``, the training
  settings it adds to the shared ones (``lstmviz.engines.training.SHARED_TRAIN_SETTINGS``);
- ``contract``: the module holding its contract suite, ``CHECKS``: functions ``check(spec, tmp_path)``
  that every engine of the family must pass (``tests/engines/test_engine_contract.py`` runs them for
  every registered engine of every registered family).
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol


class Objective(Protocol):
    """A family's training objective, driven by the shared loop of ``lstmviz.engines.training``.

    ``count_name`` names what :meth:`train_step` counts (``"tokens"``: the metrics then have ``tokens``
    and ``tokens_per_s``), ``rate_unit`` how a rate of it is printed (``"tok/s"``). An objective whose
    validation loss is not a next-token cross-entropy sets ``reports_perplexity = False`` (default True):
    its progress and metrics then give the loss, and ``valid_ppl`` / ``best_valid_ppl`` are None.

    Optional, for the training options of ``engines/dpsgd.py`` and ``engines/ekfac.py``:
    ``dp_examples() -> (tensor pytree [N, ...], "what one example is")`` and ``example_loss(call, example)``
    (one example's loss; ``call(...)`` runs the model, ``call.loss(...)`` an engine-owned loss; ``dp_method =
    "loop"`` when vmap cannot map it) give DP-SGD its per-example view; ``fisher_sample_loss(model)`` (the loss
    of labels drawn from the model on the batch just trained) gives K-FAC / EKFAC the true Fisher.
    """

    count_name: str
    rate_unit: str

    @staticmethod
    def check_settings(settings: dict, need: Callable[[str, bool, str], None], is_int: Callable[[Any], bool]) -> None:
        """Check (``need(key, ok, "what was expected")``) and normalise the settings the family adds."""

    def prepare(self, dataset_train: Any, dataset_valid: Any, settings: dict, device: Any) -> None:
        """Check and arrange the data (``ValueError`` naming the problem: too small, wrong vocabulary ...)."""

    def train_step(self, model: Any) -> tuple[Any, int]:
        """The loss of the next batch (a tensor to backpropagate) and how many units it counts."""

    def evaluate(self, model: Any) -> float | None:
        """The validation loss (``None`` without validation data), dropout off."""


def _load(reference: str) -> Any:
    module, _, attribute = reference.partition(":")
    loaded = importlib.import_module(module)
    return getattr(loaded, attribute) if attribute else loaded


@dataclass(frozen=True)
class Family:
    """One family of engines (see the module docstring)."""

    name: str
    description: str
    data: type
    describe_dataset: Callable[[Any], Any]
    describe_checkpoint: Callable[[Mapping[str, Any]], Any]
    sample_inputs: Callable[..., Any]
    objective: str
    contract: str
    train_settings: Mapping[str, Any] = field(default_factory=dict)
    default_dataset: str | None = None

    def data_fields(self) -> tuple[str, ...]:
        """The build keywords the data description provides (``("vocab_size",)``)."""
        return tuple(f.name for f in dataclasses.fields(self.data))

    def data_field_meaning(self, name: str) -> str:
        """What a data field is, in words, for messages (``"the vocabulary size"``)."""
        for f in dataclasses.fields(self.data):
            if f.name == name:
                return f.metadata.get("meaning", f"the {name}")
        raise KeyError(name)

    def build_kwargs(self, data: Any) -> dict[str, Any]:
        """The build keywords of a data description of this family."""
        if not isinstance(data, self.data):
            raise TypeError(f"expected a {self.data.__name__} (the data description of family {self.name!r}), "
                            f"got {type(data).__name__}")
        return {name: getattr(data, name) for name in self.data_fields()}

    def split_data(self, keywords: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
        """``(data description, the rest)`` from build keywords given together (``vocab_size=12, hidden_size=64``)."""
        fields = self.data_fields()
        missing = [name for name in fields if name not in keywords]
        if missing:
            raise TypeError(f"an engine of family {self.name!r} needs {', '.join(missing)} (its data description)")
        data = self.data(**{name: keywords[name] for name in fields})
        return data, {k: v for k, v in keywords.items() if k not in fields}

    def objective_class(self) -> type:
        """The class of the training objective (imports it; it usually imports torch)."""
        return _load(self.objective)

    def make_objective(self) -> Objective:
        return self.objective_class()()

    def contract_checks(self) -> tuple[Callable, ...]:
        return tuple(_load(self.contract).CHECKS)


def train_objective_briefly(objective: Objective, model: Any, steps: int, lr: float = 0.03) -> tuple[float, float]:
    """For contract suites: the validation loss of ``model`` under a prepared ``objective``, before and after
    ``steps`` Adam steps in training mode (every step must count something and give a finite loss)."""
    import torch

    first = objective.evaluate(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        loss, count = objective.train_step(model)
        assert count > 0 and torch.isfinite(loss), f"step loss {loss}, count {count}"
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return first, objective.evaluate(model)
