"""The generic path: encoders seqtune has no native implementation of, run through `transformers`.

A checkpoint whose config.json names a `model_type` outside `encoder.FAMILIES` (DeBERTa-v2/v3,
ModernBERT, MPNet, ALBERT, ...) is loaded with `transformers` (an optional dependency,
`pip install "seqtune[hf]"`, imported only here) and put behind the interface the rest of seqtune
uses: `GenericTaskModel.forward(batch)` returns the task's logits, `model.encoder` has `config`,
`embeddings`, `layers`, `pooler` and `init_weights` for the fine-tuning strategies, and the saved
directory is a Hugging Face checkpoint.

- Heads: where the task's head is transformers' own (the sequence tasks' `pooler` head, the token
  tasks' `linear` head, QA's span head, MLM's head), the model *is* transformers'
  `AutoModelFor<Task>` of the family, so what seqtune saves loads with that class and gives the same
  logits. Every other seqtune head (cls/mean/mlp pooling, mlp/conv token heads) runs on
  `AutoModel`'s last hidden states; `AutoModel` then loads the saved encoder.
- Layers: freezing, top-N, re-initialisation and layer-wise learning-rate decay need one module per
  layer. `find_layout` looks for the layer list under the usual names (`encoder.layer`, `layers`,
  `transformer.layer`, ...); the other encoder modules (DeBERTa's relative position embeddings,
  ModernBERT's final norm, ...) join the embeddings when the forward pass uses them before the first
  layer and the top layer when it uses them after the last. A model without such a list (ALBERT
  shares one layer group across its depth) trains whole; the layer strategies are refused.
- Not on this path: packed blocks, the [CLS]-only last block and the frozen-layer activation cache
  (transformers runs the encoder whole), so `NATIVE_ADDS` is what the log says a native
  implementation would add.
"""

from __future__ import annotations

import inspect
import json
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from seqtune.errors import SeqtuneError
from seqtune.models.encoder import FAMILIES
from seqtune.models.heads import Head

INSTALL = 'pip install "seqtune[hf]"'
NATIVE_ADDS = ("packed blocks that skip padding, a [CLS]-only last block for sequence heads and the "
               "frozen-layer activation cache")
# Where encoders keep their list of layers, most common first.
LAYER_LISTS = ("encoder.layer", "layers", "encoder.layers", "transformer.layer", "layer", "encoder.blocks",
               "blocks")
# Families whose position ids start after the padding id (RoBERTa's convention): their
# max_position_embeddings counts pad_token_id + 1 slots that tokens never use.
OFFSET_POSITIONS = {"camembert", "data2vec-text", "roberta-prelayernorm", "xlm-roberta-xl", "xmod", "mpnet",
                    "longformer", "ibert", "luke", "esm"}
# seqtune's head class name (tasks name BERT's) -> transformers' auto class of the family's head.
AUTO_HEADS = {
    "BertForSequenceClassification": "AutoModelForSequenceClassification",
    "BertForTokenClassification": "AutoModelForTokenClassification",
    "BertForQuestionAnswering": "AutoModelForQuestionAnswering",
    "BertForMaskedLM": "AutoModelForMaskedLM",
}
MAPPINGS = {  # auto class -> the module-level table of model_type -> class name
    "AutoModel": "MODEL_MAPPING_NAMES",
    "AutoModelForSequenceClassification": "MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES",
    "AutoModelForTokenClassification": "MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES",
    "AutoModelForQuestionAnswering": "MODEL_FOR_QUESTION_ANSWERING_MAPPING_NAMES",
    "AutoModelForMaskedLM": "MODEL_FOR_MASKED_LM_MAPPING_NAMES",
}


def is_native(model_type: str) -> bool:
    return model_type in FAMILIES


def import_transformers(model_type: str):
    """The transformers module, or a clear error naming what to install."""
    try:
        import transformers
    except ImportError:
        raise SeqtuneError(
            f"model_type {model_type!r} has no native implementation in seqtune (native: "
            f"{', '.join(FAMILIES)}); it runs through the transformers library, which is not installed: "
            f"{INSTALL} (or pip install transformers)."
        ) from None
    return transformers


def class_name_for(auto_class: str, model_type: str) -> str | None:
    """The transformers class that `auto_class` builds for `model_type` (None: it has none)."""
    from transformers.models.auto import modeling_auto

    return getattr(modeling_auto, MAPPINGS[auto_class]).get(model_type)


# ---- configuration ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class GenericFamily:
    """What heads and saving read from `config.family` (cf. encoder.Family)."""

    hf_name: str  # e.g. "DebertaV2"
    prefix: str  # the base model's key prefix in *For* checkpoints, e.g. "deberta."
    offset_positions: bool = False
    pooler: bool = False  # seqtune's "pooler" head is transformers' own here, never the native Pooler


