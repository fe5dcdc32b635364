"""Encoder configurations for training from scratch, and fresh model directories in Hugging Face format.

Presets follow the sizes of Google's BERT miniatures (Turc et al., 2019): layers x hidden size, with
hidden / 64 attention heads and a feed-forward layer 4 x wider. Any field can be overridden.

Two families can be trained from scratch (`family`): BERT's shape (learnt positions, LayerNorm after
each sub-layer) and ESM-2's (rotary positions, LayerNorm before each sub-layer and after the last block,
no token types), measured slightly better on proteins (BENCHMARKS.md, "Rotary positions").

`write_initial_model(dir, config, tokenizer)` writes config.json + model.safetensors (a randomly
initialised `BertForMaskedLM` or `EsmForMaskedLM`: encoder and MLM head) + tokenizer files. The
directory is an ordinary checkpoint: `model.path` of any fine-tuning task (a from-scratch baseline) or
of `seqtune pretrain`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from seqtune.errors import SeqtuneError
from seqtune.models.checkpoint import encoder_state_to_hf, save_weights, write_json
from seqtune.models.encoder import Encoder, EncoderConfig
from seqtune.models.mlm_head import MLM_LAYOUTS
from seqtune.tokenization import Tokenizer

# name -> (layers, hidden size)
PRESETS = {
    "tiny": (2, 128),
    "mini": (4, 256),
    "small": (4, 512),
    "medium": (8, 512),
    "base": (12, 768),
}


@dataclass
class ArchitectureSpec:
    """The encoder of a model trained from scratch (`model.architecture` of `seqtune pretrain`).

    preset: tiny (2 x 128), mini (4 x 256), small (4 x 512), medium (8 x 512), base (12 x 768).
    family: bert (learnt positions, post-LayerNorm) or esm (ESM-2's shape: rotary positions,
    pre-LayerNorm, no token types; needs a character vocabulary, given ESM's special tokens <cls> <pad>
    <eos> <unk> <mask>).
    The other fields override the preset; unset ones follow it (heads = hidden / 64,
    intermediate = 4 x hidden, max_positions = 512 or data.max_length if longer).
    """

    preset: str = "tiny"
    family: Literal["bert", "esm"] = "bert"
    layers: int | None = None
    hidden: int | None = None
    heads: int | None = None
    intermediate: int | None = None
    max_positions: int | None = None  # longest input in tokens, [CLS] and [SEP] included
    dropout: float = 0.1  # hidden dropout
    attention_dropout: float = 0.1
    hidden_act: str = "gelu"


def encoder_config(spec: ArchitectureSpec, vocab_size: int, pad_token_id: int = 0,
                   max_length: int | None = None, mask_token_id: int | None = None) -> EncoderConfig:
    """An `EncoderConfig` from a preset plus overrides. Checks the sizes fit together.

    max_length: the longest input the run will use (data.max_length); larger than max_positions is
    an error (position embeddings cannot be extended after training; rotary ones could, but ESM's
    config.json keeps the limit too).
    mask_token_id: the tokenizer's mask token, recorded in an ESM config (as EsmConfig does).
    """
    if spec.preset not in PRESETS:
        raise SeqtuneError(f"unknown architecture preset {spec.preset!r}; valid presets are: {', '.join(PRESETS)}.")
    layers, hidden = PRESETS[spec.preset]
    layers = spec.layers or layers
    hidden = spec.hidden or hidden
    heads = spec.heads or max(1, hidden // 64)
    intermediate = spec.intermediate or 4 * hidden
    max_positions = spec.max_positions or max(512, max_length or 0)
    for name, value in (("layers", layers), ("hidden", hidden), ("heads", heads),
                        ("intermediate", intermediate), ("max_positions", max_positions)):
        if value < 1:
            raise SeqtuneError(f"model.architecture.{name} must be positive, got {value}.")
    if hidden % heads:
        raise SeqtuneError(f"model.architecture: hidden size {hidden} is not divisible by {heads} heads.")
    for name, p in (("dropout", spec.dropout), ("attention_dropout", spec.attention_dropout)):
        if not 0.0 <= p < 1.0:
            raise SeqtuneError(f"model.architecture.{name} must be in [0, 1), got {p}.")
    if max_length is not None and max_length > max_positions:
        raise SeqtuneError(
            f"data.max_length {max_length} is larger than model.architecture.max_positions "
            f"{max_positions}: the model could not read inputs that long. Raise max_positions or lower "
            "max_length."
        )
    sizes = dict(vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                 intermediate_size=intermediate, hidden_act=spec.hidden_act, hidden_dropout_prob=spec.dropout,
                 attention_probs_dropout_prob=spec.attention_dropout, max_position_embeddings=max_positions,
                 pad_token_id=pad_token_id)
    if spec.family == "esm":
        # ESM-2's settings, without its token dropout (which rescales embeddings by the share of <mask>
        # tokens in each input): a plain embedding, as BERT's, measured on proteins from scratch.
        return EncoderConfig(**sizes, model_type="esm", position_embedding_type="rotary", type_vocab_size=0,
                             layer_norm_eps=1e-5, extra={"token_dropout": False, "emb_layer_norm_before": False,
                                                         "mask_token_id": mask_token_id})
    return EncoderConfig(**sizes)


def fresh_mlm_head_state(cfg: EncoderConfig, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """A newly initialised MLM head under its family's Hugging Face names (decoder tied: not stored)."""
    h = cfg.hidden_size
    layout = MLM_LAYOUTS[cfg.model_type]
    return {
        f"{layout.dense}.weight": torch.randn(h, h, generator=generator) * cfg.initializer_range,
        f"{layout.dense}.bias": torch.zeros(h),
        f"{layout.norm}.weight": torch.ones(h),
        f"{layout.norm}.bias": torch.zeros(h),
        layout.bias: torch.zeros(cfg.vocab_size),
    }


