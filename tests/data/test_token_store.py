"""Token stores: exact round trips, the same windows/masks/batches as in-memory encoding, rebuilds
when an input changes, and safety (killed builds, concurrent builders, damaged files, full disks)."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from seqtune.config import DataConfig, MaskedLMOptions
from seqtune.data import token_store
from seqtune.data.batching import training_batches
from seqtune.data.corpus import encode_corpus, iter_corpus, read_corpus
from seqtune.data.token_store import StoreSpec, StoreWindows, TokenStore, open_store
from seqtune.errors import SeqtuneError
from seqtune.tasks.mlm import MaskedLMTask
from seqtune.vocab_builder import build_char_tokenizer, build_wordpiece_tokenizer

SRC = Path(__file__).resolve().parents[2] / "src"


def protein_fasta(path: Path, n: int = 60, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    letters = np.array(list("ACDEFGHIKLMNPQRSTVWY"))
    with open(path, "w") as f:
        f.writelines(f">p{i} protein {i}\n{''.join(rng.choice(letters, size=int(rng.integers(5, 90))))}\n"
                     for i in range(n))
    return path


def text_lines(path: Path, n: int = 80, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    words = ["the", "protein", "folds", "into", "a", "helix", "and", "strand", "unfoldable", "misfolding",
             "binds", "ligands"]
    lines = [" ".join(rng.choice(words, size=int(rng.integers(1, 40)))) for _ in range(n)]
    lines.insert(5, "")  # a blank line: skipped and counted
    path.write_text("\n".join(lines) + "\n")
    return path


def build(path: Path, tokenizer, root: Path, log=None) -> TokenStore:
    def records(info):
        yield from iter_corpus(path, info=info)
    return open_store(StoreSpec(path, {}, []), tokenizer, records, root, log or (lambda m: None))


@pytest.fixture
def char_tok():
    return build_char_tokenizer(alphabet="protein")


@pytest.fixture
def word_tok(tmp_path):
    corpus = read_corpus(text_lines(tmp_path / "train_vocab.txt", 40, seed=9))
    return build_wordpiece_tokenizer([r.text for r in corpus.records], vocab_size=60, lowercase=True)


def test_round_trip_ids_offsets_numbers(tmp_path, char_tok, word_tok):
    for path, tok in ((protein_fasta(tmp_path / "p.fasta"), char_tok), (text_lines(tmp_path / "t.txt"), word_tok)):
        store = build(path, tok, tmp_path / "cache")
        corpus = read_corpus(path)
        encodings = tok.backend.encode_batch([r.text for r in corpus.records], add_special_tokens=False)
        assert store.records == len(corpus.records)
        assert store.ids.dtype == np.uint8  # a 30- or 60-token vocabulary fits a byte
        for r, enc in enumerate(encodings):
            assert store.record_ids(r).tolist() == enc.ids
            if store.marks is not None:
                marks = store.marks[store.offsets[r]:store.offsets[r + 1]].tolist()
                assert marks == token_store.word_marks(enc.word_ids)
        assert store.offsets[-1] == sum(len(e.ids) for e in encodings)
        assert store.meta["info"] == corpus.info  # blank lines counted as read_corpus does
        assert store.numbers.tolist() == list(range(1, len(corpus.records) + 1))


def test_narrowest_dtype():
    assert token_store.narrowest_dtype(256) == np.uint8
    assert token_store.narrowest_dtype(257) == np.uint16
    assert token_store.narrowest_dtype(30522) == np.uint16
    assert token_store.narrowest_dtype(250002) == np.uint32


@pytest.mark.parametrize("packing", ["lines", "concatenate"])
@pytest.mark.parametrize("max_length", [3, 7, 16, 200])
def test_windows_are_those_of_encode_corpus(tmp_path, char_tok, word_tok, packing, max_length):
    cases = ((protein_fasta(tmp_path / "p.fasta"), char_tok, False),
             (text_lines(tmp_path / "t.txt"), word_tok, True),
             (text_lines(tmp_path / "t.txt"), word_tok, False))
    for path, tok, words in cases:
        store = build(path, tok, tmp_path / "cache")
        expected, info = encode_corpus(read_corpus(path), tok, max_length, packing, with_word_ids=words)
        windows = StoreWindows(store, packing, max_length, tok.cls_id, tok.sep_id, words)
        assert list(windows) == expected
        assert windows.lengths.tolist() == [len(f["input_ids"]) for f in expected]
        assert windows.info["chunked_records"] == info["chunked_records"]
        # the index is cached beside the store and read back the same
        again = StoreWindows(TokenStore(store.directory), packing, max_length, tok.cls_id, tok.sep_id, words)
        assert list(again) == expected


def _mlm_task(tok, packing, token_store_on):
    data = DataConfig(max_length=24, token_store=token_store_on)
    return MaskedLMTask(MaskedLMOptions(packing=packing, mask_seed=5), data, tok)


@pytest.mark.parametrize("packing", ["lines", "concatenate"])
def test_mlm_masks_and_batches_identical_with_and_without_the_store(tmp_path, char_tok, word_tok, packing):
    for path, tok in ((protein_fasta(tmp_path / "p.fasta"), char_tok), (text_lines(tmp_path / "t.txt"), word_tok)):
        outputs = []
        for on in (True, False):
            task = _mlm_task(tok, packing, on)
            dataset = task.encode(task.read(str(path), "train"), "train")
            assert (type(dataset.features).__name__ == "StoreWindows") == on
            batches = training_batches(dataset.lengths, None, 200, np.random.default_rng(7), 3)
            collated = [task.collate([dataset.features[i] for i in b]) for b in batches]
            outputs.append((len(dataset.examples), dataset.info, list(batches), collated))
        (n1, info1, b1, c1), (n2, info2, b2, c2) = outputs
        assert (n1, info1, b1) == (n2, info2, b2)
        assert len(c1) == len(c2) and len(c1) > 3
        for x, y in zip(c1, c2):
            assert x.keys() == y.keys()
            for key in x:
                assert torch.equal(x[key], y[key]), key


def test_same_inputs_reuse_changed_file_or_tokenizer_rebuilds(tmp_path, char_tok):
    path = protein_fasta(tmp_path / "p.fasta")
    root = tmp_path / "cache"
    first = build(path, char_tok, root)
    calls = []

    def records(info):
        calls.append(1)
        yield from iter_corpus(path, info=info)
    spec = StoreSpec(path, {}, [])
    assert open_store(spec, char_tok, records, root).directory == first.directory
    assert not calls  # reused: the corpus was not read again
    protein_fasta(path, seed=1)  # same name, other content
    changed = build(path, char_tok, root)
    assert changed.directory != first.directory
    assert changed.record_ids(0).tolist() != first.record_ids(0).tolist()
    other_tok = build_char_tokenizer(alphabet="YWVTSRQPNMLKIHGFEDCA")  # other ids for the same letters
    retokenized = build(path, other_tok, root)
    assert retokenized.directory not in (first.directory, changed.directory)
    assert retokenized.ids.tolist() != changed.ids.tolist()


def test_damaged_stores_are_refused_not_used(tmp_path, char_tok):
    path = protein_fasta(tmp_path / "p.fasta")
    store = build(path, char_tok, tmp_path / "cache")
    ids = store.directory / "ids.bin"
    data = bytearray(ids.read_bytes())
    data[10] ^= 1  # one flipped bit: same size
    del store
    ids.write_bytes(bytes(data))
    with pytest.raises(SeqtuneError, match=r"token store .* is damaged \(ids.bin does not match its checksum\).*Delete"):
        build(path, char_tok, tmp_path / "cache")
    ids.write_bytes(bytes(data[:-3]))
    with pytest.raises(SeqtuneError, match="ids.bin holds"):
        build(path, char_tok, tmp_path / "cache")
    ids.write_bytes(bytes(data[:10]) + bytes([data[10] ^ 1]) + bytes(data[11:]))  # repaired
    store = build(path, char_tok, tmp_path / "cache")
    StoreWindows(store, "lines", 16, char_tok.cls_id, char_tok.sep_id)
    index = store.directory / "windows-lines-16.bin"
    rows = bytearray(index.read_bytes())
    rows[8] ^= 1  # a window length changed
    index.write_bytes(bytes(rows))
    with pytest.raises(SeqtuneError, match="windows-lines-16.bin does not match"):
        StoreWindows(store, "lines", 16, char_tok.cls_id, char_tok.sep_id)
    (store_dir := ids.parent / "meta.json").write_text("{not json")
    with pytest.raises(SeqtuneError, match="meta.json cannot be read"):
        TokenStore(store_dir.parent)


def test_unwritable_cache_is_a_clear_error(tmp_path, char_tok):
    path = protein_fasta(tmp_path / "p.fasta")
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(SeqtuneError, match="cannot write the token store in .*a_file.*SEQTUNE_CACHE"):
        build(path, char_tok, blocker / "cache")


def test_disk_full_while_building_leaves_nothing(tmp_path, char_tok, monkeypatch):
    path = protein_fasta(tmp_path / "p.fasta", n=400)
    root = tmp_path / "cache"
    monkeypatch.setattr(token_store, "CHUNK_CHARACTERS", 500)
    real = token_store._chunks

    def filling(records):
        for i, item in enumerate(real(records)):
            if i == 3:
                raise OSError(errno.ENOSPC, "No space left on device")
            yield item
    monkeypatch.setattr(token_store, "_chunks", filling)
    with pytest.raises(SeqtuneError, match="the disk is full.*Nothing was kept"):
        build(path, char_tok, root)
    assert [p.name for p in root.iterdir() if not p.name.endswith(".lock")] == []
    monkeypatch.setattr(token_store, "_chunks", real)
    assert build(path, char_tok, root).records == 400  # space again: built


def test_unknown_character_error_leaves_no_store(tmp_path):
    tok = build_char_tokenizer(alphabet="ACGT")
    path = tmp_path / "dna.fasta"
    path.write_text(">a\nACGT\n>b\nACNGT\n")
    with pytest.raises(SeqtuneError, match=r"record 2 \(>b, line 3\): characters 'N' are not in the model's vocabulary"):
        build(path, tok, tmp_path / "cache")
    assert [p.name for p in (tmp_path / "cache").iterdir() if not p.name.endswith(".lock")] == []


BUILDER = """
import sys, time
from pathlib import Path
from seqtune.data import token_store
from seqtune.data.corpus import iter_corpus
from seqtune.vocab_builder import build_char_tokenizer
path, root, mode = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
token_store.CHUNK_CHARACTERS = 200
def records(info):
    for i, record in enumerate(iter_corpus(path, info=info)):
        if mode == "hang" and i == 100:
            Path(sys.argv[4]).write_text("started")
            time.sleep(600)
        if mode == "slow":
            time.sleep(0.002)
        yield record
