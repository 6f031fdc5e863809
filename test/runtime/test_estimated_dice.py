from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import SMALL_H, SMALL_W

from dice_seg_ros.bags.calibrate import FrameTable, generated_frames
from dice_seg_ros.bags.synthetic_bag import IMAGE_TOPIC, LABEL_TOPIC
from dice_seg_ros.classes import load_classes
from dice_seg_ros.cli import main
from dice_seg_ros.errors import ModelError
from dice_seg_ros.runtime.estimated_dice import (BASE_FEATURES, calibration_for_model,
                                                 feature_names, features_from_probabilities,
                                                 file_sha256, fit_calibration, fit_temperature,
                                                 frame_features, grid_stride, isotonic_fit,
                                                 layout_for, load_calibration, rankdata,
                                                 sidecar_path, spearman, temper, temperature_nll)

C = 4


def _even(ids, top):
    """Return (C, H, W) probabilities: ``top`` at ``ids``, the rest spread evenly."""
    probs = np.repeat(((1.0 - top) / (C - 1))[None], C, axis=0)
    np.put_along_axis(probs, ids[None], top[None], axis=0)
    return probs.astype(np.float32)


def _feature(values, name):
    return values[BASE_FEATURES.index(name)]


def test_confident_frame():
    ids = np.zeros((8, 12), np.uint8)
    ids[:, 3:] = 2
    f = frame_features(ids, np.ones((8, 12), np.float32), C, stride=1)
    assert f.shape == (len(feature_names("abcd")),)
    for name, value in (("soft_dice", 1.0), ("soft_dice_large", 1.0), ("top_prob", 1.0),
                        ("entropy", 0.0), ("low_conf_fraction", 0.0), ("sliver_classes", 0)):
        assert _feature(f, name) == pytest.approx(value, abs=1e-6), name
    assert f[len(BASE_FEATURES):] == pytest.approx([0.25, 0, 0.75, 0])


def test_uniform_confidence_is_maximally_uncertain():
    f = frame_features(np.zeros((6, 6), np.uint8), np.full((6, 6), 1.0 / C, np.float32), C,
                       stride=1)
    assert _feature(f, "top_prob") == pytest.approx(1.0 / C)
    assert _feature(f, "entropy") == pytest.approx(1.0, abs=1e-5)
    assert _feature(f, "low_conf_fraction") == 1.0


def test_soft_dice_is_the_expected_dice_under_the_probabilities():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, C, size=(10, 10))
    probs = _even(ids, rng.uniform(0.3, 1.0, size=(10, 10)))
    per_class = []
    for c in range(C):
        mask = ids == c
        if mask.any() or probs[c].mean() >= 0.01:
            per_class.append(2 * probs[c][mask].sum() / (mask.sum() + probs[c].sum()))
    features = features_from_probabilities(probs)
    assert _feature(features, "soft_dice") == pytest.approx(np.mean(per_class), rel=1e-5)
    entropy = -(probs * np.log(probs)).sum(axis=0).mean() / np.log(C)
    assert _feature(features, "entropy") == pytest.approx(entropy, rel=1e-5)


def test_channel_last_equals_channel_first_and_bad_input_is_named():
    rng = np.random.default_rng(1)
    probs = _even(rng.integers(0, C, size=(16, 20)), rng.uniform(0.3, 1, size=(16, 20)))
    assert np.array_equal(features_from_probabilities(probs),
                          features_from_probabilities(probs.transpose(1, 2, 0), 2))
    with pytest.raises(ValueError, match="shape"):
        features_from_probabilities(probs[0])
    ids = np.zeros((4, 4), np.uint8)
    with pytest.raises(ValueError, match="same shape"):
        frame_features(ids, np.ones((4, 5), np.float32), C)
    with pytest.raises(ValueError, match="float"):
        frame_features(ids, np.ones((4, 4), np.uint8), C)
    with pytest.raises(ValueError, match="class id 4"):
        frame_features(ids + 4, np.ones((4, 4), np.float32), C)


