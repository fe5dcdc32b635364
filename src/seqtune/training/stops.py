"""Clean stops: SIGINT (Ctrl-C) and SIGTERM end a run after the current optimiser step, with a checkpoint.

While training, `StopRequests` replaces the two handlers: the first signal only records itself (the
loop checks `requested` after each optimiser step, writes a checkpoint and raises `TrainingStopped`,
which the CLI turns into one line saying how to resume and exit status 130 or 143). A second Ctrl-C
stops at once (KeyboardInterrupt); a SIGTERM after the first request changes nothing (torchrun's agent
sends one to its workers when it is stopped itself).
The old handlers come back when training ends. Outside the main thread nothing is installed.

Test-only hook: with SEQTUNE_TEST_SIGNAL_AT_STEP="N:KILL" (or "N:TERM", "N:INT") the process sends
itself that signal right after optimiser step N, before any evaluation or checkpoint of that step. The
resume tests use it to stop a run at a chosen step with a real signal; it is not meant for users.
"""

from __future__ import annotations

import os
import signal
import threading

from seqtune.errors import TrainingStopped

TEST_HOOK = "SEQTUNE_TEST_SIGNAL_AT_STEP"
SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequests:
    def __init__(self, log):
        self.log = log
        self.requested: int | None = None  # the signal number of the first stop request
        self._old: dict = {}
        self._hook = test_hook()

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                if signal.getsignal(sig) is not signal.SIG_IGN:  # an ignored signal stays ignored (`cmd &`)
                    self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        self._old = {}

    def _handle(self, signum, frame) -> None:
        if self.requested is not None:  # already stopping: a second Ctrl-C stops at once
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            return  # a SIGTERM after it (torchrun's agent passing the stop on) changes nothing
        self.requested = signum
        self.log(f"{signal.Signals(signum).name}: stopping after the current optimiser step with a checkpoint "
                 "(press Ctrl-C again to stop at once)")

    def after_step(self, step: int) -> None:
        """Called after each optimiser step: the test hook's signal, if it is due."""
        if self._hook is not None and self._hook[0] == step:
            os.kill(os.getpid(), self._hook[1])

    def stopped(self, step: int, run_hint: str, checkpoint: str | None) -> TrainingStopped:
        name = signal.Signals(self.requested).name
        where = (f"checkpoint {checkpoint} written; resume with: seqtune train --resume {run_hint}"
                 if checkpoint else "no checkpoint (train.keep_checkpoints is 0), so it cannot be resumed")
        return TrainingStopped(f"stopped by {name} after optimiser step {step}: {where}", 128 + self.requested)


def test_hook() -> tuple[int, int] | None:
    value = os.environ.get(TEST_HOOK)
    if not value:
        return None
    step, _, name = value.partition(":")
    return int(step), getattr(signal, "SIG" + (name or "KILL").upper())
