"""CPU training dropout (models/dropout.py): the masks' rate and seeding, x * mask * scale forward and
backward, nn.Dropout's behaviour everywhere else, and the encoder using it."""

import pytest
import torch
import torch.nn.functional as F

from seqtune.models.dropout import Dropout, apply_mask, dropout, keep_mask, uses_fast_mask
from seqtune.models.encoder import Encoder, EncoderConfig


def test_drop_rate_is_p_and_masks_follow_the_seed():
    torch.manual_seed(0)
    keep, scale = keep_mask((1000, 1000), 0.1)
    p_used = round(0.1 * 32768) / 32768
    assert keep.dtype == torch.bool and keep.shape == (1000, 1000)
    assert scale == pytest.approx(1 / (1 - p_used)) and abs(p_used - 0.1) < 1 / 32768
    assert abs(1 - keep.float().mean().item() - p_used) < 0.002  # 1e6 draws: sd 0.0003
    # every 16-bit word of a 64-bit draw is used: no position in a group of four drops more or less
    rates = 1 - keep.reshape(-1, 4).float().mean(0)
    assert (rates - p_used).abs().max() < 0.003
    torch.manual_seed(0)
    assert torch.equal(keep_mask((1000, 1000), 0.1)[0], keep)
    assert not torch.equal(keep_mask((1000, 1000), 0.1)[0], keep)  # the generator moved on
    assert keep_mask((3, 5), 0.5)[0].shape == (3, 5)  # a size that is not a multiple of four
    assert keep_mask((4, 4), 0.5)[0].float().mean() < 1


def test_forward_and_backward_are_x_times_mask_times_scale():
    x = torch.randn(6, 10, requires_grad=True)
    torch.manual_seed(3)
    keep, scale = keep_mask(x.shape, 0.25)
    torch.manual_seed(3)
    out = dropout(x, 0.25, True)
    torch.testing.assert_close(out, x * keep * scale)
    upstream = torch.randn_like(out)
    (grad,) = torch.autograd.grad(out, x, upstream)
    torch.testing.assert_close(grad, upstream * keep * scale)
    # a non-contiguous input (a transposed view) gets the same treatment
    y = torch.randn(10, 6).t().requires_grad_()
    torch.manual_seed(3)
    torch.testing.assert_close(dropout(y, 0.25, True), y * keep * scale)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_apply_mask_is_aten_dropout_backward(dtype):
    x = torch.randn(7, 9, dtype=dtype).t()  # non-contiguous
    keep = torch.rand(9, 7) > 0.3
    got = apply_mask(x, keep, 1.25)
    assert got.dtype == dtype and got.shape == x.shape
    torch.testing.assert_close(got, torch.ops.aten.native_dropout_backward(x, keep, 1.25))
    assert torch.equal(got == 0, ~keep | (x == 0))


def test_apply_mask_in_pieces_and_in_place_is_the_same_arithmetic(monkeypatch):
    """A tensor larger than APPLY_CHUNK goes a piece at a time (the last piece shorter), bit-equal to one
    call; `out` may be the input itself, or a non-contiguous tensor (then one call and a copy)."""
    from seqtune.models import dropout as module

    x = torch.randn(5, 7, 11)
    keep = torch.rand(5, 7, 11) > 0.25
    whole = torch.addcmul(torch.zeros(()), x, keep.to(x.dtype), value=1.5)
    monkeypatch.setattr(module, "APPLY_CHUNK", 64)  # 385 elements: 6 full pieces and one of 1
    calls, addcmul = [], torch.addcmul
    monkeypatch.setattr(torch, "addcmul", lambda *a, **k: calls.append(1) or addcmul(*a, **k))
    got = apply_mask(x, keep, 1.5)
    assert len(calls) == 7 and torch.equal(got, whole) and got.data_ptr() != x.data_ptr()
    y = x.clone()
    assert apply_mask(y, keep, 1.5, out=y) is y and torch.equal(y, whole)
    target = torch.empty(11, 7, 5).permute(2, 1, 0)  # non-contiguous out
    assert apply_mask(x, keep, 1.5, out=target) is target and torch.equal(target, whole)
    assert torch.equal(apply_mask(x.transpose(0, 2), keep.transpose(0, 2), 1.5), whole.transpose(0, 2))


def test_nn_dropout_everywhere_else():
    x = torch.randn(4, 8)
    assert torch.equal(dropout(x, 0.3, False), x)  # evaluation: identity
    assert torch.equal(dropout(x, 0.0, True), x)
    assert not uses_fast_mask(x, 0.0, True) and not uses_fast_mask(x, 1.0, True)
    assert not uses_fast_mask(x.to("meta"), 0.3, True) and uses_fast_mask(x, 0.3, True)
    assert torch.equal(dropout(x, 1.0, True), F.dropout(x, 1.0, True))  # all dropped: torch's rule
    module = Dropout(0.3)
    assert isinstance(module, torch.nn.Dropout) and module.p == 0.3 and not list(module.state_dict())
    assert torch.equal(module.eval()(x), x)


def test_the_encoder_uses_it_and_gradient_checkpointing_replays_its_masks():
    cfg = EncoderConfig(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32)
    torch.manual_seed(0)
    enc = Encoder(cfg)
    assert isinstance(enc.layers[0].dropout, Dropout)
    ids, mask = torch.randint(5, 40, (3, 9)), torch.ones(3, 9, dtype=torch.long)
    mask[2, 5:] = 0

    def run(checkpointing):
        enc.gradient_checkpointing = checkpointing
        enc.zero_grad()
        torch.manual_seed(7)
        out = enc.train()(ids, mask)
        out.pow(2).sum().backward()
        return out.detach(), enc.layers[0].ffn_in.weight.grad.clone()

    (a, ga), (b, gb) = run(False), run(True)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(ga, gb)
    torch.manual_seed(8)
    assert not torch.allclose(enc(ids, mask), a)  # another seed, other masks
