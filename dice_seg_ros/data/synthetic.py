"""Procedural off-road terrain scenes with exact per-pixel class labels.

A forward-looking camera sees sky above a horizon and ground below it, in
perspective: a trail narrowing to a vanishing point, grass, an occasional pond,
a tree line plus bushes, and a few obstacles (the rare ``obstacle`` class,
rocks, logs, posts, boxes, and now and then a building, wall or railing). The label mask is drawn
first with OpenCV polygons; the image is then textured per class from cheap
upsampled noise fields and lit with a random colour cast, sun gradient, haze
and sensor noise.

Real ground is not one colour per class, and real obstacles are not one
texture: so that a network learns classes from shape and context rather than
from colour, every scene draws its materials from wide per-class lists (dirt,
sand, gravel, asphalt or mud trails; lush, dry or autumn vegetation; rock, wood,
painted or concrete obstacles), scatters ground detail that is *not* obstacle
(leaf litter, gravel, mud patches, tyre tracks, cast shadows), and makes
obstacles stand out only by their outline, shading and the shadow they cast.

Every random choice comes from one ``numpy.random.Generator`` seeded by the
caller, so a seed always gives the same scene (training generates on the fly
and held-out evaluation uses seeds never seen in training).
"""

from __future__ import annotations

import cv2
import numpy as np

# Class ids of config/classes.yaml; tests check these names against the file.
SKY, GRASS, TRAIL, OBSTACLE, WATER, TREE = range(6)
CLASS_NAMES = ("sky", "grass", "trail", "obstacle", "water", "tree")

# Material colours (RGB 0..1) per class; every scene picks one per class and jitters it.
_MATERIALS = {
    GRASS: ((0.30, 0.50, 0.18), (0.45, 0.55, 0.20), (0.60, 0.55, 0.30), (0.35, 0.42, 0.20),
            (0.50, 0.42, 0.25)),
    TRAIL: ((0.55, 0.43, 0.30), (0.75, 0.68, 0.52), (0.55, 0.55, 0.52), (0.30, 0.30, 0.31),
            (0.62, 0.38, 0.25), (0.35, 0.27, 0.20), (0.68, 0.64, 0.58)),
    OBSTACLE: ((0.50, 0.49, 0.47), (0.40, 0.30, 0.20), (0.25, 0.24, 0.22), (0.70, 0.70, 0.68),
               (0.65, 0.15, 0.10), (0.15, 0.25, 0.55), (0.75, 0.65, 0.20), (0.55, 0.45, 0.35)),
    TREE: ((0.10, 0.25, 0.09), (0.18, 0.30, 0.10), (0.08, 0.17, 0.12), (0.40, 0.28, 0.10),
           (0.25, 0.30, 0.12)),
}


def _noise(rng: np.random.Generator, height: int, width: int, cell: float,
           aspect: float = 1.0) -> np.ndarray:
    """Smooth zero-mean, unit-ish noise (H, W) float32 from an upsampled random grid.

    ``cell`` is the feature size in pixels; ``aspect`` > 1 stretches features
    horizontally (ripples). Upsampling a tiny grid with cubic interpolation is
    far cheaper than Perlin noise at full resolution and looks alike here.
    """
    gh = max(2, int(height / cell) + 2)
    gw = max(2, int(width / (cell * aspect)) + 2)
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    return cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)


def _fractal(rng: np.random.Generator, height: int, width: int,
             cells: tuple[float, ...]) -> np.ndarray:
    """Sum of noise octaves with halving amplitude, (H, W) float32."""
    out = np.zeros((height, width), np.float32)
    amp = 1.0
    for cell in cells:
        out += amp * _noise(rng, height, width, cell)
        amp *= 0.5
    return out


def _irregular_polygon(rng: np.random.Generator, cx: float, cy: float, rx: float,
                       ry: float, vertices: int, roughness: float) -> np.ndarray:
    """Star-shaped polygon (N, 1, 2) int32 around (cx, cy) with radii rx, ry in pixels."""
    angles = np.sort(rng.uniform(0, 2 * np.pi, vertices))
    radius = 1.0 - roughness * rng.uniform(0, 1, vertices)
    pts = np.stack([cx + rx * radius * np.cos(angles), cy + ry * radius * np.sin(angles)], 1)
    return np.round(pts).astype(np.int32).reshape(-1, 1, 2)


