"""Sequence classification: single texts or pairs; binary, multi-class and multi-label.

Labels are read as strings and mapped through a label map, taken from `task.labels` or inferred
from the training file (sorted; numerically when all labels are numbers). The map is saved with
the model as `id2label`/`label2id` in config.json.

Surrounding whitespace is not part of a label. A file that writes one label in two ways (`1` and
` 1`, `1` and `1.0`, or in JSONL `1`, `1.0` and `true`, labels of mixed JSON types) is an error
naming the spellings and their lines (`check_label_spellings`): read as written they would be
separate classes, and merging them silently could hide a data error.
"""

from __future__ import annotations

import json
import math

import numpy as np
import torch
import torch.nn.functional as F
from seqtune.config import ClassificationOptions, MultiLabelOptions
from seqtune.errors import SeqtuneError
from seqtune.tasks.base import EncodedDataset
from seqtune.tasks.sequence import (
    SequenceTask,
    TextExample,
    natural_sort,
    sigmoid,
    softmax,
)
from seqtune.tasks.token_metrics import labelled_confusion_matrix


class LabelMapMixin:
    """A fixed label map: `labels` (index -> name) and `label2id`."""

    labels: list[str]

    def _set_labels(self, labels: list[str]) -> None:
        if len(labels) < 2 and self.name == "classification":
            raise SeqtuneError(f"classification needs at least two labels; the training data has {labels}.")
        self.labels = list(labels)
        self.label2id = {label: i for i, label in enumerate(self.labels)}
        self.hf_label_config()  # task.label_names checked against the labels now, not when saving

    def _label_id(self, label: str, where: str) -> int:
        if label not in self.label2id:
            raise SeqtuneError(
                f"{where}: label {label!r} is not in the label map ({', '.join(self.labels)}). "
                "Labels of dev/test files must appear in the training data (or in task.labels)."
            )
        return self.label2id[label]

    def hf_label_config(self) -> dict:
        """id2label/label2id of config.json; task.label_names gives labels display names there (so that
        `transformers` pipelines print "negative", not "0"); seqtune's own predictions keep the labels."""
        names = {str(k): v for k, v in (self.options.label_names or {}).items()}
        unknown = sorted(set(names) - set(self.labels))
        if unknown:
            raise SeqtuneError(f"task.label_names names {', '.join(map(repr, unknown))}, which are not labels of "
                               f"this task ({', '.join(map(repr, self.labels))}).")
        shown = [names.get(label, label) for label in self.labels]
        if len(set(shown)) < len(shown):
            raise SeqtuneError(f"task.label_names gives two labels the same name: {shown}.")
        return {"id2label": {str(i): name for i, name in enumerate(shown)},
                "label2id": {name: i for i, name in enumerate(shown)}}


def label_text(value, where: str) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise SeqtuneError(f"{where}: the label is empty.")
    return str(value).strip()


def _label_kind(value) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return type(value).__name__  # a JSON list or object


def _label_key(value):
    """Spellings of one label share this key: the number it writes, else the text without whitespace."""
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        text = str(value).strip()
        try:
            number = float(text)
        except ValueError:
            return text
    return number if math.isfinite(number) else str(value).strip()


def check_label_spellings(examples: list[TextExample]) -> None:
    """Refuse labels of mixed JSON types, and one label written in two ways (see the module docstring)."""
    kinds: dict[str, TextExample] = {}
    spellings: dict = {}  # key -> {spelling: first example}
    for e in examples:
        if e.raw_label is None:
            continue  # label_text names an empty label
        kind = _label_kind(e.raw_label)
        if kind not in ("boolean", "number", "string"):
            raise SeqtuneError(f"{e.where}: the label should be a string, a number or a boolean, found a JSON "
                               f"{'list' if kind == 'list' else 'object'}: {json.dumps(e.raw_label)[:80]}.")
        kinds.setdefault(kind, e)
        if isinstance(e.raw_label, str) and not e.raw_label.strip():
            continue
        spellings.setdefault(_label_key(e.raw_label), {}).setdefault(json.dumps(e.raw_label), e)
    if len(kinds) > 1:
        shown = "; ".join(f"{json.dumps(e.raw_label)} ({kind}, {e.where})" for kind, e in kinds.items())
        raise SeqtuneError(
            f"the labels are of mixed types: {shown}. Labels are names of classes: write them all as strings "
            "(\"1\"), or all as numbers, or all as booleans, so each class is written one way."
        )
    for spelled in spellings.values():
        if len(spelled) > 1:
            values = list(spelled.values())
            same_text = len({str(e.raw_label).strip() for e in values}) == 1
            why = "differ only in surrounding whitespace" if same_text else "write the same number differently"
            shown = ", ".join(f"{spelling} ({e.where})" for spelling, e in spelled.items())
            raise SeqtuneError(
                f"labels {shown} {why}. Read as written they would be separate classes; they may also be one "
                "class written two ways. Write each label one way throughout the file."
            )


