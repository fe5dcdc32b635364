"""seqtune predict MODEL_DIR INPUT --output OUT.jsonl"""

from __future__ import annotations

import json
import sys

from seqtune.commands.evaluate import add_saved_model_settings, add_speed_settings


def add_parser(subparsers):
    p = subparsers.add_parser(
        "predict", help="predict every record of a file, writing JSONL",
        description="Predict with a model saved by seqtune. INPUT is a file in the training format "
                    "(labels not needed). Writes one JSON object per input record, in input order: "
                    "the input, the predicted label(s) and probabilities or scores. Records are "
                    "predicted and written 2,048 at a time (memory stays bounded on large files, a "
                    "progress bar shows on a terminal); --output is written under a temporary name "
                    "and renamed when complete.",
    )
    p.add_argument("model_dir", help="model directory written by seqtune train")
    p.add_argument("input", help="file to predict (the training data's columns and format unless --set data.... says otherwise)")
    p.add_argument("--output", "-o", help="output JSONL file (default: stdout)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default: auto)")
    p.add_argument("--runtime", choices=["torch", "onnx"], default="torch",
                   help="onnx: MODEL_DIR is a directory written by `seqtune export`, run by ONNX Runtime on "
                        "the CPU (default: torch)")
    p.add_argument("--probabilities", action="store_true",
                   help="tagging and residues: also write each label's probability at every word/residue, "
                        "as \"probabilities\": {label: [p, ...]} aligned with the predicted labels "
                        "(classification always writes its probabilities)")
    add_speed_settings(p, "INPUT")
    add_saved_model_settings(p, "INPUT")
    return p


def run(args) -> int:
    from seqtune.api import load
    from seqtune.files import atomic_write

    model = load(args.model_dir, device=args.device, overrides=args.overrides, runtime=args.runtime,
                 batch_tokens=args.batch_tokens, precision=args.precision)
    progress = records_progress()
    chunks = model.predict_file_in_chunks(args.input, probabilities=args.probabilities,
                                          on_count=lambda n: progress.reset(total=n))
    extra: dict = {}  # files a task writes beside the JSONL, merged over the chunks
    count = 0
    try:
        if args.output:  # written to a temporary name, then renamed: never a torn or half-written file
            with atomic_write(args.output) as out:
                for records in chunks:
                    count += write_records(out, records, progress)
                    merge_task_files(extra, model.task.prediction_files(records))
        else:
            for records in chunks:
                count += write_records(sys.stdout, records, progress)
    finally:
        progress.close()
    if args.output:
        print(f"wrote {count} predictions to {args.output}", file=sys.stderr)
        write_task_files(extra, args.output)
    return 0


def records_progress():
    """A bar over the records on a terminal (stderr); nothing elsewhere."""
    from tqdm.auto import tqdm

    from seqtune.logs import stderr_is_terminal

    return tqdm(total=0, unit="records", dynamic_ncols=True, disable=not stderr_is_terminal())


def write_records(out, records: list[dict], progress) -> int:
    out.write("".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records))
    progress.update(len(records))
    return len(records)


def merge_task_files(extra: dict, files: dict) -> None:
    for suffix, content in files.items():
        if isinstance(content, dict):
            extra.setdefault(suffix, {}).update(content)
        else:
            extra.setdefault(suffix, []).extend(content)


def write_task_files(files: dict, output: str) -> None:
    """Files a task adds beside the JSONL (e.g. QA's SQuAD-style {id: answer}): OUT.<suffix>."""
    from pathlib import Path

    from seqtune.files import write_text

    for suffix, content in files.items():
        path = Path(output).with_suffix(suffix)
        write_text(path, json.dumps(content, indent=2, ensure_ascii=False) + "\n")
        print(f"wrote {path}", file=sys.stderr)
