"""train.log_to: the same scalars, the config and the final metrics in TensorBoard and MLflow."""

from __future__ import annotations

import json

import pytest
from conftest import write_sentiment_tsv

from seqtune.cli import main


def train(tmp_path, checkpoint, *extra) -> int:
    write_sentiment_tsv(tmp_path / "train.tsv", 48, seed=0)
    write_sentiment_tsv(tmp_path / "dev.tsv", 16, seed=1)
    args = ["train", "--set", "task.type=classification", "--set", f"model.path={checkpoint}",
            "--set", f"data.train={tmp_path / 'train.tsv'}", "--set", f"data.dev={tmp_path / 'dev.tsv'}",
            "--set", "data.text_column=sentence", "--set", "train.epochs=2", "--set", "train.batch_size=8",
            "--set", "train.progress=false", "--set", f"output_dir={tmp_path / 'runs'}"]
    for setting in extra:
        args += ["--set", setting]
    return main(args)


def test_tensorboard_gets_the_curves_and_final_metrics(tmp_path, tiny_checkpoint):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert train(tmp_path, tiny_checkpoint, "train.log_to=[tensorboard]") == 0
    (run,) = (tmp_path / "runs").iterdir()
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/lr", "dev/accuracy", "final/dev/accuracy"} <= tags
    assert len(events.Scalars("train/loss")) == 12  # 6 steps per epoch x 2: a point every step
    results = json.loads((run / "results.json").read_text())
    assert events.Scalars("final/dev/accuracy")[0].value == pytest.approx(results["dev"]["accuracy"])


def test_mlflow_gets_params_metrics_and_artifacts(tmp_path, tiny_checkpoint, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    assert train(tmp_path, tiny_checkpoint, "train.log_to=[mlflow]", "name=sentiment") == 0
    uri = (tmp_path / "runs" / "mlruns").as_uri()  # the default: a file store beside the runs
    (run_dir,) = [p for p in (tmp_path / "runs").iterdir() if p.name != "mlruns"]
    client = MlflowClient(tracking_uri=uri)
    (found,) = client.search_runs([client.get_experiment_by_name("sentiment").experiment_id])
    assert found.info.run_name == run_dir.name and found.info.status == "FINISHED"
    assert found.data.params["train.lr"] == "5e-05" and found.data.params["task.type"] == "classification"
    assert len(client.get_metric_history(found.info.run_id, "train/loss")) == 12
    assert "final/dev/accuracy" in found.data.metrics
    assert {a.path for a in client.list_artifacts(found.info.run_id)} == {"report.html", "results.json"}


def test_a_missing_tracker_package_is_a_clear_error(tmp_path, tiny_checkpoint, capsys, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name.startswith("torch.utils.tensorboard"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    assert train(tmp_path, tiny_checkpoint, "train.log_to=[tensorboard]") == 2
    assert "pip install 'seqtune[tensorboard]'" in capsys.readouterr().err
