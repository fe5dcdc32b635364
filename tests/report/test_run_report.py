"""Run reports: a finished run directory holds report.html and the right PNGs; `seqtune report`
rebuilds them and overlays several runs; tagging's confusion matrix is per entity type."""

from __future__ import annotations

import base64
import json
import random
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import write_sentiment_tsv

from seqtune.cli import main
from seqtune.report import Run, confusion, per_label_scores

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def train(tmp_path, checkpoint, *extra) -> Path:
    runs = tmp_path / "runs"
    before = set(runs.iterdir()) if runs.is_dir() else set()
    args = ["train", "--set", f"model.path={checkpoint}", "--set", f"data.train={tmp_path / 'train.tsv'}",
            "--set", f"data.dev={tmp_path / 'dev.tsv'}", "--set", "data.text_column=sentence",
            "--set", "train.epochs=2", "--set", "train.lr=3e-3", "--set", "train.batch_size=8",
            "--set", "train.progress=false", "--set", f"output_dir={runs}"]
    for setting in extra:
        args += ["--set", setting]
    assert main(args) == 0
    (run,) = set(runs.iterdir()) - before
    return run


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 2000, path  # a PNG with something drawn in it
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


@pytest.fixture()
def data(tmp_path):
    write_sentiment_tsv(tmp_path / "train.tsv", 96, seed=0)
    write_sentiment_tsv(tmp_path / "dev.tsv", 32, seed=1)
    return tmp_path


def test_a_finished_classification_run_has_its_report(data, tiny_checkpoint):
    run = train(data, tiny_checkpoint, "task.type=classification", "train.eval_every_steps=4")
    pngs = sorted(p.name for p in run.glob("*.png"))
    assert pngs == ["confusion_matrix.png", "dev_metric.png", "learning_rate.png", "loss.png", "per_label.png"]
    for name in pngs:
        width, height = png_size(run / name)
        assert width >= 300 and height >= 300
    page = (run / "report.html").read_text()
    inlined = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(inlined) == 5 and all(base64.b64decode(i)[:8] == PNG_MAGIC for i in inlined)
    assert "<img" in page and 'src="http' not in page and "accuracy" in page  # self-contained, with results
    # metrics.jsonl: the loss and lr every few steps, kept with each evaluation
    entries = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    points = [p for e in entries for p in e["train_curve"]]
    steps = [p[0] for p in points]
    assert len(points) == entries[-1]["step"] and steps == sorted(steps)  # 24 steps: a point at every step
    assert all(loss > 0 and lr > 0 for _, loss, lr in points[:-1])


def test_regression_runs_get_a_scatter_and_report_rebuilds_and_overlays(data, tiny_checkpoint, tmp_path):
    for name in ("train.tsv", "dev.tsv"):  # the label as a number
        lines = (data / name).read_text().splitlines()
        rng = random.Random(0)
        (data / name).write_text("\n".join([lines[0]] + [f"{line}.{rng.randint(0, 9)}" for line in lines[1:]]) + "\n")
    run = train(data, tiny_checkpoint, "task.type=regression")
    assert sorted(p.name for p in run.glob("*.png")) == ["dev_metric.png", "learning_rate.png", "loss.png",
                                                         "regression.png"]
    png_size(run / "regression.png")
    for p in run.glob("*.png"):
        p.unlink()
    (run / "report.html").unlink()
    assert main(["report", str(run)]) == 0  # rebuilt from the records
    assert len(list(run.glob("*.png"))) == 4 and (run / "report.html").is_file()

    other = train(data, tiny_checkpoint, "task.type=regression", "train.lr=1e-3")
    out = tmp_path / "both"
    assert main(["report", str(run), str(other), "--output", str(out)]) == 0
    names = sorted(p.name for p in out.glob("*.png"))
    assert names == sorted(["dev_metric.png", "learning_rate.png", "loss.png", f"regression-{run.name}.png",
                            f"regression-{other.name}.png"])
    page = (out / "report.html").read_text()
    assert run.name in page and other.name in page


def test_report_errors_are_clear(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "no metrics.jsonl" in capsys.readouterr().err
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "metrics.jsonl").write_text("{}\n")
    assert main(["report", str(tmp_path / "a"), str(tmp_path / "a")]) == 2
    assert "give --output DIR" in capsys.readouterr().err


def test_tagging_confusion_is_per_entity_type():
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    matrix = np.diag([50, 5, 3, 4, 2])
    matrix[1, 3] = 2  # B-PER predicted as B-LOC
    matrix[2, 1] = 1  # I-PER predicted as B-PER: the same entity type
    run = Run(Path("r"), "r", [], {"dev": {"confusion_matrix": {"labels": labels, "matrix": matrix.tolist()}}},
              {"task": {"type": "tagging"}})
    types, merged = confusion(run)
    assert types == ["O", "PER", "LOC"]
    assert merged.tolist() == [[50, 0, 0], [0, 9, 2], [0, 0, 6]]
    scores = per_label_scores(run)
    assert scores["PER"]["recall"] == pytest.approx(9 / 11) and scores["LOC"]["precision"] == pytest.approx(6 / 8)
