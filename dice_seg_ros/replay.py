"""``dice-seg eval``: evaluate a segmentation model on a labeled rosbag.

Reads image and label topics, pairs them by header stamp, segments each image,
scores it against its label with :class:`~dice_seg_ros.metrics.DiceTracker`
(the same code the online monitor uses), and writes a report (JSON, CSV, plots)
plus an MCAP bag with the original images and the predicted masks at the
original stamps, for Foxglove or ``ros2 bag play`` into RViz.

Output topics, next to the camera's namespace (``/camera/image_raw`` ->
``/camera/dice_seg/...``): ``mask`` (mono8 class ids), ``mask_color`` (rgb8
class colours), ``overlay`` (rgb8 blend of image and colours), plus the image
topic itself.

Ctrl-C or a corrupt message part-way through still writes the report for every
frame done; ``report.json`` says what stopped the run (``stopped_by``).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from dice_seg_ros.bag_io import (IMAGE_TYPE, IMAGE_TYPES, BagReader, BagWriter, Pair,
                                 StampPairer, header_stamp_ns, msg_class,
                                 remove_old_bag)
from dice_seg_ros.classes import ClassSet, load_classes
from dice_seg_ros.errors import DiceSegError, ModelError
from dice_seg_ros.image_conversion import (colorize, labels_to_ids, msg_to_rgb,
                                           numpy_to_image, overlay)
from dice_seg_ros.inference import Segmenter
from dice_seg_ros.metrics import DiceTracker
from dice_seg_ros.quality import Calibration, calibration_for_model
from dice_seg_ros.quality_report import write_quality_report
from dice_seg_ros.report import write_report

OUTPUT_BAG = "output_bag"
OVERLAY_ALPHA = 0.5
# Per-frame stages in report.json "latency_ms": read = bag read + CDR deserialise
# (image and label), decode = image message -> RGB, labels = label message -> ids
# with validation, pre/infer/post = Segmenter, write = output bag.
STAGES = ("read", "decode", "labels", "pre", "infer", "post", "write")


def output_topics(image_topic: str) -> dict[str, str]:
    """Return the output topic names for ``image_topic`` (see the module docstring)."""
    base = image_topic.rstrip("/")
    base = base[: -len("/compressed")] if base.endswith("/compressed") else base
    namespace = base.rsplit("/", 1)[0] if "/" in base.lstrip("/") else ""
    return {name: f"{namespace}/dice_seg/{name}" for name in ("mask", "mask_color", "overlay")}


@dataclass
class Frame:
    """A decoded image/label pair; stamps in ns, arrays at the camera's resolution."""

    stamp_ns: int
    log_time_ns: int
    image_msg: Any
    rgb: np.ndarray
    labels: np.ndarray


@dataclass
class StageClock:
    """Accumulated milliseconds per pipeline stage."""

    total_ms: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))

    def add(self, stage: str, ms: float) -> None:
        """Add ``ms`` milliseconds to ``stage``."""
        self.total_ms[stage] += ms

    def mean(self, frames: int) -> dict[str, float]:
        """Return mean ms per frame for each stage and their sum ("total")."""
        means = {k: v / frames if frames else 0.0 for k, v in self.total_ms.items()}
        means["total"] = sum(means.values())
        return means


class _OutputBag:
    """The MCAP bag of images, masks, colour masks and overlays."""

    def __init__(self, path: Path, image_topic: str, image_type: str,
                 classes: ClassSet) -> None:
        remove_old_bag(path)
        self.path = path
        self.image_topic = image_topic
        self.topics = output_topics(image_topic)
        self.palette = classes.palette()
        self.image_cls = msg_class(IMAGE_TYPE)
        self.bag = BagWriter(path, storage="mcap")
        self.bag.add_topic(image_topic, image_type)
        for topic in self.topics.values():
            self.bag.add_topic(topic, IMAGE_TYPE)

    def write(self, frame: Frame, class_ids: np.ndarray) -> None:
        """Write the frame's image and its mask, colour mask and overlay, at its stamps."""
        header = frame.image_msg.header
        color = colorize(class_ids, self.palette)
        blend = overlay(frame.rgb, color, OVERLAY_ALPHA)
        write = self.bag.write
        write(self.image_topic, frame.log_time_ns, frame.image_msg)
        write(self.topics["mask"], frame.log_time_ns,
              numpy_to_image(class_ids, "mono8", header, self.image_cls))
        write(self.topics["mask_color"], frame.log_time_ns,
              numpy_to_image(color, "rgb8", header, self.image_cls))
        write(self.topics["overlay"], frame.log_time_ns,
              numpy_to_image(blend, "rgb8", header, self.image_cls))

    def close(self) -> None:
        """Close the bag, writing its metadata."""
        self.bag.close()


