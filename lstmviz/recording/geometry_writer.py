"""The writer's half of position geometry (format v3): check each item's geometry, lay it out, buffer it.

``RecordingWriter`` owns one :class:`GeometryWriter`. Declarations (``set_geometry``, ``add_axis(...,
geometry=)``) collect an :class:`~lstmviz.geometry.AxisGeometry` per axis; :meth:`GeometryWriter.check_axes`
refuses a ``pooled_from`` that names no graph axis or that closes a cycle. For every item,
:meth:`GeometryWriter.check_item` checks the item geometry of every axis against the item's rows
(graph: ``num_nodes``; image: ``height * width``; set: ``len(member)``; scalar: 1) and returns what to
store, without storing anything; :meth:`GeometryWriter.store` then pushes it into the writer's buffers
(the same bounded buffers as the other datasets).

Item-local indices are stored as they are: edge ``(a, b)`` of item ``i`` means rows
``offsets[i] + a`` and ``offsets[i] + b`` of the axis. Optional datasets: ``edge_weights`` (missing
weights are 1) and ``filler`` (missing = no filler) are written once any item has them, padded for
the items without; ``coordinates`` and ``node_names`` are all-or-none, decided by the first item.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import h5py
import numpy as np

from lstmviz.geometry import AxisGeometry, GeometryError, GraphGeometry, ImageGeometry, SetGeometry
from lstmviz.recording import format as fmt

_STR = h5py.string_dtype("utf-8")
_INT32_MAX = int(np.iinfo(np.int32).max)


def check_pooling(geometries: Mapping[str, AxisGeometry]) -> None:
    """Every ``pooled_from`` names another declared graph axis, and following them never comes back."""
    for axis, geometry in geometries.items():
        source = geometry.pooled_from
        if source is None:
            continue
        if source not in geometries:
            raise GeometryError(f"axis {axis!r} is pooled from axis {source!r}, which is not declared "
                                f"(declared: {', '.join(geometries)}); add_axis({source!r}, geometry='graph') first")
        if geometries[source].kind != "graph":
            raise GeometryError(f"axis {axis!r} is pooled from axis {source!r}, a {geometries[source].kind} axis; "
                                f"pooling maps graph nodes onto coarser graph nodes, so it must be a graph axis")
        seen = [axis]
        while source is not None:
            if source in seen:
                raise GeometryError(f"the pooling of axes {' <- '.join(seen + [source])} is a cycle; a pooled axis "
                                    f"must be coarser than the axis it pools")
            seen.append(source)
            source = geometries[source].pooled_from


@dataclass
class _Pending:
    """What one item adds: arrays and per-item scalars by dataset path, and the edge count per axis."""

    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    scalars: dict[str, int] = field(default_factory=dict)
    edges: dict[str, int] = field(default_factory=dict)
    optional: dict[str, int] = field(default_factory=dict)  # path of a newly present optional dataset -> rows before


class GeometryWriter:
    """Per-axis geometry of one writer: declarations, per-item checks, buffered storage."""

    def __init__(self) -> None:
        self.geometries: dict[str, AxisGeometry] = {}
        self._edges_total: dict[str, int] = {}
        self._present: dict[str, bool] = {}  # optional dataset path -> written (None until the first item)
        self._rows_total: dict[str, int] = {}
        self._first_stored = False

    def declare(self, axis: str, geometry: AxisGeometry | str | None) -> None:
        self.geometries[axis] = AxisGeometry.of(geometry)

    # --- layout ------------------------------------------------------------------------------------

    def begin(self, writer, f: h5py.File) -> None:
        """Write the axis attributes and plan the per-item datasets (call after the axis groups exist)."""
        check_pooling(self.geometries)
        for axis, g in self.geometries.items():
            group = f[fmt.axis_path(axis)]
            group.attrs[fmt.GEOMETRY_ATTR] = g.kind
            self._rows_total[axis] = 0
            if g.kind == "graph":
                group.attrs[fmt.DIRECTED_ATTR] = np.int64(g.directed)
                group.attrs[fmt.POOLED_FROM_ATTR] = g.pooled_from or ""
                writer._plan_vector(fmt.axis_path(axis, fmt.EDGE_OFFSETS), fmt.OFFSET_DTYPE, scalar=True)
                writer._scalars[fmt.axis_path(axis, fmt.EDGE_OFFSETS)].append(0)
                writer._plan_matrix(fmt.axis_path(axis, fmt.EDGES), fmt.EDGE_DTYPE, 2)
                if g.pooled_from:
                    writer._plan_vector(fmt.axis_path(axis, fmt.POOLING_MAP), fmt.POOLING_DTYPE)
                self._edges_total[axis] = 0
            elif g.kind == "image":
                group.attrs[fmt.STRIDE_ATTR] = np.asarray(g.stride, dtype=np.int64)
                group.attrs[fmt.RECEPTIVE_FIELD_ATTR] = np.asarray(g.receptive_field, dtype=np.int64)
                group.attrs[fmt.OFFSET_ATTR] = np.asarray(g.offset, dtype=np.float64)
                writer._plan_vector(fmt.axis_path(axis, fmt.HEIGHT), fmt.SIZE_DTYPE, scalar=True)
                writer._plan_vector(fmt.axis_path(axis, fmt.WIDTH), fmt.SIZE_DTYPE, scalar=True)
            elif g.kind == "set":
                members = group.create_dataset(fmt.MEMBERS, data=np.array(g.members, dtype=object), dtype=_STR)
                members.attrs[fmt.CHECKSUM_ATTR] = np.int64(fmt.crc32_of_strings(g.members))
                writer._plan_vector(fmt.axis_path(axis, fmt.MEMBER), fmt.MEMBER_DTYPE)

    # --- per item ----------------------------------------------------------------------------------

    def check_item(self, item: int, rows: Mapping[str, int], given: Mapping[str, Any] | None) -> _Pending:
        """Check the geometry of item ``item`` (rows per axis known from its tokens and taps); store nothing."""
        given = {} if given is None else given
        if not isinstance(given, Mapping):
            raise ValueError(f"item {item}: geometry must be a dict axis name -> item geometry, got {type(given).__name__}")
        unknown = [a for a in given if a not in self.geometries]
        if unknown:
            raise ValueError(f"item {item}: geometry given for axis {unknown[0]!r}, which is not declared "
                             f"(axes: {', '.join(self.geometries)})")
        pending = _Pending()
        for axis, g in self.geometries.items():
            value = given.get(axis)
            try:
                self._check_axis(axis, g, value, rows, pending)
            except GeometryError as e:
                raise GeometryError(f"item {item}, axis {axis!r}: {e}") from None
        return pending

    def _check_axis(self, axis: str, g: AxisGeometry, value, rows: Mapping[str, int], pending: _Pending) -> None:
        n = rows[axis]
        if not g.needs_item_geometry:
            if value is not None:
                raise GeometryError(f"a {g.kind} axis has no item geometry; leave it out of geometry=")
            if g.kind == "scalar" and n != 1:
                raise GeometryError(f"a scalar axis has exactly one position per item, got {n} rows")
            return
        expected = {"graph": GraphGeometry, "image": ImageGeometry, "set": SetGeometry}[g.kind]
        if value is None:
            raise GeometryError(f"every item needs its {g.kind} geometry ({expected.__name__}) on this axis; "
                                f"pass geometry={{{axis!r}: ...}}")
        if not isinstance(value, expected):
            raise GeometryError(f"a {g.kind} axis needs a {expected.__name__}, got {type(value).__name__}")
        if g.kind == "graph":
            self._check_graph(axis, g, value, n, rows, pending)
        elif g.kind == "image":
            if value.num_positions != n:
                raise GeometryError(f"an image of {value.height} x {value.width} = {value.num_positions} positions, "
                                    f"but the item has {n} rows on this axis")
            pending.scalars[fmt.axis_path(axis, fmt.HEIGHT)] = value.height
            pending.scalars[fmt.axis_path(axis, fmt.WIDTH)] = value.width
        else:
            member = np.asarray(value.member)
            if member.ndim != 1 or member.dtype.kind not in "iu":
                raise GeometryError(f"set members must be a 1-D array of integer member ids, got {member.dtype} "
                                    f"{member.shape}")
            if len(member) != n:
                raise GeometryError(f"{len(member)} set members for {n} rows on this axis; give one per row")
            if member.min() < 0 or member.max() >= len(g.members):
                raise GeometryError(f"set member ids must be in 0 .. {len(g.members) - 1} ({', '.join(g.members)})")
            pending.arrays[fmt.axis_path(axis, fmt.MEMBER)] = member.astype(fmt.MEMBER_DTYPE)

    def _check_graph(self, axis: str, g: AxisGeometry, value: GraphGeometry, n: int, rows: Mapping[str, int],
                     pending: _Pending) -> None:
        if value.num_nodes != n:
            raise GeometryError(f"a graph of {value.num_nodes} nodes, but the item has {n} rows on this axis "
                                f"(one row per node)")
        if n > _INT32_MAX:
            raise GeometryError(f"a graph of {n} nodes is more than the format stores ({_INT32_MAX} per item)")
        edges = np.asarray(value.edges)
        if edges.size == 0:
            edges = np.zeros((0, 2), dtype=np.int64)
        if edges.ndim != 2 or edges.shape[1] != 2 or edges.dtype.kind not in "iu":
            raise GeometryError(f"edges must be an integer array [E, 2], got {edges.dtype} {edges.shape}")
        if len(edges) and (edges.min() < 0 or edges.max() >= n):
            bad = int(np.flatnonzero(((edges < 0) | (edges >= n)).any(axis=1))[0])
            raise GeometryError(f"edge {bad} ({int(edges[bad, 0])} -> {int(edges[bad, 1])}) points outside the "
                                f"graph's {n} nodes (indices 0 .. {n - 1})")
        e = len(edges)
        pending.arrays[fmt.axis_path(axis, fmt.EDGES)] = edges.astype(fmt.EDGE_DTYPE)
        pending.edges[axis] = e
        pending.scalars[fmt.axis_path(axis, fmt.EDGE_OFFSETS)] = self._edges_total[axis] + e
        if value.weights is not None:
            w = np.asarray(value.weights, dtype=np.float64).reshape(-1)
            if len(w) != e or not np.all(np.isfinite(w)):
                raise GeometryError(f"edge weights must be {e} finite numbers (one per edge), got {len(w)}")
            self._optional(fmt.axis_path(axis, fmt.EDGE_WEIGHTS), w.astype(fmt.WEIGHT_DTYPE), pending,
                           self._edges_total[axis])
        elif self._present.get(fmt.axis_path(axis, fmt.EDGE_WEIGHTS)):
            pending.arrays[fmt.axis_path(axis, fmt.EDGE_WEIGHTS)] = np.ones(e, dtype=fmt.WEIGHT_DTYPE)
        if value.filler is not None:
            fill = np.asarray(value.filler).reshape(-1)
            if len(fill) != n:
                raise GeometryError(f"the filler mask has {len(fill)} entries for {n} nodes")
            self._optional(fmt.axis_path(axis, fmt.FILLER), fill.astype(bool).astype(fmt.FILLER_DTYPE), pending,
                           self._rows_total[axis])
        elif self._present.get(fmt.axis_path(axis, fmt.FILLER)):
            pending.arrays[fmt.axis_path(axis, fmt.FILLER)] = np.zeros(n, dtype=fmt.FILLER_DTYPE)
        coords = None
        if value.coordinates is not None:
            coords = np.asarray(value.coordinates, dtype=np.float64)
            if coords.shape != (n, 2) or not np.all(np.isfinite(coords)):
                raise GeometryError(f"node coordinates must be {n} finite (x, y) pairs, got shape {coords.shape}")
            coords = coords.astype(fmt.COORDINATE_DTYPE)
        self._all_or_none(axis, fmt.COORDINATES, coords, pending, "node coordinates")
        names = None
        if value.node_names is not None:
            names = np.array([str(s) for s in value.node_names], dtype=object)
            if len(names) != n:
                raise GeometryError(f"{len(names)} node names for {n} nodes; give one name per node")
        self._all_or_none(axis, fmt.NODE_NAMES, names, pending, "node names")
        pmap = value.pooling_map
        if g.pooled_from is None:
            if pmap is not None:
                raise GeometryError("this axis is not pooled from another (pooled_from is not set), so its graphs "
                                    "have no pooling map; leave pooling_map out")
            return
        finer = rows[g.pooled_from]
        if pmap is None:
            raise GeometryError(f"this axis is pooled from axis {g.pooled_from!r}: every item needs a pooling map "
                                f"(pooling_map, one entry per node of {g.pooled_from!r})")
        pmap = np.asarray(pmap)
        if pmap.ndim != 1 or (pmap.size and pmap.dtype.kind not in "iu"):
            raise GeometryError(f"the pooling map must be a 1-D integer array, got {pmap.dtype} {pmap.shape}")
        if len(pmap) != finer:
            raise GeometryError(f"the pooling map has {len(pmap)} entries for the item's {finer} nodes on axis "
                                f"{g.pooled_from!r}; give one entry per finer node")
        if len(pmap) and (pmap.min() < -1 or pmap.max() >= n):
            raise GeometryError(f"the pooling map names nodes outside 0 .. {n - 1} (or -1 for none)")
        pending.arrays[fmt.axis_path(axis, fmt.POOLING_MAP)] = pmap.astype(fmt.POOLING_DTYPE)

    def _optional(self, path: str, data: np.ndarray, pending: _Pending, before: int) -> None:
        pending.arrays[path] = data
        if not self._present.get(path):
            pending.optional[path] = before

    def _all_or_none(self, axis: str, name: str, data: np.ndarray | None, pending: _Pending, what: str) -> None:
        path = fmt.axis_path(axis, name)
        present = self._present.get(path)
        if present is None:  # the first item decides
            if data is not None:
                pending.optional[path] = 0
                pending.arrays[path] = data
            return
        if present != (data is not None):
            had = "have" if present else "have none"
            raise GeometryError(f"{what} must be given for every item or for none; earlier items {had}, this one "
                                f"{'has none' if present else 'has them'}")
        if data is not None:
            pending.arrays[path] = data

    def store_repeated(self, writer, pending: _Pending, rows: Mapping[str, int], n: int) -> None:
        """Push the geometry of ``n`` items that all have ``pending``'s (image, scalar and set axes: a set
        item's member ids are tiled ``n`` times)."""
        members = {fmt.axis_path(axis, fmt.MEMBER) for axis, g in self.geometries.items() if g.kind == "set"}
        if pending.edges or pending.optional or any(path not in members for path in pending.arrays):
            raise ValueError("only image, scalar and set geometry can be repeated over items; append graph "
                             "items one at a time")
        self._first_stored = True
        for path, value in pending.scalars.items():
            writer._push_scalars(path, [value] * n)
        for path, member in pending.arrays.items():
            writer._push_array(path, np.tile(member, n))
        for axis in self._rows_total:
            self._rows_total[axis] += rows[axis] * n

    def store(self, writer, pending: _Pending, rows: Mapping[str, int]) -> None:
        """Push a checked item's geometry into the writer's buffers."""
        for path, before in pending.optional.items():
            self._present[path] = True
            name = path.rsplit("/", 1)[-1]
            if name == fmt.COORDINATES:
                writer._plan_matrix(path, fmt.COORDINATE_DTYPE, 2)
            elif name == fmt.NODE_NAMES:
                writer._plan_vector(path, np.dtype(_STR))
            else:
                dtype = fmt.WEIGHT_DTYPE if name == fmt.EDGE_WEIGHTS else fmt.FILLER_DTYPE
                writer._plan_vector(path, dtype)
                if before:  # items before this one had none: weight 1, no filler
                    fill = np.ones(before, dtype) if name == fmt.EDGE_WEIGHTS else np.zeros(before, dtype)
                    writer._push_array(path, fill)
        if not self._first_stored:  # the first item decided which all-or-none datasets exist
            self._first_stored = True
            for axis, g in self.geometries.items():
                if g.kind == "graph":
                    for name in (fmt.COORDINATES, fmt.NODE_NAMES):
                        self._present.setdefault(fmt.axis_path(axis, name), False)
        for path, data in pending.arrays.items():
            writer._push_array(path, data)
        for path, value in pending.scalars.items():
            writer._push_scalar(path, value)
        for axis, e in pending.edges.items():
            self._edges_total[axis] += e
        for axis in self._rows_total:
            self._rows_total[axis] += rows[axis]
