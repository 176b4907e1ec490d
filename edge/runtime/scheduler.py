"""Batched inference scheduler: the one owner of the ONNX sessions (dynamic batching).

Frames from every camera of every lane wait in small per-camera queues. One worker thread takes
the oldest waiting job, then waits until `max_batch` compatible jobs (same kind, same image
shape: one detector batch without padding) are waiting or until the oldest has waited
`max_delay_s`, whichever comes first, as Triton's dynamic batcher does. The batch is taken
round-robin across cameras, run through the runner of its kind, and each result is handed to
the callback of the job it belongs to, which routes it to its lane. A job's `rank` (lower
first) orders cameras when a batch is formed: the edge ranks frames of passages that have no
read yet ahead of passages that already have several. Jobs sharing a `group` are alternatives
(the cameras of one plate role of one lane: one frame of them may be all the passage needs), so
a batch takes at most one job of each group and spends its other slots on other groups.

A batch also holds at most `max_pixels` image pixels (at least one image): on a CPU the
per-image cost does not fall with the batch size, so four 1080p frames in one batch would only
make every result of the batch wait for the slowest (one 1080p frame is about 2 Mpx; the ROI
crops of a gate camera are a tenth of that and still batch by four).

Live cameras never block: a full camera queue drops its oldest frame (counted).

`workers` threads take batches side by side, each running its batch alone (give each ONNX
session one intra-op thread per worker's share of the CPUs): on a small CPU one 1080p frame
barely runs faster on two intra-op threads than on one, so two frames on one thread each
finish about twice as many frames per second. A job's `started` hook is called when a worker
takes it, so a lane can rank its other frames knowing one is already being inferred.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

Runner = Callable[[Sequence[np.ndarray]], Sequence[Any]]


@dataclass(eq=False)
class Job:
    """One image to infer; `done(result)` or `dropped()` is called exactly once."""

    key: str
    kind: str
    image: np.ndarray
    done: Callable[[Any], None]
    dropped: Callable[[], None] = lambda: None
    rank: Callable[[], int] = lambda: 0  # priority when batches are formed, lower first
    group: str | None = None  # a batch takes at most one job of a group
    started: Callable[[], None] = lambda: None  # a worker took the job (before done/dropped)
    submitted: float = field(default_factory=time.monotonic)


@dataclass
class SchedulerStats:
    """Counters of a scheduler (read them from any thread)."""

    batches: int = 0
    items: int = 0
    dropped: int = 0
    failed: int = 0
    busy_s: float = 0.0
    sizes: Counter[int] = field(default_factory=Counter)

    @property
    def mean_batch(self) -> float:
        """Mean batch size so far."""
        return self.items / self.batches if self.batches else 0.0


class BatchScheduler:
    """Dynamic batcher over per-key queues; `runners` maps a job kind to a batch function."""

    def __init__(
        self,
        runners: Mapping[str, Runner],
        max_batch: int = 8,
        max_delay_s: float = 0.02,
        queue_size: int = 2,
        max_pixels: int | None = None,
        workers: int = 1,
    ) -> None:
        if max_batch < 1 or queue_size < 1 or workers < 1:
            raise ValueError("max_batch, queue_size and workers must be >= 1")
        self.runners = dict(runners)
        self.max_batch = max_batch
        self.max_pixels = max_pixels
        self.max_delay_s = max_delay_s
        self.queue_size = queue_size
        self.stats = SchedulerStats()
        self._queues: dict[str, deque[Job]] = {}
        self._cond = threading.Condition()
        self._stop = False
        self._threads = [threading.Thread(target=self._work, name=f"inference-{k}", daemon=True)
                         for k in range(workers)]

    def start(self) -> BatchScheduler:
        """Start the worker threads."""
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Stop after the running batches; waiting jobs are dropped."""
        with self._cond:
            self._stop = True
            waiting = [j for q in self._queues.values() for j in q]
            self._queues.clear()
            self._cond.notify_all()
        for job in waiting:
            job.dropped()
        for thread in self._threads:
            thread.join(timeout=30)

    def submit(self, job: Job, block: bool = False) -> None:
        """Queue a job; when its key's queue is full, drop the oldest (or wait, with `block`)."""
        if job.kind not in self.runners:
            raise ValueError(f"no runner for job kind {job.kind!r}")
        evicted: Job | None = None
        with self._cond:
            queue = self._queues.setdefault(job.key, deque())
            while block and len(queue) >= self.queue_size and not self._stop:
                self._cond.wait(0.1)
            if self._stop:
                evicted = job
            else:
                if len(queue) >= self.queue_size:
                    evicted = queue.popleft()
                    self.stats.dropped += 1
                queue.append(job)
                self._cond.notify_all()
        if evicted is not None:
            evicted.dropped()

    def cancel(self, predicate: Callable[[Job], bool]) -> int:
        """Drop waiting jobs matching `predicate` (e.g. a lane that no longer needs them)."""
        cancelled: list[Job] = []
        with self._cond:
            for queue in self._queues.values():
                keep = [j for j in queue if not predicate(j)]
                cancelled += [j for j in queue if predicate(j)]
                queue.clear()
                queue.extend(keep)
            self._cond.notify_all()
        for job in cancelled:
            job.dropped()
        return len(cancelled)

    def waiting(self) -> int:
        """Jobs waiting in the queues."""
        with self._cond:
            return sum(len(q) for q in self._queues.values())

    def batch_limit(self, shape: tuple[int, ...]) -> int:
        """The most images of `shape` one batch holds (`max_batch`, fewer for large images)."""
        if self.max_pixels is None:
            return self.max_batch
        return max(1, min(self.max_batch, self.max_pixels // max(1, shape[0] * shape[1])))

    def _compatible(self, head: Job, ranks: dict[str, int]) -> list[Job]:
        """Waiting jobs batchable with `head`, round-robin across keys, best-ranked and oldest
        keys first, at most one job of each group and `batch_limit` jobs in all."""
        queues = sorted(
            (q for q in self._queues.values() if q), key=lambda q: (ranks[q[0].key], q[0].submitted)
        )
        lanes = [
            [j for j in q if j.kind == head.kind and j.image.shape == head.image.shape]
            for q in queues
        ]
        limit = self.batch_limit(head.image.shape)
        out: list[Job] = []
        groups: set[str] = set()
        depth = 0
        while len(out) < limit and any(depth < len(lane) for lane in lanes):
            for lane in lanes:
                if depth < len(lane) and len(out) < limit:
                    job = lane[depth]
                    if job.group is not None:
                        if job.group in groups:
                            continue
                        groups.add(job.group)
                    out.append(job)
            depth += 1
        return out

    def _next_batch(self) -> list[Job] | None:
        with self._cond:
            while True:
                if self._stop:
                    return None
                heads = [q[0] for q in self._queues.values() if q]
                if not heads:
                    self._cond.wait()
                    continue
                ranks = {j.key: j.rank() for j in heads}
                head = min(heads, key=lambda j: (ranks[j.key], j.submitted))
                oldest = min(j.submitted for j in heads)
                batch = self._compatible(head, ranks)
                wait = oldest + self.max_delay_s - time.monotonic()
                if len(batch) >= self.batch_limit(head.image.shape) or wait <= 0:
                    for job in batch:
                        self._queues[job.key].remove(job)
                    self._cond.notify_all()
                    return batch
                self._cond.wait(wait)

    def _work(self) -> None:
        while (batch := self._next_batch()) is not None:
            for job in batch:
                job.started()
            kind = batch[0].kind
            started = time.perf_counter()
            try:
                results = self.runners[kind]([j.image for j in batch])
            except Exception:
                log.exception("inference of a %s batch of %d failed", kind, len(batch))
                with self._cond:
                    self.stats.failed += len(batch)
                    self.stats.busy_s += time.perf_counter() - started
                for job in batch:
                    job.dropped()
                continue
            with self._cond:
                self.stats.busy_s += time.perf_counter() - started
                self.stats.batches += 1
                self.stats.items += len(batch)
                self.stats.sizes[len(batch)] += 1
            for job, result in zip(batch, results, strict=True):
                try:
                    job.done(result)
                except Exception:
                    log.exception("result handler of %s failed", job.key)
