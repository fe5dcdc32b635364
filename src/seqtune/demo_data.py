"""Synthetic sequences for the built-in demo: unlabelled ones to pretrain on, and a small labelled
per-residue set to fine-tune on. Everything is generated here, from a seed (no downloaded data).

The hidden rule: every sequence belongs to one of a few hidden families. A family prefers some
letters (they make up most of its sequences), and gives each letter of the alphabet a role — one of
the labels `H`, `E`, `C`. A residue's label is its letter's role in the sequence's family. The same
letter has different roles in different families, so one residue alone is ambiguous (a per-letter
guess is right about half the time); the rest of the sequence tells the family (its letter
composition), and with it every residue's label.

Why pretraining helps here: to predict a masked residue, a model must work out the family from the
rest of the sequence, since the family decides which letters are likely — the first half of the
labelling task. A model pretrained on many unlabelled sequences has learnt that; one trained from
random weights has to learn it from the few labelled sequences alone. `HiddenRule.best_accuracy`
gives the ceiling (exact posterior over the family).

    >>> from seqtune.demo_data import write_demo_data
    >>> paths = write_demo_data("demo_data", seed=0)
    >>> sorted(paths)
    ['dev', 'test', 'train', 'unlabelled']
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ALPHABET = "ACDEFGHIKLMNPQRSTVWY"
STATES = "HEC"


@dataclass
class HiddenRule:
    """Families: letter distributions (K, A) and letter roles (K, A) as label indices."""

    alphabet: str
    states: str
    letter_probs: np.ndarray  # (K, A), rows sum to 1
    roles: np.ndarray  # (K, A) int: label index of each letter in each family

    def family_posterior(self, seq: str) -> np.ndarray:
        """(K,) P(family | sequence) under a uniform prior (letters independent given the family)."""
        x = [self.alphabet.index(c) for c in seq]
        log_p = np.log(self.letter_probs[:, x]).sum(1)
        p = np.exp(log_p - log_p.max())
        return p / p.sum()

    def best_accuracy(self, pairs: list[tuple[str, str]]) -> float:
        """Per-residue accuracy of the Bayes-optimal labelling: the ceiling for any model."""
        right = total = 0
        for seq, labels in pairs:
            post = self.family_posterior(seq)  # (K,)
            for c, y in zip(seq, labels):
                a = self.alphabet.index(c)
                votes = np.bincount(self.roles[:, a], weights=post, minlength=len(self.states))
                right += self.states[int(votes.argmax())] == y
            total += len(seq)
        return right / total

    def best_single_residue_accuracy(self) -> float:
        """Accuracy of the best guess from a residue's letter alone (families equally likely)."""
        K, A = self.roles.shape
        total = 0.0
        for a in range(A):
            weight = self.letter_probs[:, a] / K  # P(family, letter)
            total += np.bincount(self.roles[:, a], weights=weight, minlength=len(self.states)).max()
        return float(total)


def make_rule(seed: int = 0, alphabet: str = ALPHABET, states: str = STATES, families: int = 6,
              preferred: int = 10, preference: float = 0.8) -> HiddenRule:
    """Each family puts `preference` of its mass on `preferred` letters and assigns random roles."""
    rng = np.random.default_rng(seed)
    K, A = families, len(alphabet)
    letter_probs = np.full((K, A), (1 - preference) / (A - preferred))
    roles = np.empty((K, A), dtype=np.int64)
    for k in range(K):
        letter_probs[k, rng.choice(A, preferred, replace=False)] = preference / preferred
        roles[k] = rng.permutation(np.arange(A) % len(states))  # balanced roles
    return HiddenRule(alphabet, states, letter_probs, roles)


def sample(rule: HiddenRule, n: int, min_length: int, max_length: int, seed: int) -> list[tuple[str, str]]:
    """n (sequence, labels) pairs; labels[i] is the role of residue i in the sequence's family."""
    rng = np.random.default_rng(seed)
    K, A = rule.letter_probs.shape
    out = []
    for _ in range(n):
        family = int(rng.integers(K))
        length = int(rng.integers(min_length, max_length + 1))
        letters = rng.choice(A, size=length, p=rule.letter_probs[family])
        out.append(("".join(rule.alphabet[j] for j in letters),
                    "".join(rule.states[r] for r in rule.roles[family, letters])))
    return out


def unlabelled_sequences(n: int = 3000, seed: int = 0, min_length: int = 40, max_length: int = 160,
                         rule: HiddenRule | None = None) -> list[str]:
    """Sequences from the hidden rule, without their labels (the pretraining corpus)."""
    rule = rule or make_rule(seed)
    return [seq for seq, _ in sample(rule, n, min_length, max_length, seed + 1)]


def labelled_sequences(n: int = 60, seed: int = 0, split_seed: int = 2, min_length: int = 40,
                       max_length: int = 160, rule: HiddenRule | None = None) -> list[tuple[str, str]]:
    """(sequence, per-residue labels) pairs from the same rule; `split_seed` gives disjoint draws."""
    rule = rule or make_rule(seed)
    return sample(rule, n, min_length, max_length, seed + 1000 * split_seed)


def write_demo_data(directory: str | Path, seed: int = 0, n_unlabelled: int = 3000, n_train: int = 60,
                    n_dev: int = 60, n_test: int = 200, min_length: int = 40, max_length: int = 160) -> dict[str, Path]:
    """Write unlabelled.fasta and train/dev/test.csv (columns id, sequence, labels); returns the paths.

    Fine-tune with task.type residues, data.text_column sequence, data.label_column labels.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rule = make_rule(seed)
    paths = {"unlabelled": directory / "unlabelled.fasta"}
    with paths["unlabelled"].open("w") as f:
        for i, seq in enumerate(unlabelled_sequences(n_unlabelled, seed, min_length, max_length, rule)):
            f.write(f">u{i}\n{seq}\n")
    for split_seed, (split, n) in enumerate((("train", n_train), ("dev", n_dev), ("test", n_test)), start=2):
        paths[split] = directory / f"{split}.csv"
        with paths[split].open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["id", "sequence", "labels"])
            pairs = labelled_sequences(n, seed, split_seed, min_length, max_length, rule)
            for i, (seq, labels) in enumerate(pairs):
                writer.writerow([f"{split}{i}", seq, labels])
    return paths
