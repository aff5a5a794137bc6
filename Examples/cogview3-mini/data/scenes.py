"""Deterministic synthetic scenes for CogView3-mini: one to three flat shapes on a plain or textured
background, with a short caption and a long "expanded" caption (in the style of CogView3's
re-captioning). Everything is made on the fly from an integer seed; no image is ever stored.

    python3 data/scenes.py --seed 3 --out /tmp/scene.png      # one scene + its captions
    python3 data/scenes.py --heldout                          # the held-out evaluation prompts

World:
- shapes: circle, square, triangle, diamond, star, cross (axis aligned, no rotation);
- shape colours: seven saturated named colours; backgrounds are low-saturation (plain or textured),
  so a detector can separate shapes from background by saturation alone;
- sizes small / medium / large; positions on a 3x3 grid (left/center/right x top/middle/bottom);
- two- and three-shape scenes are described with relations ("to the left of", "above").
Held-out split: one (colour, shape) pair per shape never appears in training scenes at all; the
evaluation prompts use only those pairs (single-shape prompts) or contain at least one of them.
Rendering: 4x supersampling with PIL, box-filtered down (anti-aliased edges).
"""

from __future__ import annotations

import argparse
import json
import math
import random
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ["circle", "square", "triangle", "diamond", "star", "cross"]
COLOURS = {
    "red": (220, 30, 30),
    "orange": (245, 130, 20),
    "yellow": (240, 220, 30),
    "green": (30, 170, 50),
    "cyan": (20, 200, 210),
    "blue": (30, 60, 220),
    "purple": (150, 40, 200),
}
COLOUR_NAMES = list(COLOURS)
# Low-saturation backgrounds (HSV saturation < 0.25 everywhere, textures included).
BACKGROUNDS = {
    "white": (245, 245, 245),
    "light gray": (190, 190, 190),
    "dark gray": (70, 70, 70),
    "black": (15, 15, 15),
    "beige": (225, 215, 190),
}
TEXTURES = ["plain", "striped", "checkered", "dotted"]
SIZES = {"small": 0.22, "medium": 0.32, "large": 0.44}  # side of the shape's box / image side
COLS = {"left": 0.22, "center": 0.5, "right": 0.78}
ROWS = {"top": 0.22, "middle": 0.5, "bottom": 0.78}

# One colour per shape is held out of training: shape i never appears in colour (2*i + 1) mod 7.
HELDOUT_PAIRS = {(COLOUR_NAMES[(2 * i + 1) % len(COLOUR_NAMES)], s) for i, s in enumerate(SHAPES)}


@dataclass
class Obj:
    shape: str
    colour: str
    size: str
    col: str
    row: str


@dataclass
class Scene:
    objects: list[Obj]
    background: str
    texture: str
    short: str = ""
    long: str = ""
    meta: dict = field(default_factory=dict)


