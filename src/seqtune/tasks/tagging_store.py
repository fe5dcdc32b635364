"""The training file of word tagging in a token store: sub-token ids, offsets, word starts and tags.

CoNLL-2003's training split read and encoded as Python objects costs about 330 bytes per sub-token
(the sentences' word and tag strings, then every window's `input_ids` and `labels` lists). Read
into a token store (`data/token_store.py`) instead, a sentence is its sub-tokens in four flat
memory-mapped arrays: `ids.bin` (the ids `TaggingTask.encode` gives, an empty word's [UNK]
included), `marks.bin` (1 on a word's first sub-token, 0 on the others), `labels.bin` (uint16 on
every sub-token: the index of its word's tag in meta.json's `label_names`, in order of first
appearance), with `offsets.bin` and `numbers.bin` (the sentence's number in the file) as for a
corpus. Both `task.label_all_subtokens` settings read the same arrays (the first sub-token takes
the tag, the others -100 or the tag's continuation), so that setting is not part of the key.

The key adds the reading settings (format, word/tag columns or keys, the id key JSONL records are
checked against, encoding, `max_rows`) to the file's and the tokenizer's hashes. The file is read
sentence by sentence through the reader of the in-memory path (`conll.iter_tagged`), so a bad line
stops the build with that path's message and nothing is kept. What `fit` needs besides the tag
names, the scheme `detect_scheme` finds, is collected while the file streams past and kept in
meta.json, as is the count of words that had no sub-token. Windows are an index computed from the
offsets (the rule of `windows.window_spans`) and a feature is made from the arrays when the loop asks
for it: label map, scheme, class weights, windows, features and batches are those of the in-memory
path (tested). Only the training file goes into a store; the dev and test sets, which are scored
against their words, stay in memory.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from seqtune.data.readers.conll import TaggedSentence, iter_tagged
from seqtune.data.token_store import (
    MARK_CONTINUES,
    MARK_STARTS,
    StoredRecords,
    StoreSpec,
    TokenStore,
    build_store,
    narrowest_dtype,
)
from seqtune.errors import SeqtuneError
from seqtune.logs import logger
from seqtune.tasks.residue_store import NOT_SCORED, StoredWindows
from seqtune.tasks.token_metrics import SchemeEvidence

CHUNK_WORDS = 1 << 13  # words tokenized per call while building: about 6 MiB on CoNLL-2003 (1 << 15: 15 MiB)
FILES = ("ids.bin", "offsets.bin", "numbers.bin", "marks.bin", "labels.bin")


class StoredSentences(StoredRecords):
    """The sentences of a stored training file (len(), records[i].where), its tag names in order of
    first appearance and the scheme detected from its tags."""

    def __init__(self, store: TokenStore, source: str):
        super().__init__(store, source)
        self.label_names: list[str] = store.meta["label_names"]
        self.scheme: str = store.meta["scheme"]


def tagging_store_reading(data) -> dict:
    """What, besides the file and the tokenizer, decides a tagging store's content."""
    return {"task": "tagging", "format": data.format, "token_column": data.token_column,
            "tag_column": data.tag_column, "tokens_key": data.tokens_key, "tags_key": data.tags_key,
            "id_key": id_key(data), "encoding": data.encoding, "max_records": data.max_rows}


def id_key(data) -> str | None:
    """The JSONL key whose values are checked as record ids (data.id_column when it is a name)."""
    return data.id_column if isinstance(data.id_column, str) else None


def open_tagging_store(task, path: str) -> StoredSentences:
    """The training file of a TaggingTask as a token store: built on the first run, reused later."""
    spec = StoreSpec(Path(path), tagging_store_reading(task.data), [])
    store = build_store(spec, task.tokenizer, lambda directory: _write(task, path, directory), log=logger.info)
    return StoredSentences(store, spec.path.name)


def _write(task, path: str, directory: Path) -> dict:
    """Read the file sentence by sentence and write the arrays; returns meta.json's task-specific
    part. A bad line stops the build (nothing is kept) with the in-memory path's message."""
    d = task.data
    sentences = iter_tagged(path, d.format, labelled=True, token_column=d.token_column, tag_column=d.tag_column,
                            tokens_key=d.tokens_key, tags_key=d.tags_key, max_sentences=d.max_rows,
                            encoding=d.encoding, id_key=id_key(d))
    with contextlib.ExitStack() as stack:
        writer = _Writer(task, {name: stack.enter_context(open(directory / name, "wb")) for name in FILES})
        for chunk in _chunks(sentences):
            writer.write(chunk)
    return writer.meta()


