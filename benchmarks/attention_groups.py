"""Packed batches: how their sequences should attend (models/encoder.py, `attention_groups`).

1. `--calibrate`: the cost of one attention call in training (forward + backward, dropout 0.1) of
   MiniLM-shaped heads (12 x 32), t(n, T) for n sequences of T tokens, and a least-squares fit of
   t = call + heads * n * (row * T + pair * T^2): the source of ATTENTION_CALL_COST (call / pair)
   and ATTENTION_ROW_COST (row / pair).
2. The three ways to attend, on two MiniLM-sized blocks (384 hidden, 12 heads, 1,536 feed-forward),
   32 sequences with lengths drawn below T (one of them T), forward + backward in training, best of 4
   alternating repeats: one padded group (every sequence padded to T, a mask), one call per
   sequence, and the groups the cost model picks.

    OMP_NUM_THREADS=1 taskset -c 1 python benchmarks/attention_groups.py [--calibrate]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import seqtune.models.encoder as encoder_module
from seqtune.models.encoder import Encoder, EncoderConfig, SelfAttention

# (padded length T, shortest, longest-but-one length drawn)
CASES = ((12, 3, 8), (20, 4, 12), (32, 5, 20), (49, 2, 40), (64, 5, 40), (96, 8, 45), (128, 8, 60))
WAYS = {"one padded group": (10**12, 0), "per sequence": (0, 0),
        "cost model": (encoder_module.ATTENTION_CALL_COST, encoder_module.ATTENTION_ROW_COST)}


def calibrate(heads: int = 12, head_dim: int = 32) -> None:
    cfg = EncoderConfig(hidden_size=heads * head_dim, num_attention_heads=heads, intermediate_size=4 * heads * head_dim)
    attention = SelfAttention(cfg).train()
    rows = []
    print("| n | T | ms |\n|---|---|---|")
    for T in (4, 8, 16, 32, 48, 64, 96, 128):
        for n in (1, 4, 16):
            q, k, v = (torch.randn(n, heads, T, head_dim, requires_grad=True) for _ in range(3))
            mask = torch.ones(n, 1, 1, T, dtype=torch.bool)
            mask[0, ..., T // 2:] = False
            times = []
            for _ in range(15):
                start = time.perf_counter()
                attention.attend(q, k, v, mask).sum().backward()
                times.append(time.perf_counter() - start)
            t = sorted(times)[len(times) // 4]
            rows.append((n, T, t))
            print(f"| {n} | {T} | {1000 * t:.2f} |", flush=True)
    a = np.array([[1.0, heads * n * T, heads * n * T * T] for n, T, _ in rows])
    t = np.array([t for *_, t in rows])
    (call, row, pair), *_ = np.linalg.lstsq(a / t[:, None], np.ones(len(t)), rcond=None)  # relative errors
    print(f"\ncall {1e6 * call:.0f} us, row {1e6 * row:.2f} us, pair {1e9 * pair:.1f} ns (one head): "
          f"ATTENTION_CALL_COST ~ {call / pair:,.0f}, ATTENTION_ROW_COST ~ {row / pair:.0f}")


def compare() -> None:
    cfg = EncoderConfig(vocab_size=1000, hidden_size=384, num_hidden_layers=2, num_attention_heads=12,
                        intermediate_size=1536)
    encoder = Encoder(cfg).train()
    g = torch.Generator().manual_seed(0)
    print("| T | fill | " + " | ".join(f"{w}, ms" for w in WAYS) + " | groups (cost model) |\n|---|---|---|---|---|---|")
    for T, low, high in CASES:
        lengths = torch.randint(low, high, (32,), generator=g)
        lengths[0] = T
        mask = (torch.arange(T)[None] < lengths[:, None]).long()
        ids = torch.randint(5, 1000, (32, T), generator=g)
        best = {}
        for _ in range(4):
            for way, (call, row) in WAYS.items():
                encoder_module.ATTENTION_CALL_COST, encoder_module.ATTENTION_ROW_COST = call, row
                start = time.perf_counter()
                encoder(ids, mask).pow(2).mean().backward()
                best[way] = min(best.get(way, float("inf")), time.perf_counter() - start)
        groups = len(encoder_module.attention_groups(lengths.tolist(), 12))
        print(f"| {T} | {mask.float().mean():.2f} | " + " | ".join(f"{1000 * best[w]:.0f}" for w in WAYS)
              + f" | {groups} |", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calibrate", action="store_true", help="fit the cost model's constants instead")
    args = p.parse_args()
    torch.set_num_threads(1)
    calibrate() if args.calibrate else compare()


if __name__ == "__main__":
    main()
