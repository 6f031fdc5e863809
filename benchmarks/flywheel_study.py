"""Flywheel study: how many labeled frames of a new camera buy how much Dice, and which frames.

YCOR plays the new camera. Every run starts from ``models/terrain_seg_synthetic.pt``, which
never saw YCOR, takes k labeled frames of YCOR ``train`` and is scored on all of YCOR ``valid``
(mean Dice over the classes present, pooled, full resolution, through ``Segmenter`` as the
node runs it). Two ways to use the k frames:

- ``train``: today's ``dice-seg train --init M --epochs 4`` on the k frames;
- ``finetune``: ``dice-seg finetune`` with its defaults.

and three ways to choose them (finetune, k = 8): ``even`` (evenly spaced over the recording),
``random``, and ``mine`` (what ``dice-seg mine`` would pick: lowest estimated Dice, spread,
near-duplicates dropped).

Each run writes ``OUT/NAME/result.json`` and is skipped when that exists, so the study resumes.
Run: ``python benchmarks/flywheel_study.py --ycor ../shared/realdata/ycor --out runs/flywheel``
then ``... --report docs/flywheel`` for the table (.table.md) and learning curve (.png).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

from dice_seg_ros.classes import load_classes
from dice_seg_ros.data.datasets import LabeledImages, evenly_spaced, open_dataset
from dice_seg_ros.resources import resource_path
from dice_seg_ros.runtime.inference import Segmenter

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_real import real_confusion, save_study_report  # noqa: E402

SYNTHETIC_PT = resource_path("models/terrain_seg_synthetic.pt")
SYNTHETIC_ONNX = resource_path("models/terrain_seg_synthetic.onnx")
CURVE_K = (4, 8, 16, 32)
PICKS = ("even", "random", "mine")
# Mined picks are at least this many frames apart (a YCOR sequence runs at a few Hz).
MINE_WINDOW = 20


# Recipe variants tried at k = 8 (even picks) to choose finetune's defaults: name -> options.
SWEEP: dict[str, tuple[str, ...]] = {
    "steps240": ("--steps", "240"),
    "steps1200": ("--steps", "1200"),
    "gen0": ("--generated-share", "0"),
    "gen1": ("--generated-share", "1"),
    "freeze_bn": ("--freeze-bn",),
    "lr3e-3": ("--lr", "3e-3"),
}


def runs() -> dict[str, tuple[str, str, int, tuple[str, ...]]]:
    """Return every run as ``name -> (method, pick, k, extra finetune options)``."""
    table = {"k0": ("none", "even", 0, ())}
    for k in CURVE_K:
        for method in ("train", "finetune"):
            table[f"{method}_k{k}"] = (method, "even", k, ())
    for pick in PICKS[1:]:
        table[f"finetune_k8_{pick}"] = ("finetune", pick, 8, ())
    for variant, extra in SWEEP.items():
        table[f"finetune_k8_{variant}"] = ("finetune", "even", 8, extra)
    return table


def pick_frames(pool: LabeledImages, pick: str, k: int, out: Path, seed: int = 0) -> list[int]:
    """Return the indices of the ``k`` frames of ``pool`` that ``pick`` chooses."""
    if pick == "even":
        return evenly_spaced(range(len(pool)), k)
    if pick == "random":
        return sorted(np.random.default_rng(seed).choice(len(pool), k, replace=False).tolist())
    return mined_frames(pool, k, out / "mine")


def mined_frames(pool: LabeledImages, k: int, out: Path) -> list[int]:
    """Run ``dice-seg mine`` over the pool's images (one "second" apart); return its picks.

    The window keeps picks at least ``MINE_WINDOW`` frames apart in the recording order.
    """
    from dice_seg_ros.bags.mine import MineOptions, mine
    folder = out / "pool"
    folder.mkdir(parents=True, exist_ok=True)
    for pair in pool.pairs:
        link = folder / pair.image.name
        if not link.exists():
            link.symlink_to(pair.image.resolve())
    summary = mine([str(folder)], MineOptions("", str(SYNTHETIC_ONNX), threads=2), out, k,
                   per_bag=k, window_s=MINE_WINDOW, progress=False)
    with open(summary["paths"]["manifest"], newline="", encoding="utf-8") as stream:
        return sorted(int(row["stamp_ns"]) // 1_000_000_000 for row in csv.DictReader(stream))


def subset_folder(pool: LabeledImages, indices: list[int], folder: Path) -> Path:
    """Link the chosen frames into a YCOR-layout folder (images/ + labels/) and return it."""
    for sub in ("images", "labels"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for index in indices:
        pair = pool.pairs[index]
        for sub, path in (("images", pair.image), ("labels", pair.label)):
            link = folder / sub / path.name
            if not link.exists():
                link.symlink_to(path.resolve())
    return folder


def fit(method: str, data: Path, out: Path, threads: int, extra: tuple[str, ...] = ()) -> Path:
    """Train run ``out`` on ``data`` with ``method`` (and ``extra`` options); return its ONNX."""
    from dice_seg_ros.cli import main as cli
    common = ["--data", str(data), "--format", "ycor", "--init", str(SYNTHETIC_PT),
              "--out", str(out), "--threads", str(threads), "--quiet"]
    if method == "finetune":
        if cli(["finetune", *common, *extra]) != 0:
            raise RuntimeError(f"finetune of {out} failed")
        return out / "model.onnx"
    resume = ["--resume", str(out / "last.pt")] if (out / "last.pt").is_file() else []
    # One validation frame at least: train's default holds out the last tenth of a sequence.
    if cli(["train", *common, "--epochs", "4", "--workers", "1", *resume]) != 0:
        raise RuntimeError(f"train of {out} failed")
    if cli(["export", "--checkpoint", str(out / "best.pt"), "--out",
            str(out / "model.onnx")]) != 0:
        raise RuntimeError(f"export of {out} failed")
    return out / "model.onnx"


def run_one(name: str, args: argparse.Namespace) -> dict:
    """Run (or reuse) study run ``name``; return its result."""
    out = Path(args.out) / name
    result_path = out / "result.json"
    if result_path.is_file():
        return json.loads(result_path.read_text())
    method, pick, k, extra = runs()[name]
    classes = load_classes()
    pool = open_dataset(args.ycor, "ycor", classes, split="train")
    model, indices, seconds = SYNTHETIC_ONNX, [], 0.0
    if k:
        indices = pick_frames(pool, pick, k, Path(args.out))
        data = subset_folder(pool, indices, Path(args.out) / "subsets" / f"{pick}_k{k}")
        started = time.perf_counter()
        model = fit(method, data, out / "run", args.threads, extra)
        seconds = time.perf_counter() - started
    valid = open_dataset(args.ycor, "ycor", classes, split="valid")
    cm, _ = real_confusion(Segmenter(model, "ort", "cpu", threads=2, estimate_dice=False),
                           valid, quiet=True)
    result = {"name": name, "method": method, "pick": pick, "k": k, "options": list(extra),
              "frames": [pool.pairs[i].image.name for i in indices],
              "dice": cm.dice().tolist(), "present": cm.labelled().tolist(),
              "mean_dice_present": cm.mean_dice_present(), "minutes": seconds / 60,
              "threads": args.threads}
    out.mkdir(parents=True, exist_ok=True)
    result_path.write_text(json.dumps(result, indent=1))
    return result


def report(args: argparse.Namespace) -> None:
    """Write the Markdown table and the learning-curve plot of every finished run."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = load_classes().names
    done = {n: json.loads((Path(args.out) / n / "result.json").read_text())
            for n in runs() if (Path(args.out) / n / "result.json").is_file()}
    lines = ["| run | k | frames chosen | options | minutes | mean Dice (present) | "
             + " | ".join(names) + " |", "|---" * (len(names) + 6) + "|"]
    for name, r in done.items():
        options = " ".join(r.get("options", [])) or "defaults"
        lines.append(f"| {r['method']} | {r['k']} | {r['pick']} | {options} | "
                     f"{r['minutes']:.1f} | "
                     f"**{r['mean_dice_present']:.3f}** | "
                     + " | ".join(f"{d:.3f}" for d in r["dice"]) + " |")
    table = "\n".join(lines)
    fig, ax = plt.subplots(figsize=(6, 4))
    for method in ("train", "finetune"):
        points = sorted((r["k"], r["mean_dice_present"]) for r in done.values()
                        if (r["method"] == method and r["pick"] == "even"
                            and not r.get("options")) or r["k"] == 0)
        if points:
            ax.plot(*zip(*points), marker="o", label=f"dice-seg {method}")
    for r in done.values():
        if r["pick"] != "even" and not r.get("options"):
            ax.scatter([r["k"]], [r["mean_dice_present"]], marker="x",
                       label=f"finetune, {r['pick']} picks")
    ax.set(xlabel="labeled YCOR train frames (k)", ylabel="YCOR valid mean Dice (present)",
           title="Fine-tuning the synthetic-only model to YCOR")
    ax.set_xscale("symlog", linthresh=4)
    ax.set_xticks([0, *CURVE_K], [str(k) for k in (0, *CURVE_K)])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_study_report(fig, table, args.report)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ycor", help="YCOR folder (shared/realdata/ycor)")
    parser.add_argument("--out", default="runs/flywheel")
    parser.add_argument("--only", nargs="*", choices=sorted(runs()), help="runs to do")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--report", help="write the table (.table.md) and plot (.png) here")
    args = parser.parse_args()
    if args.report:
        report(args)
        return
    for name in args.only or runs():
        print(json.dumps(run_one(name, args)), flush=True)


if __name__ == "__main__":
    main()
