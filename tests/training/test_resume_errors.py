"""--resume on bad input (one-paragraph error, exit 2, nothing changed), a corrupt newest checkpoint
(falls back to the one before, with a warning), clean stops on SIGINT, a second Ctrl-C, a NaN loss."""

from __future__ import annotations

import json
import math
import os
import signal
from pathlib import Path

import pytest
from conftest import write_sentiment_tsv

from seqtune.cli import main
from seqtune.errors import TrainingDiverged
from seqtune.training.loop import Best
from seqtune.training.stops import TEST_HOOK, StopRequests


def sets(*items) -> list[str]:
    return [x for item in items for x in ("--set", item)]


def args(data: Path, checkpoint: Path, out: Path, *extra: str) -> list[str]:
    return ["train", *sets(f"model.path={checkpoint}", f"data.train={data}", f"data.dev={data}",
                           "task.type=classification", "data.text_column=sentence", "train.epochs=3",
                           "train.batch_size=8", "train.progress=false", "train.num_threads=1", "train.lr=3e-3",
                           "train.checkpoint_every_steps=2", f"output_dir={out}", *extra)]


@pytest.fixture
def data(tmp_path) -> Path:
    return write_sentiment_tsv(tmp_path / "train.tsv", n=40)


def stopped_run(data, checkpoint, out, monkeypatch, at: int = 7, how: str = "TERM", *extra) -> Path:
    monkeypatch.setenv(TEST_HOOK, f"{at}:{how}")
    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal (not ignored)
    try:
        code = main(args(data, checkpoint, out, *extra))
    finally:
        signal.signal(signal.SIGINT, before)
    monkeypatch.delenv(TEST_HOOK)
    assert code == 128 + getattr(signal, f"SIG{how}")
    (run,) = out.iterdir()
    return run


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_corrupt_newest_checkpoint_falls_back_to_the_one_before(data, tiny_checkpoint, tmp_path, monkeypatch):
    assert main(args(data, tiny_checkpoint, tmp_path / "ref")) == 0
    (reference,) = (tmp_path / "ref").iterdir()
    run = stopped_run(data, tiny_checkpoint, tmp_path / "runs", monkeypatch)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-00000006", "step-00000007"]
    state = run / "checkpoints" / "step-00000007" / "state.pt"
    state.write_bytes(state.read_bytes()[:-10] + bytes(10))  # same size, other bytes
    assert main(["train", "--resume", str(run), "--set", "train.progress=false"]) == 0
    log = (run / "log.txt").read_text()
    assert "warning: checkpoint step-00000007: its file state.pt does not match the checksum" in log
    assert "resumed at optimiser step 6 " in log
    assert not (run / "checkpoints").exists()  # the broken one too: removed with the rest at the end
    assert (run / "model" / "model.safetensors").read_bytes() == (reference / "model" / "model.safetensors").read_bytes()
    assert json.loads((run / "results.json").read_text())["dev"] == json.loads((reference / "results.json").read_text())["dev"]


def test_ctrl_c_stops_cleanly_and_the_message_says_how_to_resume(data, tiny_checkpoint, tmp_path, monkeypatch, capsys):
    run = stopped_run(data, tiny_checkpoint, tmp_path / "runs", monkeypatch, 3, "INT")  # exit 130
    err = capsys.readouterr().err
    assert f"stopped by SIGINT after optimiser step 3: checkpoint step-00000003 written; resume with: " \
           f"seqtune train --resume {run}" in err
    assert err.count("seqtune train --resume") == 1 and "Traceback" not in err
    assert (run / "checkpoints" / "step-00000003" / "checkpoint.json").is_file()


def test_a_second_ctrl_c_stops_at_once():
    messages = []
    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
    with StopRequests(messages.append) as stops:
        os.kill(os.getpid(), signal.SIGINT)
        assert stops.requested == signal.SIGINT and "Ctrl-C again" in messages[0]
        os.kill(os.getpid(), signal.SIGTERM)  # e.g. torchrun's agent passing the stop on: changes nothing
        assert stops.requested == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the old handler is back
    signal.signal(signal.SIGINT, before)


