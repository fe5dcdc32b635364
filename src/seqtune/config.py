"""One typed, validated run configuration, from YAML plus `--set section.key=value` overrides.

Sections are dataclasses. Unknown keys are errors that list the valid keys; values are checked
against the field types. The `task` section is validated against the chosen task's own `Options`
dataclass (see `seqtune.tasks`), so each task declares the settings it understands.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml

from seqtune.errors import SeqtuneError
from seqtune.training.strategies import StrategyConfig  # the `strategy:` section (issue 6)


@dataclass
class ModelConfig:
    path: str | None = None  # a Hugging Face checkpoint directory (config.json + weights + tokenizer)


@dataclass
class DataConfig:
    train: str | None = None  # training file (CSV, TSV, JSONL, or a task-specific format)
    dev: str | None = None  # evaluated each epoch; the best checkpoint is chosen on it
    test: str | None = None  # evaluated once at the end with the best checkpoint
    format: Literal["auto", "csv", "tsv", "jsonl", "conll", "fasta", "squad", "text"] = "auto"  # text: MLM corpora
    text_column: str = "text"
    text_pair_column: str | None = None  # second text of a pair task (premise/hypothesis, ...)
    label_column: str = "label"
    max_length: int = 128  # tokens per example, special tokens included
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


def resolve_paths(cfg: RunConfig, base: Path) -> None:
    """Make data and model paths relative to the config file absolute (when they exist there)."""
    def fix(p: str | None) -> str | None:
        if p is None or Path(p).is_absolute():
            return p
        file_part = p.split("#", 1)[0]  # "file.json#articles=0:32": a selector after the path
        candidate = base / file_part
        return str(base / p) if candidate.exists() or not Path(file_part).exists() else p
    for name in ("train", "dev", "test"):
        setattr(cfg.data, name, fix(getattr(cfg.data, name)))
    cfg.model.path = fix(cfg.model.path)


def config_from_dict(raw: dict, where: str = "") -> RunConfig:
    from seqtune.tasks import task_class  # the registry; imported here to avoid a cycle

    raw = _fix_float_strings(dict(raw))
    task_raw = dict(raw.pop("task", None) or {})
    task_type = task_raw.get("type")
    if task_type is None:
        from seqtune.tasks import TASKS
        raise SeqtuneError(f"{where}the config needs task.type, one of: {', '.join(TASKS)}.")
    options_cls = task_class(task_type).Options
    cfg = build_dataclass(RunConfig, raw, "")
    cfg.task = build_dataclass(options_cls, task_raw, "task")
    return cfg


def load_config(path: str | Path | None, overrides: list[str] = ()) -> RunConfig:
    """Read a YAML config (or start empty), apply overrides, validate. Paths resolve from the file."""
    raw: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise SeqtuneError(f"config file {str(path)!r} does not exist.")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise SeqtuneError(f"{path} is not valid YAML: {e}") from None
        if not isinstance(raw, dict):
            raise SeqtuneError(f"{path}: expected a mapping of sections (task, model, data, train).")
    raw = apply_overrides(raw, list(overrides))
    cfg = config_from_dict(raw, f"{path}: " if path else "")
    if path is not None:
        resolve_paths(cfg, Path(path).resolve().parent)
        cfg.name = cfg.name or Path(path).stem
    return cfg


def config_to_yaml(cfg: RunConfig) -> str:
    d = cfg.to_dict()
    task = dict(d.pop("task"))
    task = {"type": task.pop("type"), **task}
    return yaml.safe_dump({"task": task, **d}, sort_keys=False)
