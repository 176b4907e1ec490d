"""Seeded renderer of licence-plate crops: the recognizer's training data.

Every layout the edge grammars know is drawn from free fonts onto a plate of its colour class,
then put through what real cameras do to a plate (perspective, crop jitter, low resolution,
blur, JPEG, dirt, night/IR, glare, noise). `render_plate` returns one colour crop; a dataset
(`render_dataset`) is pre-rendered once into a grey uint8 memmap plus a labels CSV.

Labels follow `../shared/data`'s `labels.csv`: text as printed, uppercase, no separators
(`51F58214`, `沪AN9241`), region `vn` | `cn`, rows 1 | 2.

The character sets are copies of `edge.recognition.grammar`'s (models sits below edge and does
not import it); the tests check every rendered label against the edge grammars.
"""

from __future__ import annotations

import csv
import logging
import multiprocessing as mp
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

log = logging.getLogger(__name__)

DIGITS = "0123456789"
LATIN = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
VN_LETTERS = "ABCDEFGHKLMNPRSTUVXYZ"
CN_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"
CN_PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
CN_SPECIAL = "挂学警港澳领"
CN_EMBASSY = "使"
CN_CIVIL_AVIATION = "民航"
# What the recognizer can emit (CTC column i + 1 is CHARSET[i]; column 0 is the blank).
CHARSET = DIGITS + LATIN + CN_PROVINCES + CN_SPECIAL + CN_EMBASSY + CN_CIVIL_AVIATION

HEIGHT, WIDTH = 64, 192  # stored crop size (grey), the recognizer's input
MIN_CONTRAST = 8.0  # grey std below which a rendered crop is blank (no plate left to read)
SEPARATORS = "-.·"

_FONT_DIRS = ("/usr/share/fonts/truetype", "/usr/share/fonts/opentype")
# (file, face index): the first ones found are used; order is preference
LATIN_FONTS = (
    ("dejavu/DejaVuSansCondensed-Bold.ttf", 0),
    ("liberation/LiberationSansNarrow-Bold.ttf", 0),
    ("dejavu/DejaVuSansCondensed.ttf", 0),
    ("liberation/LiberationSansNarrow-Regular.ttf", 0),
    ("liberation/LiberationSans-Bold.ttf", 0),
    ("dejavu/DejaVuSans-Bold.ttf", 0),
    ("liberation/LiberationSans-Regular.ttf", 0),
    ("dejavu/DejaVuSans.ttf", 0),
)
# plate typefaces draw a `1` without a foot: fonts whose `1` has one borrow it from a footless font
_FOOTED_ONE = ("dejavu/",)
# stroke weights a glyph is drawn in: erode (<0) or dilate (>0) its 96 px mask by 2|w|+1 px
STROKE_WEIGHTS = (-2, -1, 0, 0, 1, 2)
# the CN plate typeface (GA 36) draws `1` as a plain bar and `3` with a flat top: drawn as a sans
# `I` and as `Ʒ` (Ezh) where the font has one
CN_FORMS = {"1": "I", "3": "\u01b7"}
P_CN_FORMS, P_CN_MONO, P_VN_MONO = 0.8, 0.8, 0.3  # per plate: CN forms, fixed-width cells
# CN plates photographed: the province glyph's ink often fills less of its cell than the
# letters' do; drawn at CJK_SMALL..1 of the cell on P_CJK_SMALL of the CJK characters
P_CJK_SMALL, CJK_SMALL = 0.5, 0.75
MONO_CELL = 0.6  # the least cell of a Latin character on fixed-width plates (natural width units)
CJK_FONTS = (
    ("noto/NotoSansCJK-Bold.ttc", 2),  # face 2 = Noto Sans CJK SC
    ("noto/NotoSansCJK-Regular.ttc", 2),
    ("wqy/wqy-microhei.ttc", 0),
)
_GLYPH_PX = 96  # glyph masks are cached at this font size


class FontNotFoundError(FileNotFoundError):
    """No usable Latin or CJK font is installed."""


def _find_fonts(candidates: tuple[tuple[str, int], ...]) -> list[tuple[str, int]]:
    found = []
    for name, index in candidates:
        for root in _FONT_DIRS:
            path = Path(root) / name
            if path.is_file():
                found.append((str(path), index))
                break
    return found


