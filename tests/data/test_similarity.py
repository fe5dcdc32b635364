"""Leaving near-duplicates of evaluation sequences out of a pretraining corpus."""

from __future__ import annotations

import random

import pytest

from seqtune.config import DataConfig, MaskedLMOptions
from seqtune.data.corpus import read_corpus
from seqtune.data.similarity import NearDuplicateIndex, exclude_similar, kmer_codes
from seqtune.errors import SeqtuneError

AMINO = "ACDEFGHIKLMNPQRSTVWY"


def protein(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(AMINO) for _ in range(n))


def mutate(rng: random.Random, sequence: str, changes: int) -> str:
    chars = list(sequence)
    for i in rng.sample(range(len(chars)), changes):
        chars[i] = rng.choice([a for a in AMINO if a != chars[i]])
    return "".join(chars)


def test_kmer_codes_ignore_case_and_whitespace():
    assert list(kmer_codes("MKVLA")) == list(kmer_codes("m k v l a"))
    assert len(kmer_codes("MKVLAMKVLA")) == 5  # MKVLA KVLAM VLAMK LAMKV AMKVL; MKVLA again is not new
    assert len(kmer_codes("MKV")) == 0


def test_planted_duplicates_are_removed_and_distinct_proteins_kept(tmp_path):
    rng = random.Random(0)
    test_chain = protein(rng, 200)
    references = tmp_path / "test.csv"
    references.write_text(f"id,input\nt1,{test_chain}\nt2,{protein(rng, 150)}\n")
    corpus_file = tmp_path / "corpus.fasta"
    records = {
        "same": test_chain,
        "one_change": mutate(rng, test_chain, 1),  # ~97% of 5-mers shared
        "inside": protein(rng, 100) + test_chain.lower() + protein(rng, 100),  # the chain within a longer one
        "distinct": protein(rng, 200),
        "half": test_chain[:100] + protein(rng, 100),  # half the chain: shares ~50%, kept
        "far": mutate(rng, test_chain, 40),  # 80% identity: most 5-mers differ, kept
    }
    corpus_file.write_text("".join(f">{name}\n{seq}\n" for name, seq in records.items()))
    corpus = read_corpus(corpus_file, "fasta")
    kept, removed = exclude_similar(corpus, [f"{references}#input"])
    assert sorted(r.text for r in kept.records) == sorted(records[n] for n in ("distinct", "half", "far"))
    assert len(removed) == 3 and all(m.shared >= 0.9 for _, m in removed)
    assert all("test.csv" in m.reference for _, m in removed)
    assert kept.info["excluded_similar"] == 3


def test_the_index_prefers_the_most_similar_reference():
    rng = random.Random(1)
    a, b = protein(rng, 120), protein(rng, 120)
    index = NearDuplicateIndex([("a", a), ("b", b)])
    assert index.match(mutate(rng, b, 1)).reference == "b"
    assert index.match(protein(rng, 120)) is None


def test_mlm_training_split_is_filtered_and_a_missing_file_is_a_clear_error(tmp_path, char_tokenizer):
    from seqtune.tasks.mlm import MaskedLMTask

    rng = random.Random(2)
    chain = protein(rng, 80)
    (tmp_path / "test.fasta").write_text(f">t\n{chain}\n")
    (tmp_path / "corpus.fasta").write_text(f">dup\n{chain}\n>other\n{protein(rng, 80)}\n")
    data = DataConfig(exclude_similar_to=[str(tmp_path / "test.fasta")], max_length=64)
    task = MaskedLMTask(MaskedLMOptions(), data, char_tokenizer)
    assert len(task.read(str(tmp_path / "corpus.fasta"), "train")) == 1
    assert len(task.read(str(tmp_path / "corpus.fasta"), "dev")) == 2  # only the pretraining corpus is filtered
    missing = MaskedLMTask(MaskedLMOptions(), DataConfig(exclude_similar_to=[str(tmp_path / "nope.fasta")]),
                           char_tokenizer)
    with pytest.raises(SeqtuneError, match="data.exclude_similar_to: .*nope.fasta"):
        missing.read(str(tmp_path / "corpus.fasta"), "train")


@pytest.fixture()
def char_tokenizer():
    from seqtune.vocab_builder import build_char_tokenizer

    return build_char_tokenizer(alphabet="protein")


def test_reference_paths_in_a_config_are_relative_to_it(tmp_path):
    from seqtune.config import load_config

    config = tmp_path / "c.yaml"
    config.write_text("task: {type: mlm}\ndata: {exclude_similar_to: [ss/valid.csv#input, ss/test.fasta]}\n")
    assert load_config(config).data.exclude_similar_to == [f"{tmp_path}/ss/valid.csv#input", f"{tmp_path}/ss/test.fasta"]