start = float(sys.argv[4]) if mode == "slow" else 0
while time.time() < start:
    time.sleep(0.001)
store = token_store.open_store(token_store.StoreSpec(path, {}, []), build_char_tokenizer(alphabet="protein"),
                               records, root, print)
print("RESULT", store.directory, store.records)
"""


def _builder(*args):
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.Popen([sys.executable, "-c", BUILDER, *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_killed_build_is_detected_and_rebuilt(tmp_path, char_tok):
    path = protein_fasta(tmp_path / "p.fasta", n=300)
    root = tmp_path / "cache"
    flag = tmp_path / "started"
    proc = _builder(path, root, "hang", flag)
    deadline = time.time() + 60
    while not flag.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert flag.exists(), proc.communicate()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    leftovers = [p for p in root.iterdir() if p.name.startswith(".tmp-")]
    assert leftovers and any(f.stat().st_size for f in leftovers[0].iterdir())  # killed half-way
    assert not [p for p in root.iterdir() if not p.name.startswith(".") and not p.name.endswith(".lock")]
    messages = []
    store = build(path, char_tok, root, messages.append)
    assert store.records == 300
    assert any("did not finish" in m for m in messages)
    assert not [p for p in root.iterdir() if p.name.startswith(".tmp-")]


def test_two_builders_at_once_give_one_complete_store(tmp_path, char_tok):
    path = protein_fasta(tmp_path / "p.fasta", n=300)
    root = tmp_path / "cache"
    start = time.time() + 3  # both start building at the same moment
    procs = [_builder(path, root, "slow", start) for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    results = [line for out, _ in outputs for line in out.splitlines() if line.startswith("RESULT")]
    assert len(set(results)) == 1 and results[0].endswith(" 300")
    logs = " ".join(out for out, _ in outputs)
    assert logs.count("token store: built") == 1  # one built it, the other waited and read it
    store = TokenStore(Path(results[0].split()[1]))
    expected = char_tok.backend.encode_batch([r.text for r in read_corpus(path).records], add_special_tokens=False)
    assert store.ids.tolist() == [i for e in expected for i in e.ids]
    assert json.loads((store.directory / "meta.json").read_text())["records"] == 300


def test_character_table_gives_the_tokenizers_ids(tmp_path):
    """The look-up-table path for character vocabularies matches the tokenizer, lower-casing included;
    chunks with anything else (spaces, unknown letters) go through the tokenizer."""
    rng = np.random.default_rng(3)
    texts = ["".join(rng.choice(list("acgtACGT"), size=int(rng.integers(1, 50)))) for _ in range(50)]
    for tok in (build_char_tokenizer(alphabet="acgt", lowercase=True), build_char_tokenizer(alphabet="ACGTacgt"),
                build_char_tokenizer(alphabet="ACGTacgt", family="esm", vocab_size=16)):  # <cls> ... <null_N>
        table = token_store.char_table(tok)
        assert table is not None
        ids, lengths = token_store._by_table(table, texts)
        expected = tok.backend.encode_batch(texts, add_special_tokens=False)
        assert ids.tolist() == [i for e in expected for i in e.ids]
        assert lengths.tolist() == [len(e.ids) for e in expected]
        assert token_store._by_table(table, ["ACGT", "AC GT"]) is None
        assert token_store._by_table(table, ["ACGTN"]) is None
        assert token_store._by_table(table, ["ACGTé"]) is None
    assert token_store.char_table(build_char_tokenizer(alphabet="ACGT", kmer=3)) is None


def test_left_out_records_same_with_and_without_the_store(tmp_path, char_tok, caplog):
    """data.exclude_similar_to filters records while the store is built (and is part of its key)."""
    caplog.set_level("INFO", logger="seqtune")
    path = protein_fasta(tmp_path / "p.fasta", n=40)
    corpus = read_corpus(path)
    reference = tmp_path / "ref.fasta"
    reference.write_text(f">r1\n{corpus.records[3].text}\n>r2\n{corpus.records[17].text}\n")
    datasets = []
    for on in (True, False):
        data = DataConfig(max_length=24, token_store=on, exclude_similar_to=[str(reference)])
        task = MaskedLMTask(MaskedLMOptions(mask_seed=5), data, char_tok)
        datasets.append(task.encode(task.read(str(path), "train"), "train"))
    stored, in_memory = datasets
    assert list(stored.features) == in_memory.features
    assert stored.info == in_memory.info and stored.info["excluded_similar"] >= 2
    assert stored.examples[3].where == "p.fasta record 5"  # record 4 was left out: numbers kept
    assert "left out" in caplog.text
    # without the exclusion: another store (the key includes the compared files)
    task = MaskedLMTask(MaskedLMOptions(), DataConfig(max_length=24), char_tok)
    assert task.read(str(path), "train").store.directory != stored.examples.store.directory
