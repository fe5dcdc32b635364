"""Protein secondary structure (3-state): Q3 of a small character-level encoder, from scratch or pretrained.

Recipe: a fresh BERT with one token per amino acid (seqtune's character tokenizer over the protein
alphabet ACDEFGHIKLMNPQRSTVWYXBZUO) and random weights, preset "tiny" (2 layers x 128 hidden) by
default, fine-tuned as `residues` on configs/protein_ss.yaml: the shared FLIP/NetSurfP-2.0 train
split (9,712 proteins, 2.48M residues), residues with resolved_mask 0 left out of loss and
metrics, windows of 510 residues with stride 255 for longer proteins, the config's residue head (two
1-D convolutions, width 9, 128 channels), 4 epochs, batches of up to 4,096 tokens, lr 1e-3, 5%
warm-up, linear decay, weight decay 0.01, seed 42. `--cb513` also scores the best model on CB513.
The simple baselines to read every row against: benchmarks/ss_baselines.py. The valid split picks
the best epoch; the test split (NEW364, 364 proteins) gives Q3. No pretraining and no evolutionary
profiles: this is the from-scratch baseline that the pretrained variant (issue 4) should beat.

The fresh model comes from the shared builders (`seqtune.vocab_builder.build_char_tokenizer`,
`seqtune.models.presets.write_initial_model`), the same ones `seqtune pretrain` uses.

    python benchmarks/protein_ss.py                  # full run (long on CPU; use a GPU if you have one)
    python benchmarks/protein_ss.py --quick          # smoke test, < 2 minutes
    python benchmarks/protein_ss.py --model runs/protein_mlm-<stamp>/model --out ...   # pretrained start (issue 4)
Writes benchmarks/out/protein_ss[_quick].json.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "protein_ss"


def write_subset(source: Path, target: Path, rows: int | None) -> Path:
    """The first `rows` proteins of a CSV (or the file itself when rows is None)."""
    if rows is None:
        return source
    target.parent.mkdir(parents=True, exist_ok=True)
    csv.field_size_limit(1 << 30)
    with source.open(newline="") as f, target.open("w", newline="") as out:
        reader, writer = csv.reader(f), csv.writer(out)
        writer.writerow(next(reader))
        for i, row in enumerate(reader):
            if i >= rows:
                break
            writer.writerow(row)
    return target


def fresh_model(directory: Path, preset: str, max_length: int, seed: int, family: str = "bert") -> tuple[Path, str]:
    """A randomly initialised character-level BERT (or ESM-shaped) directory (Hugging Face layout)."""
    from seqtune.models.presets import ArchitectureSpec, describe, encoder_config, write_initial_model
    from seqtune.vocab_builder import build_char_tokenizer

    tokenizer = build_char_tokenizer(alphabet="protein", family=family)
    cfg = encoder_config(ArchitectureSpec(preset=preset, family=family), tokenizer.vocab_size, tokenizer.pad_id,
                         max_length, tokenizer.mask_id)
    write_initial_model(directory, cfg, tokenizer, seed=seed)
    return directory, describe(cfg)


def cb513_scores(model_dir: Path, work: Path) -> dict:
    """Q3 of a saved model on CB513 (scored where disorder == 1.0), from the NetSurfP-2.0 CSV whose
    per-residue fields are space-separated: rewritten as a plain sequence/labels/mask CSV first."""
    import seqtune

    target = work / "cb513_plain.csv"
    with (DATA / "cb513" / "CB513_HHblits.csv").open(newline="") as f, target.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["id", "input", "dssp3", "resolved_mask"])
        for i, row in enumerate(csv.DictReader(f, skipinitialspace=True)):
            mask = "".join("1" if float(v) == 1.0 else "0" for v in row["disorder"].split())
            writer.writerow([f"cb513-{i}", "".join(row["input"].split()), "".join(row["dssp3"].split()), mask])
    metrics = seqtune.load(model_dir).evaluate(str(target))
    return {"q3": metrics["q3"], "macro_f1": metrics["macro_f1"], "residues": metrics["residues"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="tiny", help="encoder size: tiny (2x128), mini (4x256), small, ...")
    parser.add_argument("--family", default="bert", choices=["bert", "esm"],
                        help="shape of the fresh encoder: BERT's, or ESM-2's (rotary positions, pre-LayerNorm)")
    parser.add_argument("--model", default=None,
                        help="start from this checkpoint (e.g. a `seqtune pretrain` run's model/) instead of random "
                             "weights; the same recipe otherwise")
    parser.add_argument("--epochs", type=float, default=4)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--max-length", type=int, default=512, help="tokens per window, [CLS]/[SEP] included")
    parser.add_argument("--max-tokens", type=int, default=4096, help="padded tokens per training batch")
    parser.add_argument("--train-proteins", type=int, default=None, help="first N proteins of train.csv (default all)")
    parser.add_argument("--test-proteins", type=int, default=None, help="first N proteins of the test split")
    parser.add_argument("--no-dev", action="store_true", help="skip the valid split (keep the last epoch)")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 150 train / 40 test proteins, no dev, 1 epoch, windows of 256")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="extra seqtune config override, e.g. --set task.head=conv (repeatable)")
    parser.add_argument("--cb513", action="store_true", help="also evaluate the best model on CB513")
    parser.add_argument("--workdir", default=str(REPO / "benchmarks" / "out" / "protein_work"))
    parser.add_argument("--out", default=None, help="result JSON (default benchmarks/out/protein_ss[_quick].json)")
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"protein_ss not found at {DATA}")
    if args.quick:
        args.train_proteins, args.test_proteins, args.epochs, args.no_dev, args.max_length = 150, 40, 1, True, 256

    import seqtune
    from seqtune.config import load_config

    work = Path(args.workdir)
    start = time.perf_counter()
    if args.model:
        model_dir, model_description = Path(args.model), f"pretrained checkpoint {args.model}"
    else:
        model_dir, model_description = fresh_model(work / f"scratch_{args.family}_{args.preset}", args.preset,
                                                   args.max_length, args.seed, args.family)
        model_description = f"from scratch, preset {args.preset}: {model_description}"
    train = write_subset(DATA / "train.csv", work / f"train_first{args.train_proteins}.csv", args.train_proteins)
    test = write_subset(DATA / "test_new364.csv", work / f"test_first{args.test_proteins}.csv", args.test_proteins)
    cfg = load_config(REPO / "configs" / "protein_ss.yaml", [
        f"model.path={model_dir}", f"data.train={train}", f"data.test={test}",
        "data.dev=null" if args.no_dev else f"data.dev={DATA / 'valid.csv'}",
        f"data.max_length={args.max_length}", f"train.epochs={args.epochs}", f"train.lr={args.lr}",
        f"train.max_tokens={args.max_tokens}", f"train.seed={args.seed}", f"train.device={args.device}",
        "train.progress=false", f"output_dir={work}/runs", *args.overrides,
    ])
    run_dir = seqtune.train(cfg)
    wall = time.perf_counter() - start
    results = json.loads((run_dir / "results.json").read_text())
    test_metrics = results["test"]
    report = {
        "model": model_description,
        "train_proteins": args.train_proteins or "all", "test_proteins": args.test_proteins or "all (NEW364)",
        "epochs": args.epochs, "lr": args.lr, "max_length": args.max_length, "max_tokens": args.max_tokens,
        "dev": not args.no_dev, "cpu_threads": os.cpu_count(),
        "test_q3": test_metrics["q3"], "test_macro_f1": test_metrics["macro_f1"],
        "test_per_label_f1": {k: v["f1"] for k, v in test_metrics["per_label"].items()},
        "test_residues": test_metrics["residues"],
        "dev_q3": results.get("dev", {}).get("q3") if results.get("dev") else None,
        "train_seconds": results["train"]["train_seconds"],
        "train_tokens_per_second": results["train"]["tokens_per_second"],
        "wall_seconds": wall, "run_dir": str(run_dir), "overrides": args.overrides,
    }
    if args.cb513:
        report["cb513"] = cb513_scores(run_dir / "model", work)
    out = Path(args.out or REPO / "benchmarks" / "out" / f"protein_ss{'_quick' if args.quick else ''}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