def shape_polygon(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]] | None:
    """Outline of `shape` centred at (cx, cy) with half-side r (None for the circle, drawn as an ellipse)."""
    if shape == "circle":
        return None
    if shape == "square":
        return [(cx - r, cy - r), (cx + r, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    if shape == "triangle":
        return [(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    if shape == "diamond":
        return [(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)]
    if shape == "star":
        pts = []
        for k in range(10):
            a = -math.pi / 2 + k * math.pi / 5
            rr = r if k % 2 == 0 else r * 0.45
            pts.append((cx + rr * math.cos(a), cy + rr * math.sin(a) + r * 0.1))
        return pts
    if shape == "cross":
        w = r * 0.36
        return [
            (cx - w, cy - r), (cx + w, cy - r), (cx + w, cy - w), (cx + r, cy - w), (cx + r, cy + w),
            (cx + w, cy + w), (cx + w, cy + r), (cx - w, cy + r), (cx - w, cy + w), (cx - r, cy + w),
            (cx - r, cy - w), (cx - w, cy - w),
        ]
    raise ValueError(f"scenes.py: unknown shape {shape!r}; known: {SHAPES}")


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, fill) -> None:
    poly = shape_polygon(shape, cx, cy, r)
    if poly is None:
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    else:
        draw.polygon(poly, fill=fill)


def _background(size: int, name: str, texture: str, rng: random.Random) -> Image.Image:
    base = np.array(BACKGROUNDS[name], dtype=np.float32)
    img = np.tile(base, (size, size, 1))
    # The texture is a brightness modulation (no hue), so saturation stays low.
    shade = np.clip(base + (40 if base.mean() < 128 else -40), 0, 255)
    yy, xx = np.mgrid[0:size, 0:size] / size
    period = rng.choice([8, 10, 12]) / 64
    if texture == "striped":
        mask = (np.floor((xx + yy) / period) % 2) == 1
    elif texture == "checkered":
        mask = ((np.floor(xx / period) + np.floor(yy / period)) % 2) == 1
    elif texture == "dotted":
        fx, fy = (xx / period) % 1 - 0.5, (yy / period) % 1 - 0.5
        mask = fx * fx + fy * fy < 0.06
    else:
        mask = np.zeros((size, size), dtype=bool)
    img[mask] = shade
    return Image.fromarray(img.astype(np.uint8))


def render(scene: Scene, size: int, supersample: int = 4) -> np.ndarray:
    """The scene as uint8 [size, size, 3]; the same scene at any size has the same layout."""
    big = size * supersample
    rng = random.Random(scene.meta.get("texture_seed", 0))
    img = _background(big, scene.background, scene.texture, rng).convert("RGB")
    draw = ImageDraw.Draw(img)
    for o in scene.objects:
        r = SIZES[o.size] * big / 2
        draw_shape(draw, o.shape, COLS[o.col] * big, ROWS[o.row] * big, r, COLOURS[o.colour])
    return np.asarray(img.resize((size, size), Image.BOX))


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _describe(o: Obj) -> str:
    return f"{o.size} {o.colour} {o.shape}"


def _where(o: Obj) -> str:
    if o.col == "center" and o.row == "middle":
        return "in the center"
    if o.row == "middle":
        return f"on the {o.col}"
    if o.col == "center":
        return f"at the {o.row}"
    return f"at the {o.row} {o.col}"


def _relation(a: Obj, b: Obj) -> str:
    ca, cb = list(COLS).index(a.col), list(COLS).index(b.col)
    ra, rb = list(ROWS).index(a.row), list(ROWS).index(b.row)
    if ca != cb:
        return "to the left of" if ca < cb else "to the right of"
    return "above" if ra < rb else "below"


def _bg_phrase(s: Scene) -> str:
    return f"{s.background} background" if s.texture == "plain" else f"{s.texture} {s.background} background"


def captions(s: Scene) -> tuple[str, str]:
    """(short caption, expanded caption)."""
    objs = s.objects
    first = f"{_article(_describe(objs[0]))} {_describe(objs[0])}"
    if len(objs) == 1:
        short = f"{first} {_where(objs[0])} on a {_bg_phrase(s)}"
    else:
        parts = [first]
        for prev, o in zip(objs, objs[1:]):
            parts.append(f"{_relation(prev, o)} {_article(_describe(o))} {_describe(o)}")
        short = " ".join(parts) + f" on a {_bg_phrase(s)}"
    sentences = ["A simple flat digital illustration with clean anti-aliased edges."]
    for i, o in enumerate(objs):
        lead = "The picture shows" if i == 0 else "There is also"
        sentences.append(
            f"{lead} {_article(o.size)} {o.size}, bright {o.colour} {o.shape} placed {_where(o)} of the image,"
            f" filled with a single solid {o.colour} colour."
        )
    for prev, o in zip(objs, objs[1:]):
        sentences.append(f"The {prev.colour} {prev.shape} is {_relation(prev, o)} the {o.colour} {o.shape}.")
    if s.texture == "plain":
        sentences.append(f"The background is a plain, even {s.background} surface without any pattern.")
    else:
        sentences.append(f"The background is {s.background} with a subtle {s.texture} pattern in a similar tone.")
    sentences.append("Minimalist composition, no text, no shadows, sharp focus.")
    return short, " ".join(sentences)


def _free_cells(objs: list[Obj]) -> list[tuple[str, str]]:
    used = {(o.col, o.row) for o in objs}
    return [(c, r) for c in COLS for r in ROWS if (c, r) not in used]


def make_scene(seed: int, split: str = "train", n_objects: int | None = None) -> Scene:
    """Scene number `seed` of `split` ("train": no held-out pair; "heldout": every object of a
    single-shape scene, and at least one object otherwise, is a held-out pair)."""
    rng = random.Random(f"{split}:{seed}")
    n = n_objects or rng.choices([1, 2, 3], weights=[5, 3, 2])[0]
    objs: list[Obj] = []
    for k in range(n):
        while True:
            shape, colour = rng.choice(SHAPES), rng.choice(COLOUR_NAMES)
            held = (colour, shape) in HELDOUT_PAIRS
            if split == "train" and held:
                continue
            if split == "heldout" and k == 0 and not held:
                continue
            break
        # Several objects: medium or small only, on distinct cells of the 3x3 grid, not adjacent-overlapping.
        size = rng.choice(list(SIZES)) if n == 1 else rng.choice(["small", "medium"])
        col, row = rng.choice(_free_cells(objs) if n == 1 or k == 0 else _spaced_cells(objs))
        objs.append(Obj(shape, colour, size, col, row))
    bg = rng.choice(list(BACKGROUNDS))
    tex = rng.choice(TEXTURES) if rng.random() < 0.4 else "plain"
    s = Scene(objs, bg, tex, meta={"texture_seed": rng.randrange(1 << 30), "seed": seed, "split": split})
    s.short, s.long = captions(s)
    return s


def _spaced_cells(objs: list[Obj]) -> list[tuple[str, str]]:
    """Cells at least two grid steps away (in x or y) from every placed object, so shapes never touch."""
    cols, rows = list(COLS), list(ROWS)
    out = []
    for c, r in _free_cells(objs):
        if all(abs(cols.index(c) - cols.index(o.col)) >= 2 or abs(rows.index(r) - rows.index(o.row)) >= 2 for o in objs):
            out.append((c, r))
    return out or _free_cells(objs)


def heldout_prompts(count: int = 48, single_only: bool = True) -> list[Scene]:
    """The evaluation set: deterministic held-out scenes (single-shape by default)."""
    return [make_scene(i, "heldout", 1 if single_only else None) for i in range(count)]


def batch(seeds, size: int, split: str = "train") -> tuple[np.ndarray, list[Scene]]:
    """Images [B, 3, size, size] float32 in [-1, 1] and their scenes."""
    scenes = [make_scene(int(s), split) for s in seeds]
    imgs = np.stack([render(s, size) for s in scenes]).astype(np.float32) / 127.5 - 1.0
    return imgs.transpose(0, 3, 1, 2).copy(), scenes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--out", help="write the scene as PNG here")
    ap.add_argument("--heldout", action="store_true", help="print the held-out prompts as JSON lines")
    a = ap.parse_args()
    if a.heldout:
        for s in heldout_prompts():
            print(json.dumps({"seed": s.meta["seed"], "short": s.short, "long": s.long}))
        return
    s = make_scene(a.seed)
    print(s.short)
    print(s.long)
    if a.out:
        Image.fromarray(render(s, a.size)).save(a.out)


if __name__ == "__main__":
    main()
