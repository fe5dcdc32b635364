"""The tagging training file in a token store: ids, offsets, word starts and tags round-trip exactly,
the label map, scheme, class weights, windows, features and batches are those of the in-memory path
for a fixed seed (both label_all_subtokens settings), a second start reads and tokenizes nothing, a
changed file builds a new store, and a bad file fails with the in-memory path's message, keeping nothing."""

from __future__ import annotations

import json
import random
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import flip_bit
from test_tagging import generated_ner, write_conll

from seqtune.cli import main
from seqtune.config import DataConfig
from seqtune.data.batching import training_batches
from seqtune.data.readers.conll import iter_tagged
from seqtune.errors import SeqtuneError
from seqtune.tasks import tagging_store
from seqtune.tasks.tagging import TaggingOptions, TaggingTask
from seqtune.tasks.tagging_store import StoredSentences
from seqtune.tasks.token_metrics import detect_scheme
from seqtune.tasks.windows import IGNORE_INDEX
from seqtune.tokenization import load_tokenizer

EMPTY_WORD = "\u200b"  # a zero-width space: no sub-token at all, so it becomes one [UNK]


@pytest.fixture(scope="module")
def tokenizer(tiny_checkpoint):
    return load_tokenizer(tiny_checkpoint)


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """Each test its own store cache: a store is built or reused only by what the test does."""
    monkeypatch.setenv("SEQTUNE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def sentences(seed: int, n: int = 40, scheme: str = "IOB2") -> list[tuple[list[str], list[str]]]:
    """Generated NER sentences (3-18 words, split words among them: "movies", "actorsy"), one of them
    long (windowed at any small max_length), one with a word that has no sub-token, one with a split
B- word. `scheme`:
    IOB2 as generated, IOB1 (entities start with I-), or none (POS-like tags)."""
    rows = generated_ner(random.Random(seed), n)
    rows[3] = (rows[3][0] * 4, rows[3][1] * 4)
    rows[5] = (rows[5][0] + [EMPTY_WORD], rows[5][1] + ["O"])
    rows[6] = (rows[6][0] + ["goodly", "movies"], rows[6][1] + ["B-MISC", "I-MISC"])  # a B- word split in three
    if scheme == "IOB1":
        rows = [(words, [t.replace("B-", "I-") for t in tags]) for words, tags in rows]
    elif scheme == "none":
        rows = [(words, [{"O": "DT", "B-PER": "NNP", "B-MISC": "JJ", "I-MISC": "NN"}[t] for t in tags])
                for words, tags in rows]
    return rows


def task_for(tokenizer, store: bool, max_length: int = 10, **options) -> TaggingTask:
    return TaggingTask(TaggingOptions(type="tagging", **options),
                       DataConfig(max_length=max_length, token_store=store), tokenizer)


def encoded(tokenizer, path, store: bool, **options):
    task = task_for(tokenizer, store, **options)
    examples = task.read(str(path), "train")
    task.fit(examples)
    return task, examples, task.encode(examples, "train")


def test_round_trip_ids_offsets_word_starts_and_tags_exactly(tokenizer, tmp_path, monkeypatch):
    monkeypatch.setattr(tagging_store, "CHUNK_WORDS", 50)  # several chunks: offsets carry across them
    rows = sentences(0)
    path = write_conll(tmp_path / "train.txt", rows)
    _, stored, _ = encoded(tokenizer, path, store=True)
    assert isinstance(stored, StoredSentences) and len(stored) == len(rows)
    store = stored.store
    memory_task = task_for(tokenizer, False)
    aligned = memory_task.aligned(memory_task.read(str(path), "train"))
    assert store.ids.dtype == np.uint8  # the tiny vocabulary has fewer than 256 tokens
    assert np.asarray(store.ids).tolist() == [i for ids, _, _, _ in aligned for i in ids]
    assert np.asarray(store.offsets).tolist() == np.cumsum([0, *(len(ids) for ids, _, _, _ in aligned)]).tolist()
    assert np.asarray(store.numbers).tolist() == list(range(1, len(rows) + 1))
    marks = [int(t in starts) for ids, _, starts, _ in aligned for t in range(len(ids))]
    assert np.asarray(store.marks).tolist() == marks and 0 in marks  # some words split into sub-tokens
    names = stored.label_names
    assert names == list(dict.fromkeys(t for _, tags in rows for t in tags))  # order of first appearance
    expected = [names.index(tags[w]) for (_, tags), (_, token_word, _, _) in zip(rows, aligned) for w in token_word]
    assert np.asarray(store.labels).tolist() == expected
    assert store.meta["words_without_tokens"] == sum(empty for *_, empty in aligned) == 1
    assert stored.scheme == detect_scheme([tags for _, tags in rows]) == "IOB2"
    assert stored[4].where == "train.txt record 5"


@pytest.mark.parametrize("scheme", ["IOB2", "IOB1", "none"])
@pytest.mark.parametrize("label_all_subtokens", [False, True])
def test_features_and_batches_identical_with_and_without_the_store(tokenizer, tmp_path, scheme,
                                                                   label_all_subtokens):
    path = write_conll(tmp_path / "train.txt", sentences(1, scheme=scheme))
    options = {"label_all_subtokens": label_all_subtokens, "class_weights": "auto",
               "loss_normalization": "training_mean", "window_stride": 3}
    a, _, with_store = encoded(tokenizer, path, store=True, **options)
    b, _, without = encoded(tokenizer, path, store=False, **options)
    assert (a.labels, a.scheme, a.class_weights, a.labelled_per_feature) == (
        b.labels, b.scheme, b.class_weights, b.labelled_per_feature)
    assert a.scheme == scheme
    assert with_store.info == without.info
    assert with_store.info["windowed"] > 0 and with_store.info["words_without_tokens"] == 1
    assert list(with_store.lengths) == without.lengths
    assert list(with_store.example_lengths) == without.example_lengths
    features = [with_store.features[i] for i in range(len(with_store.features))]
    assert features == without.features
    continuation = [label for f in features for label, token in zip(f["labels"], f["input_ids"])
                    if token >= 5 and tokenizer.backend.id_to_token(token).startswith("##")]
    assert continuation and (set(continuation) != {IGNORE_INDEX}) == label_all_subtokens
    batches = training_batches(with_store.lengths, 8, 200, np.random.default_rng(3), 5)
    assert batches == training_batches(without.lengths, 8, 200, np.random.default_rng(3), 5)
    for idx in batches:
        x = a.collate([with_store.features[i] for i in idx])
        y = b.collate([without.features[i] for i in idx])
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def test_a_jsonl_file_and_max_rows_as_in_memory(tokenizer, tmp_path):
    rows = sentences(2)
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps({"tokens": w, "tags": t, "id": i}) + "\n" for i, (w, t) in enumerate(rows)))
    for max_rows in (None, 7):
        results = []
        for store in (True, False):
            task = TaggingTask(TaggingOptions(type="tagging"),
                               DataConfig(max_length=10, max_rows=max_rows, token_store=store), tokenizer)
            examples = task.read(str(path), "train")
            task.fit(examples)
            dataset = task.encode(examples, "train")
            results.append((len(examples), task.labels, dataset.info, list(dataset.features)))
        assert results[0] == results[1]
        assert results[0][0] == (max_rows or len(rows))


