"""`train.compile: true`: torch.compile (inductor) of the encoder blocks' pieces, for training.

What is compiled, per block (models/encoder.py): `SelfAttention.attend` (rotary positions, attention
with its dropout), `Layer.add_attention` (output projection, dropout, residual, LayerNorm) and
`Layer.feed_forward` (two linear layers, GELU, dropout, residual, LayerNorm). Inductor fuses their
element-wise work (bias + GELU, dropout + residual + LayerNorm, softmax + dropout) into a few loops;
the matrix products stay library calls. The Python around them (packing, one attention call per
group of a packed batch) stays eager, so batches of any size and length reuse the same compiled
code: shapes are dynamic from the start (`dynamic=True`), and the few graphs there are (padded,
packed, [CLS]-only, masked positions only) are compiled once each, at their first batch.

Dropout draws its masks from inductor's own generator: a compiled run is as random as an eager one
but not bit-equal to it, and resuming a compiled run from a checkpoint continues with other masks.
"""

from __future__ import annotations

import torch
from torch import nn

from seqtune.errors import SeqtuneError
from seqtune.models.encoder import Encoder
from seqtune.models.task_model import TaskModel


def compile_blocks(model: nn.Module) -> int:
    """Compile the blocks of `model.encoder` in place (see the module's docstring); returns how many.
    The weights stay the module's parameters: saving, loading and the optimiser see no difference."""
    if not (isinstance(model, TaskModel) and isinstance(model.encoder, Encoder)):
        raise SeqtuneError("train.compile: true works with seqtune's native encoder only (BERT, RoBERTa, "
                           "XLM-R, DistilBERT, ELECTRA, ESM-2); this model runs through transformers. "
                           "Set train.compile: false.")
    encoder = model.encoder
    for layer in encoder.layers:
        layer.attention.attend = contiguous_inputs(torch.compile(layer.attention.attend, dynamic=True))
        layer.add_attention = torch.compile(layer.add_attention, dynamic=True)
        layer.feed_forward = torch.compile(layer.feed_forward, dynamic=True)
    return len(encoder.layers)


def contiguous_inputs(attend):
    """Give the compiled attention contiguous q, k and v. A packed batch's attention groups are views
    into one buffer at varying offsets, and dynamo specialises a view that starts at offset 0 apart
    from one that does not (one more graph per layout); copies always start at 0."""
    def call(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
             query_positions: torch.Tensor | None = None) -> torch.Tensor:
        return attend(q.contiguous(), k.contiguous(), v.contiguous(), mask, query_positions)
    return call


def compiled_graphs() -> int:
    """Graphs compiled so far in this process (recompilations included)."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])
