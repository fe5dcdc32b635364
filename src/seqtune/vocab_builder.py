"""Building a tokenizer from a corpus, for pretraining a model from scratch.

Two kinds, both BERT-shaped (`[CLS] ... [SEP]`, the special tokens [PAD] [UNK] [CLS] [SEP] [MASK] at
ids 0-4) and both saved as `tokenizer.json` + `vocab.txt` by `Tokenizer.save`. A character vocabulary
for an ESM-shaped model (`family="esm"`) takes ESM's special tokens and template instead
(`<cls> ... <eos>`; `<cls> <pad> <eos> <unk>` at ids 0-3, the letters, then `<mask>`, as ESM-2's
vocabulary orders them):

- `build_char_tokenizer`: one token per character (DNA, RNA, protein, any alphabet), or per
  non-overlapping k-mer (`kmer=3`: "MKTAYI" -> MKT AYI), or per overlapping k-mer, one starting at
  every position as DNABERT reads DNA (`kmer=3, overlap=True`: "ACGTA" -> ACG CGT GTA TA A; see
  `kmers.py`). The vocabulary is a given alphabet or the characters seen in the corpus. Whitespace
  separates words and is not a token.
- `build_wordpiece_tokenizer`: a WordPiece vocabulary of a chosen size, trained on the corpus by the
  `tokenizers` library, with BERT's normaliser and pre-tokeniser (for natural text).

Why a WordLevel model for characters: every token of the vocabulary is a whole pre-token, so the
Rust library splits and looks up in one pass; unknown characters become [UNK] (the builders refuse a
corpus with characters outside a given alphabet before that can happen).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

from tokenizers import Regex, decoders, models, normalizers, pre_tokenizers, trainers
from tokenizers import Tokenizer as HFTokenizer

from seqtune.errors import SeqtuneError
from seqtune.kmers import check_k, require_whole_kmers
from seqtune.tokenization import SPECIAL_TOKENS, Tokenizer, bert_post_processor, esm_post_processor

# Named alphabets. N / X stand for an unknown base / residue; B, Z, U, O are the ambiguous and rare
# amino acids of UniProt.
ALPHABETS = {
    "dna": "ACGTN",
    "rna": "ACGUN",
    "protein": "ACDEFGHIKLMNPQRSTVWYXBZUO",
}
MAX_KMER_VOCAB = 1_000_000


class CharSpecials(NamedTuple):
    """A family's special tokens in a character vocabulary, and how it names padding tokens."""

    before: tuple[str, ...]  # before the letters
    after: tuple[str, ...]  # after them
    unk: str
    padding: str  # the name of padding token i: padding.format(i + first_padding)
    first_padding: int


# BERT: [PAD] [UNK] [CLS] [SEP] [MASK] first, then [unused0]...; ESM-2: <cls> <pad> <eos> <unk> first,
# <mask> after the letters, then <null_1>...
CHAR_SPECIALS = {
    "bert": CharSpecials(SPECIAL_TOKENS, (), "[UNK]", "[unused{}]", 0),
    "esm": CharSpecials(("<cls>", "<pad>", "<eos>", "<unk>"), ("<mask>",), "<unk>", "<null_{}>", 1),
}


