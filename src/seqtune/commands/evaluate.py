"""seqtune evaluate MODEL_DIR DATA_FILE"""

from __future__ import annotations

import json


def add_parser(subparsers):
    p = subparsers.add_parser(
        "evaluate", help="compute metrics of a saved model on a labelled file (JSON on stdout)",
        description="Evaluate a model saved by seqtune (a run's model/ directory) on a labelled file "
                    "in the format it was trained on; prints the metrics as JSON.",
    )
    p.add_argument("model_dir", help="model directory written by seqtune train")
    p.add_argument("data_file", help="labelled file (same columns/format as the training data)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default: auto)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="data.KEY=VALUE",
                   help="read DATA_FILE with other data settings than the training files, e.g. "
                        "--set data.text_column=sentence --set data.header=false (repeatable)")
    return p


def run(args) -> int:
    from seqtune.api import load

    metrics = load(args.model_dir, device=args.device, data_overrides=args.overrides).evaluate(args.data_file)
    print(json.dumps(metrics, indent=2))
    return 0
