"""Re-export: taps live in the hook layer, :mod:`lstmviz.hooks.taps` (kept so that existing imports work)."""

from lstmviz.hooks.taps import Tap, TapDecl, find_taps

__all__ = ["Tap", "TapDecl", "find_taps"]
