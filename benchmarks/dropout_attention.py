"""Attention with dropout on the CPU: SDPA's math kernel against seqtune's dropout_attention, whole and
in chunks; and the cost of applying a dropout mask.

For each shape, forward + backward time (median of --repeats after one warm-up) and the bytes kept
for backward (the distinct storages that autograd saves, seen through saved_tensors_hooks), for SDPA's
math kernel, dropout_attention's whole way (softmax output and mask kept) and its chunked way (q, k, v
kept, backward recomputes); "default" says which of the two dropout_attention picks for that shape
(WHOLE_WEIGHTS). Then x * mask * scale for a float32 tensor and a boolean mask, aten's
native_dropout_backward against models/dropout.apply_mask, in ns an element.

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
from seqtune.models import dropout_attention as attention  # noqa: E402
from seqtune.models.dropout import apply_mask  # noqa: E402

SHAPES = {  # name: (batch, heads, tokens, head dim)
    "MiniLM, 32 x 40 tokens": (32, 12, 40, 32),
    "MiniLM, 32 x 128 tokens": (32, 12, 128, 32),
    "MiniLM, 16 x 256 tokens": (16, 12, 256, 32),
    "mlm tiny, 16 x 512 tokens": (16, 2, 512, 64),
    "mlm tiny, 32 x 512 tokens": (32, 2, 512, 64),
    "mlm mini, 32 x 512 tokens": (32, 4, 512, 64),
    "tiny, 8 x 1,024 tokens": (8, 2, 1024, 64),
    "tiny, 4 x 2,048 tokens": (4, 2, 2048, 64),
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
                 "whole": lambda: attention._DropoutAttention.apply(q, k, v, None, args.p),
                 "chunked": lambda: attention.dropout_attention(q, k, v, None, args.p, attention.CHUNK_WEIGHTS)}
        row = {"shape": name, "default": "chunked" if B * N * T * T > attention.WHOLE_WEIGHTS else "whole"}
        for side, fn in sides.items():
            row[side] = {"fwd_bwd_ms": round(timed(fn, args.repeats) * 1000, 1),
                         "kept_mib": round(kept_bytes(fn) / 2**20, 1)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    print("\n| shape | default | SDPA math: ms, kept MiB | whole: ms, kept MiB | chunked: ms, kept MiB |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['shape']} | {r['default']} | " + " | ".join(
            f"{r[side]['fwd_bwd_ms']}, {r[side]['kept_mib']}" for side in ("sdpa math", "whole", "chunked")) + " |")
    print("\n| elements | native_dropout_backward, ns an element | apply_mask, ns an element |")
    print("|---|---|---|")
    for n in (300_000, 4_000_000):
        x, keep = torch.randn(n), torch.rand(n) > args.p
        a, b = (min(timed_plain(lambda f=f: f(x, keep, 1.1)) for _ in range(args.repeats * 4)) / n * 1e9
                for f in (torch.ops.aten.native_dropout_backward, apply_mask))
        print(f"| {n:,} | {a:.2f} | {b:.2f} |")


def timed_plain(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
