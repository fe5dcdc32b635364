"""The package's seams: one head contract, the strategy passed explicitly, no import cycle, one
registry of task settings, train.metric checked before training."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import torch
from conftest import write_sentiment_tsv, write_tiny_checkpoint
from torch import nn

from seqtune.cli import main
from seqtune.config import TASK_OPTIONS, DataConfig, StrategyConfig, TrainConfig
from seqtune.inference import Runtime
from seqtune.models.heads import Head
from seqtune.models.task_model import TaskModel, model_for_finetuning
from seqtune.tasks import TASKS, task_class
from seqtune.tasks.classification import ClassificationOptions, ClassificationTask
from seqtune.tokenization import load_tokenizer
from seqtune.training.caching import FrozenBottomModel, build_cache
from seqtune.training.optim import build_optimizer
from seqtune.training.strategies import apply_strategy

SRC = Path(__file__).resolve().parents[1] / "src" / "seqtune"


# ---- the import graph -------------------------------------------------------------------------------

def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, modules: set[str]) -> set[str]:
    """Every seqtune module `path` imports, wherever the import statement is (module level, inside a
    function, under TYPE_CHECKING), plus the "seqtune.x:Class" targets of lazy registries."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    found.update(re.findall(r"[\"'](seqtune\.[\w.]+):\w+[\"']", path.read_text(encoding="utf-8")))
    resolved = set()
    for target in found:
        while target and target not in modules:
            target = target.rpartition(".")[0]
        if target and target != name:
            resolved.add(target)
    return resolved