class ClassificationTask(LabelMapMixin, SequenceTask):
    """Binary or multi-class classification with cross-entropy (optionally class-weighted)."""

    name = "classification"
    Options = ClassificationOptions
    hf_architecture = "BertForSequenceClassification"
    probabilities = "always"
    primary_metric = "accuracy"
    label_dtype = torch.long

    def __init__(self, options, data, tokenizer):
        super().__init__(options, data, tokenizer)
        self.labels: list[str] = []
        self.weights: list[float] | None = None

    @property
    def num_outputs(self) -> int:
        return len(self.labels)

    def fit(self, train_examples: list[TextExample]) -> None:
        check_label_spellings(train_examples)
        raw = [label_text(e.raw_label, e.where) for e in train_examples]
        self._set_labels(self.options.labels or natural_sort(set(raw)))
        if self.options.class_weights in ("balanced", "auto"):
            ids = np.array([self._label_id(r, e.where) for r, e in zip(raw, train_examples)])
            present = np.unique(ids)
            weights = np.ones(len(self.labels))
            from sklearn.utils.class_weight import compute_class_weight  # (token_metrics.py: why here)

            weights[present] = compute_class_weight("balanced", classes=present, y=ids)
            self.weights = weights.tolist()
        elif isinstance(self.options.class_weights, str):
            raise SeqtuneError(f"task.class_weights: {self.options.class_weights!r} is not 'balanced' (or 'auto'), "
                               "a list of one weight per label, or a mapping {label: weight}.")
        elif isinstance(self.options.class_weights, dict):
            self.weights = self._named_weights(self.options.class_weights)
        elif self.options.class_weights is not None:
            if len(self.options.class_weights) != len(self.labels):
                raise SeqtuneError(
                    f"task.class_weights has {len(self.options.class_weights)} values but there are "
                    f"{len(self.labels)} labels ({', '.join(self.labels)})."
                )
            self.weights = list(self.options.class_weights)

    def _named_weights(self, named: dict) -> list[float]:
        """{label: weight} -> one weight per label; labels not named weigh 1."""
        weights = [1.0] * len(self.labels)
        for label, value in named.items():
            label = str(label)  # YAML reads labels such as 0 and 1 as numbers
            if label not in self.label2id:
                raise SeqtuneError(f"task.class_weights names label {label!r}, which is not in the label map; "
                                   f"the labels are: {', '.join(self.labels)}.")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
                raise SeqtuneError(f"task.class_weights: the weight of label {label!r} is {value!r}; "
                                   "weights are positive numbers.")
            weights[self.label2id[label]] = float(value)
        return weights

    def parse_labels(self, examples: list[TextExample]) -> None:
        check_label_spellings(examples)
        for e in examples:
            e.label = self._label_id(label_text(e.raw_label, e.where), e.where)

    def loss(self, logits, batch):
        weight = torch.tensor(self.weights, dtype=logits.dtype, device=logits.device) if self.weights else None
        return F.cross_entropy(logits.float(), batch["labels"], weight=weight)

    def metric_names(self) -> list[str]:
        return ["accuracy", "f1_macro", "f1_micro", "mcc", "examples"]

    def metrics(self, outputs, dataset: EncodedDataset) -> dict:
        """Scores in [0, 1]; `examples` (int); the confusion matrix as {"labels", "matrix"}, rows =
        gold, columns = predicted (`token_metrics.labelled_confusion_matrix`)."""
        from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef  # (token_metrics.py: why here)

        gold = np.array(self.example_labels(dataset))
        pred = self.example_outputs(outputs, dataset).argmax(-1)
        return {
            "accuracy": float(accuracy_score(gold, pred)),
            "f1_macro": float(f1_score(gold, pred, average="macro", labels=range(len(self.labels)), zero_division=0)),
            "f1_micro": float(f1_score(gold, pred, average="micro", zero_division=0)),
            "mcc": float(matthews_corrcoef(gold, pred)),
            "examples": int(len(gold)),
            "confusion_matrix": labelled_confusion_matrix(gold, pred, self.labels),
        }

    def predictions(self, outputs, dataset: EncodedDataset) -> list[dict]:
        probs = softmax(self.example_outputs(outputs, dataset))
        return [
            self._with_inputs(e, {"label": self.labels[int(p.argmax())],
                                  "probabilities": {lab: round(float(q), 6) for lab, q in zip(self.labels, p)}})
            for e, p in zip(dataset.examples, probs)
        ]

    def state(self) -> dict:
        return {"labels": self.labels, "class_weights": self.weights}

    def load_state(self, state: dict) -> None:
        self._set_labels(state["labels"])
        self.weights = state.get("class_weights")

    def hf_config(self) -> dict:
        return {**super().hf_config(), **self.hf_label_config(), "problem_type": "single_label_classification"}

    def describe(self) -> str:
        kind = "pair classification" if self.data.text_pair_column is not None else "classification"
        return f"{kind}, {len(self.labels)} labels: {', '.join(self.labels)}"


