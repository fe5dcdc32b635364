"""A run directory: resolved config, log, metrics.jsonl (one line per evaluation), results.json, model/."""

from __future__ import annotations

import json
import time
from pathlib import Path

from seqtune.config import RunConfig, config_to_yaml
from seqtune.logs import close_log_file, ensure_console, logger, open_log_file


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


class RunDir:
    """Messages of the run go to the "seqtune" logger; `log.txt` receives them until `close()`."""

    def __init__(self, path: Path):
        self.path = path
        self.model_dir = path / "model"
        ensure_console()
        self._file = open_log_file(path / "log.txt")

    @classmethod
    def create(cls, cfg: RunConfig) -> "RunDir":
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = new_directory(Path(cfg.output_dir) / f"{cfg.name or cfg.task.type}-{stamp}")
        (path / "config.yaml").write_text(config_to_yaml(cfg))
        return cls(path)

    def log(self, message: str) -> None:
        logger.info(message)

    def close(self) -> None:
        """Stop writing log.txt (idempotent)."""
        if self._file is not None:
            close_log_file(self._file)
            self._file = None

    def __enter__(self) -> "RunDir":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def add_metrics(self, record: dict) -> None:
        with (self.path / "metrics.jsonl").open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def write_results(self, results: dict) -> None:
        (self.path / "results.json").write_text(json.dumps(results, indent=2) + "\n")
