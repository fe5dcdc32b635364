"""The training file of per-residue labelling in a token store: ids, offsets and label arrays.

A training set of sequences with one label per residue held as Python objects costs about 50 bytes
per residue (the records' label and mask lists, then every window's `input_ids` and `labels`
lists). Read into a token store (`data/token_store.py`) instead, it is two flat memory-mapped
arrays: `ids.bin` (the residues' token ids, one byte each for a character vocabulary) and
`labels.bin` (uint16 per residue: the index of its label in meta.json's `label_names`, in order of
first appearance, or NOT_SCORED where the mask leaves the residue out), with `offsets.bin` and
`numbers.bin` as for a corpus. Windows are an index computed from the offsets (the rule of
`windows.window_spans`) and a feature is made from the arrays when the loop asks for it: the
features, batches, label map and class weights are those of the in-memory path (tested).

The key adds the reading settings (columns, mask, format, header, encoding, `max_rows`) and
`data.case` to the file's and the tokenizer's hashes. Characters outside the model's alphabet are
counted while building (and where each was first seen): a later run that reuses the store warns,
or with `task.unknown_residues: error` fails, exactly as the first did. Only the training file goes
into a store; the dev and test sets, which are scored against their records, stay in memory.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seqtune.data.readers.sequences import iter_sequences
from seqtune.data.token_store import StoredRecords, StoreSpec, TokenStore, build_store, narrowest_dtype
from seqtune.errors import SeqtuneError
from seqtune.logs import logger
from seqtune.tasks.windows import IGNORE_INDEX, window_spans

NOT_SCORED = np.iinfo(np.uint16).max  # labels.bin value of a residue the mask leaves out
CHUNK_RESIDUES = 1 << 20  # residues read before they are written (bounded memory while building)


class StoredSequences(StoredRecords):
    """The records of a stored training file (len(), records[i].where) and its label names."""

    def __init__(self, store: TokenStore, source: str):
        super().__init__(store, source)
        self.label_names: list[str] = store.meta["label_names"]


@dataclass
class UnknownTally:
    """Residues outside the model's alphabet: counts per character, where each was first seen, and
    how many sequences hold one."""

    counts: Counter = field(default_factory=Counter)
    first_seen: dict = field(default_factory=dict)
    affected: int = 0


def residue_store_reading(data) -> dict:
    """What, besides the file and the tokenizer, decides a residue store's content."""
    return {"task": "residues", "format": data.format, "sequence": data.text_column, "labels": data.label_column,
            "mask": data.mask_column, "header": data.header, "encoding": data.encoding,
            "max_records": data.max_rows, "case": data.case}


def open_residue_store(task, path: str) -> StoredSequences:
    """The training file of a ResidueTask as a token store: built on the first run, reused later;
    the unknown residues recorded in it are reported (or refused) as when it was built."""
    spec = StoreSpec(Path(path), residue_store_reading(task.data), [])
    store = build_store(spec, task.tokenizer, lambda directory: _write(task, path, directory), log=logger.info)
    tally = UnknownTally(Counter(store.meta["unknown"]), store.meta["unknown_first_seen"],
                         store.meta["unknown_sequences"])
    task.report_unknown(tally, str(path), store.records, store.tokens)  # the messages of the in-memory path
    return StoredSequences(store, spec.path.name)


def _write(task, path: str, directory: Path) -> dict:
    """Read the file record by record and write ids, offsets, numbers and labels; returns meta.json's
    task-specific part. An unknown residue under `unknown_residues: error` stops the build (nothing kept)."""
    d = task.data
    dtype = narrowest_dtype(task.tokenizer.vocab_size)
    codes: dict[str, int] = {}  # label -> index in label_names
    tally = UnknownTally()
    total = count = 0
    files = {name: open(directory / name, "wb") for name in ("ids.bin", "offsets.bin", "numbers.bin", "labels.bin")}
    try:
        files["offsets.bin"].write(np.zeros(1, dtype=np.int64).tobytes())
        records = iter_sequences(path, d.format, labelled=True, sequence_column=d.text_column,
                                 label_column=d.label_column, mask_column=d.mask_column, id_column=None,
                                 max_records=d.max_rows, header=d.header, encoding=d.encoding)
        chunk: list = []
        size = 0
        for number, record in enumerate(records, start=1):
            chunk.append((number, record))
            size += len(record.sequence)
            if size >= CHUNK_RESIDUES:
                total = _write_chunk(task, chunk, files, dtype, codes, tally, total)
                count += len(chunk)
                chunk, size = [], 0
        if chunk:
            total = _write_chunk(task, chunk, files, dtype, codes, tally, total)
            count += len(chunk)
        for f in files.values():
            f.flush()
    finally:
        for f in files.values():
            f.close()
    return {"records": count, "tokens": total, "dtype": dtype.name, "label_names": list(codes),
            "unknown": dict(tally.counts), "unknown_first_seen": tally.first_seen,
            "unknown_sequences": tally.affected}


