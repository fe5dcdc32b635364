"""Sequence-task metrics on hand-checked cases: classification (a label absent from the dev data still
counts in macro F1), multi-label (micro/macro/subset accuracy, the threshold is inclusive) and
regression (correlations, MSE, a constant prediction); through the tasks, and the functions of
sequence_metrics.py on arrays."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from seqtune.config import DataConfig
from seqtune.tasks import task_class
from seqtune.tasks.sequence_metrics import classification_metrics, multilabel_metrics, regression_metrics
from seqtune.tokenization import load_tokenizer


def make(kind, tiny_checkpoint, **options):
    cls = task_class(kind)
    return cls(cls.Options(type=kind, **options), DataConfig(), load_tokenizer(tiny_checkpoint))


def encoded(task, path):
    examples = task.read(str(path), "train")
    task.fit(examples)
    return task.encode(examples, "dev")


def test_classification_exact(tmp_path, tiny_checkpoint):
    (tmp_path / "t.csv").write_text("text,label\na,neg\nb,pos\nc,neg\nd,pos\ne,neutral\n")
    task = make("classification", tiny_checkpoint, labels=["neg", "neutral", "pos", "spare"])
    ds = encoded(task, tmp_path / "t.csv")
    # gold: neg pos neg pos neutral; predicted: neg neg neg pos pos
    m = task.metrics([np.eye(4)[i] for i in (0, 0, 0, 2, 2)], ds)
    assert m["accuracy"] == pytest.approx(0.6) and m["f1_micro"] == pytest.approx(0.6)
    # F1: neg 0.8, neutral 0, pos 0.5, spare 0 (a label of the model, absent from these data, counts)
    assert m["f1_macro"] == pytest.approx(1.3 / 4)
    # multi-class MCC: (c s - sum p_k t_k) / sqrt((s^2 - sum p_k^2)(s^2 - sum t_k^2)) = 5 / sqrt(12 x 16)
    assert m["mcc"] == pytest.approx(5 / math.sqrt(192))
    assert m["examples"] == 5


def test_multilabel_exact(tmp_path, tiny_checkpoint):
    rows = [{"text": "good fun", "label": ["pos", "fun"]}, {"text": "bad", "label": "neg"},
            {"text": "fun", "label": ["fun"]}]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = make("multilabel", tiny_checkpoint)
    ds = encoded(task, tmp_path / "m.jsonl")
    assert task.labels == ["fun", "neg", "pos"]
    # predicted {fun, pos}, {fun}, {}: tp 2, fp 1, fn 2 -> micro P 2/3, R 1/2, F1 4/7
    m = task.metrics([np.array([5.0, -5, 5]), np.array([5.0, -5, -5]), np.array([-5.0, -5, -5])], ds)
    assert m["f1_micro"] == pytest.approx(4 / 7)
    assert m["f1_macro"] == pytest.approx((0.5 + 0 + 1) / 3)
    assert m["subset_accuracy"] == pytest.approx(1 / 3)
    # a probability exactly at the threshold (logit 0 -> 0.5) counts as predicted
    m = task.metrics([np.array([5.0, -5, 5]), np.array([-5.0, 0.0, -5]), np.array([5.0, -5, -5])], ds)
    assert m["subset_accuracy"] == 1.0 and m["f1_micro"] == 1.0


def test_regression_exact(tmp_path, tiny_checkpoint):
    (tmp_path / "r.csv").write_text("text,label\na,1.0\nb,2.0\nc,3.5\n")
    task = make("regression", tiny_checkpoint)
    ds = encoded(task, tmp_path / "r.csv")
    m = task.metrics([np.array([1.0]), np.array([2.5]), np.array([3.0])], ds)
    assert m["mse"] == pytest.approx((0 + 0.25 + 0.25) / 3)
    assert m["pearson"] == pytest.approx(np.corrcoef([1.0, 2.0, 3.5], [1.0, 2.5, 3.0])[0, 1])
    assert m["spearman"] == pytest.approx(1.0)  # the same order
    m = task.metrics([np.array([3.0]), np.array([2.0]), np.array([1.0])], ds)
    assert m["spearman"] == pytest.approx(-1.0) and m["pearson"] < 0
    constant = task.metrics([np.array([2.0])] * 3, ds)
    assert (constant["pearson"], constant["spearman"]) == (0.0, 0.0)  # undefined: 0, not NaN
    assert constant["mse"] == pytest.approx((1 + 0 + 2.25) / 3)


# ---- the metric functions themselves (sequence_metrics.py), on arrays --------------------------------

def plain(value):
    """The value with every number checked to be a plain Python int or float (JSON-ready), unchanged."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    assert type(value) in (int, float, str), (value, type(value))
    return value


def test_classification_metrics_on_arrays():
    labels = ["neg", "neutral", "pos", "spare"]
    gold, pred = np.array([0, 2, 0, 2, 1]), np.array([0, 0, 0, 2, 2])
    m = plain(classification_metrics(gold, pred, labels))
    assert list(m) == ["accuracy", "f1_macro", "f1_micro", "mcc", "examples", "confusion_matrix"]
    assert m["accuracy"] == pytest.approx(0.6) and m["f1_micro"] == pytest.approx(0.6)
    assert m["f1_macro"] == pytest.approx((0.8 + 0 + 0.5 + 0) / 4)  # over all four labels of the model
    assert m["mcc"] == pytest.approx(5 / math.sqrt(192))
    assert m["examples"] == 5 and type(m["examples"]) is int
    assert m["confusion_matrix"] == {"labels": labels, "matrix": [[2, 0, 0, 0], [0, 0, 1, 0], [1, 0, 1, 0],
                                                                   [0, 0, 0, 0]]}


