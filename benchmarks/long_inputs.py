"""Sequence classification on inputs longer than data.max_length: truncate vs windows (a small check).

DNA promoter detection (GUE prom_300_tata: 300-bp sequences, promoter vs not) with a character-level
tiny model (preset tiny, 2 x 128, DNA alphabet, random initialisation: no pretraining) and
data.max_length 64, so every input is about five times longer than one model input. The same run is
made twice, only data.long_inputs differs:

  truncate  the first 62 bases of each sequence (the default);
  windows   windows of 62 bases, 31 apart (9 per sequence); training uses every window with its
            sequence's label, evaluation averages the windows' logits per sequence.

    OMP_NUM_THREADS=1 python benchmarks/long_inputs.py                 # writes benchmarks/out/long_inputs.json
    OMP_NUM_THREADS=1 python benchmarks/long_inputs.py --train-rows 200 --epochs 1   # smoke test
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "dna_promoter_gue" / "prom_300_tata"


def write_model(directory: Path, max_length: int) -> Path:
    from seqtune.models.presets import (
        ArchitectureSpec,
        encoder_config,
        write_initial_model,
    )
    from seqtune.vocab_builder import build_char_tokenizer

    tokenizer = build_char_tokenizer(alphabet="dna", model_max_length=max_length)
    cfg = encoder_config(ArchitectureSpec(preset="tiny", max_positions=max_length), tokenizer.vocab_size,
                         tokenizer.pad_id, max_length)
    return write_initial_model(directory, cfg, tokenizer, seed=0)


def run(mode: str, model: Path, args, out_dir: Path) -> dict:
    from seqtune.config import load_config
    from seqtune.training.setup import train_from_config

    train = out_dir / "train.csv"
    if not train.exists():  # the first --train-rows rows (dev and test are read whole)
        lines = (DATA / "train.csv").read_text().splitlines()
        train.write_text("\n".join(lines[: args.train_rows + 1]) + "\n")
    config = out_dir / "c.yaml"
    config.write_text("task: {type: classification, head: cls}\n")
    overrides = [
        f"model.path={model}", f"data.train={train}", f"data.dev={DATA / 'dev.csv'}",
        f"data.test={DATA / 'test.csv'}", "data.text_column=sequence", f"data.max_length={args.max_length}",
        f"data.long_inputs={mode}", f"train.epochs={args.epochs}", "train.batch_size=32", f"train.lr={args.lr}",
        "train.warmup_ratio=0.1", "train.metric=mcc", f"train.seed={args.seed}", "train.num_threads=1",
        "train.progress=false", f"output_dir={out_dir / 'runs'}", f"name={mode}",
    ]
    start = time.perf_counter()
    run_dir = train_from_config(load_config(config, overrides))
    wall = time.perf_counter() - start
    results = json.loads((run_dir / "results.json").read_text())
    keep = ("accuracy", "mcc", "f1_macro", "examples")
    return {"mode": mode, "wall_seconds": round(wall, 1), "steps": results["train"]["steps"],
            "train_tokens": results["train"]["train_tokens"], "train_seconds": results["train"]["train_seconds"],
            "best_step": results["train"]["best"]["step"],
            "dev": {k: results["dev"][k] for k in keep}, "test": {k: results["test"][k] for k in keep}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-rows", type=int, default=4904)  # all of train.csv
    parser.add_argument("--epochs", type=float, default=2)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--modes", default="truncate,windows")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "long_inputs.json"))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = write_model(tmp / "model", args.max_length)
        for mode in args.modes.split(","):
            rows.append(run(mode, model, args, tmp))
            print(json.dumps(rows[-1]), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"args": vars(args), "runs": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
