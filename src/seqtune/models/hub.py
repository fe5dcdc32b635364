"""Resolving a Hugging Face Hub model id to a local directory — a thin, optional path.

seqtune works on local checkpoint directories. When `model.path` is not a local directory but looks
like a hub id ("org/name" or "name"), the files seqtune reads are downloaded once into the hub cache
through `huggingface_hub`, an optional dependency: `pip install "seqtune[hub]"`. The download itself
is not exercised by the tests (no network there); the message without huggingface_hub is.
"""

from __future__ import annotations

from pathlib import Path

from seqtune.errors import SeqtuneError

FILES = ["config.json", "model.safetensors", "pytorch_model.bin", "vocab.txt", "tokenizer.json",
         "tokenizer_config.json", "special_tokens_map.json"]


def looks_like_hub_id(path: str) -> bool:
    return not Path(path).exists() and not path.startswith((".", "/", "~")) and path.count("/") <= 1


def resolve_model_path(path: str) -> str:
    """A local directory as it is; a hub id through huggingface_hub; otherwise a clear error."""
    if Path(path).is_dir() or not looks_like_hub_id(path):
        return path
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise SeqtuneError(
            f"model directory {path!r} does not exist. To fetch {path!r} from the Hugging Face Hub, "
            "install seqtune's hub extra, which brings huggingface_hub: pip install \"seqtune[hub]\"; "
            "or download the checkpoint and give its directory."
        ) from None
    try:
        return snapshot_download(repo_id=path, allow_patterns=FILES)
    except Exception as e:  # network errors, unknown repository, ...
        raise SeqtuneError(f"model {path!r} is not a local directory and could not be fetched "
                           f"from the Hugging Face Hub: {e}") from None
