"""One typed, validated run configuration, from YAML plus `--set section.key=value` overrides.

Sections are dataclasses, and every setting has one home here: what the model is under `model:`,
what the files hold (paths, columns, lengths) under `data:`, how to train under `train:` and
`strategy:`, and what only one task understands under `task:`, validated against that task type's
own Options dataclass below. Unknown keys are errors that list the valid keys; values are checked
against the field types; a setting that moved is an error naming its new home.

Ranges are declared next to the fields, in the annotation: `Annotated[int, Range(ge=1)]`,
`Annotated[float, Range(ge=0, lt=1)]`, `Annotated[str, Matches(regex, "what it may be")]`. `coerce`
checks the type and then every such declaration, when the config is read and before anything is
created, with an error naming the key, the value and what is allowed. Only checks that need the model
or the data (max_length against the model's positions, strategy layers against its depth, train.metric
against the task's metrics) happen later, still before training.
"""

from __future__ import annotations

import codecs
import dataclasses
import math
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import yaml

from seqtune.errors import SeqtuneError
from seqtune.models.heads import Pooling
from seqtune.models.presets import ArchitectureSpec
from seqtune.vocab_builder import VocabSpec

# ---- declared ranges: Annotated[type, check] on a field; coerce() applies the check ----------------

class OutOfRange(SeqtuneError):
    """A value of the right type outside what its field allows."""


def _number(x: float) -> str:
    return str(int(x)) if isinstance(x, float) and x.is_integer() else repr(x) if isinstance(x, float) else str(x)


@dataclass(frozen=True)
class Range:
    """The values a number may take: ge/gt a lower bound (inclusive/exclusive), le/lt an upper one.
    NaN and infinities are never in range."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def __str__(self) -> str:
        low = f"[{_number(self.ge)}" if self.ge is not None else f"({_number(self.gt)}" if self.gt is not None else ""
        high = f"{_number(self.le)}]" if self.le is not None else f"{_number(self.lt)})" if self.lt is not None else ""
        if low and high:
            return f"in {low}, {high}"
        if low:
            return f"{'>=' if self.ge is not None else '>'} {low[1:]}"
        if high:
            return f"{'<=' if self.le is not None else '<'} {high[:-1]}"
        return "a finite number"

    def check(self, value: float, where: str) -> None:
        ok = (math.isfinite(value) and (self.ge is None or value >= self.ge) and (self.gt is None or value > self.gt)
              and (self.le is None or value <= self.le) and (self.lt is None or value < self.lt))
        if not ok:
            raise OutOfRange(f"{where}: {_number(value)} is out of range; it must be {self}.")


@dataclass(frozen=True)
class Matches:
    """A string that matches `pattern` as a whole; `description` says what that allows."""

    pattern: str
    description: str

    def check(self, value: str, where: str) -> None:
        if not re.fullmatch(self.pattern, value):
            raise OutOfRange(f"{where}: {value!r} is not valid; it must be {self.description}.")


@dataclass(frozen=True)
class TextEncoding:
    """The name of a text encoding Python knows (utf-8, latin-1, cp1252, ...)."""

    def check(self, value: str, where: str) -> None:
        try:
            known = getattr(codecs.lookup(value), "_is_text_encoding", True)
        except LookupError:
            known = False
        if not known:
            raise OutOfRange(f"{where}: {value!r} is not a text encoding Python knows (e.g. utf-8, latin-1, cp1252).")


SEED = Range(ge=0, le=2**32 - 1)  # what numpy's and torch's generators accept
DEVICE = Matches(r"auto|cpu|cuda(:[0-9]+)?", "auto, cpu, cuda or cuda:N (N = the GPU's number)")
RUN_NAME = Matches(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}",
                   "one folder name of at most 200 characters from [A-Za-z0-9._-], not starting with '.'")


def safe_run_name(text: str) -> str | None:
    """`text` made into a valid run name (characters outside [A-Za-z0-9._-] become '-')."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", text).lstrip(".-").rstrip("-")[:200]
    return name or None


