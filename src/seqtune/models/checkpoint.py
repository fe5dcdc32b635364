"""Reading and writing Hugging Face-format checkpoint directories.

A checkpoint directory holds `config.json`, weights in `model.safetensors` (or `pytorch_model.bin`,
or shards listed by their `.index.json`) and tokenizer files. Encoder weights use Hugging Face names
(`bert.encoder.layer.0.attention.self.query.weight`, ...; RoBERTa and XLM-R the same names under
`roberta.`, the family's `prefix` in encoder.FAMILIES; DistilBERT, ELECTRA and ESM names of their own,
`KEY_NAMES`); this module maps them to our module names (`layers.0.attention.qkv.weight`, with
query, key and value fused) and back. Head weights keep their
Hugging Face names (`classifier.weight`, ...): our head modules are named so that their state-dict
keys already are those names.

Loading is strict: an encoder weight that is missing or left over is an error that lists them.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from seqtune.errors import SeqtuneError
from seqtune.files import read_json_object
from seqtune.models.encoder import FAMILIES, EncoderConfig

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
# What read_weights looks for, in this order: safetensors before pickled PyTorch, one file before shards.
WEIGHT_CANDIDATES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                     "pytorch_model.bin.index.json")
CONVERT_ADVICE = (
    "Convert it to safetensors in an environment where you trust its source: load it there and save "
    "the model's tensors with safetensors (safetensors.torch.save_file(state_dict, \"model.safetensors\"), "
    "or transformers' save_pretrained(directory, safe_serialization=True)); then give seqtune the "
    "directory with model.safetensors."
)

# Per family: Hugging Face module name (without the family prefix; {n} = layer index) -> our module
# name. Every parameter of a module maps with it (weight, bias).
BERT_NAMES = {
    "embeddings.word_embeddings": "embeddings.word",
    "embeddings.position_embeddings": "embeddings.position",
    "embeddings.token_type_embeddings": "embeddings.token_type",
    "embeddings.LayerNorm": "embeddings.norm",
    "pooler.dense": "pooler.dense",
    "encoder.layer.{n}.attention.self.query": "layers.{n}.attention.query",
    "encoder.layer.{n}.attention.self.key": "layers.{n}.attention.key",
    "encoder.layer.{n}.attention.self.value": "layers.{n}.attention.value",
    "encoder.layer.{n}.attention.output.dense": "layers.{n}.attention.out",
    "encoder.layer.{n}.attention.output.LayerNorm": "layers.{n}.attention_norm",
    "encoder.layer.{n}.intermediate.dense": "layers.{n}.ffn_in",
    "encoder.layer.{n}.output.dense": "layers.{n}.ffn_out",
    "encoder.layer.{n}.output.LayerNorm": "layers.{n}.ffn_norm",
}
ELECTRA_NAMES = {**{k: v for k, v in BERT_NAMES.items() if not k.startswith("pooler.")},
                 "embeddings_project": "embeddings.project"}
DISTILBERT_NAMES = {
    "embeddings.word_embeddings": "embeddings.word",
    "embeddings.position_embeddings": "embeddings.position",
    "embeddings.LayerNorm": "embeddings.norm",
    "transformer.layer.{n}.attention.q_lin": "layers.{n}.attention.query",
    "transformer.layer.{n}.attention.k_lin": "layers.{n}.attention.key",
    "transformer.layer.{n}.attention.v_lin": "layers.{n}.attention.value",
    "transformer.layer.{n}.attention.out_lin": "layers.{n}.attention.out",
    "transformer.layer.{n}.sa_layer_norm": "layers.{n}.attention_norm",
    "transformer.layer.{n}.ffn.lin1": "layers.{n}.ffn_in",
    "transformer.layer.{n}.ffn.lin2": "layers.{n}.ffn_out",
    "transformer.layer.{n}.output_layer_norm": "layers.{n}.ffn_norm",
}
ESM_NAMES = {
    "embeddings.word_embeddings": "embeddings.word",
    "embeddings.layer_norm": "embeddings.norm",  # ESM-1b's emb_layer_norm_before; ESM-2 has none
    "encoder.layer.{n}.attention.self.query": "layers.{n}.attention.query",
    "encoder.layer.{n}.attention.self.key": "layers.{n}.attention.key",
    "encoder.layer.{n}.attention.self.value": "layers.{n}.attention.value",
    "encoder.layer.{n}.attention.output.dense": "layers.{n}.attention.out",
    "encoder.layer.{n}.attention.LayerNorm": "layers.{n}.attention_norm",  # before attention
    "encoder.layer.{n}.intermediate.dense": "layers.{n}.ffn_in",
    "encoder.layer.{n}.output.dense": "layers.{n}.ffn_out",
    "encoder.layer.{n}.LayerNorm": "layers.{n}.ffn_norm",  # before the feed-forward
    "encoder.emb_layer_norm_after": "final_norm",
}
KEY_NAMES = {"bert": BERT_NAMES, "roberta": BERT_NAMES, "xlm-roberta": BERT_NAMES, "electra": ELECTRA_NAMES,
             "distilbert": DISTILBERT_NAMES, "esm": ESM_NAMES}
QKV = ("query", "key", "value")
# Buffers some checkpoints carry that hold no learnt weights (ESM's rotary frequencies are computed;
# transformers 5 saves its one shared copy under a literal "*" layer).
IGNORED_KEYS = ("embeddings.position_ids", "embeddings.token_type_ids", "rotary_embeddings.inv_freq",
                "encoder.layer.{n}.attention.self.rotary_embeddings.inv_freq",
                "encoder.layer.*.attention.self.rotary_embeddings.inv_freq")
# Modules inside the encoder's prefix that are not the encoder: kept as other (head) weights.
NOT_ENCODER = ("contact_head.",)  # ESM's contact prediction head
LAYER_INDEX = re.compile(r"(?<=\.layer\.)(\d+)(?=\.)")  # encoder.layer.3.output -> 3
OUR_LAYER_INDEX = re.compile(r"^layers\.(\d+)(?=\.)")  # layers.3.ffn_in -> 3


def _template(module: str, pattern: re.Pattern) -> tuple[str, str | None]:
    """("encoder.layer.{n}.output.dense", "3") from "encoder.layer.3.output.dense"."""
    found = pattern.search(module)
    if found is None:
        return module, None
    return module[:found.start(1)] + "{n}" + module[found.end(1):], found.group(1)


def encoder_prefixes(model_type: str) -> tuple[str, ...]:
    """First name parts of the encoder's keys in a base-model checkpoint (no family prefix)."""
    names = [*KEY_NAMES[model_type], *IGNORED_KEYS, *NOT_ENCODER]
    return tuple(sorted({name.split(".")[0] + "." for name in names}))


