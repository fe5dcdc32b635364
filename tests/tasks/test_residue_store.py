"""The per-residue training file in a token store: ids, offsets and labels round-trip exactly, the
features and batches are those of the in-memory path for a fixed seed, a second start reads no file,
a changed file builds a new store, unknown residues are reported as before, damage is an error."""

from __future__ import annotations

import json
import random
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import flip_bit
from test_residues import PROTEIN, generated_proteins, write_char_checkpoint, write_csv

from seqtune.cli import main
from seqtune.config import DataConfig
from seqtune.data.batching import training_batches
from seqtune.errors import SeqtuneError
from seqtune.tasks import residue_store
from seqtune.tasks.residue_store import NOT_SCORED, StoredSequences
from seqtune.tasks.residues import ResidueOptions, ResidueTask
from seqtune.tasks.windows import IGNORE_INDEX
from seqtune.tokenization import load_tokenizer


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return load_tokenizer(write_char_checkpoint(tmp_path_factory.mktemp("char_bert")))


def task_for(tokenizer, store: bool, **options) -> ResidueTask:
    data = DataConfig(max_length=32, text_column="input", label_column="dssp3", mask_column="resolved_mask",
                      token_store=store)
    return ResidueTask(ResidueOptions(type="residues", **options), data, tokenizer)


def rows_with_unknown(seed: int, n: int = 60):
    """Proteins of 5-90 residues (longer ones are windowed at 30), some with X (not in the alphabet)."""
    rows = generated_proteins(random.Random(seed), n, max_len=90)
    return [(i, s[:3] + "X" + s[4:] if k % 7 == 0 else s, lab, m) for k, (i, s, lab, m) in enumerate(rows)]


def encoded(tokenizer, path, store: bool, **options):
    task = task_for(tokenizer, store, **options)
    examples = task.read(str(path), "train")
    task.fit(examples)
    return task, examples, task.encode(examples, "train")


def test_round_trip_ids_offsets_and_labels_exactly(tokenizer, tmp_path):
    rows = rows_with_unknown(0)
    path = write_csv(tmp_path / "train.csv", rows)
    task, stored, _ = encoded(tokenizer, path, store=True)
    assert isinstance(stored, StoredSequences)
    store = stored.store
    memory_task = task_for(tokenizer, False)
    records = memory_task.read(str(path), "train")
    ids, unknown = memory_task.residue_ids(records)
    assert store.ids.dtype == np.uint8
    assert np.asarray(store.offsets).tolist() == np.cumsum([0, *map(len, ids)]).tolist()
    assert np.asarray(store.ids).tolist() == [i for seq in ids for i in seq]
    assert np.asarray(store.numbers).tolist() == list(range(1, len(rows) + 1))
    names = stored.label_names
    expected = [names.index(label) if keep == "1" else NOT_SCORED
                for _, _, labels, mask in rows for label, keep in zip(labels, mask)]
    assert np.asarray(store.labels).tolist() == expected
    assert dict(unknown) == store.meta["unknown"] == {"X": sum(1 for r in rows if "X" in r[1])}


def test_features_and_batches_identical_with_and_without_the_store(tokenizer, tmp_path):
    path = write_csv(tmp_path / "train.csv", rows_with_unknown(1))
    for options in ({}, {"class_weights": "auto", "loss_normalization": "training_mean", "window_stride": 7}):
        a, _, with_store = encoded(tokenizer, path, store=True, **options)
        b, _, without = encoded(tokenizer, path, store=False, **options)
        assert (a.labels, a.class_weights, a.labelled_per_feature) == (b.labels, b.class_weights,
                                                                         b.labelled_per_feature)
        assert with_store.info == without.info and with_store.info["windowed"] > 0
        assert list(with_store.lengths) == without.lengths
        assert [with_store.features[i] for i in range(len(with_store.features))] == without.features
        lengths = list(with_store.lengths)
        batches = training_batches(lengths, 8, 200, np.random.default_rng(3), 5)
        assert batches == training_batches(without.lengths, 8, 200, np.random.default_rng(3), 5)
        for idx in batches:
            x = a.collate([with_store.features[i] for i in idx])
            y = b.collate([without.features[i] for i in idx])
            assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
            assert (x["labels"] != IGNORE_INDEX).any()


