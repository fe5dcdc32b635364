"""Tokenizers from checkpoint directories, through the `tokenizers` library.

`load_tokenizer(dir)` reads `tokenizer.json` when present (BERT's WordPiece, RoBERTa's byte-level
BPE, XLM-R's SentencePiece Unigram: the file's own pipeline and special-token layout), otherwise
builds BERT's WordPiece pipeline from `vocab.txt` (lower-casing as `tokenizer_config.json` says), or
ESM's (`EsmTokenizer`: one token per residue, `<cls> A <eos>`, from its `vocab.txt`).
The special tokens ([CLS]/<s>, [SEP]/</s>, [PAD]/<pad>, [UNK]/<unk>, [MASK]/<mask>) are read from
`tokenizer_config.json` / `special_tokens_map.json`, else from tokenizer.json's post-processor, else
by their usual names. `save` writes tokenizer.json plus `tokenizer_config.json` (and BERT's vocab.txt),
so `transformers.AutoTokenizer` loads what we save. A tokenizer of overlapping k-mers (DNABERT's
tokens) is a "char" vocabulary with seqtune's own k-mer pre-tokenizer, recorded as
`seqtune_overlapping_kmer` in tokenizer_config.json (`kmers.py`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from tokenizers import (
    AddedToken,
    Regex,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
)
from tokenizers import Tokenizer as HFTokenizer

from seqtune.errors import SeqtuneError
from seqtune.files import read_json_object
from seqtune.kmers import (
    check_k,
    saved_pre_tokenizer,
    use_kmer_pre_tokenizer,
    with_saved_pre_tokenizer,
)

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
# Role -> the usual names, BERT's first, then RoBERTa's and XLM-R's, then ESM's.
SPECIAL_NAMES = {"cls": ("[CLS]", "<s>", "<cls>"), "sep": ("[SEP]", "</s>", "<eos>"), "pad": ("[PAD]", "<pad>"),
                 "unk": ("[UNK]", "<unk>"), "mask": ("[MASK]", "<mask>")}


def is_special_name(token: str) -> bool:
    """A special or padding token's name: [CLS], [unused3], <mask>, <null_1> (not a letter or a word)."""
    return len(token) > 2 and (token[0], token[-1]) in (("[", "]"), ("<", ">"))


ENCODE_CHUNK = 4096  # texts per call of the Rust tokenizer (see encodings_in_chunks)


def encodings_in_chunks(backend: HFTokenizer, inputs: list, **options) -> Iterator:
    """backend.encode_batch(inputs, **options), one Encoding at a time, ENCODE_CHUNK inputs per call.
    An Encoding holds about 100 bytes a token (ids, type ids, token strings, offsets, masks): a
    whole file's at once took 2.75x the memory of the features made from them (SST-2's training
    file: +269 MiB at the peak for 98 kept); a chunk's at a time, they are freed as they are used."""
    for start in range(0, len(inputs), ENCODE_CHUNK):
        yield from backend.encode_batch(inputs[start:start + ENCODE_CHUNK], **options)


class Encoded(NamedTuple):
    ids: list[int]
    type_ids: list[int]
    truncated: bool  # tokens were cut to fit max_length
    lengths: tuple[int, int] = (0, 0)  # content tokens of the text and of the second text


