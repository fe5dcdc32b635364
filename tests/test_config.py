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


# ---- paths: relative to the config file; --set relative to the working directory ----------------------

def test_paths_in_a_config_file_are_relative_to_it_from_any_directory(tmp_path, monkeypatch):
    (tmp_path / "configs").mkdir()
    (tmp_path / "data").mkdir()
    config = write(tmp_path / "configs", "task: {type: classification}\nmodel: {path: ../bert}\n"
                   "data: {train: ../data/train.tsv, dev: '../data/squad.json#articles=0:2'}\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_config(config)
    assert cfg.data.train == str(tmp_path / "data" / "train.tsv")
    assert cfg.data.dev == str(tmp_path / "data" / "squad.json") + "#articles=0:2"
    assert cfg.model.path == str(tmp_path / "bert")  # absolute, as the run's config.yaml stores it


def test_paths_given_with_set_are_relative_to_the_working_directory(tmp_path, monkeypatch):
    config = write(tmp_path, "task: {type: classification}\n")
    monkeypatch.chdir(tmp_path.parent)
    cfg = load_config(config, ["data.train=mine/train.tsv", "model.path=./bert"])
    assert cfg.data.train == str(tmp_path.parent / "mine" / "train.tsv")
    assert cfg.model.path == str(tmp_path.parent / "bert")


def test_a_hub_id_is_not_turned_into_a_path(tmp_path):
    config = write(tmp_path, "task: {type: classification}\nmodel: {path: sentence-transformers/all-MiniLM-L6-v2}\n")
    assert load_config(config).model.path == "sentence-transformers/all-MiniLM-L6-v2"
    assert load_config(config, ["model.path=bert-base-uncased"]).model.path == "bert-base-uncased"


def test_shipped_configs_load_from_another_directory(tmp_path, monkeypatch):
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(tmp_path)
    for config in sorted((repo / "configs").glob("*.yaml")):
        cfg = load_config(config)
        for path in (cfg.data.train, cfg.data.dev, cfg.data.test):
            if path is not None:
                assert Path(path.partition("#")[0]).is_absolute()
                assert Path(path).parts[:len(repo.parent.parts)] == repo.parent.parts
        if (repo.parent / "shared" / "data").is_dir() and "shared" in (cfg.data.train or ""):
            assert Path(cfg.data.train.partition("#")[0]).is_file(), config.name


def test_a_moved_setting_names_its_new_home(tmp_path):
    for old, new in [("task: {type: qa, max_length: 256}", "data.max_length"),
                     ("task: {type: tagging, tag_column: 1}", "data.tag_column"),
                     ("task: {type: residues, mask_column: m}", "data.mask_column"),
                     ("task: {type: mlm, architecture: {preset: mini}}", "model.architecture")]:
        with pytest.raises(SeqtuneError, match=f"has moved to {new}"):
            load_config(write(tmp_path, old + "\n"))
