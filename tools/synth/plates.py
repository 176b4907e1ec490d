"""Synthetic Vietnamese and Chinese plates and truck scenes, for tests, demos and evaluation.

Rendered with PIL from a system font (DejaVu Sans Condensed Bold for Latin, WenQuanYi Micro Hei
for Chinese: Debian packages `fonts-dejavu-core` and `fonts-wqy-microhei`). Everything is
deterministic for a given seed.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

LATIN_FONTS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSansCondensed-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
)
CJK_FONTS = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
)


class FontMissingError(FileNotFoundError):
    """No usable font file is installed for the requested script."""


def font_path(cjk: bool = False) -> Path:
    """Path of the font used for Latin (or, with `cjk`, Chinese) plate text."""
    candidates = CJK_FONTS if cjk else LATIN_FONTS
    for name in candidates:
        if Path(name).is_file():
            return Path(name)
    package = "fonts-wqy-microhei" if cjk else "fonts-dejavu-core"
    raise FontMissingError(
        f"no {'CJK' if cjk else 'Latin'} font found (looked for {', '.join(candidates)}); "
        f"install it with: apt-get install {package}"
    )


@cache
def _font(size: int, cjk: bool) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(font_path(cjk)), size)


def draw_text(
    image: np.ndarray, text: str, origin: tuple[int, int], size: int,
    colour: tuple[int, int, int] = (0, 0, 0),
) -> np.ndarray:
    """A copy of BGR `image` with (possibly Chinese, multi-line) `text` drawn at `origin`."""
    pil = Image.fromarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    cjk = any("\u4e00" <= ch <= "\u9fff" for ch in text)
    ImageDraw.Draw(pil).multiline_text(origin, text, fill=colour[::-1], font=_font(size, cjk))
    return cv2.cvtColor(np.asarray(pil), cv2.COLOR_RGB2BGR)


PLATE_STYLES = {  # (region, colour) -> (background BGR, text BGR)
    ("vn", "white"): ((235, 235, 235), (20, 20, 20)),
    ("vn", "yellow"): ((40, 200, 235), (20, 20, 20)),
    ("vn", "blue"): ((150, 70, 20), (240, 240, 240)),
    ("cn", "blue"): ((160, 60, 10), (240, 240, 240)),
    ("cn", "yellow"): ((30, 190, 240), (20, 20, 20)),
}
VN_TRUCK_SERIES = "CDHLR"  # C trucks, D vans, H/L heavy, R trailers and semi-trailers
VN_LETTERS = "ABCDEFGHKLMNPRSTUVXYZ"
CN_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"
CN_PROVINCES = "桂粤云京沪湘川皖浙苏闽赣鲁豫鄂渝黔"


def random_plate_text(region: str, rows: int, rng: np.random.Generator) -> str:
    """A random plate number that follows the region's grammar (normalized form)."""
    digits = "0123456789"

    def pick(chars: str, n: int = 1) -> str:
        return "".join(rng.choice(list(chars), n))

    if region == "vn":
        province = f"{rng.integers(11, 100):02d}"
        if rows == 1:
            series = pick(VN_TRUCK_SERIES if rng.random() < 0.6 else VN_LETTERS)
            return province + series + pick(digits, 5)
        kind = rng.random()
        if kind < 0.4:  # truck / trailer square plate: 12C over 345.67
            return province + pick(VN_TRUCK_SERIES) + pick(digits, 5)
        if kind < 0.8:  # motorbike-style: 59-C2 over 118.94 (or 1234)
            return province + pick(VN_LETTERS) + pick("123456789") + pick(digits, int(rng.choice([4, 5])))
        return province + pick(VN_LETTERS, 2) + pick(digits, 5)
    if region == "cn":
        head = pick(CN_PROVINCES) + pick(CN_LETTERS)
        if rng.random() < 0.2:
            return head + pick(digits, 4) + "挂"
        serial = list(pick(CN_LETTERS + digits * 3, 5))
        while sum(c.isalpha() for c in serial) > 2:  # GA 36: at most 2 letters in the serial
            serial[serial.index(next(c for c in serial if c.isalpha()))] = pick(digits)
        return head + "".join(serial)
    raise ValueError(f"no synthetic plates for region {region!r}")


