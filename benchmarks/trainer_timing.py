"""Time inside Hugging Face Trainer's optimiser steps, shared by the benchmarks that run Trainer."""

from __future__ import annotations

import time


def step_timer():
    """A TrainerCallback whose `seconds` sums the wall time between each step's begin and end."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        seconds, _t = 0.0, 0.0

        def on_step_begin(self, *a, **k):
            self._t = time.perf_counter()

        def on_step_end(self, *a, **k):
            self.seconds += time.perf_counter() - self._t

    return StepTimer()
