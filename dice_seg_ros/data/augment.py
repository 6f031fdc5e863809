"""Joint image/label augmentation with OpenCV: geometry, colour and camera effects.

Geometry (flip, zoom + crop, aspect change, roll) is applied to the image
(bilinear / area) and the label (nearest, so no invented class ids) identically;
colour jitter and camera effects touch the image only. Randomness comes from the
``numpy.random.Generator`` passed in.

The camera effects are there so that a network trained on one camera (or on
generated scenes) holds on others: exposure and gamma, white balance, hue,
vignetting, motion blur, sensor noise, JPEG artefacts, and PASTA (proportional
amplitude-spectrum randomisation, Chattopadhyay et al., ICCV 2023), which
perturbs high spatial frequencies more than low ones and so breaks the
network's reliance on one source's texture statistics.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

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
        aspect: (min, max) factor applied to the width only before cropping, so
            objects take the shapes other cameras' aspect ratios give them.
        roll: max camera roll in degrees (a tilted horizon); borders ignored.
        hue: max hue shift in degrees.
        gamma: (min, max) gamma applied to 0..1 intensities.
        white_balance: max relative per-channel gain change.
        vignette: max darkening at the image corners (0.4 = 40 %).
        motion_blur: probability of a linear motion blur (3-9 pixels).
        noise: max standard deviation of Gaussian sensor noise (0..255 units).
        jpeg: probability of JPEG re-compression at quality 30-90.
        pasta: probability of a PASTA amplitude-spectrum perturbation.

    """

    hflip: float = 0.5
    scale: tuple[float, float] = (0.8, 1.5)
    brightness: float = 0.25
    contrast: float = 0.25
    saturation: float = 0.3
    aspect: tuple[float, float] = (1.0, 1.0)
    roll: float = 0.0
    hue: float = 0.0
    gamma: tuple[float, float] = (1.0, 1.0)
    white_balance: float = 0.0
    vignette: float = 0.0
    motion_blur: float = 0.0
    noise: float = 0.0
    jpeg: float = 0.0
    pasta: float = 0.0


# What training uses by default: the basic jitter plus every camera effect.
CAMERA_AUGMENT = AugmentConfig(
    scale=(0.8, 1.6), brightness=0.35, contrast=0.35, saturation=0.5, aspect=(0.8, 1.3),
    roll=8.0, hue=12.0, gamma=(0.6, 1.6), white_balance=0.15, vignette=0.4, motion_blur=0.2,
    noise=8.0, jpeg=0.3, pasta=0.4)
