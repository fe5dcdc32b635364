"""seqtune predict streams: records are predicted and written a chunk at a time, with the same results
as predicting the whole file at once; the output file is written atomically."""

from __future__ import annotations

import pytest
from conftest import write_sentiment_tsv

from seqtune import load
from seqtune.cli import main
from seqtune.commands.predict import merge_task_files


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_checkpoint):
    d = tmp_path_factory.mktemp("stream")
    data = write_sentiment_tsv(d / "train.tsv", n=40)
    sets = [f"model.path={tiny_checkpoint}", f"data.train={data}", "task.type=classification",
            "data.text_column=sentence", "train.epochs=2", "train.batch_size=8", "train.lr=3e-3",
            "train.progress=false", f"output_dir={d / 'runs'}"]
    assert main(["train", *[x for s in sets for x in ("--set", s)]]) == 0
    (run,) = (d / "runs").iterdir()
    return run / "model", write_sentiment_tsv(d / "big.tsv", n=53, seed=3)


def test_chunks_give_the_predictions_of_the_whole_file(trained):
    model_dir, data = trained
    model = load(model_dir, device="cpu")
    whole = list(next(model.predict_file_in_chunks(str(data), chunk_records=10_000)))
    counted = []
    chunks = list(model.predict_file_in_chunks(str(data), chunk_records=7, on_count=counted.append))
    assert counted == [53] and [len(c) for c in chunks] == [7] * 7 + [4]
    streamed = [r for c in chunks for r in c]
    assert [r["text"] for r in streamed] == [r["text"] for r in whole]  # input order
    assert [r["label"] for r in streamed] == [r["label"] for r in whole]
    for a, b in zip(streamed, whole):
        # written rounded to 6 decimals: values a hair apart (other batch neighbours) can round 1e-6 apart
        assert a["probabilities"] == pytest.approx(b["probabilities"], abs=2.5e-6)


def test_the_command_writes_every_record_and_no_temporary_file(trained, tmp_path, capsys):
    model_dir, data = trained
    out = tmp_path / "pred.jsonl"
    assert main(["predict", str(model_dir), str(data), "--output", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 53 and "wrote 53 predictions" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["pred.jsonl"]


def test_task_files_are_merged_over_chunks():
    extra: dict = {}
    merge_task_files(extra, {".answers.json": {"a": "x"}})
    merge_task_files(extra, {".answers.json": {"b": "y"}})
    assert extra == {".answers.json": {"a": "x", "b": "y"}}
