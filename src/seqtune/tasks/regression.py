"""Regression on single texts or pairs (e.g. STS-B similarity 0-5): one output, mean squared error.

The target is a number (a numeric string, or a JSON number; a JSON boolean is refused). Inputs as for
every sequence task (`sequence.py`): CSV/TSV/JSONL or FASTA, truncated or scored in windows whose
outputs are averaged.
"""

from __future__ import annotations

import math

import numpy as np
import torch.nn.functional as F

from seqtune.config import RegressionOptions
from seqtune.errors import SeqtuneError
from seqtune.tasks.base import EncodedDataset
from seqtune.tasks.sequence import SequenceTask, TextExample


class RegressionTask(SequenceTask):
    name = "regression"
    Options = RegressionOptions
    hf_architecture = "BertForSequenceClassification"
    primary_metric = "pearson"
    lower_is_better = frozenset({"loss", "mse"})
    num_outputs = 1

    def parse_labels(self, examples: list[TextExample]) -> None:
        for e in examples:
            try:
                value = math.nan if isinstance(e.raw_label, bool) else float(e.raw_label)  # JSON true is no target
            except (TypeError, ValueError):
                value = math.nan
            if not math.isfinite(value):
                raise SeqtuneError(
                    f"{e.where}: regression target {e.raw_label!r} is not a finite number."
                )
            e.label = value

    def loss(self, logits, batch):
        return F.mse_loss(logits.float().squeeze(-1), batch["labels"])

    def metric_names(self) -> list[str]:
        return ["pearson", "spearman", "mse", "examples"]

    def metrics(self, outputs, dataset: EncodedDataset) -> dict:
        from scipy.stats import pearsonr, spearmanr  # (token_metrics.py: why here)

        gold = np.array(self.example_labels(dataset))
        pred = self.example_outputs(outputs, dataset)[:, 0]
        constant = np.ptp(pred) == 0 or np.ptp(gold) == 0  # correlation undefined
        return {
            "pearson": 0.0 if constant else float(pearsonr(gold, pred)[0]),
            "spearman": 0.0 if constant else float(spearmanr(gold, pred)[0]),
            "mse": float(np.mean((gold - pred) ** 2)),
            "examples": int(len(gold)),
        }

    def predictions(self, outputs, dataset: EncodedDataset) -> list[dict]:
        scores = self.example_outputs(outputs, dataset)[:, 0]
        return [self._with_inputs(e, {"score": round(float(o), 6)}) for e, o in zip(dataset.examples, scores)]

    def hf_config(self) -> dict:
        return {**super().hf_config(), "num_labels": 1, "id2label": {"0": "LABEL_0"},
                "label2id": {"LABEL_0": 0}, "problem_type": "regression"}

    def describe(self) -> str:
        return "pair regression" if self.data.text_pair_column is not None else "regression"