class Replay:
    """Decode, segment, score and record pairs of one bag; keeps all running state."""

    def __init__(self, segmenter: Segmenter, classes: ClassSet, label_format: str,
                 image_topic: str, label_topic: str, output: _OutputBag | None,
                 batch_size: int, progress: tqdm | None = None,
                 calibration: Calibration | None = None) -> None:
        self.segmenter = segmenter
        self.classes = classes
        self.label_format = label_format
        self.image_topic = image_topic
        self.label_topic = label_topic
        self.output = output
        self.batch_size = batch_size
        self.progress = progress
        self.tracker = DiceTracker(classes.num_classes, ignore_index=classes.ignore_index)
        self.clock = StageClock()
        self.batch: list[Frame] = []
        # Label-free estimated mean Dice per scored frame, when a calibration is given.
        self.calibration = calibration
        self.estimated: list[float] = []

    def decode(self, image_stamp: int, image: tuple[int, Any], label: tuple[int, Any]) -> Frame:
        """Convert one pair to arrays; errors name the topic, stamp and sizes."""
        start = time.perf_counter()
        log_time, image_msg = image
        try:
            rgb = msg_to_rgb(image_msg)
        except ValueError as exc:
            raise type(exc)(f"{self.image_topic} at stamp {image_stamp} ns: {exc}") from exc
        decoded = time.perf_counter()
        label_stamp = header_stamp_ns(label[1])
        try:
            labels = labels_to_ids(label[1], self.label_format, self.classes)
        except ValueError as exc:
            raise type(exc)(f"{self.label_topic} at stamp {label_stamp} ns: {exc}") from exc
        if labels.shape != rgb.shape[:2]:
            raise ValueError(
                f"label {self.label_topic} at stamp {label_stamp} ns is "
                f"{labels.shape[1]}x{labels.shape[0]} px but image {self.image_topic} at "
                f"stamp {image_stamp} ns is {rgb.shape[1]}x{rgb.shape[0]} px")
        self.clock.add("decode", (decoded - start) * 1000.0)
        self.clock.add("labels", (time.perf_counter() - decoded) * 1000.0)
        return Frame(image_stamp, log_time, image_msg, rgb, labels)

    def add(self, frame: Frame) -> None:
        """Queue a decoded frame; run the batch when it is full."""
        self.batch.append(frame)
        if len(self.batch) >= self.batch_size:
            self.finish_batch()

    def finish_batch(self) -> None:
        """Segment, score and record the queued frames."""
        if not self.batch:
            return
        # Dequeue only after inference: frames of an interrupted batch stay queued.
        results = self.segmenter.segment_batch([f.rgb for f in self.batch])
        estimates = self._estimates()
        frames, self.batch = self.batch, []
        self.estimated += estimates
        for frame, result in zip(frames, results):
            for stage, ms in result.timings_ms.items():
                self.clock.add(stage, ms)
            scores = self.tracker.update(result.class_ids, frame.labels, frame.stamp_ns)
            if self.output is not None:
                start = time.perf_counter()
                self.output.write(frame, result.class_ids)
                self.clock.add("write", (time.perf_counter() - start) * 1000.0)
            if self.progress is not None:
                self.progress.update()
                self.progress.set_postfix(mean_dice=f"{scores.mean_dice:.3f}",
                                          cumulative=f"{self.tracker.cumulative.mean_dice():.3f}",
                                          refresh=False)

    def _estimates(self) -> list[float]:
        """Return the queued frames' estimated mean Dice (empty without a calibration)."""
        if self.calibration is None:
            return []
        probs = self.segmenter.probabilities([f.rgb for f in self.batch])
        return [self.calibration.estimate(p) for p in probs]


@dataclass
class ReplayResult:
    """What ``evaluate_bag`` produced: the report dict, file paths, and why it stopped."""

    report: dict[str, Any]
    paths: dict[str, Path]
    stopped_by: str | None
    error: BaseException | None


def _score_pairs(replay: Replay, pairs: list[Pair]) -> None:
    """Decode paired messages and queue them for segmentation."""
    for pair in pairs:
        replay.add(replay.decode(pair.image_stamp_ns, pair.image, pair.label))


