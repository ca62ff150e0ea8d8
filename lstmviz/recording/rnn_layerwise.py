"""Re-export: the layer-by-layer run of stock RNNs lives in :mod:`lstmviz.hooks.rnn_layerwise`."""

from lstmviz.hooks.rnn_layerwise import (
    RNN_TYPES,
    LayerCallback,
    LayerTrace,
    forward_layerwise,
    initial_state,
    is_recoverable_rnn,
    layer_weights,
    rnn_signal_names,
)

__all__ = ["LayerCallback", "LayerTrace", "RNN_TYPES", "forward_layerwise", "initial_state", "is_recoverable_rnn",
           "layer_weights", "rnn_signal_names"]
