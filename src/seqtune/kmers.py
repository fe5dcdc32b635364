"""Overlapping k-mer tokens, as DNABERT uses them: one k-mer per position of a sequence.

"ACGTAC" with k = 3 is read as the tokens ACG CGT GTA TAC AC C: the token at position i is the k-mer
that starts at nucleotide i. DNABERT stops at the last whole k-mer (L - k + 1 tokens); seqtune keeps
going with the shorter k-mers of the sequence's end (AC, C), so a sequence of L letters has exactly L
tokens and per-nucleotide labels stay aligned one to one: nucleotide i's label goes to token i, and
token i's prediction comes back to nucleotide i. The vocabulary holds every k-mer of the alphabet and
every shorter end piece (`vocab_builder.char_vocabulary`). Whitespace separates sequences (words);
each word ends with its own shorter k-mers.

The `tokenizers` library has no pre-tokenizer that yields overlapping pieces, so seqtune installs
a Python one (`OverlappingKmers`) on the tokenizer it uses; its pieces keep their offsets in the
original text. A Python pre-tokenizer cannot be saved in tokenizer.json, so the saved file holds a
plain whitespace split instead (`saved_pre_tokenizer`) and tokenizer_config.json records
`seqtune_overlapping_kmer: k`: seqtune puts the k-mer pre-tokenizer back when it loads the model.
Hugging Face `transformers` loads the same tokenizer.json and reads k-mers separated by spaces
(`spaced_kmers`), DNABERT's own input format, and gives the same token ids.
"""

from __future__ import annotations

import re
from contextlib import contextmanager

from tokenizers import Tokenizer as HFTokenizer
from tokenizers import pre_tokenizers
from tokenizers.pre_tokenizers import PreTokenizer

from seqtune.errors import SeqtuneError

K_RANGE = (3, 6)  # DNABERT's k-mer sizes: 4 ** 6 = 4,096 six-mers
_WORD = re.compile(r"\S+")


def check_k(k: int, what: str = "model.vocab.kmer") -> None:
    lo, hi = K_RANGE
    if isinstance(k, bool) or not isinstance(k, int) or not lo <= k <= hi:
        raise SeqtuneError(
            f"{what} is {k!r}, but overlapping k-mers support k from {lo} to {hi} (DNABERT's sizes; the "
            f"vocabulary grows four-fold with each k: {4 ** hi:,} DNA {hi}-mers). Choose k in {lo}..{hi}."
        )


def position_kmers(sequence: str, k: int) -> list[str]:
    """The k-mer starting at each position of `sequence` (shorter at its end): one per letter."""
    n = len(sequence)
    return [sequence[i:min(i + k, n)] for i in range(n)]


def spaced_kmers(text: str, k: int) -> str:
    """`text` as space-separated overlapping k-mers: what the saved tokenizer.json reads outside seqtune
    (e.g. with transformers' AutoTokenizer), DNABERT's input format."""
    return " ".join(kmer for word in text.split() for kmer in position_kmers(word, k))


class OverlappingKmers:
    """A `tokenizers` pre-tokenizer: words at whitespace, then one k-mer per position of each word."""

    def __init__(self, k: int):
        self.k = k

    def _words(self, _index, normalized):
        return [normalized[m.start():m.end()] for m in _WORD.finditer(str(normalized))]

    def _kmers(self, _index, normalized):
        n = len(str(normalized))
        return [normalized[i:min(i + self.k, n)] for i in range(n)]

    def pre_tokenize(self, pretok) -> None:
        pretok.split(self._words)
        pretok.split(self._kmers)


def saved_pre_tokenizer():
    """What tokenizer.json holds: whitespace-separated k-mers, one token each."""
    return pre_tokenizers.WhitespaceSplit()


def use_kmer_pre_tokenizer(backend: HFTokenizer, k: int) -> None:
    """Make `backend` read raw sequences as overlapping k-mers."""
    backend.pre_tokenizer = PreTokenizer.custom(OverlappingKmers(k))


@contextmanager
def with_saved_pre_tokenizer(backend: HFTokenizer, k: int):
    """Inside the block the backend has its saveable pre-tokenizer (to_str, save); k = 0: no change."""
    if not k:
        yield backend
        return
    backend.pre_tokenizer = saved_pre_tokenizer()
    try:
        yield backend
    finally:
        use_kmer_pre_tokenizer(backend, k)


def require_whole_kmers(texts, k: int) -> None:
    """Refuse a sequence shorter than k: it has no whole k-mer, only the shorter end pieces the model
    saw at sequence ends. texts: (text, where) pairs; every whitespace-separated word is a sequence."""
    for text, where in texts:
        short = next((word for word in text.split() if len(word) < k), None)
        if short is not None:
            shown = short if len(short) <= 20 else short[:20] + "..."
            raise SeqtuneError(
                f"{where}: the sequence {shown!r} has {len(short)} letters, fewer than k = {k}: the model reads "
                f"overlapping {k}-mers (one per letter) and this sequence holds no whole {k}-mer. Leave out "
                f"sequences shorter than {k} letters, or use a model with a smaller k or single-letter tokens."
            )
