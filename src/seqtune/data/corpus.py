"""Unlabelled corpora for masked-language-model pretraining, and turning them into model inputs.

Reading (`read_corpus`): plain text (one example per line), FASTA (multi-line records, `.gz` too),
CSV/TSV (one column) or JSONL (one field). Every record keeps where it came from ("file:12",
"file record 7 (>sp|P69905)") so errors can name it.

Encoding (`encode_corpus`): tokenize every record once, then
- packing "lines": each record is one example; a record longer than max_length is cut into
  consecutive windows of near-equal size (chunked, never truncated: no token is dropped);
- packing "concatenate": all records joined with [SEP] between them, cut into full windows (no
  padding at all; the usual choice for natural text made of short lines).
Each window becomes `[CLS] window [SEP]`. Windows of WordPiece text end at word boundaries where
possible, so whole-word masking never sees half a word.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from seqtune.errors import SeqtuneError
from seqtune.tokenization import Tokenizer

CorpusFormat = Literal["auto", "text", "fasta", "csv", "tsv", "jsonl"]
FASTA_SUFFIXES = (".fasta", ".fa", ".faa", ".fna", ".ffn", ".fas", ".seq")
TEXT_SUFFIXES = (".txt", ".text", ".raw", ".tokens")


@dataclass
class CorpusRecord:
    text: str
    where: str  # for messages: "corpus.txt:12" or "proteins.fasta record 7 (>P69905)"


@dataclass
class Corpus:
    records: list[CorpusRecord]
    source: str
    info: dict = field(default_factory=dict)  # e.g. {"blank_lines": 3}

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> CorpusRecord:
        return self.records[index]


def open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def detect_format(path: Path, declared: str) -> str:
    if declared != "auto":
        return declared
    name = path.name.lower().removesuffix(".gz")
    suffix = Path(name).suffix
    if suffix in FASTA_SUFFIXES:
        return "fasta"
    if suffix in TEXT_SUFFIXES:
        return "text"
    if suffix in (".csv", ".tsv", ".jsonl"):
        return suffix[1:]
    raise SeqtuneError(
        f"{path}: cannot tell the corpus format from the file name; set data.format to one of "
        "text (one example per line), fasta, csv, tsv or jsonl."
    )


def read_corpus(path: str | Path, format: str = "auto", column: str = "text",
                max_records: int | None = None) -> Corpus:
    """Read an unlabelled corpus. Empty records are errors, blank text lines are skipped and counted."""
    path = Path(path)
    if not path.is_file():
        raise SeqtuneError(f"corpus file {str(path)!r} does not exist.")
    fmt = detect_format(path, format)
    readers = {"text": _read_text, "fasta": _read_fasta, "csv": _read_table, "tsv": _read_table,
               "jsonl": _read_jsonl}
    if fmt not in readers:
        raise SeqtuneError(f"{path}: data.format {fmt!r} is not a corpus format; use one of {', '.join(readers)}.")
    try:
        with open_text(path) as f:
            corpus = readers[fmt](f, path.name, fmt=fmt, column=column, max_records=max_records)
    except UnicodeDecodeError as e:
        raise SeqtuneError(f"{path}: not UTF-8 text ({e}).") from None
    if not corpus.records:
        raise SeqtuneError(f"{path}: the corpus is empty (no {'sequences' if fmt == 'fasta' else 'text'} found).")
    return corpus


def _read_text(f, name: str, max_records: int | None, **_) -> Corpus:
    records, blank = [], 0
    for i, line in enumerate(f, start=1):
        text = line.rstrip("\r\n")
        if not text.strip():
            blank += 1  # blank lines separate paragraphs/documents in text corpora
            continue
        records.append(CorpusRecord(text, f"{name}:{i}"))
        if max_records and len(records) >= max_records:
            break
    return Corpus(records, name, {"blank_lines": blank} if blank else {})


def _read_fasta(f, name: str, max_records: int | None, **_) -> Corpus:
    records: list[CorpusRecord] = []
    header, header_line, parts = None, 0, []

    def finish() -> None:
        where = f"{name} record {len(records) + 1} ({header.split()[0] if header.split() else '>'}, line {header_line})"
        sequence = "".join(parts)
        if not sequence:
            raise SeqtuneError(f"{where}: the record has no sequence (empty record).")
        records.append(CorpusRecord(sequence, where))

    for i, line in enumerate(f, start=1):
        line = line.strip()
        if line.startswith(">"):
            if header is not None:
                finish()
                if max_records and len(records) >= max_records:
                    return Corpus(records, name)
            header, header_line, parts = line, i, []
        elif line.startswith(";") or not line:
            continue  # comment lines of old FASTA files; blank lines between records
        elif header is None:
            raise SeqtuneError(f"{name}:{i}: sequence data before the first '>' header; is this a FASTA file?")
        else:
            parts.append("".join(line.split()))
    if header is not None:
        finish()
    return Corpus(records, name)


def _read_table(f, name: str, fmt: str, column: str, max_records: int | None) -> Corpus:
    reader = csv.reader(f, delimiter="\t" if fmt == "tsv" else ",")
    header = next(reader, None)
    if header is None:
        return Corpus([], name)
    if column not in header:
        raise SeqtuneError(f"{name}: no column {column!r} (set data.text_column); the columns are: {', '.join(header)}.")
    index = header.index(column)
    records = []
    for row in reader:
        line = reader.line_num
        if not row:
            continue
        if len(row) != len(header):
            raise SeqtuneError(f"{name}:{line}: {len(row)} fields, but the header has {len(header)}.")
        text = row[index]
        if not text.strip():
            raise SeqtuneError(f"{name}:{line}: the {column!r} column is empty.")
        records.append(CorpusRecord(text, f"{name}:{line}"))
        if max_records and len(records) >= max_records:
            break
    return Corpus(records, name)


def _read_jsonl(f, name: str, column: str, max_records: int | None, **_) -> Corpus:
    records = []
    for i, line in enumerate(f, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise SeqtuneError(f"{name}:{i}: not valid JSON ({e}).") from None
        text = row.get(column) if isinstance(row, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise SeqtuneError(f"{name}:{i}: no non-empty text field {column!r} (set data.text_column).")
        records.append(CorpusRecord(text, f"{name}:{i}"))
        if max_records and len(records) >= max_records:
            break
    return Corpus(records, name)


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
    unknown = 0
    for record, enc in zip(corpus.records, encodings):
        n_unk = enc.ids.count(tokenizer.unk_id)
        if n_unk and tokenizer.kind == "char":
            chars = sorted({record.text[a:b] for (a, b), i in zip(enc.offsets, enc.ids) if i == tokenizer.unk_id})
            raise SeqtuneError(
                f"{record.where}: characters {''.join(chars)!r} are not in the model's vocabulary "
                f"({tokenizer.vocab_size} tokens); clean the corpus or build a vocabulary that includes them."
            )
        unknown += n_unk
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
