"""`seqtune serve` in a subprocess on a free loopback port: every task type answers what `predict`
returns, bad requests get a 4xx with a one-line reason, a flood gets 503 and the server goes on,
SIGTERM finishes the request in flight."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager

import pytest
from tiny_models import (
    classification_model,
    qa_model,
    residue_model,
    tagging_model,
    write_char_checkpoint,
)

import seqtune

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(port: int, path: str, body=None, content_type: str = "application/json", raw: bytes | None = None,
         timeout: float = 60):
    """(status, decoded JSON answer)."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data,
                                     headers={"Content-Type": content_type} if data is not None else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@contextmanager
def server(model_dir, *args):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "seqtune", "serve", str(model_dir), "--port", str(port),
                             "--device", "cpu", "--log-level", "warning", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"the server exited with {proc.returncode}: {proc.stderr.read()}")
            try:
                if call(port, "/health", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the server did not start in 120 s"
            time.sleep(0.2)
        proc.port = port
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_checkpoint):
    root = tmp_path_factory.mktemp("served")
    chars = write_char_checkpoint(root / "char_bert")
    return {
        "classification": classification_model(tiny_checkpoint, root / "classification"),
        "tagging": tagging_model(tiny_checkpoint, root / "tagging"),
        "residues": residue_model(chars, root / "residues"),
        "qa": qa_model(tiny_checkpoint, root / "qa"),
    }


INPUTS = {
    "classification": ["the film was fun", "dull and boring plot", "it is not very good but the actors love it"],
    "tagging": ["the film was great", ["the", "actors", "love", "it"]],
    "residues": ["MKVLAAGHE", "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ"],  # the second is longer than one window
    "qa": [{"question": "what was the film?", "context": "the film was great fun but the plot was dull", "id": "q1"},
           {"question": "who love it?", "context": "the actors love it and the story is wonderful " * 3}],
}


@pytest.mark.parametrize("task", INPUTS)
def test_every_task_type_answers_what_predict_returns(models, task):
    expected = seqtune.load(models[task], device="cpu").predict(INPUTS[task])
    with server(models[task]) as proc:
        status, answer = call(proc.port, "/predict", {"inputs": INPUTS[task]})
        assert status == 200, answer
        assert answer == {"predictions": json.loads(json.dumps(expected))}
        ids = [f"item-{i}" for i in range(len(INPUTS[task]))]
        status, answer = call(proc.port, "/predict", {"inputs": INPUTS[task], "ids": ids})
        assert status == 200 and [r["id"] for r in answer["predictions"]] == ids
        status, info = call(proc.port, "/info")
        assert status == 200 and info["task"] == task and info["model_type"] == "bert"
        assert info["runtime"] == "torch" and info["limits"]["max_items"] == 64
        if task == "residues":
            status, answer = call(proc.port, "/predict", {"inputs": ["MKVLA"], "probabilities": True})
            assert status == 200 and set(answer["predictions"][0]["probabilities"]) == {"C", "E", "H"}


BAD_REQUESTS = [
    # (body or raw bytes, content type, status, words in the reason)
    ({"inputs": "the film"}, "application/json", 422, "inputs: Input should be a valid array"),
    ({"inputs": [["a", "pair"]]}, "application/json", 422, "inputs.0: Input should be a valid string"),
    ({"inputs": [3]}, "application/json", 422, "inputs.0: Input should be a valid string"),
    ({"texts": ["the film"]}, "application/json", 422, "inputs: Field required"),
    ({"inputs": []}, "application/json", 422, "inputs is empty"),
    ({"inputs": ["   "]}, "application/json", 422, "expected a non-empty string"),
    ({"inputs": ["x" * 101]}, "application/json", 413, "101 characters, over the limit of 100"),
    ({"inputs": ["fun"] * 5}, "application/json", 413, "5 inputs in one request, over the limit of 4"),
    ({"inputs": ["fun", "dull"], "ids": ["a"]}, "application/json", 422, "ids has 1 entries for 2 inputs"),
    (b'{"inputs": ["the film"', "application/json", 400, "invalid JSON"),
    ({"inputs": ["the film"]}, "text/plain", 415, "Content-Type must be application/json"),
]


