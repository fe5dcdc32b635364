"""Files without a header row (GLUE CoLA, many bio CSVs): `data.header: false`, columns by 0-based number."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from seqtune.cli import main
from seqtune.config import DataConfig, load_config
from seqtune.data.corpus import read_corpus
from seqtune.data.readers.sequences import read_sequences
from seqtune.data.readers.table import read_table
from seqtune.errors import SeqtuneError
from seqtune.tasks import task_class
from seqtune.tokenization import load_tokenizer

# GLUE CoLA's in_domain_train.tsv: source, label, original mark, sentence; no header row.
COLA = ("gj04\t1\t\tthe film was good .\n"
        "gj04\t0\t*\tfilm the good was .\n"
        "gj04\t1\t\tit is a great story .\n"
        "gj04\t0\t*\tis story great a it .\n")


@pytest.fixture()
def cola(tmp_path):
    (tmp_path / "in_domain_train.tsv").write_text(COLA)
    return tmp_path / "in_domain_train.tsv"


def make(kind, checkpoint, **data):
    cls = task_class(kind)
    return cls(cls.Options(type=kind), DataConfig(**data), load_tokenizer(checkpoint))


def test_headerless_tsv_keeps_its_first_record(cola):
    table = read_table(str(cola), header=False)
    assert table.columns == [0, 1, 2, 3] and table.lines == [1, 2, 3, 4]
    assert table.rows[0] == {0: "gj04", 1: "1", 2: "", 3: "the film was good ."}


def test_classification_reads_cola_without_header(cola, tiny_checkpoint):
    task = make("classification", tiny_checkpoint, header=False, text_column=3, label_column=1)
    examples = task.read(str(cola), "train")
    assert [(e.text, e.raw_label, e.where) for e in examples[:2]] == [
        ("the film was good .", "1", f"{cola}:1"), ("film the good was .", "0", f"{cola}:2")]
    task.fit(examples)
    assert task.labels == ["0", "1"]
    pairs = make("classification", tiny_checkpoint, header=False, text_column=3, text_pair_column=0,
                 label_column=1).read(str(cola), "train")
    assert pairs[0].pair == "gj04"


def test_prediction_file_without_the_label_column(tmp_path, tiny_checkpoint):
    (tmp_path / "test.tsv").write_text("0\tthe film was good .\n1\tbad plot .\n")
    task = make("classification", tiny_checkpoint, header=False, text_column=1, label_column=2)
    assert [e.raw_label for e in task.read(str(tmp_path / "test.tsv"), "predict")] == [None, None]


def test_column_kind_must_match_the_header_setting(cola, tmp_path, tiny_checkpoint):
    with pytest.raises(SeqtuneError, match=r"in_domain_train.tsv: data.text_column is 'text', a column name, "
                                           r"but data.header is false .* 4 \(0..3\)"):
        make("classification", tiny_checkpoint, header=False).read(str(cola), "train")
    (tmp_path / "h.csv").write_text("text,label\ngood,1\n")
    with pytest.raises(SeqtuneError, match=r"h.csv: data.text_column is 0, a column number, but data.header "
                                           r"is true.*'text', 'label'.*data.header: false"):
        make("classification", tiny_checkpoint, text_column=0).read(str(tmp_path / "h.csv"), "train")
    (tmp_path / "h.jsonl").write_text('{"text": "good", "label": 1}\n')
    with pytest.raises(SeqtuneError, match=r"h.jsonl: data.label_column is 1, a column number, but JSONL"):
        make("classification", tiny_checkpoint, label_column=1).read(str(tmp_path / "h.jsonl"), "train")
    with pytest.raises(SeqtuneError, match=r"h.jsonl: data.header is false, but JSONL records name their fields"):
        read_table(str(tmp_path / "h.jsonl"), header=False)


def test_column_number_out_of_range_names_file_line_and_count(cola, tiny_checkpoint):
    with pytest.raises(SeqtuneError, match=r"in_domain_train.tsv:1: data.text_column is 4, but the line has 4 columns"):
        make("classification", tiny_checkpoint, header=False, text_column=4, label_column=1).read(str(cola), "train")


def test_headerless_rows_must_agree_on_the_field_count(tmp_path):
    (tmp_path / "t.csv").write_text("a,1\n\nb,0\nc,1,extra\n")
    with pytest.raises(SeqtuneError, match=r"t.csv:4: expected 2 fields \(as on line 1\) but found 3"):
        read_table(str(tmp_path / "t.csv"), header=False)


def test_residues_csv_without_header(tmp_path, tiny_checkpoint):
    (tmp_path / "ss.csv").write_text("1es5-A,MKV,HEC,011\n1abc-B,AA,CC,11\n")
    cls = task_class("residues")
    data = DataConfig(header=False, text_column=1, label_column=2, token_store=False)
    task = cls(cls.Options(type="residues"), data, load_tokenizer(tiny_checkpoint))
    records = task.read(str(tmp_path / "ss.csv"), "train")
    stored = cls(cls.Options(type="residues"), replace(data, token_store=True), task.tokenizer).read(
        str(tmp_path / "ss.csv"), "train")  # the training file's token store reads it the same way
    assert (stored.store.records, stored.store.tokens, stored.label_names) == (2, 5, ["H", "E", "C"])
    assert [(r.id, r.sequence, r.labels) for r in records] == [(None, "MKV", ["H", "E", "C"]), (None, "AA", ["C", "C"])]
    assert records[1].where == f"{tmp_path / 'ss.csv'}:2 (record 2)"
    masked = read_sequences(str(tmp_path / "ss.csv"), header=False, sequence_column=1, label_column=2,
                            mask_column=3, id_column=0)
    assert [(r.id, r.mask) for r in masked] == [("1es5-A", [False, True, True]), ("1abc-B", [True, True])]
    with pytest.raises(SeqtuneError, match=r"ss.csv: data.mask_column is 'resolved_mask', a column name"):
        read_sequences(str(tmp_path / "ss.csv"), header=False, sequence_column=1, label_column=2,
                       mask_column="resolved_mask")


def test_corpus_column_without_header(tmp_path):
    (tmp_path / "c.csv").write_text("p1,ACGT\np2,GGCC\n")
    assert [r.text for r in read_corpus(tmp_path / "c.csv", column=1, header=False).records] == ["ACGT", "GGCC"]
    with pytest.raises(SeqtuneError, match=r"c.csv:1: data.text_column is 2, but the line has 2 columns"):
        read_corpus(tmp_path / "c.csv", column=2, header=False)


def test_config_takes_column_numbers(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("task: {type: classification}\ndata: {header: false, text_column: 3, label_column: 1}\n")
    cfg = load_config(config)
    assert (cfg.data.header, cfg.data.text_column, cfg.data.label_column) == (False, 3, 1)
    assert load_config(config, ["data.text_column=sentence"]).data.text_column == "sentence"
    with pytest.raises(SeqtuneError, match="data.text_column"):
        load_config(config, ["data.text_column=[1]"])


def test_train_and_predict_cola_without_header(tmp_path, cola, tiny_checkpoint):
    args = ["train", "--set", "task.type=classification", "--set", f"model.path={tiny_checkpoint}",
            "--set", f"data.train={cola}", "--set", "data.header=false", "--set", "data.text_column=3",
            "--set", "data.label_column=1", "--set", "train.epochs=1", "--set", "train.batch_size=2",
            "--set", "train.progress=false", "--set", f"output_dir={tmp_path / 'runs'}"]
    assert main(args) == 0
    run = next((tmp_path / "runs").iterdir())
    out = tmp_path / "pred.jsonl"
    assert main(["predict", str(run / "model"), str(cola), "--output", str(out)]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["text"] for r in records] == [line.split("\t")[3] for line in COLA.splitlines()]
