"""What a run checks before its first step, and what it writes: log, metrics.jsonl, results.json."""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import write_sentiment_tsv

from seqtune.cli import main
from seqtune.inference import single_predicted_label
from seqtune.logs import TqdmConsoleHandler
from seqtune.tasks.token_metrics import label_report
from seqtune.training import loop
from seqtune.training.progress import Progress


def train_args(tmp_path: Path, checkpoint: Path, *extra: str) -> list[str]:
    data = tmp_path / "train.tsv"
    if not data.exists():
        write_sentiment_tsv(data, n=24)
    sets = [f"model.path={checkpoint}", f"data.train={data}", f"data.dev={data}", "task.type=classification",
            "data.text_column=sentence", "train.epochs=1", "train.batch_size=8", "train.progress=false",
            f"output_dir={tmp_path / 'runs'}", *extra]
    return ["train", *(x for s in sets for x in ("--set", s))]


def only_run(tmp_path: Path) -> Path:
    (run,) = (tmp_path / "runs").iterdir()
    return run


# ---- checks before training ------------------------------------------------------------------------

def test_a_mistyped_test_file_fails_before_training(tmp_path, tiny_checkpoint, capsys):
    code = main(train_args(tmp_path, tiny_checkpoint, f"data.test={tmp_path / 'tset.tsv'}"))
    assert code == 2 and "data.test: file" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()  # no run directory, nothing trained


def test_a_wrong_model_type_fails_before_the_data_is_read(tmp_path, tiny_checkpoint, capsys):
    model = tmp_path / "deberta"
    shutil.copytree(tiny_checkpoint, model)
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "model_type": "deberta-v2"}))
    bad_data = tmp_path / "train.tsv"
    bad_data.write_text("text\tlabel\nfine\t1\n")  # no 'sentence' column: would fail if read first
    code = main(train_args(tmp_path, model))
    err = capsys.readouterr().err
    assert code == 2 and "model_type 'deberta-v2'" in err and "sentence" not in err


def test_results_are_written_when_the_final_test_evaluation_fails(tmp_path, tiny_checkpoint, capsys):
    test = tmp_path / "test.tsv"
    test.write_text("sentence\tlabel\nthe film\tmaybe\n")  # a label the training data never had
    code = main(train_args(tmp_path, tiny_checkpoint, f"data.test={test}"))
    err = capsys.readouterr().err
    assert code == 2 and "final test evaluation failed" in err and "results.json" in err
    results = json.loads((only_run(tmp_path) / "results.json").read_text())
    assert "maybe" in results["test"]["error"] and "accuracy" in results["dev"]


# ---- what a run records ------------------------------------------------------------------------------

def test_results_and_metrics_record_the_run(tmp_path, tiny_checkpoint):
    assert main(train_args(tmp_path, tiny_checkpoint, "train.num_threads=1", "train.warmup_ratio=0.5")) == 0
    run = only_run(tmp_path)
    facts = json.loads((run / "results.json").read_text())["run"]
    assert facts["versions"]["seqtune"] and facts["versions"]["torch"].startswith("2.")
    assert facts["device"] == "cpu" and facts["precision"] == "fp32" and facts["torch_threads"] == 1
    assert facts["started"] <= facts["ended"] and facts["wall_seconds"] > 0
    (entry,) = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert entry["train_loss"] > 0 and 0 <= entry["lr"] <= 5e-5
    assert entry["examples"] == 24 and isinstance(entry["examples"], int)


