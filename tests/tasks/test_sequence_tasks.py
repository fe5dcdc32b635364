"""Reading, label maps and bad input for classification, multi-label and regression."""

import json

import numpy as np
import pytest

from seqtune.config import DataConfig
from seqtune.errors import SeqtuneError
from seqtune.tasks import task_class
from seqtune.tokenization import load_tokenizer


def make(kind, tiny_checkpoint, **data):
    cls = task_class(kind)
    return cls(cls.Options(type=kind), DataConfig(**data), load_tokenizer(tiny_checkpoint))


def test_label_map_sorted_and_unseen_dev_label(tmp_path, tiny_checkpoint):
    (tmp_path / "train.csv").write_text("text,label\ngood film,pos\nbad film,neg\nfun,pos\n")
    (tmp_path / "dev.csv").write_text("text,label\ngood,pos\nmeh,neutral\n")
    task = make("classification", tiny_checkpoint)
    train = task.read(str(tmp_path / "train.csv"), "train")
    task.fit(train)
    assert task.labels == ["neg", "pos"]
    ds = task.encode(train, "train")
    assert [f["labels"] for f in ds.features] == [1, 0, 1]
    dev = task.read(str(tmp_path / "dev.csv"), "dev")
    with pytest.raises(SeqtuneError, match=r"dev.csv:3: label 'neutral' is not in the label map"):
        task.encode(dev, "dev")


def test_missing_column_lists_columns_and_empty_text(tmp_path, tiny_checkpoint):
    (tmp_path / "t.csv").write_text("sentence,label\ngood,1\n")
    with pytest.raises(SeqtuneError, match=r"no column 'text'.*'sentence', 'label'"):
        make("classification", tiny_checkpoint).read(str(tmp_path / "t.csv"), "train")
    (tmp_path / "e.csv").write_text("text,label\ngood,1\n  ,0\n")
    with pytest.raises(SeqtuneError, match=r"e.csv:3: empty text"):
        make("classification", tiny_checkpoint).read(str(tmp_path / "e.csv"), "train")


def test_pairs_get_token_types(tmp_path, tiny_checkpoint):
    (tmp_path / "p.tsv").write_text("a\tb\tlabel\nthe film\tgood plot\t1\nbad\tawful\t0\n")
    task = make("classification", tiny_checkpoint, text_column="a", text_pair_column="b")
    ex = task.read(str(tmp_path / "p.tsv"), "train")
    task.fit(ex)
    f = task.encode(ex, "train").features[0]
    assert f["token_type_ids"] == [0, 0, 0, 0, 1, 1, 1]


def test_regression_target_must_be_a_number(tmp_path, tiny_checkpoint):
    (tmp_path / "r.csv").write_text("text,label\ngood,4.5\nbad,n/a\n")
    task = make("regression", tiny_checkpoint)
    ex = task.read(str(tmp_path / "r.csv"), "train")
    with pytest.raises(SeqtuneError, match=r"r.csv:3: regression target 'n/a' is not a finite number"):
        task.encode(ex, "train")


def test_multilabel_from_strings_and_lists(tmp_path, tiny_checkpoint):
    (tmp_path / "m.jsonl").write_text(
        json.dumps({"text": "good fun", "label": ["pos", "fun"]}) + "\n" + json.dumps({"text": "bad", "label": "neg"}) + "\n"
    )
    task = make("multilabel", tiny_checkpoint)
    ex = task.read(str(tmp_path / "m.jsonl"), "train")
    task.fit(ex)
    assert task.labels == ["fun", "neg", "pos"]
    ds = task.encode(ex, "train")
    assert ds.features[0]["labels"] == [1.0, 0.0, 1.0]
    metrics = task.metrics([np.array([5.0, -5, 5]), np.array([-5.0, 5, -5])], ds)
    assert metrics["subset_accuracy"] == 1.0 and metrics["f1_micro"] == 1.0


def test_classification_metrics_use_sklearn_definitions(tmp_path, tiny_checkpoint):
    (tmp_path / "t.csv").write_text("text,label\na,x\nb,y\nc,x\nd,y\n")
    task = make("classification", tiny_checkpoint)
    ex = task.read(str(tmp_path / "t.csv"), "train")
    task.fit(ex)
    ds = task.encode(ex, "train")
    outputs = [np.array([1.0, 0]), np.array([1.0, 0]), np.array([1.0, 0]), np.array([0.0, 1])]
    m = task.metrics(outputs, ds)
    assert m["accuracy"] == 0.75 and m["examples"] == 4
    assert m["confusion_matrix"] == {"labels": ["x", "y"], "matrix": [[2, 0], [1, 1]]}  # rows: gold
    assert abs(m["mcc"] - 0.5773502691896258) < 1e-9
