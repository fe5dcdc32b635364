"""The generic path: encoders seqtune has no native implementation of, run through `transformers`.

A checkpoint whose config.json names a `model_type` outside `encoder.FAMILIES` (DeBERTa-v2/v3,
ModernBERT, MPNet, ALBERT, ...) is loaded with `transformers` (an optional dependency,
`pip install "seqtune[hf]"`, imported only on this path: `hf_config.import_transformers`) and put behind the interface the rest of seqtune
uses: `GenericTaskModel.forward(batch)` returns the task's logits, `model.encoder` has `config`,
`embeddings`, `layers`, `pooler` and `init_weights` for the fine-tuning strategies, and the saved
directory is a Hugging Face checkpoint.

- Heads: where the task's head is transformers' own (the sequence tasks' `pooler` head, the token
  tasks' `linear` head, QA's span head, MLM's head), the model *is* transformers'
  `AutoModelFor<Task>` of the family, so what seqtune saves loads with that class and gives the same
  logits. Every other seqtune head (cls/mean/mlp pooling, mlp/conv token heads) runs on
  `AutoModel`'s last hidden states; `AutoModel` then loads the saved encoder.
- Layers: freezing, top-N, re-initialisation and layer-wise learning-rate decay need one module per
  layer (`hf_layout.find_layout`). A model without a layer list (ALBERT shares one layer group across
  its depth) trains whole; the layer strategies are refused.
- Config and tokenizer: `hf_config.py` (what `checkpoint.encoder_config_from_dir` returns for these
  model types), `hf_tokenizer.py`.
- Not on this path: packed blocks, the [CLS]-only (or masked-positions-only) last block and the
  frozen-layer activation cache (transformers runs the encoder whole), so `NATIVE_ADDS` is what the
  log says a native implementation would add.
"""

from __future__ import annotations

import inspect
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from seqtune.errors import SeqtuneError
from seqtune.files import read_json_object
from seqtune.models.checkpoint import (
    WEIGHT_CANDIDATES,
    read_weights,
    save_weights,
    write_json,
)
from seqtune.models.heads import Head
from seqtune.models.hf_config import GenericConfig, class_name_for, import_transformers
from seqtune.models.hf_layout import LAYER_LISTS, Layout, find_layout, top_other_modules
from seqtune.models.hf_tokenizer import check_tokenizer

NATIVE_ADDS = ("packed blocks that skip padding, a last block that computes only what the head reads "
               "([CLS] for sequence heads, the masked positions for MLM) and the frozen-layer activation cache")
# seqtune's head class name (tasks name BERT's) -> transformers' auto class of the family's head.
AUTO_HEADS = {
    "BertForSequenceClassification": "AutoModelForSequenceClassification",
    "BertForTokenClassification": "AutoModelForTokenClassification",
    "BertForQuestionAnswering": "AutoModelForQuestionAnswering",
    "BertForMaskedLM": "AutoModelForMaskedLM",
}


def describe_path(cfg: GenericConfig, model: GenericTaskModel) -> str:
    """The log line that says this run uses the generic path and what the native path would add."""
    import transformers

    what = type(model.hf_model).__name__
    return (f"path: through transformers {transformers.__version__} ({what}; model_type {cfg.model_type!r} "
            f"has no native implementation in seqtune). A native implementation would add {NATIVE_ADDS}.")


# ---- checks before training ------------------------------------------------------------------------

def head_class(task, cfg: GenericConfig) -> str | None:
    """transformers' auto class for the task's head when that head is transformers' own (the fitted
    task's hf_config names BERT's *For<Task>* class: the sequence tasks' pooler head, the token tasks'
    linear head, QA, MLM), else None (a seqtune head on AutoModel). An error when transformers has no
    such class for the family."""
    auto = AUTO_HEADS.get(task.hf_config()["architectures"][0])
    if auto is not None and class_name_for(auto, cfg.model_type) is None:
        raise SeqtuneError(
            f"the {task.name} task's head is {auto.replace('AutoModel', cfg.family.hf_name)}, and the installed "
            f"transformers has no such class for model_type {cfg.model_type!r}. Choose another head "
            "(task.head), where the task has one."
        )
    return auto