@dataclass
class ModelConfig:
    path: str | None = None  # a Hugging Face checkpoint directory (config.json + weights + tokenizer)
    revision: str | None = None  # hub ids only: the commit or tag to download (default: the newest)
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
    encoding: Annotated[str, TextEncoding()] = "utf-8"  # text encoding of the data files (UTF-8 may start with a byte-order mark)
    text_column: str | Annotated[int, Range(ge=0)] = "text"  # a name, or a 0-based number without a header
    text_pair_column: str | Annotated[int, Range(ge=0)] | None = None  # second text of a pair task (premise/hypothesis, ...)
    label_column: str | Annotated[int, Range(ge=0)] = "label"
    token_column: int = 0  # tagging, CoNLL: column of the word (0 = first)
    tag_column: int = -1  # tagging, CoNLL: column of the tag (-1 = last; CoNLL-2003: 1 POS, 2 chunk, 3 NER)
    tokens_key: str = "tokens"  # tagging, JSONL: key of the word list
    tags_key: str = "tags"  # tagging, JSONL: key of the tag list
    mask_column: str | Annotated[int, Range(ge=0)] | None = None  # residues: column of 0/1 per residue; 0 = leave out of loss and metrics
    id_column: str | Annotated[int, Range(ge=0)] | None = "id"  # column (JSONL key) copied into predictions when the file has it
    # tokens per example, special tokens included; at least 3 ([CLS], [SEP] and one real token; QA needs 8)
    max_length: Annotated[int, Range(ge=3)] | None = None  # None: the task's default (128; QA 384), at most the model's positions
    max_rows: Annotated[int, Range(ge=1)] | None = None  # read only the first N records of each file (quick experiments)
    # Sequences: auto folds letters to the case of a character vocabulary (soft-masked "mkvl" -> "MKVL");
    # upper/lower fold always; keep leaves them as they are.
    case: Literal["auto", "upper", "lower", "keep"] = "auto"
    # Sequence classification/regression on inputs longer than max_length: truncate them, or score
    # overlapping windows and average their logits.
    long_inputs: Literal["truncate", "windows"] = "truncate"
    labels_file: str | None = None  # FASTA inputs: a table of labels joined on the record id
    # Pretraining: leave out corpus records that share most k-mers with a record of these files
    # (e.g. the dev/test sets of a later fine-tuning task), so that no test chain leaks into pretraining.
    exclude_similar_to: list[str] | None = None
    # Pretraining, per-residue labelling and tagging: tokenize the training file once into a memory-mapped token store
    # ($SEQTUNE_CACHE, default ~/.cache/seqtune; labels too), reused by every epoch and later runs; false:
    # tokenize in memory each run.
    token_store: bool = True


