"""Messages of a run: the standard `logging` module under the logger "seqtune".

- On the console (stderr) messages go through `tqdm.write`, so they never glue onto a progress bar.
  seqtune adds that console handler only when the program has configured no logging of its own
  (no handler on the "seqtune" logger or on the root logger); otherwise messages propagate as usual.
- Each run directory's `log.txt` is a `FileHandler` on the same logger, open while the run lasts.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from tqdm.auto import tqdm

logger = logging.getLogger("seqtune")

FILE_FORMAT = "%(asctime)s %(message)s"


class TqdmConsoleHandler(logging.Handler):
    """Writes each message above any active tqdm bar (stderr)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging must never break a run
            self.handleError(record)


def ensure_console() -> None:
    """Show seqtune's INFO messages on stderr unless the program has set up logging itself."""
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    own = any(isinstance(h, TqdmConsoleHandler) for h in logger.handlers)
    if not own and not logging.getLogger().handlers:
        logger.addHandler(TqdmConsoleHandler())


def open_log_file(path: Path) -> logging.FileHandler:
    """Also write seqtune's messages to `path` (appending) until `close_log_file`."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(FILE_FORMAT, datefmt="%Y-%m-%d %H:%M:%S"))
    logger.addHandler(handler)
    return handler


def close_log_file(handler: logging.FileHandler) -> None:
    logger.removeHandler(handler)
    handler.close()


def stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False
