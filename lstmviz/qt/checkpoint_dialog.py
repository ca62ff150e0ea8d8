"""The one dialog that asks where a recording's checkpoint is (the perturbation tabs re-run the model)."""

from __future__ import annotations

from pathlib import Path

from PySide6 import QtWidgets

CHECKPOINT_FILTER = "Checkpoints (*.pt *.pth *.ckpt);;All files (*)"


def ask_checkpoint(parent: QtWidgets.QWidget, recording_path: str | Path, last: str | None = None) -> str | None:
    """Ask for the checkpoint of the recording at ``recording_path``, starting at ``last`` (the one chosen before)
    or the recording's folder; ``None`` when the user cancels."""
    start = last or str(Path(recording_path).parent)
    path, _ = QtWidgets.QFileDialog.getOpenFileName(parent, "Locate the recording's checkpoint", start,
                                                    CHECKPOINT_FILTER)
    return path or None
