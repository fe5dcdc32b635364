"""token_metrics on small hand-checked cases: exact per-label and entity scores (asymmetric data,
labels absent from the gold or the predictions), scheme detection for every scheme, and the counts
of invalid transitions. Each expected number is worked out in the comment next to it."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqtune.tasks.token_metrics import (
    SCHEMES,
    allowed_transitions,
    detect_scheme,
    entity_report,
    invalid_transitions,
    label_report,
    labelled_confusion_matrix,
    split_tag,
    viterbi_decode,
)

# ---- per-label scores -----------------------------------------------------------------------------
# gold:      A A A B B D       label C never occurs in the gold, D is never predicted, E occurs nowhere
# predicted: A B A B B C
GOLD = np.array([0, 0, 0, 1, 1, 3])
PREDICTED = np.array([0, 1, 0, 1, 1, 2])
LABELS = ["A", "B", "C", "D", "E"]


def test_label_report_exact_values_with_absent_labels():
    report = label_report(GOLD, PREDICTED, LABELS)
    assert report["accuracy"] == pytest.approx(4 / 6)  # positions 0, 2, 3, 4
    per = report["per_label"]
    assert list(per) == LABELS
    # A: predicted at 0, 2, both right -> P 1; gold at 0, 1, 2 -> R 2/3; F1 0.8
    assert per["A"] == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3})
    # B: predicted at 1, 3, 4, right at 3, 4 -> P 2/3; gold at 3, 4 -> R 1
    assert per["B"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2})
    assert per["C"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}  # predicted once, wrongly
    assert per["D"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}  # never predicted
    assert per["E"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}  # nowhere
    # macro F1 over the labels that occur in the gold (A, B, D), not over all five: (0.8 + 0.8 + 0) / 3
    assert report["macro_f1"] == pytest.approx(1.6 / 3)
    assert report["confusion_matrix"] == {
        "labels": LABELS,
        "matrix": [[2, 1, 0, 0, 0],  # gold A
                   [0, 2, 0, 0, 0],  # gold B
                   [0, 0, 0, 0, 0],  # gold C
                   [0, 0, 1, 0, 0],  # gold D
                   [0, 0, 0, 0, 0]],  # gold E
    }


def test_label_report_of_nothing_is_zero_not_nan():
    report = label_report(np.array([], dtype=int), np.array([], dtype=int), ["A", "B"])
    assert report["accuracy"] == 0.0 and report["macro_f1"] == 0.0
    assert report["per_label"]["A"]["support"] == 0
    assert report["confusion_matrix"]["matrix"] == [[0, 0], [0, 0]]


def test_confusion_matrix_rows_are_gold_columns_predicted():
    m = labelled_confusion_matrix([1, 1, 1], [0, 2, 2], [0, "x", 2.5])
    assert m == {"labels": ["0", "x", "2.5"], "matrix": [[0, 0, 0], [1, 0, 2], [0, 0, 0]]}
    assert all(type(c) is int for row in m["matrix"] for c in row)


# ---- tags and schemes -----------------------------------------------------------------------------
@pytest.mark.parametrize("tag, parts", [
    ("B-PER", ("B", "PER")),
    ("I_LOC", ("I", "LOC")),  # underscore separator
    ("U-MISC", ("U", "MISC")),
    ("E-X-Y", ("E", "X-Y")),  # only the first separator splits
    ("S_A-B", ("S", "A-B")),  # "S_A" is no prefix before "-", then "_" splits
    ("O", (None, "O")),
    ("PER", (None, "PER")),
    ("B-", (None, "B-")),  # no type after the separator
    ("X-PER", (None, "X-PER")),  # not an entity prefix
    ("-PER", (None, "-PER")),
])
def test_split_tag(tag, parts):
    assert split_tag(tag) == parts


@pytest.mark.parametrize("tags, scheme", [
    ([["B-PER", "I-PER", "O", "B-LOC"]], "IOB2"),
    ([["B-PER", "I-PER", "B-PER", "I-PER"]], "IOB2"),
    ([["B-PER", "I-PER"], ["O", "B-LOC", "I-LOC"]], "IOB2"),
    # IOB1: an I- that starts an entity after O, another type, or a sentence start
    ([["O", "I-PER"]], "IOB1"),  # scanning goes on past the first O
    ([["B-PER", "O", "I-PER"]], "IOB1"),  # an O ends the entity
    ([["B-PER"], ["I-PER"]], "IOB1"),  # each sentence starts afresh
    ([["B-PER", "I-LOC"]], "IOB1"),  # I- of another type
    ([["I-PER", "B-PER", "O"]], "IOB1"),
    # entity tags after an O still count
    ([["O", "B-PER", "E-PER"]], "IOBES"),
    ([["O", "O"], ["O", "S-PER"]], "IOBES"),
    ([["B-PER", "I-PER", "E-PER", "O", "S-LOC"]], "IOBES"),  # full IOBES, I- included
    ([["B-PER", "I-PER", "L-PER", "O", "U-LOC"]], "BILOU"),
    ([["U-LOC"]], "BILOU"),
    ([["B-PER", "I-PER", "L-PER"]], "BILOU"),  # without U-
    ([["B-PER", "E-PER"]], "IOBES"),  # without S-
    ([["B_PER", "I_PER", "O"]], "IOB2"),
    # IOE2 ends every entity with E-; IOE1 only before an adjacent entity of the same type (these
    # were read as IOBES before session 6, so strict entity scores rejected every entity)
    ([["I-PER", "E-PER", "O", "E-LOC"]], "IOE2"),
    ([["E-LOC"]], "IOE2"),
    ([["O", "I-PER", "E-PER"], ["E-ORG", "E-ORG"]], "IOE2"),
    ([["I-PER", "E-PER", "I-PER", "O"]], "IOE1"),  # an entity that ends with I- before O
    ([["I-PER", "I-LOC", "E-LOC"]], "IOE1"),  # I- before another type
    ([["E-PER", "I-PER"]], "IOE1"),  # I- at the sentence end
    # not one scheme, or not entity tags
    ([["B-PER", "E-PER", "L-LOC"]], "none"),  # IOBES and BILOU mixed
    ([["S-PER", "U-LOC"]], "none"),
    ([["O", "NNP"]], "none"),  # a tag without a prefix after an O
    ([["B-PER", "NNP"]], "none"),
    ([["O"], ["O"]], "none"),
    ([], "none"),
    ([[]], "none"),
])
def test_detect_scheme_exact(tags, scheme):
    assert detect_scheme(tags) == scheme


def test_detected_schemes_are_ones_seqeval_knows():
    examples = (["B-X"], ["I-X"], ["S-X"], ["U-X"], ["E-X"], ["E-X", "I-X"])
    assert {detect_scheme([t]) for t in examples} == set(SCHEMES)


# ---- entity scores --------------------------------------------------------------------------------
def test_entity_report_strict_and_conlleval_differ_on_an_entity_starting_with_i():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    predicted = [["B-PER", "I-PER", "O", "I-LOC"], ["O", "O"]]
    report = entity_report(gold, predicted, "IOB2")
    # strict: I-LOC after O is no IOB2 entity -> 1 right (PER) of 1 predicted, 3 gold
    assert report["precision"] == pytest.approx(1.0)
    assert report["recall"] == pytest.approx(1 / 3)
    assert report["f1"] == pytest.approx(0.5)
    # conlleval mode reads I-LOC after O as an entity: 2 right of 2 predicted, 3 gold -> F1 0.8
    assert report["f1_conlleval"] == pytest.approx(0.8)
    assert report["per_type"] == {
        "LOC": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1},
        "ORG": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1},
        "PER": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1},
    }


def test_entity_report_partial_overlap_counts_nothing():
    gold = [["B-PER", "I-PER", "I-PER", "O"]]
    predicted = [["B-PER", "I-PER", "O", "B-PER"]]  # a shorter PER and a spurious one
    report = entity_report(gold, predicted, "IOB2")
    assert (report["precision"], report["recall"], report["f1"]) == (0.0, 0.0, 0.0)
    assert report["per_type"]["PER"]["support"] == 1


def test_entity_report_iobes_needs_an_ending():
    gold = [["S-PER", "O", "B-LOC", "E-LOC"]]
    predicted = [["S-PER", "O", "B-LOC", "I-LOC"]]  # LOC never ends: no IOBES entity
    report = entity_report(gold, predicted, "IOBES")
    assert report["precision"] == pytest.approx(1.0) and report["recall"] == pytest.approx(0.5)
    assert report["f1"] == pytest.approx(2 / 3)


def test_entity_report_bilou():
    gold = [["U-PER", "B-LOC", "I-LOC", "L-LOC"]]
    predicted = [["U-PER", "B-LOC", "L-LOC", "O"]]  # LOC too short
    report = entity_report(gold, predicted, "BILOU")
    assert (report["precision"], report["recall"]) == pytest.approx((0.5, 0.5))
    assert report["per_type"]["PER"]["f1"] == 1.0 and report["per_type"]["LOC"]["f1"] == 0.0


def test_entity_report_with_nothing_predicted_is_zero():
    report = entity_report([["B-PER", "O"]], [["O", "O"]], "IOB2")
    assert (report["precision"], report["recall"], report["f1"], report["f1_conlleval"]) == (0.0, 0.0, 0.0, 0.0)
    assert all(type(v) is float for k, v in report.items() if k != "per_type")


def test_entity_report_without_any_entity_is_zero():
    report = entity_report([["O", "O"]], [["O", "O"]], "IOB2")
    assert (report["precision"], report["recall"], report["f1"], report["f1_conlleval"]) == (0.0, 0.0, 0.0, 0.0)
    assert report["per_type"] == {}


# ---- transitions and decoding -----------------------------------------------------------------------
IOB2_LABELS = ["O", "B-PER", "I-PER"]


@pytest.mark.parametrize("tags, count", [
    ("O O", 0),
    ("B-PER I-PER O", 0),
    ("I-PER", 1),  # may not start a sentence
    ("I-PER I-PER O I-PER", 2),  # the start and the O -> I-PER pair; the last tag may end
    ("O I-PER O I-PER", 2),
])
def test_invalid_transitions_counts_start_pairs(tags, count):
    ids = np.array([IOB2_LABELS.index(t) for t in tags.split()])
    assert invalid_transitions(ids, *allowed_transitions(IOB2_LABELS, "IOB2")) == count


def test_invalid_transitions_counts_the_end():
    labels = ["O", "B-PER", "I-PER", "E-PER", "S-PER"]
    masks = allowed_transitions(labels, "IOBES")
    ids = [labels.index(t) for t in ["S-PER", "B-PER"]]  # B- must go on: an invalid end only
    assert invalid_transitions(np.array(ids), *masks) == 1
    ids = [labels.index(t) for t in ["E-PER", "I-PER"]]  # start, pair and end all invalid
    assert invalid_transitions(np.array(ids), *masks) == 3
    assert invalid_transitions(np.array([], dtype=int), *masks) == 0


def test_allowed_transitions_iob2_masks_exactly():
    start, transitions, end = allowed_transitions(["O", "B-PER", "I-PER", "B-LOC", "I-LOC"], "IOB2")
    assert start.tolist() == [True, True, False, True, False]
    assert end.tolist() == [True] * 5
    assert transitions.astype(int).tolist() == [
        # O  B-P I-P B-L I-L   (next)
        [1, 1, 0, 1, 0],  # O
        [1, 1, 1, 1, 0],  # B-PER
        [1, 1, 1, 1, 0],  # I-PER
        [1, 1, 0, 1, 1],  # B-LOC
        [1, 1, 0, 1, 1],  # I-LOC
    ]
    assert start.dtype == bool and transitions.dtype == bool


def test_masks_are_boolean_even_for_no_labels():
    start, transitions, end = allowed_transitions([], "IOB2")
    assert start.dtype == transitions.dtype == end.dtype == bool
    assert len(start) == len(end) == 0


def test_allowed_transitions_ioe2_masks_exactly():
    start, transitions, end = allowed_transitions(["O", "I-PER", "E-PER", "E-LOC"], "IOE2")
    assert start.tolist() == [True] * 4
    assert end.tolist() == [True, False, True, True]  # an I- must go on
    assert transitions.astype(int).tolist() == [
        [1, 1, 1, 1],
        [0, 1, 1, 0],  # I-PER goes on with I-PER or E-PER only
        [1, 1, 1, 1],
        [1, 1, 1, 1],
    ]


def test_viterbi_takes_the_best_allowed_path_not_the_first():
    labels = ["O", "B-PER", "I-PER"]
    masks = allowed_transitions(labels, "IOB2")
    # Three positions; per-position argmax "I-PER O I-PER" is invalid twice.
    scores = np.log(np.array([[0.2, 0.3, 0.5],
                              [0.5, 0.1, 0.4],
                              [0.1, 0.2, 0.7]]))
    # Allowed paths by product: B I I = .3*.4*.7 = .084; O O B = .2*.5*.2 = .02; B O B = .3*.5*.2 = .03;
    # B I O = .3*.4*.1 = .012; the best is B-PER I-PER I-PER.
    assert viterbi_decode(scores, *masks).tolist() == [1, 2, 2]
    assert viterbi_decode(scores, *masks).dtype == np.int64


def test_viterbi_respects_the_end_mask():
    labels = ["O", "B-PER", "I-PER", "E-PER", "S-PER"]
    masks = allowed_transitions(labels, "IOBES")
    scores = np.log(np.array([[0.05, 0.8, 0.05, 0.05, 0.05],
                              [0.05, 0.05, 0.6, 0.25, 0.05]]))
    # B-PER I-PER may not end a sentence: B-PER E-PER (.8 * .25 = .2) beats S-PER O etc.
    assert [labels[i] for i in viterbi_decode(scores, *masks)] == ["B-PER", "E-PER"]


def test_viterbi_falls_back_to_argmax_when_nothing_is_allowed():
    labels = ["B-PER", "E-PER"]  # IOBES with one word: neither may stand alone
    masks = allowed_transitions(labels, "IOBES")
    assert viterbi_decode(np.log([[0.3, 0.7]]), *masks).tolist() == [1]
    assert viterbi_decode(np.zeros((0, 2)), *masks).tolist() == []
    assert viterbi_decode(np.zeros((0, 2)), *masks).dtype == np.int64


def test_viterbi_with_everything_allowed_is_argmax():
    labels = ["NN", "VB", "JJ"]
    masks = allowed_transitions(labels, "IOB2")  # no prefixes: every transition allowed
    scores = np.log(np.array([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3], [0.2, 0.2, 0.6], [0.3, 0.4, 0.3]]))
    assert viterbi_decode(scores, *masks).tolist() == [1, 0, 2, 1]


def brute_force(scores: np.ndarray, start, transitions, end) -> float:
    import itertools

    best = -np.inf
    for path in itertools.product(range(scores.shape[1]), repeat=len(scores)):
        if invalid_transitions(np.array(path), start, transitions, end) == 0:
            best = max(best, sum(scores[t, c] for t, c in enumerate(path)))
    return best


@settings(max_examples=20, deadline=None)
@given(st.sampled_from(["IOB1", "IOB2", "IOE1", "IOE2", "IOBES", "BILOU"]), st.integers(1, 4),
       st.integers(0, 2**31 - 1))
def test_viterbi_reaches_the_brute_force_optimum(scheme, n, seed):
    labels = ["O"] + [f"{p}-PER" for p in scheme.rstrip("12") if p != "O"]
    masks = allowed_transitions(labels, scheme)
    scores = np.log(np.random.default_rng(seed).dirichlet(np.ones(len(labels)), size=n))
    decoded = viterbi_decode(scores, *masks)
    assert invalid_transitions(decoded, *masks) == 0  # "O" alone is always allowed
    assert sum(scores[t, c] for t, c in enumerate(decoded)) == pytest.approx(brute_force(scores, *masks))


def test_perfect_ioe2_predictions_score_one_under_the_detected_scheme():
    # Read as IOBES (before session 6), seqeval's strict mode found no valid entity: F1 0.0.
    gold = [["I-PER", "E-PER", "O", "E-LOC"], ["O", "I-ORG", "I-ORG", "E-ORG"]]
    assert entity_report(gold, gold, detect_scheme(gold))["f1"] == 1.0
