"""``dice-seg fleet``: evaluate a model on many labeled bags, locally or on Ray.

Each bag goes through the single-bag evaluation (:func:`~dice_seg_ros.bags.evaluate.evaluate_bag`,
no output bag) in a worker: a local process pool by default (``--workers N``),
or Ray tasks (``--ray ADDRESS`` for a running cluster, ``--ray local`` for an
embedded one; ``pip install .[fleet]``). The fleet's per-class Dice and IoU come
from the sum of the bags' confusion matrices, so they equal one run over every
frame. A bag that fails is recorded with its error and left out of the sums; it
does not stop the others.

Output directory:
  * ``bags/<key>/``: each bag's own eval report (report.json, per_frame.csv,
    plots) and ``result.json``; ``<key>`` starts the SHA-256 of the bag's
    bytes, so a re-run skips bags already scored with the same model and
    options, whatever their name (``--force`` scores them again).
  * ``bags.csv``: one row per bag (frames, unpaired, mean Dice, mean over
    classes present in the labels, fps, error).
  * ``fleet.json``: pooled scores, confusion matrix, worst bags and frames.
  * ``fleet_bags.png`` (per-bag mean Dice, worst first; the worst frames) and
    ``fleet_class_dice.png`` (per-class Dice across bags, pooled marked).

Ctrl-C stops scheduling, keeps every bag already scored and writes the report.
"""

from __future__ import annotations

import argparse
import csv
import glob
import hashlib
import json
import math
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from tqdm import tqdm

from dice_seg_ros.bags.evaluate import EvalOptions, add_label_arguments, eval_options
from dice_seg_ros.runtime.estimated_dice import file_sha256
from dice_seg_ros.runtime.inference import add_model_arguments
from dice_seg_ros.runtime.metrics import dice_from_matrix, iou_from_matrix, nanmean

BAGS_DIR = "bags"
BAGS_CSV = "bags.csv"
FLEET_JSON = "fleet.json"
BAGS_PLOT = "fleet_bags.png"
CLASS_PLOT = "fleet_class_dice.png"
RESULT_JSON = "result.json"
BAG_SUFFIXES = (".mcap", ".db3")
KEY_CHARS = 16
WORST = 10
HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class FleetOptions:
    """How every bag is evaluated (the same for all; part of the re-run key)."""

    image_topic: str
    label_topic: str
    model: str | None = None
    backend: str = "ort"
    device: str = "cpu"
    evaluation: EvalOptions = EvalOptions(output_bag=False, progress=False)
    threads: int | None = None

    def fingerprint(self) -> str:
        """Return a hex digest of the options and the model file's bytes (threads excluded)."""
        from dice_seg_ros.runtime.inference import resolve_model_path

        settings = asdict(self)
        settings.pop("threads")
        model = resolve_model_path(self.model, self.backend)
        settings["model"] = file_sha256(model)
        return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()
                              ).hexdigest()


@dataclass
class BagResult:
    """One bag's outcome.

    Attributes:
        bag: the bag's path as given. key: hex SHA-256 of its bytes.
        fingerprint: :meth:`FleetOptions.fingerprint` it was scored with.
        frames: frames scored. unpaired: images plus labels without a partner.
        fps: frames per second (wall clock, in its worker).
        error: what stopped it ("Type: message"), None when it ran to the end.
        confusion: ``(C, C)`` pixel counts, rows = label id, columns = prediction.
        frame_dice: ``[stamp_ns, mean Dice]`` of each frame (None for NaN).
        reused: True when read back from an earlier run instead of scored.

    """

    bag: str
    key: str
    fingerprint: str
    frames: int = 0
    unpaired: int = 0
    fps: float = 0.0
    error: str | None = None
    confusion: list[list[int]] = field(default_factory=list)
    frame_dice: list[list[Any]] = field(default_factory=list)
    reused: bool = False

    @property
    def matrix(self) -> np.ndarray:
        """The confusion matrix as an int64 array."""
        return np.asarray(self.confusion, np.int64)

    def mean_dice(self) -> float:
        """Mean Dice of the bag's pooled counts over classes in prediction or label."""
        return nanmean(dice_from_matrix(self.matrix)) if self.confusion else math.nan

    def mean_dice_present(self) -> float:
        """Mean Dice over the classes present in the bag's labels."""
        return mean_dice_present(self.matrix) if self.confusion else math.nan