@dataclass
class VocabSpec:
    """How `seqtune pretrain` builds the tokenizer of a model trained from scratch (`model.vocab`).

    kind: "char" (one token per character or k-mer) or "wordpiece" (trained subwords, for text).
    alphabet: for "char": a named alphabet (dna, rna, protein) or the letters themselves ("ACGT");
      unset: the characters of the corpus. A corpus character outside a given alphabet is an error.
    kmer: for "char": tokens are non-overlapping k-mers (1 = single characters).
    kmer_overlap: for "char": one k-mer per position instead (DNABERT's tokens, k in 3..6; a sequence
      of L letters gives L tokens, the last k - 1 of them shorter), so per-letter labels stay aligned.
    vocab_size: "wordpiece": the size to train (required); "char": pad the vocabulary with
      [unusedN] tokens up to this size (e.g. a multiple of 8); smaller than needed is an error.
    lowercase: lower-case text before tokenizing.
    path: use the tokenizer of this directory instead of building one.
    """

    kind: Literal["char", "wordpiece"] = "char"
    alphabet: str | None = None
    kmer: int = 1
    kmer_overlap: bool = False
    vocab_size: int | None = None
    lowercase: bool = False
    min_frequency: int = 2  # wordpiece: a merge must occur this often
    path: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.kmer, bool) or not isinstance(self.kmer, int) or self.kmer < 1:
            raise SeqtuneError(f"model.vocab.kmer must be a whole number of at least 1, got {self.kmer!r}.")
        if self.kmer_overlap:
            if self.kind != "char":
                raise SeqtuneError("model.vocab.kmer_overlap applies to kind 'char' only (sequences of letters).")
            check_k(self.kmer)


def _as_texts(texts: Iterable) -> list[tuple[str, str]]:
    """Accept strings, (text, where) pairs or records with `.text` and `.where`; return pairs."""
    out = []
    for i, t in enumerate(texts):
        if isinstance(t, str):
            out.append((t, f"item {i + 1}"))
        elif isinstance(t, tuple):
            out.append((t[0], t[1]))
        else:
            out.append((t.text, t.where))
    return out


def resolve_alphabet(alphabet: str | None) -> str | None:
    """"protein" -> its letters; "ACGT" -> "ACGT"; duplicates and whitespace are errors."""
    if alphabet is None:
        return None
    letters = ALPHABETS.get(alphabet.lower(), alphabet)
    if any(c.isspace() for c in letters):
        raise SeqtuneError(f"alphabet {alphabet!r} contains whitespace; give the letters only, e.g. 'ACGT'.")
    repeated = sorted({c for c in letters if letters.count(c) > 1})
    if repeated:
        raise SeqtuneError(f"alphabet {alphabet!r} lists {repeated} more than once.")
    if not letters:
        raise SeqtuneError("the alphabet is empty.")
    return letters


def corpus_characters(texts: Sequence[tuple[str, str]], source: str, lowercase: bool) -> dict[str, str]:
    """Every non-whitespace character of the corpus -> where it first occurs."""
    first_seen: dict[str, str] = {}
    nonempty = 0
    for text, where in texts:
        if lowercase:
            text = text.lower()
        nonempty += bool(text.strip())
        for c in set(text):
            if not c.isspace() and c not in first_seen:
                first_seen[c] = where
    if not nonempty:
        raise SeqtuneError(f"{source}: the corpus is empty (no characters to build a vocabulary from).")
    return first_seen


def check_alphabet(texts: Iterable, alphabet: str, source: str, lowercase: bool = False) -> None:
    """Refuse a corpus that uses characters outside `alphabet`, naming the record and the characters."""
    allowed = set(alphabet)
    for text, where in _as_texts(texts):
        if lowercase:
            text = text.lower()
        outside = {c for c in text if c not in allowed and not c.isspace()}
        if outside:
            raise SeqtuneError(
                f"{source}, {where}: characters {''.join(sorted(outside))!r} are not in the alphabet "
                f"{alphabet!r}. Clean the corpus, or give an alphabet that includes them (or none, to "
                "use the characters of the corpus)."
            )


