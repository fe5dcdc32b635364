"""The features of a sequence task's texts, held flat.

Encoded whole (truncated), each text (or text pair) gives one feature: its input ids, its token type
ids (pairs), its example index and its label. As Python dicts of lists those take about 110 bytes a
token with the examples (BENCHMARKS.md, "Memory", session 11); here the ids of every feature are one
`array` of int32 (and the type ids one of int8), so a token costs 4 or 5 bytes. `features[i]` gives
the dict the tasks and the collate functions read, made when asked: {"input_ids": [...],
"example_index": i, "token_type_ids": [...] (pairs), "labels": ... (when labelled)}.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from typing import Any

import numpy as np


class TextFeatures(Sequence):
    def __init__(self, pairs: bool):
        self._ids = array("i")
        self._type_ids = array("b") if pairs else None
        self._ends = array("q")  # each feature's end in _ids
        self._labels: list[Any] = []  # None: unlabelled (no "labels" key)

    def add(self, ids: list[int], type_ids: list[int] | None, label: Any) -> None:
        self._ids.extend(ids)
        if self._type_ids is not None:
            self._type_ids.extend(type_ids)
        self._ends.append(len(self._ids))
        self._labels.append(label)

    def __len__(self) -> int:
        return len(self._ends)

    def __getitem__(self, i: int) -> dict:
        if not isinstance(i, int | np.integer):
            raise TypeError(f"features are read one at a time, not by {type(i).__name__}")
        n = len(self._ends)
        if not -n <= i < n:
            raise IndexError(f"feature {i} of {n}")
        i = int(i) % n
        start, end = self._ends[i - 1] if i else 0, self._ends[i]
        feature = {"input_ids": self._ids[start:end].tolist(), "example_index": i}
        if self._type_ids is not None:
            feature["token_type_ids"] = self._type_ids[start:end].tolist()
        if self._labels[i] is not None:
            feature["labels"] = self._labels[i]
        return feature

    def __eq__(self, other) -> bool:
        return isinstance(other, Sequence) and len(self) == len(other) and all(a == b for a, b in zip(self, other))

    @property
    def lengths(self) -> np.ndarray:
        """Tokens per feature (EncodedDataset.lengths), without making the features."""
        return np.diff(np.frombuffer(self._ends, dtype=np.int64), prepend=0)
