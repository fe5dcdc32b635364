"""`pretrain_from_config`: masked-language-model pretraining, from scratch or continued.

From scratch (model.path unset): read the corpus, build the tokenizer (`model.vocab`, with the special
tokens of `model.architecture.family`), configure the encoder (`model.architecture`), write a randomly
initialised `BertForMaskedLM` (or `EsmForMaskedLM`) directory next to the run directory, then train it
with the ordinary loop (`train_from_config`).

Continued (domain-adaptive) pretraining (model.path set): train the checkpoint on the new corpus
with its own vocabulary; its MLM head (`cls.predictions.*`, or its family's: `lm_head.*`, `vocab_*`)
is reused when it has one. A vocabulary given as well must be the checkpoint's: a model cannot change
vocabulary without losing what its embeddings learnt, so a different one is an error.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import replace
from pathlib import Path

from seqtune.config import RunConfig
from seqtune.data.corpus import iter_corpus, read_corpus
from seqtune.data.token_store import existing_store
from seqtune.errors import SeqtuneError
from seqtune.inference import resolve_runtime
from seqtune.kmers import require_whole_kmers
from seqtune.logs import ensure_console, logger
from seqtune.memory import limit_heap_retention
from seqtune.models.checkpoint import encoder_config_from_dir
from seqtune.models.hf_tokenizer import checkpoint_tokenizer
from seqtune.models.presets import (
    ArchitectureSpec,
    describe,
    encoder_config,
    write_initial_model,
)
from seqtune.tasks.mlm import store_spec
from seqtune.tokenization import Tokenizer
from seqtune.training import distributed
from seqtune.training.run_dir import new_directory
from seqtune.training.setup import (
    check_data_files,
    max_length_for,
    require_model,
    train_from_config,
)
from seqtune.vocab_builder import (
    VocabSpec,
    build_tokenizer,
    check_alphabet,
    check_family_vocab,
    corpus_characters,
    resolve_alphabet,
    same_vocabulary,
)


def initial_model_dir(cfg: RunConfig) -> Path:
    """A new, empty directory for the randomly initialised model of a from-scratch run."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    # absolute: the run's config.yaml names it as model.path, read again by `seqtune train --resume`
    return new_directory(Path(cfg.output_dir).absolute() / f"{cfg.name or 'mlm'}-init-{stamp}")


def prepare_from_scratch(cfg: RunConfig) -> Path:
    """Build tokenizer + random model for `cfg`; returns the new checkpoint directory."""
    check_pretraining_config(cfg)
    spec = cfg.model.vocab or VocabSpec()
    arch = cfg.model.architecture or ArchitectureSpec()
    check_family_vocab(spec, arch.family)  # before the corpus is read
    tokenizer = tokenizer_from_corpus(spec, cfg, family=arch.family)
    source = Path(cfg.data.train).name
    enc_cfg = encoder_config(arch, tokenizer.vocab_size, tokenizer.pad_id, max_length_for(cfg, None),
                             tokenizer.mask_id)
    path = write_initial_model(initial_model_dir(cfg), enc_cfg, tokenizer, seed=cfg.train.seed)
    ensure_console()
    logger.info(f"from scratch: {tokenizer.kind} vocabulary of {tokenizer.vocab_size} tokens from {source}; "
        f"encoder {describe(enc_cfg)}; initial model {path}")
    return path


def tokenizer_from_corpus(spec: VocabSpec, cfg: RunConfig, chunk: int = 10_000, family: str = "bert") -> Tokenizer:
    """The tokenizer `spec` describes for an encoder of `family`, learnt from or checked against the
    training corpus.

    A character vocabulary streams the corpus in chunks of records (its letters, or the check against
    a given alphabet), so memory does not grow with the corpus; a WordPiece vocabulary is trained on
    the corpus read whole."""
    d = cfg.data
    records = iter_corpus(d.train, d.format, d.text_column, d.max_rows, d.header, d.encoding)
    if spec.kind != "char" or spec.path is not None:
        return build_tokenizer(spec, list(records), Path(d.train).name, family=family)
    source = Path(d.train).name
    letters = resolve_alphabet(spec.alphabet)
    if letters is not None and d.token_store and not spec.kmer_overlap:  # overlapping k-mers: no store (mlm.py)
        tokenizer = build_tokenizer(spec, (), source, family=family)
        stored = existing_store(store_spec(d, d.train), tokenizer)
        if stored is not None:  # built from this file with this alphabet: every letter was checked then
            logger.info(f"{source}: letters already checked against the alphabet (token store {stored})")
            return tokenizer
    seen: dict[str, str] = {}
    for part in iter(lambda: list(itertools.islice(records, chunk)), []):
        texts = [(r.text, r.where) for r in part]
        if spec.kmer_overlap:
            require_whole_kmers(texts, spec.kmer)  # before a model is written for a corpus it cannot read
        if letters is None:
            for c, where in corpus_characters(texts, source, spec.lowercase).items():
                seen.setdefault(c, where)
        else:  # only records with a character outside the alphabet (set arithmetic, fast) are looked at
            allowed = set(letters)
            outside = [(t, w) for t, w in texts
                       if not set(t.lower() if spec.lowercase else t) <= allowed]
            check_alphabet(outside, letters, source, spec.lowercase)  # whitespace passes; anything else: error
    if letters is None and not seen:
        raise SeqtuneError(f"{source}: the corpus is empty (no characters to build a vocabulary from).")
    alphabet = spec.alphabet if letters is not None else "".join(sorted(seen))
    return build_tokenizer(replace(spec, alphabet=alphabet), (), source, family=family)