@cache
def fonts() -> tuple[tuple[tuple[str, int], ...], tuple[tuple[str, int], ...]]:
    """(Latin fonts, CJK fonts) installed on this machine, as (path, face index)."""
    latin, cjk = _find_fonts(LATIN_FONTS), _find_fonts(CJK_FONTS)
    if not latin or not cjk:
        raise FontNotFoundError(
            f"need a Latin and a CJK font (Debian: fonts-dejavu, fonts-wqy-microhei); "
            f"found latin={latin} cjk={cjk}")
    return tuple(latin), tuple(cjk)


@cache
def _font(path: str, index: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, _GLYPH_PX, index=index)


@cache
def has_glyph(char: str, path: str, index: int) -> bool:
    """Whether the font draws `char` (not its missing-glyph box)."""
    font = _font(path, index)
    return font.getmask(char).getbbox() != font.getmask("\uffff").getbbox()


def form_of(char: str, font_id: int) -> str:
    """The character drawn for `char` in the CN plate typeface with Latin font `font_id`."""
    form = CN_FORMS.get(char, char)
    latin, _ = fonts()
    return form if has_glyph(form, *latin[font_id % len(latin)]) else char


def font_for(char: str, font_id: int) -> tuple[str, int]:
    """The installed font (path, face index) that `glyph` draws `char` in for `font_id`.

    `font_id` indexes the Latin fonts for Latin characters (ASCII and the CN forms) and the CJK
    fonts otherwise; a `1` in a font that draws it with a foot comes from a footless font.
    """
    latin, cjk = fonts()
    table = latin if char.isascii() or char in CN_FORMS.values() else cjk
    path, index = table[font_id % len(table)]
    if char == "1" and any(f in path for f in _FOOTED_ONE):
        footless = [f for f in latin if not any(m in f[0] for m in _FOOTED_ONE)]
        path, index = footless[font_id % len(footless)] if footless else (path, index)
    return path, index


@cache
def glyph(char: str, font_id: int, weight: int = 0) -> np.ndarray:
    """Ink mask (uint8, cropped to its bounding box) of one character in one font and weight.

    The font is `font_for(char, font_id)`; `weight` thins (< 0) or thickens (> 0) the strokes,
    as plate makers' typefaces differ.
    """
    path, index = font_for(char, font_id)
    size = _GLYPH_PX * 2
    img = Image.new("L", (size, size), 0)
    ImageDraw.Draw(img).text((size // 4, size // 4), char, fill=255, font=_font(path, index))
    mask = np.asarray(img)
    if weight:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * abs(weight) + 1,) * 2)
        mask = cv2.dilate(mask, kernel) if weight > 0 else cv2.erode(mask, kernel)
    ys, xs = np.nonzero(mask > 40)
    return np.ascontiguousarray(mask[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1])


@dataclass(frozen=True)
class Sample:
    """One rendered plate crop with its label."""

    image: np.ndarray  # HxWx3 BGR uint8 (render_plate) or HxW grey (datasets)
    text: str  # as printed, no separators
    region: str  # "vn" | "cn"
    rows: int  # 1 | 2
    layout: str  # layout name, e.g. "vn_moto_2row"


# ---- plate texts -----------------------------------------------------------------------------

def _pick(rng: np.random.Generator, chars: str, n: int = 1) -> str:
    return "".join(chars[i] for i in rng.integers(0, len(chars), n))


def _cn_serial(rng: np.random.Generator, n: int) -> str:
    """n characters from digits and letters with at most 2 letters (GA 36)."""
    letters = min(n, int(rng.choice([0, 0, 1, 1, 2])))
    slots = set(rng.choice(n, size=letters, replace=False).tolist())
    return "".join(_pick(rng, CN_LETTERS) if i in slots else _pick(rng, DIGITS) for i in range(n))


def _vn_number(rng: np.random.Generator, n: int) -> tuple[str, str]:
    """(plain, printed) serial: `58214` / `582.14`, or `5821`."""
    digits = _pick(rng, DIGITS, n)
    return digits, (f"{digits[:3]}.{digits[3:]}" if n == 5 else digits)


def _vn_province(rng: np.random.Generator) -> str:
    return f"{int(rng.integers(11, 100)):02d}"


# ---- plate drawing ---------------------------------------------------------------------------

Row = tuple[str, float, float, float, float, float]  # text, x0, y0, x1, y1 (fractions), aspect


@dataclass(frozen=True)
class Design:
    """A plate to draw: size in mm, colours (BGR), rows of printed text with their boxes."""

    size_mm: tuple[int, int]  # width, height
    background: tuple[int, int, int]
    ink: tuple[int, int, int]
    rows: tuple[Row, ...]
    border: bool = True
    gradient: tuple[int, int, int] | None = None  # second background colour (top→bottom)
    red_chars: str = ""  # characters printed in red (警, 使)


