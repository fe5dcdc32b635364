"""Running a model without training it: where it runs, batched outputs, metrics, loading saved models.

Used by the training loop (evaluation), the Python API, the `evaluate`/`predict`/`fill-mask`
commands, and anything else that serves or exports a model:

    runtime = resolve_runtime(TrainConfig(device="auto"))
    task, model = load_trained_model("runs/x/model")        # a directory written by save_model
    outputs = run_outputs(model, task, dataset, runtime)     # one array per feature
    task.metrics(outputs, dataset) / task.predictions(outputs, dataset)
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from seqtune.config import DataConfig, TrainConfig, build_dataclass, parse_override
from seqtune.data.batching import evaluation_batches
from seqtune.errors import SeqtuneError
from seqtune.models.checkpoint import (
    encoder_config_from_dir,
    load_encoder_state,
    read_json_object,
    read_weights,
    split_checkpoint,
)
from seqtune.models.encoder import Encoder
from seqtune.models.hf_config import GenericConfig
from seqtune.models.hf_encoder import load_generic_trained_model
from seqtune.models.mlm_head import MLM_LAYOUTS
from seqtune.models.task_model import SEQTUNE_FILE, TaskModel, model_for_finetuning
from seqtune.tasks import task_class
from seqtune.tasks.base import EncodedDataset, Task, collate_inputs
from seqtune.tasks.mlm import MaskedLMOptions, MaskedLMTask
from seqtune.tokenization import Tokenizer, load_tokenizer

# ---- where the model runs -------------------------------------------------------------------------

@dataclass
class Runtime:
    """Where and in which precision the model runs."""

    device: torch.device
    autocast_dtype: torch.dtype | None = None  # None: plain fp32
    eval_batch_tokens: int = 16384  # padded tokens per inference batch (evaluation, caching)

    @property
    def precision(self) -> str:
        """"fp32", "bf16" or "fp16", for logs and results."""
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.autocast_dtype]

    def autocast(self):
        if self.autocast_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)


def resolve_runtime(cfg: TrainConfig) -> Runtime:
    """Device, precision, threads and inference batch size from the `train:` settings."""
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    name = cfg.device
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SeqtuneError(f"train.device is {cfg.device!r} but no CUDA GPU is available; use cpu or auto.")
    device = torch.device(name)
    precision = cfg.precision
    if precision == "auto":
        # bf16 is ~100x slower than fp32 on common CPUs: fp32 there, bf16 on GPUs.
        precision = "bf16" if device.type == "cuda" else "fp32"
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    return Runtime(device, dtype, cfg.eval_batch_tokens or default_eval_batch_tokens(device))


def default_eval_batch_tokens(device: torch.device) -> int:
    """On CPU, batches of ~1k tokens run faster than large ones (their activations stay in the CPU
    caches): MiniLM over 13k SST-2 tokens took 4.4 s at 1,024 tokens per batch, 7.3 s at 16,384."""
    return 1024 if device.type == "cpu" else 16384


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


# ---- outputs and metrics --------------------------------------------------------------------------

def run_outputs(model, task: Task, dataset: EncodedDataset, runtime: Runtime,
                batch_tokens: int | None = None) -> list[np.ndarray]:
    """Model outputs for every feature, in feature order (batches are sorted by length)."""
    model.eval()
    outputs: list = [None] * len(dataset.features)
    with torch.inference_mode(), runtime.autocast():
        for idx in evaluation_batches(dataset.lengths, batch_tokens or runtime.eval_batch_tokens):
            batch = to_device(task.collate([dataset.features[i] for i in idx]), runtime.device)
            for i, out in zip(idx, task.split_outputs(model(batch), batch)):
                outputs[i] = out
    return outputs


def evaluate(model, task: Task, dataset: EncodedDataset, runtime: Runtime, batch_tokens: int | None = None) -> dict:
    return task.metrics(run_outputs(model, task, dataset, runtime, batch_tokens), dataset)


def scalar_metrics(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def format_metrics(metrics: dict) -> str:
    """"accuracy 0.9160, examples 872": fractions with 4 decimals, counts as integers."""
    return ", ".join(f"{k} {v}" if isinstance(v, int) else f"{k} {v:.4f}" for k, v in scalar_metrics(metrics).items())


def single_predicted_label(metrics: dict) -> str | None:
    """The label that every prediction went to, when the gold labels are two or more and the
    predictions one: a model stuck at one class (often the majority, e.g. every residue coil). None
    otherwise, and for metrics without a labels x labels `confusion_matrix` (rows gold, columns
    predicted; classification, tagging and residue labelling give one)."""
    confusion = metrics.get("confusion_matrix")
    if not isinstance(confusion, dict) or "labels" not in confusion:
        return None
    matrix = np.asarray(confusion["matrix"])
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.size == 0:
        return None
    predicted, gold = np.flatnonzero(matrix.sum(axis=0)), np.flatnonzero(matrix.sum(axis=1))
    return str(confusion["labels"][predicted[0]]) if len(predicted) == 1 and len(gold) >= 2 else None


# ---- saved models ---------------------------------------------------------------------------------

# Task settings a saved model may take at evaluate/predict time: they change decoding or
# post-processing, never the weights.
INFERENCE_OPTIONS = frozenset({"decode", "threshold", "n_best", "max_answer_length", "null_score_diff_threshold",
                               "doc_stride", "window_stride"})


def load_trained_model(path: str | Path, overrides: list[str] = ()) -> tuple[Task, TaskModel]:
    """Rebuild (task, model) from a directory written by `save_model`. Strict: every weight must match.

    `overrides`: "data.key=value" settings for the files to come (other column names, format, ...), and
    "task.key=value" for the task settings that only change how outputs are read (INFERENCE_OPTIONS)."""
    path = Path(path)
    task, meta = load_saved_task(path, overrides)
    return task, _load_weights(task, meta, path)


def load_saved_task(path: str | Path, overrides: list[str] = ()) -> tuple[Task, dict]:
    """The task (settings, tokenizer, fitted state) of a directory written by `save_model` or by
    `seqtune export`, and its seqtune.json; no weights are read. `overrides` as in load_trained_model."""
    path = Path(path)
    meta_path = path / SEQTUNE_FILE
    if not meta_path.is_file():
        raise SeqtuneError(
            f"{path} has no {SEQTUNE_FILE}: it is not a model saved by seqtune. To fine-tune a plain "
            "Hugging Face checkpoint, give it as model.path in a training config."
        )
    meta = read_json_object(meta_path)
    if not (isinstance(meta.get("task"), dict) and isinstance(meta["task"].get("type"), str)
            and isinstance(meta.get("data"), dict) and "task_state" in meta):
        raise SeqtuneError(f"{meta_path} is not valid: it needs the 'task' (with its 'type'), 'data' and "
                           "'task_state' that seqtune saves with a model; save the model again.")
    cls = task_class(meta["task"]["type"])
    task_raw = dict(meta["task"])
    data_raw = {**meta["data"], "max_rows": None}  # a training-time row limit must not cut files given later
    for text in overrides:
        keys, value = parse_override(text)
        if len(keys) == 2 and keys[0] == "data":
            data_raw[keys[1]] = value
        elif len(keys) == 2 and keys[0] == "task" and keys[1] in INFERENCE_OPTIONS:
            task_raw[keys[1]] = value
        else:
            raise SeqtuneError(
                f"--set {text!r}: a saved model takes data.* settings and the task settings that only "
                f"change how outputs are read ({', '.join(f'task.{k}' for k in sorted(INFERENCE_OPTIONS))}); "
                "its other settings and weights are fixed, e.g. --set data.text_column=sentence."
            )
    options = build_dataclass(cls.Options, task_raw, "task")
    data = build_dataclass(DataConfig, data_raw, "data")
    tokenizer = load_tokenizer(path)
    task = cls(options, data, tokenizer)
    task.load_state(meta["task_state"])
    return task, meta


def _load_weights(task: Task, meta: dict, path: Path) -> TaskModel:
    cfg = encoder_config_from_dir(path)
    if isinstance(cfg, GenericConfig):  # no native implementation: through transformers (hf_encoder.py)
        return load_generic_trained_model(path, task, cfg)
    encoder = Encoder(cfg, add_pooler=meta.get("has_pooler", task.needs_pooler))
    split = split_checkpoint(read_weights(path), cfg.family.prefix, cfg.model_type)
    load_encoder_state(encoder, split, str(path))
    head = task.build_head(cfg)
    expected = head.state_dict()
    missing = [k for k in expected if k not in split.other]
    if missing:
        raise SeqtuneError(f"{path}: head weights missing from the checkpoint: {', '.join(missing)}")
    head.load_state_dict({k: split.other[k] for k in expected})
    model = TaskModel(encoder, head)
    model.eval()
    return model


# ---- probing a masked language model: `seqtune fill-mask` -------------------------------------------

def load_masked_lm(path: str, device: str = "auto") -> tuple[TaskModel, Tokenizer]:
    """(model, tokenizer) from a seqtune MLM directory or any Hugging Face checkpoint of a family with
    an MLM head (`cls.predictions.*`, RoBERTa's / ESM's `lm_head.*`, ...). The model is in eval mode on the chosen device."""
    if (Path(path) / SEQTUNE_FILE).is_file():
        task, model = load_trained_model(path)
        if task.name != "mlm":
            raise SeqtuneError(f"{path} was trained for the {task.name!r} task; fill-mask needs a masked "
                               "language model (seqtune pretrain, or a checkpoint with an MLM head).")
        tokenizer = task.tokenizer
    else:
        weights = read_weights(path)
        cfg = encoder_config_from_dir(path)
        layout = MLM_LAYOUTS.get(cfg.model_type)
        if layout is None or not all(k in weights for k in layout.keys):
            what = f"{layout.keys[-1].rsplit('.', 1)[0]}.* weights" if layout else f"model_type {cfg.model_type!r}"
            raise SeqtuneError(f"{path} has no MLM head ({what}), so it cannot predict masked tokens.")
        tokenizer = load_tokenizer(path)
        task = MaskedLMTask(MaskedLMOptions(), DataConfig(max_length=cfg.max_tokens), tokenizer)
        model, _ = model_for_finetuning(path, task, weights)
    model.to(resolve_runtime(TrainConfig(device=device)).device).eval()
    return model, tokenizer


def fill_mask(model: TaskModel, tokenizer: Tokenizer, texts: list[str], top_k: int = 5) -> list[list[dict]]:
    """Top-k predictions at every [MASK] of each text.

    Returns, per text, one entry per [MASK]: {"position": token index, "predictions":
    [{"token", "id", "probability"}, ...]} (probabilities over the tokenizer's whole vocabulary).
    """
    if tokenizer.mask_id is None:
        raise SeqtuneError("the tokenizer has no [MASK] token.")
    mask = tokenizer.special["mask"]  # [MASK]; <mask> for RoBERTa, XLM-R and ESM
    tokenizer.backend.add_special_tokens([mask])  # so "[MASK]" in text is one token, not "[", "mask", "]"
    encodings = tokenizer.backend.encode_batch(texts)
    for text, enc in zip(texts, encodings):
        if tokenizer.mask_id not in enc.ids:
            raise SeqtuneError(f"{text!r} has no {mask} token to fill.")
    features = [{"input_ids": enc.ids} for enc in encodings]
    batch = collate_inputs(features, tokenizer.pad_id)
    batch["mlm_positions"] = batch["input_ids"] == tokenizer.mask_id
    device = next(model.parameters()).device
    batch = {k: v.to(device) for k, v in batch.items()}
    with torch.inference_mode():
        # A model's vocabulary may be padded past the tokenizer's (e.g. to a multiple of 8): those
        # output rows are no token, so they are left out.
        vocab_size = tokenizer.backend.get_vocab_size(with_added_tokens=True)
        probs = model(batch)[:, :vocab_size].float().softmax(-1)  # (M, V)
    top = probs.topk(min(top_k, probs.shape[-1]), dim=-1)
    rows, cols = batch["mlm_positions"].nonzero(as_tuple=True)
    out: list[list[dict]] = [[] for _ in texts]
    for m, (row, col) in enumerate(zip(rows.tolist(), cols.tolist())):
        out[row].append({
            "position": col,
            "predictions": [
                {"token": tokenizer.backend.id_to_token(i), "id": i, "probability": round(p, 6)}
                for p, i in zip(top.values[m].tolist(), top.indices[m].tolist())
            ],
        })
    return out
