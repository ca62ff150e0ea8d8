"""Check the position geometry of a recording on open (format v3, ``docs/format.md`` "Position geometry").

Called by ``validation.read_header`` once the item offsets of every axis are known. Shapes, dtypes and
attributes are checked first; then the geometry datasets are scanned in blocks (never held whole):
every edge inside its item's nodes, ``edge_offsets`` non-decreasing and ending at ``len(edges)``,
pooling-map entries in ``-1 .. nodes of the item on the pooled axis - 1``, coordinates and edge weights
finite, set member ids in range, image ``height * width`` equal to the item's rows, one row per item
on a scalar axis. ``pooled_from`` must name another graph axis, without a cycle. Each scanned
dataset's CRC-32 is appended to ``crcs`` for the caller to compare with its ``crc32`` attribute.

What is kept (:class:`AxisLayout`): the axis geometry, the edge offsets of graph axes and the image
sizes (``I + 1`` and ``2 I`` integers); edges, weights, coordinates, names, filler and pooling maps are
read again only when asked for (``Recording.item_geometry``, ``graph_edges``, ``filler``).
Every problem is a ``RecordingError`` naming the file and the problem.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from lstmviz.geometry import KINDS, AxisGeometry, GeometryError
from lstmviz.recording import format as fmt
from lstmviz.recording.format import RecordingError

_SCAN_BLOCK = 1 << 18  # rows per block of a scan (edges: 2 MiB of int32 pairs)


@dataclass(frozen=True)
class AxisLayout:
    """What open keeps of one axis's geometry."""

    geometry: AxisGeometry
    edge_offsets: np.ndarray | None = None  # graph: int64 [I + 1]
    heights: np.ndarray | None = None  # image: int64 [I]
    widths: np.ndarray | None = None
    optional: frozenset[str] = frozenset()  # graph: which optional datasets the axis has


def check_geometry(f: h5py.File, path: str | Path, offsets: dict[str, np.ndarray], crcs: list) -> dict[str, AxisLayout]:
    """The checked geometry of every axis (``offsets``: axis -> checked item offsets, main axis first)."""
    geometries = {axis: _axis_geometry(f, path, axis) for axis in offsets}
    _check_pooling(path, geometries)
    out: dict[str, AxisLayout] = {}
    for axis, g in geometries.items():
        o = offsets[axis]
        if g.kind == "graph":
            out[axis] = _graph(f, path, axis, g, o, offsets, crcs)
        elif g.kind == "image":
            out[axis] = _image(f, path, axis, g, o, crcs)
        elif g.kind == "set":
            _set(f, path, axis, g, o, crcs)
            out[axis] = AxisLayout(g)
        else:
            if g.kind == "scalar" and len(o) > 1 and (np.diff(o) != 1).any():
                i = int(np.argmax(np.diff(o) != 1))
                raise RecordingError(path, f"axis {axis!r} is a scalar axis (one position per item) but item {i} "
                                           f"has {int(o[i + 1] - o[i])} rows on it")
            out[axis] = AxisLayout(g)
    return out