def _stream(reader: BagReader, replay: Replay, pairer: StampPairer) -> None:
    """Feed every image/label message through pairing into ``replay``, to the end."""
    messages = reader.messages([replay.image_topic, replay.label_topic])
    while True:
        start = time.perf_counter()
        message = next(messages, None)
        replay.clock.add("read", (time.perf_counter() - start) * 1000.0)
        if message is None:
            break
        stamp = header_stamp_ns(message.msg)
        item = (message.log_time_ns, message.msg)
        if message.topic == replay.image_topic:
            _score_pairs(replay, pairer.add_image(stamp, item))
        else:
            _score_pairs(replay, pairer.add_label(stamp, item))
    _score_pairs(replay, pairer.flush())
    replay.finish_batch()


def _salvage(replay: Replay, pairer: StampPairer) -> int:
    """After a stop, score every pair already read; return how many could not be."""
    failed = 0
    for pair in pairer.flush():
        try:
            _score_pairs(replay, [pair])
        except (DiceSegError, ValueError):
            failed += 1
    queued = len(replay.batch)
    try:
        replay.finish_batch()
    except (DiceSegError, ValueError):
        failed += queued
    return failed


def evaluate_bag(bag: str | Path, image_topic: str, label_topic: str, out_dir: str | Path,
                 segmenter: Segmenter | None = None, label_format: str = "ids",
                 max_offset_ms: float = 20.0, batch_size: int = 1, output_bag: bool = True,
                 progress: bool = True, estimated_dice: bool = False) -> ReplayResult:
    """Evaluate ``segmenter`` (default: the shipped model) on a labeled bag.

    Writes the report files into ``out_dir`` (and ``out_dir/output_bag`` unless
    ``output_bag`` is False) even when the run stops early; ``result.error`` is
    then the exception that stopped it (None for Ctrl-C, see ``stopped_by``).
    ``estimated_dice`` also estimates each frame's mean Dice without its label
    (the model's calibration sidecar, see :mod:`dice_seg_ros.quality`) and
    reports it beside the true one (estimated_dice.csv, a scatter plot, and
    ``estimated_dice`` in report.json: frames, MAE, Spearman).

    Raises:
        FileNotFoundError, BagError, ModelError, ValueError: before any frame is
            read (missing bag, missing topic or wrong type, bad model, bad options).

    """
    if image_topic == label_topic:
        raise ValueError(f"image and label topic are the same ({image_topic!r})")
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    if label_format not in ("ids", "color"):
        raise ValueError(f"label format must be 'ids' or 'color', got {label_format!r}")
    classes = load_classes()
    segmenter = segmenter or Segmenter()
    calibration = _calibration(segmenter) if estimated_dice else None
    out = Path(out_dir)
    with BagReader(bag) as reader:
        image_type = reader.check_topic(image_topic, IMAGE_TYPES)
        reader.check_topic(label_topic, IMAGE_TYPES)
        out.mkdir(parents=True, exist_ok=True)
        output = (_OutputBag(out / OUTPUT_BAG, image_topic, image_type, classes)
                  if output_bag else None)
        bar = tqdm(total=reader.message_count(image_topic), desc="eval", unit="frame",
                   disable=not progress)
        replay = Replay(segmenter, classes, label_format, image_topic, label_topic, output,
                        batch_size, bar, calibration)
        pairer: StampPairer = StampPairer(max_offset_ms)
        stopped_by, error, not_evaluated = None, None, 0
        start = time.perf_counter()
        try:
            _stream(reader, replay, pairer)
        except KeyboardInterrupt:
            stopped_by = "interrupted (Ctrl-C)"
        except (DiceSegError, ValueError) as exc:
            stopped_by, error = f"{type(exc).__name__}: {exc}", exc
        try:
            if stopped_by is not None:
                not_evaluated = _salvage(replay, pairer)
        finally:
            bar.close()
            if output is not None:
                output.close()
        elapsed = time.perf_counter() - start
    frames = len(replay.tracker.frames)
    extra = {
        "stopped_by": stopped_by,
        "bag": str(bag),
        "image_topic": image_topic,
        "label_topic": label_topic,
        "unpaired_images": pairer.unpaired_images,
        "unpaired_labels": pairer.unpaired_labels,
        "not_evaluated": not_evaluated,
        "model": segmenter.source,
        "backend": segmenter.backend,
        "device": segmenter.device,
        "batch_size": batch_size,
        "output_bag": str(output.path) if output else None,
        "output_topics": dict(output.topics, image=image_topic) if output else None,
    }
    quality_paths = {}
    if calibration is not None:
        extra["estimated_dice"], quality_paths = write_quality_report(
            out, [f.stamp_ns for f in replay.tracker.frames], replay.estimated,
            [f.mean_dice for f in replay.tracker.frames])
    paths = write_report(out, replay.tracker, classes.names,
                         unpaired=pairer.unpaired_images + pairer.unpaired_labels,
                         fps=frames / elapsed if elapsed > 0 else 0.0,
                         latency_ms=replay.clock.mean(frames), extra=extra,
                         colors=classes.colors)
    report = json.loads(paths["report"].read_text(encoding="utf-8"))
    return ReplayResult(report, dict(paths, **quality_paths), stopped_by, error)