def check_task(task, cfg: GenericConfig) -> None:
    """The task can run on this generic-path model (before any data is read)."""
    if task.name == "qa":
        tok = task.tokenizer
        ids = tok.encode_batch(["a"], ["a"])[0].ids
        plain = tok.encode_batch(["a"])[0].ids
        if ids[0] != tok.cls_id or len(ids) != 2 * len(plain) - 1:
            raise SeqtuneError(
                f"the qa task needs the [CLS] question [SEP] context [SEP] layout; the tokenizer of this "
                f"{cfg.model_type!r} checkpoint joins pairs otherwise, so QA is not supported for it."
            )
    check_tokenizer(task.tokenizer, cfg)


LAYER_STRATEGIES = ("top_layers", "freeze_layers", "reinit_layers", "layer_lr_decay")


def check_strategy(strategy, cfg: GenericConfig, model_dir: str | Path) -> None:
    """Layer strategies need one module per layer: refuse them for a layout without a layer list."""
    if strategy.reinit_pooler:
        raise SeqtuneError(
            f"strategy.reinit_pooler: on the transformers path ({cfg.model_type!r}) seqtune has no pooler of "
            "its own to re-initialise (transformers' head starts fresh anyway); remove the setting."
        )
    asked = [name for name, unset in zip(LAYER_STRATEGIES, (None, None, 0, 1.0)) if getattr(strategy, name) != unset]
    if not asked:
        return
    layout = find_layout(skeleton(model_dir, cfg))
    if layout.layers is None:
        raise SeqtuneError(
            f"strategy.{asked[0]} needs the model's layers one by one, and the {cfg.family.hf_name}Model of "
            f"transformers keeps none of the usual layer lists ({', '.join(LAYER_LISTS)}) with "
            f"{cfg.num_hidden_layers} entries{layout.why}. Fine-tune it whole (remove strategy.{asked[0]})."
        )


def skeleton(model_dir: str | Path, cfg: GenericConfig):
    """The base model's modules without weights (on the meta device): for layout and key checks."""
    transformers = import_transformers(cfg.model_type)
    try:
        with torch.device("meta"), quiet(transformers):
            return transformers.AutoModel.from_config(cfg.hf)
    except Exception:  # noqa: BLE001 - a model whose construction computes values meta tensors cannot hold
        with quiet(transformers):
            return transformers.AutoModel.from_config(cfg.hf)


def check_run(task, cfg: GenericConfig, strategy, model_dir: str | Path) -> None:
    """Everything about a generic-path run that can be checked before any data is read."""
    check_task(task, cfg)
    check_strategy(strategy, cfg, model_dir)
    check_weights(model_dir, cfg)


def weight_names(model_dir: str | Path) -> list[str]:
    """The weight names of a checkpoint directory, read from the safetensors headers or the index
    (a pickled pytorch_model.bin is read whole)."""
    from safetensors import SafetensorError, safe_open

    model_dir = Path(model_dir)
    for name in WEIGHT_CANDIDATES:
        path = model_dir / name
        if not path.is_file():
            continue
        if name.endswith(".index.json"):
            weight_map = read_json_object(path).get("weight_map")
            if isinstance(weight_map, dict):
                return list(weight_map)
        if name.endswith(".safetensors"):
            try:
                with safe_open(str(path), framework="pt") as f:
                    return list(f.keys())
            except SafetensorError:
                pass  # read_weights says what is wrong with the file
        return list(read_weights(model_dir))
    return list(read_weights(model_dir))  # the error that names the expected files


