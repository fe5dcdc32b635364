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

Embedding tables (`row_sparse`, fused CPU steps): a row that has never had a non-zero gradient has
zero moments, and Adam leaves it unchanged but for the weight decay (p = p·(1 - lr·wd), the kernel's
own arithmetic for zero moments: tested). So its moments are not stored: the state holds `rows`, the
rows that have had a gradient (in the order they first had one), and the moments of those rows only;
each step runs the kernel on those rows (gathered, then written back) and decays the others. The
numbers are the dense optimiser's bit for bit (tested); fine-tuning MiniLM on 4,000 SST-2 sentences
touches 6,650 of its 30,522 word embeddings, so their moments take 21 MiB (room for 7,135 rows)
instead of 89. When every row has had a gradient (a tied output layer, as in MLM) the state becomes
the ordinary dense one. Such a table's gradient may come sparse (`torch.sparse_coo`, the rows its
batch used: training/gradients.py), which spares the dense (V, H) gradient and the search for its
non-zero rows; any other parameter given a sparse gradient has it made dense here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

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
                 weight_decay: float = 0.0, bias_correction: bool = True, fused: bool = False,
                 row_sparse: Iterable[torch.Tensor] = ()):
        if lr < 0 or eps < 0 or not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"invalid AdamW settings: lr={lr}, betas={betas}, eps={eps}")
        if fused and not bias_correction:
            raise ValueError("the fused AdamW kernel always corrects the bias; use fused=False without it")
        # "fused" also tells torch's load_state_dict to keep each step counter on its parameter's device
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, bias_correction=bias_correction,
                        fused=fused)
        super().__init__(params, defaults)
        # 2-D tables whose moments are kept only for rows that have had a gradient (fused CPU steps)
        self.row_sparse = {id(p) for p in row_sparse if p.ndim == 2 and p.dtype == torch.float32
                           and p.shape[0] < ROW_LIMIT}
        # id(p) -> (its rows, each row's place among them or -1): the state's rows, looked up by row
        self._row_slots: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

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
                g = p.grad.to_dense() if p.grad.is_sparse else p.grad
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
        counter on the parameter's device, the two moments), one kernel call per device and dtype.
        Row-sparse tables take part with their gathered rows, written back after the call."""
        beta1, beta2 = group["betas"]
        kinds: dict[tuple, tuple[list, ...]] = {}  # (device, dtype) -> params, grads, m, v, steps
        gathered = []  # (table, its rows, the rows' updated values)
        for p in group["params"]:
            if p.grad is None:
                continue
            state = self.state[p]
            if not state:
                state["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
                if id(p) in self.row_sparse and p.device.type == "cpu":
                    state["rows"] = torch.zeros(0, dtype=torch.long)
                    state["exp_avg"] = p.new_zeros((0, p.shape[1]))
                    state["exp_avg_sq"] = p.new_zeros((0, p.shape[1]))
                else:
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            grad = p.grad.coalesce() if p.grad.is_sparse else p.grad
            if "rows" in state and self._grow_rows(p, grad, state):
                rows, slots = self._row_slots[id(p)]
                values = p.index_select(0, rows)
                gathered.append((p, rows, values))
                if grad.is_sparse:  # the state's rows' gradients: the batch's rows, zero elsewhere
                    grad = p.new_zeros((len(rows), p.shape[1])).index_copy_(0, slots[grad.indices()[0]], grad.values())
                else:
                    grad = grad.index_select(0, rows)
                tensors = (values, grad, state["exp_avg"][:len(rows)], state["exp_avg_sq"][:len(rows)], state["step"])
            else:  # (after _grow_rows, which may have made the state dense)
                grad = grad.to_dense() if grad.is_sparse else grad
                tensors = (p, grad, state["exp_avg"], state["exp_avg_sq"], state["step"])
            lists = kinds.setdefault((p.device, p.dtype), ([], [], [], [], []))
            for into, t in zip(lists, tensors):
                into.append(t)
        for params, grads, exp_avgs, exp_avg_sqs, steps in kinds.values():
            torch._foreach_add_(steps, 1)
            torch._fused_adamw_(params, grads, exp_avgs, exp_avg_sqs, [], steps, amsgrad=False, lr=group["lr"],
                                beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"], eps=group["eps"],
                                maximize=False, grad_scale=None, found_inf=None)
        for p, rows, values in gathered:
            if group["weight_decay"]:  # rows without moments: decay alone, as the kernel computes it
                p.mul_(1 - group["lr"] * group["weight_decay"])
            p.index_copy_(0, rows, values)

    def _grow_rows(self, p: torch.Tensor, grad: torch.Tensor, state: dict) -> bool:
        """Add the rows of row-sparse table `p` that have a gradient for the first time (`grad`, dense or
        coalesced sparse), with zero moments. False when that makes every row: the state is then the
        dense one."""
        rows = state["rows"]
        if rows.dtype != torch.long:  # load_state_dict casts every state tensor to the parameter's dtype
            rows = state["rows"] = rows.long()
        if p.device.type != "cpu":  # a CPU run's checkpoint resumed on a GPU: the dense state there
            return self._make_dense(p, state)
        cached = self._row_slots.get(id(p))
        if cached is None or cached[0] is not rows:
            slots = torch.full((p.shape[0],), -1, dtype=torch.long)
            slots[rows] = torch.arange(len(rows))
        else:
            slots = cached[1]
        used = grad.indices()[0] if grad.is_sparse else rows_with_gradient(grad).nonzero().squeeze(1)
        new = used[slots[used] < 0]  # ascending either way
        if len(new):
            count = len(rows)
            slots[new] = torch.arange(count, count + len(new))
            rows = state["rows"] = torch.cat((rows, new))
            if len(rows) > len(state["exp_avg"]):  # more room: half as much again, as a list grows
                room = min(p.shape[0], max(len(rows), count + count // 2, ROW_CHUNK))
                for key in ("exp_avg", "exp_avg_sq"):
                    grown = p.new_zeros((room, p.shape[1]))
                    grown[:count] = state[key][:count]
                    state[key] = grown
        if len(rows) == p.shape[0]:
            return self._make_dense(p, state)
        self._row_slots[id(p)] = (rows, slots)
        return True

    def _make_dense(self, p: torch.Tensor, state: dict) -> bool:
        """Turn a row-sparse state into the ordinary one (moments of every row, in row order)."""
        rows = state.pop("rows")
        for key in ("exp_avg", "exp_avg_sq"):
            state[key] = torch.zeros_like(p).index_copy_(0, rows, state[key][:len(rows)])
        self._row_slots.pop(id(p), None)
        return False


def rows_with_gradient(grad: torch.Tensor) -> torch.Tensor:
    """(rows,) bool: the rows of a 2-D float32 gradient with a bit set in some value: every row with a
    non-zero value (NaN and inf included), and rows with a -0.0 (harmless: zero moments stay zero).
    Read as int32, a value is positive where its float is and negative where its sign bit is set; an
    integer max and min per row are 5x faster here than any float reduction that cannot underflow."""
    bits = grad.view(torch.int32)
    return (bits.amax(1) > 0) | (bits.amin(1) < 0)


ROW_CHUNK = 1024  # rows of moments allocated at least at a time for a row-sparse table
ROW_LIMIT = 1 << 24  # row numbers pass through float32 in load_state_dict: exact below 2^24
