import pytest
import torch

from seqtune.models.encoder import Encoder, EncoderConfig


def tiny():
    torch.manual_seed(0)
    return Encoder(EncoderConfig(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
                                 intermediate_size=32, max_position_embeddings=32)).eval()


def test_shapes_and_gradients():
    enc = tiny().train()
    ids = torch.randint(5, 40, (3, 7))
    out = enc(ids, torch.ones(3, 7, dtype=torch.long))
    assert out.shape == (3, 7, 16)
    out.sum().backward()
    assert all(p.grad is not None for n, p in enc.named_parameters() if not n.startswith("pooler"))


def test_padding_is_masked():
    enc = tiny()
    ids = torch.randint(5, 40, (1, 5))
    padded = torch.cat([ids, torch.zeros(1, 4, dtype=torch.long)], 1)
    mask = torch.tensor([[1] * 5 + [0] * 4])
    with torch.no_grad():
        a = enc(ids)
        b = enc(padded, mask)[:, :5]
    assert torch.allclose(a, b, atol=1e-6)


def test_first_token_only_gives_the_same_cls_state_and_gradients():
    enc = tiny()
    ids = torch.randint(5, 40, (3, 7))
    mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3, [1] * 2 + [0] * 5])
    types = torch.tensor([[0] * 4 + [1] * 3] * 3)
    full = enc(ids, mask, types)
    first = enc(ids, mask, types, first_token_only=True)
    assert first.shape == (3, 1, 16)
    assert torch.allclose(first[:, 0], full[:, 0], atol=1e-6)
    # the gradients of a loss on [CLS] agree too (dropout off), so training does the same arithmetic
    grads = []
    for out in (full, first):
        enc.zero_grad()
        (enc.pooler(out) ** 2).sum().backward()
        grads.append({n: p.grad.clone() for n, p in enc.named_parameters()})
    for name, g in grads[0].items():
        assert torch.allclose(grads[1][name], g, atol=1e-5), name


@pytest.mark.parametrize("call_cost", [0, None, 10**12])
def test_packed_blocks_match_padded_blocks(monkeypatch, call_cost):
    """A batch with much padding runs its blocks on the real tokens only (Packing); the real tokens'
    states and all gradients equal those of the padded computation, with and without [CLS]-only, with
    attention one sequence at a time (a free call), grouped by the cost model, or in one padded group."""
    import seqtune.models.encoder as encoder_module

    if call_cost is not None:
        monkeypatch.setattr(encoder_module, "ATTENTION_CALL_COST", call_cost)
        monkeypatch.setattr(encoder_module, "ATTENTION_ROW_COST", 0)
    enc = tiny()
    ids = torch.randint(5, 40, (3, 9))
    mask = torch.tensor([[1] * 9, [1] * 4 + [0] * 5, [1] * 2 + [0] * 7])
    real = mask.bool()
    for first_token_only in (False, True):
        outs, grads = [], []
        for fill in (0.0, 1.01):  # 0: never pack; 1.01: always pack
            monkeypatch.setattr(encoder_module, "PACK_BELOW_FILL", fill)
            enc.zero_grad()
            out = enc(ids, mask, first_token_only=first_token_only)
            kept = out[:, 0] if first_token_only else out[real]
            (kept ** 2).sum().backward()
            outs.append(kept.detach())
            grads.append({n: p.grad.clone() for n, p in enc.named_parameters() if p.grad is not None})
            if fill > 1 and not first_token_only:
                assert torch.equal(out[~real], torch.zeros_like(out[~real]))  # padding comes out as zeros
        assert torch.allclose(outs[0], outs[1], atol=1e-6)
        assert grads[0].keys() == grads[1].keys()
        for name, g in grads[0].items():
            assert torch.allclose(grads[1][name], g, atol=1e-5), name


def partition_cost(groups, heads: int) -> float:
    import seqtune.models.encoder as encoder_module
    return sum(encoder_module.ATTENTION_CALL_COST
               + heads * len(members) * (encoder_module.ATTENTION_ROW_COST * length + length * length)
               for members, length in groups)


@pytest.mark.parametrize("seed", range(6))
def test_attention_groups_are_the_cheapest_split_by_length(seed):
    """Every sequence attends once, in a group padded to its longest member, and no split of the
    length-sorted sequences into runs costs less (brute force over all 2^(B-1) splits)."""
    from itertools import combinations

    from seqtune.models.encoder import attention_groups

    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, [8, 40, 200, 600][seed % 4], (int(torch.randint(1, 10, (1,), generator=g)),),
                            generator=g).tolist()
    heads = [1, 4, 12][seed % 3]
    groups = attention_groups(lengths, heads)
    assert sorted(i for members, _ in groups for i in members) == list(range(len(lengths)))
    assert all(length == max(lengths[i] for i in members) for members, length in groups)
    ordered = sorted(lengths)
    cheapest = min(
        partition_cost([(ordered[a:b], ordered[b - 1]) for a, b in zip((0, *cuts), (*cuts, len(ordered)))], heads)
        for k in range(len(ordered)) for cuts in combinations(range(1, len(ordered)), k))
    assert partition_cost(groups, heads) == pytest.approx(cheapest)


