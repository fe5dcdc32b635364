"""Dropout for CPU training, with masks from fewer random draws.

On the CPU, torch's dropout draws a Bernoulli sample per element: `torch.native_dropout` took
1.40 ms for a (439, 384) batch of SST-2 hidden states on one core, and dropout was 11% of an SST-2
training step (BENCHMARKS.md, "Dropout on the CPU").
`keep_mask` takes 15 random bits an element, four elements from one 64-bit draw (0.31 ms for that
mask), so the drop probability is p rounded to a multiple of 1/32,768 (0.1 -> 0.100006); kept
elements are scaled by 1/(1 - that p), so the expectation is unchanged. The mask is applied, in
forward and in backward, by `apply_mask` (x * mask * scale in one pass). Like `nn.Dropout`, a
boolean mask is kept for backward.

`Dropout` is `nn.Dropout` with that mask in CPU training, and `nn.Dropout` itself elsewhere (GPU
kernels draw fast; inside torch.compile inductor draws its own). Seeded by the default CPU
generator: runs repeat, and gradient checkpointing, which replays a block under the saved
generator state, draws the same masks.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

RANDOM_BITS = 15  # per element: the low 15 bits of each 16-bit word of a 64-bit draw
_ZERO = torch.zeros(())


APPLY_CHUNK = 1 << 18  # elements an `addcmul` call of apply_mask on a large tensor


def apply_mask(x: torch.Tensor, keep: torch.Tensor, scale: float, out: torch.Tensor | None = None) -> torch.Tensor:
    """x * keep * scale (keep: bool, True = kept), written to `out` if given (it may be x itself).
    `addcmul` with the mask read as bytes: 2.5x faster on the CPU than aten's
    `native_dropout_backward` (0.68-0.97 against 1.63-2.05 ns an element, one core, BENCHMARKS.md,
    "Session 9"). addcmul converts the mask to x's dtype in a temporary of x's size first, so a
    large tensor goes APPLY_CHUNK elements a call: the temporary stays small, and glibc does not
    map (and page-fault) two large blocks afresh for each call (BENCHMARKS.md, "Session 13")."""
    n, zero = x.numel(), _ZERO.to(x.dtype)
    contiguous = x.is_contiguous() and keep.is_contiguous() and (out is None or out.is_contiguous())
    if (n <= APPLY_CHUNK and out is None) or not contiguous:
        result = torch.addcmul(zero, x, keep.view(torch.uint8), value=scale)
        return result if out is None else out.copy_(result)
    out = torch.empty_like(x, memory_format=torch.contiguous_format) if out is None else out
    flat_x, flat_keep, flat_out = x.view(-1), keep.view(torch.uint8).view(-1), out.view(-1)
    for start in range(0, n, APPLY_CHUNK):
        end = start + APPLY_CHUNK
        torch.addcmul(zero, flat_x[start:end], flat_keep[start:end], value=scale, out=flat_out[start:end])
    return out


def keep_mask(shape: torch.Size | tuple[int, ...], p: float) -> tuple[torch.Tensor, float]:
    """A boolean tensor of `shape`, True = kept, each False with probability p rounded to 1/32,768;
    returns it and the scale of kept elements, 1 / (1 - that probability). From the default CPU
    generator."""
    n = math.prod(shape)
    # random_() on int64 fills [0, 2^63): every 16-bit word has 15 uniform low bits (the top bit of
    # one word in four is always 0, so it is masked off everywhere)
    words = torch.empty((n + 3) // 4, dtype=torch.int64).random_().view(torch.int16)[:n]
    threshold = round(p * (1 << RANDOM_BITS))
    return (words.bitwise_and(0x7FFF) >= threshold).view(shape), 1.0 / (1.0 - threshold / (1 << RANDOM_BITS))


def uses_fast_mask(x: torch.Tensor, p: float, training: bool) -> bool:
    """CPU training with 0 < p < 1, not inside torch.compile."""
    return training and 0.0 < p < 1.0 and x.device.type == "cpu" and not torch.compiler.is_compiling()


class _Dropout(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, p):
        keep, scale = keep_mask(x.shape, p)
        ctx.scale = scale
        ctx.save_for_backward(keep)
        return apply_mask(x, keep, scale)

    @staticmethod
    def backward(ctx, grad):
        (keep,) = ctx.saved_tensors
        return apply_mask(grad, keep, ctx.scale), None


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """F.dropout(x, p, training), with `keep_mask`'s mask in CPU training."""
    if uses_fast_mask(x, p, training):
        return _Dropout.apply(x, p)
    return F.dropout(x, p, training)


class Dropout(nn.Dropout):
    """nn.Dropout (same arguments, no state) whose CPU training mask comes from `keep_mask`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)
