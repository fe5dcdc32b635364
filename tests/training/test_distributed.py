"""Data-parallel training under torchrun (gloo, 2 CPU processes) takes the steps of one process with the
same global batch: the loss after each step within 1e-5, the same final weights and test metrics."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import write_sentiment_tsv
from safetensors.torch import load_file

from seqtune.cli import main
from seqtune.training.checkpoint import identity_differences
from seqtune.training.distributed import World, shard


def test_each_process_takes_every_nth_batch_of_an_epoch_cut_to_a_multiple_of_n():
    batches = [[i] for i in range(7)]
    assert shard(batches, World(0, 2)) == [[0], [2], [4]] and shard(batches, World(1, 2)) == [[1], [3], [5]]
    assert shard(batches, World(0, 1)) == batches


def test_within_a_step_the_biggest_batch_goes_to_the_least_loaded_process():
    lengths = [10, 1, 10, 1, 1, 1, 1, 1]
    batches = [[0], [1], [2], [3], [4], [5], [6], [7]]  # rounds: (10, 1) (10, 1) (1, 1) (1, 1)
    two_steps = [shard(batches, World(r, 2), lengths, accum=2) for r in (0, 1)]
    assert two_steps == [[[0], [3], [4], [6]], [[1], [2], [5], [7]]]  # 11 and 11 tokens in step 1
    assert sorted(b for part in two_steps for b in part) == batches  # every batch once
    plain = [shard(batches, World(r, 2), lengths, accum=1) for r in (0, 1)]
    assert plain[0] == [[0], [2], [4], [6]]  # one batch per step: nothing to balance


def test_a_run_resumes_only_on_its_number_of_processes():
    assert identity_differences({"world_size": 2}, {"world_size": 1}) == ["world_size: 2 when checkpointed, 1 now"]


@pytest.fixture
def dropout_free(tmp_path, tiny_checkpoint):
    """Without dropout the two runs draw no random numbers in training, so they can agree step by step."""
    import shutil

    model = tmp_path / "tiny0"
    shutil.copytree(tiny_checkpoint, model)
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "hidden_dropout_prob": 0.0,
                                                   "attention_probs_dropout_prob": 0.0}))
    return model


def test_two_processes_match_one_with_the_same_global_batch(tmp_path, dropout_free):
    data = write_sentiment_tsv(tmp_path / "train.tsv", n=40)  # 10 batches of 4: 5 per process
    test = write_sentiment_tsv(tmp_path / "test.tsv", n=16, seed=5)
    common = [f"model.path={dropout_free}", f"data.train={data}", f"data.test={test}", "task.type=classification",
              "data.text_column=sentence", "train.epochs=2", "train.batch_size=4", "train.lr=1e-2",
              "train.eval_every_steps=1", "train.progress=false", "train.num_threads=1"]

    def sets(*items):
        return [x for item in items for x in ("--set", item)]

    # 2 processes x 2 accumulated batches (balanced by tokens, steps spanning epochs) = 1 process x 4
    assert main(["train", *sets(*common, "train.grad_accum_steps=4", f"output_dir={tmp_path / 'one'}")]) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-m", "seqtune", "train", "--nproc", "2",
                           *sets(*common, "train.grad_accum_steps=2", f"output_dir={tmp_path / 'two'}")],
                          env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(done.stdout.strip().splitlines()) == 1  # one run directory, printed once
    (one,), (two,) = (tmp_path / "one").iterdir(), (tmp_path / "two").iterdir()
    losses = [[json.loads(line)["train_loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]
              for run in (one, two)]
    assert len(losses[0]) == len(losses[1]) >= 5 and losses[0][0] != losses[0][1]  # one record per step (+ epoch ends)
    assert losses[1] == pytest.approx(losses[0], abs=1e-5)
    a, b = (load_file(run / "model" / "model.safetensors") for run in (one, two))
    assert a.keys() == b.keys() and max((a[k] - b[k]).abs().max().item() for k in a) < 1e-5
    results = [json.loads((run / "results.json").read_text()) for run in (one, two)]
    assert results[1]["train"]["processes"] == 2 and results[1]["train"]["steps"] == results[0]["train"]["steps"]
    assert results[1]["train"]["train_tokens"] == results[0]["train"]["train_tokens"]
    assert results[1]["test"]["accuracy"] == results[0]["test"]["accuracy"]
    assert results[1]["test"]["f1_macro"] == pytest.approx(results[0]["test"]["f1_macro"], abs=1e-9)


def test_a_two_process_run_stopped_by_sigterm_resumes_exactly(tmp_path, tiny_checkpoint):
    """With dropout: every process's RNG states are in the checkpoint, so the resumed run draws the
    masks the uninterrupted one drew."""
    data = write_sentiment_tsv(tmp_path / "train.tsv", n=32)
    common = [f"model.path={tiny_checkpoint}", f"data.train={data}", f"data.dev={data}", "task.type=classification",
              "data.text_column=sentence", "train.epochs=2", "train.batch_size=4", "train.lr=1e-2",
              "train.progress=false", "train.num_threads=1"]

    def seqtune(*args, **env):
        return subprocess.run([sys.executable, "-m", "seqtune", *args],
                              env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path),
                                   **env}, capture_output=True, text=True, timeout=600, check=False)

    def sets(*items):
        return [x for item in items for x in ("--set", item)]

    done = seqtune("train", "--nproc", "2", *sets(*common, f"output_dir={tmp_path / 'whole'}"))
    assert done.returncode == 0, done.stderr[-3000:]
    stopped = seqtune("train", "--nproc", "2", *sets(*common, f"output_dir={tmp_path / 'stopped'}"),
                      SEQTUNE_TEST_SIGNAL_AT_STEP="3:TERM")
    assert stopped.returncode != 0 and "stopped by SIGTERM after optimiser step 3" in stopped.stderr
    (run,) = (tmp_path / "stopped").iterdir()
    resumed = seqtune("train", "--resume", str(run), "--nproc", "2")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    (whole,) = (tmp_path / "whole").iterdir()
    assert (run / "model" / "model.safetensors").read_bytes() == (whole / "model" / "model.safetensors").read_bytes()
    assert (run / "metrics.jsonl").read_text() == (whole / "metrics.jsonl").read_text()