WHITE, BLACK = (235, 238, 238), (25, 25, 25)
YELLOW, BLUE = (30, 190, 235), (170, 70, 15)
RED, GREEN = (40, 40, 190), (90, 170, 60)
LIGHT_GREEN = (215, 240, 220)
INK_RED = (30, 30, 200)


def _vn_colours(rng: np.random.Generator, kind: str) -> tuple[tuple, tuple]:
    """(background, ink) of a VN colour class: white private, yellow commercial, blue
    government, red military-coloured."""
    if kind == "truck":
        choice = rng.choice(4, p=[0.35, 0.5, 0.08, 0.07])
    else:
        choice = rng.choice(4, p=[0.7, 0.15, 0.08, 0.07])
    return [(WHITE, BLACK), (YELLOW, BLACK), (BLUE, WHITE), (RED, WHITE)][choice]


def vn_plate(rng: np.random.Generator, layout: str) -> tuple[Design, str, int]:
    """A Vietnamese plate of `layout`: vn_long (1 row), vn_car_2row, vn_moto_2row, vn_trailer
    (R series, 1 or 2 rows). Returns (design, label, rows)."""
    prov = _vn_province(rng)
    n = 5 if rng.random() < 0.7 else 4
    plain, printed = _vn_number(rng, n)
    aspect = float(rng.uniform(0.42, 0.55))
    if layout == "vn_moto_2row":
        if rng.random() < 0.75:
            series = _pick(rng, VN_LETTERS) + _pick(rng, DIGITS)
        else:
            series = _pick(rng, VN_LETTERS, 2) + _pick(rng, DIGITS)
        bg, ink = _vn_colours(rng, "moto")
        rows = ((f"{prov}-{series}", 0.1, 0.07, 0.9, 0.46, aspect),
                (printed, 0.06, 0.53, 0.94, 0.93, aspect))
        return Design((190, 140), bg, ink, rows), prov + series + plain, 2
    if layout == "vn_trailer":
        series = "R"
    elif rng.random() < 0.8:
        series = _pick(rng, VN_LETTERS)
    else:
        series = _pick(rng, VN_LETTERS, 2)
    bg, ink = _vn_colours(rng, "truck" if layout != "vn_long" or rng.random() < 0.4 else "car")
    two_row = layout == "vn_car_2row" or (layout == "vn_trailer" and rng.random() < 0.5)
    if two_row:
        rows = ((prov + series, 0.2, 0.08, 0.8, 0.45, aspect),
                (printed, 0.08, 0.54, 0.92, 0.92, aspect))
        return Design((330, 165), bg, ink, rows), prov + series + plain, 2
    text = f"{prov}{series}-{printed}"
    rows = ((text, 0.04, 0.14, 0.96, 0.86, aspect),)
    return Design((520, 110), bg, ink, rows), prov + series + plain, 1


CN_LAYOUTS = ("cn_blue", "cn_green", "cn_yellow", "cn_yellow_2row", "cn_trailer", "cn_learner",
              "cn_police", "cn_black", "cn_embassy", "cn_civil_aviation")
VN_LAYOUTS = ("vn_long", "vn_car_2row", "vn_moto_2row", "vn_trailer")
LAYOUTS = VN_LAYOUTS + CN_LAYOUTS
# sampling weights of the layouts in a dataset
LAYOUT_WEIGHTS = {
    "vn_long": 0.17, "vn_car_2row": 0.09, "vn_moto_2row": 0.2, "vn_trailer": 0.04,
    "cn_blue": 0.18, "cn_green": 0.09, "cn_yellow": 0.05, "cn_yellow_2row": 0.06,
    "cn_trailer": 0.03, "cn_learner": 0.02, "cn_police": 0.025, "cn_black": 0.025,
    "cn_embassy": 0.01, "cn_civil_aviation": 0.01,
}


