"""AdamW with a switch for bias correction, to reproduce the original BERT optimiser.

torch.optim.AdamW always corrects the bias of its moment estimates. The original BERT code
(TensorFlow `AdamWeightDecayOptimizer`, later `BertAdam`) did not, and Zhang et al. (2021) show that
this omission makes few-sample fine-tuning unstable: in the first steps the uncorrected moments are
small, so the update is about (1 - β1) / sqrt(1 - β2) ≈ 3.2 times larger than Adam's (β = 0.9, 0.999).

Per parameter p with gradient g, at step t (starting at 1):
    m = β1 m + (1 - β1) g                      v = β2 v + (1 - β2) g²
    p = p - lr·wd·p                             (decoupled weight decay, as AdamW)
    bias-corrected:    p = p - lr · (m / (1 - β1^t)) / (sqrt(v / (1 - β2^t)) + eps)
    uncorrected:       p = p - lr · m / (sqrt(v) + eps)

The default seqtune optimiser stays torch.optim.AdamW; this class is used for `bias_correction: false`
(and is tested equal to torch's AdamW with bias correction on).
"""

from __future__ import annotations

import math

import torch


class AdamW(torch.optim.Optimizer):
    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, bias_correction: bool = True):
        if lr < 0 or eps < 0 or not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"invalid AdamW settings: lr={lr}, betas={betas}, eps={eps}")
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, bias_correction=bias_correction)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            lr, eps, wd = group["lr"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                m, v, t = state["exp_avg"], state["exp_avg_sq"], state["step"]
                m.lerp_(g, 1 - beta1)  # m = β1 m + (1 - β1) g
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                if wd:
                    p.mul_(1 - lr * wd)
                if group["bias_correction"]:
                    denom = (v.sqrt() / math.sqrt(1 - beta2 ** t)).add_(eps)
                    p.addcdiv_(m, denom, value=-lr / (1 - beta1 ** t))
                else:
                    p.addcdiv_(m, v.sqrt().add_(eps), value=-lr)
        return loss