def char_vocabulary(letters: str, kmer: int, vocab_size: int | None,
                    family: str = "bert") -> tuple[dict[str, int], list[str]]:
    """Special tokens, then every k-mer of the letters (and every shorter tail), then padding tokens
    ([unusedN]; for ESM: <mask> after the letters, then <null_N>). Returns the vocabulary and its
    special and padding tokens."""
    if kmer < 1:
        raise SeqtuneError(f"kmer must be at least 1, got {kmer}.")
    specials = CHAR_SPECIALS[family]
    tokens = list(specials.before)
    count = sum(len(letters) ** k for k in range(1, kmer + 1))
    if count > MAX_KMER_VOCAB:
        raise SeqtuneError(
            f"{len(letters)} letters with kmer={kmer} give {count:,} tokens (over {MAX_KMER_VOCAB:,}); "
            "use a smaller k."
        )
    # The last piece of a word can be shorter than k, so every length 1..k is in the vocabulary.
    for k in range(1, kmer + 1):
        tokens += ["".join(p) for p in itertools.product(letters, repeat=k)]
    tokens += specials.after
    if vocab_size is not None:
        if vocab_size < len(tokens):
            n_special = len(specials.before) + len(specials.after)
            raise SeqtuneError(
                f"vocab_size {vocab_size} is smaller than the {len(tokens)} tokens needed: "
                f"{n_special} special tokens + {len(tokens) - n_special} "
                f"{'characters' if kmer == 1 else f'k-mers (k <= {kmer})'} of the alphabet "
                f"{letters!r}. Raise vocab_size or leave it unset."
            )
        tokens += [specials.padding.format(i + specials.first_padding) for i in range(vocab_size - len(tokens))]
    first = len(specials.before)
    return {t: i for i, t in enumerate(tokens)}, tokens[:first] + tokens[first + count:]


def build_char_tokenizer(
    texts: Iterable = (),
    alphabet: str | None = None,
    kmer: int = 1,
    vocab_size: int | None = None,
    lowercase: bool = False,
    source: str = "corpus",
    model_max_length: int = 512,
    overlap: bool = False,
    family: str = "bert",
) -> Tokenizer:
    """A tokenizer with one token per character (or k-mer) of `alphabet` or of the corpus.

    texts: strings or corpus records (`.text`, `.where`), used to learn the letters when no alphabet
    is given and to check the corpus against a given alphabet. With an alphabet, texts may be empty.
    overlap: overlapping k-mers, one per position (`kmers.py`); kmer must be in `kmers.K_RANGE`.
    family: "bert" ([CLS] a [SEP], token types 0/1) or "esm" (<cls> a <eos>, one token per character).
    Returns a `seqtune.tokenization.Tokenizer` of kind "char".
    """
    check_family_vocab(VocabSpec(kmer=kmer, kmer_overlap=overlap), family)
    if overlap:
        check_k(kmer)
    texts = _as_texts(texts)
    letters = resolve_alphabet(alphabet)
    if letters is None:
        letters = "".join(sorted(corpus_characters(texts, source, lowercase)))
    elif texts:
        corpus_characters(texts, source, lowercase)  # refuses an empty corpus
        check_alphabet(texts, letters, source, lowercase)
    if overlap:
        require_whole_kmers(texts, kmer)  # before a model is written for a corpus it cannot read
    vocab, special = char_vocabulary(letters, kmer, vocab_size, family)
    backend = HFTokenizer(models.WordLevel(vocab, unk_token=CHAR_SPECIALS[family].unk))
    if lowercase:
        backend.normalizer = normalizers.Lowercase()
    # Words at whitespace, then pieces of up to k characters (k = 1: single characters).
    backend.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(),
        pre_tokenizers.Split(Regex(f".{{1,{kmer}}}"), behavior="isolated"),
    ])
    backend.add_special_tokens(special)
    backend.post_processor = esm_post_processor(vocab) if family == "esm" else bert_post_processor(vocab)
    backend.decoder = decoders.Fuse()
    return Tokenizer(backend, lowercase=lowercase, model_max_length=model_max_length, kind="char",
                     overlapping_kmer=kmer if overlap else 0)


