"""Image recording: every tap of the 4-layer cnn over 10,000 digits, against its plain forward.

The 1,078 training digits are sampled with replacement to --images (each draw shifted by -1, 0 or +1
pixels in y and x, zero fill, so the 10,000 images are not 9 copies of one set), held as an in-memory
``ArrayImageDataset``. In the same run it times (median of --repeats):

- ``forward``: ``model(images)`` over the same images in chunks of --chunk, eval mode, no autograd, no hooks;
- ``record``: ``record_images`` of every tap (conv0..conv3, pooled, logits, plus the input image) into a
  v3 file in a temporary folder, --dtype storage, same chunks (each batch written on the recorder's
  writer thread while the next one runs through the model);
- ``record inline``: the same with ``background_writes=False`` (each batch written before the next forward);

and prints both, the ratio record / forward and the goal (<= 2x). Torch runs on one thread (--threads) so
both sides get the same CPU; the machine is shared, so only the ratio is meaningful.

    python benchmarks/vision.py                   # 10,000 images, float16
    python benchmarks/vision.py --dtype float32
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lstmviz.datasets.images.common import ArrayImageDataset
from lstmviz.datasets.images.digits import build_digits
from lstmviz.engines.vision.cnn import build
from lstmviz.recording.image_recorder import record_images


def augmented(n: int, seed: int) -> ArrayImageDataset:
    base = build_digits("train")
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(base), n)
    images = np.zeros((n, 1, 8, 8), np.float32)
    src = base.images[pick]
    dy, dx = rng.integers(-1, 2, n), rng.integers(-1, 2, n)
    for sy in (-1, 0, 1):  # 9 shift groups, each one vectorised slice
        for sx in (-1, 0, 1):
            m = (dy == sy) & (dx == sx)
            ys, yd = (slice(0, 8 - sy), slice(sy, 8)) if sy >= 0 else (slice(-sy, 8), slice(0, 8 + sy))
            xs, xd = (slice(0, 8 - sx), slice(sx, 8)) if sx >= 0 else (slice(-sx, 8), slice(0, 8 + sx))
            images[m, :, yd, xd] = src[m][:, :, ys, xs]
    flat = images.reshape(n, 64)
    position = {k: v[pick] for k, v in base.position.items()}
    position["stroke"] = (flat > 0.25).astype(np.int64)
    return ArrayImageDataset(name="digits-augmented", split="train", images=images, targets=base.targets[pick],
                             tokens=np.searchsorted(np.array([0.5, 4.5, 8.5, 12.5]) / 16, flat, side="right"),
                             vocab=base.vocab, class_names=base.class_names, annotation_specs=base.annotation_specs,
                             position=position, item={"class": base.targets[pick]},
                             options={"images": n, "seed": seed}, source="benchmarks/vision.py")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=10_000)
    ap.add_argument("--chunk", type=int, default=256)
    ap.add_argument("--dtype", default="float16", choices=("float16", "float32"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = augmented(args.images, 0)
    torch.manual_seed(0)
    model = build(1, 8, 8, 10, num_layers=4).eval()
    x = torch.from_numpy(data.images.copy())

    def forward() -> None:
        with torch.no_grad():
            for s in range(0, len(x), args.chunk):
                model(x[s:s + args.chunk])

    with tempfile.TemporaryDirectory() as tmp:
        def record() -> None:
            record_images(model, data, Path(tmp) / "bench.h5", dtype=args.dtype, chunk=args.chunk)

        def record_inline() -> None:
            record_images(model, data, Path(tmp) / "bench.h5", dtype=args.dtype, chunk=args.chunk,
                          background_writes=False)

        forward()  # warm-up
        times = {"forward": [], "record": [], "record inline": []}
        for _ in range(args.repeats):  # interleaved, so machine load hits all alike
            for name, fn in (("forward", forward), ("record", record), ("record inline", record_inline)):
                t = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t)
        size = (Path(tmp) / "bench.h5").stat().st_size
    f, r = statistics.median(times["forward"]), statistics.median(times["record"])
    i = statistics.median(times["record inline"])
    print(f"{args.images:,} digits 1x8x8, cnn 4 layers (16/32/64/64 channels), chunks of {args.chunk}, "
          f"{args.threads} thread(s), {args.dtype} storage; file {size / 1e6:.1f} MB")
    print(f"forward  {f * 1e3:8.1f} ms   ({args.images / f:,.0f} images/s)")
    print(f"record   {r * 1e3:8.1f} ms   ({args.images / r:,.0f} images/s)")
    print(f"inline   {i * 1e3:8.1f} ms   ({args.images / i:,.0f} images/s; writes not overlapped)")
    print(f"ratio    {r / f:8.2f}x   goal <= 2x: {'met' if r / f <= 2 else 'NOT met'}   (inline {i / f:.2f}x)")


if __name__ == "__main__":
    main()