def read_config(model_dir: str | Path) -> dict:
    path = Path(model_dir) / "config.json"
    if not Path(model_dir).is_dir():
        raise SeqtuneError(f"model directory {str(model_dir)!r} does not exist.")
    if not path.is_file():
        raise SeqtuneError(
            f"{model_dir} has no config.json; a Hugging Face checkpoint directory needs config.json, "
            f"weights ({' or '.join(WEIGHT_FILES)}) and tokenizer files."
        )
    return read_json_object(path)


def read_weights(model_dir: str | Path) -> dict[str, torch.Tensor]:
    """All weights of a checkpoint directory, by Hugging Face name: one file, or the shards that an
    index (`model.safetensors.index.json` / `pytorch_model.bin.index.json`) lists."""
    model_dir = Path(model_dir)
    for name in WEIGHT_CANDIDATES:
        if (model_dir / name).is_file():
            read = _read_shards if name.endswith(".index.json") else _read_weight_file
            return read(model_dir / name)
    raise SeqtuneError(
        f"{model_dir} has no weights: expected one of {', '.join(WEIGHT_FILES)}, or a sharded "
        f"checkpoint's {WEIGHT_FILES[0]}.index.json with its shards."
    )


def _read_weight_file(path: Path) -> dict[str, torch.Tensor]:
    if path.name.endswith(".safetensors"):
        try:
            return load_file(path)
        except SafetensorError as e:
            raise SeqtuneError(f"{path} is incomplete or not a valid safetensors file ({e}); the file may "
                               "have been cut short by an interrupted copy or download: copy or download "
                               "it again.") from None
    return _read_pickled_weights(path)


