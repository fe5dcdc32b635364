"""Training progress: a tqdm bar in a terminal, a log line now and then anywhere else.

With stderr redirected to a file a bar would write a record per update (thousands of lines per
run); there, a line like "step 120/900 (13%), loss 0.4123, 2,310 tokens/s, 52s elapsed, ~5.6 min
left" goes to the log every `interval` seconds instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from tqdm.auto import tqdm

from seqtune.logs import stderr_is_terminal


class Progress:
    def __init__(self, total_steps: int, enabled: bool, log: Callable[[str], None], interval: float = 60.0,
                 terminal: bool | None = None, initial: int = 0):
        """`initial`: steps already done (a resumed run)."""
        self.total = total_steps
        self.initial = initial
        self.log = log
        self.interval = interval
        self.enabled = enabled
        terminal = stderr_is_terminal() if terminal is None else terminal
        self.bar = (tqdm(total=total_steps, initial=initial, unit="step", dynamic_ncols=True)
                    if enabled and terminal else None)
        self.started = self.last_line = time.monotonic()

    def update(self, step: int, advanced: bool, loss: float, tokens_per_second: float) -> None:
        if self.bar is not None:
            self.bar.update(1 if advanced else 0)
            self.bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{tokens_per_second:.0f}")
            return
        now = time.monotonic()
        if not self.enabled or now - self.last_line < self.interval:
            return
        self.last_line = now
        elapsed = now - self.started
        left = elapsed / max(step - self.initial, 1) * (self.total - step)
        self.log(f"step {step}/{self.total} ({step / self.total:.0%}), loss {loss:.4f}, "
                 f"{tokens_per_second:,.0f} tokens/s, {elapsed:.0f}s elapsed, ~{left / 60:.1f} min left")

    def close(self) -> None:
        """Idempotent."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
