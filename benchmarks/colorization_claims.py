"""colorization-codec's claims on colour digits (Baig & Torresani 2017), one thread, about 2 minutes.

1. Muddy average: a one-branch L2 regressor (K = 1) cannot tell the two equal-luminance colours of a class
   apart and predicts their colourless mean; K = 2 and K = 4 best-of-K models with 1 branch index per image, or
   per 4x4 region, recover the colours.
2. Rate-distortion on the test split: chroma PSNR (Cb, Cr on [0, 1], peak 1 = JPEG's 8-bit peak 255) against
   chroma bytes per image for
   - the codec: side information = R * ceil(log2 K) bits per image (fixed-length codes, no entropy coding),
     run on the *JPEG-compressed* luminance the decoder would have (a grey JPEG of the test mosaic at quality
     --y-quality), the indices chosen on that same decoded Y;
   - Pillow JPEG: the test images tiled into one 288 x 320 mosaic (so the 16x16 images share one header),
     saved as RGB JPEG at several qualities (4:2:0 and 4:4:4); chroma bytes = (RGB JPEG size - grey JPEG
     size of the mosaic's Y at the same quality) / images; chroma from the decoded RGB with JPEG's formulas;
   - plain chroma subsampling: f x f box means of Cb, Cr as 8-bit samples, nearest upsampling;
     bytes = 2 (16/f)^2 per image (raw samples).
3. Collapse check: the share of regions each branch wins, on the training set (last 100 steps) and test.

Usage: python benchmarks/colorization_claims.py [--steps 800] [--y-quality 90] [--seed 0] [--photos]

--photos: the optional real-photo variant (china patches for training, a flower crop for testing) instead.
"""

from __future__ import annotations

import argparse
import io
import time

import numpy as np
import torch

from lstmviz.datasets.images.colour_digits import chroma_split, rgb_to_ycbcr
from lstmviz.engines.vision.colorization_codec import best_of_k_loss, build


