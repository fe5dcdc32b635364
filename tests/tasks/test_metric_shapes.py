"""One shape for every task's metrics dict: scores in [0, 1], counts as Python ints, only plain
JSON types (no numpy scalars), and confusion matrices as {"labels": [names], "matrix": [[int]]}
with rows = gold and columns = predicted."""

from __future__ import annotations

import json

import numpy as np
import pytest

from seqtune.config import DataConfig
from seqtune.data.readers.conll import TaggedSentence
from seqtune.data.readers.sequences import LabelledSequence
from seqtune.inference import scalar_metrics
from seqtune.tasks import task_class
from seqtune.tasks.residues import ResidueOptions, ResidueTask
from seqtune.tasks.tagging import TaggingOptions, TaggingTask
from seqtune.tasks.token_metrics import label_report, labelled_confusion_matrix
from seqtune.tokenization import load_tokenizer

COUNT_KEYS = {"examples", "words", "total", "support", "masked_tokens", "scored", "masked"}


def assert_plain_json(metrics: dict) -> None:
    """Every leaf is exactly int/float/str/bool/None (np.float64 is a float subclass: rejected too),
    every count is an int, and a JSON round trip gives the same dict (so 96 stays 96, not 96.0)."""

    def walk(value, key):
        if isinstance(value, dict):
            for k, v in value.items():
                assert type(k) is str, f"{key}: key {k!r} is {type(k).__name__}"
                walk(v, k)
        elif isinstance(value, list):
            for v in value:
                walk(v, key)
        else:
            assert type(value) in (int, float, str, bool, type(None)), f"{key}: {type(value).__name__}"
            if key in COUNT_KEYS or key.endswith("_total"):
                assert type(value) is int, f"count {key} is {type(value).__name__}"

    walk(metrics, "")
    assert json.loads(json.dumps(metrics)) == metrics


def assert_confusion_matrix(matrix: dict, labels: list[str], total: int) -> None:
    assert set(matrix) == {"labels", "matrix"}
    assert matrix["labels"] == list(labels)
    rows = matrix["matrix"]
    assert len(rows) == len(labels) and all(len(row) == len(labels) for row in rows)
    assert all(type(c) is int for row in rows for c in row)
    assert sum(map(sum, rows)) == total


def assert_declared(task, metrics: dict) -> None:
    """The metrics a task declares before training (train.metric is checked against them) are
    exactly the scalar ones it computes."""
    assert set(task.metric_names()) == set(scalar_metrics(metrics))


def one_hot(ids, n: int) -> np.ndarray:
    return np.eye(n, dtype=np.float32)[list(ids)]


def make(kind, tiny_checkpoint, **data):
    cls = task_class(kind)
    return cls(cls.Options(type=kind), DataConfig(**data), load_tokenizer(tiny_checkpoint))


# ---- the shared helper ---------------------------------------------------------------------------
def test_labelled_confusion_matrix_rows_are_gold_and_every_label_is_listed():
    m = labelled_confusion_matrix(np.array([0, 0, 1, 1, 1]), np.array([0, 1, 1, 1, 0]), ["neg", "pos", "unused"])
    assert m == {"labels": ["neg", "pos", "unused"], "matrix": [[1, 1, 0], [1, 2, 0], [0, 0, 0]]}
    assert_plain_json(m)


def test_label_report_is_plain_json_with_int_supports():
    report = label_report(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2]), ["C", "E", "H"])
    assert_plain_json(report)
    assert [v["support"] for v in report["per_label"].values()] == [1, 2, 1]
    assert_confusion_matrix(report["confusion_matrix"], ["C", "E", "H"], 4)


# ---- sequence tasks ------------------------------------------------------------------------------
def test_classification_confusion_matrix_has_label_names(tmp_path, tiny_checkpoint):
    (tmp_path / "t.csv").write_text("text,label\na,neg\nb,pos\nc,neg\nd,pos\ne,neutral\n")
    task = make("classification", tiny_checkpoint)
    examples = task.read(str(tmp_path / "t.csv"), "train")
    task.fit(examples)
    ds = task.encode(examples, "dev")
    assert task.labels == ["neg", "neutral", "pos"]
    # predicted: neg, neg, neg, pos, pos  (gold: neg, pos, neg, pos, neutral)
    m = task.metrics(list(one_hot([0, 0, 0, 2, 2], 3)), ds)
    assert_declared(task, m)
    assert_plain_json(m)
    assert m["examples"] == 5
    assert m["confusion_matrix"] == {"labels": ["neg", "neutral", "pos"],
                                     "matrix": [[2, 0, 0], [0, 0, 1], [1, 0, 1]]}


