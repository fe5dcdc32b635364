"""Micro-batching: requests that arrive together run through the model together.

Each request is encoded on its own (its features and their token counts are known before it
queues). One worker thread takes the oldest request, then keeps collecting queued ones for at most
`max_wait_s` or until `batch_tokens` tokens are gathered, runs all their features in one
`run_features` call (which sorts them by length into the runtime's inference batches), and hands
each request its own slice of the outputs. Under load the queue fills while the model runs, so
batches grow with load without any wait; an idle server adds at most `max_wait_s` to a request.

Memory stays bounded: `reserve` admits a request only while fewer than `max_items` inputs are
admitted and not yet answered; the caller answers 503 otherwise.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field


@dataclass
class Job:
    features: list[dict]
    finish: Callable[[list], object]  # this request's outputs (in feature order) -> its answer
    future: Future = field(default_factory=Future)

    @property
    def tokens(self) -> int:
        return sum(len(f["input_ids"]) for f in self.features)


class MicroBatcher:
    def __init__(self, run_features: Callable[[list[dict]], list], max_wait_s: float = 0.005,
                 batch_tokens: int = 8192, max_items: int = 1024):
        self.run_features = run_features
        self.max_wait_s = max_wait_s
        self.batch_tokens = batch_tokens
        self.max_items = max_items
        self.admitted = 0  # inputs admitted and not yet answered
        self.batches = 0  # model calls so far (for /health)
        self._queue: deque[Job] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._loop, name="seqtune-batcher", daemon=True)

    # ---- admission ------------------------------------------------------------------------------
    def reserve(self, items: int) -> bool:
        """Admit a request of `items` inputs, or refuse it (False) when the queue is full."""
        with self._cond:
            if self.admitted + items > self.max_items:
                return False
            self.admitted += items
            return True

    def release(self, items: int) -> None:
        with self._cond:
            self.admitted -= items

    def submit(self, job: Job) -> Future:
        with self._cond:
            if self._closing:
                raise RuntimeError("the server is shutting down")
            self._queue.append(job)
            self._cond.notify()
        return job.future

    # ---- the worker -----------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def close(self, timeout: float | None = None) -> None:
        """Run what is queued, then stop the worker."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _next_batch(self) -> list[Job] | None:
        with self._cond:
            while not self._queue and not self._closing:
                self._cond.wait()
            if not self._queue:
                return None  # closing, nothing left
            jobs = [self._queue.popleft()]
            tokens = jobs[0].tokens
            deadline = time.monotonic() + self.max_wait_s
            while tokens < self.batch_tokens:
                if self._queue:
                    if tokens + self._queue[0].tokens > self.batch_tokens:
                        break
                    jobs.append(self._queue.popleft())
                    tokens += jobs[-1].tokens
                    continue
                left = deadline - time.monotonic()
                if left <= 0 or self._closing:
                    break
                self._cond.wait(left)
        return [job for job in jobs if job.future.set_running_or_notify_cancel()]

    def _loop(self) -> None:
        while (jobs := self._next_batch()) is not None:
            if jobs:
                self._run(jobs)

    def _run(self, jobs: list[Job]) -> None:
        try:
            outputs = self.run_features([f for job in jobs for f in job.features])
        except Exception as error:  # noqa: BLE001 - every waiting request gets the error
            for job in jobs:
                job.future.set_exception(error)
            return
        self.batches += 1
        start = 0
        for job in jobs:
            mine = outputs[start:start + len(job.features)]
            start += len(job.features)
            try:
                job.future.set_result(job.finish(mine))
            except Exception as error:  # noqa: BLE001 - one request's post-processing failure is its own
                job.future.set_exception(error)
