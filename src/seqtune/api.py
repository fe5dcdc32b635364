"""The Python API: `seqtune.train(config)` and `seqtune.load(model_dir).predict([...])`.

    >>> import seqtune
    >>> run_dir = seqtune.train("configs/sst2.yaml", overrides=["train.epochs=1"])
    >>> model = seqtune.load(run_dir / "model")
    >>> model.predict(["a gorgeous, witty film", "dull and overlong"])
    [{'text': 'a gorgeous, witty film', 'label': '1', 'probabilities': {...}}, ...]
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from seqtune.config import RunConfig, TrainConfig, load_config
from seqtune.errors import SeqtuneError
from seqtune.in_memory import files_for, jsonl_settings, table_kind, task_reading_jsonl
from seqtune.inference import (
    Runtime,
    evaluate,
    load_saved_task,
    load_trained_model,
    resolve_runtime,
    run_outputs,
)
from seqtune.tasks.base import EncodedDataset

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


class FineTunedModel:
    """A model saved by seqtune, ready to predict and evaluate."""

    def __init__(self, task, model, runtime: Runtime, batch_tokens: int | None = None):
        self.task = task
        self.model = model.to(runtime.device)
        self.runtime = runtime
        # padded tokens per batch; None: the runtime's (1,024 on CPU, 16,384 on GPU)
        self.batch_tokens = batch_tokens or runtime.eval_batch_tokens

    def predict(self, inputs, probabilities: bool = False) -> list[dict]:
        """Predictions for in-memory inputs: a list of texts, text pairs, ... as the task takes them,
        or a pandas DataFrame / `datasets.Dataset` read with the model's column settings (as a file
        would be: data.text_column, ...; `overrides` in `load` change them), one record per row, the
        data.id_column value included where the table has that column.

        `probabilities`: tagging and residues models also give each label's probability at every
        word/residue, as {label: [p, ...]} aligned with the predicted labels (classification and
        multi-label models always give theirs)."""
        self.check_probabilities(probabilities)
        if table_kind(inputs) is not None:
            return self.predict_file(inputs, probabilities)
        if type(inputs).__module__.startswith("pandas") and hasattr(inputs, "tolist"):  # a Series: its values
            inputs = inputs.tolist()
        if isinstance(inputs, (str, bytes, dict)):
            raise SeqtuneError(f"predict takes a list of inputs, not a {type(inputs).__name__}: e.g. "
                               "predict([text, ...]), or a DataFrame / Dataset, read row by row.")
        examples = self.task.examples_from_inputs(list(inputs))
        return self._predict_examples(examples, probabilities)

    def predict_file(self, path, probabilities: bool = False) -> list[dict]:
        """Predictions for every record of a file in the task's input format (labels optional), or of
        a DataFrame / Dataset; `probabilities` as in `predict`."""
        return [record for chunk in self.predict_file_in_chunks(path, probabilities) for record in chunk]

    def predict_file_in_chunks(self, path, probabilities: bool = False, chunk_records: int = 2048,
                               on_count=None) -> Iterator[list[dict]]:
        """`predict_file` in input order, `chunk_records` records at a time: features, outputs and
        predictions exist for one chunk only, and each record read is released once predicted (a
        file's records are read at once: the readers read whole files). `on_count(n)` is told the
        number of records before the first chunk."""
        self.check_probabilities(probabilities)
        with self._readable(path, "predict") as source:
            examples = self.task.read(source, "predict")
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

    def evaluate(self, path) -> dict:
        """Metrics on a labelled file, DataFrame or Dataset."""
        with self._readable(path, "evaluate") as source:
            examples = self.task.read(source, "test")
        dataset = self.task.encode(examples, "test")
        return evaluate(self.model, self.task, dataset, self.runtime, self.batch_tokens)

    @contextmanager
    def _readable(self, data, name: str):
        """A path the task reads: the file itself, or a JSONL copy of an in-memory table."""
        if table_kind(data) is None:
            yield str(data)
            return
        with files_for({name: data}) as paths, task_reading_jsonl(self.task):
            yield paths[name]

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


def load(model_dir: str | Path, device: str = "auto", overrides: list[str] = (), runtime: str = "torch",
         batch_tokens: int | None = None, precision: str = "auto") -> FineTunedModel:
    """Load a model directory written by seqtune (a run's `model/` folder). `overrides`: "data.key=value"
    settings for the files it will read (column names, format, header, ...) and "task.key=value" for
    the settings that change how outputs are read (inference.INFERENCE_OPTIONS, e.g. task.decode).
    `runtime="onnx"`: a directory written by `seqtune export --format onnx`, run by ONNX Runtime (CPU).
    `batch_tokens`: padded tokens per batch (inputs sorted by length fill each batch up to it); None:
    1,024 on CPU, where batches that stay in the caches run fastest, 16,384 on a GPU.
    `precision`: "auto" (fp32 on CPU, bf16 on a GPU), "fp32", "bf16" or "fp16" (autocast; weights stay
    fp32). bf16 on CPU pays only where the CPU multiplies bf16 matrices natively (AMX, AVX-512 BF16)."""
    if precision not in PRECISIONS:
        raise SeqtuneError(f"precision (--precision) is {precision!r}; choose one of {', '.join(PRECISIONS)}.")
    if batch_tokens is not None and (isinstance(batch_tokens, bool) or not isinstance(batch_tokens, int)
                                     or batch_tokens < 1):
        raise SeqtuneError(f"batch_tokens (--batch-tokens) must be a positive whole number, not {batch_tokens!r}.")
    if runtime == "onnx":
        from seqtune.onnx_export import ONNX_FILE, OnnxModel

        device = "cpu" if device == "auto" else device
        if precision not in ("auto", "fp32"):
            raise SeqtuneError(f"--runtime onnx runs the exported fp32 graph; --precision {precision} is for "
                               "--runtime torch.")
        model = OnnxModel(Path(model_dir) / ONNX_FILE)
        task, _ = load_saved_task(model_dir, list(overrides))
        return FineTunedModel(task, model, resolve_runtime(TrainConfig(device=device)), batch_tokens)
    if runtime != "torch":
        raise SeqtuneError(f"unknown runtime {runtime!r}: torch or onnx.")
    task, model = load_trained_model(model_dir, list(overrides))
    return FineTunedModel(task, model, resolve_runtime(TrainConfig(device=device, precision=precision)), batch_tokens)


def train(config: str | Path | RunConfig | None = None, overrides: list[str] = (), *, train=None, dev=None,
          test=None) -> Path:
    """Run a training config (a YAML path or a RunConfig); returns the run directory.

    `train`, `dev`, `test`: a pandas DataFrame or `datasets.Dataset` (or a path) in place of the
    config's data.train/dev/test, read with the config's column settings (other files then have their
    format detected from their names)."""
    from seqtune.training.setup import train_from_config

    cfg = config if isinstance(config, RunConfig) else load_config(config, list(overrides))
    given = {name: data for name, data in (("train", train), ("dev", dev), ("test", test)) if data is not None}
    with files_for(given) as paths:
        if paths:
            cfg = replace(cfg, data=replace(jsonl_settings(cfg.data, "train"), format="auto"))
        files = {name: paths.get(name, str(value)) for name, value in given.items()}
        if files:
            cfg = replace(cfg, data=replace(cfg.data, **files))
        return train_from_config(cfg)
