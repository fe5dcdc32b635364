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


class FlatRecords(Sequence):
    """Records whose tokens lie end to end in flat arrays: `_ends[i]` is record i's end there.
    Subclasses make record i's dict from its token span (`record`)."""

    def __init__(self):
        self._ends = array("q")

    def record(self, i: int, start: int, end: int) -> dict:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self._ends)

    def __getitem__(self, i: int | slice) -> dict | list[dict]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self._ends)
        if not -n <= i < n:
            raise IndexError(f"record {i} of {n}")
        i = int(i) % n
        return self.record(i, self._ends[i - 1] if i else 0, self._ends[i])

    def __eq__(self, other) -> bool:
        return isinstance(other, Sequence) and len(self) == len(other) and all(a == b for a, b in zip(self, other))

    @property
    def lengths(self) -> np.ndarray:
        """Tokens per record (EncodedDataset.lengths), without making the records."""
        return np.diff(np.frombuffer(self._ends, dtype=np.int64), prepend=0)


class TextFeatures(FlatRecords):
    """A sequence task's truncated texts (see the module's docstring); `add` one per example."""

    def __init__(self, pairs: bool):
        super().__init__()
        self._ids = array("i")
        self._type_ids = array("b") if pairs else None
        self._labels: list[Any] = []  # None: unlabelled (no "labels" key)

    def add(self, ids: list[int], type_ids: list[int] | None, label: Any) -> None:
        self._ids.extend(ids)
        if self._type_ids is not None:
            self._type_ids.extend(type_ids)
        self._ends.append(len(self._ids))
        self._labels.append(label)

    def record(self, i: int, start: int, end: int) -> dict:
        feature = {"input_ids": self._ids[start:end].tolist(), "example_index": i}
        if self._type_ids is not None:
            feature["token_type_ids"] = self._type_ids[start:end].tolist()
        if self._labels[i] is not None:
            feature["labels"] = self._labels[i]
        return feature


class QAWindows(FlatRecords):
    """The windows of extractive QA (qa_features.make_windows), held flat: ids (int32), token type
    ids (int8) and character offsets (int32 pairs) of every window in one array each, and a window's
    numbers (example index, context bounds, answer tokens) in arrays of their own. As dicts of lists a
    SQuAD window of 165 tokens took about 10 KiB (SQuAD's dev file: 112 MiB for 10,784 windows);
    here 13 bytes a token. `windows[i]` gives the dict make_windows made (lists, an offsets array)."""

    NUMBERS = ("example_index", "context_start", "context_end", "start_positions", "end_positions")

    def __init__(self):
        super().__init__()
        self._ids, self._type_ids, self._offsets = array("i"), array("b"), array("i")
        self._numbers = {key: array("q") for key in self.NUMBERS}
        self._answered = array("b")  # 1: the window has start/end positions (its example has answers)

    def add(self, feature: dict) -> None:
        self._answered.append("start_positions" in feature)
        self._ids.extend(feature["input_ids"])
        self._type_ids.extend(feature["token_type_ids"])
        self._offsets.frombytes(np.ascontiguousarray(feature["offsets"], dtype=np.int32).tobytes())
        self._ends.append(len(self._ids))
        for key, values in self._numbers.items():
            values.append(feature.get(key, 0))

    def record(self, i: int, start: int, end: int) -> dict:
        offsets = np.frombuffer(self._offsets, dtype=np.int32)[2 * start:2 * end].reshape(-1, 2).copy()
        feature = {"input_ids": self._ids[start:end].tolist(), "token_type_ids": self._type_ids[start:end].tolist(),
                   "example_index": self._numbers["example_index"][i], "offsets": offsets,
                   "context_start": self._numbers["context_start"][i], "context_end": self._numbers["context_end"][i]}
        if self._answered[i]:
            feature["start_positions"] = self._numbers["start_positions"][i]
            feature["end_positions"] = self._numbers["end_positions"][i]
        return feature
