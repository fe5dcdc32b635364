"""Fine-tuning strategies: which blocks train, re-initialisation, per-block learning rates, the optimiser."""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import write_sentiment_tsv, write_tiny_checkpoint

from seqtune.cli import main
from seqtune.config import DataConfig, StrategyConfig, TrainConfig
from seqtune.errors import SeqtuneError
from seqtune.models.task_model import model_for_finetuning
from seqtune.tasks.classification import ClassificationOptions, ClassificationTask
from seqtune.tokenization import load_tokenizer
from seqtune.training.adam import AdamW
from seqtune.training.optim import build_optimizer
from seqtune.training.strategies import apply_strategy, block_of, parameter_counts

LAYERS = 3


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("bert3"), layers=LAYERS)


def fresh_model(checkpoint, head="pooler"):
    task = ClassificationTask(ClassificationOptions(type="classification", head=head), DataConfig(),
                              load_tokenizer(checkpoint))
    task.labels = ["neg", "pos"]
    model, _ = model_for_finetuning(str(checkpoint), task)
    return model


def numel(module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("settings, trained", [
    ({}, ["embeddings", "layer.0", "layer.1", "layer.2", "pooler", "head"]),
    ({"top_layers": 0}, ["pooler", "head"]),
    ({"top_layers": 0, "train_pooler": False}, ["head"]),
    ({"top_layers": 2}, ["layer.1", "layer.2", "pooler", "head"]),
    ({"top_layers": 3}, ["layer.0", "layer.1", "layer.2", "pooler", "head"]),
    ({"freeze_layers": 0}, ["layer.0", "layer.1", "layer.2", "pooler", "head"]),
    ({"freeze_layers": 1}, ["layer.1", "layer.2", "pooler", "head"]),
])
def test_parameter_counts_per_strategy(checkpoint, settings, trained):
    model = fresh_model(checkpoint)
    frozen_layers = apply_strategy(model, StrategyConfig(**settings))
    enc = model.encoder
    blocks = {"embeddings": enc.embeddings, **{f"layer.{i}": enc.layers[i] for i in range(LAYERS)},
              "pooler": enc.pooler, "head": model.head}
    counts = parameter_counts(model)
    for name, module in blocks.items():
        expected = numel(module)
        assert counts[name] == ({"trainable": expected, "frozen": 0} if name in trained
                                else {"trainable": 0, "frozen": expected}), name
    assert counts["total"]["trainable"] == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert counts["total"]["trainable"] + counts["total"]["frozen"] == numel(model)
    assert frozen_layers == (None if not settings else sum(f"layer.{i}" not in trained for i in range(LAYERS)))


def test_reinitialised_layers_differ_from_the_checkpoint_and_the_others_do_not(checkpoint):
    torch.manual_seed(0)
    original = fresh_model(checkpoint).encoder.state_dict()
    model = fresh_model(checkpoint)
    apply_strategy(model, StrategyConfig(reinit_layers=2, reinit_pooler=True))
    after = model.encoder.state_dict()
    for key, before in original.items():
        reinitialised = key.startswith(("layers.1.", "layers.2.", "pooler."))
        if not reinitialised:
            assert torch.equal(after[key], before), key
        elif key.endswith("norm.weight"):
            assert torch.equal(after[key], torch.ones_like(before)), key  # LayerNorm back to identity
        elif key.endswith("bias"):
            assert torch.equal(after[key], torch.zeros_like(before)), key
        else:
            assert not torch.equal(after[key], before), key
            std = model.encoder.config.initializer_range
            assert abs(after[key].std().item() - std) < 0.3 * std, key  # N(0, initializer_range)


@pytest.mark.parametrize("settings, message", [
    ({"top_layers": 1, "freeze_layers": 1}, "set only one"),
    ({"top_layers": 4}, "out of range"),
    ({"freeze_layers": -1}, "out of range"),
    ({"top_layers": 1, "reinit_layers": 2}, "stay frozen"),
    ({"layer_lr_decay": 0.0}, "(0, 1]"),
    ({"layer_lr_decay": 1.5}, "(0, 1]"),
    ({"top_layers": 0, "train_pooler": False, "reinit_pooler": True}, "frozen"),
])
def test_inconsistent_settings_are_clear_errors(checkpoint, settings, message):
    with pytest.raises(SeqtuneError, match=message.replace("(", r"\(").replace("]", r"\]")):
        apply_strategy(fresh_model(checkpoint), StrategyConfig(**settings))


def test_reinit_pooler_needs_a_pooler(checkpoint):
    with pytest.raises(SeqtuneError, match="no pooler"):
        apply_strategy(fresh_model(checkpoint, head="cls"), StrategyConfig(reinit_pooler=True))


def test_block_names():
    assert block_of("encoder.embeddings.word.weight") == "embeddings"
    assert block_of("encoder.layers.11.ffn_in.weight") == "layer.11"
    assert block_of("encoder.pooler.dense.bias") == "pooler"
    assert block_of("head.classifier.weight") == "head"


def test_layerwise_learning_rates_per_group(checkpoint):
    model = fresh_model(checkpoint)
    strategy = StrategyConfig(layer_lr_decay=0.5, head_lr=1e-2)
    apply_strategy(model, strategy)
    optimizer = build_optimizer(model, TrainConfig(lr=1e-3, weight_decay=0.1), strategy)
    expected = {"head": 1e-2, "pooler": 1e-3, "layer.2": 5e-4, "layer.1": 2.5e-4, "layer.0": 1.25e-4,
                "embeddings": 6.25e-5}
    seen = set()
    for group in optimizer.param_groups:
        assert math.isclose(group["lr"], expected[group["block"]]), group["block"]
        # BERT's exclusions still hold inside every block: no decay on biases and LayerNorm weights
        assert group["weight_decay"] == (0.1 if all(p.ndim >= 2 for p in group["params"]) else 0.0)
        assert all(p.ndim < 2 for p in group["params"]) or all(p.ndim >= 2 for p in group["params"])
        seen.add(group["block"])
    assert seen == set(expected)
    assert sum(p.numel() for g in optimizer.param_groups for p in g["params"]) == numel(model)
    assert isinstance(optimizer, AdamW) and optimizer.defaults["fused"]  # bias-corrected: torch's kernel


def test_frozen_parameters_are_not_optimised(checkpoint):
    model = fresh_model(checkpoint)
    strategy = StrategyConfig(top_layers=1, bias_correction=False)
    apply_strategy(model, strategy)
    optimizer = build_optimizer(model, TrainConfig(lr=1e-3), strategy)
    assert isinstance(optimizer, AdamW) and not optimizer.defaults["bias_correction"]
    assert not optimizer.defaults["fused"]
    optimised = {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert optimised == {id(p) for p in model.parameters() if p.requires_grad}
    assert {g["block"] for g in optimizer.param_groups} == {"layer.2", "pooler", "head"}


def random_problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    params = [torch.randn(4, 3, generator=g), torch.randn(5, generator=g)]
    grads = [[torch.randn(p.shape, generator=g) for p in params] for _ in range(6)]
    return params, grads


def run_optimizer(make, params, grads):
    params = [p.clone().requires_grad_(True) for p in params]
    opt = make(params)
    history = []
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = g.clone()
        opt.step()
        history.append([p.detach().clone() for p in params])
    return history


def test_our_adamw_with_bias_correction_equals_torch_adamw():
    params, grads = random_problem()
    ours = run_optimizer(lambda ps: AdamW(ps, lr=1e-2, weight_decay=0.1), params, grads)
    theirs = run_optimizer(lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=0.1), params, grads)
    for a, b in zip(ours, theirs):
        for x, y in zip(a, b):
            torch.testing.assert_close(x, y, rtol=1e-6, atol=1e-7)


def fused_problem():
    """Two groups (decay / none, their own learning rates), a schedule, gradients on all but one step."""
    params, grads = random_problem(2)
    grads[3][1] = None  # a parameter without a gradient in one step keeps its state untouched
    groups = lambda ps: [{"params": ps[:1], "weight_decay": 0.1, "lr": 1e-2}, {"params": ps[1:], "weight_decay": 0.0}]
    return params, grads, groups


def run_scheduled(opt, params, grads, start=0):
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0 / (1 + step), last_epoch=start - 1)
    history = []
    for step_grads in grads[start:]:
        for p, g in zip(params, step_grads):
            p.grad = None if g is None else g.clone()
        opt.step()
        schedule.step()
        history.append([p.detach().clone() for p in params])
    return history