def test_classification_micro_f1_differs_from_macro_with_unbalanced_errors():
    m = classification_metrics(np.array([0, 0, 0, 1]), np.array([0, 0, 0, 0]), ["a", "b"])
    # a: P 3/4, R 1, F1 6/7; b: no prediction, F1 0
    assert m["f1_micro"] == pytest.approx(0.75) and m["f1_macro"] == pytest.approx(3 / 7)
    assert m["mcc"] == 0.0  # a constant prediction


def test_multilabel_metrics_on_arrays():
    labels = ["fun", "neg", "pos"]
    gold = [[1, 0, 1], [0, 1, 0], [1, 0, 0]]
    probabilities = np.array([[0.9, 0.1, 0.6], [0.7, 0.2, 0.1], [0.1, 0.3, 0.1]])
    m = plain(multilabel_metrics(gold, probabilities, labels, 0.5))
    assert list(m) == ["f1_micro", "f1_macro", "subset_accuracy", "examples", "per_label", "confusion_matrices"]
    # predicted {fun, pos}, {fun}, {}: tp 2, fp 1, fn 2
    assert m["f1_micro"] == pytest.approx(4 / 7)
    assert m["f1_macro"] == pytest.approx((0.5 + 0 + 1) / 3)
    assert m["subset_accuracy"] == pytest.approx(1 / 3) and m["examples"] == 3
    assert m["per_label"] == {
        "fun": {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2},
        "neg": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1},
        "pos": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1},
    }
    assert m["confusion_matrices"] == {
        "fun": {"labels": ["absent", "present"], "matrix": [[0, 1], [1, 1]]},
        "neg": {"labels": ["absent", "present"], "matrix": [[2, 0], [1, 0]]},
        "pos": {"labels": ["absent", "present"], "matrix": [[2, 0], [0, 1]]},
    }


def test_multilabel_threshold_is_inclusive_and_used():
    gold = [[1, 0], [0, 1]]
    at = multilabel_metrics(gold, np.array([[0.25, 0.1], [0.2, 0.25]]), ["a", "b"], 0.25)
    assert at["subset_accuracy"] == 1.0 and at["f1_micro"] == 1.0  # exactly at the threshold: predicted
    below = multilabel_metrics(gold, np.array([[0.25, 0.1], [0.2, 0.25]]), ["a", "b"], 0.26)
    assert below["subset_accuracy"] == 0.0 and below["f1_micro"] == 0.0
    # a flat array of one example's probabilities is one row per example
    one = multilabel_metrics([1, 0, 1], np.array([0.9, 0.1, 0.2]), ["a", "b", "c"], 0.5)
    assert one["examples"] == 1 and one["per_label"]["c"]["recall"] == 0.0


def test_regression_metrics_on_arrays():
    m = plain(regression_metrics(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 2.0, 3.0, 10.0])))
    assert list(m) == ["pearson", "spearman", "mse", "examples"]
    assert m["pearson"] == pytest.approx(14 / math.sqrt(5 * 50))  # covariance 14, sums of squares 5 and 50
    assert m["spearman"] == pytest.approx(1.0)  # the same order
    assert m["mse"] == pytest.approx(36 / 4) and m["examples"] == 4
    ranks = regression_metrics([1, 2, 3, 4], [1, 3, 2, 4])
    assert ranks["spearman"] == pytest.approx(1 - 6 * 2 / (4 * 15))


@pytest.mark.parametrize("gold, pred", [([1.0, 2.0, 3.0], [2.0, 2.0, 2.0]), ([2.0, 2.0, 2.0], [1.0, 2.0, 3.0])])
def test_regression_correlation_of_a_constant_side_is_zero(gold, pred):
    m = regression_metrics(np.array(gold), np.array(pred))
    assert (m["pearson"], m["spearman"]) == (0.0, 0.0)
    assert m["mse"] == pytest.approx(2 / 3)


def test_multilabel_labels_never_seen_score_zero_not_one():
    """A label neither in the gold data nor predicted has F1 0 (scikit-learn's zero_division=0), which
    pulls macro F1 down; micro F1 with no label anywhere is 0 too, while every example is exactly right."""
    gold = [[1, 0], [1, 0]]
    m = multilabel_metrics(gold, np.array([[0.9, 0.1], [0.8, 0.2]]), ["a", "b"], 0.5)
    assert m["per_label"]["b"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert m["f1_macro"] == 0.5 and m["f1_micro"] == 1.0
    nothing = multilabel_metrics([[0, 0]], np.array([[0.1, 0.2]]), ["a", "b"], 0.5)
    assert (nothing["f1_micro"], nothing["f1_macro"], nothing["subset_accuracy"]) == (0.0, 0.0, 1.0)