def _read_pickled_weights(path: Path) -> dict[str, torch.Tensor]:
    """A `torch.save`d state dict, unpickled with `weights_only=True`: tensors (in dicts) only, never
    other Python objects, whose unpickling can run code."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(e))
        if found and not _truncated_name(found.group(1)):
            raise SeqtuneError(
                f"{path} holds Python objects besides tensors (a pickled {found.group(1)}), and seqtune "
                f"does not unpickle objects, which can run code. {CONVERT_ADVICE}"
            ) from None
        raise SeqtuneError(f"{path} is incomplete or not a PyTorch weights file (torch.load cannot read "
                           "it); copy or download it again.") from None
    except PermissionError:
        raise
    except Exception as e:  # noqa: BLE001 - a cut-off or foreign file fails anywhere in torch.load
        reason = str(e).split(". ")[0].strip()
        raise SeqtuneError(f"{path} is incomplete or not a PyTorch weights file (torch.load: "
                           f"{type(e).__name__}{': ' + reason if reason else ''}); copy or download it "
                           "again.") from None
    others = [k for k, v in state.items() if not isinstance(v, torch.Tensor)] if isinstance(state, dict) else None
    if others is None or others:
        what = (f"its entries {', '.join(map(repr, others[:5]))} are not tensors" if others else
                f"it holds a {type(state).__name__}, not a dict of tensors")
        raise SeqtuneError(f"{path} is not a state dict of weights: {what} (a training checkpoint "
                           f"rather than model weights?). {CONVERT_ADVICE}")
    return state


def _truncated_name(name: str) -> bool:
    """A global that names a loaded module but not one of its attributes: a pickle cut off mid-name."""
    module, _, attribute = name.rpartition(".")
    return module in sys.modules and not hasattr(sys.modules[module], attribute)


def _read_shards(index_path: Path) -> dict[str, torch.Tensor]:
    """The shards named by a Hugging Face index's `weight_map` ({weight name: shard file}), merged;
    a missing shard or a weight that is not in the shard the index names is an error."""
    weight_map = read_json_object(index_path).get("weight_map")
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise SeqtuneError(f"{index_path} is not a checkpoint index: it needs a 'weight_map' object "
                           "{weight name: shard file}.")
    state: dict[str, torch.Tensor] = {}
    for shard in sorted(set(weight_map.values())):
        path = index_path.parent / shard
        if not path.is_file():
            raise SeqtuneError(f"{index_path} names the shard {shard!r}, which is not in {index_path.parent}.")
        state.update(_read_weight_file(path))
    absent = sorted(k for k in weight_map if k not in state)
    if absent:
        raise SeqtuneError(f"{index_path}: {len(absent)} weight(s) listed in the index are not in their "
                           f"shards: {', '.join(absent[:10])}{' ...' if len(absent) > 10 else ''}")
    return state


def _normalise_legacy_names(key: str) -> str:
    # Checkpoints converted from TensorFlow name LayerNorm parameters gamma/beta.
    return key.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")


def encoder_key_from_hf(key: str, model_type: str = "bert") -> str | None:
    """`encoder.layer.3.output.dense.weight` -> `layers.3.ffn_out.weight`; None if not an encoder key.

    Query/key/value keys return `layers.N.attention.<query|key|value>.<param>`; they are fused later.
    """
    module, _, param = key.rpartition(".")
    template, n = _template(module, LAYER_INDEX)
    ours = KEY_NAMES[model_type].get(template)
    if ours is None or not param:
        return None
    return f"{ours.format(n=n)}.{param}"


def _ignored(key: str) -> bool:
    return _template(key, LAYER_INDEX)[0] in IGNORED_KEYS


@dataclass
class SplitCheckpoint:
    """A checkpoint's tensors, divided into encoder weights (our names) and everything else."""

    encoder: dict[str, torch.Tensor]
    other: dict[str, torch.Tensor]  # head and pretraining-head weights, Hugging Face names
    unmapped_encoder_keys: list[str] = field(default_factory=list)


def split_checkpoint(state: dict[str, torch.Tensor], family_prefix: str = "bert.",
                     model_type: str = "bert") -> SplitCheckpoint:
    """Separate encoder tensors (mapped to our names, q/k/v fused) from head tensors.

    family_prefix: the encoder's key prefix in *For* checkpoints (EncoderConfig.family.prefix); a
    base-model checkpoint (BertModel, RobertaModel) has none. model_type: whose key names (KEY_NAMES)."""
    prefix = family_prefix if any(k.startswith(family_prefix) for k in state) else ""
    base_prefixes = encoder_prefixes(model_type)
    encoder: dict[str, torch.Tensor] = {}
    other: dict[str, torch.Tensor] = {}
    unmapped: list[str] = []
    for raw_key, tensor in state.items():
        key = _normalise_legacy_names(raw_key)
        inner = key[len(prefix):] if prefix and key.startswith(prefix) else None
        if prefix == "" and key.startswith(base_prefixes):
            inner = key
        if inner is None or inner.startswith(NOT_ENCODER):
            other[key] = tensor
            continue
        if _ignored(inner):
            continue
        ours = encoder_key_from_hf(inner, model_type)
        if ours is None:
            unmapped.append(raw_key)
        else:
            encoder[ours] = tensor
    _fuse_qkv(encoder)
    return SplitCheckpoint(encoder, other, unmapped)


