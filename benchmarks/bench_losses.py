"""Benchmark multiclass Dice forward + backward: time and peak extra memory, CPU, 2 threads.

Compares ``dice_seg_ros.learn.losses.DiceLoss`` (fused, one-hot-free) with a one-hot formulation
written the way MONAI's DiceLoss computes it, and with MONAI's ``DiceLoss(to_onehot_y=True,
softmax=True)`` itself when MONAI is installed. Memory: each (method, size) runs in a fresh
subprocess started with ``MALLOC_MMAP_THRESHOLD_=65536`` so that freed tensors leave the resident
set; the peak extra memory is the peak RSS during one forward + backward minus the RSS once the
logits and target exist (the logits' gradient, allocated by the backward, is counted). Time: one
subprocess per size times the methods interleaved, round by round, and reports medians.

Usage: ``python benchmarks/bench_losses.py [--repeats N] [--threads T]`` (1-2 minutes on 2 cores).
On a shared, oversubscribed machine every parallel torch op waits for its second thread to be
scheduled, which penalises the fused loss (more, smaller ops) more than the baselines: compare
with ``--threads 1`` there.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

SIZES = ((4, 8, 256, 256), (2, 24, 512, 512))  # (B, C, H, W)
METHODS = ("dice_seg_ros", "onehot", "monai")
THREADS = 2  # torch intra-op threads in every worker (--threads overrides)


def onehot_dice(logits, target):
    """Multiclass Dice loss as MONAI computes it: softmax, one-hot target, sums over H, W."""
    import torch

    probs = torch.softmax(logits, dim=1)
    onehot = torch.zeros_like(probs).scatter_(1, target.unsqueeze(1), 1.0)
    axes = (2, 3)
    inter = (probs * onehot).sum(axes)
    total = probs.sum(axes) + onehot.sum(axes)
    return (1 - (2 * inter + 1e-5) / (total + 1e-5)).mean()


def build_loss(method: str):
    """Return a callable loss(logits, target) for one of METHODS."""
    if method == "dice_seg_ros":
        from dice_seg_ros.learn.losses import DiceLoss

        return DiceLoss()
    if method == "onehot":
        return onehot_dice
    from monai.losses import DiceLoss as MonaiDice

    monai_loss = MonaiDice(to_onehot_y=True, softmax=True)
    return lambda logits, target: monai_loss(logits, target.unsqueeze(1))


def _inputs(size: tuple[int, int, int, int]):
    """Return logits (requiring grad) and class ids of the given (B, C, H, W) size, seeded."""
    import torch

    batch, classes, height, width = size
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(size, generator=generator).requires_grad_()
    target = torch.randint(0, classes, (batch, height, width), generator=generator)
    return logits, target


def memory_worker(method: str, size: tuple[int, int, int, int], threads: int) -> dict:
    """Peak extra RSS (MiB) of one forward + backward, in this fresh process."""
    import torch
    from peak_rss import PeakRSS

    torch.set_num_threads(threads)
    loss_fn = build_loss(method)
    logits, target = _inputs(size)
    loss_fn(logits, target).backward()  # warm-up: lazy initialisation
    logits.grad = None
    with PeakRSS() as peak:
        loss_fn(logits, target).backward()
    return {"extra_mib": peak.extra_bytes / 2**20, "rss_method": peak.method,
            "grad_mib": logits.numel() * logits.element_size() / 2**20}


def timing_worker(methods: list[str], size: tuple[int, int, int, int], repeats: int,
                  threads: int) -> dict:
    """Median fwd+bwd time (ms) per method, the methods interleaved round by round.

    Interleaving spreads the load of a shared machine evenly over the methods, so their ratio
    is meaningful even when the absolute times are not.
    """
    import torch

    torch.set_num_threads(threads)
    losses = {method: build_loss(method) for method in methods}
    logits, target = _inputs(size)
    times: dict[str, list[float]] = {method: [] for method in methods}
    for round_index in range(repeats + 1):
        for method in methods:
            start = time.perf_counter()
            losses[method](logits, target).backward()
            logits.grad = None
            if round_index:  # round 0 is the warm-up
                times[method].append((time.perf_counter() - start) * 1e3)
    return {method: statistics.median(values) for method, values in times.items()}


def run_worker(threads: int, *args: str) -> dict:
    """Run this script with ``args`` in a fresh subprocess (mmap'd allocations); parse its JSON."""
    from peak_rss import MMAP_ENV

    env = {**os.environ, **MMAP_ENV, "OMP_NUM_THREADS": str(threads)}
    args = (*args, "--threads", str(threads))
    root = Path(__file__).resolve().parent.parent
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    result = subprocess.run([sys.executable, __file__, *args], env=env, capture_output=True,
                            text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"worker {args} failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def print_table(results: dict) -> None:
    """Print one row per (size, method) and the speed and memory ratios against this project."""
    print(f"{'B x C x H x W':<18}{'method':<14}{'fwd+bwd ms':>11}{'peak extra MiB':>16}"
          f"{'x grad':>8}{'time ratio':>12}{'mem ratio':>11}")
    for size in SIZES:
        ours = results[(size, "dice_seg_ros")]
        for method in METHODS:
            row = results.get((size, method))
            if row is None:
                print(f"{'x'.join(map(str, size)):<18}{method:<14}  (not installed)")
                continue
            print(f"{'x'.join(map(str, size)):<18}{method:<14}{row['median_ms']:>11.1f}"
                  f"{row['extra_mib']:>16.1f}{row['extra_mib'] / row['grad_mib']:>8.2f}"
                  f"{row['median_ms'] / ours['median_ms']:>12.2f}"
                  f"{row['extra_mib'] / ours['extra_mib']:>11.2f}")
    print("time ratio / mem ratio = method / dice_seg_ros (> 1: dice_seg_ros is faster / "
          "smaller); 'x grad' = peak extra memory in units of the logits' gradient size; "
          f"RSS peak via {ours['rss_method']}")


def available_methods() -> list[str]:
    """METHODS, without MONAI when it is not installed."""
    return [m for m in METHODS if m != "monai" or importlib.util.find_spec("monai") is not None]


def main() -> int:
    """Parse arguments; run as the coordinator (default) or as one measuring worker."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed fwd+bwd runs per method")
    parser.add_argument("--threads", type=int, default=THREADS, help="torch intra-op threads")
    parser.add_argument("--memory", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--timing", choices=METHODS, nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory:
        print(json.dumps(memory_worker(args.memory, tuple(args.size), args.threads)))
        return 0
    if args.timing:
        print(json.dumps(timing_worker(args.timing, tuple(args.size), args.repeats,
                                       args.threads)))
        return 0
    methods = available_methods()
    results = {}
    for size in SIZES:
        size_args = ["--size", *map(str, size)]
        times = run_worker(args.threads, "--timing", *methods, *size_args,
                           "--repeats", str(args.repeats))
        for method in methods:
            memory = run_worker(args.threads, "--memory", method, *size_args)
            results[(size, method)] = {"median_ms": times[method], **memory}
    print(f"torch threads: {args.threads}, repeats: {args.repeats}")
    print_table(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