@dataclass
class TrainConfig:
    epochs: Annotated[float, Range(gt=0)] = 3.0  # may be fractional
    batch_size: Annotated[int, Range(ge=1)] = 32  # examples per optimiser step (before accumulation)
    max_tokens: Annotated[int, Range(ge=1)] | None = None  # if set: batches hold at most this many (padded) tokens instead
    length_buckets: Annotated[int, Range(ge=1)] = 50  # batches per length-sorted chunk of shuffled examples; 1: plain random batches
    lr: Annotated[float, Range(gt=0)] = 5e-5
    weight_decay: Annotated[float, Range(ge=0)] = 0.01  # not applied to biases and LayerNorm weights
    warmup_ratio: Annotated[float, Range(ge=0, le=1)] = 0.0  # fraction of optimiser steps with linear warm-up
    warmup_steps: Annotated[int, Range(ge=0)] = 0  # used when larger than warmup_ratio * total steps
    schedule: Literal["linear", "constant"] = "linear"
    max_grad_norm: Annotated[float, Range(gt=0)] | None = 1.0  # null: no gradient clipping
    grad_accum_steps: Annotated[int, Range(ge=1)] = 1  # micro-batches per optimiser step
    adam_beta1: Annotated[float, Range(ge=0, lt=1)] = 0.9
    adam_beta2: Annotated[float, Range(ge=0, lt=1)] = 0.999
    adam_eps: Annotated[float, Range(gt=0)] = 1e-8
    seed: Annotated[int, SEED] = 42
    eval_every_steps: Annotated[int, Range(ge=1)] | None = None  # also evaluate every N optimiser steps (besides each epoch)
    eval_batch_tokens: Annotated[int, Range(ge=1)] | None = None  # padded tokens per evaluation batch; None: 1,024 on CPU, 16,384 on GPU
    metric: str | None = None  # metric that picks the best checkpoint; default: the task's
    early_stopping_patience: Annotated[int, Range(ge=1)] | None = None  # stop after N evaluations without improvement
    device: Annotated[str, DEVICE] = "auto"  # auto | cpu | cuda | cuda:N
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"  # auto: fp32 on CPU, bf16 on GPU
    num_threads: Annotated[int, Range(ge=1)] | None = None  # torch CPU threads (default: torch's choice)
    progress: bool = True  # show a progress bar
    # also log the run's scalars, config and final metrics to these trackers (optional extras; tracking.py)
    log_to: list[Literal["tensorboard", "mlflow"]] | None = None
    gradient_checkpointing: bool = False  # recompute each encoder block in backward: less activation memory, ~1/3 more compute
    # glibc (Linux): allocations above this many bytes get their own mapping, given back when freed, so peak
    # memory does not grow over the steps (slower: fresh pages for every large tensor); null: glibc's default
    malloc_mmap_threshold: Annotated[int, Range(ge=0, le=1 << 25)] | None = None
    compile: bool = False  # torch.compile (inductor) the encoder blocks' pieces; slower on the CPU measured (README "train.compile")
    checkpoint_every_steps: Annotated[int, Range(ge=1)] | None = None  # also save the training state every N optimiser steps (it is saved at each epoch end)
    keep_checkpoints: Annotated[int, Range(ge=0)] = 2  # newest training-state checkpoints kept in checkpoints/ for --resume; 0: none


@dataclass
class StrategyConfig:
    """Which blocks train and how: the `strategy:` section (see training/strategies.py)."""

    top_layers: Annotated[int, Range(ge=0)] | None = None  # train only the top N layers (+ pooler + head); 0 = head only; None = all
    freeze_layers: Annotated[int, Range(ge=0)] | None = None  # or: freeze the embeddings + the bottom K layers (0 = embeddings only)
    train_pooler: bool = True  # with frozen layers, the pooler still trains with the head unless false
    reinit_layers: Annotated[int, Range(ge=0)] = 0  # re-initialise the top L layers with BERT's initialiser before training
    reinit_pooler: bool = False  # also re-initialise the pooler
    layer_lr_decay: Annotated[float, Range(gt=0, le=1)] = 1.0  # ξ in (0, 1]: top layer ξ*lr, each layer below ξ times the one above
    head_lr: Annotated[float, Range(gt=0)] | None = None  # learning rate of the task head (default: train.lr)
    bias_correction: bool = True  # false: Adam without bias correction (the original BERT optimiser)
    cache_frozen: bool | Literal["auto"] = "auto"  # cache frozen-layer outputs; auto: >= 1 frozen layer and > 1 epoch
    cache_dtype: Literal["fp32", "fp16"] = "fp32"  # fp16 halves the cache's memory (results then differ slightly)
    cache_memory_mb: Annotated[int, Range(ge=0)] = 2048  # a larger cache goes to a memory-mapped file in the run directory


# ---- task: one Options dataclass per task type (the `task:` section; task.type picks one) ------------

Scheme = Literal["auto", "IOB1", "IOB2", "IOE1", "IOE2", "IOBES", "BILOU", "none"]


@dataclass
class TaskOptions:
    """Settings every task accepts; tasks subclass this with their own fields."""

    type: str = ""