class MultiLabelTask(LabelMapMixin, SequenceTask):
    """Any number of labels per text: sigmoid per label, binary cross-entropy."""

    name = "multilabel"
    Options = MultiLabelOptions
    hf_architecture = "BertForSequenceClassification"
    probabilities = "always"
    primary_metric = "f1_micro"

    def __init__(self, options, data, tokenizer):
        super().__init__(options, data, tokenizer)
        self.labels = []

    @property
    def num_outputs(self) -> int:
        return len(self.labels)

    def _split(self, raw, where: str) -> list[str]:
        """A JSON list, or a delimiter-separated string; an empty cell means no label."""
        if isinstance(raw, list):
            return [label_text(x, where) for x in raw]
        if raw is None:
            raise SeqtuneError(f"{where}: the label is missing.")
        return [p.strip() for p in str(raw).split(self.options.label_delimiter) if p.strip()]

    def fit(self, train_examples: list[TextExample]) -> None:
        names = {name for e in train_examples for name in self._split(e.raw_label, e.where)}
        if not names and not self.options.labels:
            raise SeqtuneError("multi-label training data has no labels at all.")
        self._set_labels(self.options.labels or natural_sort(names))

    def parse_labels(self, examples: list[TextExample]) -> None:
        for e in examples:
            hot = [0.0] * len(self.labels)
            for name in self._split(e.raw_label, e.where):
                hot[self._label_id(name, e.where)] = 1.0
            e.label = hot

    def loss(self, logits, batch):
        return F.binary_cross_entropy_with_logits(logits.float(), batch["labels"])

    def metric_names(self) -> list[str]:
        return ["f1_micro", "f1_macro", "subset_accuracy", "examples"]

    def metrics(self, outputs, dataset: EncodedDataset) -> dict:
        """Scores in [0, 1]; `examples` (int); per label precision/recall/F1/support and a 2x2
        confusion matrix in the shape of the other tasks' ({"labels": ["absent", "present"],
        "matrix": [[tn, fp], [fn, tp]]}, rows = gold). One labels x labels matrix does not exist
        here, since an example has any number of gold and predicted labels."""
        from sklearn.metrics import (  # (token_metrics.py: why here)
            accuracy_score,
            f1_score,
            multilabel_confusion_matrix,
            precision_recall_fscore_support,
        )

        gold = np.array(self.example_labels(dataset), dtype=int).reshape(-1, len(self.labels))
        pred = (sigmoid(self.example_outputs(outputs, dataset)) >= self.options.threshold).astype(int)
        pred = pred.reshape(-1, len(self.labels))
        ids = list(range(len(self.labels)))
        precision, recall, f1, support = precision_recall_fscore_support(
            gold, pred, labels=ids, average=None, zero_division=0)
        matrices = multilabel_confusion_matrix(gold, pred, labels=ids)
        return {
            "f1_micro": float(f1_score(gold, pred, average="micro", zero_division=0)),
            "f1_macro": float(f1_score(gold, pred, average="macro", zero_division=0)),
            "subset_accuracy": float(accuracy_score(gold, pred)),
            "examples": int(len(gold)),
            "per_label": {
                label: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(n)}
                for label, p, r, f, n in zip(self.labels, precision, recall, f1, support)
            },
            "confusion_matrices": {
                label: {"labels": ["absent", "present"], "matrix": [[int(c) for c in row] for row in m]}
                for label, m in zip(self.labels, matrices)
            },
        }

    def predictions(self, outputs, dataset: EncodedDataset) -> list[dict]:
        probs = sigmoid(self.example_outputs(outputs, dataset))
        return [
            self._with_inputs(e, {
                "labels": [lab for lab, q in zip(self.labels, p) if q >= self.options.threshold],
                "probabilities": {lab: round(float(q), 6) for lab, q in zip(self.labels, p)},
            })
            for e, p in zip(dataset.examples, probs)
        ]

    def state(self) -> dict:
        return {"labels": self.labels}

    def load_state(self, state: dict) -> None:
        self._set_labels(state["labels"])

    def hf_config(self) -> dict:
        return {**super().hf_config(), **self.hf_label_config(), "problem_type": "multi_label_classification"}

    def describe(self) -> str:
        return f"multi-label classification, {len(self.labels)} labels: {', '.join(self.labels)}"
