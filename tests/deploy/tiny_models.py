"""Saved models of every task type, built in a second (random weights, heads included), for the server
and ONNX tests: their predictions are compared with `seqtune.load(...).predict`, not judged."""

from __future__ import annotations

from pathlib import Path

import torch

from seqtune.config import DataConfig, config_from_dict
from seqtune.data.readers.conll import TaggedSentence
from seqtune.data.readers.sequences import LabelledSequence
from seqtune.models.presets import ArchitectureSpec, encoder_config, write_initial_model
from seqtune.models.task_model import model_for_finetuning, save_model
from seqtune.tasks.classification import (
    ClassificationOptions,
    ClassificationTask,
    MultiLabelTask,
)
from seqtune.tasks.qa import QuestionAnsweringTask
from seqtune.tasks.regression import RegressionOptions, RegressionTask
from seqtune.tasks.residues import ResidueOptions, ResidueTask
from seqtune.tasks.tagging import TaggingOptions, TaggingTask
from seqtune.tokenization import load_tokenizer
from seqtune.vocab_builder import build_char_tokenizer


def write_char_checkpoint(directory: Path) -> Path:
    """A random protein model (one token per amino acid), 2 x 32."""
    tokenizer = build_char_tokenizer(alphabet="ACDEFGHIKLMNPQRSTVWY", model_max_length=64)
    spec = ArchitectureSpec(layers=2, hidden=32, heads=4, intermediate=64, max_positions=64)
    return write_initial_model(directory, encoder_config(spec, tokenizer.vocab_size, tokenizer.pad_id), tokenizer)


def save_random(task, checkpoint: Path, directory: Path) -> Path:
    """An untrained model with a random head (biases too), saved as seqtune saves a trained one."""
    model, _ = model_for_finetuning(str(checkpoint), task)
    torch.manual_seed(1)
    for p in model.head.parameters():
        torch.nn.init.normal_(p, std=1.0)
    save_model(directory, model, task, task.tokenizer)
    return directory


def classification_model(checkpoint: Path, directory: Path, head: str = "cls") -> Path:
    task = ClassificationTask(ClassificationOptions(type="classification", head=head), DataConfig(max_length=32),
                              load_tokenizer(checkpoint))
    task.load_state({"labels": ["negative", "positive", "neutral"]})
    return save_random(task, checkpoint, directory)


def pair_classification_model(checkpoint: Path, directory: Path) -> Path:
    task = ClassificationTask(ClassificationOptions(type="classification"),
                              DataConfig(max_length=32, text_pair_column="sentence2"), load_tokenizer(checkpoint))
    task.load_state({"labels": ["entailment", "contradiction"]})
    return save_random(task, checkpoint, directory)


def multilabel_model(checkpoint: Path, directory: Path) -> Path:
    task = MultiLabelTask(config_from_dict({"task": {"type": "multilabel"}}).task, DataConfig(max_length=32),
                          load_tokenizer(checkpoint))
    task.load_state({"labels": ["a", "b", "c"]})
    return save_random(task, checkpoint, directory)


def regression_model(checkpoint: Path, directory: Path) -> Path:
    task = RegressionTask(RegressionOptions(type="regression"), DataConfig(max_length=32), load_tokenizer(checkpoint))
    return save_random(task, checkpoint, directory)


def tagging_model(checkpoint: Path, directory: Path, head: str = "linear") -> Path:
    task = TaggingTask(TaggingOptions(type="tagging", head=head), DataConfig(max_length=16, format="jsonl"),
                       load_tokenizer(checkpoint))
    task.fit([TaggedSentence(["the", "film", "was", "great"], ["O", "B-MISC", "O", "I-MISC"], "t:1")])
    return save_random(task, checkpoint, directory)


def residue_model(char_checkpoint: Path, directory: Path, head: str = "conv") -> Path:
    task = ResidueTask(ResidueOptions(type="residues", head=head),
                       DataConfig(max_length=16, text_column="input", label_column="dssp3"),
                       load_tokenizer(char_checkpoint))
    task.fit([LabelledSequence("MKVLAC", list("HECHEC"), None, "p1", "t:2")])
    return save_random(task, char_checkpoint, directory)


def qa_model(checkpoint: Path, directory: Path) -> Path:
    task = QuestionAnsweringTask(config_from_dict({"task": {"type": "qa", "doc_stride": 8}}).task,
                                 DataConfig(max_length=32), load_tokenizer(checkpoint))
    return save_random(task, checkpoint, directory)
