"""Batched inference scheduler: dynamic batching, deadline, routing, drops, ranks."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from edge.runtime.scheduler import BatchScheduler, Job


class Recorder:
    """A runner that records batch sizes and returns each image's first pixel."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.batches: list[list[int]] = []
        self.at: list[float] = []
        self.delay_s = delay_s

    def __call__(self, images):  # type: ignore[no-untyped-def]
        self.at.append(time.monotonic())
        self.batches.append([int(im[0, 0]) for im in images])
        time.sleep(self.delay_s)
        return [int(im[0, 0]) for im in images]


def _img(v: int, shape: tuple[int, int] = (4, 4)) -> np.ndarray:
    return np.full(shape, v, np.uint8)


def test_lone_job_waits_for_company_then_runs_alone() -> None:
    runner = Recorder()
    sched = BatchScheduler({"plates": runner}, max_batch=8, max_delay_s=0.15).start()
    done = threading.Event()
    submitted = time.monotonic()
    sched.submit(Job("L1/a", "plates", _img(1), done=lambda r: done.set()))
    assert done.wait(30)  # a bound against hanging: how long it took is not asserted
    sched.stop()
    assert runner.at[0] - submitted >= 0.15 - 0.01  # never before its deadline (load only delays)
    assert runner.batches == [[1]]


def test_full_batch_runs_before_the_deadline_and_results_reach_their_lane() -> None:
    runner = Recorder()
    # the deadline is an hour: only a full batch can run within the test
    sched = BatchScheduler({"plates": runner}, max_batch=4, max_delay_s=3600.0, queue_size=4)
    got: dict[str, list[int]] = {"L1": [], "L2": []}
    all_done = threading.Event()

    def route(lane: str):  # type: ignore[no-untyped-def]
        def done(result: int) -> None:
            got[lane].append(result)
            if sum(map(len, got.values())) == 4:
                all_done.set()
        return done

    for v, (lane, cam) in enumerate([("L1", "a"), ("L2", "a"), ("L1", "b"), ("L2", "b")]):
        sched.submit(Job(f"{lane}/{cam}", "plates", _img(10 * (lane == "L2") + v),
                         done=route(lane)))
    sched.start()
    assert all_done.wait(30)  # did not wait for the deadline
    sched.stop()
    assert len(runner.batches) == 1 and len(runner.batches[0]) == 4
    assert sorted(got["L1"]) == [0, 2] and sorted(got["L2"]) == [11, 13]


def test_full_queue_drops_oldest_and_shapes_batch_separately() -> None:
    runner = Recorder()
    sched = BatchScheduler({"plates": runner}, max_batch=8, max_delay_s=0.05, queue_size=2)
    dropped: list[int] = []
    done: list[int] = []
    for v in range(4):
        sched.submit(Job("L1/a", "plates", _img(v), done=done.append,
                         dropped=lambda v=v: dropped.append(v)))
    sched.submit(Job("L1/b", "plates", _img(9, (8, 8)), done=done.append))
    sched.start()
    deadline = time.monotonic() + 30
    while len(done) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    sched.stop()
    assert dropped == [0, 1]
    assert sorted(done) == [2, 3, 9]
    assert sorted(map(sorted, runner.batches)) == [[2, 3], [9]]
    assert sched.stats.dropped == 2


def test_rank_orders_cameras_and_failures_drop_jobs() -> None:
    runner = Recorder()
    sched = BatchScheduler({"plates": runner}, max_batch=1, max_delay_s=0.0, queue_size=1)
    for v, rank in ((1, 3), (2, -1), (3, 0)):
        sched.submit(Job(f"L{v}/a", "plates", _img(v), done=lambda r: None,
                         rank=lambda rank=rank: rank))
    sched.start()
    deadline = time.monotonic() + 30
    while len(runner.batches) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    sched.stop()
    assert runner.batches == [[2], [3], [1]]

    def broken(images):  # type: ignore[no-untyped-def]
        raise RuntimeError("model crashed")

    failing = BatchScheduler({"plates": broken}, max_batch=2, max_delay_s=0.0).start()
    lost = threading.Event()
    failing.submit(Job("L1/a", "plates", _img(1), done=lambda r: None, dropped=lost.set))
    assert lost.wait(30)
    failing.stop()
    assert failing.stats.failed == 1


