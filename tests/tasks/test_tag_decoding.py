"""Constrained decoding of tag sequences: the transitions each scheme allows (checked against what
seqeval's strict mode accepts as entities) and Viterbi decoding (checked against brute force)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from seqtune.tasks.token_metrics import allowed_transitions, invalid_transitions, viterbi_decode

# IOE1 is left out of the seqeval comparisons: seqeval's IOE1 does not accept a one-word entity
# tagged E-X at the start or after O, which IOE1 writes when an entity of the same type follows
# ("O E-LOC I-LOC"); its source marks IOE1 as incomplete. IOE1 is checked by hand below.
SEQEVAL_SCHEMES = ["IOB1", "IOB2", "IOE2", "IOBES", "BILOU"]


def scheme_labels(scheme: str) -> list[str]:
    """"O" and every prefix of the scheme for two entity types."""
    prefixes = [p for p in scheme.rstrip("12") if p != "O"]
    return ["O"] + [f"{p}-{kind}" for kind in ("LOC", "PER") for p in prefixes]


def valid_by_seqeval(tags: list[str], scheme: str) -> bool:
    """Every non-O tag lies in an entity that seqeval's strict mode extracts for the scheme."""
    from seqeval import scheme as seqeval_schemes

    entities = seqeval_schemes.Tokens(tags, getattr(seqeval_schemes, scheme)).entities
    covered = {i for e in entities for i in range(e.start, e.end)}
    return covered == {i for i, tag in enumerate(tags) if tag != "O"}


def ids(labels: list[str], tags: str) -> np.ndarray:
    return np.array([labels.index(t) for t in tags.split()])


@pytest.mark.parametrize("scheme", SEQEVAL_SCHEMES)
def test_allowed_transitions_accept_what_seqeval_strict_accepts(scheme):
    labels = scheme_labels(scheme)
    masks = allowed_transitions(labels, scheme)
    for n in (1, 2, 3):
        for sequence in itertools.product(range(len(labels)), repeat=n):
            tags = [labels[i] for i in sequence]
            assert (invalid_transitions(np.array(sequence), *masks) == 0) == valid_by_seqeval(tags, scheme), tags


@pytest.mark.parametrize("tags, valid", [
    ("I-LOC I-LOC", True),
    ("E-LOC I-LOC", True),  # a one-word LOC right before another LOC
    ("O E-LOC I-LOC E-LOC I-LOC", True),
    ("I-LOC E-LOC", False),  # E- only before an entity of the same type
    ("E-LOC O", False),
    ("E-LOC I-PER", False),
    ("E-LOC", False),
])
def test_ioe1_transitions(tags, valid):
    labels = scheme_labels("IOE1")
    assert (invalid_transitions(ids(labels, tags), *allowed_transitions(labels, "IOE1")) == 0) == valid


def test_viterbi_repairs_o_i_per():
    labels = ["O", "B-PER", "I-PER"]
    scores = np.log([[0.60, 0.30, 0.10],    # argmax: O
                     [0.25, 0.10, 0.65]])   # argmax: I-PER, which may not follow O
    masks = allowed_transitions(labels, "IOB2")
    assert [labels[i] for i in scores.argmax(-1)] == ["O", "I-PER"]
    assert invalid_transitions(scores.argmax(-1), *masks) == 1
    decoded = viterbi_decode(scores, *masks)
    # valid pairs: O O 0.15, B-PER I-PER 0.195, O B-PER 0.06, ...: the best is B-PER I-PER
    assert [labels[i] for i in decoded] == ["B-PER", "I-PER"]
    assert [labels[i] for i in viterbi_decode(np.log([[0.3, 0.6, 0.1]]), *masks)] == ["B-PER"]


def test_iobes_entities_must_end():
    labels = scheme_labels("IOBES")
    scores = np.full((2, len(labels)), np.log(0.01))
    scores[0, labels.index("B-PER")] = np.log(0.9)
    scores[1, labels.index("I-PER")] = np.log(0.5)  # argmax: "B-PER I-PER", an entity that never ends
    scores[1, labels.index("E-PER")] = np.log(0.3)
    start, transitions, end = allowed_transitions(labels, "IOBES")
    assert not end[labels.index("I-PER")] and not end[labels.index("B-PER")] and end[labels.index("E-PER")]
    assert [labels[i] for i in viterbi_decode(scores, start, transitions, np.ones_like(end))] == ["B-PER", "I-PER"]
    assert [labels[i] for i in viterbi_decode(scores, start, transitions, end)] == ["B-PER", "E-PER"]
    assert invalid_transitions(ids(labels, "B-PER I-PER"), start, transitions, end) == 1


@pytest.mark.parametrize("scheme", SEQEVAL_SCHEMES)
def test_viterbi_finds_the_best_valid_sequence(scheme):
    labels = scheme_labels(scheme)
    masks = allowed_transitions(labels, scheme)
    rng = np.random.default_rng(0)
    for n in (1, 2, 3, 4):
        valid = [s for s in itertools.product(range(len(labels)), repeat=n)
                 if valid_by_seqeval([labels[i] for i in s], scheme)]
        for _ in range(5):
            logits = rng.normal(size=(n, len(labels))) * 3
            scores = logits - np.log(np.exp(logits).sum(-1, keepdims=True))  # log-softmax
            best = max(valid, key=lambda s: scores[np.arange(n), s].sum())
            decoded = viterbi_decode(scores, *masks)
            assert tuple(decoded) == best, (scheme, n)


def test_viterbi_falls_back_to_argmax_when_nothing_is_allowed():
    labels = ["B-PER", "E-PER"]  # IOBES without S-/O: one word cannot be tagged validly
    scores = np.log([[0.3, 0.7]])
    assert viterbi_decode(scores, *allowed_transitions(labels, "IOBES")).tolist() == [1]
    assert viterbi_decode(np.zeros((0, 2)), *allowed_transitions(labels, "IOBES")).tolist() == []
