"""seqtune predict MODEL_DIR INPUT --output OUT.jsonl"""

from __future__ import annotations

import json
import sys

from seqtune.commands.evaluate import add_saved_model_settings


def add_parser(subparsers):
    p = subparsers.add_parser(
        "predict", help="predict every record of a file, writing JSONL",
        description="Predict with a model saved by seqtune. INPUT is a file in the training format "
                    "(labels not needed). Writes one JSON object per input record, in input order: "
                    "the input, the predicted label(s) and probabilities or scores.",
    )
    p.add_argument("model_dir", help="model directory written by seqtune train")
    p.add_argument("input", help="file to predict (the training data's columns and format unless --set data.... says otherwise)")
    p.add_argument("--output", "-o", help="output JSONL file (default: stdout)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default: auto)")
    p.add_argument("--probabilities", action="store_true",
                   help="tagging and residues: also write each label's probability at every word/residue, "
                        "as \"probabilities\": {label: [p, ...]} aligned with the predicted labels "
                        "(classification always writes its probabilities)")
    add_saved_model_settings(p, "INPUT")
    return p


def run(args) -> int:
    from seqtune.api import load
    from seqtune.files import atomic_write

    model = load(args.model_dir, device=args.device, overrides=args.overrides)
    records = model.predict_file(args.input, probabilities=args.probabilities)
    if args.output:  # written to a temporary name, then renamed: never a torn or half-written file
        with atomic_write(args.output) as out:
            for record in records:
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
    else:
        for record in records:
            sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
    if args.output:
        print(f"wrote {len(records)} predictions to {args.output}", file=sys.stderr)
        write_task_files(model.task, records, args.output)
    return 0


def write_task_files(task, records: list[dict], output: str) -> None:
    """Files a task adds beside the JSONL (e.g. QA's SQuAD-style {id: answer}): OUT.<suffix>."""
    from pathlib import Path

    from seqtune.files import write_text

    for suffix, content in task.prediction_files(records).items():
        path = Path(output).with_suffix(suffix)
        write_text(path, json.dumps(content, indent=2, ensure_ascii=False) + "\n")
        print(f"wrote {path}", file=sys.stderr)
