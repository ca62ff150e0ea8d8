"""The chain of format versions: the upgrade steps, which versions can be read, the read-time overlay.

``MIGRATIONS`` maps a version ``v`` to a function that upgrades an open, writable ``h5py.File``
in place from ``v`` to ``v + 1`` (and sets the ``format_version`` attribute to ``v + 1``). Chained,
they bring any supported file to ``FORMAT_VERSION``. ``for_reading(f)`` is the read-time hook used
by ``open_recording``: it upgrades an *overlay* -- a small temporary HDF5 file holding the attributes
and small datasets, with the large datasets mapped onto the original by HDF5 virtual datasets -- so
old files open without being modified and without copying their tap data.

This module sits below the reader, validation and ``migrations.migrate`` (which upgrades a file on
disk and needs the reader to check the result): it imports none of them.

Versions: 1 -> 2 adds the group ``/checkpoints`` (empty for a v1 file: it holds the states of one
model); 2 -> 3 adds position geometry, ``geometry = "tokens"`` on every axis. How to add a version is in docs/format.md, "Versioning and migrations".
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Callable

import h5py
import numpy as np

from lstmviz.recording import format as fmt
from lstmviz.recording.format import RecordingError

Upgrade = Callable[[h5py.File], None]


def _v1_to_v2(f: h5py.File) -> None:
    """v1 -> v2: an empty ``/checkpoints`` group (a v1 file holds the states of one model).

    Metadata only, so it works on the read-time overlay without copying tap data.
    """
    group = f.require_group(fmt.CHECKPOINTS)
    group.attrs.create(fmt.ORDER_ATTR, np.array([], dtype=object), dtype=h5py.string_dtype("utf-8"))
    group.attrs[fmt.MAIN_ATTR] = ""
    f.attrs[fmt.VERSION_ATTR] = np.int64(2)


def _v2_to_v3(f: h5py.File) -> None:
    """v2 -> v3: every axis gets the position geometry ``"tokens"`` (what every v1/v2 position is).

    Metadata only (works on the read-time overlay). The text-attribute checksum, when the file has
    one, continues over the new attributes: they come last in ``fmt.text_attributes``, so the result
    is what a v3 writer computes, and a v2 file whose text was damaged stays refused.
    """
    axes = f[fmt.AXES]
    names = sorted(axes)
    crc_raw = f.attrs.get(fmt.TEXT_CHECKSUM_ATTR)
    for axis in names:
        axes[axis].attrs[fmt.GEOMETRY_ATTR] = "tokens"
    if crc_raw is not None and np.ndim(crc_raw) == 0 and np.asarray(crc_raw).dtype.kind in "iu":
        crc = int(crc_raw) & 0xFFFFFFFF
        for axis in names:
            crc = fmt.crc32_of_strings([f"/{fmt.AXES}/{axis}", fmt.GEOMETRY_ATTR, "tokens"], crc)
        f.attrs[fmt.TEXT_CHECKSUM_ATTR] = np.int64(crc)
    f.attrs[fmt.VERSION_ATTR] = np.int64(3)


MIGRATIONS: dict[int, Upgrade] = {1: _v1_to_v2, 2: _v2_to_v3}
"""version v -> in-place upgrade of a writable file from v to v + 1."""

OLDEST_VERSION = 1
"""The oldest version that ever existed; files claiming an older one are unknown."""

_OVERLAY_COPY_BYTES = 1 << 20  # datasets up to this size are copied into the overlay, bigger ones mapped


def readable_versions() -> str:
    """The versions this lstmviz can open, for messages: ``"version 1"`` or ``"versions 1 to 3"``."""
    current = fmt.FORMAT_VERSION
    oldest = current
    while oldest - 1 >= OLDEST_VERSION and (oldest - 1) in MIGRATIONS:
        oldest -= 1
    return f"version {current}" if oldest == current else f"versions {oldest} to {current}"


def can_upgrade(version: int) -> bool:
    """Whether a file of ``version`` can be read: it is current, or a chain of upgrades leads there."""
    return OLDEST_VERSION <= version <= fmt.FORMAT_VERSION and all(
        v in MIGRATIONS for v in range(version, fmt.FORMAT_VERSION))


def upgrade_open_file(f: h5py.File, path: str | Path | None = None) -> int:
    """Apply the upgrades from the file's version to ``FORMAT_VERSION`` in place; returns the new version."""
    where = path if path is not None else f.filename
    version = int(f.attrs[fmt.VERSION_ATTR])
    if not can_upgrade(version):
        raise RecordingError(where, f"cannot upgrade format version {version} (this lstmviz reads {readable_versions()})")
    while version < fmt.FORMAT_VERSION:
        MIGRATIONS[version](f)
        new = int(f.attrs[fmt.VERSION_ATTR])
        if new != version + 1:
            raise RuntimeError(f"the upgrade from format version {version} left format_version = {new}, expected {version + 1}")
        version = new
    return version


