"""Masking statistics with a fixed seed: rates, 80/10/10 split, specials untouched, whole words."""

from __future__ import annotations

import pytest
import torch

from seqtune.data.masking import MaskingConfig, mask_tokens, maskable_positions
from seqtune.errors import SeqtuneError

MASK, PAD, CLS, SEP = 4, 0, 2, 3
SPECIAL = torch.tensor([0, 1, 2, 3, 4])
ORDINARY = torch.arange(5, 30)


def random_batch(B=64, T=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(T // 2, T + 1, (B,), generator=g)
    ids = torch.randint(5, 30, (B, T), generator=g)
    attention = (torch.arange(T)[None, :] < lengths[:, None]).long()
    ids[:, 0] = CLS
    ids[torch.arange(B), lengths - 1] = SEP
    ids[attention == 0] = PAD
    return ids, attention


def test_rates_and_80_10_10_split_with_fixed_seed():
    ids, attention = random_batch()
    maskable = maskable_positions(ids, attention, SPECIAL)
    out = mask_tokens(ids, maskable, MaskingConfig(), MASK, ORDINARY, torch.Generator().manual_seed(1))
    chosen = out.positions
    rate = chosen.sum() / maskable.sum()
    assert abs(rate - 0.15) < 0.01
    became_mask = (out.input_ids == MASK) & chosen
    unchanged = (out.input_ids == ids) & chosen
    n = chosen.sum()
    assert abs(became_mask.sum() / n - 0.8) < 0.03
    # a random replacement can hit the original token (1 in 25), which counts as unchanged
    assert abs(unchanged.sum() / n - (0.1 + 0.1 / 25)) < 0.02
    assert torch.equal(out.labels, ids[chosen])
    # nothing outside the chosen positions changes; specials and padding are never chosen
    assert torch.equal(out.input_ids[~chosen], ids[~chosen])
    assert not (chosen & ~maskable).any()
    replaced = out.input_ids[chosen & (out.input_ids != MASK)]
    assert ((replaced >= 5) & (replaced < 30)).all()


def test_same_seed_same_masks_and_next_call_new_masks():
    ids, attention = random_batch(B=8, T=50)
    maskable = maskable_positions(ids, attention, SPECIAL)
    a = mask_tokens(ids, maskable, MaskingConfig(), MASK, ORDINARY, torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(7)
    b = mask_tokens(ids, maskable, MaskingConfig(), MASK, ORDINARY, g)
    c = mask_tokens(ids, maskable, MaskingConfig(), MASK, ORDINARY, g)  # the next epoch
    assert torch.equal(a.input_ids, b.input_ids) and torch.equal(a.positions, b.positions)
    assert not torch.equal(b.positions, c.positions)


def test_configurable_fractions():
    ids, attention = random_batch()
    maskable = maskable_positions(ids, attention, SPECIAL)
    cfg = MaskingConfig(probability=0.3, mask_fraction=1.0, random_fraction=0.0)
    out = mask_tokens(ids, maskable, cfg, MASK, ORDINARY, torch.Generator().manual_seed(0))
    assert abs(out.positions.sum() / maskable.sum() - 0.3) < 0.015
    assert (out.input_ids[out.positions] == MASK).all()


def test_every_sequence_gets_at_least_one_masked_token():
    ids = torch.tensor([[CLS, 9, SEP, PAD], [CLS, 7, 8, SEP], [CLS, SEP, PAD, PAD]])
    attention = (ids != PAD).long()
    maskable = maskable_positions(ids, attention, SPECIAL)
    cfg = MaskingConfig(probability=0.01)
    for seed in range(20):
        out = mask_tokens(ids, maskable, cfg, MASK, ORDINARY, torch.Generator().manual_seed(seed))
        assert out.positions[0].sum() >= 1 and out.positions[1].sum() >= 1
        assert out.positions[2].sum() == 0  # nothing maskable: nothing chosen


def test_whole_word_masking_masks_all_pieces_of_a_word():
    B, words_per_row, pieces = 32, 40, 3
    T = words_per_row * pieces + 2
    word_ids = torch.full((B, T), -1)
    word_ids[:, 1:-1] = torch.arange(words_per_row).repeat_interleave(pieces)
    ids = torch.randint(5, 30, (B, T), generator=torch.Generator().manual_seed(3))
    ids[:, 0], ids[:, -1] = CLS, SEP
    attention = torch.ones(B, T, dtype=torch.long)
    maskable = maskable_positions(ids, attention, SPECIAL)
    cfg = MaskingConfig(whole_word=True)
    out = mask_tokens(ids, maskable, cfg, MASK, ORDINARY, torch.Generator().manual_seed(0), word_ids)
    per_word = out.positions[:, 1:-1].reshape(B, words_per_row, pieces)
    assert (per_word.all(-1) | ~per_word.any(-1)).all()  # all pieces or none
    assert abs(per_word.all(-1).float().mean() - 0.15) < 0.03


def test_bad_masking_settings_are_errors():
    with pytest.raises(SeqtuneError, match="between 0 and 1"):
        MaskingConfig(probability=0.0)
    with pytest.raises(SeqtuneError, match="at most 1"):
        MaskingConfig(mask_fraction=0.8, random_fraction=0.3)
