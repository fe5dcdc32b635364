"""Training speed of the native RoBERTa-shaped and ESM-shaped paths against Hugging Face Trainer (issue 13).

Each family gets a small random model built by `transformers` from a config (no download: speed does
not depend on the weights) and generated two-class data of varied lengths:

  roberta   byte-level BPE trained on the generated text; 4 layers, hidden 256, 4 heads, FFN 1024
  esm       ESM-2 layout (rotary positions, pre-LayerNorm, token dropout), EsmTokenizer's vocabulary;
            protein sequences of 30-400 residues, label: the sequence holds a W; same sizes

Variants, each in its own subprocess (no shared memory or threads):

  seqtune     `seqtune train` (native encoder: length-bucketed batches, packed blocks, [CLS]-only top)
  hf_dynamic  Trainer + DataCollatorWithPadding, train_sampling_strategy="group_by_length"

Same recipe for both: batch 32, lr 1e-4, linear decay, no warm-up, weight decay 0, seed 42, `--epochs`.
Reported: training-step seconds (seqtune's `train_seconds`, Trainer's time inside steps), real training
tokens per second, and wall seconds of the whole run.

    python benchmarks/families_speed.py --rows 2000 --epochs 1        # writes benchmarks/out/families_speed.json
    python benchmarks/families_speed.py --rows 200 --families esm     # smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ESM_VOCAB = ["<cls>", "<pad>", "<eos>", "<unk>", "L", "A", "G", "V", "S", "E", "R", "T", "I", "D", "P", "K", "Q",
             "N", "F", "Y", "M", "H", "W", "C", "X", "B", "U", "Z", "O", ".", "-", "<null_1>", "<mask>"]
WORDS = ["the", "film", "plot", "was", "is", "it", "a", "movie", "café", "actors", "story", "and", "but"]
POSITIVE, NEGATIVE = ["good", "great", "wonderful", "fun"], ["bad", "awful", "dull", "boring"]
SIZES = {"hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 1024}


def generated_rows(family: str, n: int, seed: int = 0) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = i % 2
        if family == "esm":
            length = rng.randint(30, 400)
            seq = [rng.choice("ACDEFGHIKLMNPQRSTVY") for _ in range(length)]
            if label:
                seq[rng.randrange(length)] = "W"
            rows.append(("".join(seq), label))
        else:
            words = [rng.choice(WORDS) for _ in range(rng.randint(5, 120))]
            words.insert(rng.randrange(len(words)), rng.choice(POSITIVE if label else NEGATIVE))
            rows.append((" ".join(words), label))
    return rows


def write_model(family: str, directory: Path) -> Path:
    """A random RobertaModel / EsmModel directory with its tokenizer files."""
    import torch
    import transformers

    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    if family == "esm":
        (directory / "vocab.txt").write_text("\n".join(ESM_VOCAB) + "\n")
        transformers.EsmTokenizer(str(directory / "vocab.txt")).save_pretrained(directory)
        config = transformers.EsmConfig(
            vocab_size=len(ESM_VOCAB), max_position_embeddings=1026, position_embedding_type="rotary",
            token_dropout=True, emb_layer_norm_before=False, mask_token_id=32, pad_token_id=1,
            layer_norm_eps=1e-5, vocab_list=ESM_VOCAB, **SIZES)
        transformers.EsmModel(config, add_pooling_layer=False).save_pretrained(directory)
        return directory
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        processors,
        trainers,
    )

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator([t for t, _ in generated_rows(family, 500, seed=99)], trainers.BpeTrainer(
        vocab_size=1000, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    tok.save(str(directory / "tokenizer.json"))
    (directory / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "RobertaTokenizer", "model_max_length": 512}))
    config = transformers.RobertaConfig(vocab_size=tok.get_vocab_size(), max_position_embeddings=514,
                                        type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2, **SIZES)
    transformers.RobertaModel(config, add_pooling_layer=False).save_pretrained(directory)
    return directory


def write_data(family: str, rows: list[tuple[str, int]], path: Path) -> Path:
    path.write_text("text\tlabel\n" + "".join(f"{t}\t{label}\n" for t, label in rows))
    return path


def run_seqtune(args, model_dir: Path, train: Path) -> dict:
    import seqtune
    from seqtune.config import load_config

    start = time.perf_counter()
    config = Path(args.workdir) / f"{args.family}.yaml"
    config.write_text("task: {type: classification}\n")
    cfg = load_config(config, [
        f"model.path={model_dir}", f"data.train={train}", "data.text_column=text", "data.max_length=512",
        f"train.epochs={args.epochs}", "train.batch_size=32", "train.lr=1e-4", "train.warmup_ratio=0",
        "train.weight_decay=0", "train.seed=42", "train.progress=false",
        f"output_dir={args.workdir}/seqtune_{args.family}",
    ])
    run_dir = seqtune.train(cfg)
    results = json.loads((run_dir / "results.json").read_text())
    train = results["train"]
    return {"wall_seconds": time.perf_counter() - start, "train_seconds": train["train_seconds"],
            "train_tokens": train["train_tokens"], "train_tokens_per_second": train["tokens_per_second"],
            "torch_threads": results["run"]["torch_threads"]}


def run_hf(args, model_dir: Path, train_rows: list[tuple[str, int]]) -> dict:
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    enc = tokenizer([t for t, _ in train_rows], truncation=True, max_length=512)
    train = [{**{k: enc[k][i] for k in enc}, "labels": label} for i, (_, label) in enumerate(train_rows)]
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=2)

    from trainer_timing import step_timer  # benchmarks/ is on sys.path: these run as scripts

    timer = step_timer()  # seconds inside Trainer's steps
    training_args = TrainingArguments(
        output_dir=str(Path(args.workdir) / f"hf_{args.family}"), per_device_train_batch_size=32,
        learning_rate=1e-4, num_train_epochs=args.epochs, lr_scheduler_type="linear", warmup_steps=0,
        weight_decay=0.0, seed=42, save_strategy="no", report_to=[], disable_tqdm=True, logging_strategy="no",
        dataloader_num_workers=0, use_cpu=True, train_sampling_strategy="group_by_length")
    Trainer(model=model, args=training_args, train_dataset=train, data_collator=DataCollatorWithPadding(tokenizer),
            callbacks=[timer]).train()
    tokens = args.epochs * sum(sum(f["attention_mask"]) for f in train)
    return {"wall_seconds": time.perf_counter() - start, "train_seconds": timer.seconds, "train_tokens": tokens,
            "train_tokens_per_second": tokens / timer.seconds, "torch_threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2000, help="generated training rows per family")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--families", default="roberta,esm")
    parser.add_argument("--variants", default="seqtune,hf_dynamic")
    parser.add_argument("--workdir", default=str(REPO / "benchmarks" / "out" / "families_work"))
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "out" / "families_speed.json"))
    parser.add_argument("--family", help=argparse.SUPPRESS)  # internal: run one family and variant
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = Path(args.workdir)
    if args.variant:
        model_dir = work / f"model_{args.family}"
        rows = generated_rows(args.family, args.rows)
        if args.variant == "seqtune":
            result = run_seqtune(args, model_dir, write_data(args.family, rows, work / f"{args.family}.tsv"))
        else:
            result = run_hf(args, model_dir, rows)
        print("RESULT " + json.dumps(result))
        return
    work.mkdir(parents=True, exist_ok=True)
    report = {"rows": args.rows, "epochs": args.epochs, "cpu_count": os.cpu_count(), "sizes": SIZES, "runs": {}}
    for family in args.families.split(","):
        write_model(family, work / f"model_{family}")
        for variant in args.variants.split(","):
            cmd = [sys.executable, __file__, "--family", family, "--variant", variant, "--rows", str(args.rows),
                   "--epochs", str(args.epochs), "--workdir", str(work)]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
            if proc.returncode or not lines:
                sys.exit(f"{family}/{variant} failed:\n{proc.stderr[-3000:]}")
            result = json.loads(lines[-1][len("RESULT "):])
            report["runs"][f"{family}/{variant}"] = result
            print(f"{family:8s} {variant:11s} train {result['train_seconds']:7.1f} s  "
                  f"{result['train_tokens_per_second']:8.0f} tokens/s  wall {result['wall_seconds']:6.1f} s",
                  flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
