"""seqtune sweep CONFIG --seeds N [--set key=v1,v2,... ...]

Runs every combination of the comma-separated values (a grid) with N seeds each, and summarises the
best dev metric per grid point: mean ± std (sample std over seeds), min, max, and the number of
failed runs, i.e. runs at or below the majority-class baseline (Mosbach et al. 2021; diverged runs
count as failed too). Writes, into the sweep directory:

    runs.csv     one line per run (grid values, seed, metric, wall time, run directory)
    summary.csv  one line per grid point          summary.md  the same as a Markdown table
    summary.png  metric per grid point with error bars (needs matplotlib: pip install seqtune[plot])
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from seqtune.errors import SeqtuneError

SET_HELP = ("override a config key; comma-separated values make a grid, e.g. --set strategy.top_layers=0,1,2,3,6 "
            "--set train.lr=2e-5,5e-5 (repeatable; values in [...] are lists, not grids)")


def add_parser(subparsers):
    p = subparsers.add_parser(
        "sweep", help="train a grid of settings over several seeds and summarise the dev metric",
        description=__doc__.split("\n", 2)[2], formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("config", nargs="?", help="YAML training config (as for `seqtune train`)")
    p.add_argument("--seeds", type=int, default=3, help="runs per grid point, with train.seed = the config's seed, seed+1, ... "
                   "(default 3)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=V1,V2,...", help=SET_HELP)
    p.add_argument("--output", help="sweep directory (default: <output_dir>/<config name>-sweep-<time>)")
    p.add_argument("--baseline", type=float, help="a run fails when its dev metric is at or below this value "
                   "(default: the majority-class baseline on the dev set, when the task has class labels)")
    return p


# ---- the grid ------------------------------------------------------------------------------------

def split_values(raw: str) -> list[str]:
    """Split "1,2,[a,b]" at top-level commas: ["1", "2", "[a,b]"]."""
    parts, depth, current = [], 0, ""
    for ch in raw:
        depth += (ch in "[{") - (ch in "]}")
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    return [*parts, current]


def expand_grid(overrides: list[str]) -> tuple[list[str], list[str], list[list[str]]]:
    """(fixed overrides, grid keys, one list of "key=value" overrides per grid point)."""
    fixed, axes = [], []
    for text in overrides:
        if "=" not in text:
            raise SeqtuneError(f"--set {text!r}: expected key=value, e.g. train.lr=3e-5.")
        key, raw = text.split("=", 1)
        values = split_values(raw)
        if len(values) > 1:
            axes.append((key.strip(), values))
        else:
            fixed.append(text)
    keys = [k for k, _ in axes]
    points = [[f"{k}={v}" for k, v in zip(keys, combo)] for combo in itertools.product(*(v for _, v in axes))]
    return fixed, keys, points


def point_values(point: list[str]) -> list[str]:
    return [text.split("=", 1)[1] for text in point]


# ---- the failure threshold --------------------------------------------------------------------------

def majority_label(features: list[dict]) -> int | None:
    """The most frequent integer label of the training features (-100 = ignored position), if any."""
    counts: dict[int, int] = {}
    for f in features:
        labels = f.get("labels")
        for label in labels if isinstance(labels, list) else [labels]:
            if isinstance(label, (int, np.integer)) and not isinstance(label, bool) and label >= 0:
                counts[int(label)] = counts.get(int(label), 0) + 1
    return max(counts, key=counts.get) if counts else None


def majority_baseline(cfg) -> float | None:
    """The dev metric of a model that always predicts the most frequent training label.

    Built from the real task pipeline: the head's last linear layer is set to output a constant
    favouring that label, so metrics are computed exactly as for a trained model. None when the task
    has no class labels (regression, QA) or its metric is lower-is-better.
    """
    import torch

    from seqtune.models.task_model import model_for_finetuning
    from seqtune.tasks import task_class
    from seqtune.tokenization import load_tokenizer
    from seqtune.training.loop import evaluate, resolve_runtime

    if not cfg.data.dev or not cfg.model.path:
        return None
    task = task_class(cfg.task.type)(cfg.task, cfg.data, load_tokenizer(cfg.model.path))
    examples = task.read(cfg.data.train, "train")
    task.fit(examples)
    label = majority_label(task.encode(examples, "train").features)
    if label is None or not task.greater_is_better:
        return None
    model, _ = model_for_finetuning(cfg.model.path, task)
    last = [m for m in model.head.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(-10.0)
        last.bias[label] = 10.0
    runtime = resolve_runtime(cfg.train)
    model.to(runtime.device)
    metrics = evaluate(model, task, task.encode(task.read(cfg.data.dev, "dev"), "dev"), runtime,
                       runtime.eval_batch_tokens)
    return float(metrics[cfg.train.metric or task.primary_metric])


# ---- running ------------------------------------------------------------------------------------

def run_one(config_path, overrides: list[str]) -> dict:
    """Train once; returns the best dev metric, its name and the wall time (diverged: metric None)."""
    from seqtune.config import load_config
    from seqtune.training.setup import train_from_config

    cfg = load_config(config_path, overrides)
    start = time.perf_counter()
    try:
        run_dir = train_from_config(cfg)
    except SeqtuneError as e:
        if "training loss became" not in str(e):  # the loop's message for a diverged run
            raise
        return {"metric": None, "value": None, "wall_seconds": round(time.perf_counter() - start, 2),
                "run_dir": "", "error": str(e)}
    results = json.loads((run_dir / "results.json").read_text())
    best = results["train"]["best"] or {}
    return {"metric": best.get("metric"), "value": best.get("value"),
            "wall_seconds": round(time.perf_counter() - start, 2), "run_dir": str(run_dir), "error": ""}


def summarise(values: list[float | None], baseline: float | None) -> dict:
    ok = np.array([v for v in values if v is not None], dtype=float)
    failed = sum(v is None or (baseline is not None and v <= baseline + 1e-12) for v in values)
    return {
        "runs": len(values),
        "mean": float(ok.mean()) if len(ok) else math.nan,
        "std": float(ok.std(ddof=1)) if len(ok) > 1 else 0.0 if len(ok) else math.nan,
        "min": float(ok.min()) if len(ok) else math.nan,
        "max": float(ok.max()) if len(ok) else math.nan,
        "failed": int(failed),
    }


def write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def markdown_table(rows: list[dict], keys: list[str], metric: str, baseline: float | None) -> str:
    head = [*keys, "runs", f"{metric} mean ± std", "min", "max", "failed", "wall s / run"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [*(str(r[k]) for k in keys), str(r["runs"]), f"{r['mean']:.4f} ± {r['std']:.4f}",
                 f"{r['min']:.4f}", f"{r['max']:.4f}", str(r["failed"]), f"{r['wall_seconds']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    shown = "none (no class labels)" if baseline is None else f"{baseline:.4f}"
    return "\n".join(lines) + f"\n\nFailed = at or below the majority-class baseline ({metric} {shown}) or diverged.\n"


def plot(path: Path, rows: list[dict], runs: list[dict], keys: list[str], metric: str,
         baseline: float | None) -> bool:
    """Mean ± std per grid point (seeds as dots); one line per combination of the other keys."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("summary.png skipped: matplotlib is not installed (pip install seqtune[plot])", file=sys.stderr)
        return False
    x_key, other = (keys[0], keys[1:]) if keys else (None, [])
    x_labels = list(dict.fromkeys(str(r[x_key]) for r in rows)) if x_key else ["all runs"]
    fig, ax = plt.subplots(figsize=(max(5, 1.1 * len(x_labels) + 2), 4))
    for series in dict.fromkeys(tuple(str(r[k]) for k in other) for r in rows):
        members = [r for r in rows if tuple(str(r[k]) for k in other) == series]
        xs = [x_labels.index(str(r[x_key])) if x_key else 0 for r in members]
        label = ", ".join(f"{k}={v}" for k, v in zip(other, series)) or None
        ax.errorbar(xs, [r["mean"] for r in members], yerr=[r["std"] for r in members], marker="o", capsize=4,
                    label=label)
        for r, x in zip(members, xs):
            seeds = [u["value"] for u in runs if u["point"] == r["point"] and u["value"] is not None]
            ax.scatter([x] * len(seeds), seeds, s=10, color="grey", alpha=0.6, zorder=3)
    if baseline is not None:
        ax.axhline(baseline, linestyle="--", color="red", linewidth=1, label="majority baseline")
    ax.set_xticks(range(len(x_labels)), x_labels)
    ax.set_xlabel(x_key or "")
    ax.set_ylabel(f"dev {metric}")
    ax.grid(alpha=0.3)
    if other or baseline is not None:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def run(args) -> int:
    from seqtune.config import load_config

    if args.seeds < 1:
        raise SeqtuneError("--seeds must be at least 1.")
    fixed, keys, points = expand_grid(args.overrides)
    base = load_config(args.config, fixed)
    configs = [load_config(args.config, fixed + point) for point in points]  # check all before training
    out = Path(args.output) if args.output else \
        Path(base.output_dir) / f"{base.name or base.task.type}-sweep-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    # One failure threshold per distinct task/data/model (a grid over data.* or task.* changes it).
    thresholds: dict[str, float | None] = {}
    baselines = []
    for cfg in configs:
        what = json.dumps([repr(cfg.task), repr(cfg.data), cfg.model.path])
        if what not in thresholds:
            thresholds[what] = args.baseline if args.baseline is not None else majority_baseline(cfg)
        baselines.append(thresholds[what])
    seeds = [base.train.seed + i for i in range(args.seeds)]
    print(f"sweep: {len(points)} grid points x {len(seeds)} seeds = {len(points) * len(seeds)} runs -> {out}",
          file=sys.stderr)

    runs, metric = [], None
    for p, point in enumerate(points):
        for seed in seeds:
            name = "_".join(t.replace("=", "-").replace("/", "-") for t in point) or "run"
            overrides = fixed + point + [f"train.seed={seed}", f"output_dir={out}", f"name={name}_seed-{seed}"]
            result = run_one(args.config, overrides)
            metric = metric or result["metric"]
            runs.append({"point": p, **dict(zip(keys, point_values(point))), "seed": seed, **result})
            write_csv(out / "runs.csv", runs)  # after every run: a long sweep can be inspected while it runs
    metric = metric or base.train.metric or "metric"

    rows = []
    for p, point in enumerate(points):
        members = [r for r in runs if r["point"] == p]
        rows.append({"point": p, **dict(zip(keys, point_values(point))),
                     **summarise([r["value"] for r in members], baselines[p]), "baseline": baselines[p],
                     "wall_seconds": float(np.mean([r["wall_seconds"] for r in members]))})
    write_csv(out / "summary.csv", [{k: v for k, v in r.items() if k != "point"} for r in rows])
    baseline = baselines[0] if len(set(baselines)) == 1 else None  # one line in the table and plot
    table = markdown_table(rows, keys, metric, baseline)
    (out / "summary.md").write_text(table)
    plot(out / "summary.png", rows, runs, keys, metric, baseline)
    print(table)
    print(out)
    return 0
