"""Family ``language-model``: models that read token ids and predict the next token.

- data description: :class:`TokenData` (``vocab_size``), from a dataset's vocabulary or a checkpoint's;
- inputs: token ids ``[batch, time]`` (int64); a model returns ``(logits [batch, time, vocab_size], state)``;
- training: stateful truncated backpropagation through time on the concatenated token stream
  (:mod:`.objective`), with the settings ``bptt`` and ``valid_tokens``;
- contract: :mod:`.contract`.

Checkpoints written before families existed have no ``family`` and are of this family.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from ..family import Family


@dataclass(frozen=True)
class TokenData:
    """What a language model needs to know about its data: how many token ids there are."""

    vocab_size: int = field(metadata={"meaning": "the vocabulary size"})


def describe_dataset(dataset: Any) -> TokenData:
    vocab = getattr(dataset, "vocab", None)
    if vocab is None:
        raise TypeError(f"expected a token dataset with a vocabulary (.vocab), got {type(dataset).__name__}")
    return TokenData(vocab_size=len(vocab))


def describe_checkpoint(payload: Mapping[str, Any]) -> TokenData:
    if not payload["vocab"]:
        raise ValueError("bad 'vocab': expected a non-empty list of token strings")
    return TokenData(vocab_size=len(payload["vocab"]))


def sample_inputs(data: TokenData, *, batch: int = 3, length: int = 5, seed: int = 0):
    """Random token ids ``[batch, length]`` (int64) below ``data.vocab_size``, reproducible by ``seed``."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, data.vocab_size, (batch, length), generator=generator)


FAMILY = Family(
    name="language-model",
    description="token sequences in, next-token logits out; trained by truncated BPTT on a token stream",
    data=TokenData,
    describe_dataset=describe_dataset,
    describe_checkpoint=describe_checkpoint,
    sample_inputs=sample_inputs,
    objective="lstmviz.engines.families.language_model.objective:TruncatedBPTT",
    contract="lstmviz.engines.families.language_model.contract",
    train_settings={
        "bptt": 35,  # steps per truncated-BPTT segment
        "valid_tokens": None,  # validate on the first N tokens of the validation stream (None: all)
    },
    default_dataset="parens",
)
