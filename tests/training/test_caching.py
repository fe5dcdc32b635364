"""Activation caching of frozen layers: same outputs, same training losses, fewer computations."""

from __future__ import annotations

import pytest
import torch
from conftest import write_sentiment_tsv, write_tiny_checkpoint

from seqtune.cli import main
from seqtune.config import DataConfig, StrategyConfig, TrainConfig
from seqtune.models.task_model import model_for_finetuning
from seqtune.tasks.classification import ClassificationOptions, ClassificationTask
from seqtune.tokenization import load_tokenizer
from seqtune.training.caching import FrozenBottomModel, build_cache, model_for_training, should_cache
from seqtune.inference import Runtime
from seqtune.training.loop import train
from seqtune.training.strategies import apply_strategy

CPU = Runtime(torch.device("cpu"))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("caching")
    return {"checkpoint": write_tiny_checkpoint(d / "bert", layers=3),
            "train": write_sentiment_tsv(d / "train.tsv", n=32), "dev": write_sentiment_tsv(d / "dev.tsv", n=16, seed=1)}


def prepare(files, strategy: StrategyConfig, head: str = "pooler"):
    """(task, train set, dev set, model with the strategy applied, frozen layer count); seeded."""
    torch.manual_seed(0)
    task = ClassificationTask(ClassificationOptions(type="classification", head=head),
                              DataConfig(text_column="sentence"), load_tokenizer(files["checkpoint"]))
    examples = task.read(str(files["train"]), "train")
    task.fit(examples)
    train_set = task.encode(examples, "train")
    dev_set = task.encode(task.read(str(files["dev"]), "dev"), "dev")
    model, _ = model_for_finetuning(str(files["checkpoint"]), task)
    frozen = apply_strategy(model, strategy)
    return task, train_set, dev_set, model, frozen


def train_and_record(files, tmp_path, strategy: StrategyConfig, head: str = "pooler"):
    task, train_set, dev_set, model, frozen = prepare(files, strategy, head)
    cfg = TrainConfig(epochs=3, batch_size=8, lr=1e-3, eval_every_steps=1, progress=False, seed=3)
    trained = model_for_training(model, frozen, strategy, task, [train_set, dev_set], CPU, cfg.epochs, tmp_path,
                                 print)
    records = []
    start = [p.detach().clone() for p in trained.parameters() if p.requires_grad]
    train(trained, task, train_set, dev_set, cfg, CPU, print, records.append, on_best=lambda: None,
          strategy=strategy)
    moved = all(not torch.equal(a, p) for a, p in zip(start, (p for p in trained.parameters() if p.requires_grad)))
    return records, moved, trained


@pytest.mark.parametrize("top_layers, head", [(1, "pooler"), (0, "mlp")])
def test_cached_and_uncached_frozen_bottom_training_give_the_same_losses(files, tmp_path, top_layers, head):
    cached_records, cached, cached_model = train_and_record(
        files, tmp_path, StrategyConfig(top_layers=top_layers, cache_frozen=True), head)
    plain_records, plain, plain_model = train_and_record(
        files, tmp_path, StrategyConfig(top_layers=top_layers, cache_frozen=False), head)
    assert plain_model.cache is None
    cache = cached_model.cache
    assert cache.misses == 0 and cache.hits >= len(cached_records)  # every batch, train and dev, came from it
    assert len(cached_records) == len(plain_records) >= 12  # 4 steps/epoch x 3 epochs, evaluated every step
    losses = torch.tensor([r["train_loss"] for r in cached_records])
    torch.testing.assert_close(losses, torch.tensor([r["train_loss"] for r in plain_records]), rtol=1e-5, atol=1e-6)
    assert cached and plain  # every trainable tensor moved: the test does not compare two no-ops
    assert [r["accuracy"] for r in cached_records] == [r["accuracy"] for r in plain_records]


def test_frozen_layers_run_in_eval_mode_while_the_top_trains(files):
    _, _, _, model, frozen = prepare(files, StrategyConfig(top_layers=1))
    wrapped = FrozenBottomModel(model, frozen).train()
    assert not wrapped.encoder.embeddings.training
    assert [layer.training for layer in wrapped.encoder.layers] == [False, False, True]
    assert wrapped.head.training and wrapped.encoder.pooler.training
    # same parameter names as the TaskModel: optimiser groups and counts read the same
    assert [n for n, _ in wrapped.named_parameters()] == [n for n, _ in model.named_parameters()]


def padded_batch(task, dataset, idx):
    return task.collate([dataset.features[i] for i in idx])


