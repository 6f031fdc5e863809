from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import shipped_model_or_skip, tiny_conv_weights, write_tiny_onnx

from dice_seg_ros.errors import ModelError
from dice_seg_ros.runtime.inference import (Segmenter, argmax_channels, logits_to_ids, preprocess,
                                            ids_to_camera_size, resize_image, softmax_max,
                                            to_camera_sizes)
from dice_seg_ros.runtime.model_meta import ModelMeta

RNG = np.random.default_rng(7)


@pytest.fixture(scope="module")
def tiny(tiny_onnx_model):
    return Segmenter(tiny_onnx_model, device="cpu", threads=1)


def _meta(**kwargs):
    base = dict(input_width=4, input_height=2, mean=(0.1, 0.2, 0.3), std=(0.5, 0.25, 0.2),
                class_names=("a", "b"), arch="x")
    base.update(kwargs)
    return ModelMeta(**base)


def test_preprocess_matches_formula():
    image = RNG.integers(0, 256, (2, 4, 3), dtype=np.uint8)
    meta = _meta()
    out = preprocess([image, image[::-1]], meta, (4, 2))
    expected = (image / 255.0 - np.array(meta.mean)) / np.array(meta.std)
    assert out.shape == (2, 3, 2, 4) and out.dtype == np.float32
    np.testing.assert_allclose(out[0], expected.transpose(2, 0, 1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out[1], expected[::-1].transpose(2, 0, 1), rtol=1e-5,
                               atol=1e-5)


def test_preprocess_resizes_and_honours_bgr():
    image = np.zeros((20, 40, 3), np.uint8)
    image[..., 0] = 255
    out = preprocess([image], _meta(color_order="bgr", mean=(0, 0, 0), std=(1, 1, 1)), (4, 2))
    assert out.shape == (1, 3, 2, 4)
    np.testing.assert_allclose(out[0, 2], 1.0)
    np.testing.assert_allclose(out[0, :2], 0.0)


@pytest.mark.parametrize("shape, size", [
    ((720, 1280, 3), (320, 240)), ((3000, 4000, 3), (320, 240)), ((480, 640, 3), (320, 240)),
    ((7, 5, 3), (320, 240))])
def test_resize_image_size_and_anti_aliasing(shape, size):
    # A one-pixel checkerboard must shrink to flat grey (averaged), not alias to
    # black/white stripes as nearest or bilinear sampling would.
    board = (np.indices(shape[:2]).sum(axis=0) % 2 * 255).astype(np.uint8)
    image = np.repeat(board[..., None], 3, axis=2)
    out = resize_image(image, *size)
    assert out.shape == (size[1], size[0], 3) and out.dtype == np.uint8
    if shape[0] >= 2 * size[1]:
        assert np.abs(out.astype(int) - 128).max() <= 2


def test_argmax_and_confidence_match_numpy():
    logits = RNG.normal(size=(3, 5, 7, 9)).astype(np.float32)
    logits[0, 2, 0, 0] = logits[0, 4, 0, 0] = 9.0  # a tie goes to the lower id
    ids, best = argmax_channels(logits)
    np.testing.assert_array_equal(ids, np.argmax(logits, axis=1))
    np.testing.assert_array_equal(best, logits.max(axis=1))
    softmax = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(softmax_max(logits, best), softmax.max(axis=1), rtol=1e-5)


def test_postprocess_resizes_back_nearest():
    logits = np.zeros((1, 2, 2, 2), np.float32)
    logits[0, 1, 0, 1] = 1.0  # top-right pixel is class 1
    ((ids, conf),) = to_camera_sizes(*logits_to_ids(logits, True, "m"), [(4, 6)])
    assert ids.shape == conf.shape == (4, 6) and ids.dtype == np.uint8
    np.testing.assert_array_equal(ids[:2, 3:], 1)
    assert ids.sum() == 6
    assert conf.dtype == np.float32 and np.all((conf >= 0.5) & (conf <= 1.0))


def test_nan_logits_raise_model_error(tmp_path):
    logits = np.zeros((2, 3, 4, 4), np.float32)
    logits[1, 2, 3, 3] = np.nan
    with pytest.raises(ModelError, match=r"my\.onnx.*NaN.*\[1\]"):
        logits_to_ids(logits, False, "my.onnx")
    segmenter = Segmenter(write_tiny_onnx(tmp_path / "nan.onnx", nan=True), device="cpu")
    with pytest.raises(ModelError, match="nan.onnx"):
        segmenter.segment(np.zeros((8, 8, 3), np.uint8))


@pytest.mark.parametrize("shape", [(1, 1, 3), (333, 517, 3), (3000, 4000, 3), (48, 64, 3)])
def test_output_matches_input_size(tiny, shape):
    image = RNG.integers(0, 256, shape, dtype=np.uint8)
    result = tiny.segment(image, with_confidence=True)
    assert result.class_ids.shape == result.confidence.shape == shape[:2]
    assert result.class_ids.dtype == np.uint8 and result.class_ids.max() < 6
    assert set(result.timings_ms) == {"pre", "infer", "post"}
    assert all(v >= 0 for v in result.timings_ms.values())


def test_tiny_model_segments_colour_as_its_weights_say(tiny):
    # A uniform image: every pixel's class is argmax(W @ normalised colour + b).
    colours = RNG.integers(0, 256, (20, 3))
    weight, bias = tiny_conv_weights(6)
    images = [np.full((30, 50, 3), c, np.uint8) for c in colours]
    results = tiny.segment_batch(images)
    for colour, result in zip(colours, results):
        normalised = (colour / 255.0 - 0.5) / 0.25
        expected = np.argmax(weight[:, :, 0, 0] @ normalised + bias)
        assert np.all(result.class_ids == expected)


def test_batch_equals_single(tiny):
    images = [RNG.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in
              [(48, 64), (120, 160), (31, 17)]]
    batch = tiny.segment_batch(images, with_confidence=True)
    for image, result in zip(images, batch):
        single = tiny.segment(image, with_confidence=True)
        np.testing.assert_array_equal(result.class_ids, single.class_ids)
        np.testing.assert_allclose(result.confidence, single.confidence, rtol=1e-5)
    assert tiny.segment_batch([]) == []


@pytest.mark.parametrize("bad", [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 4), np.uint8),
                                 np.zeros((4, 4, 3), np.float32), np.zeros((0, 4, 3), np.uint8),
                                 [[1, 2, 3]]])
