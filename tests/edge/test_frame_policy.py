"""Frame policy (edge.assembly.frame_policy): which camera frames of a lane are inferred."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from edge.assembly.frame_policy import FrameGate
from edge.config import FramePolicyConfig
from edge.recognition.results import PlateResult

ROLES = {"L1/f1": "front_plate", "L1/r1": "rear_plate", "L1/f2": "front_plate",
         "L1/r2": "rear_plate", "L1/box": "container_side"}
FPS = dict.fromkeys(ROLES, 5.0)


def read(text: str, region: str = "vn") -> list[PlateResult]:
    return [PlateResult(text, text, 0.99, region)]


def gate(**kw) -> FrameGate:  # type: ignore[no-untyped-def]
    return FrameGate(FramePolicyConfig(**kw), ROLES, FPS)


def taken(g: FrameGate, camera: str, frames: range, passage_open: bool = True,
          gated: bool = True) -> list[int]:
    return [i for i in frames if g.want(camera, i, passage_open, gated)]


def test_a_gated_lane_reads_nothing_between_passages_and_everything_of_an_open_one() -> None:
    g = gate()
    assert taken(g, "L1/f1", range(10), passage_open=False) == []
    assert taken(g, "L1/f1", range(10, 15)) == [10, 11, 12, 13, 14]


def test_a_plate_trigger_lane_samples_idle_cameras_at_idle_fps() -> None:
    assert taken(gate(), "L1/f1", range(7), passage_open=False, gated=False) == list(range(7))
    g = gate(idle_fps=1.0)  # every 5th frame of a 5 fps camera
    assert taken(g, "L1/f1", range(12), passage_open=False, gated=False) == [0, 5, 10]
    assert taken(g, "L1/f1", range(12, 15), gated=False) == [12, 13, 14]  # passage open: all


def test_two_frames_agreeing_settle_both_roles_and_only_then() -> None:
    g = gate()
    assert g.observe("L1/f1", read("29C12345")) == set()  # one frame is not enough
    assert not g.settled("L1/f2")
    assert g.observe("L1/r1", read("29C12346")) == set()  # disagrees: nothing settled
    assert g.observe("L1/r2", read("29C12345")) == {"L1/f1", "L1/f2", "L1/r1", "L1/r2"}
    assert taken(g, "L1/f2", range(20, 30)) == []  # settled_fps 0: not read until trigger off
    assert taken(g, "L1/box", range(20, 23)) == [20, 21, 22]  # containers: never settled
    g.reset()  # the next passage
    assert taken(g, "L1/f2", range(30, 32)) == [30, 31]


def test_a_semi_trailer_rear_settles_on_its_own_plate() -> None:
    g = gate()
    g.observe("L1/f1", read("29C12345"))
    assert g.observe("L1/r1", read("29R01234")) == set()
    assert g.observe("L1/f2", read("29C12345")) == {"L1/f1", "L1/f2"}  # front only
    assert g.observe("L1/r2", read("29R01234")) == {"L1/r1", "L1/r2"}


def test_reads_outside_every_grammar_never_settle_and_settled_cameras_sample_slowly() -> None:
    g = gate(settled_fps=2.5)
    g.observe("L1/f1", read("HELLO", region="unknown"))
    g.observe("L1/f2", read("HELLO", region="unknown"))
    assert not g.settled("L1/f1")
    g.observe("L1/f1", read("51D67890"))
    g.observe("L1/f2", read("51D67890"))
    assert taken(g, "L1/f1", range(40, 46)) == [40, 42, 44]  # every 2nd frame at 2.5 of 5 fps
    assert taken(g, "L1/r1", range(40, 43)) == [40, 41, 42]  # the rear has not read a plate


def test_settling_off_and_on_plate_trigger_lanes_infers_every_frame() -> None:
    for g in (gate(settle_reads=0), FrameGate(FramePolicyConfig(), ROLES, FPS, settles=False)):
        g.observe("L1/f1", read("29C12345"))
        assert g.observe("L1/f2", read("29C12345")) == set()
        assert taken(g, "L1/f1", range(3)) == [0, 1, 2]


def test_rank_puts_passages_and_then_roles_with_fewer_reads_first() -> None:
    g, other = gate(settle_reads=3), gate(settle_reads=3)
    assert g.rank("L1/r1") == other.rank("L1/r1") == 0
    g.observe("L1/f1", read("29C12345"))
    assert other.rank("L1/f1") < g.rank("L1/r1") < g.rank("L1/f2")


def test_frame_policy_settings_are_validated() -> None:
    with pytest.raises(ValidationError):
        FramePolicyConfig(settled_fps=-1)
    with pytest.raises(ValidationError):
        FramePolicyConfig(idle_fps=0)
    with pytest.raises(ValidationError):
        FramePolicyConfig(settle_reads=2, sample=1)  # type: ignore[call-arg]


class Host:
    """The node as a lane sees it: records submitted frames and emitted passages."""

    site, node_id = "huunghi", "edge-1"

    def __init__(self) -> None:
        self.jobs: list = []
        self.events: list = []

    def submit_frame(self, job) -> None:  # type: ignore[no-untyped-def]
        self.jobs.append(job)

    def cancel_frames(self, which) -> None:  # type: ignore[no-untyped-def]
        for job in [j for j in self.jobs if which(j)]:
            self.jobs.remove(job)
            job.dropped()

    def save_image(self, image) -> str:  # type: ignore[no-untyped-def]
        return "img"

    def count_plate_reads(self, n: int) -> None:
        """Not counted here."""

    def record_weight(self, lane, weight) -> None:  # type: ignore[no-untyped-def]
        """No scale here."""

    def set_lane_state(self, lane, state) -> None:  # type: ignore[no-untyped-def]
        lane.state = state

    def run_command_work(self, work) -> None:  # type: ignore[no-untyped-def]
        work()

    def emit(self, lane, event) -> None:  # type: ignore[no-untyped-def]
        self.events.append(event)


def test_a_lane_stops_submitting_a_camera_once_front_and_rear_agree() -> None:
    import numpy as np

    from edge.config import LaneConfig
    from edge.runtime.lane import LaneRuntime
    from edge.runtime.sources import Frame

    cfg = LaneConfig.model_validate({
        "lane": "L1", "trigger": {"type": "mqtt"}, "passage": {"merge_window_s": 0},
        "cameras": [{"name": n, "role": r, "source": "sim"} for n, r in
                    (("f1", "front_plate"), ("r1", "rear_plate"), ("f2", "front_plate"))]})
    host = Host()
    lane = LaneRuntime(host, cfg)
    image = np.zeros((8, 8, 3), np.uint8)

    def offer(camera: str, index: int) -> list:
        before = len(host.jobs)
        lane.on_frame(Frame(f"L1/{camera}", index, 100.0 + index / 5, image))
        return host.jobs[before:]

    assert offer("f1", 0) == []  # no truck: nothing read
    lane.set_presence(True, 100.2)
    (front,) = offer("f1", 1)
    (rear,) = offer("r1", 1)
    (other,) = offer("f2", 1)
    assert front.group == other.group != rear.group  # one frame per role and batch
    host.jobs.clear()
    front.done(read("29C12345"))
    assert rear.rank() < other.rank()  # the rear (no read yet) goes first
    rear.done(read("29C12345"))  # agreement: both roles settled
    assert offer("f1", 2) == offer("r1", 2) == offer("f2", 2) == []
    other.done([])
    lane.set_presence(False, 101.0)
    (event,) = host.events
    assert event.plate_front.text == event.plate_rear.text == "29C12345"
    lane.set_presence(True, 105.0)  # the next truck is read again
    assert len(offer("f1", 30)) == 1


def test_frames_in_inference_rank_like_the_reads_they_will_give() -> None:
    g, idle = gate(settle_reads=3), gate(settle_reads=3)
    running = {"front_plate": 1, "rear_plate": 0}
    # a passage with its first frame in inference waits behind one with nothing read or running
    assert idle.rank("L1/r1") < g.rank("L1/r1", running) < g.rank("L1/f2", running)
    assert g.rank("L1/r1", {"front_plate": 0, "rear_plate": 0}) == g.rank("L1/r1") == 0


def test_a_lane_ranks_its_frames_after_others_while_one_is_in_inference() -> None:
    import numpy as np

    from edge.config import LaneConfig
    from edge.runtime.lane import LaneRuntime
    from edge.runtime.sources import Frame

    cfg = LaneConfig.model_validate({
        "lane": "L1", "trigger": {"type": "mqtt"}, "passage": {"merge_window_s": 0},
        "cameras": [{"name": n, "role": r, "source": "sim"} for n, r in
                    (("f1", "front_plate"), ("r1", "rear_plate"))]})
    host = Host()
    lane = LaneRuntime(host, cfg)
    image = np.zeros((8, 8, 3), np.uint8)
    lane.set_presence(True, 100.0)
    lane.on_frame(Frame("L1/f1", 1, 100.2, image))
    lane.on_frame(Frame("L1/r1", 1, 100.2, image))
    front, rear = host.jobs
    assert rear.rank() == 0
    front.started()  # a worker took the front frame
    assert rear.rank() == 1  # like a passage with one read: other lanes' first frames first
    lane.set_presence(False, 101.0)  # closing without a read, but a frame is being read
    assert rear.rank() == 1
    front.done([])  # no plate in it: the rear frame is now the closing passage's last hope
    assert rear.rank() == -1
    rear.started()
    rear.dropped()  # a failed batch: out of inference, and the passage closes
    assert lane.running["rear_plate"] == 0 and lane.inflight == 0
    assert lane.closing_at is None and lane.generation == 1