def _axis_geometry(f: h5py.File, path, axis: str) -> AxisGeometry:
    attrs = f[fmt.axis_path(axis)].attrs
    kind = _text(attrs.get(fmt.GEOMETRY_ATTR))
    where = f"axis {axis!r}"
    if kind is None:
        raise RecordingError(path, f"{where} has no {fmt.GEOMETRY_ATTR!r} attribute (the kind of its positions); "
                                   f"the file is damaged or not written by lstmviz")
    if kind not in KINDS:
        raise RecordingError(path, f"{where} has the position geometry {kind!r}; expected one of {', '.join(KINDS)}")
    try:
        if kind == "graph":
            directed = attrs.get(fmt.DIRECTED_ATTR)
            pooled = _text(attrs.get(fmt.POOLED_FROM_ATTR))
            if directed is None or np.ndim(directed) != 0 or np.asarray(directed).dtype.kind not in "iub" \
                    or int(directed) not in (0, 1):
                raise RecordingError(path, f"graph {where} needs an integer {fmt.DIRECTED_ATTR!r} attribute "
                                           f"(0 or 1), got {directed!r}")
            if pooled is None:
                raise RecordingError(path, f"graph {where} has no {fmt.POOLED_FROM_ATTR!r} attribute (\"\" when it "
                                           f"is not pooled); the file is damaged")
            return AxisGeometry("graph", directed=bool(int(directed)), pooled_from=pooled or None)
        if kind == "image":
            values = {}
            for name, dtype_kind in ((fmt.STRIDE_ATTR, "iu"), (fmt.RECEPTIVE_FIELD_ATTR, "iu"), (fmt.OFFSET_ATTR, "iuf")):
                raw = attrs.get(name)
                if raw is None or np.shape(raw) != (2,) or np.asarray(raw).dtype.kind not in dtype_kind:
                    raise RecordingError(path, f"image {where} needs a {name!r} attribute of two numbers (y, x), "
                                               f"got {raw!r}")
                values[name] = tuple(np.asarray(raw).tolist())
            return AxisGeometry("image", stride=values[fmt.STRIDE_ATTR],
                                receptive_field=values[fmt.RECEPTIVE_FIELD_ATTR], offset=values[fmt.OFFSET_ATTR])
        if kind == "set":
            ds = _dataset(f, path, fmt.axis_path(axis, fmt.MEMBERS), f"the member names of set {where}")
            if ds.ndim != 1 or h5py.check_string_dtype(ds.dtype) is None or ds.shape[0] > fmt.MAX_VOCAB:
                raise RecordingError(path, f"the member names of set {where} must be a 1-D string dataset "
                                           f"(at most {fmt.MAX_VOCAB:,}), got shape {ds.shape} dtype {ds.dtype}")
            return AxisGeometry("set", members=tuple(str(s) for s in ds.asstr()[()]))
        return AxisGeometry(kind)
    except GeometryError as e:
        raise RecordingError(path, f"{where}: {e}") from None


def _check_pooling(path, geometries: dict[str, AxisGeometry]) -> None:
    for axis, g in geometries.items():
        source, seen = g.pooled_from, [axis]
        while source is not None:
            if source not in geometries:
                raise RecordingError(path, f"axis {seen[-1]!r} is pooled from axis {source!r}, which the file does "
                                           f"not define (axes: {', '.join(geometries)})")
            if geometries[source].kind != "graph":
                raise RecordingError(path, f"axis {seen[-1]!r} is pooled from axis {source!r}, a "
                                           f"{geometries[source].kind} axis; only graph axes are pooled")
            if source in seen:
                raise RecordingError(path, f"the pooling of axes {' <- '.join(seen + [source])} is a cycle")
            seen.append(source)
            source = geometries[source].pooled_from


