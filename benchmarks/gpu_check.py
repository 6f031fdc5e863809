"""Every GPU path of the package in one run, one table; says so and exits 0 without CUDA.

On a machine with CUDA (install per README "On a robot"), for the shipped model
(or ``--model``/``--checkpoint``) through the full ``Segmenter``:
- ONNX Runtime TensorRT (fp16, engine cache on): time to the first mask on a
  cold start and on a second start (the cache hit), fps at 640x480 and 1280x720;
- ONNX Runtime CUDA (I/O binding): fps at both sizes;
- PyTorch CUDA (fp16 autocast, channels_last): fps at both sizes;
each with its mask agreement against the CPU path (ONNX Runtime CPU), and a
few AMP training steps (fp16 autocast + GradScaler, Dice+CE) with the loss
checked finite. Goal (issue 10): >= 300 fps at 640x480 through the full
Segmenter on a datacenter GPU.

Run: ``python benchmarks/gpu_check.py [--frames 200] [--steps 5]``
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from dice_seg_ros.data.synthetic import generate_scene
from dice_seg_ros.resources import DEFAULT_TORCH_MODEL, resource_path
from dice_seg_ros.runtime.inference import Segmenter, preprocess

SIZES = ((640, 480), (1280, 720))
TRT_CACHE = Path.home() / ".cache" / "dice_seg_ros" / "tensorrt"


def cuda_status() -> tuple[bool, bool, list[str]]:
    """Return (ORT has a CUDA provider, torch sees a CUDA GPU, ORT providers)."""
    import onnxruntime as ort

    providers = ort.get_available_providers()
    try:
        import torch
        torch_cuda = torch.cuda.is_available()
    except ImportError:
        torch_cuda = False
    return "CUDAExecutionProvider" in providers, torch_cuda, providers


def fps(segmenter: Segmenter, rgb: np.ndarray, frames: int) -> float:
    """Return full-Segmenter frames per second on ``rgb`` after a warm-up."""
    for _ in range(5):
        segmenter.segment(rgb)
    start = time.perf_counter()
    for _ in range(frames):
        segmenter.segment(rgb)
    return frames / (time.perf_counter() - start)


def agreement(segmenter: Segmenter, reference: dict[tuple[int, int], np.ndarray],
              images: dict[tuple[int, int], np.ndarray]) -> float:
    """Return the fraction (0..1) of pixels whose class equals the CPU path's, over all sizes."""
    same = total = 0
    for size, rgb in images.items():
        ids = segmenter.segment(rgb).class_ids
        same += int((ids == reference[size]).sum())
        total += ids.size
    return same / total


def timed_start(factory: Any, rgb: np.ndarray) -> tuple[Segmenter, float]:
    """Build a Segmenter and run one frame; return it and the seconds to the first mask."""
    start = time.perf_counter()
    segmenter = factory()
    segmenter.segment(rgb)
    return segmenter, time.perf_counter() - start


def amp_training(checkpoint: Path, steps: int) -> tuple[list[float], float]:
    """Run ``steps`` AMP training steps on generated scenes; return losses and ms per step."""
    import torch

    from dice_seg_ros.learn.losses import make_loss
    from dice_seg_ros.runtime.model import load_checkpoint

    model, meta = load_checkpoint(checkpoint, map_location="cuda")
    model = model.train().to(memory_format=torch.channels_last)
    loss_fn = make_loss("dice_ce", meta.num_classes, ignore_index=255)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler("cuda")
    scenes = [generate_scene(500 + k, meta.input_width, meta.input_height) for k in range(8)]
    images = torch.from_numpy(preprocess([s[0] for s in scenes], meta,
                                         (meta.input_width, meta.input_height))).cuda()
    labels = torch.from_numpy(np.stack([s[1] for s in scenes]).astype(np.int64)).cuda()
    losses = []
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        optimiser.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.float16):
            loss = loss_fn(model(images.contiguous(memory_format=torch.channels_last)), labels)
        scaler.scale(loss).backward()
        scaler.step(optimiser)
        scaler.update()
        losses.append(float(loss))
    torch.cuda.synchronize()
    return losses, (time.perf_counter() - start) * 1000.0 / steps


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="ONNX model; default shipped")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="torch checkpoint; default the shipped .pt")
    parser.add_argument("--frames", type=int, default=200, help="frames per fps figure")
    parser.add_argument("--steps", type=int, default=5, help="AMP training steps")
    args = parser.parse_args()
    ort_cuda, torch_cuda, providers = cuda_status()
    if not (ort_cuda or torch_cuda):
        print(f"no CUDA here (ONNX Runtime providers: {', '.join(providers)}; torch CUDA: "
              f"no): nothing to check. Install the GPU builds per README 'On a robot'.")
        return 0
    checkpoint = args.checkpoint or resource_path(DEFAULT_TORCH_MODEL)
    images = {size: generate_scene(7, *size)[0] for size in SIZES}
    cpu = Segmenter(args.model, device="cpu")
    reference = {size: cpu.segment(rgb).class_ids for size, rgb in images.items()}
    rows: list[tuple[str, str, str, str, str]] = []

    def row(name: str, segmenter: Segmenter, start_note: str) -> None:
        rates = [f"{fps(segmenter, images[size], args.frames):.0f}" for size in SIZES]
        rows.append((name, start_note, *rates,
                     f"{100 * agreement(segmenter, reference, images):.3f}"))

    if "TensorrtExecutionProvider" in providers:
        def trt() -> Segmenter:
            return Segmenter(args.model, device="cuda",
                             providers=["TensorrtExecutionProvider", "CUDAExecutionProvider"])

        # The first start builds the engine unless an earlier run cached it
        # (~/.cache/dice_seg_ros/tensorrt); the second must hit the cache.
        _, first = timed_start(trt, images[SIZES[0]])
        segmenter, second = timed_start(trt, images[SIZES[0]])
        cached = len(list(TRT_CACHE.glob("*")))
        row("ORT TensorRT fp16", segmenter,
            f"{first:.1f} s first / {second:.1f} s second start ({cached} cache files)")
    else:
        rows.append(("ORT TensorRT fp16", "provider not installed", "-", "-", "-"))
    if ort_cuda:
        row("ORT CUDA (I/O binding)",
            Segmenter(args.model, device="cuda", providers=["CUDAExecutionProvider"]), "-")
    if torch_cuda:
        row("torch CUDA fp16 channels_last",
            Segmenter(checkpoint, backend="torch", device="cuda"), "-")
    width = max(len(r[1]) for r in rows)
    print(f"{'path':<30} {'start':<{width}} {'fps 640x480':>12} {'fps 1280x720':>13} "
          f"{'agree % vs CPU':>15}")
    for name, start, *figures in rows:
        print(f"{name:<30} {start:<{width}} {figures[0]:>12} {figures[1]:>13} {figures[2]:>15}")
    print("goal: >= 300 fps at 640x480 through the full Segmenter on a datacenter GPU")
    if torch_cuda:
        losses, step_ms = amp_training(checkpoint, args.steps)
        finite = all(math.isfinite(v) for v in losses)
        print(f"AMP training, {args.steps} steps of batch 8: loss "
              f"{' '.join(f'{v:.4f}' for v in losses)}, {step_ms:.1f} ms/step, "
              f"{'finite' if finite else 'NOT FINITE'}")
        return 0 if finite else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
