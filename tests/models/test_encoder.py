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
