"""Sentence-pair classification: seqtune against Hugging Face Trainer at its best settings, one job.

The pair set is the QNLI-style task that benchmarks/strategies.py builds from SQuAD v1.1 (a question
and one sentence of its paragraph, "entailment" when the sentence holds the answer; articles 0-23
train, 24-47 dev; ~47 tokens a pair with all-MiniLM-L6-v2's tokenizer). Recipe (strategies.py's
pair config, both sides): all-MiniLM-L6-v2 with BERT's pooler head, first --rows training pairs
(default 4,000), --epochs (default 3), batch 16, lr 5e-5, 10% linear warm-up then linear decay,
weight decay 0.01, gradient clipping 1.0, max 128 tokens, seed 1; dev accuracy on --dev-rows pairs
after each epoch on both sides (seqtune reports its best epoch's, the Trainer side its last and best). Variants, each in its own subprocess:

  seqtune     `seqtune.train` on that config (length-bucketed batches, dynamic padding)
  hf_dynamic  Trainer + DataCollatorWithPadding + train_sampling_strategy="group_by_length"

Wall time counts everything from reading the files to the dev metric (model loading included);
training seconds are the time inside the training steps (seqtune's results.json; Trainer's step
callbacks, benchmarks/trainer_timing.py). Also: real training tokens per second and, as in
benchmarks/sst2_speed.py, the fraction of this CPU's fp32 matmul peak (6 x non-embedding parameters
FLOP per real token, attention scores excluded), the peak measured in the same job.

    OMP_NUM_THREADS=1 taskset -c 1 python benchmarks/pairs_speed.py     # writes benchmarks/out/pairs_speed.json
    python benchmarks/pairs_speed.py --rows 200 --dev-rows 100 --epochs 1    # smoke test
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from sst2_speed import flop_per_token, matmul_peak_gflops, minilm_dir, run_variants  # benchmarks/ is on sys.path
from strategies import write_pair_task

REPO = Path(__file__).resolve().parents[1]
RECIPE = {"batch_size": 16, "lr": 5e-5, "warmup_ratio": 0.1, "weight_decay": 0.01, "seed": 1, "max_length": 128}


def run_seqtune(args, data: Path) -> dict:
    import seqtune
    from seqtune.config import load_config

    start = time.perf_counter()
    cfg = load_config(data / "qnli_squad.yaml", [
        f"model.path={minilm_dir()}", f"train.epochs={args.epochs}", "train.progress=false",
        f"output_dir={args.workdir}/seqtune_runs", *args.sets])
    run_dir = seqtune.train(cfg)
    wall = time.perf_counter() - start
    results = json.loads((run_dir / "results.json").read_text())
    return {"wall_seconds": wall, "dev_accuracy": results["dev"]["accuracy"],
            "train_seconds": results["train"]["train_seconds"], "train_tokens": results["train"]["train_tokens"],
            "train_tokens_per_second": results["train"]["tokens_per_second"]}


def run_hf(args, data: Path) -> dict:
    import numpy as np
    import torch
    from trainer_timing import step_timer
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer,
                              TrainingArguments)

    start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
    labels = {"entailment": 0, "not_entailment": 1}

    def encode(name):
        rows = [json.loads(line) for line in (data / f"{name}.jsonl").read_text().splitlines()]
        enc = tokenizer([r["question"] for r in rows], [r["sentence"] for r in rows], truncation=True,
                        max_length=RECIPE["max_length"])
        return [{**{k: enc[k][i] for k in enc}, "labels": labels[r["label"]]} for i, r in enumerate(rows)]

    train, dev = encode("train"), encode("dev")
    model = AutoModelForSequenceClassification.from_pretrained(minilm_dir(), num_labels=2)
    timer = step_timer()
    trainer = Trainer(
        model=model, data_collator=DataCollatorWithPadding(tokenizer), train_dataset=train, eval_dataset=dev,
        callbacks=[timer],
        compute_metrics=lambda pred: {"accuracy": float((np.argmax(pred.predictions, -1) == pred.label_ids).mean())},
        args=TrainingArguments(
            output_dir=str(Path(args.workdir) / "hf_dynamic"), per_device_train_batch_size=RECIPE["batch_size"],
            per_device_eval_batch_size=128, learning_rate=RECIPE["lr"], num_train_epochs=args.epochs,
            lr_scheduler_type="linear", warmup_steps=RECIPE["warmup_ratio"], weight_decay=RECIPE["weight_decay"],
            max_grad_norm=1.0, seed=RECIPE["seed"], eval_strategy="epoch", save_strategy="no", report_to=[],
            disable_tqdm=True, logging_strategy="no", dataloader_num_workers=0, use_cpu=True,
            train_sampling_strategy="group_by_length"))
    trainer.train()
    history = [h["eval_accuracy"] for h in trainer.state.log_history if "eval_accuracy" in h]
    wall = time.perf_counter() - start
    real_tokens = args.epochs * sum(len(f["input_ids"]) for f in train)
    return {"wall_seconds": wall, "dev_accuracy": history[-1], "dev_accuracy_best_epoch": max(history),
            "train_seconds": timer.seconds,
            "train_tokens": real_tokens, "train_tokens_per_second": real_tokens / timer.seconds,
            "torch_threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=4000, help="training pairs (of 5,466)")
    parser.add_argument("--dev-rows", type=int, default=2000, help="dev pairs (of 4,812)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--variants", default="seqtune,hf_dynamic")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="seqtune override (repeatable)")
    parser.add_argument("--workdir", default=str(REPO / "benchmarks" / "out" / "pairs_work"))
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "pairs_speed.json"))
    parser.add_argument("--variant", help=argparse.SUPPRESS)  # internal: run one variant, print JSON
    args = parser.parse_args()
    data = Path(args.workdir) / "pair_data"
    if args.variant:
        result = {"seqtune": run_seqtune, "hf_dynamic": run_hf}[args.variant](args, data)
        print("RESULT " + json.dumps(result))
        return
    try:
        write_pair_task(data, args.rows, args.dev_rows)
    except FileNotFoundError as error:
        sys.exit(f"SQuAD v1.1 not found: {error}")

    import torch

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    report = {"rows": args.rows, "dev_rows": args.dev_rows, "epochs": args.epochs, "recipe": RECIPE,
              "torch_threads": torch.get_num_threads(), "commit": commit.stdout.strip(),
              "matmul_peak_gflops": round(matmul_peak_gflops(), 1), "flop_per_token": flop_per_token(minilm_dir()),
              "variants": {}}
    run_variants(__file__, args.variants.split(","), ["--rows", str(args.rows), "--epochs", str(args.epochs),
                                                      "--workdir", args.workdir, *[f"--set={s}" for s in args.sets]], report)
    v = report["variants"]
    if "seqtune" in v and "hf_dynamic" in v:
        report["speedup_wall"] = v["hf_dynamic"]["wall_seconds"] / v["seqtune"]["wall_seconds"]
        report["speedup_training"] = v["hf_dynamic"]["train_seconds"] / v["seqtune"]["train_seconds"]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: val for k, val in report.items() if k != "variants"}, indent=2))


if __name__ == "__main__":
    main()
