"""Per-residue fine-tuning with long windows: peak memory and tokens/s against window length, with
and without `train.gradient_checkpointing`.

Inputs: chains of exactly L residues made by joining consecutive proteins of the shared secondary-
structure train split (their real residues, DSSP labels and resolved masks), so every window is full
and a batch holds max_tokens / L windows. Model: a fresh preset-tiny character encoder (2 x 128)
with max_positions 2048 (`seqtune pretrain --init-only`), the residues task with
configs/protein_ss.yaml's conv head, batches of 8,192 tokens, a few optimiser steps. Each run is its
own process; memory is sampled from outside (seqtune.memory), tokens/s comes from results.json.
Memory is valid on a loaded machine; tokens/s is not a clean speed figure there.

    python benchmarks/memory_long.py                       # L = 512, 1024, 2048; writes benchmarks/out/memory_long.json
    python benchmarks/memory_long.py --lengths 512 --steps 2   # smoke test
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
SS = REPO.parent / "shared" / "data" / "protein_ss" / "train.csv"
MAX_TOKENS = 8192


def write_chains(path: Path, length: int, count: int) -> None:
    """`count` chains of `length` residues from consecutive proteins of the SS train split."""
    seq, labels, mask, chains = "", "", "", []
    with open(SS, newline="") as f:
        for row in csv.DictReader(f):
            seq, labels, mask = seq + row["input"], labels + row["dssp3"], mask + row["resolved_mask"]
            while len(seq) >= length and len(chains) < count:
                chains.append((seq[:length], labels[:length], mask[:length]))
                seq, labels, mask = seq[length:], labels[length:], mask[length:]
            if len(chains) >= count:
                break
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "input", "dssp3", "resolved_mask"])
        for i, (s, y, m) in enumerate(chains):
            writer.writerow([f"chain{i}", s, y, m])


def run(cmd: list[str]) -> tuple[dict, str]:
    from seqtune.memory import MemorySampler

    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = MemorySampler(proc.pid).start()
    stdout, stderr = proc.communicate()
    peaks = sampler.stop()
    if proc.returncode:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{stderr[-3000:]}")
    return peaks, stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", default="512,1024,2048")
    parser.add_argument("--steps", type=int, default=4, help="optimiser steps per run")
    parser.add_argument("--workdir", default=str(REPO / "benchmarks" / "out" / "memory_long_work"))
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "memory_long.json"))
    args = parser.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    seqtune = [sys.executable, "-m", "seqtune"]
    _, init = run([*seqtune, "pretrain", "--init-only", "--set", "model.vocab.alphabet=protein",
                   "--set", "model.architecture.max_positions=2048", "--set", f"data.train={SS}",
                   "--set", "data.text_column=input", "--set", "data.max_length=2048",
                   "--set", f"output_dir={work}", "--set", "name=long"])
    report = []
    for length in map(int, args.lengths.split(",")):
        per_batch = MAX_TOKENS // length
        data = work / f"chains_{length}.csv"
        write_chains(data, length - 2, per_batch * args.steps)  # + [CLS] and [SEP]: windows of exactly L tokens
        for checkpointing in (False, True):
            _, run_dir = run([*seqtune, "train", str(REPO / "configs" / "protein_ss.yaml"),
                              "--set", f"model.path={init}", "--set", f"data.train={data}", "--set", "data.dev=null",
                              "--set", "data.test=null", "--set", f"data.max_length={length}",
                              "--set", f"train.max_tokens={MAX_TOKENS}", "--set", "train.epochs=1",
                              "--set", "train.progress=false", "--set", "train.num_threads=1",
                              "--set", f"train.gradient_checkpointing={str(checkpointing).lower()}",
                              "--set", f"output_dir={work}", "--set", f"name=len{length}"])
            results = json.loads((Path(run_dir) / "results.json").read_text())
            row = {"window": length, "windows_per_batch": per_batch, "gradient_checkpointing": checkpointing,
                   "steps": results["train"]["steps"], "peak_anon_mb": results["memory"]["peak_anon_mb"],
                   "peak_rss_mb": results["memory"]["peak_rss_mb"],
                   "tokens_per_second_under_load": results["train"]["tokens_per_second"]}
            report.append(row)
            print(json.dumps(row), flush=True)
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps({"measured": time.strftime("%Y-%m-%d %H:%M"), "rows": report},
                                                 indent=2) + "\n")


if __name__ == "__main__":
    main()
