import pytest
import torch

from seqtune.models.encoder import Encoder, EncoderConfig


def tiny():
    torch.manual_seed(0)
    return Encoder(EncoderConfig(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
                                 intermediate_size=32, max_position_embeddings=32)).eval()


def test_shapes_and_gradients():
    enc = tiny().train()
    ids = torch.randint(5, 40, (3, 7))
    out = enc(ids, torch.ones(3, 7, dtype=torch.long))
    assert out.shape == (3, 7, 16)
    out.sum().backward()
    assert all(p.grad is not None for n, p in enc.named_parameters() if not n.startswith("pooler"))


def test_padding_is_masked():
    enc = tiny()
    ids = torch.randint(5, 40, (1, 5))
    padded = torch.cat([ids, torch.zeros(1, 4, dtype=torch.long)], 1)
    mask = torch.tensor([[1] * 5 + [0] * 4])
    with torch.no_grad():
        a = enc(ids)
        b = enc(padded, mask)[:, :5]
    assert torch.allclose(a, b, atol=1e-6)


def test_first_token_only_gives_the_same_cls_state_and_gradients():
    enc = tiny()
    ids = torch.randint(5, 40, (3, 7))
    mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3, [1] * 2 + [0] * 5])
    types = torch.tensor([[0] * 4 + [1] * 3] * 3)
    full = enc(ids, mask, types)
    first = enc(ids, mask, types, first_token_only=True)
    assert first.shape == (3, 1, 16)
    assert torch.allclose(first[:, 0], full[:, 0], atol=1e-6)
    # the gradients of a loss on [CLS] agree too (dropout off), so training does the same arithmetic
    grads = []
    for out in (full, first):
        enc.zero_grad()
        (enc.pooler(out) ** 2).sum().backward()
        grads.append({n: p.grad.clone() for n, p in enc.named_parameters()})
    for name, g in grads[0].items():
        assert torch.allclose(grads[1][name], g, atol=1e-5), name


@pytest.mark.parametrize("varlen", [False, True])
def test_packed_blocks_match_padded_blocks(monkeypatch, varlen):
    """A batch with much padding runs its blocks on the real tokens only (Packing); the real tokens'
    states and all gradients equal those of the padded computation, with and without [CLS]-only, with
    attention over the scattered padded layout or one sequence at a time (varlen)."""
    import seqtune.models.encoder as encoder_module

    monkeypatch.setattr(encoder_module, "VARLEN_FROM_LENGTH", 1 if varlen else 10**9)
    enc = tiny()
    ids = torch.randint(5, 40, (3, 9))
    mask = torch.tensor([[1] * 9, [1] * 4 + [0] * 5, [1] * 2 + [0] * 7])
    real = mask.bool()
    for first_token_only in (False, True):
        outs, grads = [], []
        for fill in (0.0, 1.01):  # 0: never pack; 1.01: always pack
            monkeypatch.setattr(encoder_module, "PACK_BELOW_FILL", fill)
            enc.zero_grad()
            out = enc(ids, mask, first_token_only=first_token_only)
            kept = out[:, 0] if first_token_only else out[real]
            (kept ** 2).sum().backward()
            outs.append(kept.detach())
            grads.append({n: p.grad.clone() for n, p in enc.named_parameters() if p.grad is not None})
            if fill > 1 and not first_token_only:
                assert torch.equal(out[~real], torch.zeros_like(out[~real]))  # padding comes out as zeros
        assert torch.allclose(outs[0], outs[1], atol=1e-6)
        assert grads[0].keys() == grads[1].keys()
        for name, g in grads[0].items():
            assert torch.allclose(grads[1][name], g, atol=1e-5), name
