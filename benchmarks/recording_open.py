"""Open time of graph recordings (format v3) and what open reads, plus the cost of the global-heap check.

Writes, in a temporary directory:

* ``graphs.h5``: ``--graphs`` graphs (default 10,000) of ``--nodes`` nodes (default 100) and about 3 edges
  per node, with coordinates, a pooled level (half the nodes, pooling maps, filler) and a scalar axis,
  taps of ``--units`` units (default 64) on the node and pooled axes;
* ``big.h5``: a sequence recording with ``--big-mb`` MB (default 400) of tap values, to time the global
  heap check (docs/format.md, "Reading and validation") on a file whose bulk is tap values.

Then prints the write time, the file sizes, the median of 5 opens (``open_recording`` + ``close``), and,
for the graph file, the time of one ``item_geometry`` and of ``graph_edges``. Measured numbers only;
nothing is asserted. docs/format.md quotes a run of

    python benchmarks/recording_open.py
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def _timed(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def write_graphs(path: Path, graphs: int, nodes: int, units: int) -> None:
    from lstmviz.geometry import AxisGeometry, GraphGeometry
    from lstmviz.recording import RecordingWriter

    rng = np.random.default_rng(0)
    coarse = nodes // 2
    pooling = np.arange(nodes) // 2
    with RecordingWriter(path, provenance={"benchmark": "recording_open"}, dtype="float16") as w:
        w.set_geometry("positions", "graph")
        w.add_axis("level1", geometry=AxisGeometry("graph", pooled_from="positions"))
        w.add_axis("graph", geometry="scalar")
        w.add_tap("conv1", units)
        w.add_tap("pool1", units, axis="level1")
        w.add_tap("readout", 2, axis="graph")
        h = rng.standard_normal((nodes, units)).astype(np.float32)
        p = h[:coarse]
        for _ in range(graphs):
            edges = rng.integers(0, nodes, (3 * nodes, 2))
            g = GraphGeometry(nodes, edges, coordinates=rng.standard_normal((nodes, 2)).astype(np.float32))
            c = GraphGeometry(coarse, edges[:coarse] // 2, filler=np.zeros(coarse, bool), pooling_map=pooling)
            w.append_item(np.zeros(nodes, np.int64), {"conv1": h, "pool1": p, "readout": h[:1, :2]},
                          geometry={"positions": g, "level1": c})


def write_big(path: Path, megabytes: int) -> None:
    from lstmviz.recording import RecordingWriter

    units, length = 256, 500
    items = max(1, megabytes * 1_000_000 // (units * 4 * length))
    block = np.random.default_rng(0).standard_normal((length, units)).astype(np.float32)
    with RecordingWriter(path, vocab=[f"w{i}" for i in range(1000)]) as w:
        w.add_tap("h", units)
        for _ in range(items):
            w.append_item(np.arange(length) % 1000, {"h": block})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--graphs", type=int, default=10_000)
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--units", type=int, default=64)
    ap.add_argument("--big-mb", type=int, default=400)
    args = ap.parse_args(argv)

    from lstmviz.recording import heap_checks, open_recording

    with tempfile.TemporaryDirectory() as tmp:
        graphs = Path(tmp) / "graphs.h5"
        t = time.perf_counter()
        write_graphs(graphs, args.graphs, args.nodes, args.units)
        print(f"graphs.h5: {args.graphs:,} graphs x {args.nodes} nodes, {3 * args.nodes} edges each, "
              f"{args.units} units; written in {time.perf_counter() - t:.1f} s, {graphs.stat().st_size / 1e6:.1f} MB")
        print(f"  open + close (median of 5): {1000 * _timed(lambda: open_recording(graphs).close()):.1f} ms")
        with open_recording(graphs) as rec:
            print(f"  item_geometry(i) (median of 5): {1000 * _timed(lambda: rec.item_geometry(4321)):.2f} ms, "
                  f"pooled level: {1000 * _timed(lambda: rec.item_geometry(4321, 'level1')):.2f} ms")
            print(f"  graph_edges() of {int(rec.edge_offsets()[-1]):,} edges (median of 5): "
                  f"{1000 * _timed(rec.graph_edges):.1f} ms")
        big = Path(tmp) / "big.h5"
        t = time.perf_counter()
        write_big(big, args.big_mb)
        print(f"big.h5: {big.stat().st_size / 1e6:.0f} MB of sequences; written in {time.perf_counter() - t:.1f} s")
        print(f"  open + close (median of 5): {1000 * _timed(lambda: open_recording(big).close()):.1f} ms")
        import h5py

        with h5py.File(big, "r") as f:
            print(f"  of which the global heap check (median of 5): "
                  f"{1000 * _timed(lambda: heap_checks.check_global_heaps(f, big)):.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