class Tokenizer:
    """A BERT-family tokenizer: `[CLS] a [SEP]` / `[CLS] a [SEP] b [SEP]` with token type ids 0/1
    (BERT), or `<s> a </s>` / `<s> a </s></s> b </s>` with type ids 0 (RoBERTa, XLM-R), as the
    backend's post-processor says.

    Wraps a `tokenizers.Tokenizer` (available as `.backend`, for word ids and character offsets).
    special: role ("cls", "sep", "pad", "unk", "mask") -> token, as the checkpoint's tokenizer files
    name them; roles left out are found in the post-processor or by their usual names.
    overlapping_kmer: k > 0: a "char" vocabulary read as one k-mer per position (`kmers.py`).
    """

    def __init__(self, backend: HFTokenizer, lowercase: bool, model_max_length: int = 512,
                 kind: str = "wordpiece", special: dict[str, str] | None = None,
                 tokenizer_class: str | None = None, overlapping_kmer: int = 0):
        backend.no_padding()
        backend.no_truncation()
        if overlapping_kmer:
            backend.pre_tokenizer = saved_pre_tokenizer()  # serialisable while the specials are found
        self.backend = backend
        self.lowercase = lowercase
        self.model_max_length = model_max_length
        self.kind = kind  # "wordpiece", "char" (one token per character), "bpe", "unigram" or "esm"
        self.tokenizer_class = tokenizer_class  # transformers' class, for a bpe/unigram tokenizer's save
        self.special = find_special_tokens(backend, special or {})
        missing = [SPECIAL_NAMES[role][0] for role in ("pad", "unk", "cls", "sep") if role not in self.special]
        if missing:
            raise SeqtuneError(f"the tokenizer's vocabulary lacks the special tokens {missing} (or their "
                               "RoBERTa names <pad> <unk> <s> </s>).")
        vocab = backend.get_vocab()
        self.pad_id, self.unk_id = vocab[self.special["pad"]], vocab[self.special["unk"]]
        self.cls_id, self.sep_id = vocab[self.special["cls"]], vocab[self.special["sep"]]
        self.mask_id = vocab.get(self.special.get("mask"))
        self._word_backend: HFTokenizer | None = None
        self.overlapping_kmer = overlapping_kmer
        if overlapping_kmer:
            use_kmer_pre_tokenizer(backend, overlapping_kmer)

    def encode_words(self, sentences: list[list[str]]):
        """Pre-tokenized sentences (lists of words) -> `tokenizers` encodings without special tokens,
        with word ids. A byte-level BPE (RoBERTa) marks every word as following a space, as
        transformers' tokenizer with add_prefix_space=True does for is_split_into_words input: a word
        then splits the same wherever it stands in the sentence."""
        if self.overlapping_kmer:
            raise SeqtuneError("this model reads overlapping k-mers of a sequence; it cannot tokenize words "
                               "(tagging). Use it for classification, regression or residues.")
        if self._word_backend is None:
            self._word_backend = with_prefix_space(self.backend)
        return self._word_backend.encode_batch(sentences, is_pretokenized=True, add_special_tokens=False)

    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size()

    def encode_batch(
        self, texts: list[str], pairs: list[str] | None = None, max_length: int | None = None
    ) -> list[Encoded]:
        """Tokenize texts (and second texts) to input_ids and token_type_ids, truncated longest-first.

        In parallel inside the Rust library. Callers with a whole file pass ENCODE_CHUNK texts at a time
        (its Encodings are large: see encodings_in_chunks).
        """
        if max_length:
            self.backend.enable_truncation(max_length, strategy="longest_first")
        try:
            inputs = list(zip(texts, pairs)) if pairs is not None else texts
            encodings = self.backend.encode_batch(inputs)
        finally:
            self.backend.no_truncation()
        return [Encoded(e.ids, e.type_ids, bool(e.overflowing),
                        (e.sequence_ids.count(0), e.sequence_ids.count(1))) for e in encodings]

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        with with_saved_pre_tokenizer(self.backend, self.overlapping_kmer):
            self.backend.save(str(directory / "tokenizer.json"))
        special = {f"{role}_token": token for role, token in self.special.items()}
        if self.kind == "esm":  # EsmTokenizer reads vocab.txt only; its "sep" is the end token
            (directory / "tokenizer.json").unlink()
            vocab = sorted(self.backend.get_vocab().items(), key=lambda kv: kv[1])
            (directory / "vocab.txt").write_text("".join(tok + "\n" for tok, _ in vocab))
            special["eos_token"] = special.pop("sep_token")
            config = {"tokenizer_class": "EsmTokenizer"}
        elif self.kind in ("wordpiece", "char"):
            vocab = sorted(self.backend.get_vocab().items(), key=lambda kv: kv[1])
            (directory / "vocab.txt").write_text("".join(tok + "\n" for tok, _ in vocab))
            # A character vocabulary is not WordPiece: transformers must use tokenizer.json as it is.
            config = {"tokenizer_class": "BertTokenizer" if self.kind == "wordpiece" else "PreTrainedTokenizerFast",
                      "do_lower_case": self.lowercase}
        else:
            config = {"tokenizer_class": self.tokenizer_class or "PreTrainedTokenizerFast",
                      "bos_token": self.special["cls"], "eos_token": self.special["sep"]}
        config.update({"model_max_length": self.model_max_length, **special,
                       "seqtune_tokenizer_kind": self.kind})
        if self.overlapping_kmer:  # tokenizer.json reads space-separated k-mers; seqtune splits sequences itself
            config["seqtune_overlapping_kmer"] = self.overlapping_kmer
        (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
        (directory / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")


def find_special_tokens(backend: HFTokenizer, given: dict[str, str]) -> dict[str, str]:
    """role -> token for the roles cls, sep, pad, unk, mask: as given (the tokenizer files), else the
    post-processor's ([CLS]/<s> first, [SEP]/</s> last), else the first usual name in the vocabulary."""
    vocab = backend.get_vocab()
    found = {role: token for role, token in given.items() if token in vocab}
    processor = json.loads(backend.to_str()).get("post_processor") or {}
    from_processor: dict[str, str] = {}
    for step in processor.get("processors", []) if processor.get("type") == "Sequence" else [processor]:
        if step.get("type") in ("RobertaProcessing", "BertProcessing"):
            from_processor = {"cls": step["cls"][0], "sep": step["sep"][0]}
        elif step.get("type") == "TemplateProcessing":
            specials = [item["SpecialToken"]["id"] for item in step.get("single", []) if "SpecialToken" in item]
            from_processor = {"cls": specials[0], "sep": specials[-1]} if len(specials) >= 2 else {}
    for role, names in SPECIAL_NAMES.items():
        if role not in found:
            candidates = [from_processor[role]] if role in from_processor else []
            token = next((t for t in [*candidates, *names] if t in vocab), None)
            if token is not None:
                found[role] = token
    return found


def with_prefix_space(backend: HFTokenizer) -> HFTokenizer:
    """The backend, or a copy whose byte-level pre-tokenizer adds a space before each word
    (add_prefix_space): what RoBERTa's tokenizer needs for pre-tokenized words."""
    spec = json.loads(backend.to_str())
    pre = spec.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    byte_level = [step for step in steps if step.get("type") == "ByteLevel" and not step.get("add_prefix_space")]
    if not byte_level:
        return backend
    for step in byte_level:
        step["add_prefix_space"] = True
    return HFTokenizer.from_str(json.dumps(spec))


def special_tokens_from_files(*configs: dict) -> dict[str, str]:
    """role -> token named by tokenizer_config.json / special_tokens_map.json ("cls_token": "<s>", or
    {"content": "<s>", ...}); the first file that names a role wins."""
    found: dict[str, str] = {}
    for config in configs:
        for role in SPECIAL_NAMES:
            value = config.get(f"{role}_token")
            value = value.get("content") if isinstance(value, dict) else value
            if isinstance(value, str) and role not in found:
                found[role] = value
    return found


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


def esm_from_vocab(vocab: dict[str, int]) -> HFTokenizer:
    """ESM's tokenizer (transformers' EsmTokenizer) built from its vocab.txt: every vocabulary token
    is cut out of the text as it stands (each amino-acid letter is one; `<mask>` and the other
    `<...>` tokens are matched whole), what remains is split at whitespace, and each remaining run is
    one `<unk>`. No normalisation: `mk` is one `<unk>`, as in ESM (the residues task folds case first).
    `<cls> A <eos>` / `<cls> A <eos> B <eos>`, all token type 0."""
    backend = HFTokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    multi = [t for t in vocab if len(t) > 1]
    backend.add_special_tokens([AddedToken(t, normalized=False) for t in multi])
    singles = "".join(re.escape(t) for t in vocab if len(t) == 1 and not t.isspace())
    pieces = Regex(f"[{singles}]|[^\\s{singles}]+") if singles else Regex("\\S+")
    backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                     pre_tokenizers.Split(pieces, behavior="isolated")])
    backend.post_processor = esm_post_processor(vocab)
    return backend


