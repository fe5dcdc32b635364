"""Training-state checkpoints: everything that decides the rest of a run, so that `seqtune train --resume`
ends with exactly the weights and metrics of a run that was never stopped.

A checkpoint is a folder `checkpoints/step-00000120/` of the run directory:

    state.pt         torch.save of: the trained module's weights (encoder + head), the optimiser,
                     learning-rate schedule and gradient scaler states, gradients of an unfinished
                     accumulation, every RNG state (Python, NumPy, torch CPU and CUDA, the task's own
                     generators, `Task.random_generators`, such as MLM masking), and the loop's state (`loop.LoopState`: data
                     order of the epoch and the position in it, accumulation position, best metric and
                     its step, early-stopping counter, metrics history, tokens and time so far)
    checkpoint.json  written last: format, seqtune version, step, the run's identity (data sizes, the
                     task's fitted state, the activation cache's settings, process count) and each
                     file's size and SHA-256

It is written in a temporary folder and renamed into place (`files.publish_directory`): a kill leaves
no half-written checkpoint under a real name. The newest `train.keep_checkpoints` are kept. On resume,
a checkpoint whose manifest is missing or whose files do not match it is skipped with a warning and
the one before it is used.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from seqtune.errors import SeqtuneError
from seqtune.files import publish_directory, write_text
from seqtune.training.caching import FrozenBottomModel

FORMAT = 1
MANIFEST = "checkpoint.json"
STATE = "state.pt"
PREFIX = "step-"


def seqtune_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("seqtune")
    except PackageNotFoundError:  # a source tree that is not installed
        return "unknown"


# ---- random states -----------------------------------------------------------------------------------

def rng_states() -> dict:
    """The global generators: Python's, NumPy's, torch's CPU one and every CUDA device's."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    states = {"python": random.getstate(), "numpy": (kind, keys.tolist(), pos, has_gauss, gauss),
              "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict) -> None:
    random.setstate(states["python"])
    kind, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def task_generators(task) -> dict:
    """The states of the generators a task draws from while training (`Task.random_generators`)."""
    return {name: generator.get_state() for name, generator in task.random_generators().items()}


def restore_task_generators(task, states: dict) -> None:
    generators = task.random_generators()
    for name, state in states.items():
        generators[name].set_state(state)


# ---- what a checkpoint holds ---------------------------------------------------------------------------

def rank_states(task) -> dict:
    """This process's random states: the global generators and the task's."""
    return {"rng": rng_states(), "task_rng": task_generators(task)}


def capture(model: torch.nn.Module, optimizer, schedule, scaler, task, loop: dict,
            ranks: list[dict] | None = None) -> dict:
    """The whole training state, on the CPU. `ranks`: every process's `rank_states` (several processes
    under torchrun; the weights, optimiser and loop state are the same in all)."""
    grads = {name: p.grad.detach().cpu().clone() for name, p in model.named_parameters() if p.grad is not None}
    return {
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "schedule": schedule.state_dict(),
        "scaler": scaler.state_dict(),
        "grads": grads,
        "ranks": ranks or [rank_states(task)],
        "loop": json.loads(json.dumps(loop)),  # plain Python values (metrics may hold NumPy floats)
    }


def restore(state: dict, model: torch.nn.Module, optimizer, schedule, scaler, task, rank: int = 0) -> dict:
    """Put a captured state back (the model's weights are loaded by `load_weights` before training is
    set up); returns the loop's state. RNG states are restored last, after anything that draws."""
    optimizer.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["schedule"])
    scaler.load_state_dict(state["scaler"])
    parameters = dict(model.named_parameters())
    for name, grad in state["grads"].items():
        parameters[name].grad = grad.to(parameters[name].device)
    restore_task_generators(task, state["ranks"][rank]["task_rng"])
    restore_rng_states(state["ranks"][rank]["rng"])
    return state["loop"]


def load_weights(model: torch.nn.Module, state: dict) -> None:
    """The checkpoint's weights into `model` (a TaskModel, or the FrozenBottomModel sharing its modules)."""
    model.load_state_dict(state["model"])


def run_identity(task, train_set, dev_set, model: torch.nn.Module, world_size: int = 1) -> dict:
    """What must be the same when a run is resumed: the data as the task encoded it, the task's fitted
    state (label map, ...), the activation cache's settings and the number of processes."""
    frozen = isinstance(model, FrozenBottomModel)
    cache = model.cache if frozen else None
    return {
        "task_state": json.loads(json.dumps(task.state(), default=str)),
        "train": {"features": len(train_set.features), "tokens": int(sum(train_set.lengths))},
        "dev": None if dev_set is None else {"features": len(dev_set.features), "tokens": int(sum(dev_set.lengths))},
        "activation_cache": {
            "frozen_layers": model.frozen_layers if frozen else None,
            "cached": cache is not None,
            "storage": None if cache is None else ("memory-mapped file" if cache.on_disk else str(cache.storage.dtype)),
        },
        "world_size": world_size,
    }