def psnr(pred: np.ndarray, target: np.ndarray) -> float:
    mse = float(np.mean((np.asarray(pred, np.float64) - np.asarray(target, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def train(K: int, data: dict, steps: int, seed: int, batch: int = 32, lr: float = 0.005, **config):
    torch.manual_seed(seed)
    model = build(1, *data["images"].shape[2:], 2, K=K, **config)
    x, c = torch.from_numpy(data["images"]), torch.from_numpy(data["target_maps"])
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    wins = torch.zeros(K)
    model.train()
    for step in range(steps):
        idx = torch.randint(0, len(x), (batch,), generator=gen)
        loss, winners = best_of_k_loss(model.hypotheses(x[idx]), c[idx], model.region, model.relax)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        if step >= steps - 100:
            wins += torch.bincount(winners.flatten(), minlength=K)
    return model.eval(), float(loss.detach()), (wins / wins.sum()).tolist()


def mosaic(a: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """``[n, C, 16, 16]`` → ``[C, rows*16, cols*16]`` (row-major)."""
    n, c, h, w = a.shape
    return a.reshape(rows, cols, c, h, w).transpose(2, 0, 3, 1, 4).reshape(c, rows * h, cols * w)


def unmosaic(m: np.ndarray, rows: int, cols: int, h: int = 16, w: int = 16) -> np.ndarray:
    c = m.shape[0]
    return m.reshape(c, rows, h, cols, w).transpose(1, 3, 0, 2, 4).reshape(rows * cols, c, h, w)


def jpeg_bytes(image, **kw) -> tuple[int, np.ndarray]:
    from PIL import Image

    buf = io.BytesIO()
    image.save(buf, format="JPEG", **kw)
    size = buf.tell()
    buf.seek(0)
    return size, np.asarray(Image.open(buf), dtype=np.float64) / 255.0


def photos(args) -> None:
    """The optional real-photo variant: train on random 32x32 patches of china, test on a 256 x 384 crop of
    flower cut into 96 patches; the codec against Pillow JPEG on that crop (bytes per 32x32 patch)."""
    from PIL import Image

    from lstmviz.datasets.images.colour_digits import photo_patches
    from lstmviz.datasets.images.photos import load_photos

    tr = photo_patches("train", count=4096, size=32, seed=args.seed)
    crop = load_photos()[1][:, 64:320, 128:512].astype(np.float64)
    rows, cols = 8, 12
    n = rows * cols
    rgb8 = np.round(crop.transpose(1, 2, 0) * 255).astype(np.uint8)
    rgb_img = Image.fromarray(rgb8)
    truth = unmosaic(rgb_to_ycbcr(rgb8.transpose(2, 0, 1) / 255.0)[1:], rows, cols, 32, 32)
    _, y_dec = jpeg_bytes(rgb_img.convert("L"), quality=args.y_quality)
    y_test = torch.from_numpy(unmosaic(y_dec[None], rows, cols, 32, 32).astype(np.float32))
    print(f"photos: {len(tr['images'])} random 32x32 china patches (train), flower crop 256x384 = {n} patches "
          f"(test); {args.steps} steps, batch 16; codec on the q={args.y_quality} grey JPEG's Y")
    rd = []
    for K in (1, 4):
        t0 = time.perf_counter()
        model, loss, wins = train(K, tr, args.steps, args.seed, batch=16)
        with torch.no_grad():
            rd.append((f"codec K={K}, no side info", 0.0, psnr(model(y_test).numpy(), truth)))
            for region in (32, 8, 4) if K > 1 else ():
                idx = model.encode(y_test, torch.from_numpy(truth.astype(np.float32)), region=region)
                rd.append((f"codec K={K}, 1 index / {region}x{region}", model.side_bits(32, 32, region) / 8,
                           psnr(model.decode(y_test, idx, region=region).numpy(), truth)))
        print(f"K={K}: {time.perf_counter() - t0:.1f} s, train loss {loss:.5f}, win rates "
              f"{' '.join(f'{w:.2f}' for w in wins)}")
    for sub_name, sub in (("4:2:0", 2), ("4:4:4", 0)):
        for q in (5, 10, 20, 50, 75, 90):
            size, dec = jpeg_bytes(rgb_img, quality=q, subsampling=sub)
            gsize, _ = jpeg_bytes(rgb_img.convert("L"), quality=q)
            chroma = unmosaic(rgb_to_ycbcr(dec.transpose(2, 0, 1))[1:], rows, cols, 32, 32)
            rd.append((f"JPEG {sub_name} q={q}", (size - gsize) / n, psnr(chroma, truth)))
    for f in (8, 16, 32):
        low = torch.round(torch.nn.functional.avg_pool2d(torch.from_numpy(truth), f) * 255) / 255
        up = low.repeat_interleave(f, 2).repeat_interleave(f, 3).numpy()
        rd.append((f"subsample {f}x{f}, 8-bit", 2 * (32 // f) ** 2, psnr(up, truth)))
    print("chroma bytes per 32x32 patch vs chroma PSNR:")
    for name, b, p in sorted(rd, key=lambda r: (r[1], -r[2])):
        print(f"{name:<32} {b:8.3f} B {p:7.2f} dB")


def main() -> None:
    from PIL import Image

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--y-quality", type=int, default=90)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--photos", action="store_true", help="run the real-photo variant instead (slower)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.photos:
        photos(args)
        return
    tr, te = chroma_split("train"), chroma_split("test")
    n = len(te["label"])
    rows, cols = 18, n // 18
    assert rows * cols == n
    truth = te["target_maps"].astype(np.float64)
    stroke = te["intensity"] > 0.25
    print(f"colour digits: {len(tr['label'])} train / {n} test images 16x16; {args.steps} Adam steps, batch 32, "
          f"lr 0.005, region 4 in training, 1 thread")

    # --- the decoder's luminance: the test mosaic's Y as a grey JPEG
    rgb8 = np.round(mosaic(te["rgb"], rows, cols).transpose(1, 2, 0) * 255).astype(np.uint8)
    rgb_img = Image.fromarray(rgb8)
    y_bytes, y_dec = jpeg_bytes(rgb_img.convert("L"), quality=args.y_quality)
    y_test = torch.from_numpy(unmosaic(y_dec[None], rows, cols).astype(np.float32))
    y_clean = torch.from_numpy(te["images"])
    print(f"decoder's Y: grey JPEG quality {args.y_quality}, {y_bytes / n:.1f} bytes/image, "
          f"Y PSNR {psnr(y_test.numpy(), te['images']):.1f} dB")

    rd = []
    print("\n== 1. muddy average vs multiple hypotheses (test split; chroma PSNR in dB, Cb Cr on [0,1]) ==")
    print(f"{'model':<8} {'train s':>7} {'loss':>7} {'no side info':>12} {'1 idx/img':>10} {'idx/4x4':>9} "
          f"{'idx/pixel':>9} {'stroke sat.':>11}  win-rate per branch (train last 100 steps | test 4x4)")
    true_sat = float(np.abs(truth - 0.5).sum(1)[stroke].mean())
    variants = [("K=1", 1, {}), ("K=2", 2, {}), ("K=4", 4, {}),
                ("K=4 same", 4, {"init_spread": 0.0}), ("K=4 rlx", 4, {"relax": 0.05})]
    for label, K, config in variants:
        t0 = time.perf_counter()
        model, loss, wins = train(K, tr, args.steps, args.seed, **config)
        secs = time.perf_counter() - t0
        with torch.no_grad():
            mean = model(y_test).numpy()
            row = [psnr(mean, truth)]
            for region in (16, 4, 1):
                idx = model.encode(y_test, torch.from_numpy(te["target_maps"]), region=region)
                dec = model.decode(y_test, idx, region=region).numpy()
                row.append(psnr(dec, truth))
                if not config:
                    rd.append((f"codec K={K}, 1 index / {region}x{region}", model.side_bits(16, 16, region) / 8,
                               row[-1]))
                if region == 4:
                    test_wins = (torch.bincount(idx.flatten(), minlength=K) / idx.numel()).tolist()
            sat = float(np.abs(mean - 0.5).sum(1)[stroke].mean())
            clean = psnr(model(y_clean).numpy(), truth)
        print(f"{label:<8} {secs:7.1f} {loss:7.4f} {row[0]:12.2f} {row[1]:10.2f} {row[2]:9.2f} {row[3]:9.2f} "
              f"{sat / true_sat:11.2f}  {' '.join(f'{w:.2f}' for w in wins)} | {' '.join(f'{w:.2f}' for w in test_wins)}")
        if K == 1:
            print(f"         (K=1 on the clean Y: {clean:.2f} dB; 'stroke sat.' = mean |CbCr - 0.5|_1 of the "
                  f"prediction over stroke pixels / the truth's)")
    print("(columns with an index: the decoder gets ceil(log2 K) bits per region; K=1 needs none, so its columns repeat;\n"
          " 'K=4 same': every branch head starts at the same colourless bias (init_spread=0), only the random weights\n"
          " differ; 'K=4 rlx': losing branches get 0.05 of their loss)")

    # --- JPEG chroma
    for sub_name, sub in (("4:2:0", 2), ("4:4:4", 0)):
        for q in (5, 10, 20, 30, 50, 75, 90):
            size, dec = jpeg_bytes(rgb_img, quality=q, subsampling=sub)
            gsize, _ = jpeg_bytes(rgb_img.convert("L"), quality=q)
            chroma = unmosaic(rgb_to_ycbcr(dec.transpose(2, 0, 1))[1:], rows, cols)
            rd.append((f"JPEG {sub_name} q={q}", (size - gsize) / n, psnr(chroma, truth)))
    # --- plain chroma subsampling, 8-bit samples
    for f in (4, 8, 16):
        t = torch.from_numpy(truth)
        low = torch.nn.functional.avg_pool2d(t, f)
        low = torch.round(low * 255) / 255
        up = low.repeat_interleave(f, 2).repeat_interleave(f, 3).numpy()
        rd.append((f"subsample {f}x{f}, 8-bit", 2 * (16 // f) ** 2, psnr(up, truth)))

    print(f"\n== 2. rate-distortion: chroma bytes per 16x16 image vs chroma PSNR (codec on the q={args.y_quality} "
          f"grey JPEG's Y) ==")
    for name, b, p in sorted(rd, key=lambda r: (r[1], -r[2])):
        print(f"{name:<32} {b:8.3f} B {p:7.2f} dB")
    codec = [(b, p) for name, b, p in rd if name.startswith("codec") and "K=1" not in name]
    jpeg = [(b, p) for name, b, p in rd if name.startswith("JPEG")]
    beaten = sum(1 for jb, jp in jpeg if any(cb <= jb and cp >= jp for cb, cp in codec))
    print(f"JPEG points matched or beaten by a codec point with no more bytes and no lower PSNR: {beaten} / {len(jpeg)}")


if __name__ == "__main__":
    main()
