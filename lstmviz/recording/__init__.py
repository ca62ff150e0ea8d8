"""Recording files: the HDF5 format (``docs/format.md``), its writer, reader, validation and migrations.

Nothing imported here needs torch; the recorder (``lstmviz.recording.recorder``) is imported on
its own, where a model is run.
"""

from lstmviz.recording.format import FORMAT_VERSION, AnnotationInfo, CheckpointInfo, RecordingError, TapInfo
from lstmviz.recording.migrations import migrate
from lstmviz.recording.reader import Recording, open_recording
from lstmviz.recording.summary import summarize
from lstmviz.recording.writer import RecordingWriter

__all__ = [
    "FORMAT_VERSION",
    "AnnotationInfo",
    "CheckpointInfo",
    "Recording",
    "RecordingError",
    "RecordingWriter",
    "TapInfo",
    "migrate",
    "open_recording",
    "summarize",
]
