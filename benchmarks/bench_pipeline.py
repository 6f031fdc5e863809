"""Segmentation pipeline timings: per-stage latency and bag replay throughput.

1. Per-stage latency (decode, pre, infer, post; median ms) of the shipped model
   through ONNX Runtime on CPU at 640x480 and 1280x720, and the overhead ratio
   (decode + pre + post) / infer -- the goal is < 0.20: the code around the
   network should cost a fifth of the network or less. Decode is an rgb8
   ``sensor_msgs/Image`` (and, for reference, a JPEG CompressedImage). The
   Segmenter's own host share, (pre + post) / infer, has its own goals: < 0.15
   at 640x480 and < 0.20 at 1280x720. The same
   weights exported the older way (float input, float logits out; host
   normalisation and argmax) run beside it as the baseline, with the mask
   agreement between the two (goal >= 99.9 %). The shipped model runs as the
   node runs it by default: with its label-free Dice estimate (its calibration
   sidecar), without the published confidence image; the float-logits file has
   no calibration, so it estimates nothing. ``--model`` replaces the shipped
   ONNX file (the baseline then needs ``--checkpoint``).
2. Replay throughput of ``dice-seg eval`` (frames per second over a generated
   640x480 bag, without the output bag and with it) at batch 1, 4 and 8, as a
   ratio against batch 1 measured in the same run.

Imports bench_metrics.py's timing helper, so run it as a file from any directory.

Run: ``python benchmarks/bench_pipeline.py [--model M] [--threads 2] [--frames 24]
[--latency-only]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np
from bench_metrics import interleaved_ms

from dice_seg_ros.bags.bag_io import make_header, msg_class
from dice_seg_ros.bags.evaluate import EvalOptions, evaluate_bag
from dice_seg_ros.bags.synthetic_bag import IMAGE_TOPIC, LABEL_TOPIC, write_synthetic_bag
from dice_seg_ros.data.synthetic import generate_scene
from dice_seg_ros.resources import DEFAULT_TORCH_MODEL, resource_path
from dice_seg_ros.runtime.image_conversion import msg_to_rgb, numpy_to_compressed, numpy_to_image
from dice_seg_ros.runtime.inference import Segmenter

SIZES = ((640, 480), (1280, 720))
# Goal for the Segmenter's (pre + post) / infer at each camera size (width, height).
HOST_GOALS = {(640, 480): 0.15, (1280, 720): 0.20}


def stage_latency(segmenters: dict[str, Segmenter], width: int, height: int,
                  repeats: int) -> None:
    """Print median ms per stage and the overhead ratio at one camera resolution, per model."""
    rgb, _ = generate_scene(1, width, height)
    header = make_header(0, "camera")
    raw = numpy_to_image(rgb, "rgb8", header, msg_class("sensor_msgs/msg/Image"))
    jpeg = numpy_to_compressed(rgb, header, msg_class("sensor_msgs/msg/CompressedImage"))
    decode_ms = interleaved_ms({"raw": lambda: msg_to_rgb(raw),
                                "jpeg": lambda: msg_to_rgb(jpeg)}, repeats)
    decode, decode_jpeg = decode_ms["raw"][0], decode_ms["jpeg"][0]
    masks = {}
    for name, segmenter in segmenters.items():
        masks[name] = segmenter.segment(rgb).class_ids  # warm-up: first ORT run allocates
        runs = [segmenter.segment(rgb).timings_ms for _ in range(repeats)]
        stage = {k: statistics.median(r[k] for r in runs) for k in ("pre", "infer", "post")}
        overhead = decode + stage["pre"] + stage["post"]
        print(f"{width}x{height} {name:>12}: decode {decode:.2f} (jpeg {decode_jpeg:.2f})  "
              f"pre {stage['pre']:.2f}  infer {stage['infer']:.2f}  post {stage['post']:.2f}"
              f"  total {overhead + stage['infer']:.2f} ms  -> (decode+pre+post)/infer = "
              f"{overhead / stage['infer']:.3f} (goal < 0.20); (pre+post)/infer = "
              f"{(stage['pre'] + stage['post']) / stage['infer']:.3f} "
              f"(goal < {HOST_GOALS.get((width, height), 0.20):.2f})")
    if len(masks) == 2:
        first, second = masks.values()
        print(f"{width}x{height} mask agreement in-graph vs baseline: "
              f"{100 * float(np.mean(first == second)):.3f} % (goal >= 99.9 %)")


def baseline_model(checkpoint: Path, folder: Path) -> Path:
    """Export ``checkpoint`` the older way (float NCHW in, logits out) into ``folder``."""
    from dice_seg_ros.learn.export import IO_FLOAT_LOGITS, export_checkpoint

    return export_checkpoint(checkpoint, folder / "float_logits.onnx", io=IO_FLOAT_LOGITS)[0]


def throughput(segmenter: Segmenter, bag: Path, frames: int) -> None:
    """Print replay fps at batch 1, 4, 8 without and with the output bag."""
    with tempfile.TemporaryDirectory() as tmp:
        for output_bag in (False, True):
            base = None
            for batch in (1, 4, 8):
                result = evaluate_bag(bag, IMAGE_TOPIC, LABEL_TOPIC, Path(tmp) / f"b{batch}",
                                      segmenter, EvalOptions(batch_size=batch,
                                                             output_bag=output_bag,
                                                             progress=False))
                fps = result.report["fps"]
                base = base or fps
                stages = ", ".join(f"{k} {v:.1f}" for k, v in result.report["latency_ms"].items())
                state = "on " if output_bag else "off"
                print(f"replay {frames} frames 640x480, output bag {state} batch {batch}: "
                      f"{fps:5.1f} fps  x{fps / base:.2f} vs batch 1   (ms/frame: {stages})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="default: the shipped model")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="weights of --model for the float-logits baseline "
                             "(default: the shipped .pt when --model is not given)")
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--frames", type=int, default=24, help="frames in the replay bag")
    parser.add_argument("--latency-only", action="store_true",
                        help="per-stage latency only, no bag replay")
    args = parser.parse_args()
    segmenter = Segmenter(args.model, device="cpu", threads=args.threads)
    print(f"model {segmenter.source}: input {segmenter.input_size[0]}x"
          f"{segmenter.input_size[1]}, {segmenter.device}, {args.threads} threads, "
          f"{'uint8 pixels in' if segmenter.io.raw_input else 'float input'}, "
          f"{'class ids out' if segmenter.io.ids_output else 'logits out'}, estimated Dice "
          f"{'on' if segmenter.calibration is not None else 'off (no calibration)'}")
    checkpoint = args.checkpoint or (resource_path(DEFAULT_TORCH_MODEL) if args.model is None
                                     else None)
    with tempfile.TemporaryDirectory() as tmp:
        segmenters = {"in-graph": segmenter}
        if checkpoint is not None:
            segmenters["float-logits"] = Segmenter(baseline_model(checkpoint, Path(tmp)),
                                                   device="cpu", threads=args.threads)
        for width, height in SIZES:
            stage_latency(segmenters, width, height, args.repeats)
    if args.latency_only:
        return
    with tempfile.TemporaryDirectory() as tmp:
        bag = write_synthetic_bag(Path(tmp) / "bag", args.frames, 640, 480, progress=False)
        throughput(segmenter, bag, args.frames)


if __name__ == "__main__":
    main()
