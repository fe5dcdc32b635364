"""Inputs of sequence classification and regression: label spellings, letter case and unknown
tokens, FASTA records (labels in the header or in a labels table), and long inputs in windows."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from test_residues import write_char_checkpoint

from seqtune.cli import main
from seqtune.config import DataConfig
from seqtune.data.readers.fasta_labels import header_value
from seqtune.errors import SeqtuneError
from seqtune.tasks import task_class
from seqtune.tasks.alphabet import case_folder, vocabulary_case
from seqtune.tokenization import load_tokenizer

DNA = "ACGTN"


@pytest.fixture(scope="module")
def dna_checkpoint(tmp_path_factory) -> Path:
    return write_char_checkpoint(tmp_path_factory.mktemp("dna_bert"), alphabet=DNA, max_positions=32)


def make(kind, checkpoint, **data):
    cls = task_class(kind)
    return cls(cls.Options(type=kind), DataConfig(**data), load_tokenizer(checkpoint))


def read_fit_encode(task, path, split="train"):
    examples = task.read(str(path), split)
    if split == "train":
        task.fit(examples)
    return task.encode(examples, split)


# ---- label spellings ------------------------------------------------------------------------------

def test_jsonl_labels_of_mixed_types_are_an_error(tmp_path, tiny_checkpoint):
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps({"text": "good", "label": v}) + "\n" for v in [1, 0, 1.0, True]))
    task = make("classification", tiny_checkpoint)
    with pytest.raises(SeqtuneError) as err:
        task.fit(task.read(str(path), "train"))
    message = str(err.value)
    assert "the labels are of mixed types: 1 (number, " in message and f"{path}:1)" in message
    assert f"true (boolean, {path}:4)" in message


def test_one_number_written_two_ways_is_an_error(tmp_path, tiny_checkpoint):
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps({"text": "good", "label": v}) + "\n" for v in [1, 0, 1.0]))
    task = make("classification", tiny_checkpoint)
    with pytest.raises(SeqtuneError, match=rf"labels 1 \({path}:1\), 1.0 \({path}:3\) write the same number "
                                           "differently"):
        task.fit(task.read(str(path), "train"))


def test_labels_that_differ_only_by_whitespace_are_an_error(tmp_path, tiny_checkpoint):
    path = tmp_path / "t.csv"
    path.write_text('text,label\ngood,1\nbad,0\nfun," 1"\n')
    task = make("classification", tiny_checkpoint)
    with pytest.raises(SeqtuneError, match=rf'labels "1" \({path}:2\), " 1" \({path}:4\) differ only in '
                                           "surrounding whitespace"):
        task.fit(task.read(str(path), "train"))
    # written one way throughout, surrounding whitespace is not part of a label
    (tmp_path / "ok.csv").write_text("text, label\ngood, 1\nbad, 0\n")
    task = make("classification", tiny_checkpoint, label_column="label")
    ds = read_fit_encode(task, tmp_path / "ok.csv")
    assert task.labels == ["0", "1"] and [f["labels"] for f in ds.features] == [1, 0]


def test_a_dev_file_is_checked_too(tmp_path, tiny_checkpoint):
    (tmp_path / "train.csv").write_text("text,label\ngood,1\nbad,0\n")
    (tmp_path / "dev.csv").write_text("text,label\ngood,1\nbad,0\nfun,1.0\n")
    task = make("classification", tiny_checkpoint)
    read_fit_encode(task, tmp_path / "train.csv")
    with pytest.raises(SeqtuneError, match=r'"1" \(.*dev.csv:2\), "1.0" \(.*dev.csv:4\) write the same number'):
        read_fit_encode(task, tmp_path / "dev.csv", "dev")


def test_a_boolean_is_no_regression_target(tmp_path, tiny_checkpoint):
    path = tmp_path / "r.jsonl"
    path.write_text('{"text": "good", "label": 4.5}\n{"text": "bad", "label": true}\n')
    with pytest.raises(SeqtuneError, match=rf"{path}:2: regression target True is not a finite number"):
        read_fit_encode(make("regression", tiny_checkpoint), path)


# ---- letter case and unknown tokens -----------------------------------------------------------------

def test_soft_masked_sequences_fold_to_the_vocabulary_case(tmp_path, dna_checkpoint, caplog):
    (tmp_path / "t.csv").write_text("text,label\nACGTTGCA,1\nacgtTGca,0\n")
    task = make("classification", dna_checkpoint)
    assert vocabulary_case(task.tokenizer) == "upper"
    with caplog.at_level(logging.WARNING, logger="seqtune"):
        ds = read_fit_encode(task, tmp_path / "t.csv")
    assert ds.features[0]["input_ids"] == ds.features[1]["input_ids"]
    assert task.tokenizer.unk_id not in ds.features[1]["input_ids"] and "unknown_tokens" not in ds.info
    assert not caplog.records
    outputs = [np.array([0.0, 1.0])] * 2
    assert [p["text"] for p in task.predictions(outputs, ds)] == ["ACGTTGCA", "acgtTGca"]  # as given


def test_unknown_tokens_warn_naming_the_characters(tmp_path, dna_checkpoint, caplog):
    (tmp_path / "t.csv").write_text("text,label\nACGTTGCA,1\nacgtTGca,0\n")
    task = make("classification", dna_checkpoint, case="keep")
    with caplog.at_level(logging.WARNING, logger="seqtune"):
        ds = read_fit_encode(task, tmp_path / "t.csv")
    assert ds.info["unknown_tokens"] == 6
    (record,) = caplog.records
    assert record.message.startswith(f"{tmp_path / 't.csv'}: 37.5% of the input tokens (6 of 16) are not in the "
                                     "model's vocabulary and become [UNK]: 'a' x2, 'c' x2, 'g' x1, 't' x1")
    assert "data.case is keep; upper or lower would fold them" in record.message


def test_data_case_upper_lower_keep(dna_checkpoint, tiny_checkpoint):
    dna = load_tokenizer(dna_checkpoint)
    assert case_folder("auto", dna)("acgtß") == "ACGTß"  # a letter whose upper case is two letters stays
    assert case_folder("lower", dna)("ACGT") == "acgt"
    assert case_folder("keep", dna) is None
    words = load_tokenizer(tiny_checkpoint)  # WordPiece: it lower-cases by itself; auto leaves texts alone
    assert case_folder("auto", words) is None and case_folder("upper", words)("good") == "GOOD"


def test_a_few_unknown_tokens_do_not_warn_and_wordpiece_names_words(tmp_path, tiny_checkpoint, caplog):
    rows = ["the film was good"] * 30 + ["the film was \u2603"]
    (tmp_path / "few.csv").write_text("text,label\n" + "".join(f"{t},{i % 2}\n" for i, t in enumerate(rows)))
    with caplog.at_level(logging.WARNING, logger="seqtune"):
        ds = read_fit_encode(make("classification", tiny_checkpoint), tmp_path / "few.csv")
    assert ds.info["unknown_tokens"] == 1 and not caplog.records  # 1 of 124 tokens
    (tmp_path / "many.csv").write_text("text,label\nthe \u2603\u2603 film,1\nthe \u00bf film,0\n")
    with caplog.at_level(logging.WARNING, logger="seqtune"):
        read_fit_encode(make("classification", tiny_checkpoint), tmp_path / "many.csv")
    assert "become [UNK]: '\u2603\u2603' x1, '\u00bf' x1" in caplog.records[0].message


# ---- FASTA ----------------------------------------------------------------------------------------

def test_header_values():
    assert header_value("seq1 label=promoter", "label") == "promoter"
    assert header_value("seq1 src=x label=1 length=70", "label") == "1"
    assert header_value("sp|P69905|HBA_HUMAN Hemoglobin OS=Homo sapiens OX=9606", "OS") == "Homo sapiens"
    assert header_value("seq1 mylabel=x", "label") is None and header_value("seq1", "label") is None


def test_fasta_with_labels_in_the_header(tmp_path, dna_checkpoint):
    (tmp_path / "t.fasta").write_text(">s1 label=promoter\nACGTACGT\nACGT\n>s2 label=other\nacgtnn\n")
    task = make("classification", dna_checkpoint)
    ds = read_fit_encode(task, tmp_path / "t.fasta")
    assert task.labels == ["other", "promoter"]
    assert [(e.id, e.text, e.label) for e in ds.examples] == [("s1", "ACGTACGTACGT", 1), ("s2", "acgtnn", 0)]
    predictions = task.predictions([np.array([0.0, 1.0]), np.array([1.0, 0.0])], ds)
    assert [(p["id"], p["label"]) for p in predictions] == [("s1", "promoter"), ("s2", "other")]
    (tmp_path / "new.fa").write_text(">n1\nACGT\n")  # prediction: no labels needed
    assert [e.id for e in task.read(str(tmp_path / "new.fa"), "predict")] == ["n1"]
    (tmp_path / "bad.fasta").write_text(">s1 label=1\nACGT\n>s2 class=0\nACGT\n")
    with pytest.raises(SeqtuneError, match=r"bad.fasta:3 \(record 2\): the header >s2 class=0 has no label=VALUE "
                                           r"field.*data.labels_file"):
        task.read(str(tmp_path / "bad.fasta"), "train")


def test_fasta_regression_and_pair_tasks(tmp_path, dna_checkpoint):
    (tmp_path / "r.fasta").write_text(">s1 score=0.5\nACGT\n>s2 score=2\nGGCC\n")
    task = make("regression", dna_checkpoint, label_column="score")
    ds = read_fit_encode(task, tmp_path / "r.fasta")
    assert [e.label for e in ds.examples] == [0.5, 2.0]
    pair = make("classification", dna_checkpoint, text_pair_column="other")
    with pytest.raises(SeqtuneError, match=r"a FASTA file holds one sequence per record, but this model takes text pairs"):
        pair.read(str(tmp_path / "r.fasta"), "train")


def test_fasta_with_a_labels_file(tmp_path, dna_checkpoint):
    (tmp_path / "t.fasta").write_text(">s1 some description\nACGT\n>s2\nGGCC\n>s3\nTTAA\n")
    (tmp_path / "labels.tsv").write_text("name\tclass\ns3\tno\ns1\tyes\ns2\tno\ns9\tyes\n")
    task = make("classification", dna_checkpoint, labels_file=str(tmp_path / "labels.tsv"), id_column="name",
                label_column="class")
    ds = read_fit_encode(task, tmp_path / "t.fasta")
    assert [(e.id, task.labels[e.label]) for e in ds.examples] == [("s1", "yes"), ("s2", "no"), ("s3", "no")]
    assert ds.examples[0].where == f"{tmp_path / 't.fasta'}:1 (record 1), label from {tmp_path / 'labels.tsv'}:3"
    (tmp_path / "more.fasta").write_text(">s1\nACGT\n>s4\nACGT\n>s5\nACGT\n")
    with pytest.raises(SeqtuneError, match=r"more.fasta: 2 records have no label in data.labels_file .*labels.tsv "
                                           r"\(column 'name'\): 's4', 's5'"):
        task.read(str(tmp_path / "more.fasta"), "dev")
    (tmp_path / "twice.tsv").write_text("name\tclass\ns1\tyes\ns1\tno\n")
    task = make("classification", dna_checkpoint, labels_file=str(tmp_path / "twice.tsv"), id_column="name",
                label_column="class")
    with pytest.raises(SeqtuneError, match=r"twice.tsv:3: record id 's1' is listed again with label 'no'; "
                                           r".*twice.tsv:2 gives it 'yes'"):
        task.read(str(tmp_path / "t.fasta"), "train")
    with pytest.raises(SeqtuneError, match=r"data.label_column is 1, a column number, but FASTA records"):
        make("classification", dna_checkpoint, label_column=1).read(str(tmp_path / "t.fasta"), "train")


# ---- long inputs ----------------------------------------------------------------------------------

def test_windows_give_one_feature_per_window_with_the_example_label(tmp_path, dna_checkpoint):
    (tmp_path / "t.csv").write_text("text,label\n" + "A" * 20 + ",1\nACGT,0\n")
    truncate = make("classification", dna_checkpoint, max_length=10)
    short = read_fit_encode(truncate, tmp_path / "t.csv")
    assert short.info["truncated"] == 1 and len(short.features) == 2
    task = make("classification", dna_checkpoint, max_length=10, long_inputs="windows")
    ds = read_fit_encode(task, tmp_path / "t.csv")
    # 20 tokens in windows of 8, starts 4 apart: 0, 4, 8, 12
    assert [f["span"] for f in ds.features] == [(0, 8), (4, 12), (8, 16), (12, 20), (0, 4)]
    assert [f["labels"] for f in ds.features] == [1, 1, 1, 1, 0]
    assert ds.info == {"truncated": 0, "windowed": 1, "windows": 5}
    assert ds.features[4]["input_ids"] == short.features[1]["input_ids"]  # an input that fits: one window, the same
    outputs = [np.array([0.0, 4.0]), np.array([2.0, 0.0]), np.array([2.0, 0.0]), np.array([2.0, 0.0]),
               np.array([3.0, 0.0])]
    np.testing.assert_allclose(task.example_outputs(outputs, ds), [[1.5, 1.0], [3.0, 0.0]])
    metrics = task.metrics(outputs, ds)
    assert metrics["examples"] == 2 and metrics["confusion_matrix"]["matrix"] == [[1, 0], [1, 0]]
    predictions = task.predictions(outputs, ds)
    assert len(predictions) == 2 and predictions[0]["label"] == "0"


@pytest.mark.parametrize("settings", [{"max_length": 10}, {"max_length": 10, "long_inputs": "windows"},
                                      {"text_column": "text", "text_pair_column": "pair", "max_length": 12}])
def test_tokenizing_in_chunks_gives_the_features_of_one_call(tmp_path, dna_checkpoint, monkeypatch, settings):
    """The tokenizer runs ENCODE_CHUNK texts at a time (its Encodings are large); the features are
    those of tokenizing the whole file in one call, across chunk ends."""
    import random

    import seqtune.tokenization as tokenization

    rng = random.Random(0)
    rows = [("".join(rng.choice("ACGT") for _ in range(rng.randint(1, 25))),
             "".join(rng.choice("ACGT") for _ in range(rng.randint(1, 9))), i % 2) for i in range(11)]
    (tmp_path / "t.csv").write_text("text,pair,label\n" + "".join(f"{a},{b},{y}\n" for a, b, y in rows))
    whole = read_fit_encode(make("classification", dna_checkpoint, **settings), tmp_path / "t.csv")
    monkeypatch.setattr(tokenization, "ENCODE_CHUNK", 3)
    chunked = read_fit_encode(make("classification", dna_checkpoint, **settings), tmp_path / "t.csv")
    assert chunked.features == whole.features and chunked.info == whole.info
    assert len(whole.features) >= 11 and whole.info["truncated" if "long_inputs" not in settings else "windowed"] > 0


@pytest.mark.parametrize("pairs", [False, True])
def test_flat_features_read_as_the_dicts_of_the_tokenizer(tmp_path, dna_checkpoint, pairs):
    """Truncated texts are held flat (tasks/text_features.py); each feature reads as the dict made
    from the tokenizer's own output, labelled or not, and the lengths come without making them."""
    (tmp_path / "t.csv").write_text("text,pair,label\nACGTACGTACGTAC,GG,1\nA,CCCC,0\nACG,T,1\n")
    settings = {"max_length": 9, **({"text_pair_column": "pair"} if pairs else {})}
    task = make("classification", dna_checkpoint, **settings)
    ds = read_fit_encode(task, tmp_path / "t.csv")
    encoded = task.tokenizer.encode_batch(["ACGTACGTACGTAC", "A", "ACG"], ["GG", "CCCC", "T"] if pairs else None, 9)
    expected = [{"input_ids": e.ids, "example_index": i, **({"token_type_ids": e.type_ids} if pairs else {}),
                 "labels": label} for i, (e, label) in enumerate(zip(encoded, [1, 0, 1]))]
    assert [ds.features[i] for i in range(3)] == expected and list(ds.features) == expected
    assert ds.features[-1] == expected[-1] and list(ds.lengths) == [len(e.ids) for e in encoded]
    with pytest.raises(IndexError):
        ds.features[3]
    unlabelled = task.encode(task.examples_from_inputs(["ACGTACGTACGTAC"] if not pairs else [["A", "CC"]]), "predict")
    assert "labels" not in unlabelled.features[0] and unlabelled.features[0]["example_index"] == 0