def cn_plate(rng: np.random.Generator, layout: str) -> tuple[Design, str, int]:
    """A Chinese plate of `layout` (see CN_LAYOUTS). Returns (design, label, rows)."""
    prov, letter = _pick(rng, CN_PROVINCES), _pick(rng, CN_LETTERS)
    aspect = 0.5
    one_row = (0.03, 0.14, 0.97, 0.86, aspect)
    if layout in ("cn_blue", "cn_yellow", "cn_learner", "cn_police", "cn_black"):
        suffix = {"cn_learner": "学", "cn_police": "警",
                  "cn_black": str(rng.choice(list("港澳领"))) if rng.random() < 0.8 else ""}
        tail = suffix.get(layout, "")
        serial = _cn_serial(rng, 5 - len(tail)) + tail
        colours = {"cn_blue": (BLUE, WHITE), "cn_yellow": (YELLOW, BLACK),
                   "cn_learner": (YELLOW, BLACK), "cn_police": (WHITE, BLACK),
                   "cn_black": (BLACK, WHITE)}[layout]
        red = "警" if layout == "cn_police" else ""
        design = Design((440, 140), *colours, ((f"{prov}{letter}·{serial}", *one_row),),
                        red_chars=red)
        return design, prov + letter + serial, 1
    if layout == "cn_green":
        if rng.random() < 0.7:  # small car: D/F first
            serial = _pick(rng, "DF") + _pick(rng, DIGITS + CN_LETTERS) + _pick(rng, DIGITS, 4)
        else:  # large vehicle: D/F last
            serial = _pick(rng, DIGITS, 5) + _pick(rng, "DF")
        design = Design((480, 140), LIGHT_GREEN, BLACK,
                        ((f"{prov}{letter}·{serial}", 0.03, 0.16, 0.97, 0.86, 0.47),),
                        gradient=GREEN)
        return design, prov + letter + serial, 1
    if layout in ("cn_yellow_2row", "cn_trailer"):
        tail = "挂" if layout == "cn_trailer" else ""
        serial = _cn_serial(rng, 5 - len(tail)) + tail
        if layout == "cn_trailer" and rng.random() < 0.25:
            design = Design((440, 140), YELLOW, BLACK, ((f"{prov}{letter}·{serial}", *one_row),))
            return design, prov + letter + serial, 1
        rows = ((f"{prov} {letter}", 0.22, 0.07, 0.78, 0.38, 0.6),
                (serial, 0.05, 0.44, 0.95, 0.93, 0.45))
        return Design((440, 220), YELLOW, BLACK, rows), prov + letter + serial, 2
    if layout == "cn_embassy":
        digits = _pick(rng, DIGITS, 6)
        design = Design((440, 140), BLACK, WHITE,
                        ((f"使{digits[:3]}·{digits[3:]}", *one_row),), red_chars="使")
        return design, "使" + digits, 1
    if layout == "cn_civil_aviation":
        serial = _pick(rng, CN_LETTERS + DIGITS) + _pick(rng, DIGITS, 4)
        colours = (GREEN, WHITE) if rng.random() < 0.5 else (WHITE, BLACK)
        design = Design((440, 140), *colours, ((f"民航·{serial}", *one_row),))
        return design, "民航" + serial, 1
    raise ValueError(f"unknown CN layout {layout!r}")


