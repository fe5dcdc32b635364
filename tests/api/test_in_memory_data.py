"""The Python API with a pandas DataFrame or a `datasets.Dataset` wherever it takes a file, data.id_column
copied into predictions, and task.label_names in config.json's id2label."""

from __future__ import annotations

import json

import pytest
from conftest import write_sentiment_tsv

import seqtune
from seqtune.errors import SeqtuneError

pd = pytest.importorskip("pandas")
datasets = pytest.importorskip("datasets")

SETTINGS = ["task.type=classification", "data.text_column=sentence", "train.epochs=3", "train.lr=3e-3",
            "train.batch_size=8", "train.progress=false"]


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    root = tmp_path_factory.mktemp("in_memory")
    write_sentiment_tsv(root / "train.tsv", 96, seed=0)
    write_sentiment_tsv(root / "dev.tsv", 32, seed=1)
    train = pd.read_csv(root / "train.tsv", sep="\t")
    dev = pd.read_csv(root / "dev.tsv", sep="\t")
    dev.insert(0, "id", [f"dev-{i}" for i in range(len(dev))])
    dev.to_csv(root / "dev_with_ids.tsv", sep="\t", index=False)
    return root, train, dev


@pytest.fixture(scope="module")
def trained(frames, tiny_checkpoint):
    root, train, dev = frames
    run = seqtune.train(None, [*SETTINGS, f"model.path={tiny_checkpoint}", f"output_dir={root / 'runs'}"],
                        train=train, dev=datasets.Dataset.from_pandas(dev))
    return run


def test_train_evaluate_predict_with_a_dataframe_and_a_dataset(frames, trained):
    root, _, dev = frames
    results = json.loads((trained / "results.json").read_text())
    assert results["dev"]["examples"] == len(dev) and results["dev"]["accuracy"] >= 0.9
    model = seqtune.load(trained / "model", device="cpu")
    from_file = model.evaluate(root / "dev_with_ids.tsv")
    for table in (dev, datasets.Dataset.from_pandas(dev)):
        assert model.evaluate(table) == from_file
    expected = model.predict_file(root / "dev_with_ids.tsv")
    for table in (dev.drop(columns=["label"]), datasets.Dataset.from_pandas(dev)):
        records = model.predict(table)
        assert records == expected
        assert [r["id"] for r in records] == list(dev["id"])  # data.id_column ("id") passes through
        assert [r["text"] for r in records] == list(dev["sentence"])  # rows, never the column names
    assert [r["label"] for r in model.predict(dev["sentence"])] == [r["label"] for r in expected]  # a Series


def test_in_memory_data_errors_are_clear(frames, trained):
    _, _, dev = frames
    model = seqtune.load(trained / "model", device="cpu")
    with pytest.raises(SeqtuneError, match="no column 'sentence'"):
        model.predict(dev.rename(columns={"sentence": "review"}))
    with pytest.raises(SeqtuneError, match=r"<DataFrame predict>\.jsonl:2: empty text"):
        model.predict(pd.DataFrame({"sentence": ["fine", " "]}))
    with pytest.raises(SeqtuneError, match="has no rows"):
        model.predict(dev.iloc[:0])
    with pytest.raises(SeqtuneError, match="not a dict"):
        model.predict({"sentence": "fun"})
    other = seqtune.load(trained / "model", device="cpu", overrides=["data.text_column=review"])
    assert len(other.predict(dev.rename(columns={"sentence": "review"}))) == len(dev)  # other column names


def test_label_names_go_into_id2label(frames, tiny_checkpoint):
    root, train, _ = frames
    settings = [*SETTINGS, "train.epochs=1", f"model.path={tiny_checkpoint}", f"output_dir={root / 'named'}"]
    run = seqtune.train(None, [*settings, "task.label_names={0: negative, 1: positive}"], train=train)
    config = json.loads((run / "model" / "config.json").read_text())
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    assert config["label2id"] == {"negative": 0, "positive": 1}
    assert seqtune.load(run / "model").predict(["fun"])[0]["label"] in ("0", "1")  # seqtune's labels stay
    with pytest.raises(SeqtuneError, match="task.label_names names '2'"):
        seqtune.train(None, [*settings, "task.label_names={2: neutral}"], train=train)