def _chunks(sentences: Iterable[TaggedSentence]) -> Iterator[list[tuple[int, TaggedSentence]]]:
    """(1-based number, sentence) pairs in chunks of about CHUNK_WORDS words."""
    chunk: list[tuple[int, TaggedSentence]] = []
    words = 0
    for number, sentence in enumerate(sentences, start=1):
        chunk.append((number, sentence))
        words += len(sentence.tokens)
        if words >= CHUNK_WORDS:
            yield chunk
            chunk, words = [], 0
    if chunk:
        yield chunk


class _Writer:
    """Writes a store's files chunk by chunk, counting what meta.json keeps."""

    def __init__(self, task, files: dict):
        self.task, self.files = task, files
        self.dtype = narrowest_dtype(task.tokenizer.vocab_size)
        self.codes: dict[str, int] = {}  # tag -> index in label_names
        self.evidence = SchemeEvidence()
        self.records = self.tokens = self.empty_words = 0
        files["offsets.bin"].write(np.zeros(1, dtype=np.int64).tobytes())

    def write(self, chunk: list[tuple[int, TaggedSentence]]) -> None:
        """One chunk: the task's own alignment of words to sub-tokens (`TaggingTask.aligned`), so the
        ids and word starts are those of the in-memory path."""
        sentences = [s for _, s in chunk]
        ids: list[int] = []
        tags: list[int] = []
        marks: list[int] = []
        lengths = []
        for s, (sentence_ids, token_word, starts, empty) in zip(sentences, self.task.aligned(sentences)):
            self.evidence.add(s.tags)
            word_tags = [self._code(tag, s.where) for tag in s.tags]
            sentence_marks = [MARK_CONTINUES] * len(sentence_ids)
            for start in starts:
                sentence_marks[start] = MARK_STARTS
            ids += sentence_ids
            tags += [word_tags[w] for w in token_word]
            marks += sentence_marks
            lengths.append(len(sentence_ids))
            self.empty_words += empty
        self.files["ids.bin"].write(np.asarray(ids, dtype=self.dtype).tobytes())
        self.files["offsets.bin"].write((self.tokens + np.cumsum(lengths, dtype=np.int64)).tobytes())
        self.files["numbers.bin"].write(np.asarray([n for n, _ in chunk], dtype=np.int64).tobytes())
        self.files["marks.bin"].write(np.asarray(marks, dtype=np.uint8).tobytes())
        self.files["labels.bin"].write(np.asarray(tags, dtype=np.uint16).tobytes())
        self.records += len(chunk)
        self.tokens += len(ids)

    def _code(self, tag: str, where: str) -> int:
        code = self.codes.setdefault(tag, len(self.codes))
        if code >= NOT_SCORED:
            raise SeqtuneError(f"{where}: more than {NOT_SCORED - 1} distinct tags; the token store holds "
                               "fewer (set data.token_store: false).")
        return code

    def meta(self) -> dict:
        return {"records": self.records, "tokens": self.tokens, "dtype": self.dtype.name, "words": True,
                "label_names": list(self.codes), "scheme": self.evidence.scheme(),
                "words_without_tokens": self.empty_words}


class TaggedWindows(StoredWindows):
    """The training features of a stored tagging file, made when asked for: features[i] is what
    `TaggingTask.encode` gives for window i. A word's first sub-token takes `first_ids[tag]`, its
    other sub-tokens `other_ids[tag]` (IGNORE_INDEX, or the continuation tag with
    `label_all_subtokens`); both tables map store tag codes to the task's label ids."""

    def __init__(self, store: TokenStore, first_ids: np.ndarray, other_ids: np.ndarray, window: int,
                 stride: int | None, cls_id: int, sep_id: int):
        super().__init__(store, first_ids, window, stride, cls_id, sep_id)
        self.other_ids = other_ids

    def labels(self, i: int) -> np.ndarray:
        """Window i's content labels as task label ids (IGNORE_INDEX where not trained on)."""
        record, start, end = (int(v) for v in self.index[i])
        base = int(self.store.offsets[record])
        tags = self.store.labels[base + start:base + end]
        first = self.store.marks[base + start:base + end] == MARK_STARTS
        return np.where(first, self.label_ids[tags], self.other_ids[tags])
