"""`seqtune predict --probabilities` and predict(..., probabilities=True): each label's probability at
every residue (residues) or word (tagging), as {label: [p, ...]} aligned with the predicted labels."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from seqtune import load
from seqtune.cli import main
from seqtune.config import DataConfig
from seqtune.data.readers.conll import TaggedSentence
from seqtune.data.readers.sequences import LabelledSequence
from seqtune.models.presets import ArchitectureSpec, encoder_config, write_initial_model
from seqtune.models.task_model import model_for_finetuning, save_model
from seqtune.tasks.regression import RegressionOptions, RegressionTask
from seqtune.tasks.residues import ResidueOptions, ResidueTask
from seqtune.tasks.tagging import TaggingOptions, TaggingTask
from seqtune.tokenization import load_tokenizer
from seqtune.vocab_builder import build_char_tokenizer


def write_char_checkpoint(directory):
    """A random protein model from scratch (one token per amino acid), 2 x 32."""
    tokenizer = build_char_tokenizer(alphabet="ACDEFGHIKLMNPQRSTVWY", model_max_length=64)
    spec = ArchitectureSpec(layers=2, hidden=32, heads=4, intermediate=64, max_positions=64)
    return write_initial_model(directory, encoder_config(spec, tokenizer.vocab_size, tokenizer.pad_id), tokenizer)


def saved_model(task, checkpoint, directory, head: str = "linear"):
    """An untrained model with a random head (biases too), saved as seqtune saves a trained one."""
    model, _ = model_for_finetuning(str(checkpoint), task)
    torch.manual_seed(1)
    for p in model.head.parameters():
        torch.nn.init.normal_(p, std=1.0)
    save_model(directory, model, task, task.tokenizer)
    return directory


def check_probabilities(record: dict, labels: list[str], predicted: list[str], argmax: bool = True):
    probs = record["probabilities"]
    assert list(probs) == labels  # one list per label, in the model's label order
    table = np.array([probs[label] for label in labels]).T  # (positions, labels)
    assert table.shape == (len(predicted), len(labels))
    np.testing.assert_allclose(table.sum(1), 1.0, atol=1e-5)
    assert (table >= 0).all()
    if argmax:
        assert [labels[i] for i in table.argmax(1)] == predicted


@pytest.fixture(scope="module")
def residue_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("residue_probs")
    checkpoint = write_char_checkpoint(root / "char_bert")
    task = ResidueTask(ResidueOptions(type="residues", head="conv"),
                       DataConfig(max_length=16, text_column="input", label_column="dssp3"),
                       load_tokenizer(checkpoint))
    task.fit([LabelledSequence("MKVLAC", list("HECHEC"), None, "p1", "t:2")])
    return saved_model(task, checkpoint, root / "model")


def test_residue_probabilities_through_the_cli(residue_model, tmp_path):
    fasta = tmp_path / "query.fasta"
    long = "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ"  # longer than one 14-residue window
    fasta.write_text(f">a\nMKVLAAGHE\n>b\n{long}\n")
    out = tmp_path / "pred.jsonl"
    assert main(["predict", str(residue_model), str(fasta), "--output", str(out), "--probabilities"]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in records] == ["a", "b"]
    for r in records:
        assert len(r["labels"]) == len(r["sequence"])
        check_probabilities(r, ["C", "E", "H"], r["labels"])

    plain = tmp_path / "plain.jsonl"
    assert main(["predict", str(residue_model), str(fasta), "--output", str(plain)]) == 0
    without = [json.loads(line) for line in plain.read_text().splitlines()]
    assert all("probabilities" not in r for r in without)
    assert [r["labels"] for r in without] == [r["labels"] for r in records]


def test_residue_probabilities_through_the_python_api(residue_model):
    model = load(residue_model, device="cpu")
    (record,) = model.predict(["MKVLA"], probabilities=True)
    check_probabilities(record, model.task.labels, record["labels"])
    assert "probabilities" not in model.predict(["MKVLA"])[0]


def test_tagging_probabilities_per_word(tiny_checkpoint, tmp_path):
    tokenizer = load_tokenizer(tiny_checkpoint)
    task = TaggingTask(TaggingOptions(type="tagging", head="mlp", decode="argmax"),
                       DataConfig(max_length=16, format="jsonl"), tokenizer)
    task.fit([TaggedSentence(["the", "film", "was", "great"], ["O", "B-MISC", "O", "I-MISC"], "t:1")])
    directory = saved_model(task, tiny_checkpoint, tmp_path / "model")
    data = tmp_path / "query.jsonl"
    words = ["the", "actorsy", "film", "was", "not", "very", "good", "but", "the", "plot", "is", "fun", "!"]
    # the first record has an "id" (data.id_column): it is copied into its prediction; the second has none
    data.write_text(json.dumps({"id": "s1", "tokens": words}) + "\n" + json.dumps({"tokens": ["dull"]}) + "\n")
    out = tmp_path / "pred.jsonl"
    assert main(["predict", str(directory), str(data), "--output", str(out), "--probabilities"]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [len(r["tags"]) for r in records] == [len(words), 1]  # one per word, "actorsy" being 3 sub-tokens
    assert records[0]["id"] == "s1" and "id" not in records[1]
    for r in records:
        # decode: argmax, so the tag is the most probable one (under Viterbi decoding it may not be)
        check_probabilities(r, task.labels, r["tags"])


def test_probabilities_for_a_model_without_them_is_a_clear_error(tiny_checkpoint, tmp_path, capsys):
    tokenizer = load_tokenizer(tiny_checkpoint)
    task = RegressionTask(RegressionOptions(type="regression", head="cls"), DataConfig(), tokenizer)
    directory = saved_model(task, tiny_checkpoint, tmp_path / "model")
    data = tmp_path / "query.csv"
    data.write_text("text\nthe film was fun\n")
    assert main(["predict", str(directory), str(data), "--probabilities"]) == 2
    err = capsys.readouterr().err
    assert "regression model, which has no per-label probabilities" in err and "Traceback" not in err
