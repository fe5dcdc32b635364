"""Unlabelled corpora for masked-language-model pretraining, and turning them into model inputs.

Reading (`read_corpus`) goes through the shared readers of `data/readers/`: plain text (one example
per line), FASTA (multi-line records), CSV/TSV (one column; `header=False` picks it by number) or
JSONL (one field), gzip'd too. Every record keeps where it came from ("file:12",
"file record 7 (>sp|P69905, line 40)") so errors can name it.

Encoding (`encode_corpus`): tokenize every record once, then
- packing "lines": each record is one example; a record longer than max_length is cut into
  consecutive windows of near-equal size (chunked, never truncated: no token is dropped);
- packing "concatenate": all records joined with [SEP] between them, cut into full windows (no
  padding at all; the usual choice for natural text made of short lines).
Each window becomes `[CLS] window [SEP]`. Windows of WordPiece text end at word boundaries where
possible, so whole-word masking never sees half a word.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from seqtune.data.readers.fasta import iter_fasta
from seqtune.data.readers.formats import check_file, detect_format, numbered_lines
from seqtune.data.readers.table import Column, read_table
from seqtune.errors import SeqtuneError
from seqtune.tokenization import Tokenizer

CORPUS_FORMATS = ("text", "fasta", "csv", "tsv", "jsonl")


@dataclass
class CorpusRecord:
    text: str
    where: str  # for messages: "corpus.txt:12" or "proteins.fasta record 7 (>P69905, line 40)"


@dataclass
class Corpus:
    records: list[CorpusRecord]
    source: str
    info: dict = field(default_factory=dict)  # e.g. {"blank_lines": 3}

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> CorpusRecord:
        return self.records[index]


def read_corpus(path: str | Path, format: str = "auto", column: Column = "text",
                max_records: int | None = None, header: bool = True, encoding: str = "utf-8") -> Corpus:
    """Read an unlabelled corpus. Empty records are errors, blank text lines are skipped and counted."""
    info: dict = {}
    records = list(iter_corpus(path, format, column, max_records, header, encoding, info))
    return Corpus(records, Path(path).name, info)


def iter_corpus(path: str | Path, format: str = "auto", column: Column = "text",
                max_records: int | None = None, header: bool = True, encoding: str = "utf-8",
                info: dict | None = None) -> Iterator[CorpusRecord]:
    """`read_corpus` one record at a time: FASTA and text files are streamed (never held whole);
    CSV/TSV/JSONL are read whole, then yielded. `info` receives {"blank_lines": n} when given.
    An empty corpus is an error once the file has been read to its end."""
    path = check_file(path)
    fmt = detect_format(path, format, CORPUS_FORMATS, "corpus")
    name, count = path.name, 0
    if fmt == "text":
        blank = 0
        for n, text in numbered_lines(path, encoding):
            if not text.strip():
                blank += 1
                continue
            count += 1
            yield CorpusRecord(text, f"{name}:{n}")
            if max_records and count >= max_records:
                break
        if blank and info is not None:
            info["blank_lines"] = blank
    elif fmt == "fasta":
        for r in iter_fasta(path, max_records, encoding):
            where = f"{name} record {r.number} (>{r.id or ''}, line {r.line})"
            sequence = "".join(r.lines)
            if not sequence.isalpha():
                sequence = "".join(sequence.split())  # spaces inside sequence lines (rare) are dropped
            if not sequence:
                raise SeqtuneError(f"{where}: the record has no sequence (empty record).")
            count += 1
            yield CorpusRecord(sequence, where)
    else:
        for record in _table_records(path, fmt, column, max_records, header, encoding):
            count += 1
            yield record
    if not count:
        raise SeqtuneError(f"{path}: the corpus is empty (no {'sequences' if fmt == 'fasta' else 'text'} found).")


def _table_records(path: Path, fmt: str, column: Column, max_records: int | None,
                   header: bool, encoding: str) -> list[CorpusRecord]:
    table = read_table(path, fmt, max_records, header=header, what="corpus", encoding=encoding)
    table.require(column, "data.text_column", "text")
    records = []
    for row, line in zip(table.rows, table.lines):
        where, text = f"{path.name}:{line}", row.get(column)
        if text is not None and not isinstance(text, str):
            raise SeqtuneError(f"{where}: the {column!r} column should hold text, found {text!r}.")
        if not text or not text.strip():
            raise SeqtuneError(f"{where}: the {column!r} column is empty.")
        records.append(CorpusRecord(text, where))
    return records


# ---- encoding --------------------------------------------------------------------------------

def window_bounds(n: int, width: int, word_ids: list[int] | None = None) -> list[tuple[int, int]]:
    """Cut n tokens into consecutive windows of at most `width`, of near-equal size.

    With word ids, a cut that would split a word moves back to the word's start (unless the word
    alone is longer than a window). Every token lands in exactly one window.
    """
    bounds, start = [], 0
    while start < n:
        remaining = n - start
        pieces = -(-remaining // width)
        end = start + -(-remaining // pieces)
        if word_ids is not None and end < n:
            cut = end
            while cut > start + 1 and word_ids[cut] == word_ids[cut - 1] and word_ids[cut] >= 0:
                cut -= 1
            end = cut if cut > start + 1 else end
        bounds.append((start, end))
        start = end
    return bounds


def _renumber(word_ids: list[int]) -> list[int]:
    """Word ids local to one window: 0, 1, 2, ... in order; -1 (special tokens) kept."""
    out, mapping = [], {}
    for w in word_ids:
        out.append(-1 if w < 0 else mapping.setdefault(w, len(mapping)))
    return out


def check_known_tokens(record: CorpusRecord, encoding, tokenizer: Tokenizer) -> int:
    """The number of [UNK] tokens of a record's encoding; for a character tokenizer any is an error
    naming the record and the characters (they would all become [UNK])."""
    n_unk = encoding.ids.count(tokenizer.unk_id)
    if n_unk and tokenizer.kind == "char":
        chars = sorted({record.text[a:b] for (a, b), i in zip(encoding.offsets, encoding.ids) if i == tokenizer.unk_id})
        raise SeqtuneError(
            f"{record.where}: characters {''.join(chars)!r} are not in the model's vocabulary "
            f"({tokenizer.vocab_size} tokens); clean the corpus or build a vocabulary that includes them."
        )
    return n_unk


def encode_corpus(corpus: Corpus, tokenizer: Tokenizer, max_length: int,
                  packing: Literal["lines", "concatenate"] = "lines",
                  with_word_ids: bool = False) -> tuple[list[dict], dict]:
    """Tokenize once and cut into windows. Returns (features, info).

    features: {"input_ids": [CLS] ... [SEP], "example_index": record (first record, when packed),
    "word_ids" (if asked): word of each token, -1 at special tokens}. info counts records, chunked
    records, windows, tokens and [UNK] tokens. A character tokenizer refuses characters outside its
    vocabulary, naming the record (they would all become [UNK]).
    """
    if max_length < 3:
        raise SeqtuneError(f"data.max_length {max_length} leaves no room for tokens after [CLS] and [SEP].")
    width = max_length - 2
    encodings = tokenizer.backend.encode_batch([r.text for r in corpus.records], add_special_tokens=False)
    unknown = sum(check_known_tokens(record, enc, tokenizer) for record, enc in zip(corpus.records, encodings))
    cls, sep = tokenizer.cls_id, tokenizer.sep_id
    features: list[dict] = []
    chunked = 0

    def add(ids: list[int], words: list[int] | None, index: int) -> None:
        feature = {"input_ids": [cls, *ids, sep], "example_index": index}
        if with_word_ids:
            feature["word_ids"] = [-1, *_renumber(words), -1]
        features.append(feature)

    if packing == "lines":
        for index, enc in enumerate(encodings):
            words = [-1 if w is None else w for w in enc.word_ids]
            bounds = window_bounds(len(enc.ids), width, words if with_word_ids else None)
            chunked += len(bounds) > 1
            for start, end in bounds:
                add(enc.ids[start:end], words[start:end], index)
    elif packing == "concatenate":
        ids, words, owners, next_word = [], [], [], 0
        for index, enc in enumerate(encodings):
            if ids:
                ids.append(sep), words.append(-1), owners.append(index)
            ids.extend(enc.ids)
            words.extend(-1 if w is None else w + next_word for w in enc.word_ids)
            owners.extend([index] * len(enc.ids))
            next_word += 1 + max((w for w in enc.word_ids if w is not None), default=-1)
        for start in range(0, len(ids), width):
            end = min(start + width, len(ids))
            add(ids[start:end], words[start:end], owners[start])
    else:
        raise SeqtuneError(f"task.packing {packing!r} is not one of 'lines', 'concatenate'.")
    info = {
        "records": len(corpus.records),
        "windows": len(features),
        "chunked_records": chunked,
        "tokens": sum(len(f["input_ids"]) for f in features),
        "unknown_tokens": unknown,
        **corpus.info,
    }
    return features, info