def identity_differences(saved: dict, current: dict) -> list[str]:
    return [f"{key}: {saved.get(key)!r} when checkpointed, {current.get(key)!r} now"
            for key in sorted(set(saved) | set(current)) if saved.get(key) != current.get(key)]


# ---- the checkpoints/ folder ---------------------------------------------------------------------------

def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_name(step: int) -> str:
    return f"{PREFIX}{step:08d}"


def checkpoint_folders(directory: Path) -> list[Path]:
    """Checkpoint folders (complete or not) under their real names, newest first."""
    if not directory.is_dir():
        return []
    found = [p for p in directory.iterdir() if p.is_dir() and p.name.startswith(PREFIX)
             and p.name[len(PREFIX):].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX):]), reverse=True)


class Checkpoints:
    """Writes checkpoints into `directory` and keeps the newest `keep` of them."""

    def __init__(self, directory: Path, keep: int, identity: dict):
        self.directory = directory
        self.keep = keep
        self.identity = identity
        self.last: str | None = None  # the name of the newest checkpoint this run wrote

    @property
    def enabled(self) -> bool:
        return self.keep > 0

    def save(self, step: int, epoch: float, state: dict) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.directory / checkpoint_name(step)
        staging = self.directory / f".tmp-{final.name}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        torch.save(state, staging / STATE)
        manifest = {"format": FORMAT, "seqtune": seqtune_version(), "step": step, "epoch": epoch,
                    "identity": self.identity,
                    "files": {STATE: {"bytes": (staging / STATE).stat().st_size, "sha256": sha256(staging / STATE)}}}
        write_text(staging / MANIFEST, json.dumps(manifest, indent=2) + "\n")
        if final.exists():  # the same step again (a resumed run passing a skipped, broken checkpoint)
            shutil.rmtree(final)
        publish_directory(staging, final)
        folders = checkpoint_folders(self.directory)
        for stale in [f for f in folders if int(f.name[len(PREFIX):]) > step]:  # broken ones a resume skipped
            shutil.rmtree(stale, ignore_errors=True)
            folders.remove(stale)
        for old in folders[self.keep:]:
            shutil.rmtree(old, ignore_errors=True)
        self.last = final.name
        return final


def problem_with(folder: Path) -> str | None:
    """Why `folder` is not a complete checkpoint, or None."""
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        return f"it has no {MANIFEST} (written last: the checkpoint was never finished)"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        files = manifest["files"]
    except (ValueError, KeyError, TypeError):
        return f"its {MANIFEST} is not valid"
    for name, expected in files.items():
        path = folder / name
        if not path.is_file():
            return f"its file {name} is missing"
        if path.stat().st_size != expected.get("bytes"):
            return f"its file {name} has {path.stat().st_size} bytes, not the {expected.get('bytes')} written"
        if sha256(path) != expected.get("sha256"):
            return f"its file {name} does not match the checksum written with it (corrupt)"
    return None


@dataclass
class Found:
    path: Path
    manifest: dict
    skipped: list[str]  # "step-… : why" for newer checkpoints that were not usable


def newest_checkpoint(directory: Path) -> Found:
    """The newest complete checkpoint in `directory`; newer broken ones are listed in `skipped`.
    No complete checkpoint at all is a SeqtuneError naming what is wrong with each."""
    skipped = []
    for folder in checkpoint_folders(directory):
        problem = problem_with(folder)
        if problem is None:
            manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
            return Found(folder, manifest, skipped)
        skipped.append(f"{folder.name}: {problem}")
    what = ("; ".join(skipped) if skipped else
            "there is none (a run writes one at the end of each epoch and every train.checkpoint_every_steps "
            "steps, unless train.keep_checkpoints is 0)")
    raise SeqtuneError(f"{directory} holds no complete checkpoint to resume from: {what}. Start the run again "
                       "without --resume.")


def check_version(found: Found) -> None:
    written, current = found.manifest.get("seqtune"), seqtune_version()
    if found.manifest.get("format") != FORMAT or written != current:
        raise SeqtuneError(
            f"{found.path} was written by seqtune {written} (checkpoint format {found.manifest.get('format')}); "
            f"this is seqtune {current} (format {FORMAT}). A run resumes exactly only with the version that "
            f"started it: resume it with seqtune {written}, or start the run again with this version.")


def read_state(found: Found) -> dict:
    try:
        return torch.load(found.path / STATE, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - a file that passed its checksum but cannot be read
        raise SeqtuneError(f"{found.path / STATE} cannot be read ({e}); start the run again without --resume.") from None
