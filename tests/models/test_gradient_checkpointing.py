"""train.gradient_checkpointing: the same outputs and gradients (dropout included), less memory kept."""

from __future__ import annotations

import torch

from seqtune.models.encoder import Encoder, EncoderConfig


def _run(checkpointing: bool, attention_mask: torch.Tensor):
    torch.manual_seed(0)
    encoder = Encoder(EncoderConfig(vocab_size=50, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                                    intermediate_size=64, max_position_embeddings=64), add_pooler=False)
    encoder.gradient_checkpointing = checkpointing
    encoder.train()  # dropout on: the recomputed blocks must draw the same masks
    ids = torch.randint(5, 50, attention_mask.shape, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(2)
    out = encoder(ids, attention_mask)
    (out * torch.linspace(-1, 1, out.shape[-1])).sum().backward()
    return out.detach(), {n: p.grad.clone() for n, p in encoder.named_parameters()}


def test_same_outputs_and_gradients_with_checkpointing():
    full = torch.ones(3, 20, dtype=torch.long)
    padded = full.clone()
    padded[1, 7:] = 0
    padded[2, 3:] = 0  # mostly padding: the packed path
    for mask in (full, padded):
        out_a, grads_a = _run(False, mask)
        out_b, grads_b = _run(True, mask)
        assert torch.allclose(out_a, out_b, atol=1e-6, rtol=0)
        for name in grads_a:
            assert torch.allclose(grads_a[name], grads_b[name], atol=1e-5, rtol=1e-4), name


def test_checkpointing_keeps_fewer_activations():
    def saved_bytes(checkpointing: bool) -> int:
        torch.manual_seed(0)
        encoder = Encoder(EncoderConfig(vocab_size=50, hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
                                        intermediate_size=64, max_position_embeddings=128), add_pooler=False)
        encoder.gradient_checkpointing = checkpointing
        encoder.train()
        total = 0

        def pack(t):
            nonlocal total
            total += t.numel() * t.element_size()
            return t
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            encoder(torch.randint(5, 50, (4, 128)), torch.ones(4, 128, dtype=torch.long))
        return total
    assert saved_bytes(True) < 0.5 * saved_bytes(False)
