"""Peak memory of a process, as a figure for results.json and the benchmarks.

Two numbers from `/proc/PID/status` (Linux):
- `RssAnon`, anonymous resident memory: the heap, tensors, Python objects. This is what grows when a
  program holds its data in memory. Pages of a memory-mapped file (the token store) are page cache,
  counted in `RssFile`, not here: the kernel drops them under pressure and shares them between
  processes that map the same file.
- `VmRSS`, total resident memory (anonymous + file-backed + shared).
Neither has a per-run peak in the kernel (`VmHWM` is the whole process's, which misleads when one
process runs several trainings), so both are sampled every 50 ms from a daemon thread: a spike
shorter than the interval can be missed.
On GPU, `torch.cuda.max_memory_allocated` adds the peak of tensors on the device.
Elsewhere than Linux the figures are absent (None), never guessed.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys
import threading
import weakref
from pathlib import Path

FIELDS = ("RssAnon", "RssFile", "VmRSS")


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
        self.peak_rss = max(self.peak_rss, status.get("VmRSS", 0))
        return status

    @staticmethod
    def _run(ref: weakref.ref, stop: threading.Event, interval: float) -> None:
        # The thread holds the sampler weakly: a run that ends by an exception, never calling stop(),
        # does not leave a sampling thread behind once its sampler is gone.
        while not stop.wait(interval):
            sampler = ref()
            if sampler is None or not sampler.sample():
                return  # the sampler was dropped, the process has ended, or there is no /proc
            del sampler

    def start(self) -> MemorySampler:
        """Start sampling (and reset CUDA's peak counters, so the GPU peak is this run's)."""
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
            for device in range(torch.cuda.device_count()):
                torch.cuda.reset_peak_memory_stats(device)
        self.sample()
        self._thread = threading.Thread(target=self._run, args=(weakref.ref(self), self._stop, self.interval),
                                        name="seqtune-memory", daemon=True)
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
        """{"peak_anon_mb", "peak_rss_mb"} in MiB (None without /proc), "sampled_every_s", and
        "peak_gpu_mb" when CUDA was used."""
        def mb(value: int) -> float | None:
            return round(value / 2**20, 1) if value else None
        out = {"peak_anon_mb": mb(self.peak_anon), "peak_rss_mb": mb(self.peak_rss), "sampled_every_s": self.interval}
        gpu = peak_gpu_bytes()
        if gpu is not None:
            out["peak_gpu_mb"] = mb(gpu)
        return out


def peak_gpu_bytes() -> int | None:
    """Peak bytes of CUDA tensors in this process (all devices), or None if CUDA was never initialised."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return None
    return sum(torch.cuda.max_memory_allocated(d) for d in range(torch.cuda.device_count()))


M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number (malloc.h)


def limit_heap_retention(threshold: int | None) -> str | None:
    """Fix glibc's mmap threshold at `threshold` bytes for this process (`train.malloc_mmap_threshold`):
    every allocation larger than that gets its own mapping, given back to the system when freed.

    By default glibc raises the threshold (up to 32 MiB) each time a large block is freed, so the
    activations of later training steps come from the heap, whose freed pages it keeps: peak memory
    then grows over the first tens of steps (BENCHMARKS.md, "Memory"). A fixed threshold keeps it at
    the first steps' level, at a cost in speed (fresh pages for every large tensor). Returns a line
    for the log, or None when nothing was changed: `threshold` None, not glibc, or the user set
    MALLOC_MMAP_THRESHOLD_ in the environment (which then wins)."""
    if threshold is None or os.environ.get("MALLOC_MMAP_THRESHOLD_"):
        return None
    libc = _glibc()
    if libc is None or not libc.mallopt(M_MMAP_THRESHOLD, int(threshold)):
        return None
    return f"memory: glibc mmap threshold fixed at {threshold:,} bytes (train.malloc_mmap_threshold)"


def _glibc():
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None
