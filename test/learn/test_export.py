"""ONNX export: metadata, dynamic batch, ORT-vs-torch parity, loud failures, the shipped model."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from dice_seg_ros.classes import load_classes  # noqa: E402
from dice_seg_ros.cli import main  # noqa: E402
from dice_seg_ros.data.synthetic import generate_scene  # noqa: E402
from dice_seg_ros.errors import ModelError  # noqa: E402
from dice_seg_ros.learn import export  # noqa: E402
from dice_seg_ros.resources import DEFAULT_MODEL, DEFAULT_TORCH_MODEL, resource_path  # noqa: E402
from dice_seg_ros.runtime.inference import Segmenter, preprocess  # noqa: E402
from dice_seg_ros.runtime.model import save_checkpoint  # noqa: E402
from dice_seg_ros.runtime.model import build_model, default_meta, load_checkpoint  # noqa: E402

torch.set_num_threads(1)
NAMES = load_classes().names


@pytest.fixture()
def checkpoint(tmp_path):
    torch.manual_seed(0)
    meta = default_meta(NAMES, 64, 48, widths=[8, 8, 16, 16], decoder=8)
    return save_checkpoint(tmp_path / "tiny.pt", build_model(meta), meta), meta


def test_export_writes_meta_and_matches_torch(tmp_path, checkpoint):
    path, meta = checkpoint
    out, parity = export.export_checkpoint(path, tmp_path / "tiny.onnx",
                                           io=export.IO_FLOAT_LOGITS)
    assert parity.ok
    assert parity.max_abs_diff < 1e-3 and parity.argmax_agreement > 0.999
    assert Segmenter(out, device="cpu").meta == meta
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    batch = preprocess(export.sample_scenes(meta, count=3), meta, (64, 48))
    logits = session.run(None, {"image": batch})[0]
    assert logits.shape == (3, len(NAMES), 48, 64)


def test_default_export_takes_pixels_and_gives_the_host_paths_masks(tmp_path, checkpoint):
    path, meta = checkpoint
    legacy, _ = export.export_checkpoint(path, tmp_path / "legacy.onnx",
                                         io=export.IO_FLOAT_LOGITS)
    out, parity = export.export_checkpoint(path, tmp_path / "pixels.onnx")
    assert parity.ok
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [(i.name, i.type) for i in session.get_inputs()] == [("pixels", "tensor(uint8)")]
    assert [(o.name, o.type) for o in session.get_outputs()] == [
        ("class_ids", "tensor(uint8)"), ("confidence", "tensor(float)")]
    new, old = Segmenter(out, device="cpu"), Segmenter(legacy, device="cpu")
    assert new.io.raw_input and new.io.ids_output and not old.io.raw_input
    assert new.meta == old.meta == meta
    # Other sizes than the export's, several in one batch, with and without confidence.
    scenes = [generate_scene(seed, 90, 70)[0] for seed in (3, 4)]
    for with_confidence in (False, True):
        for a, b in zip(new.segment_batch(scenes, with_confidence),
                        old.segment_batch(scenes, with_confidence)):
            assert a.class_ids.shape == (70, 90) and a.class_ids.dtype == np.uint8
            assert (a.class_ids == b.class_ids).mean() > 0.999
            if with_confidence:
                np.testing.assert_allclose(a.confidence, b.confidence, atol=1e-4)
            else:
                assert a.confidence is None


def test_unknown_io_kind(tmp_path, checkpoint):
    path, _ = checkpoint
    with pytest.raises(ValueError, match="I/O kind"):
        export.export_checkpoint(path, tmp_path / "x.onnx", io="nchw-probabilities")


def test_export_cli(tmp_path, checkpoint, capsys):
    path, _ = checkpoint
    assert main(["export", "--checkpoint", str(path), "--out", str(tmp_path / "c.onnx"),
                 "--torch-out", str(tmp_path / "slim.pt")]) == 0
    assert "argmax agreement 100" in capsys.readouterr().out
    assert set(torch.load(tmp_path / "slim.pt")) == {"model", "meta"}
    assert main(["export", "--checkpoint", str(tmp_path / "none.pt"),
                 "--out", str(tmp_path / "d.onnx")]) == 2
    assert "none.pt" in capsys.readouterr().err


def test_parity_failure_is_loud_and_removes_the_file(tmp_path, checkpoint, monkeypatch):
    path, _ = checkpoint
    monkeypatch.setattr(export, "MAX_ABS_LOGIT_DIFF", -1.0)
    with pytest.raises(ModelError, match="disagrees with PyTorch"):
        export.export_checkpoint(path, tmp_path / "bad.onnx")
    assert not (tmp_path / "bad.onnx").exists()


def test_shipped_model_matches_classes_and_is_small():
    onnx_path = resource_path(DEFAULT_MODEL)
    torch_path = resource_path(DEFAULT_TORCH_MODEL)
    meta = Segmenter(onnx_path, device="cpu").meta
    assert meta.class_names == NAMES
    assert onnx_path.stat().st_size + torch_path.stat().st_size < 10 * 2**20
    model, torch_meta = load_checkpoint(torch_path, class_names=NAMES)
    assert torch_meta == meta
    assert Segmenter(onnx_path, device="cpu").io.raw_input  # shipped in the in-graph format
    parity = export.check_parity(model, meta, onnx_path, export.sample_scenes(meta, 1))
    assert parity.ok, parity


def test_shipped_onnx_runs_at_other_input_sizes_like_torch():

    rgb, _ = generate_scene(2_000_321, 200, 150)
    for size in ((160, 128), (333, 251)):
        ort = Segmenter(resource_path(DEFAULT_MODEL), device="cpu", input_size=size)
        ref = Segmenter(resource_path(DEFAULT_TORCH_MODEL), backend="torch", device="cpu",
                        input_size=size)
        agree = (ort.segment(rgb).class_ids == ref.segment(rgb).class_ids).mean()
        assert agree > 0.999, (size, agree)
