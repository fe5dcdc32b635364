"""An encoder plus a task head.

- `model_for_finetuning(path, task)`: encoder weights from any Hugging Face BERT checkpoint, a fresh
  head (reported, not an error);
- `save_model(dir, model, task, tokenizer)` writes config.json, model.safetensors, tokenizer files and
  seqtune.json (the task and its fitted state) in Hugging Face layout; `inference.load_trained_model`
  reads it back.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from seqtune.models import hf_encoder
from seqtune.models.checkpoint import (
    encoder_config_from_dir,
    encoder_state_to_hf,
    load_encoder_state,
    read_weights,
    save_weights,
    split_checkpoint,
    write_json,
)
from seqtune.models.encoder import Encoder
from seqtune.models.heads import Head
from seqtune.models.hf_config import GenericConfig
from seqtune.tokenization import Tokenizer, check_tokenizer_family, check_vocab_fits

SEQTUNE_FILE = "seqtune.json"
NATIVE_PATH = ("path: native (seqtune's own encoder: packed blocks, a last block for what the head reads "
               "([CLS], masked positions), activation cache)")


class TaskModel(nn.Module):
    """encoder -> head. forward(batch) returns the head's logits."""

    def __init__(self, encoder: Encoder, head: Head):
        super().__init__()
        self.encoder = encoder
        self.head = head
        head.tie_weights(encoder)

    def forward(self, batch: dict[str, torch.Tensor]):
        hidden = self.encoder.embeddings(batch["input_ids"], batch.get("token_type_ids"), batch["attention_mask"])
        return self.forward_from(hidden, 0, batch)

    def forward_from(self, hidden: torch.Tensor, start_layer: int, batch: dict[str, torch.Tensor]):
        """Layers [start_layer:] on `hidden` (B, T, H), then the head: the one path from hidden states
        to logits, shared with models that compute or cache the bottom layers themselves."""
        chosen = batch.get(self.head.chosen_input) if self.head.chosen_input else None
        hidden = self.encoder.run_layers(hidden, batch["attention_mask"], start_layer,
                                         first_token_only=self.head.first_token_only, chosen=chosen)
        # the chosen positions' states come alone, (M, H): the head is not given the positions again
        given = self.head.chosen_input if chosen is not None else None
        inputs = {k: batch[k] for k in self.head.batch_inputs if k in batch and k != given}
        return self.head(hidden, batch["attention_mask"], self.encoder.pooler, **inputs)

    def hf_state_dict(self) -> dict[str, torch.Tensor]:
        """All weights under Hugging Face names (encoder prefixed "bert.", "roberta.", ...)."""
        cfg = self.encoder.config
        return {**encoder_state_to_hf(self.encoder.state_dict(), cfg.family.prefix, cfg.model_type),
                **self.head.state_dict()}


def model_for_finetuning(path: str, task, weights: dict[str, torch.Tensor] | None = None
                         ) -> tuple[TaskModel, list[str]]:
    """Encoder from a checkpoint directory + a fresh head for `task`. Returns (model, report lines).
    `weights`: the directory's weights when the caller has read them already (read_weights)."""
    cfg = encoder_config_from_dir(path)
    if isinstance(cfg, GenericConfig):  # no native implementation: through transformers (hf_encoder.py)
        hf_encoder.check_task(task, cfg)
        model, report = hf_encoder.build_model(path, task, cfg)
        return model, [hf_encoder.describe_path(cfg, model), *report]
    task.check_model_type(cfg.model_type)
    check_vocab_fits(task.tokenizer, cfg.vocab_size, path)
    check_tokenizer_family(task.tokenizer, cfg.model_type, path)
    encoder = Encoder(cfg, add_pooler=task.needs_pooler)
    split = split_checkpoint(read_weights(path) if weights is None else weights, cfg.family.prefix, cfg.model_type)
    report = [NATIVE_PATH, *load_encoder_state(encoder, split, path)]
    head = task.build_head(cfg)
    reused = head.load_pretrained(split.other)  # the MLM head starts from the checkpoint's, if any
    fresh = [k for k in head.state_dict() if k not in reused]
    if fresh:
        report.append(f"head: newly initialised ({', '.join(fresh)})")
    unused = sorted({k.rsplit(".", 1)[0] for k in split.other if k not in reused})
    if unused:
        report.append(f"not used from the checkpoint: {', '.join(unused)}")
    return TaskModel(encoder, head), report


def save_model(directory: str | Path, model: TaskModel, task, tokenizer: Tokenizer) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if isinstance(model, hf_encoder.GenericTaskModel):  # through transformers: its classes' layout
        hf_encoder.save_generic_model(directory, model, task, tokenizer, SEQTUNE_FILE)
        return directory
    config = model.encoder.config.to_dict()
    config.pop("architectures", None)
    config.update(task.hf_config())
    # Tasks name BERT's classes; the other families have the same ones under their own stem.
    stem = model.encoder.config.family.hf_name
    config["architectures"] = [stem + a.removeprefix("Bert") if a.startswith("Bert") else a
                               for a in config.get("architectures", [])]
    write_json(directory / "config.json", config)
    save_weights(directory / "model.safetensors", model.hf_state_dict())
    tokenizer.save(directory)
    write_json(directory / SEQTUNE_FILE, {
        "task": asdict(task.options),
        "data": asdict(task.data),
        "task_state": task.state(),
        "has_pooler": model.encoder.pooler is not None,
    })
    return directory