def _graph(f: h5py.File, path, axis: str, g: AxisGeometry, o: np.ndarray, offsets: dict[str, np.ndarray],
           crcs: list) -> AxisLayout:
    where = f"graph axis {axis!r}"
    n_items, rows = len(o) - 1, int(o[-1])
    eo_ds = _dataset(f, path, fmt.axis_path(axis, fmt.EDGE_OFFSETS), f"the edge offsets of {where}")
    if eo_ds.ndim != 1 or eo_ds.dtype.kind not in "iu" or eo_ds.shape[0] != n_items + 1:
        raise RecordingError(path, f"the edge offsets of {where} must be 1-D integers, one more than the "
                                   f"{n_items} items, got shape {eo_ds.shape} dtype {eo_ds.dtype}")
    stored = eo_ds[()]
    crcs.append((eo_ds, fmt.crc32_of_array(stored), f"the edge offsets of {where}"))
    eo = stored.astype(np.int64)
    edges = _dataset(f, path, fmt.axis_path(axis, fmt.EDGES), f"the edges of {where}")
    if edges.ndim != 2 or edges.shape[1] != 2 or edges.dtype.kind not in "iu":
        raise RecordingError(path, f"the edges of {where} must be integer pairs [E, 2], got shape {edges.shape} "
                                   f"dtype {edges.dtype}")
    if eo[0] != 0 or (np.diff(eo) < 0).any() or eo[-1] != edges.shape[0]:
        bad = "do not start at 0" if eo[0] != 0 else ("decrease" if (np.diff(eo) < 0).any()
                                                      else f"end at {int(eo[-1])}, not at the {edges.shape[0]} edges")
        raise RecordingError(path, f"the edge offsets of {where} {bad}; they must run from 0, never decreasing, "
                                   f"to the number of edges")
    nodes = np.diff(o)
    crc = 0
    for start in range(0, edges.shape[0], _SCAN_BLOCK):
        block = edges[start:start + _SCAN_BLOCK]
        crc = fmt.crc32_of_array(block, crc)
        item = np.searchsorted(eo, np.arange(start, start + len(block)), side="right") - 1
        bad = ((block < 0) | (block >= nodes[item][:, None])).any(axis=1)
        if bad.any():
            k = int(np.argmax(bad))
            i = int(item[k])
            raise RecordingError(path, f"edge {start + k} ({int(block[k, 0])} -> {int(block[k, 1])}) of item {i} on "
                                       f"{where} points outside the item's {int(nodes[i])} nodes; the file is damaged")
    crcs.append((edges, crc, f"the edges of {where}"))
    optional = set()
    group = f[fmt.axis_path(axis)]
    if fmt.EDGE_WEIGHTS in group:
        _scan_float(f, path, fmt.axis_path(axis, fmt.EDGE_WEIGHTS), (edges.shape[0],), f"the edge weights of {where}", crcs)
        optional.add(fmt.EDGE_WEIGHTS)
    if fmt.COORDINATES in group:
        _scan_float(f, path, fmt.axis_path(axis, fmt.COORDINATES), (rows, 2), f"the node coordinates of {where}", crcs)
        optional.add(fmt.COORDINATES)
    if fmt.FILLER in group:
        ds = _dataset(f, path, fmt.axis_path(axis, fmt.FILLER), f"the filler mask of {where}")
        if ds.shape != (rows,) or ds.dtype.kind not in "iub":
            raise RecordingError(path, f"the filler mask of {where} must be {rows} integers (0/1, one per node), got "
                                       f"shape {ds.shape} dtype {ds.dtype}")
        crcs.append((ds, _crc_blocks(ds), f"the filler mask of {where}"))
        optional.add(fmt.FILLER)
    if fmt.NODE_NAMES in group:
        ds = _dataset(f, path, fmt.axis_path(axis, fmt.NODE_NAMES), f"the node names of {where}")
        if ds.shape != (rows,) or h5py.check_string_dtype(ds.dtype) is None:
            raise RecordingError(path, f"the node names of {where} must be {rows} strings (one per node), got shape "
                                       f"{ds.shape} dtype {ds.dtype}")
        crc = 0
        for start in range(0, rows, _SCAN_BLOCK):
            crc = fmt.crc32_of_strings((str(s) for s in ds.asstr()[start:start + _SCAN_BLOCK]), crc)
        crcs.append((ds, crc, f"the node names of {where}"))
        optional.add(fmt.NODE_NAMES)
    if g.pooled_from is not None:
        _pooling_map(f, path, axis, g.pooled_from, o, offsets[g.pooled_from], crcs)
    elif fmt.POOLING_MAP in group:
        raise RecordingError(path, f"{where} has a pooling map but is not pooled from another axis "
                                   f"({fmt.POOLED_FROM_ATTR!r} is empty)")
    eo.flags.writeable = False
    return AxisLayout(g, edge_offsets=eo, optional=frozenset(optional))


def _pooling_map(f: h5py.File, path, axis: str, finer: str, o: np.ndarray, finer_o: np.ndarray, crcs: list) -> None:
    what = f"the pooling map of graph axis {axis!r} (from {finer!r})"
    ds = _dataset(f, path, fmt.axis_path(axis, fmt.POOLING_MAP), what)
    finer_rows = int(finer_o[-1])
    if ds.shape != (finer_rows,) or ds.dtype.kind not in "iu":
        raise RecordingError(path, f"{what} must be {finer_rows} integers (one per row of {finer!r}), got shape "
                                   f"{ds.shape} dtype {ds.dtype}")
    coarse = np.diff(o)
    crc = 0
    for start in range(0, finer_rows, _SCAN_BLOCK):
        block = ds[start:start + _SCAN_BLOCK]
        crc = fmt.crc32_of_array(block, crc)
        item = np.searchsorted(finer_o, np.arange(start, start + len(block)), side="right") - 1
        bad = (block < -1) | (block >= coarse[item])
        if bad.any():
            k = int(np.argmax(bad))
            i = int(item[k])
            raise RecordingError(path, f"{what} maps row {start + k} (item {i}) to node {int(block[k])}, outside the "
                                       f"item's nodes 0 .. {int(coarse[i]) - 1} on {axis!r} (or -1 for none)")
    crcs.append((ds, crc, what))


