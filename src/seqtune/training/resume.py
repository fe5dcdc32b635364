"""`seqtune train --resume RUN_DIR`: what is checked before a stopped run continues.

Everything is checked before anything in the run directory is touched: it is a run directory (config.yaml),
not finished (no results.json), with a complete checkpoint written by this seqtune version, and the
`--set` overrides change nothing that decides the result. Then `setup.train_from_config` continues the
run from the checkpoint (`ResumePoint`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from seqtune.config import RunConfig, load_config
from seqtune.errors import SeqtuneError
from seqtune.training.checkpoint import (
    Found,
    check_version,
    newest_checkpoint,
    read_state,
)

# Settings a resumed run may change: they decide how it is shown and kept, never what it computes.
CHANGEABLE = frozenset({"train.progress", "train.checkpoint_every_steps", "train.keep_checkpoints",
                        "train.malloc_mmap_threshold"})  # memory layout only


@dataclass
class ResumePoint:
    run_dir: Path
    checkpoint: Found
    state: dict  # checkpoint.read_state


def flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v and k != "task_state":
            out.update(flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def changed_settings(before: RunConfig, after: RunConfig) -> list[str]:
    a, b = flat(before.to_dict()), flat(after.to_dict())
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def prepare_resume(run_dir: str, overrides: list[str] = ()) -> tuple[RunConfig, ResumePoint]:
    """(the run's config with `overrides`, where to continue from). SeqtuneError when it cannot continue."""
    path = Path(run_dir)
    if not path.is_dir():
        raise SeqtuneError(f"--resume {run_dir}: there is no such directory; give the run directory that "
                           "seqtune train printed (it holds config.yaml, log.txt and checkpoints/).")
    if not (path / "config.yaml").is_file():
        raise SeqtuneError(f"--resume {run_dir}: this is not a seqtune run directory (it has no config.yaml); "
                           "give the run directory that seqtune train printed, e.g. runs/sst2-20250101-120000.")
    if (path / "results.json").is_file():
        raise SeqtuneError(f"--resume {run_dir}: this run has finished (its results.json is written); there "
                           "is nothing to resume. Start a new run to train again.")
    found = newest_checkpoint(path / "checkpoints")
    check_version(found)
    config_file = path / "config.yaml"
    saved = load_config(config_file)
    cfg = load_config(config_file, overrides)
    changed = [k for k in changed_settings(saved, cfg) if k not in CHANGEABLE and k != "name"]
    if changed:
        raise SeqtuneError(
            f"--resume: --set would change {', '.join(changed)}, which decide the result of the run; a resumed "
            f"run keeps the settings it started with (it may change only {', '.join(sorted(CHANGEABLE))}). To "
            "train with other settings, start a new run.")
    cfg.name = saved.name
    return cfg, ResumePoint(path, found, read_state(found))
