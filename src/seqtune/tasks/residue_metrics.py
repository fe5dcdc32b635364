"""Metrics of per-residue labelling on plain arrays, without a model: accuracy (also named q3 for
3-state {H, E, C} and q8 for 8-state DSSP labels), macro F1, per-label precision/recall/F1 and the
confusion matrix (`token_metrics.label_report`), all over the residues the masks keep, and the
counts of scored, masked and unknown residues.

`residues.py` turns its model outputs into one array of predicted label ids per sequence and calls
`residue_metrics`.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from seqtune.tasks.token_metrics import label_report

Q3_LABELS = {"H", "E", "C"}
Q8_LABELS = {"H", "G", "I", "E", "B", "T", "S", "C"}


def accuracy_alias(labels: list[str]) -> str | None:
    """"q3" for exactly the 3-state labels {H, E, C}, "q8" for exactly the 8 DSSP states, else None."""
    if set(labels) == Q3_LABELS:
        return "q3"
    if set(labels) == Q8_LABELS:
        return "q8"
    return None


def residue_metrics(gold: list[np.ndarray], predicted: list[np.ndarray], masks: list[list[bool] | None],
                    labels: list[str], unknown: Counter | None = None) -> dict:
    """gold, predicted: one array of label ids per sequence (one id per residue); masks: per sequence,
    True = score this residue, None = score every residue; unknown: unknown character -> count (the
    dataset's, reported as it is)."""
    scored_gold, scored_pred, masked = [], [], 0
    for g, p, mask in zip(gold, predicted, masks):
        g, p = np.asarray(g), np.asarray(p)
        keep = np.asarray(mask, dtype=bool) if mask is not None else np.ones(len(g), dtype=bool)
        masked += int((~keep).sum())
        scored_gold.append(g[keep])
        scored_pred.append(p[keep])
    report = label_report(np.concatenate(scored_gold), np.concatenate(scored_pred), labels)
    metrics = {"accuracy": report["accuracy"]}
    alias = accuracy_alias(labels)
    if alias is not None:
        metrics[alias] = report["accuracy"]
    metrics["macro_f1"] = report["macro_f1"]
    metrics["residues"] = {"scored": int(sum(len(g) for g in scored_gold)), "masked": masked,
                           "unknown": dict((unknown or Counter()).most_common())}
    metrics["per_label"] = report["per_label"]
    metrics["confusion_matrix"] = report["confusion_matrix"]
    return metrics
