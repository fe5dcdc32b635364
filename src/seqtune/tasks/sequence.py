"""What the sequence-level tasks share: reading text (pair) records, tokenizing, the pooled head.

Classification, multi-label classification and regression differ only in how labels are parsed and
scored; they subclass `SequenceTask`.

Inputs: CSV/TSV/JSONL columns, or FASTA records (`data/readers/fasta_labels.py`: the label from a
`key=value` field of the header, or from `data.labels_file` joined on the record id). Letters are
folded as `data.case` says (`alphabet.py`), and a warning names the characters when more than 2% of
the input tokens are [UNK].

Inputs longer than data.max_length are truncated (`data.long_inputs: truncate`, the default), or
with `data.long_inputs: windows` cut into overlapping windows of data.max_length - 2 tokens, half a
window apart (`windows.py`, as for tagging). In training every window is a feature with its
example's label; in evaluation and prediction an example's output is the mean of its windows'
logits. An input that fits gives exactly one window, the same feature as without windows.
"""

from __future__ import annotations

from array import array
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

import seqtune.tokenization as tokenization
from seqtune.data.readers.fasta_labels import read_fasta_texts
from seqtune.data.readers.formats import check_file, detect_format
from seqtune.data.readers.table import read_table
from seqtune.errors import SeqtuneError
from seqtune.kmers import require_whole_kmers
from seqtune.models.heads import SequenceHead
from seqtune.tasks.alphabet import (
    UNKNOWN_WARNING_SHARE,
    case_folder,
    source_of,
    warn_unknown,
)
from seqtune.tasks.base import EncodedDataset, Task
from seqtune.tasks.text_features import TextFeatures
from seqtune.tasks.windows import window_features

SEQUENCE_TEXT_FORMATS = ("csv", "tsv", "jsonl", "fasta")


@dataclass
class TextExample:
    text: str
    pair: str | None
    label: Any  # parsed target (label index, list of indices, float) or None when unlabelled
    where: str  # "file:line", for messages
    raw_label: Any = None
    id: str | None = None  # record id (FASTA, or the data.id_column of a table), copied into predictions