def test_bad_image_is_value_error(tiny, bad):
    with pytest.raises(ValueError, match="uint8"):
        tiny.segment(bad)


def test_attributes(tiny):
    assert tiny.backend == "ort" and tiny.device == "CPUExecutionProvider"
    assert tiny.meta.num_classes == 6 and tiny.input_size == (64, 48)


def test_input_size_override(tiny_onnx_model):
    segmenter = Segmenter(tiny_onnx_model, device="cpu", input_size=(32, 16))
    assert segmenter.segment(np.zeros((10, 12, 3), np.uint8)).class_ids.shape == (10, 12)
    with pytest.raises(ValueError, match="input_size"):
        Segmenter(tiny_onnx_model, device="cpu", input_size=(0, 16))


def test_unavailable_providers_are_skipped(tiny_onnx_model):
    segmenter = Segmenter(tiny_onnx_model, providers=["NoSuchExecutionProvider",
                                                      "CPUExecutionProvider"])
    assert segmenter.device == "CPUExecutionProvider"


def test_explicit_cuda_without_gpu_is_an_error(tiny_onnx_model):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this machine has a CUDA provider")
    with pytest.raises(ValueError, match="cuda") as raised:
        Segmenter(tiny_onnx_model, device="cuda")
    # The same library serves the CLI and the nodes: the hint names both ways to ask for the CPU.
    assert "--device cpu" in str(raised.value) and "device:=cpu" in str(raised.value)


def test_missing_model_file(tmp_path):
    with pytest.raises(ModelError, match="absent.onnx"):
        Segmenter(tmp_path / "absent.onnx")


def test_corrupt_onnx(tmp_path):
    path = tmp_path / "corrupt.onnx"
    path.write_bytes(b"\x08\x07garbage" * 50)
    with pytest.raises(ModelError, match="corrupt.onnx"):
        Segmenter(path, device="cpu")


def test_onnx_without_metadata(tmp_path):
    path = write_tiny_onnx(tmp_path / "nometa.onnx", with_meta=False)
    with pytest.raises(ModelError, match="nometa.onnx.*metadata"):
        Segmenter(path, device="cpu")


def test_model_with_its_own_classes_loads(tmp_path):
    """The model's class list is the truth: a 5-class model is not checked against classes.yaml."""
    path = write_tiny_onnx(tmp_path / "five.onnx", class_names=["a", "b", "c", "d", "e"])
    assert Segmenter(path, device="cpu").meta.class_names == ("a", "b", "c", "d", "e")


def test_torch_backend_needs_sibling_checkpoint(tiny_onnx_model):
    with pytest.raises(ModelError, match="tiny.pt"):
        Segmenter(tiny_onnx_model, backend="torch")


def test_unknown_backend_and_device(tiny_onnx_model):
    with pytest.raises(ValueError, match="backend"):
        Segmenter(tiny_onnx_model, backend="tf")
    with pytest.raises(ValueError, match="device"):
        Segmenter(tiny_onnx_model, device="tpu")


# ---- the shipped model ---------------------------------------------------------------------


def test_backends_agree_on_shipped_model():
    pytest.importorskip("torch")
    import torch

    from dice_seg_ros.data.synthetic import generate_scene

    torch.set_num_threads(2)
    onnx_path = shipped_model_or_skip("models/terrain_seg.onnx")
    shipped_model_or_skip("models/terrain_seg.pt")
    ort_seg = Segmenter(device="cpu", threads=2)
    # An .onnx path with the torch back end means its sibling checkpoint.
    torch_seg = Segmenter(onnx_path, backend="torch", device="cpu", threads=2)
    assert torch_seg.model_path == onnx_path.with_suffix(".pt")
    assert torch_seg.meta == ort_seg.meta and torch_seg.device == "cpu"
    images = [generate_scene(seed, 320, 240)[0] for seed in range(3)]
    agree = total = 0
    for a, b in zip(ort_seg.segment_batch(images), torch_seg.segment_batch(images)):
        agree += int((a.class_ids == b.class_ids).sum())
        total += a.class_ids.size
    assert agree / total > 0.999


