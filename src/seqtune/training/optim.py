"""AdamW with BERT's weight-decay exclusions, and the learning-rate schedule.

Weight decay is not applied to biases or LayerNorm weights (any parameter with fewer than two
dimensions), as in the BERT reference implementation. torch's AdamW is bias-corrected.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from seqtune.config import TrainConfig


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


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(
        parameter_groups(model, cfg.weight_decay), lr=cfg.lr,
        betas=(cfg.adam_beta1, cfg.adam_beta2), eps=cfg.adam_eps,
    )


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