def plate_lines(text: str, region: str, rows: int) -> list[str]:
    """The printed lines of a plate: `["51C-345.67"]`, `["12C", "345.67"]`, `["桂F", "A1234"]`."""
    if region == "cn":
        return [f"{text[:2]}·{text[2:]}"] if rows == 1 else [text[:2], text[2:]]
    n = 5 if len(text) >= 8 else 4
    head, num = text[:-n], text[-n:]
    num = f"{num[:3]}.{num[3:]}" if n == 5 else num
    if rows == 1:
        return [f"{head}-{num}"]
    top = f"{head[:2]}-{head[2:]}" if len(head) > 3 else head
    return [top, num]


def render_plate(text: str, region: str, rows: int, colour: str) -> np.ndarray:
    """A clean, front-on BGR plate image (about 100 px of text height per row)."""
    bg, fg = PLATE_STYLES[(region, colour)]
    if region == "vn":
        w, h = (1040, 220) if rows == 1 else (560, 400)
    else:
        w, h = (880, 280) if rows == 1 else (880, 440)
    plate = Image.new("RGB", (w, h), bg[::-1])
    draw = ImageDraw.Draw(plate)
    draw.rounded_rectangle((6, 6, w - 7, h - 7), radius=18, outline=fg[::-1], width=8)
    lines = plate_lines(text, region, rows)
    row_h = (h - 40) / len(lines)
    for i, line in enumerate(lines):
        size = int(row_h * (0.62 if region == "cn" and rows == 2 and i == 0 else 0.8))
        font = _font(size, cjk=region == "cn")
        x0, y0, x1, y1 = draw.textbbox((0, 0), line, font=font)
        scale_x = min(1.0, (w - 60) / (x1 - x0))
        layer = Image.new("RGBA", (x1 - x0 + 4, y1 - y0 + 4), (0, 0, 0, 0))
        ImageDraw.Draw(layer).text((2 - x0, 2 - y0), line, font=font, fill=fg[::-1])
        layer = layer.resize((max(1, int(layer.width * scale_x)), layer.height))
        cy = 20 + row_h * (i + 0.5)
        plate.paste(layer, (int((w - layer.width) / 2), int(cy - layer.height / 2)), layer)
    return cv2.cvtColor(np.asarray(plate), cv2.COLOR_RGB2BGR)


