"""Fine-tuning strategies as settings: which blocks train, which restart, at which learning rate.

The `strategy:` section of a run config. Nothing here changes the model's architecture; a strategy
only decides, per block (embeddings, layer 0 .. L-1, pooler, head):

- whether it trains (`requires_grad`) or stays frozen:
    top_layers: None  -> full fine-tuning (the default);
    top_layers: 0     -> frozen encoder, only the head trains (a linear probe; an MLP probe with
                         `task.head: mlp`);
    top_layers: N     -> the top N layers (+ pooler + head) train; embeddings and the rest are frozen;
    freeze_layers: K  -> the same thing counted from the bottom: embeddings + the bottom K layers
                         frozen (K = 0 freezes the embeddings only);
- whether it restarts from BERT's initialiser (`reinit_layers`, `reinit_pooler`; Zhang et al. 2021);
- its learning rate: head at `head_lr` (default train.lr), pooler at train.lr, the top layer at
  ξ·lr, each layer below ξ times the one above, the embeddings lowest (`layer_lr_decay` = ξ;
  Sun et al. 2019);
- and the optimiser: bias-corrected AdamW (default), or Adam without bias correction as in the
  original BERT code (`bias_correction: false`), to reproduce the few-sample instability finding.

Frozen blocks are a fixed feature extractor: they run in eval mode (no dropout), which is what lets
`caching.py` compute their output once per example and reuse it every epoch.
"""

from __future__ import annotations

import re

from torch import nn

from seqtune.config import StrategyConfig
from seqtune.errors import SeqtuneError


def frozen_layer_count(strategy: StrategyConfig, num_layers: int) -> int | None:
    """How many bottom layers are frozen (with the embeddings); None when nothing is frozen."""
    if strategy.top_layers is not None and strategy.freeze_layers is not None:
        raise SeqtuneError(
            f"strategy.top_layers={strategy.top_layers} and strategy.freeze_layers={strategy.freeze_layers} "
            "say the same thing two ways; set only one (top_layers counts trained layers from the top, "
            "freeze_layers counts frozen layers from the bottom)."
        )
    for name in ("top_layers", "freeze_layers"):
        value = getattr(strategy, name)
        if value is not None and not 0 <= value <= num_layers:
            raise SeqtuneError(f"strategy.{name}={value} is out of range: the model has {num_layers} layers "
                               f"(use 0 to {num_layers}).")
    if strategy.top_layers is not None:
        return num_layers - strategy.top_layers
    return strategy.freeze_layers


def validate(strategy: StrategyConfig, num_layers: int) -> int | None:
    """Check the settings against the model; return the number of frozen bottom layers (or None)."""
    frozen = frozen_layer_count(strategy, num_layers)
    if not 0 <= strategy.reinit_layers <= num_layers:
        raise SeqtuneError(f"strategy.reinit_layers={strategy.reinit_layers} is out of range: the model has "
                           f"{num_layers} layers.")
    if frozen is not None and strategy.reinit_layers > num_layers - frozen:
        raise SeqtuneError(
            f"strategy.reinit_layers={strategy.reinit_layers} would re-initialise layers that stay frozen "
            f"(only the top {num_layers - frozen} layers train); re-initialised layers must be trained."
        )
    if not 0.0 < strategy.layer_lr_decay <= 1.0:
        raise SeqtuneError(f"strategy.layer_lr_decay={strategy.layer_lr_decay} must be in (0, 1] "
                           "(1 = the same learning rate everywhere).")
    if strategy.head_lr is not None and strategy.head_lr <= 0:
        raise SeqtuneError(f"strategy.head_lr={strategy.head_lr} must be positive.")
    if strategy.cache_memory_mb < 0:
        raise SeqtuneError("strategy.cache_memory_mb must be >= 0.")
    return frozen


# ---- blocks ---------------------------------------------------------------------------------------

_LAYER = re.compile(r"(?:^|\.)encoder\.layers\.(\d+)\.")


