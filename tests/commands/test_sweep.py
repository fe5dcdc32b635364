"""seqtune sweep: grid expansion, the failure threshold, the summary table, CSV and plot."""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

import pytest
from conftest import write_sentiment_tsv, write_tiny_checkpoint

from seqtune.cli import main
from seqtune.commands import sweep
from seqtune.commands.sweep import (ModelKeeper, chance_level, expand_grid, majority_label, plot, split_values,
                                    summarise)
from seqtune.config import load_config
from seqtune.errors import SeqtuneError, TrainingDiverged


def test_split_values_keeps_lists_whole():
    assert split_values("0,1,null") == ["0", "1", "null"]
    assert split_values("[a,b],[c]") == ["[a,b]", "[c]"]
    assert split_values("3e-5") == ["3e-5"]


def test_expand_grid():
    fixed, keys, points = expand_grid(["train.lr=3e-5", "strategy.top_layers=0,2", "task.labels=[a,b]",
                                       "train.seed=1,2"])
    assert fixed == ["train.lr=3e-5", "task.labels=[a,b]"]
    assert keys == ["strategy.top_layers", "train.seed"]
    assert points == [["strategy.top_layers=0", "train.seed=1"], ["strategy.top_layers=0", "train.seed=2"],
                      ["strategy.top_layers=2", "train.seed=1"], ["strategy.top_layers=2", "train.seed=2"]]


def test_majority_label_counts_sequence_and_token_labels():
    assert majority_label([{"labels": 1}, {"labels": 0}, {"labels": 1}]) == 1
    assert majority_label([{"labels": [-100, 2, 2, -100]}, {"labels": [0, 2]}]) == 2  # -100 = ignored
    assert majority_label([{"labels": 0.7}, {"labels": 1.5}]) is None  # regression: no classes
    assert majority_label([{"input_ids": [1]}]) is None


def test_summarise_counts_runs_at_or_below_the_baseline_and_diverged_runs_as_failed():
    s = summarise([0.9, 0.5, 0.7, None], baseline=0.5)
    assert s["runs"] == 4 and s["failed"] == 2
    assert math.isclose(s["mean"], 0.7) and math.isclose(s["std"], 0.2)  # sample std over finished runs
    assert (s["min"], s["max"]) == (0.5, 0.9)
    assert summarise([0.1, 0.2], baseline=None)["failed"] == 0


@pytest.fixture(scope="module")
def sweep_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("sweep")
    checkpoint = write_tiny_checkpoint(d / "bert", layers=2)
    train = write_sentiment_tsv(d / "train.tsv", n=33)  # 17 negative, 16 positive: majority "0"
    dev = write_sentiment_tsv(d / "dev.tsv", n=16, seed=1)
    lines = dev.read_text().splitlines()
    negatives = [line for line in lines[1:] if line.endswith("\t0")]
    dev.write_text("\n".join([lines[0], *[line for line in lines[1:] if line.endswith("\t1")], *negatives[:4]]) + "\n")
    config = d / "tiny.yaml"
    config.write_text(f"task: {{type: classification}}\nmodel: {{path: {checkpoint}}}\n"
                      f"data: {{train: {train}, dev: {dev}, text_column: sentence, max_length: 64}}\n"
                      "train: {epochs: 1, batch_size: 16, progress: false, lr: 1.0e-3}\n")
    return config


def test_chance_level_is_the_best_constant_predictor_on_dev(sweep_files):
    # training majority is "0", but dev has 8 positives and 4 negatives: always "1" scores 8/12
    assert math.isclose(chance_level(load_config(sweep_files)), 8 / 12)
    # any constant predictor has MCC 0; its best macro F1 is always "1": F1 0.8 for "1", 0 for "0"
    assert chance_level(load_config(sweep_files, ["train.metric=mcc"])) == 0.0
    assert math.isclose(chance_level(load_config(sweep_files, ["train.metric=f1_macro"])), 0.4)
    assert chance_level(load_config(sweep_files, ["data.dev=null"])) is None


def fake_runs(monkeypatch, values):
    """Replace training by runs with these best dev values (None: diverged), in order."""
    values = iter(values)

    def run_one(config_path, overrides):
        value = next(values)
        return {"metric": "accuracy", "value": value, "wall_seconds": 0.1, "run_dir": "",
                "error": "" if value is not None else "diverged", "diverged": value is None}
    monkeypatch.setattr(sweep, "run_one", run_one)


def test_a_run_that_always_predicts_the_dev_majority_class_has_failed(sweep_files, tmp_path, monkeypatch):
    # 8/12 is what always answering "1" scores on this dev set: above the training majority's 4/12
    fake_runs(monkeypatch, [8 / 12, 0.75])
    assert main(["sweep", str(sweep_files), "--seeds", "2", "--output", str(tmp_path / "s")]) == 0
    [row] = list(csv.DictReader((tmp_path / "s" / "summary.csv").open()))
    assert row["failed"] == "1" and math.isclose(float(row["baseline"]), 8 / 12)
    assert "chance level (accuracy 0.6667)" in (tmp_path / "s" / "summary.md").read_text()


