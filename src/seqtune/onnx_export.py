"""ONNX: `seqtune export MODEL_DIR --format onnx --output DIR`, and running the result with ONNX Runtime.

The exported graph is the whole TaskModel, encoder and task head, with dynamic batch and sequence
axes. Inputs: input_ids, attention_mask, token_type_ids (int64, (batch, sequence)); outputs:
"logits" ((batch, labels) or (batch, sequence, labels)), or "start_logits" and "end_logits" for QA.

`ExportGraph` is TaskModel's forward with its shape-dependent shortcuts fixed for a graph: the
attention mask is always applied and blocks never run packed (`Encoder.run_layers` chooses both per
batch, in Python, which a traced graph would freeze). Real tokens get the same outputs either way.
The export uses torch's TorchScript-based exporter (`dynamo=False`): the torch.export-based one
took ~10x longer on a toy model here and needs onnxscript.

On export, the ONNX model is run with ONNX Runtime on a batch of another shape than the traced one
(padding included) and compared with PyTorch: the largest difference over every real output is
printed, and above 1e-4 the export is an error. The output directory gets model.onnx plus the
model's config.json, tokenizer files and seqtune.json, so that `seqtune predict DIR --runtime onnx`
and `seqtune serve DIR --runtime onnx` rebuild the task from it (`OnnxModel` stands in for the
TaskModel in `inference.run_outputs`).
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from seqtune.errors import SeqtuneError
from seqtune.models.task_model import TaskModel

ONNX_FILE = "model.onnx"
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
TOLERANCE = 1e-4
OPSET = 17
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def require(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise SeqtuneError(f"ONNX export and the onnx runtime need {module}, which is not installed: "
                           "pip install 'seqtune[onnx]'.") from None


class ExportGraph(nn.Module):
    """TaskModel.forward on (input_ids, attention_mask, token_type_ids), masked and unpacked throughout."""

    def __init__(self, model: TaskModel):
        super().__init__()
        if model.head.batch_inputs:
            raise SeqtuneError(f"this model's head takes {', '.join(model.head.batch_inputs)} besides the "
                               "tokens; it cannot be exported to ONNX.")
        self.model = model
        # in eval mode from the start: the exporter restores the mode it found, recursively, so a
        # wrapper left in training mode would switch the model's dropout on after the export
        self.eval()

    def forward(self, input_ids, attention_mask, token_type_ids):
        encoder, head = self.model.encoder, self.model.head
        hidden = encoder.embeddings(input_ids, token_type_ids)
        mask = attention_mask.bool()[:, None, None, :]
        last = len(encoder.layers) - 1
        for i, layer in enumerate(encoder.layers):
            hidden = layer(hidden, mask, first_only=head.first_token_only and i == last)
        return head(hidden, attention_mask, encoder.pooler)


def output_names(task) -> list[str]:
    return ["start_logits", "end_logits"] if task.name == "qa" else ["logits"]


def sample_batch(task, lengths: list[int], seed: int) -> dict[str, torch.Tensor]:
    """[CLS] random tokens [SEP] of the given lengths, right-padded (a real batch's layout)."""
    generator = torch.Generator().manual_seed(seed)
    tokenizer = task.tokenizer
    features = []
    for n in lengths:
        middle = torch.randint(5, tokenizer.vocab_size, (n - 2,), generator=generator).tolist()
        features.append({"input_ids": [tokenizer.cls_id, *middle, tokenizer.sep_id]})
    return task.collate(features)


def with_all_inputs(batch: dict) -> dict[str, torch.Tensor]:
    out = {name: batch[name] for name in INPUTS if name in batch}
    out.setdefault("token_type_ids", torch.zeros_like(batch["input_ids"]))
    return out


def export_onnx(model_dir: str | Path, output: str | Path, overrides: list[str] = ()) -> dict:
    """Export a saved model; returns {"path", "max_difference", "checked_outputs", "opset"}."""
    require("onnx")
    from seqtune.inference import load_trained_model

    model_dir, output = Path(model_dir), Path(output)
    if (output / ONNX_FILE).exists() and output.resolve() == model_dir.resolve():
        raise SeqtuneError("--output must be another directory than the model's.")
    task, model = load_trained_model(model_dir, list(overrides))
    if task.name == "mlm":
        raise SeqtuneError("masked language models are not exported to ONNX (the MLM head reads the masked "
                           "positions besides the tokens); export a fine-tuned task model.")
    model.eval()
    graph = ExportGraph(model)
    longest = min(task.data.max_length, model.encoder.config.max_position_embeddings)
    traced = with_all_inputs(sample_batch(task, [min(8, longest), min(5, longest)], seed=0))
    output.mkdir(parents=True, exist_ok=True)
    names = output_names(task)
    axes = {name: {0: "batch", 1: "sequence"} for name in INPUTS}
    for name in names:
        axes[name] = {0: "batch"} if task.name in ("classification", "multilabel", "regression") else \
            {0: "batch", 1: "sequence"}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
        torch.onnx.export(graph, tuple(traced[name] for name in INPUTS), str(output / ONNX_FILE), dynamo=False,
                          input_names=list(INPUTS), output_names=names, dynamic_axes=axes, opset_version=OPSET)
    for item in model_dir.iterdir():  # the task, tokenizer and config travel with the graph
        if item.is_file() and item.name not in WEIGHT_FILES and item.name != ONNX_FILE:
            shutil.copy2(item, output / item.name)
    difference, count = check_parity(task, model, output / ONNX_FILE, longest)
    report = {"path": str(output / ONNX_FILE), "max_difference": difference, "checked_outputs": count,
              "opset": OPSET, "tolerance": TOLERANCE}
    (output / "export.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if not difference <= TOLERANCE:
        raise SeqtuneError(f"the ONNX model differs from PyTorch by up to {difference:.3g} (over {count} outputs), "
                           f"more than {TOLERANCE:g}: {output / ONNX_FILE} is not faithful; do not use it.")
    return report


def check_parity(task, model: TaskModel, onnx_path: Path, longest: int) -> tuple[float, int]:
    """Largest |ONNX Runtime - PyTorch| over the real outputs of a padded batch of another shape than
    the traced one (3 sequences, the longest up to max_length)."""
    lengths = [longest, max(2, longest // 2), 2]
    batch = sample_batch(task, lengths, seed=1)
    with torch.inference_mode():
        expected = task.split_outputs(model(batch), batch)
    got = task.split_outputs(OnnxModel(onnx_path)(batch), batch)
    diffs = [float(np.max(np.abs(a - b))) if a.size else 0.0 for a, b in zip(expected, got)]
    return max(diffs), sum(a.size for a in expected)


class OnnxModel:
    """An exported model in ONNX Runtime, called like a TaskModel: model(batch) -> logits (tensors)."""

    def __init__(self, path: str | Path, threads: int | None = None):
        ort = require("onnxruntime")
        path = Path(path)
        if not path.is_file():
            raise SeqtuneError(f"{path} not found: export the model first (seqtune export MODEL_DIR --format onnx "
                               "--output DIR), then give DIR.")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.outputs = [o.name for o in self.session.get_outputs()]

    def __call__(self, batch: dict):
        feed = {name: tensor.cpu().numpy().astype(np.int64) for name, tensor in with_all_inputs(batch).items()}
        results = [torch.from_numpy(r) for r in self.session.run(self.outputs, feed)]
        return tuple(results) if len(results) > 1 else results[0]

    def eval(self):
        return self

    def to(self, device):
        if torch.device(device).type != "cpu":
            raise SeqtuneError("--runtime onnx runs on the CPU (ONNX Runtime's CPU provider); use --device cpu.")
        return self
