"""The format of every file is checked against its content: a JSONL or FASTA file is never split
into columns, whether its format came from the extension, the config, or a saved model."""

from __future__ import annotations

import json

import pytest

from seqtune.cli import main
from seqtune.data.readers.conll import TAGGING_FORMATS, read_tagged
from seqtune.data.readers.formats import detect_format
from seqtune.data.readers.sequences import SEQUENCE_FORMATS, read_sequences
from seqtune.data.readers.table import read_table
from seqtune.errors import SeqtuneError

JSONL_WORDS = '{"tokens": ["the", "film"]}\n{"tokens": ["good", "plot", "actors"]}\n'


def test_jsonl_content_is_not_read_as_conll_columns(tmp_path):
    path = tmp_path / "new.jsonl"
    path.write_text(JSONL_WORDS)
    with pytest.raises(SeqtuneError) as err:
        read_tagged(str(path), "conll", labelled=False)
    message = str(err.value)
    assert message.startswith(f"{path}: data.format is 'conll'")
    assert "saved with the model" in message and "one JSON object per line (JSONL)" in message
    assert "line 1 reads '{\"tokens\": [\"the\", \"film\"]}'" in message
    assert "Set data.format to jsonl or auto" in message


def test_auto_reads_what_the_content_shows(tmp_path):
    path = tmp_path / "words.txt"  # .txt says CoNLL for tagging; the lines are JSON objects
    path.write_text(JSONL_WORDS)
    assert detect_format(path, allowed=TAGGING_FORMATS) == "jsonl"
    assert [s.tokens for s in read_tagged(str(path), labelled=False)] == [["the", "film"], ["good", "plot", "actors"]]
    fasta = tmp_path / "seqs.dat"  # no extension we know: FASTA from the '>' header
    fasta.write_text(">p1\nMKV\n")
    assert detect_format(fasta, allowed=SEQUENCE_FORMATS) == "fasta"
    assert read_sequences(str(fasta), labelled=False)[0].sequence == "MKV"


def test_fasta_content_is_not_read_as_a_table(tmp_path):
    path = tmp_path / "seqs.csv"
    path.write_text(">seq1 label=1\nACGT\n")
    with pytest.raises(SeqtuneError, match=r"seqs.csv: data.format is 'csv'.*FASTA records \('>' header lines\): "
                                           r"line 1 reads '>seq1 label=1'. Set data.format to fasta or auto"):
        read_sequences(str(path), "csv")
    with pytest.raises(SeqtuneError, match=r"seqs.csv: its extension says csv, but the file holds FASTA records.*"
                                           r"A table task does not read fasta files"):
        read_table(str(path))


def test_conll_lines_that_start_with_symbols_stay_conll(tmp_path):
    path = tmp_path / "t.conll"
    path.write_text("> SYM O\n{ SYM O\n>> SYM O\n")
    assert read_tagged(str(path))[0].tokens == [">", "{", ">>"]
    assert detect_format(path, "conll", TAGGING_FORMATS) == "conll"


def write_conll(path, sentences):
    path.write_text("\n".join("".join(f"{w} {t}\n" for w, t in zip(words, tags)) for words, tags in sentences))
    return path


def test_predict_with_a_tagger_trained_on_conll(tiny_checkpoint, tmp_path, capsys):
    sentences = [(["the", "film", "actors"], ["O", "O", "B-PER"]), (["good", "plot"], ["O", "B-MISC"])] * 4
    train = write_conll(tmp_path / "train.conll", sentences)
    config = tmp_path / "ner.yaml"
    config.write_text(
        "task: {type: tagging}\n"
        f"model: {{path: {tiny_checkpoint}}}\n"
        f"data: {{train: {train}, format: conll}}\n"
        "train: {epochs: 1, batch_size: 4, progress: false, num_threads: 1}\n"
        f"output_dir: {tmp_path / 'runs'}\n"
    )
    assert main(["train", str(config)]) == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    words = tmp_path / "new.jsonl"
    words.write_text(JSONL_WORDS)
    capsys.readouterr()
    assert main(["predict", str(run_dir / "model"), str(words)]) == 2
    err = capsys.readouterr().err
    assert f"{words}: data.format is 'conll'" in err and "JSONL" in err and "Traceback" not in err
    out = tmp_path / "pred.jsonl"
    assert main(["predict", str(run_dir / "model"), str(words), "--set", "data.format=auto", "-o", str(out)]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [len(r["tags"]) for r in records] == [2, 3]
    missing = tmp_path / "nowords.jsonl"
    missing.write_text('{"words": ["the"]}\n')
    assert main(["predict", str(run_dir / "model"), str(missing), "--set", "data.format=jsonl"]) == 2
    assert "expected an object with 'tokens'" in capsys.readouterr().err
