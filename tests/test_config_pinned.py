"""The config reader pinned exactly: documented defaults, `--set` parsing (values containing `=`, YAML
types, float spellings), which paths are resolved against what, range texts and error messages,
and a YAML round trip of the resolved config."""

from __future__ import annotations

import dataclasses
import math
import os
import re
from pathlib import Path
from typing import Annotated, Literal

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from seqtune.config import (
    DEVICE,
    RUN_NAME,
    DataConfig,
    MaskedLMOptions,
    Matches,
    OutOfRange,
    QuestionAnsweringOptions,
    Range,
    RunConfig,
    StrategyConfig,
    TaggingOptions,
    TextEncoding,
    TrainConfig,
    _fix_float_strings,
    _type_name,
    absolute_path,
    apply_overrides,
    build_dataclass,
    coerce,
    config_from_dict,
    config_to_yaml,
    load_config,
    parse_override,
    read_config_file,
    safe_run_name,
)
from seqtune.errors import SeqtuneError


# ---- documented defaults ----------------------------------------------------------------------------
def test_train_defaults_are_the_documented_ones():
    """README "Configuration" and BENCHMARKS rows are measured with these; changing one changes every
    run that does not set it, so a change must be deliberate (and documented)."""
    assert dataclasses.asdict(TrainConfig()) == {
        "epochs": 3.0, "batch_size": 32, "max_tokens": None, "length_buckets": 50, "lr": 5e-5,
        "weight_decay": 0.01, "warmup_ratio": 0.0, "warmup_steps": 0, "schedule": "linear",
        "max_grad_norm": 1.0, "grad_accum_steps": 1, "adam_beta1": 0.9, "adam_beta2": 0.999,
        "adam_eps": 1e-8, "seed": 42, "eval_every_steps": None, "eval_batch_tokens": None, "metric": None,
        "early_stopping_patience": None, "device": "auto", "precision": "auto", "num_threads": None,
        "progress": True, "log_to": None, "gradient_checkpointing": False, "malloc_mmap_threshold": None,
        "compile": False, "checkpoint_every_steps": None, "keep_checkpoints": 2,
    }


def test_data_defaults_are_the_documented_ones():
    """README: utf-8 files with a header row, columns `text`/`label`, CoNLL word first and tag last,
    case auto, long sequence inputs truncated, max_length chosen by the task."""
    assert dataclasses.asdict(DataConfig()) == {
        "train": None, "dev": None, "test": None, "format": "auto", "header": True, "encoding": "utf-8",
        "text_column": "text", "text_pair_column": None, "label_column": "label", "token_column": 0,
        "tag_column": -1, "tokens_key": "tokens", "tags_key": "tags", "mask_column": None, "id_column": "id",
        "max_length": None, "max_rows": None, "case": "auto", "long_inputs": "truncate", "labels_file": None,
        "exclude_similar_to": None, "token_store": True,
    }


def test_strategy_and_task_defaults_are_the_documented_ones():
    """README: full fine-tuning by default; tagging decodes with Viterbi over the detected scheme; QA
    uses Hugging Face's run_qa defaults (stride 128, answers of at most 30 tokens, 20 candidates); MLM
    masks BERT's 15% / 80-10-10 with whole words."""
    s = StrategyConfig()
    assert (s.top_layers, s.freeze_layers, s.reinit_layers, s.layer_lr_decay, s.head_lr) == (None, None, 0, 1.0, None)
    assert (s.train_pooler, s.reinit_pooler, s.bias_correction, s.cache_frozen) == (True, False, True, "auto")
    assert (s.cache_dtype, s.cache_memory_mb) == ("fp32", 2048)
    t = TaggingOptions()
    assert (t.scheme, t.decode, t.head, t.conv_kernel, t.conv_layers, t.label_all_subtokens) == (
        "auto", "viterbi", "linear", 7, 1, False)
    assert (t.window_stride, t.loss_normalization, t.head_activation) == (None, "batch", "gelu")
    q = QuestionAnsweringOptions()
    assert (q.doc_stride, q.max_answer_length, q.n_best, q.null_score_diff_threshold, q.max_windows) == (
        128, 30, 20, 0.0, 64)
    m = MaskedLMOptions()
    assert (m.mask_probability, m.mask_fraction, m.random_fraction, m.whole_word_mask, m.mask_seed) == (
        0.15, 0.8, 0.1, True, 0)
    assert RunConfig().output_dir == "runs" and RunConfig().name is None