def write_initial_model(directory: str | Path, cfg: EncoderConfig, tokenizer: Tokenizer, seed: int = 0) -> Path:
    """Write a randomly initialised `BertForMaskedLM` (or `EsmForMaskedLM`, as `cfg.model_type` says)
    checkpoint directory; returns its path.

    The weights depend only on `seed` and the configuration. The tokenizer must fit the embeddings.
    """
    if tokenizer.vocab_size > cfg.vocab_size:
        raise SeqtuneError(
            f"the tokenizer has {tokenizer.vocab_size} tokens but the configuration only "
            f"{cfg.vocab_size} embeddings (vocab_size)."
        )
    if tokenizer.pad_id != cfg.pad_token_id:
        raise SeqtuneError(f"the tokenizer's [PAD] id {tokenizer.pad_id} differs from pad_token_id {cfg.pad_token_id}.")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = Encoder(cfg, add_pooler=False)
    state = encoder_state_to_hf(encoder.state_dict(), cfg.family.prefix, cfg.model_type)
    state.update(fresh_mlm_head_state(cfg, generator))
    config = cfg.to_dict()
    config.update({"architectures": [f"{cfg.family.hf_name}ForMaskedLM"], "tie_word_embeddings": True})
    write_json(directory / "config.json", config)
    save_weights(directory / "model.safetensors", state)
    Tokenizer(tokenizer.backend, tokenizer.lowercase, cfg.max_position_embeddings, tokenizer.kind,
              overlapping_kmer=tokenizer.overlapping_kmer).save(directory)
    return directory


def describe(cfg: EncoderConfig) -> str:
    """'2 layers x 128 hidden, 2 heads, 1.1M parameters' (parameters counted with tied embeddings)."""
    h, v, i, n = cfg.hidden_size, cfg.vocab_size, cfg.intermediate_size, cfg.num_hidden_layers
    per_layer = 4 * h * h + 4 * h + 2 * h * i + i + h + 4 * h
    if cfg.family.rotary:  # ESM-2: no position table or embedding LayerNorm; a LayerNorm after the last block
        embeddings, shape = v * h + 2 * h, "ESM shape (rotary positions, pre-LayerNorm), "
    else:
        embeddings, shape = (v + cfg.max_position_embeddings + cfg.type_vocab_size) * h + 2 * h, ""
    head = h * h + 3 * h + v
    total = embeddings + n * per_layer + head
    return (f"{shape}{n} layers x {h} hidden, {cfg.num_attention_heads} heads, intermediate {i}, "
            f"{cfg.max_position_embeddings} positions, {total / 1e6:.1f}M parameters")
