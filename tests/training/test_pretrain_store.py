"""Pretraining through the token store: the same run with and without it, a second start that
re-tokenizes nothing, and the run's peak memory in results.json."""

from __future__ import annotations

import json

import pytest

from seqtune.cli import main
from seqtune.data import token_store
from seqtune.demo_data import write_demo_data


def sets(*items):
    return [x for item in items for x in ("--set", item)]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_demo_data(tmp_path_factory.mktemp("demo"), seed=2, n_unlabelled=80, n_train=8,
                           n_dev=8, n_test=8, min_length=20, max_length=90)["unlabelled"]


def pretrain(corpus, out, *extra):
    code = main(["pretrain", *sets(f"data.train={corpus}", "data.text_column=sequence", "data.max_length=40",
                                   "model.vocab.alphabet=ACDEFGHIKLMNPQRSTVWY", "model.architecture.layers=1",
                                   "model.architecture.hidden=32", "model.architecture.heads=2",
                                   "model.architecture.max_positions=64", "train.epochs=1", "train.max_tokens=600",
                                   "train.progress=false", "train.num_threads=1", f"output_dir={out}", "name=m",
                                   *extra)])
    assert code == 0
    run = max(p for p in out.iterdir() if p.name.startswith("m-") and "init" not in p.name)
    return json.loads((run / "results.json").read_text()), (run / "log.txt").read_text()


def test_store_changes_no_number_and_second_start_reads_it(corpus, tmp_path, monkeypatch, caplog):
    with_store, log1 = pretrain(corpus, tmp_path / "a")
    without, _ = pretrain(corpus, tmp_path / "b", "data.token_store=false")
    assert "token store: built" in log1
    assert with_store["train"]["train_tokens"] == without["train"]["train_tokens"] > 0
    assert with_store["train"]["steps"] == without["train"]["steps"]
    # the same batches and masks: the same training loss to the last bit
    metrics = [json.loads(line) for line in (max((tmp_path / "a").glob("m-2*")) / "metrics.jsonl")
               .read_text().splitlines()]
    metrics_b = [json.loads(line) for line in (max((tmp_path / "b").glob("m-2*")) / "metrics.jsonl")
                 .read_text().splitlines()]
    assert [m["train_loss"] for m in metrics] == [m["train_loss"] for m in metrics_b]

    def no_tokenizing(*args, **kwargs):
        raise AssertionError("the second start tokenized the corpus again")
    monkeypatch.setattr(token_store, "_write_records", no_tokenizing)
    caplog.clear()
    again, log2 = pretrain(corpus, tmp_path / "c")
    assert "reused" in log2
    assert "letters already checked" in caplog.text  # the corpus was not even read for the vocabulary
    assert again["train"]["train_tokens"] == with_store["train"]["train_tokens"]
    memory = again["memory"]
    assert memory["peak_anon_mb"] > 10 and memory["peak_rss_mb"] >= memory["peak_anon_mb"]
