"""Packed batches: attention one sequence at a time (varlen) against attention scattered back into
the padded layout, by padded length T; the crossing sets models/encoder.py's VARLEN_FROM_LENGTH.

Forward + backward in training mode (attention dropout on) of two MiniLM-sized blocks (384 hidden,
12 heads, 1,536 feed-forward), 32 sequences whose lengths are drawn below T (one of them T), best of
4 alternating repeats, one thread.

    OMP_NUM_THREADS=1 taskset -c 1 python benchmarks/varlen_attention.py
"""

from __future__ import annotations

import time

import torch

import seqtune.models.encoder as encoder_module
from seqtune.models.encoder import Encoder, EncoderConfig

# (padded length T, shortest, longest-but-one length drawn)
CASES = ((12, 3, 8), (20, 4, 12), (32, 5, 20), (48, 5, 30), (64, 5, 40), (96, 8, 45), (128, 8, 60))


def main() -> None:
    torch.set_num_threads(1)
    cfg = EncoderConfig(vocab_size=1000, hidden_size=384, num_hidden_layers=2, num_attention_heads=12,
                        intermediate_size=1536)
    encoder = Encoder(cfg).train()
    g = torch.Generator().manual_seed(0)
    print("| T | fill | scattered, ms | per sequence, ms | speed-up |\n|---|---|---|---|---|")
    for T, low, high in CASES:
        lengths = torch.randint(low, high, (32,), generator=g)
        lengths[0] = T
        mask = (torch.arange(T)[None] < lengths[:, None]).long()
        ids = torch.randint(5, 1000, (32, T), generator=g)
        best = {}
        for _ in range(4):
            for name, threshold in (("scattered", 10**9), ("varlen", 1)):
                encoder_module.VARLEN_FROM_LENGTH = threshold
                start = time.perf_counter()
                encoder(ids, mask).pow(2).mean().backward()
                best[name] = min(best.get(name, float("inf")), time.perf_counter() - start)
        print(f"| {T} | {mask.float().mean():.2f} | {1000 * best['scattered']:.0f} | {1000 * best['varlen']:.0f} "
              f"| {best['scattered'] / best['varlen']:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
