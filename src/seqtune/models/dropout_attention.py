"""Scaled dot-product attention with dropout on the CPU, keeping less for backward.

On the CPU, `F.scaled_dot_product_attention` with dropout runs PyTorch's math kernel: its fused
(flash) CPU kernel has no dropout. For backward the math kernel keeps, per attention weight, the
softmax output, the dropout mask as float32 and the dropped weights (12 bytes), plus scaled copies
of q and k: 216 MiB per layer for 32 x 2 heads x 512 x 512. During training these matrices are most
of the activation memory of a long-window encoder (protein MLM, 512-residue windows).

`dropout_attention` computes the same function in one of two ways:

- whole: the softmax output and a boolean mask are kept (5 bytes a weight: 104 MiB for that
  layer, q, k and v included); backward recomputes the dropped weights from them. As fast as the
  math kernel at 512 tokens, faster on short inputs (BENCHMARKS.md, "Attention with dropout on the
  CPU").
- in chunks (`chunk_plan`), when a call has more than `WHOLE_WEIGHTS` weights, or more than
  `LONG_WHOLE_WEIGHTS` of long (256 x 256 or more) matrices (`runs_in_chunks`): only q, k and v are
  kept (memory linear in the length, like the flash kernels), and backward recomputes each chunk's
  scores, softmax and dropout mask (the mask from the default generator's state saved at the
  forward, which backward restores for its draws and then puts back). More arithmetic, bounded
  memory: what makes 2,048-token windows cost what a few 512-token ones do.

Masks come from `models/dropout.keep_mask` (15 random bits a weight, four from one 64-bit draw: the
CPU's Bernoulli sampling cost more than the attention's matmuls; the drop probability is p rounded
to 1/32,768, kept weights scaled by 1/(1 - that p)). Seeded like any torch dropout (the default CPU
generator), so runs repeat, and gradient checkpointing, which replays the forward under the saved
generator state, draws the same masks.
"""

from __future__ import annotations

import torch

from seqtune.models.dropout import apply_mask, keep_mask, uses_fast_mask

WHOLE_WEIGHTS = 1 << 23  # above this many weights (B x heads x Tq x T) a call runs in chunks
# ... and above this many, when each head's matrix is LONG_HEAD_WEIGHTS (256 x 256) or more
LONG_WHOLE_WEIGHTS = 1 << 21
LONG_HEAD_WEIGHTS = 1 << 16
CHUNK_WEIGHTS = 1 << 18  # weights a chunk (1 MiB of float32: stays in the core's cache)


class _DropoutAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, mask, p):
        scale = q.shape[-1] ** -0.5
        # scaled here, not the (Tq, T) scores: D work a row instead of T. q, k and v are usually views
        # into the projection's (B, T, 3, N, D) output, which matmul would copy (again in backward) to
        # batch its heads: made contiguous once here instead
        q = torch.mul(q, scale, out=torch.empty(q.shape, dtype=q.dtype, device=q.device))
        k, v = k.contiguous(), v.contiguous()
        scores = torch.matmul(q, k.transpose(-2, -1))  # (B, N, Tq, T)
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
        q, k, v, weights, keep = ctx.saved_tensors  # q is scaled
        grad_out = grad_out.contiguous()  # a view of the heads' concatenation: copied once, not per matmul
        grad_v = torch.matmul(apply_mask(weights, keep, ctx.keep_scale).transpose(-2, -1), grad_out)
        grad_weights = torch.matmul(grad_out, v.transpose(-2, -1))
        apply_mask(grad_weights, keep, ctx.keep_scale, out=grad_weights)  # in place: no second (B, N, Tq, T)
        grad_scores = torch._softmax_backward_data(grad_weights, weights, -1, weights.dtype)
        del grad_weights
        grad_q = torch.matmul(grad_scores, k).mul_(ctx.scale)
        grad_k = torch.matmul(grad_scores.transpose(-2, -1), q)
        return grad_q, grad_k, grad_v, None, None


