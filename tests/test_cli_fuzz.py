"""Property test of `seqtune train` on random settings and random data files: whatever the input, the
command exits 0 or 2, prints no traceback, and a run that fails leaves nothing in output_dir."""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import pytest
from conftest import write_sentiment_tsv
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqtune import config as config_module
from seqtune.cli import main

# Settings the test fixes: where the model and the files are, and what keeps an example short.
FIXED = {"model.path", "model.revision", "output_dir", "data.train", "data.max_rows", "train.progress",
         "train.epochs", "train.num_threads", "train.eval_every_steps"}


def all_keys() -> list[str]:
    keys = ["name"]
    for section in ("model", "data", "train", "strategy"):
        cls = {f.name: f for f in dataclasses.fields(config_module.RunConfig)}[section].default_factory
        keys += [f"{section}.{f.name}" for f in dataclasses.fields(cls)]
    keys += sorted({f"task.{f.name}" for cls in config_module.TASK_OPTIONS.values()
                    for f in dataclasses.fields(cls) if f.name != "type"})
    return [k for k in keys if k not in FIXED]


KEYS = all_keys()
ODD_KEYS = ["train.lrate", "task.max_length", "foo.bar", "train", "data.train.x", "strategy.top_layers.x"]

yaml_words = st.sampled_from([
    ".nan", ".inf", "-.inf", "null", "true", "false", "[]", "{}", "[1, 2]", "[a, b]", "{a: 1}", "{O: -1}", "''",
    "auto", "cpu", "gpu", "cuda:0", "../escaped", "a/b", ".hidden", "balanced", "pooler", "linear", "fp16",
    "bf16", "0", "1", "-1", "2", "3", "0.5", "1.5", "-0.5", "1e-3", "1e9", "sentence", "label", "[", "a: b: c",
])
values = st.one_of(
    yaml_words,
    st.integers(-3, 300).map(str),
    st.floats(-2, 2, allow_nan=False).map(repr),
    st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12),
)
overrides = st.lists(st.tuples(st.sampled_from(KEYS + ODD_KEYS), values), max_size=3)
data_files = st.one_of(
    st.none(), st.none(),  # the valid generated file, half of the time
    st.binary(max_size=300),  # random bytes
    st.lists(st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=30), max_size=8)
    .map(lambda lines: "\n".join(lines).encode()),  # random text lines
)


@pytest.fixture(scope="module")
def good_data(tmp_path_factory) -> Path:
    return write_sentiment_tsv(tmp_path_factory.mktemp("fuzz") / "train.tsv", 16)


@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(task=st.sampled_from(["classification", "classification", "regression", "multilabel", "tagging",
                             "residues", "qa"]),
       random_sets=overrides, data=data_files,
       suffix=st.sampled_from([".tsv", ".csv", ".jsonl", ".json", ".conll", ".fasta", ".txt", ".tsv.gz"]),
       epochs=st.sampled_from(["1", "1", "1", "0.5", "0", "-2", "x", "null"]))
def test_train_exits_0_or_2_without_a_traceback_and_leaves_nothing_after_an_error(
        tiny_checkpoint, good_data, capsys, task, random_sets, data, suffix, epochs):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if data is None:
            train_file = good_data
        else:
            train_file = tmp / f"train{suffix}"
            train_file.write_bytes(data)
        out = tmp / "runs"
        args = ["train", "--set", f"task.type={task}", "--set", f"model.path={tiny_checkpoint}",
                "--set", f"data.train={train_file}", "--set", "data.text_column=sentence",
                "--set", f"output_dir={out}", "--set", "train.progress=false", "--set", "data.max_rows=16",
                "--set", f"train.epochs={epochs}", "--set", "train.batch_size=8"]
        for key, value in random_sets:
            args += ["--set", f"{key}={value}"]
        capsys.readouterr()
        code = main(args)  # an exception escaping main would be a traceback: the test fails on it
        err = capsys.readouterr().err
        assert code in (0, 2), err
        assert "Traceback" not in err, err
        if code == 2:
            assert "error:" in err
            left = list(out.iterdir()) if out.exists() else []
            assert left == [], f"{left} left after the error {err}"
        else:
            [run] = list(out.iterdir())
            assert (run / "results.json").is_file() and (run / "model" / "seqtune.json").is_file()
