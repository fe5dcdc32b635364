"""The test file's format and columns are checked before the first training step, not after training."""

from __future__ import annotations

from conftest import write_sentiment_tsv

from seqtune.cli import main


def test_a_test_file_without_the_text_column_fails_before_training(tmp_path, tiny_checkpoint, capsys, caplog):
    data = write_sentiment_tsv(tmp_path / "train.tsv", n=16)
    test = tmp_path / "test.tsv"
    test.write_text("review\tlabel\nthe film\t1\n")
    code = main(["train", *[x for s in (f"model.path={tiny_checkpoint}", f"data.train={data}", f"data.test={test}",
                                        "task.type=classification", "data.text_column=sentence",
                                        "train.progress=false", f"output_dir={tmp_path / 'runs'}")
                            for x in ("--set", s)]])
    err = capsys.readouterr().err
    assert code == 2 and "sentence" in err and "test.tsv" in err, err
    assert "train: 16 examples" in caplog.text and "training:" not in caplog.text  # read, but no step trained
    assert list((tmp_path / "runs").iterdir()) == []  # and no run directory is left
