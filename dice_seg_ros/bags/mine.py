"""``dice-seg mine``: choose the frames of a robot's recordings worth labeling.

Every frame of every bag (or of an image folder, ``--data``) is segmented and scored with the
model's label-free estimated Dice. The frames the model is least sure of are picked first,
spread out: at most ``--per-bag`` frames of one bag, no two of a bag within ``--window-s``
seconds, and no frame that looks like one already picked (mean absolute difference of 32x24
grey thumbnails under ``--min-distance``, on a 0..1 scale: a slow robot's neighbouring frames
are near copies). Bags run in parallel on the fleet's machinery (``--workers``, ``--ray``); each
bag's scores are kept in ``OUT/scores/``, so a rerun skips bags already scanned.

``OUT`` gets ``manifest.csv`` (image, bag, stamp_ns, bag_time_s, estimated_dice, rank, reason),
the picked frames as ``images/NAME.png``, the model's masks as class-id ``prelabels/NAME.png``,
the same masks as a CVAT "Segmentation mask 1.1" annotation set (``cvat_prelabels.zip``, to
upload onto a CVAT task of the images and correct), and ``contact_sheet.png``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import cv2
import numpy as np
from tqdm import tqdm

from dice_seg_ros.bags.bag_io import IMAGE_TYPES, BadMessage, BagReader
from dice_seg_ros.bags.fleet import bag_key, find_bags, run_jobs
from dice_seg_ros.classes import ClassSet, classes_for_model
from dice_seg_ros.data.datasets import IMAGE_SUFFIXES, read_rgb
from dice_seg_ros.errors import DiceSegError, ModelError
from dice_seg_ros.runtime.image_conversion import colorize, msg_to_rgb, overlay
from dice_seg_ros.runtime.inference import Segmenter, add_model_arguments
from dice_seg_ros.runtime.pairing import header_stamp_ns

THUMB_SIZE = (32, 24)
SCORES_DIR = "scores"
MANIFEST = "manifest.csv"
CONTACT_SHEET = "contact_sheet.png"
CVAT_ZIP = "cvat_prelabels"
SHEET_TILE = (192, 144)
SHEET_COLUMNS = 6


class MineError(DiceSegError):
    """The mining request cannot be met (no frames, too few frames, no calibration)."""


@dataclass(frozen=True)
class MineOptions:
    """What every bag's scan shares (hashable: one Segmenter per worker and options).

    Attributes:
        image_topic: camera topic in the bags (Image or CompressedImage).
        model: model path, or None for the shipped default.
        backend: "ort" or "torch".
        device: "auto", "cuda" or "cpu".
        threads: inference threads per worker.
        stride: score every ``stride``-th frame (1 = all).

    """

    image_topic: str
    model: str | None = None
    backend: str = "ort"
    device: str = "cpu"
    threads: int = 1
    stride: int = 1

    def fingerprint(self) -> str:
        """Return what makes a scan reusable: the options and the model's identity."""
        model = Path(self.model) if self.model else None
        stat = model.stat() if model and model.is_file() else None
        return json.dumps([asdict(self), stat and (stat.st_size, int(stat.st_mtime))])


@dataclass
class Candidate:
    """One scored frame.

    Attributes:
        source: the bag (or image folder) it comes from.
        index: its position among the source's scored frames.
        stamp_ns: header stamp, nanoseconds (image folders: the index times one second).
        estimate: label-free estimated mean Dice, 0..1.
        thumb: ``THUMB_SIZE`` grey thumbnail, 0..1.

    """

    source: str
    index: int
    stamp_ns: int
    estimate: float
    thumb: np.ndarray


_SEGMENTERS: dict[MineOptions, Segmenter] = {}


def segmenter_for(options: MineOptions) -> Segmenter:
    """Return this process's Segmenter for ``options``; it must carry a calibration."""
    if options not in _SEGMENTERS:
        segmenter = Segmenter(options.model, backend=options.backend, device=options.device,
                              threads=options.threads)
        if segmenter.calibration is None:
            raise ModelError(f"{segmenter.model_path}: no estimated-Dice calibration "
                             "(NAME.quality.json) to rank frames by; fit one with "
                             "'dice-seg calibrate --model ...'")
        _SEGMENTERS[options] = segmenter
    return _SEGMENTERS[options]


