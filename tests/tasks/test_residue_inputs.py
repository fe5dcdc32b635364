"""Per-residue inputs: letter case (soft-masked sequences), the unknown-residue warning, k-mer
vocabularies refused, and data.encoding."""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import pytest
from test_residues import PROTEIN, make_task, record, write_char_checkpoint

from seqtune.config import DataConfig
from seqtune.errors import SeqtuneError
from seqtune.tasks.residues import ResidueOptions, ResidueTask
from seqtune.tokenization import load_tokenizer
from seqtune.vocab_builder import build_char_tokenizer


@pytest.fixture(scope="module")
def protein_checkpoint(tmp_path_factory):
    return write_char_checkpoint(tmp_path_factory.mktemp("protein_bert"), alphabet=PROTEIN)


def test_soft_masked_residues_read_as_the_vocabulary_case(protein_checkpoint, caplog):
    task = make_task(load_tokenizer(protein_checkpoint))
    train = [record("MKVLAG", "CCHHEE"), record("mkvlAG", "CCHHEE", n=2)]
    task.fit(train)
    with caplog.at_level(logging.WARNING, logger="seqtune"):
        ds = task.encode(train, "train")
    assert ds.features[0]["input_ids"] == ds.features[1]["input_ids"]
    assert "unknown_residues" not in ds.info and not caplog.records
    predictions = task.predictions([np.zeros((6, 3), dtype=np.float32) for _ in ds.features], ds)
    assert predictions[1]["sequence"] == "mkvlAG"  # the input as given


def test_case_keep_leaves_lower_case_unknown_and_warns(protein_checkpoint, caplog):
    tokenizer = load_tokenizer(protein_checkpoint)
    task = ResidueTask(ResidueOptions(type="residues"), DataConfig(max_length=64, case="keep"), tokenizer)
    train = [record("MKVLAG", "CCHHEE"), record("mkvlAG", "CCHHEE", n=2)]
    task.fit(train)
    with caplog.at_level(logging.WARNING, logger="seqtune"):
        ds = task.encode(train, "train")
    assert ds.info["unknown_residues"] == {"m": 1, "k": 1, "v": 1, "l": 1}
    (warning,) = caplog.records
    assert warning.message.startswith("train.csv: 33.3% of the input residues (4 of 12) are not in the model's "
                                      "vocabulary and become [UNK]: ")
    assert "'m' x1" in warning.message and "data.case is keep" in warning.message


def test_few_unknown_residues_do_not_warn(protein_checkpoint, caplog):
    task = make_task(load_tokenizer(protein_checkpoint))
    train = [record("MKVLAG" * 10, "CCHHEE" * 10), record("MKXLAG" * 2 + "MKVLAG" * 8, "CCHHEE" * 10, n=2)]
    task.fit(train)
    with caplog.at_level(logging.WARNING, logger="seqtune"):
        ds = task.encode(train, "train")
    assert ds.info["unknown_residues"] == {"X": 2} and not caplog.records  # 2 of 120 residues


def test_a_non_overlapping_kmer_vocabulary_is_refused(tmp_path):
    kmers = build_char_tokenizer(alphabet="ACGT", kmer=3)
    with pytest.raises(SeqtuneError, match=r"non-overlapping k-mers \(tokens of up to 3 characters\), but per-residue "
                                           r"labelling needs one token per residue.*kmer_overlap: true"):
        ResidueTask(ResidueOptions(type="residues"), DataConfig(max_length=64), kmers)
    single = build_char_tokenizer(alphabet="ACGT", kmer=1)
    ResidueTask(ResidueOptions(type="residues"), DataConfig(max_length=64), single)  # fine
    for name, tokenizer in (("single", single), ("kmers", kmers)):  # saved and loaded as a model's tokenizer
        (tmp_path / name).mkdir()
        tokenizer.save(tmp_path / name)
    ResidueTask(ResidueOptions(type="residues"), DataConfig(max_length=64), load_tokenizer(tmp_path / "single"))
    with pytest.raises(SeqtuneError, match="non-overlapping k-mers"):
        ResidueTask(ResidueOptions(type="residues"), DataConfig(max_length=64), load_tokenizer(tmp_path / "kmers"))
    overlapping = build_char_tokenizer(alphabet="ACGT", kmer=3, overlap=True)  # one k-mer per residue: accepted
    ResidueTask(ResidueOptions(type="residues"), DataConfig(max_length=64), overlapping)


def test_residue_files_in_another_encoding(tmp_path, protein_checkpoint):
    (tmp_path / "t.csv").write_bytes("id,sequence,labels\nprot\u00e9ine,MKV,CCH\n".encode("latin-1"))
    options = ResidueOptions(type="residues")
    tokenizer = load_tokenizer(protein_checkpoint)
    data = DataConfig(text_column="sequence", label_column="labels")
    with pytest.raises(SeqtuneError, match=r"t.csv:2: not UTF-8 text: byte 0xE9"):
        ResidueTask(options, data, tokenizer).read(str(tmp_path / "t.csv"), "train")
    latin = DataConfig(text_column="sequence", label_column="labels", encoding="latin-1", token_store=False)
    assert ResidueTask(options, latin, tokenizer).read(str(tmp_path / "t.csv"), "train")[0].id == "prot\u00e9ine"
    stored = ResidueTask(options, replace(latin, token_store=True), tokenizer).read(str(tmp_path / "t.csv"), "train")
    assert stored.store.records == 1 and stored.label_names == ["C", "H"]  # the training file's token store