def test_bad_requests_get_a_4xx_with_a_one_line_reason(models):
    with server(models["classification"], "--max-items", "4", "--max-chars", "100") as proc:
        for body, content_type, status, words in BAD_REQUESTS:
            raw = body if isinstance(body, bytes) else None
            got, answer = call(proc.port, "/predict", None if raw else body, content_type, raw)
            assert (got, words in answer.get("detail", "")) == (status, True), (body, answer)
            assert "\n" not in answer["detail"] and "Traceback" not in answer["detail"]
        assert call(proc.port, "/predict", raw=b"x" * 50_000)[0] == 413  # over the body limit, not read whole
        assert call(proc.port, "/nowhere")[0] == 404
        assert call(proc.port, "/predict", {"inputs": ["fun"]})[0] == 200  # still answering
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        # after a graceful shutdown uvicorn re-raises the signal: the process ends by SIGTERM, as asked
        assert proc.returncode == -signal.SIGTERM and "Traceback" not in err


def test_a_flood_beyond_the_queue_gets_503_and_the_server_goes_on(models):
    # Each request waits 1 s for company in the batcher, so 24 at once overflow a queue of 4 inputs.
    with server(models["classification"], "--max-queue", "4", "--max-wait-ms", "1000") as proc:
        statuses = []

        def client():
            statuses.append(call(proc.port, "/predict", {"inputs": ["the film was fun", "dull"]})[0])

        threads = [threading.Thread(target=client) for _ in range(24)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert set(statuses) == {200, 503} and statuses.count(200) >= 2
        status, answer = call(proc.port, "/predict", {"inputs": ["the film was fun"]})
        assert status == 200 and answer["predictions"][0]["label"] in ("negative", "positive", "neutral")
        status, health = call(proc.port, "/health")
        assert status == 200 and health["admitted_inputs"] == 0


def test_sigterm_finishes_the_request_in_flight(models):
    with server(models["classification"], "--max-wait-ms", "5000") as proc:
        answers = []
        client = threading.Thread(target=lambda: answers.append(call(proc.port, "/predict", {"inputs": ["fun"]})))
        client.start()
        while call(proc.port, "/health")[1]["admitted_inputs"] == 0:  # until the request waits in the batcher
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        client.join(30)
        proc.wait(30)
        assert answers and answers[0][0] == 200 and len(answers[0][1]["predictions"]) == 1
        assert proc.returncode == -signal.SIGTERM


def test_models_it_cannot_serve_are_refused_before_binding(tmp_path, tiny_checkpoint):
    from tiny_models import save_random

    from seqtune.tasks.mlm import MaskedLMOptions, MaskedLMTask
    from seqtune.tokenization import load_tokenizer

    mlm = save_random(MaskedLMTask(MaskedLMOptions(), seqtune.config.DataConfig(max_length=32),
                                   load_tokenizer(tiny_checkpoint)), tiny_checkpoint, tmp_path / "mlm")
    for model_dir, words in ((mlm, "use `seqtune fill-mask`"), (tiny_checkpoint, "has no seqtune.json")):
        proc = subprocess.run([sys.executable, "-m", "seqtune", "serve", str(model_dir), "--port", str(free_port())],
                              capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 2 and words in proc.stderr and "Traceback" not in proc.stderr


def test_serving_an_onnx_export(models, tmp_path):
    pytest.importorskip("onnxruntime")
    from seqtune.cli import main

    assert main(["export", str(models["classification"]), "--output", str(tmp_path / "onnx")]) == 0
    expected = seqtune.load(models["classification"], device="cpu").predict(INPUTS["classification"])
    with server(tmp_path / "onnx", "--runtime", "onnx") as proc:
        assert call(proc.port, "/info")[1]["runtime"] == "onnx"
        status, answer = call(proc.port, "/predict", {"inputs": INPUTS["classification"]})
    assert status == 200
    for want, got in zip(expected, answer["predictions"]):
        assert want["label"] == got["label"]
        assert max(abs(want["probabilities"][k] - got["probabilities"][k]) for k in want["probabilities"]) < 1e-5