def mean_dice_present(matrix: np.ndarray) -> float:
    """Mean Dice of a confusion matrix over classes with label pixels (rows with counts)."""
    present = matrix.sum(axis=1) > 0
    return nanmean(dice_from_matrix(matrix)[present]) if present.any() else math.nan


def bag_key(bag: str | Path) -> str:
    """Return the hex SHA-256 of a bag's content: every file's relative name and bytes."""
    path = Path(bag)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for file in files:
        digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode())
        with open(file, "rb") as stream:
            for chunk in iter(lambda: stream.read(HASH_CHUNK), b""):
                digest.update(chunk)
    return digest.hexdigest()


def _is_bag(path: Path) -> bool:
    """Tell whether ``path`` is a rosbag2 directory (has metadata.yaml) or a .mcap/.db3 file."""
    if path.is_file():
        return path.suffix in BAG_SUFFIXES
    return (path / "metadata.yaml").is_file()


def find_bags(spec: str | Path) -> list[Path]:
    """Return the bags a ``--bags`` value names, sorted.

    ``spec`` is a bag, a directory of bags (rosbag2 directories or .mcap/.db3
    files), or a glob pattern.

    Raises:
        FileNotFoundError: naming ``spec`` when it matches no bag.

    """
    path = Path(spec)
    if path.is_dir() and not _is_bag(path):
        candidates = sorted(path.iterdir())
    else:
        candidates = sorted(Path(p) for p in glob.glob(str(spec)))
    bags = [p for p in candidates if _is_bag(p)]
    if not bags:
        raise FileNotFoundError(f"no rosbag2 directory or .mcap/.db3 file found at {spec}")
    return bags


# One Segmenter per worker process and options: a process scores many bags.
_SEGMENTERS: dict[FleetOptions, Any] = {}


def _segmenter(options: FleetOptions) -> Any:
    """Return this process's Segmenter for ``options`` (created on first use)."""
    from dice_seg_ros.runtime.inference import Segmenter

    if options not in _SEGMENTERS:
        _SEGMENTERS[options] = Segmenter(options.model, backend=options.backend,
                                         device=options.device, threads=options.threads)
    return _SEGMENTERS[options]


