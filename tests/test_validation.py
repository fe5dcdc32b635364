"""Ranges declared next to the config fields, run names, output_dir, a full disk, failed runs leave
nothing behind."""

from __future__ import annotations

import dataclasses
import errno
import typing

import pytest
from conftest import write_sentiment_tsv

from seqtune import config as config_module
from seqtune.cli import main
from seqtune.config import TASK_OPTIONS, Range, RunConfig, config_from_dict, load_config
from seqtune.errors import SeqtuneError


def check(overrides: list[str], task: str = "classification"):
    return load_config(None, [f"task.type={task}", *overrides])


# ---- ranges ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("override, allowed", [
    ("train.epochs=0", "> 0"),
    ("train.epochs=-2", "> 0"),
    ("train.epochs=.nan", "> 0"),
    ("data.max_length=0", ">= 3"),
    ("data.max_length=1", ">= 3"),
    ("train.lr=-1", "> 0"),
    ("train.lr=.inf", "> 0"),
    ("train.batch_size=0", ">= 1"),
    ("train.grad_accum_steps=0", ">= 1"),
    ("train.eval_every_steps=-5", ">= 1"),
    ("train.warmup_ratio=1.5", "[0, 1]"),
    ("train.weight_decay=-0.01", ">= 0"),
    ("train.max_tokens=0", ">= 1"),
    ("train.adam_beta2=1", "[0, 1)"),
    ("train.seed=-1", "in [0, 4294967295]"),
    ("train.early_stopping_patience=0", ">= 1"),
    ("train.num_threads=0", ">= 1"),
    ("train.max_grad_norm=0", "> 0"),
    ("strategy.layer_lr_decay=0", "(0, 1]"),
    ("strategy.top_layers=-1", ">= 0"),
    ("task.head_dropout=1", "[0, 1)"),
    ("task.mlp_hidden=0", ">= 1"),
    ("data.max_rows=0", ">= 1"),
    ("data.text_column=-1", ">= 0"),
])
def test_out_of_range_values_name_the_key_the_value_and_the_range(override, allowed):
    key, value = override.split("=")
    with pytest.raises(SeqtuneError) as e:
        check([override])
    message = str(e.value)
    assert key in message and allowed in message, message
    assert value.lstrip(".") in message.lower() or value in message, message


@pytest.mark.parametrize("task, override, allowed", [
    ("multilabel", "task.threshold=1.5", "[0, 1]"),
    ("qa", "task.n_best=0", ">= 1"),
    ("qa", "task.doc_stride=-1", ">= 0"),
    ("qa", "task.max_windows=0", ">= 1"),
    ("mlm", "task.mask_probability=0", "(0, 1)"),
    ("mlm", "task.random_fraction=-0.1", "[0, 1]"),
    ("tagging", "task.window_stride=0", ">= 1"),
    ("residues", "task.conv_kernel=0", ">= 1"),
    ("classification", "task.class_weights=[1, -2]", "> 0"),
    ("tagging", "task.class_weights={B-PER: -1}", "> 0"),
])
def test_task_options_have_ranges_too(task, override, allowed):
    with pytest.raises(SeqtuneError, match=override.split("=")[0].replace(".", r"\.")) as e:
        check([override], task)
    assert allowed in str(e.value)


def test_values_on_the_edges_of_their_ranges_are_accepted():
    cfg = check(["train.epochs=0.5", "data.max_length=3", "train.warmup_ratio=1", "train.lr=3e-5",
                 "train.device=cuda:1", "task.head_dropout=0", "train.seed=0", "name=sst2_run-1.b",
                 "strategy.layer_lr_decay=1", "train.max_grad_norm=null"])
    assert cfg.train.epochs == 0.5 and cfg.data.max_length == 3 and cfg.train.device == "cuda:1"
    for device in ("auto", "cpu", "cuda", "cuda:0"):
        assert check([f"train.device={device}"]).train.device == device


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "CPU", "cuda0", "cuda:-1"])
def test_an_unknown_device_lists_the_valid_names(device):
    with pytest.raises(SeqtuneError, match="train.device") as e:
        check([f"train.device={device}"])
    assert "auto, cpu, cuda or cuda:N" in str(e.value)


def test_an_unknown_text_encoding_is_a_config_error():
    with pytest.raises(SeqtuneError, match="data.encoding: 'utf-9'"):
        check(["data.encoding=utf-9"])
    assert check(["data.encoding=latin-1"]).data.encoding == "latin-1"


def test_a_wrong_type_inside_a_range_is_still_a_type_error():
    with pytest.raises(SeqtuneError, match="train.batch_size: expected int"):
        check(["train.batch_size=2.5"])


def numeric(tp) -> bool:
    return tp in (int, float) or any(numeric(a) for a in typing.get_args(tp))


def annotated_ranges(tp) -> list:
    found = [m for m in getattr(tp, "__metadata__", ()) if isinstance(m, Range)]
    return found + [r for a in typing.get_args(tp) for r in annotated_ranges(a)]