def _draw_tree_line(rng: np.random.Generator, mask: np.ndarray, horizon: int) -> None:
    """Paint a band of overlapping tree crowns sitting on the horizon (class tree)."""
    height, width = mask.shape
    if rng.uniform() < 0.15:
        return
    start = rng.uniform(-0.2, 0.5) * width
    stop = rng.uniform(0.5, 1.2) * width
    x = start
    scale = rng.uniform(0.02, 0.06) * height
    while x < stop:
        radius = scale * rng.uniform(0.6, 1.6)
        top = horizon - radius * rng.uniform(0.3, 1.6)
        cv2.ellipse(mask, (int(x), int(top)), (int(radius), int(radius * 1.3)), 0, 0, 360,
                    TREE, -1)
        cv2.rectangle(mask, (int(x - radius), int(top)), (int(x + radius), horizon + 2),
                      TREE, -1)
        x += radius * rng.uniform(0.6, 1.2)


def _draw_side_trees(rng: np.random.Generator, mask: np.ndarray, horizon: int) -> None:
    """Paint zero to two large near trees at the image sides (trunk + crown)."""
    height, width = mask.shape
    for _ in range(rng.integers(0, 3)):
        x = rng.choice([rng.uniform(-0.05, 0.2), rng.uniform(0.8, 1.05)]) * width
        base = rng.uniform(horizon + 0.15 * (height - horizon), height * 1.05)
        size = (base - horizon) / max(height - horizon, 1) * height * rng.uniform(0.35, 0.6)
        trunk_w = max(2, int(size * 0.08))
        crown_y = base - size
        cv2.rectangle(mask, (int(x - trunk_w), int(crown_y)), (int(x + trunk_w), int(base)),
                      TREE, -1)
        for _ in range(6):
            cx = x + rng.normal(0, size * 0.15)
            cy = crown_y + rng.normal(0, size * 0.15)
            r = size * rng.uniform(0.15, 0.3)
            cv2.circle(mask, (int(cx), int(cy)), int(r), TREE, -1)


def _ground_t(y: float, horizon: int, height: int) -> float:
    """Depth proxy: 0 at the horizon, 1 at the bottom image row."""
    return (y - horizon) / max(height - horizon, 1)


def _draw_water(rng: np.random.Generator, mask: np.ndarray, horizon: int) -> None:
    """Paint an optional pond, flattened by perspective (class water)."""
    height, width = mask.shape
    if rng.uniform() > 0.4:
        return
    cy = rng.uniform(horizon + 0.1 * (height - horizon), height * 0.95)
    t = _ground_t(cy, horizon, height)
    rx = width * rng.uniform(0.15, 0.4) * (0.3 + t)
    ry = rx * rng.uniform(0.15, 0.3)
    poly = _irregular_polygon(rng, rng.uniform(0.1, 0.9) * width, cy, rx, ry, 14, 0.25)
    cv2.fillPoly(mask, [poly], WATER)


def _draw_trail(rng: np.random.Generator, mask: np.ndarray, horizon: int) -> None:
    """Paint a curving dirt trail from the bottom edge to a vanishing point (class trail)."""
    height, width = mask.shape
    if rng.uniform() < 0.1:
        return
    vanish_x = rng.uniform(0.25, 0.75) * width
    bottom_x = rng.uniform(0.2, 0.8) * width
    bottom_w = rng.uniform(0.25, 0.7) * width
    far_w = rng.uniform(0.005, 0.03) * width
    bend = rng.uniform(-0.4, 0.4) * width
    t = np.linspace(0.0, 1.0, 24) ** 1.5
    ys = horizon + t * (height - horizon) + 1
    centre = vanish_x + (bottom_x - vanish_x) * t + bend * t * (1 - t)
    half = 0.5 * (far_w + (bottom_w - far_w) * t)
    wobble = rng.normal(0, 0.03, (2, t.size)) * half
    left = np.stack([centre - half + wobble[0], ys], 1)
    right = np.stack([centre + half + wobble[1], ys], 1)[::-1]
    poly = np.round(np.concatenate([left, right])).astype(np.int32)
    cv2.fillPoly(mask, [poly], TRAIL)


