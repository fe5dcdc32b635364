"""Peak memory: seqtune against Hugging Face at the same settings, each side in its own process.

Memory is sampled from outside (seqtune.memory.MemorySampler on the child's /proc/PID/status, every
50 ms): peak anonymous resident memory (RssAnon: heap, tensors, Python objects; memory-mapped files
are not in it) and peak total resident memory (VmRSS). Memory is a valid figure on a loaded
machine; the wall times printed beside it are not.

Rows (`--rows`, comma-separated):
  mlm    MLM pretraining, preset tiny (2 x 128), char vocabulary, 512-token windows, the UniProt
         corpus (131,497 proteins, 46.3M residues), 3 optimiser steps of up to 32 x 512 tokens.
         seqtune: `seqtune pretrain` (token store built on this first start, in a fresh cache).
         Hugging Face: `datasets` (Dataset.from_generator + map, Arrow files memory-mapped) +
         DataCollatorForLanguageModeling + BertForMaskedLM + Trainer (batch 32, max_steps 3), the
         same initial model and tokenizer (run_mlm's line_by_line: each protein truncated to 512).
  sst2   fine-tuning all-MiniLM-L6-v2 on the first 4,000 SST-2 rows, 1 epoch, batch 32, dev set
         evaluated: benchmarks/sst2_speed.py's two sides (Trainer with dynamic padding +
         group_by_length).
  ss     per-residue secondary structure (3 states), a fresh tiny char encoder, 512-token windows,
         batches of up to 4,096 tokens (8 x 512 for the Trainer, group_by_length), linear head, 20 steps,
         the shared SS train split. Hugging Face: AutoModelForTokenClassification +
         DataCollatorForTokenClassification + Trainer, each protein truncated to 512 tokens.
  mlm_x10  seqtune only: the MLM row on the corpus repeated 10 times (463M residues).

  ss: seqtune reads the training file into a token store (a first start, in a fresh cache).

    python benchmarks/memory.py                   # mlm, sst2, ss; writes benchmarks/out/memory.json
    python benchmarks/memory.py --rows mlm_x10 --corpus-x10 /tmp/uniprot_x10.fasta.gz
    python benchmarks/memory.py --rows ss,sst2 --sides seqtune --seqtune-set train.malloc_mmap_threshold=131072 \
        --label mmap                              # seqtune with a setting, kept as "ss:seqtune-mmap"
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))
CORPUS = REPO.parent / "shared" / "data" / "protein_unlabeled" / "uniprot_nr50.fasta.gz"
MLM_SETTINGS = ["task.type=mlm", "model.vocab.kind=char", "model.vocab.alphabet=protein",
                "model.architecture.preset=tiny", "model.architecture.max_positions=512", "data.max_length=512",
                "train.max_tokens=16384", "train.lr=1e-3", "train.seed=42", "train.progress=false"]


def mlm_steps_epochs(steps: int = 3) -> float:
    """train.epochs giving `steps` optimiser steps (2,956 token-budget batches per epoch on the corpus)."""
    return steps / 2956 * 0.999


def run_mlm_seqtune(args) -> dict:
    from seqtune.cli import main

    os.environ["SEQTUNE_CACHE"] = str(Path(args.workdir) / f"cache-{time.time_ns()}")  # a first start
    out = Path(args.workdir) / "mlm_runs"
    sets = [*MLM_SETTINGS, f"data.train={args.corpus}", f"train.epochs={mlm_steps_epochs() / args.repeat}",
            f"output_dir={out}", "name=mlm"]
    code = main(["pretrain", *[x for s in [*sets, *args.seqtune_set] for x in ("--set", s)]])
    run = max(p for p in out.iterdir() if p.name.startswith("mlm-2"))
    results = json.loads((run / "results.json").read_text())
    log = (run / "log.txt").read_text()
    store_line = next((line for line in log.splitlines() if "token store:" in line), "")
    return {"exit": code, "steps": results["train"]["steps"], "train_tokens": results["train"]["train_tokens"],
            "in_process_memory": results["memory"], "token_store": store_line.split("token store: ")[-1]}


def run_mlm_hf(args) -> dict:
    import datasets
    from transformers import (
        AutoTokenizer,
        BertForMaskedLM,
        DataCollatorForLanguageModeling,
        Trainer,
        TrainingArguments,
    )

    from seqtune.config import load_config
    from seqtune.training.pretrain import prepare_from_scratch

    work = Path(args.workdir)
    cfg = load_config(None, [*MLM_SETTINGS, f"data.train={args.corpus}", f"output_dir={work / 'hf_init'}"])
    init = prepare_from_scratch(cfg)  # the same random model and tokenizer as the seqtune side
    tokenizer = AutoTokenizer.from_pretrained(init)

    def proteins():
        with gzip.open(args.corpus, "rt") as f:
            sequence: list[str] = []
            for line in f:
                if line.startswith(">"):
                    if sequence:
                        yield {"text": "".join(sequence)}
                    sequence = []
                else:
                    sequence.append(line.strip())
            if sequence:
                yield {"text": "".join(sequence)}

    cache = work / f"hf_cache-{time.time_ns()}"
    started = time.perf_counter()
    raw = datasets.Dataset.from_generator(proteins, cache_dir=str(cache))
    tokenized = raw.map(lambda batch: tokenizer(batch["text"], truncation=True, max_length=512,
                                                return_special_tokens_mask=True),
                        batched=True, remove_columns=["text"])
    tokenize_seconds = time.perf_counter() - started
    cache_bytes = sum(p.stat().st_size for p in cache.rglob("*") if p.is_file())
    model = BertForMaskedLM.from_pretrained(init)
    training_args = TrainingArguments(
        output_dir=str(work / "hf_mlm"), per_device_train_batch_size=32, learning_rate=1e-3, max_steps=3,
        seed=42, save_strategy="no", report_to=[], disable_tqdm=True, logging_strategy="no",
        dataloader_num_workers=0, use_cpu=True,
    )
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15)
    Trainer(model=model, args=training_args, train_dataset=tokenized, data_collator=collator).train()
    return {"steps": 3, "records": len(tokenized), "tokenize_seconds": round(tokenize_seconds, 1),
            "arrow_cache_mb": round(cache_bytes / 2**20, 1)}


def run_sst2(args, side: str) -> dict:
    import sst2_speed

    ns = argparse.Namespace(rows=4000, epochs=1, workdir=str(Path(args.workdir) / "sst2"), sets=args.seqtune_set)
    return sst2_speed.run_seqtune(ns) if side == "seqtune" else sst2_speed.run_hf(ns, pad_to_128=False)


SS = REPO.parent / "shared" / "data" / "protein_ss" / "train.csv"
SS_STEPS = 20


def ss_initial_model(args) -> str:
    """A fresh preset-tiny char protein encoder (512 positions), the same for both sides."""
    from seqtune.config import load_config
    from seqtune.training.pretrain import prepare_from_scratch

    cfg = load_config(None, ["task.type=mlm", "model.vocab.alphabet=protein", "model.architecture.preset=tiny",
                             "model.architecture.max_positions=512", f"data.train={SS}", "data.text_column=input",
                             "data.max_length=512", f"output_dir={Path(args.workdir) / 'ss_init'}"])
    return str(prepare_from_scratch(cfg))


def run_ss_seqtune(args) -> dict:
    from seqtune.cli import main

    os.environ["SEQTUNE_CACHE"] = str(Path(args.workdir) / f"cache-{time.time_ns()}")  # a first start
    out = Path(args.workdir) / "ss_runs"
    sets = [f"model.path={ss_initial_model(args)}", f"data.train={SS}", "task.head=linear", "data.dev=null",
            "data.test=null", "data.max_length=512", "train.max_tokens=4096", f"train.epochs={SS_STEPS / 700:.5f}",
            "train.progress=false", f"output_dir={out}", "name=ss", *args.seqtune_set]
    code = main(["train", str(REPO / "configs" / "protein_ss.yaml"), *[x for s in sets for x in ("--set", s)]])
    run = max(p for p in out.iterdir() if p.name.startswith("ss-2"))
    results = json.loads((run / "results.json").read_text())
    return {"exit": code, "steps": results["train"]["steps"], "train_tokens": results["train"]["train_tokens"],
            "in_process_memory": results["memory"]}


def run_ss_hf(args) -> dict:
    import csv

    from transformers import (
        AutoModelForTokenClassification,
        AutoTokenizer,
        DataCollatorForTokenClassification,
        Trainer,
        TrainingArguments,
    )

    init = ss_initial_model(args)
    tokenizer = AutoTokenizer.from_pretrained(init)
    labels = {"C": 0, "E": 1, "H": 2}
    rows = []
    with open(SS, newline="") as f:
        for row in csv.DictReader(f):
            ids = tokenizer(row["input"], truncation=True, max_length=512)["input_ids"]
            tags = [labels[c] if m == "1" else -100 for c, m in zip(row["dssp3"], row["resolved_mask"])]
            rows.append({"input_ids": ids, "labels": [-100, *tags[:len(ids) - 2], -100]})
    model = AutoModelForTokenClassification.from_pretrained(init, num_labels=3)
    training_args = TrainingArguments(
        output_dir=str(Path(args.workdir) / "hf_ss"), per_device_train_batch_size=8, learning_rate=1e-3,
        max_steps=SS_STEPS, seed=42, save_strategy="no", report_to=[], disable_tqdm=True, logging_strategy="no",
        dataloader_num_workers=0, use_cpu=True, train_sampling_strategy="group_by_length",
    )
    Trainer(model=model, args=training_args, train_dataset=rows,
            data_collator=DataCollatorForTokenClassification(tokenizer)).train()
    return {"steps": SS_STEPS, "records": len(rows)}


VARIANTS = {
    "ss:seqtune": run_ss_seqtune,
    "ss:hf": run_ss_hf,
    "mlm:seqtune": run_mlm_seqtune,
    "mlm:hf": run_mlm_hf,
    "mlm_x10:seqtune": run_mlm_seqtune,
    "sst2:seqtune": lambda a: run_sst2(a, "seqtune"),
    "sst2:hf": lambda a: run_sst2(a, "hf"),
}


def measure(variant: str, args) -> dict:
    from seqtune.memory import MemorySampler

    cmd = [sys.executable, __file__, "--variant", variant, "--workdir", args.workdir,
           *[x for item in args.seqtune_set for x in ("--seqtune-set", item)],
           "--corpus", args.corpus_x10 if variant.startswith("mlm_x10") else args.corpus,
           "--repeat", "10" if variant.startswith("mlm_x10") else "1"]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = MemorySampler(proc.pid).start()
    stdout, stderr = proc.communicate()
    peaks = sampler.stop()
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise SystemExit(f"{variant} failed:\n{stderr[-3000:]}")
    return {**json.loads(lines[-1][len("RESULT "):]), "peak_anon_mb": peaks["peak_anon_mb"],
            "peak_rss_mb": peaks["peak_rss_mb"], "wall_seconds_under_load": round(time.perf_counter() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="mlm,sst2,ss", help="rows to run: mlm, sst2, ss, mlm_x10")
    parser.add_argument("--corpus", default=str(CORPUS))
    parser.add_argument("--corpus-x10", help="the corpus repeated 10 times (for the mlm_x10 row)")
    parser.add_argument("--workdir", default=str(REPO / "benchmarks" / "out" / "memory_work"))
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "memory.json"))
    parser.add_argument("--sides", default="seqtune,hf", help="which sides to run: seqtune, hf")
    parser.add_argument("--seqtune-set", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting for the seqtune side (repeatable)")
    parser.add_argument("--label", default="", help="kept as ROW:seqtune-LABEL in the report")
    parser.add_argument("--variant", help=argparse.SUPPRESS)  # internal: run one side, print JSON
    parser.add_argument("--repeat", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    if args.variant:
        print("RESULT " + json.dumps(VARIANTS[args.variant](args)), flush=True)
        return
    out = Path(args.out)
    report = json.loads(out.read_text()) if out.exists() else {}
    for row in args.rows.split(","):
        for side in args.sides.split(","):
            variant = f"{row}:{side}"
            if variant not in VARIANTS:
                continue
            result = measure(variant, args)
            if side == "seqtune" and args.seqtune_set:
                result["seqtune_set"] = args.seqtune_set
            report[variant + (f"-{args.label}" if args.label and side == "seqtune" else "")] = result
            print(variant, json.dumps(result), flush=True)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(report, indent=2) + "\n")
    print("| row | seqtune peak anon / total (MiB) | Hugging Face peak anon / total (MiB) | ratio (anon / total) |")
    print("|---|---|---|---|")
    for key in sorted(k for k in report if ":seqtune" in k):
        row = key.split(":")[0]
        ours, theirs = report[key], report.get(f"{row}:hf")
        if ours:
            hf = f"{theirs['peak_anon_mb']:.0f} / {theirs['peak_rss_mb']:.0f}" if theirs else "—"
            ratio = (f"{ours['peak_anon_mb'] / theirs['peak_anon_mb']:.2f} / {ours['peak_rss_mb'] / theirs['peak_rss_mb']:.2f}"
                     if theirs else "—")
            print(f"| {key} | {ours['peak_anon_mb']:.0f} / {ours['peak_rss_mb']:.0f} | {hf} | {ratio} |")


if __name__ == "__main__":
    main()
