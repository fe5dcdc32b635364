"""The Python API: `seqtune.train(config)` and `seqtune.load(model_dir).predict([...])`.

    >>> import seqtune
    >>> run_dir = seqtune.train("configs/sst2.yaml", overrides=["train.epochs=1"])
    >>> model = seqtune.load(run_dir / "model")
    >>> model.predict(["a gorgeous, witty film", "dull and overlong"])
    [{'text': 'a gorgeous, witty film', 'label': '1', 'probabilities': {...}}, ...]
"""

from __future__ import annotations

from pathlib import Path

from seqtune.config import RunConfig, TrainConfig, load_config
from seqtune.errors import SeqtuneError
from seqtune.inference import (
    Runtime,
    evaluate,
    load_saved_task,
    load_trained_model,
    resolve_runtime,
    run_outputs,
)
from seqtune.tasks.base import EncodedDataset


class FineTunedModel:
    """A model saved by seqtune, ready to predict and evaluate."""

    def __init__(self, task, model, runtime: Runtime, batch_tokens: int = 16384):
        self.task = task
        self.model = model.to(runtime.device)
        self.runtime = runtime
        self.batch_tokens = batch_tokens

    def predict(self, inputs: list, probabilities: bool = False) -> list[dict]:
        """Predictions for in-memory inputs (texts, text pairs, ... as the task takes them).

        `probabilities`: tagging and residues models also give each label's probability at every
        word/residue, as {label: [p, ...]} aligned with the predicted labels (classification and
        multi-label models always give theirs)."""
        self.check_probabilities(probabilities)
        if isinstance(inputs, (str, bytes)) or type(inputs).__module__.startswith("pandas"):
            raise SeqtuneError(
                f"predict takes a list of inputs, not a {type(inputs).__name__}: e.g. predict([text, ...])"
                + (", or predict(df['text'].tolist()) for a DataFrame column." if not isinstance(inputs, (str, bytes))
                   else ".")
            )
        examples = self.task.examples_from_inputs(list(inputs))
        return self._predict_examples(examples, probabilities)

    def predict_file(self, path: str, probabilities: bool = False) -> list[dict]:
        """Predictions for every record of a file in the task's input format (labels optional);
        `probabilities` as in `predict`."""
        self.check_probabilities(probabilities)
        return self._predict_examples(self.task.read(str(path), "predict"), probabilities)

    def evaluate(self, path: str) -> dict:
        """Metrics on a labelled file."""
        dataset = self.task.encode(self.task.read(str(path), "test"), "test")
        return evaluate(self.model, self.task, dataset, self.runtime, self.batch_tokens)

    def check_probabilities(self, probabilities: bool) -> None:
        if probabilities and self.task.probabilities == "none":
            raise SeqtuneError(
                f"probabilities were asked for, but this is a {self.task.name} model, which has no per-label "
                "probabilities: they are for tagging and residues models (classification and multi-label "
                "models always write theirs). Leave out --probabilities / probabilities=True."
            )

    def _predict_examples(self, examples: list, probabilities: bool = False) -> list[dict]:
        dataset = self.task.encode(examples, "predict")
        outputs = run_outputs(self.model, self.task, dataset, self.runtime, self.batch_tokens)
        return self.predictions_from(outputs, dataset, probabilities)

    def encode_inputs(self, inputs: list) -> EncodedDataset:
        """In-memory inputs -> the features the model runs on (the first half of `predict`; the server
        encodes each request with it, runs several requests' features together, then calls
        `predictions_from` per request)."""
        return self.task.encode(self.task.examples_from_inputs(list(inputs)), "predict")

    def predictions_from(self, outputs: list, dataset: EncodedDataset, probabilities: bool = False) -> list[dict]:
        """The records `predict` returns, from the model outputs of `dataset`'s features (in order)."""
        if probabilities and self.task.probabilities == "on_request":
            return self.task.predictions(outputs, dataset, probabilities=True)
        return self.task.predictions(outputs, dataset)


def load(model_dir: str | Path, device: str = "auto", overrides: list[str] = (), runtime: str = "torch"
         ) -> FineTunedModel:
    """Load a model directory written by seqtune (a run's `model/` folder). `overrides`: "data.key=value"
    settings for the files it will read (column names, format, header, ...) and "task.key=value" for
    the settings that change how outputs are read (inference.INFERENCE_OPTIONS, e.g. task.decode).
    `runtime="onnx"`: a directory written by `seqtune export --format onnx`, run by ONNX Runtime (CPU)."""
    if runtime == "onnx":
        from seqtune.onnx_export import ONNX_FILE, OnnxModel

        device = "cpu" if device == "auto" else device
        model = OnnxModel(Path(model_dir) / ONNX_FILE)
        task, _ = load_saved_task(model_dir, list(overrides))
        return FineTunedModel(task, model, resolve_runtime(TrainConfig(device=device)))
    if runtime != "torch":
        raise SeqtuneError(f"unknown runtime {runtime!r}: torch or onnx.")
    task, model = load_trained_model(model_dir, list(overrides))
    return FineTunedModel(task, model, resolve_runtime(TrainConfig(device=device)))


def train(config: str | Path | RunConfig, overrides: list[str] = ()) -> Path:
    """Run a training config (a YAML path or a RunConfig); returns the run directory."""
    from seqtune.training.setup import train_from_config

    cfg = config if isinstance(config, RunConfig) else load_config(config, list(overrides))
    return train_from_config(cfg)