def esm_post_processor(vocab: dict[str, int]) -> processors.TemplateProcessing:
    """ESM's template: `<cls> A <eos>` / `<cls> A <eos> B <eos>`, all token type 0."""
    return processors.TemplateProcessing(
        single="<cls> $A <eos>", pair="<cls> $A <eos> $B <eos>",
        special_tokens=[("<cls>", vocab["<cls>"]), ("<eos>", vocab["<eos>"])])


def is_esm_vocabulary(vocab: dict[str, int], config: dict) -> bool:
    return config.get("tokenizer_class") == "EsmTokenizer" or (
        config.get("tokenizer_class") is None and "<cls>" in vocab and "<eos>" in vocab)


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
    map_path = model_dir / "special_tokens_map.json"
    special = special_tokens_from_files(config, read_json_object(map_path) if map_path.is_file() else {})
    max_len = config.get("model_max_length", 512)
    max_len = max_len if isinstance(max_len, int) and max_len < 1_000_000 else 512
    kind = config.get("seqtune_tokenizer_kind")
    esm = (model_dir / "vocab.txt").is_file() and (kind == "esm" or config.get("tokenizer_class") == "EsmTokenizer")
    if not (model_dir / "tokenizer.json").is_file() and (model_dir / "vocab.txt").is_file() and kind is None:
        esm = is_esm_vocabulary(read_vocab_file(model_dir / "vocab.txt"), config)
    if esm:
        kind = "esm"
        vocab = read_vocab_file(model_dir / "vocab.txt")
        missing = [t for t in ("<cls>", "<eos>", "<pad>", "<unk>") if t not in vocab]
        if missing:
            raise SeqtuneError(f"{model_dir / 'vocab.txt'} is not an ESM vocabulary (tokenizer_class "
                               f"EsmTokenizer): it lacks {', '.join(missing)}.")
        backend = esm_from_vocab(vocab)
    elif (model_dir / "tokenizer.json").is_file():
        try:
            backend = HFTokenizer.from_file(str(model_dir / "tokenizer.json"))
        except Exception as e:  # noqa: BLE001 - the tokenizers library raises a bare Exception for a bad file
            raise SeqtuneError(f"{model_dir / 'tokenizer.json'} is incomplete or not a valid tokenizer file "
                               f"({e}); copy or download it again.") from None
        if kind is None:  # not saved by seqtune: the tokenizer's model says
            model_type = json.loads(backend.to_str()).get("model", {}).get("type")
            kind = {"BPE": "bpe", "Unigram": "unigram"}.get(model_type, "wordpiece")
    elif (model_dir / "vocab.txt").is_file():
        kind = kind or "wordpiece"
        backend = wordpiece_from_vocab(read_vocab_file(model_dir / "vocab.txt"),
                                       bool(config.get("do_lower_case", True)))
    else:
        raise SeqtuneError(f"{model_dir} has no tokenizer: expected tokenizer.json or vocab.txt.")
    # do_lower_case is BERT's setting (its WordPiece lower-cases unless told otherwise); BPE and
    # Unigram tokenizers keep the case unless their own normalizer folds it.
    lowercase = bool(config.get("do_lower_case", kind in ("wordpiece", "char")) and kind != "esm")
    tokenizer_class = config.get("tokenizer_class") if isinstance(config.get("tokenizer_class"), str) else None
    k = config.get("seqtune_overlapping_kmer", 0)
    if k:
        check_k(k, f"{config_path}: seqtune_overlapping_kmer")
    return Tokenizer(backend, lowercase=lowercase, model_max_length=max_len, kind=kind, special=special,
                     tokenizer_class=tokenizer_class, overlapping_kmer=k)


