"""`pretrain_from_config`: masked-language-model pretraining, from scratch or continued.

From scratch (model.path unset): read the corpus, build the tokenizer (`task.vocab`), configure the
encoder (`task.architecture`), write a randomly initialised `BertForMaskedLM` directory next to the
run directory, then train it with the ordinary loop (`train_from_config`).

Continued (domain-adaptive) pretraining (model.path set): train the checkpoint on the new corpus
with its own vocabulary; its MLM head (`cls.predictions.*`) is reused when it has one. A vocabulary
given as well must be the checkpoint's: a model cannot change vocabulary without losing what its
embeddings learnt, so a different one is an error.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from seqtune.config import RunConfig
from seqtune.data.corpus import read_corpus
from seqtune.errors import SeqtuneError
from seqtune.models.checkpoint import encoder_config_from_dir
from seqtune.models.presets import ArchitectureSpec, describe, encoder_config, write_initial_model
from seqtune.tokenization import load_tokenizer
from seqtune.training.run_dir import new_directory
from seqtune.vocab_builder import VocabSpec, build_tokenizer, same_vocabulary


def log(message: str) -> None:
    import sys

    print(message, file=sys.stderr, flush=True)


def initial_model_dir(cfg: RunConfig) -> Path:
    """A new, empty directory for the randomly initialised model of a from-scratch run."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return new_directory(Path(cfg.output_dir) / f"{cfg.name or 'mlm'}-init-{stamp}")


def prepare_from_scratch(cfg: RunConfig) -> Path:
    """Build tokenizer + random model for `cfg`; returns the new checkpoint directory."""
    check_pretraining_config(cfg)
    spec = cfg.task.vocab or VocabSpec()
    corpus = read_corpus(cfg.data.train, cfg.data.format, cfg.data.text_column, cfg.data.max_rows)
    tokenizer = build_tokenizer(spec, corpus.records, corpus.source)
    arch = cfg.task.architecture or ArchitectureSpec()
    enc_cfg = encoder_config(arch, tokenizer.vocab_size, tokenizer.pad_id, cfg.data.max_length)
    path = write_initial_model(initial_model_dir(cfg), enc_cfg, tokenizer, seed=cfg.train.seed)
    log(f"from scratch: {tokenizer.kind} vocabulary of {tokenizer.vocab_size} tokens from {corpus.source}; "
        f"encoder {describe(enc_cfg)}; initial model {path}")
    return path


def check_continued(cfg: RunConfig) -> None:
    """Continued pretraining: same vocabulary, max_length within the model's positions."""
    path = cfg.model.path
    tokenizer = load_tokenizer(path)
    if cfg.task.architecture is not None:
        raise SeqtuneError(
            f"task.architecture is set but model.path {path} gives the architecture; remove "
            "task.architecture to continue pretraining that checkpoint, or unset model.path to "
            "pretrain from scratch."
        )
    if cfg.task.vocab is not None:
        corpus = read_corpus(cfg.data.train, cfg.data.format, cfg.data.text_column, cfg.data.max_rows)
        wanted = build_tokenizer(cfg.task.vocab, corpus.records, corpus.source)
        if not same_vocabulary(wanted, tokenizer):
            theirs, ours = tokenizer.backend.get_vocab(), wanted.backend.get_vocab()
            only_new = sorted(set(ours) - set(theirs))[:10]
            raise SeqtuneError(
                f"task.vocab describes a vocabulary of {len(ours)} tokens that differs from the "
                f"{len(theirs)}-token vocabulary of model.path {path}"
                f"{' (new tokens: ' + ' '.join(only_new) + ')' if only_new else ' (same tokens, other ids)'}. "
                "Continued pretraining keeps the checkpoint's vocabulary: remove task.vocab, or "
                "pretrain from scratch (model.path unset) to use a new one."
            )
    max_positions = encoder_config_from_dir(path).max_position_embeddings
    if cfg.data.max_length > max_positions:
        raise SeqtuneError(
            f"data.max_length {cfg.data.max_length} is larger than the max_position_embeddings "
            f"{max_positions} of {path}; lower data.max_length."
        )


def check_pretraining_config(cfg: RunConfig) -> None:
    if cfg.task.type != "mlm":
        raise SeqtuneError(
            f"seqtune pretrain trains masked-language models (task.type mlm), not {cfg.task.type!r}; "
            "use seqtune train for fine-tuning tasks."
        )
    if not cfg.data.train:
        raise SeqtuneError("data.train is required: the corpus to pretrain on.")


def pretrain_from_config(cfg: RunConfig) -> Path:
    """Pretrain as `cfg` says (task.type mlm); returns the run directory (its model/ is the result)."""
    check_pretraining_config(cfg)
    from seqtune.training.setup import train_from_config

    if cfg.model.path:
        check_continued(cfg)
        return train_from_config(cfg)
    init = prepare_from_scratch(cfg)
    return train_from_config(replace(cfg, model=replace(cfg.model, path=str(init))))
