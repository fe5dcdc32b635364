"""MLM training throughput: seqtune vs Hugging Face, same model, corpus, batches and optimiser.

seqtune:       MaskedLMTask.collate (dynamic masking) -> TaskModel (logits only at masked positions)
               -> cross-entropy -> backward -> AdamW step
Hugging Face:  DataCollatorForLanguageModeling (dynamic masking, padding to the batch's longest) ->
               BertForMaskedLM(**batch).loss (logits at every position) -> backward -> AdamW step

Both start from the same randomly initialised checkpoint (written by seqtune, loaded by both) and
see the same batches of the same windows in the same order. Throughput = real (unpadded) tokens per
second of wall time over the timed steps, collation included. Sides alternate in rounds so that a
noisy shared CPU affects both alike; the median round is reported. Results go to benchmarks/out/.

    python benchmarks/mlm_throughput.py --quick          # smoke test, < 2 minutes
    python benchmarks/mlm_throughput.py                  # char protein, mini preset, 512 tokens
    python benchmarks/mlm_throughput.py --vocab wordpiece --corpus ../shared/data/sst2/train.tsv
    python benchmarks/mlm_throughput.py --compile        # also seqtune with train.compile
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from seqtune.config import DataConfig
from seqtune.data.corpus import Corpus, CorpusRecord, read_corpus
from seqtune.models.presets import ArchitectureSpec, describe, encoder_config, write_initial_model
from seqtune.models.task_model import model_for_finetuning
from seqtune.tasks.mlm import MaskedLMOptions, MaskedLMTask
from seqtune.vocab_builder import build_char_tokenizer, build_wordpiece_tokenizer

HERE = Path(__file__).resolve().parent
DEFAULT_CORPUS = HERE.parent.parent / "shared" / "data" / "protein_unlabeled" / "proteins_ecoli_yeast.fasta"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny preset, 128 tokens, few steps (< 2 min)")
    p.add_argument("--corpus", default=str(DEFAULT_CORPUS),
                   help="corpus file (FASTA/text/CSV/TSV); synthetic sequences when it does not exist")
    p.add_argument("--text-column", default="sentence", help="column of a CSV/TSV corpus")
    p.add_argument("--vocab", choices=["char", "wordpiece"], default="char")
    p.add_argument("--packing", choices=["lines", "concatenate"], default=None,
                   help="windows: one record each (default for char) or records joined and cut into "
                        "full windows (default for wordpiece, as run_mlm's group_texts)")
    p.add_argument("--vocab-size", type=int, default=30522, help="WordPiece vocabulary size (tokens)")
    p.add_argument("--preset", default="mini", help="architecture preset (tiny, mini, small, medium, base)")
    p.add_argument("--max-length", type=int, default=512, help="tokens per window, [CLS]/[SEP] included")
    p.add_argument("--batch-size", type=int, default=16, help="windows per batch")
    p.add_argument("--steps", type=int, default=30, help="timed steps per round and side")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps before each round")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds (median reported)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--compile", action="store_true",
                   help="a third side: seqtune with train.compile (compiled during its first warm-up steps)")
    args = p.parse_args(argv)
    if args.packing is None:
        args.packing = "lines" if args.vocab == "char" else "concatenate"
    if args.quick:
        args.preset, args.max_length, args.batch_size = "tiny", 128, 16
        args.steps, args.warmup, args.rounds = 8, 2, 2
    return args


def load_corpus(args) -> Corpus:
    path = Path(args.corpus)
    if path.is_file():
        return read_corpus(path, column=args.text_column)
    from seqtune.demo_data import unlabelled_sequences

    seqs = unlabelled_sequences(2000, seed=args.seed, min_length=60, max_length=600)
    print(f"{path} not found: using 2000 synthetic sequences", file=sys.stderr)
    return Corpus([CorpusRecord(s, f"synthetic {i}") for i, s in enumerate(seqs)], "synthetic")


def make_batches(features: list[dict], batch_size: int, count: int, seed: int) -> list[list[dict]]:
    rng = np.random.default_rng(seed)
    return [[features[i] for i in rng.choice(len(features), batch_size, replace=False)] for _ in range(count)]


def seqtune_step(task, model, optimizer, device):
    def step(features: list[dict]) -> int:
        batch = {k: v.to(device) for k, v in task.collate(features).items()}
        loss = task.loss(model(batch), batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return int(batch["attention_mask"].sum())
    return step


def hf_step(collator, model, optimizer, device):
    def step(features: list[dict]) -> int:
        batch = collator([{"input_ids": f["input_ids"]} for f in features])
        batch = {k: v.to(device) for k, v in batch.items()}
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return int(batch["attention_mask"].sum())
    return step


def timed(step, batches: list[list[dict]], warmup: int, device) -> float:
    for b in batches[:warmup]:
        step(b)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start, tokens = time.perf_counter(), 0
    for b in batches[warmup:]:
        tokens += step(b)
    sync()
    return tokens / (time.perf_counter() - start)


def main(argv=None) -> int:
    args = parse_args(argv)
    import transformers

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    corpus = load_corpus(args)
    if args.vocab == "char":
        tokenizer = build_char_tokenizer(corpus.records)
    else:
        tokenizer = build_wordpiece_tokenizer(corpus.records, args.vocab_size)
    cfg = encoder_config(ArchitectureSpec(preset=args.preset), tokenizer.vocab_size, tokenizer.pad_id, args.max_length)
    workdir = Path(tempfile.mkdtemp(prefix="mlm_bench_"))
    init = write_initial_model(workdir / "init", cfg, tokenizer, seed=args.seed)

    task = MaskedLMTask(MaskedLMOptions(mask_seed=args.seed, packing=args.packing), DataConfig(max_length=args.max_length), tokenizer)
    # The vocabulary is built from the whole corpus; batches are drawn from its first 4,000 records.
    features = task.encode(Corpus(corpus.records[:4000], corpus.source), "train").features
    batches = make_batches(features, args.batch_size, args.warmup + args.steps, args.seed)

    ours, _ = model_for_finetuning(str(init), task)
    ours.to(device).train()
    ours_opt = torch.optim.AdamW(ours.parameters(), lr=1e-4)
    hf_tok = transformers.AutoTokenizer.from_pretrained(init)
    collator = transformers.DataCollatorForLanguageModeling(hf_tok, mlm_probability=0.15, return_tensors="pt")
    hf = transformers.BertForMaskedLM.from_pretrained(init).to(device).train()
    hf_opt = torch.optim.AdamW(hf.parameters(), lr=1e-4)
    sides = {"seqtune": seqtune_step(task, ours, ours_opt, device), "hf": hf_step(collator, hf, hf_opt, device)}
    if args.compile:  # a third side: the same start, train.compile (compiled during its first warm-up steps)
        from seqtune.training.compiling import compile_blocks

        compiled, _ = model_for_finetuning(str(init), task)
        compiled.to(device).train()
        compile_blocks(compiled)
        sides["seqtune_compile"] = seqtune_step(task, compiled, torch.optim.AdamW(compiled.parameters(), lr=1e-4),
                                                device)

    rounds: dict[str, list[float]] = {name: [] for name in sides}
    for r in range(args.rounds):
        for name in (sides if r % 2 == 0 else reversed(list(sides))):
            rounds[name].append(timed(sides[name], batches, args.warmup, device))
            print(f"round {r + 1} {name}: {rounds[name][-1]:,.0f} tokens/s", file=sys.stderr, flush=True)
    median = {name: statistics.median(v) for name, v in rounds.items()}
    result = {
        "benchmark": "mlm_throughput",
        "quick": args.quick,
        "model": describe(cfg),
        "preset": args.preset,
        "vocab": {"kind": args.vocab, "size": tokenizer.vocab_size},
        "corpus": corpus.source,
        "max_length": args.max_length,
        "packing": args.packing,
        "compile": args.compile,
        "batch_size": args.batch_size,
        "mean_tokens_per_batch": float(np.mean([sum(len(f["input_ids"]) for f in b) for b in batches])),
        "steps_per_round": args.steps,
        "rounds": args.rounds,
        "tokens_per_second": {k: round(v, 1) for k, v in median.items()},
        "all_rounds": {k: [round(x, 1) for x in v] for k, v in rounds.items()},
        "ratio_seqtune_over_hf": round(median["seqtune"] / median["hf"], 3),
        **({"ratio_compile_over_hf": round(median["seqtune_compile"] / median["hf"], 3),
            "ratio_compile_over_eager": round(median["seqtune_compile"] / median["seqtune"], 3)} if args.compile else {}),
        "environment": {
            "device": str(device), "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
            "torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version(), "machine": platform.machine(),
            "attn_implementation_hf": getattr(hf.config, "_attn_implementation", None),
        },
    }
    out_dir = HERE / "out"
    out_dir.mkdir(exist_ok=True)
    out = out_dir / f"mlm_throughput-{args.vocab}-{args.preset}-{'quick-' if args.quick else ''}{'compile-' if args.compile else ''}{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k in ("model", "tokens_per_second") or k.startswith("ratio")},
                     indent=2))
    print(f"written: {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