def thumbnail(rgb: np.ndarray) -> np.ndarray:
    """Return the frame's grey ``THUMB_SIZE`` thumbnail on a 0..1 scale (float16)."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return (cv2.resize(grey, THUMB_SIZE, interpolation=cv2.INTER_AREA) / 255).astype(np.float16)


def bag_frames(bag: str, topic: str, stride: int = 1) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(stamp_ns, rgb)`` of every ``stride``-th decodable image of ``topic``.

    The stamp is the header's, or the bag's log time where a camera driver left it unset (0),
    so that the time window still spreads the picks.
    """
    with BagReader(bag) as reader:
        reader.check_topic(topic, IMAGE_TYPES)
        count = 0
        for message in reader.messages([topic]):
            if isinstance(message, BadMessage):
                continue
            count += 1
            if (count - 1) % stride == 0:
                yield (header_stamp_ns(message.msg.header) or message.log_time_ns,
                       msg_to_rgb(message.msg))


def folder_images(folder: str | Path) -> list[Path]:
    """Return the image files under ``folder``, sorted by path."""
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def source_frames(source: str, options: MineOptions) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(stamp_ns, rgb)`` of a bag, or of an image folder (one second per image)."""
    if Path(source).is_dir() and not (Path(source) / "metadata.yaml").is_file():
        for index, path in enumerate(folder_images(source)[::options.stride]):
            yield index * 1_000_000_000, read_rgb(path)
    else:
        yield from bag_frames(source, options.image_topic, options.stride)


def scan_source(source: str, fingerprint: str, options: MineOptions, scores_file: str
                ) -> dict[str, Any]:
    """Score every frame of one bag or folder into ``scores_file`` (.npz); return a summary."""
    segmenter = segmenter_for(options)
    stamps, estimates, thumbs = [], [], []
    for stamp, rgb in source_frames(source, options):
        estimate = segmenter.segment(rgb).estimated_dice
        stamps.append(stamp)
        estimates.append(math.nan if estimate is None else estimate)
        thumbs.append(thumbnail(rgb))
    np.savez(scores_file, stamps=np.array(stamps, np.int64),
             estimates=np.array(estimates, np.float32),
             thumbs=np.array(thumbs, np.float16).reshape(-1, THUMB_SIZE[1], THUMB_SIZE[0]),
             fingerprint=fingerprint, source=source)
    return {"source": source, "frames": len(stamps), "file": scores_file}


def load_candidates(scores_file: Path) -> list[Candidate]:
    """Return the candidates of one source's scores file."""
    with np.load(scores_file) as data:
        source = str(data["source"])
        return [Candidate(source, i, int(s), float(e), t) for i, (s, e, t) in
                enumerate(zip(data["stamps"], data["estimates"], data["thumbs"]))]


def select(candidates: Sequence[Candidate], count: int, per_bag: int, window_s: float,
           min_distance: float) -> list[tuple[Candidate, int, str]]:
    """Pick up to ``count`` frames: lowest estimate first, spread, no near-duplicates.

    Returns:
        ``(candidate, rank, reason)`` per pick; rank is its place in the estimate order
        (1 = least sure), reason says why it was picked.

    """
    order = sorted(candidates, key=lambda c: (math.isnan(c.estimate), c.estimate))
    window_ns = window_s * 1e9
    picked: list[tuple[Candidate, int, str]] = []
    per_source: dict[str, list[Candidate]] = {}
    for rank, cand in enumerate(order, 1):
        mine = per_source.setdefault(cand.source, [])
        if len(mine) >= per_bag or any(abs(c.stamp_ns - cand.stamp_ns) < window_ns
                                       for c in mine):
            continue
        if any(np.abs(c.thumb.astype(np.float32) - cand.thumb).mean() < min_distance
               for c, _, _ in picked):
            continue
        mine.append(cand)
        picked.append((cand, rank, f"estimated Dice {cand.estimate:.3f}: rank {rank} of "
                                   f"{len(order)} frames, lowest first"))
        if len(picked) == count:
            break
    return picked


def frame_name(cand: Candidate) -> str:
    """Return the file stem of a picked frame: its source's name and stamp."""
    stem = Path(cand.source.rstrip("/")).name.replace(".", "_")
    return f"{stem}_{cand.stamp_ns}"


def picked_images(picks: Sequence[tuple[Candidate, int, str]], options: MineOptions
                  ) -> Iterator[tuple[Candidate, np.ndarray]]:
    """Read the picked frames again, source by source, in recording order.

    Frames are found by position, not stamp: a bag may hold several frames of one stamp.
    """
    by_source: dict[str, dict[int, Candidate]] = {}
    for cand, _, _ in picks:
        by_source.setdefault(cand.source, {})[cand.index] = cand
    for source, wanted in by_source.items():
        for index, (_, rgb) in enumerate(source_frames(source, options)):
            if index in wanted:
                yield wanted.pop(index), rgb
                if not wanted:
                    break


