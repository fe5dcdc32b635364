"""Word-tagged sentences (NER, POS, chunking) from CoNLL column files and JSONL.

CoNLL: one word per line, whitespace-separated columns (`EU NNP B-NP B-ORG`), a blank line between
sentences, `-DOCSTART-` lines (document boundaries) skipped. Which columns hold the word and the tag
is configurable (`token_column`, `tag_column`; negative counts from the end, so -1 is the last
column). Every word line must have as many columns as the first one: a line that does not is an
error naming `file:line`, never silently dropped.

JSONL: one sentence per line, `{"tokens": ["EU", "rejects", ...], "tags": ["B-ORG", "O", ...]}` (key
names configurable). An empty sentence (no tokens) is an error: it has nothing to tag.

Both formats are read line by line (`iter_tagged`), so a file with several problems is reported at
the first one.

For prediction (`labelled=False`) the tag column/key may be absent; tags are then None.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from seqtune.data.readers.formats import check_file, detect_format, numbered_lines
from seqtune.data.readers.table import iter_jsonl
from seqtune.errors import SeqtuneError

TAGGING_FORMATS = ("conll", "jsonl")
DOCSTART = "-DOCSTART-"


@dataclass
class TaggedSentence:
    """One sentence: its words and (when labelled) one tag per word."""

    tokens: list[str]
    tags: list[str] | None
    where: str  # "file:line" of the sentence's first word (CoNLL) or record (JSONL), for messages
    id: str | int | None = None  # a JSONL record's data.id_column value, copied into its prediction


def read_tagged(path: str, fmt: str = "auto", **options) -> list[TaggedSentence]:
    """Read every sentence of a CoNLL or JSONL file, checking each line (`iter_tagged`'s options). See
    the module docstring."""
    return list(iter_tagged(path, fmt, **options))


def iter_tagged(
    path: str,
    fmt: str = "auto",
    *,
    labelled: bool = True,
    token_column: int = 0,
    tag_column: int = -1,
    tokens_key: str = "tokens",
    tags_key: str = "tags",
    max_sentences: int | None = None,
    encoding: str = "utf-8",
    id_key: str | None = None,
) -> Iterator[TaggedSentence]:
    """`read_tagged` one sentence at a time, the file read line by line (for the token store:
    tasks/tagging_store.py). Both read through here, so they check the same lines in the same order
    and fail with the same message."""
    p = check_file(path)
    if detect_format(path, fmt, TAGGING_FORMATS, "tagging") == "jsonl":
        sentences = _iter_jsonl(p, labelled, tokens_key, tags_key, max_sentences, encoding, id_key)
    else:
        sentences = _iter_conll(p, labelled, token_column, tag_column, max_sentences, encoding)
    count = 0
    for count, sentence in enumerate(sentences, start=1):
        yield sentence
    if not count:
        raise SeqtuneError(f"{path}: the file has no sentences.")


def _iter_conll(
    path: Path, labelled: bool, token_column: int, tag_column: int, max_sentences: int | None, encoding: str
) -> Iterator[TaggedSentence]:
    """Sentences as they end. With `max_sentences`, reading stops at the first blank line after that
    many sentences (a -DOCSTART- line ends a sentence but does not stop it), and only the first
    `max_sentences` are given."""
    ended = 0  # sentences ended so far, the ones past max_sentences included
    tokens: list[str] = []
    tags: list[str] = []
    first_line = 0
    expected: tuple[int, int] | None = None  # (number of columns, line that set it)
    for n, line in numbered_lines(path, encoding):
        columns = line.split()
        if not columns or columns[0] == DOCSTART:  # a document boundary also ends a sentence
            if tokens:
                if max_sentences is None or ended < max_sentences:
                    yield TaggedSentence(tokens, tags if labelled else None, f"{path}:{first_line}")
                ended += 1
            tokens, tags = [], []
            if not columns and max_sentences is not None and ended >= max_sentences:
                return
            continue
        if expected is None:
            expected = (len(columns), n)
            _check_columns(path, n, len(columns), token_column, tag_column if labelled else None)
        elif len(columns) != expected[0]:
            raise SeqtuneError(
                f"{path}:{n}: found {len(columns)} columns but line {expected[1]} has {expected[0]}; "
                "every word line of a CoNLL file needs the same columns (separated by spaces or tabs). "
                f"The line reads: {line.strip()[:120]!r}."
            )
        if not tokens:
            first_line = n
        tokens.append(columns[token_column])
        if labelled:
            tags.append(columns[tag_column])
    if tokens and (max_sentences is None or ended < max_sentences):
        yield TaggedSentence(tokens, tags if labelled else None, f"{path}:{first_line}")


def _check_columns(path: Path, line: int, count: int, token_column: int, tag_column: int | None) -> None:
    for name, index in (("data.token_column", token_column), ("data.tag_column", tag_column)):
        if index is not None and not -count <= index < count:
            raise SeqtuneError(
                f"{path}:{line}: {name} is {index} but the line has only {count} columns "
                f"(valid: 0..{count - 1}, or -1 for the last)."
            )
    if tag_column is not None and token_column % count == tag_column % count:
        raise SeqtuneError(f"{path}: data.token_column and data.tag_column name the same column ({token_column}).")


def _iter_jsonl(
    path: Path, labelled: bool, tokens_key: str, tags_key: str, max_sentences: int | None, encoding: str,
    id_key: str | None = None,
) -> Iterator[TaggedSentence]:
    for n, record in iter_jsonl(path, max_sentences, encoding):
        where = f"{path}:{n}"
        if tokens_key not in record:
            raise SeqtuneError(
                f"{where}: expected an object with {tokens_key!r}"
                + (f" and {tags_key!r}" if labelled else "")
                + f" lists, e.g. {{\"{tokens_key}\": [\"EU\", \"rejects\"], \"{tags_key}\": [\"B-ORG\", \"O\"]}}."
            )
        tokens = _string_list(record[tokens_key], tokens_key, where)
        if not tokens:
            raise SeqtuneError(f"{where}: empty sentence ({tokens_key!r} has no words); remove the record.")
        tags = None
        if labelled:
            if tags_key not in record:
                raise SeqtuneError(f"{where}: the record has no {tags_key!r} list (one tag per word).")
            tags = _string_list(record[tags_key], tags_key, where)
            if len(tags) != len(tokens):
                raise SeqtuneError(
                    f"{where}: {len(tokens)} words but {len(tags)} tags; every word needs exactly one tag."
                )
        record_id = record.get(id_key) if id_key is not None else None
        if record_id is not None and not isinstance(record_id, (str, int)):
            raise SeqtuneError(f"{where}: the record id {id_key!r} must be a string or a whole number, "
                               f"found {str(record_id)[:80]}.")
        yield TaggedSentence(tokens, tags, where, record_id)


def _string_list(value, key: str, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SeqtuneError(f"{where}: {key!r} must be a list of strings, found {str(value)[:80]}.")
    for i, v in enumerate(value):
        if not v.strip():
            raise SeqtuneError(f"{where}: {key!r} item {i} is empty or only whitespace.")
    return value
