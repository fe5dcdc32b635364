"""DNA promoter classification (GUE prom_core_tata): does seqtune's DNA pretraining pay off, with
single-nucleotide or overlapping k-mer tokens, against a k-mer-count logistic regression?

Task: GUE `prom_core_tata` (70-bp sequences around a TATA-box transcription start site, promoter vs
not; train 4,904 / dev 613 / test 613). Metric: Matthews correlation (MCC) on the test split, of the
checkpoint with the best dev MCC.

Starts, all the same encoder (preset tiny, 2 x 128) fine-tuned with the same recipe, per seed:
  char-pretrained   seqtune pretrain, one token per nucleotide (model.vocab.alphabet ACGT)
  kmer-pretrained   seqtune pretrain, overlapping k-mers (model.vocab.kmer K, kmer_overlap: true)
  char-scratch      the same architecture and vocabulary, random initial weights (no pretraining)
  kmer-scratch      the same, with the k-mer vocabulary (not run by default: --starts)
Baselines: logistic regression on k-mer counts (k = 1..6, scikit-learn, C chosen on dev), and the
majority label.

Pretraining corpus: the sequences (labels ignored) of GUE `prom_core_all`'s training split (47,356
70-bp sequences), without the records that share >= 90% of their 5-mers with a prom_core_tata dev or
test sequence (`data.exclude_similar_to`), a bounded number of epochs (`--pretrain-epochs`, default a
quarter: 183 steps of 64 sequences). Fine-tuning: batch 32, lr 5e-4, 10% warm-up, 1 epoch by default
(CPU budget: the machine is shared).

    nice -n 10 env OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/dna_promoter.py \
        --data ../shared/data/dna_promoter_gue                 # writes benchmarks/out/dna_promoter.json
    ... --smoke                                                # a minute: 300 rows, 1 seed, tiny budgets
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TASK = "prom_core_tata"
CORPUS = "prom_core_all"


def pretrain_config(tmp: Path, name: str, data: Path, args, kmer: int) -> Path:
    vocab = f"{{kind: char, alphabet: ACGT, kmer: {kmer}, kmer_overlap: true}}" if kmer else "{kind: char, alphabet: ACGT}"
    config = tmp / f"{name}.yaml"
    config.write_text(f"""task: {{type: mlm, mask_probability: 0.15, packing: lines, mask_seed: 0}}
model:
  vocab: {vocab}
  architecture: {{preset: tiny, max_positions: 128}}
data:
  train: {data / CORPUS / 'train.csv'}
  dev: {data / TASK / 'dev.csv'}
  text_column: sequence
  max_length: 128
  exclude_similar_to: ["{data / TASK / 'dev.csv'}#sequence", "{data / TASK / 'test.csv'}#sequence"]
train: {{epochs: {args.pretrain_epochs}, batch_size: 64, lr: 1.0e-3, warmup_ratio: 0.05, weight_decay: 0.01,
        seed: 0, num_threads: 1, progress: false}}
