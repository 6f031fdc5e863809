"""Loss study: the same network, budget and seeds trained under eight losses.

Losses: cross-entropy, Dice, Dice+CE, generalized Dice, Tversky (alpha 0.3,
beta 0.7), focal Tversky, Jaccard and focal loss, on generated terrain where
obstacles are rare (~1-2 % of pixels, often a few pixels wide at the study's
input size). Every run uses ``dice_seg_ros.learn.train`` with identical arguments
except ``--loss`` and ``--seed``; each final model is scored on held-out
scenes (seeds from ``TEST_SEED_BASE``, never used in training), pooling one
confusion matrix per run. The report gives per-class Dice (mean +- std over
seeds, obstacle highlighted) and mean Dice.

Writes into ``--out``: ``results.csv`` (one row per loss and seed),
``summary.md`` (the table) and ``loss_study.png`` (bar plot).

Run: ``python benchmarks/loss_study.py [--seeds 0 1] [--out runs/loss_study]``;
``--quick`` shrinks everything to a smoke test (about a minute).
"""

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from dice_seg_ros.classes import load_classes
from dice_seg_ros.data.torch_dataset import TEST_SEED_BASE, SyntheticScenes
from dice_seg_ros.learn import train as train_mod

# (label, --loss, extra constructor arguments)
LOSSES = (
    ("CE", "ce", {}),
    ("Dice", "dice", {}),
    ("Dice+CE", "dice_ce", {}),
    ("generalized Dice", "generalized_dice", {}),
    ("Tversky a0.3 b0.7", "tversky", {"alpha": 0.3, "beta": 0.7}),
    ("focal Tversky", "focal_tversky", {}),
    ("Jaccard", "jaccard", {}),
    ("focal", "focal", {}),
)
RARE = "obstacle"
FULL = {"input_size": "160x120", "epochs": 6, "train_scenes": 256, "batch_size": 8,
        "val_scenes": 16, "test_scenes": 100, "width_mult": 1.0}
QUICK = {"input_size": "48x32", "epochs": 1, "train_scenes": 4, "batch_size": 4,
         "val_scenes": 2, "test_scenes": 3, "width_mult": 0.5}


def train_args(loss: str, extra: dict, seed: int, budget: dict, out: Path,
               threads: int, loss_batch: bool = False) -> argparse.Namespace:
    """Command-line arguments of one training run (only loss and seed vary)."""
    parser = argparse.ArgumentParser()
    train_mod.add_arguments(parser)
    return parser.parse_args(["--loss-batch"] * loss_batch + [
        "--data", "synthetic", "--loss", loss, "--loss-kwargs", json.dumps(extra),
        "--epochs", str(budget["epochs"]), "--train-scenes", str(budget["train_scenes"]),
        "--val-scenes", str(budget["val_scenes"]), "--batch-size", str(budget["batch_size"]),
        "--input-size", budget["input_size"], "--width-mult", str(budget["width_mult"]),
        "--seed", str(seed), "--threads", str(threads), "--out", str(out), "--quiet"])


def heldout_scores(model: torch.nn.Module, meta, count: int) -> tuple[np.ndarray, float, float]:
    """Per-class Dice (C,), mean Dice and mean IoU on ``count`` held-out scenes."""
    classes = load_classes()
    loader = DataLoader(SyntheticScenes(meta, count, TEST_SEED_BASE, train=False), 8)
    cm, _ = train_mod.evaluate(model, loader, None, classes)
    return cm.dice(), cm.mean_dice(), cm.mean_iou()


def run_study(seeds: list[int], budget: dict, out: Path, threads: int,
              losses: tuple = LOSSES, loss_batch: bool = False) -> list[dict]:
    """Train and score every loss for every seed; return one result row per run."""
    names = load_classes().names
    rows = []
    for seed in seeds:
        for label, loss, extra in losses:
            start = time.perf_counter()
            summary = train_mod.train(train_args(loss, extra, seed, budget,
                                                 out / "runs" / f"{loss}_seed{seed}", threads,
                                                 loss_batch))
            dice, mean_dice, mean_iou = heldout_scores(summary["model"], summary["meta"],
                                                       budget["test_scenes"])
            row = {"loss": label, "seed": seed, **{f"dice_{n}": d for n, d in zip(names, dice)},
                   "mean_dice": mean_dice, "mean_iou": mean_iou,
                   "seconds": time.perf_counter() - start}
            rows.append(row)
            print(f"{label:18s} seed {seed}: mean Dice {mean_dice:.3f}, "
                  f"{RARE} {row[f'dice_{RARE}']:.3f} ({row['seconds']:.0f} s)", flush=True)
    return rows


