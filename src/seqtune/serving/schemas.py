"""What `POST /predict` accepts, per task type, and one-line reasons for what it refuses.

The body is always {"inputs": [...], "ids": [...], "probabilities": false} ("ids" optional: one per
input, copied into its prediction as "id"); each input is in the task's natural shape, the one
`seqtune.load(...).predict` takes:

    classification, multilabel, regression   "text"  or, for pair models, ["text", "second text"]
    tagging                                  "a sentence"  or  ["a", "list", "of", "words"]
    residues                                 "MKVLAAGHE"
    qa                                       {"question": "...", "context": "...", "id": "q1"}

pydantic checks the shape; sizes (items per request, characters per item) are checked after it so
that an oversize request gets 413 and a wrong one 422, each with a single line saying why.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, ValidationError


@dataclass(frozen=True)
class Limits:
    """Sizes a request may have. `max_chars` counts every string of one input (both texts of a pair,
    question and context, all words of a word list)."""

    max_items: int = 64
    max_chars: int = 10_000
    max_queue: int = 1024  # inputs admitted (waiting or running) before the server answers 503

    @property
    def max_body_bytes(self) -> int:
        """Largest body read: a JSON string may spend up to 12 bytes per character (a \\u-escaped
        surrogate pair), plus room for punctuation and ids."""
        return self.max_items * (self.max_chars * 12 + 4096) + 4096


class QAInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str
    context: str
    id: str | None = None


def _request_model(item_type, name: str) -> type[BaseModel]:
    return type(name, (BaseModel,), {
        "__annotations__": {"inputs": list[item_type], "ids": list[str] | None, "probabilities": bool},
        "model_config": ConfigDict(extra="forbid", strict=True),
        "inputs": Field(..., description="inputs in the task's natural shape"),
        "ids": Field(None, description="one id per input, copied into its prediction as \"id\""),
        "probabilities": Field(False, description="tagging/residues: each label's probability per position"),
    })


TextRequest = _request_model(str, "TextRequest")
PairRequest = _request_model(tuple[str, str], "PairRequest")
WordsRequest = _request_model(str | list[str], "WordsRequest")
QARequest = _request_model(QAInput, "QARequest")


@dataclass(frozen=True)
class InputShape:
    model: type[BaseModel]
    example: str  # one line, for /info and error messages


def input_shape(task) -> InputShape:
    """The request model and an example body for a loaded task."""
    name = task.name
    if name in ("classification", "multilabel", "regression"):
        if task.data.text_pair_column is not None:
            return InputShape(PairRequest, '{"inputs": [["first text", "second text"], ...]}')
        return InputShape(TextRequest, '{"inputs": ["a text", ...]}')
    if name == "tagging":
        return InputShape(WordsRequest, '{"inputs": ["a sentence", ["or", "its", "words"], ...]}')
    if name == "residues":
        return InputShape(TextRequest, '{"inputs": ["MKVLAAGHE", ...]}')
    if name == "qa":
        return InputShape(QARequest, '{"inputs": [{"question": "...", "context": "...", "id": "q1"}, ...]}')
    from seqtune.errors import SeqtuneError

    raise SeqtuneError(f"seqtune serve does not serve {name!r} models; for a masked language model use "
                       "`seqtune fill-mask`.")


def validation_reason(error: ValidationError) -> str:
    """pydantic's first error as one line: "inputs.2: Input should be a valid string"."""
    first = error.errors(include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    if first["type"] == "json_invalid":
        return f"invalid JSON: {first['msg'].removeprefix('Invalid JSON: ')}"
    return f"{where}: {first['msg']}"


def item_chars(item) -> int:
    """Characters of one input, whatever its shape."""
    if isinstance(item, str):
        return len(item)
    if isinstance(item, QAInput):
        return len(item.question) + len(item.context)
    return sum(len(part) for part in item)


def size_problem(inputs: list, limits: Limits, ids: list | None = None) -> tuple[int, str] | None:
    """(HTTP status, why) when a request is empty (422) or too large (413); None when it is fine."""
    if not inputs:
        return 422, "inputs is empty: give at least one input."
    if ids is not None and len(ids) != len(inputs):
        return 422, f"ids has {len(ids)} entries for {len(inputs)} inputs: give one id per input."
    if len(inputs) > limits.max_items:
        return 413, f"{len(inputs)} inputs in one request, over the limit of {limits.max_items} (--max-items)."
    for i, item in enumerate(inputs):
        n = item_chars(item)
        if n > limits.max_chars:
            return 413, f"inputs.{i}: {n} characters, over the limit of {limits.max_chars} (--max-chars)."
    return None


def as_task_inputs(inputs: list) -> list:
    """Parsed inputs -> what `task.examples_from_inputs` takes (QA inputs as dicts)."""
    return [item.model_dump(exclude_none=True) if isinstance(item, QAInput) else item for item in inputs]
