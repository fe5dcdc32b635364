"""What a task needs to know about its tokenizer's alphabet: the case of a character vocabulary
(`data.case`), k-mer vocabularies, and a warning when many input tokens are unknown.

A model pretrained on sequences usually has a single-case character vocabulary (`ACGTN`, the 25
amino-acid letters): lower-case or soft-masked input (`mkvl`, repeat-masked DNA in lower case) has
no token there and would become [UNK] everywhere, and the model would still give a confident answer.
`data.case: auto` (the default) therefore folds letters to the vocabulary's case when the vocabulary
is a single-case character vocabulary, and leaves text alone otherwise (a WordPiece tokenizer does its
own lower-casing). `upper` and `lower` always fold; `keep` never does.

Whatever the case setting, every task that tokenizes its inputs itself warns (through the "seqtune"
logger) when more than `UNKNOWN_WARNING_SHARE` of the input tokens are [UNK], naming the characters
(or, with a WordPiece vocabulary, the words) that became [UNK].
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from seqtune.logs import logger
from seqtune.tokenization import Tokenizer, is_special_name

UNKNOWN_WARNING_SHARE = 0.02  # warn when more than this share of the input tokens are [UNK]


def regular_tokens(tokenizer: Tokenizer) -> list[str]:
    """The vocabulary without special and [unusedN] / <null_1> tokens, WordPiece's "##" taken off."""
    return [t.removeprefix("##") for t in tokenizer.backend.get_vocab() if not is_special_name(t)]


def is_character_vocabulary(tokenizer: Tokenizer) -> bool:
    """A vocabulary of characters (or k-mers) of an alphabet: built by seqtune as kind "char", or a
    checkpoint whose tokens are all single characters (e.g. ProtBert)."""
    if tokenizer.kind == "char":
        return True
    tokens = regular_tokens(tokenizer)
    return bool(tokens) and all(len(t) == 1 for t in tokens)


def kmer_length(tokenizer: Tokenizer) -> int:
    """k of a k-mer character vocabulary (its longest token); 1 for single characters or WordPiece."""
    if tokenizer.kind != "char":
        return 1
    return max((len(t) for t in regular_tokens(tokenizer)), default=1)


def vocabulary_case(tokenizer: Tokenizer) -> str | None:
    """"upper" or "lower" when every cased letter of the vocabulary has that case, else None."""
    upper = lower = False
    for token in regular_tokens(tokenizer):
        for c in token:
            upper = upper or c.isupper()
            lower = lower or c.islower()
    if upper != lower:
        return "upper" if upper else "lower"
    return None


def _fold(text: str, method: str) -> str:
    folded = getattr(text, method)()
    if len(folded) == len(text):
        return folded
    # A few letters change length ("ß".upper() == "SS"); keep those, so positions stay aligned.
    return "".join(f if len(f := getattr(c, method)()) == 1 else c for c in text)


def case_folder(case: str, tokenizer: Tokenizer) -> Callable[[str], str] | None:
    """The function that applies `data.case` to a text (None: leave texts as they are)."""
    if case == "auto":
        case = vocabulary_case(tokenizer) if is_character_vocabulary(tokenizer) else None
    if case == "upper":
        return lambda text: _fold(text, "upper")
    if case == "lower":
        return lambda text: _fold(text, "lower")
    return None


def source_of(examples: list) -> str:
    """The file examples came from ("train.csv" out of "train.csv:12 (record 3)"), for messages."""
    where = getattr(examples[0], "where", "") if examples else ""
    if not where or where.startswith("input "):
        return "the inputs"
    return where.split(" (", 1)[0].rsplit(":", 1)[0]


def warn_unknown(source: str, unknown: Counter, unknown_count: int, total: int, tokenizer: Tokenizer,
                 case: str, what: str = "tokens") -> bool:
    """Log a warning when more than UNKNOWN_WARNING_SHARE of `total` tokens are [UNK]; returns whether
    it did. `unknown`: the text pieces (characters, or words) that became [UNK], with their counts."""
    if total == 0 or unknown_count / total <= UNKNOWN_WARNING_SHARE:
        return False
    listed = ", ".join(f"{piece!r} x{n:,}" for piece, n in unknown.most_common(12))
    more = f" and {len(unknown) - 12} more" if len(unknown) > 12 else ""
    vocab = tokenizer.backend.get_vocab()
    other_case = [p for p in unknown if p not in vocab and (p.upper() in vocab or p.lower() in vocab)]
    if other_case and case != "keep":
        hint = (f" {len(other_case)} of them are in the vocabulary in the other case ({other_case[0]!r}): "
                "set data.case to upper or lower to fold the inputs (data.case: auto folds only for a "
                "single-case character vocabulary).")
    elif other_case:
        hint = " Some are in the vocabulary in the other case: data.case is keep; upper or lower would fold them."
    else:
        hint = " Check that the inputs are what the model was trained on (alphabet, letter case, format)."
    logger.warning(
        f"{source}: {unknown_count / total:.1%} of the input {what} ({unknown_count:,} of {total:,}) are not in "
        f"the model's vocabulary and become [UNK]: {listed}{more}; predictions for them are unreliable.{hint}"
    )
    return True