def test_an_epoch_end_that_a_periodic_evaluation_just_scored_is_not_scored_twice(tmp_path, tiny_checkpoint):
    """24 rows, batches of 8: 3 steps an epoch, evaluated every 3 steps. Each evaluated step appears once in
    metrics.jsonl (the epoch's end does not evaluate the same model again), and early stopping counts
    evaluations of different models: with a learning rate too small to change anything, patience 1 stops
    after the second evaluation (step 6), not at a repeat of the first."""
    assert main(train_args(tmp_path, tiny_checkpoint, "train.epochs=4", "train.eval_every_steps=3")) == 0
    records = [json.loads(line) for line in (only_run(tmp_path) / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r.get("split") == "dev"] == [3, 6, 9, 12]
    shutil.rmtree(tmp_path / "runs")
    assert main(train_args(tmp_path, tiny_checkpoint, "train.epochs=4", "train.eval_every_steps=3",
                           "train.lr=1e-12", "train.early_stopping_patience=1")) == 0
    records = [json.loads(line) for line in (only_run(tmp_path) / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r.get("split") == "dev"] == [3, 6]


def test_every_epoch_runs_to_its_last_batch_when_epochs_differ_in_batches(tmp_path, tiny_checkpoint):
    """Random token-budget batches give the epochs different batch counts (here 20-22): the run plans its
    steps from every epoch's count, so it ends at the last batch of the last epoch (not at epochs x the first
    epoch's count, a batch or two early or late) and each epoch's end is evaluated as epoch 1, 2, 3, 4."""
    assert main(train_args(tmp_path, tiny_checkpoint, "train.epochs=4", "train.max_tokens=14",
                           "train.length_buckets=1")) == 0
    run = only_run(tmp_path)
    planned = re.search(r"(\d+)-(\d+) steps/epoch, (\d+) optimiser steps", (run / "log.txt").read_text())
    assert planned and int(planned[1]) < int(planned[2])  # the epochs differ
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3, 4]
    steps = [r["step"] for r in records]
    per_epoch = [b - a for a, b in zip([0, *steps], steps)]
    assert len(set(per_epoch)) > 1 and steps[-1] == int(planned[3])
    results = json.loads((run / "results.json").read_text())["train"]
    assert results["steps"] == steps[-1] and results["epochs"] == 4


def test_the_log_shows_the_strategy_and_every_blocks_learning_rate(tmp_path, tiny_checkpoint):
    args = train_args(tmp_path, tiny_checkpoint, "strategy.reinit_layers=1", "strategy.layer_lr_decay=0.5",
                      "strategy.head_lr=1e-3", "train.lr=1e-4")
    assert main(args) == 0
    log = (only_run(tmp_path) / "log.txt").read_text()
    assert "strategy: reinit_layers=1, layer_lr_decay=0.5, head_lr=0.001" in log
    assert "learning rates: embeddings 1.25e-05, layer.0 2.5e-05, layer.1 5e-05, pooler 0.0001, head 0.001" in log


def test_log_file_lines_are_time_stamped_and_counts_are_integers(tmp_path, tiny_checkpoint):
    assert main(train_args(tmp_path, tiny_checkpoint)) == 0
    lines = (only_run(tmp_path) / "log.txt").read_text().splitlines()
    assert all(line[:4].isdigit() and line[4] == "-" for line in lines)
    (evaluation,) = [line for line in lines if "eval @ step" in line]
    assert "examples 24" in evaluation and "examples 24.0000" not in evaluation


def test_single_predicted_label_names_a_model_stuck_at_one_label():
    labels = ["C", "E", "H"]
    gold = np.array([0, 0, 1, 2, 2])
    stuck = label_report(gold, np.zeros(5, dtype=int), labels)
    assert single_predicted_label(stuck) == "C"
    assert single_predicted_label(label_report(gold, np.array([0, 0, 1, 2, 0]), labels)) is None  # varied
    assert single_predicted_label(label_report(np.zeros(3, dtype=int), np.zeros(3, dtype=int), labels)) is None  # gold one label
    assert single_predicted_label({"pearson": 0.1}) is None  # no confusion matrix (regression, QA, multi-label)
    assert single_predicted_label(label_report(np.array([], dtype=int), np.array([], dtype=int), labels)) is None


def test_the_log_warns_when_every_dev_prediction_is_one_label(tmp_path, tiny_checkpoint, monkeypatch):
    """The loop reads the dev metrics' confusion matrix: predictions moved into one column (as a model stuck
    at the majority class gives them) get a warning line with what to try; the run still finishes."""
    real = loop.distributed_evaluate

    def one_column(*args):
        metrics = real(*args)
        matrix = metrics["confusion_matrix"]["matrix"]
        metrics["confusion_matrix"]["matrix"] = [[sum(row), *[0] * (len(row) - 1)] for row in matrix]
        return metrics

    monkeypatch.setattr(loop, "distributed_evaluate", one_column)
    assert main(train_args(tmp_path, tiny_checkpoint, "train.epochs=2")) == 0
    log = (only_run(tmp_path) / "log.txt").read_text()
    first = json.loads((only_run(tmp_path) / "model" / "config.json").read_text())["id2label"]["0"]
    assert log.count(f"warning: every dev prediction is '{first}'") == 2 and "train.warmup_ratio" in log


# ---- progress output ---------------------------------------------------------------------------------

def test_redirected_output_gets_progress_lines_not_a_bar(tmp_path, tiny_checkpoint):
    """stderr to a pipe (as to a file): no carriage-return bar records, only log lines."""
    args = train_args(tmp_path, tiny_checkpoint, "train.progress=true", "train.epochs=3", "train.batch_size=2")
    done = subprocess.run([sys.executable, "-m", "seqtune", *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr and "step/s" not in done.stderr and "s/step" not in done.stderr
    assert len(done.stderr.splitlines()) < 40  # 36 steps: a bar would write at least one record each
    assert "eval @ step 36" in done.stderr


def test_progress_lines_in_a_log_and_a_bar_in_a_terminal():
    lines: list[str] = []
    logged = Progress(10, enabled=True, log=lines.append, interval=0.0, terminal=False)
    for step in range(1, 11):
        logged.update(step, True, 0.5, 1000.0)
    assert len(lines) == 10 and lines[-1].startswith("step 10/10 (100%), loss 0.5000, 1,000 tokens/s")
    quiet: list[str] = []
    barred = Progress(10, enabled=True, log=quiet.append, interval=0.0, terminal=True)
    barred.update(1, True, 0.5, 1000.0)
    assert barred.bar is not None and barred.bar.n == 1 and quiet == []
    barred.close()
    off = Progress(10, enabled=False, log=quiet.append, interval=0.0, terminal=False)
    off.update(1, True, 0.5, 1000.0)
    assert quiet == [] and off.bar is None


def test_console_messages_go_through_tqdm_write(monkeypatch):
    written: list[str] = []
    monkeypatch.setattr("seqtune.logs.tqdm.write", lambda message, file=None: written.append(message))
    handler = TqdmConsoleHandler()
    handler.emit(logging.LogRecord("seqtune", logging.INFO, __file__, 1, "hello %s", ("bar",), None))
    assert written == ["hello bar"]


@pytest.fixture(autouse=True)
def _no_leftover_log_handlers():
    """Each run removes its log.txt handler when it ends, also when it fails."""
    yield
    assert not [h for h in logging.getLogger("seqtune").handlers if isinstance(h, logging.FileHandler)]
