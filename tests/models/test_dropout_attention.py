"""Attention with dropout on the CPU (models/dropout_attention.py): the same function as an explicit
softmax-dropout-matmul with the same mask, less kept for backward, and used by the encoder in training."""

import math

import pytest
import torch
import torch.nn.functional as F

from seqtune.models.dropout import keep_mask
from seqtune.models.dropout_attention import applies, dropout_attention
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
