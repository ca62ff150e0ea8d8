"""Sequence-to-sequence engines (family ``seq2seq``): ``seq2seq-attn`` (Luong et al.'s global attention)."""