def _write_chunk(task, chunk: list, files: dict, dtype: np.dtype, codes: dict, tally: UnknownTally,
                 total: int) -> int:
    examples = [record for _, record in chunk]
    ids = task.token_ids(examples, tally)
    lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
    labels = np.empty(int(lengths.sum()), dtype=np.uint16)
    at = 0
    for e in examples:
        n = len(e.sequence)
        row = labels[at:at + n]
        row[:] = [codes.setdefault(label, len(codes)) for label in e.labels]
        if len(codes) >= NOT_SCORED:
            raise SeqtuneError(f"{e.where}: more than {NOT_SCORED - 1} distinct labels; the token store holds "
                               "fewer (set data.token_store: false).")
        if e.mask is not None:
            row[~np.asarray(e.mask, dtype=bool)] = NOT_SCORED
        at += n
    files["ids.bin"].write(np.concatenate([np.asarray(x, dtype=dtype) for x in ids]).tobytes())
    files["offsets.bin"].write((total + np.cumsum(lengths)).tobytes())
    files["numbers.bin"].write(np.asarray([number for number, _ in chunk], dtype=np.int64).tobytes())
    files["labels.bin"].write(labels.tobytes())
    return total + int(lengths.sum())


class StoredWindows:
    """The training features of a stored file, made when asked for: features[i] is what
    `windows.window_features` gives for window i ({"input_ids", "example_index", "span", "labels"})."""

    def __init__(self, store: TokenStore, label_ids: np.ndarray, window: int, stride: int | None,
                 cls_id: int, sep_id: int):
        self.store, self.cls_id, self.sep_id = store, cls_id, sep_id
        self.label_ids = label_ids  # store label code -> the task's label id; NOT_SCORED -> IGNORE_INDEX
        self.index = window_index(np.diff(np.asarray(store.offsets)), window, stride)

    def __len__(self) -> int:
        return len(self.index)

    @property
    def lengths(self) -> np.ndarray:
        """Tokens per window, [CLS] and [SEP] included."""
        return self.index[:, 2] - self.index[:, 1] + 2

    def labels(self, i: int) -> np.ndarray:
        """Window i's content labels as task label ids (IGNORE_INDEX where not scored)."""
        record, start, end = (int(v) for v in self.index[i])
        base = int(self.store.offsets[record])
        return self.label_ids[self.store.labels[base + start:base + end]]

    def __getitem__(self, i: int) -> dict:
        record, start, end = (int(v) for v in self.index[i])
        base = int(self.store.offsets[record])
        return {"input_ids": [self.cls_id, *self.store.ids[base + start:base + end].tolist(), self.sep_id],
                "example_index": record, "span": (start, end),
                "labels": [IGNORE_INDEX, *self.labels(i).tolist(), IGNORE_INDEX]}

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def fit_and_describe(self, task, window: int) -> tuple[np.ndarray, dict]:
        """What `encode` does besides the features, for a stored training file: fit the task's loss
        weights on the windows' labels; return the records' lengths and the info on windowed records."""
        if len(self):
            task.fit_loss_weights(lambda: np.concatenate([self.labels(i) for i in range(len(self))]), len(self))
        lengths = np.diff(np.asarray(self.store.offsets))
        long = int((lengths > window).sum())
        return lengths, ({"windowed": long, "windows": len(self)} if long else {})


def window_index(lengths: np.ndarray, window: int, stride: int | None) -> np.ndarray:
    """(windows, 3) int64 rows (record, start, end): every record's `window_spans`, in order."""
    rows = np.stack([np.arange(len(lengths)), np.zeros(len(lengths), dtype=np.int64), lengths], axis=1)
    long = np.nonzero(lengths > window)[0]
    if not len(long):
        return rows.astype(np.int64)
    parts, previous, memo = [], 0, {}
    for r in long.tolist():
        n = int(lengths[r])
        spans = memo.get(n) or memo.setdefault(n, window_spans(n, window, stride))
        parts.append(rows[previous:r])
        parts.append(np.array([(r, a, b) for a, b in spans], dtype=np.int64))
        previous = r + 1
    parts.append(rows[previous:])
    return np.concatenate(parts).astype(np.int64)


def label_lookup(names: list[str], label_to_id: dict[str, int]) -> np.ndarray:
    """Store label code -> the task's label id (int64), with NOT_SCORED -> IGNORE_INDEX."""
    table = np.full(NOT_SCORED + 1, IGNORE_INDEX, dtype=np.int64)
    table[:len(names)] = [label_to_id[name] for name in names]
    return table
