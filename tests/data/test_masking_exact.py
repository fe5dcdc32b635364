"""Masking pinned exactly: which draw decides what, the at-least-one fallback (only ever a maskable
token, or a whole maskable word), whole-word masking's use of the seed and of every word including
the first, and the documented defaults (BERT's 15% / 80-10-10)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from seqtune.data.masking import (
    MaskingConfig,
    choose_positions,
    mask_tokens,
    maskable_positions,
)
from seqtune.errors import SeqtuneError

PAD, UNK, CLS, SEP, MASK = 0, 1, 2, 3, 4
SPECIAL = torch.tensor([PAD, UNK, CLS, SEP, MASK])
ORDINARY = torch.arange(5, 30)


def test_defaults_are_berts():
    """The README and the MLM options promise BERT's recipe: 15% chosen, of those 80% [MASK], 10% random."""
    cfg = MaskingConfig()
    assert (cfg.probability, cfg.mask_fraction, cfg.random_fraction, cfg.whole_word) == (0.15, 0.8, 0.1, False)


@pytest.mark.parametrize("kwargs", [{"probability": 1.0}, {"probability": -0.1}, {"probability": 0.0},
                                    {"mask_fraction": -0.1, "random_fraction": 0.0},
                                    {"mask_fraction": 0.5, "random_fraction": -0.1},
                                    {"mask_fraction": 0.75, "random_fraction": 0.5}])
def test_bad_settings(kwargs):
    with pytest.raises(SeqtuneError):
        MaskingConfig(**kwargs)


def test_bad_fractions_message():
    with pytest.raises(SeqtuneError) as error:
        MaskingConfig(mask_fraction=0.75, random_fraction=0.5)
    assert str(error.value) == ("mask_fraction 0.75 + random_fraction 0.5 must be non-negative and at most 1 "
                                "(the rest of the chosen tokens are kept unchanged).")


@pytest.mark.parametrize("kwargs", [{"probability": 0.999}, {"probability": 1e-6},
                                    {"mask_fraction": 0.5, "random_fraction": 0.5},
                                    {"mask_fraction": 0.0, "random_fraction": 0.0}, {"mask_fraction": 1.0, "random_fraction": 0.0}])
def test_edge_settings_are_allowed(kwargs):
    MaskingConfig(**kwargs)


def test_maskable_positions_exact():
    ids = torch.tensor([[CLS, 7, UNK, 8, MASK, SEP, PAD], [CLS, 9, 10, SEP, 11, PAD, PAD]])
    attention = torch.tensor([[1, 1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 0, 0, 0]])
    # ordinary 11 under attention 0 is padding too
    assert maskable_positions(ids, attention, SPECIAL).int().tolist() == [[0, 1, 0, 1, 0, 0, 0], [0, 1, 1, 0, 0, 0, 0]]


