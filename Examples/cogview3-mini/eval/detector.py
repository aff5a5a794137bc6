"""A detector for the synthetic scenes of data/scenes.py, used to score prompt adherence, and a
sharpness measure.

Detection:
1. Colour segmentation: a pixel is a shape pixel when its HSV saturation > 0.45 and value > 0.3
   (backgrounds and their textures are low-saturation by construction); it is labelled with the
   nearest named colour by hue (circular distance to each named colour's hue).
2. Connected components (4-neighbour) per colour label; components smaller than 0.8% of the image
   are dropped as noise.
3. Shape classification: the component's mask, cropped to its bounding box and resampled to 24×24,
   is compared with each shape rendered the same way; the best IoU wins.
Position: the component centroid in thirds of the image (left/center/right, top/middle/bottom).

Sharpness: RMS gradient (finite differences) of the grey image, and the
fidelity PSNR / gradient ratio against the rendered ground truth at the same size.
"""

from __future__ import annotations

import colorsys
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "data"))
import scenes  # noqa: E402

TEMPLATE = 24
MIN_AREA = 0.008
HUES = {name: colorsys.rgb_to_hsv(*(c / 255 for c in rgb))[0] for name, rgb in scenes.COLOURS.items()}


@dataclass
class Detection:
    colour: str
    shape: str
    col: str
    row: str
    area: float
    score: float


@lru_cache(maxsize=None)
def templates() -> dict[str, np.ndarray]:
    out = {}
    for s in scenes.SHAPES:
        big = 4 * TEMPLATE * 4
        img = Image.new("L", (big, big), 0)
        scenes.draw_shape(ImageDraw.Draw(img), s, big / 2, big / 2, big * 0.45, 255)
        m = np.asarray(img) > 127
        out[s] = _normalise(m)
    return out


def _normalise(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    crop = mask[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    im = Image.fromarray((crop * 255).astype(np.uint8)).resize((TEMPLATE, TEMPLATE), Image.BILINEAR)
    return np.asarray(im) > 127


def classify_shape(mask: np.ndarray) -> tuple[str, float]:
    m = _normalise(mask)
    best = max(((s, (m & t).sum() / max(1, (m | t).sum())) for s, t in templates().items()), key=lambda p: p[1])
    return best


def colour_labels(img: np.ndarray) -> np.ndarray:
    """[H, W] int: index into scenes.COLOUR_NAMES, or -1 for background."""
    rgb = img.astype(np.float32) / 255
    mx, mn = rgb.max(axis=2), rgb.min(axis=2)
    sat = np.where(mx > 0, (mx - mn) / np.maximum(mx, 1e-6), 0)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    d = np.maximum(mx - mn, 1e-6)
    hue = np.where(mx == r, ((g - b) / d) % 6, np.where(mx == g, (b - r) / d + 2, (r - g) / d + 4)) / 6
    names = scenes.COLOUR_NAMES
    hd = np.stack([np.minimum(abs(hue - HUES[n]), 1 - abs(hue - HUES[n])) for n in names], axis=-1)
    lab = hd.argmin(axis=-1)
    return np.where((sat > 0.45) & (mx > 0.3), lab, -1)


def _components(mask: np.ndarray) -> list[np.ndarray]:
    h, w = mask.shape
    seen = np.zeros_like(mask)
    comps = []
    for y0, x0 in zip(*np.nonzero(mask)):
        if seen[y0, x0]:
            continue
        stack, pix = [(y0, x0)], []
        seen[y0, x0] = True
        while stack:
            y, x = stack.pop()
            pix.append((y, x))
            for ny, nx in ((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)):
                if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    stack.append((ny, nx))
        m = np.zeros_like(mask)
        ys, xs = zip(*pix)
        m[list(ys), list(xs)] = True
        comps.append(m)
    return comps


def detect(img: np.ndarray) -> list[Detection]:
    """Shapes in a uint8 [H, W, 3] image, largest first."""
    h, w, _ = img.shape
    lab = colour_labels(img)
    out = []
    for ci, name in enumerate(scenes.COLOUR_NAMES):
        for m in _components(lab == ci):
            area = m.sum() / (h * w)
            if area < MIN_AREA:
                continue
            shape, score = classify_shape(m)
            ys, xs = np.nonzero(m)
            cx, cy = xs.mean() / w, ys.mean() / h
            col = ["left", "center", "right"][min(2, int(cx * 3))]
            row = ["top", "middle", "bottom"][min(2, int(cy * 3))]
            out.append(Detection(name, shape, col, row, float(area), float(score)))
    return sorted(out, key=lambda d: -d.area)


def adherence(img: np.ndarray, scene: scenes.Scene) -> dict:
    """Per-object match of the prompt's (colour, shape) and (colour, shape, position) against detections."""
    dets = detect(img)
    want = [(o.colour, o.shape) for o in scene.objects]
    got = [(d.colour, d.shape) for d in dets]
    cs = sum(1 for p in want if p in got) / len(want)
    pos = sum(1 for o in scene.objects if any((d.colour, d.shape, d.col, d.row) == (o.colour, o.shape, o.col, o.row) for d in dets))
    colour_only = sum(1 for o in scene.objects if any(d.colour == o.colour for d in dets)) / len(want)
    exact = cs == 1.0 and len(dets) == len(want)
    return {"colour_shape": cs, "colour": colour_only, "position": pos / len(want), "exact": float(exact), "detections": len(dets)}


def sharpness(img: np.ndarray) -> float:
    """RMS gradient of the grey image (8-bit units per pixel). The RMS, not the mean: blurring an
    edge spreads its gradient over more pixels, which keeps the mean but lowers the RMS."""
    g = img.astype(np.float32).mean(axis=2)
    gx, gy = np.diff(g, axis=1)[:-1], np.diff(g, axis=0)[:, :-1]
    return float(np.sqrt((gx * gx + gy * gy).mean()))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = ((a.astype(np.float32) - b.astype(np.float32)) ** 2).mean()
    return float(10 * np.log10(255.0**2 / max(mse, 1e-10)))