def _frame_dice(per_frame_csv: Path) -> list[list[Any]]:
    """Return ``[stamp_ns, mean Dice or None]`` per row of an eval per_frame.csv."""
    with open(per_frame_csv, newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    return [[int(row["stamp_ns"]) if row["stamp_ns"] else None,
             _finite(float(row["mean_dice"]))] for row in rows]


def score_bag(bag: str, key: str, fingerprint: str, options: FleetOptions,
              out_dir: str) -> BagResult:
    """Evaluate one bag into ``out_dir``; any error is recorded in the result, not raised.

    Raises:
        KeyboardInterrupt: when the evaluation was interrupted (nothing recorded).

    """
    from dice_seg_ros.bags.evaluate import evaluate_bag

    result = BagResult(bag=bag, key=key, fingerprint=fingerprint)
    try:
        replay = evaluate_bag(bag, options.image_topic, options.label_topic, out_dir,
                              _segmenter(options),
                              replace(options.evaluation, output_bag=False, progress=False))
    except Exception as exc:  # a bad bag, topic or model must not stop the fleet
        result.error = f"{type(exc).__name__}: {exc}"
        return result
    if replay.stopped_by is not None and replay.error is None:
        raise KeyboardInterrupt
    report = replay.report
    result.frames = int(report["frames"])
    result.unpaired = int(report["unpaired"])
    result.fps = float(report["fps"] or 0.0)
    result.confusion = report["confusion_matrix"]
    result.frame_dice = _frame_dice(replay.paths["per_frame"])
    result.error = replay.stopped_by
    return result


def _result_dir(out: Path, key: str) -> Path:
    """Return the folder of the bag with content hash ``key``."""
    return out / BAGS_DIR / key[:KEY_CHARS]


def load_done(out: Path, key: str, fingerprint: str) -> BagResult | None:
    """Return the earlier error-free result of this bag and fingerprint, else None."""
    path = _result_dir(out, key) / RESULT_JSON
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    data.pop("reused", None)
    done = BagResult(**data, reused=True)
    return done if done.fingerprint == fingerprint and done.error is None else None


def save_result(out: Path, result: BagResult) -> None:
    """Write ``result`` as its folder's result.json."""
    folder = _result_dir(out, result.key)
    folder.mkdir(parents=True, exist_ok=True)
    data = asdict(result)
    data.pop("reused")
    (folder / RESULT_JSON).write_text(json.dumps(data) + "\n", encoding="utf-8")


Job = tuple[Any, ...]
OnResult = Callable[[Any], None]
# A job's work: a module-level function (pickled by name for processes and Ray) of a job's
# arguments, returning what ``on_result`` receives.
Work = Callable[..., Any]


def run_jobs(work: Work, jobs: Sequence[Job], workers: int, ray: str | None,
             on_result: OnResult) -> None:
    """Run ``work(*job)`` for every job: in this process, ``workers`` processes, or Ray.

    Args:
        work: the per-job function (``score_bag`` for the fleet, a bag scan for mining).
        jobs: argument tuples, one per bag.
        workers: 1 = in this process; N > 1 = N processes, or N CPUs of an embedded Ray.
        ray: None (no Ray), "local" (embedded Ray) or a cluster address.
        on_result: called in this process with each job's result, as it finishes.

    """
    if ray is not None:
        run_ray(work, jobs, ray, workers, on_result)
    elif workers > 1:
        run_processes(work, jobs, workers, on_result)
    else:
        for job in jobs:
            on_result(work(*job))


def run_processes(work: Work, jobs: Sequence[Job], workers: int, on_result: OnResult) -> None:
    """Run the jobs in a pool of ``workers`` spawned processes."""
    # spawn, not fork: ONNX Runtime's thread pools do not survive a fork.
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        pending = {pool.submit(work, *job) for job in jobs}
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    on_result(future.result())
        except KeyboardInterrupt:
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def run_ray(work: Work, jobs: Sequence[Job], address: str, workers: int,
            on_result: OnResult) -> None:
    """Run the jobs as Ray tasks: ``address`` "local" starts an embedded Ray of ``workers`` CPUs.

    Workers of a remote cluster need dice_seg_ros installed and the bags and
    model at the same paths (a shared file system).
    """
    try:
        import ray
    except ImportError as exc:
        raise ValueError("--ray needs Ray: pip install 'dice_seg_ros[fleet]' (or "
                         "pip install ray)") from exc
    local = address == "local"
    ray.init(address=None if local else address, num_cpus=workers if local else None,
             include_dashboard=False, log_to_driver=False)
    try:
        task = ray.remote(num_cpus=1)(work)
        pending = [task.remote(*job) for job in jobs]
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                on_result(ray.get(done[0]))
        except KeyboardInterrupt:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
    finally:
        ray.shutdown()


def _finite(value: float) -> float | None:
    """Return ``value``, or None for NaN/inf (JSON null)."""
    return float(value) if math.isfinite(value) else None


def fleet_summary(results: Sequence[BagResult], class_names: Sequence[str],
                  stopped_by: str | None = None) -> dict[str, Any]:
    """Return fleet.json's content: pooled scores over the error-free bags, worst bags/frames."""
    scored = [r for r in results if r.error is None and r.confusion]
    matrix = sum((r.matrix for r in scored), np.zeros((len(class_names),) * 2, np.int64))
    dice, iou = dice_from_matrix(matrix), iou_from_matrix(matrix)
    frames = [(r.bag, k, stamp, value) for r in scored
              for k, (stamp, value) in enumerate(r.frame_dice) if value is not None]
    worst_frames = sorted(frames, key=lambda f: f[3])[:WORST]
    worst_bags = sorted(scored, key=lambda r: _sort_value(r.mean_dice()))[:WORST]
    return {
        "bags": len(results), "scored": len(scored),
        "reused": sum(r.reused for r in scored),
        "failed": [{"bag": r.bag, "error": r.error} for r in results if r.error is not None],
        "frames": sum(r.frames for r in scored), "unpaired": sum(r.unpaired for r in scored),
        "classes": list(class_names),
        "dice": {n: _finite(v) for n, v in zip(class_names, dice)},
        "iou": {n: _finite(v) for n, v in zip(class_names, iou)},
        "mean_dice": _finite(nanmean(dice)), "mean_iou": _finite(nanmean(iou)),
        "mean_dice_present": _finite(mean_dice_present(matrix)),
        "confusion_matrix": matrix.tolist(),
        "worst_bags": [{"bag": r.bag, "mean_dice": _finite(r.mean_dice())}
                       for r in worst_bags],
        "worst_frames": [{"bag": bag, "frame": k, "stamp_ns": stamp, "mean_dice": value}
                         for bag, k, stamp, value in worst_frames],
        "stopped_by": stopped_by,
    }


def _sort_value(value: float) -> float:
    """Sort key that puts NaN last."""
    return math.inf if math.isnan(value) else value


def write_bags_csv(path: Path, results: Sequence[BagResult]) -> None:
    """Write bags.csv: bag, key, frames, unpaired, mean_dice, mean_dice_present, fps, error."""
    with open(path, "w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["bag", "key", "frames", "unpaired", "mean_dice", "mean_dice_present",
                         "fps", "reused", "error"])
        for r in results:
            scores = [r.mean_dice(), r.mean_dice_present()] if r.error is None else [math.nan] * 2
            writer.writerow([r.bag, r.key[:KEY_CHARS], r.frames, r.unpaired,
                             *("" if math.isnan(v) else f"{v:.6f}" for v in scores),
                             f"{r.fps:.2f}", int(r.reused), r.error or ""])


