"""Tokenizers from checkpoint directories, through the `tokenizers` library.

`load_tokenizer(dir)` reads `tokenizer.json` when present, otherwise builds BERT's WordPiece
pipeline from `vocab.txt` (lower-casing as `tokenizer_config.json` says). `save` writes both files
plus `tokenizer_config.json`, so `transformers.AutoTokenizer` loads what we save.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, normalizers, pre_tokenizers, processors

from seqtune.errors import SeqtuneError
from seqtune.files import read_json_object

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


class Encoded(NamedTuple):
    ids: list[int]
    type_ids: list[int]
    truncated: bool  # tokens were cut to fit max_length


class Tokenizer:
    """A BERT tokenizer: `[CLS] a [SEP]` or `[CLS] a [SEP] b [SEP]` with token type ids 0/1.

    Wraps a `tokenizers.Tokenizer` (available as `.backend`, for word ids and character offsets).
    """

    def __init__(self, backend: HFTokenizer, lowercase: bool, model_max_length: int = 512,
                 kind: str = "wordpiece"):
        backend.no_padding()
        backend.no_truncation()
        self.backend = backend
        self.lowercase = lowercase
        self.model_max_length = model_max_length
        self.kind = kind  # "wordpiece" or "char" (one token per character)
        vocab = backend.get_vocab()
        missing = [t for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]") if t not in vocab]
        if missing:
            raise SeqtuneError(f"the tokenizer's vocabulary lacks the special tokens {missing}.")
        self.pad_id, self.unk_id = vocab["[PAD]"], vocab["[UNK]"]
        self.cls_id, self.sep_id = vocab["[CLS]"], vocab["[SEP]"]
        self.mask_id = vocab.get("[MASK]")

    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size()

    def encode_batch(
        self, texts: list[str], pairs: list[str] | None = None, max_length: int | None = None
    ) -> list[Encoded]:
        """Tokenize texts (and second texts) to input_ids and token_type_ids, truncated longest-first.

        Tokenization runs once per dataset, in parallel inside the Rust library.
        """
        if max_length:
            self.backend.enable_truncation(max_length, strategy="longest_first")
        try:
            inputs = list(zip(texts, pairs)) if pairs is not None else texts
            encodings = self.backend.encode_batch(inputs)
        finally:
            self.backend.no_truncation()
        return [Encoded(e.ids, e.type_ids, bool(e.overflowing)) for e in encodings]

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        self.backend.save(str(directory / "tokenizer.json"))
        vocab = sorted(self.backend.get_vocab().items(), key=lambda kv: kv[1])
        (directory / "vocab.txt").write_text("".join(tok + "\n" for tok, _ in vocab))
        config = {
            # A character vocabulary is not WordPiece: transformers must use tokenizer.json as it is.
            "tokenizer_class": "BertTokenizer" if self.kind == "wordpiece" else "PreTrainedTokenizerFast",
            "do_lower_case": self.lowercase,
            "model_max_length": self.model_max_length,
            "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
            "cls_token": "[CLS]", "mask_token": "[MASK]",
            "seqtune_tokenizer_kind": self.kind,
        }
        (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
        special = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
                   "cls_token": "[CLS]", "mask_token": "[MASK]"}
        (directory / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")


def bert_post_processor(vocab: dict[str, int]) -> processors.TemplateProcessing:
    return processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )


def wordpiece_from_vocab(vocab: dict[str, int], lowercase: bool) -> HFTokenizer:
    """BERT's tokenizer pipeline (BasicTokenizer + WordPiece) built from a vocabulary."""
    backend = HFTokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    backend.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=lowercase
    )
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = bert_post_processor(vocab)
    backend.decoder = decoders.WordPiece(prefix="##")
    return backend


def read_vocab_file(path: Path) -> dict[str, int]:
    vocab: dict[str, int] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise SeqtuneError(f"{path} is not a valid vocabulary: it is not UTF-8 text ({e}).") from None
    for i, line in enumerate(text.splitlines()):
        token = line.rstrip("\n")
        if token in vocab:
            raise SeqtuneError(f"{path}:{i + 1}: token {token!r} appears twice in the vocabulary.")
        vocab[token] = i
    return vocab


def load_tokenizer(model_dir: str | Path) -> Tokenizer:
    """Load the tokenizer of a checkpoint directory (tokenizer.json, else vocab.txt)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise SeqtuneError(f"model directory {str(model_dir)!r} does not exist.")
    config_path = model_dir / "tokenizer_config.json"
    config = read_json_object(config_path) if config_path.is_file() else {}
    lowercase = bool(config.get("do_lower_case", True))
    max_len = config.get("model_max_length", 512)
    max_len = max_len if isinstance(max_len, int) and max_len < 1_000_000 else 512
    kind = config.get("seqtune_tokenizer_kind", "wordpiece")
    if (model_dir / "tokenizer.json").is_file():
        try:
            backend = HFTokenizer.from_file(str(model_dir / "tokenizer.json"))
        except Exception as e:  # noqa: BLE001 - the tokenizers library raises a bare Exception for a bad file
            raise SeqtuneError(f"{model_dir / 'tokenizer.json'} is incomplete or not a valid tokenizer file "
                               f"({e}); copy or download it again.") from None
    elif (model_dir / "vocab.txt").is_file():
        backend = wordpiece_from_vocab(read_vocab_file(model_dir / "vocab.txt"), lowercase)
    else:
        raise SeqtuneError(f"{model_dir} has no tokenizer: expected tokenizer.json or vocab.txt.")
    return Tokenizer(backend, lowercase=lowercase, model_max_length=max_len, kind=kind)


def check_vocab_fits(tokenizer: Tokenizer, vocab_size: int, source: str) -> None:
    """Token ids must index the embedding table (a smaller tokenizer is fine: tables are often padded)."""
    if tokenizer.vocab_size > vocab_size:
        raise SeqtuneError(
            f"{source}: the tokenizer has {tokenizer.vocab_size} tokens but the model's embeddings "
            f"have {vocab_size} rows (config.json vocab_size); the tokenizer does not belong to "
            "this model."
        )