def chunk_plan(heads: int, Tq: int, T: int, weights: int) -> list[tuple[slice, slice]]:
    """(heads, query rows) of each chunk of a (heads, Tq, T) call, about `weights` weights each: whole
    (Tq, T) matrices of several heads when one fits, else rows of one head (row blocks keep the
    matrix products wide; a few rows a chunk would make them slow)."""
    if Tq * T <= weights:
        step = max(1, weights // (Tq * T))
        return [(slice(h, h + step), slice(0, Tq)) for h in range(0, heads, step)]
    rows = max(1, weights // T)
    return [(slice(h, h + 1), slice(r, r + rows)) for h in range(heads) for r in range(0, Tq, rows)]


def _chunk_weights(q, k_t, mask, heads: slice, rows: slice, p: float):
    """Softmax of one chunk's scores q kᵀ (q: the chunk's rows, k_t: its heads), masked, its keep mask
    and the kept weights' scale. mask: the whole call's (B*N, 1 or Tq, T), or None."""
    if mask is not None:
        mask = mask[heads, rows if mask.shape[-2] > 1 else slice(None)]
    scores = torch.matmul(q, k_t)
    if mask is not None:
        scores.masked_fill_(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return weights, *keep_mask(weights.shape, p)


class _ChunkedDropoutAttention(torch.autograd.Function):
    """On (B*N, T, D) tensors (heads flattened) and a (B*N, 1 or Tq, T) mask or None."""

    @staticmethod
    def forward(ctx, q, k, v, mask, p, plan):
        ctx.rng_state = torch.get_rng_state()  # the masks' draws, replayed in backward
        k_t = k.transpose(-2, -1)
        out = q.new_empty(*q.shape[:-1], v.shape[-1])
        for heads, rows in plan:
            weights, keep, keep_scale = _chunk_weights(q[heads, rows], k_t[heads], mask, heads, rows, p)
            torch.matmul(apply_mask(weights, keep, keep_scale), v[heads], out=out[heads, rows])
        ctx.save_for_backward(q, k, v, mask)
        ctx.p, ctx.plan = p, plan
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, mask = ctx.saved_tensors
        grad_q, grad_k, grad_v = torch.empty_like(q), torch.zeros_like(k), torch.zeros_like(v)
        k_t, v_t = k.transpose(-2, -1), v.transpose(-2, -1)
        state = torch.get_rng_state()
        torch.set_rng_state(ctx.rng_state)
        try:
            for heads, rows in ctx.plan:
                q_c, grad_c = q[heads, rows], grad_out[heads, rows]
                weights, keep, keep_scale = _chunk_weights(q_c, k_t[heads], mask, heads, rows, ctx.p)
                grad_v[heads] += torch.matmul(apply_mask(weights, keep, keep_scale).transpose(-2, -1), grad_c)
                grad_weights = torch.matmul(grad_c, v_t[heads])
                apply_mask(grad_weights, keep, keep_scale, out=grad_weights)
                grad_scores = torch._softmax_backward_data(grad_weights, weights, -1, weights.dtype)
                torch.matmul(grad_scores, k[heads], out=grad_q[heads, rows])
                grad_k[heads] += torch.matmul(grad_scores.transpose(-2, -1), q_c)
        finally:
            torch.set_rng_state(state)
        return grad_q, grad_k, grad_v, None, None, None


def dropout_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
                      p: float, chunk_weights: int | None = None) -> torch.Tensor:
    """softmax(q kᵀ / √D, keys where mask is False left out) with dropout p, times v.
    q: (B, N, Tq, D); k, v: (B, N, T, D); mask: bool, broadcastable to (B, N, Tq, T), True = attend,
    or None. 0 < p < 1. chunk_weights: weights a chunk (None: chunks of CHUNK_WEIGHTS where
    `runs_in_chunks`, else whole; see `chunk_plan`). -> (B, N, Tq, D)."""
    B, N, Tq, D = q.shape
    T = k.shape[-2]
    if chunk_weights is None and runs_in_chunks(B * N, Tq, T):
        chunk_weights = CHUNK_WEIGHTS
    if chunk_weights is None:
        return _DropoutAttention.apply(q, k, v, mask, p)
    flat = (q * D ** -0.5).reshape(B * N, Tq, D), k.reshape(B * N, T, D), v.reshape(B * N, T, v.shape[-1])
    if mask is not None:
        mask = mask.expand(B, N, mask.shape[-2], T).reshape(B * N, -1, T)
    plan = chunk_plan(B * N, Tq, T, chunk_weights)
    out = _ChunkedDropoutAttention.apply(*flat, mask, p, plan)
    return out.view(B, N, Tq, -1)


def runs_in_chunks(heads: int, Tq: int, T: int) -> bool:
    """Whether a call of `heads` (batch x heads) (Tq, T) matrices runs in chunks: above WHOLE_WEIGHTS
    weights, or above LONG_WHOLE_WEIGHTS when the matrices are long (LONG_HEAD_WEIGHTS or more each)."""
    weights = heads * Tq * T
    return weights > WHOLE_WEIGHTS or (weights > LONG_WHOLE_WEIGHTS and Tq * T >= LONG_HEAD_WEIGHTS)


def applies(q: torch.Tensor, mask: torch.Tensor | None, p: float) -> bool:
    """Whether `dropout_attention` replaces SDPA: training dropout on the CPU, a boolean mask or none,
    not inside torch.compile (inductor traces SDPA's math kernel itself). On GPU, SDPA's
    memory-efficient kernel has dropout and keeps no attention matrix."""
    return uses_fast_mask(q, p, True) and (mask is None or mask.dtype == torch.bool)
