"""Attention with dropout on the CPU (models/dropout_attention.py): the same function as an explicit
softmax-dropout-matmul with the same mask, less kept for backward, and used by the encoder in training."""

import math

import pytest
import torch
import torch.nn.functional as F

from seqtune.models.dropout import keep_mask
from seqtune.models.dropout_attention import applies, chunk_plan, dropout_attention
from seqtune.models.encoder import Encoder, EncoderConfig


def qkv(B=2, N=3, Tq=7, T=7, D=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(B, N, t, D, generator=g, requires_grad=True) for t in (Tq, T, T)]


def reference(q, k, v, mask, keep, keep_scale):
    """The textbook composite: softmax of the masked scaled scores, dropped weights zeroed, the rest scaled."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.softmax(-1) * keep * keep_scale
    return weights @ v


@pytest.mark.parametrize("shape, with_mask", [((2, 3, 7, 7, 8), True), ((2, 3, 1, 9, 4), True), ((1, 2, 5, 5, 8), False)])
def test_outputs_and_gradients_match_the_composite_with_the_same_mask(shape, with_mask):
    B, N, Tq, T, D = shape
    q, k, v = qkv(B, N, Tq, T, D)
    mask = None
    if with_mask:
        mask = torch.ones(B, 1, 1, T, dtype=torch.bool)
        mask[0, ..., T - 2:] = False  # the first input is padded by two
    torch.manual_seed(5)
    keep, keep_scale = keep_mask((B, N, Tq, T), 0.3)
    assert 0 < keep.float().mean() < 1
    torch.manual_seed(5)
    out = dropout_attention(q, k, v, mask, 0.3)
    expected = reference(q, k, v, mask, keep, keep_scale)
    torch.testing.assert_close(out, expected)
    upstream = torch.randn_like(out)
    got = torch.autograd.grad(out, (q, k, v), upstream)
    want = torch.autograd.grad(expected, (q, k, v), upstream)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b)
    if with_mask:  # padded keys and values get no gradient, as they had no weight
        assert got[1][0, :, T - 2:].abs().max() == 0 and got[2][0, :, T - 2:].abs().max() == 0
        assert got[1][1].abs().max() > 0


def test_keeps_less_for_backward_than_sdpas_math_kernel():
    q, k, v = qkv(B=2, N=2, Tq=64, T=64, D=16)

    def kept_bytes(fn):
        storages = {}

        def pack(t):
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            fn()
        return sum(storages.values())

    ours = kept_bytes(lambda: dropout_attention(q, k, v, None, 0.1))
    sdpa = kept_bytes(lambda: F.scaled_dot_product_attention(q, k, v, dropout_p=0.1))
    weights = 2 * 2 * 64 * 64
    assert ours == 5 * weights + 3 * q.numel() * 4  # softmax output (fp32) + bool mask, and q, k, v
    assert sdpa >= 12 * weights  # softmax output, float mask, dropped weights


def test_applies_only_to_cpu_training_dropout_with_a_boolean_mask():
    q = torch.zeros(1, 1, 2, 2)
    assert applies(q, None, 0.1) and applies(q, torch.ones(1, 1, 1, 2, dtype=torch.bool), 0.1)
    assert not applies(q, None, 0.0)  # evaluation: SDPA's fused kernel
    assert not applies(q, torch.zeros(1, 1, 1, 2), 0.1)  # an additive float mask: SDPA
    assert not applies(q.to(torch.device("meta")), None, 0.1)


def test_encoder_trains_through_it_and_evaluates_through_sdpa(monkeypatch):
    from seqtune.models import dropout_attention as module

    calls = []
    monkeypatch.setattr(module, "dropout_attention", lambda *a: calls.append(a[3]) or dropout_attention(*a))
    torch.manual_seed(0)
    enc = Encoder(EncoderConfig(vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                intermediate_size=32, max_position_embeddings=32, attention_probs_dropout_prob=0.2))
    ids, mask = torch.randint(5, 40, (2, 6)), torch.ones(2, 6, dtype=torch.long)
    mask[1, 4:] = 0
    out = enc.train()(ids, mask)
    out.sum().backward()
    assert len(calls) == 1 and enc.layers[0].attention.qkv.weight.grad.abs().max() > 0
    torch.manual_seed(1)
    c = enc(ids, mask)
    torch.manual_seed(1)
    torch.testing.assert_close(enc(ids, mask), c)  # seeded: the same masks again
    with torch.no_grad():
        a, b = enc.eval()(ids, mask), enc(ids, mask)
    torch.testing.assert_close(a, b)  # evaluation: no dropout, SDPA
    assert len(calls) == 3


# ---- the chunked path (long inputs): memory linear in the length, backward recomputes ----------

def chunk_masks(shape, chunk_weights, p, seed):
    """The masks the chunked path draws under `seed`: one draw per chunk of `chunk_plan`, in its order."""
    B, N, Tq, T = shape
    keep = torch.zeros(B * N, Tq, T, dtype=torch.bool)
    torch.manual_seed(seed)
    for heads, rows in chunk_plan(B * N, Tq, T, chunk_weights):
        chunk, keep_scale = keep_mask(keep[heads, rows].shape, p)
        keep[heads, rows] = chunk
    return keep.view(B, N, Tq, T), keep_scale


def test_chunk_plan_covers_every_weight_once_with_whole_rows_when_they_fit():
    for heads, Tq, T, weights in [(8, 5, 7, 80), (8, 5, 7, 35), (3, 9, 9, 20), (2, 10, 4, 1), (5, 3, 3, 10**6)]:
        seen = torch.zeros(heads, Tq, T, dtype=torch.int)
        plan = chunk_plan(heads, Tq, T, weights)
        for h, r in plan:
            seen[h, r] += 1
            if Tq * T <= weights:
                assert r == slice(0, Tq)  # whole matrices of one or more heads
            assert seen[h, r].numel() <= max(weights, T)
        assert torch.equal(seen, torch.ones_like(seen))
    assert len(chunk_plan(8, 5, 7, 80)) == 4 and len(chunk_plan(3, 9, 9, 20)) == 15


@pytest.mark.parametrize("shape, chunk_weights, with_mask", [((2, 3, 7, 7, 8), 21, True), ((1, 2, 9, 9, 4), 9, False),
                                                             ((2, 2, 5, 11, 8), 110, True)])
def test_chunked_path_matches_the_composite_with_the_masks_it_draws(shape, chunk_weights, with_mask):
    B, N, Tq, T, D = shape
    q, k, v = qkv(B, N, Tq, T, D, seed=3)
    mask = None
    if with_mask:
        mask = torch.ones(B, 1, 1, T, dtype=torch.bool)
        mask[-1, ..., T - 3:] = False
    keep, keep_scale = chunk_masks((B, N, Tq, T), chunk_weights, 0.3, seed=11)
    torch.manual_seed(11)
    out = dropout_attention(q, k, v, mask, 0.3, chunk_weights=chunk_weights)
    expected = reference(q, k, v, mask, keep, keep_scale)
    torch.testing.assert_close(out, expected)
    upstream = torch.randn_like(out)
    before_backward = torch.get_rng_state()
    got = torch.autograd.grad(out, (q, k, v), upstream)  # backward replays the forward's draws ...
    assert torch.equal(torch.get_rng_state(), before_backward)  # ... and leaves the generator as it found it
    want = torch.autograd.grad(expected, (q, k, v), upstream)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b)


def test_chunked_path_keeps_no_attention_matrix():
    q, k, v = qkv(B=2, N=2, Tq=64, T=64, D=16)
    mask = torch.ones(2, 1, 1, 64, dtype=torch.bool)
    storages = {}

    def pack(t):
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        dropout_attention(q, k, v, mask, 0.1, chunk_weights=512)
    # q, k, v as flat copies (and the scaling's scalar), the mask per head: nothing of size Tq x T
    assert sum(storages.values()) <= 3 * q.numel() * 4 + 4 * 64 + 64


def test_chunk_rule_takes_total_size_and_long_matrices():
    from seqtune.models.dropout_attention import runs_in_chunks

    assert not runs_in_chunks(32 * 12, 64, 64)  # short sentences: 1.6M weights, whole
    assert not runs_in_chunks(32 * 12, 128, 128)  # 6.3M weights of 128 x 128 matrices: whole
    assert runs_in_chunks(64 * 12, 128, 128)  # 12.6M: over WHOLE_WEIGHTS, chunks
    assert runs_in_chunks(8 * 2, 512, 512)  # 4.2M weights of long (512 x 512) matrices: chunks
    assert not runs_in_chunks(4 * 2, 512, 512)  # 2.1M: a small call stays whole however long
    assert not runs_in_chunks(60, 255, 255)  # 3.9M weights, matrices just under 256 x 256: whole


def test_long_calls_take_the_chunked_path_and_the_encoder_checkpoints_through_it(monkeypatch):
    from seqtune.models import dropout_attention as module

    plans = []
    original = module._ChunkedDropoutAttention.apply
    monkeypatch.setattr(module._ChunkedDropoutAttention, "apply", lambda *a: plans.append(a[-1]) or original(*a))
    monkeypatch.setattr(module, "WHOLE_WEIGHTS", 9 * 9 - 1)  # any call with a 9-token sequence is over
    monkeypatch.setattr(module, "CHUNK_WEIGHTS", 9 * 4)  # -> chunks of 4 query rows of one head
    torch.manual_seed(0)
    enc = Encoder(EncoderConfig(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                intermediate_size=32, max_position_embeddings=32, attention_probs_dropout_prob=0.2))
    ids, mask = torch.randint(5, 40, (2, 9)), torch.ones(2, 9, dtype=torch.long)
    mask[1, 7:] = 0

    def run(checkpointing):
        enc.gradient_checkpointing = checkpointing
        enc.zero_grad()
        torch.manual_seed(7)
        out = enc.train()(ids, mask)
        out.pow(2).sum().backward()
        return out.detach(), enc.layers[0].attention.qkv.weight.grad.clone()

    (a, ga), (b, gb) = run(False), run(True)
    assert plans and all(rows.stop - rows.start <= 4 for plan in plans for _, rows in plan)
    torch.testing.assert_close(a, b)  # checkpointing replays the forward, masks included
    torch.testing.assert_close(ga, gb)
    assert ga.abs().max() > 0
