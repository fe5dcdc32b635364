"""The tokenizer of a generic-path checkpoint (`hf_encoder.py`), and the check that it belongs to the weights."""

from __future__ import annotations

import json
from pathlib import Path

from seqtune.errors import SeqtuneError
from seqtune.models.checkpoint import encoder_config_from_dir
from seqtune.models.hf_config import GenericConfig, import_transformers
from seqtune.tokenization import Tokenizer, load_tokenizer


def check_tokenizer(tokenizer, cfg: GenericConfig, source: str = "") -> None:
    """The tokenizer belongs to the weights: its ids fit the embeddings and its padding id (and the
    [CLS]/[SEP] ids config.json names) are the model's."""
    where = f"{source}: " if source else ""
    if cfg.vocab_size and tokenizer.vocab_size > cfg.vocab_size:
        raise SeqtuneError(
            f"{where}the tokenizer has {tokenizer.vocab_size} tokens but the model's embeddings have "
            f"{cfg.vocab_size} rows (config.json vocab_size): the tokenizer is of another model. Use the "
            "checkpoint's own tokenizer files."
        )
    pairs = [("pad_token_id", cfg.pad_token_id, tokenizer.pad_id, "pad", "padding"),
             ("cls_token_id", getattr(cfg.hf, "cls_token_id", None), tokenizer.cls_id, "cls", "[CLS]"),
             ("sep_token_id", getattr(cfg.hf, "sep_token_id", None), tokenizer.sep_id, "sep", "[SEP]")]
    for key, expected, found, role, what in pairs:
        if isinstance(expected, int) and expected != found:
            raise SeqtuneError(
                f"{where}the tokenizer's {what} token {tokenizer.special[role]!r} has id {found} but config.json "
                f"says {key} {expected}: the tokenizer is of another family than the {cfg.model_type!r} "
                "weights. Use the checkpoint's own tokenizer files."
            )


def generic_tokenizer(model_dir: str | Path, cfg: GenericConfig):
    """The checkpoint's tokenizer: its tokenizer.json (or vocab.txt) through the `tokenizers` library,
    as on the native path; a checkpoint with only other tokenizer files (a SentencePiece spm.model,
    vocab.json + merges.txt) goes through transformers' AutoTokenizer, whose fast tokenizer is then
    used (and saved as tokenizer.json with the model)."""
    model_dir = Path(model_dir)
    if (model_dir / "tokenizer.json").is_file() or (model_dir / "vocab.txt").is_file():
        tokenizer = load_tokenizer(model_dir)
    else:
        transformers = import_transformers(cfg.model_type)
        try:
            auto = transformers.AutoTokenizer.from_pretrained(str(model_dir))
        except Exception as e:  # noqa: BLE001 - transformers raises many kinds for missing converters/files
            raise SeqtuneError(
                f"{model_dir} has no tokenizer.json, and transformers could not build a fast tokenizer from "
                f"its other tokenizer files ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}). "
                "Add the tokenizer.json of the model, or install what the message names (for a SentencePiece "
                "spm.model: pip install sentencepiece)."
            ) from None
        backend = getattr(auto, "backend_tokenizer", None)
        if backend is None:
            raise SeqtuneError(f"{model_dir}: transformers has no fast tokenizer for these tokenizer files; "
                               "add the model's tokenizer.json.")
        special = {role: getattr(auto, f"{role}_token", None) for role in ("cls", "sep", "pad", "unk", "mask")}
        model = json.loads(backend.to_str()).get("model", {}).get("type")
        tokenizer = Tokenizer(backend, lowercase=bool(getattr(auto, "do_lower_case", False)),
                              model_max_length=min(int(auto.model_max_length), 1_000_000),
                              kind={"BPE": "bpe", "Unigram": "unigram"}.get(model, "wordpiece"),
                              special={k: v for k, v in special.items() if isinstance(v, str)},
                              tokenizer_class=type(auto).__name__)
    check_tokenizer(tokenizer, cfg, str(model_dir))
    return tokenizer


def checkpoint_tokenizer(model_dir: str | Path) -> Tokenizer:
    """The tokenizer of a checkpoint directory of either path: `load_tokenizer` for a native model
    type, `generic_tokenizer` (which may convert through transformers) for the others."""
    cfg = encoder_config_from_dir(model_dir)
    return generic_tokenizer(model_dir, cfg) if isinstance(cfg, GenericConfig) else load_tokenizer(model_dir)
