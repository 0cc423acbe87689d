"""Pictures of the audio-visual benchmark: coloured shapes moving over a textured background.

The captioner sees each frame only through a global-average-pooled ImageNet CNN
(EfficientNet-Lite0, 224 px, 1280-d), which keeps *what* is in the picture but loses
*where*. The picture is designed so that position and motion still change pooled features:

* the background varies across space: a left -> right colour gradient, diagonal stripes on
  the top half and a checkerboard on the bottom half, all low-contrast and desaturated, so
  an object's position changes what it covers;
* objects are large (about 30 % of the frame width; 24 % in two-object clips) in saturated,
  distinct colours (:data:`fusion.benchmark.COLORS`) and few distinct shapes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from fusion.benchmark import COLORS

WIDTH = HEIGHT = 128  # small for speed; the frame CNN resizes to 224 px anyway
FPS = 12.0
RADIUS_ONE = 0.15  # object radius / frame width, one-object clips (diameter ~30 %)
RADIUS_TWO = 0.12  # two-object clips (diameter ~24 %)
SCALE_RANGE = (0.45, 1.3)  # grows: small -> large; shrinks: the reverse
BOUNCES = 3  # bounces per clip


def background(rng: np.random.Generator) -> np.ndarray:
    """A desaturated textured background.

    Returns:
        uint8 array (H, W, 3).
    """
    x = np.linspace(0.0, 1.0, WIDTH)[None, :, None]  # (1, W, 1)
    left = np.array([55.0, 95.0, 115.0]) + rng.uniform(-8, 8, 3)  # slate teal
    right = np.array([185.0, 165.0, 120.0]) + rng.uniform(-8, 8, 3)  # sand
    img = np.broadcast_to(left * (1 - x) + right * x, (HEIGHT, WIDTH, 3)).copy()  # (H, W, 3)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    phase = rng.uniform(0, 16)
    stripes = np.where(((xx + yy + phase) // 8) % 2 == 0, 14.0, -14.0)  # diagonal stripes
    checker = np.where(((xx // 12) + (yy // 12)) % 2 == 0, 14.0, -14.0)  # checkerboard
    img += np.where(yy < HEIGHT // 2, stripes, checker)[..., None]
    return np.clip(img, 0, 255).astype(np.uint8)


def _polygon(shape: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    """Vertices of a square / triangle / star of circumradius ``r`` rotated by ``angle``."""
    if shape == "square":
        k, radii = 4, [r]
        base = np.pi / 4
    elif shape == "triangle":
        k, radii = 3, [r * 1.1]
        base = -np.pi / 2
    elif shape == "star":
        k, radii = 10, [r * 1.15, r * 0.5]
        base = -np.pi / 2
    else:
        raise ValueError(f"unknown shape {shape!r}")
    pts = []
    for i in range(k):
        a = base + angle + 2 * np.pi * i / k
        rad = radii[i % len(radii)]
        pts.append((cx + rad * np.cos(a), cy + rad * np.sin(a)))
    return pts


def trajectory(obj: dict[str, Any], num_frames: int, slot: tuple[float, float], radius: float,
               rng: np.random.Generator) -> np.ndarray:
    """Per-frame (x, y, scale, angle) of one object.

    Args:
        obj: ``{"shape", "color", "action"}``.
        num_frames: T.
        slot: (y_min, y_max) of the object's band, as fractions of the height.
        radius: Base radius as a fraction of the width.
        rng: Random generator (start positions).

    Returns:
        float64 array (T, 4): x, y in pixels, scale, angle in radians.
    """
    t = np.linspace(0.0, 1.0, num_frames)  # (T,)
    y0, y1 = slot
    margin = radius * 1.1
    xc = rng.uniform(0.35, 0.65)
    yc = (y0 + y1) / 2
    x, y = np.full_like(t, xc), np.full_like(t, yc)
    scale, angle = np.ones_like(t), np.zeros_like(t)
    action = obj["action"]
    if action in ("moves_left", "moves_right"):
        a, b = margin + 0.02, 1 - margin - 0.02
        x = b + (a - b) * t if action == "moves_left" else a + (b - a) * t
    elif action in ("moves_up", "moves_down"):
        top, bottom = y0 + margin, y1 - margin
        y = bottom + (top - bottom) * t if action == "moves_up" else top + (bottom - top) * t
    elif action == "bounces":
        ground, height = y1 - margin, max(0.15, (y1 - y0) - 2 * margin)
        y = ground - height * np.abs(np.sin(np.pi * BOUNCES * t))
    elif action == "spins":
        angle = 2 * np.pi * 1.5 * t * (1 if rng.random() < 0.5 else -1)
    elif action == "grows":
        scale = SCALE_RANGE[0] + (SCALE_RANGE[1] - SCALE_RANGE[0]) * t
    elif action == "shrinks":
        scale = SCALE_RANGE[1] + (SCALE_RANGE[0] - SCALE_RANGE[1]) * t
    else:
        raise ValueError(f"unknown action {action!r}")
    return np.stack([x * WIDTH, y * HEIGHT, scale, angle], axis=1)  # (T, 4)


def render_frames(objects: list[dict[str, Any]], num_frames: int, rng: np.random.Generator) -> np.ndarray:
    """Render a clip.

    Args:
        objects: 1-2 ``{"shape", "color", "action"}`` dicts, primary first. With two, the
            primary object lives in the top half and the other in the bottom half.
        num_frames: T.
        rng: Random generator (background jitter, start positions).

    Returns:
        uint8 array (T, H, W, 3), RGB.
    """
    bg = Image.fromarray(background(rng))
    radius = RADIUS_ONE if len(objects) == 1 else RADIUS_TWO
    slots = [(0.0, 1.0)] if len(objects) == 1 else [(0.0, 0.5), (0.5, 1.0)]
    paths = [trajectory(o, num_frames, s, radius, rng) for o, s in zip(objects, slots)]
    out = np.empty((num_frames, HEIGHT, WIDTH, 3), np.uint8)  # (T, H, W, 3)
    for i in range(num_frames):
        img = bg.copy()
        draw = ImageDraw.Draw(img)
        for obj, path in zip(objects, paths):
            cx, cy, scale, angle = path[i]
            r = radius * WIDTH * scale
            color = COLORS[obj["color"]]
            if obj["shape"] == "circle":
                draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=color)
            else:
                draw.polygon(_polygon(obj["shape"], cx, cy, r, angle), fill=color)
        out[i] = np.asarray(img)
    return out