def _image(f: h5py.File, path, axis: str, g: AxisGeometry, o: np.ndarray, crcs: list) -> AxisLayout:
    n_items = len(o) - 1
    sizes = []
    for name in (fmt.HEIGHT, fmt.WIDTH):
        what = f"the {name}s of image axis {axis!r}"
        ds = _dataset(f, path, fmt.axis_path(axis, name), what)
        if ds.shape != (n_items,) or ds.dtype.kind not in "iu":
            raise RecordingError(path, f"{what} must be {n_items} integers (one per item), got shape {ds.shape} "
                                       f"dtype {ds.dtype}")
        stored = ds[()]
        crcs.append((ds, fmt.crc32_of_array(stored), what))
        values = stored.astype(np.int64)
        values.flags.writeable = False
        sizes.append(values)
    h, w = sizes
    bad = (h < 1) | (w < 1) | (h * w != np.diff(o))
    if bad.any():
        i = int(np.argmax(bad))
        raise RecordingError(path, f"item {i} on image axis {axis!r} is {int(h[i])} x {int(w[i])} positions but has "
                                   f"{int(o[i + 1] - o[i])} rows; height * width must equal the rows")
    return AxisLayout(g, heights=h, widths=w)


def _set(f: h5py.File, path, axis: str, g: AxisGeometry, o: np.ndarray, crcs: list) -> None:
    members = f[fmt.axis_path(axis, fmt.MEMBERS)]
    crcs.append((members, fmt.crc32_of_strings(g.members), f"the member names of set axis {axis!r}"))
    what = f"the members of set axis {axis!r}"
    ds = _dataset(f, path, fmt.axis_path(axis, fmt.MEMBER), what)
    rows = int(o[-1])
    if ds.shape != (rows,) or ds.dtype.kind not in "iu":
        raise RecordingError(path, f"{what} must be {rows} integers (one per row), got shape {ds.shape} dtype {ds.dtype}")
    crc = 0
    for start in range(0, rows, _SCAN_BLOCK):
        block = ds[start:start + _SCAN_BLOCK]
        crc = fmt.crc32_of_array(block, crc)
        bad = (block < 0) | (block >= len(g.members))
        if bad.any():
            k = int(np.argmax(bad))
            raise RecordingError(path, f"{what}: row {start + k} names member {int(block[k])}, outside 0 .. "
                                       f"{len(g.members) - 1} ({len(g.members)} members)")
    crcs.append((ds, crc, what))


def _scan_float(f: h5py.File, path, name: str, shape: tuple, what: str, crcs: list) -> None:
    ds = _dataset(f, path, name, what)
    if ds.shape != shape or ds.dtype.kind != "f":
        raise RecordingError(path, f"{what} must be floats of shape {shape}, got shape {ds.shape} dtype {ds.dtype}")
    crc = 0
    for start in range(0, shape[0], _SCAN_BLOCK):
        block = ds[start:start + _SCAN_BLOCK]
        crc = fmt.crc32_of_array(block, crc)
        if not np.isfinite(block).all():
            k = int(np.argmax(~np.isfinite(block).reshape(len(block), -1).all(axis=1)))
            raise RecordingError(path, f"{what} must be finite numbers; row {start + k} is not")
    crcs.append((ds, crc, what))


def _crc_blocks(ds: h5py.Dataset) -> int:
    crc = 0
    for start in range(0, ds.shape[0], _SCAN_BLOCK):
        crc = fmt.crc32_of_array(ds[start:start + _SCAN_BLOCK], crc)
    return crc


def _dataset(f: h5py.File, path, name: str, what: str) -> h5py.Dataset:
    obj = f.get(name)
    if obj is None:
        raise RecordingError(path, f"missing required dataset '/{name}' ({what}); the file is damaged or not "
                                   f"written by lstmviz")
    if not isinstance(obj, h5py.Dataset):
        raise RecordingError(path, f"'/{name}' ({what}) must be a dataset, found a {type(obj).__name__}")
    return obj


def _text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray) and value.shape == ():
        return _text(value.item())
    return str(value)
