"""train.compile: the compiled blocks give the eager outputs and gradients (padded, packed with
attention per sequence, [CLS]-only), and a model that does not run on the native encoder is refused.

Compiling takes a minute or more on a busy 2-core machine, so the parity test runs only with
SEQTUNE_COMPILE_TESTS=1 (README "Testing")."""

from __future__ import annotations

import os

import pytest
import torch

from seqtune.errors import SeqtuneError
from seqtune.models.encoder import Encoder, EncoderConfig
from seqtune.models.heads import Head
from seqtune.models.task_model import TaskModel
from seqtune.training.compiling import compile_blocks, compiled_graphs

needs_compile = pytest.mark.skipif(os.environ.get("SEQTUNE_COMPILE_TESTS") != "1",
                                   reason="compiling is slow; set SEQTUNE_COMPILE_TESTS=1")


class HiddenStates(Head):
    def forward(self, hidden, attention_mask, pooler):
        return hidden


def Model(model_type: str) -> TaskModel:
    extra = {"model_type": model_type}
    if model_type == "esm":
        extra.update(position_embedding_type="rotary", type_vocab_size=0)
    torch.manual_seed(0)
    # dropout off: inductor draws its own dropout masks, so only dropout-free runs can agree exactly
    encoder = Encoder(EncoderConfig(vocab_size=40, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                    intermediate_size=64, max_position_embeddings=80, hidden_dropout_prob=0.0,
                                    attention_probs_dropout_prob=0.0, **extra))
    return TaskModel(encoder, HiddenStates())


def batches(seed: int):
    """A batch of each layout: nothing padded, packed with a long sequence attending apart from short
    ones (attention groups of two shapes), packed in one padded group (short), padded; sizes and lengths
    drawn from `seed`."""
    g = torch.Generator().manual_seed(seed)

    def mask(lengths: list[int]) -> torch.Tensor:
        return (torch.arange(max(lengths))[None] < torch.tensor(lengths)[:, None]).long()

    def draw(low: int, high: int, n: int) -> list[int]:
        return torch.randint(low, high, (n,), generator=g).tolist()

    b = int(torch.randint(2, 5, (1,), generator=g))
    layouts = (mask([draw(5, 12, 1)[0]] * b),
               mask([70 + seed] + draw(2, 30, b - 1)),
               mask([9 + seed] + draw(1, 4, b - 1)),
               mask([20 + seed] + [19 + seed] * (b - 1)))
    for m in layouts:
        yield torch.randint(5, 40, m.shape, generator=g), m


@needs_compile
@pytest.mark.parametrize("model_type", ["bert", "esm"])
def test_compiled_blocks_match_eager(model_type):
    eager, compiled = Model(model_type).train(), Model(model_type).train()
    compile_blocks(compiled)
    graphs = []
    for seed in (1, 2, 3):
        graphs.append(compiled_graphs())
        compare(eager, compiled, batches(seed))
    # every layer and every batch of a layout runs the same compiled code: the first batches compile
    # each layout's graphs (dynamic shapes), batches of other sizes and lengths compile nothing new
    assert graphs[1] > graphs[0] and compiled_graphs() == graphs[1], graphs


def compare(eager, compiled, batches) -> None:
    for ids, mask in batches:
        # every position; [CLS] alone; chosen positions alone (MLM's masked ones: queries at their positions)
        chosen = mask.bool() & (torch.arange(mask.shape[1]) % 3 == 1)
        for reads in ("all", "first", "chosen"):
            results = []
            for model in (eager, compiled):
                model.zero_grad()
                if reads == "chosen":
                    kept = model.encoder(ids, mask, chosen=chosen)
                else:
                    out = model.encoder(ids, mask, first_token_only=reads == "first")
                    kept = out[:, 0] if reads == "first" else out[mask.bool()]
                (kept.sin() * torch.arange(kept.shape[-1])).mean().backward()
                results.append((kept.detach(), {n: p.grad.clone() for n, p in model.named_parameters()
                                                if p.grad is not None}))
            (out_e, grads_e), (out_c, grads_c) = results
            assert torch.allclose(out_c, out_e, rtol=1e-5, atol=1e-5), (out_c - out_e).abs().max()
            assert grads_c.keys() == grads_e.keys()
            for name, g in grads_e.items():
                assert torch.allclose(grads_c[name], g, rtol=1e-4, atol=1e-5), name


def test_a_model_without_the_native_encoder_is_refused():
    with pytest.raises(SeqtuneError, match="train.compile: true works with seqtune's native encoder only"):
        compile_blocks(torch.nn.Linear(2, 2))