@dataclass
class SequenceOptions(TaskOptions):
    head: Pooling = "pooler"  # pooler | cls | mean | mlp (see models/heads.py)
    head_dropout: Annotated[float, Range(ge=0, lt=1)] | None = None  # default: the encoder's hidden_dropout_prob
    mlp_hidden: Annotated[int, Range(ge=1)] | None = None  # width of the "mlp" head's hidden layer (default: hidden size)


@dataclass
class ClassificationOptions(SequenceOptions):
    labels: list[str] | None = None  # label order; default: sorted labels of the training file
    # "auto" (or "balanced"): n / (n_labels x count) per label; a list: one weight per label, in label order;
    # {label: weight}: labels not named weigh 1
    class_weights: (list[Annotated[float, Range(gt=0)]] | dict[str, Annotated[float, Range(gt=0)]]
                    | Literal["balanced", "auto"] | None) = None
    label_names: dict[str, str] | None = None  # display names for config.json's id2label, e.g. {"0": negative}


@dataclass
class MultiLabelOptions(SequenceOptions):
    labels: list[str] | None = None  # label order; default: sorted labels of the training file
    label_delimiter: Annotated[str, Matches(r".+", "at least one character")] = ","  # separates labels in a CSV/TSV cell ("sports,politics")
    threshold: Annotated[float, Range(ge=0, le=1)] = 0.5  # a label is predicted when its probability reaches this
    label_names: dict[str, str] | None = None  # display names for config.json's id2label, e.g. {"0": negative}


@dataclass
class RegressionOptions(SequenceOptions):
    pass


@dataclass
class TokenOptions(TaskOptions):
    window_stride: Annotated[int, Range(ge=1)] | None = None  # tokens between window starts for long inputs; default: half a window
    head_dropout: Annotated[float, Range(ge=0, lt=1)] | None = None  # dropout before the classifier; default: the encoder's hidden_dropout_prob
    # linear: one linear layer per position (BertForTokenClassification); mlp: linear -> activation ->
    # linear; conv: 1-D convolutions over the positions, then a linear layer (local context per residue).
    head: Literal["linear", "mlp", "conv"] = "linear"
    head_hidden: Annotated[int, Range(ge=1)] | None = None  # mlp: hidden width (default: the encoder's); conv: channels (default 32)
    head_activation: Literal["gelu", "relu", "tanh"] = "gelu"  # mlp and conv heads
    conv_kernel: Annotated[int, Range(ge=1)] = 7  # conv head: positions each convolution sees
    conv_layers: Annotated[int, Range(ge=1)] = 1  # conv head: convolution layers before the output layer
    # Rare labels: "auto" weighs each label by n_labels_seen / (n_labels x its count) (as scikit-learn's
    # "balanced"); or {label: weight}; unset: every label weighs 1.
    class_weights: dict[str, Annotated[float, Range(gt=0)]] | Literal["auto"] | None = None
    # batch: mean cross-entropy over the batch's labelled tokens (as Trainer does). training_mean: the
    # batch's summed cross-entropy / (batch size x mean labelled tokens per training input), so every
    # labelled token weighs the same in every batch, as in random batches on average, also when
    # length-bucketed batches hold only short or only long inputs.
    loss_normalization: Literal["batch", "training_mean"] = "batch"


@dataclass
class TaggingOptions(TokenOptions):
    label_all_subtokens: bool = False  # train on every sub-token, not only each word's first
    scheme: Scheme = "auto"  # tag scheme for entity metrics; auto: detected from the training tags
    # viterbi: the best tag sequence the scheme allows (no "O I-PER"); argmax: each word's best tag alone
    decode: Literal["viterbi", "argmax"] = "viterbi"


@dataclass
class ResidueOptions(TokenOptions):
    unknown_residues: Literal["unk", "error"] = "unk"  # characters outside the model's alphabet


