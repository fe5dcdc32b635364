"""A run directory: resolved config, log, metrics.jsonl (one line per evaluation), results.json, model/.

A run that fails removes its directory, unless a model has been saved in it (then the directory keeps
that model, the log and the metrics so far). Writing errors (a full disk, no permission) become a
SeqtuneError naming the path.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path

from seqtune.config import RunConfig, config_to_yaml
from seqtune.errors import SeqtuneError
from seqtune.logs import close_log_file, ensure_console, logger, open_log_file


def check_output_dir(output_dir: str) -> None:
    """output_dir can hold run directories: it is a writable directory, or can be created in one.
    Checked before anything is loaded."""
    path = Path(output_dir or ".").absolute()
    existing = path
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        what = "output_dir" if existing == path else f"output_dir {str(path)!r} lies inside it, but"
        raise SeqtuneError(f"{what} {str(existing)!r} is a file, not a directory; set output_dir to a folder "
                           "(it is created if missing).")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise SeqtuneError(f"output_dir {str(path)!r}: the folder {str(existing)!r} is not writable; set "
                           "output_dir to a folder you can write to.")


def _disk_full(error: BaseException) -> bool:
    return (isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT)) or \
        "No space left on device" in str(error)  # safetensors reports the OS error in its own type


@contextmanager
def writing(path: Path):
    """Turn a failure to write `path` (a file or a folder) into a SeqtuneError naming it."""
    try:
        yield
    except Exception as e:
        if _disk_full(e):
            raise SeqtuneError(f"could not write {path}: the disk is full (no space left on device). Free "
                               "some space or set output_dir to another disk.") from None
        if isinstance(e, OSError):
            raise SeqtuneError(f"could not write {path}: {e.strerror or e}.") from None
        raise


def write_file(path: Path, text: str, mode: str = "w") -> None:
    """Write (mode "w") or append ("a") text to a file of the run directory."""
    with path.open(mode, encoding="utf-8") as f:
        f.write(text)


def new_directory(base: Path) -> Path:
    """Create and return `base`, or `base-2`, `base-3`, ... if taken: two runs started in the same
    second (by a sweep, or side by side) never share a directory."""
    path, n = base, 1
    while True:
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            n += 1
            path = base.with_name(f"{base.name}-{n}")
        except OSError:
            with writing(path):
                raise


class RunDir:
    """Messages of the run go to the "seqtune" logger; `log.txt` receives them until `close()`.

    Used as a context manager, it removes the run directory when the block fails and no model has
    been saved in it."""

    def __init__(self, path: Path):
        self.path = path
        self.model_dir = path / "model"
        ensure_console()
        self._file = open_log_file(path / "log.txt")

    @classmethod
    def create(cls, cfg: RunConfig) -> RunDir:
        check_output_dir(cfg.output_dir)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = new_directory(Path(cfg.output_dir) / f"{cfg.name or cfg.task.type}-{stamp}")
        try:
            with writing(path / "config.yaml"):
                write_file(path / "config.yaml", config_to_yaml(cfg))
            with writing(path / "log.txt"):
                return cls(path)
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise

    def log(self, message: str) -> None:
        logger.info(message)

    def close(self) -> None:
        """Stop writing log.txt (idempotent)."""
        if self._file is not None:
            close_log_file(self._file)
            self._file = None

    def __enter__(self) -> RunDir:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()
        if exc_type is not None and not self.model_dir.exists():
            shutil.rmtree(self.path, ignore_errors=True)  # a failed run leaves nothing behind

    def add_metrics(self, record: dict) -> None:
        with writing(self.path / "metrics.jsonl"):
            write_file(self.path / "metrics.jsonl", json.dumps(record) + "\n", "a")

    def write_results(self, results: dict) -> None:
        with writing(self.path / "results.json"):
            write_file(self.path / "results.json", json.dumps(results, indent=2) + "\n")

    def save_model(self, save) -> None:
        """Call `save(model_dir)`, with writing errors reported against model/."""
        with writing(self.model_dir):
            save(self.model_dir)