class SequenceTask(Task):
    """Single texts or text pairs in, one output vector per sequence out."""

    num_outputs: int
    label_dtype: torch.dtype = torch.float32  # class indices use torch.long

    def __init__(self, options, data, tokenizer):
        super().__init__(options, data, tokenizer)
        self.fold = case_folder(self.data.case, tokenizer)  # data.case; None: texts as they are

    @property
    def needs_pooler(self) -> bool:
        return self.options.head == "pooler"

    # ---- reading ----------------------------------------------------------------------------
    def read(self, path: str, split: str) -> list[TextExample]:
        """Records with text (and second text) and, except for split "predict", a label."""
        d = self.data
        check_file(path)
        fmt = detect_format(path, d.format, SEQUENCE_TEXT_FORMATS, self.name)
        if fmt == "fasta":
            return self._read_fasta(path, split)
        table = read_table(path, fmt, d.max_rows, header=d.header, what=self.name, encoding=d.encoding)
        table.require(d.text_column, "data.text_column", "text")
        if d.text_pair_column is not None:
            table.require(d.text_pair_column, "data.text_pair_column", "second text")
        labelled = split != "predict" or table.has(d.label_column)
        if labelled:
            table.require(d.label_column, "data.label_column", "label")
        with_ids = d.id_column is not None and table.has(d.id_column)  # copied into predictions
        examples = []
        for i, row in enumerate(table.rows):
            text = self._text(row, d.text_column, table.where(i))
            pair = self._text(row, d.text_pair_column, table.where(i)) if d.text_pair_column is not None else None
            raw = row.get(self.data.label_column) if labelled else None
            record_id = row.get(d.id_column) if with_ids else None
            examples.append(TextExample(text, pair, None, table.where(i), raw,
                                        None if record_id is None else str(record_id)))
        return examples

    def _read_fasta(self, path: str, split: str) -> list[TextExample]:
        d = self.data
        if d.text_pair_column is not None:
            raise SeqtuneError(
                f"{path}: a FASTA file holds one sequence per record, but this model takes text pairs "
                f"(data.text_pair_column is {d.text_pair_column!r}); give pairs in a CSV, TSV or JSONL file."
            )
        records = read_fasta_texts(
            path, labelled=split != "predict", label_key=d.label_column, labels_file=d.labels_file,
            id_column=d.id_column, header=d.header, max_records=d.max_rows, encoding=d.encoding)
        return [TextExample(r.text, None, None, r.where, r.label, r.id) for r in records]

    @staticmethod
    def _text(row: dict, column: str, where: str) -> str:
        value = row.get(column)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise SeqtuneError(f"{where}: empty text in column {column!r}; every record needs a text.")
        if not isinstance(value, str):
            raise SeqtuneError(f"{where}: column {column!r} should hold text, found {value!r}.")
        return value

    def examples_from_inputs(self, inputs: list) -> list[TextExample]:
        """Python-API inputs: strings, or (text, second text) pairs for pair tasks."""
        examples = []
        for i, item in enumerate(inputs):
            where = f"input {i}"
            if self.data.text_pair_column is not None:
                if not (isinstance(item, (list, tuple)) and len(item) == 2):
                    raise SeqtuneError(f"{where}: this model takes text pairs; give (text, second_text), "
                                       f"not {type(item).__name__} {item!r:.60}.")
                text, pair = item
            elif isinstance(item, (list, tuple)):
                raise SeqtuneError(f"{where}: this model was trained on single texts, but a pair or list "
                                   f"was given ({item!r:.60}); give one string per input.")
            else:
                text, pair = item, None
            for value in (text, pair) if pair is not None else (text,):
                if not isinstance(value, str) or not value.strip():
                    raise SeqtuneError(f"{where}: expected a non-empty string, got {value!r:.60}.")
            examples.append(TextExample(text, pair, None, where))
        return examples

    # ---- labels (subclasses) ---------------------------------------------------------------------
    def parse_labels(self, examples: list[TextExample]) -> None:
        """Fill `example.label` from `example.raw_label`, raising on a bad value."""
        raise NotImplementedError

    # ---- encoding ---------------------------------------------------------------------------
    def encode(self, examples: list[TextExample], split: str) -> EncodedDataset:
        if examples and examples[0].raw_label is not None:
            self.parse_labels(examples)
        texts = [e.text for e in examples]
        pairs = [e.pair for e in examples] if self.data.text_pair_column is not None else None
        if self.fold is not None:
            texts = [self.fold(t) for t in texts]
            pairs = [self.fold(p) for p in pairs] if pairs is not None else None
        if self.tokenizer.overlapping_kmer:  # a sequence shorter than k has no whole k-mer (kmers.py)
            require_whole_kmers([(t, e.where) for e, t in zip(examples, texts)] + [
                (p, e.where) for e, p in zip(examples, pairs or [])], self.tokenizer.overlapping_kmer)
        windows = self.data.long_inputs == "windows"
        kept = None  # truncation: content tokens kept of each example's text (and second text)
        if windows:
            features, info, counts = self._window_features(examples, texts, pairs)
        else:
            features, counts, truncated = TextFeatures(pairs is not None), [0, 0], 0
            lengths = array("i")  # content tokens kept of each text and second text, in turn
            step = tokenization.ENCODE_CHUNK  # a chunk's Encoded lists at a time
            for start in range(0, len(texts), step):
                end = start + step
                chunk = self.tokenizer.encode_batch(texts[start:end], None if pairs is None else pairs[start:end],
                                                    self.data.max_length)
                for e, enc in zip(examples[start:end], chunk):
                    features.add(enc.ids, enc.type_ids, e.label)
                    counts[0] += enc.ids.count(self.tokenizer.unk_id)
                    counts[1] += sum(enc.lengths)
                    truncated += enc.truncated
                    lengths.extend(enc.lengths)
            info = {"truncated": truncated}
            if counts[0]:
                kept = list(zip(lengths[::2], lengths[1::2]))
        if counts[0]:
            info["unknown_tokens"] = counts[0]
            self._warn_unknown(examples, texts, pairs, counts[0], counts[1], kept)
        return EncodedDataset(examples, features, source=split, info=info)

    def _window_features(self, examples: list[TextExample], texts: list[str], pairs: list[str] | None):
        """data.long_inputs: windows: every text's tokens in windows of data.max_length - 2 (see the
        module docstring). Returns (features, info, [unknown tokens, content tokens])."""
        if pairs is not None:
            raise SeqtuneError(
                "data.long_inputs is windows, which cuts single texts into windows; this model takes text "
                "pairs (data.text_pair_column), which are truncated longest-first: set data.long_inputs: truncate."
            )
        window = self.data.max_length - 2
        if window < 1:
            raise SeqtuneError(f"data.max_length is {self.data.max_length}; windows need at least 3.")
        tok = self.tokenizer
        encoded = tokenization.encodings_in_chunks(tok.backend, texts, add_special_tokens=False)
        features, long, counts = [], 0, [0, 0]
        for i, (e, enc) in enumerate(zip(examples, encoded)):
            ids = enc.ids
            long += len(ids) > window
            counts[0] += ids.count(tok.unk_id)
            counts[1] += len(ids)
            for feature in window_features(ids, None, i, window, None, tok.cls_id, tok.sep_id):
                if e.label is not None:
                    feature["labels"] = e.label
                features.append(feature)
        info = {"truncated": 0, "windowed": long, "windows": len(features)} if long else {"truncated": 0}
        return features, info, counts

    def _warn_unknown(self, examples, texts, pairs, unknown_count: int, total: int, kept) -> None:
        """Warn (alphabet.warn_unknown) when many tokens are [UNK], naming the text that became [UNK]
        in the tokens the model sees (`kept`: content tokens left by truncation, per text)."""
        if total == 0 or unknown_count / total <= UNKNOWN_WARNING_SHARE:
            return
        unk = self.tokenizer.unk_id
        inputs = list(zip(texts, pairs)) if pairs is not None else texts
        pieces: Counter = Counter()
        sample = inputs[:2000]  # enough to name the characters
        encodings = self.tokenizer.backend.encode_batch(sample, add_special_tokens=False)
        for i, (item, enc) in enumerate(zip(sample, encodings)):
            position = [0, 0]  # token index within each of the two texts
            for token, (start, end), seq in zip(enc.ids, enc.offsets, enc.sequence_ids):
                seq = seq or 0
                position[seq] += 1
                if token == unk and (kept is None or position[seq] <= kept[i][seq]):
                    pieces[(item if isinstance(item, str) else item[seq])[start:end]] += 1
        warn_unknown(source_of(examples), pieces, unknown_count, total, self.tokenizer, self.data.case)

    # ---- outputs ----------------------------------------------------------------------------
    def example_outputs(self, outputs: list[np.ndarray], dataset: EncodedDataset) -> np.ndarray:
        """(examples, outputs): one row per example, the mean of its windows' logits."""
        stacked = np.stack(outputs)
        n = len(dataset.examples)
        if len(dataset.features) == n:
            return stacked
        index = np.array([f["example_index"] for f in dataset.features])
        sums = np.zeros((n,) + stacked.shape[1:], dtype=np.float64)
        np.add.at(sums, index, stacked)
        counts = np.bincount(index, minlength=n).reshape((n,) + (1,) * (stacked.ndim - 1))
        return (sums / counts).astype(stacked.dtype)

    @staticmethod
    def example_labels(dataset: EncodedDataset) -> list:
        """The label of every example (each of its windows carries it)."""
        if len(dataset.features) == len(dataset.examples):
            return [f["labels"] for f in dataset.features]
        labels: dict = {}
        for f in dataset.features:
            labels.setdefault(f["example_index"], f["labels"])
        return [labels[i] for i in range(len(dataset.examples))]

    def collate(self, features: list[dict]) -> dict[str, torch.Tensor]:
        batch = super().collate(features)
        if "labels" in features[0]:
            batch["labels"] = torch.tensor([f["labels"] for f in features], dtype=self.label_dtype)
        return batch

    # ---- model ------------------------------------------------------------------------------
    def build_head(self, encoder_config) -> SequenceHead:
        return SequenceHead(encoder_config, self.num_outputs, self.options.head,
                            self.options.head_dropout, self.options.mlp_hidden)

    def hf_config(self) -> dict:
        # Only the pooler head is exactly transformers' BertForSequenceClassification.
        arch = "BertForSequenceClassification" if self.options.head == "pooler" else "BertModel"
        config = {"architectures": [arch]}
        if self.options.head_dropout is not None:
            config["classifier_dropout"] = self.options.head_dropout
        return config

    def _with_inputs(self, example: TextExample, record: dict) -> dict:
        out = {"id": example.id} if example.id is not None else {}
        out["text"] = example.text
        if example.pair is not None:
            out["text_pair"] = example.pair
        return {**out, **record}


def natural_sort(labels: set[str]) -> list[str]:
    """Sort labels numerically when they are all numbers ("2" < "10"), else as strings."""
    try:
        return sorted(labels, key=float)
    except ValueError:
        return sorted(labels)


def softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - x.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))
