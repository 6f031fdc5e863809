"""Frames per second of the shipped network at camera resolution, ORT vs torch eager.

Both back ends run the same pipeline through ``Segmenter`` on 640x480 RGB
frames: resize to the network input, normalise, infer, argmax, resize the
class ids back to 640x480. Baseline: PyTorch eager on the same CPU threads,
measured in the same run and interleaved round by round, so both see the same
load on a shared machine. Goal: >= 15 fps on a 2-core CPU through ONNX Runtime.

Imports bench_metrics.py's timing helper, so run it as a file from any directory.

Run: ``python benchmarks/bench_model_fps.py [--frames 40] [--threads 2] [--device cpu]``
"""

import argparse
import itertools

from bench_metrics import interleaved_ms

from dice_seg_ros.data.synthetic import generate_scene
from dice_seg_ros.inference import Segmenter
from dice_seg_ros.resources import DEFAULT_MODEL, DEFAULT_TORCH_MODEL, resource_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=40, help="timed frames per back end")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads per back end")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    args = parser.parse_args()

    frames = [generate_scene(3_000_000 + i, args.width, args.height)[0] for i in range(8)]
    backends = {
        "onnxruntime": Segmenter(resource_path(DEFAULT_MODEL), "ort", args.device,
                                 threads=args.threads),
        "torch eager": Segmenter(resource_path(DEFAULT_TORCH_MODEL), "torch", args.device,
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


if __name__ == "__main__":
    main()
