"""The configuration of an encoder on the generic path (`hf_encoder.py`), read by transformers.

`checkpoint.encoder_config_from_dir` hands a config.json whose `model_type` has no native
implementation to `generic_config`, which gives a `GenericConfig`: the settings the rest of seqtune
reads from an encoder config (sizes, positions, `family`), with transformers' own config in `hf`.
transformers is imported here on first use, never at module level.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from seqtune.errors import SeqtuneError
from seqtune.models.encoder import FAMILIES

INSTALL = 'pip install "seqtune[hf]"'
# Families whose position ids start after the padding id (RoBERTa's convention): their
# max_position_embeddings counts pad_token_id + 1 slots that tokens never use.
OFFSET_POSITIONS = {"camembert", "data2vec-text", "roberta-prelayernorm", "xlm-roberta-xl", "xmod", "mpnet",
                    "longformer", "ibert", "luke", "esm"}
MAPPINGS = {  # auto class -> the module-level table of model_type -> class name
    "AutoModel": "MODEL_MAPPING_NAMES",
    "AutoModelForSequenceClassification": "MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES",
    "AutoModelForTokenClassification": "MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES",
    "AutoModelForQuestionAnswering": "MODEL_FOR_QUESTION_ANSWERING_MAPPING_NAMES",
    "AutoModelForMaskedLM": "MODEL_FOR_MASKED_LM_MAPPING_NAMES",
}


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