def test_second_start_reads_and_tokenizes_nothing_and_a_changed_file_builds_a_new_store(tokenizer, tmp_path,
                                                                                         monkeypatch):
    rows = sentences(3)
    path = write_conll(tmp_path / "train.txt", rows)
    _, first, dataset = encoded(tokenizer, path, store=True)

    def forbidden(*args, **kwargs):
        raise AssertionError("the second start read or tokenized the file again")
    with monkeypatch.context() as patched:
        patched.setattr(tagging_store, "iter_tagged", forbidden)
        patched.setattr(tokenizer, "encode_words", forbidden)
        _, again, reused = encoded(tokenizer, path, store=True)
        assert again.store.directory == first.store.directory
        assert list(reused.features) == list(dataset.features)
        rows[0] = (["good", "movies"], ["B-MISC", "I-MISC"])
        write_conll(path, rows)
        with pytest.raises(AssertionError, match="read or tokenized the file again"):
            encoded(tokenizer, path, store=True)
    _, changed, _ = encoded(tokenizer, path, store=True)
    assert changed.store.directory != first.store.directory
    ids = tokenizer.backend.encode(["good", "movies"], is_pretokenized=True, add_special_tokens=False).ids
    assert np.asarray(changed.store.record_ids(0)).tolist() == ids and len(ids) == 3  # good movie ##s


