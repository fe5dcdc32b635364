"""What the token-level tasks (word tagging, per-residue labelling) share.

Both put a `TokenHead` (dropout + linear on every position, exactly `BertForTokenClassification`)
on the encoder, learn a label map from the training labels, cut long inputs into overlapping
windows (`windows.py`), train with cross-entropy on the labelled positions (label -100 elsewhere)
and merge window outputs back to one output per token before scoring. Subclasses read their files
and turn examples into content token ids plus per-token label ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from seqtune.errors import SeqtuneError
from seqtune.models.heads import TokenHead
from seqtune.tasks.base import EncodedDataset, Task, collate_inputs, pad
from seqtune.tasks.windows import IGNORE_INDEX, merge_example_outputs, window_features


@dataclass
class TokenDataset(EncodedDataset):
    """Features of windowed examples; `example_lengths[i]` = content tokens of example i (no [CLS]/[SEP])."""

    example_lengths: list[int] = field(default_factory=list)


class TokenTask(Task):
    """Base of token tasks: one label per token, from a `TokenHead`."""

    hf_architecture = "BertForTokenClassification"
    needs_pooler = False

    def __init__(self, options, data, tokenizer):
        super().__init__(options, data, tokenizer)
        self.labels: list[str] = []
        self.label_to_id: dict[str, int] = {}
        self.labelled_per_feature: float | None = None  # mean labelled tokens per training input

    # ---- labels -----------------------------------------------------------------------------
    def set_labels(self, labels: list[str]) -> None:
        if not labels:
            raise SeqtuneError("the training data has no labels.")
        self.labels = list(labels)
        self.label_to_id = {label: i for i, label in enumerate(self.labels)}

    def label_ids(self, labels: list[str], where: str, what: str = "label") -> list[int]:
        """Map labels to ids; a label the training data never had is an error naming the record."""
        try:
            return [self.label_to_id[label] for label in labels]
        except KeyError:
            unseen = next(label for label in labels if label not in self.label_to_id)
            raise SeqtuneError(
                f"{where}: {what} {unseen!r} does not occur in the training data, so the model cannot "
                f"predict it. The training {what}s are: {', '.join(self.labels)}. Fix the {what} or add "
                "examples of it to the training file."
            ) from None

    @property
    def window(self) -> int:
        """Content tokens per model input: data.max_length minus [CLS] and [SEP]."""
        if self.data.max_length < 3:
            raise SeqtuneError(f"data.max_length is {self.data.max_length}; token tasks need at least 3.")
        return self.data.max_length - 2

    def make_features(self, token_ids: list[list[int]], labels: list[list[int]] | None, split: str) -> list[dict]:
        features = []
        for i, ids in enumerate(token_ids):
            features.extend(window_features(ids, labels[i] if labels is not None else None, i, self.window,
                                            self.options.window_stride, self.tokenizer.cls_id,
                                            self.tokenizer.sep_id))
        if split == "train" and labels is not None and features:
            labelled = sum(sum(1 for x in f["labels"] if x != IGNORE_INDEX) for f in features)
            self.labelled_per_feature = max(labelled / len(features), 1e-6)
        return features

    def window_info(self, dataset_lengths: list[int], features: list[dict]) -> dict:
        long = sum(1 for n in dataset_lengths if n > self.window)
        return {"windowed": long, "windows": len(features)} if long else {}

    # ---- model ------------------------------------------------------------------------------
    def collate(self, features: list[dict]) -> dict[str, torch.Tensor]:
        """input_ids, attention_mask (B, T) and, when labelled, labels (B, T) with -100 on padding."""
        batch = collate_inputs(features, self.tokenizer.pad_id)
        if "labels" in features[0]:
            batch["labels"] = pad([f["labels"] for f in features], IGNORE_INDEX)
        return batch

    def build_head(self, encoder_config) -> TokenHead:
        return TokenHead(encoder_config, len(self.labels), self.options.head_dropout)

    def loss(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean cross-entropy over labelled positions. logits (B, T, C), labels (B, T)."""
        labels = batch["labels"]
        if not bool((labels != IGNORE_INDEX).any()):
            return logits.sum() * 0.0  # nothing to learn from (all positions masked): zero, not NaN
        if self.options.loss_normalization == "training_mean" and self.labelled_per_feature is not None:
            total = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE_INDEX,
                                    reduction="sum")
            return total / (labels.shape[0] * self.labelled_per_feature)
        return F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE_INDEX)

    def split_outputs(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> list[np.ndarray]:
        """(B, T, C) -> per feature (content tokens, C): [CLS], [SEP] and padding removed."""
        lengths = batch["attention_mask"].sum(1).tolist()
        logits = logits.detach().float().cpu().numpy()
        return [logits[i, 1:n - 1] for i, n in enumerate(lengths)]

    def example_outputs(self, outputs: list[np.ndarray], dataset: TokenDataset) -> list[np.ndarray]:
        """Per-feature outputs -> one (content tokens, C) array per example, windows merged."""
        return merge_example_outputs(outputs, dataset.features, dataset.example_lengths)

    # ---- persistence ------------------------------------------------------------------------
    def state(self) -> dict:
        return {"labels": self.labels}

    def load_state(self, state: dict) -> None:
        self.set_labels(state["labels"])

    def hf_config(self) -> dict:
        config = {
            "architectures": [self.hf_architecture],
            "id2label": {str(i): label for i, label in enumerate(self.labels)},
            "label2id": dict(self.label_to_id),
        }
        if self.options.head_dropout is not None:
            config["classifier_dropout"] = self.options.head_dropout
        return config