@dataclass
class QuestionAnsweringOptions(TaskOptions):
    type: str = "qa"
    doc_stride: Annotated[int, Range(ge=0)] = 128  # context tokens shared by consecutive windows of a long context
    max_answer_length: Annotated[int, Range(ge=1)] = 30  # longest answer predicted, in tokens
    n_best: Annotated[int, Range(ge=1)] = 20  # candidate answers kept per question (written by predict)
    version_2_with_negative: bool | None = None  # unanswerable questions; None: detect from the training file
    null_score_diff_threshold: Annotated[float, Range()] = 0.0  # v2.0: answer "" when null score - best span score > this
    max_windows: Annotated[int, Range(ge=1)] | None = 64  # a context needing more windows is an error (null: no cap)


@dataclass
class MaskedLMOptions(TaskOptions):
    type: str = "mlm"
    packing: Literal["lines", "concatenate"] = "lines"  # one record per example, or joined and cut
    mask_probability: Annotated[float, Range(gt=0, lt=1)] = 0.15  # share of tokens chosen for prediction
    mask_fraction: Annotated[float, Range(ge=0, le=1)] = 0.8  # of the chosen: replaced by [MASK]
    random_fraction: Annotated[float, Range(ge=0, le=1)] = 0.1  # of the chosen: replaced by a random token (the rest unchanged)
    whole_word_mask: bool = True  # WordPiece: mask every piece of a chosen word (no effect on "char")
    mask_seed: Annotated[int, SEED] = 0  # seed of the masking generator


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
    name: Annotated[str, RUN_NAME] | None = None  # run directory name (default: config file name + time stamp)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _type_name(tp: Any) -> str:
    """An annotation as a user reads it: `int | None`, `'balanced'`, `list[float]`."""
    origin, args = get_origin(tp), get_args(tp)
    if origin is Annotated:
        return _type_name(args[0])
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in args)
    if origin is Literal:
        return " | ".join(repr(a) for a in args)
    if origin is not None:
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in args)}]"
    if tp is type(None):
        return "None"
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def coerce(value: Any, tp: Any, where: str) -> Any:
    """Check `value` against the annotation `tp`; convert int -> float. Raise a clear error."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin is Annotated:  # a type and its declared checks (Range, Matches, ...)
        base, *checks = get_args(tp)
        value = coerce(value, base, where)
        for check in checks:
            if value is not None:
                check.check(value, where)
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
            except OutOfRange:  # the right type, out of its range: the most telling error
                raise
            except SeqtuneError as e:
                errors.append(str(e))
        raise SeqtuneError(errors[0] if len(errors) == 1 else
                           f"{where}: {value!r} is not a valid value; expected {_type_name(tp)}.")
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
        key_type, item_type = get_args(tp) or (Any, Any)
        if key_type is str:  # YAML reads a key such as 0 or 1.5 as a number; labels are strings
            value = {str(k) if isinstance(k, (int, float)) and not isinstance(k, bool) else k: v
                     for k, v in value.items()}
        return {coerce(k, key_type, f"{where} key {k!r}"): coerce(v, item_type, f"{where}.{k}")
                for k, v in value.items()}
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
    hints = typing.get_type_hints(cls, include_extras=True)  # with the declared ranges
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
PATH_KEYS = (("data", "train"), ("data", "dev"), ("data", "test"), ("data", "labels_file"),
             ("data", "exclude_similar_to"), ("model", "path"), ("model", "vocab", "path"), ("output_dir",))
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
        elif isinstance(node, dict) and isinstance(node.get(key[-1]), list):  # a list of paths
            node[key[-1]] = [absolute_path(v, base, key) if isinstance(v, str) and v else v for v in node[key[-1]]]
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
        cfg.name = cfg.name or safe_run_name(Path(path).stem)
    return cfg


def config_to_yaml(cfg: RunConfig) -> str:
    d = cfg.to_dict()
    task = dict(d.pop("task"))
    task = {"type": task.pop("type"), **task}
    return yaml.safe_dump({"task": task, **d}, sort_keys=False)