@pytest.mark.parametrize("shape", [(1, 1, 3), (333, 517, 3), (3000, 4000, 3)])
def test_shipped_model_output_size(shape):
    shipped_model_or_skip()
    image = RNG.integers(0, 256, shape, dtype=np.uint8)
    result = Segmenter(device="cpu", threads=2).segment(image, with_confidence=True)
    assert result.class_ids.shape == result.confidence.shape == shape[:2]
    assert result.class_ids.max() < 6


def test_torch_explicit_cuda_without_gpu_is_an_error():
    torch = pytest.importorskip("torch")
    shipped_model_or_skip("models/terrain_seg.pt")
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    with pytest.raises(ValueError, match="cuda"):
        Segmenter(backend="torch", device="cuda")


def test_the_default_device_on_a_cpu_only_machine_warns_of_nothing(tiny_onnx_model, caplog):
    torch = pytest.importorskip("torch")
    shipped_model_or_skip("models/terrain_seg.pt")
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    with caplog.at_level("INFO", logger="dice_seg_ros"):
        Segmenter(tiny_onnx_model, device="auto")
        Segmenter(backend="torch", device="auto")
    assert "running on CPU" in caplog.text  # said, for whoever reads INFO
    assert not [r for r in caplog.records if r.levelname in ("WARNING", "ERROR")]


def test_sessions_do_not_spin_between_frames(tiny):
    options = tiny._backend.session.get_session_options()
    for entry in ("session.intra_op.allow_spinning", "session.inter_op.allow_spinning"):
        assert options.get_session_config_entry(entry) == "0"


def test_io_binding_path_gives_the_same_masks(tiny_onnx_model):
    images = [RNG.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(3)]
    plain = Segmenter(tiny_onnx_model, device="cpu", threads=1)
    bound = Segmenter(tiny_onnx_model, device="cpu", threads=1)
    bound._backend.io_binding = True  # what GPU providers use, run here on the CPU
    for a, b in zip(plain.segment_batch(images, True), bound.segment_batch(images, True)):
        np.testing.assert_array_equal(a.class_ids, b.class_ids)
        np.testing.assert_array_equal(a.confidence, b.confidence)


def test_reused_buffers_never_leak_into_earlier_results(tiny):
    # At the network size no resize copies the output, so aliasing would show here.
    first_image, second_image = (RNG.integers(0, 256, (48, 64, 3), dtype=np.uint8)
                                 for _ in range(2))
    first = tiny.segment(first_image, with_confidence=True)
    kept = first.class_ids.copy(), first.confidence.copy()
    tiny.segment(second_image, with_confidence=True)
    np.testing.assert_array_equal(first.class_ids, kept[0])
    np.testing.assert_array_equal(first.confidence, kept[1])
    np.testing.assert_array_equal(tiny.segment(first_image).class_ids, kept[0])


@pytest.mark.parametrize("size", [(480, 640), (720, 1280), (240, 320), (300, 500), (120, 160)])
def test_ids_upscale_like_opencv_nearest_exact(size):
    ids = RNG.integers(0, 6, size=(240, 320), dtype=np.uint8)
    expected = cv2.resize(ids, size[::-1], interpolation=cv2.INTER_NEAREST_EXACT)
    np.testing.assert_array_equal(ids_to_camera_size(ids, *size), expected)


def test_estimate_is_computed_at_network_resolution(tmp_path):
    from dice_seg_ros.classes import load_classes
    from dice_seg_ros.runtime.estimated_dice import (feature_names, file_sha256,
                                                     fit_calibration, sidecar_path)

    model = write_tiny_onnx(tmp_path / "net.onnx", size=(40, 30))
    names = feature_names(load_classes().names)
    features = RNG.random((40, len(names)))
    calibration = fit_calibration(features, features[:, names.index("top_prob")], 1.2, names)
    calibration.model_file, calibration.model_sha256 = model.name, file_sha256(model)
    calibration.save(sidecar_path(model))
    segmenter = Segmenter(model, device="cpu", threads=1)
    image = RNG.integers(0, 256, size=(120, 160, 3), dtype=np.uint8)
    plain = segmenter.segment(image)
    ids, confidence = plain.network_planes
    assert plain.confidence is None and plain.class_ids.shape == (120, 160)
    assert ids.shape == confidence.shape == (30, 40)
    assert plain.estimated_dice == pytest.approx(calibration.estimate(ids, confidence))
    published = segmenter.segment(image, with_confidence=True)
    assert published.confidence.shape == (120, 160)
    assert published.estimated_dice == pytest.approx(plain.estimated_dice)
