"""The `Task` contract: everything the task-agnostic training loop needs to know about a problem.

A task reads and validates its data files, learns what it needs from the training set (a label
map), turns examples into features once, collates features into padded batches, builds the head
(which returns logits only), computes the loss, turns model outputs into metrics and predictions,
and says what to write into the saved model's `config.json` and `seqtune.json`.

Flow (see `training/setup.py`):
    task = TaskClass(options, data_config, tokenizer)
    train = task.read(path)           -> list of examples (any type the task chooses)
    task.fit(train)                   -> label map etc. (skipped when restored from a saved model)
    ds = task.encode(train, "train")  -> EncodedDataset (features: dicts with "input_ids", ...)
    batch = task.collate(features)    -> dict of tensors, padded to the longest in the batch
    logits = head(hidden, batch["attention_mask"], pooler)
    loss = task.loss(logits, batch)
    outputs = task.split_outputs(logits, batch)       -> one numpy array per feature
    task.metrics(outputs, ds) / task.predictions(outputs, ds)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from seqtune.config import DataConfig, TaskOptions
from seqtune.errors import SeqtuneError
from seqtune.tokenization import Tokenizer


@dataclass
class EncodedDataset:
    """Examples and the features made from them (one example may give several features: windows).

    Each feature is a dict with at least "input_ids" (list[int]); sequence-pair tasks add
    "token_type_ids"; tasks add their targets ("labels", ...) and bookkeeping ("example_index").
    """

    examples: list
    features: list[dict]
    source: str = ""  # file name, for messages
    info: dict = field(default_factory=dict)  # e.g. {"truncated": 12}

    @property
    def lengths(self) -> list[int]:
        """Tokens per feature: measured, or the features' own `lengths` where they know them (a token
        store's windows, tasks/residue_store.py; flat features, tasks/text_features.py: an array, with
        no feature made to measure it)."""
        known = getattr(self.features, "lengths", None)
        return known if known is not None else [len(f["input_ids"]) for f in self.features]

    def num_tokens(self) -> int:
        return sum(self.lengths)


def pad(sequences: list[list], value: Any, dtype: torch.dtype = torch.long) -> torch.Tensor:
    """Right-pad lists to the longest one: (B, T_max)."""
    longest = max(len(s) for s in sequences)
    out = torch.full((len(sequences), longest), value, dtype=dtype)
    for i, s in enumerate(sequences):
        out[i, : len(s)] = torch.as_tensor(s, dtype=dtype)
    return out


def collate_inputs(features: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """input_ids, attention_mask and (when present) token_type_ids, padded to the batch's longest."""
    batch = {
        "input_ids": pad([f["input_ids"] for f in features], pad_id),
        "attention_mask": pad([[1] * len(f["input_ids"]) for f in features], 0),
    }
    if "token_type_ids" in features[0]:
        batch["token_type_ids"] = pad([f["token_type_ids"] for f in features], 0)
    return batch


