"""Row gradients of embedding tables (training/gradients.py): clipping with them, which tables give them,
and the training loop's results with them against the dense gradients."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import write_sentiment_tsv, write_tiny_checkpoint
from safetensors.torch import load_file

from seqtune.cli import main
from seqtune.config import DataConfig, StrategyConfig, TrainConfig
from seqtune.models.task_model import model_for_finetuning
from seqtune.tasks.classification import ClassificationOptions, ClassificationTask
from seqtune.tokenization import load_tokenizer
from seqtune.training import gradients, optim
from seqtune.training.optim import build_optimizer


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("bert"))


def tiny_model(checkpoint):
    task = ClassificationTask(ClassificationOptions(type="classification"), DataConfig(), load_tokenizer(checkpoint))
    task.labels = ["neg", "pos"]
    return model_for_finetuning(str(checkpoint), task)[0]


def parameters_with_grads(seed: int, sparse: bool) -> list[torch.Tensor]:
    """A (50, 4) table whose gradient uses rows 3, 7, 7, 20 (row 7 twice) and two dense parameters."""
    g = torch.Generator().manual_seed(seed)
    table, w, b = (torch.zeros(50, 4, requires_grad=True), torch.zeros(4, 4, requires_grad=True),
                   torch.zeros(4, requires_grad=True))
    rows, values = torch.tensor([3, 7, 7, 20]), torch.randn(4, 4, generator=g)
    sparse_grad = torch.sparse_coo_tensor(rows[None], values, (50, 4), check_invariants=True)
    table.grad = sparse_grad if sparse else sparse_grad.to_dense()
    w.grad, b.grad = torch.randn(4, 4, generator=g), torch.randn(4, generator=g)
    return [table, w, b]


@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_clipping_a_sparse_gradient_equals_clipping_its_dense_equal(max_norm):
    ours, theirs = parameters_with_grads(0, sparse=True), parameters_with_grads(0, sparse=False)
    total = gradients.clip_gradients(ours, max_norm)
    expected = torch.nn.utils.clip_grad_norm_(theirs, max_norm)
    torch.testing.assert_close(total, expected, rtol=1e-6, atol=0)
    assert ours[0].grad.is_sparse and ours[0].grad.is_coalesced()  # row 7 once, its two parts summed
    assert ours[0].grad.indices().tolist() == [[3, 7, 20]]
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a.grad.to_dense(), b.grad, rtol=1e-6, atol=0)
    if max_norm == 0.5:  # (clipped: the norm is about 6)
        torch.testing.assert_close(torch.linalg.vector_norm(torch.cat([p.grad.to_dense().flatten() for p in ours])),
                                   torch.tensor(0.5), rtol=1e-5, atol=0)


def test_without_a_sparse_gradient_clipping_is_torchs_own():
    ours, theirs = parameters_with_grads(1, sparse=False), parameters_with_grads(1, sparse=False)
    assert torch.equal(gradients.clip_gradients(ours, 0.5), torch.nn.utils.clip_grad_norm_(theirs, 0.5))
    for a, b in zip(ours, theirs):
        assert torch.equal(a.grad, b.grad)


def test_only_row_sparse_tables_give_row_gradients_and_only_within(monkeypatch, checkpoint):
    model = tiny_model(checkpoint).eval()  # (no dropout: the same forward each time)
    word, position = model.encoder.embeddings.word, model.encoder.embeddings.position
    monkeypatch.setattr(optim, "EMBEDDING_ROWS", word.num_embeddings)  # the tiny vocabulary is small
    ids = torch.tensor([[2, 5, 5, 9, 3]])
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids)}

    def table_grads():
        model.zero_grad(set_to_none=True)
        model(batch).sum().backward()
        return word.weight.grad, position.weight.grad

    optimizer = build_optimizer(model, TrainConfig())
    assert gradients.row_gradient_tables(model, optimizer) == [word]  # (the position table is smaller)
    dense_word, _ = table_grads()
    with gradients.row_gradients(model, optimizer):
        sparse_word, position_grad = table_grads()
    assert sparse_word.is_sparse and not position_grad.is_sparse
    assert sorted(set(sparse_word.coalesce().indices()[0].tolist())) == [2, 3, 5, 9]
    torch.testing.assert_close(sparse_word.to_dense(), dense_word, rtol=1e-6, atol=1e-7)
    assert not table_grads()[0].is_sparse and word.sparse is False  # as it was, afterwards
    with gradients.row_gradients(model, optimizer, enabled=False):  # (under torchrun)
        assert not table_grads()[0].is_sparse
    # Adam without bias correction (no fused kernel, no row-sparse state): dense gradients
    plain = build_optimizer(model, TrainConfig(), StrategyConfig(bias_correction=False))
    assert gradients.row_gradient_tables(model, plain) == []
    word.weight.requires_grad_(False)  # a frozen table has no gradient at all
    assert gradients.row_gradient_tables(model, build_optimizer(model, TrainConfig())) == []


def test_training_with_row_gradients_matches_dense_gradients(monkeypatch, tmp_path):
    """The same run twice, the word embeddings' gradients sparse and dense: the loop used the row
    gradients, and the saved weights agree to rounding (a repeated token's rows are summed in another
    order)."""
    checkpoint = write_tiny_checkpoint(tmp_path / "bert")
    monkeypatch.setattr(optim, "EMBEDDING_ROWS", 16)
    train = write_sentiment_tsv(tmp_path / "train.tsv", n=48)
    dev = write_sentiment_tsv(tmp_path / "dev.tsv", n=16, seed=1)
    used = []
    row_gradient_tables = gradients.row_gradient_tables

    def recorded(model, optimizer):
        used.append(tables := row_gradient_tables(model, optimizer))
        return tables

    weights = {}
    for name in ("rows", "dense"):
        monkeypatch.setattr(gradients, "row_gradient_tables", recorded if name == "rows" else lambda m, o: [])
        argv = ["train", "--set", "task.type=classification", "--set", f"model.path={checkpoint}",
                "--set", f"data.train={train}", "--set", f"data.dev={dev}", "--set", "data.text_column=sentence",
                "--set", "train.epochs=3", "--set", "train.batch_size=8", "--set", "train.lr=3e-3",
                "--set", "train.max_grad_norm=0.5", "--set", "train.progress=false",
                "--set", f"output_dir={tmp_path / name}"]
        assert main(argv) == 0
        run = next((tmp_path / name).iterdir())
        assert json.loads((run / "results.json").read_text())["train"]["steps"] == 18
        weights[name] = load_file(run / "model" / "model.safetensors")
    word = next(k for k in weights["rows"] if k.endswith("word_embeddings.weight"))
    assert len(used) == 1 and weights["rows"][word].shape[0] in [m.num_embeddings for m in used[0]]
    for key, value in weights["rows"].items():
        torch.testing.assert_close(value, weights["dense"][key], rtol=0, atol=1e-5)
    initial = next(v for k, v in load_file(checkpoint / "model.safetensors").items() if k.endswith(word[-22:]))
    assert not torch.equal(weights["rows"][word], initial)  # (trained)
