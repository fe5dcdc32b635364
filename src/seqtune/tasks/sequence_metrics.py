"""Metrics of the sequence tasks on plain arrays, without a model: classification (accuracy, macro and
micro F1, MCC, confusion matrix), multi-label (micro/macro F1, subset accuracy, per-label scores and
2x2 confusion matrices) and regression (Pearson, Spearman, MSE), all from scikit-learn and SciPy.

The tasks (`classification.py`, `regression.py`) turn their model outputs into these arrays and call
one function each. Every value returned is a plain Python int/float/str/list/dict (JSON-ready):
scores in [0, 1] (correlations in [-1, 1]), counts as int. scikit-learn and SciPy are imported when a
function is first called, not with the module: `predict` and `serve` never load them (memory).
"""

from __future__ import annotations

import numpy as np

from seqtune.tasks.token_metrics import labelled_confusion_matrix


def classification_metrics(gold: np.ndarray, predicted: np.ndarray, labels: list[str]) -> dict:
    """gold, predicted: (N,) label ids in range(len(labels)). Macro F1 averages over every label of the
    model, also one absent from these data (its F1 is 0); the confusion matrix is
    `token_metrics.labelled_confusion_matrix` (rows = gold, columns = predicted)."""
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    return {
        "accuracy": float(accuracy_score(gold, predicted)),
        "f1_macro": float(f1_score(gold, predicted, average="macro", labels=range(len(labels)), zero_division=0)),
        "f1_micro": float(f1_score(gold, predicted, average="micro", zero_division=0)),
        "mcc": float(matthews_corrcoef(gold, predicted)),
        "examples": int(len(gold)),
        "confusion_matrix": labelled_confusion_matrix(gold, predicted, labels),
    }


def multilabel_metrics(gold: np.ndarray, probabilities: np.ndarray, labels: list[str], threshold: float) -> dict:
    """gold: (N, L) 0/1; probabilities: (N, L), a label is predicted when its probability is at least
    `threshold`. Per label precision/recall/F1/support and a 2x2 confusion matrix in the shape of the
    other tasks' ({"labels": ["absent", "present"], "matrix": [[tn, fp], [fn, tp]]}, rows = gold):
    one labels x labels matrix does not exist here, since an example has any number of labels."""
    from sklearn.metrics import accuracy_score, f1_score, multilabel_confusion_matrix, precision_recall_fscore_support

    gold = np.asarray(gold, dtype=int).reshape(-1, len(labels))
    predicted = (np.asarray(probabilities) >= threshold).astype(int).reshape(-1, len(labels))
    # one column per label: scikit-learn scores every column of the (N, L) indicator arrays
    precision, recall, f1, support = precision_recall_fscore_support(gold, predicted, average=None, zero_division=0)
    matrices = multilabel_confusion_matrix(gold, predicted)
    return {
        "f1_micro": float(f1_score(gold, predicted, average="micro", zero_division=0)),
        "f1_macro": float(f1_score(gold, predicted, average="macro", zero_division=0)),
        "subset_accuracy": float(accuracy_score(gold, predicted)),
        "examples": int(len(gold)),
        "per_label": {
            label: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(n)}
            for label, p, r, f, n in zip(labels, precision, recall, f1, support)
        },
        "confusion_matrices": {
            label: {"labels": ["absent", "present"], "matrix": [[int(c) for c in row] for row in m]}
            for label, m in zip(labels, matrices)
        },
    }


def regression_metrics(gold: np.ndarray, predicted: np.ndarray) -> dict:
    """gold, predicted: (N,) numbers. A correlation is undefined when either side is constant: it is
    reported as 0.0 then (not NaN)."""
    from scipy.stats import pearsonr, spearmanr

    gold, predicted = np.asarray(gold, dtype=float), np.asarray(predicted, dtype=float)
    constant = np.ptp(predicted) == 0 or np.ptp(gold) == 0
    return {
        "pearson": 0.0 if constant else float(pearsonr(gold, predicted)[0]),
        "spearman": 0.0 if constant else float(spearmanr(gold, predicted)[0]),
        "mse": float(np.mean((gold - predicted) ** 2)),
        "examples": int(len(gold)),
    }
