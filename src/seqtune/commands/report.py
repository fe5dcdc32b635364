"""seqtune report RUN_DIR [RUN_DIR ...] [--output DIR]"""

from __future__ import annotations

import sys


def add_parser(subparsers):
    p = subparsers.add_parser(
        "report", help="rebuild a run's report.html and plots, or overlay several runs",
        description="Draw the plots of a run directory (loss and learning-rate curves, the dev metric per "
                    "evaluation, the confusion matrix with label names, per-label precision/recall/F1, "
                    "predicted vs true for regression) and write a self-contained report.html with them. "
                    "Training writes this report at the end of every run; this command rebuilds it. With "
                    "several runs, one report overlays their curves and lists their results (--output "
                    "needed).",
    )
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directory written by seqtune train")
    p.add_argument("--output", "-o",
                   help="directory for report.html and the PNGs (default: the run directory, for one run)")
    return p


def run(args) -> int:
    from seqtune.report import write_report

    print(f"wrote {write_report(args.run_dirs, args.output)}", file=sys.stderr)
    return 0