# For training on generated scenes alone: style randomisation on most samples
# (PASTA's own setting applies it to every sample), wider hue and saturation.
DOMAIN_AUGMENT = replace(CAMERA_AUGMENT, saturation=0.6, hue=20.0, pasta=0.8)
AUGMENT_PRESETS = {"basic": AugmentConfig(), "camera": CAMERA_AUGMENT, "domain": DOMAIN_AUGMENT}


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
    """Zoom by a random factor then crop (or pad with ignore) each axis to width x height."""
    zoom = rng.uniform(*scale)
    sw = max(1, int(round(ids.shape[1] * zoom)))
    sh = max(1, int(round(ids.shape[0] * zoom)))
    rgb, ids = resize_pair(rgb, ids, sw, sh)
    pad_x, pad_y = max(0, width - sw), max(0, height - sh)
    if pad_x or pad_y:
        # Pad shrunk views: black image, ignored labels (no loss where nothing is known).
        left, top = int(rng.integers(0, pad_x + 1)), int(rng.integers(0, pad_y + 1))
        border = (top, pad_y - top, left, pad_x - left)
        rgb = cv2.copyMakeBorder(rgb, *border, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        ids = cv2.copyMakeBorder(ids, *border, cv2.BORDER_CONSTANT, value=ignore_index)
    x0 = int(rng.integers(0, ids.shape[1] - width + 1))
    y0 = int(rng.integers(0, ids.shape[0] - height + 1))
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


def _stretch_width(rng: np.random.Generator, rgb: np.ndarray, ids: np.ndarray,
                   aspect: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Scale the width by a random factor in ``aspect`` (heights unchanged)."""
    factor = rng.uniform(*aspect)
    if factor == 1.0:
        return rgb, ids
    height, width = ids.shape
    return resize_pair(rgb, ids, max(1, int(round(width * factor))), height)


def _roll(rng: np.random.Generator, rgb: np.ndarray, ids: np.ndarray, max_deg: float,
          ignore_index: int) -> tuple[np.ndarray, np.ndarray]:
    """Rotate about the centre by up to ``max_deg`` degrees; new borders are ignored."""
    if max_deg <= 0:
        return rgb, ids
    height, width = ids.shape
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), rng.uniform(-max_deg, max_deg),
                                     1.0)
    rgb = cv2.warpAffine(rgb, matrix, (width, height), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REFLECT_101)
    ids = cv2.warpAffine(ids, matrix, (width, height), flags=cv2.INTER_NEAREST,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=ignore_index)
    return rgb, ids


def _hue_shift(rng: np.random.Generator, rgb: np.ndarray, max_deg: float) -> np.ndarray:
    """Rotate the hue of (H, W, 3) uint8 RGB by up to ``max_deg`` degrees."""
    if max_deg <= 0:
        return rgb
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    # OpenCV's 8-bit hue is in 2-degree steps, 0..179.
    shift = int(round(rng.uniform(-max_deg, max_deg) / 2))
    hsv[..., 0] = ((hsv[..., 0].astype(np.int16) + shift) % 180).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def pasta(rng: np.random.Generator, rgb: np.ndarray, alpha: float = 3.0, k: float = 2.0,
          beta: float = 0.25) -> np.ndarray:
    """PASTA: multiply each channel's amplitude spectrum by noise growing with frequency.

    The multiplier at spatial frequency f (normalised so the Nyquist corner is
    about 1) is drawn from N(1, sigma^2) with sigma = (alpha * |f|)^k + beta;
    phases are kept, so edges and shapes stay where they were.
    """
    img = rgb.astype(np.float32)
    height, width = rgb.shape[:2]
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    radius = np.sqrt(fy ** 2 + fx ** 2) * np.sqrt(2)
    sigma = (alpha * radius) ** k + beta
    out = np.empty_like(img)
    for channel in range(3):
        spectrum = np.fft.rfft2(img[..., channel])
        gain = rng.normal(1.0, 1.0, spectrum.shape) * sigma + (1.0 - sigma)
        out[..., channel] = np.fft.irfft2(spectrum * np.abs(gain), s=(height, width))
    # Keep the image's own mean and spread: PASTA changes texture, not exposure.
    out = (out - out.mean()) * (img.std() / max(out.std(), 1e-6)) + img.mean()
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def camera_effects(rng: np.random.Generator, rgb: np.ndarray, cfg: AugmentConfig
                   ) -> np.ndarray:
    """Apply hue, gamma, white balance, vignetting, blur, noise, JPEG and PASTA draws."""
    rgb = _hue_shift(rng, rgb, cfg.hue)
    if cfg.pasta and rng.uniform() < cfg.pasta:
        rgb = pasta(rng, rgb)
    img = rgb.astype(np.float32) / 255.0
    img **= rng.uniform(*cfg.gamma)
    img *= 1.0 + rng.uniform(-cfg.white_balance, cfg.white_balance, 3).astype(np.float32)
    if cfg.vignette:
        height, width = img.shape[:2]
        yy, xx = np.ogrid[-1:1:height * 1j, -1:1:width * 1j]
        falloff = 1.0 - rng.uniform(0, cfg.vignette) * (xx ** 2 + yy ** 2) / 2
        img *= falloff.astype(np.float32)[..., None]
    if cfg.motion_blur and rng.uniform() < cfg.motion_blur:
        length = int(rng.integers(3, 10))
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2] = 1.0 / length
        rotation = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2),
                                           rng.uniform(0, 180), 1.0)
        kernel = cv2.warpAffine(kernel, rotation, (length, length))
        img = cv2.filter2D(img, -1, kernel / max(kernel.sum(), 1e-6))
    if cfg.noise:
        img += rng.normal(0, rng.uniform(0, cfg.noise) / 255.0, img.shape).astype(np.float32)
    rgb = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
    if cfg.jpeg and rng.uniform() < cfg.jpeg:
        quality = int(rng.integers(30, 91))
        ok, data = cv2.imencode(".jpg", rgb, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok:
            rgb = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    return rgb


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
    rgb, ids = _stretch_width(rng, rgb, ids, cfg.aspect)
    rgb, ids = _roll(rng, np.ascontiguousarray(rgb), np.ascontiguousarray(ids), cfg.roll,
                     ignore_index)
    rgb, ids = _scale_crop(rng, rgb, ids, width, height, cfg.scale, ignore_index)
    rgb = color_jitter(rng, rgb, cfg)
    return camera_effects(rng, rgb, cfg), np.ascontiguousarray(ids)
