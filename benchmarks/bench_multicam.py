"""Many cameras, one network: one process batching N cameras vs N separate Segmenters.

For 1, 2 and 4 cameras at 640x480, free-running (each frame as soon as the
previous one is done), prints total throughput (frames/s over all cameras) and
per-frame latency (mean and max ms, a frame's time from entering the model
call to its mask) for
- batched: one ``SegmentationWorker`` (one Segmenter) segmenting the newest
  frame of every camera in one ``segment_batch`` call per cycle;
- separate: N processes with one Segmenter each, as N single-camera nodes;
and the throughput ratio batched / separate measured in the same run. Anchor
(issue 10): eight single-camera nodes sharing one GPU took 43.6 ms mean /
102 ms max per frame against 16 ms for one (Autoware PR 8165).

Run: ``python benchmarks/bench_multicam.py [--model M] [--seconds 4] [--threads 2]``
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time
from pathlib import Path

import numpy as np

from dice_seg_ros.bags.bag_io import make_header, msg_class
from dice_seg_ros.classes import classes_for_model
from dice_seg_ros.data.synthetic import generate_scene
from dice_seg_ros.ros.segmentation_core import SegmentationWorker
from dice_seg_ros.ros.segmentation_core import FrameProcessor
from dice_seg_ros.runtime.image_conversion import numpy_to_image
from dice_seg_ros.runtime.inference import Segmenter

CAMERAS = (1, 2, 4)
WIDTH, HEIGHT = 640, 480


def scenes(count: int) -> list[np.ndarray]:
    """Return ``count`` different 640x480 RGB scenes, one per camera."""
    return [generate_scene(100 + k, WIDTH, HEIGHT)[0] for k in range(count)]


def batched(model: Path | None, device: str, threads: int, cameras: int,
            seconds: float) -> tuple[int, list[float]]:
    """Run one worker over ``cameras`` cameras for ``seconds``; return (frames, latencies ms)."""
    segmenter = Segmenter(model, device=device, threads=threads)
    processor = FrameProcessor(segmenter, classes_for_model(segmenter.meta.class_names),
                               msg_class("sensor_msgs/msg/Image"))
    names = [f"camera{k}" for k in range(cameras)]
    worker = SegmentationWorker(processor, names, publish=lambda camera, result: None)
    frames = {name: numpy_to_image(rgb, "rgb8", make_header(0, name),
                                   msg_class("sensor_msgs/msg/Image"))
              for name, rgb in zip(names, scenes(cameras))}

    def cycle() -> None:
        for name, rgb in frames.items():
            worker.submit(name, rgb)
        worker.step(timeout=0)

    cycle()  # warm-up: the first run allocates
    latencies, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end:
        cycle()
        latencies.extend([worker.last_cycle_ms] * cameras)
    return len(latencies), latencies


def _single(args: tuple) -> list[float]:
    """One single-camera 'node' (its own process): latencies in ms over ``seconds``."""
    model, device, threads, index, seconds, barrier = args
    segmenter = Segmenter(model, device=device, threads=threads)
    rgb = scenes(index + 1)[index]
    segmenter.segment(rgb)
    barrier.wait()
    latencies, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        segmenter.segment(rgb)
        latencies.append((time.perf_counter() - start) * 1000.0)
    return latencies


def separate(model: Path | None, device: str, threads: int, cameras: int,
             seconds: float) -> tuple[int, list[float]]:
    """Run ``cameras`` single-camera processes at once; return (frames, latencies ms)."""
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        barrier = manager.Barrier(cameras)
        with context.Pool(cameras) as pool:
            runs = pool.map(_single, [(model, device, threads, k, seconds, barrier)
                                      for k in range(cameras)])
    latencies = [ms for run in runs for ms in run]
    return len(latencies), latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="default: the shipped model")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads each")
    parser.add_argument("--seconds", type=float, default=4.0, help="run time per case")
    args = parser.parse_args()
    print(f"{WIDTH}x{HEIGHT}, {args.device}, {args.threads} threads per Segmenter, "
          f"{args.seconds:g} s per case, free-running")
    for cameras in CAMERAS:
        figures = {}
        for name, run in (("batched", batched), ("separate", separate)):
            frames, latencies = run(args.model, args.device, args.threads, cameras,
                                    args.seconds)
            figures[name] = frames / args.seconds
            print(f"{cameras} camera(s) {name:>8}: {frames / args.seconds:6.1f} frames/s total, "
                  f"latency mean {statistics.fmean(latencies):6.1f} ms, "
                  f"max {max(latencies):6.1f} ms")
        print(f"{cameras} camera(s): throughput batched / separate = "
              f"{figures['batched'] / figures['separate']:.2f}")


if __name__ == "__main__":
    main()