def check_weights(model_dir: str | Path, cfg: GenericConfig) -> None:
    """Every encoder weight of the family is in the checkpoint (names only, nothing is loaded): a
    config.json that names the wrong family fails here, before any data is read."""
    expected = set(skeleton(model_dir, cfg).state_dict())
    # TensorFlow conversions name LayerNorm parameters gamma/beta; transformers renames them on load.
    names = [n.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
             for n in weight_names(model_dir)]
    prefix = cfg.family.prefix
    found = {n[len(prefix):] if prefix and n.startswith(prefix) else n for n in names}
    missing = sorted(k for k in expected - found if not _optional_key(k))
    if missing:
        raise SeqtuneError(
            f"checkpoint {model_dir} does not match its config.json (model_type {cfg.model_type!r}): "
            f"missing encoder weights ({len(missing)}): {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}"
        )


def _optional_key(key: str) -> bool:
    """Buffers and optional modules transformers recreates itself (position ids, the pooler)."""
    return key.endswith(("position_ids", "inv_freq", "token_type_ids")) or key.startswith("pooler.")


# ---- the model -------------------------------------------------------------------------------------

class LayerSlot(nn.Module):
    """One layer of the transformers model (and, for the top layer, the modules that run after it):
    what strategies freeze, re-initialise and give a learning rate as `encoder.layers.<i>`."""

    def __init__(self, block: nn.Module, after: list[nn.Module] = ()):
        super().__init__()
        self.block = block
        self.after = nn.ModuleList(after)


class GenericEncoder(nn.Module):
    """A transformers base model behind the native encoder's attributes.

    `embeddings` and `layers` hold the transformers modules themselves (registered before `model`,
    so parameter names read `encoder.embeddings.*` and `encoder.layers.<i>.*`, as strategies count
    blocks); `model` runs them. There is no native pooler (`pooler` is None).
    """

    def __init__(self, base: nn.Module, cfg: GenericConfig, layout: Layout):
        super().__init__()
        self.config = cfg
        self.layers_mapped = layout.layers is not None
        self.embeddings = nn.ModuleList(layout.embeddings)
        if layout.layers is not None:
            slots = [LayerSlot(m) for m in layout.layers[:-1]] + [LayerSlot(layout.layers[-1], layout.after)]
        else:  # one slot with everything but the embeddings, so every weight belongs to a block
            used = {id(m) for m in layout.embeddings}
            slots = [LayerSlot(nn.Module(), [m for m in top_other_modules(base, used, None)])]
        self.layers = nn.ModuleList(slots)
        self.pooler = None
        self.model = base

    def init_weights(self, module: nn.Module) -> None:
        """transformers' own initialiser for `module` (strategy.reinit_layers)."""
        for tensor in [*module.parameters(recurse=False), *module.buffers(recurse=False)]:
            tensor._is_hf_initialized = False  # transformers skips tensors loaded from a checkpoint
        self.model._init_weights(module)


class TransformersHead(Head):
    """transformers' own head of the family (the *For<Task>* model's modules besides the encoder);
    it runs inside `GenericTaskModel.hf_model`, this module only names its weights `head.*`."""

    def __init__(self, modules: dict[str, nn.Module]):
        super().__init__()
        self.parts = nn.ModuleDict(modules)


