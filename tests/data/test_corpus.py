"""Reading corpora (text, FASTA, CSV, JSONL) and cutting them into windows without losing tokens."""

from __future__ import annotations

import gzip

import pytest

from seqtune.data.corpus import encode_corpus, read_corpus, window_bounds
from seqtune.errors import SeqtuneError
from seqtune.vocab_builder import build_char_tokenizer, build_wordpiece_tokenizer


def test_fasta_multiline_records_and_gzip(tmp_path):
    text = ">sp|P1 first\nMKTA\nYIAK\n\n>sp|P2\nGGHW\n"
    (tmp_path / "a.fasta").write_text(text)
    with gzip.open(tmp_path / "b.fa.gz", "wt") as f:
        f.write(text)
    for name in ("a.fasta", "b.fa.gz"):
        corpus = read_corpus(tmp_path / name)
        assert [r.text for r in corpus.records] == ["MKTAYIAK", "GGHW"]
        assert "record 2 (>sp|P2, line 5)" in corpus.records[1].where


def test_fasta_errors_name_the_record(tmp_path):
    (tmp_path / "empty_record.fasta").write_text(">a\nMK\n>b\n>c\nGG\n")
    with pytest.raises(SeqtuneError, match=r"record 2 \(>b, line 3\): the record has no sequence"):
        read_corpus(tmp_path / "empty_record.fasta")
    (tmp_path / "headless.fasta").write_text("MKT\n>a\nGG\n")
    with pytest.raises(SeqtuneError, match="headless.fasta:1: sequence data before"):
        read_corpus(tmp_path / "headless.fasta")


def test_empty_corpus_files_are_errors(tmp_path):
    for name, content in (("e.txt", "\n  \n"), ("e.fasta", ""), ("e.csv", "text\n")):
        (tmp_path / name).write_text(content)
        with pytest.raises(SeqtuneError, match="empty"):
            read_corpus(tmp_path / name)


def test_text_lines_skip_and_count_blank_lines(tmp_path):
    (tmp_path / "c.txt").write_text("first line\n\nsecond line\n   \nthird\n")
    corpus = read_corpus(tmp_path / "c.txt")
    assert [r.where for r in corpus.records] == ["c.txt:1", "c.txt:3", "c.txt:5"]
    assert corpus.info == {"blank_lines": 2}


def test_csv_and_jsonl_columns(tmp_path):
    (tmp_path / "c.csv").write_text("id,sequence\n1,ACGT\n2,\"GGCC\"\n")
    assert [r.text for r in read_corpus(tmp_path / "c.csv", column="sequence").records] == ["ACGT", "GGCC"]
    with pytest.raises(SeqtuneError, match="no column 'text'.*'id', 'sequence'"):
        read_corpus(tmp_path / "c.csv")
    (tmp_path / "bad.csv").write_text("id,sequence\n1,ACGT\n2,\n")
    with pytest.raises(SeqtuneError, match="bad.csv:3: the 'sequence' column is empty"):
        read_corpus(tmp_path / "bad.csv", column="sequence")
    (tmp_path / "c.jsonl").write_text('{"text": "hello"}\n{"text": ""}\n')
    with pytest.raises(SeqtuneError, match="c.jsonl:2"):
        read_corpus(tmp_path / "c.jsonl")


def test_window_bounds_cover_every_token_once_with_near_equal_sizes():
    for n in range(1, 60):
        for width in (1, 3, 7, 16):
            bounds = window_bounds(n, width)
            assert bounds[0][0] == 0 and bounds[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
            sizes = [e - s for s, e in bounds]
            assert max(sizes) <= width and max(sizes) - min(sizes) <= 1


def test_window_bounds_prefer_word_boundaries():
    words = [0, 0, 0, 1, 1, 1, 1, 2, 2, 3]
    assert window_bounds(10, 5, words) == [(0, 3), (3, 7), (7, 10)]
    # a word longer than a window is cut inside the word
    assert window_bounds(6, 4, [0] * 6) == [(0, 3), (3, 6)]


def test_long_records_are_chunked_not_truncated(tmp_path):
    seqs = ["ACGT" * 10, "GG", "ACGTA" * 5]  # 40, 2, 25 residues
    (tmp_path / "c.txt").write_text("\n".join(seqs) + "\n")
    corpus = read_corpus(tmp_path / "c.txt")
    tok = build_char_tokenizer(corpus.records)
    features, info = encode_corpus(corpus, tok, max_length=12)
    assert all(len(f["input_ids"]) <= 12 for f in features)
    assert all(f["input_ids"][0] == tok.cls_id and f["input_ids"][-1] == tok.sep_id for f in features)
    rebuilt: dict[int, list[int]] = {}
    for f in features:
        rebuilt.setdefault(f["example_index"], []).extend(f["input_ids"][1:-1])
    for i, s in enumerate(seqs):
        assert tok.backend.decode(rebuilt[i]) == s
    assert info["chunked_records"] == 2 and info["records"] == 3
    assert info["windows"] == 4 + 1 + 3


def test_concatenate_packing_fills_windows_and_separates_records(tmp_path):
    (tmp_path / "c.txt").write_text("AC\nGT\nAAAA\nC\n")
    corpus = read_corpus(tmp_path / "c.txt")
    tok = build_char_tokenizer(corpus.records)
    features, _ = encode_corpus(corpus, tok, max_length=6, packing="concatenate")
    inner = [t for f in features for t in f["input_ids"][1:-1]]
    assert tok.backend.decode(inner, skip_special_tokens=False).replace(" ", "") == "AC[SEP]GT[SEP]AAAA[SEP]C"
    assert all(len(f["input_ids"]) == 6 for f in features[:-1])


def test_characters_missing_from_a_char_vocabulary_are_an_error(tmp_path):
    (tmp_path / "c.fasta").write_text(">a\nACGT\n>b\nACNGT\n")
    tok = build_char_tokenizer(alphabet="ACGT")
    with pytest.raises(SeqtuneError, match=r"record 2 \(>b, line 3\): characters 'N' are not in the model's vocabulary"):
        encode_corpus(read_corpus(tmp_path / "c.fasta"), tok, 16)


def test_wordpiece_word_ids_are_local_to_each_window(tmp_path):
    lines = ["the helix packs against the sheet"] * 4
    (tmp_path / "t.txt").write_text("\n".join(lines) + "\n")
    corpus = read_corpus(tmp_path / "t.txt")
    tok = build_wordpiece_tokenizer(corpus.records, vocab_size=60)
    features, _ = encode_corpus(corpus, tok, max_length=10, packing="concatenate", with_word_ids=True)
    for f in features:
        words = [w for w in f["word_ids"] if w >= 0]
        assert words == sorted(words) and words[0] == 0
        assert f["word_ids"][0] == -1 and f["word_ids"][-1] == -1


@pytest.mark.slow
def test_shared_protein_corpus_reads_completely(shared_data):
    corpus = read_corpus(shared_data / "protein_unlabeled" / "proteins_ecoli_yeast.fasta")
    assert len(corpus.records) == 10_003
    assert sum(len(r.text) for r in corpus.records) == 3_182_061
