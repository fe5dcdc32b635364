"""What the token-level tasks (word tagging, per-residue labelling) share.

Both put a per-position head on the encoder (`task.head`: `linear`, dropout + linear on every
position, exactly `BertForTokenClassification`; `mlp`; `conv`, 1-D convolutions along the sequence),
learn a label map from the training labels, cut long inputs into overlapping windows (`windows.py`),
train with cross-entropy on the labelled positions (label -100 elsewhere), optionally weighted per
label (`task.class_weights`), and merge window outputs back to one output per token before scoring.
Subclasses read their files and turn examples into content token ids plus per-token label ids.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from seqtune.errors import SeqtuneError
from seqtune.models.heads import ConvTokenHead, Head, MLPTokenHead, TokenHead
from seqtune.tasks.base import EncodedDataset, Task, collate_inputs, pad
from seqtune.tasks.sequence import softmax
from seqtune.tasks.windows import IGNORE_INDEX, merge_example_outputs, window_features


@dataclass
class TokenDataset(EncodedDataset):
    """Features of windowed examples; `example_lengths[i]` = content tokens of example i (no [CLS]/[SEP])."""

    example_lengths: list[int] = field(default_factory=list)


class TokenTask(Task):
    """Base of token tasks: one label per token, from a per-position head (`task.head`)."""

    hf_architecture = "BertForTokenClassification"
    probabilities = "on_request"
    needs_pooler = False

    def __init__(self, options, data, tokenizer):
        super().__init__(options, data, tokenizer)
        self.labels: list[str] = []
        self.label_to_id: dict[str, int] = {}
        self.labelled_per_feature: float | None = None  # mean labelled tokens per training input (weighted)
        self.class_weights: list[float] | None = None  # loss weight per label id; None: all 1

    # ---- labels -----------------------------------------------------------------------------
    def set_labels(self, labels: list[str]) -> None:
        if not labels:
            raise SeqtuneError("the training data has no labels.")
        self.labels = list(labels)
        self.label_to_id = {label: i for i, label in enumerate(self.labels)}
        if isinstance(self.options.class_weights, dict):
            self.named_class_weights()  # an unknown label fails here, before any data is tokenized

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
            ids = np.array([x for f in features for x in f["labels"] if x != IGNORE_INDEX], dtype=np.int64)
            self.class_weights = self.resolve_class_weights(ids)
            # the loss's denominator under training_mean: the mean (weighted) labelled tokens per input
            labelled = float(np.asarray(self.class_weights)[ids].sum()) if self.class_weights else len(ids)
            self.labelled_per_feature = max(labelled / len(features), 1e-6)
        return features

    def resolve_class_weights(self, label_ids: np.ndarray) -> list[float] | None:
        """task.class_weights as one weight per label id, from the training labels that enter the loss
        (every window's labelled positions). "auto": n / (n_labels * count) over the labels present, as
        scikit-learn's "balanced" (a label never seen in the loss keeps 1); a mapping: the weights it
        names, 1 for the others."""
        spec = self.options.class_weights
        if spec is None:
            return None
        if spec == "auto":
            weights = np.ones(len(self.labels))
            present = np.unique(label_ids)
            if len(present):
                from sklearn.utils.class_weight import compute_class_weight  # (token_metrics.py: why here)

                weights[present] = compute_class_weight("balanced", classes=present, y=label_ids)
            logging.getLogger("seqtune").info(
                "class weights (auto): " + ", ".join(f"{lab} {w:.3g}" for lab, w in zip(self.labels, weights)))
            return weights.tolist()
        return self.named_class_weights()

    def named_class_weights(self) -> list[float]:
        """task.class_weights {label: weight} as one weight per label id; labels not named weigh 1."""
        spec = self.options.class_weights
        if not isinstance(spec, dict):
            raise SeqtuneError(f"task.class_weights is {spec!r}; give \"auto\" or a mapping "
                               "{label: weight} (labels not named weigh 1).")
        weights = [1.0] * len(self.labels)
        for label, value in spec.items():
            label = str(label)  # YAML reads a label such as 0 or 1 as a number
            if label not in self.label_to_id:
                raise SeqtuneError(
                    f"task.class_weights names label {label!r}, which is not in the training data; the labels "
                    f"are: {', '.join(self.labels)}."
                )
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
                raise SeqtuneError(f"task.class_weights: the weight of label {label!r} is {value!r}; "
                                   "weights are positive numbers.")
            weights[self.label_to_id[label]] = float(value)
        return weights

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

    def build_head(self, encoder_config) -> Head:
        o = self.options
        if o.head == "mlp":
            return MLPTokenHead(encoder_config, len(self.labels), o.head_hidden, o.head_activation, o.head_dropout)
        if o.head == "conv":
            return ConvTokenHead(encoder_config, len(self.labels), o.head_hidden, o.conv_kernel, o.conv_layers,
                                 o.head_activation, o.head_dropout)
        return TokenHead(encoder_config, len(self.labels), o.head_dropout)

    def loss(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Cross-entropy over labelled positions. logits (B, T, C), labels (B, T).

        batch: the mean over the batch's labelled tokens; with class weights w, the weighted mean
        sum(w_y * loss) / sum(w_y), as torch's cross_entropy computes it. training_mean: the (weighted)
        sum / (batch size x the mean (weighted) labelled tokens per training input)."""
        labels = batch["labels"]
        if not bool((labels != IGNORE_INDEX).any()):
            return logits.sum() * 0.0  # nothing to learn from (all positions masked): zero, not NaN
        weight = (torch.tensor(self.class_weights, dtype=torch.float32, device=logits.device)
                  if self.class_weights is not None else None)
        if self.options.loss_normalization == "training_mean" and self.labelled_per_feature is not None:
            total = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), weight=weight,
                                    ignore_index=IGNORE_INDEX, reduction="sum")
            return total / (labels.shape[0] * self.labelled_per_feature)
        return F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), weight=weight,
                               ignore_index=IGNORE_INDEX)

    def split_outputs(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> list[np.ndarray]:
        """(B, T, C) -> per feature (content tokens, C): [CLS], [SEP] and padding removed."""
        lengths = batch["attention_mask"].sum(1).tolist()
        logits = logits.detach().float().cpu().numpy()
        return [logits[i, 1:n - 1] for i, n in enumerate(lengths)]

    def example_outputs(self, outputs: list[np.ndarray], dataset: TokenDataset) -> list[np.ndarray]:
        """Per-feature outputs -> one (content tokens, C) array per example, windows merged."""
        return merge_example_outputs(outputs, dataset.features, dataset.example_lengths)

    def label_probabilities(self, logits: np.ndarray) -> dict[str, list[float]]:
        """(positions, C) logits -> {label: [probability at each position]} (softmax over the labels,
        6 decimals): what `predict --probabilities` writes per record, aligned with its labels."""
        probs = softmax(logits.astype(np.float64))
        return {label: [round(float(p), 6) for p in probs[:, i]] for i, label in enumerate(self.labels)}

    # ---- persistence ------------------------------------------------------------------------
    def state(self) -> dict:
        return {"labels": self.labels, "class_weights": self.class_weights}

    def load_state(self, state: dict) -> None:
        self.set_labels(state["labels"])
        self.class_weights = state.get("class_weights")

    def hf_config(self) -> dict:
        # Only the linear head is transformers' BertForTokenClassification; with the others transformers
        # loads the encoder alone (BertModel), as for the sequence tasks' non-pooler heads.
        arch = self.hf_architecture if self.options.head == "linear" else "BertModel"
        config = {
            "architectures": [arch],
            "id2label": {str(i): label for i, label in enumerate(self.labels)},
            "label2id": dict(self.label_to_id),
        }
        if self.options.head_dropout is not None:
            config["classifier_dropout"] = self.options.head_dropout
        return config