def test_one_draw_decides_mask_random_or_keep():
    """Replays the generator: positions drawn below `probability` are chosen; of those, action < 0.8 is
    [MASK], 0.8 <= action < 0.9 a random token from random_ids, the rest unchanged."""
    ids = torch.arange(5, 5 + 3 * 40).reshape(3, 40) % 25 + 5
    maskable = torch.ones_like(ids, dtype=torch.bool)
    maskable[:, 0] = False
    out = mask_tokens(ids, maskable, MaskingConfig(probability=0.5), MASK, ORDINARY, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    chosen = (torch.rand(3, 40, generator=g) < 0.5) & maskable
    torch.rand(3, 40, generator=g)  # the fallback's scores
    action = torch.rand(3, 40, generator=g)
    assert torch.equal(out.positions, chosen)
    assert torch.equal(out.labels, ids[chosen])
    to_mask = chosen & (action < 0.8)
    to_random = chosen & (action >= 0.8) & (action < 0.9)
    assert (out.input_ids[to_mask] == MASK).all()
    picks = torch.randint(len(ORDINARY), (int(to_random.sum()),), generator=g)
    assert torch.equal(out.input_ids[to_random], ORDINARY[picks])
    keep = ~(to_mask | to_random)
    assert torch.equal(out.input_ids[keep], ids[keep])
    assert to_mask.any() and to_random.any() and (chosen & keep).any()


def test_random_replacements_come_from_random_ids_and_input_is_untouched():
    ids = torch.full((4, 30), 9)
    before = ids.clone()
    cfg = MaskingConfig(probability=0.5, mask_fraction=0.0, random_fraction=1.0)
    out = mask_tokens(ids, torch.ones_like(ids, dtype=torch.bool), cfg, MASK, torch.tensor([17]),
                      torch.Generator().manual_seed(0))
    assert out.positions.any()
    assert (out.input_ids[out.positions] == 17).all() and (out.input_ids[~out.positions] == 9).all()
    assert (out.labels == 9).all() and torch.equal(ids, before)


def test_keep_everything_chosen():
    ids = torch.full((4, 30), 9)
    cfg = MaskingConfig(probability=0.5, mask_fraction=0.0, random_fraction=0.0)
    out = mask_tokens(ids, torch.ones_like(ids, dtype=torch.bool), cfg, MASK, ORDINARY, torch.Generator().manual_seed(0))
    assert out.positions.any() and torch.equal(out.input_ids, ids)


def test_no_mask_token_is_a_clear_error():
    with pytest.raises(SeqtuneError, match=r"^the tokenizer has no \[MASK\] token; masked-language-model training "
                                           r"needs one\.$"):
        mask_tokens(torch.ones(1, 3, dtype=torch.long), torch.ones(1, 3, dtype=torch.bool), MaskingConfig(), None,
                    ORDINARY, torch.Generator())


# ---- the at-least-one fallback -------------------------------------------------------------------------
rows = st.lists(st.lists(st.booleans(), min_size=6, max_size=6), min_size=1, max_size=6)


@settings(max_examples=60, deadline=None)
@given(rows, st.integers(0, 10**6))
def test_fallback_chooses_one_maskable_token_per_row(maskable_rows, seed):
    maskable = torch.tensor(maskable_rows)
    # a probability so small that the ordinary draw chooses nothing: only the fallback chooses
    chosen = choose_positions(maskable, 1e-12, torch.Generator().manual_seed(seed))
    assert not (chosen & ~maskable).any()  # never [CLS], [SEP] or padding
    assert chosen.sum(1).tolist() == [1 if row.any() else 0 for row in maskable]


def test_fallback_token_is_random_among_the_maskable():
    maskable = torch.tensor([[False, True, True, True, True, False]])
    picks = {int(choose_positions(maskable, 1e-12, torch.Generator().manual_seed(s)).nonzero()[0, 1])
             for s in range(40)}
    assert picks == {1, 2, 3, 4}


def words(pieces_per_word: list[int], pad: int = 1) -> torch.Tensor:
    """(1, T) word ids for [CLS] words... [SEP] + padding: -1 at the specials."""
    ids = [-1] + [w for w, n in enumerate(pieces_per_word) for _ in range(n)] + [-1] * (1 + pad)
    return torch.tensor([ids])


def test_whole_word_fallback_chooses_one_whole_maskable_word():
    word_ids = words([2, 3, 1, 2])
    maskable = word_ids >= 0
    seen = set()
    for seed in range(40):
        chosen = choose_positions(maskable, 1e-12, torch.Generator().manual_seed(seed), word_ids)
        picked = set(word_ids[chosen].tolist())
        assert len(picked) == 1
        (word,) = picked
        assert torch.equal(chosen, word_ids == word)  # every piece of it, nothing else
        seen.add(word)
    assert seen == {0, 1, 2, 3}  # the first word too


def test_whole_word_fallback_follows_the_seed_and_differs_between_rows():
    word_ids = words([1] * 12).repeat(8, 1)
    maskable = word_ids >= 0

    def fallback(seed):
        return choose_positions(maskable, 1e-12, torch.Generator().manual_seed(seed), word_ids)

    for seed in range(10):
        assert torch.equal(fallback(seed), fallback(seed))
    picked = fallback(0).int().argmax(1)
    assert len(set(picked.tolist())) > 1  # each row draws its own word


def test_whole_word_chooses_every_word_including_the_first():
    word_ids = torch.cat([words([2, 1, 3]), words([1, 1, 1], pad=4)])
    maskable = word_ids >= 0
    chosen = choose_positions(maskable, 0.999999, torch.Generator().manual_seed(0), word_ids)
    assert torch.equal(chosen, maskable)


def test_whole_word_masking_leaves_non_maskable_pieces_alone():
    word_ids = words([3, 3])
    maskable = word_ids >= 0
    maskable[0, 2] = False  # e.g. an [UNK] piece inside word 0
    chosen = choose_positions(maskable, 0.999999, torch.Generator().manual_seed(0), word_ids)
    assert torch.equal(chosen, maskable)


def test_whole_word_masking_follows_the_seed():
    word_ids = words([1] * 60).repeat(4, 1)
    maskable = word_ids >= 0
    ids = torch.randint(5, 30, word_ids.shape, generator=torch.Generator().manual_seed(0))
    cfg = MaskingConfig(whole_word=True)

    def run(generator):
        return mask_tokens(ids, maskable, cfg, MASK, ORDINARY, generator, word_ids)

    a, b = run(torch.Generator().manual_seed(5)), run(torch.Generator().manual_seed(5))
    assert torch.equal(a.positions, b.positions) and torch.equal(a.input_ids, b.input_ids)
    g = torch.Generator().manual_seed(5)
    run(g)
    assert not torch.equal(run(g).positions, a.positions)  # the next epoch
    assert not torch.equal(run(torch.Generator().manual_seed(6)).positions, a.positions)


def test_whole_word_off_ignores_word_ids():
    word_ids = words([30])  # one long word: whole-word masking would choose all of it or nothing
    maskable = word_ids >= 0
    ids = torch.full(word_ids.shape, 9)
    out = mask_tokens(ids, maskable, MaskingConfig(probability=0.5), MASK, ORDINARY,
                      torch.Generator().manual_seed(0), word_ids)
    assert 0 < int(out.positions.sum()) < 30


def test_empty_batch():
    out = mask_tokens(torch.zeros(0, 5, dtype=torch.long), torch.zeros(0, 5, dtype=torch.bool),
                      MaskingConfig(whole_word=True), MASK, ORDINARY, torch.Generator(),
                      torch.zeros(0, 5, dtype=torch.long))
    assert out.positions.shape == (0, 5) and out.labels.numel() == 0