def for_reading(f: h5py.File, path: str | Path) -> h5py.File:
    """The read-time hook: ``f`` itself if current, else a read-only, upgraded overlay of it.

    The overlay is a small temporary HDF5 file (attributes and small datasets copied, large ones
    mapped onto ``f``'s file by virtual datasets), upgraded, reopened read-only and unlinked at once.
    It is a real file, not an in-memory one, because HDF5 opens the sources of virtual datasets
    with the driver and intent of the file holding them: an in-memory driver would load the whole
    original into memory, and a writable intent would try to lock it exclusively.
    """
    version = int(f.attrs[fmt.VERSION_ATTR])
    if version == fmt.FORMAT_VERSION:
        return f
    fd, name = tempfile.mkstemp(prefix="lstmviz-upgrade-", suffix=".h5")
    os.close(fd)
    try:
        with h5py.File(name, "w", libver=fmt.LIBVER) as overlay:
            _fill_overlay(f, overlay)
            upgrade_open_file(overlay, path)
        return h5py.File(name, "r")
    except RecordingError:
        raise
    except Exception as e:
        raise RecordingError(path, f"upgrading this format version {version} file for reading failed "
                                   f"({type(e).__name__}: {e}); please report this") from None
    finally:
        with contextlib.suppress(OSError):  # an open file stays readable after unlink on POSIX
            os.remove(name)


def _fill_overlay(src: h5py.File, dst: h5py.File) -> None:
    """Copy ``src`` into ``dst``, its large numeric datasets as virtual views of ``src``'s file.

    Walks links, not objects: an object reachable by several hard links (since v2 the main
    checkpoint's states are hard links to ``/taps``) is made once and linked again under its other
    names, as in the original. Soft and external links are copied as links.
    """
    source_name = os.path.abspath(src.filename)
    dst.attrs.update(src.attrs)
    made: dict[int, str] = {}  # address of an object in src -> its first path in dst

    def visit(name: str, link) -> None:
        if not isinstance(link, h5py.HardLink):
            dst[name] = link  # SoftLink / ExternalLink, kept as they are
            return
        obj = src[name]
        address = h5py.h5o.get_info(obj.id).addr
        if address in made:
            dst[name] = dst[made[address]]  # another hard link to the same object
            return
        made[address] = name
        if isinstance(obj, h5py.Group):
            dst.require_group(name).attrs.update(obj.attrs)
            return
        if not isinstance(obj, h5py.Dataset):
            return
        small = obj.shape == () or obj.size * obj.dtype.itemsize <= _OVERLAY_COPY_BYTES
        if small or h5py.check_string_dtype(obj.dtype) is not None or obj.dtype.kind not in "biuf":
            src.copy(obj, dst, name=name)
            return
        layout = h5py.VirtualLayout(shape=obj.shape, dtype=obj.dtype, maxshape=obj.maxshape)
        layout[...] = h5py.VirtualSource(source_name, name, shape=obj.shape)
        ds = dst.create_virtual_dataset(name, layout)
        ds.attrs.update(obj.attrs)

    def walk(group: h5py.Group, prefix: str) -> None:  # (h5py's visititems_links needs h5py >= 3.11)
        for key in group:
            name = f"{prefix}{key}"
            link = group.get(key, getlink=True)
            first = isinstance(link, h5py.HardLink) and h5py.h5o.get_info(group[key].id).addr not in made
            visit(name, link)
            if first and isinstance(group[key], h5py.Group):
                walk(group[key], f"{name}/")

    walk(src, "")
