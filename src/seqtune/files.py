"""Small file helpers shared by every layer (kept apart so that no layer imports another for them).

Reading: `read_json_object`. Writing is atomic: a kill at any instant leaves either the old complete
file or the new complete one. Every file seqtune writes in a run (model/, results.json, metrics.jsonl,
checkpoints, predictions) goes through here: the content is written to a temporary name in the same
directory, flushed and fsynced, then renamed over the final name (`os.replace` is atomic within a file
system), and the directory is fsynced so that the rename itself survives a power cut.

    with atomic_write(path) as f:          # text; atomic_write(path, binary=True) for bytes
        f.write(...)
    write_text(path, text)                 # the same in one call
    publish_files(tmp_dir, final_dir)      # move each file of a finished temporary folder into place
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from seqtune.errors import SeqtuneError


def read_json_object(path: Path) -> dict:
    """A JSON file that must hold one object; a cut-short, corrupt or non-object file is a SeqtuneError."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SeqtuneError(f"{path} is incomplete or not valid JSON ({e}); the file may have been cut "
                           "short by an interrupted copy or download: copy or download it again.") from None
    if not isinstance(data, dict):
        raise SeqtuneError(f"{path} is not valid here: it holds a JSON {type(data).__name__}, not an object.")
    return data


def fsync_directory(path: str | Path) -> None:
    """Make renames and new entries in `path` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_file(path: str | Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def temporary_name(path: Path) -> Path:
    """A fresh name beside `path` (same directory, so the final rename stays on one file system)."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    return Path(name)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path to write `path`'s new content to (by any writer, e.g. safetensors); on leaving
    the block it is fsynced and renamed over `path`. On an error the temporary file is removed and
    `path` keeps its old content."""
    path = Path(path)
    tmp = temporary_name(path)
    try:
        yield tmp
        fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


@contextmanager
def atomic_write(path: str | Path, binary: bool = False) -> Iterator[IO]:
    """An open file (text UTF-8, or binary) whose content replaces `path` atomically when the block ends."""
    with atomic_path(path) as tmp, open(tmp, "wb" if binary else "w",
                                        **({} if binary else {"encoding": "utf-8"})) as f:
        yield f
        f.flush()


def write_text(path: str | Path, text: str) -> None:
    with atomic_write(path) as f:
        f.write(text)


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_write(path, binary=True) as f:
        f.write(data)


def publish_files(source: Path, target: Path) -> None:
    """Move every file of the finished folder `source` into `target` (created if missing), each by one
    atomic rename after an fsync, then remove `source`. A kill in between leaves each file of `target`
    old or new, never torn. Files that `source` lacks stay in `target`."""
    target.mkdir(parents=True, exist_ok=True)
    for file in sorted(source.rglob("*")):
        if file.is_dir():
            continue
        destination = target / file.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        fsync_file(file)
        os.replace(file, destination)
        fsync_directory(destination.parent)
    shutil.rmtree(source, ignore_errors=True)


def publish_directory(source: Path, target: Path) -> None:
    """Rename the finished folder `source` to the new name `target` in one step, every file fsynced
    first: `target` appears complete or not at all."""
    for file in source.rglob("*"):
        if file.is_file():
            fsync_file(file)
    fsync_directory(source)
    os.replace(source, target)
    fsync_directory(target.parent)