def check_continued(cfg: RunConfig) -> None:
    """Continued pretraining: same vocabulary, max_length within the model's positions."""
    path = require_model(cfg).path  # a hub id is downloaded (pinned to model.revision)
    tokenizer = checkpoint_tokenizer(path)  # a transformers-path checkpoint may convert its tokenizer
    if cfg.model.architecture is not None:
        raise SeqtuneError(
            f"model.architecture is set but model.path {path} gives the architecture; remove "
            "model.architecture to continue pretraining that checkpoint, or unset model.path to "
            "pretrain from scratch."
        )
    if cfg.model.vocab is not None:
        corpus = read_corpus(cfg.data.train, cfg.data.format, cfg.data.text_column, cfg.data.max_rows, cfg.data.header,
                         cfg.data.encoding)
        wanted = build_tokenizer(cfg.model.vocab, corpus.records, corpus.source)
        if not same_vocabulary(wanted, tokenizer):
            theirs, ours = tokenizer.backend.get_vocab(), wanted.backend.get_vocab()
            only_new = sorted(set(ours) - set(theirs))[:10]
            if ours == theirs:  # the same tokens; one of the two reads them as overlapping k-mers
                how = "as overlapping k-mers" if tokenizer.overlapping_kmer else "without overlap"
                raise SeqtuneError(
                    f"model.vocab.kmer_overlap is {str(bool(wanted.overlapping_kmer)).lower()}, but model.path {path} "
                    f"reads the same tokens {how}. Continued pretraining keeps the checkpoint's tokenizer: remove "
                    "model.vocab."
                )
            raise SeqtuneError(
                f"model.vocab describes a vocabulary of {len(ours)} tokens that differs from the "
                f"{len(theirs)}-token vocabulary of model.path {path}"
                f"{' (new tokens: ' + ' '.join(only_new) + ')' if only_new else ' (same tokens, other ids)'}. "
                "Continued pretraining keeps the checkpoint's vocabulary: remove model.vocab, or "
                "pretrain from scratch (model.path unset) to use a new one."
            )
    encoder_cfg = encoder_config_from_dir(path)
    max_length_for(cfg, encoder_cfg.max_tokens, encoder_cfg.position_offset)


def check_pretraining_config(cfg: RunConfig) -> None:
    if cfg.task.type != "mlm":
        raise SeqtuneError(
            f"seqtune pretrain trains masked-language models (task.type mlm), not {cfg.task.type!r}; "
            "use seqtune train for fine-tuning tasks."
        )
    if not cfg.data.train:
        raise SeqtuneError("data.train is required: the corpus to pretrain on.")
    check_data_files(cfg)  # before a from-scratch model is written


def pretrain_from_config(cfg: RunConfig) -> Path:
    """Pretrain as `cfg` says (task.type mlm); returns the run directory (its model/ is the result)."""
    check_pretraining_config(cfg)
    limit_heap_retention(cfg.train.malloc_mmap_threshold)  # before the corpus is read for the vocabulary
    if cfg.model.path:
        check_continued(cfg)
        return train_from_config(cfg)
    # Under torchrun, rank 0 builds the vocabulary and the initial model; the others train from it.
    world = distributed.start(resolve_runtime(cfg.train).device)
    init = distributed.broadcast(str(prepare_from_scratch(cfg)) if world.is_main else None, world)
    return train_from_config(replace(cfg, model=replace(cfg.model, path=init)))
