"""Attention with dropout on the CPU: SDPA's math kernel against seqtune's dropout_attention.

For each shape, forward + backward time (median of --repeats after one warm-up) and the bytes kept
for backward (the distinct storages that autograd saves, seen through saved_tensors_hooks).

    OMP_NUM_THREADS=1 taskset -c 1 python benchmarks/dropout_attention.py
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from seqtune.models.dropout_attention import dropout_attention  # noqa: E402

SHAPES = {  # name: (batch, heads, tokens, head dim)
    "mlm tiny, 32 x 512 tokens": (32, 2, 512, 64),
    "mlm mini, 32 x 512 tokens": (32, 4, 512, 64),
    "MiniLM, 32 x 40 tokens": (32, 12, 40, 32),
}


def kept_bytes(fn) -> int:
    storages: dict[int, int] = {}

    def pack(t):
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(storages.values())


def timed(fn, repeats: int) -> float:
    fn().sum().backward()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn().sum().backward()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--p", type=float, default=0.1)
    args = parser.parse_args()
    torch.manual_seed(0)
    rows = []
    for name, (B, N, T, D) in SHAPES.items():
        q, k, v = (torch.randn(B, N, T, D, requires_grad=True) for _ in range(3))
        sides = {"sdpa math": lambda: F.scaled_dot_product_attention(q, k, v, dropout_p=args.p),
                 "dropout_attention": lambda: dropout_attention(q, k, v, None, args.p)}
        row = {"shape": name}
        for side, fn in sides.items():
            row[side] = {"fwd_bwd_ms": round(timed(fn, args.repeats) * 1000, 1),
                         "kept_mib": round(kept_bytes(fn) / 2**20, 1)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    print("\n| shape | SDPA math: fwd+bwd ms, kept MiB | dropout_attention: fwd+bwd ms, kept MiB | time ratio |")
    print("|---|---|---|---|")
    for r in rows:
        a, b = r["sdpa math"], r["dropout_attention"]
        print(f"| {r['shape']} | {a['fwd_bwd_ms']}, {a['kept_mib']} | {b['fwd_bwd_ms']}, {b['kept_mib']} | "
              f"{a['fwd_bwd_ms'] / b['fwd_bwd_ms']:.2f}x |")


if __name__ == "__main__":
    main()
