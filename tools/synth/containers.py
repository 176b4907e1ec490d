"""Synthetic container faces: corrugated panels with an ISO 6346 code and size-type painted on.

Deterministic for a seed. Layouts: one row (owner, serial, boxed check digit), two rows (owner
above serial), and vertical (one character per line, as on corner posts). Used to measure the
reader (`smartgate bench containers --synthetic N`) and in tests; never for training.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from smartgate.iso6346 import DIGITS, LETTERS, complete_code

FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"))
FONT_FILES = ("DejaVuSans-Bold.ttf", "DejaVuSansCondensed-Bold.ttf", "DejaVuSansMono-Bold.ttf")
LAYOUTS = ("row", "two_rows", "vertical")
SIZE_TYPES = ("22G1", "22G1", "45G1", "42G1", "L5G1", "22R1", "45R1", "22U1", "42U1", "25G1")
PAINTS = ((40, 40, 150), (150, 70, 20), (30, 110, 30), (70, 70, 70), (200, 200, 200),
          (20, 90, 200), (120, 40, 100), (30, 30, 30), (170, 140, 60))  # fmt: skip


class FontNotFoundError(FileNotFoundError):
    """No usable TrueType font for rendering container markings."""


def find_fonts(dirs: tuple[Path, ...] = FONT_DIRS) -> list[Path]:
    """Paths of the bold DejaVu fonts used for markings; raises FontNotFoundError if none."""
    found = [d / f for d in dirs for f in FONT_FILES if (d / f).is_file()]
    if not found:
        raise FontNotFoundError(
            f"no DejaVu bold font ({', '.join(FONT_FILES)}) in {', '.join(map(str, dirs))}; "
            "install fonts-dejavu-core (apt-get install fonts-dejavu-core)"
        )
    return found


@dataclass(frozen=True)
class SynthFace:
    """A rendered container face and what is painted on it."""

    image: np.ndarray  # BGR uint8
    code: str
    size_type: str
    layout: str  # "row" | "two_rows" | "vertical"
    box: tuple[int, int, int, int]  # code box, x1 y1 x2 y2

    @property
    def orientation(self) -> str:
        return "vertical" if self.layout == "vertical" else "horizontal"


def random_code(rng: np.random.Generator) -> str:
    """A random code with a correct check digit (category U)."""
    owner = "".join(rng.choice(list(LETTERS), 3))
    serial = "".join(rng.choice(list(DIGITS), 6))
    return complete_code(f"{owner}U{serial}")


def _panel(rng: np.random.Generator, h: int, w: int, paint: tuple[int, int, int]) -> np.ndarray:
    """Corrugated steel: periodic vertical ribs with shading, grime and a light gradient."""
    period = rng.uniform(18, 40)
    x = np.arange(w, dtype=np.float32)
    ribs = 0.82 + 0.18 * np.sin(2 * np.pi * x / period + rng.uniform(0, 6.3))
    light = np.linspace(rng.uniform(0.7, 1.1), rng.uniform(0.7, 1.1), h, dtype=np.float32)
    shade = light[:, None] * ribs[None, :]
    img = np.asarray(paint, np.float32)[None, None, :] * shade[:, :, None]
    grime = cv2.GaussianBlur(rng.normal(0, 12, (h, w)).astype(np.float32), (0, 0), 6)
    return np.clip(img + grime[:, :, None], 0, 255).astype(np.uint8)


def _ink_for(paint: tuple[int, int, int]) -> tuple[int, int, int]:
    return (20, 20, 20) if sum(paint) / 3 > 140 else (240, 240, 240)


def _draw_text(
    draw: ImageDraw.ImageDraw,
    xy: tuple[float, float],
    text: str,
    font: ImageFont.FreeTypeFont,
    ink: tuple[int, int, int],
    spacing: float,
) -> tuple[int, int, int, int]:
    """Draw `text` letter-spaced from `xy`; returns its bounding box."""
    x, y = xy
    x0 = x
    top, bottom = 10.0**9, -(10.0**9)
    for ch in text:
        _, t, r, b = draw.textbbox((x, y), ch, font=font)
        draw.text((x, y), ch, font=font, fill=ink)
        top, bottom = min(top, t), max(bottom, b)
        x = r + spacing
    return int(x0), int(top), int(x - spacing), int(bottom)


def render_face(
    rng: np.random.Generator, code: str, size_type: str, layout: str, fonts: list[Path]
) -> SynthFace:
    """Render one face with `code` and `size_type` in `layout`."""
    paint = PAINTS[int(rng.integers(len(PAINTS)))]
    ink = _ink_for(paint)
    h, w = (640, 480) if layout == "vertical" else (480, 640)
    image = Image.fromarray(_panel(rng, h, w, paint)[:, :, ::-1].copy())
    draw = ImageDraw.Draw(image)
    size = int(rng.integers(26, 44))
    font = ImageFont.truetype(str(fonts[int(rng.integers(len(fonts)))]), size)
    small = ImageFont.truetype(str(fonts[0]), int(size * 0.8))
    gap = size * 0.12
    if layout == "vertical":
        x = float(rng.uniform(0.2, 0.7) * w)
        y = float(rng.uniform(0.04, 0.1) * h)
        boxes = []
        for ch in code:
            boxes.append(_draw_text(draw, (x, y), ch, font, ink, gap))
            y = boxes[-1][3] + size * rng.uniform(0.25, 0.45)
        left, t, r, b = boxes[-1]
        draw.rectangle((left - 4, t - 4, r + 4, b + 4), outline=ink, width=2)
        box = (min(bx[0] for bx in boxes), boxes[0][1], max(bx[2] for bx in boxes), b)
        _draw_text(
            draw, (x + size * 2.5, float(rng.uniform(0.05, 0.3) * h)), size_type, small, ink, gap
        )
    else:
        x = float(rng.uniform(0.05, 0.3) * w)
        y = float(rng.uniform(0.08, 0.35) * h)
        owner_box = _draw_text(draw, (x, y), code[:4], font, ink, gap)
        if layout == "row":
            serial_box = _draw_text(
                draw, (owner_box[2] + size * 0.8, y), code[4:10], font, ink, gap
            )
        else:
            serial_box = _draw_text(
                draw, (x, owner_box[3] + size * 0.4), code[4:10], font, ink, gap
            )
        cx = serial_box[2] + size * 0.6
        check_box = _draw_text(draw, (cx, serial_box[1] - size * 0.2), code[10], font, ink, gap)
        draw.rectangle(
            (check_box[0] - 5, check_box[1] - 5, check_box[2] + 5, check_box[3] + 5),
            outline=ink,
            width=2,
        )
        box = (owner_box[0], owner_box[1], check_box[2] + 5, serial_box[3])
        _draw_text(draw, (serial_box[0], serial_box[3] + size * 0.6), size_type, small, ink, gap)
    bgr = np.asarray(image)[:, :, ::-1]
    return SynthFace(_camera(rng, bgr), code, size_type, layout, box)


def _camera(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Camera effects: slight blur, sensor noise, exposure, JPEG compression."""
    blurred = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.3, 1.1)).astype(np.float32)
    noisy = blurred * rng.uniform(0.75, 1.15) + rng.normal(0, 4, blurred.shape)
    out = np.clip(noisy, 0, 255).astype(np.uint8)
    quality = int(rng.integers(55, 95))
    ok, data = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, quality])
    decoded = cv2.imdecode(data, cv2.IMREAD_COLOR) if ok else None
    return decoded if decoded is not None else out


def generate(n: int, seed: int = 0, layouts: tuple[str, ...] = LAYOUTS) -> Iterator[SynthFace]:
    """`n` faces, cycling through `layouts`, reproducible for `seed`."""
    rng = np.random.default_rng(seed)
    fonts = find_fonts()
    for i in range(n):
        size_type = SIZE_TYPES[int(rng.integers(len(SIZE_TYPES)))]
        yield render_face(rng, random_code(rng), size_type, layouts[i % len(layouts)], fonts)
