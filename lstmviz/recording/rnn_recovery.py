"""Re-export: the recovery of gates and cell states from the weights lives in :mod:`lstmviz.hooks.rnn_recovery`."""

from lstmviz.hooks.rnn_recovery import (
    GRUGateWeights,
    LSTMGateWeights,
    gru_gates,
    linear,
    lstm_cell_states,
    lstm_gates,
    stacked_inputs,
    step_mask,
    zero_padding,
)

__all__ = ["GRUGateWeights", "LSTMGateWeights", "gru_gates", "linear", "lstm_cell_states", "lstm_gates",
           "stacked_inputs", "step_mask", "zero_padding"]