@dataclass
class GenericConfig:
    """The settings seqtune reads from an encoder config, taken from a transformers config (`hf`)."""

    hf: object = field(repr=False)  # transformers.PretrainedConfig
    model_type: str
    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    max_position_embeddings: int
    pad_token_id: int | None
    hidden_dropout_prob: float = 0.1
    initializer_range: float = 0.02
    family: GenericFamily = field(default=None)  # type: ignore[assignment]
    generic = True

    @property
    def position_offset(self) -> int:
        return (self.pad_token_id or 0) + 1 if self.model_type in OFFSET_POSITIONS else 0

    @property
    def max_tokens(self) -> int:
        return self.max_position_embeddings - self.position_offset

    def to_dict(self) -> dict:
        return self.hf.to_dict()


def generic_config(model_dir: str | Path, raw: dict) -> GenericConfig:
    """A GenericConfig for a checkpoint whose model_type has no native implementation; a clear error
    when transformers is missing, does not know the type, or the type is not an encoder."""
    model_type = str(raw.get("model_type"))
    transformers = import_transformers(model_type)
    try:
        hf = transformers.AutoConfig.from_pretrained(str(model_dir))
    except (ValueError, KeyError) as e:
        raise SeqtuneError(
            f"{model_dir}: model_type {model_type!r} is neither one seqtune runs natively "
            f"({', '.join(map(repr, FAMILIES))}) "
            f"nor one the installed transformers {transformers.__version__} can load ({str(e).splitlines()[0]}). "
            "Check config.json's model_type, or upgrade transformers if the family is newer than it."
        ) from None
    except (OSError, TypeError) as e:
        raise SeqtuneError(f"{model_dir}: transformers cannot read config.json ({e}).") from None
    if getattr(hf, "is_encoder_decoder", False) or class_name_for("AutoModelForMaskedLM", model_type) is None:
        raise SeqtuneError(
            f"{model_dir}: model_type {model_type!r} is not an encoder (transformers has no masked-language "
            f"model of it{', it is an encoder-decoder' if getattr(hf, 'is_encoder_decoder', False) else ''}); "
            "seqtune fine-tunes encoders such as BERT, RoBERTa, DeBERTa, ModernBERT, MPNet, ALBERT."
        )
    base = class_name_for("AutoModel", model_type) or ""
    prefix = _base_model_prefix(transformers, base)

    def number(*names, default):
        for name in names:
            value = getattr(hf, name, None)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return value
        return default

    max_positions = number("max_position_embeddings", "n_positions", default=512)
    return GenericConfig(
        hf=hf, model_type=model_type, vocab_size=int(number("vocab_size", default=0)),
        hidden_size=int(number("hidden_size", "dim", "d_model", default=0)),
        num_hidden_layers=int(number("num_hidden_layers", "n_layers", default=0)),
        max_position_embeddings=int(max_positions),
        pad_token_id=getattr(hf, "pad_token_id", None),
        hidden_dropout_prob=float(number("hidden_dropout_prob", "hidden_dropout", "dropout", default=0.1)),
        initializer_range=float(number("initializer_range", default=0.02)),
        family=GenericFamily(base.removesuffix("Model"), f"{prefix}." if prefix else ""),
    )


def _base_model_prefix(transformers, class_name: str) -> str:
    cls = getattr(transformers, class_name, None)
    return getattr(cls, "base_model_prefix", "") or ""


def describe_path(cfg: GenericConfig, model: GenericTaskModel) -> str:
    """The log line that says this run uses the generic path and what the native path would add."""
    import transformers

    what = type(model.hf_model).__name__
    return (f"path: through transformers {transformers.__version__} ({what}; model_type {cfg.model_type!r} "
            f"has no native implementation in seqtune). A native implementation would add {NATIVE_ADDS}.")


# ---- checks before training ------------------------------------------------------------------------

def head_class(task) -> str | None:
    """transformers' auto class for the task's head when that head is transformers' own (as the tasks'
    hf_config says: the sequence tasks' pooler head, the token tasks' linear head), else None."""
    auto = AUTO_HEADS.get(task.hf_architecture)
    return auto if getattr(task.options, "head", None) in (None, "pooler", "linear") else None


def check_task(task, cfg: GenericConfig) -> None:
    """The task can run on this generic-path model (before any data is read)."""
    auto = head_class(task)
    if auto is not None and class_name_for(auto, cfg.model_type) is None:
        alternative = " Choose one of seqtune's heads instead (task.head)." if hasattr(task.options, "head") else ""
        raise SeqtuneError(
            f"the {task.name} task needs {auto.replace('Auto', cfg.family.hf_name)} and the installed "
            f"transformers has no such class for model_type {cfg.model_type!r}.{alternative}"
        )
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