def test_multilabel_per_label_two_by_two(tmp_path, tiny_checkpoint):
    rows = [{"text": "good fun", "label": ["pos", "fun"]}, {"text": "bad", "label": "neg"},
            {"text": "fun", "label": ["fun"]}]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = make("multilabel", tiny_checkpoint)
    examples = task.read(str(tmp_path / "m.jsonl"), "train")
    task.fit(examples)
    ds = task.encode(examples, "dev")
    assert task.labels == ["fun", "neg", "pos"]
    # gold: {fun, pos}, {neg}, {fun}; predicted: {fun, pos}, {fun}, {}
    outputs = [np.array([5.0, -5, 5]), np.array([5.0, -5, -5]), np.array([-5.0, -5, -5])]
    m = task.metrics(outputs, ds)
    assert_declared(task, m)
    assert_plain_json(m)
    assert m["examples"] == 3
    assert set(m["confusion_matrices"]) == set(task.labels)
    for label, matrix in m["confusion_matrices"].items():
        assert_confusion_matrix(matrix, ["absent", "present"], 3)
    # fun: gold {0, 2}, predicted {0, 1} -> tn 0, fp 1, fn 1, tp 1
    assert m["confusion_matrices"]["fun"]["matrix"] == [[0, 1], [1, 1]]
    # neg: gold {1}, predicted {} -> tn 2, fn 1
    assert m["confusion_matrices"]["neg"]["matrix"] == [[2, 0], [1, 0]]
    assert m["per_label"]["fun"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert m["per_label"]["pos"]["support"] == 1 and m["per_label"]["pos"]["f1"] == 1.0


def test_regression_counts_examples(tmp_path, tiny_checkpoint):
    (tmp_path / "r.csv").write_text("text,label\na,1.0\nb,2.0\nc,3.5\n")
    task = make("regression", tiny_checkpoint)
    examples = task.read(str(tmp_path / "r.csv"), "train")
    task.fit(examples)
    ds = task.encode(examples, "dev")
    m = task.metrics([np.array([1.0]), np.array([2.5]), np.array([3.0])], ds)
    assert_declared(task, m)
    assert_plain_json(m)
    assert m["examples"] == 3 and json.dumps(m["examples"]) == "3"


# ---- token tasks ---------------------------------------------------------------------------------
TAGGED = [
    TaggedSentence(["the", "film", "was", "good"], ["O", "B-MISC", "O", "O"], "t:1"),
    TaggedSentence(["love", "story", "not", "boring", "plot"], ["B-PER", "I-PER", "O", "B-LOC", "O"], "t:6"),
]


@pytest.mark.parametrize("wrong", [None, "O"])
def test_tagging_confusion_matrix_over_tag_names_sums_to_the_word_count(tiny_checkpoint, wrong):
    task = TaggingTask(TaggingOptions(type="tagging"), DataConfig(max_length=64), load_tokenizer(tiny_checkpoint))
    task.fit(TAGGED)
    ds = task.encode(TAGGED, "dev")
    outputs, n_wrong = [], 0
    for sentence, feature, starts in zip(TAGGED, ds.features, ds.word_starts):
        logits = np.zeros((len(feature["input_ids"]) - 2, len(task.labels)), dtype=np.float32)
        for tag, start in zip(sentence.tags, starts):
            predicted = wrong if wrong is not None and tag.startswith("I-") else tag
            n_wrong += predicted != tag
            logits[start, task.label_to_id[predicted]] = 5.0
        outputs.append(logits)
    m = task.metrics(outputs, ds)
    assert_declared(task, m)
    assert_plain_json(m)
    words = sum(len(s.tokens) for s in TAGGED)
    assert m["words"] == words
    assert_confusion_matrix(m["confusion_matrix"], task.labels, words)
    assert set(m["confusion_matrix"]["labels"]) == {t for s in TAGGED for t in s.tags}
    matrix = np.array(m["confusion_matrix"]["matrix"])
    assert matrix.trace() == words - n_wrong
    if wrong:  # the I-PER word, predicted O: row I-PER (gold), column O (predicted)
        assert matrix[task.label_to_id["I-PER"], task.label_to_id["O"]] == 1
    for scores in m["per_type"].values():
        assert type(scores["support"]) is int


def test_residues_metrics_are_plain_json(tiny_checkpoint):
    task = ResidueTask(ResidueOptions(type="residues"), DataConfig(max_length=64), load_tokenizer(tiny_checkpoint))
    data = [LabelledSequence("abcd", list("HHEC"), [True, True, True, False], "p1", "t.csv:2"),
            LabelledSequence("ef", list("CC"), None, "p2", "t.csv:3")]
    task.fit(data)
    ds = task.encode(data, "dev")
    ids = task.label_to_id
    outputs = [one_hot([ids[c] for c in "HHCC"], 3), one_hot([ids[c] for c in "CC"], 3)]
    m = task.metrics(outputs, ds)
    assert_declared(task, m)
    assert_plain_json(m)
    assert m["residues"]["scored"] == 5 and m["residues"]["masked"] == 1
    assert_confusion_matrix(m["confusion_matrix"], ["C", "E", "H"], 5)
    assert m["confusion_matrix"]["matrix"][ids["E"]][ids["C"]] == 1
