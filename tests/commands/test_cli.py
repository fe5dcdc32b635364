"""The CLI end to end on generated data and a tiny random checkpoint: train, evaluate, predict."""

import json
import subprocess
import sys
from pathlib import Path

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


# ---- seqtune --version, seqtune config show -------------------------------------------------------

def test_version_prints_the_package_version(capsys):
    import seqtune

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"seqtune {seqtune.__version__}"


def test_config_show_prints_the_resolved_config_with_every_default(tmp_path, capsys):
    import yaml

    from seqtune.config import config_to_yaml, load_config

    config = tmp_path / "c.yaml"
    config.write_text("task: {type: classification}\ndata: {train: train.tsv}\ntrain: {epochs: 3}\n")
    assert main(["config", "show", str(config), "--set", "train.lr=1e-4"]) == 0
    out = capsys.readouterr().out
    assert out == config_to_yaml(load_config(config, ["train.lr=1e-4"]))
    shown = yaml.safe_load(out)
    assert shown["train"]["epochs"] == 3 and shown["train"]["lr"] == 1e-4  # from the file and --set
    assert shown["train"]["batch_size"] == 32 and shown["strategy"]["train_pooler"] is True  # defaults
    assert shown["task"]["head"] == "pooler"  # the task's own options, filled in too
    assert shown["data"]["train"] == str(tmp_path / "train.tsv")  # paths resolved from the file
    assert not (tmp_path / "runs").exists()  # nothing trained


@pytest.mark.parametrize("override, message", [
    ("train.lrate=1", "unknown setting train.lrate"),
    ("train.epochs=many", "train.epochs"),
])
def test_config_show_rejects_a_bad_key_with_one_paragraph(tmp_path, override, message, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("task: {type: classification}\n")
    assert main(["config", "show", str(config), "--set", override]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("seqtune config: error: ") and message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


# ---- the hub extra ----------------------------------------------------------------------------------

def test_a_hub_id_without_huggingface_hub_names_the_extra(data, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import huggingface_hub -> ImportError
    assert main(train_args(data, "some-org/some-bert")) == 2
    err = capsys.readouterr().err
    assert 'pip install "seqtune[hub]"' in err and "some-org/some-bert" in err and "Traceback" not in err


# ---- predict into a pipe whose reader stops early -------------------------------------------------

def test_predict_into_a_reader_that_closes_early_exits_quietly(data, tiny_checkpoint, tmp_path):
    """`seqtune predict MODEL f.tsv | head -2`: no BrokenPipeError traceback, exit status 141."""
    assert main(train_args(data, tiny_checkpoint, "--set", "train.epochs=1", "--set", "data.max_length=64")) == 0
    model = run_dirs(data)[-1] / "model"
    # far more output than a pipe holds (64 KiB), so writing goes on after the reader has gone
    big = write_sentiment_tsv(tmp_path / "big.tsv", 4000, seed=2)
    with (tmp_path / "err.txt").open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "seqtune", "predict", str(model), str(big), "--device", "cpu"],
                                stdout=subprocess.PIPE, stderr=err, text=True)
        first = proc.stdout.readline()
        proc.stdout.close()  # the reader goes away, as `head -1` does
        code = proc.wait(timeout=300)
    assert json.loads(first)["label"] in {"0", "1"}
    stderr = (tmp_path / "err.txt").read_text()
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr
    assert code == 141


def test_evaluate_and_predict_take_data_settings(data, tiny_checkpoint, tmp_path, capsys):
    """A file whose columns differ from the training file's: named with --set data.…"""
    assert main(["train", "--set", f"model.path={tiny_checkpoint}", "--set", f"data.train={data / 'train.tsv'}",
                 "--set", "task.type=classification", "--set", "data.text_column=sentence",
                 "--set", "train.epochs=1", "--set", "train.progress=false",
                 "--set", f"output_dir={tmp_path / 'runs'}"]) == 0
    model = Path(capsys.readouterr().out.strip().splitlines()[-1]) / "model"
    renamed = tmp_path / "renamed.tsv"
    renamed.write_text((data / "train.tsv").read_text().replace("sentence\tlabel", "review\tlabel", 1))
    assert main(["evaluate", str(model), str(renamed)]) == 2
    err = capsys.readouterr().err
    assert "no column 'sentence'" in err and "--set data.text_column=NAME" in err
    assert main(["evaluate", str(model), str(renamed), "--set", "data.text_column=review"]) == 0
    assert "accuracy" in json.loads(capsys.readouterr().out)
    assert main(["predict", str(model), str(renamed), "--set", "data.text_column=review"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == len(renamed.read_text().splitlines()) - 1
    assert main(["evaluate", str(model), str(renamed), "--set", "train.lr=1"]) == 2
    assert "a saved model takes data.* settings and the task settings" in capsys.readouterr().err


def test_python_api_names_the_shape_of_a_wrong_input(data, tiny_checkpoint, tmp_path, capsys):
    import seqtune

    run = seqtune.train(None, [f"model.path={tiny_checkpoint}", f"data.train={data / 'train.tsv'}",
                               "task.type=classification", "data.text_column=sentence", "train.epochs=1",
                               "train.progress=false", f"output_dir={tmp_path / 'runs'}"])
    model = seqtune.load(run / "model")
    assert len(model.predict(["a good film"])) == 1
    with pytest.raises(seqtune.SeqtuneError, match="trained on single texts, but a pair"):
        model.predict([("a good film", "a bad one")])
    with pytest.raises(seqtune.SeqtuneError, match="list of inputs, not a str"):
        model.predict("a good film")
    with pytest.raises(seqtune.SeqtuneError, match="expected a non-empty string"):
        model.predict([3])