def _degrade(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Blur, sensor noise, JPEG-like softness and sometimes night/IR-like contrast."""
    out = image.astype(np.float32)
    if rng.random() < 0.25:  # night / IR: grey, dark, harsh contrast
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
        grey = np.clip((grey - 90) * rng.uniform(1.2, 1.8) + 60, 0, 255)
        out = np.repeat(grey[:, :, None], 3, axis=2)
    else:
        out = out * rng.uniform(0.6, 1.15) + rng.uniform(-25, 25)
    k = int(rng.choice([1, 3, 3, 5]))
    if k > 1:
        out = cv2.GaussianBlur(out, (k, k), 0)
    out += rng.normal(0, rng.uniform(2, 9), out.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def _perspective(width: int, height: int, rng: np.random.Generator, amount: float) -> np.ndarray:
    """Four destination corners of a plate seen slightly off-axis (tl, tr, br, bl)."""
    dx, dy = width * amount, height * amount
    corners = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
    jitter = rng.uniform(-1, 1, (4, 2)) * np.array([dx, dy], np.float32)
    angle = np.deg2rad(rng.uniform(-6, 6))
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], np.float32)
    return (corners + jitter - corners.mean(0)) @ rot.T


def _paste(scene: np.ndarray, plate: np.ndarray, quad: np.ndarray) -> None:
    """Warp `plate` onto `scene` (in place) at corners `quad`."""
    h, w = plate.shape[:2]
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    m = cv2.getPerspectiveTransform(src, quad.astype(np.float32))
    size = (scene.shape[1], scene.shape[0])
    warped = cv2.warpPerspective(plate, m, size, flags=cv2.INTER_AREA)
    mask = cv2.warpPerspective(np.full((h, w), 255, np.uint8), m, size)
    scene[mask > 127] = warped[mask > 127]


def default_colour(text: str, region: str, rng: np.random.Generator) -> str:
    """A plausible plate colour: CN trailers yellow; VN trucks often yellow (commercial)."""
    if region == "cn":
        return "yellow" if text.endswith("挂") or rng.random() < 0.4 else "blue"
    return str(rng.choice(["white", "white", "yellow", "blue"]))


def render_crop(
    text: str, region: str, rows: int, seed: int, colour: str | None = None
) -> np.ndarray:
    """A degraded plate crop (plate plus a margin of surroundings) as a camera would cut it."""
    rng = np.random.default_rng(seed)
    plate = render_plate(text, region, rows, colour or default_colour(text, region, rng))
    ph, pw = plate.shape[:2]
    target_w = int(rng.uniform(90, 260))
    scale = target_w / pw
    pw, ph = target_w, int(ph * scale)
    margin = int(rng.uniform(0.06, 0.2) * pw)
    canvas = np.empty((ph + 2 * margin, pw + 2 * margin, 3), np.uint8)
    canvas[:] = rng.integers(20, 120, 3)
    quad = _perspective(pw, ph, rng, 0.04) + np.array([margin + pw / 2, margin + ph / 2])
    _paste(canvas, cv2.resize(plate, (pw, ph), interpolation=cv2.INTER_AREA), quad)
    return _degrade(canvas, rng)


def render_scene_with_box(
    text: str, region: str, rows: int, seed: int, size: tuple[int, int] = (1280, 720),
    colour: str | None = None,
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A truck rear/front at a gate with the plate on it, and the plate's pixel box."""
    rng = np.random.default_rng(seed)
    width, height = size
    scene = np.empty((height, width, 3), np.uint8)
    ground = height * rng.uniform(0.55, 0.7)
    rows_y = np.arange(height)[:, None, None]
    sky = np.array(rng.integers(120, 220, 3), np.float32)
    road = np.array(rng.integers(50, 110, 3), np.float32)
    scene[:] = np.where(rows_y < ground, sky, road).astype(np.uint8)
    tw, th = int(width * rng.uniform(0.45, 0.7)), int(height * rng.uniform(0.55, 0.8))
    tx = int(rng.uniform(0.05, 0.95 - tw / width) * width)
    ty = int(ground - th * 0.85)
    body = tuple(int(c) for c in rng.integers(30, 230, 3))
    cv2.rectangle(scene, (tx, ty), (tx + tw, ty + th), body, -1)
    cv2.rectangle(scene, (tx, ty), (tx + tw, ty + th), (30, 30, 30), 4)
    for k in range(1, 6):  # container doors / grille ribs
        x = tx + k * tw // 6
        cv2.line(scene, (x, ty), (x, ty + th), tuple(max(0, c - 40) for c in body), 3)
    bumper_y = ty + int(th * 0.78)
    cv2.rectangle(scene, (tx - 10, bumper_y), (tx + tw + 10, bumper_y + th // 10), (25, 25, 25), -1)
    plate = render_plate(text, region, rows, colour or default_colour(text, region, rng))
    ph, pw = plate.shape[:2]
    target_w = rng.uniform(0.09, 0.22) * width * (0.8 if rows == 2 else 1.0)
    pw, ph = int(target_w), int(target_w * ph / pw)
    centre = np.array([tx + tw * rng.uniform(0.3, 0.7), bumper_y - ph * 0.2], np.float32)
    quad = _perspective(pw, ph, rng, 0.06) + centre
    _paste(scene, cv2.resize(plate, (pw, ph), interpolation=cv2.INTER_AREA), quad)
    x1, y1 = np.floor(quad.min(0)).astype(int)
    x2, y2 = np.ceil(quad.max(0)).astype(int)
    box = (max(0, int(x1)), max(0, int(y1)), min(width - 1, int(x2)), min(height - 1, int(y2)))
    return _degrade(scene, rng), box


def render_scene(
    text: str, region: str, rows: int, seed: int, size: tuple[int, int] = (1280, 720)
) -> np.ndarray:
    """A BGR truck scene of `size` (width, height) showing plate `text` (normalized form)."""
    return render_scene_with_box(text, region, rows, seed, size)[0]


def write_dataset(
    folder: Path, region: str, count: int, seed: int, scenes: bool = False
) -> Path:
    """Write `count` labeled synthetic plates (half 1-row, half 2-row) in the eval format."""
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    lines = ["file,text,region,rows,x1,y1,x2,y2"]
    for i in range(count):
        rows = 1 + i % 2
        text = random_plate_text(region, rows, rng)
        item_seed = int(rng.integers(1 << 31))
        name = f"synth_{region}_{i:04d}.png"
        if scenes:
            image, box = render_scene_with_box(text, region, rows, item_seed)
            lines.append(f"{name},{text},{region},{rows},{','.join(map(str, box))}")
        else:
            image = render_crop(text, region, rows, item_seed)
            lines.append(f"{name},{text},{region},{rows},,,,")
        cv2.imwrite(str(images / name), image)
    (folder / "labels.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


SIGNS = ("HUU NGHI BORDER GATE", "LANE {lane}", "SLOW 5 km/h", "STOP AT BARRIER",
         "CUSTOMS INSPECTION", "NO PARKING", "WEIGH STATION 500 m", "TOLL 35000 VND")
LIVERIES = ("VINATRANS LOGISTICS", "HOTLINE 0912 345 678", "TAI TRONG 15000 KG",
            "DONG A EXPRESS", "COLD CHAIN -18 C", "SAO VIET CARGO", "GUANGXI FREIGHT 0771")


def _vehicle(scene: np.ndarray, box: tuple[int, int, int, int], rng: np.random.Generator,
             livery: str | None) -> np.ndarray:
    """A boxy vehicle (van, car, truck cab) with windows, wheels and maybe a livery line."""
    x1, y1, x2, y2 = box
    b, g, r = (int(c) for c in rng.integers(40, 230, 3))
    body = (b, g, r)
    cv2.rectangle(scene, (x1, y1), (x2, y2), body, -1)
    cv2.rectangle(scene, (x1, y1), (x2, y2), (25, 25, 25), 3)
    h, w = y2 - y1, x2 - x1
    cv2.rectangle(scene, (x1 + w // 10, y1 + h // 10), (x2 - w // 10, y1 + h // 3), (70, 60, 50),
                  -1)  # windscreen
    for x in (x1 + w // 5, x2 - w // 5):
        cv2.circle(scene, (x, y2), max(6, h // 8), (20, 20, 20), -1)
    if livery:
        size = max(12, h // 9)
        scene = draw_text(scene, livery, (x1 + w // 12, y1 + h // 2), size,
                          (255 - b, 255 - g, 255 - r))
    return scene


def render_gate_scene(
    text: str, region: str, rows: int, seed: int, size: tuple[int, int] = (1920, 1080),
    lane: int = 1,
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A whole gate camera frame (default 1080p, no ROI): a truck with plate `text` in the lane,
    other vehicles with livery text behind it, gate signs, and the camera's timestamp overlay;
    returns the scene and the plate's pixel box. Only the truck carries a plate."""
    rng = np.random.default_rng(seed)
    width, height = size
    scene, box = render_scene_with_box(text, region, rows, seed, size)
    for k in range(int(rng.integers(2, 4))):  # traffic in the next lanes, at the frame sides
        vw = int(width * rng.uniform(0.1, 0.16))
        vh = int(vw * rng.uniform(0.45, 0.7))
        vx = int(rng.uniform(0, 0.05) * width) if k % 2 == 0 else \
            int(width * rng.uniform(0.95, 1.0)) - vw
        vy = int(height * rng.uniform(0.3, 0.5))
        if vx < box[2] + 40 and vx + vw > box[0] - 40 and vy + vh > box[1] - 40:
            continue  # never over the plate
        scene = _vehicle(scene, (vx, vy, vx + vw, vy + vh), rng,
                         LIVERIES[(seed + k) % len(LIVERIES)])
    for k in range(2):  # gantry signs, white on green or blue, along the top
        sw, sh = int(width * 0.27), int(height * 0.07)
        sx = int(width * (0.05 + 0.5 * k + rng.uniform(0, 0.15)))
        sy = int(height * 0.04)
        colour = (60, 120, 20) if k == 0 else (140, 70, 20)
        cv2.rectangle(scene, (sx, sy), (sx + sw, sy + sh), colour, -1)
        sign = SIGNS[(seed + 3 * k) % len(SIGNS)].format(lane=lane)
        scene = draw_text(scene, sign, (sx + sw // 14, sy + sh // 5), sh // 2, (240, 240, 240))
    stamp = f"2026-12-03 09:{seed % 60:02d}:{(seed * 7) % 60:02d}  CAM {lane}"
    scene = draw_text(scene, stamp, (width // 60, height - height // 22), height // 40,
                      (250, 250, 250))
    return scene, box
