"""Frame policy: which camera frames of a lane are worth inferring (pure: no clock, no I/O).

A 1080p frame costs the plate reader far more than a camera's frame period, so a lane reads a
camera only while it can still add something to the passage:

* no passage open: a gated lane (weighbridge, virtual loop, external trigger) reads nothing,
  the trigger opens the passage; a `plate` trigger lane reads every frame, or samples each
  camera at `idle_fps`;
* passage open: every frame (the node keeps only the newest one per camera waiting) until the
  camera's plate role is settled: one of its cameras read a grammar-valid text that
  `settle_reads` frames of the passage read the same (agreement between frames, never one
  frame's confidence; frames of the front and the rear cameras agree on a rigid truck, a
  semi-trailer's rear cameras must agree among themselves); a settled camera is then sampled
  at `settled_fps` (0: not at all) until trigger off;
* container cameras are never settled by plates; `plate` trigger lanes never settle (their
  passage ends on frames without a plate, so every camera keeps being read).

Rates are counted in camera frames (`fps` per camera), so a file replayed faster than real
time is sampled the same. `rank` orders waiting frames for the scheduler: passages with fewer
reads (frames in inference counted as reads) first, and within a passage the role with fewer
reads, so the second frame of a passage comes from the other role's cameras.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from edge.assembly.passage import PLATE_ROLES
from edge.config import FramePolicyConfig
from edge.recognition.results import PlateResult


class FrameGate:
    """One lane's frame policy over its cameras: `roles` and `fps` map each camera key to its
    role and sampled frames per second; `settles=False` for lanes that must see every frame."""

    def __init__(self, cfg: FramePolicyConfig, roles: Mapping[str, str],
                 fps: Mapping[str, float], settles: bool = True) -> None:
        self.cfg = cfg
        self.roles, self.fps = dict(roles), dict(fps)
        self.settles = settles and cfg.settle_reads > 0
        self._last: dict[str, int] = {}  # camera -> index of its last frame let through
        self._texts: Counter[str] = Counter()  # text -> frames of the passage that read it
        self._read_by: dict[str, set[str]] = {}  # role -> texts its cameras read
        self._reads: Counter[str] = Counter()  # role -> frames of it that read a plate
        self._settled: set[str] = set()  # roles

    def reset(self) -> None:
        """A new passage: nothing read, nothing settled."""
        self._texts.clear()
        self._read_by.clear()
        self._reads.clear()
        self._settled.clear()

    def settled(self, camera: str) -> bool:
        """Whether the camera's role is settled in the open passage."""
        return self.roles[camera] in self._settled

    def want(self, camera: str, index: int, passage_open: bool, gated: bool) -> bool:
        """Whether frame `index` of `camera` goes to inference; a frame let through counts for
        the camera's sampling rate."""
        if not passage_open:
            if gated:
                return False
            rate = self.cfg.idle_fps
        elif self.settled(camera):
            rate = self.cfg.settled_fps
        else:
            rate = None
        if rate is not None:
            if rate <= 0:
                return False
            period = max(1, round(self.fps[camera] / rate))
            last = self._last.get(camera)
            if last is not None and index - last < period:
                return False
        self._last[camera] = index
        return True

    def observe(self, camera: str, plates: Sequence[PlateResult]) -> set[str]:
        """The reads of one inferred frame of `camera` (best first); returns the cameras whose
        role this frame settled (their waiting frames are no longer needed)."""
        role = self.roles[camera]
        if role not in PLATE_ROLES or not plates or plates[0].region == "unknown":
            return set()
        text = plates[0].text
        if not text:
            return set()
        self._reads[role] += 1
        self._texts[text] += 1
        self._read_by.setdefault(role, set()).add(text)
        if not self.settles:
            return set()
        newly = {r for r, texts in self._read_by.items() if r not in self._settled
                 and any(self._texts[t] >= self.cfg.settle_reads for t in texts)}
        self._settled |= newly
        return {c for c, r in self.roles.items() if r in newly}

    def rank(self, camera: str, running: Mapping[str, int] | None = None) -> int:
        """Scheduling rank of the camera's frames in the open passage (lower first): the plate
        reads of the passage plus those of the camera's role (each at most 3), so a passage
        without a read goes first and its second frame comes from the other role. `running`
        (role -> the lane's frames in inference now) counts each such frame as the read it is
        likely to give, so parallel workers start other passages' first frames before a second
        frame of a passage whose first is still being read."""
        running = running or {}
        role = self.roles[camera]
        return (min(sum(self._reads.values()) + sum(running.values()), 3)
                + min(self._reads[role] + running.get(role, 0), 3))
