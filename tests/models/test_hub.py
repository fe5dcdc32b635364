"""Hub ids as model.path, with huggingface_hub's network functions replaced by a fake hub: the download
is pinned to one commit (model.revision), the commit reaches results.json, and only the weight
format that will be read is fetched."""

from __future__ import annotations

import fnmatch
import json
import logging
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import write_sentiment_tsv

from seqtune.cli import main
from seqtune.errors import SeqtuneError
from seqtune.models.checkpoint import read_weights, save_weights
from seqtune.models.hub import NOT_FOUND, resolve_model

huggingface_hub = pytest.importorskip("huggingface_hub")

COMMIT = "0123456789abcdef0123456789abcdef01234567"
BRANCHES = {None: COMMIT, "main": COMMIT, "v1.0": COMMIT, COMMIT: COMMIT}


class RevisionNotFoundError(Exception):
    """Stands in for huggingface_hub's error of that name (matched by name, as its classes moved)."""


class RepositoryNotFoundError(Exception):
    pass


class FakeHub:
    """One repository at one commit; snapshot_download copies the files its patterns allow into a cache."""

    def __init__(self, repo: Path, cache: Path):
        self.repo, self.cache = repo, cache
        self.calls: list[tuple] = []
        self.offline = False

    def files(self) -> list[str]:
        return sorted(p.name for p in self.repo.iterdir())

    def model_info(self, repo_id, *, revision=None, **kwargs):
        self.calls.append(("model_info", repo_id, revision))
        if self.offline:
            raise ConnectionError("Cannot reach https://huggingface.co\nrequest id: 1")
        if repo_id != "org/tiny-bert":
            raise RepositoryNotFoundError(f"404 Client Error.\nRepository Not Found for url: {repo_id}")
        if revision not in BRANCHES:
            raise RevisionNotFoundError(f"404 Client Error.\nRevision Not Found for url: {revision}")
        return SimpleNamespace(sha=BRANCHES[revision],
                               siblings=[SimpleNamespace(rfilename=name) for name in self.files()])

    def snapshot_download(self, repo_id, *, revision=None, allow_patterns=None, local_files_only=False, **kwargs):
        self.calls.append(("snapshot_download", repo_id, revision, tuple(allow_patterns or ()), local_files_only))
        snapshot = self.cache / "snapshots" / BRANCHES.get(revision, str(revision))
        if local_files_only:
            if not snapshot.is_dir():
                raise FileNotFoundError("not in the cache")
            return str(snapshot)
        snapshot.mkdir(parents=True, exist_ok=True)
        for name in self.files():
            if allow_patterns is None or any(fnmatch.fnmatch(name, p) for p in allow_patterns):
                shutil.copy(self.repo / name, snapshot / name)
        return str(snapshot)

    def hf_hub_download(self, repo_id, filename, *, revision=None, **kwargs):
        self.calls.append(("hf_hub_download", repo_id, filename, revision))
        target = self.cache / "snapshots" / revision / filename
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.repo / filename, target)
        return str(target)

    def downloaded(self) -> list[str]:
        """The file patterns of every downloading snapshot_download call."""
        return [name for call in self.calls if call[0] == "snapshot_download" and not call[4] for name in call[3]]


@pytest.fixture()
def hub(tmp_path, tiny_checkpoint, monkeypatch):
    repo = shutil.copytree(tiny_checkpoint, tmp_path / "repo")
    # What a hub repository often holds besides: other weight formats seqtune would not read.
    for name in ("pytorch_model.bin", "tf_model.h5", "flax_model.msgpack", "README.md"):
        (repo / name).write_bytes(b"x" * 64)
    fake = FakeHub(repo, tmp_path / "cache")
    for name in ("model_info", "snapshot_download", "hf_hub_download"):
        monkeypatch.setattr(huggingface_hub, name, getattr(fake, name))
    monkeypatch.chdir(tmp_path)  # the hub id names no local path
    return fake


def test_a_hub_id_is_pinned_and_its_commit_reaches_results_json(hub, tmp_path):
    write_sentiment_tsv(tmp_path / "train.tsv", 32)
    args = ["train", "--set", "task.type=classification", "--set", "model.path=org/tiny-bert",
            "--set", "model.revision=v1.0", "--set", f"data.train={tmp_path / 'train.tsv'}",
            "--set", "data.text_column=sentence", "--set", "train.epochs=1", "--set", "train.progress=false",
            "--set", f"output_dir={tmp_path / 'runs'}"]
    assert main(args) == 0
    assert ("model_info", "org/tiny-bert", "v1.0") in hub.calls
    downloads = [c for c in hub.calls if c[0] == "snapshot_download"]
    assert downloads and all(c[2] == COMMIT for c in downloads)  # every file from the one commit
    run = next((tmp_path / "runs").iterdir())
    results = json.loads((run / "results.json").read_text())
    assert results["run"]["model_hub_id"] == "org/tiny-bert" and results["run"]["model_revision"] == COMMIT