def _draw_bushes(rng: np.random.Generator, mask: np.ndarray, horizon: int) -> None:
    """Paint a few bushes on the ground, sized by perspective (class tree)."""
    height, width = mask.shape
    for _ in range(rng.integers(0, 5)):
        y = rng.uniform(horizon + 5, height)
        t = _ground_t(y, horizon, height)
        r = width * rng.uniform(0.02, 0.06) * (0.2 + t)
        poly = _irregular_polygon(rng, rng.uniform(0, width), y - r * 0.5, r, r * 0.8, 12, 0.35)
        cv2.fillPoly(mask, [poly], TREE)


def _obstacle_polygon(rng: np.random.Generator, cx: float, cy: float, r: float
                      ) -> np.ndarray:
    """Outline of one obstacle standing on the ground at (cx, cy), size ``r`` pixels.

    Rocks are lumpy blobs, logs long and low, posts tall and thin, boxes (crates,
    vehicles, walls) rectangular: what they share is that they rise from the
    ground, not a texture.
    """
    kind = rng.choice(4, p=(0.55, 0.2, 0.12, 0.13))
    if kind == 0:
        return _irregular_polygon(rng, cx, cy, r, r * rng.uniform(0.5, 0.9), 9, 0.3)
    if kind == 1:
        length, thick = r * rng.uniform(2.0, 4.0), r * rng.uniform(0.3, 0.5)
        angle = rng.uniform(-0.4, 0.4)
        box = cv2.boxPoints(((cx, cy), (length, thick), np.degrees(angle)))
    elif kind == 2:
        box = cv2.boxPoints(((cx, cy - r * 1.5), (r * rng.uniform(0.2, 0.4), r * 3.0),
                             rng.uniform(-5, 5)))
    else:
        width, height = r * rng.uniform(1.5, 4.0), r * rng.uniform(1.0, 2.5)
        box = np.array([[cx - width / 2, cy], [cx + width / 2, cy],
                        [cx + width / 2, cy - height], [cx - width / 2, cy - height]])
    return np.round(box).astype(np.int32).reshape(-1, 1, 2)