def test_cached_forward_equals_the_task_model_in_eval_mode_and_misses_are_computed(files, tmp_path):
    task, train_set, dev_set, model, frozen = prepare(files, StrategyConfig(top_layers=1))
    model.eval()
    wrapped = FrozenBottomModel(model, frozen).eval()
    wrapped.cache = build_cache(wrapped, task, [train_set], CPU, StrategyConfig(), 4096, tmp_path)
    batch = padded_batch(task, train_set, [0, 5, 7, 11])  # different lengths: padded
    assert not bool(batch["attention_mask"].all())
    with torch.no_grad():
        expected = model(batch)
        torch.testing.assert_close(wrapped(batch), expected, rtol=1e-5, atol=1e-6)
        assert wrapped.cache.hits == 1
        dev_batch = padded_batch(task, dev_set, [0, 1, 2])  # not cached (only train was)
        assert wrapped.cache.lookup(dev_batch) is None
        torch.testing.assert_close(wrapped(dev_batch), model(dev_batch), rtol=1e-5, atol=1e-6)


def test_disk_cache_equals_memory_cache_and_fp16_is_close(files, tmp_path):
    task, train_set, _, model, frozen = prepare(files, StrategyConfig(top_layers=0))
    wrapped = FrozenBottomModel(model, frozen)
    memory = build_cache(wrapped, task, [train_set], CPU, StrategyConfig(), 4096, tmp_path)
    disk = build_cache(wrapped, task, [train_set], CPU, StrategyConfig(cache_memory_mb=0), 4096, tmp_path)
    half = build_cache(wrapped, task, [train_set], CPU, StrategyConfig(cache_dtype="fp16"), 4096, tmp_path)
    assert not memory.on_disk and disk.on_disk and half.storage.dtype == torch.float16
    distinct = len({tuple(f["input_ids"]) for f in train_set.features})
    assert len(memory.index) == distinct  # duplicate inputs share one entry
    batch = padded_batch(task, train_set, list(range(10)))
    reference = memory.lookup(batch)
    assert torch.equal(disk.lookup(batch), reference)
    torch.testing.assert_close(half.lookup(batch), reference, rtol=1e-2, atol=1e-2)
    real = batch["attention_mask"].bool()
    assert torch.all(reference[~real] == 0)  # padding positions are zeros
    assert list(tmp_path.iterdir()) == []  # the on-disk cache is an unnamed temporary file


def test_should_cache():
    assert should_cache(StrategyConfig(), frozen_layers=2, epochs=3)
    assert not should_cache(StrategyConfig(), frozen_layers=0, epochs=3)  # embeddings only: not worth it
    assert not should_cache(StrategyConfig(), frozen_layers=2, epochs=1)  # seen once: nothing to reuse
    assert should_cache(StrategyConfig(cache_frozen=True), frozen_layers=0, epochs=1)
    assert not should_cache(StrategyConfig(cache_frozen=False), frozen_layers=6, epochs=3)


def test_cli_training_with_a_disk_cache(files, tmp_path):
    code = main(["train", "--set", "task.type=classification", "--set", f"model.path={files['checkpoint']}",
                 "--set", f"data.train={files['train']}", "--set", f"data.dev={files['dev']}",
                 "--set", "data.text_column=sentence", "--set", "train.epochs=2", "--set", "train.progress=false",
                 "--set", f"output_dir={tmp_path}", "--set", "strategy.top_layers=0",
                 "--set", "strategy.cache_memory_mb=0"])
    assert code == 0
    log = (next(tmp_path.iterdir()) / "log.txt").read_text()
    assert "activation cache: embeddings + 3 frozen layers" in log and "memory-mapped file" in log


def test_whole_epochs_end_the_run_when_later_epochs_hold_fewer_batches(files, tmp_path, monkeypatch):
    """Token-budget batching can give a later epoch fewer batches than the first (whose count sets the
    step total): the run still ends after train.epochs epochs, with one evaluation per epoch."""
    import seqtune.training.loop as loop

    task, train_set, dev_set, model, _ = prepare(files, StrategyConfig())
    calls = []

    def uneven_batches(lengths, batch_size, max_tokens, generator, buckets):
        calls.append(1)
        n = 4 if len(calls) == 1 else 3
        return [list(range(i, len(lengths), n)) for i in range(n)]

    monkeypatch.setattr(loop, "training_batches", uneven_batches)
    records = []
    cfg = TrainConfig(epochs=2, batch_size=8, lr=1e-3, progress=False)
    summary = train(model, task, train_set, dev_set, cfg, CPU, print, records.append, on_best=lambda: None)
    assert [r["step"] for r in records] == [4, 7] and summary["steps"] == 7
