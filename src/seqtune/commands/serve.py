"""seqtune serve MODEL_DIR [--host 127.0.0.1 --port 8000]"""

from __future__ import annotations

import sys

from seqtune.commands.evaluate import add_saved_model_settings


def add_parser(subparsers):
    p = subparsers.add_parser(
        "serve", help="serve a saved model over HTTP (POST /predict, GET /health, GET /info)",
        description="Serve a model saved by seqtune over HTTP (FastAPI + uvicorn; install with "
                    "pip install 'seqtune[serve]'). POST /predict takes {\"inputs\": [...]} in the task's "
                    "natural shape (texts, text pairs, sentences or word lists, sequences, "
                    "{question, context} objects; GET /info shows the model's) and answers "
                    "{\"predictions\": [...]}, the records `predict` writes. Concurrent requests are "
                    "run through the model together (micro-batching); when --max-queue inputs are "
                    "waiting, new requests get 503. SIGTERM or Ctrl-C stops accepting and finishes "
                    "the requests in flight.",
    )
    p.add_argument("model_dir", help="model directory written by seqtune train")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default: 127.0.0.1, this machine only; 0.0.0.0 exposes it)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default: auto)")
    p.add_argument("--runtime", choices=["torch", "onnx"], default="torch",
                   help="onnx: MODEL_DIR is a directory written by `seqtune export`, run by ONNX Runtime on "
                        "the CPU (default: torch)")
    p.add_argument("--max-items", type=int, default=64, help="inputs per request (default: 64; more: 413)")
    p.add_argument("--max-chars", type=int, default=10_000,
                   help="characters per input, all its strings together (default: 10000; more: 413)")
    p.add_argument("--max-queue", type=int, default=1024,
                   help="inputs admitted and not yet answered before new requests get 503 (default: 1024)")
    p.add_argument("--max-wait-ms", type=float, default=5.0,
                   help="how long the batcher waits for more requests when the model is idle (default: 5)")
    p.add_argument("--batch-tokens", type=int, default=8192,
                   help="tokens collected into one micro-batch at most (default: 8192)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"],
                   help="uvicorn's log level (default: info)")
    add_saved_model_settings(p, "the inputs")
    return p


def run(args) -> int:
    from seqtune.errors import SeqtuneError

    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError as error:
        raise SeqtuneError(f"seqtune serve needs FastAPI and uvicorn ({error.name} is not installed): "
                           "pip install 'seqtune[serve]'.") from None
    for name in ("max_items", "max_chars", "max_queue", "batch_tokens"):
        if getattr(args, name) < 1:
            raise SeqtuneError(f"--{name.replace('_', '-')} must be at least 1, not {getattr(args, name)}.")
    if args.max_wait_ms < 0:
        raise SeqtuneError(f"--max-wait-ms must be 0 or more, not {args.max_wait_ms}.")

    from seqtune.api import load
    from seqtune.models.checkpoint import encoder_config_from_dir
    from seqtune.serving.app import create_app
    from seqtune.serving.schemas import Limits, input_shape

    model = load(args.model_dir, device=args.device, overrides=args.overrides, runtime=args.runtime)
    input_shape(model.task)  # refuses task types the server does not take, before binding the port
    limits = Limits(args.max_items, args.max_chars, args.max_queue)
    info = model_info(model, args.model_dir, encoder_config_from_dir(args.model_dir).model_type, args.runtime)
    app = create_app(model, info, limits, args.max_wait_ms / 1000, args.batch_tokens)
    print(f"serving {info['description']} from {args.model_dir} on http://{args.host}:{args.port}",
          file=sys.stderr)
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level,
                            timeout_graceful_shutdown=30)
    server = uvicorn.Server(config)
    server.run()
    return 0 if server.started else 2


def model_info(model, model_dir: str, model_type: str, runtime: str = "torch") -> dict:
    task = model.task
    return {
        "task": task.name,
        "description": task.describe(),
        "labels": task.state().get("labels"),  # None for regression and QA
        "model_type": model_type,
        "max_length": task.data.max_length,
        "model_dir": str(model_dir),
        "runtime": runtime,
        "device": str(model.runtime.device),
    }
