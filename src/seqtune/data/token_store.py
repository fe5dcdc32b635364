"""Token stores: a corpus tokenized once into flat memory-mapped arrays, reused by every epoch and run.

A store is a directory `<cache>/<file stem>-<key>/` (see `cache_root`):

    meta.json     format version, key, what it was made from, dtype and counts (written last)
    ids.bin       the token ids of every record back to back, without [CLS]/[SEP], in the narrowest
                  unsigned dtype that holds the vocabulary (uint8 up to 256 tokens, uint16, uint32)
    offsets.bin   int64, records + 1: record r is ids[offsets[r]:offsets[r + 1]]
    numbers.bin   int64, records: each record's 1-based number in the file (for messages)
    marks.bin     uint8, one per token, subword tokenizers only: 1 first token of a word,
                  0 same word as the token before, 2 no word
    windows-<packing>-<max_length>.bin/.json   int64 (windows, 3): start, length with [CLS]/[SEP],
                  record; made on first use for each packing and max_length

The key is a SHA-256 over the input file's bytes, the tokenizer (its full `tokenizer.json`), the
reading settings and the files records are compared with (`data.exclude_similar_to`): change any of
them and a new store is built; the old one stays until deleted. Tokenizing streams the corpus in
chunks of about a million characters, so memory while building does not grow with the corpus.

Safety: a store is built in a temporary directory (each file fsync'd) and renamed into place in one
step, so a store directory is complete or absent. A build that was killed leaves only its temporary
directory, which the next build removes. Builders of one key take an exclusive lock (`fcntl.flock`
on `<store>.lock`): a second process waits, then reads the finished store. Opening checks sizes
and SHA-256 checksums; a store that fails is reported (never half-used), naming the directory to delete.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqtune.data.corpus import CorpusRecord, check_known_tokens, window_bounds
from seqtune.errors import SeqtuneError
from seqtune.files import fsync_directory, write_text
from seqtune.tokenization import Tokenizer, is_special_name

FORMAT_VERSION = 1
CHUNK_CHARACTERS = 1 << 20  # characters tokenized per encode_batch call
INDEX_CHUNK = 1 << 16  # records per step when building a window index (bounded memory)
MARK_CONTINUES, MARK_STARTS, MARK_NO_WORD = 0, 1, 2


def cache_root() -> Path:
    """Where token stores live: $SEQTUNE_CACHE, else $XDG_CACHE_HOME/seqtune, else ~/.cache/seqtune."""
    if os.environ.get("SEQTUNE_CACHE"):
        return Path(os.environ["SEQTUNE_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "seqtune"


def narrowest_dtype(vocab_size: int) -> np.dtype:
    for dtype in (np.uint8, np.uint16, np.uint32):
        if vocab_size <= np.iinfo(dtype).max + 1:
            return np.dtype(dtype)
    raise SeqtuneError(f"a vocabulary of {vocab_size} tokens is too large for a token store.")


def file_digest(path: str | Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def tokenizer_digest(tokenizer: Tokenizer) -> str:
    text = json.dumps({"kind": tokenizer.kind, "lowercase": tokenizer.lowercase,
                       "backend": tokenizer.backend.to_str()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class StoreSpec:
    """What a store is made from; `key` names it."""

    path: Path  # the input file
    reading: dict  # format, column, header, encoding, max_records: anything that changes the records read
    compared_with: list[str]  # digests of the files records are compared with (exclusion); [] for none

    def key(self, tokenizer: Tokenizer) -> str:
        text = json.dumps({"version": FORMAT_VERSION, "input": file_digest(self.path),
                           "tokenizer": tokenizer_digest(tokenizer), "reading": self.reading,
                           "compared_with": self.compared_with}, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()


class TokenStore:
    """An opened (verified) store: memory-mapped arrays, read by offset."""

    def __init__(self, directory: Path):
        self.directory = directory
        meta_path = directory / "meta.json"
        try:
            self.meta = json.loads(meta_path.read_text())
        except (OSError, ValueError) as e:
            raise corrupt(directory, f"meta.json cannot be read: {e}") from None
        if self.meta.get("version") != FORMAT_VERSION:
            raise corrupt(directory, f"format version {self.meta.get('version')!r}, expected {FORMAT_VERSION}")
        try:
            dtype = np.dtype(self.meta["dtype"])
            self.records, self.tokens = int(self.meta["records"]), int(self.meta["tokens"])
            expected = {"ids.bin": self.tokens * dtype.itemsize, "offsets.bin": (self.records + 1) * 8,
                        "numbers.bin": self.records * 8}
            if self.meta["words"]:
                expected["marks.bin"] = self.tokens
            if "label_names" in self.meta:  # a labelled file (tasks/residue_store.py): uint16 per token
                expected["labels.bin"] = self.tokens * 2
            for name, size in expected.items():
                actual = (directory / name).stat().st_size if (directory / name).exists() else None
                if actual != size:
                    raise corrupt(directory, f"{name} holds {actual} bytes, expected {size}")
                if file_digest(directory / name) != self.meta["sha256"][name]:
                    raise corrupt(directory, f"{name} does not match its checksum")
        except (KeyError, TypeError) as e:
            raise corrupt(directory, f"meta.json lacks {e}") from None
        self.ids = _map(directory / "ids.bin", dtype)
        self.offsets = _map(directory / "offsets.bin", np.int64)
        self.numbers = _map(directory / "numbers.bin", np.int64)
        self.marks = _map(directory / "marks.bin", np.uint8) if self.meta["words"] else None
        self.labels = _map(directory / "labels.bin", np.uint16) if "label_names" in self.meta else None
        if self.offsets[0] != 0 or self.offsets[-1] != self.tokens:
            raise corrupt(directory, "offsets.bin does not span ids.bin")

    def __len__(self) -> int:
        return self.records

    def record_ids(self, r: int) -> np.ndarray:
        return self.ids[self.offsets[r]:self.offsets[r + 1]]

    # ---- windows --------------------------------------------------------------------------------
    def windows(self, packing: str, max_length: int, with_words: bool) -> tuple[np.ndarray, dict]:
        """The window index for `packing` and `max_length` (cached beside the store): (windows, 3)
        int64 memory-mapped rows (start, length, record), and {"chunked_records": n}."""
        if max_length < 3:
            raise SeqtuneError(f"data.max_length {max_length} leaves no room for tokens after [CLS] and [SEP].")
        if packing not in ("lines", "concatenate"):
            raise SeqtuneError(f"task.packing {packing!r} is not one of 'lines', 'concatenate'.")
        words = with_words and self.marks is not None
        name = f"windows-{packing}-{max_length}{'-words' if words else ''}"
        bin_path, json_path = self.directory / f"{name}.bin", self.directory / f"{name}.json"
        info = _read_json(json_path)
        if info is None or "sha256" not in info or not bin_path.exists():  # not made yet (or stopped): made now
            info = self._write_windows(bin_path, json_path, packing, max_length - 2, words)
        elif bin_path.stat().st_size != info.get("windows", -1) * 24 or file_digest(bin_path) != info.get("sha256"):
            raise corrupt(self.directory, f"{bin_path.name} does not match {json_path.name}")
        if not info["windows"]:
            return np.zeros((0, 3), dtype=np.int64), info
        return _map(bin_path, np.int64).reshape(-1, 3), info

    def _write_windows(self, bin_path: Path, json_path: Path, packing: str, width: int, words: bool) -> dict:
        tmp = bin_path.with_name(f".{bin_path.name}.{uuid.uuid4().hex}")
        count, chunked, digest = 0, 0, hashlib.sha256()
        try:
            with open(tmp, "wb") as f:
                parts = self._concatenate_windows(width) if packing == "concatenate" else self._line_windows(width, words)
                for rows, n_chunked in parts:
                    data = np.ascontiguousarray(rows, dtype=np.int64).tobytes()
                    f.write(data)
                    digest.update(data)
                    count += len(rows)
                    chunked += n_chunked
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, bin_path)
            info = {"windows": count, "chunked_records": chunked, "sha256": digest.hexdigest()}
            write_text(json_path, json.dumps(info, indent=1))
        except OSError as e:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise write_error(self.directory, e) from None
        return info

    def _line_windows(self, width: int, words: bool) -> Iterator[tuple[np.ndarray, int]]:
        """Each record cut by `window_bounds` (the rule of `encode_corpus`), a chunk of records at a time."""
        memo: dict[int, list[tuple[int, int]]] = {}
        for first in range(0, self.records, INDEX_CHUNK):
            offsets = np.asarray(self.offsets[first:min(first + INDEX_CHUNK, self.records) + 1])
            lengths = np.diff(offsets)
            short = lengths <= width
            if short.all():  # one window per record
                rows = np.stack([offsets[:-1], lengths + 2, np.arange(first, first + len(lengths))], axis=1)
                yield rows, 0
                continue
            out: list[tuple[int, int, int]] = []
            n_chunked = 0
            for i, (start, n) in enumerate(zip(offsets[:-1].tolist(), lengths.tolist())):
                if n <= width:
                    out.append((start, n + 2, first + i))
                    continue
                if words:
                    marks = np.asarray(self.marks[start:start + n])
                    bounds = window_bounds(n, width, _pseudo_word_ids(marks).tolist())
                else:
                    bounds = memo.get(n) or memo.setdefault(n, window_bounds(n, width))
                n_chunked += len(bounds) > 1
                out.extend((start + a, b - a + 2, first + i) for a, b in bounds)
            yield np.array(out, dtype=np.int64).reshape(-1, 3), n_chunked

    def _concatenate_windows(self, width: int) -> Iterator[tuple[np.ndarray, int]]:
        """Records joined with [SEP] into one stream (record r starts at offsets[r] + r), cut every
        `width` tokens; a window belongs to the record at its first position (a [SEP] to the record after it)."""
        total = self.tokens + self.records - 1
        n_windows = -(-total // width)
        separators = np.asarray(self.offsets[1:-1]) + np.arange(1, self.records) - 1  # stream position of each [SEP]
        for first in range(0, n_windows, INDEX_CHUNK):
            starts = np.arange(first, min(first + INDEX_CHUNK, n_windows), dtype=np.int64) * width
            lengths = np.minimum(starts + width, total) - starts + 2
            owners = np.searchsorted(separators, starts, side="right")
            yield np.stack([starts, lengths, owners], axis=1), 0

    def stream(self, a: int, b: int, record: int, with_words: bool) -> tuple[list[int], list[int] | None]:
        """Token ids (and word marks) of stream positions [a, b) of the concatenated records, with
        [SEP] (mark: no word) between records. `record`: the one holding position a (its [SEP] included)."""
        sep = self.meta["sep_id"]
        r = record
        ids: list[int] = []
        marks: list[int] = []
        while r < self.records:
            start = int(self.offsets[r]) + r  # stream position of the record's first token
            if r > 0 and a <= start - 1 < b:
                ids.append(sep)
                marks.append(MARK_NO_WORD)
            if start >= b:
                break
            lo, hi = max(a, start) - start, min(b, start + int(self.offsets[r + 1] - self.offsets[r])) - start
            if hi > lo:
                base = int(self.offsets[r])
                ids.extend(self.ids[base + lo:base + hi].tolist())
                if with_words:
                    part = self.marks[base + lo:base + hi].tolist()
                    if lo == 0 and part and part[0] == MARK_CONTINUES:
                        part[0] = MARK_STARTS  # a record's first token starts a word
                    marks.extend(part)
            r += 1
        return ids, (marks if with_words else None)


@dataclass
class StoredRecord:
    where: str


class StoredRecords:
    """The records of a store, for messages: len() and records[i].where ("FILE record N")."""

    def __init__(self, store: TokenStore, source: str):
        self.store, self.source = store, source

    def __len__(self) -> int:
        return self.store.records

    def __getitem__(self, i: int) -> StoredRecord:
        return StoredRecord(f"{self.source} record {int(self.store.numbers[i])}")


class StoreWindows:
    """The windows of a store as features (what `encode_corpus` returns), made when asked for:
    features[i] = {"input_ids": [CLS] ... [SEP], "example_index": record, "word_ids" (if asked)}."""

    def __init__(self, store: TokenStore, packing: str, max_length: int, cls_id: int, sep_id: int,
                 with_words: bool = False):
        self.store, self.packing = store, packing
        self.cls_id, self.sep_id = cls_id, sep_id
        self.with_words = with_words and store.marks is not None
        self.index, self.info = store.windows(packing, max_length, self.with_words)

    def __len__(self) -> int:
        return len(self.index)

    @property
    def lengths(self) -> np.ndarray:
        """Tokens per window ([CLS] and [SEP] included): a memory-mapped int64 column."""
        return self.index[:, 1]

    def __getitem__(self, i: int | slice) -> dict | list[dict]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        start, length, record = (int(v) for v in self.index[i])
        n = length - 2
        if self.packing == "lines":
            ids = self.store.ids[start:start + n].tolist()
            marks = self.store.marks[start:start + n].tolist() if self.with_words else None
        else:
            ids, marks = self.store.stream(start, start + n, record, self.with_words)
        feature = {"input_ids": [self.cls_id, *ids, self.sep_id], "example_index": record}
        if self.with_words:
            feature["word_ids"] = [-1, *window_word_ids(marks), -1]
        return feature

    def __iter__(self) -> Iterator[dict]:
        return (self[i] for i in range(len(self)))


def window_word_ids(marks: list[int]) -> list[int]:
    """Word ids local to one window (0, 1, 2, ... in order; -1 where no word) from its marks; the
    first token starts a word even when the window begins inside one (as `corpus._renumber` does)."""
    out, word = [], -1
    previous = MARK_NO_WORD
    for m in marks:
        if m == MARK_NO_WORD:
            out.append(-1)
        else:
            if m == MARK_STARTS or previous == MARK_NO_WORD:
                word += 1
            out.append(word)
        previous = m
    return out


def _pseudo_word_ids(marks: np.ndarray) -> np.ndarray:
    """Word ids that compare equal exactly where `marks` says "same word" (for `window_bounds`)."""
    ids = np.cumsum(marks != MARK_CONTINUES) - 1
    ids[marks == MARK_NO_WORD] = -1
    return ids


def word_marks(word_ids: list[int | None]) -> list[int]:
    out, previous = [], None
    for w in word_ids:
        if w is None:
            out.append(MARK_NO_WORD)
        else:
            out.append(MARK_CONTINUES if w == previous else MARK_STARTS)
        previous = w
    return out


# ---- building ---------------------------------------------------------------------------------

def existing_store(spec: StoreSpec, tokenizer: Tokenizer, root: Path | None = None) -> Path | None:
    """The directory of the finished store of `spec` + `tokenizer`, or None when there is none yet."""
    final = (root or cache_root()) / store_name(spec, spec.key(tokenizer))
    return final if (final / "meta.json").exists() else None


def store_name(spec: StoreSpec, key: str) -> str:
    return f"{spec.path.name.split('.')[0][:40] or 'corpus'}-{key[:20]}"


def open_store(spec: StoreSpec, tokenizer: Tokenizer, records: Callable[[dict], Iterable[CorpusRecord | None]],
               root: Path | None = None, log: Callable[[str], None] = lambda message: None) -> TokenStore:
    """The store of `spec` + `tokenizer`: opened when it exists, else built from `records(info)`
    (called only then; None for a record left out, which keeps the numbering; what it puts in `info`,
    e.g. blank lines, is kept in meta.json). `log` receives one line saying which, with the build's
    throughput."""
    return _open_or_build(spec, tokenizer, lambda tmp, key: _build(tmp, key, spec, tokenizer, records), root, log)


def build_store(spec: StoreSpec, tokenizer: Tokenizer, write: Callable[[Path], dict], root: Path | None = None,
                log: Callable[[str], None] = lambda message: None) -> TokenStore:
    """`open_store` for a store whose files another module writes (a labelled file:
    tasks/residue_store.py): `write(directory)` writes ids.bin, offsets.bin, numbers.bin (and its
    own files) there and returns meta.json's counts ("records", "tokens", "dtype") and its own
    fields; checksums and the rest of meta.json are added here. The same cache, key, lock and
    atomic rename as a corpus."""
    return _open_or_build(spec, tokenizer, lambda tmp, key: _finish(tmp, key, spec, tokenizer, write(tmp)), root, log)


def _finish(directory: Path, key: str, spec: StoreSpec, tokenizer: Tokenizer, written: dict) -> None:
    names = sorted(p.name for p in directory.glob("*.bin"))
    for name in names:
        with open(directory / name, "rb+") as f:
            os.fsync(f.fileno())
    meta = {"version": FORMAT_VERSION, "key": key, "source": spec.path.name, "reading": spec.reading,
            "tokenizer_kind": tokenizer.kind, "vocab_size": tokenizer.vocab_size, "words": False,
            "cls_id": tokenizer.cls_id, "sep_id": tokenizer.sep_id, "unknown_tokens": 0, "info": {},
            "sha256": {n: file_digest(directory / n) for n in names}, **written}
    write_text(directory / "meta.json", json.dumps(meta, indent=1))


def _open_or_build(spec: StoreSpec, tokenizer: Tokenizer, build: Callable[[Path, str], None], root: Path | None,
                   log: Callable[[str], None]) -> TokenStore:
    root = root or cache_root()
    key = spec.key(tokenizer)
    name = store_name(spec, key)
    final = root / name
    if (final / "meta.json").exists():
        store = TokenStore(final)
        log(f"token store: {final} ({store.records:,} records, {store.tokens:,} tokens, reused)")
        return store
    with contextlib.ExitStack() as stack:
        try:
            root.mkdir(parents=True, exist_ok=True)
            lock = stack.enter_context(open(root / f"{name}.lock", "a+"))
        except OSError as e:
            raise write_error(root, e) from None
        _lock(lock)
        if (final / "meta.json").exists():  # another process built it while this one waited
            store = TokenStore(final)
            log(f"token store: {final} ({store.records:,} records, {store.tokens:,} tokens, built by another process)")
            return store
        for stale in root.glob(f".tmp-{name}-*"):  # a build that was killed: never used, removed
            log(f"token store: removing {stale}, left by a build that did not finish")
            shutil.rmtree(stale, ignore_errors=True)
        if final.exists():
            raise corrupt(final, "meta.json is missing")
        tmp = root / f".tmp-{name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        started = time.perf_counter()
        try:
            tmp.mkdir()
            build(tmp, key)
            os.rename(tmp, final)
            fsync_directory(root)
        except OSError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            raise write_error(root, e) from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        seconds = time.perf_counter() - started
        store = TokenStore(final)
        log(f"token store: built {final}: {store.records:,} records, {store.tokens:,} tokens "
            f"({store.meta['dtype']}) in {seconds:.1f}s ({store.tokens / max(seconds, 1e-9) / 1e6:.2f}M tokens/s)")
        return store


def _build(directory: Path, key: str, spec: StoreSpec, tokenizer: Tokenizer,
           records: Callable[[dict], Iterable[CorpusRecord | None]]) -> None:
    dtype = narrowest_dtype(tokenizer.vocab_size)
    with_words = tokenizer.kind != "char"
    names = ["ids.bin", "offsets.bin", "numbers.bin"] + (["marks.bin"] if with_words else [])
    digests = {n: hashlib.sha256() for n in names}
    with contextlib.ExitStack() as stack:
        files = {n: stack.enter_context(open(directory / n, "wb")) for n in names}
        info = _write_records(files, digests, tokenizer, dtype, with_words, records)
    meta = {
        "version": FORMAT_VERSION, "key": key, "source": spec.path.name, "reading": spec.reading,
        "tokenizer_kind": tokenizer.kind, "vocab_size": tokenizer.vocab_size, "dtype": dtype.name,
        "words": with_words, "cls_id": tokenizer.cls_id, "sep_id": tokenizer.sep_id,
        "sha256": {n: d.hexdigest() for n, d in digests.items()}, **info,
    }
    write_text(directory / "meta.json", json.dumps(meta, indent=1))


def _write_records(files: dict, digests: dict, tokenizer: Tokenizer, dtype: np.dtype, with_words: bool,
                   records: Callable[[dict], Iterable[CorpusRecord | None]]) -> dict:
    """Tokenize chunk by chunk into the open files; returns the counts for meta.json."""

    def write(name: str, array: np.ndarray) -> None:
        data = array.tobytes()
        files[name].write(data)
        digests[name].update(data)

    total, count, unknown, info = 0, 0, 0, {}
    table = char_table(tokenizer)
    write("offsets.bin", np.zeros(1, dtype=np.int64))
    for chunk, numbers in _chunks(records(info)):
        fast = table is not None and _by_table(table, [r.text for r in chunk])
        if fast:
            flat, lengths = fast
            write("ids.bin", flat.astype(dtype))
            write("offsets.bin", total + np.cumsum(lengths))
            write("numbers.bin", np.asarray(numbers, dtype=np.int64))
            total += len(flat)
            count += len(chunk)
            continue
        encodings = tokenizer.backend.encode_batch([r.text for r in chunk], add_special_tokens=False)
        ids = [np.asarray(e.ids, dtype=np.int64) for e in encodings]
        flat = np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64)
        if len(flat) and flat.max() >= tokenizer.vocab_size:
            raise SeqtuneError(f"the tokenizer produced id {int(flat.max())}, outside its "
                               f"{tokenizer.vocab_size}-token vocabulary.")
        if len(flat) and (flat == tokenizer.unk_id).any():
            for record, enc in zip(chunk, encodings):
                unknown += check_known_tokens(record, enc, tokenizer)
        lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
        write("ids.bin", flat.astype(dtype))
        write("offsets.bin", total + np.cumsum(lengths))
        write("numbers.bin", np.asarray(numbers, dtype=np.int64))
        if with_words:
            write("marks.bin", np.fromiter((m for e in encodings for m in word_marks(e.word_ids)),
                                           dtype=np.uint8, count=len(flat)))
        total += len(flat)
        count += len(chunk)
    for f in files.values():
        f.flush()
        os.fsync(f.fileno())
    return {"records": count, "tokens": total, "unknown_tokens": unknown, "info": info}


def char_table(tokenizer: Tokenizer) -> np.ndarray | None:
    """For a one-token-per-character tokenizer (no k-mers; no normaliser or lower-casing only): the
    id of each ASCII byte that is a vocabulary letter, -1 for every other byte. None otherwise."""
    if tokenizer.kind != "char":
        return None
    normalizer = tokenizer.backend.normalizer
    if normalizer is not None and type(normalizer).__name__ != "Lowercase":
        return None
    vocab = tokenizer.backend.get_vocab()
    if any(len(t) > 1 and not is_special_name(t) for t in vocab):
        return None  # k-mers
    table = np.full(256, -1, dtype=np.int64)
    for byte in range(128):
        c = chr(byte)
        letter = c.lower() if normalizer is not None else c
        if len(letter) == 1 and letter in vocab and not c.isspace():
            table[byte] = vocab[letter]
    return table


def _by_table(table: np.ndarray, texts: list[str]) -> tuple[np.ndarray, np.ndarray] | None:
    """Ids and lengths of texts made only of vocabulary letters, by table look-up (what the
    tokenizer gives for them, tens of times faster); None when any character is something else
    (whitespace, non-ASCII, unknown): the tokenizer then encodes the chunk."""
    try:
        data = "".join(texts).encode("ascii")
    except UnicodeEncodeError:
        return None
    ids = table[np.frombuffer(data, dtype=np.uint8)]
    if len(ids) and ids.min() < 0:
        return None
    return ids, np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))


def _chunks(records: Iterable[CorpusRecord]) -> Iterator[tuple[list[CorpusRecord], list[int]]]:
    """Records in chunks of about CHUNK_CHARACTERS characters, with their 1-based numbers in the input."""
    chunk: list[CorpusRecord] = []
    numbers: list[int] = []
    size = 0
    for number, record in enumerate(records, start=1):
        if record is None:  # left out by a filter: keeps the numbering
            continue
        chunk.append(record)
        numbers.append(number)
        size += len(record.text)
        if size >= CHUNK_CHARACTERS:
            yield chunk, numbers
            chunk, numbers, size = [], [], 0
    if chunk:
        yield chunk, numbers


# ---- files ------------------------------------------------------------------------------------

def _map(path: Path, dtype) -> np.ndarray:
    if path.stat().st_size == 0:
        return np.zeros(0, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r")


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _lock(f) -> None:
    try:
        import fcntl
    except ImportError:  # not POSIX: builders of one key are not serialised (the rename still is atomic)
        return
    fcntl.flock(f.fileno(), fcntl.LOCK_EX)


def corrupt(directory: Path, reason: str) -> SeqtuneError:
    return SeqtuneError(f"the token store {directory} is damaged ({reason}); it was not used. Delete that "
                        "directory and run again to rebuild it.")


def write_error(directory: Path, error: OSError) -> SeqtuneError:
    if error.errno == errno.ENOSPC:
        why = "the disk is full"
    elif error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        why = "it is not writable"
    else:
        why = error.strerror or str(error)
    return SeqtuneError(f"cannot write the token store in {directory}: {why} ({error}). Nothing was kept; "
                        "free space there or set SEQTUNE_CACHE to another directory (or data.token_store: false "
                        "to tokenize in memory).")
