"""The demo's synthetic data: reproducible, well-formed, and context carries the labels' signal."""

from __future__ import annotations

import csv

import numpy as np

from seqtune.data.corpus import read_corpus
from seqtune.demo_data import ALPHABET, STATES, labelled_sequences, make_rule, unlabelled_sequences, write_demo_data


def test_same_seed_same_data_and_splits_differ():
    assert unlabelled_sequences(20, seed=3) == unlabelled_sequences(20, seed=3)
    assert unlabelled_sequences(20, seed=3) != unlabelled_sequences(20, seed=4)
    train = labelled_sequences(20, seed=3, split_seed=2)
    test = labelled_sequences(20, seed=3, split_seed=4)
    assert not {s for s, _ in train} & {s for s, _ in test}
    for seq, labels in train:
        assert len(seq) == len(labels) and 40 <= len(seq) <= 160
        assert set(seq) <= set(ALPHABET) and set(labels) <= set(STATES)


def test_one_residue_is_ambiguous_but_the_sequence_decides():
    rule = make_rule(0)
    pairs = labelled_sequences(150, seed=0, rule=rule)
    n = sum(len(s) for s, _ in pairs)
    # per-letter best guess, fitted on the same data (so optimistic)
    counts: dict = {}
    for seq, lab in pairs:
        for c, y in zip(seq, lab):
            counts.setdefault(c, {}).setdefault(y, 0)
            counts[c][y] += 1
    per_letter = sum(max(v.values()) for v in counts.values()) / n
    assert abs(per_letter - rule.best_single_residue_accuracy()) < 0.05
    assert per_letter < 0.7
    # knowing the family (from the whole sequence's composition) labels nearly everything right
    assert rule.best_accuracy(pairs[:60]) > 0.95


def test_family_posterior_finds_the_family():
    rule = make_rule(0)
    for k in range(len(rule.letter_probs)):
        liked = [ALPHABET[a] for a in np.argsort(-rule.letter_probs[k])[:10]]
        seq = "".join(liked) * 4
        post = rule.family_posterior(seq)
        assert np.isclose(post.sum(), 1.0) and post.argmax() == k


def test_write_demo_data_files_read_back(tmp_path):
    paths = write_demo_data(tmp_path, seed=1, n_unlabelled=30, n_train=5, n_dev=4, n_test=3)
    assert len(read_corpus(paths["unlabelled"]).records) == 30
    with paths["train"].open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 5 and list(rows[0]) == ["id", "sequence", "labels"]
    assert all(len(r["sequence"]) == len(r["labels"]) for r in rows)
