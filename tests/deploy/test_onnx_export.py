"""`seqtune export --format onnx`: every task head matches PyTorch through ONNX Runtime, on shapes other
than the traced one; `predict --runtime onnx` gives what the PyTorch model gives."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tiny_models import (
    classification_model,
    multilabel_model,
    pair_classification_model,
    qa_model,
    regression_model,
    residue_model,
    tagging_model,
    write_char_checkpoint,
)

import seqtune
from seqtune.cli import main

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

# (builder, head, inputs to predict)
HEADS = {
    "classification-pooler": (classification_model, "pooler", ["the film was fun", "dull", "not very good but fun !"]),
    "classification-mean": (classification_model, "mean", ["the film was fun", "dull"]),
    "classification-cls": (classification_model, "cls", ["the film was fun", "dull"]),
    "classification-mlp": (classification_model, "mlp", ["the film was fun", "dull"]),
    "pair": (pair_classification_model, None, [("the film was fun", "it was great"), ("dull", "the plot is boring")]),
    "multilabel": (multilabel_model, None, ["the film was fun", "dull"]),
    "regression": (regression_model, None, ["the film was fun", "dull"]),
    "tagging-linear": (tagging_model, "linear", ["the film was great", "the actors love it and the story is fun"]),
    "tagging-mlp": (tagging_model, "mlp", ["the film was great"]),
    "tagging-conv": (tagging_model, "conv", ["the film was great", "dull"]),
    "residues-conv": (residue_model, "conv", ["MKVLAAGHE", "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ"]),
    "residues-linear": (residue_model, "linear", ["MKVLAAGHE"]),
    "qa": (qa_model, None, [{"question": "what was it?", "context": "the film was great fun but the plot dull " * 4}]),
}


@pytest.fixture(scope="module")
def char_checkpoint(tmp_path_factory):
    return write_char_checkpoint(tmp_path_factory.mktemp("char") / "bert")


@pytest.mark.parametrize("name", HEADS)
def test_every_task_head_matches_pytorch_through_onnx_runtime(name, tiny_checkpoint, char_checkpoint, tmp_path,
                                                              capsys):
    build, head, inputs = HEADS[name]
    checkpoint = char_checkpoint if name.startswith("residues") else tiny_checkpoint
    model_dir = build(checkpoint, tmp_path / "model", head) if head else build(checkpoint, tmp_path / "model")
    assert main(["export", str(model_dir), "--format", "onnx", "--output", str(tmp_path / "onnx")]) == 0
    err = capsys.readouterr().err
    assert "max difference" in err
    report = json.loads((tmp_path / "onnx" / "export.json").read_text())
    assert report["max_difference"] <= 1e-4 and report["checked_outputs"] > 0
    assert not (tmp_path / "onnx" / "model.safetensors").exists()

    torch_model = seqtune.load(model_dir, device="cpu")
    onnx_model = seqtune.load(tmp_path / "onnx", runtime="onnx")
    assert type(onnx_model.model).__name__ == "OnnxModel"
    for batch in (inputs, inputs[:1]):  # other batch sizes and lengths than the export's
        dataset = torch_model.encode_inputs(batch)
        from seqtune.inference import run_outputs

        expected = run_outputs(torch_model.model, torch_model.task, dataset, torch_model.runtime)
        got = run_outputs(onnx_model.model, onnx_model.task, dataset, onnx_model.runtime)
        assert max(float(np.abs(a - b).max()) for a, b in zip(expected, got)) <= 1e-4
    # the decoded predictions agree (probabilities to their 6 decimals, up to float noise)
    a, b = torch_model.predict(inputs), onnx_model.predict(inputs)
    assert json.dumps(a, sort_keys=True).count(":") == json.dumps(b, sort_keys=True).count(":")
    for x, y in zip(a, b):
        for key in ("label", "labels", "tags", "answer", "tokens", "sequence"):
            assert x.get(key) == y.get(key)


def test_predict_and_serve_take_the_onnx_runtime(tiny_checkpoint, tmp_path):
    model_dir = classification_model(tiny_checkpoint, tmp_path / "model")
    assert main(["export", str(model_dir), "--output", str(tmp_path / "onnx")]) == 0
    data = tmp_path / "in.tsv"
    data.write_text("text\tlabel\nthe film was fun\tpositive\ndull and boring\tnegative\n")
    outs = {}
    for runtime, directory in (("torch", model_dir), ("onnx", tmp_path / "onnx")):
        out = tmp_path / f"{runtime}.jsonl"
        assert main(["predict", str(directory), str(data), "--runtime", runtime, "--output", str(out)]) == 0
        outs[runtime] = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["label"] for r in outs["torch"]] == [r["label"] for r in outs["onnx"]]
    for a, b in zip(outs["torch"], outs["onnx"]):
        assert np.allclose(list(a["probabilities"].values()), list(b["probabilities"].values()), atol=1e-5)


def test_onnx_runtime_without_an_export_is_a_clear_error(tiny_checkpoint, tmp_path, capsys):
    model_dir = classification_model(tiny_checkpoint, tmp_path / "model")
    data = tmp_path / "in.tsv"
    data.write_text("text\nthe film\n")
    assert main(["predict", str(model_dir), str(data), "--runtime", "onnx"]) == 2
    err = capsys.readouterr().err
    assert "export the model first" in err and "Traceback" not in err


def test_an_export_beyond_the_tolerance_fails(tiny_checkpoint, tmp_path, capsys, monkeypatch):
    import seqtune.onnx_export

    monkeypatch.setattr(seqtune.onnx_export, "TOLERANCE", -1.0)  # any difference, even 0, is too much
    model_dir = classification_model(tiny_checkpoint, tmp_path / "model")
    assert main(["export", str(model_dir), "--output", str(tmp_path / "onnx")]) == 2
    err = capsys.readouterr().err
    assert "is not faithful" in err and "Traceback" not in err
