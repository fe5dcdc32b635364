"""The memory sampler: RssAnon grows with anonymous memory, not with a memory-mapped file."""

from __future__ import annotations

import gc
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
