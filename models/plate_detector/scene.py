"""Seeded renderer of whole scenes with licence plates: the plate detector's training data.

Plates come from the recognizer's renderer (`models.plate_recognizer.render`: every VN and CN
layout, plus generic Latin plates drawn with its `Design`), put on vehicle-like bodies or loose
in a procedural street scene: sky/ground gradients, buildings, poles, lane lines, vehicles with
windows and wheels, and text that is not a plate (shop signs, vehicle livery, container codes,
timestamps), then through a camera (light, blur, noise, JPEG). `render_scene` returns the image
and each plate's four corners, clockwise from top-left, in image pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from models.plate_recognizer import render

PLATE_WIDTH = (12.0, 300.0)  # plate width in scene pixels (log-uniform)
LATIN = render.DIGITS + render.LATIN
SCENE_SENSOR = render.Sensor(p_blur=0.35, kernel_max=5, sigma=(0.3, 1.2), noise_max=12,
                             p_jpeg=0.6, quality_min=25)
CJK = render.CN_PROVINCES + "中国交通银行物流公司欢迎光临出入口停车场收费站限速"


@dataclass(frozen=True)
class Scene:
    """One rendered scene and the corners (N x 4 x 2, float32) of its plates."""

    image: np.ndarray  # H x W x 3 BGR uint8
    corners: np.ndarray


def _colour(rng: np.random.Generator, lo: float = 0, hi: float = 255) -> tuple[float, ...]:
    return tuple(float(v) for v in rng.uniform(lo, hi, 3))


def _texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Low-frequency noise (float32, H x W x 3, about zero mean)."""
    cell = int(rng.integers(4, 40))
    small = rng.normal(0, rng.uniform(4, 30), (max(2, h // cell), max(2, w // cell), 3))
    return cv2.resize(small.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)


def _backdrop(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Sky / wall over ground, with texture, buildings, poles and lane lines (float32)."""
    img = np.empty((h, w, 3), np.float32)
    horizon = int(h * rng.uniform(0.1, 0.7))
    top, bottom = np.array(_colour(rng, 30, 250)), np.array(_colour(rng, 20, 200))
    img[:horizon] = top
    img[horizon:] = bottom
    img += _texture(rng, h, w)
    for _ in range(int(rng.integers(0, 6))):  # buildings, walls, booths
        x1, x2 = sorted(rng.integers(0, w, 2).tolist())
        y1 = int(rng.integers(0, max(1, horizon)))
        cv2.rectangle(img, (x1, y1), (x2, horizon + int(rng.integers(0, h // 4 + 1))),
                      _colour(rng), -1)
        if rng.random() < 0.5:  # windows
            step = int(rng.integers(6, 30))
            wc = _colour(rng)
            for y in range(y1 + 3, horizon - step, step):
                for x in range(x1 + 3, x2 - step, step):
                    cv2.rectangle(img, (x, y), (x + step // 2, y + step // 2), wc, -1)
    for _ in range(int(rng.integers(0, 5))):  # poles, barriers, lane lines
        p1 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        p2 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        cv2.line(img, p1, p2, _colour(rng), int(rng.integers(1, 8)))
    return img


def _random_text(rng: np.random.Generator, n: int) -> str:
    if rng.random() < 0.25:
        return "".join(CJK[i] for i in rng.integers(0, len(CJK), n))
    return "".join(LATIN[i] for i in rng.integers(0, len(LATIN), n))


def _sign(rng: np.random.Generator) -> np.ndarray:
    """A board with text that is not a plate: long signs, several rows, livery, codes."""
    kind = rng.random()
    if kind < 0.4:  # long one-row sign or livery
        n = int(rng.integers(8, 20))
        size = (int(n * rng.uniform(40, 70)), int(rng.uniform(80, 160)))
        rows = ((_random_text(rng, n), 0.03, 0.15, 0.97, 0.85, 0.5),)
    elif kind < 0.75:  # several rows (shop sign, notice, container code block)
        k = int(rng.integers(3, 6))
        size = (int(rng.uniform(300, 900)), int(k * rng.uniform(60, 110)))
        rows = tuple((_random_text(rng, int(rng.integers(4, 14))), 0.05, i / k + 0.02,
                      0.95, (i + 1) / k - 0.02, 0.5) for i in range(k))
    else:  # a short word: plate-sized text without a plate
        n = int(rng.integers(2, 6))
        size = (int(n * rng.uniform(60, 110)), int(rng.uniform(100, 180)))
        rows = ((_random_text(rng, n), 0.05, 0.1, 0.95, 0.9, 0.55),)
    bg, ink = _colour(rng), _colour(rng)
    design = render.Design(size, bg, ink, rows, border=bool(kind < 0.75 and rng.random() < 0.3))
    return render.draw_design(design, rng, px_per_mm=0.5)


def _latin_plate(rng: np.random.Generator) -> np.ndarray:
    """A generic Latin plate (US / EU / other): one main row, sometimes a small caption row."""
    text = "".join(LATIN[i] for i in rng.integers(0, len(LATIN), int(rng.integers(5, 9))))
    if rng.random() < 0.5:  # US-style: 2:1 with a state name above
        state = "".join(render.LATIN[i] for i in rng.integers(0, 26, int(rng.integers(4, 11))))
        size = (305, 152)
        rows: tuple = ((text, 0.06, 0.3, 0.94, 0.82, 0.5), (state, 0.25, 0.06, 0.75, 0.24, 0.5))
    else:  # EU-style: long 1-row
        size, rows = (520, 110), ((text, 0.1, 0.12, 0.96, 0.88, 0.5),)
    bg = _colour(rng, 150, 255) if rng.random() < 0.8 else _colour(rng)
    ink = _colour(rng, 0, 90) if np.mean(bg) > 120 else _colour(rng, 180, 255)
    return render.draw_design(render.Design(size, bg, ink, rows), rng, px_per_mm=0.6)


def _plate(rng: np.random.Generator) -> np.ndarray:
    """A plate image (BGR uint8) at its natural aspect: VN, CN or generic Latin."""
    if rng.random() < 0.3:
        return _latin_plate(rng)
    names = list(render.LAYOUT_WEIGHTS)
    p = np.array([render.LAYOUT_WEIGHTS[n] for n in names])
    layout = names[int(rng.choice(len(names), p=p / p.sum()))]
    if layout in render.VN_LAYOUTS:
        design, _, _ = render.vn_plate(rng, layout)
    else:
        design, _, _ = render.cn_plate(rng, layout)
    return render.draw_design(design, rng, px_per_mm=0.6)


def _warp_into(img: np.ndarray, patch: np.ndarray, dst: np.ndarray) -> None:
    """Paste `patch` into the float image so its corners land on `dst` (4 x 2)."""
    h, w = img.shape[:2]
    x1, y1 = np.floor(dst.min(axis=0)).astype(int).clip(0, (w, h))
    x2, y2 = np.ceil(dst.max(axis=0)).astype(int).clip(0, (w, h)) + 1
    x2, y2 = min(x2, w), min(y2, h)
    if x2 <= x1 or y2 <= y1:
        return
    ph, pw = patch.shape[:2]
    src = np.array([[0, 0], [pw, 0], [pw, ph], [0, ph]], np.float32)
    m = cv2.getPerspectiveTransform(src, (dst - np.array([x1, y1])).astype(np.float32))
    size = (int(x2 - x1), int(y2 - y1))
    warped = cv2.warpPerspective(patch, m, size, flags=cv2.INTER_AREA).astype(np.float32)
    mask = cv2.warpPerspective(np.ones((ph, pw), np.float32), m, size, flags=cv2.INTER_AREA)
    region = img[y1:y2, x1:x2]
    region *= 1 - mask[..., None]
    region += warped * mask[..., None]


def _quad(rng: np.random.Generator, cx: float, cy: float, w: float, h: float,
          tilt: float) -> np.ndarray:
    """Corners of a w x h rectangle at (cx, cy), rotated and perspective-jittered."""
    pts = np.array([[-w, -h], [w, -h], [w, h], [-w, h]], np.float32) / 2
    a = np.deg2rad(rng.normal(0, tilt))
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]], np.float32)
    pts = pts @ rot.T
    if rng.random() < 0.6:  # perspective: one side nearer
        k = rng.uniform(-0.15, 0.15)
        pts[[0, 3], 1] *= 1 + k
        pts[[1, 2], 1] *= 1 - k
    pts += rng.normal(0, 0.02, (4, 2)).astype(np.float32) * np.array([w, h], np.float32)
    return pts + np.array([cx, cy], np.float32)


def _vehicle(img: np.ndarray, rng: np.random.Generator, cx: float, cy: float,
             plate_w: float, plate_h: float) -> None:
    """A vehicle-like body around a plate centred at (cx, cy): body, windscreen, lights,
    wheels, sometimes a grille and livery."""
    bw = plate_w * rng.uniform(3, 7)
    bh = bw * rng.uniform(0.5, 1.1)
    x1, y1 = int(cx - bw / 2), int(cy - bh * rng.uniform(0.6, 0.9))
    x2, y2 = int(cx + bw / 2), int(y1 + bh)
    body = _colour(rng)
    cv2.rectangle(img, (x1, y1), (x2, y2), body, -1)
    glass = _colour(rng, 0, 120)
    cv2.rectangle(img, (x1 + int(bw * 0.1), y1 + int(bh * 0.05)),
                  (x2 - int(bw * 0.1), y1 + int(bh * rng.uniform(0.25, 0.45))), glass, -1)
    lights = _colour(rng, 150, 255)
    r = max(1, int(plate_h * rng.uniform(0.4, 1.0)))
    for lx in (x1 + int(bw * 0.12), x2 - int(bw * 0.12)):
        cv2.circle(img, (lx, int(cy - plate_h)), r, lights, -1)
    if rng.random() < 0.5:  # grille: horizontal bars above the plate
        for k in range(int(rng.integers(2, 6))):
            y = int(cy - plate_h * (1.2 + 0.5 * k))
            cv2.line(img, (int(cx - plate_w), y), (int(cx + plate_w), y), _colour(rng, 0, 100),
                     max(1, int(plate_h * 0.15)))
    wr = max(2, int(bh * 0.15))
    for wx in (x1 + int(bw * 0.2), x2 - int(bw * 0.2)):
        cv2.circle(img, (wx, y2), wr, (20, 20, 20), -1)


def _camera(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Light, glare, blur, noise and JPEG over the whole scene (float32 in, uint8 out)."""
    if rng.random() < 0.15:  # night / IR: grey
        img = np.repeat(img.mean(axis=2, keepdims=True), 3, axis=2)
    img = img * rng.uniform(0.5, 1.3) + rng.uniform(-40, 40)
    if rng.random() < 0.3:
        img = 255 * (np.clip(img, 0, 255) / 255) ** rng.uniform(0.6, 1.6)
    if rng.random() < 0.2:  # glare
        h, w = img.shape[:2]
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.05, 0.4) * w
        img += rng.uniform(50, 160) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / r ** 2)[..., None]
    return render.sensor_degrade(img, rng, SCENE_SENSOR)


def render_scene(rng: np.random.Generator, height: int = 256, width: int = 256) -> Scene:
    """One scene of `height` x `width` with 0-3 plates (about one in eight has none)."""
    img = _backdrop(rng, height, width)
    lo, hi = np.log(PLATE_WIDTH[0]), np.log(min(PLATE_WIDTH[1], 0.9 * width))
    n_plates = int(rng.choice(4, p=[0.12, 0.6, 0.2, 0.08]))
    plates, placed = [], []
    for _ in range(n_plates):
        plate = _plate(rng)
        pw = float(np.exp(rng.uniform(lo, hi)))
        ph = pw * plate.shape[0] / plate.shape[1] * rng.uniform(0.85, 1.15)
        cx = rng.uniform(pw * 0.3, width - pw * 0.3)
        cy = rng.uniform(ph * 0.5, height - ph * 0.5)
        if any(abs(cx - x) < (pw + w) / 2 and abs(cy - y) < (ph + h) / 2 for x, y, w, h in placed):
            continue
        placed.append((cx, cy, pw, ph))
        plates.append((plate, cx, cy, pw, ph))
    for _, cx, cy, pw, ph in plates:  # bodies first, so plates sit on top
        if rng.random() < 0.7:
            _vehicle(img, rng, cx, cy, pw, ph)
    for _ in range(int(rng.integers(0, 5))):  # text that is not a plate
        sign = _sign(rng)
        sw = float(np.exp(rng.uniform(np.log(20), np.log(width * 0.9))))
        sh = sw * sign.shape[0] / sign.shape[1]
        sx, sy = rng.uniform(0, width), rng.uniform(0, height)
        if any(abs(sx - x) < (sw + w) / 2 and abs(sy - y) < (sh + h) / 2 for x, y, w, h in placed):
            continue
        _warp_into(img, sign, _quad(rng, sx, sy, sw, sh, 3))
    corners = []
    for plate, cx, cy, pw, ph in plates:
        quad = _quad(rng, cx, cy, pw, ph, 4)
        _warp_into(img, plate, quad)
        corners.append(quad)
    image = _camera(img, rng)
    if rng.random() < 0.3:  # a timestamp along the top or bottom border
        text = "".join(render.DIGITS[i] for i in rng.integers(0, 10, 14))
        cv2.putText(image, f"{text[:4]}-{text[4:6]}-{text[6:8]} {text[8:10]}:{text[10:12]}",
                    (int(rng.integers(0, width // 3)),
                     int(rng.choice([14, height - 6]))), cv2.FONT_HERSHEY_SIMPLEX,
                    rng.uniform(0.3, 0.6), _colour(rng, 180, 255), 1)
    if rng.random() < 0.1:  # letterbox band, as an inference input padded to the grid
        band = int(rng.integers(4, height // 4))
        image[height - band:] = 0
        corners = [c for c in corners if c[:, 1].max() < height - band]
    return Scene(image, np.array(corners, np.float32).reshape(-1, 4, 2))
