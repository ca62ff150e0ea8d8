"""The two claims of issue 13, measured on real models (prints numbers only; nothing is asserted).

**1. Szegedy et al. (2014): units vs random directions.** For a tap and a direction v, take the k
positions that maximise <h_t, v> over the recording and measure how pure their annotation labels are
(``lstmviz.analysis.direction_coherence``: purity = share of the modal label; base rate = the largest
class share; chance-corrected = (purity - base) / (1 - base); chance = the mean purity of k random
positions). Compared for every unit e_u of the tap against ``--n-random`` random unit-norm directions:
mean purity with bootstrap 95% intervals over directions, Mann-Whitney U p-value. Szegedy et al. claim
both are equally coherent. Taps: h and c of both layers. Recordings:

- the bundled demo ``assets/demo/parens-lstm.h5`` (annotations ``depth``, ``token_class``);
- a PTB LSTM made with our own CLI when missing (under ``--data-dir``):
  ``lstmviz train lstm --dataset ptb --steps 300 --seed 0``, then ``lstmviz record CKPT --dataset ptb
  --split test --max-items 1500 --signals 'layer*/h' 'layer*/c'`` (float16); annotations ``pos``
  (45 Penn tags) and ``chunk``; ``pos`` also with context 1 (the pair previous tag, tag).

**2. Ablating the depth units found by Select** (demo model ``assets/demo/parens-lstm.pt``). The brush:
the longest stretch of positions at depth >= 2 in the demo recording (the range starts at the '(' that
enters depth 2 and ends before the ')' that leaves it). On ``layer0/c`` and ``layer1/c`` separately,
``lstmviz.analysis.selection.select_units`` with the LSTMVis rule and the tool's defaults (raw values,
threshold 0.3, direction positive, tolerance 1) and off-padding one position on each side (the stretch
is bounded by depth 1 on both sides). The selected units of both layers are set to 0 at every position
through ``lstmviz.hooks.intervene`` (the recurrence carries the edit forward: c_t feeds f_t * c_{t-1}).
The measure, per item: the mean change of next-token NLL, -log p(x_{t+1} | x_<=t), over the positions t
whose next token is a digit (the model must emit the depth there), ablated minus clean. Reported: the
mean over the 26 items with a bootstrap 95% interval over items, against ablating as many random units
of the same layers (``--draws`` draws; per item the mean over draws, then the same interval over items;
and the spread of the draws' means and the share of draws at least as harmful). The same for positions
whose next token is a bracket. Secondary unit sets, for robustness: Select in both directions, the units
selected on all three longest stretches, and the units ranked by |Pearson r| with depth (as many as the
primary set).

    python benchmarks/perturb_claims.py                    # both claims (PTB model built once, ~3 min)
    python benchmarks/perturb_claims.py --skip-ptb         # demo only
    python benchmarks/perturb_claims.py --json out.json    # also write every number as JSON
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from lstmviz.analysis.direction_coherence import bootstrap_mean_ci, coherence_comparison
from lstmviz.analysis.selection import select_units
from lstmviz.analysis.selection_types import SelectionSpec
from lstmviz.recording import open_recording

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "assets" / "demo" / "parens-lstm.h5"
DEMO_CHECKPOINT = ROOT / "assets" / "demo" / "parens-lstm.pt"
TAPS = ("layer0/h", "layer0/c", "layer1/h", "layer1/c")
CELL_TAPS = ("layer0/c", "layer1/c")


# ----------------------------------------------------------------------------------------- data


def build_ptb(directory: Path) -> Path:
    """The PTB recording, made with our own CLI (once)."""
    checkpoint, path = directory / "ptb-lstm.pt", directory / "ptb-lstm.h5"
    cli = [sys.executable, "-m", "lstmviz.cli"]
    directory.mkdir(parents=True, exist_ok=True)
    if not checkpoint.exists():
        print("training the PTB model with our CLI (300 steps, ~2 minutes on 2 cores) ...", flush=True)
        subprocess.run([*cli, "train", "lstm", "--dataset", "ptb", "--steps", "300", "--seed", "0",
                        "--out", str(checkpoint), "--quiet"], check=True)
    if not path.exists():
        subprocess.run([*cli, "record", str(checkpoint), "--dataset", "ptb", "--split", "test", "--max-items",
                        "1500", "--signals", "layer*/h", "layer*/c", "--out", str(path), "--quiet"], check=True)
    return path


# ----------------------------------------------------------------------------------------- claim 1


def szegedy(path: Path, annotations: list[tuple[str, int]], k: int, n_random: int, seed: int) -> list[dict]:
    rows = []
    with open_recording(path) as rec:
        for tap in TAPS:
            for annotation, context in annotations:
                t0 = time.perf_counter()
                c = coherence_comparison(rec, tap, annotation, k=k, n_random=n_random, seed=seed, context=context)
                row = c.summary()
                row["recording"] = path.name
                row["seconds"] = time.perf_counter() - t0
                rows.append(row)
                print(f"  {tap:9s} {annotation}{'+ctx' + str(context) if context else '':6s}"
                      f" units {c.unit_mean:.3f} [{c.unit_ci[0]:.3f}, {c.unit_ci[1]:.3f}]"
                      f"  random {c.random_mean:.3f} [{c.random_ci[0]:.3f}, {c.random_ci[1]:.3f}]"
                      f"  diff {c.difference:+.3f}  p {c.mann_whitney_p:.2g}"
                      f"  | corrected units {c.unit_corrected_mean:.3f} random {c.random_corrected_mean:.3f}"
                      f"  base {c.base_rate:.3f} chance {c.chance_purity:.3f}", flush=True)
    return rows


# ----------------------------------------------------------------------------------------- claim 2


def item_batch(rec) -> tuple[torch.Tensor, np.ndarray]:
    """All items as one batch, padded at the end with id 0 (the models are causal), and their lengths."""
    lengths = np.diff(rec.item_offsets).astype(np.int64)
    tokens = np.zeros((rec.n_items, int(lengths.max())), np.int64)
    for i in range(rec.n_items):
        a, b = rec.item_range(i)
        tokens[i, :b - a] = rec.token_ids(a, b)
    return torch.as_tensor(tokens), lengths


def next_token_logp(model, tokens: torch.Tensor, edits=()) -> torch.Tensor:
    """float64 ``[B, T-1, V]``: log p(. | tokens[:, :t+1]), with ``edits`` applied (lstmviz.hooks.intervene)."""
    from lstmviz.hooks import intervene

    with torch.no_grad():
        if edits:
            with intervene(model, list(edits)):
                out = model(tokens)
        else:
            out = model(tokens)
        logits = out[0] if isinstance(out, tuple) else out
        return torch.log_softmax(logits[:, :-1].double(), dim=-1)


def measures(logp: torch.Tensor, tokens: torch.Tensor, choice_ids) -> dict[str, np.ndarray]:
    """Per position ``[B, T-1]``: ``nll`` = -log p(x_{t+1}) and ``choice`` = -log p(x_{t+1} | x_{t+1} in
    ``choice_ids``) (the digit value given that a digit comes: does the model still know the depth?)."""
    target = tokens[:, 1:, None]
    picked = logp.gather(-1, target).squeeze(-1)
    out = {"nll": (-picked).numpy()}
    if len(choice_ids):
        out["choice"] = (torch.logsumexp(logp[..., sorted(choice_ids)], dim=-1) - picked).numpy()
    return out


def next_token_nll(model, tokens: torch.Tensor, edits=()) -> np.ndarray:
    """float64 ``[B, T-1]``: -log p(tokens[:, t+1] | tokens[:, :t+1]), with ``edits`` applied."""
    logp = next_token_logp(model, tokens, edits)
    return -logp.gather(-1, tokens[:, 1:, None]).squeeze(-1).numpy()


def ablation_edits(units_by_tap: dict[str, np.ndarray]):
    """Set the given units of each tap to 0 at every position."""
    from lstmviz.hooks import Edit

    return [Edit(tap, "replace", 0.0, units=[int(u) for u in units]) for tap, units in units_by_tap.items()
            if len(units)]


def per_item_mean(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """float64 ``[B]``: the mean of ``values`` over ``mask`` per row (nan for a row without positions)."""
    counts = mask.sum(axis=1)
    sums = np.where(mask, values, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def ablation_effect(model, tokens, lengths, targets: dict[str, tuple[set, str]], units_by_tap, *, draws: int,
                    n_units: dict[str, int], seed: int, choice_ids=()) -> dict[str, dict]:
    """Per-item mean change (ablated - clean) of a measure at the positions whose next token is in a set.

    ``targets``: name -> (token ids, measure), measure ``"nll"`` or ``"choice"`` (see :func:`measures`).
    The given units vs as many random units of the same taps (``draws`` draws; one forward each serves
    every target). Returns per target: per-item arrays and summaries (bootstrap 95% intervals over items).
    """
    choice_ids = sorted(choice_ids)
    clean = measures(next_token_logp(model, tokens), tokens, choice_ids)
    nxt = tokens[:, 1:].numpy()
    valid = np.arange(nxt.shape[1])[None, :] < (lengths[:, None] - 1)
    masks = {name: valid & np.isin(nxt, np.asarray(sorted(ids))) for name, (ids, _) in targets.items()}

    def effect(units):
        edited = measures(next_token_logp(model, tokens, ablation_edits(units)), tokens, choice_ids)
        return {name: per_item_mean(edited[m] - clean[m], masks[name]) for name, (_, m) in targets.items()}

    chosen = effect(units_by_tap)
    rng = np.random.default_rng(seed)
    random_items = {name: np.empty((draws, tokens.shape[0])) for name in targets}
    for d in range(draws):
        drawn = {tap: rng.choice(n_units[tap], size=len(units), replace=False) for tap, units in units_by_tap.items()}
        for name, per_item in effect(drawn).items():
            random_items[name][d] = per_item
    out = {}
    for name, (_, m) in targets.items():
        sel, rand = chosen[name], random_items[name]
        random_per_item = rand.mean(axis=0)
        draw_means = np.nanmean(rand, axis=1)
        out[name] = {
            "measure": m,
            "positions": int(masks[name].sum()),
            "clean": float(clean[m][masks[name]].mean()),
            "selected_per_item": sel,
            "selected_mean": float(np.nanmean(sel)),
            "selected_ci": bootstrap_mean_ci(sel, seed=seed),
            "random_per_item": random_per_item,
            "random_mean": float(np.nanmean(random_per_item)),
            "random_ci": bootstrap_mean_ci(random_per_item, seed=seed + 1),
            "random_draw_means_p5_p50_p95": [float(x) for x in np.percentile(draw_means, [5, 50, 95])],
            "share_of_draws_at_least_as_harmful": float(np.mean(draw_means >= np.nanmean(sel))),
            "items_selected_above_random": int(np.sum(sel > random_per_item)),
        }
    return out


def depth_stretches(rec) -> list[tuple[int, int, int]]:
    """Maximal runs of positions at depth >= 2 inside one item: (item, start, stop), longest first."""
    labels = rec.annotations["depth"].labels
    depth = np.asarray([int(labels[i]) for i in rec.annotation("depth")])
    runs = []
    for item in range(rec.n_items):
        a, b = rec.item_range(item)
        deep = np.concatenate([[False], depth[a:b] >= 2, [False]]).astype(np.int8)
        edges = np.flatnonzero(np.diff(deep))
        runs += [(item, a + s, a + e) for s, e in zip(edges[::2], edges[1::2])]
    return sorted(runs, key=lambda r: (-(r[2] - r[1]), r[1]))


def select_depth_units(rec, stretch, tap: str, direction: str = "positive") -> np.ndarray:
    """Units of ``tap`` that Select finds on the brushed ``stretch`` (LSTMVis rule; see the module docstring)."""
    item, start, stop = stretch
    a, b = rec.item_range(item)
    spec = SelectionSpec(start, stop, threshold=0.3, pad_left=1, pad_right=1, tolerance=1.0, direction=direction)
    selection = select_units(rec.states(tap, a, b), a, spec, item_start=a, item_stop=b)
    return np.unique(selection.units)


def correlated_units(rec, tap: str, count: int) -> np.ndarray:
    """The ``count`` units of ``tap`` with the largest |Pearson r| with the depth over the recording."""
    labels = rec.annotations["depth"].labels
    depth = np.asarray([float(labels[i]) for i in rec.annotation("depth")])
    x = rec.states(tap).astype(np.float64)
    x -= x.mean(axis=0)
    d = depth - depth.mean()
    r = (x * d[:, None]).sum(axis=0) / np.sqrt((x ** 2).sum(axis=0) * (d ** 2).sum() + 1e-300)
    return np.sort(np.argsort(-np.abs(r), kind="stable")[:count])


def depth_ablation(draws: int, seed: int) -> dict:
    from lstmviz.engines.checkpoint import load_checkpoint

    torch.manual_seed(seed)
    model, meta = load_checkpoint(DEMO_CHECKPOINT)
    with open_recording(DEMO) as rec:
        if meta["sha256"] != rec.provenance.get("sha256", meta["sha256"]):
            print(f"  warning: {DEMO_CHECKPOINT.name} is not the checkpoint the demo was recorded with")
        vocab = rec.vocab
        digits = {i for i, t in enumerate(vocab) if t.isdigit()}
        brackets = {i for i, t in enumerate(vocab) if t in "()"}
        tokens, lengths = item_batch(rec)
        n_units = {tap: rec.taps[tap].units for tap in CELL_TAPS}
        stretches = depth_stretches(rec)
        longest = stretches[0]
        sets = {"select (primary)": {tap: select_depth_units(rec, longest, tap) for tap in CELL_TAPS},
                "select, both directions": {tap: select_depth_units(rec, longest, tap, "both") for tap in CELL_TAPS}}
        three = {}
        for tap in CELL_TAPS:
            common = set.intersection(*(set(select_depth_units(rec, s, tap).tolist()) for s in stretches[:3]))
            three[tap] = np.array(sorted(common), dtype=np.int64)
        sets["select on the 3 longest stretches (all three)"] = three
        sets["|r| with depth (as many as primary)"] = {
            tap: correlated_units(rec, tap, len(sets["select (primary)"][tap])) for tap in CELL_TAPS}
    print(f"  brush: item {longest[0]}, positions {longest[1]}..{longest[2] - 1} ({longest[2] - longest[1]} tokens "
          f"at depth >= 2); {len(stretches)} such stretches in the demo")
    targets = {"digit": (digits, "nll"), "digit value": (digits, "choice"), "bracket": (brackets, "nll")}
    out = {"brush": list(longest), "draws": draws, "sets": {}}
    for name, units in sets.items():
        listing = "; ".join(f"{tap} {units[tap].tolist()}" for tap in CELL_TAPS)
        print(f"  {name}: {sum(len(u) for u in units.values())} units: {listing}", flush=True)
        entry = {"units": {tap: units[tap].tolist() for tap in CELL_TAPS}}
        t0 = time.perf_counter()
        effects = ablation_effect(model, tokens, lengths, targets, units, draws=draws, n_units=n_units, seed=seed,
                                  choice_ids=digits)
        entry["seconds"] = time.perf_counter() - t0
        for target, e in effects.items():
            what = "-log p(digit value | a digit)" if e["measure"] == "choice" else "NLL"
            print(f"    next token {target:11s} ({e['positions']} positions, clean {what} {e['clean']:.3f}): "
                  f"Δ selected {e['selected_mean']:+.3f} [{e['selected_ci'][0]:+.3f}, {e['selected_ci'][1]:+.3f}]"
                  f"  random {e['random_mean']:+.3f} [{e['random_ci'][0]:+.3f}, {e['random_ci'][1]:+.3f}]"
                  f"  draws p5/p50/p95 {', '.join(f'{x:+.3f}' for x in e['random_draw_means_p5_p50_p95'])}"
                  f"  draws >= selected {e['share_of_draws_at_least_as_harmful']:.3f}"
                  f"  items selected > random {e['items_selected_above_random']}/{len(lengths)}", flush=True)
            entry[target] = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in e.items()}
        out["sets"][name] = entry
    return out


# ----------------------------------------------------------------------------------------- main


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/lstmviz-claims"))
    parser.add_argument("--k", type=int, default=10, help="top positions per direction (default 10)")
    parser.add_argument("--n-random", type=int, default=128, help="random directions per tap (default 128)")
    parser.add_argument("--draws", type=int, default=300, help="random unit sets for the ablation (default 300)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-ptb", action="store_true")
    parser.add_argument("--skip-ablation", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    results: dict = {"k": args.k, "n_random": args.n_random, "seed": args.seed}
    print(f"Claim 1 (Szegedy): purity of the top {args.k} positions, all units vs {args.n_random} random "
          f"directions (mean [95% bootstrap interval over directions])")
    print(f" demo {DEMO.name}")
    results["szegedy"] = szegedy(DEMO, [("depth", 0), ("token_class", 0)], args.k, args.n_random, args.seed)
    if not args.skip_ptb:
        ptb = build_ptb(args.data_dir)
        print(f" PTB {ptb}")
        results["szegedy"] += szegedy(ptb, [("pos", 0), ("pos", 1), ("chunk", 0)], args.k, args.n_random,
                                      args.seed)
    if not args.skip_ablation:
        print("Claim 2: ablating depth units found by Select (c := 0 at every position), ΔNLL per item "
              "(mean over the demo items [95% bootstrap interval over items]) vs as many random units")
        results["ablation"] = depth_ablation(args.draws, args.seed)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=float))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