def test_a_diverged_run_is_recognised_by_its_exception_type(sweep_files, tmp_path, monkeypatch):
    import seqtune.training.setup

    def diverge(cfg):
        raise TrainingDiverged("loss is NaN")  # whatever the words, the type says it diverged
    monkeypatch.setattr(seqtune.training.setup, "train_from_config", diverge)
    assert main(["sweep", str(sweep_files), "--seeds", "2", "--output", str(tmp_path / "s")]) == 0
    runs = list(csv.DictReader((tmp_path / "s" / "runs.csv").open()))
    assert [r["error"] for r in runs] == ["loss is NaN"] * 2 and all(r["value"] == "" for r in runs)
    assert list(csv.DictReader((tmp_path / "s" / "summary.csv").open()))[0]["failed"] == "2"

    def bad_input(cfg):
        raise SeqtuneError("the training loss became a bad file")  # any other error: recorded, exit 2
    monkeypatch.setattr(seqtune.training.setup, "train_from_config", bad_input)
    assert main(["sweep", str(sweep_files), "--seeds", "2", "--output", str(tmp_path / "t")]) == 2
    runs = list(csv.DictReader((tmp_path / "t" / "runs.csv").open()))
    assert [r["error"] for r in runs] == ["the training loss became a bad file"] * 2


def test_an_error_in_one_grid_point_does_not_stop_the_others(sweep_files, tmp_path, monkeypatch, capsys):
    import seqtune.training.setup

    real_train = seqtune.training.setup.train_from_config

    def train(cfg):
        if cfg.train.lr == 0.5:
            raise SeqtuneError("this point cannot run")
        if cfg.train.lr == 0.25:
            raise RuntimeError("CUDA out of memory")  # not a SeqtuneError: recorded all the same
        return real_train(cfg)
    monkeypatch.setattr(seqtune.training.setup, "train_from_config", train)
    out = tmp_path / "s"
    assert main(["sweep", str(sweep_files), "--seeds", "1", "--output", str(out),
                 "--set", "train.lr=0.5,1e-3,0.25"]) == 2
    runs = list(csv.DictReader((out / "runs.csv").open()))
    assert [r["train.lr"] for r in runs] == ["0.5", "1e-3", "0.25"]
    assert runs[0]["error"] == "this point cannot run" and runs[0]["value"] == ""
    assert runs[1]["error"] == "" and 0 <= float(runs[1]["value"]) <= 1 and Path(runs[1]["run_dir"]).is_dir()
    assert runs[2]["error"] == "RuntimeError: CUDA out of memory"
    summary = list(csv.DictReader((out / "summary.csv").open()))
    assert [r["error"] for r in summary] == ["this point cannot run", "", "RuntimeError: CUDA out of memory"]
    assert [r["failed"] for r in summary] == ["1", str(int(float(runs[1]["value"]) <= 8 / 12 + 1e-12)), "1"]
    assert "- train.lr=0.5: this point cannot run" in (out / "summary.md").read_text()
    err = capsys.readouterr().err
    assert "2 of 3 runs stopped with an error" in err
    assert [p.name for p in out.iterdir() if p.is_dir()] == [Path(runs[1]["run_dir"]).name]


def test_model_keeper_keeps_the_best_run_of_each_grid_point(tmp_path):
    def run(point, value, name):
        (tmp_path / name / "model").mkdir(parents=True)
        return {"point": point, "value": value, "model": str(tmp_path / name / "model")}

    keeper = ModelKeeper("best")
    runs = [run(0, 0.6, "a"), run(0, 0.8, "b"), run(0, 0.7, "c"), run(1, 0.5, "d"), run(1, None, "e")]
    for r in runs:
        keeper.add(r, higher_is_better=True)
    assert [bool(r["model"]) for r in runs] == [False, True, False, True, False]
    assert sorted(p.parent.name for p in tmp_path.glob("*/model")) == ["b", "d"]
    assert all((tmp_path / n).is_dir() for n in "abcde")  # only model/ goes, the run directory stays

    lower = ModelKeeper("best")
    runs = [run(0, 0.3, "f"), run(0, 0.2, "g")]
    for r in runs:
        lower.add(r, higher_is_better=False)  # e.g. train.metric=loss
    assert [bool(r["model"]) for r in runs] == [False, True]

    for keep, kept in (("all", [True, True]), ("none", [False, False])):
        runs = [run(0, 0.9, f"{keep}1"), run(0, 0.1, f"{keep}2")]
        keeper = ModelKeeper(keep)
        for r in runs:
            keeper.add(r, higher_is_better=True)
        assert [(tmp_path / f"{keep}{i}" / "model").is_dir() for i in (1, 2)] == kept


