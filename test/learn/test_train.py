"""dice-seg train: files written, resume == uninterrupted, real-folder data, DDP, bad input."""

from __future__ import annotations

import argparse
import csv
import os
import socket
from pathlib import Path

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from dice_seg_ros.cli import main  # noqa: E402
from dice_seg_ros.data.synthetic import generate_scene  # noqa: E402
from dice_seg_ros.learn import train as train_mod  # noqa: E402
from dice_seg_ros.runtime.model import load_checkpoint, read_checkpoint  # noqa: E402

torch.set_num_threads(1)
TINY = ["--input-size", "48x32", "--width-mult", "0.5", "--batch-size", "4",
        "--train-scenes", "8", "--val-scenes", "4", "--threads", "1", "--quiet"]


def _args(*extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    train_mod.add_arguments(parser)
    return parser.parse_args([*TINY, *extra])


def _rows(out: Path) -> list[dict[str, str]]:
    with open(out / "log.csv", encoding="utf-8") as stream:
        return list(csv.DictReader(stream))


def test_cli_training_writes_checkpoints_log_and_plot(tmp_path):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--epochs", "2", "--loss", "dice", "--out", str(out)]) == 0
    for name in ("best.pt", "last.pt", "log.csv", "curves.png"):
        assert (out / name).is_file(), name
    rows = _rows(out)
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert {"train_loss", "val_mean_dice", "dice_obstacle", "iou_sky"} <= set(rows[0])
    for row in rows:
        assert np.isfinite(float(row["train_loss"]))
        assert 0.0 <= float(row["val_mean_dice"]) <= 1.0
    best = read_checkpoint(out / "best.pt")
    assert "optimizer" not in best
    assert abs(best["val_mean_dice"] - max(float(r["val_mean_dice"]) for r in rows)) < 1e-6
    model, meta = load_checkpoint(out / "best.pt")
    assert (meta.input_width, meta.input_height) == (48, 32)


def test_resume_continues_exactly(tmp_path):
    whole = train_mod.train(_args("--epochs", "2", "--out", str(tmp_path / "whole")))
    train_mod.train(_args("--epochs", "2", "--stop-after", "1", "--out", str(tmp_path / "part")))
    assert len(_rows(tmp_path / "part")) == 1
    resumed = train_mod.train(_args("--epochs", "2", "--resume",
                                    str(tmp_path / "part" / "last.pt"),
                                    "--out", str(tmp_path / "part")))
    assert [r["epoch"] for r in _rows(tmp_path / "part")] == ["1", "2"]
    for a, b in zip(whole["model"].state_dict().values(), resumed["model"].state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-6)


def test_resume_rejects_a_weights_only_checkpoint(tmp_path):
    train_mod.train(_args("--epochs", "1", "--out", str(tmp_path)))
    with pytest.raises(Exception, match="not a resumable checkpoint"):
        train_mod.train(_args("--epochs", "2", "--resume", str(tmp_path / "best.pt"),
                              "--out", str(tmp_path)))


def test_training_on_a_labeled_folder(tmp_path):
    for i in range(5):
        rgb, ids = generate_scene(i, 48, 32)
        (tmp_path / "images").mkdir(exist_ok=True)
        (tmp_path / "labels").mkdir(exist_ok=True)
        cv2.imwrite(str(tmp_path / "images" / f"{i}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(tmp_path / "labels" / f"{i}.png"), ids)
    out = tmp_path / "run"
    assert main(["train", *TINY, "--data", str(tmp_path), "--format", "folder",
                 "--loss", "ce", "--epochs", "1", "--out", str(out)]) == 0
    assert len(_rows(out)) == 1


def test_bad_data_folders_are_clear_errors(tmp_path, capsys):
    assert main(["train", *TINY, "--data", str(tmp_path / "missing"), "--epochs", "1",
                 "--out", str(tmp_path / "o")]) == 2
    assert "missing" in capsys.readouterr().err
    (tmp_path / "empty" / "images").mkdir(parents=True)
    (tmp_path / "empty" / "labels").mkdir()
    assert main(["train", *TINY, "--data", str(tmp_path / "empty"), "--epochs", "1",
                 "--out", str(tmp_path / "o")]) == 2
    assert "no labeled images" in capsys.readouterr().err


def test_non_finite_loss_or_logits_stop_training():
    logits = torch.zeros(1, 6, 2, 2)
    with pytest.raises(train_mod.TrainingError, match="non-finite loss"):
        train_mod.check_finite(torch.tensor(float("nan")), logits, "epoch 1 step 1")
    logits[0, 0, 0, 0] = float("inf")
    with pytest.raises(train_mod.TrainingError, match="epoch 2 step 5: non-finite logits"):
        train_mod.check_finite(torch.tensor(float("inf")), logits, "epoch 2 step 5")
    train_mod.check_finite(torch.tensor(0.5), torch.zeros(1), "fine")


def test_overlap_losses_validate_their_input():
    from dice_seg_ros.classes import load_classes
    loss = train_mod.loss_for("dice", load_classes())
    with pytest.raises(ValueError):
        loss(torch.full((1, 6, 4, 4), float("nan")), torch.zeros(1, 4, 4, dtype=torch.long))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    args = _args("--epochs", "1", "--device", "cpu", "--out", out)
    summary = train_mod.train(args)
    params = {k: v for k, v in summary["model"].named_parameters()}
    torch.save(params, Path(out).parent / f"rank{rank}.pt")


def test_ddp_two_cpu_processes_end_with_identical_weights(tmp_path):
    mp = pytest.importorskip("torch.multiprocessing")
    out = tmp_path / "ddp"
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(out)), nprocs=2, join=True)
    rank0 = torch.load(tmp_path / "rank0.pt")
    rank1 = torch.load(tmp_path / "rank1.pt")
    assert rank0.keys() == rank1.keys()
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), name
    # Only rank 0 writes: one log row per epoch, not two.
    assert [r["epoch"] for r in _rows(out)] == ["1"]
    assert not any(p.name.startswith("rank") for p in out.iterdir())