class Task(ABC):
    """Base class of every task. Subclasses set the class attributes and implement the methods."""

    name: ClassVar[str]  # registry key, e.g. "classification"
    Options: ClassVar[type] = TaskOptions
    hf_architecture: ClassVar[str]  # e.g. "BertForSequenceClassification"
    primary_metric: ClassVar[str]  # picks the best checkpoint unless train.metric says otherwise
    # Metrics of this task that are better lower (losses, errors); every other one is better higher.
    lower_is_better: ClassVar[frozenset[str]] = frozenset({"loss"})
    needs_pooler: ClassVar[bool] = False  # build the encoder with BERT's pooler
    # The model_type values (encoder.FAMILIES) whose checkpoints this task fine-tunes and saves.
    model_types: ClassVar[tuple[str, ...]] = ("bert", "roberta", "xlm-roberta", "distilbert", "electra", "esm")
    default_max_length: ClassVar[int] = 128  # data.max_length when the config leaves it unset
    # Per-label probabilities in predictions: "always" (classification), "on_request" (per-position tasks,
    # whose `predictions` take probabilities=True) or "none".
    probabilities: ClassVar[str] = "none"

    def __init__(self, options: TaskOptions, data: DataConfig, tokenizer: Tokenizer):
        self.options = options
        self.data = data if data.max_length is not None else replace(data, max_length=self.default_max_length)
        self.tokenizer = tokenizer

    @classmethod
    def higher_is_better(cls, metric: str) -> bool:
        return metric not in cls.lower_is_better

    @property
    def greater_is_better(self) -> bool:
        """Direction of the primary metric."""
        return self.higher_is_better(self.primary_metric)

    def check_model_type(self, model_type: str) -> None:
        """A clear error when this task does not support the checkpoint's family (before any data is read)."""
        if model_type not in self.model_types:
            raise SeqtuneError(
                f"the {self.name} task supports checkpoints of model_type {', '.join(map(repr, self.model_types))} "
                f"only, not {model_type!r}: its head, inputs and saved layout are written for those "
                f"families so far. Use a checkpoint of a supported type for {self.name}."
            )

    # ---- data -------------------------------------------------------------------------------
    @abstractmethod
    def read(self, path: str, split: str) -> list:
        """Read and validate a file; errors name the file, line/record and the problem."""

    def examples_from_inputs(self, inputs: list) -> list:
        """Examples from in-memory inputs in the task's natural shape (texts, pairs, sequences, ...),
        for `seqtune.load(...).predict(inputs)`. Tasks that take in-memory inputs override this."""
        raise SeqtuneError(f"the {self.name} task does not predict from in-memory inputs; give a file.")

    def fit(self, train_examples: list) -> None:
        """Learn what the task needs from the training examples (e.g. the label map)."""

    @abstractmethod
    def encode(self, examples: list, split: str) -> EncodedDataset:
        """Tokenize once; features are reused by every epoch."""

    def collate(self, features: list[dict]) -> dict[str, torch.Tensor]:
        return collate_inputs(features, self.tokenizer.pad_id)

    # ---- model ------------------------------------------------------------------------------
    @abstractmethod
    def build_head(self, encoder_config) -> nn.Module:
        """A module: forward(hidden (B,T,H), attention_mask (B,T), pooler|None) -> logits.

        Its state-dict keys are the Hugging Face names of that head (e.g. "classifier.weight").
        """

    @abstractmethod
    def loss(self, logits: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean loss of a batch."""

    # ---- outputs ----------------------------------------------------------------------------
    def split_outputs(self, logits: Any, batch: dict[str, torch.Tensor]) -> list[np.ndarray]:
        """Batch logits -> one float32 array per feature (padding removed). Default: one row each."""
        return list(logits.detach().float().cpu().numpy())

    @abstractmethod
    def metrics(self, outputs: list[np.ndarray], dataset: EncodedDataset) -> dict:
        """Metrics from per-feature outputs (in feature order). Scalars, plus optional details."""

    def metric_names(self) -> list[str] | None:
        """The scalar metrics `metrics` returns, known once the task is fitted: `train.metric` is checked
        against them before training. None: not declared (checked at the first evaluation)."""
        return None

    @abstractmethod
    def predictions(self, outputs: list[np.ndarray], dataset: EncodedDataset) -> list[dict]:
        """One JSON-serialisable record per example, in input order."""

    # ---- persistence ------------------------------------------------------------------------
    def state(self) -> dict:
        """What `from_state` needs to rebuild the fitted task (label map, ...); saved in seqtune.json."""
        return {}

    def load_state(self, state: dict) -> None:
        """Restore what `fit` learnt, from `state()`."""

    def random_generators(self) -> dict[str, torch.Generator]:
        """The generators the task draws from while training (e.g. MLM masking), by name: a training
        checkpoint saves and restores their states, so a resumed run draws what it would have drawn."""
        return {}

    def hf_config(self) -> dict:
        """Fields added to the saved config.json (architectures, id2label, problem_type, ...)."""
        return {"architectures": [self.hf_architecture]}

    def prediction_files(self, records: list[dict]) -> dict[str, Any]:
        """Extra files `seqtune predict --output OUT.jsonl` writes beside it: {suffix: JSON content}
        (QA: the SQuAD-style {id: answer} file). Default: none."""
        return {}

    def describe(self) -> str:
        """One line for the run log, e.g. "classification, 2 labels: negative, positive"."""
        return self.name