def _fuse_qkv(encoder: dict[str, torch.Tensor]) -> None:
    for key in [k for k in encoder if ".attention.query." in k]:
        stem, param = key.split(".attention.query.")
        parts = [encoder.pop(f"{stem}.attention.{name}.{param}", None) for name in QKV]
        if any(p is None for p in parts):
            # Leave what we found under its own name; the strict check reports the gap.
            for name, p in zip(QKV, parts):
                if p is not None:
                    encoder[f"{stem}.attention.{name}.{param}"] = p
            continue
        encoder[f"{stem}.attention.qkv.{param}"] = torch.cat(parts, dim=0)
    # A key or value without its query stays under its own name: the strict load reports it.


def encoder_state_to_hf(state: dict[str, torch.Tensor], prefix: str = "bert.",
                        model_type: str = "bert") -> dict[str, torch.Tensor]:
    """Our encoder state dict -> Hugging Face keys of `model_type` (q/k/v split again)."""
    reverse = {ours: theirs for theirs, ours in KEY_NAMES[model_type].items()}
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        module, _, param = key.rpartition(".")
        template, n = _template(module, OUR_LAYER_INDEX)
        if template.endswith(".attention.qkv"):
            for name, chunk in zip(QKV, tensor.chunk(3, dim=0)):
                theirs = reverse[template.replace(".qkv", f".{name}")]
                out[f"{prefix}{theirs.format(n=n)}.{param}"] = chunk
        elif template in reverse:
            out[f"{prefix}{reverse[template].format(n=n)}.{param}"] = tensor
        else:
            raise ValueError(f"unknown encoder key {key}")
    return out


def load_encoder_state(encoder: torch.nn.Module, split: SplitCheckpoint, source: str) -> list[str]:
    """Load encoder weights strictly. Returns report lines (e.g. a freshly initialised pooler).

    Missing or unexpected encoder weights raise an error naming them. A pooler absent from the
    checkpoint (token-classification checkpoints have none) is initialised fresh and reported.
    """
    expected = encoder.state_dict()
    given = dict(split.encoder)
    report = []
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected] + split.unmapped_encoder_keys
    pooler_missing = [k for k in missing if k.startswith("pooler.")]
    if pooler_missing and len(pooler_missing) == len(missing):
        report.append("pooler: not in the checkpoint, newly initialised")
        missing = []
    unexpected = [k for k in unexpected if not k.startswith("pooler.")]  # unused pooler is fine
    if missing or unexpected:
        model_type = encoder.config.model_type
        missing, unexpected = _hf_names(missing, model_type), _hf_names(unexpected, model_type)
        lines = []
        if missing:
            lines.append(f"missing encoder weights ({len(missing)}): {', '.join(missing[:12])}")
        if unexpected:
            lines.append(f"unexpected encoder weights ({len(unexpected)}): {', '.join(unexpected[:12])}")
        raise SeqtuneError(
            f"checkpoint {source} does not match its config.json (model_type {encoder.config.model_type!r}, "
            f"{encoder.config.num_hidden_layers} layers, hidden {encoder.config.hidden_size}): "
            + "; ".join(lines)
        )
    shapes = [
        f"{k}: checkpoint {tuple(given[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in given and given[k].shape != v.shape
    ]
    if shapes:
        raise SeqtuneError(f"checkpoint {source} has weights of the wrong shape: " + "; ".join(shapes[:6]))
    encoder.load_state_dict({k: v for k, v in given.items() if k in expected}, strict=False)
    return report


def _hf_names(keys: list[str], model_type: str = "bert") -> list[str]:
    """Our encoder keys as the checkpoint names them (for messages); unknown keys pass through."""
    names = []
    for key in keys:
        try:
            names.extend(encoder_state_to_hf({key: torch.empty(3)}, prefix="", model_type=model_type))
        except (KeyError, ValueError, IndexError):
            names.append(key)
    return names


def encoder_config_from_dir(model_dir: str | Path) -> EncoderConfig:
    config = read_config(model_dir)
    if config.get("model_type", "bert") not in FAMILIES:  # no native implementation: through transformers
        from seqtune.models.hf_config import generic_config
        return generic_config(model_dir, config)
    return EncoderConfig.from_dict(config)


def save_weights(path: Path, state: dict[str, torch.Tensor]) -> None:
    save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, str(path))
    # save_file creates the file with mode 0600; give it the mode of every other file we write.
    os.chmod(path, 0o666 & ~current_umask())


def current_umask() -> int:
    """The process's umask, read without changing it where Linux shows it (/proc/self/status)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore at once
    os.umask(mask)
    return mask


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
