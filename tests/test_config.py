import pytest

from seqtune.config import load_config
from seqtune.errors import SeqtuneError


def write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_overrides_and_types(tmp_path):
    cfg = load_config(write(tmp_path, "task: {type: classification}\ntrain: {lr: 3e-5}\n"),
                      ["train.epochs=1", "train.batch_size=8", "task.head=mean", "data.text_column=sentence"])
    assert cfg.train.lr == 3e-5 and cfg.train.epochs == 1.0 and cfg.train.batch_size == 8
    assert cfg.task.head == "mean" and cfg.data.text_column == "sentence"
    assert cfg.name == "c"


def test_unknown_key_lists_valid_keys(tmp_path):
    with pytest.raises(SeqtuneError) as e:
        load_config(write(tmp_path, "task: {type: classification}\ntrain: {learning_rate: 1}\n"))
    assert "train.learning_rate" in str(e.value) and "lr" in str(e.value) and "batch_size" in str(e.value)


def test_unknown_task_option_and_type(tmp_path):
    with pytest.raises(SeqtuneError, match="valid keys in task"):
        load_config(write(tmp_path, "task: {type: regression, labels: [a]}\n"))
    with pytest.raises(SeqtuneError, match="valid task types"):
        load_config(write(tmp_path, "task: {type: sentiment}\n"))


def test_wrong_types_are_errors(tmp_path):
    with pytest.raises(SeqtuneError, match="train.batch_size"):
        load_config(write(tmp_path, "task: {type: classification}\n"), ["train.batch_size=many"])
    with pytest.raises(SeqtuneError, match="task.head"):
        load_config(write(tmp_path, "task: {type: classification}\n"), ["task.head=attention"])


def test_text_format_is_a_valid_data_format_for_corpora(tmp_path):
    from seqtune.data.corpus import read_corpus

    cfg = load_config(write(tmp_path, "task: {type: mlm}\n"), ["data.format=text"])
    corpus_file = tmp_path / "corpus.dat"  # an extension that auto-detection cannot place
    corpus_file.write_text("ACDE\n\nFGHI\n")
    assert [r.text for r in read_corpus(corpus_file, cfg.data.format).records] == ["ACDE", "FGHI"]