def test_bench_splits_worker_time_into_onnx_and_the_rest() -> None:
    from collections import defaultdict

    from tools.bench.edge import RunResult, _TimedSession

    class Session:
        def run(self, outputs, feed):  # type: ignore[no-untyped-def]
            time.sleep(0.01)
            return [feed["x"]]

        def get_inputs(self) -> list[str]:
            return ["x"]

    clock: defaultdict[str, float] = defaultdict(float)
    timed = _TimedSession("det", Session(), clock)
    assert timed.run(None, {"x": 1}) == [1] and timed.get_inputs() == ["x"]
    result = RunResult(1.0, 2, 0, 0, 0, 0, 0, 1.0, busy_s=0.05, onnx_s=clock)
    assert 0.01 <= clock["det"] < 0.05
    assert result.ms_per_frame(clock["det"]) == 500 * clock["det"]
    assert abs(result.other_s - (0.05 - clock["det"])) < 1e-9


def test_a_batch_takes_one_job_of_a_group_and_fills_up_with_other_groups() -> None:
    runner = Recorder()
    sched = BatchScheduler({"plates": runner}, max_batch=3, max_delay_s=0.05, queue_size=1)
    for v, (cam, group) in enumerate([("f1", "L1/front"), ("f2", "L1/front"), ("r1", "L1/rear"),
                                      ("r2", "L1/rear"), ("x", None)]):
        sched.submit(Job(f"L1/{cam}", "plates", _img(v), done=lambda r: None, group=group))
    sched.start()
    deadline = time.monotonic() + 30
    while sum(map(len, runner.batches)) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    sched.stop()
    first = runner.batches[0]
    assert len(first) == 3 and {0, 1} & set(first) and {2, 3} & set(first) and 4 in first
    assert len({0, 1} & set(first)) == len({2, 3} & set(first)) == 1  # one camera per role
    assert sorted(v for b in runner.batches for v in b) == [0, 1, 2, 3, 4]


def test_max_pixels_keeps_large_frames_out_of_each_others_batch() -> None:
    sched = BatchScheduler({"plates": Recorder()}, max_batch=4, max_pixels=2_500_000)
    assert sched.batch_limit((1080, 1920, 3)) == 1
    assert sched.batch_limit((128, 640, 3)) == 4
    assert BatchScheduler({"plates": Recorder()}, max_batch=4).batch_limit((1080, 1920, 3)) == 4


def test_two_workers_infer_two_batches_at_once_and_say_when_they_take_a_job() -> None:
    runner = Recorder(delay_s=0.3)
    sched = BatchScheduler({"plates": runner}, max_batch=1, max_delay_s=0.0, queue_size=1,
                           workers=2)
    events: list[str] = []
    finished = threading.Semaphore(0)
    for v in (1, 2):
        sched.submit(Job(f"L{v}/a", "plates", _img(v),
                         started=lambda v=v: events.append(f"start {v}"),
                         done=lambda r: (events.append(f"done {r}"), finished.release())))
    sched.start()
    assert finished.acquire(timeout=30) and finished.acquire(timeout=30)
    sched.stop()
    assert sorted(map(sorted, runner.batches)) == [[1], [2]]
    # both started before either finished its 0.3 s: the batches ran side by side
    assert set(events[:2]) == {"start 1", "start 2"}
    assert abs(runner.at[1] - runner.at[0]) < 0.3
    assert sched.stats.items == 2 and sched.stats.batches == 2
    with pytest.raises(ValueError):
        BatchScheduler({"plates": runner}, workers=0)


def test_a_failed_batch_drops_jobs_a_worker_had_started() -> None:
    def broken(images):  # type: ignore[no-untyped-def]
        raise RuntimeError("model crashed")

    sched = BatchScheduler({"plates": broken}, max_batch=1, max_delay_s=0.0, workers=2).start()
    events: list[str] = []
    lost = threading.Event()
    sched.submit(Job("L1/a", "plates", _img(1), done=lambda r: None,
                     started=lambda: events.append("started"),
                     dropped=lambda: (events.append("dropped"), lost.set())))
    assert lost.wait(30)
    sched.stop()
    assert events == ["started", "dropped"] and sched.stats.failed == 1


def test_inference_threads_give_every_cpu_a_worker_of_one_thread_by_default() -> None:
    from edge.app import inference_threads
    from edge.config import InferenceConfig

    assert inference_threads(InferenceConfig(), cpus=2) == (2, 1)
    assert inference_threads(InferenceConfig(), cpus=1) == (1, 1)
    assert inference_threads(InferenceConfig(workers=1), cpus=2) == (1, 2)  # one frame, 2 threads
    assert inference_threads(InferenceConfig(threads=2), cpus=4) == (2, 2)
    assert inference_threads(InferenceConfig(workers=3, threads=1), cpus=2) == (3, 1)
