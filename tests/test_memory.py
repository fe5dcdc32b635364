"""The memory sampler: RssAnon grows with anonymous memory, not with a memory-mapped file; a fixed glibc
mmap threshold gives freed blocks back."""

from __future__ import annotations

import gc
import os
import platform
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from seqtune.memory import MemorySampler, read_status

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/PID/status is Linux's")


def test_anonymous_memory_counted_mapped_file_pages_not(tmp_path):
    sampler = MemorySampler(interval=0.01).start()
    before = read_status()["RssAnon"]
    block = np.ones(64 * 2**20, dtype=np.uint8)  # 64 MiB, touched
    time.sleep(0.1)
    peak_with_block = sampler.sample()["RssAnon"]
    assert peak_with_block - before > 48 * 2**20
    del block
    path = tmp_path / "mapped.bin"
    path.write_bytes(b"\1" * (64 * 2**20))
    mapped = np.memmap(path, dtype=np.uint8, mode="r")
    anon_before_reading = read_status()["RssAnon"]
    assert int(mapped.sum(dtype=np.int64)) == 64 * 2**20  # every page read
    status = read_status()
    assert status["RssAnon"] - anon_before_reading < 16 * 2**20  # file pages: RssFile, not RssAnon
    peaks = sampler.stop()
    assert peaks["peak_anon_mb"] >= peak_with_block / 2**20 - 1
    assert peaks["peak_rss_mb"] >= peaks["peak_anon_mb"]
    assert "peak_gpu_mb" not in peaks  # CUDA never used here


def test_a_dropped_sampler_stops_its_thread():
    sampler = MemorySampler(interval=0.01).start()
    thread = sampler._thread
    del sampler
    gc.collect()
    thread.join(timeout=2)
    assert not thread.is_alive()
    assert not any(t.name == "seqtune-memory" and t is thread for t in threading.enumerate())


HEAP_SCRIPT = """
import importlib.util, sys
import numpy as np
spec = importlib.util.spec_from_file_location("memory", sys.argv[2])  # seqtune/memory.py alone: no torch import
memory = importlib.util.module_from_spec(spec); spec.loader.exec_module(memory)
limit_heap_retention, read_status = memory.limit_heap_retention, memory.read_status
line = limit_heap_retention(None if sys.argv[1] == "none" else int(sys.argv[1]))
big = np.ones(8 << 20, dtype=np.uint8); del big  # glibc raises its threshold after a large block is freed
base = read_status()["RssAnon"]
blocks = [np.ones(1 << 20, dtype=np.uint8) for _ in range(100)]  # 100 MiB in blocks of 1 MiB
del blocks[:-1]  # all freed but the last one, which pins the top of the heap
print(line, (read_status()["RssAnon"] - base) >> 20)
"""


def heap_run(threshold: str, **env) -> tuple[str, int]:
    import seqtune.memory

    out = subprocess.run([sys.executable, "-c", HEAP_SCRIPT, threshold, seqtune.memory.__file__],
                         capture_output=True, text=True, check=True,
                         env={k: v for k, v in os.environ.items() if k != "MALLOC_MMAP_THRESHOLD_"} | env)
    line, _, kept = out.stdout.strip().rpartition(" ")
    return line, int(kept)


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_a_fixed_mmap_threshold_gives_freed_blocks_back():
    line, kept = heap_run("131072")
    assert line == "memory: glibc mmap threshold fixed at 131,072 bytes (train.malloc_mmap_threshold)"
    assert kept < 10  # only the last block is still held
    line, kept_default = heap_run("none")
    assert line == "None" and kept_default > 80  # glibc's default keeps the freed blocks in its heap
    line, _ = heap_run("131072", MALLOC_MMAP_THRESHOLD_="65536")
    assert line == "None"  # the user's own setting wins


def test_task_modules_load_no_metrics_library():
    """scikit-learn (85 MiB with the pandas and scipy.stats it imports) loads when metrics are computed,
    not with a task: `predict` and `serve` never pay for it."""
    code = ("import sys, seqtune.tasks.classification, seqtune.tasks.residues, seqtune.tasks.regression, "
            "seqtune.tasks.tagging, seqtune.training.setup; "
            "print(sorted(m for m in ('sklearn', 'scipy.stats', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
