"""Label-free estimated Dice: per-frame features from the network's confidence; calibration.

On a robot there are no labels, but the network's own confidence says a lot
about how good its mask probably is (MetaSeg-style aggregates, Rottmann et al.
2018). :func:`frame_features` turns one frame's class ids and max softmax
probability (what every model kind gives: in-graph argmax models output both,
logits are reduced to them) into a few numbers: the expected soft Dice of the
mask under the network's probabilities, the mean top-class probability, the
normalised entropy, the share of uncertain pixels, how many classes are
predicted only on a sliver, and each class's predicted area; and, from the
mask's shape, features that do not depend on how a camera renders the scene:
how fragmented the mask is (boundary density, isolated pixels), uncertainty
inside regions rather than on their edges, and sky predicted below the ground
(a class-layout prior). The Segmenter computes them at the network's input
resolution, on a grid of about 80x60 points whatever the camera. The probability
left over by the top class is taken as spread evenly over the other classes,
which is all that the max probability tells; :func:`features_from_probabilities`
reduces a full ``(C, H, W)`` or ``(H, W, C)`` probability array the same way.

A :class:`Calibration`, fitted on labeled frames (``dice-seg calibrate``), maps
those features to an estimate of the frame's true mean Dice (the metric of
:class:`~dice_seg_ros.runtime.metrics.DiceTracker`): a softmax temperature fitted by
pixel negative log-likelihood, a ridge-regularised linear score over
standardised features, and an isotonic (monotone) regression from that score to
Dice. It lives in a JSON sidecar next to the model (``terrain_seg.onnx`` ->
``terrain_seg.quality.json``) holding the SHA-256 of the model it was fitted
for, so it is never applied to another network.

Pure numpy: the node, ``dice-seg eval`` and the monitor can all use it.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from dice_seg_ros.errors import ModelError

SIDECAR_SUFFIX = ".quality.json"
FORMAT_VERSION = 3
# Features are image means: a grid of about 80x60 points (every 8th pixel of a
# 640x480 frame) gives nearly the figures of every pixel at a fraction of the cost.
FEATURE_PIXELS = 4800
# A class counts as "clearly there" when it covers at least 1 % of the frame.
MIN_AREA = 0.01
# Probabilities are clipped here before logarithms.
TINY = 1e-12
# Features of the probabilities, then of the mask's shape (shape_features).
SHAPE_FEATURES = ("boundary_density", "isolated_fraction", "interior_low_conf",
                  "sky_below_ground")
BASE_FEATURES = ("soft_dice", "soft_dice_large", "min_class_soft_dice", "top_prob",
                 "entropy", "low_conf_fraction", "sliver_classes") + SHAPE_FEATURES
# Class names whose place in a frame is known: the sky is above the ground classes.
SKY = "sky"
GROUND = ("grass", "trail", "water")
TEMPERATURES = tuple(float(t) for t in np.geomspace(0.5, 8.0, 25))
RIDGE = 1.0


def feature_names(class_names: Sequence[str]) -> tuple[str, ...]:
    """Return the names of :func:`frame_features`' entries, in order, for these classes."""
    return BASE_FEATURES + tuple(f"area_{name}" for name in class_names)


def grid_stride(shape: tuple[int, ...]) -> int:
    """Return the pixel step leaving about FEATURE_PIXELS grid points in an ``(H, W)`` frame."""
    return max(1, round(math.sqrt(shape[0] * shape[1] / FEATURE_PIXELS)))


def temper(top: np.ndarray, num_classes: int, temperature: float) -> np.ndarray:
    """Return the max probability after dividing the logits by ``temperature``.

    The other ``C - 1`` classes are taken to share ``1 - top`` evenly, so
    ``top_T = top^(1/T) / (top^(1/T) + (C-1) ((1-top)/(C-1))^(1/T))``.
    """
    if temperature <= 0 or not np.isfinite(temperature):
        raise ValueError(f"temperature must be a positive number, got {temperature}")
    if temperature == 1.0:
        return top
    inverse = 1.0 / temperature
    gap = (np.log(np.maximum(1.0 - top, TINY)) - np.log(np.maximum(top, TINY))) * inverse
    gap += (1.0 - inverse) * math.log(num_classes - 1)
    # 1 / (1 + exp(gap)), in place: this runs per frame on the robot.
    np.exp(gap, out=gap)
    gap += 1.0
    return np.reciprocal(gap, out=gap)