def plot_bags(path: Path, results: Sequence[BagResult], summary: dict[str, Any]) -> None:
    """Plot per-bag mean Dice (worst at the top, failed bags named) and the worst frames."""
    from matplotlib.figure import Figure

    scored = sorted((r for r in results if r.error is None and r.confusion),
                    key=lambda r: -_sort_value(r.mean_dice()))
    failed = [r for r in results if r.error is not None]
    rows = max(len(scored) + len(failed), len(summary["worst_frames"]), 1)
    figure = Figure(figsize=(12, 1.5 + 0.28 * rows))
    figure.subplots_adjust(left=0.2, right=0.97, bottom=0.9 / (1.5 + 0.28 * rows) + 0.02,
                           top=1 - 0.5 / (1.5 + 0.28 * rows), wspace=0.6)
    bags, frames = figure.subplots(1, 2)
    names = ([Path(r.bag).name for r in scored]
             + [f"{Path(r.bag).name} (failed)" for r in failed])
    values = [np.nan_to_num(r.mean_dice()) for r in scored] + [0.0] * len(failed)
    colors = ["tab:blue"] * len(scored) + ["tab:red"] * len(failed)
    bags.barh(np.arange(len(names)), values, color=colors)
    bags.set_yticks(np.arange(len(names)), labels=names, fontsize="small")
    bags.set(xlim=(0, 1), xlabel="mean Dice", title="per bag (pooled over its frames)")
    if summary["mean_dice"] is not None:
        bags.axvline(summary["mean_dice"], color="black", linewidth=1, label="fleet")
        bags.legend(loc="lower right", fontsize="small")
    worst = summary["worst_frames"][::-1]
    frames.barh(np.arange(len(worst)), [f["mean_dice"] for f in worst], color="tab:orange")
    frames.set_yticks(np.arange(len(worst)),
                      labels=[f"{Path(f['bag']).name} #{f['frame']}" for f in worst],
                      fontsize="small")
    frames.set(xlim=(0, 1), xlabel="mean Dice", title=f"{len(worst)} worst frames")
    for axes in (bags, frames):
        axes.grid(axis="x", alpha=0.3)
    figure.savefig(path, dpi=100)


