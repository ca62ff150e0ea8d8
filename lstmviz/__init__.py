"""lstmviz: record the hidden states of a model over a corpus and analyse them in a desktop window."""

import os as _os
import sys as _sys

__version__ = "0.1.0"

# Thread behaviour, set here because every entry point (the CLI, the window, `import lstmviz...` from a
# script or notebook) imports this package first. OpenMP threads (torch's, numba's) busy-wait after
# each parallel region by default, which collapses throughput when anything else shares the cores
# (a probe_curves call on a shared 2-core machine took 104 s without PASSIVE and 19 s with it). The
# runtime reads the variable once, when torch loads it, so it is set only if the user has not set it
# and torch is not imported yet (then it could no longer help, and would only reach child processes).
if "OMP_WAIT_POLICY" not in _os.environ and "torch" not in _sys.modules:
    _os.environ["OMP_WAIT_POLICY"] = "PASSIVE"


def __getattr__(name):
    # `lstmviz.record(...)`, `lstmviz.open_recording(...)`, `lstmviz.annotate(...)`, `lstmviz.intervene(...)`,
    # `lstmviz.perturb` without importing torch
    # at package import
    if name == "record":
        from lstmviz.recording.recorder import record

        return record
    if name == "open_recording":
        from lstmviz.recording.reader import open_recording

        return open_recording
    if name == "annotate":
        from lstmviz.recording.annotate import annotate

        return annotate
    if name == "intervene":  # `with lstmviz.intervene(model, edits): model(...)`
        from lstmviz.hooks.intervene import intervene

        return intervene
    if name == "perturb":  # lstmviz.perturb.perturb_item(...) after a plain `import lstmviz`
        import importlib

        return importlib.import_module("lstmviz.perturb")
    raise AttributeError(f"module 'lstmviz' has no attribute {name!r}")
