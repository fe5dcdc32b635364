"""Overlapping k-mers end to end through the CLI: `seqtune pretrain` with model.vocab.kmer_overlap ->
`seqtune train` (residues and classification) -> `seqtune predict`, all reading the same k-mers; and
the bad inputs around them (k out of range, a sequence shorter than k, class weights naming an unknown
label, a missing data.exclude_similar_to file): one clear message, exit 2."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from seqtune.cli import main

FAST = ["train.progress=false", "train.num_threads=1", "train.batch_size=16", "train.lr=3e-3", "train.seed=0"]
MOTIF = "TATAAA"


def sets(*items):
    return [x for item in items for x in ("--set", item)]


def dna(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("ACGT") for _ in range(n))


def with_motif(rng: random.Random, n: int) -> tuple[str, str]:
    """A sequence with the motif planted once, and its per-nucleotide labels (1 on the motif)."""
    at = rng.randrange(0, n - len(MOTIF))
    sequence = dna(rng, at) + MOTIF + dna(rng, n - at - len(MOTIF))
    return sequence, "0" * at + "1" * len(MOTIF) + "0" * (n - at - len(MOTIF))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    rng = random.Random(0)
    root = tmp_path_factory.mktemp("dna")
    (root / "corpus.txt").write_text("".join(dna(rng, rng.randint(30, 60)) + "\n" for _ in range(80)))
    for split, n in (("train", 96), ("dev", 24)):
        residues, classes = ["id,sequence,labels"], ["sequence,label"]
        for i in range(n):
            sequence, labels = with_motif(rng, rng.randint(20, 50))  # some longer than one 30-token window
            residues.append(f"{split}{i},{sequence},{labels}")
            classes.append(f"{sequence},1" if i % 2 else f"{dna(rng, len(sequence))},0")
        (root / f"{split}_residues.csv").write_text("\n".join(residues) + "\n")
        (root / f"{split}_classes.csv").write_text("\n".join(classes) + "\n")
    return {"root": root, **{p.stem: p for p in root.iterdir()}}


@pytest.fixture(scope="module")
def pretrained(data) -> Path:
    out = data["root"] / "runs"
    code = main(["pretrain", *sets(f"data.train={data['corpus']}", "model.vocab.alphabet=ACGT",
                                   "model.vocab.kmer=3", "model.vocab.kmer_overlap=true",
                                   "model.architecture.layers=1", "model.architecture.hidden=32",
                                   "model.architecture.heads=2", "model.architecture.max_positions=64",
                                   "data.max_length=64", "train.epochs=1", f"output_dir={out}", "name=mlm", *FAST)])
    assert code == 0
    (run,) = [p for p in out.iterdir() if p.name.startswith("mlm-") and "init" not in p.name]
    return run / "model"


def test_pretrained_model_keeps_its_kmer_tokenizer(pretrained):
    config = json.loads((pretrained / "tokenizer_config.json").read_text())
    assert config["seqtune_overlapping_kmer"] == 3
    assert "spans of 3 overlapping k-mers" in (pretrained.parent / "log.txt").read_text()


def test_residues_train_and_predict_one_label_per_nucleotide(pretrained, data, tmp_path):
    out = tmp_path / "runs"
    code = main(["train", *sets("task.type=residues", f"model.path={pretrained}", f"data.train={data['train_residues']}",
                                f"data.dev={data['dev_residues']}", "data.text_column=sequence",
                                "data.label_column=labels", "data.max_length=32", "train.epochs=8",
                                f"output_dir={out}", *FAST)])
    assert code == 0
    (run,) = out.iterdir()
    results = json.loads((run / "results.json").read_text())
    assert results["dev"]["per_label"]["1"]["recall"] > 0.5, results["dev"]  # the motif is found
    assert json.loads((run / "model" / "tokenizer_config.json").read_text())["seqtune_overlapping_kmer"] == 3
    queries = [line.split(",")[:2] for line in data["dev_residues"].read_text().splitlines()[1:6]]
    fasta = tmp_path / "q.fasta"
    fasta.write_text("".join(f">{name}\n{sequence}\n" for name, sequence in queries))
    predictions = tmp_path / "p.jsonl"
    assert main(["predict", str(run / "model"), str(fasta), "--output", str(predictions)]) == 0
    records = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert [(r["id"], r["sequence"]) for r in records] == [tuple(q) for q in queries]
    assert all(len(r["labels"]) == len(r["sequence"]) for r in records)


def test_classification_train_and_predict(pretrained, data, tmp_path):
    out = tmp_path / "runs"
    code = main(["train", *sets("task.type=classification", f"model.path={pretrained}",
                                f"data.train={data['train_classes']}", f"data.dev={data['dev_classes']}",
                                "data.text_column=sequence", "data.max_length=64", "train.epochs=1",
                                f"output_dir={out}", *FAST)])
    assert code == 0
    (run,) = out.iterdir()
    query = tmp_path / "q.csv"
    query.write_text("sequence\nACGTTATAAAGG\n")
    predictions = tmp_path / "p.jsonl"
    assert main(["predict", str(run / "model"), str(query), "--output", str(predictions)]) == 0
    (record,) = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert record["label"] in ("0", "1")


def test_bad_inputs_are_one_clear_message_and_exit_2(pretrained, data, tmp_path, capsys):
    base = [f"data.train={data['corpus']}", "model.vocab.alphabet=ACGT", f"output_dir={tmp_path}",
            "data.max_length=64", "model.architecture.max_positions=64"]
    capsys.readouterr()
    assert main(["pretrain", *sets(*base, "model.vocab.kmer=7", "model.vocab.kmer_overlap=true")]) == 2
    err = capsys.readouterr().err
    assert "model.vocab.kmer is 7, but overlapping k-mers support k from 3 to 6" in err and "Traceback" not in err
    assert main(["config", "show", *sets("task.type=mlm", "model.vocab.kmer=2", "model.vocab.kmer_overlap=true")]) == 2
    assert "support k from 3 to 6" in capsys.readouterr().err

    short = tmp_path / "short.txt"
    short.write_text("ACGTACGTAC\nACG\n")
    assert main(["pretrain", *sets(*base, f"data.train={short}", "model.vocab.kmer=6",
                                   "model.vocab.kmer_overlap=true", *FAST)]) == 2
    err = capsys.readouterr().err
    assert "short.txt:2: the sequence 'ACG' has 3 letters, fewer than k = 6" in err
    assert not list(tmp_path.glob("mlm-*"))  # refused before an initial model or a run directory is written

    query = tmp_path / "q.csv"
    query.write_text("sequence\nAC\n")
    assert main(["train", *sets("task.type=classification", f"model.path={pretrained}",
                                f"data.train={data['train_classes']}", "data.text_column=sequence",
                                "task.class_weights={0: 1, 7: 2}", f"output_dir={tmp_path}", *FAST)]) == 2
    err = capsys.readouterr().err
    assert "task.class_weights names label '7'" in err and "Traceback" not in err

    assert main(["pretrain", *sets(*base, f"data.exclude_similar_to=[{tmp_path / 'missing.csv'}]", *FAST)]) == 2
    err = capsys.readouterr().err
    assert "data.exclude_similar_to: file" in err and "missing.csv' does not exist" in err and "Traceback" not in err
    assert not list(tmp_path.glob("mlm-*"))  # checked before an initial model is written

    # continued pretraining must read the checkpoint's tokens the same way
    assert main(["pretrain", *sets(f"model.path={pretrained}", f"data.train={data['corpus']}", "model.vocab.alphabet=ACGT",
                                   "model.vocab.kmer=3", "data.max_length=64", f"output_dir={tmp_path}", *FAST)]) == 2
    assert "model.vocab.kmer_overlap is false, but model.path" in capsys.readouterr().err


def test_a_prediction_input_shorter_than_k_is_an_error(pretrained, data, tmp_path, capsys):
    out = tmp_path / "runs"
    assert main(["train", *sets("task.type=classification", f"model.path={pretrained}",
                                f"data.train={data['train_classes']}", "data.text_column=sequence",
                                "train.epochs=1", f"output_dir={out}", *FAST)]) == 0
    (run,) = out.iterdir()
    query = tmp_path / "q.csv"
    query.write_text("sequence\nACGTAC\nAC\n")
    capsys.readouterr()
    assert main(["predict", str(run / "model"), str(query)]) == 2
    err = capsys.readouterr().err
    assert "the sequence 'AC' has 2 letters, fewer than k = 3" in err and "q.csv:3" in err
