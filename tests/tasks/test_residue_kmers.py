"""Per-nucleotide labels with overlapping k-mer tokens: nucleotide i's label goes to the k-mer that
starts at it, and predictions come back one per nucleotide, at the sequence's end and across windows."""

from __future__ import annotations

import numpy as np
import pytest

from seqtune.config import DataConfig
from seqtune.data.readers.sequences import LabelledSequence
from seqtune.errors import SeqtuneError
from seqtune.tasks.residues import ResidueOptions, ResidueTask
from seqtune.tasks.windows import IGNORE_INDEX
from seqtune.vocab_builder import build_char_tokenizer

SEQUENCES = ["ACGTAC", "GATTACA", "ACGTTGCAAGCTTACGGATCCATG", "TTTTTTTTTTTTCCCCCCCCCCCCAAAAAAAAAAGGGGGG"]


def record(sequence: str, labels: list[str] | None, n: int) -> LabelledSequence:
    return LabelledSequence(sequence, labels, None, f"s{n}", f"train.csv:{n + 2} (record {n + 1})")


@pytest.mark.parametrize("k,max_length", [(3, 10), (6, 10), (6, 64), (4, 7)])
def test_labels_to_kmers_to_predictions_round_trip(k, max_length):
    tokenizer = build_char_tokenizer(alphabet="ACGT", kmer=k, overlap=True)
    task = ResidueTask(ResidueOptions(type="residues"), DataConfig(max_length=max_length), tokenizer)
    # each nucleotide's label is its own letter with its position, so any shift would show
    labelled = [record(s, [f"{c}{i % 3}" for i, c in enumerate(s)], n) for n, s in enumerate(SEQUENCES)]
    task.fit(labelled)
    ds = task.encode(labelled, "train")
    window = max_length - 2
    assert ds.info.get("windowed", 0) == sum(len(s) > window for s in SEQUENCES)
    vocab = {i: t for t, i in tokenizer.backend.get_vocab().items()}
    for feature in ds.features:
        sequence = SEQUENCES[feature["example_index"]]
        start, _ = feature["span"]
        content, labels = feature["input_ids"][1:-1], feature["labels"][1:-1]
        assert feature["labels"][0] == feature["labels"][-1] == IGNORE_INDEX
        for offset, (token, label) in enumerate(zip(content, labels)):
            i = start + offset
            assert vocab[token] == sequence[i:i + k]  # the k-mer starting at nucleotide i (shorter at the end)
            assert task.labels[label] == f"{sequence[i]}{i % 3}"  # ... carries nucleotide i's label
    # predictions: logits that put each token's own label first map back to exactly the gold labels
    eye = np.eye(len(task.labels), dtype=np.float32)
    outputs = [eye[feature["labels"][1:-1]] for feature in ds.features]
    unlabelled = [record(s, None, n) for n, s in enumerate(SEQUENCES)]
    ds_predict = task.encode(unlabelled, "predict")
    assert [f["input_ids"] for f in ds_predict.features] == [f["input_ids"] for f in ds.features]
    predictions = task.predictions(outputs, ds_predict)
    for sequence, gold, prediction in zip(SEQUENCES, labelled, predictions):
        assert prediction["sequence"] == sequence and len(prediction["labels"]) == len(sequence)
        assert prediction["labels"] == gold.labels
    # and logits read from the tokens themselves (the first letter of the k-mer) give back the sequence
    letters = {c: i for i, c in enumerate("ACGT")}
    token_logits = [np.eye(4, dtype=np.float32)[[letters[vocab[t][0]] for t in f["input_ids"][1:-1]]]
                    for f in ds.features]
    merged = task.example_outputs(token_logits, ds)
    assert ["".join("ACGT"[j] for j in m.argmax(-1)) for m in merged] == SEQUENCES


def test_unknown_letters_make_their_kmers_unknown_and_are_counted():
    tokenizer = build_char_tokenizer(alphabet="ACGT", kmer=3, overlap=True)
    task = ResidueTask(ResidueOptions(type="residues"), DataConfig(max_length=64), tokenizer)
    data = [record("ACNGTA", list("abcdef"), 0)]
    task.fit(data)
    ds = task.encode(data, "train")
    ids = ds.features[0]["input_ids"][1:-1]
    unk = tokenizer.unk_id
    assert ids[:3] == [unk, unk, unk] and unk not in ids[3:] and ds.unknown == {"N": 1}
    strict = ResidueTask(ResidueOptions(type="residues", unknown_residues="error"), DataConfig(max_length=64),
                         tokenizer)
    strict.fit(data)
    with pytest.raises(SeqtuneError, match=r"1 residues in 1 of 1 sequences are not in the model's alphabet: 'N'"):
        strict.encode(data, "train")


def test_lower_case_is_folded_to_the_vocabulary_case():
    tokenizer = build_char_tokenizer(alphabet="ACGT", kmer=3, overlap=True)
    task = ResidueTask(ResidueOptions(type="residues"), DataConfig(max_length=64), tokenizer)
    data = [record("acgTA", list("abcde"), 0), record("ACGTA", list("abcde"), 1)]
    task.fit(data)
    ds = task.encode(data, "train")
    assert ds.features[0]["input_ids"] == ds.features[1]["input_ids"] and not ds.unknown


def test_a_sequence_shorter_than_k_is_an_error():
    tokenizer = build_char_tokenizer(alphabet="ACGT", kmer=6, overlap=True)
    task = ResidueTask(ResidueOptions(type="residues"), DataConfig(max_length=64), tokenizer)
    data = [record("ACGTACGT", list("abcdefgh"), 0), record("ACGT", list("abcd"), 1)]
    task.fit(data)
    with pytest.raises(SeqtuneError, match=r"train.csv:3 \(record 2\): the sequence 'ACGT' has 4 letters, fewer "
                                           r"than k = 6"):
        task.encode(data, "train")