def test_no_import_cycle_in_the_package():
    files = {module_name(p): p for p in SRC.rglob("*.py")}
    graph = {name: imported_modules(path, set(files)) for name, path in files.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_heads_tasks_and_models_are_not_probed_for_hooks():
    probing = re.compile(r"\b(getattr|hasattr)\(\s*(self\.)?(head|task|model|wrapped)\b")
    offenders = [f"{p.relative_to(SRC)}:{i}" for p in SRC.rglob("*.py")
                 for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if probing.search(line)]
    assert offenders == []


def test_every_task_type_has_one_options_class_in_config():
    assert list(TASK_OPTIONS) == list(TASKS)
    for name in TASKS:
        assert task_class(name).Options is TASK_OPTIONS[name]


# ---- a new head through the declared interface -------------------------------------------------------

class MaxPoolHead(Head):
    """A toy head: max over the real tokens, then a linear layer (B, num_labels)."""

    def __init__(self, hidden: int, num_labels: int):
        super().__init__()
        self.classifier = nn.Linear(hidden, num_labels)

    def forward(self, hidden, attention_mask, pooler):
        masked = hidden.masked_fill(~attention_mask.bool()[..., None], float("-inf"))
        return self.classifier(masked.max(1).values)


class MaxPoolClassification(ClassificationTask):
    def build_head(self, encoder_config) -> Head:
        return MaxPoolHead(encoder_config.hidden_size, len(self.labels))


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    d = tmp_path_factory.mktemp("toy_head")
    checkpoint = write_tiny_checkpoint(d / "bert", layers=2)
    task = MaxPoolClassification(ClassificationOptions(type="classification", head="cls"),
                                 DataConfig(text_column="sentence"), load_tokenizer(checkpoint))
    examples = task.read(str(write_sentiment_tsv(d / "train.tsv", n=16)), "train")
    task.fit(examples)
    return checkpoint, task, task.encode(examples, "train")


def one_step(toy, tmp_path, cached: bool):
    """Loss before and head weight after one optimiser step, the bottom layer frozen."""
    checkpoint, task, dataset = toy
    torch.manual_seed(0)
    model, report = model_for_finetuning(str(checkpoint), task)
    assert any("newly initialised (classifier.weight, classifier.bias)" in line for line in report)
    strategy = StrategyConfig(freeze_layers=1)
    wrapped = FrozenBottomModel(model, apply_strategy(model, strategy))
    if cached:
        wrapped.cache = build_cache(wrapped, task, [dataset], Runtime(torch.device("cpu")), strategy, 4096, tmp_path)
    optimizer = build_optimizer(wrapped, TrainConfig(lr=1e-2), strategy)
    batch = task.collate(dataset.features)
    wrapped.train()
    loss = task.loss(wrapped(batch), batch)
    loss.backward()
    optimizer.step()
    if cached:
        assert wrapped.cache.hits == 1 and wrapped.cache.misses == 0
    return loss.item(), model.head.classifier.weight.detach().clone()


def test_a_new_head_trains_with_and_without_the_frozen_layer_cache(toy, tmp_path):
    loss_plain, weight_plain = one_step(toy, tmp_path, cached=False)
    loss_cached, weight_cached = one_step(toy, tmp_path, cached=True)
    assert loss_plain == pytest.approx(loss_cached, abs=1e-6)
    assert torch.allclose(weight_plain, weight_cached, atol=1e-6)
    checkpoint, task, _ = toy
    torch.manual_seed(0)
    fresh, _ = model_for_finetuning(str(checkpoint), task)
    assert not torch.allclose(fresh.head.classifier.weight, weight_plain)  # the step changed the head


class PickedTokensHead(Head):
    """A toy head that reads only the positions a batch entry "picked" names: (M, num_labels)."""

    batch_inputs = ("picked",)

    def __init__(self, hidden: int, num_labels: int, chosen: bool):
        super().__init__()
        self.classifier = nn.Linear(hidden, num_labels)
        self.chosen_input = "picked" if chosen else None

    def forward(self, hidden, attention_mask, pooler, picked=None):
        self.seen = tuple(hidden.shape)
        return self.classifier(hidden if picked is None else hidden[picked])


def test_a_head_reading_chosen_positions_gets_their_states_alone(toy):
    """`chosen_input`: TaskModel hands the head the picked positions' states, (M, H), computed by a last
    block that runs those positions alone; the logits and gradients equal reading them from the full
    (B, T, H) output."""
    checkpoint, task, dataset = toy
    batch = task.collate(dataset.features[:6])
    picked = batch["attention_mask"].bool() & (torch.arange(batch["attention_mask"].shape[1]) % 3 == 1)
    batch["picked"] = picked
    results = []
    for chosen in (False, True):
        torch.manual_seed(0)
        model, _ = model_for_finetuning(str(checkpoint), task)
        model = TaskModel(model.encoder, PickedTokensHead(model.encoder.config.hidden_size, 2, chosen)).eval()
        logits = model(batch)
        logits.square().sum().backward()
        results.append((logits.detach(), model.encoder.layers[-1].ffn_in.weight.grad.clone()))
        width = model.encoder.config.hidden_size
        assert model.head.seen == ((int(picked.sum()), width) if chosen else (*picked.shape, width))
    assert results[0][0].shape == (int(picked.sum()), 2)
    assert torch.allclose(results[0][0], results[1][0], atol=1e-6)
    assert torch.allclose(results[0][1], results[1][1], atol=1e-6)


def test_head_hooks_have_defaults():
    head = MaxPoolHead(8, 2)
    assert head.first_token_only is False and head.batch_inputs == () and head.chosen_input is None
    assert head.load_pretrained({"cls.predictions.bias": torch.zeros(3)}) == []
    before = {k: v.clone() for k, v in head.state_dict().items()}
    assert head.tie_weights(nn.Linear(2, 2)) is None  # the default shares nothing
    assert all(torch.equal(before[k], v) for k, v in head.state_dict().items())


def test_the_strategy_is_an_argument_not_an_attribute(toy):
    checkpoint, task, _ = toy
    model, _ = model_for_finetuning(str(checkpoint), task)
    apply_strategy(model, StrategyConfig(layer_lr_decay=0.5))
    assert "strategy" not in vars(model) and isinstance(model, TaskModel)
    plain = build_optimizer(model, TrainConfig(lr=1e-3))
    layered = build_optimizer(model, TrainConfig(lr=1e-3), StrategyConfig(layer_lr_decay=0.5))
    assert len({g["lr"] for g in plain.param_groups}) == 1
    assert len({g["lr"] for g in layered.param_groups}) > 2


# ---- checks before the first step -----------------------------------------------------------------------

def test_a_wrong_train_metric_fails_before_training(tmp_path, tiny_checkpoint, capsys):
    train = write_sentiment_tsv(tmp_path / "train.tsv", n=16)
    code = main(["train", "--set", "task.type=classification", "--set", f"model.path={tiny_checkpoint}",
                 "--set", f"data.train={train}", "--set", f"data.dev={train}", "--set", "data.text_column=sentence",
                 "--set", "train.metric=f1", "--set", "train.progress=false", "--set", f"output_dir={tmp_path}/runs"])
    err = capsys.readouterr().err
    assert code == 2 and "train.metric 'f1' is not computed by this task" in err and "f1_macro" in err
    assert "eval @ step" not in err and "training:" not in err  # nothing was trained