def check_tokenizer(tokenizer, cfg: GenericConfig, source: str = "") -> None:
    """The tokenizer belongs to the weights: its ids fit the embeddings and its padding id (and the
    [CLS]/[SEP] ids config.json names) are the model's."""
    where = f"{source}: " if source else ""
    if cfg.vocab_size and tokenizer.vocab_size > cfg.vocab_size:
        raise SeqtuneError(
            f"{where}the tokenizer has {tokenizer.vocab_size} tokens but the model's embeddings have "
            f"{cfg.vocab_size} rows (config.json vocab_size): the tokenizer is of another model. Use the "
            "checkpoint's own tokenizer files."
        )
    pairs = [("pad_token_id", cfg.pad_token_id, tokenizer.pad_id, "pad", "padding"),
             ("cls_token_id", getattr(cfg.hf, "cls_token_id", None), tokenizer.cls_id, "cls", "[CLS]"),
             ("sep_token_id", getattr(cfg.hf, "sep_token_id", None), tokenizer.sep_id, "sep", "[SEP]")]
    for key, expected, found, role, what in pairs:
        if isinstance(expected, int) and expected != found:
            raise SeqtuneError(
                f"{where}the tokenizer's {what} token {tokenizer.special[role]!r} has id {found} but config.json "
                f"says {key} {expected}: the tokenizer is of another family than the {cfg.model_type!r} "
                "weights. Use the checkpoint's own tokenizer files."
            )


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
    with torch.device("meta"):
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

    from seqtune.files import read_json_object
    from seqtune.models.checkpoint import WEIGHT_CANDIDATES, read_weights

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


# ---- the layer layout ------------------------------------------------------------------------------

@dataclass
class Layout:
    """Where a base model keeps its embeddings and layers; the other modules, by where they run."""

    embeddings: list[nn.Module]  # run before the first layer (the embeddings module first)
    layers: list[nn.Module] | None  # one module per layer; None when not found
    after: list[nn.Module]  # run after the last layer (final norms)
    why: str = ""  # for messages when layers is None


def find_layout(base: nn.Module) -> Layout:
    layers, list_name = None, None
    depth = getattr(base.config, "num_hidden_layers", None)
    for name in LAYER_LISTS:
        module = _get(base, name)
        if isinstance(module, nn.ModuleList) and len(module) == depth:
            layers, list_name = list(module), name
            break
    embeddings = _get(base, "embeddings")
    if not isinstance(embeddings, nn.Module):
        embeddings = base.get_input_embeddings()
    used = {id(embeddings), *(id(m) for m in layers or ())}
    others = _top_other_modules(base, used, list_name)
    if layers is None:
        lists = [n for n, m in base.named_modules() if isinstance(m, nn.ModuleList)]
        return Layout([embeddings], None, [], f" (its module lists: {', '.join(lists) or 'none'})")
    after = _run_after_layers(base, layers, others)
    return Layout([embeddings, *[m for m in others if id(m) not in after]], layers,
                  [m for m in others if id(m) in after])


def _get(module: nn.Module, dotted: str):
    for part in dotted.split("."):
        module = getattr(module, part, None)
        if module is None:
            return None
    return module


def _top_other_modules(base: nn.Module, used: set[int], list_name: str | None) -> list[nn.Module]:
    """The largest modules holding parameters or buffers that are outside the embeddings and layers."""
    skip = {id(_get(base, list_name))} if list_name else set()
    found: list[nn.Module] = []

    def visit(module: nn.Module) -> None:
        for child in module.children():
            if id(child) in used or id(child) in skip:
                continue
            inside = any(id(m) in used or id(m) in skip for m in child.modules())
            if inside:
                visit(child)
            elif any(True for _ in child.parameters()) or any(True for _ in child.buffers()):
                found.append(child)
        own = dict(module.named_parameters(recurse=False))
        if own:  # weights held by a container module itself (e.g. a learnt mask embedding)
            found.append(ParameterHolder(own))

    visit(base)
    return found


class ParameterHolder(nn.Module):
    """Parameters a container module holds itself, registered once more so they belong to a block."""

    def __init__(self, parameters: dict[str, nn.Parameter]):
        super().__init__()
        for name, parameter in parameters.items():
            self.register_parameter(name, parameter)


