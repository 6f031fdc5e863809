"""``dice-seg eval``: evaluate a segmentation model on a labeled rosbag.

Reads image and label topics, pairs them by header stamp, segments each image,
scores it against its label with :class:`~dice_seg_ros.runtime.metrics.DiceTracker`
(the same code the online monitor uses), and writes a report (JSON, CSV, plots)
plus an MCAP bag with the original images and the predicted masks at the
original stamps, for Foxglove or ``ros2 bag play`` into RViz.

Output topics, next to the camera's namespace (``/camera/image_raw`` ->
``/camera/dice_seg/...``): ``mask`` (mono8 class ids), ``mask_color`` (rgb8
class colours), ``overlay`` (rgb8 blend of image and colours), plus the image
topic itself.

A frame that cannot be decoded or scored (a message that does not deserialise,
an undecodable image, a label with unknown ids, sizes that differ) is skipped
and counted by reason in ``report.json`` ``errors``; ``--strict`` stops at the
first one instead. Ctrl-C, a storage fault (damaged database page, MCAP CRC or
decompression error, I/O error, a file cut off) or a strict error part-way
through still writes the report for every frame done; ``report.json`` says
what stopped the run (``stopped_by``, with the last good stamp). A bag that
``rosbags`` cannot open whole is salvaged up to the damage (``salvage``).
Without ``--label-topic`` the bag is only segmented into the output bag.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
from tqdm import tqdm

from dice_seg_ros.bags.bag_io import (IMAGE_TYPE, IMAGE_TYPES, BadMessage, BagReader, BagWriter,
                                      StorageFault, msg_class, remove_old_bag)
from dice_seg_ros.bags.grid_eval import GridEval, summary_line
from dice_seg_ros.bags.label_decoding import LabelDecoder
from dice_seg_ros.classes import ClassSet, classes_for_model
from dice_seg_ros.errors import BagError, DiceSegError, ModelError
from dice_seg_ros.runtime.frame_errors import IMAGE, LABEL, MESSAGE, SIZE, FrameErrors
from dice_seg_ros.runtime.image_conversion import (LABEL_FORMATS, colorize, msg_to_rgb,
                                                   numpy_to_image, overlay)
from dice_seg_ros.runtime.inference import Segmenter, add_model_arguments
from dice_seg_ros.runtime.metrics import DiceTracker
from dice_seg_ros.runtime import outputs
from dice_seg_ros.runtime.outputs import output_topic
from dice_seg_ros.runtime.pairing import Pair, StampPairer, header_stamp_ns
from dice_seg_ros.runtime.report import write_quality_report, write_report
from dice_seg_ros.runtime.stage_latency import StageLatency

OUTPUT_BAG = "output_bag"
OVERLAY_ALPHA = 0.5
# Per-frame stages in report.json "latency_ms": read = bag read + CDR deserialise
# (image and label), decode = image message -> RGB, labels = label message -> ids
# with validation, pre/infer/post = Segmenter, write = output bag.
STAGES = ("read", "decode", "labels", "pre", "infer", "post", "write")


def output_topics(image_topic: str) -> dict[str, str]:
    """Return the output topic names for ``image_topic`` (see the module docstring)."""
    return {name: output_topic(image_topic, name)
            for name in (outputs.MASK, outputs.MASK_COLOR, outputs.OVERLAY)}


@dataclass
class Frame:
    """A decoded image and its label (None: unlabeled); stamps in ns, camera resolution."""

    stamp_ns: int
    log_time_ns: int
    image_msg: Any
    rgb: np.ndarray
    labels: np.ndarray | None


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
        write(self.topics[outputs.MASK], frame.log_time_ns,
              numpy_to_image(class_ids, "mono8", header, self.image_cls))
        write(self.topics[outputs.MASK_COLOR], frame.log_time_ns,
              numpy_to_image(color, "rgb8", header, self.image_cls))
        write(self.topics[outputs.OVERLAY], frame.log_time_ns,
              numpy_to_image(blend, "rgb8", header, self.image_cls))

    def close(self) -> None:
        """Close the bag, writing its metadata."""
        self.bag.close()


@contextmanager
def _at(topic: str, stamp_ns: int) -> Iterator[None]:
    """Prefix a ValueError (ImageEncodingError included) with the topic and stamp."""
    try:
        yield
    except ValueError as exc:
        raise type(exc)(f"{topic} at stamp {stamp_ns} ns: {exc}") from exc


class Replay:
    """Decode, segment, score and record frames of one bag; keeps all running state.

    A frame that cannot be decoded is counted in ``errors`` (by reason, see
    :mod:`~dice_seg_ros.runtime.frame_errors`) and skipped; with ``strict`` its error
    stops the run instead. ``decoder`` None means an unlabeled bag: frames are
    segmented and recorded, not scored.
    """

    def __init__(self, segmenter: Segmenter, classes: ClassSet, decoder: LabelDecoder | None,
                 image_topic: str, label_topic: str | None, output: _OutputBag | None,
                 batch_size: int, strict: bool = False, progress: tqdm | None = None,
                 grid: GridEval | None = None) -> None:
        self.segmenter = segmenter
        self.classes = classes
        self.decoder = decoder
        self.image_topic = image_topic
        self.label_topic = label_topic
        self.output = output
        self.batch_size = batch_size
        self.strict = strict
        self.progress = progress
        self.grid = grid
        self.tracker = DiceTracker(classes.num_classes, ignore_index=classes.ignore_index)
        self.errors = FrameErrors()
        self.clock = StageLatency(STAGES)
        self.batch: list[Frame] = []
        self.segmented = 0
        self.last_stamp_ns: int | None = None
        # Label-free estimated mean Dice of each scored frame (NaN without a calibration).
        self.estimated: list[float] = []

    def bad_message(self, message: BadMessage) -> None:
        """Count a message that does not deserialise (stamp: its log time); strict: raise."""
        self.errors.add(MESSAGE, message.log_time_ns, message.error)
        if self.strict:
            raise BagError(message.error)

    def decode(self, image_stamp: int, image: tuple[int, Any],
               label: tuple[int, Any] | None) -> Frame | None:
        """Convert one image (and its label) to arrays; None if skipped (error counted)."""
        try:
            return self._decode(image_stamp, image, label)
        except ValueError:
            if self.strict:
                raise
            return None

    def _decode(self, image_stamp: int, image: tuple[int, Any],
                label: tuple[int, Any] | None) -> Frame:
        """Convert one frame; errors name the topic, stamp and sizes."""
        start = time.perf_counter()
        log_time, image_msg = image
        with self.errors.step(IMAGE, image_stamp), _at(self.image_topic, image_stamp):
            rgb = msg_to_rgb(image_msg)
        decoded = time.perf_counter()
        self.clock.add("decode", (decoded - start) * 1000.0)
        if label is None or self.decoder is None:
            return Frame(image_stamp, log_time, image_msg, rgb, None)
        label_stamp = header_stamp_ns(label[1].header)
        with self.errors.step(LABEL, image_stamp), _at(self.label_topic, label_stamp):
            labels = self.decoder(label[1])
        if labels.shape != rgb.shape[:2]:
            message = (f"label {self.label_topic} at stamp {label_stamp} ns is "
                       f"{labels.shape[1]}x{labels.shape[0]} px but image {self.image_topic} "
                       f"at stamp {image_stamp} ns is {rgb.shape[1]}x{rgb.shape[0]} px")
            self.errors.add(SIZE, image_stamp, message)
            raise ValueError(message)
        self.clock.add("labels", (time.perf_counter() - decoded) * 1000.0)
        return Frame(image_stamp, log_time, image_msg, rgb, labels)

    def add(self, frame: Frame | None) -> None:
        """Queue a decoded frame (None: skipped); run the batch when it is full."""
        if frame is None:
            return
        self.batch.append(frame)
        if len(self.batch) >= self.batch_size:
            self.finish_batch()

    def finish_batch(self) -> None:
        """Segment, score and record the queued frames."""
        if not self.batch:
            return
        # Dequeue only after inference: frames of an interrupted batch stay queued.
        results = self.segmenter.segment_batch([f.rgb for f in self.batch])
        frames, self.batch = self.batch, []
        for frame, result in zip(frames, results):
            self.segmented += 1
            self.last_stamp_ns = frame.stamp_ns
            if frame.labels is not None:
                self.tracker.update(result.class_ids, frame.labels, frame.stamp_ns)
                self.estimated.append(math.nan if result.estimated_dice is None
                                      else result.estimated_dice)
            if self.output is not None:
                start = time.perf_counter()
                self.output.write(frame, result.class_ids)
                self.clock.add("write", (time.perf_counter() - start) * 1000.0)
            if self.grid is not None:
                self.grid.add(frame.image_msg.header, frame.log_time_ns, result.class_ids,
                              frame.labels)
            self.clock.end_frame(result.timings_ms)
            self._show_progress()

    def _show_progress(self) -> None:
        if self.progress is None:
            return
        self.progress.update()
        if self.tracker.frames:
            self.progress.set_postfix(mean_dice=f"{self.tracker.frames[-1].mean_dice:.3f}",
                                      cumulative=f"{self.tracker.cumulative.mean_dice():.3f}",
                                      skipped=self.errors.total, refresh=False)


@dataclass
class ReplayResult:
    """What ``evaluate_bag`` produced: the report dict, file paths, and why it stopped.

    ``error`` is the exception that stopped the run (a storage fault, a frame
    error under ``strict``, or a run that scored no frame), None after Ctrl-C
    (see ``stopped_by``) or a complete run.
    """

    report: dict[str, Any]
    paths: dict[str, Path]
    stopped_by: str | None
    error: BaseException | None


def _score_pairs(replay: Replay, pairs: Iterable[Pair]) -> None:
    """Decode paired messages and queue them for segmentation."""
    for pair in pairs:
        replay.add(replay.decode(pair.image_stamp_ns, pair.image, pair.label))


def bag_pairs(reader: BagReader, image_topic: str, label_topic: str | None,
              pairer: StampPairer | None, on_bad: Callable[[BadMessage], None],
              on_read_ms: Callable[[float], None] = lambda ms: None) -> Iterator[Pair]:
    """Yield each image with its label, paired by header stamp, to the end of the bag.

    The one read-and-pair loop of the bag tools (``eval``, ``calibrate``). Images
    and labels are ``(log_time_ns, message)``. With ``pairer`` None every image
    comes alone (label None). A message that does not deserialise goes to
    ``on_bad``; ``on_read_ms`` gets each read's milliseconds (read + deserialise).
    Stopped early, pairs still waiting in ``pairer`` stay there for ``pairer.flush``.
    """
    topics = [image_topic] + ([label_topic] if pairer is not None else [])
    messages = reader.messages(topics)
    while True:
        start = time.perf_counter()
        message = next(messages, None)
        on_read_ms((time.perf_counter() - start) * 1000.0)
        if message is None:
            break
        if isinstance(message, BadMessage):
            on_bad(message)
            continue
        stamp = header_stamp_ns(message.msg.header)
        item = (message.log_time_ns, message.msg)
        if pairer is None:
            yield Pair(stamp, stamp, item, None)
        elif message.topic == image_topic:
            yield from pairer.add_image(stamp, item)
        else:
            yield from pairer.add_label(stamp, item)
    if pairer is not None:
        yield from pairer.flush()


def _stream(reader: BagReader, replay: Replay, pairer: StampPairer | None) -> None:
    """Feed every image (and label) of the bag, through pairing, into ``replay``, to the end."""
    _score_pairs(replay, bag_pairs(reader, replay.image_topic, replay.label_topic, pairer,
                                   replay.bad_message, partial(replay.clock.add, "read")))
    replay.finish_batch()


def _salvage(replay: Replay, pairer: StampPairer | None) -> int:
    """After a stop, score every pair already read; return how many could not be."""
    failed = 0
    for pair in pairer.flush() if pairer is not None else []:
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


def _check_options(image_topic: str, label_topic: str | None, batch_size: int,
                   output_bag: bool) -> None:
    """Raise ValueError naming an option that cannot work."""
    if image_topic == label_topic:
        raise ValueError(f"image and label topic are the same ({image_topic!r})")
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    if label_topic is None and not output_bag:
        raise ValueError("without a label topic the output bag is the only output; "
                         "drop --no-output-bag")


def _run(reader: BagReader, replay: Replay,
         pairer: StampPairer | None) -> tuple[str | None, BaseException | None, int]:
    """Stream the bag into ``replay``; return (stopped_by, error, frames not evaluated)."""
    stopped_by, error = None, None
    try:
        _stream(reader, replay, pairer)
    except KeyboardInterrupt:
        stopped_by = "interrupted (Ctrl-C)"
        _hold_sigint()
    except StorageFault as exc:
        stopped_by, error = (f"storage error: {exc}; last good frame stamp "
                             f"{replay.last_stamp_ns} ns"), exc
    except (DiceSegError, ValueError) as exc:
        stopped_by, error = f"{type(exc).__name__}: {exc}", exc
    not_evaluated = _salvage(replay, pairer) if stopped_by is not None else 0
    return stopped_by, error, not_evaluated


@contextmanager
def _sigint_restored() -> Iterator[None]:
    """Give Ctrl-C back its handler on the way out, whatever :func:`_hold_sigint` did."""
    previous = signal.getsignal(signal.SIGINT)
    try:
        yield
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, previous)


def _hold_sigint() -> None:
    """Ignore further Ctrl-C until the report is written.

    The first Ctrl-C asked for the report of the frames done; a second one would otherwise
    land in the middle of writing it (often inside matplotlib's import) with a traceback.
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        tqdm.write("Ctrl-C: stopped reading; writing the report of the frames done "
                   "(Ctrl-C is ignored until it is written)", file=sys.stderr)


def _no_frames_error(replay: Replay, pairer: StampPairer, max_offset_ms: float) -> ValueError:
    """Explain a complete run that scored no frame, with what to try."""
    if replay.errors.total:
        return ValueError(f"no frame scored: {replay.errors.total} frames skipped "
                          f"({', '.join(replay.errors.counts)}); see 'errors' in report.json")
    return ValueError(f"no image/label pair found within --max-offset-ms {max_offset_ms:g} "
                      f"({pairer.unpaired_images} images, {pairer.unpaired_labels} labels "
                      f"unpaired); raise --max-offset-ms if label stamps differ from image "
                      f"stamps, or check --label-topic")


@dataclass(frozen=True)
class EvalOptions:
    """How ``dice-seg eval`` reads, pairs and scores a bag (and what it writes).

    Attributes:
        label_format: "ids" (mono8 class ids) or "color" (rgb8 class colours).
        max_offset_ms: largest image/label stamp difference to pair, milliseconds.
        batch_size: images per network call.
        output_bag: write the MCAP bag of masks and overlays.
        progress: show a progress bar.
        strict: stop at the first frame that cannot be decoded (default: skip and count it).
        remap: YAML mapping label ids of another ontology onto the classes.
        colormap: CSV of the label colours (with ``label_format`` "color").
        classes_file: classes YAML with colours for the model's classes.
        estimated_dice: also estimate each scored frame's Dice without its label.
        traversability: node parameters file: also project masks and labels onto a ground grid
            (:mod:`~dice_seg_ros.bags.grid_eval`).

    """

    label_format: str = "ids"
    max_offset_ms: float = 20.0
    batch_size: int = 1
    output_bag: bool = True
    progress: bool = True
    strict: bool = False
    remap: str | Path | None = None
    colormap: str | Path | None = None
    classes_file: str | Path | None = None
    estimated_dice: bool = False
    traversability: str | Path | None = None


def evaluate_bag(bag: str | Path, image_topic: str, label_topic: str | None,
                 out_dir: str | Path, segmenter: Segmenter | None = None,
                 options: EvalOptions = EvalOptions()) -> ReplayResult:
    """Evaluate ``segmenter`` (default: the shipped model) on a labeled bag.

    Writes the report files into ``out_dir`` (and ``out_dir/output_bag`` unless
    ``output_bag`` is False) even when the run stops early. Frames that cannot
    be decoded are skipped and counted (report.json ``errors``) unless
    ``strict``. Without ``label_topic`` the bag is only segmented: the output
    bag is written, no report. ``remap`` and ``colormap`` read labels of another
    ontology (see :mod:`~dice_seg_ros.bags.label_decoding`). ``estimated_dice`` also
    estimates each scored frame's mean Dice without its label (the model's
    calibration, see :mod:`~dice_seg_ros.runtime.estimated_dice`) and reports it beside the true
    one: estimated_dice.csv, a scatter plot, and report.json ``estimated_dice``
    (frames, MAE, Spearman).

    Raises:
        FileNotFoundError, BagError, ModelError, ValueError: before any frame is
            read (missing bag, missing topic or wrong type, bad model, bad options).

    """
    with _sigint_restored():
        return _evaluate(bag, image_topic, label_topic, out_dir, segmenter, options)


def _evaluate(bag: str | Path, image_topic: str, label_topic: str | None,
              out_dir: str | Path, segmenter: Segmenter | None,
              options: EvalOptions) -> ReplayResult:
    """Evaluate a bag: :func:`evaluate_bag` without the Ctrl-C handling around it."""
    out = Path(out_dir)
    _check_options(image_topic, label_topic, options.batch_size, options.output_bag)
    segmenter = segmenter or Segmenter()
    classes = classes_for_model(segmenter.meta.class_names, options.classes_file,
                                segmenter.class_costs)
    decoder = (LabelDecoder.build(classes, options.label_format, options.remap, options.colormap)
               if label_topic is not None else None)
    if options.estimated_dice and segmenter.calibration is None:
        raise ModelError(f"{segmenter.model_path} has no usable estimated-Dice calibration "
                         f"(NAME.quality.json next to it, fitted for this model); run "
                         f"'dice-seg calibrate'")
    with BagReader(bag) as reader:
        image_type = reader.check_topic(image_topic, IMAGE_TYPES)
        if label_topic is not None:
            reader.check_topic(label_topic, IMAGE_TYPES)
        if reader.message_count(image_topic) == 0:
            counts = ", ".join(f"{topic} {reader.message_count(topic)}"
                               for topic in reader.topics())
            raise BagError(f"{bag}: topic {image_topic} has no messages; check --image-topic "
                           f"(messages per topic: {counts})")
        out.mkdir(parents=True, exist_ok=True)
        output = (_OutputBag(out / OUTPUT_BAG, image_topic, image_type, classes)
                  if options.output_bag else None)
        bar = tqdm(total=reader.message_count(image_topic), desc="eval", unit="frame",
                   disable=not options.progress)
        grid = (GridEval(options.traversability, bag, image_topic, classes,
                         output.bag if output else None) if options.traversability else None)
        replay = Replay(segmenter, classes, decoder, image_topic, label_topic, output,
                        options.batch_size, options.strict, bar, grid)
        pairer = StampPairer(options.max_offset_ms) if label_topic is not None else None
        start = time.perf_counter()
        try:
            stopped_by, error, not_evaluated = _run(reader, replay, pairer)
        finally:
            bar.close()
            if output is not None:
                output.close()
        elapsed = time.perf_counter() - start
    if pairer is not None and error is None and stopped_by is None and not replay.tracker.frames:
        error = _no_frames_error(replay, pairer, options.max_offset_ms)
        stopped_by = str(error)
    extra = {
        "stopped_by": stopped_by,
        "bag": str(bag),
        "image_topic": image_topic,
        "label_topic": label_topic,
        "label_format": options.label_format,
        "remap": str(options.remap) if options.remap else None,
        "colormap": str(options.colormap) if options.colormap else None,
        "unpaired_images": pairer.unpaired_images if pairer else 0,
        "unpaired_labels": pairer.unpaired_labels if pairer else 0,
        "not_evaluated": not_evaluated,
        "skipped": replay.errors.total,
        "errors": replay.errors.as_dict(),
        "strict": options.strict,
        "messages_read": reader.messages_read,
        "salvage": reader.salvage,
        "last_good_stamp_ns": replay.last_stamp_ns,
        "model": segmenter.source,
        "backend": segmenter.backend,
        "device": segmenter.device,
        "batch_size": options.batch_size,
        "output_bag": str(output.path) if output else None,
        "output_topics": dict(output.topics, image=image_topic) if output else None,
        "traversability": grid.report() if grid else None,
    }
    fps = replay.segmented / elapsed if elapsed > 0 else 0.0
    if pairer is None and not replay.segmented and error is None and stopped_by is None:
        # Nothing to show for it: an empty output bag would only look like a result.
        if output is not None:
            remove_old_bag(output.path)
            extra["output_bag"] = extra["output_topics"] = None
        error = BagError(f"{bag}: no image on {image_topic} could be segmented "
                         f"({replay.errors.total} skipped); check --image-topic")
        stopped_by = str(error)
    if pairer is None:
        return ReplayResult(dict(extra, frames=replay.segmented, fps=fps), {}, stopped_by,
                            error)
    quality_paths = {}
    if options.estimated_dice:
        extra["estimated_dice"], quality_paths = write_quality_report(
            out, [f.stamp_ns for f in replay.tracker.frames], replay.estimated,
            [f.mean_dice for f in replay.tracker.frames])
    paths = write_report(out, replay.tracker, classes.names,
                         unpaired=pairer.unpaired_images + pairer.unpaired_labels,
                         fps=fps, latency_ms=replay.clock.mean_ms(),
                         extra=extra, colors=classes.colors)
    report = json.loads(paths["report"].read_text(encoding="utf-8"))
    return ReplayResult(report, dict(paths, **quality_paths), stopped_by, error)


def _score(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _error_lines(report: dict[str, Any]) -> list[str]:
    """One line per kind of skipped frame: count, first stamps, first message."""
    return [f"skipped {info['count']} frames ({kind}; first at stamps "
            f"{info['first_stamps_ns']} ns): {info['first_message']}"
            for kind, info in report.get("errors", {}).items()]


def format_summary(result: ReplayResult) -> str:
    """Return a short human-readable summary: headline scores and where the files are."""
    report = result.report
    if report.get("label_topic") is None:
        lines = [f"frames segmented: {report['frames']}  fps: {report['fps']:.1f}  "
                 f"({report['backend']} on {report['device']})"]
    else:
        absent = report.get("classes_absent_from_labels") or []
        lines = [f"frames evaluated: {report['frames']}  unpaired images/labels: "
                 f"{report['unpaired_images']}/{report['unpaired_labels']}  "
                 f"fps: {report['fps']:.1f}  ({report['backend']} on {report['device']})",
                 f"mean Dice: {_score(report['mean_dice'])}  mean Dice over classes present "
                 f"in the labels: {_score(report['mean_dice_present'])}  "
                 f"mean IoU: {_score(report['mean_iou'])}",
                 "per-class Dice: " + ", ".join(
                     f"{name} {_score(value)}{' (absent from labels)' if name in absent else ''}"
                     for name, value in report["dice"].items()),
                 "latency ms/frame: " + ", ".join(f"{stage} {ms:.1f}"
                                                  for stage, ms in report["latency_ms"].items())]
    lines += _error_lines(report)
    lines += [line for line in [summary_line(report)] if line]
    if report.get("salvage"):
        lines.append(f"salvaged: {report['salvage']} ({report['messages_read']} messages read)")
    if report.get("estimated_dice"):
        agreement = report["estimated_dice"]
        lines.append(f"estimated vs true mean Dice per frame: MAE {_score(agreement['mae'])}, "
                     f"Spearman {_score(agreement['spearman'])}")
    lines += [f"{name}: {path}" for name, path in result.paths.items()]
    if report.get("output_bag"):
        topics = ", ".join(report["output_topics"].values())
        lines.append(f"output bag: {report['output_bag']} (topics {topics}; open in Foxglove "
                     f"or 'ros2 bag play')")
    if result.stopped_by:
        lines.append(f"stopped early by {result.stopped_by}; the report covers the "
                     f"{report['frames']} frames done")
    return "\n".join(line.replace("\n", " ") for line in lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``dice-seg eval`` options."""
    parser.epilog = ("exit status: 0 = the whole bag was read (skipped frames are counted in "
                     "report.json 'errors'); 2 = an error stopped the run or no frame was "
                     "scored, with or without a partial report; 130 = Ctrl-C")
    parser.add_argument("--bag", required=True, type=Path,
                        help="rosbag2 directory (sqlite3 or MCAP) or a .mcap/.db3 file")
    parser.add_argument("--image-topic", required=True,
                        help="sensor_msgs/Image or CompressedImage topic")
    parser.add_argument("--label-topic", default=None,
                        help="label image topic (class ids, or colours with --label-format "
                             "color); without it the bag is only segmented into the output bag")
    add_model_arguments(parser)
    parser.add_argument("--out", type=Path, default=Path("dice_seg_eval"),
                        help="output directory (default ./dice_seg_eval)")
    add_label_arguments(parser)
    parser.add_argument("--strict", action="store_true",
                        help="stop at the first frame that cannot be decoded (default: skip "
                             "and count it)")
    parser.add_argument("--no-output-bag", action="store_true",
                        help="do not write the MCAP bag of masks and overlays")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--estimated-dice", action="store_true",
                        help="also estimate each frame's Dice without its label (the model's "
                             ".quality.json) and compare it with the true Dice")
    parser.add_argument("--traversability", default=None, metavar="PARAMS_YAML",
                        help="node parameters file (config/segmentation.yaml) whose "
                             "traversability.* values project each mask onto a ground grid: "
                             "written to the output bag and scored against the labels' grid")


def add_label_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of how labels are read, paired and scored (eval and fleet share them)."""
    parser.add_argument("--label-format", choices=LABEL_FORMATS, default="ids")
    parser.add_argument("--remap", default=None,
                        help="YAML {source_id: class_id} mapping label ids of another "
                             "ontology onto the classes (unlisted ids -> ignore)")
    parser.add_argument("--colormap", default=None,
                        help="CSV id,name,r,g,b of the label colours (with --label-format "
                             "color); ids are class ids, or source ids with --remap")
    parser.add_argument("--classes", default=None,
                        help="classes YAML with colours for the model's classes "
                             "(default: shipped, if its names match the model's)")
    parser.add_argument("--max-offset-ms", type=float, default=20.0,
                        help="largest image/label stamp difference to pair, ms (default 20)")
    parser.add_argument("--batch-size", type=int, default=1,
                        help="images per network call (default 1)")


def eval_options(args: argparse.Namespace, **fixed: Any) -> EvalOptions:
    """Return the EvalOptions of :func:`add_label_arguments`' options, plus ``fixed`` fields."""
    return EvalOptions(label_format=args.label_format, max_offset_ms=args.max_offset_ms,
                       batch_size=args.batch_size, remap=args.remap, colormap=args.colormap,
                       classes_file=args.classes, **fixed)


def run(args: argparse.Namespace) -> int:
    """Evaluate, print the summary; exit 0, 130 after Ctrl-C, or raise what stopped it."""
    segmenter = Segmenter(args.model, backend=args.backend, device=args.device,
                          threads=args.threads)
    options = eval_options(args, output_bag=not args.no_output_bag,
                           progress=not args.no_progress, strict=args.strict,
                           estimated_dice=args.estimated_dice,
                           traversability=args.traversability)
    result = evaluate_bag(args.bag, args.image_topic, args.label_topic, args.out, segmenter,
                          options)
    return print_result(result)


def print_result(result: ReplayResult) -> int:
    """Print the summary; return 0, or 130 after Ctrl-C; re-raise the error that stopped it."""
    print(format_summary(result))
    if result.error is not None:
        raise result.error
    return 130 if result.stopped_by else 0