def test_reading_settings_are_part_of_the_key(tokenizer, tmp_path):
    path = tmp_path / "train.txt"
    path.write_text("EU NNP B-ORG\nrejects VBZ O\n\nGerman JJ B-MISC\n")
    ner = task_for(tokenizer, True)
    pos = TaggingTask(TaggingOptions(type="tagging"), DataConfig(max_length=10, tag_column=1), tokenizer)
    ner_store, pos_store = ner.read(str(path), "train"), pos.read(str(path), "train")
    assert ner_store.label_names == ["B-ORG", "O", "B-MISC"] and ner_store.scheme == "IOB2"
    assert pos_store.label_names == ["NNP", "VBZ", "JJ"] and pos_store.scheme == "none"
    assert ner_store.store.directory != pos_store.store.directory
    jsonl = tmp_path / "train.jsonl"
    jsonl.write_text('{"tokens": ["EU"], "tags": ["B-ORG"], "id": [1]}\n')
    assert len(TaggingTask(TaggingOptions(type="tagging"), DataConfig(id_column="key"), tokenizer).read(
        str(jsonl), "train")) == 1  # ids under another key: "id" is not checked
    with pytest.raises(SeqtuneError, match=r"train.jsonl:1: the record id 'id' must be a string"):
        task_for(tokenizer, True).read(str(jsonl), "train")  # checked as in memory, not the store above


BAD_FILES = {
    "columns.txt": "EU B-ORG\nrejects O\n\nGerman JJ B-MISC\n",  # a line with another column count
    "tag_column.txt": "EU\nrejects\n",  # one column: no tag column
    "empty.txt": "\n-DOCSTART- O\n\n",  # no sentence
    "latin1.txt": "caf\xe9 O\n",  # written in Latin-1 below, read as UTF-8
    "tags.jsonl": '{"tokens": ["EU"], "tags": ["B-ORG"]}\n{"tokens": ["a", "b"], "tags": ["O"]}\n',
    "json.jsonl": '{"tokens": ["EU"], "tags": ["B-ORG"]}\n{"tokens": ["a"\n',
}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_a_bad_file_fails_as_in_memory_and_keeps_nothing(tokenizer, tmp_path, cache, name):
    path = tmp_path / name
    path.write_bytes(BAD_FILES[name].encode("latin-1" if name == "latin1.txt" else "utf-8"))
    with pytest.raises(SeqtuneError) as memory_error:
        encoded(tokenizer, path, store=False)
    with pytest.raises(SeqtuneError) as store_error:
        encoded(tokenizer, path, store=True)
    assert str(store_error.value) == str(memory_error.value) and str(path) in str(memory_error.value)
    assert [p for p in cache.iterdir() if not p.name.endswith(".lock")] == []  # no store, no temporary directory


def test_the_file_is_read_sentence_by_sentence(tmp_path):
    """The store's reader gives each sentence before it reads the next line: the error on line 4
    comes only when the second sentence is asked for."""
    path = tmp_path / "train.txt"
    path.write_text("EU B-ORG\nrejects O\n\nGerman JJ B-MISC\n")
    sentences_read = iter_tagged(str(path))
    assert next(sentences_read).tokens == ["EU", "rejects"]
    with pytest.raises(SeqtuneError, match=r"train.txt:4: found 3 columns but line 1 has 2"):
        next(sentences_read)


def test_a_damaged_marks_file_is_an_error_naming_the_store(tokenizer, tmp_path):
    path = write_conll(tmp_path / "train.txt", sentences(4))
    _, stored, _ = encoded(tokenizer, path, store=True)
    flip_bit(stored.store.directory / "marks.bin", 1)
    with pytest.raises(SeqtuneError, match=r"token store .* is damaged \(marks.bin does not match its checksum\)"):
        encoded(tokenizer, path, store=True)


def test_only_the_training_file_goes_into_a_store(tokenizer, tmp_path):
    path = write_conll(tmp_path / "train.txt", sentences(5, n=8))
    task = task_for(tokenizer, True)
    assert isinstance(task.read(str(path), "train"), StoredSentences)
    assert isinstance(task.read(str(path), "dev"), list)  # dev and test stay in memory
    task.data = replace(task.data, token_store=False)
    assert isinstance(task.read(str(path), "train"), list)


def test_training_with_and_without_the_store_gives_the_same_run(tiny_checkpoint, tmp_path):
    rng = random.Random(6)
    train = write_conll(tmp_path / "train.txt", generated_ner(rng, 24))
    dev = write_conll(tmp_path / "dev.txt", generated_ner(rng, 8))
    results = []
    for store in ("true", "false"):
        out = tmp_path / f"runs-{store}"
        args = ["train", "--set", "task.type=tagging", "--set", f"model.path={tiny_checkpoint}"]
        for item in (f"data.train={train}", f"data.dev={dev}", "data.max_length=8", "train.epochs=1",
                     "train.batch_size=8", "train.progress=false", "train.num_threads=1", f"output_dir={out}",
                     f"data.token_store={store}"):
            args += ["--set", item]
        assert main(args) == 0
        (run,) = out.iterdir()
        metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        results.append([(m["train_loss"], m["f1"]) for m in metrics])
    assert results[0] == results[1] and len(results[0]) == 1