def test_an_ignored_signal_stays_ignored():
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a command started with `&` by a script
    try:
        with StopRequests(print) as stops:
            os.kill(os.getpid(), signal.SIGINT)
            assert stops.requested is None
    finally:
        signal.signal(signal.SIGINT, before)


@pytest.mark.parametrize("case", ["no_dir", "not_a_run", "missing_file", "version", "changed_setting",
                                  "config_too", "data_changed"])
def test_bad_resume_input_is_one_clear_error_and_changes_nothing(data, tiny_checkpoint, tmp_path, monkeypatch,
                                                                 capsys, case):
    run = stopped_run(data, tiny_checkpoint, tmp_path / "runs", monkeypatch, 5, "TERM", "train.keep_checkpoints=1")
    capsys.readouterr()
    target, extra, expected = str(run), [], ""
    if case == "no_dir":
        target, expected = str(tmp_path / "nowhere"), "there is no such directory"
    elif case == "not_a_run":
        target, expected = str(tmp_path), "not a seqtune run directory"
    elif case == "missing_file":
        (run / "checkpoints" / "step-00000005" / "state.pt").unlink()
        expected = "no complete checkpoint to resume from: step-00000005: its file state.pt is missing"
    elif case == "version":
        manifest = run / "checkpoints" / "step-00000005" / "checkpoint.json"
        manifest.write_text(manifest.read_text().replace('"seqtune": "', '"seqtune": "9.9.9-was-'))
        expected = "was written by seqtune 9.9.9-was-"
    elif case == "changed_setting":
        extra, expected = ["--set", "train.lr=1e-4", "--set", "train.progress=true"], "would change train.lr,"
    elif case == "config_too":
        extra, expected = ["config.yaml"], "takes the run's own config.yaml"
    elif case == "data_changed":
        with data.open("a") as f:
            f.write("a new good film\t1\n")
        expected = "the run's data or setup changed since its checkpoint (dev: {'features': 40"
    before = snapshot(tmp_path / "runs")
    command = ["train", *extra[:1], "--resume", target, *extra[1:]] if case == "config_too" else \
        ["train", "--resume", target, *extra]
    assert main(command) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    after = snapshot(tmp_path / "runs")
    if case == "data_changed":  # found once the data is read: the log has grown, nothing else changed
        assert after.pop(f"{run.name}/log.txt").startswith(before.pop(f"{run.name}/log.txt"))
    assert after == before


def test_a_finished_run_is_not_resumed(data, tiny_checkpoint, tmp_path, capsys):
    assert main(args(data, tiny_checkpoint, tmp_path / "runs", "train.epochs=1")) == 0
    (run,) = (tmp_path / "runs").iterdir()
    capsys.readouterr()
    assert main(["train", "--resume", str(run)]) == 2
    assert "this run has finished" in capsys.readouterr().err


def test_a_nan_loss_stops_the_run_naming_the_step(data, tiny_checkpoint, tmp_path, capsys):
    assert main(args(data, tiny_checkpoint, tmp_path / "runs", "train.lr=1e30", "train.max_grad_norm=null")) == 2
    err = capsys.readouterr().err
    assert "the training loss became" in err and "at optimiser step" in err and "lower train.lr" in err
    assert issubclass(TrainingDiverged, Exception)


def test_a_nan_metric_is_never_the_best():
    best = Best("accuracy", greater_is_better=True)
    assert not best.update({"accuracy": math.nan}, 1, 0.5) and best.value is None
    assert best.update({"accuracy": 0.4}, 2, 1.0) and not best.update({"accuracy": math.nan}, 3, 1.5)
    assert best.value == 0.4 and best.evals_without_improvement == 1


def test_a_finished_run_keeps_no_checkpoints(data, tiny_checkpoint, tmp_path):
    assert main(args(data, tiny_checkpoint, tmp_path / "runs", "train.epochs=2")) == 0
    (run,) = (tmp_path / "runs").iterdir()
    assert (run / "model").is_dir() and not (run / "checkpoints").exists()
    # the run report (report.html and its PNGs) besides; nothing else: no checkpoints, no temporary files
    assert sorted(p.name for p in run.iterdir() if p.suffix != ".png" and p.name != "report.html") == \
        ["config.yaml", "log.txt", "metrics.jsonl", "model", "results.json"]
