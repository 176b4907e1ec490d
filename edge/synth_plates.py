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