def aggregate(rows: list[dict]) -> dict[str, dict[str, tuple[float, float]]]:
    """Per loss: {column: (mean, std over seeds)} for Dice columns and mean Dice/IoU."""
    columns = [k for k in rows[0] if k.startswith("dice_")] + ["mean_dice", "mean_iou"]
    table = {}
    for label in dict.fromkeys(r["loss"] for r in rows):
        runs = [r for r in rows if r["loss"] == label]
        table[label] = {c: (float(np.mean([r[c] for r in runs])),
                            float(np.std([r[c] for r in runs]))) for c in columns}
    return table


def markdown(table: dict[str, dict[str, tuple[float, float]]], seeds: int) -> str:
    """Format the summary table: Dice mean +- std over seeds, rare class in bold."""
    names = load_classes().names
    head = [f"**{n}**" if n == RARE else n for n in names]
    lines = ["| loss | " + " | ".join(head) + " | mean Dice | mean IoU |",
             "|---" * (len(names) + 3) + "|"]
    for label, cols in table.items():
        cells = []
        for n in names:
            mean, std = cols[f"dice_{n}"]
            text = f"{mean:.3f} ± {std:.3f}"
            cells.append(f"**{text}**" if n == RARE else text)
        cells += [f"{cols['mean_dice'][0]:.3f} ± {cols['mean_dice'][1]:.3f}",
                  f"{cols['mean_iou'][0]:.3f} ± {cols['mean_iou'][1]:.3f}"]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append(f"\nDice on held-out scenes; mean ± std over {seeds} seeds.")
    return "\n".join(lines)


def plot(table: dict[str, dict[str, tuple[float, float]]], path: Path) -> None:
    """Plot grouped bars: rare-class and mean Dice per loss, with std error bars."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    labels = list(table)
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(10, 4.5))
    for offset, column, colour, name in ((-0.2, f"dice_{RARE}", "#e6194b", f"{RARE} Dice"),
                                         (0.2, "mean_dice", "#4363d8", "mean Dice")):
        means = [table[k][column][0] for k in labels]
        stds = [table[k][column][1] for k in labels]
        ax.bar(x + offset, means, 0.4, yerr=stds, capsize=3, color=colour, label=name)
    ax.set_xticks(x, labels, rotation=25, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("held-out Dice")
    ax.set_title("Loss study: rare-class and mean Dice (mean ± std over seeds)")
    ax.legend(loc="lower right")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_outputs(rows: list[dict], seeds: int, out: Path) -> dict[str, Path]:
    """Write results.csv, summary.md and loss_study.png into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "results.csv", "md": out / "summary.md", "png": out / "loss_study.png"}
    with open(paths["csv"], "w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    table = aggregate(rows)
    paths["md"].write_text(markdown(table, seeds) + "\n", encoding="utf-8")
    plot(table, paths["png"])
    return paths


def main(argv: list[str] | None = None) -> dict[str, Path]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--out", default="runs/loss_study")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="tiny smoke-test budget")
    parser.add_argument("--losses", nargs="+", choices=[loss for _, loss, _ in LOSSES],
                        help="run only these losses (default: all eight)")
    parser.add_argument("--loss-batch", action="store_true",
                        help="pool Dice-family sums over the batch (train --loss-batch)")
    parser.add_argument("--epochs", type=int, help="override the budget's epochs")
    args = parser.parse_args(argv)
    budget = dict(QUICK if args.quick else FULL)
    if args.epochs:
        budget["epochs"] = args.epochs
    losses = tuple(e for e in LOSSES if args.losses is None or e[1] in args.losses)
    torch.set_num_threads(args.threads)
    rows = run_study(args.seeds, budget, Path(args.out), args.threads, losses, args.loss_batch)
    paths = write_outputs(rows, len(args.seeds), Path(args.out))
    print(paths["md"].read_text(encoding="utf-8"))
    return paths


if __name__ == "__main__":
    main()