def _row_mask(text: str, height: int, width: int, aspect: float, font_id: int,
              rng: np.random.Generator, weight: int = 0, jitter: float = 0.0,
              cn_forms: bool = False,
              mono: bool = False) -> tuple[np.ndarray, list[tuple[int, int, str]]]:
    """Ink mask (height x width) of one text row, characters stretched to the row height.

    `weight` is the glyphs' stroke weight (see `glyph`); `jitter` > 0 lets each character
    sit up to that fraction of the height lower and shorter (hand-set or embossed plates);
    `cn_forms` draws `1` and `3` as the CN plate typeface does (`CN_FORMS`); `mono` gives every
    Latin character at least a fixed cell (`MONO_CELL`), a narrow glyph such as `1` centred in
    it, as plate typefaces space their characters.
    Returns the mask and each character's (x0, x1, char) span.
    """
    cells = []  # (cell width, glyph width, character drawn), in pixels before scaling
    for ch in text:
        if ch == " ":
            cells.append((height * aspect, 0.0, ch))
        elif ch in SEPARATORS:
            cells.append((0.45 * height * aspect, 0.0, ch))
        elif not ch.isascii():
            cells.append((height * aspect, height * aspect, ch))  # squeezed to one cell
        else:
            drawn = form_of(ch, font_id) if cn_forms and ch in CN_FORMS else ch
            g = glyph(drawn, font_id)
            natural = g.shape[1] / g.shape[0]
            if drawn != ch:  # a CN form keeps its own width
                w = natural * aspect * 1.6
            elif ch == "1":
                w = max(natural, 0.3) * aspect * 1.6
            else:
                w = min(max(natural, 0.45), 1.0) * aspect * 1.6
            cell = max(w, MONO_CELL * aspect * 1.6) if mono else max(w, 0.3 * aspect * 1.6)
            cells.append((cell * height, w * height, drawn))
    gap = height * aspect * rng.uniform(0.12, 0.3)
    total = sum(c[0] for c in cells) + gap * (len(text) - 1)
    scale = min(1.0, width / total)
    x = (width - total * scale) / 2
    mask = np.zeros((height, width), np.uint8)
    spans = []
    for ch, (cell, w, drawn) in zip(text, cells, strict=True):
        c_px = max(1, round(cell * scale))
        x0 = round(x)
        if ch == " ":
            pass
        elif ch == "-":
            t = max(1, height // 10)
            mask[height // 2 - t // 2: height // 2 - t // 2 + t, x0 + c_px // 5: x0 + c_px * 4 // 5] = 255
        elif ch in ".·":
            t = max(2, height // 9)
            y = height - t if ch == "." else height // 2 - t // 2
            cx = x0 + c_px // 2 - t // 2
            mask[y: y + t, cx: cx + t] = 255
        else:
            w_px = max(1, round(w * scale))
            gx0 = x0 + (c_px - w_px) // 2
            w8 = weight if ch.isascii() else max(weight, -1)  # CJK strokes are thinner
            h_ch = height - round(height * rng.uniform(0, jitter)) if jitter else height
            y0 = int(rng.integers(0, height - h_ch + 1))
            if not ch.isascii() and rng.random() < P_CJK_SMALL:  # a lighter, smaller CJK face
                f = rng.uniform(CJK_SMALL, 1.0)
                h_ch, w_px = max(1, round(h_ch * f)), max(1, round(w_px * f))
                y0, gx0 = (height - h_ch) // 2, x0 + (c_px - w_px) // 2
            g = cv2.resize(glyph(drawn, font_id, w8), (w_px, h_ch), interpolation=cv2.INTER_AREA)
            x1 = min(width, gx0 + w_px)
            mask[y0:y0 + h_ch, gx0:x1] = np.maximum(mask[y0:y0 + h_ch, gx0:x1], g[:, : x1 - gx0])
            spans.append((x0, min(width, x0 + c_px), ch))
        x += (cell + gap) * scale
    return mask, spans


def draw_design(design: Design, rng: np.random.Generator, px_per_mm: float = 0.6) -> np.ndarray:
    """The plate image (BGR uint8) of a design, with border, bolts, wear and dirt."""
    w, h = (round(v * px_per_mm) for v in design.size_mm)
    bg = np.array(design.background, np.float32) + rng.normal(0, 10, 3)
    if design.gradient is not None:
        t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None] ** rng.uniform(0.6, 1.6)
        g2 = np.array(design.gradient, np.float32)
        top_light = rng.random() < 0.5
        plate = (bg * (1 - t) + g2 * t) if top_light else (g2 * (1 - t) + bg * t)
        plate = np.broadcast_to(plate, (h, w, 3)).copy()
    else:
        plate = np.empty((h, w, 3), np.float32)
        plate[:] = bg
    ink = np.clip(np.array(design.ink, np.float32) + rng.normal(0, 12, 3), 0, 255)
    if design.border:
        t = max(1, round(h * rng.uniform(0.015, 0.04)))
        m = max(1, round(h * rng.uniform(0.01, 0.05)))
        cv2.rectangle(plate, (m, m), (w - 1 - m, h - 1 - m), ink.tolist(), t)
    font_id = int(rng.integers(0, 64))
    weight = int(rng.choice(STROKE_WEIGHTS))
    jitter = float(rng.uniform(0.02, 0.08)) if rng.random() < 0.3 else 0.0
    cn = any(not ch.isascii() for row in design.rows for ch in row[0])
    cn_forms = cn and rng.random() < P_CN_FORMS
    mono = rng.random() < (P_CN_MONO if cn else P_VN_MONO)
    for text, x0, y0, x1, y1, aspect in design.rows:
        dx, dy = rng.normal(0, 0.01, 2)
        bx0, bx1 = round((x0 + dx) * w), round((x1 + dx) * w)
        by0, by1 = round((y0 + dy) * h), round((y1 + dy) * h)
        bx0, by0 = max(0, bx0), max(0, by0)
        bx1, by1 = min(w, bx1), min(h, by1)
        mask, spans = _row_mask(text, by1 - by0, bx1 - bx0, aspect, font_id, rng, weight, jitter,
                                cn_forms, mono)
        if rng.random() < 0.3:  # stroke weight: embossed plates print heavier or lighter
            k = np.ones((2, 2), np.uint8)
            mask = cv2.dilate(mask, k) if rng.random() < 0.6 else cv2.erode(mask, k)
        alpha = mask.astype(np.float32)[..., None] / 255.0
        colour = np.broadcast_to(ink, (by1 - by0, bx1 - bx0, 3)).copy()
        for sx0, sx1, ch in spans:
            if ch in design.red_chars:
                colour[:, sx0:sx1] = INK_RED
        region = plate[by0:by1, bx0:bx1]
        plate[by0:by1, bx0:bx1] = region * (1 - alpha) + colour * alpha
    if rng.random() < 0.5:  # bolts
        r = max(1, round(h * 0.035))
        for fx in (0.2, 0.8):
            cv2.circle(plate, (round(fx * w), round(h * rng.uniform(0.04, 0.1))), r,
                       (bg * 0.6).tolist(), -1)
    if rng.random() < 0.35:  # dirt: dark, blurred blotches
        dirt = np.zeros((h, w), np.float32)
        for _ in range(int(rng.integers(2, 12))):
            c = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            ax = (int(rng.integers(2, max(3, w // 6))), int(rng.integers(2, max(3, h // 4))))
            cv2.ellipse(dirt, c, ax, float(rng.uniform(0, 180)), 0, 360, float(rng.uniform(0.2, 0.6)), -1)
        dirt = cv2.GaussianBlur(dirt, (0, 0), rng.uniform(1, 4))
        brown = np.array([40, 60, 80], np.float32)
        plate = plate * (1 - dirt[..., None]) + brown * dirt[..., None]
    if rng.random() < 0.5:  # uneven light across the plate
        gx = np.linspace(rng.uniform(0.7, 1.1), rng.uniform(0.7, 1.1), w, dtype=np.float32)
        plate *= gx[None, :, None]
    return np.clip(plate, 0, 255).astype(np.uint8)


# ---- camera ----------------------------------------------------------------------------------

def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """What surrounds a plate in a loose crop: a bumper, a car body, a shadow."""
    base = rng.uniform(0, 230) + rng.normal(0, 20, 3).astype(np.float32)
    small = rng.normal(0, rng.uniform(5, 40), (max(2, h // 8), max(2, w // 8), 1))
    small = np.repeat(small, 3, axis=2) + rng.normal(0, 5, small.shape[:2] + (3,))
    bg = cv2.resize(small.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR) + base
    return np.clip(bg, 0, 255).astype(np.uint8)


def camera(plate: np.ndarray, rng: np.random.Generator, rows: int,
           out_hw: tuple[int, int] = (HEIGHT, WIDTH)) -> np.ndarray:
    """What a camera and a plate locator make of a plate: a crop of `out_hw` (BGR uint8)."""
    oh, ow = out_hw
    # low resolution: render small, upsample at the end
    scale = rng.uniform(0.3, 0.55) if rng.random() < 0.35 else rng.uniform(0.55, 1.0)
    if rows == 1 and rng.random() < 0.3:
        scale *= 0.8  # wide 1-row crops are stretched more in height: fewer rows of pixels
    sh, sw = max(8, round(oh * scale)), max(16, round(ow * scale))
    ph, pw = plate.shape[:2]
    # crop jitter: margin (fraction of the crop) per side, negative cuts the plate
    loose = rng.random() < 0.35
    lo, hi = (-0.01, 0.15) if loose else (-0.03, 0.04)
    ml, mr = rng.uniform(lo, hi, 2) * sw
    mt, mb = rng.uniform(lo, hi * 1.3, 2) * sh
    dst = np.array([[ml, mt], [sw - mr, mt], [sw - mr, sh - mb], [ml, sh - mb]], np.float32)
    # perspective and rotation
    persp = rng.uniform(0, 0.05) if rng.random() < 0.6 else 0.0
    dst += rng.normal(0, persp, (4, 2)).astype(np.float32) * np.array([sw, sh], np.float32)
    angle = np.deg2rad(rng.normal(0, 3) if rng.random() < 0.7 else 0.0)
    c = dst.mean(axis=0)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], np.float32)
    aspect = np.array([sw / sh, 1.0], np.float32)  # rotate in a square-pixel frame
    dst = ((dst - c) / aspect @ rot.T) * aspect + c
    src = np.array([[0, 0], [pw, 0], [pw, ph], [0, ph]], np.float32)
    m = cv2.getPerspectiveTransform(src, dst.astype(np.float32))
    img = _background(rng, sh, sw)
    if rng.random() < 0.3:  # blur before sampling: defocus at the plate
        k = rng.uniform(0.5, 2.0) * pw / sw
        plate = cv2.GaussianBlur(plate, (0, 0), k)
    cv2.warpPerspective(plate, m, (sw, sh), dst=img, flags=cv2.INTER_AREA,
                        borderMode=cv2.BORDER_TRANSPARENT)
    img = img.astype(np.float32)
    # light: night/IR (grey, low contrast or blown out), glare, exposure
    mode = rng.random()
    if mode < 0.18:  # IR / night: grey, flat or overexposed
        grey = img.mean(axis=2, keepdims=True)
        img = np.repeat(grey, 3, axis=2)
        if rng.random() < 0.5:
            img = 128 + (img - 128) * rng.uniform(0.45, 0.8) + rng.uniform(-50, 40)
        else:
            img = img * rng.uniform(1.2, 1.7) + rng.uniform(0, 40)
    else:
        img = img * rng.uniform(0.55, 1.3) + rng.uniform(-40, 40)
        if rng.random() < 0.3:
            gamma = rng.uniform(0.6, 1.6)
            img = 255 * (np.clip(img, 0, 255) / 255) ** gamma
    if rng.random() < 0.2:  # glare: a bright blob
        yy, xx = np.mgrid[0:sh, 0:sw].astype(np.float32)
        cx, cy = rng.uniform(0, sw), rng.uniform(0, sh)
        r = rng.uniform(0.15, 0.6) * sw
        img += rng.uniform(50, 160) * np.exp(-(((xx - cx) ** 2 + ((yy - cy) * 2) ** 2) / r ** 2))[..., None]
    img = sensor_degrade(img, rng, PLATE_SENSOR)
    if (sh, sw) != (oh, ow):
        interp = cv2.INTER_LINEAR if rng.random() < 0.7 else cv2.INTER_NEAREST
        img = cv2.resize(img, (ow, oh), interpolation=interp)
    return img


@dataclass(frozen=True)
class Sensor:
    """How a camera's sensor degrades an image: blur (motion or focus), noise, JPEG."""

    p_blur: float
    kernel_max: int  # motion-blur kernel length drawn in [2, kernel_max)
    sigma: tuple[float, float]  # focus-blur sigma range
    noise_max: float  # Gaussian noise sigma drawn in [2, noise_max)
    p_jpeg: float
    quality_min: int  # JPEG quality drawn in [quality_min, 90)


PLATE_SENSOR = Sensor(p_blur=0.3, kernel_max=6, sigma=(0.4, 1.3), noise_max=14, p_jpeg=0.5,
                      quality_min=20)


def sensor_degrade(img: np.ndarray, rng: np.random.Generator, sensor: Sensor) -> np.ndarray:
    """Blur, noise and JPEG of `sensor` over `img` (float32 BGR in, uint8 out)."""
    if rng.random() < sensor.p_blur:
        if rng.random() < 0.5:
            k = int(rng.integers(2, sensor.kernel_max))
            kernel = np.zeros((k, k), np.float32)
            kernel[k // 2, :] = 1.0 / k
            img = cv2.filter2D(img, -1, kernel)
        else:
            img = cv2.GaussianBlur(img, (0, 0), rng.uniform(*sensor.sigma))
    if rng.random() < 0.6:
        img += rng.normal(0, rng.uniform(2, sensor.noise_max), img.shape).astype(np.float32)
    out = np.clip(img, 0, 255).astype(np.uint8)
    if rng.random() < sensor.p_jpeg:
        quality = int(rng.integers(sensor.quality_min, 90))
        ok, buf = cv2.imencode(".jpg", out, (cv2.IMWRITE_JPEG_QUALITY, quality))
        out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return out


def render_plate(rng: np.random.Generator, layout: str | None = None,
                 augment: bool = True) -> Sample:
    """One plate crop (BGR uint8, HEIGHT x WIDTH) of `layout` (drawn by weight if None)."""
    if layout is None:
        names = list(LAYOUT_WEIGHTS)
        p = np.array([LAYOUT_WEIGHTS[n] for n in names])
        layout = names[int(rng.choice(len(names), p=p / p.sum()))]
    if layout in VN_LAYOUTS:
        design, text, rows = vn_plate(rng, layout)
        region = "vn"
    else:
        design, text, rows = cn_plate(rng, layout)
        region = "cn"
    plate = draw_design(design, rng, px_per_mm=float(rng.uniform(0.45, 0.7)))
    if augment:
        image = camera(plate, rng, rows)
        while cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).std() < MIN_CONTRAST:  # washed out: again
            image = camera(plate, rng, rows)
    else:
        image = cv2.resize(plate, (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)
    return Sample(image, text, region, rows, layout)


# ---- datasets --------------------------------------------------------------------------------

CHUNK = 1000


def _render_chunk(path: str, start: int, stop: int, seed: int) -> list[tuple[str, str, int, str]]:
    """Render samples [start, stop) into the memmap at `path`; return their labels."""
    images = np.load(path, mmap_mode="r+")
    rng = np.random.default_rng([seed, start])
    labels = []
    for i in range(start, stop):
        s = render_plate(rng)
        images[i] = cv2.cvtColor(s.image, cv2.COLOR_BGR2GRAY)
        labels.append((s.text, s.region, s.rows, s.layout))
    images.flush()
    return labels


def render_dataset(out: Path, n: int, seed: int = 0, workers: int = 1,
                   progress: Callable[[int], None] | None = None) -> Path:
    """Pre-render `n` grey crops into `out/images.npy` (uint8 memmap, n x HEIGHT x WIDTH) and
    `out/labels.csv` (index,text,region,rows,layout). Deterministic for a seed, whatever
    `workers` (extra processes beside this one). Returns `out`.
    """
    out.mkdir(parents=True, exist_ok=True)
    path = out / "images.npy"
    np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(n, HEIGHT, WIDTH)).flush()
    chunks = [(k, min(n, k + CHUNK)) for k in range(0, n, CHUNK)]
    results: dict[int, list] = {}
    ctx = mp.get_context("fork")
    with ctx.Pool(workers) if workers > 0 else _NoPool() as pool:
        pending = {a: pool.apply_async(_render_chunk, (str(path), a, b, seed))
                   for i, (a, b) in enumerate(chunks) if i % (workers + 1)} if workers else {}
        mine = [(a, b) for a, b in chunks if a not in pending]
        for a, b in mine:
            if a not in results:
                results[a] = _render_chunk(str(path), a, b, seed)
                if progress:
                    progress(b - a)
            done = [k for k, r in pending.items() if r.ready()]
            for k in done:
                results[k] = pending.pop(k).get()
                if progress:
                    progress(len(results[k]))
        for k, r in pending.items():
            results[k] = r.get()
            if progress:
                progress(len(results[k]))
    with open(out / "labels.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["index", "text", "region", "rows", "layout"])
        i = 0
        for a, _ in chunks:
            for text, region, rows, layout in results[a]:
                writer.writerow([i, text, region, rows, layout])
                i += 1
    log.info("rendered %d samples into %s", n, out)
    return out


class _NoPool:
    def __enter__(self) -> _NoPool:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def read_labels(path: Path) -> list[dict[str, str]]:
    """Rows of a dataset's labels.csv."""
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def contact_sheet(seed: int = 1, cols: int = 6, n: int = 48, scale: int = 1) -> np.ndarray:
    """A grid of rendered crops (BGR), every layout included, for looking at."""
    rng = np.random.default_rng(seed)
    tiles = []
    for i in range(n):
        layout = LAYOUTS[i % len(LAYOUTS)] if i < len(LAYOUTS) else None
        img = render_plate(rng, layout).image
        tiles.append(cv2.copyMakeBorder(img, 2, 2, 2, 2, cv2.BORDER_CONSTANT, value=(255, 255, 255)))
    rows = [np.hstack(tiles[r * cols:(r + 1) * cols]) for r in range(n // cols)]
    sheet = np.vstack(rows)
    if scale != 1:
        sheet = cv2.resize(sheet, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    return sheet


def main(argv: list[str] | None = None) -> None:
    """`python -m models.plate_recognizer.render OUT N [--seed S] [--workers W] [--sheet PNG]`."""
    import argparse

    from tqdm import tqdm

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("n", type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--sheet", type=Path, help="write a contact sheet PNG and stop")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.sheet:
        cv2.imwrite(str(args.sheet), contact_sheet(args.seed, n=args.n))
        return
    with tqdm(total=args.n, unit="img", mininterval=5) as bar:
        render_dataset(args.out, args.n, args.seed, args.workers, progress=bar.update)


if __name__ == "__main__":
    main()