def plot_class_dice(path: Path, results: Sequence[BagResult], summary: dict[str, Any],
                    colors: np.ndarray | None = None) -> None:
    """Box plot of each class's per-bag Dice, with the pooled fleet Dice marked."""
    from matplotlib.figure import Figure

    names = summary["classes"]
    per_bag = np.array([dice_from_matrix(r.matrix) for r in results
                        if r.error is None and r.confusion]).reshape(-1, len(names))
    figure = Figure(figsize=(1.5 + 0.9 * len(names), 4.2))
    figure.subplots_adjust(left=0.1, right=0.97, bottom=0.18, top=0.9)
    axes = figure.add_subplot()
    columns = [column[~np.isnan(column)] for column in per_bag.T]
    box = axes.boxplot(columns, positions=np.arange(len(names)), widths=0.6,
                       patch_artist=True)
    for c, patch in enumerate(box["boxes"]):
        patch.set_facecolor("lightgrey" if colors is None else np.asarray(colors[c]) / 255.0)
    pooled = [np.nan if summary["dice"][n] is None else summary["dice"][n] for n in names]
    axes.scatter(np.arange(len(names)), pooled, marker="D", color="black", zorder=3,
                 label="fleet (pooled)")
    axes.set_xticks(np.arange(len(names)), labels=names, rotation=30, ha="right")
    axes.set(ylim=(-0.02, 1.02), ylabel="Dice", title="per-class Dice across bags")
    axes.grid(axis="y", alpha=0.3)
    axes.legend(loc="lower left", fontsize="small")
    figure.savefig(path, dpi=100)


