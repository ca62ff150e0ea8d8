"""Upgrade recordings written by older format versions, on disk.

``migrate(path_or_file)`` upgrades a file: a path is copied to a temporary file beside it, upgraded
there and renamed over the original only on success (never half-written); an open writable file is
upgraded in place. The upgrade steps themselves (``MIGRATIONS``), the version checks and the
read-time overlay used by ``open_recording`` live one level down, in :mod:`.upgrades`, so that the
reader and validation need nothing from this module; they are re-exported here.

How to add a version is in docs/format.md, "Versioning and migrations".
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from pathlib import Path

import h5py

from lstmviz.recording import format as fmt
from lstmviz.recording.reader import open_h5, open_recording
from lstmviz.recording.storage_checks import check_objects
from lstmviz.recording.upgrades import (
    MIGRATIONS,
    OLDEST_VERSION,
    Upgrade,
    can_upgrade,
    for_reading,
    readable_versions,
    upgrade_open_file,
)
from lstmviz.recording.validation import check_root

__all__ = ["MIGRATIONS", "OLDEST_VERSION", "Upgrade", "can_upgrade", "for_reading", "migrate", "readable_versions",
           "upgrade_open_file"]


def migrate(target: str | os.PathLike | h5py.File) -> int:
    """Upgrade a recording to ``FORMAT_VERSION`` and return the version it has now.

    A path is upgraded through a temporary copy that replaces the file only on success. An open
    ``h5py.File`` must be writable and is upgraded in place.
    """
    if isinstance(target, h5py.File):
        if target.mode != "r+":
            raise ValueError(f"migrate: {target.filename!r} is open read-only; open it with mode 'r+' or pass its path")
        check_root(target, target.filename)
        return upgrade_open_file(target)

    path = Path(target)
    with open_h5(path) as f:
        version = check_root(f, path)
        check_objects(f, path)  # never copy a file that refers to other files
    if version == fmt.FORMAT_VERSION:
        open_recording(path).close()  # validates, and says in words what is wrong
        return version
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.migrate.tmp.h5")
    try:
        shutil.copyfile(path, temp)
        with h5py.File(temp, "r+") as f:
            version = upgrade_open_file(f, path)
        open_recording(temp).close()  # the upgraded file must be a valid current recording
        with open(temp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temp)
        raise
    return version
