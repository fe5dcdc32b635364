"""In-memory data for the Python API: a pandas DataFrame or a Hugging Face `datasets.Dataset` wherever
a data file is taken (train, dev, test, evaluate, predict).

Each table is written as JSONL (one object per row, the column names as keys) to a temporary folder
and read by the task's own JSONL reader, so the same column settings (data.text_column,
data.label_column, data.tokens_key, data.id_column, ...) and the same checks apply as for files.
Messages name the row as `<DataFrame train>.jsonl:N`, N being the 1-based row number. Neither
pandas nor datasets is imported here: a table is recognised by its type's module.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from seqtune.errors import SeqtuneError


def table_kind(data) -> str | None:
    """"DataFrame" or "Dataset" for in-memory tables, None for anything else."""
    module = type(data).__module__
    if module.startswith("pandas") and type(data).__name__ == "DataFrame":
        return "DataFrame"
    if module.startswith("datasets") and type(data).__name__ == "Dataset":
        return "Dataset"
    return None


def write_jsonl(data, path: Path) -> None:
    """One JSON object per row; missing values become null (pandas' own JSON writer: numpy scalars,
    NaN, timestamps)."""
    frame = data.to_pandas() if table_kind(data) == "Dataset" else data
    if len(frame) == 0:
        raise SeqtuneError(f"the {table_kind(data)} has no rows.")
    names = [str(c) for c in frame.columns]
    if len(set(names)) < len(names) or not all(isinstance(c, str) for c in frame.columns):
        raise SeqtuneError(f"the {table_kind(data)}'s columns must have distinct names (strings), not "
                           f"{list(frame.columns)[:8]}: its columns are chosen by name (data.text_column, ...).")
    path.write_text(frame.to_json(orient="records", lines=True, force_ascii=False), encoding="utf-8")


@contextmanager
def files_for(tables: dict[str, object]) -> Iterator[dict[str, str]]:
    """{name: DataFrame/Dataset} -> {name: path of its JSONL copy} for the duration of the block
    (names like "train"; entries that are not tables are left out)."""
    found = {name: data for name, data in tables.items() if table_kind(data) is not None}
    if not found:
        yield {}
        return
    with tempfile.TemporaryDirectory(prefix="seqtune-in-memory-") as folder:
        paths = {}
        for name, data in found.items():
            path = Path(folder) / f"<{table_kind(data)} {name}>.jsonl"
            write_jsonl(data, path)
            paths[name] = str(path)
        yield paths


def jsonl_settings(data_config, where: str):
    """The data settings under which a JSONL copy is read: format jsonl (header rows do not apply)."""
    if not data_config.header:
        raise SeqtuneError(f"{where}: data.header is false, but a DataFrame or Dataset names its columns; "
                           "leave data.header at true and choose the columns by name.")
    return replace(data_config, format="jsonl")


@contextmanager
def task_reading_jsonl(task) -> Iterator[None]:
    """The task reads JSONL while the block runs (its saved format may be TSV, CoNLL, ...)."""
    saved = task.data
    task.data = jsonl_settings(saved, "the model's data settings")
    try:
        yield
    finally:
        task.data = saved
