"""A run directory: resolved config, log, metrics.jsonl (one line per evaluation), results.json, model/,
checkpoints/ (training state, see training/checkpoint.py).

A run that fails removes its directory, unless a model or a checkpoint has been saved in it (then the
directory keeps them, the log and the metrics so far); a resumed run's directory is never removed.
Writing errors (a full disk, no permission) become a SeqtuneError naming the path. Every file but
log.txt is written atomically (seqtune.files): a kill leaves the old complete file or the new one.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from seqtune.config import RunConfig, config_to_yaml
from seqtune.errors import SeqtuneError
from seqtune.files import publish_files
from seqtune.files import write_text as write_atomically
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


def write_file(path: Path, text: str) -> None:
    """Write a file of the run directory atomically (its old content or the new, never torn)."""
    write_atomically(path, text)


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

    def __init__(self, path: Path, resumed: bool = False):
        self.path = path
        self.model_dir = path / "model"
        self.checkpoint_dir = path / "checkpoints"
        self.resumed = resumed  # a resumed run's directory is never removed
        self.metrics: list[dict] = []  # the records of metrics.jsonl
        ensure_console()
        self._file = open_log_file(path / "log.txt")

    @classmethod
    def reopen(cls, path: Path) -> RunDir:
        """An existing run directory, continued by `seqtune train --resume`: log.txt is appended to, the
        rest is left as it is until training continues (`set_metrics`, ...)."""
        with writing(path / "log.txt"):
            return cls(path, resumed=True)

    def remove_checkpoints(self) -> None:
        shutil.rmtree(self.checkpoint_dir, ignore_errors=True)

    def remove_leftovers(self) -> None:
        """Temporary files and folders of writes that a kill interrupted (never under a real name)."""
        for folder in (self.path, self.model_dir, self.checkpoint_dir):
            if folder.is_dir():
                for p in folder.glob(".*"):
                    if p.name.startswith((".model-", ".tmp-")) or p.name.endswith(".tmp"):
                        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)

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
        if exc_type is not None and not self.resumed and not self.model_dir.exists() \
                and not self.checkpoint_dir.exists():
            shutil.rmtree(self.path, ignore_errors=True)  # a failed run leaves nothing behind

    def add_metrics(self, record: dict) -> None:
        """Add one line to metrics.jsonl. The file is rewritten whole (atomically) each time: a kill
        leaves it with or without the new line, never with half of it."""
        self.set_metrics([*self.metrics, record])

    def set_metrics(self, records: list[dict]) -> None:
        with writing(self.path / "metrics.jsonl"):
            write_file(self.path / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in records))
        self.metrics = list(records)

    def write_results(self, results: dict) -> None:
        with writing(self.path / "results.json"):
            write_file(self.path / "results.json", json.dumps(results, indent=2) + "\n")

    def save_model(self, save) -> None:
        """Call `save(folder)` on a temporary folder of the run directory, then move each file into
        model/ atomically; writing errors are reported against model/. Only the weights change between
        saves of a run, so a kill leaves model/ with the old weights or the new ones."""
        with writing(self.model_dir):
            staging = Path(tempfile.mkdtemp(dir=self.path, prefix=".model-"))
            try:
                save(staging)
                publish_files(staging, self.model_dir)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
