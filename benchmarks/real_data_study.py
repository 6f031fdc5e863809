"""Real-data study: fine-tuning vs from scratch, few-shot, and network size, on YCOR.

Every run trains with ``dice-seg train`` on YCOR ``train`` (validation, for
choosing the checkpoint, is the last 10 % of ``train``; ``valid`` is never
seen), then scores ``best.pt`` on YCOR ``valid`` through ``Segmenter`` at full
resolution and times the exported ONNX model at 640x480. Runs are resumable
(``--resume`` of each is used when its ``last.pt`` exists) and independent, so
``--only NAME`` lets several processes share the work.

Run: ``python benchmarks/real_data_study.py --ycor ../shared/realdata/ycor --out runs/study``
then ``... --report docs/real_data_study`` to gather the table (.table.md) and plot (.png).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from dice_seg_ros.classes import load_classes
from dice_seg_ros.data.datasets import open_dataset
from dice_seg_ros.resources import resource_path
from dice_seg_ros.runtime.inference import Segmenter

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_metrics import interleaved_ms  # noqa: E402
from eval_real import real_confusion, save_study_report  # noqa: E402

# Fine-tuning must start from weights that never saw YCOR: the shipped default
# model learned YCOR train, the synthetic-only one did not.
SYNTHETIC_PT = str(resource_path("models/terrain_seg_synthetic.pt"))
INIT = "@init"
RUNS: dict[str, list[str]] = {
    "finetune": ["--init", INIT],
    "scratch": [],
    "fewshot50_finetune": ["--init", INIT, "--train-images", "50"],
    "fewshot50_scratch": ["--train-images", "50"],
    "scratch_w1.5": ["--width-mult", "1.5"],
    "scratch_w2": ["--width-mult", "2.0"],
}


def train_command(name: str, args: argparse.Namespace) -> list[str]:
    """Return the ``dice-seg train`` command line of run ``name``."""
    out = Path(args.out) / name
    cmd = [sys.executable, "-m", "dice_seg_ros.cli", "train", "--data", args.ycor,
           "--format", "ycor", "--split", "train", "--epochs", str(args.epochs),
           "--samples-per-epoch", str(args.samples), "--threads", str(args.threads),
           "--workers", "1", "--quiet", "--out", str(out),
           *(args.init if a == INIT else a for a in RUNS[name])]
    if (out / "last.pt").is_file():
        cmd += ["--resume", str(out / "last.pt")]
    return cmd


def run_one(name: str, args: argparse.Namespace) -> dict:
    """Train (or finish training) run ``name``, export it, score it; return its result."""
    out = Path(args.out) / name
    result_path = out / "result.json"
    if result_path.is_file():
        return json.loads(result_path.read_text())
    started = time.perf_counter()
    subprocess.run(train_command(name, args), check=True)
    train_s = time.perf_counter() - started
    onnx = out / "model.onnx"
    subprocess.run([sys.executable, "-m", "dice_seg_ros.cli", "export", "--checkpoint",
                    str(out / "best.pt"), "--out", str(onnx)], check=True)
    classes = load_classes()
    files = open_dataset(args.ycor, "ycor", classes, split="valid")
    cm, _ = real_confusion(Segmenter(onnx, "ort", "cpu", threads=2), files, quiet=True)
    import torch
    params = sum(v.numel() for k, v in torch.load(out / "best.pt", weights_only=True)
                 ["model"].items() if not k.endswith(("running_mean", "running_var",
                                                      "num_batches_tracked")))
    result = {"name": name, "dice": cm.dice().tolist(), "mean_dice_present":
              cm.mean_dice_present(), "mean_iou": cm.mean_iou(),
              "params": int(params), "train_s": train_s, "args": RUNS[name],
              "epochs": args.epochs, "samples_per_epoch": args.samples}
    result_path.write_text(json.dumps(result, indent=1))
    return result


def frame_ms(onnx_files: list[Path], rounds: int = 40) -> list[float]:
    """Median ms per 640x480 frame through ``Segmenter`` (ORT, 2 threads) of each model.

    The models run interleaved, one frame each per round, so all see the same
    machine load and their ratios hold on a busy machine.
    """
    frame = np.random.default_rng(0).integers(0, 256, (480, 640, 3), np.uint8)
    segmenters = [Segmenter(f, "ort", "cpu", threads=2) for f in onnx_files]
    timings = interleaved_ms({str(i): lambda s=s: s.segment(frame)
                              for i, s in enumerate(segmenters)}, rounds)
    return [timings[str(i)][0] for i in range(len(segmenters))]


def report(args: argparse.Namespace) -> None:
    """Write the Markdown table and a bar plot of every finished run."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = load_classes().names
    results = [json.loads((Path(args.out) / n / "result.json").read_text())
               for n in RUNS if (Path(args.out) / n / "result.json").is_file()]
    for result, ms in zip(results, frame_ms([Path(args.out) / r["name"] / "model.onnx"
                                             for r in results])):
        result["ms_640x480"] = ms
    lines = ["| run | params | ms/frame 640x480 | mean Dice (present) | "
             + " | ".join(names) + " |", "|---" * (len(names) + 4) + "|"]
    for r in results:
        lines.append(f"| {r['name']} | {r['params'] / 1e3:.0f} k | {r['ms_640x480']:.1f} | "
                     f"**{r['mean_dice_present']:.3f}** | "
                     + " | ".join(f"{d:.3f}" for d in r["dice"]) + " |")
    table = "\n".join(lines)
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / max(len(results), 1)
    for i, r in enumerate(results):
        ax.bar(np.arange(len(names)) + i * width, r["dice"], width, label=r["name"])
    ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2, names)
    ax.set(ylabel="Dice on YCOR valid", ylim=(0, 1))
    ax.legend(fontsize=7)
    save_study_report(fig, table, args.report)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ycor", help="YCOR folder (shared/realdata/ycor)")
    parser.add_argument("--out", default="runs/study")
    parser.add_argument("--only", nargs="*", choices=sorted(RUNS), help="runs to do")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--samples", type=int, default=800, help="samples per epoch")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--init", default=SYNTHETIC_PT,
                        help="weights the finetune runs start from (default: the shipped "
                             "synthetic-only model; docs/REAL_DATA_STUDY.md used the model "
                             "shipped before it, git show d67a805:models/terrain_seg.pt)")
    parser.add_argument("--report", help="write the table (.table.md) and plot (.png) here")
    args = parser.parse_args()
    if args.report:
        report(args)
        return
    for name in args.only or RUNS:
        print(json.dumps(run_one(name, args)), flush=True)


if __name__ == "__main__":
    main()
