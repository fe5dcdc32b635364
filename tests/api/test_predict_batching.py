"""Inference batching: inputs are sorted by length into token-budget batches and the results come back
in input order, the same whatever the batch size (`batch_tokens`, `--batch-tokens`)."""

from __future__ import annotations

import json

import pytest
from conftest import WORDS

from seqtune import load
from seqtune.cli import main
from seqtune.config import DataConfig, TrainConfig
from seqtune.errors import SeqtuneError
from seqtune.inference import resolve_runtime
from seqtune.models.task_model import model_for_finetuning, save_model
from seqtune.tasks.classification import ClassificationOptions, ClassificationTask
from seqtune.tasks.tagging import TaggingOptions, TaggingTask
from seqtune.tokenization import load_tokenizer

# lengths deliberately out of order (long, short, middle, ...), some equal
LENGTHS = [9, 1, 5, 14, 3, 9, 2, 11, 6, 1, 7, 4]
SENTENCES = [[WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(n)] for i, n in enumerate(LENGTHS)]


def saved_model(directory, checkpoint, kind: str):
    """A model as `seqtune train` saves it (fresh head on the tiny random BERT): predictions are
    arbitrary but fixed, which is all that batching may not change."""
    tokenizer = load_tokenizer(checkpoint)
    if kind == "classification":
        task = ClassificationTask(ClassificationOptions(type="classification"), DataConfig(), tokenizer)
        task.load_state({"labels": ["neg", "neutral", "pos"]})
    else:
        task = TaggingTask(TaggingOptions(type="tagging"), DataConfig(), tokenizer)
        task.load_state({"labels": ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"], "scheme": "IOB2"})
    model, _ = model_for_finetuning(str(checkpoint), task)
    return save_model(directory, model, task, tokenizer)


@pytest.fixture(scope="module", params=["classification", "tagging"])
def kind_and_dir(request, tmp_path_factory, tiny_checkpoint):
    kind = request.param
    return kind, saved_model(tmp_path_factory.mktemp(kind), tiny_checkpoint, kind)


def inputs_for(kind: str) -> list:
    return [" ".join(words) for words in SENTENCES] if kind == "classification" else SENTENCES


def predict(model_dir, kind: str, batch_tokens: int | None) -> list[dict]:
    model = load(model_dir, device="cpu", batch_tokens=batch_tokens)
    return model.predict(inputs_for(kind), probabilities=kind == "tagging")


def test_results_come_back_in_input_order(kind_and_dir):
    kind, model_dir = kind_and_dir
    records = predict(model_dir, kind, batch_tokens=40)
    key = "text" if kind == "classification" else "tokens"
    assert [r[key] for r in records] == inputs_for(kind)


@pytest.mark.parametrize("batch_tokens", [1, 16, 40, 100_000, None])
def test_predictions_are_the_same_for_every_batching(kind_and_dir, batch_tokens):
    """batch_tokens=1: every input alone (no padding at all); 100,000: all in one padded batch."""
    kind, model_dir = kind_and_dir
    alone = predict(model_dir, kind, batch_tokens=1)
    got = predict(model_dir, kind, batch_tokens)
    label = "label" if kind == "classification" else "tags"
    assert [r[label] for r in got] == [r[label] for r in alone]
    for a, b in zip(got, alone):
        for name, values in a["probabilities"].items():
            assert values == pytest.approx(b["probabilities"][name], abs=2e-6)


def test_batch_tokens_sets_the_batches_the_model_runs(kind_and_dir):
    kind, model_dir = kind_and_dir
    calls = []
    for batch_tokens, expected in ((1, len(LENGTHS)), (100_000, 1)):
        model = load(model_dir, device="cpu", batch_tokens=batch_tokens)
        model.model.register_forward_hook(lambda module, args, output: calls.append(args[0]["input_ids"].shape))
        model.predict(inputs_for(kind))
        assert len(calls) == expected
        calls.clear()
    model = load(model_dir, device="cpu", batch_tokens=40)
    model.model.register_forward_hook(lambda module, args, output: calls.append(args[0]["input_ids"].shape))
    model.predict(inputs_for(kind))
    assert all(rows * length <= 40 for rows, length in calls)
    lengths = [length for _, length in calls]
    assert lengths == sorted(lengths) and sum(rows for rows, _ in calls) == len(LENGTHS)  # shortest first


def test_the_default_is_the_runtime_batch_size(kind_and_dir):
    """1,024 tokens on CPU (faster there than large batches), as evaluation during training uses."""
    _, model_dir = kind_and_dir
    expected = resolve_runtime(TrainConfig(device="cpu")).eval_batch_tokens
    assert load(model_dir, device="cpu").batch_tokens == expected == 1024
    assert load(model_dir, device="cpu", batch_tokens=64).batch_tokens == 64


def test_the_command_option(kind_and_dir, tmp_path, capsys):
    kind, model_dir = kind_and_dir
    if kind == "classification":
        data = tmp_path / "in.tsv"
        data.write_text("sentence\n" + "\n".join(inputs_for(kind)) + "\n")
        sets = ["--set", "data.text_column=sentence"]
    else:
        data = tmp_path / "in.txt"
        data.write_text("\n\n".join("\n".join(f"{w} X" for w in words) for words in SENTENCES) + "\n")
        sets = ["--set", "data.format=conll", "--set", "data.token_column=0"]
    outputs = []
    for option in (["--batch-tokens", "7"], []):
        out = tmp_path / f"out{len(option)}.jsonl"
        assert main(["predict", str(model_dir), str(data), "--output", str(out), "--device", "cpu",
                     *sets, *option]) == 0
        outputs.append([json.loads(line) for line in out.read_text().splitlines()])
    label = "label" if kind == "classification" else "tags"
    assert [r[label] for r in outputs[0]] == [r[label] for r in outputs[1]] and len(outputs[0]) == len(LENGTHS)
    capsys.readouterr()
    assert main(["predict", str(model_dir), str(data), "--batch-tokens", "0", *sets]) == 2
    assert "--batch-tokens" in capsys.readouterr().err


def test_precision_bf16_runs_under_autocast_and_stays_close(kind_and_dir):
    kind, model_dir = kind_and_dir
    model = load(model_dir, device="cpu", precision="bf16")
    assert model.runtime.precision == "bf16" and load(model_dir, device="cpu").runtime.precision == "fp32"
    half, full = model.predict(inputs_for(kind), probabilities=kind == "tagging"), predict(model_dir, kind, None)
    for a, b in zip(half, full):
        for name, values in a["probabilities"].items():
            assert values == pytest.approx(b["probabilities"][name], abs=0.05)
    with pytest.raises(SeqtuneError, match="precision"):
        load(model_dir, device="cpu", precision="int8")


def test_predicting_does_not_import_the_metric_libraries(kind_and_dir):
    """scikit-learn and scipy take seconds to import; load + predict (the whole `seqtune predict`) needs neither."""
    import subprocess
    import sys

    kind, model_dir = kind_and_dir
    code = (f"import sys, seqtune; m = seqtune.load({str(model_dir)!r}, device='cpu'); "
            f"m.predict({inputs_for(kind)!r}); "
            "print(sorted(n for n in ('sklearn', 'scipy', 'seqeval') if n in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
