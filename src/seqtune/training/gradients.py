"""Row gradients for embedding tables, and gradient clipping that takes them.

A batch of a few hundred tokens uses a few hundred rows of a 30,522-row vocabulary, yet the dense
gradient of the word embeddings is the whole (V, H) matrix: for MiniLM 47 MB zero-filled every step
(at about 1.5 GB/s, the speed of memory newly mapped and faulted in: glibc maps an allocation that
large afresh), then read by clipping and by the optimiser's search for the rows it must update. On
one core of the session-12 machine the embedding's forward + backward took 31 ms of a 370 ms SST-2
step. With `nn.Embedding(sparse=True)` the gradient is the used rows only (`torch.sparse_coo`:
0.3 ms). Summed per row (coalesced) it is the dense gradient's rows up to rounding: a row used many
times in a batch ([CLS], [SEP]) is summed in another order (3.3e-6 apart on a test batch of
unit-normal token gradients); rows used a few times came out bit-equal.

So during training (`row_gradients`) the embedding tables whose Adam moments are kept by row (adam.py,
`row_sparse`: fused steps on the CPU) give sparse gradients; `clip_gradients` clips them with the
others. A table tied to an output layer (MLM) gets the dense gradient of that layer added, and
autograd then hands the optimiser a dense sum, as before. Not under torchrun (DistributedDataParallel
would have to all-reduce sparse tensors) and not on GPUs, where the row-sparse state is not used.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch
from torch import nn


def row_gradient_tables(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[nn.Embedding]:
    """The embedding modules of `model` that can give sparse gradients to `optimizer`: their weight is
    trained, on the CPU, and kept row-sparse by a fused group of seqtune's AdamW."""
    row_sparse = getattr(optimizer, "row_sparse", set())
    fused = {id(p) for group in optimizer.param_groups if group.get("fused") for p in group["params"]}
    return [m for m in model.modules()
            if isinstance(m, nn.Embedding) and m.weight.requires_grad and m.weight.device.type == "cpu"
            and id(m.weight) in row_sparse and id(m.weight) in fused]


@contextmanager
def row_gradients(model: nn.Module, optimizer: torch.optim.Optimizer, enabled: bool = True) -> Iterator[None]:
    """Within: the row-sparse embedding tables of `model` give sparse gradients (see the module's
    docstring); afterwards they are as they were."""
    tables = row_gradient_tables(model, optimizer) if enabled else []
    before = [m.sparse for m in tables]
    for m in tables:
        m.sparse = True
    try:
        yield
    finally:
        for m, sparse in zip(tables, before):
            m.sparse = sparse


def clip_gradients(parameters: Iterable[torch.Tensor], max_norm: float) -> torch.Tensor:
    """`torch.nn.utils.clip_grad_norm_` (2-norm over all gradients), for gradients that may be sparse.
    Without a sparse one it is torch's function itself; with one, a sparse gradient is coalesced in place
    (each row once) and counts by its values, and the arithmetic is torch's: total = norm of the
    per-tensor norms, every gradient times min(1, max_norm / (total + 1e-6))."""
    parameters = [p for p in parameters if p.grad is not None]
    if not any(p.grad.is_sparse for p in parameters):
        return torch.nn.utils.clip_grad_norm_(parameters, max_norm)
    grads = []
    for p in parameters:
        if p.grad.is_sparse:
            p.grad = p.grad.coalesce()
            grads.append(p.grad._values())  # (the coalesced tensor's own values: scaled in place)
        else:
            grads.append(p.grad)
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads, 2.0)), 2.0)
    torch._foreach_mul_(grads, torch.clamp(max_norm / (total + 1e-6), max=1.0))
    return total
