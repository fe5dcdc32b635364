"""An encoder plus a task head, and the two ways to build one.

- `model_for_finetuning(path, task)`: encoder weights from any Hugging Face BERT checkpoint, a fresh
  head (reported, not an error);
- `load_trained_model(path)`: a directory saved by seqtune, rebuilt exactly (strict, head included).

`save_model(dir, model, task, tokenizer)` writes config.json, model.safetensors, tokenizer files and
seqtune.json (the task and its fitted state) in Hugging Face layout.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from seqtune.config import DataConfig, build_dataclass
from seqtune.errors import SeqtuneError
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
from seqtune.tokenization import Tokenizer, check_vocab_fits, load_tokenizer

SEQTUNE_FILE = "seqtune.json"


class TaskModel(nn.Module):
    """encoder -> head. forward(batch) returns the head's logits."""

    def __init__(self, encoder: Encoder, head: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.head = head
        if hasattr(head, "tie_weights"):  # the MLM head's decoder is the word-embedding matrix
            head.tie_weights(encoder)

    def forward(self, batch: dict[str, torch.Tensor]):
        # A head that reads only [CLS] sets first_token_only: the last block then computes [CLS] alone.
        hidden = self.encoder(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"),
                              first_token_only=getattr(self.head, "first_token_only", False))
        # A head may take more batch entries (the MLM head: mlm_positions, to project only those).
        extra = {k: batch[k] for k in getattr(self.head, "batch_inputs", ()) if k in batch}
        return self.head(hidden, batch["attention_mask"], self.encoder.pooler, **extra)

    def hf_state_dict(self) -> dict[str, torch.Tensor]:
        """All weights under Hugging Face names (encoder prefixed "bert.")."""
        return {**encoder_state_to_hf(self.encoder.state_dict()), **self.head.state_dict()}


def model_for_finetuning(path: str, task, weights: dict[str, torch.Tensor] | None = None
                         ) -> tuple[TaskModel, list[str]]:
    """Encoder from a checkpoint directory + a fresh head for `task`. Returns (model, report lines).
    `weights`: the directory's weights when the caller has read them already (read_weights)."""
    cfg = encoder_config_from_dir(path)
    check_vocab_fits(task.tokenizer, cfg.vocab_size, path)
    encoder = Encoder(cfg, add_pooler=task.needs_pooler)
    split = split_checkpoint(read_weights(path) if weights is None else weights)
    report = load_encoder_state(encoder, split, path)
    head = task.build_head(cfg)
    # A head that can start from pretrained weights (the MLM head) defines load_pretrained(),
    # which loads what it recognises among the non-encoder tensors and returns those keys.
    reused = head.load_pretrained(split.other) if hasattr(head, "load_pretrained") else []
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
    config = model.encoder.config.to_dict()
    config.pop("architectures", None)
    config.update(task.hf_config())
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


def load_trained_model(path: str | Path):
    """Rebuild (task, model) from a directory written by `save_model`. Strict: every weight must match."""
    from seqtune.tasks import task_class

    path = Path(path)
    meta_path = path / SEQTUNE_FILE
    if not meta_path.is_file():
        raise SeqtuneError(
            f"{path} has no {SEQTUNE_FILE}: it is not a model saved by seqtune. To fine-tune a plain "
            "Hugging Face checkpoint, give it as model.path in a training config."
        )
    meta = json.loads(meta_path.read_text())
    cls = task_class(meta["task"]["type"])
    options = build_dataclass(cls.Options, meta["task"], "task")
    data = build_dataclass(DataConfig, meta["data"], "data")
    data.max_rows = None  # a training-time row limit must not cut files given to evaluate/predict
    tokenizer = load_tokenizer(path)
    task = cls(options, data, tokenizer)
    task.load_state(meta["task_state"])
    cfg = encoder_config_from_dir(path)
    encoder = Encoder(cfg, add_pooler=meta.get("has_pooler", task.needs_pooler))
    split = split_checkpoint(read_weights(path))
    load_encoder_state(encoder, split, str(path))
    head = task.build_head(cfg)
    expected = head.state_dict()
    missing = [k for k in expected if k not in split.other]
    if missing:
        raise SeqtuneError(f"{path}: head weights missing from the checkpoint: {', '.join(missing)}")
    head.load_state_dict({k: split.other[k] for k in expected})
    model = TaskModel(encoder, head)
    model.eval()
    return task, model
