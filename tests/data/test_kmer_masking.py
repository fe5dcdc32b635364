"""MLM on overlapping k-mers masks spans of k tokens (data/kmer_masking.py), so no masked k-mer can be
read off its unmasked neighbours; the MLM task uses it for an overlapping k-mer tokenizer."""

from __future__ import annotations

import pytest
import torch

from seqtune.config import DataConfig, MaskedLMOptions
from seqtune.data.corpus import Corpus, CorpusRecord
from seqtune.data.kmer_masking import choose_kmer_spans, span_offsets
from seqtune.tasks.mlm import MaskedLMTask
from seqtune.vocab_builder import build_char_tokenizer


def runs(row: torch.Tensor) -> list[tuple[int, int]]:
    """Maximal runs of True as [start, end)."""
    out, start = [], None
    for i, value in enumerate([*row.tolist(), False]):
        if value and start is None:
            start = i
        elif not value and start is not None:
            out.append((start, i))
            start = None
    return out


def letters_hidden(chosen: torch.Tensor, length: int, k: int) -> list[int]:
    """Letters of a sequence read as overlapping k-mers that no unmasked token covers."""
    covered = [False] * length
    for i in range(length):
        if not chosen[i]:
            for j in range(i, min(i + k, length)):
                covered[j] = True
    return [j for j in range(length) if not covered[j]]


@pytest.mark.parametrize("k", [3, 4, 5, 6])
def test_spans_of_k_hide_a_letter_each_and_mask_about_the_asked_share(k):
    B, T = 64, 300
    maskable = torch.ones(B, T, dtype=torch.bool)
    maskable[:, 0] = maskable[:, -1] = False  # [CLS] and [SEP]
    chosen = choose_kmer_spans(maskable, 0.15, k, torch.Generator().manual_seed(k))
    assert not (chosen & ~maskable).any()
    share = chosen.sum().item() / maskable.sum().item()
    assert 0.12 < share < 0.18, share
    sequence = slice(1, T - 1)
    for row in chosen:
        for start, end in runs(row):
            if 1 < start and end < T - 1:  # a span not clipped at the sequence's ends
                assert end - start >= k
        # every masked stretch away from the ends holds a letter only masked k-mers cover
        hidden = letters_hidden(row[sequence], T - 2, k)
        inner = [(s - 1, e - 1) for s, e in runs(row) if 1 < s and e < T - 1]
        assert all(any(s <= j < e for j in hidden) for s, e in inner)
    lo, hi = span_offsets(k)
    assert hi - lo + 1 == k and (lo, hi) == {3: (-1, 1), 4: (-1, 2), 5: (-2, 2), 6: (-2, 3)}[k]  # DNABERT's


def test_every_row_gets_a_span_and_the_generator_decides():
    maskable = torch.zeros(3, 12, dtype=torch.bool)
    maskable[0, 1:11] = True
    maskable[1, 1:4] = True  # shorter than a span: clipped to the sequence
    chosen = choose_kmer_spans(maskable, 0.001, 6, torch.Generator().manual_seed(0))
    assert chosen[0].any() and chosen[1].any() and not chosen[2].any()
    assert not (chosen & ~maskable).any()
    again = choose_kmer_spans(maskable, 0.001, 6, torch.Generator().manual_seed(0))
    assert torch.equal(chosen, again)


def test_the_mlm_task_masks_spans_for_overlapping_kmers():
    sequences = ["ACGTTGCAAGCTTACGGATCCATGCAAGTCCGATTACAGGCATTACGATCAGGTACCAT" * 2] * 16
    corpus = Corpus([CorpusRecord(s, f"c:{i}") for i, s in enumerate(sequences)], "c")
    for overlap, min_run in ((True, 6), (False, 1)):
        tokenizer = build_char_tokenizer(alphabet="ACGT", kmer=6, overlap=overlap)
        task = MaskedLMTask(MaskedLMOptions(mask_seed=3), DataConfig(max_length=128), tokenizer)
        ds = task.encode(corpus, "train")
        batch = task.collate(ds.features)
        positions = batch["mlm_positions"]
        T = positions.shape[1]
        lengths = [r[1] - r[0] for row in positions for r in runs(row) if r[0] > 1 and r[1] < T - 1]
        if overlap:
            assert min(lengths) >= min_run
        else:  # the plain 15% of single tokens: most chosen tokens stand alone
            assert min(lengths) == 1
    assert "spans of 6 overlapping k-mers" in MaskedLMTask(
        MaskedLMOptions(), DataConfig(max_length=128), build_char_tokenizer(alphabet="ACGT", kmer=6, overlap=True)
    ).describe()
