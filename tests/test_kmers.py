"""Overlapping k-mer tokens (kmers.py): one k-mer per position with shorter end k-mers, saved and
loaded with the model, read the same by transformers from space-separated k-mers; bad k and short
sequences are clear errors."""

from __future__ import annotations

import json

import pytest

from seqtune.config import load_config
from seqtune.errors import SeqtuneError
from seqtune.kmers import position_kmers, require_whole_kmers, spaced_kmers
from seqtune.tokenization import load_tokenizer
from seqtune.vocab_builder import (
    VocabSpec,
    build_char_tokenizer,
    build_tokenizer,
    same_vocabulary,
)


def tokens(tokenizer, text: str) -> list[str]:
    return tokenizer.backend.encode(text, add_special_tokens=False).tokens


def test_one_kmer_per_position_with_shorter_kmers_at_the_end():
    assert position_kmers("ACGTA", 3) == ["ACG", "CGT", "GTA", "TA", "A"]
    tok = build_char_tokenizer(alphabet="ACGT", kmer=3, overlap=True)
    assert tokens(tok, "ACGTA") == ["ACG", "CGT", "GTA", "TA", "A"]
    enc = tok.backend.encode("ACGTA", add_special_tokens=False)
    assert enc.offsets == [(0, 3), (1, 4), (2, 5), (3, 5), (4, 5)]  # offsets in the original sequence
    # every whitespace-separated sequence ends with its own short k-mers; specials stay whole
    assert tokens(tok, "ACGT TTA") == ["ACG", "CGT", "GT", "T", "TTA", "TA", "A"]
    assert tok.encode_batch(["ACGT"])[0].ids[0] == tok.cls_id
    assert tokens(tok, "AC[MASK]") == ["AC", "C", "[MASK]"]
    # an unknown letter makes each k-mer that holds it [UNK]
    assert tokens(tok, "ACNTA") == ["[UNK]", "[UNK]", "[UNK]", "TA", "A"]
    # the non-overlapping tokenizer of the same k is unchanged
    assert tokens(build_char_tokenizer(alphabet="ACGT", kmer=3), "ACGTA") == ["ACG", "TA"]


def test_saved_and_loaded_with_the_model_and_read_by_transformers(tmp_path):
    tok = build_char_tokenizer(["ACGTTGCA"], alphabet="ACGT", kmer=4, overlap=True, model_max_length=64)
    tok.save(tmp_path)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert config["seqtune_overlapping_kmer"] == 4
    again = load_tokenizer(tmp_path)
    assert again.overlapping_kmer == 4 and same_vocabulary(tok, again)
    sequence = "GATTACAGATTACA"
    assert again.encode_batch([sequence])[0].ids == tok.encode_batch([sequence])[0].ids
    assert len(again.encode_batch([sequence])[0].ids) == len(sequence) + 2
    # tokenizer.json alone reads space-separated k-mers (DNABERT's format) to the same ids
    transformers = pytest.importorskip("transformers")
    hf = transformers.AutoTokenizer.from_pretrained(tmp_path)
    assert hf(spaced_kmers(sequence, 4))["input_ids"] == tok.encode_batch([sequence])[0].ids
    # a non-overlapping vocabulary of the same tokens is a different vocabulary (continued pretraining)
    assert not same_vocabulary(tok, build_char_tokenizer(alphabet="ACGT", kmer=4))


def test_overlapping_kmers_cannot_tokenize_words():
    tok = build_char_tokenizer(alphabet="ACGT", kmer=3, overlap=True)
    with pytest.raises(SeqtuneError, match="overlapping k-mers of a sequence; it cannot tokenize words"):
        tok.encode_words([["ACG", "T"]])


@pytest.mark.parametrize("k", [1, 2, 7, 0])
def test_k_outside_3_to_6_is_an_error(k):
    with pytest.raises(SeqtuneError, match=rf"model.vocab.kmer is {k}, but overlapping k-mers support k from 3 to 6"
                       if k >= 1 else "model.vocab.kmer must be a whole number of at least 1"):
        VocabSpec(kind="char", kmer=k, kmer_overlap=True)
    with pytest.raises(SeqtuneError, match="support k from 3 to 6"):
        build_char_tokenizer(alphabet="ACGT", kmer=7, overlap=True)


def test_kmer_settings_are_checked_when_the_config_is_read(tmp_path):
    ok = load_config(None, ["task.type=mlm", "model.vocab.kmer=6", "model.vocab.kmer_overlap=true"])
    assert ok.model.vocab.kmer == 6 and ok.model.vocab.kmer_overlap
    with pytest.raises(SeqtuneError, match="support k from 3 to 6"):
        load_config(None, ["task.type=mlm", "model.vocab.kmer=8", "model.vocab.kmer_overlap=true"])
    with pytest.raises(SeqtuneError, match="applies to kind 'char' only"):
        load_config(None, ["task.type=mlm", "model.vocab.kind=wordpiece", "model.vocab.kmer=3",
                           "model.vocab.kmer_overlap=true"])
    tok = build_tokenizer(VocabSpec(alphabet="dna", kmer=3, kmer_overlap=True), ["ACGTN"], "corpus")
    assert tok.overlapping_kmer == 3 and tokens(tok, "ACGTN")[-1] == "N"


def test_a_sequence_shorter_than_k_is_an_error_naming_it():
    require_whole_kmers([("ACGTAC", "a.csv:2"), ("ACG TTTTTT", "a.csv:3")], 3)
    with pytest.raises(SeqtuneError, match=r"a.csv:3: the sequence 'AC' has 2 letters, fewer than k = 6"):
        require_whole_kmers([("ACGTAC", "a.csv:2"), ("AC", "a.csv:3")], 6)


def test_a_saved_k_outside_the_range_is_an_error(tmp_path):
    build_char_tokenizer(alphabet="ACGT", kmer=3, overlap=True).save(tmp_path)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({**config, "seqtune_overlapping_kmer": "3"}))
    with pytest.raises(SeqtuneError, match="tokenizer_config.json: seqtune_overlapping_kmer is '3'"):
        load_tokenizer(tmp_path)
