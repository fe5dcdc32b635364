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

This class is seqtune's optimiser. Bias-corrected on CPU and CUDA (`fused=True`), a step is torch's
fused AdamW kernel (`torch._fused_adamw_`, one call per device and dtype, the arithmetic of
`torch.optim.AdamW(fused=True)`: tested equal to it); otherwise (no bias correction, or another
device) the per-parameter loop below (tested equal to torch's AdamW with bias correction on).

Why not torch.optim.AdamW itself: its `step` and four `Optimizer` methods (`add_param_group`,
`zero_grad`, `state_dict`, `load_state_dict`) import `torch._dynamo` on first use, to keep the
compiler from tracing them, and that import alone costs 68 MiB of resident memory and 1.1 s per
process on this CPU (with sympy and inductor's modules), in a run that compiles nothing. Here the
methods are torch's own functions without that wrapper (`functools`' `__wrapped__`), and `step` is
plain `torch.no_grad` code. Nothing here is meant to run inside torch.compile (`train.compile`
compiles the encoder's blocks, not the optimiser).
"""

from __future__ import annotations

import math

import torch


def _undecorated(method):
    """torch's function under its `torch._disable_dynamo` wrapper (the method itself if it has none)."""
    return getattr(method, "__wrapped__", method)


class AdamW(torch.optim.Optimizer):
    add_param_group = _undecorated(torch.optim.Optimizer.add_param_group)
    zero_grad = _undecorated(torch.optim.Optimizer.zero_grad)
    state_dict = _undecorated(torch.optim.Optimizer.state_dict)
    load_state_dict = _undecorated(torch.optim.Optimizer.load_state_dict)

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, bias_correction: bool = True, fused: bool = False):
        if lr < 0 or eps < 0 or not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"invalid AdamW settings: lr={lr}, betas={betas}, eps={eps}")
        if fused and not bias_correction:
            raise ValueError("the fused AdamW kernel always corrects the bias; use fused=False without it")
        # "fused" also tells torch's load_state_dict to keep each step counter on its parameter's device
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, bias_correction=bias_correction,
                        fused=fused)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            if group.get("fused"):
                self._fused_step(group)
                continue
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
                if group.get("bias_correction", True):
                    denom = (v.sqrt() / math.sqrt(1 - beta2 ** t)).add_(eps)
                    p.addcdiv_(m, denom, value=-lr / (1 - beta1 ** t))
                else:
                    p.addcdiv_(m, v.sqrt().add_(eps), value=-lr)
        return loss

    def _fused_step(self, group: dict) -> None:
        """One group's step as torch.optim.AdamW(fused=True) takes it: its state (a float32 step
        counter on the parameter's device, the two moments), one kernel call per device and dtype."""
        beta1, beta2 = group["betas"]
        kinds: dict[tuple, tuple[list, ...]] = {}  # (device, dtype) -> params, grads, m, v, steps
        for p in group["params"]:
            if p.grad is None:
                continue
            state = self.state[p]
            if not state:
                state["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            lists = kinds.setdefault((p.device, p.dtype), ([], [], [], [], []))
            for tensors, t in zip(lists, (p, p.grad, state["exp_avg"], state["exp_avg_sq"], state["step"])):
                tensors.append(t)
        for params, grads, exp_avgs, exp_avg_sqs, steps in kinds.values():
            torch._foreach_add_(steps, 1)
            torch._fused_adamw_(params, grads, exp_avgs, exp_avg_sqs, [], steps, amsgrad=False, lr=group["lr"],
                                beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"], eps=group["eps"],
                                maximize=False, grad_scale=None, found_inf=None)
