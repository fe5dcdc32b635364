"""seqtune export MODEL_DIR --format onnx --output DIR"""

from __future__ import annotations

import sys


def add_parser(subparsers):
    p = subparsers.add_parser(
        "export", help="export a saved model to ONNX (checked against PyTorch)",
        description="Export a model saved by seqtune, encoder and task head, to ONNX with dynamic batch and "
                    "sequence axes (install with pip install 'seqtune[onnx]'). The export is run with ONNX "
                    "Runtime on a padded batch of another shape and compared with PyTorch: the largest "
                    "difference is printed, and above 1e-4 the command fails. DIR gets model.onnx with the "
                    "model's config, tokenizer and seqtune.json: `seqtune predict DIR FILE --runtime onnx` "
                    "and `seqtune serve DIR --runtime onnx` run it.",
    )
    p.add_argument("model_dir", help="model directory written by seqtune train")
    p.add_argument("--format", choices=["onnx"], default="onnx", help="export format (default: onnx)")
    p.add_argument("--output", "-o", required=True, help="directory to write (created if needed)")
    return p


def run(args) -> int:
    from seqtune.onnx_export import export_onnx

    report = export_onnx(args.model_dir, args.output)
    print(f"wrote {report['path']} (opset {report['opset']}); ONNX Runtime vs PyTorch: max difference "
          f"{report['max_difference']:.2e} over {report['checked_outputs']} outputs (limit {report['tolerance']:g})",
          file=sys.stderr)
    return 0
