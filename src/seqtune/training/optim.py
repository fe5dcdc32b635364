"""AdamW with BERT's weight-decay exclusions, and the learning-rate schedule.

Weight decay is not applied to biases or LayerNorm weights (any parameter with fewer than two
dimensions), as in the BERT reference implementation. AdamW (`adam.py`) is bias-corrected; with a
fine-tuning strategy the optimiser gets per-block learning rates and, if asked, Adam without it.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from seqtune.config import StrategyConfig, TrainConfig
from seqtune.training.adam import AdamW
from seqtune.training.strategies import block_learning_rates, named_parameters_by_block


def decay_split(named_params) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(parameters with weight decay, parameters without) among the trainable ones."""
    decay, no_decay = [], []
    for _, p in named_params:
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    return decay, no_decay


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = decay_split(model.named_parameters())
    return [g for g in ({"params": decay, "weight_decay": weight_decay},
                        {"params": no_decay, "weight_decay": 0.0}) if g["params"]]


def build_optimizer(model: nn.Module, cfg: TrainConfig, strategy: StrategyConfig | None = None
                    ) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters; per-block groups when a strategy is given."""
    if strategy is not None:
        return strategy_optimizer(model, cfg, strategy)
    return corrected_adamw(parameter_groups(model, cfg.weight_decay), cfg, embedding_tables(model))


def embedding_tables(model: nn.Module) -> list[nn.Parameter]:
    """Embedding matrices of at least EMBEDDING_ROWS rows (vocabularies; a position table that long
    too, exact either way): the optimiser keeps Adam moments only for their rows that have had a
    gradient (adam.py, `row_sparse`)."""
    return [m.weight for m in model.modules() if isinstance(m, nn.Embedding) and m.num_embeddings >= EMBEDDING_ROWS]


EMBEDDING_ROWS = 1024


def corrected_adamw(groups: list[dict], cfg: TrainConfig, tables: list[nn.Parameter] = ()) -> torch.optim.Optimizer:
    """Bias-corrected AdamW, torch's fused kernel where it has one for the device (CPU and CUDA):
    about 3x less optimiser time per step than the per-tensor loop on this model (adam.py).
    `tables`: embedding matrices whose moments are kept for the rows that have had a gradient."""
    params = [p for g in groups for p in g["params"]]
    fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    return AdamW(groups, lr=cfg.lr, betas=(cfg.adam_beta1, cfg.adam_beta2), eps=cfg.adam_eps, fused=fused,
                 row_sparse=tables)


def strategy_optimizer(model: nn.Module, cfg: TrainConfig, strategy: StrategyConfig) -> torch.optim.Optimizer:
    """One group per (block, decay/no-decay) at the block's learning rate (layer-wise decay, head lr);
    Adam without bias correction when the strategy asks for it (see training/strategies.py, adam.py)."""
    rates = block_learning_rates(model, strategy, cfg.lr)
    groups = []
    for block, named in named_parameters_by_block(model).items():
        decay, no_decay = decay_split(named)
        groups += [{"params": decay, "weight_decay": cfg.weight_decay, "lr": rates[block], "block": block},
                   {"params": no_decay, "weight_decay": 0.0, "lr": rates[block], "block": block}]
    groups = [g for g in groups if g["params"]]
    betas = (cfg.adam_beta1, cfg.adam_beta2)
    if strategy.bias_correction:
        return corrected_adamw(groups, cfg, embedding_tables(model))
    return AdamW(groups, lr=cfg.lr, betas=betas, eps=cfg.adam_eps, bias_correction=False)


def warmup_steps(cfg: TrainConfig, total_steps: int) -> int:
    return max(cfg.warmup_steps, math.ceil(cfg.warmup_ratio * total_steps))


def build_schedule(optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int):
    """Linear warm-up from 0, then linear decay to 0 at `total_steps` (or constant)."""
    warmup = warmup_steps(cfg, total_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        if cfg.schedule == "constant":
            return 1.0
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
