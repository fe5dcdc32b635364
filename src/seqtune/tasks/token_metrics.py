"""Metrics for token tasks: per-label accuracy/P/R/F1 and confusion matrix (scikit-learn), and
entity-level P/R/F1 for IOB-style tags (seqeval); the tag transitions each scheme allows and
constrained Viterbi decoding over them (`allowed_transitions`, `viterbi_decode`).

All functions take plain label-id arrays or tag-string lists, so they are shared by word tagging
and per-residue labelling (and `labelled_confusion_matrix` by classification) and are tested
without a model. Every value they return is a plain Python int/float/str/list/dict (JSON-ready):
scores in [0, 1], counts as int.
"""

from __future__ import annotations

import numpy as np

# scikit-learn (and scipy.stats) are imported inside the functions that compute metrics, here and in
# the tasks: importing them takes seconds (2-6 s on a loaded machine), which `seqtune predict` and
# `seqtune.load` never need.

# seqeval's scheme classes by name; "auto" is resolved by `detect_scheme`.
SCHEMES = ("IOB1", "IOB2", "IOE1", "IOE2", "IOBES", "BILOU")
ENTITY_PREFIXES = ("B", "I", "E", "S", "L", "U")


def labelled_confusion_matrix(gold: np.ndarray, predicted: np.ndarray, labels: list[str]) -> dict:
    """{"labels": [name, ...], "matrix": [[int, ...], ...]}: row i = gold labels[i], column j =
    predicted labels[j]; every label has a row and a column, even when it never occurs.

    gold, predicted: label ids in range(len(labels)). The shape every task's "confusion_matrix" has.
    """
    ids = list(range(len(labels)))
    if len(gold) == 0:  # nothing scored (e.g. every residue masked out); scikit-learn refuses empty input
        matrix = np.zeros((len(ids), len(ids)), dtype=int)
    else:
        from sklearn.metrics import confusion_matrix  # scikit-learn is imported when metrics are computed

        matrix = confusion_matrix(np.asarray(gold, dtype=int), np.asarray(predicted, dtype=int), labels=ids)
    return {"labels": [str(label) for label in labels], "matrix": [[int(c) for c in row] for row in matrix]}


def label_report(gold: np.ndarray, predicted: np.ndarray, labels: list[str]) -> dict:
    """Accuracy, macro F1, per-label precision/recall/F1/support and the confusion matrix.

    gold, predicted: (N,) label ids in range(len(labels)) for the N scored positions.
    The confusion matrix has gold labels as rows, predictions as columns.
    """
    ids = list(range(len(labels)))
    if len(gold) == 0:  # nothing scored: every score 0, as below for a label without support
        precision = recall = f1 = np.zeros(len(ids))
        support = np.zeros(len(ids), dtype=int)
    else:
        from sklearn.metrics import precision_recall_fscore_support

        precision, recall, f1, support = precision_recall_fscore_support(
            gold, predicted, labels=ids, zero_division=0
        )
    present = support > 0  # macro F1 over the labels that occur in the gold data
    return {
        "accuracy": float(np.mean(gold == predicted)) if len(gold) else 0.0,
        "macro_f1": float(np.mean(f1[present])) if present.any() else 0.0,
        "per_label": {
            label: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for label, p, r, f, s in zip(labels, precision, recall, f1, support)
        },
        "confusion_matrix": labelled_confusion_matrix(gold, predicted, labels),
    }


def split_tag(tag: str) -> tuple[str | None, str]:
    """"B-PER" -> ("B", "PER"); "O" -> (None, "O"); "PER" -> (None, "PER")."""
    for sep in ("-", "_"):
        head, found, rest = tag.partition(sep)
        if found and head in ENTITY_PREFIXES and rest:
            return head, rest
    return None, tag


