"""The HTTP app behind `seqtune serve`: POST /predict, GET /health, GET /info.

Predictions are those of `seqtune.load(...).predict`: each request is encoded by
`FineTunedModel.encode_inputs`, requests are run together by the micro-batcher through
`inference.run_outputs`, and each gets `FineTunedModel.predictions_from` its own outputs. Every
refusal is a 4xx (or 503 when the queue is full) with {"detail": "<one line>"}; an unexpected
failure is a 500 with one line too, its traceback going to the server's log only.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from dataclasses import asdict

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from seqtune.api import FineTunedModel
from seqtune.errors import SeqtuneError
from seqtune.inference import run_outputs
from seqtune.serving.batcher import Job, MicroBatcher
from seqtune.serving.schemas import (
    Limits,
    as_task_inputs,
    input_shape,
    size_problem,
    validation_reason,
)
from seqtune.tasks.base import EncodedDataset


def refuse(status: int, reason: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"detail": " ".join(reason.split())}, status_code=status, headers=headers)


async def read_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None as soon as it grows past `limit` bytes (nothing larger is held)."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(model: FineTunedModel, info: dict, limits: Limits | None = None, max_wait_s: float = 0.005,
               batch_tokens: int = 8192) -> FastAPI:
    """`info`: what GET /info shows about the model (see `commands/serve.py`)."""
    limits = limits or Limits()
    task = model.task
    shape = input_shape(task)

    def run_features(features: list[dict]) -> list:
        return run_outputs(model.model, task, EncodedDataset([], features), model.runtime)

    batcher = MicroBatcher(run_features, max_wait_s, batch_tokens, limits.max_queue)

    @asynccontextmanager
    async def lifespan(app):
        batcher.start()
        yield
        await run_in_threadpool(batcher.close)  # uvicorn has answered every in-flight request by now

    app = FastAPI(title="seqtune", lifespan=lifespan)
    app.state.batcher = batcher
    info = {**info, "input": shape.example, "limits": asdict(limits),
            "batching": {"max_wait_ms": max_wait_s * 1000, "batch_tokens": batch_tokens}}

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException):
        return refuse(error.status_code, str(error.detail), getattr(error, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception):
        return refuse(500, f"internal error: {type(error).__name__}: {error}")

    @app.get("/health")
    async def health():
        return {"status": "ok", "admitted_inputs": batcher.admitted, "batches": batcher.batches}

    @app.get("/info")
    async def get_info():
        return info

    @app.post("/predict")
    async def predict(request: Request):
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            return refuse(415, f"Content-Type must be application/json, not {content_type or 'missing'!r}.")
        body = await read_body(request, limits.max_body_bytes)
        if body is None:
            return refuse(413, f"the body is over {limits.max_body_bytes} bytes "
                               f"(--max-items {limits.max_items} x --max-chars {limits.max_chars}).")
        try:
            parsed = shape.model.model_validate_json(body)
        except ValidationError as error:
            reason = validation_reason(error)
            status = 400 if reason.startswith("invalid JSON") else 422
            return refuse(status, f"{reason}; this {task.name} model takes {shape.example}")
        problem = size_problem(parsed.inputs, limits, parsed.ids)
        if problem:
            return refuse(*problem)
        try:
            model.check_probabilities(parsed.probabilities)
        except SeqtuneError as error:
            return refuse(422, str(error))
        items = len(parsed.inputs)
        if not batcher.reserve(items):
            return refuse(503, f"the queue is full ({batcher.admitted} inputs admitted, --max-queue "
                               f"{limits.max_queue}); retry shortly.", {"Retry-After": "1"})
        try:
            dataset = await run_in_threadpool(model.encode_inputs, as_task_inputs(parsed.inputs))
            job = Job(dataset.features, lambda outputs: model.predictions_from(outputs, dataset, parsed.probabilities))
            records = await asyncio.wrap_future(batcher.submit(job))
        except SeqtuneError as error:
            return refuse(422, str(error))
        except RuntimeError as error:
            if "shutting down" in str(error):
                return refuse(503, "the server is shutting down.")
            raise
        finally:
            batcher.release(items)
        if parsed.ids is not None:  # the caller's ids, first in each record
            records = [{"id": i, **{k: v for k, v in r.items() if k != "id"}} for i, r in zip(parsed.ids, records)]
        return JSONResponse({"predictions": records})

    return app