def write_fleet_report(out: Path, results: Sequence[BagResult], class_names: Sequence[str],
                       extra: dict[str, Any], colors: np.ndarray | None = None,
                       stopped_by: str | None = None) -> dict[str, Path]:
    """Write fleet.json, bags.csv and the two plots into ``out``; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"fleet": out / FLEET_JSON, "bags": out / BAGS_CSV, "bags_plot": out / BAGS_PLOT,
             "class_plot": out / CLASS_PLOT}
    summary = dict(fleet_summary(results, class_names, stopped_by), **extra)
    paths["fleet"].write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    write_bags_csv(paths["bags"], results)
    plot_bags(paths["bags_plot"], results, summary)
    plot_class_dice(paths["class_plot"], results, summary, colors)
    return paths


@dataclass
class FleetRun:
    """What :func:`evaluate_fleet` produced."""

    results: list[BagResult]
    summary: dict[str, Any]
    paths: dict[str, Path]
    stopped_by: str | None


def evaluate_fleet(bags: Sequence[str | Path], options: FleetOptions, out_dir: str | Path,
                   workers: int = 1, ray: str | None = None, force: bool = False,
                   progress: bool = True) -> FleetRun:
    """Score every bag (skipping those already scored unless ``force``) and write the report.

    Args:
        bags: bag paths.
        options: evaluation options shared by all bags.
        out_dir: output directory (see the module docstring).
        workers: parallel workers: 1 = in this process; N > 1 = N processes, or
            N CPUs of an embedded Ray.
        ray: None (no Ray), "local" (embedded Ray) or a cluster address.
        force: score bags again even when an earlier result matches.
        progress: show a progress bar over bags.

    """
    from dice_seg_ros.classes import classes_for_model
    from dice_seg_ros.runtime.inference import Segmenter

    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    # The report names the model's own classes (its metadata, as eval does).
    model = Segmenter(options.model, backend=options.backend, device="cpu", threads=1,
                      estimate_dice=False)
    classes = classes_for_model(model.meta.class_names)
    out = Path(out_dir)
    if options.threads is None:
        options = replace(options, threads=max(1, (os.cpu_count() or 1) // workers))
    fingerprint = options.fingerprint()
    results: dict[str, BagResult] = {}
    jobs: list[Job] = []
    for bag in map(str, bags):
        key = bag_key(bag)
        done = None if force else load_done(out, key, fingerprint)
        if done is not None:
            # The same content may have been renamed since.
            results[bag] = replace(done, bag=bag)
        else:
            jobs.append((bag, key, fingerprint, options, str(_result_dir(out, key))))
    bar = tqdm(total=len(bags), initial=len(results), desc="fleet", unit="bag",
               disable=not progress)

    def on_result(result: BagResult) -> None:
        if result.error is None:
            save_result(out, result)
        results[result.bag] = result
        bar.update()
        bar.set_postfix(frames=sum(r.frames for r in results.values()),
                        failed=sum(r.error is not None for r in results.values()),
                        refresh=False)

    stopped_by = None
    try:
        run_jobs(score_bag, jobs, workers, ray, on_result)
    except KeyboardInterrupt:
        stopped_by = "interrupted (Ctrl-C)"
    finally:
        bar.close()
    ordered = [results[str(b)] for b in bags if str(b) in results]
    extra = {"model": options.model or "shipped model", "backend": options.backend,
             "image_topic": options.image_topic, "label_topic": options.label_topic,
             "workers": workers, "ray": ray, "not_scored": len(bags) - len(ordered)}
    paths = write_fleet_report(out, ordered, classes.names, extra, classes.colors, stopped_by)
    summary = json.loads(paths["fleet"].read_text(encoding="utf-8"))
    return FleetRun(ordered, summary, paths, stopped_by)


def format_summary(run: FleetRun) -> str:
    """Return a short human-readable summary of a fleet run."""
    summary = run.summary

    def score(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    lines = [f"bags: {summary['bags']} ({summary['scored'] - summary['reused']} evaluated "
             f"now, {summary['reused']} taken from an earlier run with the same bag, model "
             f"and options, {len(summary['failed'])} failed)  frames: {summary['frames']}",
             f"fleet mean Dice: {score(summary['mean_dice'])}  over present classes: "
             f"{score(summary['mean_dice_present'])}  mean IoU: {score(summary['mean_iou'])}",
             "per-class Dice: " + ", ".join(f"{n} {score(v)}"
                                            for n, v in summary["dice"].items())]
    lines += [f"failed: {f['bag']}: {f['error']}" for f in summary["failed"]]
    lines += [f"{name}: {path}" for name, path in run.paths.items()]
    if run.stopped_by:
        lines.append(f"stopped early by {run.stopped_by}; {summary['not_scored']} bags not "
                     f"scored (re-run to continue)")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``dice-seg fleet`` options."""
    parser.add_argument("--bags", required=True,
                        help="directory of bags (rosbag2 directories or .mcap/.db3 files), "
                             "or a glob such as 'drives/*.mcap'")
    parser.add_argument("--image-topic", required=True)
    parser.add_argument("--label-topic", required=True)
    add_model_arguments(parser)
    add_label_arguments(parser)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="parallel workers (processes, or CPUs of --ray local); "
                             "default: CPU count")
    parser.add_argument("--ray", default=None, metavar="ADDRESS",
                        help="run on Ray: a cluster address (ray://host:10001, auto) or "
                             "'local' for an embedded one (pip install .[fleet])")
    parser.add_argument("--out", type=Path, default=Path("dice_seg_fleet"))
    parser.add_argument("--force", action="store_true",
                        help="score every bag again, even those already in --out")
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    """Evaluate the fleet and print its summary; exit 0, 1 if a bag failed, 130 on Ctrl-C."""
    options = FleetOptions(args.image_topic, args.label_topic,
                           args.model, args.backend, args.device,
                           eval_options(args, output_bag=False, progress=False), args.threads)
    fleet = evaluate_fleet(find_bags(args.bags), options, args.out, workers=args.workers,
                           ray=args.ray, force=args.force, progress=not args.no_progress)
    print(format_summary(fleet))
    if fleet.stopped_by:
        return 130
    return 1 if fleet.summary["failed"] else 0
