"""Encoder presets and fresh model directories that both seqtune and transformers load."""

from __future__ import annotations

import pytest
import torch

from seqtune.errors import SeqtuneError
from seqtune.models.checkpoint import encoder_config_from_dir, read_weights
from seqtune.models.encoder import Encoder
from seqtune.models.presets import PRESETS, ArchitectureSpec, describe, encoder_config, write_initial_model
from seqtune.tokenization import load_tokenizer
from seqtune.vocab_builder import build_char_tokenizer


@pytest.mark.parametrize("preset", list(PRESETS))
def test_presets_sizes(preset):
    cfg = encoder_config(ArchitectureSpec(preset=preset), vocab_size=30)
    layers, hidden = PRESETS[preset]
    assert (cfg.num_hidden_layers, cfg.hidden_size) == (layers, hidden)
    assert cfg.num_attention_heads == hidden // 64 and cfg.intermediate_size == 4 * hidden
    assert cfg.max_position_embeddings == 512


def test_overrides_and_parameter_count():
    spec = ArchitectureSpec(preset="tiny", layers=3, hidden=96, heads=3, intermediate=200,
                            max_positions=1024, dropout=0.0, attention_dropout=0.05)
    cfg = encoder_config(spec, vocab_size=33, pad_token_id=0)
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads) == (3, 96, 3)
    assert (cfg.intermediate_size, cfg.max_position_embeddings) == (200, 1024)
    assert (cfg.hidden_dropout_prob, cfg.attention_probs_dropout_prob) == (0.0, 0.05)
    encoder = Encoder(cfg, add_pooler=False)
    head = cfg.hidden_size ** 2 + 3 * cfg.hidden_size + cfg.vocab_size
    assert f"{(sum(p.numel() for p in encoder.parameters()) + head) / 1e6:.1f}M" in describe(cfg)


def test_bad_architectures_are_errors():
    with pytest.raises(SeqtuneError, match="unknown architecture preset 'huge'.*tiny"):
        encoder_config(ArchitectureSpec(preset="huge"), 30)
    with pytest.raises(SeqtuneError, match="not divisible"):
        encoder_config(ArchitectureSpec(hidden=100, heads=3), 30)
    with pytest.raises(SeqtuneError, match="max_length 600 is larger than model.architecture.max_positions 512"):
        encoder_config(ArchitectureSpec(max_positions=512), 30, max_length=600)
    assert encoder_config(ArchitectureSpec(), 30, max_length=600).max_position_embeddings == 600


def test_initial_model_directory_loads_in_seqtune_and_transformers(tmp_path):
    transformers = pytest.importorskip("transformers")
    tok = build_char_tokenizer(alphabet="protein")
    cfg = encoder_config(ArchitectureSpec(preset="tiny", layers=1, hidden=64), tok.vocab_size)
    path = write_initial_model(tmp_path / "init", cfg, tok, seed=3)
    assert encoder_config_from_dir(path).hidden_size == 64
    assert load_tokenizer(path).kind == "char"
    weights = read_weights(path)
    assert "cls.predictions.bias" in weights and "bert.embeddings.word_embeddings.weight" in weights
    # the same seed gives the same weights
    again = read_weights(write_initial_model(tmp_path / "again", cfg, tok, seed=3))
    assert all(torch.equal(weights[k], again[k]) for k in weights)
    hf = transformers.BertForMaskedLM.from_pretrained(path)
    assert torch.equal(hf.bert.embeddings.word_embeddings.weight, weights["bert.embeddings.word_embeddings.weight"])
    assert hf.cls.predictions.decoder.weight.data_ptr() == hf.bert.embeddings.word_embeddings.weight.data_ptr()
