import json

import pytest
import torch

from seqtune.errors import SeqtuneError
from seqtune.models.checkpoint import (encoder_state_to_hf, load_encoder_state, read_weights, split_checkpoint,
                                       encoder_config_from_dir)
from seqtune.models.encoder import Encoder, EncoderConfig
from seqtune.models.checkpoint import save_weights


def test_key_mapping_round_trip():
    enc = Encoder(EncoderConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                intermediate_size=32, max_position_embeddings=20))
    hf = encoder_state_to_hf(enc.state_dict())
    assert "bert.encoder.layer.1.attention.self.value.bias" in hf
    assert "bert.embeddings.LayerNorm.weight" in hf
    split = split_checkpoint(hf)
    assert not split.other and not split.unmapped_encoder_keys
    for k, v in enc.state_dict().items():
        assert torch.equal(split.encoder[k], v), k


def test_missing_and_unexpected_weights_are_listed(tiny_checkpoint):
    state = read_weights(tiny_checkpoint)
    state.pop("encoder.layer.1.output.dense.weight")
    state["encoder.layer.7.output.dense.weight"] = torch.zeros(1)
    enc = Encoder(encoder_config_from_dir(tiny_checkpoint))
    with pytest.raises(SeqtuneError) as e:
        load_encoder_state(enc, split_checkpoint(state), "ckpt")
    assert "encoder.layer.1.output.dense.weight" in str(e.value) and "encoder.layer.7.output.dense.weight" in str(e.value)


def test_checkpoint_without_pooler_gets_fresh_pooler(tiny_checkpoint):
    state = {k: v for k, v in read_weights(tiny_checkpoint).items() if not k.startswith("pooler")}
    enc = Encoder(encoder_config_from_dir(tiny_checkpoint))
    report = load_encoder_state(enc, split_checkpoint(state), "ckpt")
    assert any("pooler" in line for line in report)


def test_directory_without_config_or_weights(tmp_path, tiny_checkpoint):
    with pytest.raises(SeqtuneError, match="no config.json"):
        encoder_config_from_dir(tmp_path)
    with pytest.raises(SeqtuneError, match="no weights"):
        read_weights(tmp_path)


def test_pytorch_bin_weights_load(tmp_path, tiny_checkpoint):
    state = read_weights(tiny_checkpoint)
    torch.save(state, tmp_path / "pytorch_model.bin")
    loaded = read_weights(tmp_path)
    assert set(loaded) == set(state)


def test_sharded_safetensors_checkpoint_loads_all_shards(tmp_path, tiny_checkpoint):
    state = read_weights(tiny_checkpoint)
    names = sorted(state)
    shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    for shard, keys in shards.items():
        save_weights(tmp_path / shard, {k: state[k] for k in keys})
    weight_map = {k: shard for shard, keys in shards.items() for k in keys}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    loaded = read_weights(tmp_path)
    assert set(loaded) == set(state) and all(torch.equal(loaded[k], state[k]) for k in state)

    (tmp_path / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(SeqtuneError, match="model-00002-of-00002.safetensors"):
        read_weights(tmp_path)
    weight_map["not.in.any.shard"] = "model-00001-of-00002.safetensors"
    save_weights(tmp_path / "model-00002-of-00002.safetensors", {k: state[k] for k in names[1::2]})
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    with pytest.raises(SeqtuneError, match="not.in.any.shard"):
        read_weights(tmp_path)


def test_unsupported_model_type():
    with pytest.raises(SeqtuneError, match="'deberta-v2' is not supported.*'bert', 'roberta', 'xlm-roberta'"):
        EncoderConfig.from_dict({"model_type": "deberta-v2"})
