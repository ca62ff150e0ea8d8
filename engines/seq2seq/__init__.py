"""Sequence-to-sequence engines (family ``seq2seq``): ``seq2seq-attn`` (Luong et al.'s global attention),
``seq2seq-ac`` (Bahdanau et al.'s actor-critic training of it)."""
