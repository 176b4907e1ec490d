"""Vehicle-presence triggers: inference runs only while a lane has a vehicle.

Three sources, one meaning (`present` on/off at a time):

* the weighbridge capture (hardware.weighbridge.capture events, mapped in `edge.app`);
* a virtual loop: frame difference against a slowly adapting background inside a zone of one
  camera (`loop_step`, pure over grey images);
* an external trigger on the lane's MQTT trigger topic (`parse_trigger_payload`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from edge.config import VirtualLoopTrigger

LOOP_WIDTH = 160  # zones are compared at this width: cheap, and insensitive to pixel noise


class TriggerError(ValueError):
    """A trigger payload that is neither on nor off."""


_ON = {"on", "1", "true", "present"}
_OFF = {"off", "0", "false", "absent"}


def parse_trigger_payload(payload: bytes) -> bool:
    """`on` → True, `off` → False (also 1/0, true/false); raises TriggerError otherwise."""
    try:
        text = payload.decode("ascii").strip().lower()
    except UnicodeDecodeError:
        raise TriggerError(f"trigger payload {payload[:32]!r} is not ASCII") from None
    if text in _ON:
        return True
    if text in _OFF:
        return False
    raise TriggerError(f"trigger payload {text[:32]!r} is neither on nor off")


@dataclass(frozen=True)
class LoopState:
    """Virtual loop state: background model and the runs of occupied / empty frames."""

    background: np.ndarray | None = None
    present: bool = False
    occupied_run: int = 0
    empty_run: int = 0


def zone_grey(image: np.ndarray, zone: tuple[int, int, int, int] | None) -> np.ndarray:
    """The zone of a BGR frame as a small blurred float32 grey image."""
    if zone is not None:
        x, y, w, h = zone
        image = image[y : y + h, x : x + w]
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    scale = LOOP_WIDTH / max(1, grey.shape[1])
    if scale < 1:
        grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(grey, (5, 5), 0).astype(np.float32)


def occupancy(background: np.ndarray, grey: np.ndarray, pixel_delta: int) -> float:
    """Fraction of zone pixels that differ from the background by more than `pixel_delta`."""
    return float(np.mean(np.abs(grey - background) > pixel_delta))


def loop_step(
    state: LoopState, grey: np.ndarray, config: VirtualLoopTrigger
) -> tuple[LoopState, bool | None]:
    """Advance the loop by one zone image; returns the new state and True/False on a switch.

    The first frame becomes the background (the lane must be empty at start); the background
    adapts only while the zone is empty, so a standing truck is not learned away.
    """
    if state.background is None or state.background.shape != grey.shape:
        return LoopState(background=grey.copy()), None
    occupied = occupancy(state.background, grey, config.pixel_delta) >= config.threshold
    occupied_run = state.occupied_run + 1 if occupied else 0
    empty_run = 0 if occupied else state.empty_run + 1
    background = state.background
    if not occupied and not state.present:
        background = cv2.addWeighted(background, 1 - config.learn_rate, grey, config.learn_rate, 0)
    new = replace(state, background=background, occupied_run=occupied_run, empty_run=empty_run)
    if not state.present and occupied_run >= config.on_frames:
        return replace(new, present=True), True
    if state.present and empty_run >= config.off_frames:
        return replace(new, present=False), False
    return new, None