def _calibration(segmenter: Segmenter) -> Calibration:
    """Return the calibration sidecar of the segmenter's model; ModelError if it has none."""
    calibration = calibration_for_model(segmenter.model_path)
    if calibration is None:
        raise ModelError(f"{segmenter.model_path} has no estimated-Dice calibration "
                         f"(NAME.quality.json next to it); run 'dice-seg calibrate'")
    return calibration


def format_summary(result: ReplayResult) -> str:
    """Return a short human-readable summary: headline scores and where the files are."""
    report = result.report

    def score(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    lines = [f"frames evaluated: {report['frames']}  unpaired images/labels: "
             f"{report['unpaired_images']}/{report['unpaired_labels']}  "
             f"fps: {report['fps']:.1f}  ({report['backend']} on {report['device']})",
             f"mean Dice: {score(report['mean_dice'])}  mean IoU: {score(report['mean_iou'])}",
             "per-class Dice: " + ", ".join(f"{name} {score(value)}"
                                            for name, value in report["dice"].items()),
             "latency ms/frame: " + ", ".join(f"{stage} {ms:.1f}"
                                              for stage, ms in report["latency_ms"].items())]
    if report.get("estimated_dice"):
        agreement = report["estimated_dice"]
        lines.append(f"estimated vs true mean Dice per frame: MAE {score(agreement['mae'])}, "
                     f"Spearman {score(agreement['spearman'])}")
    lines += [f"{name}: {path}" for name, path in result.paths.items()]
    if report.get("output_bag"):
        topics = ", ".join(report["output_topics"].values())
        lines.append(f"output bag: {report['output_bag']} (topics {topics}; open in Foxglove "
                     f"or 'ros2 bag play')")
    if result.stopped_by:
        lines.append(f"stopped early by {result.stopped_by}; the report covers the "
                     f"{report['frames']} frames done")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``dice-seg eval`` options."""
    parser.add_argument("--bag", required=True, type=Path,
                        help="rosbag2 directory (sqlite3 or MCAP) or a .mcap/.db3 file")
    parser.add_argument("--image-topic", required=True,
                        help="sensor_msgs/Image or CompressedImage topic")
    parser.add_argument("--label-topic", required=True,
                        help="label image topic (class ids, or colours with --label-format "
                             "color)")
    parser.add_argument("--model", type=Path, default=None,
                        help=".onnx or .pt model (default: the shipped model)")
    parser.add_argument("--backend", choices=("ort", "torch"), default="ort")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for inference")
    parser.add_argument("--out", type=Path, default=Path("dice_seg_eval"),
                        help="output directory (default ./dice_seg_eval)")
    parser.add_argument("--label-format", choices=("ids", "color"), default="ids")
    parser.add_argument("--max-offset-ms", type=float, default=20.0,
                        help="largest image/label stamp difference to pair, ms (default 20)")
    parser.add_argument("--batch-size", type=int, default=1,
                        help="images per network call (default 1)")
    parser.add_argument("--no-output-bag", action="store_true",
                        help="do not write the MCAP bag of masks and overlays")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--estimated-dice", action="store_true",
                        help="also estimate each frame's Dice without labels (the model's "
                             ".quality.json) and compare it with the true Dice")


def run(args: argparse.Namespace) -> int:
    """Evaluate, print the summary; exit 0, 130 after Ctrl-C, or raise what stopped it."""
    segmenter = Segmenter(args.model, backend=args.backend, device=args.device,
                          threads=args.threads)
    result = evaluate_bag(args.bag, args.image_topic, args.label_topic, args.out, segmenter,
                          label_format=args.label_format, max_offset_ms=args.max_offset_ms,
                          batch_size=args.batch_size, output_bag=not args.no_output_bag,
                          progress=not args.no_progress, estimated_dice=args.estimated_dice)
    return print_result(result)


def print_result(result: ReplayResult) -> int:
    """Print the summary; return 0, or 130 after Ctrl-C; re-raise the error that stopped it."""
    print(format_summary(result))
    if result.error is not None:
        raise result.error
    return 130 if result.stopped_by else 0
