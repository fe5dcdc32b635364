"""Masking for overlapping k-mer tokens: contiguous spans of k tokens, as DNABERT masks them.

With one k-mer per position (`kmers.py`), a masked token is given away by its neighbours: ACG CGT
[MASK] TAC ACG reveals GTA from CGT and TAC. DNABERT therefore masks k consecutive tokens around each
chosen centre (offsets -((k - 1) // 2) .. k // 2: for k = 6, -2 .. +3); within such a span at least
one letter is covered by masked k-mers only, so the model must predict it from context.

Centres are drawn with probability 1 - (1 - p)^(1/k), so that the expected share of masked tokens is
about p (`task.mask_probability`, 15%), as DNABERT's mlm_probability 0.025 for 6-mers gives about 15%.
Spans stop at special tokens and padding (only `maskable` positions are chosen), as DNABERT's stop at
the sequence's end. Every row with a maskable token gets at least one span. The 80/10/10 corruption of
the chosen tokens is `masking.mask_tokens`'s.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def span_offsets(k: int) -> tuple[int, int]:
    """First and last offset of the span around a centre (DNABERT's MASK_LIST): k = 6 -> (-2, 3)."""
    return -((k - 1) // 2), k // 2


def choose_kmer_spans(maskable: torch.Tensor, probability: float, k: int,
                      generator: torch.Generator) -> torch.Tensor:
    """(B, T) bool of chosen positions: spans of k tokens around random centres, among `maskable`."""
    B, T = maskable.shape
    centre_probability = 1.0 - (1.0 - probability) ** (1.0 / k)
    centres = (torch.rand(B, T, generator=generator) < centre_probability) & maskable
    scores = torch.rand(B, T, generator=generator)
    empty = ~centres.any(1) & maskable.any(1)  # rows without a centre: take their best-scoring token
    if bool(empty.any()):
        pick = scores.masked_fill(~maskable, -1.0).argmax(1)
        centres[empty.nonzero()[:, 0], pick[empty]] = True
    lo, hi = span_offsets(k)
    # position t is in a span when some centre c has c + lo <= t <= c + hi, i.e. c in [t - hi, t - lo]
    padded = F.pad(centres.float()[:, None, :], (hi, -lo))
    covered = F.max_pool1d(padded, kernel_size=k, stride=1)[:, 0, :].bool()
    return covered & maskable
