"""A miniature UnlearnCanvas: seeded images of objects (shapes) drawn in styles (texture + palette).

UnlearnCanvas (Zhang et al. 2024) is a stylised image set in which every image has a style and an
object label, so erasing one style can be measured (is it gone?) separately from what must stay
(other styles: in-domain retainability; the objects: cross-domain retainability). This is the
same design at a size a 2-core CPU trains on in seconds: 16x16 (or 32x32) RGB images rendered
with numpy alone, no download. The image classifiers (forget a class or a random subset) use the
object label; the generators (erase a style) use both.

Every image is a pure function of (object, style, seed, index): `render` is deterministic, and
the variation inside a cell (position, size, rotation, palette jitter, pixel noise) is what makes
random forgetting high-variance, as it is on real data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

OBJECTS: tuple[str, ...] = ("circle", "square", "triangle", "cross", "ring", "diamond")

# A style is a texture inside the object and a (foreground, background) palette, both chosen so
# that styles stay separable at 16x16: texture periods of 3-4 pixels and distinct hues.
STYLES: tuple[str, ...] = ("solid", "stripes", "dots", "checker", "waves", "outline")
_PALETTES: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "solid": ((0.90, 0.20, 0.20), (0.95, 0.95, 0.90)),
    "stripes": ((0.15, 0.35, 0.85), (0.95, 0.90, 0.60)),
    "dots": ((0.10, 0.60, 0.25), (0.90, 0.85, 0.95)),
    "checker": ((0.55, 0.20, 0.65), (0.80, 0.95, 0.85)),
    "waves": ((0.95, 0.55, 0.10), (0.20, 0.25, 0.35)),
    "outline": ((0.05, 0.05, 0.05), (0.70, 0.85, 0.95)),
}


@dataclass(frozen=True)
class Canvas:
    """Rendered images with both labels. `images` is float32 [N, 3, H, W] in [0, 1]."""

    images: np.ndarray
    objects: np.ndarray  # int64 [N], index into `object_names`
    styles: np.ndarray  # int64 [N], index into `style_names`
    object_names: tuple[str, ...]
    style_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.objects)

    def subset(self, index: np.ndarray) -> Canvas:
        return Canvas(self.images[index], self.objects[index], self.styles[index],
                      self.object_names, self.style_names)


def _shape_mask(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """A boolean [size, size] mask of one object, jittered in position, scale and rotation."""
    c = (size - 1) / 2
    cx, cy = c + rng.uniform(-0.12, 0.12) * size, c + rng.uniform(-0.12, 0.12) * size
    r = size * rng.uniform(0.28, 0.38)
    angle = rng.uniform(-0.35, 0.35)  # radians; small, so a square stays a square, not a diamond
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    dx, dy = xx - cx, yy - cy
    u = dx * math.cos(angle) + dy * math.sin(angle)
    v = -dx * math.sin(angle) + dy * math.cos(angle)
    dist = np.hypot(u, v)
    if kind == "circle":
        return dist <= r
    if kind == "ring":
        return (dist <= r) & (dist >= 0.55 * r)
    if kind == "square":
        return (np.abs(u) <= 0.85 * r) & (np.abs(v) <= 0.85 * r)
    if kind == "diamond":
        return np.abs(u) + np.abs(v) <= 1.15 * r
    if kind == "cross":
        arm = 0.33 * r
        return ((np.abs(u) <= arm) & (np.abs(v) <= r)) | ((np.abs(v) <= arm) & (np.abs(u) <= r))
    if kind == "triangle":  # apex up: inside the three half-planes of an equilateral triangle
        h = 1.5 * r
        return (v <= 0.5 * h) & (v >= -h + 1.732 * np.abs(u)) & (v >= -h)
    raise ValueError(f"unknown object '{kind}': choose one of {', '.join(OBJECTS)}")


def _texture(style: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """A [size, size] foreground weight in [0, 1]: where inside the object the ink goes."""
    yy, xx = np.mgrid[0:size, 0:size]
    phase = int(rng.integers(0, 4))
    if style == "solid":
        return np.ones((size, size))
    if style == "stripes":
        return (((xx + yy + phase) // 2) % 2 == 0).astype(float)
    if style == "dots":
        return (((xx + phase) % 3 != 2) & ((yy + phase) % 3 != 2)).astype(float)  # 2x2 dots
    if style == "checker":
        return (((xx + phase) // 2 + (yy + phase) // 2) % 2 == 0).astype(float)
    if style == "waves":
        return (np.sin(2 * np.pi * (yy + 1.5 * np.sin(xx / 2.0)) / 4.0 + phase) > 0).astype(float)
    if style == "outline":
        return np.ones((size, size))  # the mask itself is reduced to its border in `render_one`
    raise ValueError(f"unknown style '{style}': choose one of {', '.join(STYLES)}")


def _border(mask: np.ndarray) -> np.ndarray:
    inner = mask.copy()
    inner[1:, :] &= mask[:-1, :]
    inner[:-1, :] &= mask[1:, :]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    return mask & ~inner


def render_one(obj: str, style: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """One float32 [3, size, size] image of `obj` drawn in `style`."""
    mask = _shape_mask(obj, size, rng)
    if style == "outline":
        mask = _border(mask)
    ink = mask * _texture(style, size, rng)
    fg, bg = (np.clip(np.asarray(col) + rng.normal(0, 0.04, 3), 0, 1) for col in _PALETTES[style])
    img = bg[:, None, None] * (1 - ink)[None] + fg[:, None, None] * ink[None]
    img = img + rng.normal(0, 0.03, img.shape)
    return np.clip(img, 0, 1).astype(np.float32)


def render(n_per_cell: int, *, size: int = 16, seed: int = 0,
           objects: tuple[str, ...] = OBJECTS, styles: tuple[str, ...] = STYLES) -> Canvas:
    """`n_per_cell` images for every (object, style) pair, in a seeded order.

    Each cell draws from its own generator seeded by (seed, object, style), so adding a style
    does not change the images of the others.
    """
    if n_per_cell < 1 or size < 8:
        raise ValueError(f"render needs n_per_cell >= 1 and size >= 8 (got {n_per_cell}, {size})")
    images, obj_ix, sty_ix = [], [], []
    for oi, obj in enumerate(objects):
        for si, style in enumerate(styles):
            rng = np.random.default_rng([seed, OBJECTS.index(obj) if obj in OBJECTS else oi,
                                         STYLES.index(style) if style in STYLES else si])
            for _ in range(n_per_cell):
                images.append(render_one(obj, style, size, rng))
                obj_ix.append(oi)
                sty_ix.append(si)
    order = np.random.default_rng(seed).permutation(len(images))
    return Canvas(np.stack(images)[order], np.asarray(obj_ix, dtype=np.int64)[order],
                  np.asarray(sty_ix, dtype=np.int64)[order], tuple(objects), tuple(styles))