output_dir: {tmp / 'runs'}
name: {name}
""")
    return config


def pretrain(tmp: Path, name: str, data: Path, args, kmer: int, init_only: bool = False) -> dict:
    """Pretrain from scratch; returns the pretrained model, the random initial one, and the run's numbers.
    init_only: only the random initial model (the weights depend only on the seed and the vocabulary)."""
    from seqtune.config import load_config
    from seqtune.training.pretrain import prepare_from_scratch, pretrain_from_config

    overrides = [f"data.max_rows={args.rows}"] if args.rows else []
    cfg = load_config(pretrain_config(tmp, name, data, args, kmer), overrides)
    init = prepare_from_scratch(cfg)  # the "from scratch" start: same vocabulary and architecture, random weights
    if init_only:
        return {"model": None, "init": str(init)}
    start = time.perf_counter()
    run_dir = pretrain_from_config(cfg)
    wall = time.perf_counter() - start
    results = json.loads((run_dir / "results.json").read_text())
    return {"model": str(run_dir / "model"), "init": str(init), "wall_seconds": round(wall, 1),
            "steps": results["train"]["steps"], "train_tokens": results["train"]["train_tokens"],
            "dev_perplexity": results.get("dev", {}).get("perplexity"),
            "dev_masked_accuracy": results.get("dev", {}).get("accuracy")}


def finetune(tmp: Path, start: str, model: str, seed: int, data: Path, args) -> dict:
    from seqtune.config import load_config
    from seqtune.training.setup import train_from_config

    config = tmp / "classify.yaml"
    config.write_text("task: {type: classification, head: cls}\n")
    overrides = [
        f"model.path={model}", f"data.train={data / TASK / 'train.csv'}", f"data.dev={data / TASK / 'dev.csv'}",
        f"data.test={data / TASK / 'test.csv'}", "data.text_column=sequence", "data.max_length=128",
        f"train.epochs={args.finetune_epochs}", "train.batch_size=32", f"train.lr={args.lr}",
        "train.warmup_ratio=0.1", "train.metric=mcc", f"train.seed={seed}", "train.num_threads=1",
        "train.progress=false", f"output_dir={tmp / 'runs'}", f"name={start}-{seed}",
    ] + ([f"data.max_rows={args.rows}"] if args.rows else [])
    begin = time.perf_counter()
    run_dir = train_from_config(load_config(config, overrides))
    wall = time.perf_counter() - begin
    results = json.loads((run_dir / "results.json").read_text())
    return {"start": start, "seed": seed, "wall_seconds": round(wall, 1), "steps": results["train"]["steps"],
            "dev_mcc": results["dev"]["mcc"], "test_mcc": results["test"]["mcc"],
            "test_accuracy": results["test"]["accuracy"]}


def read_split(data: Path, split: str, rows: int | None) -> tuple[list[str], list[int]]:
    with open(data / TASK / f"{split}.csv", newline="") as f:
        records = list(csv.DictReader(f))[: rows or None]
    return [r["sequence"] for r in records], [int(r["label"]) for r in records]


def baselines(data: Path, rows: int | None) -> dict:
    """k-mer-count logistic regression (C picked on dev MCC) and the majority label, on test."""
    import numpy as np
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, matthews_corrcoef
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    (xtr, ytr), (xdv, ydv), (xte, yte) = (read_split(data, s, rows) for s in ("train", "dev", "test"))
    best = None
    for c in (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 0.1, 1.0):
        model = make_pipeline(CountVectorizer(analyzer="char", ngram_range=(1, 6), lowercase=False),
                              StandardScaler(with_mean=False), LogisticRegression(C=c, max_iter=3000))
        model.fit(xtr, ytr)
        dev_mcc = matthews_corrcoef(ydv, model.predict(xdv))
        if best is None or dev_mcc > best[0]:
            best = (dev_mcc, c, model)
    dev_mcc, c, model = best
    pred = model.predict(xte)
    majority = int(np.bincount(ytr).argmax())
    return {
        "kmer_logreg": {"C": c, "dev_mcc": dev_mcc, "test_mcc": matthews_corrcoef(yte, pred),
                        "test_accuracy": accuracy_score(yte, pred)},
        "majority": {"label": majority, "test_mcc": 0.0,
                     "test_accuracy": accuracy_score(yte, [majority] * len(yte))},
    }


def corpus_filter_count(data: Path, rows: int | None) -> dict:
    from seqtune.data.corpus import read_corpus
    from seqtune.data.similarity import exclude_similar

    corpus = read_corpus(str(data / CORPUS / "train.csv"), "auto", "sequence", rows, True)
    _, removed = exclude_similar(corpus, [f"{data / TASK / s}.csv#sequence" for s in ("dev", "test")])
    return {"corpus_records": len(corpus), "removed_near_duplicates": len(removed)}


def table(out: dict) -> str:
    lines = ["| start | test MCC (mean ± sd) | per seed | test accuracy (mean) |", "|---|---|---|---|"]
    for start in out["starts"]:
        runs = [r for r in out["finetune"] if r["start"] == start]
        mccs = [r["test_mcc"] for r in runs]
        sd = statistics.stdev(mccs) if len(mccs) > 1 else 0.0
        acc = statistics.mean(r["test_accuracy"] for r in runs)
        lines.append(f"| {start} | {statistics.mean(mccs):.3f} ± {sd:.3f} | "
                     f"{', '.join(f'{m:.3f}' for m in mccs)} | {acc:.3f} |")
    b = out["baselines"]
    lines.append(f"| k-mer-count logistic regression (C={b['kmer_logreg']['C']}) | "
                 f"{b['kmer_logreg']['test_mcc']:.3f} | deterministic | {b['kmer_logreg']['test_accuracy']:.3f} |")
    lines.append(f"| majority label | 0.000 | — | {b['majority']['test_accuracy']:.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "dna_promoter_gue"))
    parser.add_argument("--kmer", type=int, default=6)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--pretrain-epochs", type=float, default=0.25)
    parser.add_argument("--finetune-epochs", type=float, default=1.0)
    parser.add_argument("--starts", default="char-pretrained,kmer-pretrained,char-scratch",
                        help="comma-separated, of char-pretrained, kmer-pretrained, char-scratch, kmer-scratch")
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--rows", type=int, default=None, help="read only the first N rows of every file")
    parser.add_argument("--smoke", action="store_true", help="300 rows, seed 0, small budgets")
    parser.add_argument("--baselines-only", action="store_true", help="the corpus filter count and the baselines")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "dna_promoter.json"))
    args = parser.parse_args()
    if args.smoke:
        args.rows, args.seeds, args.pretrain_epochs, args.finetune_epochs = 300, "0", 1.0, 1.0
    data = Path(args.data)
    seeds = [int(s) for s in args.seeds.split(",")]
    out: dict = {"task": TASK, "corpus": CORPUS, "kmer": args.kmer, "args": vars(args)}
    out["corpus_filter"] = corpus_filter_count(data, args.rows)
    print(json.dumps(out["corpus_filter"]), flush=True)
    out["baselines"] = baselines(data, args.rows)
    print(json.dumps(out["baselines"]), flush=True)
    if args.baselines_only:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
        return
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        wanted = args.starts.split(",")
        out["pretrain"] = {"char": pretrain(tmp, "char", data, args, 0, "char-pretrained" not in wanted),
                           f"{args.kmer}mer": pretrain(tmp, f"kmer{args.kmer}", data, args, args.kmer,
                                                       "kmer-pretrained" not in wanted)}
        print(json.dumps(out["pretrain"]), flush=True)
        kmer = f"{args.kmer}mer"
        models = {"char-pretrained": out["pretrain"]["char"]["model"], "kmer-pretrained": out["pretrain"][kmer]["model"],
                  "char-scratch": out["pretrain"]["char"]["init"], "kmer-scratch": out["pretrain"][kmer]["init"]}
        starts = {name.replace("kmer", kmer): models[name] for name in wanted}
        out["starts"], out["finetune"] = list(starts), []
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        for seed in seeds:  # every start of a seed before the next seed: partial results stay comparable
            for start, model in starts.items():
                out["finetune"].append(finetune(tmp, start, model, seed, data, args))
                print(json.dumps(out["finetune"][-1]), flush=True)
                Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(table(out))


if __name__ == "__main__":
    main()