def test_windows_for_regression_and_not_for_pairs(tmp_path, dna_checkpoint):
    (tmp_path / "r.csv").write_text("text,label\n" + "C" * 12 + ",2.5\nACGT,1\n")
    task = make("regression", dna_checkpoint, max_length=10, long_inputs="windows")
    ds = read_fit_encode(task, tmp_path / "r.csv")
    assert len(ds.features) == 3
    outputs = [np.array([1.0]), np.array([3.0]), np.array([0.5])]
    assert [p["score"] for p in task.predictions(outputs, ds)] == [2.0, 0.5]
    assert task.metrics(outputs, ds)["mse"] == pytest.approx((0.25 + 0.25) / 2)
    (tmp_path / "p.csv").write_text("a,b,label\nACGT,ACGT,1\nAC,GT,0\n")
    pair = make("classification", dna_checkpoint, text_column="a", text_pair_column="b", long_inputs="windows")
    with pytest.raises(SeqtuneError, match="data.long_inputs is windows, which cuts single texts"):
        read_fit_encode(pair, tmp_path / "p.csv")


def test_cli_fasta_with_a_labels_file_in_windows(tmp_path, dna_checkpoint, caplog):
    """Train, evaluate and predict on FASTA records longer than data.max_length."""
    import random

    rng = random.Random(0)
    records, labels = [], ["id,label"]
    for i in range(24):
        label = i % 2
        motif = "GGGG" if label else "TTTT"
        sequence = "".join(rng.choice("ACGT") for _ in range(30)) + motif * 3
        records.append(f">r{i}\n{sequence[:25]}\n{sequence[25:]}\n")
        labels.append(f"r{i},{'yes' if label else 'no'}")
    (tmp_path / "train.fasta").write_text("".join(records))
    (tmp_path / "labels.csv").write_text("\n".join(labels) + "\n")
    config = tmp_path / "c.yaml"
    config.write_text(
        "task: {type: classification, head: cls}\n"
        f"model: {{path: {dna_checkpoint}}}\n"
        f"data: {{train: train.fasta, dev: train.fasta, labels_file: labels.csv, max_length: 16, "
        "long_inputs: windows}\n"
        "train: {epochs: 1, batch_size: 8, progress: false, num_threads: 1}\n"
        f"output_dir: {tmp_path / 'runs'}\n"
    )
    assert main(["train", str(config)]) == 0
    (run,) = (tmp_path / "runs").iterdir()
    log = (run / "log.txt").read_text()
    # 42 residues in windows of 14, starts 7 apart: 0, 7, 14, 21, 28
    assert "train: 24 examples -> 120 features" in log and "windowed 24, windows 120" in log
    results = json.loads((run / "results.json").read_text())
    assert results["dev"]["examples"] == 24
    (tmp_path / "new.fasta").write_text(">n1 soft-masked\n" + "acgt" * 10 + "\n>n2\n" + "ACGT" * 10 + "\n")
    out = tmp_path / "pred.jsonl"
    assert main(["predict", str(run / "model"), str(tmp_path / "new.fasta"), "-o", str(out)]) == 0
    first, second = (json.loads(line) for line in out.read_text().splitlines())
    assert (first["id"], second["id"]) == ("n1", "n2") and first["text"] == "acgt" * 10
    assert first["probabilities"] == second["probabilities"]  # folded to the vocabulary's case
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="seqtune"):
        assert main(["predict", str(run / "model"), str(tmp_path / "new.fasta"), "--set", "data.case=keep",
                     "-o", str(out)]) == 0
    assert "50.0% of the input tokens (40 of 80) are not in the model's vocabulary" in caplog.text