ANY_INT = {"DataConfig.token_column", "DataConfig.tag_column"}  # negative counts from the end


def test_every_numeric_setting_declares_its_range():
    sections = [RunConfig, config_module.ModelConfig, config_module.DataConfig, config_module.TrainConfig,
                config_module.StrategyConfig, *TASK_OPTIONS.values()]
    missing = []
    for cls in sections:
        for name, tp in typing.get_type_hints(cls, include_extras=True).items():
            key = f"{cls.__name__}.{name}"
            if numeric(tp) and not annotated_ranges(tp) and key not in ANY_INT:
                missing.append(key)
    assert missing == []


def test_defaults_are_within_their_ranges():
    for task in TASK_OPTIONS:
        cfg = config_from_dict({"task": {"type": task}})
        again = config_from_dict({**dataclasses.asdict(cfg), "task": dataclasses.asdict(cfg.task)})
        assert again == cfg


# ---- run names ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["../escaped", "a/b", ".hidden", "..", "/abs", "two words", "x\\y", "a" * 201])
def test_a_run_name_must_be_one_safe_path_component(name):
    with pytest.raises(SeqtuneError, match="name") as e:
        check([f"name={name}"])
    assert "[A-Za-z0-9._-]" in str(e.value)


def test_a_name_taken_from_an_odd_config_file_name_is_made_safe(tmp_path):
    config = tmp_path / ".my config (v2).yaml"
    config.write_text("task: {type: classification}\n")
    assert load_config(config).name == "my-config-v2"


# ---- through the CLI: nothing is created for a bad value ------------------------------------------

@pytest.fixture()
def files(tmp_path, tiny_checkpoint):
    write_sentiment_tsv(tmp_path / "train.tsv", 24)
    return tmp_path, tiny_checkpoint


def train(tmp_path, ckpt, *extra):
    return main(["train", "--set", "task.type=classification", "--set", f"model.path={ckpt}",
                 "--set", f"data.train={tmp_path / 'train.tsv'}", "--set", "data.text_column=sentence",
                 "--set", "train.epochs=1", "--set", "train.batch_size=8", "--set", "train.progress=false",
                 "--set", f"output_dir={tmp_path / 'runs'}", *extra])


@pytest.mark.parametrize("override, message", [
    ("train.epochs=0", "train.epochs: 0 is out of range"),
    ("data.max_length=1", "data.max_length: 1 is out of range"),
    ("train.device=gpu", "train.device: 'gpu'"),
    ("name=../escaped", "name: '../escaped'"),
])
def test_cli_refuses_bad_values_before_creating_anything(files, override, message, capsys):
    tmp_path, ckpt = files
    assert train(tmp_path, ckpt, "--set", override) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists() and not (tmp_path / "escaped").exists()


def test_output_dir_that_is_a_file(files, capsys):
    tmp_path, ckpt = files
    (tmp_path / "runs").write_text("not a folder")
    assert train(tmp_path, ckpt) == 2
    err = capsys.readouterr().err
    assert "output_dir" in err and "is a file" in err and str(tmp_path / "runs") in err


def test_output_dir_that_is_not_writable(files, monkeypatch, capsys):
    import os

    tmp_path, ckpt = files
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if str(p) == str(tmp_path) else
                        real_access(p, mode, **kw))
    assert train(tmp_path, ckpt) == 2
    err = capsys.readouterr().err
    assert "output_dir" in err and "not writable" in err and str(tmp_path) in err


def test_a_run_that_fails_after_creating_its_directory_removes_it(files, capsys):
    tmp_path, ckpt = files
    assert train(tmp_path, ckpt, "--set", "data.text_column=review") == 2  # found when the file is read
    assert "no column 'review'" in capsys.readouterr().err
    assert list((tmp_path / "runs").iterdir()) == []


# ---- a full disk -----------------------------------------------------------------------------------

def disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("target", ["model", "results", "metrics"])
def test_a_full_disk_while_saving_names_the_path(files, monkeypatch, capsys, target):
    from seqtune.training import run_dir, setup

    tmp_path, ckpt = files
    if target == "model":
        monkeypatch.setattr(setup, "save_model", disk_full)
    else:
        real_write = run_dir.write_file

        def write_file(path, text):
            (disk_full if path.name == f"{target}.json{'l' * (target == 'metrics')}" else real_write)(path, text)
        monkeypatch.setattr(run_dir, "write_file", write_file)
    assert train(tmp_path, ckpt) == 2
    err = capsys.readouterr().err
    assert "the disk is full" in err and "Traceback" not in err
    assert {"model": "model", "results": "results.json", "metrics": "metrics.jsonl"}[target] in err
    assert str(tmp_path / "runs") in err


def test_a_run_directory_that_cannot_be_made_is_a_clear_error(tmp_path):
    from seqtune.training.run_dir import new_directory

    (tmp_path / "file").write_text("")
    with pytest.raises(SeqtuneError, match="could not write .*file/run"):
        new_directory(tmp_path / "file" / "run")