def test_fused_adamw_equals_torchs_fused_adamw_exactly():
    params, grads, groups = fused_problem()
    ours_params = [p.clone().requires_grad_(True) for p in params]
    theirs_params = [p.clone().requires_grad_(True) for p in params]
    ours = run_scheduled(AdamW(groups(ours_params), lr=1e-3, fused=True), ours_params, grads)
    theirs = run_scheduled(torch.optim.AdamW(groups(theirs_params), lr=1e-3, fused=True), theirs_params, grads)
    for a, b in zip(ours, theirs, strict=True):
        for x, y in zip(a, b):
            assert torch.equal(x, y)
    assert not torch.equal(ours[-1][0], params[0])


def test_fused_adamw_resumes_from_its_own_and_torchs_state_dict():
    params, grads, groups = fused_problem()
    whole_params = [p.clone().requires_grad_(True) for p in params]
    whole = run_scheduled(AdamW(groups(whole_params), lr=1e-3, fused=True), whole_params, grads)
    for make in (lambda ps: AdamW(groups(ps), lr=1e-3, fused=True),
                 lambda ps: torch.optim.AdamW(groups(ps), lr=1e-3, fused=True)):  # checkpoints of older runs
        first_params = [p.clone().requires_grad_(True) for p in params]
        first = make(first_params)
        run_scheduled(first, first_params, grads[:3])
        resumed_params = [p.detach().clone().requires_grad_(True) for p in first_params]
        resumed = AdamW(groups(resumed_params), lr=1e-3, fused=True)
        resumed.load_state_dict(first.state_dict())
        rest = run_scheduled(resumed, resumed_params, grads, start=3)
        for a, b in zip(rest, whole[3:], strict=True):
            for x, y in zip(a, b):
                assert torch.equal(x, y)


