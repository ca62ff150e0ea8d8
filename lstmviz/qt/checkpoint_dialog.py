"""Where a recording's checkpoint is: the one dialog that asks, and what a panel with a perturbation tab does
when the checkpoint cannot be used (the graph and image panels re-run the recording's model)."""

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


class LocatesCheckpoint:
    """For a panel with ``workspace``, ``perturb_box`` (``clear_effect(text, locate=...)``), ``_checkpoint``,
    ``_live`` and ``perturb()``: say in its Perturb tab why the checkpoint could not be used (offering Locate
    checkpoint… when it is missing or does not fit) and use another one."""

    def _perturb_failed(self, exc: BaseException) -> None:
        from lstmviz.errors import describe
        from lstmviz.perturb.live_model import LOCATE_HINT, CheckpointProblem

        located = isinstance(exc, CheckpointProblem)
        text = describe(exc)
        if located:  # the button beside Perturb locates it here
            text = text.replace(LOCATE_HINT, "locate it with Locate checkpoint… beside the Perturb button")
        self.perturb_box.clear_effect(f"Cannot perturb: {text}", locate=located)
        self._failed_shown()

    def _failed_shown(self) -> None:
        """After the failure is said (the image panel brings its Perturb tab to the front)."""

    def locate_checkpoint(self, path: str | None = None) -> bool:
        """Use the checkpoint file ``path`` (asked for when None) for this recording and perturb again."""
        recording = self.workspace.recording
        if recording is None:
            return False
        if path is None:
            path = ask_checkpoint(self, recording.path, self._checkpoint)
            if path is None:
                return False
        self._checkpoint = str(path)
        self._live = None
        return self.perturb()
