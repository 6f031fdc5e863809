"""Joint image/label augmentation with OpenCV: flip, scale + crop, colour jitter.

Geometry is applied to the image (bilinear / area) and the label (nearest, so
no invented class ids) identically; colour jitter touches the image only.
Randomness comes from the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation strengths.

    Attributes:
        hflip: probability of a horizontal flip.
        scale: (min, max) zoom factor relative to fitting the output size.
        brightness: max relative brightness change (0.2 = +-20 %).
        contrast: max relative contrast change.
        saturation: max relative saturation change.

    """

    hflip: float = 0.5
    scale: tuple[float, float] = (0.8, 1.5)
    brightness: float = 0.25
    contrast: float = 0.25
    saturation: float = 0.3


def resize_pair(rgb: np.ndarray, ids: np.ndarray, width: int, height: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Resize image (area when shrinking, else bilinear) and labels (nearest) to width x height."""
    if rgb.shape[:2] == (height, width):
        return rgb, ids
    shrink = width < rgb.shape[1]
    rgb = cv2.resize(rgb, (width, height),
                     interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    ids = cv2.resize(ids, (width, height), interpolation=cv2.INTER_NEAREST)
    return rgb, ids


def _scale_crop(rng: np.random.Generator, rgb: np.ndarray, ids: np.ndarray, width: int,
                height: int, scale: tuple[float, float], ignore_index: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Zoom by a random factor then crop (or pad with ignore) to width x height."""
    zoom = rng.uniform(*scale)
    sw = max(1, int(round(width * zoom)))
    sh = max(1, int(round(height * zoom)))
    rgb, ids = resize_pair(rgb, ids, sw, sh)
    if zoom < 1.0:
        # Pad shrunk views: black image, ignored labels (no loss where nothing is known).
        pad_x, pad_y = width - sw, height - sh
        left, top = int(rng.integers(0, pad_x + 1)), int(rng.integers(0, pad_y + 1))
        border = (top, pad_y - top, left, pad_x - left)
        rgb = cv2.copyMakeBorder(rgb, *border, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        ids = cv2.copyMakeBorder(ids, *border, cv2.BORDER_CONSTANT, value=ignore_index)
        return rgb, ids
    x0 = int(rng.integers(0, sw - width + 1))
    y0 = int(rng.integers(0, sh - height + 1))
    return rgb[y0:y0 + height, x0:x0 + width], ids[y0:y0 + height, x0:x0 + width]


def color_jitter(rng: np.random.Generator, rgb: np.ndarray, cfg: AugmentConfig) -> np.ndarray:
    """Randomly change brightness, contrast and saturation of (H, W, 3) uint8 RGB."""
    img = rgb.astype(np.float32)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    sat = 1.0 + rng.uniform(-cfg.saturation, cfg.saturation)
    img = gray[..., None] + sat * (img - gray[..., None])
    con = 1.0 + rng.uniform(-cfg.contrast, cfg.contrast)
    img = gray.mean() + con * (img - gray.mean())
    img *= 1.0 + rng.uniform(-cfg.brightness, cfg.brightness)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def augment(rng: np.random.Generator, rgb: np.ndarray, ids: np.ndarray, width: int,
            height: int, cfg: AugmentConfig = AugmentConfig(), ignore_index: int = 255
            ) -> tuple[np.ndarray, np.ndarray]:
    """Return an augmented copy of ``(rgb, ids)`` at width x height pixels.

    Raises:
        ValueError: if image and labels differ in size.

    """
    if rgb.shape[:2] != ids.shape:
        raise ValueError(f"image is {rgb.shape[1]}x{rgb.shape[0]} but labels are "
                         f"{ids.shape[1]}x{ids.shape[0]} pixels")
    # Fit to the output size first so the zoom range means the same for any input.
    rgb, ids = resize_pair(rgb, ids, width, height)
    if rng.uniform() < cfg.hflip:
        rgb, ids = rgb[:, ::-1], ids[:, ::-1]
    rgb, ids = _scale_crop(rng, rgb, ids, width, height, cfg.scale, ignore_index)
    return color_jitter(rng, rgb, cfg), np.ascontiguousarray(ids)
