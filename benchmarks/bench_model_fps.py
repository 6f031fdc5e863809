"""Frames per second of the shipped network at camera resolution, ORT vs torch eager.

Both back ends run the same pipeline through ``Segmenter`` on 640x480 RGB
frames: resize to the network input, normalise, infer, argmax, resize the
class ids back to 640x480. Baseline: PyTorch eager on the same CPU threads,
measured in the same run and interleaved round by round, so both see the same
load on a shared machine. Goal: >= 15 fps on a 2-core CPU through ONNX Runtime.

Also prints the network's size (parameters, GFLOP per frame from torch's FLOP
counter) and the cost of generating one training scene, the figures
docs/MODEL.md quotes.

Imports bench_metrics.py's timing helper, so run it as a file from any directory.

Run: ``python benchmarks/bench_model_fps.py [--frames 40] [--threads 2] [--device cpu]
[--model M.onnx]``
"""

import argparse
import itertools
from pathlib import Path

import torch
from bench_metrics import interleaved_ms
from torch.utils.flop_counter import FlopCounterMode

from dice_seg_ros.data.synthetic import generate_scene
from dice_seg_ros.resources import DEFAULT_MODEL, resource_path
from dice_seg_ros.runtime.inference import Segmenter
from dice_seg_ros.runtime.model import load_checkpoint


def print_model_size(checkpoint: Path) -> None:
    """Print parameter count and forward GFLOP per frame of a network checkpoint."""
    model, meta = load_checkpoint(checkpoint)
    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        model(torch.zeros(1, 3, meta.input_height, meta.input_width))
    params = sum(p.numel() for p in model.parameters())
    print(f"network: {params / 1e3:.0f} k parameters, "
          f"{counter.get_total_flops() / 1e9:.3f} GFLOP per {meta.input_width}x"
          f"{meta.input_height} frame")


def print_scene_cost(width: int, height: int, scenes: int = 10) -> None:
    """Print the median time of generating one terrain scene, in ms."""
    seeds = itertools.count(4_000_000)
    (median, low), = interleaved_ms({"scene": lambda: generate_scene(next(seeds), width,
                                                                     height)}, scenes).values()
    print(f"generate_scene {width}x{height}: median {median:.1f} ms  min {low:.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=40, help="timed frames per back end")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads per back end")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--model", type=Path, default=resource_path(DEFAULT_MODEL),
                        help="ONNX model; torch runs the .pt beside it (default: shipped)")
    args = parser.parse_args()

    frames = [generate_scene(3_000_000 + i, args.width, args.height)[0] for i in range(8)]
    backends = {
        "onnxruntime": Segmenter(args.model, "ort", args.device, threads=args.threads),
        "torch eager": Segmenter(args.model.with_suffix(".pt"), "torch", args.device,
                                 threads=args.threads),
    }
    for segmenter in backends.values():
        for frame in frames[:2]:
            segmenter.segment(frame)  # warm-up: allocation and kernel selection
    # Round-robin, one frame per back end per round, so both see the same machine load.
    timings = interleaved_ms({name: lambda s=segmenter, it=itertools.cycle(frames):
                              s.segment(next(it)) for name, segmenter in backends.items()},
                             args.frames)

    meta = backends["onnxruntime"].meta
    print(f"{args.width}x{args.height} frames -> network {meta.input_width}x{meta.input_height}"
          f", {args.threads} threads, {args.frames} frames each")
    medians = {name: median for name, (median, _) in timings.items()}
    for name, segmenter in backends.items():
        print(f"  {name:12s} on {segmenter.device:22s} median {medians[name]:7.2f} ms  "
              f"({1000.0 / medians[name]:6.1f} fps)  min {timings[name][1]:7.2f} ms")
    print(f"  speed-up ORT / torch eager: {medians['torch eager'] / medians['onnxruntime']:.2f}x")
    print_model_size(args.model.with_suffix(".pt"))
    print_scene_cost(args.width, args.height)
    print_scene_cost(meta.input_width, meta.input_height)


if __name__ == "__main__":
    main()