def _scene(noise, rng, shape=(60, 80)):
    """Return ids and max probabilities of a sky-over-trail frame with ``noise`` speckle.

    A share ``noise`` of the pixels takes a random class, and every pixel's
    probability falls from 0.95 as the noise grows: the look of a network on
    a camera it does not know.
    """
    names = load_classes().names
    ids = np.full(shape, names.index("trail"), np.uint8)
    ids[:shape[0] // 3] = names.index("sky")
    flip = rng.random(shape) < noise
    ids[flip] = rng.integers(0, len(names), size=int(flip.sum()))
    top = np.clip(rng.normal(0.95 - noise, 0.1, size=shape), 0.2, 1.0).astype(np.float32)
    return ids, top


def test_a_noisy_mask_is_more_fragmented_and_doubtful_than_a_consistent_one():
    rng = np.random.default_rng(9)
    names = load_classes().names
    layout = layout_for(names)
    clean = frame_features(*_scene(0.0, rng), len(names), stride=1, layout=layout)
    noisy = frame_features(*_scene(0.4, rng), len(names), stride=1, layout=layout)
    assert _feature(clean, "boundary_density") == pytest.approx(80 / (59 * 80 + 60 * 79))
    assert _feature(clean, "isolated_fraction") == 0.0
    assert _feature(clean, "sky_below_ground") == 0.0
    for name in ("boundary_density", "isolated_fraction", "interior_low_conf",
                 "sky_below_ground"):
        assert _feature(noisy, name) > _feature(clean, name), name


def test_sky_below_the_ground_is_counted_only_with_a_layout():
    names = load_classes().names
    ids = np.full((10, 4), names.index("sky"), np.uint8)
    ids[:3] = names.index("grass")  # ground on top, sky under it: upside down
    ones = np.ones(ids.shape, np.float32)
    upside_down = frame_features(ids, ones, len(names), stride=1, layout=layout_for(names))
    assert _feature(upside_down, "sky_below_ground") == pytest.approx(0.7)
    assert _feature(frame_features(ids, ones, len(names), stride=1), "sky_below_ground") == 0
    assert layout_for(("a", "b")).sky is None


def test_calibrated_estimate_ranks_consistent_masks_above_noisy_ones():
    rng = np.random.default_rng(10)
    names = load_classes().names
    layout = layout_for(names)
    noise = rng.uniform(0.0, 0.5, size=60)
    features = np.stack([frame_features(*_scene(n, rng), len(names), layout=layout)
                         for n in noise])
    calibration = fit_calibration(features, 1.0 - noise, 1.0, feature_names(names))
    clean, noisy = _scene(0.05, rng), _scene(0.35, rng)
    assert calibration.estimate(*clean) > calibration.estimate(*noisy) + 0.1


def test_features_use_about_4800_grid_points():
    assert grid_stride((480, 640)) == 8 and grid_stride((60, 80)) == 1
    rng = np.random.default_rng(2)
    ids = rng.integers(0, C, size=(480, 640)).astype(np.uint8)
    top = rng.uniform(0.3, 1, size=(480, 640)).astype(np.float32)
    assert np.array_equal(frame_features(ids, top, C), frame_features(ids, top, C, stride=8))


def test_temperature_equals_dividing_the_logits():
    rng = np.random.default_rng(3)
    # One high logit, the others equal: the leftover is exactly even at every temperature.
    logits = np.zeros((C, 5, 7))
    logits[0] = rng.uniform(0, 4, size=(5, 7))
    softmax = np.exp(logits) / np.exp(logits).sum(axis=0)
    scaled = np.exp(logits / 2.5) / np.exp(logits / 2.5).sum(axis=0)
    assert temper(softmax[0], C, 2.5) == pytest.approx(scaled[0], rel=1e-9)
    with pytest.raises(ValueError, match="temperature"):
        temper(softmax[0], C, 0.0)


def test_temperature_fit_undoes_overconfidence():
    rng = np.random.default_rng(4)
    shape = (96, 96)
    ids = rng.integers(0, C, size=shape)
    true_top = rng.uniform(0.3, 1.0, size=shape)
    # Labels are right with probability true_top, else another class at random.
    wrong = rng.random(shape) >= true_top
    labels = np.where(wrong, (ids + rng.integers(1, C, size=shape)) % C, ids)
    labels[:4] = 255
    # The network reports its logits doubled: temperature 0.5, overconfident.
    reported = temper(true_top, C, 0.5).astype(np.float32)
    nll = temperature_nll(ids, reported, labels, C, stride=1)
    assert fit_temperature(nll) == pytest.approx(2.0, rel=0.15)


def test_isotonic_fit_matches_scikit_learn():
    isotonic = pytest.importorskip("sklearn.isotonic")
    rng = np.random.default_rng(4)
    x = rng.normal(size=200)
    y = np.tanh(x) + rng.normal(scale=0.4, size=200)
    knots_x, knots_y = isotonic_fit(x, y)
    reference = isotonic.IsotonicRegression(out_of_bounds="clip").fit(x, y)
    grid = np.linspace(-3, 3, 101)
    assert np.interp(grid, knots_x, knots_y) == pytest.approx(reference.predict(grid), abs=1e-9)
    assert np.all(np.diff(knots_y) >= 0)


def test_spearman_with_ties_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    a = np.array([1, 2, 2, 3, 5, 5, 5, 0], float)
    b = np.array([2, 1, 4, 3, 6, 6, 7, 1], float)
    assert rankdata(a) == pytest.approx(stats.rankdata(a))
    assert spearman(a, b) == pytest.approx(stats.spearmanr(a, b)[0])
    assert np.isnan(spearman(np.ones(4), b[:4]))


def _synthetic_fit():
    rng = np.random.default_rng(5)
    names = feature_names(("x",))
    features = rng.random((120, len(names)))
    dice = np.clip(0.2 + 0.7 * features[:, 0] ** 2 + rng.normal(scale=0.03, size=120), 0, 1)
    return fit_calibration(features, dice, 1.3, names), features, dice


def test_calibration_tracks_dice_and_round_trips(tmp_path):
    calibration, features, dice = _synthetic_fit()
    estimate = calibration.predict(features)
    assert spearman(estimate, dice) > 0.9
    assert np.abs(estimate - dice).mean() < 0.05
    assert estimate.min() >= 0 and estimate.max() <= 1
    loaded = load_calibration(calibration.save(tmp_path / "cal.json"))
    assert np.array_equal(loaded.predict(features), estimate)
    assert loaded.temperature == 1.3
    assert loaded.num_classes == 1
    with pytest.raises(ValueError, match=f"expected {len(calibration.feature_names)} features"):
        calibration.predict(features[:, :2])


def test_calibration_for_another_model_is_refused(tmp_path):
    calibration, _, _ = _synthetic_fit()
    model = tmp_path / "net.onnx"
    model.write_bytes(b"model one")
    calibration.model_file, calibration.model_sha256 = model.name, file_sha256(model)
    assert sidecar_path(model) == tmp_path / "net.quality.json"
    assert calibration_for_model(model) is None
    calibration.save(sidecar_path(model))
    assert calibration_for_model(model).model_sha256 == file_sha256(model)
    model.write_bytes(b"model two")
    with pytest.raises(ModelError, match="dice-seg calibrate"):
        calibration_for_model(model)


def test_invalid_calibration_files_are_named(tmp_path):
    bad = tmp_path / "bad.quality.json"
    bad.write_text("{not json")
    with pytest.raises(ModelError, match="bad.quality.json"):
        load_calibration(bad)
    bad.write_text(json.dumps({"format_version": 1, "temperature": 1.0}))
    with pytest.raises(ModelError, match="invalid quality calibration"):
        load_calibration(bad)
    calibration, _, _ = _synthetic_fit()
    calibration.feature_names = ("mystery",) + calibration.feature_names[1:]
    with pytest.raises(ModelError, match="re-run 'dice-seg calibrate'"):
        load_calibration(calibration.save(bad))
    with pytest.raises(FileNotFoundError):
        load_calibration(tmp_path / "missing.json")


def test_frame_table_records_true_dice_of_the_masks(tiny_segmenter):
    from dice_seg_ros.runtime.metrics import dice_per_class, nanmean

    classes = load_classes()
    table = FrameTable(tiny_segmenter, classes)
    rgb, labels = next(generated_frames(1, seed=12, width=SMALL_W, height=SMALL_H))
    table.add(rgb, labels)
    ids = tiny_segmenter.segment(rgb).class_ids
    assert table.dice == [nanmean(dice_per_class(ids, labels, classes.num_classes, 255))]
    assert table.features_at(1.0).shape == (1, len(feature_names(classes.names)))


def test_calibrate_command_writes_a_sidecar_for_the_model(small_bag, tiny_onnx_model, tmp_path,
                                                          capsys):
    out = tmp_path / "cal.json"
    code = main(["calibrate", "--bag", str(small_bag), "--image-topic", IMAGE_TOPIC,
                 "--label-topic", LABEL_TOPIC, "--generated", "32", "--generated-augment",
                 "camera", "--model", str(tiny_onnx_model), "--threads", "1", "--out", str(out),
                 "--no-progress"])
    assert code == 0
    assert "calibrated on 36 frames" in capsys.readouterr().out
    calibration = load_calibration(out, tiny_onnx_model)
    assert calibration.model_file == tiny_onnx_model.name
    assert calibration.num_classes == load_classes().num_classes
    assert calibration.fit["frames"] == 36 and str(small_bag) in calibration.fit["data"]
    assert any("augmented (camera)" in source for source in calibration.fit["data"])
    assert main(["calibrate", "--model", str(tiny_onnx_model)]) == 2


def test_augmented_generated_frames_differ_from_the_plain_scenes():
    plain = list(generated_frames(2, seed=21, width=SMALL_W, height=SMALL_H))
    looks = list(generated_frames(2, seed=21, width=SMALL_W, height=SMALL_H, augment="domain"))
    again = list(generated_frames(2, seed=21, width=SMALL_W, height=SMALL_H, augment="domain"))
    for (rgb, ids), (aug_rgb, aug_ids), (rgb2, _) in zip(plain, looks, again):
        assert aug_rgb.shape == rgb.shape and aug_ids.shape == ids.shape
        assert not np.array_equal(aug_rgb, rgb) and np.array_equal(aug_rgb, rgb2)


def test_argmax_max_matches_numpy_with_ties():
    from dice_seg_ros.runtime.estimated_dice import argmax_max

    probs = np.random.default_rng(6).integers(0, 3, size=(C, 9, 7)).astype(np.float32)
    ids, top = argmax_max(probs)
    assert np.array_equal(ids, probs.argmax(axis=0))
    assert np.array_equal(top, probs.max(axis=0))


def test_eval_reports_estimated_beside_true_dice(small_bag, tiny_onnx_model, tmp_path):
    import csv
    import shutil

    from dice_seg_ros.bags.evaluate import EvalOptions, evaluate_bag
    from dice_seg_ros.runtime.inference import Segmenter

    model = shutil.copy(tiny_onnx_model, tmp_path / "tiny.onnx")
    segmenter = Segmenter(model, device="cpu", threads=1)
    with pytest.raises(ModelError, match="dice-seg calibrate"):
        evaluate_bag(small_bag, IMAGE_TOPIC, LABEL_TOPIC, tmp_path / "none", segmenter,
                     options=EvalOptions(output_bag=False, progress=False, estimated_dice=True))
    names = feature_names(load_classes().names)
    calibration = fit_calibration(np.random.default_rng(7).random((40, len(names))),
                                  np.random.default_rng(8).random(40), 1.5, names)
    calibration.model_file, calibration.model_sha256 = "tiny.onnx", file_sha256(model)
    calibration.save(sidecar_path(model))
    # The estimate reads the network-size planes; at the camera's own size they are the ones
    # segment() returns, so the estimate can be recomputed from them here.
    segmenter = Segmenter(model, device="cpu", threads=1, input_size=(SMALL_W, SMALL_H))
    result = evaluate_bag(small_bag, IMAGE_TOPIC, LABEL_TOPIC, tmp_path / "eval", segmenter,
                          EvalOptions(output_bag=False, progress=False, estimated_dice=True,
                                      batch_size=3))
    with open(result.paths["estimated_dice"], newline="") as stream:
        rows = list(csv.DictReader(stream))
    with open(result.paths["per_frame"], newline="") as stream:
        per_frame = list(csv.DictReader(stream))
    assert len(rows) == result.report["frames"] == 4
    frames = list(generated_frames(4, seed=3, width=SMALL_W, height=SMALL_H))
    for row, truth, (rgb, _) in zip(rows, per_frame, frames):
        assert float(row["true_mean_dice"]) == pytest.approx(float(truth["mean_dice"]))
        segmented = segmenter.segment(rgb)
        expected = calibration.estimate(*segmented.network_planes)
        assert segmenter.segment(rgb).estimated_dice == pytest.approx(expected)
        assert float(row["estimated_mean_dice"]) == pytest.approx(expected, abs=1e-6)
    agreement = result.report["estimated_dice"]
    assert agreement["frames"] == 4 and 0 <= agreement["mae"] <= 1
    assert result.paths["estimated_plot"].stat().st_size > 0


def test_segmenter_ignores_a_calibration_for_another_model(tiny_onnx_model, tmp_path, caplog):
    import shutil

    from dice_seg_ros.runtime.inference import Segmenter

    model = shutil.copy(tiny_onnx_model, tmp_path / "tiny.onnx")
    calibration, _, _ = _synthetic_fit()
    calibration.model_file, calibration.model_sha256 = "tiny.onnx", "0" * 64
    calibration.save(sidecar_path(model))
    segmenter = Segmenter(model, device="cpu", threads=1)
    assert segmenter.calibration is None and "re-run 'dice-seg calibrate'" in caplog.text
    rgb = next(generated_frames(1, seed=13, width=SMALL_W, height=SMALL_H))[0]
    assert segmenter.segment(rgb).estimated_dice is None


def test_calibrating_a_shipped_model_leaves_its_shipped_calibration_alone(
        tmp_path, monkeypatch):
    from conftest import shipped_model_or_skip

    from dice_seg_ros.bags.calibrate import default_output

    shipped = shipped_model_or_skip()
    monkeypatch.chdir(tmp_path)
    assert str(default_output(shipped)) == sidecar_path(shipped).name
    assert default_output(shipped).resolve().parent == tmp_path.resolve()
    own = tmp_path / "mine.onnx"
    own.write_bytes(b"")
    assert default_output(own) == sidecar_path(own)