@dataclass(frozen=True)
class Layout:
    """Class ids whose place in a frame is known (for the ``sky_below_ground`` feature).

    Attributes:
        sky: the sky's class id, or None when the model has no sky class.
        ground: ids of classes that lie on the ground (never under the sky).

    """

    sky: int | None = None
    ground: tuple[int, ...] = ()


def layout_for(class_names: Sequence[str]) -> Layout:
    """Return the :class:`Layout` of a class list, by the names SKY and GROUND."""
    names = list(class_names)
    return Layout(sky=names.index(SKY) if SKY in names else None,
                  ground=tuple(k for k, name in enumerate(names) if name in GROUND))


def _grid(class_ids: np.ndarray, confidence: np.ndarray, num_classes: int,
          stride: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Check a frame's ids and confidence; return both subsampled ``(h, w)`` (ids as intp)."""
    class_ids, confidence = np.asarray(class_ids), np.asarray(confidence)
    if class_ids.ndim != 2 or class_ids.shape != confidence.shape or class_ids.size == 0:
        raise ValueError(f"expected (H, W) class ids and confidence of the same shape, got "
                         f"{class_ids.shape} and {confidence.shape}")
    if not np.issubdtype(confidence.dtype, np.floating):
        raise ValueError(f"confidence must be float probabilities, got dtype {confidence.dtype}")
    if num_classes < 2:
        raise ValueError(f"need at least 2 classes, got {num_classes}")
    step = stride or grid_stride(class_ids.shape)
    ids = class_ids[::step, ::step].astype(np.intp)
    if ids.max() >= num_classes:
        raise ValueError(f"class id {ids.max()} is not below the {num_classes} classes")
    return ids, confidence[::step, ::step].astype(np.float32)


def shape_features(ids: np.ndarray, top: np.ndarray, layout: Layout) -> list[float]:
    """Return the mask-shape features of an ``(h, w)`` grid of ids and max probabilities.

    boundary_density: share of horizontally or vertically neighbouring grid
    points with different ids; isolated_fraction: share of points whose id none
    of its 4 neighbours has (speckle); interior_low_conf: share of points inside
    a region (all 4 neighbours agree) with max probability < 0.5 (doubt that
    edges do not explain); sky_below_ground: share of points predicted sky with
    a ground class above them in their column.
    """
    across = ids[:, 1:] != ids[:, :-1]
    down = ids[1:] != ids[:-1]
    pairs = across.size + down.size
    boundary = (np.count_nonzero(across) + np.count_nonzero(down)) / pairs if pairs else 0.0
    edge = _any_neighbour(across, down)
    np.logical_not(across, out=across)
    np.logical_not(down, out=down)
    isolated = 1.0 - np.count_nonzero(_any_neighbour(across, down)) / ids.size
    # Low confidence on a point no edge passes through: top < 0.5 and not edge.
    doubt = np.count_nonzero((top < 0.5) > edge) / ids.size
    sky_below = 0.0
    if layout.sky is not None and layout.ground:
        is_ground = np.zeros(max(int(ids.max()), *layout.ground) + 1, np.bool_)
        is_ground[list(layout.ground)] = True
        ground_above = np.logical_or.accumulate(is_ground[ids], axis=0)[:-1]
        sky_below = np.count_nonzero(ground_above & (ids[1:] == layout.sky)) / ids.size
    return [float(boundary), float(isolated), float(doubt), float(sky_below)]


def _any_neighbour(across: np.ndarray, down: np.ndarray) -> np.ndarray:
    """Return the ``(h, w)`` points where a neighbour pair flag holds on any of their 4 sides.

    ``across`` flags the ``(h, w - 1)`` horizontal pairs, ``down`` the ``(h - 1, w)``
    vertical ones.
    """
    out = np.zeros((down.shape[0] + 1, across.shape[1] + 1), np.bool_)
    out[:, 1:] |= across
    out[:, :-1] |= across
    out[1:] |= down
    out[:-1] |= down
    return out


def frame_features(class_ids: np.ndarray, confidence: np.ndarray, num_classes: int,
                   temperature: float = 1.0, stride: int | None = None,
                   layout: Layout = Layout()) -> np.ndarray:
    """Return the ``(11 + C,)`` float64 features of one frame (see :func:`feature_names`).

    Args:
        class_ids: ``(H, W)`` predicted class ids (best at the network's resolution).
        confidence: ``(H, W)`` max softmax probability of each pixel.
        num_classes: C.
        temperature: softmax temperature applied first (a calibration's).
        stride: pixel step of the grid; default :func:`grid_stride`.
        layout: where the classes belong (:func:`layout_for`); without it
            ``sky_below_ground`` is 0.

    Returns:
        soft_dice: mean over classes predicted anywhere or expected on >= 1 % of
        the frame of ``2 sum(M_c p_c) / (sum M_c + sum p_c)`` (M_c the mask of
        class c, p_c its probability): the Dice the mask would score if labels
        were drawn from the probabilities; soft_dice_large: the same over classes
        predicted on >= 1 %; min_class_soft_dice: the worst of those classes;
        top_prob: mean max probability; entropy: mean entropy / log C;
        low_conf_fraction: share of pixels whose max probability is < 0.5;
        sliver_classes: classes predicted on under 1 % (each costs the true mean
        Dice a near-zero term); then :func:`shape_features`; area_<class>:
        predicted share of the frame.

    """
    grid_ids, grid_top = _grid(class_ids, confidence, num_classes, stride)
    grid_top = temper(grid_top, num_classes, temperature)
    ids, top = grid_ids.ravel(), grid_top.ravel()
    pixels = ids.size
    area = np.bincount(ids, minlength=num_classes) / pixels
    hit = np.bincount(ids, weights=top, minlength=num_classes) / pixels
    mean_top = float(top.mean(dtype=np.float64))
    # Expected area of c: its own pixels' top probability plus its even share of
    # every other pixel's leftover probability.
    expected = hit + ((1.0 - mean_top) - (area - hit)) / (num_classes - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        soft = 2.0 * hit / (area + expected)
    large = area >= MIN_AREA
    counted = (area > 0) | (expected >= MIN_AREA)
    rest = np.maximum(1.0 - top, TINY)
    entropy = -(np.vdot(top, np.log(np.maximum(top, TINY)))
                + np.vdot(rest, np.log(rest / (num_classes - 1)))) / pixels
    base = [soft[counted].mean(), soft[large].mean() if large.any() else 0.0,
            soft[large].min() if large.any() else 0.0, mean_top,
            float(entropy) / math.log(num_classes), float((top < 0.5).mean()),
            float(((area > 0) & ~large).sum())]
    base += shape_features(grid_ids, grid_top, layout)
    return np.concatenate([np.asarray(base, np.float64), area])


def channels_first(probs: np.ndarray, channel_axis: int = 0) -> np.ndarray:
    """Return ``probs`` as a ``(C, H, W)`` float array; raise ValueError on other shapes.

    Args:
        probs: softmax probabilities, ``(C, H, W)`` or ``(H, W, C)``.
        channel_axis: 0 for ``(C, H, W)``, 2 or -1 for ``(H, W, C)``.

    """
    probs = np.asarray(probs)
    if probs.ndim != 3 or not np.issubdtype(probs.dtype, np.floating) or probs.size == 0:
        raise ValueError(f"expected (C, H, W) or (H, W, C) float probabilities, got shape "
                         f"{probs.shape} dtype {probs.dtype}")
    if channel_axis not in (0, 2, -1):
        raise ValueError(f"channel_axis must be 0 or 2 (-1), got {channel_axis}")
    probs = probs if channel_axis == 0 else np.moveaxis(probs, channel_axis, 0)
    if probs.shape[0] < 2:
        raise ValueError(f"probabilities need at least 2 classes, got shape {probs.shape}")
    return probs


def argmax_max(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the argmax class ids and max values over axis 0 of ``(C, H, W)``.

    A loop over the few class planes is 2-3x faster than ``argmax(axis=0)``,
    which strides across them; ties go to the lower id, as with ``argmax``.
    """
    top = probs[0].copy()
    ids = np.zeros(top.shape, np.intp)
    for channel in range(1, probs.shape[0]):
        plane = probs[channel]
        ids[plane > top] = channel
        np.maximum(top, plane, out=top)
    return ids, top


def features_from_probabilities(probs: np.ndarray, channel_axis: int = 0,
                                temperature: float = 1.0,
                                layout: Layout = Layout()) -> np.ndarray:
    """Return :func:`frame_features` of a full ``(C, H, W)`` or ``(H, W, C)`` probability array."""
    probs = channels_first(probs, channel_axis)
    step = grid_stride(probs.shape[1:])
    ids, top = argmax_max(probs[:, ::step, ::step])
    return frame_features(ids, top, probs.shape[0], temperature, stride=1, layout=layout)


def rankdata(values: np.ndarray) -> np.ndarray:
    """Return 1-based ranks of a 1-D array, ties sharing their average rank (scipy's default)."""
    _, inverse, counts = np.unique(np.asarray(values), return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return ((ends - counts + 1 + ends) / 2.0)[inverse.ravel()]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two equal-length 1-D arrays (NaN if either is constant)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size < 2:
        raise ValueError(f"need two 1-D arrays of the same length >= 2, got {a.shape}, "
                         f"{b.shape}")
    ra, rb = rankdata(a) - (a.size + 1) / 2.0, rankdata(b) - (b.size + 1) / 2.0
    denom = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    return float((ra * rb).sum() / denom) if denom > 0 else float("nan")


def mean_abs_error(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two equal-shape arrays."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"need two non-empty arrays of the same shape, got {a.shape}, "
                         f"{b.shape}")
    return float(np.abs(a - b).mean())


def isotonic_fit(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fit a non-decreasing function of ``x`` to ``y`` (least squares, pool adjacent violators).

    Returns the knots ``(xs, ys)`` for ``np.interp`` (constant beyond the ends,
    linear between blocks, as scikit-learn's IsotonicRegression predicts).
    Hand-written: scikit-learn is only a test dependency, and this is 20 lines.
    """
    order = np.argsort(x, kind="stable")
    xs, ys = np.asarray(x, np.float64)[order], np.asarray(y, np.float64)[order]
    values: list[float] = []
    weights: list[float] = []
    starts: list[int] = []
    for k, value in enumerate(ys):
        values.append(value)
        weights.append(1.0)
        starts.append(k)
        while len(values) > 1 and values[-2] >= values[-1]:
            weight = weights[-2] + weights[-1]
            values[-2] = (values[-2] * weights[-2] + values[-1] * weights[-1]) / weight
            weights[-2] = weight
            del values[-1], weights[-1], starts[-1]
    ends = starts[1:] + [len(xs)]
    knots_x = np.ravel([(xs[s], xs[e - 1]) for s, e in zip(starts, ends)])
    knots_y = np.repeat(values, 2)
    return knots_x, knots_y


def fit_temperature(nll: np.ndarray, temperatures: Sequence[float] = TEMPERATURES) -> float:
    """Return the temperature of least summed NLL (``nll`` from :func:`temperature_nll`)."""
    return float(temperatures[int(np.argmin(nll))])


def temperature_nll(class_ids: np.ndarray, confidence: np.ndarray, labels: np.ndarray,
                    num_classes: int, ignore_index: int | None = 255,
                    temperatures: Sequence[float] = TEMPERATURES,
                    stride: int | None = None) -> np.ndarray:
    """Return the summed pixel negative log-likelihood of ``labels`` at each temperature.

    Under the even-leftover model of :func:`temper`: ``-log top_T`` where the
    label is the predicted class, ``-log((1 - top_T) / (C - 1))`` elsewhere.

    Args:
        class_ids: ``(H, W)`` predicted class ids.
        confidence: ``(H, W)`` max softmax probability.
        labels: ``(H, W)`` true class ids (``ignore_index`` skipped).
        num_classes: C.
        ignore_index: label value not counted, or None.
        temperatures: the candidates.
        stride: pixel step of the grid; default :func:`grid_stride`.

    Sum it over frames, then pick with :func:`fit_temperature`.
    """
    labels = np.asarray(labels)
    if labels.shape != np.shape(class_ids):
        raise ValueError(f"labels {labels.shape} do not match class ids "
                         f"{np.shape(class_ids)}")
    step = stride or grid_stride(labels.shape)
    grid_ids, grid_top = _grid(class_ids, confidence, num_classes, step)
    ids, top = grid_ids.ravel(), grid_top.ravel()
    target = labels[::step, ::step].ravel()
    keep = target < num_classes if ignore_index is None else (
        (target != ignore_index) & (target < num_classes))
    right = ids[keep] == target[keep]
    top = top[keep]
    out = np.empty(len(temperatures))
    for k, temperature in enumerate(temperatures):
        tempered = temper(top.astype(np.float64), num_classes, temperature)
        likelihood = np.where(right, tempered, (1.0 - tempered) / (num_classes - 1))
        out[k] = float(-np.log(np.maximum(likelihood, TINY)).sum())
    return out


def file_sha256(path: str | Path) -> str:
    """Return the hex SHA-256 of a file's bytes."""
    with open(path, "rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


@dataclass
class Calibration:
    """Map a frame's probability features to its estimated mean Dice.

    Attributes:
        temperature: softmax temperature applied to the probabilities first.
        feature_names: names of the features, in order.
        mean: ``(F,)`` feature means of the fitting data (standardisation).
        scale: ``(F,)`` feature standard deviations (1 where constant).
        weights: ``(F,)`` ridge weights on standardised features.
        bias: the linear score's intercept.
        knots_x: isotonic knots, linear score values (non-decreasing).
        knots_y: isotonic knots, Dice values (non-decreasing).
        model_file: file name of the model it was fitted for.
        model_sha256: that model's SHA-256 (hex), or "" when unknown.
        fit: provenance and fit figures (frames, data, MAE, Spearman).

    """

    temperature: float
    feature_names: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float
    knots_x: np.ndarray
    knots_y: np.ndarray
    model_file: str = ""
    model_sha256: str = ""
    fit: dict[str, Any] = field(default_factory=dict)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Return estimated mean Dice ``(N,)`` in [0, 1] for ``(N, F)`` features."""
        features = np.atleast_2d(np.asarray(features, np.float64))
        if features.shape[1] != len(self.feature_names):
            raise ValueError(f"expected {len(self.feature_names)} features "
                             f"{list(self.feature_names)}, got {features.shape[1]}")
        score = ((features - self.mean) / self.scale) @ self.weights + self.bias
        return np.clip(np.interp(score, self.knots_x, self.knots_y), 0.0, 1.0)

    @property
    def num_classes(self) -> int:
        """Number of classes C the features describe."""
        return len(self.feature_names) - len(BASE_FEATURES)

    @cached_property
    def layout(self) -> Layout:
        """Where the classes belong, from the class names of the ``area_<class>`` features."""
        return layout_for([name.removeprefix("area_")
                           for name in self.feature_names[len(BASE_FEATURES):]])

    def estimate(self, class_ids: np.ndarray, confidence: np.ndarray) -> float:
        """Return the estimated mean Dice of one frame from its ids and max probability.

        Pass them at the network's input resolution, as the Segmenter does:
        the features are fitted there (``dice-seg calibrate``).
        """
        features = frame_features(class_ids, confidence, self.num_classes, self.temperature,
                                  layout=self.layout)
        return float(self.predict(features)[0])

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (the sidecar's content)."""
        return {"format_version": FORMAT_VERSION, "model_file": self.model_file,
                "model_sha256": self.model_sha256, "temperature": self.temperature,
                "feature_names": list(self.feature_names), "mean": self.mean.tolist(),
                "scale": self.scale.tolist(), "weights": self.weights.tolist(),
                "bias": self.bias, "knots_x": self.knots_x.tolist(),
                "knots_y": self.knots_y.tolist(), "fit": self.fit}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "calibration") -> "Calibration":
        """Build from :meth:`to_dict`'s output; raise ModelError naming ``source`` if invalid."""
        try:
            if data["format_version"] != FORMAT_VERSION:
                raise ValueError(f"format_version {data['format_version']} is not "
                                 f"{FORMAT_VERSION}; re-run 'dice-seg calibrate'")
            cal = cls(temperature=float(data["temperature"]),
                      feature_names=tuple(data["feature_names"]),
                      mean=np.asarray(data["mean"], np.float64),
                      scale=np.asarray(data["scale"], np.float64),
                      weights=np.asarray(data["weights"], np.float64),
                      bias=float(data["bias"]), knots_x=np.asarray(data["knots_x"], np.float64),
                      knots_y=np.asarray(data["knots_y"], np.float64),
                      model_file=str(data.get("model_file", "")),
                      model_sha256=str(data.get("model_sha256", "")),
                      fit=dict(data.get("fit", {})))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{source}: invalid quality calibration ({exc!r})") from exc
        sizes = {len(cal.feature_names), cal.mean.size, cal.scale.size, cal.weights.size}
        if cal.feature_names[:len(BASE_FEATURES)] != BASE_FEATURES:
            raise ModelError(f"{source}: quality calibration features "
                             f"{list(cal.feature_names[:len(BASE_FEATURES)])} are not "
                             f"{list(BASE_FEATURES)}; re-run 'dice-seg calibrate'")
        if len(sizes) != 1 or cal.knots_x.size != cal.knots_y.size or cal.knots_x.size < 1:
            raise ModelError(f"{source}: quality calibration arrays have inconsistent sizes")
        return cal

    def save(self, path: str | Path) -> Path:
        """Write the calibration as JSON to ``path``; return it."""
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")
        return path


def fit_calibration(features: np.ndarray, dice: np.ndarray, temperature: float,
                    names: Sequence[str], ridge: float = RIDGE) -> Calibration:
    """Fit the linear score and its isotonic map to true per-frame mean Dice.

    Args:
        features: ``(N, F)`` features of labeled frames (at ``temperature``).
        dice: ``(N,)`` their true mean Dice (NaN frames are dropped).
        temperature: the softmax temperature the features were computed at.
        names: the feature names.
        ridge: L2 penalty on the standardised weights.

    """
    features = np.asarray(features, np.float64)
    dice = np.asarray(dice, np.float64)
    keep = np.isfinite(dice) & np.isfinite(features).all(axis=1)
    features, dice = features[keep], dice[keep]
    if len(dice) < 2 * features.shape[1]:
        raise ValueError(f"need at least {2 * features.shape[1]} labeled frames with a "
                         f"defined mean Dice to calibrate, got {len(dice)}")
    mean = features.mean(axis=0)
    scale = features.std(axis=0)
    scale[scale == 0] = 1.0
    z = (features - mean) / scale
    bias = float(dice.mean())
    weights = np.linalg.solve(z.T @ z + ridge * np.eye(z.shape[1]), z.T @ (dice - bias))
    knots_x, knots_y = isotonic_fit(z @ weights + bias, dice)
    return Calibration(temperature=float(temperature), feature_names=tuple(names), mean=mean,
                       scale=scale, weights=weights, bias=bias, knots_x=knots_x,
                       knots_y=knots_y)


def sidecar_path(model_path: str | Path) -> Path:
    """Return the calibration sidecar of a model: ``NAME.onnx`` -> ``NAME.quality.json``."""
    path = Path(model_path)
    return path.with_name(path.stem + SIDECAR_SUFFIX)


def load_calibration(path: str | Path, model_path: str | Path | None = None) -> Calibration:
    """Read a calibration JSON; with ``model_path``, check it was fitted for that model.

    The check compares SHA-256 against the calibrated file type: a ``.pt``
    model is checked through its ``.onnx`` sibling when the ONNX was calibrated
    (export verifies both give the same outputs).

    Raises:
        FileNotFoundError: no such file.
        ModelError: invalid content, or fitted for a different model (re-run
            ``dice-seg calibrate``).

    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"quality calibration not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ModelError(f"{path}: quality calibration is not valid JSON ({exc})") from exc
    cal = Calibration.from_dict(data, source=str(path))
    if model_path is not None and cal.model_sha256:
        model = Path(model_path)
        calibrated = model.with_suffix(Path(cal.model_file).suffix or model.suffix)
        digest = file_sha256(calibrated) if calibrated.is_file() else "(missing)"
        if digest != cal.model_sha256:
            raise ModelError(f"{path} was fitted for a model with SHA-256 "
                             f"{cal.model_sha256[:12]}..., but {calibrated} has "
                             f"{digest[:12]}...; re-run 'dice-seg calibrate' for this model")
    return cal


def calibration_for_model(model_path: str | Path) -> Calibration | None:
    """Return the sidecar calibration of ``model_path``, or None when it has none."""
    path = sidecar_path(model_path)
    return load_calibration(path, model_path) if path.is_file() else None