def test_attention_groups_follow_the_cost_of_a_call():
    """Many short sequences share one call; long ones of different lengths attend apart, and equal
    lengths share a call with no padding."""
    from seqtune.models.encoder import attention_groups

    assert attention_groups([3, 7, 5, 2], heads=12) == [([3, 0, 2, 1], 7)]
    assert attention_groups([512, 300, 512, 128], heads=4) == [([3], 128), ([1], 300), ([0, 2], 512)]


def test_packing_places_each_token_in_its_group_row():
    """Packing.slots: sequence k of a group starts at the group's start + k * its padded length; the
    group's mask marks exactly the real tokens (None when none is padded)."""
    from seqtune.models.encoder import Packing

    lengths = [6, 2, 6, 3]
    mask = (torch.arange(6)[None] < torch.tensor(lengths)[:, None]).long()
    packing = Packing.of(mask, heads=1)
    buffer = torch.full((packing.rows,), -1).index_copy(0, packing.slots, torch.arange(sum(lengths)))
    starts = [0, 6, 8, 14]  # each sequence's first packed row
    for group in packing.groups:
        rows = buffer[group.start:group.start + group.size * group.length].view(group.size, group.length)
        real = rows >= 0
        if group.mask is None:
            assert real.all()
        else:
            assert torch.equal(group.mask[:, 0, 0], real)
        for row in rows:
            tokens = row[row >= 0].tolist()
            sequence = next(i for i, s in enumerate(starts) if s == tokens[0])
            assert tokens == list(range(starts[sequence], starts[sequence] + lengths[sequence]))
    assert sum(g.size for g in packing.groups) == 4 and packing.rows >= sum(lengths)


def test_attention_groups_never_split_equal_lengths():
    """Cuts lie between distinct lengths only (a batch of thousands of sequences costs the square of
    its distinct lengths, not of its size)."""
    from seqtune.models.encoder import attention_groups

    lengths = torch.randint(1, 60, (3000,), generator=torch.Generator().manual_seed(0)).tolist()
    groups = attention_groups(lengths, heads=12)
    group_of = {length: {k for k, (members, _) in enumerate(groups) if any(lengths[i] == length for i in members)}
                for length in set(lengths)}
    assert all(len(found) == 1 for found in group_of.values())
    assert sum(len(members) for members, _ in groups) == 3000


@pytest.mark.parametrize("family", ["bert", "esm"])
@pytest.mark.parametrize("fill", [0.0, 1.01])  # 0: blocks never packed; 1.01: always packed
def test_chosen_positions_give_the_same_states_and_gradients(monkeypatch, family, fill):
    """With `chosen` positions (the MLM head's masked ones) the last block computes those alone: their
    states and every gradient of a loss on them equal the full computation's, padded and packed, with
    learnt and rotary (ESM: pre-LayerNorm, queries rotated by their own positions) positions, and with
    gradient checkpointing. Nothing chosen gives no states; `forward` and `run_layers` agree."""
    import seqtune.models.encoder as encoder_module

    monkeypatch.setattr(encoder_module, "PACK_BELOW_FILL", fill)
    extra = {"model_type": "esm", "position_embedding_type": "rotary", "type_vocab_size": 0} if family == "esm" else {}
    torch.manual_seed(0)
    enc = Encoder(EncoderConfig(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
                                intermediate_size=32, max_position_embeddings=32, **extra)).eval()
    ids = torch.randint(5, 40, (3, 9))
    mask = torch.tensor([[1] * 9, [1] * 4 + [0] * 5, [1] * 6 + [0] * 3])
    chosen = torch.zeros(3, 9, dtype=torch.bool)
    chosen[0, [1, 4, 8]] = chosen[1, 3] = chosen[2, [0, 5]] = True  # different counts per sequence
    weights = torch.randn(int(chosen.sum()), 16)  # a loss whose gradient the final LayerNorm does not cancel
    for checkpointing in (False, True):
        enc.gradient_checkpointing = checkpointing
        outs, grads = [], []
        for use_chosen in (False, True):
            enc.zero_grad()
            out = enc(ids, mask, chosen=chosen) if use_chosen else enc(ids, mask)[chosen]
            assert out.shape == (int(chosen.sum()), 16)
            (out * weights).sum().backward()
            outs.append(out.detach())
            grads.append({n: p.grad.clone() for n, p in enc.named_parameters() if p.grad is not None})
        assert torch.allclose(outs[0], outs[1], atol=1e-6)
        assert grads[0].keys() == grads[1].keys()
        for name, g in grads[0].items():  # to rounding (ESM's pre-LN gradients reach ~200)
            assert torch.allclose(grads[1][name], g, rtol=1e-5, atol=1e-6 * float(g.abs().max())), name
    enc.gradient_checkpointing = False
    assert enc(ids, mask, chosen=torch.zeros_like(chosen)).shape == (0, 16)
    hidden = enc.embeddings(ids, None, mask)
    assert torch.equal(enc.run_layers(hidden, mask, chosen=chosen), enc(ids, mask, chosen=chosen))
    # the states below the last block are not cut: a run of the bottom block alone returns (B, T, H)
    assert enc.run_layers(hidden, mask, 0, 1).shape == (3, 9, 16)