def check_vocab_fits(tokenizer: Tokenizer, vocab_size: int, source: str) -> None:
    """Token ids must index the embedding table (a smaller tokenizer is fine: tables are often padded)."""
    if tokenizer.vocab_size > vocab_size:
        raise SeqtuneError(
            f"{source}: the tokenizer has {tokenizer.vocab_size} tokens but the model's embeddings "
            f"have {vocab_size} rows (config.json vocab_size); the tokenizer does not belong to "
            "this model."
        )


# The first token of every input, per model_type: a tokenizer with another one was made for another family.
FAMILY_CLS_TOKENS = {"bert": "[CLS]", "distilbert": "[CLS]", "electra": "[CLS]", "roberta": "<s>",
                     "xlm-roberta": "<s>", "esm": "<cls>"}


def check_tokenizer_family(tokenizer: Tokenizer, model_type: str, source: str) -> None:
    """The tokenizer's start token must be the one the model's family was trained with."""
    expected = FAMILY_CLS_TOKENS.get(model_type)
    found = tokenizer.special.get("cls")
    if expected is not None and found != expected:
        raise SeqtuneError(
            f"{source}: the tokenizer starts inputs with {found!r}, but {model_type} models (config.json "
            f"model_type {model_type!r}) start them with {expected!r}: the tokenizer files belong to another "
            "family than the weights. Use the tokenizer files that came with the checkpoint."
        )