def test_sweep_writes_table_csv_and_plot(sweep_files, tmp_path, capsys):
    out = tmp_path / "sweep"
    code = main(["sweep", str(sweep_files), "--seeds", "2", "--output", str(out),
                 "--set", "strategy.top_layers=0,2"])
    assert code == 0
    runs = list(csv.DictReader((out / "runs.csv").open()))
    assert [(r["strategy.top_layers"], r["seed"]) for r in runs] == [("0", "42"), ("0", "43"), ("2", "42"), ("2", "43")]
    assert all(r["metric"] == "accuracy" and 0 <= float(r["value"]) <= 1 and float(r["wall_seconds"]) > 0
               for r in runs)
    summary = list(csv.DictReader((out / "summary.csv").open()))
    assert [row["strategy.top_layers"] for row in summary] == ["0", "2"]
    for row in summary:
        values = [float(r["value"]) for r in runs if r["strategy.top_layers"] == row["strategy.top_layers"]]
        assert math.isclose(float(row["mean"]), sum(values) / 2)
        assert math.isclose(float(row["min"]), min(values)) and math.isclose(float(row["max"]), max(values))
        assert int(row["failed"]) == sum(v <= 8 / 12 + 1e-12 for v in values)
        assert int(row["runs"]) == 2
    table = (out / "summary.md").read_text()
    assert table.startswith("| strategy.top_layers | runs | accuracy mean ± std |")
    assert "chance level (accuracy 0.6667)" in table and "predicting a single class fails" in table
    assert (out / "summary.png").read_bytes()[:4] == b"\x89PNG"
    # every run is a normal run directory inside the sweep directory, with its seed
    run_dirs = [p for p in out.iterdir() if p.is_dir()]
    assert len(run_dirs) == 4 and all((p / "results.json").is_file() for p in run_dirs)
    assert "seed: 43" in (out / runs[1]["run_dir"].split("/")[-1] / "config.yaml").read_text()
    # --keep-models best (the default): one model per grid point, that of its best run (the first on a tie)
    for point in ("0", "2"):
        members = [r for r in runs if r["strategy.top_layers"] == point]
        best = max(members, key=lambda r: float(r["value"]))
        assert [bool(r["model"]) for r in members] == [r is best for r in members]
        assert [(Path(r["run_dir"]) / "model").is_dir() for r in members] == [r is best for r in members]
        assert (Path(best["model"]) / "model.safetensors").is_file()


def test_sweep_keep_models_none(sweep_files, tmp_path):
    out = tmp_path / "sweep"
    assert main(["sweep", str(sweep_files), "--seeds", "1", "--output", str(out), "--keep-models", "none"]) == 0
    [run] = list(csv.DictReader((out / "runs.csv").open()))
    assert run["model"] == "" and (Path(run["run_dir"]) / "results.json").is_file()
    assert not (Path(run["run_dir"]) / "model").exists()


def test_a_grid_value_that_fails_validation_is_recorded_and_the_others_run(sweep_files, tmp_path, capsys):
    out = tmp_path / "s"
    code = main(["sweep", str(sweep_files), "--seeds", "1", "--output", str(out),
                 "--set", "strategy.top_layers=x,0", "--set", "train.epochs=1,-2"])
    assert code == 2
    runs = list(csv.DictReader((out / "runs.csv").open()))
    assert [(r["strategy.top_layers"], r["train.epochs"]) for r in runs] == [("x", "1"), ("x", "-2"), ("0", "1"),
                                                                              ("0", "-2")]
    assert "strategy.top_layers: expected int" in runs[0]["error"] and runs[0]["wall_seconds"] == "0.0"
    assert "train.epochs: -2 is out of range; it must be > 0" in runs[3]["error"]
    assert runs[2]["error"] == "" and 0 <= float(runs[2]["value"]) <= 1
    summary = list(csv.DictReader((out / "summary.csv").open()))
    assert [bool(r["error"]) for r in summary] == [True, True, False, True]
    assert "Errors (runs that stopped with an error" in (out / "summary.md").read_text()
    assert "3 of 4 runs stopped with an error" in capsys.readouterr().err


def test_a_bad_fixed_value_stops_the_sweep_before_anything_is_created(sweep_files, tmp_path, capsys):
    code = main(["sweep", str(sweep_files), "--output", str(tmp_path / "s"), "--set", "train.lr=-1"])
    assert code == 2 and "train.lr: -1 is out of range" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_grid_values_with_odd_characters_give_valid_run_names(sweep_files, tmp_path, monkeypatch):
    names = []
    monkeypatch.setattr(sweep, "run_one", lambda config, overrides: names.append(overrides[-1]) or
                        {"metric": "accuracy", "value": 0.9, "wall_seconds": 0.1, "run_dir": "", "error": ""})
    assert main(["sweep", str(sweep_files), "--seeds", "1", "--output", str(tmp_path / "s"),
                 "--set", "task.labels=['0','1'],['1','0']", "--set", "data.max_rows=20"]) == 0
    assert names == ["name=task.labels-0-1_seed-42", "name=task.labels-1-0_seed-42"]
    for n in names:
        load_config(sweep_files, [n])  # a valid run name


def test_plot_is_skipped_with_a_message_without_matplotlib(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    rows = [{"point": 0, "k": "1", "mean": 0.5, "std": 0.1}]
    assert plot(tmp_path / "p.png", rows, [], ["k"], "accuracy", None) is False
    assert "matplotlib is not installed" in capsys.readouterr().err
    assert not (tmp_path / "p.png").exists()
