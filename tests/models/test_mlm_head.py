"""The MLM head: gathering masked positions first equals projecting everything and then selecting."""

from __future__ import annotations

import pytest
import torch

from seqtune.errors import SeqtuneError
from seqtune.models.encoder import Encoder, EncoderConfig
from seqtune.models.mlm_head import HEAD_KEYS, MaskedLMHead
from seqtune.models.task_model import TaskModel


def tiny(vocab=40):
    torch.manual_seed(0)
    cfg = EncoderConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=64)
    head = MaskedLMHead(cfg)
    with torch.no_grad():  # non-trivial head weights
        for p in head.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return TaskModel(Encoder(cfg, add_pooler=False), head)


def test_gathered_logits_equal_full_projection_at_masked_positions():
    model = tiny().eval()
    ids = torch.randint(5, 40, (3, 10))
    attention = torch.ones(3, 10, dtype=torch.long)
    attention[2, 7:] = 0
    positions = torch.rand(3, 10) < 0.3
    positions[2, 7:] = False
    batch = {"input_ids": ids, "attention_mask": attention}
    full = model(batch)  # (B, T, V)
    gathered = model({**batch, "mlm_positions": positions})  # (M, V)
    assert full.shape == (3, 10, 40) and gathered.shape == (int(positions.sum()), 40)
    torch.testing.assert_close(gathered, full[positions], rtol=1e-5, atol=1e-5)


def test_decoder_is_tied_to_word_embeddings_and_not_in_state_dict():
    model = tiny()
    assert model.head.decoder_weight is model.encoder.embeddings.word.weight
    assert sorted(model.head.state_dict()) == sorted(HEAD_KEYS)
    ids = torch.randint(5, 40, (2, 6))
    positions = torch.ones(2, 6, dtype=torch.bool)
    loss = model({"input_ids": ids, "attention_mask": torch.ones_like(ids), "mlm_positions": positions}).sum()
    loss.backward()
    assert model.encoder.embeddings.word.weight.grad[ids.unique()].abs().sum() > 0
    # parameters are counted once (no duplicate embedding matrix)
    assert len(list(model.parameters())) == len({id(p) for p in model.parameters()})


def test_load_pretrained_takes_the_head_and_refuses_mismatches():
    source, target = tiny(), tiny()
    tensors = dict(source.head.state_dict())
    tensors["cls.predictions.decoder.weight"] = source.encoder.embeddings.word.weight
    used = target.head.load_pretrained(tensors)
    assert set(used) == set(HEAD_KEYS) | {"cls.predictions.decoder.weight"}
    assert torch.equal(target.head.bias, source.head.bias)
    assert target.head.load_pretrained({"classifier.weight": torch.zeros(2, 32)}) == []
    with pytest.raises(SeqtuneError, match="part of an MLM head"):
        target.head.load_pretrained({"cls.predictions.bias": torch.zeros(40)})
    other = dict(tiny(vocab=50).head.state_dict())
    with pytest.raises(SeqtuneError, match="different vocabulary"):
        target.head.load_pretrained(other)