def _run_after_layers(base: nn.Module, layers: list[nn.Module], others: list[nn.Module]) -> set[int]:
    """The modules among `others` whose forward runs after the last layer's (one tiny forward pass)."""
    events: list[int] = []

    def record(module: nn.Module, args, output) -> None:
        events.append(id(module))

    hooks = [m.register_forward_hook(record) for m in [*others, layers[-1]]]
    try:
        device = next(base.parameters()).device
        if device.type == "meta":  # a skeleton (check_strategy) only needs the layer list
            return set()
        was_training = base.training
        base.eval()
        with torch.no_grad():
            base(input_ids=torch.tensor([[1, 2, 3]], device=device),
                 attention_mask=torch.ones(1, 3, dtype=torch.long, device=device))
        base.train(was_training)
    finally:
        for hook in hooks:
            hook.remove()
    last = max(i for i, key in enumerate(events) if key == id(layers[-1]))
    return {key for key in events[last + 1:]}


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
            slots = [LayerSlot(nn.Module(), [m for m in _top_other_modules(base, used, None)])]
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

    generic = True

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


def build_model(model_dir: str | Path, task, cfg: GenericConfig, load_weights: bool = True
                ) -> tuple[GenericTaskModel, list[str]]:
    """The task's model from a checkpoint directory (its weights loaded by transformers, strictly for
    the encoder): transformers' own *For<Task>* model when the task's head is transformers' own,
    else AutoModel + the seqtune head. Returns (model, report lines)."""
    transformers = import_transformers(cfg.model_type)
    auto = head_class(task)
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
    elif head_class(task) == "AutoModelForQuestionAnswering":
        config.num_labels = 2
    for key, value in extra.items():
        setattr(config, key, value)
    if getattr(task.options, "head_dropout", None) is not None:
        config.cls_dropout = task.options.head_dropout  # DeBERTa's name for classifier_dropout
    return config


# ---- saving and loading ----------------------------------------------------------------------------

def save_generic_model(directory: Path, model: GenericTaskModel, task, tokenizer) -> None:
    """A generic-path model in the layout transformers reads: config.json, model.safetensors (with
    its *For<Task>* class's names for transformers' own heads; the encoder, which AutoModel loads,
    and seqtune's head otherwise), tokenizer files and seqtune.json."""
    from dataclasses import asdict

    from seqtune.models.checkpoint import save_weights, write_json
    from seqtune.models.task_model import SEQTUNE_FILE

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
    write_json(directory / SEQTUNE_FILE, {
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
        from seqtune.models.checkpoint import read_weights

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


# ---- tokenizer -------------------------------------------------------------------------------------

def generic_tokenizer(model_dir: str | Path, cfg: GenericConfig):
    """The checkpoint's tokenizer: its tokenizer.json (or vocab.txt) through the `tokenizers` library,
    as on the native path; a checkpoint with only other tokenizer files (a SentencePiece spm.model,
    vocab.json + merges.txt) goes through transformers' AutoTokenizer, whose fast tokenizer is then
    used (and saved as tokenizer.json with the model)."""
    from seqtune.tokenization import Tokenizer, load_tokenizer

    model_dir = Path(model_dir)
    if (model_dir / "tokenizer.json").is_file() or (model_dir / "vocab.txt").is_file():
        tokenizer = load_tokenizer(model_dir)
    else:
        transformers = import_transformers(cfg.model_type)
        try:
            auto = transformers.AutoTokenizer.from_pretrained(str(model_dir))
        except Exception as e:  # noqa: BLE001 - transformers raises many kinds for missing converters/files
            raise SeqtuneError(
                f"{model_dir} has no tokenizer.json, and transformers could not build a fast tokenizer from "
                f"its other tokenizer files ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}). "
                "Add the tokenizer.json of the model, or install what the message names (for a SentencePiece "
                "spm.model: pip install sentencepiece)."
            ) from None
        backend = getattr(auto, "backend_tokenizer", None)
        if backend is None:
            raise SeqtuneError(f"{model_dir}: transformers has no fast tokenizer for these tokenizer files; "
                               "add the model's tokenizer.json.")
        special = {role: getattr(auto, f"{role}_token", None) for role in ("cls", "sep", "pad", "unk", "mask")}
        model = json.loads(backend.to_str()).get("model", {}).get("type")
        tokenizer = Tokenizer(backend, lowercase=bool(getattr(auto, "do_lower_case", False)),
                              model_max_length=min(int(auto.model_max_length), 1_000_000),
                              kind={"BPE": "bpe", "Unigram": "unigram"}.get(model, "wordpiece"),
                              special={k: v for k, v in special.items() if isinstance(v, str)},
                              tokenizer_class=type(auto).__name__)
    check_tokenizer(tokenizer, cfg, str(model_dir))
    return tokenizer
