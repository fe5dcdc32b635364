"""One typed, validated run configuration, from YAML plus `--set section.key=value` overrides.

Sections are dataclasses, and every setting has one home here: what the model is under `model:`,
what the files hold (paths, columns, lengths) under `data:`, how to train under `train:` and
`strategy:`, and what only one task understands under `task:`, validated against that task type's
own Options dataclass below. Unknown keys are errors that list the valid keys; values are checked
against the field types; a setting that moved is an error naming its new home.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml

from seqtune.errors import SeqtuneError
from seqtune.models.heads import Pooling
from seqtune.models.presets import ArchitectureSpec
from seqtune.vocab_builder import VocabSpec


@dataclass
class ModelConfig:
    path: str | None = None  # a Hugging Face checkpoint directory (config.json + weights + tokenizer)
    # Only for `seqtune pretrain` without model.path (a model trained from scratch):
    vocab: VocabSpec | None = None  # how to build the tokenizer (default: characters of the corpus)
    architecture: ArchitectureSpec | None = None  # encoder size (default: preset tiny)


@dataclass
class DataConfig:
    train: str | None = None  # training file (CSV, TSV, JSONL, or a task-specific format)
    dev: str | None = None  # evaluated each epoch; the best checkpoint is chosen on it
    test: str | None = None  # evaluated once at the end with the best checkpoint
    format: Literal["auto", "csv", "tsv", "jsonl", "conll", "fasta", "squad", "text"] = "auto"  # text: MLM corpora
    header: bool = True  # false: CSV/TSV without a header row; columns are then 0-based numbers
    text_column: str | int = "text"
    text_pair_column: str | int | None = None  # second text of a pair task (premise/hypothesis, ...)
    label_column: str | int = "label"
    token_column: int = 0  # tagging, CoNLL: column of the word (0 = first)
    tag_column: int = -1  # tagging, CoNLL: column of the tag (-1 = last; CoNLL-2003: 1 POS, 2 chunk, 3 NER)
    tokens_key: str = "tokens"  # tagging, JSONL: key of the word list
    tags_key: str = "tags"  # tagging, JSONL: key of the tag list
    mask_column: str | int | None = None  # residues: column of 0/1 per residue; 0 = leave out of loss and metrics
    id_column: str | int | None = "id"  # residues: column copied into predictions when the file has it
    max_length: int | None = None  # tokens per example, special tokens included; None: the task's default (128; QA 384), at most the model's positions
    max_rows: int | None = None  # read only the first N records of each file (quick experiments)


@dataclass
class TrainConfig:
    epochs: float = 3.0
    batch_size: int = 32  # examples per optimiser step (before accumulation)
    max_tokens: int | None = None  # if set: batches hold at most this many (padded) tokens instead
    length_buckets: int = 50  # batches per length-sorted chunk of shuffled examples; 1: plain random batches
    lr: float = 5e-5
    weight_decay: float = 0.01  # not applied to biases and LayerNorm weights
    warmup_ratio: float = 0.0  # fraction of optimiser steps with linear warm-up
    warmup_steps: int = 0  # used when larger than warmup_ratio * total steps
    schedule: Literal["linear", "constant"] = "linear"
    max_grad_norm: float | None = 1.0
    grad_accum_steps: int = 1
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_eps: float = 1e-8
    seed: int = 42
    eval_every_steps: int | None = None  # also evaluate every N optimiser steps (besides each epoch)
    eval_batch_tokens: int | None = None  # padded tokens per evaluation batch; None: 1,024 on CPU, 16,384 on GPU
    metric: str | None = None  # metric that picks the best checkpoint; default: the task's
    early_stopping_patience: int | None = None  # stop after N evaluations without improvement
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"  # auto: fp32 on CPU, bf16 on GPU
    num_threads: int | None = None  # torch CPU threads (default: torch's choice)
    progress: bool = True  # show a progress bar


@dataclass
class StrategyConfig:
    """Which blocks train and how: the `strategy:` section (see training/strategies.py)."""

    top_layers: int | None = None  # train only the top N layers (+ pooler + head); 0 = head only; None = all
    freeze_layers: int | None = None  # or: freeze the embeddings + the bottom K layers (0 = embeddings only)
    train_pooler: bool = True  # with frozen layers, the pooler still trains with the head unless false
    reinit_layers: int = 0  # re-initialise the top L layers with BERT's initialiser before training
    reinit_pooler: bool = False  # also re-initialise the pooler
    layer_lr_decay: float = 1.0  # ξ in (0, 1]: top layer ξ*lr, each layer below ξ times the one above
    head_lr: float | None = None  # learning rate of the task head (default: train.lr)
    bias_correction: bool = True  # false: Adam without bias correction (the original BERT optimiser)
    cache_frozen: bool | Literal["auto"] = "auto"  # cache frozen-layer outputs; auto: >= 1 frozen layer and > 1 epoch
    cache_dtype: Literal["fp32", "fp16"] = "fp32"  # fp16 halves the cache's memory (results then differ slightly)
    cache_memory_mb: int = 2048  # a larger cache goes to a memory-mapped file in the run directory


# ---- task: one Options dataclass per task type (the `task:` section; task.type picks one) ------------

Scheme = Literal["auto", "IOB1", "IOB2", "IOE1", "IOE2", "IOBES", "BILOU", "none"]


@dataclass
class TaskOptions:
    """Settings every task accepts; tasks subclass this with their own fields."""

    type: str = ""


@dataclass
class SequenceOptions(TaskOptions):
    head: Pooling = "pooler"  # pooler | cls | mean | mlp (see models/heads.py)
    head_dropout: float | None = None  # default: the encoder's hidden_dropout_prob
    mlp_hidden: int | None = None  # width of the "mlp" head's hidden layer (default: hidden size)


@dataclass
class ClassificationOptions(SequenceOptions):
    labels: list[str] | None = None  # label order; default: sorted labels of the training file
    class_weights: list[float] | str | None = None  # "balanced", or one weight per label


@dataclass
class MultiLabelOptions(SequenceOptions):
    labels: list[str] | None = None  # label order; default: sorted labels of the training file
    label_delimiter: str = ","  # separates labels in a CSV/TSV cell ("sports,politics")
    threshold: float = 0.5  # a label is predicted when its probability reaches this


@dataclass
class RegressionOptions(SequenceOptions):
    pass


@dataclass
class TokenOptions(TaskOptions):
    window_stride: int | None = None  # tokens between window starts for long inputs; default: half a window
    head_dropout: float | None = None  # dropout before the classifier; default: the encoder's hidden_dropout_prob
    # batch: mean cross-entropy over the batch's labelled tokens (as Trainer does). training_mean: the
    # batch's summed cross-entropy / (batch size x mean labelled tokens per training input), so every
    # labelled token weighs the same in every batch, as in random batches on average, also when
    # length-bucketed batches hold only short or only long inputs.
    loss_normalization: Literal["batch", "training_mean"] = "batch"


@dataclass
class TaggingOptions(TokenOptions):
    label_all_subtokens: bool = False  # train on every sub-token, not only each word's first
    scheme: Scheme = "auto"  # tag scheme for entity metrics; auto: detected from the training tags


@dataclass
class ResidueOptions(TokenOptions):
    unknown_residues: Literal["unk", "error"] = "unk"  # characters outside the model's alphabet


@dataclass
class QuestionAnsweringOptions(TaskOptions):
    type: str = "qa"
    doc_stride: int = 128  # context tokens shared by consecutive windows of a long context
    max_answer_length: int = 30  # longest answer predicted, in tokens
    n_best: int = 20  # candidate answers kept per question (written by predict)
    version_2_with_negative: bool | None = None  # unanswerable questions; None: detect from the training file
    null_score_diff_threshold: float = 0.0  # v2.0: answer "" when null score - best span score > this
    max_windows: int | None = 64  # a context needing more windows is an error (null: no cap)


@dataclass
class MaskedLMOptions(TaskOptions):
    type: str = "mlm"
    packing: Literal["lines", "concatenate"] = "lines"  # one record per example, or joined and cut
    mask_probability: float = 0.15  # share of tokens chosen for prediction
    mask_fraction: float = 0.8  # of the chosen: replaced by [MASK]
    random_fraction: float = 0.1  # of the chosen: replaced by a random token (the rest unchanged)
    whole_word_mask: bool = True  # WordPiece: mask every piece of a chosen word (no effect on "char")
    mask_seed: int = 0  # seed of the masking generator


TASK_OPTIONS: dict[str, type] = {
    "classification": ClassificationOptions,
    "multilabel": MultiLabelOptions,
    "regression": RegressionOptions,
    "tagging": TaggingOptions,
    "residues": ResidueOptions,
    "qa": QuestionAnsweringOptions,
    "mlm": MaskedLMOptions,
}


@dataclass
class RunConfig:
    task: Any = None  # the task's Options dataclass, chosen by task.type
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)  # which blocks train, how (strategies.py)
    output_dir: str = "runs"  # run directories are created below this folder
    name: str | None = None  # run directory name (default: config file name + time stamp)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def coerce(value: Any, tp: Any, where: str) -> Any:
    """Check `value` against the annotation `tp`; convert int -> float. Raise a clear error."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return coerce(value, option, where)
            except SeqtuneError as e:
                errors.append(str(e))
        raise SeqtuneError(errors[0] if len(errors) == 1 else f"{where}: {value!r} is not a valid value ({_type_name(tp)}).")
    if origin is Literal:
        if value not in get_args(tp):
            raise SeqtuneError(f"{where}: {value!r} is not one of {list(get_args(tp))}.")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise SeqtuneError(f"{where}: expected a list, got {value!r}.")
        (item_type, *_) = get_args(tp) or (Any,)
        return [coerce(v, item_type, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise SeqtuneError(f"{where}: expected a mapping, got {value!r}.")
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float, str, bool):
        if isinstance(value, bool) and tp is not bool:
            raise SeqtuneError(f"{where}: expected {tp.__name__}, got {value!r}.")
        if not isinstance(value, tp):
            raise SeqtuneError(f"{where}: expected {tp.__name__}, got {value!r}.")
        return value
    if dataclasses.is_dataclass(tp):
        return build_dataclass(tp, value, where)
    return value


def build_dataclass(cls: type, values: Any, where: str) -> Any:
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise SeqtuneError(f"{where}: expected a mapping of settings, got {values!r}.")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in values if k not in names]
    if unknown:
        raise SeqtuneError(
            f"unknown setting {where + '.' if where else ''}{unknown[0]}; valid keys in "
            f"{where or 'the top level'} are: {', '.join(names)}."
        )
    kwargs = {k: coerce(v, hints[k], f"{where}.{k}" if where else k) for k, v in values.items()}
    return cls(**kwargs)


def parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise SeqtuneError(f"--set {text!r}: expected key=value, e.g. train.lr=3e-5.")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw != "" else None
    except yaml.YAMLError:
        value = raw
    # YAML reads "3e-5" as a string (it wants "3.0e-5"); accept the usual float spellings.
    if isinstance(value, str):
        try:
            value = float(value) if any(c in value for c in ".eE") else value
        except ValueError:
            pass
    return key.strip().split("."), value


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    for text in overrides:
        keys, value = parse_override(text)
        node = raw
        for k in keys[:-1]:
            if node.get(k) is None:
                node[k] = {}
            node = node[k]
            if not isinstance(node, dict):
                raise SeqtuneError(f"--set {text!r}: {k} is not a section.")
        node[keys[-1]] = value
    return raw


def _fix_float_strings(node: Any) -> Any:
    """YAML 1.1 reads `3e-5` as a string; turn such strings back into floats."""
    if isinstance(node, dict):
        return {k: _fix_float_strings(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_fix_float_strings(v) for v in node]
    if isinstance(node, str):
        try:
            return float(node) if any(c in node for c in "eE") and node.strip()[0] in "0123456789.-+" else node
        except ValueError:
            return node
    return node


# ---- paths ----------------------------------------------------------------------------------------
# One rule: a relative path written in a config file is relative to that file; one given with --set
# (or in a dict without a file) is relative to the working directory. Both are stored absolute.
PATH_KEYS = (("data", "train"), ("data", "dev"), ("data", "test"), ("model", "path"), ("model", "vocab", "path"),
             ("output_dir",))
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")  # "org/name" or "name"


def absolute_path(value: str, base: Path, key: tuple[str, ...]) -> str:
    """`value` made absolute against `base`. A selector after "#" (SQuAD's "#articles=0:32") is kept;
    a model.path that names no file under `base` but looks like a hub id is left for the hub resolver."""
    file_part, sep, selector = value.partition("#")
    path = Path(file_part).expanduser()
    if path.is_absolute():
        return str(path) + sep + selector
    candidate = base / path
    if key == ("model", "path") and not candidate.exists() and _HUB_ID.fullmatch(file_part):
        return value
    return os.path.normpath(candidate) + sep + selector


def resolve_raw_paths(raw: dict, base: Path) -> dict:
    """Make every path setting present in `raw` absolute against `base` (in place; returns raw)."""
    for key in PATH_KEYS:
        node = raw
        for k in key[:-1]:
            node = node.get(k) if isinstance(node, dict) else None
        if isinstance(node, dict) and isinstance(node.get(key[-1]), str) and node[key[-1]]:
            node[key[-1]] = absolute_path(node[key[-1]], base, key)
    return raw


# ---- settings that moved ----------------------------------------------------------------------------
# Each setting has one home; an old spelling is an error that names the new one.
MOVED = {
    "task.max_length": "data.max_length",
    "task.vocab": "model.vocab",
    "task.architecture": "model.architecture",
    **{f"task.{key}": f"data.{key}" for key in ("token_column", "tag_column", "tokens_key", "tags_key",
                                                "mask_column", "id_column")},
}


def check_moved(raw: dict) -> None:
    for section, values in raw.items():
        if not isinstance(values, dict):
            continue
        for key in values:
            new = MOVED.get(f"{section}.{key}")
            if new:
                raise SeqtuneError(f"{section}.{key} has moved to {new}: set it there "
                                   f"(e.g. --set {new}=...).")


def config_from_dict(raw: dict, where: str = "") -> RunConfig:
    """Validate a raw config (sections as dicts). Paths are taken as they are."""
    raw = _fix_float_strings(dict(raw))
    check_moved(raw)
    task_raw = dict(raw.pop("task", None) or {})
    task_type = task_raw.get("type")
    if task_type is None:
        raise SeqtuneError(f"{where}the config needs task.type, one of: {', '.join(TASK_OPTIONS)}.")
    if task_type not in TASK_OPTIONS:
        raise SeqtuneError(f"unknown task.type {task_type!r}; valid task types are: {', '.join(TASK_OPTIONS)}.")
    cfg = build_dataclass(RunConfig, raw, "")
    cfg.task = build_dataclass(TASK_OPTIONS[task_type], task_raw, "task")
    return cfg


def read_config_file(path: str | Path) -> dict:
    """The raw sections of a YAML config, with its paths made absolute against its folder."""
    path = Path(path)
    if not path.is_file():
        raise SeqtuneError(f"config file {str(path)!r} does not exist.")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8-sig")) or {}
    except yaml.YAMLError as e:
        raise SeqtuneError(f"{path} is not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise SeqtuneError(f"{path}: expected a mapping of sections (task, model, data, train).")
    return resolve_raw_paths(raw, path.resolve().parent)


def load_config(path: str | Path | None, overrides: list[str] = ()) -> RunConfig:
    """Read a YAML config (or start empty), apply overrides, validate.

    Paths in the file are relative to the file; paths given as overrides to the working directory."""
    raw = read_config_file(path) if path is not None else {}
    raw = resolve_raw_paths(apply_overrides(raw, list(overrides)), Path.cwd())
    cfg = config_from_dict(raw, f"{path}: " if path else "")
    if path is not None:
        cfg.name = cfg.name or Path(path).stem
    return cfg


def config_to_yaml(cfg: RunConfig) -> str:
    d = cfg.to_dict()
    task = dict(d.pop("task"))
    task = {"type": task.pop("type"), **task}
    return yaml.safe_dump({"task": task, **d}, sort_keys=False)
