"""Resolving a Hugging Face Hub model id to a local directory — a thin, optional path.

seqtune works on local checkpoint directories. When `model.path` is not a local directory but looks
like a hub id ("org/name" or "name"), the checkpoint is downloaded once into the hub cache through
`huggingface_hub`, an optional dependency: `pip install "seqtune[hub]"`.

- The download is pinned: `model.revision` (a branch, tag or commit; default the main branch) is
  resolved to one commit, and every file comes from that commit. The commit goes into results.json.
- Only the weights that `checkpoint.read_weights` will read are fetched: `model.safetensors`, else its
  index and the shards the index names, else `pytorch_model.bin` (or its index and shards) — never
  every format a repository offers. Config and tokenizer files come with them.
- Without the network (or with HF_HUB_OFFLINE=1) a snapshot already in the cache is used, with a
  warning.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from seqtune.errors import SeqtuneError
from seqtune.logs import logger
from seqtune.models.checkpoint import WEIGHT_CANDIDATES, read_json_object

# Everything besides the weights that seqtune reads from a checkpoint directory.
CONFIG_FILES = ("config.json", "vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
# Tokenizer files without a tokenizer.json that the transformers path converts (hf_encoder.generic_tokenizer).
CONFIG_FILES += ("spm.model", "sentencepiece.bpe.model", "vocab.json", "merges.txt", "added_tokens.json")
NOT_FOUND = {"RepositoryNotFoundError", "RevisionNotFoundError"}  # huggingface_hub's errors, by name


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from: a local directory, and for a hub id the repository and its commit."""

    path: str  # the local directory to read
    hub_id: str | None = None
    commit: str | None = None  # the hub commit the files were downloaded from

    def run_info(self) -> dict:
        """What results.json records under "run" (nothing for a local directory)."""
        return {"model_hub_id": self.hub_id, "model_revision": self.commit} if self.hub_id else {}


def looks_like_hub_id(path: str) -> bool:
    return not Path(path).exists() and not path.startswith((".", "/", "~")) and path.count("/") <= 1


def resolve_model(path: str, revision: str | None = None) -> ModelSource:
    """A local directory as it is; a hub id through huggingface_hub; otherwise a clear error."""
    if Path(path).is_dir() or not looks_like_hub_id(path):
        if revision is not None:
            raise SeqtuneError(f"model.revision {revision!r} applies to hub ids only, but model.path {path!r} "
                               "is a local path; unset model.revision.")
        return ModelSource(path)
    try:
        import huggingface_hub  # noqa: F401 - only to say so when it is missing
    except ImportError:
        raise SeqtuneError(
            f"model directory {path!r} does not exist. To fetch {path!r} from the Hugging Face Hub, "
            "install seqtune's hub extra, which brings huggingface_hub: pip install \"seqtune[hub]\"; "
            "or download the checkpoint and give its directory."
        ) from None
    return _download(path, revision)


def _download(repo_id: str, revision: str | None) -> ModelSource:
    from huggingface_hub import model_info, snapshot_download

    where = f"{repo_id!r}" + (f" at revision {revision!r}" if revision else "")
    try:
        info = model_info(repo_id, revision=revision)
    except Exception as e:  # noqa: BLE001 - network errors, unknown repository or revision, ...
        if NOT_FOUND & {c.__name__ for c in type(e).__mro__}:
            raise SeqtuneError(_not_found(repo_id, revision, e)) from None
        cached = _cached_snapshot(repo_id, revision)
        if cached is None:
            raise SeqtuneError(f"model {where} is not a local directory and could not be fetched from the "
                               f"Hugging Face Hub, nor found in its cache: {_reason(e)}") from None
        logger.warning(f"model: the Hugging Face Hub could not be reached ({_reason(e)}); using the cached "
                       f"snapshot of {repo_id} at commit {Path(cached).name}")
        return ModelSource(cached, repo_id, Path(cached).name)
    commit = info.sha
    files = {s.rfilename for s in info.siblings or []}
    if "config.json" not in files:
        raise SeqtuneError(f"the hub model {repo_id!r} (commit {commit}) has no config.json; seqtune needs a "
                           "Hugging Face checkpoint with config.json, weights and tokenizer files.")
    try:
        wanted = [f for f in CONFIG_FILES if f in files] + _weight_files(repo_id, commit, files)
        directory = snapshot_download(repo_id, revision=commit, allow_patterns=wanted)
    except SeqtuneError:
        raise
    except Exception as e:  # noqa: BLE001 - network errors, disk full, ...
        raise SeqtuneError(f"model {where}: downloading from the Hugging Face Hub failed: {_reason(e)}") from None
    logger.info(f"model: {repo_id} at commit {commit} from the Hugging Face Hub ({', '.join(wanted)})")
    return ModelSource(str(directory), repo_id, commit)


def _weight_files(repo_id: str, commit: str, files: set[str]) -> list[str]:
    """The weight files read_weights will read, in its order: one file, or an index and its shards."""
    from huggingface_hub import hf_hub_download

    for name in WEIGHT_CANDIDATES:
        if name not in files:
            continue
        if not name.endswith(".index.json"):
            return [name]
        index = Path(hf_hub_download(repo_id, name, revision=commit))
        weight_map = read_json_object(index).get("weight_map")
        if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
            raise SeqtuneError(f"{name} of the hub model {repo_id!r} (commit {commit}) is not a checkpoint "
                               "index: it needs a 'weight_map' object {weight name: shard file}.")
        return [name, *sorted(set(weight_map.values()))]
    listed = ", ".join(sorted(files)[:20]) + (" ..." if len(files) > 20 else "")
    raise SeqtuneError(f"the hub model {repo_id!r} (commit {commit}) has no weights seqtune reads: expected "
                       f"{' or '.join(WEIGHT_CANDIDATES)}; it has {listed or 'no files'}.")


def _cached_snapshot(repo_id: str, revision: str | None) -> str | None:
    """A snapshot of the repository already in the hub cache (offline use), or None."""
    from huggingface_hub import snapshot_download

    try:  # only config.json is asked for: the cache holds one weight format, which read_weights finds
        return str(snapshot_download(repo_id, revision=revision, local_files_only=True,
                                     allow_patterns=["config.json"]))
    except Exception:  # noqa: BLE001 - not in the cache
        return None


def _not_found(repo_id: str, revision: str | None, e: Exception) -> str:
    if "RevisionNotFoundError" in {c.__name__ for c in type(e).__mro__}:
        return (f"model.revision {revision!r} is not a branch, tag or commit of the hub model {repo_id!r}: "
                f"{_reason(e)}")
    return (f"model {repo_id!r} is not a local directory, and the Hugging Face Hub has no model of that "
            "name that you may access (a private or gated model needs a token: `hf auth login` or "
            f"HF_TOKEN): {_reason(e)}")


def _reason(e: Exception) -> str:
    """The first line of an exception's message (huggingface_hub's run to several)."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return lines[0] if lines else type(e).__name__
