"""lstmviz: record the hidden states of a model over a corpus and analyse them in a desktop window."""

__version__ = "0.1.0"


def __getattr__(name):
    # `lstmviz.record(...)` and `lstmviz.open_recording(...)` without importing torch at package import
    if name == "record":
        from lstmviz.recording.recorder import record

        return record
    if name == "open_recording":
        from lstmviz.recording.reader import open_recording

        return open_recording
    raise AttributeError(f"module 'lstmviz' has no attribute {name!r}")