def write_cvat_prelabels(out: Path, masks: dict[str, np.ndarray], classes: ClassSet) -> Path:
    """Write the masks as a CVAT "Segmentation mask 1.1" set and zip it; return the zip."""
    root = out / CVAT_ZIP
    shutil.rmtree(root, ignore_errors=True)
    (root / "SegmentationClass").mkdir(parents=True)
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    lines = ["# label:color_rgb:parts:actions", "background:0,0,0::"]
    lines += [f"{name}:{','.join(str(int(c)) for c in color)}::"
              for name, color in zip(classes.names, classes.colors)]
    (root / "labelmap.txt").write_text("\n".join(lines) + "\n")
    palette = classes.palette()  # ignore (255) and unknown ids stay black: background
    for name, ids in masks.items():
        cv2.imwrite(str(root / "SegmentationClass" / f"{name}.png"),
                    colorize(ids, palette)[..., ::-1])
    (root / "ImageSets" / "Segmentation" / "default.txt").write_text("\n".join(masks) + "\n")
    return Path(shutil.make_archive(str(root), "zip", root))


def contact_sheet(path: Path, tiles: Sequence[tuple[np.ndarray, str]]) -> None:
    """Write a grid of overlay thumbnails, each captioned with its estimate and name."""
    width, height = SHEET_TILE
    rows = max(1, math.ceil(len(tiles) / SHEET_COLUMNS))
    sheet = np.full((rows * (height + 20), SHEET_COLUMNS * width, 3), 255, np.uint8)
    for k, (image, caption) in enumerate(tiles):
        y, x = (k // SHEET_COLUMNS) * (height + 20), (k % SHEET_COLUMNS) * width
        sheet[y + 20:y + 20 + height, x:x + width] = cv2.resize(image, SHEET_TILE,
                                                                interpolation=cv2.INTER_AREA)
        cv2.putText(sheet, caption, (x + 3, y + 15), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                    (0, 0, 0), 1, cv2.LINE_AA)
    cv2.imwrite(str(path), sheet[..., ::-1])


def write_picks(out: Path, picks: Sequence[tuple[Candidate, int, str]],
                options: MineOptions, starts: dict[str, int]) -> dict[str, Path]:
    """Write the picked images, pre-labels, CVAT set, manifest and contact sheet.

    ``starts`` holds each source's first stamp (ns): picks are also located in seconds from it.
    """
    segmenter = segmenter_for(options)
    classes = classes_for_model(segmenter.meta.class_names)
    for sub in ("images", "prelabels"):
        shutil.rmtree(out / sub, ignore_errors=True)
        (out / sub).mkdir(parents=True)
    info = {id(cand): (rank, reason) for cand, rank, reason in picks}
    rows, masks, tiles = [], {}, []
    for cand, rgb in picked_images(picks, options):
        name = frame_name(cand)
        ids = segmenter.segment(rgb).class_ids
        cv2.imwrite(str(out / "images" / f"{name}.png"), rgb[..., ::-1])
        cv2.imwrite(str(out / "prelabels" / f"{name}.png"), ids)
        masks[name] = ids
        rank, reason = info[id(cand)]
        seconds = (cand.stamp_ns - starts[cand.source]) / 1e9
        rows.append({"image": f"images/{name}.png", "prelabel": f"prelabels/{name}.png",
                     "bag": cand.source, "stamp_ns": cand.stamp_ns,
                     "bag_time_s": f"{seconds:.3f}",
                     "estimated_dice": f"{cand.estimate:.4f}", "rank": rank, "reason": reason})
        tiles.append((overlay(rgb, colorize(ids, classes.palette()), 0.4),
                      f"est. {cand.estimate:.2f}  {Path(cand.source).name[:14]} "
                      f"{seconds:.1f}s"))
    order = sorted(range(len(rows)), key=lambda i: rows[i]["rank"])
    with open(out / MANIFEST, "w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]) if rows else ["image"])
        writer.writeheader()
        writer.writerows(rows[i] for i in order)
    contact_sheet(out / CONTACT_SHEET, [tiles[i] for i in order])
    return {"manifest": out / MANIFEST, "contact_sheet": out / CONTACT_SHEET,
            "cvat": write_cvat_prelabels(out, masks, classes)}


def scan_all(sources: Sequence[str], options: MineOptions, out: Path, workers: int,
             ray: str | None, progress: bool = True) -> list[Path]:
    """Scan every source not scanned before with these options; return the scores files."""
    scores_dir = out / SCORES_DIR
    scores_dir.mkdir(parents=True, exist_ok=True)
    fingerprint = options.fingerprint()
    files, jobs = [], []
    for source in sources:
        path = scores_dir / f"{bag_key(source)[:16]}.npz"
        files.append(path)
        if not (path.is_file() and str(np.load(path)["fingerprint"]) == fingerprint):
            jobs.append((source, fingerprint, options, str(path)))
    bar = tqdm(total=len(sources), initial=len(sources) - len(jobs), desc="mine", unit="bag",
               disable=not progress)
    try:
        run_jobs(scan_source, jobs, workers, ray,
                 lambda result: (bar.update(), bar.set_postfix(frames=result["frames"])))
    finally:
        bar.close()
    return files


def mine(sources: Sequence[str], options: MineOptions, out_dir: str | Path, count: int,
         per_bag: int | None = None, window_s: float = 5.0, min_distance: float = 0.03,
         workers: int = 1, ray: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Scan ``sources``, pick ``count`` frames to label and write them to ``out_dir``.

    Args:
        sources: bags, or image folders.
        options: topic, model and stride.
        out_dir: output folder (see the module docstring).
        count: frames to pick.
        per_bag: at most this many frames of one source (default: twice an even share).
        window_s: no two picks of one source closer than this, seconds.
        min_distance: no pick whose thumbnail differs from a pick's by less (0..1).
        workers: parallel workers; ray: None, "local" or a Ray address.
        progress: show a progress bar over bags.

    Raises:
        MineError: no frames, or fewer frames than ``count``.

    """
    if count < 1:
        raise MineError(f"--count must be >= 1, got {count}")
    segmenter_for(options)  # a model without calibration fails here, before any scan
    out = Path(out_dir)
    started = time.perf_counter()
    files = scan_all(sources, options, out, workers, ray, progress)
    candidates = [c for f in files for c in load_candidates(f)]
    if count > len(candidates):
        raise MineError(f"--count {count} is more than the {len(candidates)} frames of "
                        f"{options.image_topic} in {len(sources)} source(s)")
    per_bag = per_bag or max(1, 2 * math.ceil(count / len(sources)))
    picks = select(candidates, count, per_bag, window_s, min_distance)
    starts: dict[str, int] = {}
    for cand in candidates:
        starts[cand.source] = min(starts.get(cand.source, cand.stamp_ns), cand.stamp_ns)
    paths = write_picks(out, picks, options, starts)
    summary = {"frames": len(candidates), "sources": len(sources), "picked": len(picks),
               "asked": count, "seconds": time.perf_counter() - started,
               "paths": {k: str(v) for k, v in paths.items()}}
    (out / "mine.json").write_text(json.dumps(summary, indent=1))
    return summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the ``dice-seg mine`` options."""
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--bags", help="a bag, a folder of bags, or a glob ('drives/*.mcap')")
    what.add_argument("--data", help="a folder of images instead of bags")
    parser.add_argument("--image-topic", default="/camera/image_raw",
                        help="camera topic in the bags (Image or CompressedImage)")
    parser.add_argument("--count", type=int, required=True, help="frames to pick")
    parser.add_argument("--out", required=True, help="output folder (reruns reuse its scans)")
    add_model_arguments(parser, threads=1)
    parser.add_argument("--per-bag", type=int, default=None,
                        help="at most this many picks of one bag (default: twice an even share)")
    parser.add_argument("--window-s", type=float, default=5.0,
                        help="no two picks of one bag closer than this, seconds (default 5)")
    parser.add_argument("--min-distance", type=float, default=0.03,
                        help="drop frames whose 32x24 grey thumbnail differs from a pick's by "
                             "less than this mean absolute difference, 0..1 (default 0.03)")
    parser.add_argument("--stride", type=int, default=1, help="score every N-th frame")
    parser.add_argument("--workers", type=int, default=1, help="parallel bags (processes)")
    parser.add_argument("--ray", default=None, metavar="local|ADDRESS",
                        help="run the bags as Ray tasks instead of local processes")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    """Entry point of ``dice-seg mine``."""
    for name in ("workers", "threads", "stride"):
        if getattr(args, name) < 1:
            raise MineError(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.data and not folder_images(args.data):
        raise MineError(f"{args.data}: no images ({', '.join(IMAGE_SUFFIXES)}) found")
    sources = [args.data] if args.data else [str(b) for b in find_bags(args.bags)]
    options = MineOptions(args.image_topic, args.model, args.backend, args.device, args.threads,
                          args.stride)
    summary = mine(sources, options, args.out, args.count, args.per_bag, args.window_s,
                   args.min_distance, args.workers, args.ray, not args.no_progress)
    short = (" (the per-bag cap, time window and duplicate check left no more; lower "
             "--window-s or --min-distance for more)" if summary["picked"] < args.count
             else "")
    print(f"picked {summary['picked']} of {summary['frames']} frames{short}: "
          f"{summary['paths']['manifest']}, {summary['paths']['contact_sheet']}; "
          f"pre-labels for CVAT: {summary['paths']['cvat']}")
    return 0
