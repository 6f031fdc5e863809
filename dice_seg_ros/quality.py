"""Label-free estimated Dice: per-frame features from class probabilities, and a calibration.

On a robot there are no labels, but the network's own probabilities say a lot
about how good its mask probably is (MetaSeg-style aggregates, Rottmann et al.
2018). :func:`frame_features` turns one frame's softmax probabilities into a
few numbers: the expected soft Dice of the argmax mask under the probabilities
themselves, the mean top-class probability, the normalised entropy, the share
of uncertain pixels, how many classes are predicted only on a sliver, and the
predicted area of each class.

A :class:`Calibration`, fitted on labeled frames (``dice-seg calibrate``), maps
those features to an estimate of the frame's true mean Dice (the metric of
:class:`~dice_seg_ros.metrics.DiceTracker`): a softmax temperature fitted by
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from dice_seg_ros.errors import ModelError

SIDECAR_SUFFIX = ".quality.json"
FORMAT_VERSION = 1
# Features are image means: every 4th pixel of the network-resolution
# probabilities in each axis (80x60 of 320x240) gives nearly the same figures
# at a sixteenth of the cost (0.26 vs 0.96 ms for stride 2 here).
FEATURE_STRIDE = 4
# A class counts as "clearly there" when it covers at least 1 % of the frame.
MIN_AREA = 0.01
# Probabilities are clipped here before logarithms (float32 softmax underflows to 0).
TINY = 1e-12
BASE_FEATURES = ("soft_dice", "soft_dice_large", "min_class_soft_dice", "top_prob",
                 "entropy", "low_conf_fraction", "sliver_classes")
TEMPERATURES = tuple(float(t) for t in np.geomspace(0.5, 8.0, 25))
RIDGE = 1.0


def feature_names(class_names: Sequence[str]) -> tuple[str, ...]:
    """Return the names of :func:`frame_features`' entries, in order, for these classes."""
    return BASE_FEATURES + tuple(f"area_{name}" for name in class_names)


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


def log_probs_at(probs: np.ndarray, temperature: float) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(p, log p)`` of ``softmax(log(probs) / temperature)`` over axis 0.

    ``probs`` is ``(C, ...)``; a temperature divides the logits before the
    softmax. The logarithms come along because the entropy needs them anyway.
    """
    if temperature <= 0 or not np.isfinite(temperature):
        raise ValueError(f"temperature must be a positive number, got {temperature}")
    logs = np.log(np.maximum(probs, np.float32(TINY)))
    if temperature == 1.0:
        return probs, logs
    # log p >= log TINY, so log p / T cannot overflow exp: no max to subtract first.
    logs *= np.float32(1.0 / temperature)
    scaled = np.exp(logs)
    total = scaled.sum(axis=0)
    scaled /= total
    logs -= np.log(total)
    return scaled, logs


def argmax_max(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the flat argmax class ids and max values over axis 0 of ``(C, H, W)``.

    A loop over the few class planes is 2-3x faster than ``argmax(axis=0)``,
    which strides across them; ties go to the lower id, as with ``argmax``.
    """
    top = probs[0].ravel().copy()
    ids = np.zeros(top.shape, np.intp)
    for channel in range(1, probs.shape[0]):
        plane = probs[channel].ravel()
        ids[plane > top] = channel
        np.maximum(top, plane, out=top)
    return ids, top


def frame_features(probs: np.ndarray, channel_axis: int = 0, temperature: float = 1.0,
                   stride: int = FEATURE_STRIDE) -> np.ndarray:
    """Return the ``(7 + C,)`` float64 features of one frame (see :func:`feature_names`).

    Args:
        probs: softmax probabilities at network resolution, ``(C, H, W)`` or ``(H, W, C)``.
        channel_axis: where the class axis is (0 or 2).
        temperature: softmax temperature applied first (a calibration's).
        stride: use every ``stride``-th pixel in each axis.

    Returns:
        soft_dice: mean over classes predicted anywhere or expected on >= 1 % of
        the frame of ``2 sum(M_c p_c) / (sum M_c + sum p_c)`` (M_c the argmax
        mask, p_c the probability): the Dice the mask would score if labels were
        drawn from the probabilities; soft_dice_large: the same over classes
        predicted on >= 1 %; min_class_soft_dice: the worst of those classes;
        top_prob: mean max probability; entropy: mean entropy / log C;
        low_conf_fraction: share of pixels whose max probability is < 0.5;
        sliver_classes: classes predicted on under 1 % (each costs the true mean
        Dice a near-zero term); area_<class>: predicted share of the frame.

    """
    # One contiguous copy of the subsampled grid: strided numpy ops cost several times more.
    p = np.ascontiguousarray(channels_first(probs, channel_axis)[:, ::stride, ::stride],
                             dtype=np.float32)
    p, logs = log_probs_at(p, temperature)
    num_classes = p.shape[0]
    pixels = p.shape[1] * p.shape[2]
    ids, top = argmax_max(p)
    area = np.bincount(ids, minlength=num_classes) / pixels
    expected = p.reshape(num_classes, -1).sum(axis=1, dtype=np.float64) / pixels
    hit = np.bincount(ids, weights=top, minlength=num_classes) / pixels
    with np.errstate(invalid="ignore", divide="ignore"):
        soft = 2.0 * hit / (area + expected)
    large = area >= MIN_AREA
    counted = (area > 0) | (expected >= MIN_AREA)
    entropy = -float(np.vdot(p, logs)) / pixels / np.log(num_classes)
    base = [soft[counted].mean(), soft[large].mean() if large.any() else 0.0,
            soft[large].min() if large.any() else 0.0, top.mean(dtype=np.float64), entropy,
            (top < 0.5).mean(), float(((area > 0) & ~large).sum())]
    return np.concatenate([np.asarray(base, np.float64), area])


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


def temperature_nll(probs: np.ndarray, labels: np.ndarray, ignore_index: int | None = 255,
                    temperatures: Sequence[float] = TEMPERATURES, stride: int = 4) -> np.ndarray:
    """Return the summed pixel negative log-likelihood of ``labels`` at each temperature.

    Args:
        probs: ``(C, H, W)`` softmax probabilities at network resolution.
        labels: ``(H, W)`` class ids at the same resolution (``ignore_index`` skipped).
        ignore_index: label value not counted, or None.
        temperatures: the candidates.
        stride: use every ``stride``-th pixel in each axis.

    Sum it over frames, then pick with :func:`fit_temperature`.
    """
    probs = channels_first(probs)
    if labels.shape != probs.shape[1:]:
        raise ValueError(f"labels {labels.shape} do not match probabilities {probs.shape}")
    logs = np.log(np.maximum(probs[:, ::stride, ::stride], TINY)).reshape(probs.shape[0], -1)
    target = labels[::stride, ::stride].ravel()
    keep = target < probs.shape[0] if ignore_index is None else (
        (target != ignore_index) & (target < probs.shape[0]))
    logs, target = logs[:, keep], target[keep].astype(np.intp)
    out = np.empty(len(temperatures))
    for k, temperature in enumerate(temperatures):
        scaled = logs / temperature
        top = scaled.max(axis=0)
        norm = top + np.log(np.exp(scaled - top).sum(axis=0))
        out[k] = float((norm - scaled[target, np.arange(target.size)]).sum())
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

    def estimate(self, probs: np.ndarray, channel_axis: int = 0) -> float:
        """Return the estimated mean Dice of one frame from its ``probs`` (network resolution)."""
        return float(self.predict(frame_features(probs, channel_axis, self.temperature))[0])

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
                                 f"{FORMAT_VERSION}")
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
