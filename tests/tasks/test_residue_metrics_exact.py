"""Per-residue metrics (residue_metrics.py) on hand-checked arrays: the mask leaves residues out of
every score, q3/q8 name the accuracy only for exactly those label sets, and the counts are reported."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from seqtune.tasks.residue_metrics import accuracy_alias, residue_metrics

LABELS = ["C", "E", "H"]


def test_scores_over_unmasked_residues():
    # sequence 1 (no mask): gold C E H H, predicted C H H E; sequence 2: gold E E, predicted E C, the
    # second residue masked out. Scored: gold C E H H E, predicted C H H E E.
    gold = [np.array([0, 1, 2, 2]), np.array([1, 1])]
    pred = [np.array([0, 2, 2, 1]), np.array([1, 0])]
    m = residue_metrics(gold, pred, [None, [True, False]], LABELS, Counter({"X": 2, "B": 5}))
    assert list(m) == ["accuracy", "q3", "macro_f1", "residues", "per_label", "confusion_matrix"]
    assert m["accuracy"] == pytest.approx(3 / 5) and m["q3"] == m["accuracy"]
    assert m["macro_f1"] == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert m["residues"] == {"scored": 5, "masked": 1, "unknown": {"B": 5, "X": 2}}
    assert list(m["residues"]["unknown"]) == ["B", "X"]  # most frequent first
    assert m["per_label"] == {
        "C": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1},
        "E": {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2},
        "H": {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2},
    }
    assert m["confusion_matrix"] == {"labels": LABELS, "matrix": [[1, 0, 0], [0, 1, 1], [0, 1, 1]]}
    assert type(m["residues"]["scored"]) is int and type(m["residues"]["masked"]) is int


def test_without_masks_every_residue_counts():
    m = residue_metrics([np.array([1, 1])], [np.array([1, 0])], [None], LABELS)
    assert m["accuracy"] == 0.5 and m["residues"] == {"scored": 2, "masked": 0, "unknown": {}}
    assert m["per_label"]["C"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert m["macro_f1"] == pytest.approx(2 / 3)  # E only (C is absent from the gold data): P 1, R 1/2


def test_everything_masked_scores_zero():
    m = residue_metrics([np.array([0, 1])], [np.array([1, 0])], [[False, False]], LABELS)
    assert (m["accuracy"], m["q3"], m["macro_f1"]) == (0.0, 0.0, 0.0)
    assert m["residues"] == {"scored": 0, "masked": 2, "unknown": {}}
    assert m["confusion_matrix"]["matrix"] == [[0, 0, 0]] * 3


def test_q8_and_other_label_sets():
    q8 = ["B", "C", "E", "G", "H", "I", "S", "T"]
    m = residue_metrics([np.array([4, 2])], [np.array([4, 4])], [None], q8)
    assert list(m)[:3] == ["accuracy", "q8", "macro_f1"] and m["q8"] == 0.5 and "q3" not in m
    other = residue_metrics([np.array([0, 1])], [np.array([0, 1])], [None], ["0", "1"])
    assert list(other)[:2] == ["accuracy", "macro_f1"] and other["accuracy"] == 1.0


@pytest.mark.parametrize("labels, alias", [
    (["H", "E", "C"], "q3"), (["C", "E", "H"], "q3"), (["H", "E"], None), (["H", "E", "C", "X"], None),
    (["H", "G", "I", "E", "B", "T", "S", "C"], "q8"), (["H", "G", "I", "E", "B", "T", "S"], None),
    (["h", "e", "c"], None), ([], None),
])
def test_accuracy_alias(labels, alias):
    assert accuracy_alias(labels) == alias


def test_masked_residues_are_counted_over_all_sequences():
    gold = [np.array([0, 1, 2]), np.array([2, 2]), np.array([1])]
    m = residue_metrics(gold, gold, [[True, False, False], None, [False]], LABELS)
    assert m["residues"] == {"scored": 3, "masked": 3, "unknown": {}}
    assert m["accuracy"] == 1.0 and m["confusion_matrix"]["matrix"] == [[1, 0, 0], [0, 0, 0], [0, 0, 2]]