def detect_scheme(tag_sequences) -> str:
    """Guess the tagging scheme of training tags: "IOBES", "BILOU", "IOB2", "IOB1", "IOE2", "IOE1" or
    "none" (not entity tags).

    IOB2 starts every entity with B-; IOB1 uses B- only between two adjacent entities of one type,
    so an I-X after O or after another type means IOB1. IOE2 and IOE1 are the mirror image at the
    entity's end (E- on every last token, or only before an adjacent entity of the same type, so an
    I-X followed by O or another type means IOE1). Tags with only I- prefixes read as IOB1. Tags
    without B/I/E/S/L/U prefixes (besides "O") are not entity tags (POS tags): entity metrics are
    then skipped.
    """
    evidence = SchemeEvidence()
    for tags in tag_sequences:
        if not evidence.add(tags):
            break
    return evidence.scheme()


class SchemeEvidence:
    """What `detect_scheme` has seen so far, one sentence at a time: the token store
    (tasks/tagging_store.py) collects it while the file streams past, keeping no tags."""

    def __init__(self):
        self.prefixes: set[str] = set()
        self.iob1 = self.ioe1 = False
        self.not_entity = False  # a tag without an entity prefix: the scheme is "none", whatever follows

    def add(self, tags: list[str]) -> bool:
        """Take one sentence's tags; False once the scheme is known to be "none" (more changes nothing)."""
        if self.not_entity:
            return False
        parts = [split_tag(tag) for tag in tags]  # "O" -> (None, "O"): a type no entity has
        for i, (tag, (prefix, kind)) in enumerate(zip(tags, parts)):
            if tag == "O":
                continue
            if prefix is None:
                self.not_entity = True
                return False
            self.prefixes.add(prefix)
            if prefix == "I":
                previous = parts[i - 1] if i > 0 else (None, None)
                following = parts[i + 1] if i + 1 < len(parts) else (None, None)
                self.iob1 = self.iob1 or previous[1] != kind  # an entity that begins with I-
                self.ioe1 = self.ioe1 or following[1] != kind  # an entity that ends with I-
        return True

    def scheme(self) -> str:
        prefixes = self.prefixes
        if self.not_entity or not prefixes:
            return "none"
        if prefixes & {"E", "S"} and prefixes <= {"B", "I", "E", "S"} and prefixes & {"B", "S"}:
            return "IOBES"
        if prefixes & {"L", "U"} and prefixes <= {"B", "I", "L", "U"}:
            return "BILOU"
        if prefixes <= {"B", "I"}:
            return "IOB1" if self.iob1 else "IOB2"
        if prefixes <= {"I", "E"}:
            return "IOE1" if self.ioe1 else "IOE2"
        return "none"


def entity_report(gold: list[list[str]], predicted: list[list[str]], scheme: str) -> dict:
    """Entity-level micro P/R/F1 in seqeval's strict mode for `scheme`, per-type scores, and the F1
    of seqeval's default (conlleval-compatible) mode, which `run_ner`-style scripts report.

    Strict mode counts an entity only when its predicted tags form a valid entity of the scheme with
    exactly the gold boundaries and type; the default mode also accepts e.g. an entity that starts
    with I- after O.
    """
    from seqeval import scheme as seqeval_schemes
    from seqeval.metrics import classification_report, f1_score

    scheme_class = getattr(seqeval_schemes, scheme)
    report = classification_report(gold, predicted, mode="strict", scheme=scheme_class,
                                   output_dict=True, zero_division=0)
    micro = report.get("micro avg", {"precision": 0.0, "recall": 0.0, "f1-score": 0.0})
    per_type = {
        name: {"precision": float(v["precision"]), "recall": float(v["recall"]),
               "f1": float(v["f1-score"]), "support": int(v["support"])}
        for name, v in report.items() if not name.endswith(" avg")
    }
    return {
        "precision": float(micro["precision"]),
        "recall": float(micro["recall"]),
        "f1": float(micro["f1-score"]),
        "f1_conlleval": float(f1_score(gold, predicted, zero_division=0)),
        "per_type": per_type,
    }


