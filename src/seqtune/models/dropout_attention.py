"""Scaled dot-product attention with dropout on the CPU, keeping less for backward.

On the CPU, `F.scaled_dot_product_attention` with dropout runs PyTorch's math kernel: its fused
(flash) CPU kernel has no dropout. For backward the math kernel keeps, per attention weight, the
softmax output, the dropout mask as float32 and the dropped weights (12 bytes), plus scaled copies
of q and k: 216 MiB per layer for 32 x 2 heads x 512 x 512. During training these matrices are most
of the activation memory of a long-window encoder (protein MLM, 512-residue windows).

`dropout_attention` computes the same function and keeps the softmax output and a boolean mask
(5 bytes a weight: 104 MiB for that layer, q, k and v included); backward recomputes the dropped
weights from them. Its mask is `models/dropout.keep_mask`'s (15 random bits a weight, four from
one 64-bit draw: the CPU's Bernoulli sampling cost more than the attention's matmuls; the drop
probability is p rounded to 1/32,768, kept weights scaled by 1/(1 - that p)). Measured on one core
(BENCHMARKS.md, "Attention with dropout on the CPU"): as fast as the math kernel at 512 tokens,
faster on short inputs.

Seeded like any torch dropout (the default CPU generator), so runs repeat, and gradient
checkpointing, which replays the forward under the saved generator state, draws the same masks.
"""

from __future__ import annotations

import torch

from seqtune.models.dropout import apply_mask, keep_mask, uses_fast_mask


class _DropoutAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, mask, p):
        scale = q.shape[-1] ** -0.5
        scores = torch.matmul(q, k.transpose(-2, -1)).mul_(scale)  # (B, N, Tq, T)
        if mask is not None:
            scores.masked_fill_(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        del scores
        keep, keep_scale = keep_mask(weights.shape, p)
        out = torch.matmul(apply_mask(weights, keep, keep_scale), v)
        ctx.save_for_backward(q, k, v, weights, keep)
        ctx.keep_scale, ctx.scale = keep_scale, scale
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, weights, keep = ctx.saved_tensors
        grad_v = torch.matmul(apply_mask(weights, keep, ctx.keep_scale).transpose(-2, -1), grad_out)
        grad_weights = apply_mask(torch.matmul(grad_out, v.transpose(-2, -1)), keep, ctx.keep_scale)
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
    return uses_fast_mask(q, p, True) and (mask is None or mask.dtype == torch.bool)