def test_fused_adamw_refuses_to_drop_bias_correction():
    with pytest.raises(ValueError, match="always corrects the bias"):
        AdamW([torch.zeros(2, requires_grad=True)], fused=True, bias_correction=False)


def test_a_training_run_does_not_import_torch_dynamo(tmp_path, checkpoint):
    """torch.optim's optimisers import torch._dynamo (68 MiB, 1.1 s) on first use; ours must not."""
    import subprocess
    import sys

    train = write_sentiment_tsv(tmp_path / "train.tsv", n=32)
    code = (
        "import sys\n"
        "from seqtune.cli import main\n"
        f"code = main(['train', '--set', 'task.type=classification', '--set', 'model.path={checkpoint}',"
        f" '--set', 'data.train={train}', '--set', 'data.text_column=sentence', '--set', 'train.epochs=2',"
        f" '--set', 'train.progress=false', '--set', 'output_dir={tmp_path}/runs'])\n"
        "assert code == 0, code\n"
        "print('DYNAMO', 'torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "DYNAMO False" in out.stdout


def test_adam_without_bias_correction_follows_its_formula():
    params, grads = random_problem(1)
    lr, wd, (b1, b2), eps = 1e-2, 0.1, (0.9, 0.999), 1e-8
    ours = run_optimizer(lambda ps: AdamW(ps, lr=lr, weight_decay=wd, bias_correction=False), params, grads)
    corrected = run_optimizer(lambda ps: torch.optim.AdamW(ps, lr=lr, weight_decay=wd), params, grads)
    # step 1 by hand: m = (1-b1) g, v = (1-b2) g^2, p <- p(1 - lr wd) - lr m / (sqrt(v) + eps)
    for p0, g, p1 in zip(params, grads[0], ours[0]):
        expected = p0 * (1 - lr * wd) - lr * (1 - b1) * g / ((1 - b2) ** 0.5 * g.abs() + eps)
        torch.testing.assert_close(p1, expected, rtol=1e-6, atol=1e-7)
    # the first uncorrected update is (1-b1)/sqrt(1-b2) ~ 3.16 times the corrected one
    for p0, a, b in zip(params, ours[0], corrected[0]):
        ratio = ((a - p0 * (1 - lr * wd)) / (b - p0 * (1 - lr * wd))).flatten()
        torch.testing.assert_close(ratio, torch.full_like(ratio, (1 - b1) / (1 - b2) ** 0.5), rtol=1e-4, atol=0)
    # and the trajectories stay apart afterwards
    assert not torch.allclose(ours[-1][0], corrected[-1][0])


def test_train_records_parameter_counts_and_applies_the_strategy(tmp_path, checkpoint):
    train = write_sentiment_tsv(tmp_path / "train.tsv", n=32)
    dev = write_sentiment_tsv(tmp_path / "dev.tsv", n=16, seed=1)
    code = main(["train", "--set", "task.type=classification", "--set", f"model.path={checkpoint}",
                 "--set", f"data.train={train}", "--set", f"data.dev={dev}", "--set", "data.text_column=sentence",
                 "--set", "train.epochs=1", "--set", "train.progress=false", "--set", f"output_dir={tmp_path}/runs",
                 "--set", "strategy.top_layers=1", "--set", "strategy.reinit_layers=1",
                 "--set", "strategy.bias_correction=false"])
    assert code == 0
    run = next((tmp_path / "runs").iterdir())
    counts = json.loads((run / "results.json").read_text())["parameters"]
    assert counts["layer.0"]["trainable"] == 0 and counts["layer.2"]["frozen"] == 0
    assert counts["embeddings"]["trainable"] == 0 and counts["head"]["trainable"] == 66
    assert "parameters: layer.2" in (run / "log.txt").read_text()
    # the frozen layers of the saved model are the checkpoint's, the trained/re-initialised one is not
    from seqtune.inference import load_trained_model
    _, saved = load_trained_model(run / "model")
    original = fresh_model(checkpoint).encoder.state_dict()
    state = saved.encoder.state_dict()
    assert torch.equal(state["layers.0.attention.qkv.weight"], original["layers.0.attention.qkv.weight"])
    assert torch.equal(state["embeddings.word.weight"], original["embeddings.word.weight"])
    assert not torch.equal(state["layers.2.attention.qkv.weight"], original["layers.2.attention.qkv.weight"])


def embedding_problem(all_rows_at=None, seed=3):
    """A 40 x 3 table and a vector; each step's table gradient is non-zero on a few rows only (as an
    embedding's is: the tokens of the batch), on every row at step `all_rows_at` (a tied output layer)."""
    g = torch.Generator().manual_seed(seed)
    params = [torch.randn(40, 3, generator=g), torch.randn(5, generator=g)]
    grads = []
    for step in range(8):
        table = torch.zeros(40, 3)
        rows = torch.randperm(40, generator=g)[:1 + step % 4] if step != all_rows_at else torch.arange(40)
        table[rows] = torch.randn(len(rows), 3, generator=g)
        grads.append([table, torch.randn(5, generator=g)])
    grads[2][0] = None  # no gradient at all in one step: the table's state is left as it is
    return params, grads


def as_row_gradient(table: torch.Tensor) -> torch.Tensor:
    """A dense table gradient as an embedding with sparse=True gives it: the rows used, uncoalesced (the
    first row given as two halves, which add up to it exactly), and row 0 with a zero gradient (a used
    token's can be zero)."""
    rows = table.ne(0).any(1).nonzero().flatten()
    values = torch.cat((table[rows], table[rows[:1]] / 2, table.new_zeros(1, table.shape[1])))
    values[0] /= 2
    indices = torch.cat((rows, rows[:1], torch.tensor([0])))
    return torch.sparse_coo_tensor(indices[None], values, table.shape, check_invariants=True)


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
@pytest.mark.parametrize("all_rows_at", [None, 5])
@pytest.mark.parametrize("sparse", [False, True])
def test_row_sparse_embedding_moments_equal_the_dense_optimiser_exactly(monkeypatch, weight_decay, all_rows_at,
                                                                        sparse):
    """With the table's gradient dense, or sparse as an embedding with sparse=True gives it
    (training/gradients.py), the steps are torch's fused AdamW's on the dense gradient, bit for bit."""
    import seqtune.training.adam as adam

    monkeypatch.setattr(adam, "ROW_CHUNK", 4)  # let the moments grow in small steps
    params, grads = embedding_problem(all_rows_at)
    feed = [[as_row_gradient(g) if sparse and i == 0 and g is not None else g for i, g in enumerate(step)]
            for step in grads]
    groups = lambda ps: [{"params": ps[:1], "weight_decay": weight_decay, "lr": 1e-2},
                         {"params": ps[1:], "weight_decay": 0.0}]
    ours_params = [p.clone().requires_grad_(True) for p in params]
    theirs_params = [p.clone().requires_grad_(True) for p in params]
    ours_opt = AdamW(groups(ours_params), lr=1e-3, fused=True, row_sparse=ours_params[:1])
    ours = run_scheduled(ours_opt, ours_params, feed)
    theirs = run_scheduled(torch.optim.AdamW(groups(theirs_params), lr=1e-3, fused=True), theirs_params, grads)
    for a, b in zip(ours, theirs, strict=True):
        for x, y in zip(a, b):
            assert torch.equal(x, y)
    state = ours_opt.state[ours_params[0]]
    touched = sorted({r for step in grads if step[0] is not None for r in step[0].ne(0).any(1).nonzero().flatten().tolist()}
                     | ({0} if sparse else set()))  # a used row with a zero gradient has its moments too
    if all_rows_at is None:  # moments for the rows that had a gradient, and a little room
        assert sorted(state["rows"].tolist()) == touched and len(touched) < 40
        assert len(touched) <= state["exp_avg"].shape[0] < 40
    else:  # every row had one: the ordinary dense state
        assert "rows" not in state and state["exp_avg"].shape == (40, 3)


def test_a_sparse_gradient_outside_the_row_sparse_path_is_used_as_its_dense_equal():
    """Parameters not kept row-sparse (the per-parameter loop without bias correction; a fused group's
    ordinary parameter) take a sparse gradient as the dense one."""
    params, grads = embedding_problem()
    for kwargs in (dict(fused=False, bias_correction=False), dict(fused=True)):
        runs = []
        for sparse in (False, True):
            ps = [p.clone().requires_grad_(True) for p in params]
            feed = [[as_row_gradient(g) if sparse and i == 0 and g is not None else g for i, g in enumerate(step)]
                    for step in grads]
            runs.append(run_scheduled(AdamW([{"params": ps, "weight_decay": 0.1}], lr=1e-3, **kwargs), ps, feed))
        for a, b in zip(*runs, strict=True):
            for x, y in zip(a, b):
                assert torch.equal(x, y)


def test_row_sparse_moments_resume_from_a_state_dict_and_from_a_dense_one(monkeypatch, tmp_path):
    import seqtune.training.adam as adam

    monkeypatch.setattr(adam, "ROW_CHUNK", 4)
    params, grads = embedding_problem()
    groups = lambda ps: [{"params": ps[:1], "weight_decay": 0.1}, {"params": ps[1:], "weight_decay": 0.0}]
    make_ours = lambda ps: AdamW(groups(ps), lr=1e-3, fused=True, row_sparse=ps[:1])
    whole_params = [p.clone().requires_grad_(True) for p in params]
    whole = run_scheduled(make_ours(whole_params), whole_params, grads)
    for make in (make_ours, lambda ps: torch.optim.AdamW(groups(ps), lr=1e-3, fused=True)):  # older checkpoints
        first_params = [p.clone().requires_grad_(True) for p in params]
        first = make(first_params)
        run_scheduled(first, first_params, grads[:4])
        torch.save(first.state_dict(), tmp_path / "optimizer.pt")  # through a file, as a checkpoint
        resumed_params = [p.detach().clone().requires_grad_(True) for p in first_params]
        resumed = make_ours(resumed_params)
        resumed.load_state_dict(torch.load(tmp_path / "optimizer.pt"))
        rest = run_scheduled(resumed, resumed_params, grads, start=4)
        for a, b in zip(rest, whole[4:], strict=True):
            for x, y in zip(a, b):
                assert torch.equal(x, y)


@pytest.mark.parametrize("strategy", [None, StrategyConfig(layer_lr_decay=0.9)])
def test_the_optimiser_keeps_row_sparse_moments_for_the_word_embeddings_only(monkeypatch, checkpoint, strategy):
    import seqtune.training.optim as optim

    model = fresh_model(checkpoint)
    embeddings = model.encoder.embeddings
    word, positions = embeddings.word.weight, embeddings.position.weight
    assert positions.shape[0] < word.shape[0]
    monkeypatch.setattr(optim, "EMBEDDING_ROWS", word.shape[0])  # the tiny model's vocabulary is small
    assert build_optimizer(model, TrainConfig(), strategy).row_sparse == {id(word)}