def test_second_start_reads_no_file_and_a_changed_file_builds_a_new_store(tokenizer, tmp_path, monkeypatch):
    path = write_csv(tmp_path / "train.csv", rows_with_unknown(2))
    _, first, _ = encoded(tokenizer, path, store=True)

    def no_reading(*args, **kwargs):
        raise AssertionError("the second start read the file again")
    real = residue_store.iter_sequences
    monkeypatch.setattr(residue_store, "iter_sequences", no_reading)
    _, again, _ = encoded(tokenizer, path, store=True)
    assert again.store.directory == first.store.directory
    rows = rows_with_unknown(2)
    rows[0] = (rows[0][0], "MKV", "HHE", "111")
    write_csv(path, rows)
    with pytest.raises(AssertionError, match="read the file again"):
        encoded(tokenizer, path, store=True)
    monkeypatch.setattr(residue_store, "iter_sequences", real)
    _, changed, _ = encoded(tokenizer, path, store=True)
    assert changed.store.directory != first.store.directory
    assert np.asarray(changed.store.ids[:3]).tolist() == [tokenizer.backend.token_to_id(c) for c in "MKV"]


def test_unknown_residues_error_and_warning_as_in_memory(tokenizer, tmp_path, caplog):
    rows = generated_proteins(random.Random(3), 20)
    rows[4] = (rows[4][0], "X" * 30 + rows[4][1][30:], rows[4][2], rows[4][3])  # over 2% of the residues
    path = write_csv(tmp_path / "train.csv", rows)
    with pytest.raises(SeqtuneError) as memory_error:
        encoded(tokenizer, path, store=False, unknown_residues="error")
    with pytest.raises(SeqtuneError) as store_error:
        encoded(tokenizer, path, store=True, unknown_residues="error")
    assert str(store_error.value) == str(memory_error.value) and "record 5" in str(memory_error.value)
    caplog.clear()
    encoded(tokenizer, path, store=False)
    warning = [r.getMessage() for r in caplog.records if "[UNK]" in r.getMessage()]
    for start in ("built", "reused"):
        caplog.clear()
        encoded(tokenizer, path, store=True)
        assert [r.getMessage() for r in caplog.records if "[UNK]" in r.getMessage()] == warning != [], start
    with pytest.raises(SeqtuneError) as reused_error:  # the built store still refuses them under "error"
        encoded(tokenizer, path, store=True, unknown_residues="error")
    assert str(reused_error.value) == str(memory_error.value)


def test_a_damaged_labels_file_is_an_error_naming_the_store(tokenizer, tmp_path):
    path = write_csv(tmp_path / "train.csv", rows_with_unknown(4))
    _, stored, _ = encoded(tokenizer, path, store=True)
    flip_bit(stored.store.directory / "labels.bin", 0)
    with pytest.raises(SeqtuneError, match=r"token store .* is damaged \(labels.bin does not match its checksum\)"):
        encoded(tokenizer, path, store=True)


def test_training_with_and_without_the_store_gives_the_same_run(tmp_path):
    checkpoint = write_char_checkpoint(tmp_path / "bert", alphabet=PROTEIN + "X", max_positions=64)
    rng = random.Random(5)
    train = write_csv(tmp_path / "train.csv", generated_proteins(rng, 24, max_len=70))
    dev = write_csv(tmp_path / "dev.csv", generated_proteins(rng, 10))
    results = []
    for store in ("true", "false"):
        out = tmp_path / f"runs-{store}"
        args = ["train", "--set", "task.type=residues", "--set", f"model.path={checkpoint}"]
        for item in (f"data.train={train}", f"data.dev={dev}", "data.text_column=input", "data.label_column=dssp3",
                     "data.mask_column=resolved_mask", "data.max_length=32", "train.epochs=1", "train.batch_size=8",
                     "train.progress=false", "train.num_threads=1", f"output_dir={out}", f"data.token_store={store}"):
            args += ["--set", item]
        assert main(args) == 0
        (run,) = out.iterdir()
        metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        results.append([(m["train_loss"], m["accuracy"]) for m in metrics])
    assert results[0] == results[1] and len(results[0]) == 1


def test_the_data_config_switch_keeps_records_in_memory(tokenizer, tmp_path):
    path = write_csv(tmp_path / "train.csv", rows_with_unknown(6, n=5))
    task = task_for(tokenizer, True)
    assert isinstance(task.read(str(path), "train"), StoredSequences)
    assert isinstance(task.read(str(path), "dev"), list)  # dev and test stay in memory
    task.data = replace(task.data, token_store=False)
    assert isinstance(task.read(str(path), "train"), list)