def build_wordpiece_tokenizer(
    texts: Iterable,
    vocab_size: int,
    lowercase: bool = True,
    min_frequency: int = 2,
    source: str = "corpus",
    model_max_length: int = 512,
) -> Tokenizer:
    """A WordPiece vocabulary of `vocab_size` tokens trained on the corpus (BERT's text pipeline).

    The vocabulary must hold the special tokens and every character of the corpus (so that no word
    becomes [UNK]); a smaller vocab_size is an error rather than a silently larger vocabulary.
    """
    texts = _as_texts(texts)
    normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=lowercase
    )
    chars = corpus_characters([(normalizer.normalize_str(t), w) for t, w in texts], source, False)
    needed = len(SPECIAL_TOKENS) + len(chars)
    if vocab_size < needed:
        raise SeqtuneError(
            f"vocab_size {vocab_size} is smaller than the {needed} tokens needed: "
            f"{len(SPECIAL_TOKENS)} special tokens + {len(chars)} distinct characters of {source}. "
            "Raise vocab_size (natural-language BERT vocabularies have about 30,000)."
        )
    backend = HFTokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=100))
    backend.normalizer = normalizer
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece(prefix="##")
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        limit_alphabet=len(chars),
        continuing_subword_prefix="##",
        show_progress=False,
    )
    backend.train_from_iterator((t for t, _ in texts), trainer=trainer, length=len(texts))
    backend.post_processor = bert_post_processor(backend.get_vocab())
    return Tokenizer(backend, lowercase=lowercase, model_max_length=model_max_length, kind="wordpiece")


def check_family_vocab(spec: VocabSpec, family: str) -> None:
    """An ESM-shaped encoder reads one token per residue: a character vocabulary without k-mers (or the
    tokenizer of model.vocab.path, checked when it is loaded)."""
    if family not in CHAR_SPECIALS:
        raise SeqtuneError(f"no vocabulary for the family {family!r}; use one of {', '.join(CHAR_SPECIALS)}.")
    if family != "esm" or spec.path is not None:
        return
    if spec.kind != "char" or spec.kmer != 1 or spec.kmer_overlap:
        raise SeqtuneError(
            "model.architecture.family esm reads one token per residue, as ESM-2 does: it needs a character "
            f"vocabulary of single letters (model.vocab.kind char, kmer 1, no kmer_overlap), not kind {spec.kind!r}"
            f"{f' with kmer {spec.kmer}' if spec.kmer != 1 else ''}{' overlapping' if spec.kmer_overlap else ''}."
        )


def build_tokenizer(spec: VocabSpec, texts: Iterable, source: str, model_max_length: int = 512,
                    family: str = "bert") -> Tokenizer:
    """The tokenizer that `spec` describes (see `VocabSpec`), for an encoder of `family` (bert, esm)."""
    check_family_vocab(spec, family)
    if spec.path is not None:
        from seqtune.tokenization import FAMILY_CLS_TOKENS, load_tokenizer

        tokenizer = load_tokenizer(spec.path)
        found, expected = tokenizer.special.get("cls"), FAMILY_CLS_TOKENS[family]
        if found != expected:
            raise SeqtuneError(
                f"model.vocab.path {spec.path}: the tokenizer starts inputs with {found!r}, but {family} models "
                f"(model.architecture.family {family}) start them with {expected!r}. Use a tokenizer of that "
                "family, or set model.architecture.family to the tokenizer's."
            )
        return tokenizer
    if spec.kind == "char":
        return build_char_tokenizer(texts, spec.alphabet, spec.kmer, spec.vocab_size, spec.lowercase,
                                    source, model_max_length, spec.kmer_overlap, family)
    if spec.vocab_size is None:
        raise SeqtuneError("model.vocab.vocab_size is required for a wordpiece vocabulary (e.g. 30000).")
    if spec.alphabet is not None or spec.kmer != 1:
        raise SeqtuneError("model.vocab.alphabet and kmer apply to kind 'char' only.")
    return build_wordpiece_tokenizer(texts, spec.vocab_size, spec.lowercase, spec.min_frequency, source,
                                     model_max_length)


def same_vocabulary(a: Tokenizer, b: Tokenizer) -> bool:
    """Same tokens with the same ids, read the same way (overlapping k-mers or not)."""
    return a.backend.get_vocab() == b.backend.get_vocab() and a.overlapping_kmer == b.overlapping_kmer