# The neighbours a prefix needs, per scheme, as (before, after). before[p]: the previous tag must have
# the same type and one of these prefixes (IOB2: I-X only after B-X or I-X). after[p]: the next tag
# must have the same type and one of these prefixes (IOBES: B-X and I-X go on with I-X or E-X). The
# sentence boundary counts as "O" on both sides. Every other pair of neighbours is allowed.
TRANSITION_RULES: dict[str, tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]] = {
    "IOB1": ({"B": ("I", "B")}, {}),  # B-X only right after an entity of type X
    "IOB2": ({"I": ("B", "I")}, {}),
    "IOE1": ({}, {"E": ("I", "E")}),  # E-X only right before an entity of type X
    "IOE2": ({}, {"I": ("I", "E")}),
    "IOBES": ({"I": ("B", "I"), "E": ("B", "I")}, {"B": ("I", "E"), "I": ("I", "E")}),
    "BILOU": ({"I": ("B", "I"), "L": ("B", "I")}, {"B": ("I", "L"), "I": ("I", "L")}),
}


def allowed_transitions(labels: list[str], scheme: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boolean masks of what `scheme` allows over `labels` (C tags): start (C,) = may begin a sentence,
    transitions (C, C) [previous, next] = may follow each other, end (C,) = may end a sentence."""
    before, after = TRANSITION_RULES[scheme]
    parts = [split_tag(tag) for tag in labels]
    boundary = (None, None)

    def allowed(previous: tuple, following: tuple) -> bool:
        need = before.get(following[0])
        if need and (previous[1] != following[1] or previous[0] not in need):
            return False
        need = after.get(previous[0])
        return not need or (following[1] == previous[1] and following[0] in need)

    start = np.array([allowed(boundary, p) for p in parts], dtype=bool)
    transitions = np.array([[allowed(p, q) for q in parts] for p in parts], dtype=bool)
    end = np.array([allowed(p, boundary) for p in parts], dtype=bool)
    return start, transitions, end


def viterbi_decode(scores: np.ndarray, start: np.ndarray, transitions: np.ndarray, end: np.ndarray) -> np.ndarray:
    """The tag sequence with the highest total score among those the masks allow.

    scores: (N, C) per-position scores that add up along a sequence (log-probabilities); start,
    transitions, end: boolean masks from `allowed_transitions`. Returns (N,) tag ids. When no sequence
    is allowed (a tag set too small for the scheme, e.g. only B-X and E-X for one word) it returns
    each position's best tag.
    """
    scores = np.asarray(scores, dtype=np.float64)
    n, c = scores.shape
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    penalty = np.where(transitions, 0.0, -np.inf)  # (previous, next)
    best = scores[0] + np.where(start, 0.0, -np.inf)  # best score of a path ending in each tag
    back = np.zeros((n, c), dtype=np.int64)
    for t in range(1, n):
        candidates = best[:, None] + penalty
        back[t] = candidates.argmax(0)
        best = candidates[back[t], np.arange(c)] + scores[t]
    best = best + np.where(end, 0.0, -np.inf)
    if not np.isfinite(best.max()):
        return scores.argmax(-1)
    path = [int(best.argmax())]
    for t in range(n - 1, 0, -1):
        path.append(int(back[t, path[-1]]))
    return np.array(path[::-1], dtype=np.int64)


def invalid_transitions(tag_ids: np.ndarray, start: np.ndarray, transitions: np.ndarray, end: np.ndarray) -> int:
    """How many places in one sequence break the masks: a first tag, a pair of neighbours or a last tag
    that the scheme does not allow (each counted once)."""
    tag_ids = np.asarray(tag_ids, dtype=np.int64)
    if len(tag_ids) == 0:
        return 0
    return int((not start[tag_ids[0]]) + (~transitions[tag_ids[:-1], tag_ids[1:]]).sum() + (not end[tag_ids[-1]]))