def _draw_structures(rng: np.random.Generator, mask: np.ndarray, shade: np.ndarray,
                     horizon: int) -> None:
    """Paint an occasional building or wall at a side, or a railing (class obstacle).

    Real datasets label buildings, walls, bridges and rails as what a robot must
    not drive into; they are large, flat-faced and straight-edged, which is what
    the shading here (a lit face, a dark face, windows or planks) gives them.
    """
    height, width = mask.shape
    if rng.uniform() < 0.25:
        left = rng.uniform() < 0.5
        near_x = rng.uniform(0.15, 0.45) * width
        x0, x1 = (-0.05 * width, near_x) if left else (width - near_x, 1.05 * width)
        base = rng.uniform(horizon + 0.1 * (height - horizon), height)
        top = horizon - rng.uniform(0.1, 0.6) * horizon
        slant = rng.uniform(0.0, 0.3) * (base - top) * (1 if left else -1)
        inner = x1 if left else x0
        poly = np.array([[x0, top - slant], [inner, top], [inner, base * 0.9 + horizon * 0.1],
                         [x0, base]], np.float32)
        cv2.fillPoly(mask, [np.round(poly).astype(np.int32)], OBSTACLE)
        face = np.zeros((height, width), np.uint8)
        cv2.fillPoly(face, [np.round(poly).astype(np.int32)], 1)
        pattern = np.ones((height, width), np.float32)
        step = max(3, int(rng.uniform(0.03, 0.08) * width))
        if rng.uniform() < 0.5:
            for y in range(int(top), int(base), step):
                for x in range(int(min(x0, inner)), int(max(x0, inner)), step):
                    cv2.rectangle(pattern, (x + step // 4, y + step // 4),
                                  (x + 3 * step // 4, y + 3 * step // 4), 0.45, -1)
        else:
            pattern[:, ::step] = 0.7
        shade[face > 0] = (pattern * rng.uniform(0.7, 1.2))[face > 0]
    if rng.uniform() < 0.1:
        y_far, y_near = horizon + 0.1 * (height - horizon), height
        for side in (-1, 1):
            x_far = width / 2 + side * rng.uniform(0.03, 0.1) * width
            x_near = width / 2 + side * rng.uniform(0.3, 0.6) * width
            rail_h = rng.uniform(0.05, 0.12) * height
            poly = np.array([[x_far, y_far - rail_h * 0.2], [x_near, y_near - rail_h],
                             [x_near, y_near], [x_far, y_far]], np.float32)
            cv2.fillPoly(mask, [np.round(poly).astype(np.int32)], OBSTACLE)


def _draw_obstacles(rng: np.random.Generator, mask: np.ndarray, shade: np.ndarray,
                    horizon: int) -> None:
    """Paint obstacles (class obstacle), their shading and cast shadows into ``shade``.

    The light comes from one side per scene: each obstacle is lit on that side,
    dark on the other and at its foot, and throws a shadow onto the ground on the
    far side; the shadow darkens the ground without changing its class.
    """
    height, width = mask.shape
    light = rng.choice([-1.0, 1.0]) * rng.uniform(0.2, 1.0)
    for _ in range(rng.poisson(6.0)):
        y = rng.uniform(horizon + 0.05 * (height - horizon), height)
        t = _ground_t(y, horizon, height)
        r = width * rng.uniform(0.01, 0.04) * (0.3 + 1.5 * t)
        cx = rng.uniform(0, width)
        poly = _obstacle_polygon(rng, cx, y, r)
        shadow = poly.astype(np.float32)
        shadow[..., 0] += -light * r * 1.2
        shadow[..., 1] = y + (shadow[..., 1] - y) * -0.25 + r * 0.15
        cv2.fillPoly(shade, [np.round(shadow).astype(np.int32)], rng.uniform(0.45, 0.7))
        cv2.fillPoly(mask, [poly], OBSTACLE)
        _shade_obstacle(shade, poly, light)


def _shade_obstacle(shade: np.ndarray, poly: np.ndarray, light: float) -> None:
    """Write an obstacle's shading into ``shade``: lit on the ``light`` side, darker below.

    Only the part of the obstacle inside the image is touched (obstacles at the
    border are partly outside it).
    """
    height, width = shade.shape
    x0, y0, w, h = cv2.boundingRect(poly)
    xa, ya, xb, yb = max(x0, 0), max(y0, 0), min(x0 + w, width), min(y0 + h, height)
    if xa >= xb or ya >= yb:
        return
    xs = (np.arange(xa, xb, dtype=np.float32) - (x0 + w / 2)) / max(w / 2, 1)
    ys = (np.arange(ya, yb, dtype=np.float32) - y0) / max(h, 1)
    ramp = 1.0 + 0.35 * light * xs[None, :] - 0.35 * ys[:, None] ** 2
    inside = np.zeros((yb - ya, xb - xa), np.uint8)
    cv2.fillPoly(inside, [poly - np.array([xa, ya], np.int32)], 1)
    patch = inside.astype(bool)
    shade[ya:yb, xa:xb][patch] = ramp[patch]


def _label_mask(rng: np.random.Generator, height: int, width: int,
                horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the class-id mask (H, W) uint8 and rock shading (H, W) float32."""
    mask = np.full((height, width), GRASS, np.uint8)
    mask[:horizon] = SKY
    shade = np.ones((height, width), np.float32)
    _draw_tree_line(rng, mask, horizon)
    _draw_structures(rng, mask, shade, horizon)
    _draw_water(rng, mask, horizon)
    _draw_trail(rng, mask, horizon)
    _draw_bushes(rng, mask, horizon)
    _draw_obstacles(rng, mask, shade, horizon)
    _draw_side_trees(rng, mask, horizon)
    # Cast shadows fall on the ground only; trees and sky stay unshaded.
    shade[(mask == SKY) | (mask == TREE)] = 1.0
    return mask, shade


def _sky(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Sky colour (H, W, 3) float32 0..1: vertical gradient plus clouds or overcast."""
    top = np.array([0.25, 0.45, 0.85]) * rng.uniform(0.8, 1.1)
    low = np.array([0.70, 0.80, 0.92]) * rng.uniform(0.9, 1.05)
    overcast = rng.uniform(0, 0.8)
    grey = np.full(3, rng.uniform(0.65, 0.9))
    top = (1 - overcast) * top + overcast * grey
    low = (1 - overcast) * low + overcast * grey
    # Clouds and gradient are smooth: compute at 1/4 size and upsample once
    # (a third of the cost of full-size noise octaves).
    small_h, small_w = max(2, height // 4), max(2, width // 4)
    ramp = np.linspace(0, 1, small_h, dtype=np.float32)[:, None, None]
    rows = (top * (1 - ramp) + low * ramp).astype(np.float32)
    clouds = np.clip(_fractal(rng, small_h, small_w, (small_w / 3, small_w / 8)) - 0.3, 0, 1)
    clouds *= np.float32(rng.uniform(0.3, 0.9))
    sky = rows + clouds[..., None] * (np.float32(0.95) - rows)
    return cv2.resize(sky, (width, height), interpolation=cv2.INTER_LINEAR)


def _to3(plane: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Repeat an (H, W) plane into (H, W, 3), into ``out`` when given.

    Numpy broadcasting over a trailing axis of length 1 is ~5x slower than an
    elementwise op on a contiguous (H, W, 3) array, so planes are copied.
    """
    return cv2.merge([plane, plane, plane], dst=out)


def _lookup(mask: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Map class ids (H, W[, 3]) uint8 through ``table`` (6,) or (6, 3) to float32."""
    lut = np.zeros((256,) + table.shape[1:], np.float32)
    lut[: len(table)] = table
    return cv2.LUT(mask, lut.reshape(256, 1, -1))


def _class_textures(rng: np.random.Generator, height: int, width: int, mask: np.ndarray,
                    shade: np.ndarray, sky: np.ndarray) -> np.ndarray:
    """Texture every pixel by its class, times ``shade``; return (H, W, 3) float32 RGB 0..1.

    Per-class colours and noise weights are looked up by class id with
    ``cv2.LUT`` rather than boolean masks or numpy fancy indexing (~6x faster).
    Full-size temporaries are reused in place: fresh multi-megabyte arrays
    cost page faults that were half of the run time.
    """
    scale = width / 640.0
    fields = (
        _noise(rng, height, width, 2.0 * scale),
        _fractal(rng, height, width, (24.0 * scale, 8.0 * scale)),
        _noise(rng, height, width, width / 5),
        _noise(rng, height, width, 3.0 * scale, aspect=8.0),
    )
    base = np.zeros((6, 3), np.float32)
    for cls, materials in _MATERIALS.items():
        base[cls] = np.asarray(materials[rng.integers(len(materials))]) * rng.uniform(
            0.85, 1.15, 3)
    # Water mirrors the sky colour near the horizon, darkened.
    reflect = sky[int(height * 0.3), 0]
    base[WATER] = 0.55 * reflect + 0.45 * np.array([0.08, 0.14, 0.20]) * rng.uniform(0.8, 1.2, 3)
    # Noise weights (fine, mid, coarse, ripple) per class: texture, not only hue,
    # separates classes, so the network cannot just threshold colour.
    weights = np.array([
        [0.0, 0.0, 0.0, 0.0],      # sky: replaced by the sky image below
        [0.18, 0.12, 0.15, 0.0],   # grass
        [0.06, 0.10, 0.08, 0.0],   # trail
        [0.08, 0.06, 0.0, 0.0],    # obstacle
        [0.0, 0.0, 0.0, 0.12],     # water: horizontal ripples
        [0.30, 0.15, 0.0, 0.0],    # tree
    ], np.float32)
    texture = np.ones((height, width), np.float32)
    for k, field in enumerate(fields):
        texture += _lookup(mask, weights[:, k]) * field
    texture *= shade
    mask3 = _to3(mask)
    img = _lookup(mask3, base)
    scratch = _to3(texture)
    img *= scratch
    # Dry, yellowish grass patches where the coarse field is high.
    dry = np.clip(fields[2], 0, None) * (mask == GRASS)
    scratch = _to3(dry, out=scratch)
    scratch *= np.array([0.12, 0.02, -0.04], np.float32)
    img += scratch
    _ground_details(rng, img, mask, scale)
    np.copyto(img, sky, where=mask3 == SKY)
    return img


def _ground_details(rng: np.random.Generator, img: np.ndarray, mask: np.ndarray,
                    scale: float) -> None:
    """Scatter non-obstacle ground detail onto trail and grass pixels of ``img``, in place.

    Leaf litter and gravel (small bright or dark flecks), mud patches and tyre
    tracks look rough, but a robot drives over them: their labels stay ground.
    """
    height, width = mask.shape
    ground = (mask == TRAIL) | (mask == GRASS)
    if rng.uniform() < 0.6:
        flecks = _noise(rng, height, width, max(1.0, 1.5 * scale)) > rng.uniform(0.8, 1.6)
        colour = np.array([(0.55, 0.35, 0.15), (0.70, 0.55, 0.25), (0.45, 0.44, 0.42),
                           (0.25, 0.18, 0.12)][rng.integers(4)], np.float32)
        spots = flecks & ground
        img[spots] = 0.4 * img[spots] + 0.6 * colour * rng.uniform(0.7, 1.3)
    if rng.uniform() < 0.4:
        mud = (_noise(rng, height, width, width / 12) > rng.uniform(0.8, 1.5)) & ground
        img[mud] *= np.float32(rng.uniform(0.45, 0.7))
    if rng.uniform() < 0.5:
        tracks = np.zeros((height, width), np.uint8)
        cols = np.flatnonzero((mask == TRAIL).any(axis=0))
        if cols.size:
            centre = int(np.median(cols))
            for side in (-1, 1):
                offset = side * int(width * rng.uniform(0.04, 0.1))
                cv2.line(tracks, (centre + offset, height), (centre + offset // 6,
                                                             int(height * 0.55)),
                         1, max(1, int(width * 0.015)))
            img[(tracks > 0) & ground] *= np.float32(rng.uniform(0.65, 0.85))


def _lighting(rng: np.random.Generator, img: np.ndarray, mask: np.ndarray,
              horizon: int) -> np.ndarray:
    """Apply haze, sun gradient, colour cast, blur and sensor noise in place; return uint8."""
    height, width = mask.shape
    rows = np.arange(height, dtype=np.float32)
    depth = np.clip((rows - horizon) / max(height - horizon, 1), 0, 1)
    haze = (rng.uniform(0.0, 0.35) * (1 - depth) ** 3).astype(np.float32)[:, None]
    haze = _to3(haze * (mask != SKY))
    # img += haze * (haze_colour - img), in place.
    hazed = np.array([0.75, 0.8, 0.85], np.float32) - img
    hazed *= haze
    img += hazed
    sun = np.linspace(-1, 1, width, dtype=np.float32) * np.float32(rng.uniform(-0.2, 0.2))
    gain = (rng.uniform(0.6, 1.3) * rng.uniform(0.9, 1.1, 3) * 255.0).astype(np.float32)
    img *= (1 + sun)[None, :, None] * gain
    if rng.uniform() < 0.5:
        img = cv2.GaussianBlur(img, (3, 3), 0, dst=img)
    # One luminance noise plane: a third of the cost of per-channel noise.
    grain = rng.standard_normal((height, width), dtype=np.float32)
    grain *= np.float32(rng.uniform(1.0, 6.0))
    img += _to3(grain, out=hazed)
    return np.clip(img, 0, 255, out=img).astype(np.uint8)


def generate_scene(seed: int, width: int = 640, height: int = 480
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Generate one terrain scene deterministically from ``seed``.

    Args:
        seed: any non-negative integer; equal seeds give identical scenes.
        width: image width in pixels (>= 16).
        height: image height in pixels (>= 16).

    Returns:
        ``(rgb, class_ids)``: (H, W, 3) uint8 RGB image and (H, W) uint8 mask
        with ids 0..5 in the order of ``config/classes.yaml``.

    Raises:
        ValueError: if the size is smaller than 16 x 16 pixels or seed < 0.

    """
    if width < 16 or height < 16:
        raise ValueError(f"scene size must be at least 16x16 pixels, got {width}x{height}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    rng = np.random.default_rng(seed)
    horizon = int(height * rng.uniform(0.3, 0.55))
    mask, shade = _label_mask(rng, height, width, horizon)
    sky = _sky(rng, height, width)
    img = _class_textures(rng, height, width, mask, shade, sky)
    return _lighting(rng, img, mask, horizon), mask
