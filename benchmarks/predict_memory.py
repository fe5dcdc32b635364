"""Memory of `seqtune predict` on a large file: peak anonymous memory (RssAnon) against the number of lines.

Trains a tiny random BERT classifier for one step (the model's size does not matter here; it keeps the
run short), writes a generated TSV of N short sentences, runs `seqtune predict MODEL FILE --output OUT`
in a subprocess and samples its RssAnon from /proc every 50 ms. Streaming prediction keeps the peak
nearly flat as N grows; holding every record in memory makes it grow with N. Writes
benchmarks/out/predict_memory.json.

    python benchmarks/predict_memory.py                       # 100k and 1M lines
    python benchmarks/predict_memory.py --lines 20000 50000   # other sizes
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from conftest import write_sentiment_tsv, write_tiny_checkpoint


def rss_anon_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_memory(command: list[str]) -> tuple[int, float, int]:
    """(peak RssAnon in kB, wall seconds, exit code) of a command."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = 0
    while process.poll() is None:
        peak = max(peak, rss_anon_kb(process.pid) or 0)
        time.sleep(0.05)
    err = process.stderr.read()
    if process.returncode != 0:
        print(err, file=sys.stderr)
    return peak, time.perf_counter() - start, process.returncode


def write_lines(path: Path, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    words = ["the", "a", "film", "movie", "good", "great", "bad", "awful", "not", "very", "fun", "dull", "plot", "actors", "love", "hate", "story"]
    with path.open("w") as f:
        f.write("sentence\tlabel\n")
        for _ in range(n):
            f.write(" ".join(rng.choice(words) for _ in range(rng.randint(3, 14))) + "\t0\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "predict_memory.json"))
    args = parser.parse_args()
    python = sys.executable
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        checkpoint = write_tiny_checkpoint(tmp / "tiny")
        train = write_sentiment_tsv(tmp / "train.tsv", n=16)
        sets = [f"model.path={checkpoint}", f"data.train={train}", "task.type=classification",
                "data.text_column=sentence", "train.epochs=1", "train.batch_size=16", "train.progress=false",
                f"output_dir={tmp / 'runs'}"]
        done = subprocess.run([python, "-m", "seqtune", "train", *[x for s in sets for x in ("--set", s)]],
                              capture_output=True, text=True, check=True)
        model = Path(done.stdout.strip().splitlines()[-1]) / "model"
        for n in args.lines:
            data = tmp / f"lines_{n}.tsv"
            write_lines(data, n)
            out = tmp / f"pred_{n}.jsonl"
            peak, wall, code = peak_memory([python, "-m", "seqtune", "predict", str(model), str(data),
                                            "--output", str(out)])
            lines = sum(1 for _ in out.open()) if code == 0 else None
            rows.append({"lines": n, "peak_rss_anon_mb": round(peak / 1024, 1), "wall_seconds": round(wall, 1),
                         "exit_code": code, "predictions": lines})
            print(json.dumps(rows[-1]), flush=True)
            data.unlink()
            out.unlink(missing_ok=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