def test_only_the_safetensors_weights_are_downloaded(hub):
    source = resolve_model("org/tiny-bert")
    assert source.commit == COMMIT and Path(source.path).name == COMMIT
    assert sorted(hub.downloaded()) == ["config.json", "model.safetensors", "tokenizer_config.json", "vocab.txt"]
    assert sorted(p.name for p in Path(source.path).iterdir()) == sorted(hub.downloaded())
    assert read_weights(source.path)


def test_pytorch_bin_is_downloaded_only_without_safetensors(hub):
    (hub.repo / "model.safetensors").unlink()
    resolve_model("org/tiny-bert")
    weights = [f for f in hub.downloaded() if f not in ("config.json", "tokenizer_config.json", "vocab.txt")]
    assert weights == ["pytorch_model.bin"]


def test_a_sharded_checkpoint_downloads_its_index_and_the_shards_it_names(hub):
    state = read_weights(hub.repo)
    (hub.repo / "model.safetensors").unlink()
    names = sorted(state)
    shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    for shard, keys in shards.items():
        save_weights(hub.repo / shard, {k: state[k] for k in keys})
    save_weights(hub.repo / "model-fp16-00001-of-00001.safetensors", state)  # another variant, not named
    weight_map = {k: shard for shard, keys in shards.items() for k in keys}
    (hub.repo / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    source = resolve_model("org/tiny-bert", "main")
    assert ("hf_hub_download", "org/tiny-bert", "model.safetensors.index.json", COMMIT) in hub.calls
    weights = [f for f in hub.downloaded() if f not in ("config.json", "tokenizer_config.json", "vocab.txt")]
    assert weights == ["model.safetensors.index.json", *shards]
    assert set(read_weights(source.path)) == set(state)


def test_a_repository_without_weights_lists_what_it_has(hub):
    for name in ("model.safetensors", "pytorch_model.bin"):
        (hub.repo / name).unlink()
    with pytest.raises(SeqtuneError) as e:
        resolve_model("org/tiny-bert")
    message = str(e.value)
    assert "org/tiny-bert" in message and COMMIT in message and "model.safetensors" in message
    assert "flax_model.msgpack" in message and not hub.downloaded()


def test_an_unknown_revision_or_repository_is_a_clear_error(hub):
    with pytest.raises(SeqtuneError, match=r"model.revision 'v9' is not a branch, tag or commit of the hub "
                                           r"model 'org/tiny-bert'") as e:
        resolve_model("org/tiny-bert", "v9")
    assert "\n" not in str(e.value)
    with pytest.raises(SeqtuneError, match="Hugging Face Hub has no model of that name") as e:
        resolve_model("org/other-bert")
    assert not any(c[0] == "snapshot_download" for c in hub.calls)  # not found is not looked up in the cache


def test_huggingface_hub_names_its_errors_as_we_match_them():
    from huggingface_hub.utils import (
        GatedRepoError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    assert {RepositoryNotFoundError.__name__, RevisionNotFoundError.__name__} == NOT_FOUND
    assert NOT_FOUND & {c.__name__ for c in GatedRepoError.__mro__}


def test_without_the_network_a_cached_snapshot_is_used(hub, caplog):
    resolve_model("org/tiny-bert")
    hub.offline = True
    with caplog.at_level(logging.WARNING, logger="seqtune"):
        source = resolve_model("org/tiny-bert")
    assert source.commit == COMMIT and Path(source.path).name == COMMIT
    assert "could not be reached" in caplog.text and "cached snapshot" in caplog.text
    shutil.rmtree(hub.cache)
    with pytest.raises(SeqtuneError, match="could not be fetched from the Hugging Face Hub, nor found in its "
                                           "cache: Cannot reach https://huggingface.co$"):
        resolve_model("org/tiny-bert")


def test_model_revision_with_a_local_directory_is_an_error(tiny_checkpoint):
    with pytest.raises(SeqtuneError, match="model.revision 'v1.0' applies to hub ids only"):
        resolve_model(str(tiny_checkpoint), "v1.0")
    assert resolve_model(str(tiny_checkpoint)).run_info() == {}
