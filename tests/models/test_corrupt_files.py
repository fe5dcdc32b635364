"""Damaged checkpoint files (cut short, corrupt, pickles that hold more than tensors) give an error
that names the file and says what is wrong; saved weights get the mode of every other file."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import stat

import pytest
import torch
from conftest import write_sentiment_tsv

from seqtune.cli import main
from seqtune.config import TASK_OPTIONS, DataConfig
from seqtune.errors import SeqtuneError
from seqtune.inference import load_trained_model
from seqtune.models.checkpoint import (
    encoder_config_from_dir,
    read_weights,
    save_weights,
)
from seqtune.models.task_model import SEQTUNE_FILE, model_for_finetuning, save_model
from seqtune.tasks import task_class
from seqtune.tokenization import load_tokenizer


@pytest.fixture()
def checkpoint(tmp_path, tiny_checkpoint):
    """A private copy of the tiny checkpoint, to damage."""
    return shutil.copytree(tiny_checkpoint, tmp_path / "ckpt")


@pytest.fixture()
def saved_model(tmp_path, tiny_checkpoint):
    """A model directory as seqtune saves it (seqtune.json, tokenizer.json, ...)."""
    tokenizer = load_tokenizer(tiny_checkpoint)
    task = task_class("classification")(TASK_OPTIONS["classification"](type="classification"),
                                        DataConfig(), tokenizer)
    task.load_state({"labels": ["0", "1"]})
    model, _ = model_for_finetuning(str(tiny_checkpoint), task)
    return save_model(tmp_path / "saved", model, task, tokenizer)


def cut(path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


# ---- weights ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("keep", [0.0, 0.001, 0.5, 0.99])
def test_a_truncated_safetensors_file_is_named_as_incomplete(checkpoint, keep):
    cut(checkpoint / "model.safetensors", keep)
    with pytest.raises(SeqtuneError) as e:
        read_weights(checkpoint)
    message = str(e.value)
    assert str(checkpoint / "model.safetensors") in message and "incomplete" in message


def test_a_truncated_shard_is_named(checkpoint):
    state = read_weights(checkpoint)
    (checkpoint / "model.safetensors").unlink()
    save_weights(checkpoint / "shard-1.safetensors", state)
    (checkpoint / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {k: "shard-1.safetensors" for k in state}}))
    cut(checkpoint / "shard-1.safetensors")
    with pytest.raises(SeqtuneError, match=r"shard-1\.safetensors is incomplete"):
        read_weights(checkpoint)
    (checkpoint / "model.safetensors.index.json").write_text('{"weight_map": {')
    with pytest.raises(SeqtuneError, match=r"model\.safetensors\.index\.json is incomplete or not valid JSON"):
        read_weights(checkpoint)


def write_bin(checkpoint, state) -> None:
    (checkpoint / "model.safetensors").unlink()
    torch.save(state, checkpoint / "pytorch_model.bin")


def test_a_pickle_with_python_objects_is_refused_with_how_to_convert(checkpoint):
    state = read_weights(checkpoint)
    write_bin(checkpoint, {**state, "saved_on": datetime.date(2024, 1, 1)})
    with pytest.raises(SeqtuneError) as e:
        read_weights(checkpoint)
    message = str(e.value)
    assert str(checkpoint / "pytorch_model.bin") in message and "datetime.date" in message
    assert "safetensors" in message and "safe_serialization=True" in message
    assert "weights_only=False" not in message and "\n" not in message


@pytest.mark.parametrize("extra", [{"epoch": 3}, {"optimizer": {"lr": 0.1}}])
def test_a_pickle_with_more_than_tensors_is_refused(checkpoint, extra):
    """weights_only=True loads ints and dicts; a state dict still holds tensors only."""
    write_bin(checkpoint, {**read_weights(checkpoint), **extra})
    with pytest.raises(SeqtuneError) as e:
        read_weights(checkpoint)
    assert repr(next(iter(extra))) in str(e.value) and "safetensors" in str(e.value)
    assert "weights_only=False" not in str(e.value)


@pytest.mark.parametrize("damage", ["cut", "garbage", "legacy-cut"])
def test_a_damaged_pickle_is_named_as_incomplete(checkpoint, damage):
    state = read_weights(checkpoint)
    write_bin(checkpoint, state)
    path = checkpoint / "pytorch_model.bin"
    if damage == "garbage":
        path.write_bytes(b"this is not a checkpoint")
    elif damage == "legacy-cut":  # the pre-zip torch.save format, cut off
        torch.save(state, path, _use_new_zipfile_serialization=False)
        cut(path, 0.01)
    else:
        cut(path)
    with pytest.raises(SeqtuneError) as e:
        read_weights(checkpoint)
    message = str(e.value)
    assert str(path) in message and "incomplete or not a PyTorch weights file" in message
    assert "weights_only=False" not in message


# ---- JSON and tokenizer files ---------------------------------------------------------------------------

@pytest.mark.parametrize("content", ['{"hidden_size": 32, "num_', "", b"\xff\xfe{}", "[1, 2]"])
def test_a_corrupt_config_json_is_named(checkpoint, content):
    path = checkpoint / "config.json"
    path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    with pytest.raises(SeqtuneError) as e:
        encoder_config_from_dir(checkpoint)
    assert str(path) in str(e.value) and "not valid" in str(e.value)


@pytest.mark.parametrize("content", ['{"do_lower_case": tr', b"\xff{}", '"text"'])
def test_a_corrupt_tokenizer_config_is_named(checkpoint, content):
    path = checkpoint / "tokenizer_config.json"
    path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    with pytest.raises(SeqtuneError) as e:
        load_tokenizer(checkpoint)
    assert str(path) in str(e.value) and "not valid" in str(e.value)


def test_a_truncated_tokenizer_json_is_named(saved_model):
    cut(saved_model / "tokenizer.json")
    with pytest.raises(SeqtuneError) as e:
        load_tokenizer(saved_model)
    assert str(saved_model / "tokenizer.json") in str(e.value) and "incomplete" in str(e.value)


def test_a_vocab_txt_that_is_not_utf8_is_named(checkpoint):
    (checkpoint / "vocab.txt").write_bytes(b"[PAD]\n[UNK]\n[CLS]\n[SEP]\n\xff\xfe\n")
    with pytest.raises(SeqtuneError, match="vocab.txt is not a valid vocabulary: it is not UTF-8"):
        load_tokenizer(checkpoint)


@pytest.mark.parametrize("content", ['{"task": {"type": "classif', '{"task": "classification"}', "[]"])
def test_a_corrupt_seqtune_json_is_named(saved_model, content):
    (saved_model / SEQTUNE_FILE).write_text(content)
    with pytest.raises(SeqtuneError) as e:
        load_trained_model(saved_model)
    assert str(saved_model / SEQTUNE_FILE) in str(e.value) and "not valid" in str(e.value)


def test_the_cli_reports_a_truncated_model_in_one_paragraph(saved_model, tmp_path, capsys):
    cut(saved_model / "model.safetensors")
    write_sentiment_tsv(tmp_path / "dev.tsv", 8)
    assert main(["evaluate", str(saved_model), str(tmp_path / "dev.tsv")]) == 2
    err = capsys.readouterr().err
    assert "model.safetensors is incomplete" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


# ---- file modes -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_saved_weights_follow_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        save_weights(tmp_path / "model.safetensors", {"w": torch.zeros(2)})
        (tmp_path / "other.json").write_text("{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "model.safetensors").stat().st_mode) == mode
    assert stat.S_IMODE((tmp_path / "other.json").stat().st_mode) == mode  # as every other file


def test_a_saved_model_is_readable_by_others_under_umask_022(tmp_path, tiny_checkpoint):
    old = os.umask(0o022)
    try:
        tokenizer = load_tokenizer(tiny_checkpoint)
        task = task_class("classification")(TASK_OPTIONS["classification"](type="classification"),
                                            DataConfig(), tokenizer)
        task.load_state({"labels": ["0", "1"]})
        model, _ = model_for_finetuning(str(tiny_checkpoint), task)
        directory = save_model(tmp_path / "saved", model, task, tokenizer)
    finally:
        os.umask(old)
    assert stat.S_IMODE((directory / "model.safetensors").stat().st_mode) == 0o644
