"""Peak memory of a process, as a figure for results.json and the benchmarks.

Two numbers from `/proc/PID/status` (Linux):
- `RssAnon`, anonymous resident memory: the heap, tensors, Python objects. This is what grows when a
  program holds its data in memory. Pages of a memory-mapped file (the token store) are page cache,
  counted in `RssFile`, not here: the kernel drops them under pressure and shares them between
  processes that map the same file.
- `VmRSS`, total resident memory (anonymous + file-backed + shared). Its peak (`VmHWM`) is kept by the
  kernel exactly; RssAnon has no kernel peak, so it is sampled (every 50 ms by default, from a
  daemon thread): a spike shorter than the interval can be missed.
On GPU, `torch.cuda.max_memory_allocated` adds the peak of tensors on the device.
Elsewhere than Linux the figures are absent (None), never guessed.
"""

from __future__ import annotations

import threading
from pathlib import Path

FIELDS = ("RssAnon", "RssFile", "VmRSS", "VmHWM")


def read_status(pid: int | str = "self") -> dict[str, int]:
    """The memory fields of /proc/PID/status in bytes ({} where there is no /proc or the process is gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in FIELDS:
            out[key] = int(value.split()[0]) * 1024  # reported in kB
    return out


class MemorySampler:
    """Samples a process's RssAnon/VmRSS in a daemon thread until `stop()`; `peaks()` gives the maxima.

        sampler = MemorySampler().start()
        ...
        results["memory"] = sampler.stop()
    """

    def __init__(self, pid: int | str = "self", interval: float = 0.05):
        self.pid, self.interval = pid, interval
        self.peak_anon = 0
        self.peak_rss = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> dict[str, int]:
        status = read_status(self.pid)
        self.peak_anon = max(self.peak_anon, status.get("RssAnon", 0))
        self.peak_rss = max(self.peak_rss, status.get("VmRSS", 0), status.get("VmHWM", 0))
        return status

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            if not self.sample():
                return  # the process has ended (or there is no /proc)

    def start(self) -> MemorySampler:
        self.sample()
        self._thread = threading.Thread(target=self._run, name="seqtune-memory", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> dict:
        """Stop sampling; the peaks (see `peaks`)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()
        return self.peaks()

    def peaks(self) -> dict:
        """{"peak_anon_mb", "peak_rss_mb"} (None without /proc), plus "peak_gpu_mb" when CUDA was used."""
        def mb(value: int) -> float | None:
            return round(value / 2**20, 1) if value else None
        out = {"peak_anon_mb": mb(self.peak_anon), "peak_rss_mb": mb(self.peak_rss)}
        gpu = peak_gpu_bytes()
        if gpu is not None:
            out["peak_gpu_mb"] = mb(gpu)
        return out


def peak_gpu_bytes() -> int | None:
    """Peak bytes of CUDA tensors in this process (all devices), or None if CUDA was never initialised."""
    import sys

    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return None
    return sum(torch.cuda.max_memory_allocated(d) for d in range(torch.cuda.device_count()))