class GenericTaskModel(nn.Module):
    """encoder -> head through transformers. forward(batch) returns the task's logits.

    hf_model: the `AutoModelFor<Task>` model when the head is transformers' own, else the base model
    (`AutoModel`) under a seqtune head.
    """


    def __init__(self, encoder: GenericEncoder, head: Head, hf_model: nn.Module, output: str):
        super().__init__()
        self.encoder = encoder
        self.head = head
        self.hf_model = hf_model  # registered last: its parameters keep the names above
        self.output = output  # "logits", "qa", "mlm" or "hidden" (a seqtune head on the last hidden states)
        names = inspect.signature(hf_model.forward).parameters
        self.input_names = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in names]
        self.frozen: list[nn.Module] = []
        head.tie_weights(encoder)

    def freeze_in_eval_mode(self, frozen_layers: int) -> None:
        """Frozen embeddings and bottom layers run without dropout, as in FrozenBottomModel."""
        self.frozen = [self.encoder.embeddings, *self.encoder.layers[:frozen_layers]]
        self.train(self.training)

    def train(self, mode: bool = True) -> GenericTaskModel:
        super().train(mode)
        for module in self.frozen:
            module.eval()
        return self

    def forward(self, batch: dict[str, torch.Tensor]):
        inputs = {k: batch[k] for k in self.input_names if k in batch}
        if self.output == "hidden":
            hidden = self.hf_model(**inputs).last_hidden_state
            extra = {k: batch[k] for k in self.head.batch_inputs if k in batch}
            return self.head(hidden, batch["attention_mask"], None, **extra)
        out = self.hf_model(**inputs)
        if self.output == "qa":
            return out.start_logits, out.end_logits
        if self.output == "mlm":
            return out.logits[batch["mlm_positions"]]  # (M, V): the masked positions, as the MLM task wants
        return out.logits

    def hf_state_dict(self) -> dict[str, torch.Tensor]:
        if self.output == "hidden":
            prefix = self.encoder.config.family.prefix
            return {**{prefix + k: v for k, v in self.hf_model.state_dict().items()}, **self.head.state_dict()}
        return dict(self.hf_model.state_dict())


OUTPUTS = {"AutoModelForQuestionAnswering": "qa", "AutoModelForMaskedLM": "mlm"}


def build_model(model_dir: str | Path, task, cfg: GenericConfig) -> tuple[GenericTaskModel, list[str]]:
    """The task's model from a checkpoint directory (its weights loaded by transformers, strictly for
    the encoder): transformers' own *For<Task>* model when the task's head is transformers' own,
    else AutoModel + the seqtune head. Returns (model, report lines)."""
    transformers = import_transformers(cfg.model_type)
    auto = head_class(task, cfg)
    config = _config_for(transformers, cfg, task)
    cls = getattr(transformers, auto or "AutoModel")
    kwargs = {}
    if auto is None and "add_pooling_layer" in inspect.signature(
            getattr(transformers, class_name_for("AutoModel", cfg.model_type))).parameters:
        kwargs["add_pooling_layer"] = False  # seqtune's heads do not read transformers' pooler
    try:
        with quiet(transformers):  # seqtune reports what was loaded and what starts fresh itself
            hf_model, info = cls.from_pretrained(str(model_dir), config=config, output_loading_info=True, **kwargs)
    except (OSError, ValueError, RuntimeError) as e:
        raise SeqtuneError(f"transformers cannot load {model_dir} as {cls.__name__}: {str(e).splitlines()[0]}") from None
    hf_model.float()
    base = hf_model if auto is None else hf_model.base_model
    prefix = cfg.family.prefix if auto is not None else ""
    head_keys = [k for k in hf_model.state_dict() if not (k.startswith(prefix) if prefix else True)]
    missing = [k for k in info["missing_keys"] if k not in head_keys and not _optional_key(k.removeprefix(prefix))]
    mismatched = [str(m[0]) if isinstance(m, tuple) else str(m) for m in info.get("mismatched_keys", [])]
    if missing or mismatched:
        raise SeqtuneError(
            f"checkpoint {model_dir} does not match its config.json (model_type {cfg.model_type!r}): "
            + "; ".join(part for part in (
                f"missing encoder weights ({len(missing)}): {', '.join(missing[:8])}" if missing else "",
                f"weights of the wrong shape: {', '.join(mismatched[:6])}" if mismatched else "") if part)
        )
    layout = find_layout(base)
    encoder = GenericEncoder(base, cfg, layout)
    report = []
    if auto is not None:
        modules = {name: m for name, m in hf_model.named_children() if m is not base}
        head: Head = TransformersHead(modules)
        fresh = sorted({k.rsplit(".", 1)[0] for k in info["missing_keys"] if k in head_keys})
        if fresh:
            report.append(f"head: transformers' {type(hf_model).__name__} head, newly initialised "
                          f"({', '.join(fresh)})")
        output = OUTPUTS.get(auto, "logits")
    else:
        head = task.build_head(cfg)
        report.append(f"head: seqtune's {type(head).__name__}, newly initialised, on {type(hf_model).__name__}")
        output = "hidden"
    unused = sorted({k.rsplit(".", 1)[0] for k in info["unexpected_keys"]})
    if unused:
        report.append(f"not used from the checkpoint: {', '.join(unused[:12])}")
    if not encoder.layers_mapped:
        report.append(f"layers: no per-layer list in {type(base).__name__}{layout.why}; it trains whole "
                      "(layer strategies are refused)")
    return GenericTaskModel(encoder, head, hf_model, output), report


