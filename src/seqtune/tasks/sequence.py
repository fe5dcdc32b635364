"""What the sequence-level tasks share: reading text (pair) records, tokenizing, the pooled head.

Classification, multi-label classification and regression differ only in how labels are parsed and
scored; they subclass `SequenceTask`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from seqtune.data.readers.table import read_table
from seqtune.errors import SeqtuneError
from seqtune.models.heads import SequenceHead
from seqtune.tasks.base import EncodedDataset, Task


@dataclass
class TextExample:
    text: str
    pair: str | None
    label: Any  # parsed target (label index, list of indices, float) or None when unlabelled
    where: str  # "file:line", for messages
    raw_label: Any = None


class SequenceTask(Task):
    """Single texts or text pairs in, one output vector per sequence out."""

    num_outputs: int
    label_dtype: torch.dtype = torch.float32  # class indices use torch.long

    @property
    def needs_pooler(self) -> bool:
        return self.options.head == "pooler"

    # ---- reading ----------------------------------------------------------------------------
    def read(self, path: str, split: str) -> list[TextExample]:
        """Records with text (and second text) and, except for split "predict", a label."""
        d = self.data
        table = read_table(path, d.format, d.max_rows, header=d.header, what=self.name)
        table.require(d.text_column, "data.text_column", "text")
        if d.text_pair_column is not None:
            table.require(d.text_pair_column, "data.text_pair_column", "second text")
        labelled = split != "predict" or table.has(d.label_column)
        if labelled:
            table.require(d.label_column, "data.label_column", "label")
        examples = []
        for i, row in enumerate(table.rows):
            text = self._text(row, d.text_column, table.where(i))
            pair = self._text(row, d.text_pair_column, table.where(i)) if d.text_pair_column is not None else None
            raw = row.get(self.data.label_column) if labelled else None
            examples.append(TextExample(text, pair, None, table.where(i), raw))
        return examples

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
        pairs = [e.pair for e in examples] if self.data.text_pair_column is not None else None
        encoded = self.tokenizer.encode_batch([e.text for e in examples], pairs, self.data.max_length)
        features = []
        for i, (e, enc) in enumerate(zip(examples, encoded)):
            feature = {"input_ids": enc.ids, "example_index": i}
            if pairs is not None:
                feature["token_type_ids"] = enc.type_ids
            if e.label is not None:
                feature["labels"] = e.label
            features.append(feature)
        truncated = sum(enc.truncated for enc in encoded)
        return EncodedDataset(examples, features, source=split, info={"truncated": truncated})

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
        out = {"text": example.text}
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
