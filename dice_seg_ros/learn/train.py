"""``dice-seg train``: train the terrain network with a Dice-family loss.

Generated terrain (``--data synthetic``), a labeled folder / YCOR / RUGD /
RELLIS-3D tree, or both (``--mix-synthetic N`` adds N generated scenes per
epoch to a real dataset). ``--init PATH`` starts from any checkpoint the
project writes (the shipped ``models/terrain_seg.pt`` included) and re-creates
only the classifier when the class list differs. AdamW with a one-cycle
learning rate, AMP on CUDA, a tqdm bar,
validation per-class Dice every epoch (``metrics.ConfusionMatrix``), the best
checkpoint by validation mean Dice, a CSV log and a PNG plot. ``--resume
DIR/last.pt`` continues a run (model, optimizer, scheduler, epoch). Under
``torchrun`` it trains with DistributedDataParallel: each rank sees its shard
of every epoch, validation confusion matrices are summed over ranks, and only
rank 0 writes files.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, Subset
from torch.utils.data.distributed import DistributedSampler
from tqdm import tqdm

from dice_seg_ros.classes import ClassSet, load_classes
from dice_seg_ros.data.augment import AUGMENT_PRESETS
from dice_seg_ros.data.datasets import FORMATS, evenly_spaced, open_dataset, split_by_sequence
from dice_seg_ros.data.torch_dataset import VAL_SEED_BASE, EpochConcat, FileScenes, SyntheticScenes
from dice_seg_ros.errors import DiceSegError, ModelError
from dice_seg_ros.learn.losses import LOSS_NAMES, make_loss
from dice_seg_ros.learn.provenance import training_provenance
from dice_seg_ros.runtime.image_conversion import LABEL_FORMATS
from dice_seg_ros.runtime.metrics import ConfusionMatrix
from dice_seg_ros.runtime.model import (DEFAULT_INPUT_SIZE, build_model, default_meta,
                                        read_checkpoint, save_checkpoint)
from dice_seg_ros.runtime.model_meta import ModelMeta

# A small dataset still gets enough optimiser steps per epoch (800 samples is 100
# steps at batch 8), and fine-tuning starts lower so it does not wash out the
# starting weights.
MIN_SAMPLES_PER_EPOCH = 800
LR_SCRATCH = 3e-3
LR_FINETUNE = 1e-3


DatasetBuilder = Callable[[ModelMeta, ClassSet], tuple[Dataset, Dataset]]


class TrainingError(DiceSegError):
    """Training diverged (non-finite loss) or was configured inconsistently."""


@dataclass
class Dist:
    """Process-group facts of this process (single process: rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def main(self) -> bool:
        """Whether this process writes files and shows progress."""
        return self.rank == 0


def parse_size(text: str) -> tuple[int, int]:
    """Parse ``WxH`` (pixels) into (width, height)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 320x240, got {text!r}") from None
    if width < 16 or height < 16:
        raise argparse.ArgumentTypeError(f"size must be at least 16x16, got {text!r}")
    return width, height


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register ``dice-seg train`` options."""
    parser.add_argument("--data", default="synthetic",
                        help="'synthetic' (generated terrain) or a dataset folder")
    parser.add_argument("--format", choices=FORMATS, default="folder",
                        help="layout of a dataset folder (docs/TRAINING.md: 'Dataset layouts')")
    parser.add_argument("--split", help="use only images named SPLIT_* (e.g. YCOR's 'train')")
    parser.add_argument("--train-images", type=int, default=None,
                        help="few-shot: train on only this many images, evenly spaced")
    parser.add_argument("--val-data",
                        help="validation dataset folder (same --format); default: hold out "
                             "the last --val-fraction of every sequence of --data")
    parser.add_argument("--val-split", help="use only validation images named VAL_SPLIT_*")
    parser.add_argument("--mix-synthetic", type=int, default=0,
                        help="real data: add this many generated scenes to every epoch")
    parser.add_argument("--label-format", choices=LABEL_FORMATS, default="ids",
                        help="folder format: id PNGs or colour PNGs (classes.yaml colours)")
    parser.add_argument("--remap", help="YAML {source id: class id} for real datasets "
                        "(cvat: {label name or index: class name or id})")
    parser.add_argument("--images", default=None,
                        help="cvat format: the frames' images, when the export holds none")
    parser.add_argument("--data-licence",
                        help="licence/terms of --data, recorded in the model's provenance "
                             "(known for --format ycor)")
    parser.add_argument("--classes", help="classes YAML (default: shipped config/classes.yaml)")
    parser.add_argument("--init", help="start from the weights of this .pt checkpoint "
                                       "(architecture and input size come from it)")
    parser.add_argument("--loss", choices=LOSS_NAMES, default="dice_ce", help="training loss")
    parser.add_argument("--loss-batch", action="store_true",
                        help="overlap losses: pool Dice sums over the batch (not per image)")
    parser.add_argument("--loss-kwargs", type=json.loads, default={},
                        help='extra loss arguments as JSON, e.g. \'{"alpha": 0.3, "beta": 0.7}\'')
    parser.add_argument("--augment", choices=sorted(AUGMENT_PRESETS), default="camera",
                        help="augmentation preset: 'camera' adds exposure, white balance, "
                             "blur, noise, JPEG and PASTA to 'basic' flip/zoom/colour jitter; "
                             "'domain' applies PASTA more often (generated scenes alone)")
    parser.add_argument("--freeze-bn", action="store_true",
                        help="keep the BatchNorm statistics of --init (few frames estimate "
                             "them badly)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=8, help="per process")
    parser.add_argument("--lr", type=float, default=None,
                        help=f"peak learning rate (default {LR_SCRATCH:g}, or "
                             f"{LR_FINETUNE:g} with --init)")
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--input-size", type=parse_size, default=None,
                        help="network input WxH in pixels (default 320x240, or --init's)")
    parser.add_argument("--width-mult", type=float, default=1.0,
                        help="scale the network's channel widths (not with --init)")
    parser.add_argument("--train-scenes", type=int, default=400,
                        help="synthetic: generated scenes per epoch (new ones each epoch)")
    parser.add_argument("--val-scenes", type=int, default=64, help="synthetic: validation scenes")
    parser.add_argument("--val-fraction", type=float, default=0.1,
                        help="real data without --val-data: fraction of every sequence held "
                             "out for validation")
    parser.add_argument("--samples-per-epoch", type=int, default=MIN_SAMPLES_PER_EPOCH,
                        help="real data: draw at least this many augmented samples per epoch "
                             "(small datasets repeat, each time with new augmentation)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--resume", help="continue from DIR/last.pt")
    parser.add_argument("--stop-after", type=int, default=None,
                        help="stop after this many epochs in this run (time-sliced jobs; "
                             "--resume continues)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


# ---------------------------------------------------------------- distributed

def setup_distributed(device: str) -> Dist:
    """Join the torchrun process group if launched by it; pick the device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    want_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if world > 1:
        dist.init_process_group("nccl" if want_cuda else "gloo")
    rank = dist.get_rank() if world > 1 else 0
    if want_cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        index = local if device in ("auto", "cuda") else int(device.split(":")[1])
        torch.cuda.set_device(index)
        return Dist(rank, world, torch.device("cuda", index))
    return Dist(rank, world, torch.device("cpu"))


def _all_reduce(array: np.ndarray, ddp: Dist) -> np.ndarray:
    """Sum a numpy array over ranks (identity in a single process)."""
    if ddp.world == 1:
        return array
    tensor = torch.from_numpy(np.ascontiguousarray(array)).to(torch.float64)
    dist.all_reduce(tensor)
    return tensor.numpy().astype(array.dtype)


# ------------------------------------------------------------------- datasets

def build_datasets(args: argparse.Namespace, meta: ModelMeta, classes: ClassSet
                   ) -> tuple[Dataset, Dataset]:
    """Training and validation datasets for ``--data`` (+ ``--mix-synthetic``)."""
    cfg = AUGMENT_PRESETS[args.augment]
    if args.data == "synthetic":
        train = SyntheticScenes(meta, args.train_scenes, 0, True, seed=args.seed, cfg=cfg,
                                ignore_index=classes.ignore_index)
        val = SyntheticScenes(meta, args.val_scenes, VAL_SEED_BASE, False)
        return train, val
    files = open_dataset(args.data, args.format, classes, args.remap, args.label_format,
                         args.split, args.images)
    if args.val_data:
        train_indices = range(len(files))
        val_files = open_dataset(args.val_data, args.format, classes, args.remap,
                                 args.label_format, args.val_split)
        val_indices: Sequence[int] = range(len(val_files))
    else:
        train_indices, val_indices = split_by_sequence(files, args.val_fraction)
        val_files = files
    if args.train_images is not None:
        train_indices = evenly_spaced(train_indices, args.train_images)
    real = FileScenes(meta, files, train_indices, True, args.seed, cfg,
                      samples=args.samples_per_epoch)
    train_set: Dataset = real
    if args.mix_synthetic > 0:
        synthetic = SyntheticScenes(meta, args.mix_synthetic, 0, True, seed=args.seed, cfg=cfg,
                                    ignore_index=classes.ignore_index)
        train_set = EpochConcat([real, synthetic])
    return train_set, FileScenes(meta, val_files, val_indices, False)


def build_loaders(train: Dataset, val: Dataset, args: argparse.Namespace, ddp: Dist
                  ) -> tuple[DataLoader, DataLoader, DistributedSampler | None,
                             torch.Generator]:
    """Loaders; training is sharded by DistributedSampler, validation by stride.

    Also returns the generator of the single-process shuffle, reseeded every
    epoch so that a resumed run draws the same batches as an uninterrupted one.
    """
    sampler = None
    shuffle_rng = torch.Generator()
    if ddp.world > 1:
        sampler = DistributedSampler(train, ddp.world, ddp.rank, shuffle=True, seed=args.seed,
                                     drop_last=True)
        val = Subset(val, range(ddp.rank, len(val), ddp.world))
    pin = ddp.device.type == "cuda"
    train_loader = DataLoader(train, args.batch_size, shuffle=sampler is None, sampler=sampler,
                              num_workers=args.workers, drop_last=len(train) > args.batch_size,
                              pin_memory=pin, generator=shuffle_rng)
    val_loader = DataLoader(val, args.batch_size, shuffle=False, num_workers=args.workers,
                            pin_memory=pin)
    return train_loader, val_loader, sampler, shuffle_rng


# ------------------------------------------------------------------ the steps

def loss_for(name: str, classes: ClassSet, batch: bool = False,
             extra: dict[str, Any] | None = None) -> nn.Module:
    """Build the training loss; overlap losses check their inputs (validate=True).

    ``batch`` pools the overlap sums over the batch (``batch=True`` of the
    Dice family), so a class absent from one image does not give that image a
    full loss for it. ``extra`` holds further constructor arguments.
    """
    kwargs: dict[str, Any] = dict(extra or {})
    if name != "ce":
        kwargs["validate"] = True
        if name != "focal":
            kwargs["batch"] = batch
    try:
        return make_loss(name, classes.num_classes, ignore_index=classes.ignore_index, **kwargs)
    except TypeError as exc:
        raise ValueError(f"loss {name!r} does not take arguments {extra}: {exc}") from exc


def _autocast(device: torch.device):
    """Mixed precision on CUDA; full precision elsewhere (CPU AMP is slower here)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return nullcontext()


def check_finite(loss: torch.Tensor, logits: torch.Tensor, where: str) -> None:
    """Raise TrainingError if the loss or logits contain NaN/inf."""
    if not torch.isfinite(loss):
        bad = "logits" if not torch.isfinite(logits).all() else "loss"
        raise TrainingError(f"{where}: non-finite {bad} (loss={loss.item()}); "
                            "lower --lr or check the data")


def train_epoch(model: nn.Module, loader: DataLoader, loss_fn: nn.Module,
                optimizer: torch.optim.Optimizer, scheduler: Any, scaler: torch.amp.GradScaler,
                ddp: Dist, epoch: int, quiet: bool, freeze_bn: bool = False) -> float:
    """One pass over the training shard; return the mean training loss.

    With ``freeze_bn`` the BatchNorm layers normalise with their running statistics and do not
    update them: a batch drawn from a handful of frames would pull them towards those frames.
    """
    model.train()
    if freeze_bn:
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
    total, steps = 0.0, 0
    bar = tqdm(loader, desc=f"epoch {epoch + 1}", disable=quiet or not ddp.main,
               leave=False, dynamic_ncols=True)
    for images, targets in bar:
        images = images.to(ddp.device, non_blocking=True)
        targets = targets.to(ddp.device, non_blocking=True)
        with _autocast(ddp.device):
            logits = model(images)
            loss = loss_fn(logits.float(), targets)
        check_finite(loss, logits, f"epoch {epoch + 1} step {steps + 1}")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        total += loss.item()
        steps += 1
        bar.set_postfix(loss=f"{total / steps:.4f}")
    summed = _all_reduce(np.array([total, steps], np.float64), ddp)
    return float(summed[0] / max(summed[1], 1))


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, loss_fn: nn.Module | None,
             classes: ClassSet, ddp: Dist = Dist()) -> tuple[ConfusionMatrix, float]:
    """Confusion matrix (summed over ranks) and mean loss of ``model`` on ``loader``."""
    model.eval()
    cm = ConfusionMatrix(classes.num_classes, classes.ignore_index)
    total, batches = 0.0, 0
    for images, targets in loader:
        images = images.to(ddp.device)
        with _autocast(ddp.device):
            logits = model(images).float()
        if loss_fn is not None:
            total += loss_fn(logits, targets.to(ddp.device)).item()
            batches += 1
        cm.update(logits.argmax(1).to(torch.uint8).cpu().numpy(),
                  targets.numpy().astype(np.uint8))
    cm.matrix = _all_reduce(cm.matrix, ddp)
    summed = _all_reduce(np.array([total, batches], np.float64), ddp)
    return cm, float(summed[0] / summed[1]) if summed[1] else math.nan


# ------------------------------------------------------------ logs and files

def write_log_row(path: Path, row: dict[str, Any]) -> None:
    """Append ``row`` to the CSV at ``path`` (header on first write)."""
    new = not path.exists()
    with open(path, "a", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


def plot_log(csv_path: Path, png_path: Path, class_names: Sequence[str]) -> None:
    """Plot losses and validation Dice per epoch from the CSV log into a PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    with open(csv_path, encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    epochs = [int(r["epoch"]) for r in rows]
    fig, (ax_loss, ax_dice) = plt.subplots(1, 2, figsize=(11, 4))
    for key in ("train_loss", "val_loss"):
        ax_loss.plot(epochs, [float(r[key]) for r in rows], marker="o", label=key)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_loss.legend()
    for name in class_names:
        ax_dice.plot(epochs, [float(r[f"dice_{name}"]) for r in rows], label=name)
    ax_dice.plot(epochs, [float(r["val_mean_dice_present"]) for r in rows], "k-", lw=2,
                 label="mean (classes in labels)")
    ax_dice.set(xlabel="epoch", ylabel="Dice", ylim=(0, 1), title="validation Dice")
    ax_dice.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)


@dataclass
class RunState:
    """What resuming restores besides weights."""

    epoch: int = 0
    best_dice: float = -1.0


def _restore(path: str, model: nn.Module, meta: ModelMeta, optimizer: torch.optim.Optimizer,
             scheduler: Any, scaler: torch.amp.GradScaler, ddp: Dist) -> RunState:
    """Load a ``last.pt`` into model, optimizer, scheduler and scaler."""
    ckpt = read_checkpoint(path, ddp.device)
    saved = ModelMeta.from_dict(ckpt["meta"], path)
    if saved != meta:
        raise ModelError(f"{path}: checkpoint was trained with {saved}, not {meta}")
    for key in ("optimizer", "scheduler", "epoch"):
        if key not in ckpt:
            raise ModelError(f"{path}: not a resumable checkpoint (no {key!r}); use last.pt")
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    if "scaler" in ckpt:
        scaler.load_state_dict(ckpt["scaler"])
    return RunState(int(ckpt["epoch"]), float(ckpt.get("best_dice", -1.0)))


def _epoch_row(epoch: int, lr: float, train_loss: float, val_loss: float,
               cm: ConfusionMatrix, names: Sequence[str], seconds: float) -> dict[str, Any]:
    """One CSV row: epoch (1-based), losses, mean and per-class Dice and IoU."""
    row: dict[str, Any] = {"epoch": epoch + 1, "lr": f"{lr:.6g}",
                           "train_loss": f"{train_loss:.6f}", "val_loss": f"{val_loss:.6f}",
                           "val_mean_dice": f"{cm.mean_dice():.6f}",
                           "val_mean_dice_present": f"{cm.mean_dice_present():.6f}",
                           "val_mean_iou": f"{cm.mean_iou():.6f}"}
    row.update({f"dice_{n}": f"{d:.6f}" for n, d in zip(names, cm.dice())})
    row.update({f"iou_{n}": f"{v:.6f}" for n, v in zip(names, cm.iou())})
    row["seconds"] = f"{seconds:.1f}"
    return row


# ---------------------------------------------------------------------- main

def make_meta(args: argparse.Namespace, classes: ClassSet,
              init_meta: ModelMeta | None = None) -> ModelMeta:
    """Model metadata from the command line, or from ``--init``'s checkpoint."""
    size = args.input_size
    if init_meta is not None:
        if args.width_mult != 1.0:
            raise ValueError("--width-mult cannot change the architecture of an --init model")
        size = size or (init_meta.input_width, init_meta.input_height)
        meta = ModelMeta(**{**vars(init_meta), "input_width": size[0], "input_height": size[1],
                            "class_names": classes.names})
    else:
        meta = default_meta(classes.names, *(size or DEFAULT_INPUT_SIZE))
    if args.width_mult != 1.0:
        kwargs = dict(meta.arch_kwargs)
        kwargs["widths"] = [max(4, int(round(w * args.width_mult))) for w in kwargs["widths"]]
        kwargs["decoder"] = max(4, int(round(kwargs["decoder"] * args.width_mult)))
        meta = ModelMeta(**{**vars(meta), "arch_kwargs": kwargs})
    provenance = training_provenance(args)
    if init_meta is not None:
        # A fine-tuned model inherits what its starting weights learned from.
        provenance["init_provenance"] = init_meta.provenance
    return ModelMeta(**{**vars(meta), "provenance": provenance})


def load_init_weights(model: nn.Module, ckpt: dict[str, Any], init_meta: ModelMeta,
                      meta: ModelMeta, path: str) -> None:
    """Copy ``--init`` weights into ``model``; keep a fresh classifier if classes differ.

    Raises:
        ModelError: if the weights do not fit the architecture.

    """
    weights = dict(ckpt["model"])
    if init_meta.class_names != meta.class_names:
        own = model.state_dict()
        fresh = [k for k in weights if k in own and own[k].shape != weights[k].shape]
        for key in fresh:
            del weights[key]
        print(f"--init {path}: its classes {list(init_meta.class_names)} differ from "
              f"{list(meta.class_names)}; the classifier ({', '.join(fresh)}) starts afresh, "
              "every other layer from the checkpoint", flush=True)
    try:
        missing, unexpected = model.load_state_dict(weights, strict=False)
    except RuntimeError as exc:
        raise ModelError(f"{path}: weights do not fit {meta.arch} ({exc})") from exc
    if unexpected or (missing and init_meta.class_names == meta.class_names):
        raise ModelError(f"{path}: weights do not fit {meta.arch} (missing {missing}, "
                         f"unexpected {unexpected})")


def build_and_init(args: argparse.Namespace, classes: ClassSet) -> tuple[nn.Module, ModelMeta]:
    """Return the network to train and its metadata: fresh or from ``--init``'s weights.

    A resumed run (``--resume``) loads its own weights later, so ``--init``
    only fixes the architecture then.
    """
    if not args.init:
        meta = make_meta(args, classes)
        return build_model(meta), meta
    ckpt = read_checkpoint(args.init)
    init_meta = ModelMeta.from_dict(ckpt["meta"], args.init)
    meta = make_meta(args, classes, init_meta)
    model = build_model(meta)
    if not args.resume:
        load_init_weights(model, ckpt, init_meta, meta, args.init)
    return model, meta


def train(args: argparse.Namespace, datasets: DatasetBuilder | None = None) -> dict[str, Any]:
    """Run a training job; return a summary (best Dice, paths, seconds).

    ``datasets(meta, classes)`` returns the (training, validation) datasets in place of what
    ``--data`` would build, for callers that choose the frames themselves (``dice-seg finetune``).
    """
    ddp = setup_distributed(args.device)
    try:
        return _train(args, ddp, datasets)
    finally:
        if ddp.world > 1:
            dist.destroy_process_group()


def _train(args: argparse.Namespace, ddp: Dist,
           datasets: DatasetBuilder | None = None) -> dict[str, Any]:
    """Training proper, inside an initialised process group (if any)."""
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.epochs < 1:
        raise ValueError(f"--epochs must be >= 1, got {args.epochs}")
    classes = load_classes(args.classes)
    out = Path(args.out)
    torch.manual_seed(args.seed)
    model, meta = build_and_init(args, classes)
    model = model.to(ddp.device)
    lr = args.lr if args.lr is not None else (LR_FINETUNE if args.init else LR_SCRATCH)
    train_set, val_set = (datasets(meta, classes) if datasets
                          else build_datasets(args, meta, classes))
    train_loader, val_loader, sampler, shuffle_rng = build_loaders(train_set, val_set, args,
                                                                   ddp)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, epochs=args.epochs, steps_per_epoch=len(train_loader),
        pct_start=0.15)
    scaler = torch.amp.GradScaler("cuda", enabled=ddp.device.type == "cuda")
    state = RunState()
    if args.resume:
        state = _restore(args.resume, model, meta, optimizer, scheduler, scaler, ddp)
    net: nn.Module = model
    if ddp.world > 1:
        if ddp.device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        net = DistributedDataParallel(model, device_ids=[ddp.device.index]
                                      if ddp.device.type == "cuda" else None)
    loss_fn = loss_for(args.loss, classes, args.loss_batch, args.loss_kwargs)
    if ddp.main:
        out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    last = args.epochs
    if args.stop_after is not None:
        last = min(args.epochs, state.epoch + args.stop_after)
    for epoch in range(state.epoch, last):
        t0 = time.perf_counter()
        train_set.set_epoch(epoch)
        shuffle_rng.manual_seed(args.seed * 100_003 + epoch)
        if sampler is not None:
            sampler.set_epoch(epoch)
        train_loss = train_epoch(net, train_loader, loss_fn, optimizer, scheduler, scaler, ddp,
                                 epoch, args.quiet, args.freeze_bn)
        cm, val_loss = evaluate(model, val_loader, loss_fn, classes, ddp)
        state.epoch = epoch + 1
        if ddp.main:
            # Classes absent from the validation labels would make the mean jump
            # between 0 and NaN on a few stray pixels: choose by the present ones.
            mean_dice = cm.mean_dice_present()
            if mean_dice > state.best_dice:
                state.best_dice = mean_dice
                save_checkpoint(out / "best.pt", model, meta, epoch=epoch + 1,
                                val_dice=cm.dice().tolist(), val_mean_dice=mean_dice)
            save_checkpoint(out / "last.pt", model, meta, optimizer=optimizer.state_dict(),
                            scheduler=scheduler.state_dict(), scaler=scaler.state_dict(),
                            epoch=epoch + 1, best_dice=state.best_dice, loss=args.loss)
            write_log_row(out / "log.csv", _epoch_row(
                epoch, scheduler.get_last_lr()[0], train_loss, val_loss, cm, classes.names,
                time.perf_counter() - t0))
            plot_log(out / "log.csv", out / "curves.png", classes.names)
            print(f"epoch {epoch + 1}/{args.epochs}: train loss {train_loss:.4f}, "
                  f"val loss {val_loss:.4f}, val mean Dice (classes in labels) {mean_dice:.4f} "
                  f"({', '.join(f'{n} {d:.3f}' for n, d in zip(classes.names, cm.dice()))})",
                  flush=True)
    return {"best_dice": state.best_dice, "out": out, "seconds": time.perf_counter() - started,
            "model": model, "meta": meta}


def run(args: argparse.Namespace) -> int:
    """Entry point of ``dice-seg train``."""
    summary = train(args)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"best val mean Dice {summary['best_dice']:.4f}; "
              f"checkpoints in {summary['out']} ({summary['seconds']:.0f} s)")
    return 0