# ---- --set parsing ----------------------------------------------------------------------------------
@pytest.mark.parametrize("text, keys, value", [
    ("train.lr=3e-5", ["train", "lr"], 3e-5),  # YAML 1.1 reads 3e-5 as a string
    ("train.lr=1E-4", ["train", "lr"], 1e-4),
    ("train.lr=.5", ["train", "lr"], 0.5),
    ("train.batch_size=16", ["train", "batch_size"], 16),
    ("train.progress=false", ["train", "progress"], False),
    ("data.max_rows=null", ["data", "max_rows"], None),
    ("data.max_rows=", ["data", "max_rows"], None),
    ("data.train=a=b.csv", ["data", "train"], "a=b.csv"),  # only the first = splits
    ("data.train=squad.json#articles=0:32", ["data", "train"], "squad.json#articles=0:32"),
    ("task.labels=[neg, pos]", ["task", "labels"], ["neg", "pos"]),
    ("task.class_weights={a: 2}", ["task", "class_weights"], {"a": 2}),
    (" train.lr =0.1", ["train", "lr"], 0.1),  # spaces around the key
    ("name=run.1", ["name"], "run.1"),  # a dot that is no float stays text
    ("name=e", ["name"], "e"),
    ("name=nan", ["name"], "nan"),  # words that float() would read stay text
    ("name=Infinity", ["name"], "Infinity"),
    ("data.text_column=[unclosed", ["data", "text_column"], "[unclosed"),  # not YAML: the text as written
    ("x==", ["x"], "="),
])
def test_parse_override(text, keys, value):
    assert parse_override(text) == (keys, value)


def test_override_without_equals_is_an_error():
    with pytest.raises(SeqtuneError, match=r"--set 'train\.lr': expected key=value, e\.g\. train\.lr=3e-5\."):
        parse_override("train.lr")


scalars = st.one_of(
    st.integers(-10**6, 10**6), st.booleans(), st.none(),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")).filter(lambda c: c not in ".eE"),
            max_size=20),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(["data", "train", "task", "x_1"]), min_size=1, max_size=3), scalars)
