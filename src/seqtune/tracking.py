"""`train.log_to: [tensorboard, mlflow]`: the run's scalars, config and final metrics where teams look.

Every record written to metrics.jsonl is also logged: the training loss and learning rate of each
`train_curve` point (`train/loss`, `train/lr` at that step) and the dev evaluation's scalar metrics
(`dev/<metric>`); the resolved config goes in as text (TensorBoard) or flattened parameters
(MLflow); at the end the best dev and the test metrics (`final/dev/<metric>`, `final/test/<metric>`)
and, for MLflow, report.html and results.json as artifacts.

- tensorboard: event files in RUN_DIR/tensorboard (`tensorboard --logdir runs/`), written with
  torch's SummaryWriter (needs the `tensorboard` package: pip install 'seqtune[tensorboard]').
- mlflow: a run named after the run directory in the experiment named after the config (`name`, or
  the task type), through `MlflowClient` (no global active run). The tracking URI is MLflow's own
  setting (MLFLOW_TRACKING_URI, e.g. the team's server) when set, otherwise a file store in
  output_dir/mlruns (`mlflow ui --backend-store-uri output_dir/mlruns`; MLflow 3 keeps that store in
  maintenance mode, so seqtune sets MLFLOW_ALLOW_FILE_STORE=true for it). pip install 'seqtune[mlflow]'.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from seqtune.errors import SeqtuneError

EXTRAS = {"tensorboard": "tensorboard", "mlflow": "mlflow"}


def scalars(entry: dict) -> dict[str, float]:
    return {k: float(v) for k, v in entry.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("step", "epoch")}


def flatten(tree: dict, prefix: str = "") -> dict[str, str]:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = str(value)[:500]
    return out


class TensorBoardLog:
    def __init__(self, run_dir: Path, config: dict, config_text: str):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise SeqtuneError("train.log_to has tensorboard, which is not installed: "
                               "pip install 'seqtune[tensorboard]'.") from None
        self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))
        self.writer.add_text("config", "```\n" + config_text + "\n```")

    def metrics(self, values: dict[str, float], step: int) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)

    def finish(self, run_dir: Path, status: str) -> None:
        self.writer.close()


class MlflowLog:
    def __init__(self, run_dir: Path, config: dict, config_text: str):
        try:
            import mlflow
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise SeqtuneError("train.log_to has mlflow, which is not installed: pip install 'seqtune[mlflow]'.") \
                from None
        import os

        uri = os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:  # a local file store beside the runs; MLflow 3 keeps it only on request
            uri = (run_dir.parent / "mlruns").absolute().as_uri()
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = MlflowClient(tracking_uri=uri)
        name = str(config.get("name") or config.get("task", {}).get("type") or "seqtune")
        experiment = self.client.get_experiment_by_name(name)
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(name)
        self.run_id = self.client.create_run(experiment_id, run_name=run_dir.name).info.run_id
        self.mlflow = mlflow
        params = flatten(config)
        for start in range(0, len(params), 100):  # MLflow takes at most 100 parameters per batch
            chunk = list(params.items())[start:start + 100]
            self.client.log_batch(self.run_id, params=[mlflow.entities.Param(k, v) for k, v in chunk])

    def metrics(self, values: dict[str, float], step: int) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, now, step) for k, v in values.items()])

    def finish(self, run_dir: Path, status: str) -> None:
        for name in ("report.html", "results.json"):
            if (run_dir / name).is_file():
                self.client.log_artifact(self.run_id, str(run_dir / name))
        self.client.set_terminated(self.run_id, status)


TRACKERS = {"tensorboard": TensorBoardLog, "mlflow": MlflowLog}


class Tracking:
    """The trackers of one run; `wrap(record)` logs each metrics.jsonl record to them too."""

    def __init__(self, trackers: list, run_dir: Path):
        self.trackers = trackers
        self.run_dir = run_dir

    @classmethod
    def open(cls, names: list[str] | None, run_dir: Path, config: dict, config_text: str) -> Tracking:
        return cls([TRACKERS[name](run_dir, config, config_text) for name in dict.fromkeys(names or [])], run_dir)

    def log(self, values: dict[str, float], step: int) -> None:
        for tracker in self.trackers:
            tracker.metrics(values, step)

    def wrap(self, record: Callable[[dict], None]) -> Callable[[dict], None]:
        if not self.trackers:
            return record

        def record_and_track(entry: dict) -> None:
            record(entry)
            for step, loss, lr in entry.get("train_curve", []):
                self.log({"train/loss": loss, "train/lr": lr}, int(step))
            if entry.get("split") == "dev":
                self.log({f"dev/{k}": v for k, v in scalars(entry).items() if k not in ("train_loss", "lr")},
                         int(entry["step"]))
        return record_and_track

    def finish(self, results: dict, step: int) -> None:
        final = {}
        for split in ("dev", "test"):
            final.update({f"final/{split}/{k}": v for k, v in scalars(results.get(split) or {}).items()})
        if final:
            self.log(final, step)
        for tracker in self.trackers:
            tracker.finish(self.run_dir, "FINISHED")