@contextmanager
def quiet(transformers):
    """transformers' load report and progress bars off (errors still shown)."""
    logging = transformers.utils.logging
    level, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(level)
        if bars:
            logging.enable_progress_bar()


def _config_for(transformers, cfg: GenericConfig, task):
    """The checkpoint's transformers config with the task's labels and head settings."""
    config = type(cfg.hf).from_dict(cfg.hf.to_dict())
    extra = {k: v for k, v in task.hf_config().items() if k != "architectures"}
    if "id2label" in extra:
        config.id2label = {int(k): v for k, v in extra.pop("id2label").items()}
        config.label2id = {k: int(v) for k, v in extra.pop("label2id", {v: k for k, v in config.id2label.items()}).items()}
    if extra.pop("num_labels", None) == 1:
        config.num_labels = 1
    elif head_class(task, cfg) == "AutoModelForQuestionAnswering":
        config.num_labels = 2
    for key, value in extra.items():
        setattr(config, key, value)
    if "classifier_dropout" in extra:  # task.head_dropout
        config.cls_dropout = extra["classifier_dropout"]  # DeBERTa's name for it
    return config


# ---- saving and loading ----------------------------------------------------------------------------

def save_generic_model(directory: Path, model: GenericTaskModel, task, tokenizer, meta_file: str) -> None:
    """A generic-path model in the layout transformers reads: config.json, model.safetensors (with
    its *For<Task>* class's names for transformers' own heads; the encoder, which AutoModel loads,
    and seqtune's head otherwise), tokenizer files and `meta_file` (seqtune.json: the task and its state)."""
    config = model.hf_model.config
    own = model.output != "hidden"
    config.architectures = [type(model.hf_model).__name__ if own else
                            class_name_for("AutoModel", model.encoder.config.model_type)]
    with quiet(import_transformers(model.encoder.config.model_type)):
        config.save_pretrained(str(directory))
    state = model.hf_state_dict()
    tied = _tied_keys(state)
    save_weights(directory / "model.safetensors", {k: v for k, v in state.items() if k not in tied})
    tokenizer.save(directory)
    write_json(directory / meta_file, {
        "task": asdict(task.options),
        "data": asdict(task.data),
        "task_state": task.state(),
        "has_pooler": False,
        "path": "transformers",
    })


def _tied_keys(state: dict[str, torch.Tensor]) -> set[str]:
    """Keys whose tensor shares memory with an earlier key (tied weights, e.g. an MLM decoder):
    safetensors stores each tensor once, and transformers re-ties them when it loads."""
    seen: dict[tuple, str] = {}
    tied = set()
    for key, tensor in state.items():
        ident = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
        if ident in seen:
            tied.add(key)
        else:
            seen[ident] = key
    return tied


def load_generic_trained_model(path: Path, task, cfg: GenericConfig) -> GenericTaskModel:
    """A generic-path model saved by seqtune: every weight must be in the directory (strict)."""
    model, report = build_model(path, task, cfg)
    if model.output == "hidden":
        weights = read_weights(path)
        expected = model.head.state_dict()
        missing = [k for k in expected if k not in weights]
        if missing:
            raise SeqtuneError(f"{path}: head weights missing from the checkpoint: {', '.join(missing)}")
        model.head.load_state_dict({k: weights[k] for k in expected})
    elif any(line.startswith("head:") for line in report):
        raise SeqtuneError(f"{path}: head weights missing from the checkpoint ({report[0]}).")
    model.eval()
    return model


