"""Scaled dot-product attention with dropout on the CPU, keeping less for backward.

On the CPU, `F.scaled_dot_product_attention` with dropout runs PyTorch's math kernel: its fused
(flash) CPU kernel has no dropout. For backward the math kernel keeps, per attention weight, the
softmax output, the dropout mask as float32 and the dropped weights (12 bytes), plus scaled copies
of q and k: 216 MiB per layer for 32 x 2 heads x 512 x 512. During training these matrices are most
of the activation memory of a long-window encoder (protein MLM, 512-residue windows).

`dropout_attention` computes the same function and keeps the softmax output and a boolean mask
(5 bytes a weight: 104 MiB for that layer, q, k and v included); backward recomputes the dropped
weights from them with one masked fill. Its mask comes from 15 random bits a weight (four weights
from one 64-bit draw: the CPU's Bernoulli sampling cost more than the attention's matmuls), so the
drop probability is p rounded to a multiple of 1/32,768 (0.1 -> 0.100006) and the kept weights are
scaled by 1/(1 - that p): the expectation is unchanged. Measured on one core (BENCHMARKS.md,
"Attention with dropout on the CPU"): as fast as the math kernel at 512 tokens, faster on short inputs.

Seeded like any torch dropout (the default CPU generator), so runs repeat, and gradient
checkpointing, which replays the forward under the saved generator state, draws the same masks.
"""

from __future__ import annotations

import torch

RANDOM_BITS = 15  # per attention weight: the low 15 bits of each 16-bit word of a 64-bit draw


def drop_mask(shape: torch.Size | tuple[int, ...], p: float) -> tuple[torch.Tensor, float]:
    """A boolean tensor of `shape`, True = dropped, each True with probability p rounded to
    1/32,768; returns it and that probability. From the default CPU generator."""
    n = 1
    for size in shape:
        n *= size
    # random_() on int64 fills [0, 2^63): every 16-bit word has 15 uniform low bits (the top bit of
    # one word in four is always 0, so it is masked off everywhere)
    words = torch.empty((n + 3) // 4, dtype=torch.int64).random_().view(torch.int16)[:n]
    threshold = round(p * (1 << RANDOM_BITS))
    return (words.bitwise_and(0x7FFF) < threshold).view(shape), threshold / (1 << RANDOM_BITS)


class _DropoutAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, mask, p):
        scale = q.shape[-1] ** -0.5
        scores = torch.matmul(q, k.transpose(-2, -1)).mul_(scale)  # (B, N, Tq, T)
        if mask is not None:
            scores.masked_fill_(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        del scores
        dropped, p_used = drop_mask(weights.shape, p)
        keep_scale = 1.0 / (1.0 - p_used)
        out = torch.matmul(weights.masked_fill(dropped, 0.0), v).mul_(keep_scale)  # the scale on (.., D), not (.., T)
        ctx.save_for_backward(q, k, v, weights, dropped)
        ctx.keep_scale, ctx.scale = keep_scale, scale
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, weights, dropped = ctx.saved_tensors
        grad_out = grad_out * ctx.keep_scale
        grad_v = torch.matmul(weights.masked_fill(dropped, 0.0).transpose(-2, -1), grad_out)
        grad_weights = torch.matmul(grad_out, v.transpose(-2, -1)).masked_fill_(dropped, 0.0)
        grad_scores = torch._softmax_backward_data(grad_weights, weights, -1, weights.dtype).mul_(ctx.scale)
        del grad_weights
        grad_q = torch.matmul(grad_scores, k)
        grad_k = torch.matmul(grad_scores.transpose(-2, -1), q)
        return grad_q, grad_k, grad_v, None, None


def dropout_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
                      p: float) -> torch.Tensor:
    """softmax(q kᵀ / √D, keys where mask is False left out) with dropout p, times v.
    q: (B, N, Tq, D); k, v: (B, N, T, D); mask: bool, broadcastable to (B, N, Tq, T), True = attend,
    or None. 0 < p < 1. -> (B, N, Tq, D)."""
    return _DropoutAttention.apply(q, k, v, mask, p)


def applies(q: torch.Tensor, mask: torch.Tensor | None, p: float) -> bool:
    """Whether `dropout_attention` replaces SDPA: training dropout on the CPU, a boolean mask or none,
    not inside torch.compile (inductor traces SDPA's math kernel itself). On GPU, SDPA's
    memory-efficient kernel has dropout and keeps no attention matrix."""
    return (0.0 < p < 1.0 and q.device.type == "cpu" and (mask is None or mask.dtype == torch.bool)
            and not torch.compiler.is_compiling())
