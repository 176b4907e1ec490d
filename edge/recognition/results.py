"""Results of the recognition stage: plain frozen data that assembly and runtime pass on.

No reader code here, so the pure passage assembly can use these types without loading OpenCV
or ONNX Runtime.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Box = tuple[int, int, int, int]  # x1, y1, x2, y2 in pixels


@dataclass(frozen=True)
class PlateResult:
    """One plate read in a frame or crop."""

    text: str
    display_text: str
    confidence: float
    region: str = "unknown"
    rows: int = 1
    colour: str = "unknown"
    box: Box | None = None
    candidates: tuple[tuple[str, float], ...] = field(default_factory=tuple)
    quad: tuple[tuple[float, float], ...] | None = None  # plate corners tl, tr, br, bl


@dataclass(frozen=True)
class ContainerCodeResult:
    """One container code read in a frame or crop."""

    code: str
    check_digit_ok: bool
    confidence: float
    size_type: str | None
    box: Box | None
    orientation: str  # "horizontal" | "vertical"
    candidates: tuple[tuple[str, float], ...]