def block_of(parameter_name: str) -> str:
    """The block a parameter belongs to: "embeddings", "layer.<i>", "pooler" or "head"."""
    if "encoder.embeddings." in parameter_name:
        return "embeddings"
    match = _LAYER.search(parameter_name)
    if match:
        return f"layer.{match.group(1)}"
    if "encoder.pooler." in parameter_name:
        return "pooler"
    return "head"


def block_order(num_layers: int) -> list[str]:
    return ["embeddings", *(f"layer.{i}" for i in range(num_layers)), "pooler", "head"]


def parameter_counts(model: nn.Module) -> dict[str, dict[str, int]]:
    """{block: {"trainable": n, "frozen": n}} in model order, plus "total". Tied weights count once."""
    num_layers = model.encoder.config.num_hidden_layers
    counts = {b: {"trainable": 0, "frozen": 0} for b in block_order(num_layers)}
    for name, p in model.named_parameters():
        counts[block_of(name)]["trainable" if p.requires_grad else "frozen"] += p.numel()
    if model.encoder.pooler is None:
        counts.pop("pooler")
    counts["total"] = {k: sum(c[k] for c in counts.values()) for k in ("trainable", "frozen")}
    return counts


def format_counts(counts: dict[str, dict[str, int]]) -> list[str]:
    """A small table for the run log."""
    lines = [f"{'block':<12}{'trainable':>14}{'frozen':>14}"]
    lines += [f"{b:<12}{c['trainable']:>14,}{c['frozen']:>14,}" for b, c in counts.items()]
    return lines


# ---- applying a strategy ----------------------------------------------------------------------------

def apply_strategy(model: nn.Module, strategy: StrategyConfig) -> int | None:
    """Freeze and re-initialise blocks of `model` (a TaskModel) in place.

    Returns the number of frozen bottom layers (None when nothing is frozen). The per-block learning
    rates are the optimiser's business: pass the same strategy to `optim.build_optimizer`.
    Re-initialisation draws from torch's global generator, so the run seed decides it.
    """
    encoder = model.encoder
    num_layers = encoder.config.num_hidden_layers
    frozen = validate(strategy, num_layers)
    if strategy.reinit_pooler and encoder.pooler is None:
        raise SeqtuneError("strategy.reinit_pooler is set but this model has no pooler "
                           "(the task head does not use it; see task.head).")
    if strategy.reinit_pooler and frozen is not None and not strategy.train_pooler:
        raise SeqtuneError("strategy.reinit_pooler with strategy.train_pooler=false would leave a random "
                           "pooler frozen; train the pooler or keep its pretrained weights.")

    for layer in encoder.layers[num_layers - strategy.reinit_layers:]:
        layer.apply(encoder.init_weights)
    if strategy.reinit_pooler:
        encoder.pooler.apply(encoder.init_weights)

    if frozen is not None:
        frozen_modules = [encoder.embeddings, *encoder.layers[:frozen]]
        if not strategy.train_pooler and encoder.pooler is not None:
            frozen_modules.append(encoder.pooler)
        for module in frozen_modules:
            module.requires_grad_(False)
    return frozen


def block_learning_rates(model: nn.Module, strategy: StrategyConfig, base_lr: float) -> dict[str, float]:
    """Learning rate per block: head at head_lr, pooler at lr, layer i at lr*ξ^(L-i), embeddings lr*ξ^(L+1).

    With L layers and ξ = layer_lr_decay: the top layer (i = L-1) gets ξ·lr, and every block below
    gets ξ times the rate of the block above it.
    """
    num_layers = model.encoder.config.num_hidden_layers
    xi = strategy.layer_lr_decay
    rates = {"embeddings": base_lr * xi ** (num_layers + 1)}
    rates.update({f"layer.{i}": base_lr * xi ** (num_layers - i) for i in range(num_layers)})
    rates["pooler"] = base_lr
    rates["head"] = strategy.head_lr if strategy.head_lr is not None else base_lr
    return rates


def named_parameters_by_block(model: nn.Module) -> dict[str, list[tuple[str, nn.Parameter]]]:
    """Trainable and frozen (name, parameter) pairs grouped by block, in model order."""
    blocks: dict[str, list] = {}
    for name, p in model.named_parameters():
        blocks.setdefault(block_of(name), []).append((name, p))
    return blocks
