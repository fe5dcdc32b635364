"""Small readers shared by every layer (kept apart so that no layer imports another for them)."""

from __future__ import annotations

import json
from pathlib import Path

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
