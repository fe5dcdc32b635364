"""Sequence-task metrics on hand-checked cases: classification (a label absent from the dev data still
counts in macro F1), multi-label (micro/macro/subset accuracy, the threshold is inclusive) and
regression (correlations, MSE, a constant prediction)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from seqtune.config import DataConfig
from seqtune.tasks import task_class
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
