"""The CLI end to end on generated data and a tiny random checkpoint: train, evaluate, predict."""

import json
import subprocess
import sys

import pytest

from conftest import write_sentiment_tsv, write_tiny_checkpoint
from seqtune.cli import main


def train_args(tmp_path, ckpt, *extra):
    return ["train", "--set", "task.type=classification", "--set", f"model.path={ckpt}",
            "--set", f"data.train={tmp_path / 'train.tsv'}", "--set", f"data.dev={tmp_path / 'dev.tsv'}",
            "--set", "data.text_column=sentence", "--set", "train.epochs=4", "--set", "train.lr=3e-3",
            "--set", "train.batch_size=16", "--set", "train.progress=false",
            "--set", f"output_dir={tmp_path / 'runs'}", *extra]


@pytest.fixture()
def data(tmp_path):
    write_sentiment_tsv(tmp_path / "train.tsv", 160, seed=0)
    write_sentiment_tsv(tmp_path / "dev.tsv", 40, seed=1)
    return tmp_path


def run_dirs(tmp_path):
    return sorted((tmp_path / "runs").iterdir())


def test_train_evaluate_predict(data, tiny_checkpoint, capsys):
    assert main(train_args(data, tiny_checkpoint)) == 0
    run = run_dirs(data)[-1]
    for name in ("config.yaml", "metrics.jsonl", "results.json", "log.txt", "model/config.json",
                 "model/model.safetensors", "model/tokenizer.json", "model/seqtune.json"):
        assert (run / name).is_file(), name
    results = json.loads((run / "results.json").read_text())
    evals = (run / "metrics.jsonl").read_text().splitlines()
    assert len(evals) == 4 and results["dev"]["accuracy"] >= 0.9  # the words decide the label
    capsys.readouterr()
    assert main(["evaluate", str(run / "model"), str(data / "dev.tsv")]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["accuracy"] == results["dev"]["accuracy"]
    out = data / "pred.jsonl"
    assert main(["predict", str(run / "model"), str(data / "dev.tsv"), "--output", str(out)]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 40 and set(records[0]) == {"text", "label", "probabilities"}
    import seqtune
    model = seqtune.load(run / "model")
    assert model.predict([records[0]["text"]])[0]["label"] == records[0]["label"]


def test_same_seed_same_metrics(data, tiny_checkpoint):
    for _ in range(2):
        assert main(train_args(data, tiny_checkpoint, "--set", "train.epochs=1")) == 0
    a, b = [(r / "metrics.jsonl").read_text() for r in run_dirs(data)]
    assert a == b


@pytest.mark.parametrize("override, message", [
    ("train.lrate=1", "unknown setting train.lrate"),
    ("data.text_column=review", "no column 'review'"),
    ("model.path=/nonexistent", "does not exist"),
])
def test_bad_input_exits_with_one_paragraph(data, tiny_checkpoint, override, message, capsys):
    assert main(train_args(data, tiny_checkpoint, "--set", override)) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_tokenizer_larger_than_embeddings(data, tmp_path):
    ckpt = write_tiny_checkpoint(tmp_path / "ckpt")
    vocab = (ckpt / "vocab.txt").read_text() + "".join(f"extra{i}\n" for i in range(20))
    (ckpt / "vocab.txt").write_text(vocab)
    proc = subprocess.run([sys.executable, "-m", "seqtune", *train_args(data, ckpt)], capture_output=True, text=True)
    assert proc.returncode == 2 and "does not belong to this model" in proc.stderr
