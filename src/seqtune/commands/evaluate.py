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
    p.add_argument("data_file", help="labelled file (the training data's columns and format unless --set data.... says otherwise)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default: auto)")
    add_speed_settings(p, "DATA_FILE")
    add_saved_model_settings(p, "DATA_FILE")
    return p


def add_speed_settings(parser, file_name: str) -> None:
    """--batch-tokens and --precision for the commands that run a saved model over a file (evaluate, predict)."""
    parser.add_argument("--batch-tokens", type=int, metavar="N",
                        help=f"padded tokens per batch: {file_name}'s inputs are sorted by length and each "
                             "batch is filled up to N tokens (default: 1,024 on CPU, where batches that stay "
                             "in the caches run fastest; 16,384 on a GPU)")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default="auto",
                        help="auto: fp32 on CPU, bf16 on a GPU (default). bf16 on CPU is faster only on CPUs "
                             "that multiply bf16 natively (AMX or AVX-512 BF16, e.g. Intel Sapphire Rapids), "
                             "many times slower elsewhere; its outputs differ slightly from fp32's")


def add_saved_model_settings(parser, file_name: str) -> None:
    """--set for commands that read files with a saved model (evaluate, predict, serve)."""
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help=f"read {file_name} with other data settings than the training files, e.g. "
                             "--set data.text_column=sentence --set data.header=false, or change how outputs "
                             "are read: task.decode, task.threshold, task.n_best, task.max_answer_length, "
                             "task.null_score_diff_threshold, task.doc_stride, task.window_stride (repeatable)")


def run(args) -> int:
    from seqtune.api import load

    model = load(args.model_dir, device=args.device, overrides=args.overrides, batch_tokens=args.batch_tokens,
                 precision=args.precision)
    metrics = model.evaluate(args.data_file)
    print(json.dumps(metrics, indent=2))
    return 0
