"""Text that is not UTF-8: an error naming the file, the line and the byte; data.encoding for files in
another encoding (UTF-8 keeps taking a byte-order mark)."""

from __future__ import annotations

import gzip
import json

import pytest

from seqtune.config import DataConfig
from seqtune.data.corpus import read_corpus
from seqtune.data.readers.conll import read_tagged
from seqtune.data.readers.fasta import read_fasta
from seqtune.data.readers.formats import open_text
from seqtune.data.readers.sequences import read_sequences
from seqtune.data.readers.squad import read_squad
from seqtune.data.readers.table import read_table
from seqtune.errors import SeqtuneError
from seqtune.tasks import task_class
from seqtune.tokenization import load_tokenizer

LATIN1_TSV = "sentence\tlabel\na good film\t1\nun café crème\t0\n".encode("latin-1")


def test_latin1_bytes_in_a_tsv_name_the_file_line_and_byte(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_bytes(LATIN1_TSV)
    with pytest.raises(SeqtuneError) as err:
        read_table(str(path))
    message = str(err.value)
    assert message.startswith(f"{path}:3: not UTF-8 text: byte 0xE9 at position 7 of line 3 (file offset 35)")
    assert "'un caf\\\\xe9 cr\\\\xe8me\\t0'" in message  # the line, with the bad bytes shown
    assert "data.encoding" in message and "latin-1" in message


def test_the_line_is_found_past_the_reading_buffer(tmp_path):
    """The reader decodes in chunks of several KB; the line must still be the right one."""
    path = tmp_path / "big.jsonl"
    lines = [json.dumps({"text": f"record {i} " + "x" * 50, "label": i % 2}) for i in range(2000)]
    data = "\n".join(lines).encode() + b'\n{"text": "caf\xe9", "label": 1}\n'
    path.write_bytes(data)
    offset = data.index(b"\xe9")
    with pytest.raises(SeqtuneError, match=rf"big.jsonl:2001: not UTF-8 text: byte 0xE9 at position 14 of line "
                                           rf"2001 \(file offset {offset}\)"):
        read_table(str(path))


def test_latin1_in_jsonl_squad_conll_fasta_and_gzip(tmp_path):
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_bytes(b'{"text": "ok", "label": 1}\n{"text": "na\xefve", "label": 0}\n')
    with pytest.raises(SeqtuneError, match=r"t.jsonl:2: not UTF-8 text: byte 0xEF"):
        read_table(str(jsonl))
    squad = tmp_path / "dev.json"
    squad.write_bytes(b'{"version": "1.1", "data": [\n{"title": "Caf\xe9", "paragraphs": []}]}\n')
    with pytest.raises(SeqtuneError, match=r"dev.json:2: not UTF-8 text: byte 0xE9 at position 15"):
        read_squad(str(squad))
    conll = tmp_path / "t.conll"
    conll.write_bytes(b"EU B-ORG\nM\xfcller B-PER\n")
    with pytest.raises(SeqtuneError, match=r"t.conll:2: not UTF-8 text: byte 0xFC"):
        read_tagged(str(conll))
    fasta = tmp_path / "t.fasta.gz"
    fasta.write_bytes(gzip.compress(b">p1 \xb5\nMKV\nHEC\n"))
    with pytest.raises(SeqtuneError, match=r"t.fasta.gz:1: not UTF-8 text: byte 0xB5"):
        read_fasta(str(fasta))


def test_data_encoding_reads_other_encodings(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_bytes(LATIN1_TSV)
    table = read_table(str(path), encoding="latin-1")
    assert table.rows[1]["sentence"] == "un café crème"
    (tmp_path / "t.conll").write_bytes("Müller B-PER\n".encode("cp1252"))
    assert read_tagged(str(tmp_path / "t.conll"), encoding="cp1252")[0].tokens == ["Müller"]
    (tmp_path / "s.csv").write_bytes("sequence,labels\nMKV,HÉC\n".encode("latin-1"))
    assert read_sequences(str(tmp_path / "s.csv"), encoding="latin-1")[0].labels == ["H", "É", "C"]
    (tmp_path / "u16.txt").write_bytes("first line\nsecond\n".encode("utf-16"))
    with open_text(tmp_path / "u16.txt", "utf-16") as f:
        assert f.read() == "first line\nsecond\n"
    squad = {"data": [{"title": "Café", "paragraphs": [{"context": "Paris est en France.", "qas": [
        {"id": "q1", "question": "Où?", "answers": [{"text": "France", "answer_start": 13}]}]}]}]}
    (tmp_path / "dev.json").write_bytes(json.dumps(squad, ensure_ascii=False).encode("latin-1"))
    assert read_squad(str(tmp_path / "dev.json"), encoding="latin-1")[0].question == "Où?"


def test_utf8_keeps_taking_a_byte_order_mark_and_unknown_encodings_are_named(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes("\ufefftext,label\ncafé,1\n".encode("utf-8"))
    for encoding in ("utf-8", "UTF8", "utf_8"):
        assert read_table(str(path), encoding=encoding).rows == [{"text": "café", "label": "1"}]
    with pytest.raises(SeqtuneError, match=r"data.encoding 'klingon' is not a text encoding Python knows"):
        read_table(str(path), encoding="klingon")


def test_tasks_read_with_data_encoding(tmp_path, tiny_checkpoint):
    path = tmp_path / "train.tsv"
    path.write_bytes(LATIN1_TSV)
    cls = task_class("classification")
    make = lambda **data: cls(cls.Options(type="classification"),
                              DataConfig(text_column="sentence", **data), load_tokenizer(tiny_checkpoint))
    with pytest.raises(SeqtuneError, match=r"train.tsv:3: not UTF-8 text: byte 0xE9"):
        make().read(str(path), "train")
    assert [e.text for e in make(encoding="latin-1").read(str(path), "train")] == ["a good film", "un café crème"]


def test_corpus_reader_names_the_line(tmp_path):
    (tmp_path / "c.txt").write_bytes(b"first\nsecond \xff line\n")
    with pytest.raises(SeqtuneError, match=r"c.txt:2: not UTF-8 text: byte 0xFF at position 8"):
        read_corpus(tmp_path / "c.txt")


def test_every_task_reads_with_data_encoding(tmp_path, tiny_checkpoint):
    """Tagging (CoNLL), QA (SQuAD JSON) and pretraining corpora follow data.encoding too."""
    tokenizer = load_tokenizer(tiny_checkpoint)
    conll = tmp_path / "ner.txt"
    conll.write_bytes("Café B-LOC\nis O\n\n".encode("latin-1"))
    tagging = task_class("tagging")
    task = tagging(tagging.Options(type="tagging"), DataConfig(encoding="latin-1", token_store=False), tokenizer)
    assert task.read(str(conll), "train")[0].tokens == ["Café", "is"]
    stored = tagging(tagging.Options(type="tagging"), DataConfig(encoding="latin-1"), tokenizer).read(str(conll), "train")
    words = tokenizer.encode_words([["Café", "is"]])[0].ids  # the training file's token store
    assert stored.label_names == ["B-LOC", "O"] and stored.store.record_ids(0).tolist() == words
    squad = tmp_path / "qa.json"
    squad.write_bytes(json.dumps({"data": [{"title": "t", "paragraphs": [{"context": "un café crème", "qas": [
        {"id": "q1", "question": "quoi ?", "answers": [{"text": "café", "answer_start": 3}]}]}]}]},
        ensure_ascii=False).encode("latin-1"))
    qa = task_class("qa")
    assert qa(qa.Options(), DataConfig(encoding="latin-1"), tokenizer).read(str(squad), "train")[0].context == "un café crème"
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes("un café\n".encode("latin-1"))
    mlm = task_class("mlm")
    in_memory = DataConfig(encoding="latin-1", token_store=False)  # a Corpus of records, not a token store
    assert mlm(mlm.Options(), in_memory, tokenizer).read(str(corpus), "train")[0].text == "un café"
    with pytest.raises(SeqtuneError, match="not UTF-8"):
        mlm(mlm.Options(), DataConfig(), tokenizer).read(str(corpus), "train")