def test_any_value_round_trips_through_set(keys, value):
    """A value written as YAML (with `=` and `:` and quotes as they come) is read back as that value."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6).removesuffix("\n").removesuffix("\n...")
    parsed_keys, parsed = parse_override(".".join(keys) + "=" + text)
    assert parsed_keys == keys
    if isinstance(value, float):
        assert parsed == pytest.approx(value)
    else:
        assert parsed == value


def test_apply_overrides_builds_sections_and_keeps_the_rest():
    raw = {"train": {"lr": 1.0, "epochs": 2}, "model": None}
    out = apply_overrides(raw, ["train.lr=0.5", "model.vocab.path=v.txt", "data.train=t=1.csv", "name=x"])
    assert out == {"train": {"lr": 0.5, "epochs": 2}, "model": {"vocab": {"path": "v.txt"}},
                   "data": {"train": "t=1.csv"}, "name": "x"}
    assert apply_overrides({"a": 1}, []) == {"a": 1}


def test_apply_overrides_refuses_a_value_used_as_a_section():
    with pytest.raises(SeqtuneError, match=r"--set 'train\.lr\.x=2': lr is not a section\."):
        apply_overrides({"train": {"lr": 1.0}}, ["train.lr.x=2"])


def test_float_strings_become_floats_everywhere():
    raw = {"a": "3e-5", "b": ["1E3", "abc", "e5", "1e"], "c": {"d": "-1e-3", "e": "+2e2", "f": ".5e1"},
           "g": "name-e", "h": "", "i": 7, "j": "5"}
    assert _fix_float_strings(raw) == {"a": 3e-5, "b": [1000.0, "abc", "e5", "1e"],
                                       "c": {"d": -1e-3, "e": 200.0, "f": 5.0}, "g": "name-e", "h": "", "i": 7,
                                       "j": "5"}


# ---- paths ------------------------------------------------------------------------------------------------
def write_config(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_paths_in_a_file_are_relative_to_it_and_set_paths_to_the_working_directory(tmp_path, monkeypatch):
    config = write_config(tmp_path / "configs" / "run.yaml",
                          "task: {type: classification}\n"
                          "data: {train: ../data/t.csv, dev: /abs/d.csv, test: 'x/../q.csv#articles=0:2', format: csv,"
                          " exclude_similar_to: [a.fa, /b.fa, '']}\n"
                          "output_dir: out\nmodel: {vocab: {path: v.txt}}\n")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    cfg = load_config(config, ["data.labels_file=labels.tsv"])
    base = tmp_path / "configs"
    assert cfg.data.train == str(tmp_path / "data" / "t.csv")  # normalised, no ".."
    assert cfg.data.dev == "/abs/d.csv"
    assert cfg.data.test == str(base / "q.csv") + "#articles=0:2"  # the selector is kept
    assert cfg.data.exclude_similar_to == [str(base / "a.fa"), "/b.fa", ""]
    assert cfg.output_dir == str(base / "out")
    assert cfg.model.vocab.path == str(base / "v.txt")
    assert cfg.data.labels_file == str(work / "labels.tsv")  # --set: the working directory
    assert cfg.data.format == "csv" and cfg.name == "run"


def test_set_paths_replace_file_paths_relative_to_the_working_directory(tmp_path, monkeypatch):
    config = write_config(tmp_path / "c" / "run.yaml", "task: {type: classification}\ndata: {train: t.csv}\n")
    monkeypatch.chdir(tmp_path)
    assert load_config(config, ["data.train=u.csv"]).data.train == str(tmp_path / "u.csv")
    assert load_config(config).data.train == str(tmp_path / "c" / "t.csv")


def test_absolute_path_rules(tmp_path):
    home = str(Path("~").expanduser())
    assert absolute_path("~/x.csv", tmp_path, ("data", "train")) == os.path.join(home, "x.csv")
    assert absolute_path("a/./b.csv", tmp_path, ("data", "train")) == str(tmp_path / "a" / "b.csv")
    # a model.path that names nothing under base but looks like a hub id stays as it is
    assert absolute_path("org/model-1", tmp_path, ("model", "path")) == "org/model-1"
    assert absolute_path("org/model-1", tmp_path, ("data", "train")) == str(tmp_path / "org" / "model-1")
    (tmp_path / "local").mkdir()
    assert absolute_path("local", tmp_path, ("model", "path")) == str(tmp_path / "local")
    assert absolute_path("../x y", tmp_path, ("model", "path")) == str(tmp_path.parent / "x y")
    # the selector after "#" is kept as written, not normalised as a path
    assert absolute_path("d/q.json#a/../b", tmp_path, ("data", "dev")) == str(tmp_path / "d" / "q.json") + "#a/../b"


def test_read_config_file_errors(tmp_path):
    with pytest.raises(SeqtuneError, match=r"^config file '.*missing\.yaml' does not exist\.$"):
        read_config_file(tmp_path / "missing.yaml")
    with pytest.raises(SeqtuneError, match="is not valid YAML"):
        read_config_file(write_config(tmp_path / "bad.yaml", "task: [\n"))
    with pytest.raises(SeqtuneError, match="expected a mapping of sections"):
        read_config_file(write_config(tmp_path / "list.yaml", "- a\n"))
    assert read_config_file(write_config(tmp_path / "empty.yaml", "")) == {}
    bom = tmp_path / "bom.yaml"
    bom.write_bytes(b"\xef\xbb\xbftask: {type: regression}\n")
    assert read_config_file(bom) == {"task": {"type": "regression"}}


def test_run_name_from_the_file_or_the_config(tmp_path):
    config = write_config(tmp_path / "my run!.yaml", "task: {type: regression}\n")
    assert load_config(config).name == "my-run"
    assert load_config(config, ["name=chosen"]).name == "chosen"
    assert load_config(None, ["task.type=regression"]).name is None


@pytest.mark.parametrize("text, name", [("my run/1", "my-run-1"), ("..x", "x"), ("---", None), ("a--", "a"),
                                        ("My Run", "My-Run"), ("Xa-X", "Xa-X"), (".-X.", "X."),
                                        ("x" * 300, "x" * 200), ("ok_name.v2", "ok_name.v2"), ("", None)])
def test_safe_run_name(text, name):
    assert safe_run_name(text) == name


# ---- validation ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("declared, text", [
    (Range(ge=1), ">= 1"), (Range(gt=0), "> 0"), (Range(le=5), "<= 5"), (Range(lt=2.5), "< 2.5"),
    (Range(ge=0, lt=1), "in [0, 1)"), (Range(gt=0, le=1), "in (0, 1]"), (Range(), "a finite number"),
    (Range(ge=0.5, le=2**32 - 1), "in [0.5, 4294967295]"),
])
def test_range_texts(declared, text):
    assert str(declared) == text


@pytest.mark.parametrize("declared, ok, bad", [
    (Range(ge=1), [1, 1.0, 10**9], [0.999, 0, -1]),
    (Range(gt=0), [1e-12], [0, -1e-12]),
    (Range(le=1), [1, -5], [1.0000001]),
    (Range(lt=1), [0.999999], [1]),
    (Range(), [0, -1e300], [math.nan, math.inf, -math.inf]),
])
def test_range_checks_bounds(declared, ok, bad):
    for value in ok:
        declared.check(value, "k")
    for value in bad:
        with pytest.raises(OutOfRange):
            declared.check(value, "k")


def test_out_of_range_message_is_the_readmes():
    with pytest.raises(OutOfRange) as error:
        load_config(None, ["task.type=regression", "train.epochs=0"])
    assert str(error.value) == "train.epochs: 0 is out of range; it must be > 0."
    with pytest.raises(OutOfRange, match=r"^k: 0\.5 is out of range; it must be >= 1\.$"):
        Range(ge=1).check(0.5, "k")
    with pytest.raises(OutOfRange, match=r"^k: 3 is out of range; it must be < 2\.5\.$"):
        Range(lt=2.5).check(3.0, "k")


def test_patterns():
    for ok in ("auto", "cpu", "cuda", "cuda:0", "cuda:12"):
        DEVICE.check(ok, "d")
    for bad in ("gpu", "cuda:", "cuda:x", "CPU", " cpu"):
        with pytest.raises(OutOfRange, match="auto, cpu, cuda or cuda:N"):
            DEVICE.check(bad, "d")
    RUN_NAME.check("a" * 200, "n")
    for bad in (".hidden", "a" * 201, "a/b", ""):
        with pytest.raises(OutOfRange):
            RUN_NAME.check(bad, "n")
    with pytest.raises(OutOfRange, match=r"^w: 'ab' is not valid; it must be one letter\.$"):
        Matches("[a-z]", "one letter").check("ab", "w")


def test_text_encodings():
    for ok in ("utf-8", "latin-1", "cp1252", "utf-16"):
        TextEncoding().check(ok, "e")
    for bad in ("rot13", "base64", "no-such-codec"):  # rot13 and base64 are codecs, but not text encodings
        with pytest.raises(OutOfRange, match="is not a text encoding"):
            TextEncoding().check(bad, "e")


def test_coerce_types():
    assert coerce(3, float, "k") == 3.0 and type(coerce(3, float, "k")) is float
    assert coerce(None, int | None, "k") is None
    assert coerce("x", str | Annotated[int, Range(ge=0)], "k") == "x"
    assert coerce(2, str | Annotated[int, Range(ge=0)], "k") == 2
    assert coerce((1, 2), list[float], "k") == [1.0, 2.0]
    assert coerce({1: 2, 1.5: 3}, dict[str, float], "k") == {"1": 2.0, "1.5": 3.0}  # YAML's number keys
    assert coerce({0: 1}, dict[str, float], "k") == {"0": 1.0}
    assert coerce(3, None | int, "k") == 3  # None first in the union
    with pytest.raises(SeqtuneError, match=r"^k key True: expected str, got True\.$"):
        coerce({True: 1}, dict[str, float], "k")  # only numbers become label names, not booleans
    with pytest.raises(SeqtuneError, match=r"^k key None: expected str, got None\.$"):
        coerce({None: 1}, dict[str, float], "k")
    assert coerce("x", Literal["x", "y"], "k") == "x"
    for value, tp, message in [
        (True, int, r"^k: expected int, got True\.$"),
        ("1", int, r"^k: expected int, got '1'\.$"),
        (1.5, int, r"^k: expected int, got 1\.5\.$"),
        ("z", Literal["x", "y"], r"^k: 'z' is not one of \['x', 'y'\]\.$"),
        (1, list[int], r"^k: expected a list, got 1\.$"),
        ([1, "a"], list[int], r"^k\[1\]: expected int, got 'a'\.$"),
        ([1], dict[str, int], r"^k: expected a mapping, got \[1\]\.$"),
        ({"a": "b"}, dict[str, int], r"^k\.a: expected int, got 'b'\.$"),
        ([1], int | None, r"^k: expected int, got \[1\]\.$"),  # one option: its own message
        ([1], str | int | None, r"^k: \[1\] is not a valid value; expected str \| int \| None\.$"),
    ]:
        with pytest.raises(SeqtuneError, match=message):
            coerce(value, tp, "k")
    with pytest.raises(OutOfRange):  # the right type out of range is the telling error, not "not valid"
        coerce(-1, str | Annotated[int, Range(ge=0)], "k")


def test_type_names():
    assert _type_name(int | None) == "int | None"
    assert _type_name(Annotated[float, Range(gt=0)]) == "float"
    assert _type_name(Literal["a", "b"]) == "'a' | 'b'"
    assert _type_name(list[float]) == "list[float]"
    assert _type_name(dict[str, int]) == "dict[str, int]"


def test_build_dataclass_errors():
    assert build_dataclass(TrainConfig, None, "train") == TrainConfig()
    with pytest.raises(SeqtuneError, match=r"^train: expected a mapping of settings, got 3\.$"):
        build_dataclass(TrainConfig, 3, "train")
    with pytest.raises(SeqtuneError, match=r"^unknown setting train\.lrr; valid keys in train are: epochs, "):
        build_dataclass(TrainConfig, {"lrr": 1}, "train")
    with pytest.raises(SeqtuneError, match=r"^unknown setting x; valid keys in the top level are: task, model,"):
        build_dataclass(RunConfig, {"x": 1}, "")
    assert build_dataclass(TrainConfig, {"lr": 1}, "train").lr == 1.0


def test_config_from_dict_errors():
    with pytest.raises(SeqtuneError, match=r"^f\.yaml: the config needs task\.type, one of: classification, "):
        config_from_dict({}, "f.yaml: ")
    with pytest.raises(SeqtuneError, match=r"^unknown task\.type 'nope'; valid task types are: classification, "):
        config_from_dict({"task": {"type": "nope"}})
    with pytest.raises(SeqtuneError, match=r"^task\.tag_column has moved to data\.tag_column: set it there "
                                           r"\(e\.g\. --set data\.tag_column=\.\.\.\)\.$"):
        config_from_dict({"task": {"type": "tagging", "tag_column": 2}})
    with pytest.raises(SeqtuneError, match=r"^task\.token_column has moved"):  # after a section that is no mapping
        config_from_dict({"output_dir": "o", "task": {"type": "tagging", "token_column": 2}})
    with pytest.raises(SeqtuneError, match=r"^the config needs task\.type"):
        config_from_dict({})
    cfg = config_from_dict({"task": {"type": "tagging"}, "train": {"lr": "3e-5"}, "name": None})
    assert isinstance(cfg.task, TaggingOptions) and cfg.train.lr == 3e-5


def test_resolved_config_round_trips_through_yaml(tmp_path):
    cfg = load_config(None, ["task.type=tagging", "task.scheme=BILOU", "train.lr=2e-5", "data.train=/d/t.conll",
                             "strategy.top_layers=2", "name=r1", f"output_dir={tmp_path / 'runs'}"])
    text = config_to_yaml(cfg)
    assert text.startswith("task:\n  type: tagging\n")
    again = load_config(write_config(tmp_path / "again.yaml", text))
    assert again == cfg


def test_a_config_without_task_type_names_its_file(tmp_path):
    config = write_config(tmp_path / "c.yaml", "train: {lr: 1.0e-5}\n")
    with pytest.raises(SeqtuneError, match=rf"^{re.escape(str(config))}: the config needs task\.type, one of: "):
        load_config(config)
    with pytest.raises(SeqtuneError, match=r"^the config needs task\.type, one of: "):
        load_config(None, ["train.lr=1.0"])
