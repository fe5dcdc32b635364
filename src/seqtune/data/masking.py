"""BERT's masking for masked-language-model training, on padded batches of token ids.

Each maskable token is chosen with probability `probability` (15%); of the chosen, `mask_fraction`
(80%) become [MASK], `random_fraction` (10%) a random ordinary token, the rest stay as they are.
Special tokens ([CLS], [SEP], [PAD], [UNK], [MASK], [unusedN]) and padding are never chosen. With
whole-word masking, words are chosen instead of tokens and every piece of a chosen word is masked
(so "##ing" cannot be guessed from "walk" next to it).

Every sequence with at least one maskable token gets at least one chosen token, so no batch has an
empty loss. Randomness comes only from the `torch.Generator` passed in: a seeded generator gives the
same masks, and calling again with the same generator (next epoch) gives new ones.

Shapes: B = batch, T = padded length, M = number of chosen positions in the batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from seqtune.errors import SeqtuneError


@dataclass
class MaskingConfig:
    probability: float = 0.15
    mask_fraction: float = 0.8  # of the chosen tokens, replaced by [MASK]
    random_fraction: float = 0.1  # of the chosen tokens, replaced by a random ordinary token
    whole_word: bool = False

    def __post_init__(self) -> None:
        if not 0.0 < self.probability < 1.0:
            raise SeqtuneError(f"mask probability must be between 0 and 1, got {self.probability}.")
        if self.mask_fraction < 0 or self.random_fraction < 0 or self.mask_fraction + self.random_fraction > 1.0:
            raise SeqtuneError(
                f"mask_fraction {self.mask_fraction} + random_fraction {self.random_fraction} must be "
                "non-negative and at most 1 (the rest of the chosen tokens are kept unchanged)."
            )


@dataclass
class MaskedBatch:
    input_ids: torch.Tensor  # (B, T) with chosen tokens replaced
    positions: torch.Tensor  # (B, T) bool: chosen positions, where the loss is computed
    labels: torch.Tensor  # (M,) original ids at the chosen positions, in row-major order


def choose_positions(maskable: torch.Tensor, probability: float, generator: torch.Generator,
                     word_ids: torch.Tensor | None = None) -> torch.Tensor:
    """(B, T) bool of chosen positions among `maskable` (B, T) bool.

    word_ids (B, T) long, -1 where not a word: choose whole words (every token of a chosen word).
    """
    B, T = maskable.shape
    if word_ids is None:
        chosen = (torch.rand(B, T, generator=generator) < probability) & maskable
        scores = torch.rand(B, T, generator=generator)
        fallback_unit = None
    else:
        n_words = int(word_ids.max()) + 1 if word_ids.numel() else 0
        word_chosen = torch.rand(B, max(n_words, 1), generator=generator) < probability  # (B, W)
        safe = word_ids.clamp(min=0)
        chosen = word_chosen.gather(1, safe) & (word_ids >= 0) & maskable
        # A fallback word per row: the word of a random maskable token.
        scores = torch.rand(B, T, generator=generator)
        fallback_unit = safe
    # Rows with nothing chosen: choose the maskable token (or its word) with the highest score.
    empty = ~chosen.any(1) & maskable.any(1)  # (B,)
    if bool(empty.any()):
        pick = scores.masked_fill(~maskable, -1.0).argmax(1)  # (B,)
        extra = torch.zeros_like(chosen)
        if fallback_unit is None:
            extra[torch.arange(B), pick] = True
        else:
            picked_word = fallback_unit[torch.arange(B), pick]  # (B,)
            extra = (word_ids == picked_word[:, None]) & maskable
        chosen = chosen | (extra & empty[:, None])
    return chosen


def mask_tokens(input_ids: torch.Tensor, maskable: torch.Tensor, config: MaskingConfig,
                mask_id: int, random_ids: torch.Tensor, generator: torch.Generator,
                word_ids: torch.Tensor | None = None, chosen: torch.Tensor | None = None) -> MaskedBatch:
    """Choose positions and corrupt them (80/10/10). Does not modify `input_ids`.

    input_ids (B, T) long; maskable (B, T) bool (False at special tokens and padding);
    random_ids (R,) long: the ordinary tokens a random replacement is drawn from;
    chosen (B, T) bool: positions chosen by the caller (k-mer spans, `kmer_masking.py`) instead.
    """
    if mask_id is None:
        raise SeqtuneError("the tokenizer has no [MASK] token; masked-language-model training needs one.")
    if chosen is None:
        chosen = choose_positions(maskable, config.probability, generator,
                                  word_ids if config.whole_word else None)
    labels = input_ids[chosen]  # (M,)
    action = torch.rand(input_ids.shape, generator=generator)  # one draw decides mask/random/keep
    to_mask = chosen & (action < config.mask_fraction)
    to_random = chosen & (action >= config.mask_fraction) & (action < config.mask_fraction + config.random_fraction)
    corrupted = input_ids.clone()
    corrupted[to_mask] = mask_id
    n_random = int(to_random.sum())
    if n_random:
        picks = torch.randint(len(random_ids), (n_random,), generator=generator)
        corrupted[to_random] = random_ids[picks]
    return MaskedBatch(corrupted, chosen, labels)


def maskable_positions(input_ids: torch.Tensor, attention_mask: torch.Tensor,
                       special_ids: torch.Tensor) -> torch.Tensor:
    """(B, T) bool: real (unpadded) tokens that are not special tokens."""
    return attention_mask.bool() & ~torch.isin(input_ids, special_ids)
