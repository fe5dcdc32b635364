"""The Python API: `seqtune.train(config)` and `seqtune.load(model_dir).predict([...])`.

    >>> import seqtune
    >>> run_dir = seqtune.train("configs/sst2.yaml", overrides=["train.epochs=1"])
    >>> model = seqtune.load(run_dir / "model")
    >>> model.predict(["a gorgeous, witty film", "dull and overlong"])
    [{'text': 'a gorgeous, witty film', 'label': '1', 'probabilities': {...}}, ...]
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from seqtune.config import RunConfig, TrainConfig, load_config
from seqtune.errors import SeqtuneError
from seqtune.inference import (
    Runtime,
    evaluate,
    load_trained_model,
    resolve_runtime,
    run_outputs,
)


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
        self._check_probabilities(probabilities)
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
        return [record for chunk in self.predict_file_in_chunks(path, probabilities) for record in chunk]

    def predict_file_in_chunks(self, path: str, probabilities: bool = False, chunk_records: int = 2048,
                               on_count=None) -> Iterator[list[dict]]:
        """`predict_file` in input order, `chunk_records` records at a time: features, outputs and
        predictions exist for one chunk only, and each record read is released once predicted (a
        file's records are read at once: the readers read whole files). `on_count(n)` is told the
        number of records before the first chunk."""
        self._check_probabilities(probabilities)
        examples = self.task.read(str(path), "predict")
        if on_count is not None:
            on_count(len(examples))
        if not isinstance(examples, list):  # a task's own collection (MLM's Corpus): one chunk
            yield self._predict_examples(examples, probabilities)
            return
        examples.reverse()  # taken from the end: each chunk is released from the list in O(chunk)
        while examples:
            chunk = examples[-chunk_records:][::-1]
            del examples[-chunk_records:]
            yield self._predict_examples(chunk, probabilities)

    def evaluate(self, path: str) -> dict:
        """Metrics on a labelled file."""
        dataset = self.task.encode(self.task.read(str(path), "test"), "test")
        return evaluate(self.model, self.task, dataset, self.runtime, self.batch_tokens)

    def _check_probabilities(self, probabilities: bool) -> None:
        if probabilities and self.task.probabilities == "none":
            raise SeqtuneError(
                f"probabilities were asked for, but this is a {self.task.name} model, which has no per-label "
                "probabilities: they are for tagging and residues models (classification and multi-label "
                "models always write theirs). Leave out --probabilities / probabilities=True."
            )

    def _predict_examples(self, examples: list, probabilities: bool = False) -> list[dict]:
        dataset = self.task.encode(examples, "predict")
        outputs = run_outputs(self.model, self.task, dataset, self.runtime, self.batch_tokens)
        if probabilities and self.task.probabilities == "on_request":
            return self.task.predictions(outputs, dataset, probabilities=True)
        return self.task.predictions(outputs, dataset)


def load(model_dir: str | Path, device: str = "auto", overrides: list[str] = ()) -> FineTunedModel:
    """Load a model directory written by seqtune (a run's `model/` folder). `overrides`: "data.key=value"
    settings for the files it will read (column names, format, header, ...) and "task.key=value" for
    the settings that change how outputs are read (inference.INFERENCE_OPTIONS, e.g. task.decode)."""
    task, model = load_trained_model(model_dir, list(overrides))
    return FineTunedModel(task, model, resolve_runtime(TrainConfig(device=device)))


def train(config: str | Path | RunConfig, overrides: list[str] = ()) -> Path:
    """Run a training config (a YAML path or a RunConfig); returns the run directory."""
    from seqtune.training.setup import train_from_config

    cfg = config if isinstance(config, RunConfig) else load_config(config, list(overrides))
    return train_from_config(cfg)
