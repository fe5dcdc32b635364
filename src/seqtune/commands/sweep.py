"""seqtune sweep CONFIG --seeds N [--set key=v1,v2,... ...]

Runs every combination of the comma-separated values (a grid) with N seeds each, and summarises the
best dev metric per grid point: mean ± std (sample std over seeds), min, max, and the number of
failed runs (Mosbach et al. 2021).

A run has failed when its training diverged (the loss became NaN or infinite), or when its best dev
metric is at or below the chance level of the dev set: the best value of that metric that a constant
predictor reaches, one always answering the same class, tried for every class (for accuracy the
share of the dev set's most frequent class, for MCC 0). A run whose dev predictions are all one class
scores exactly such a constant predictor's value, so it always counts as failed. The chance level is
computed through the real task pipeline (a head that outputs a constant); tasks without class labels
(regression, QA) and lower-is-better metrics have none, and --baseline sets it by hand.

A run that fails with an error (a grid value out of its range, a file the run cannot read, out of
memory, ...) does not stop the sweep: the other runs go on, runs.csv records the error of that run
and summary.csv/summary.md that of its grid point, and the sweep exits with status 2 at the end. A
diverged run is a failed run of the study, not an error (exit status 0).

Models: every run trains in its own run directory inside the sweep directory. --keep-models best
(the default) keeps model/ only for the best run of each grid point and deletes the others' as soon
as a better run is read; none deletes every model/ once its metric is read; all keeps them all.
Everything else of a run (config.yaml, log.txt, metrics.jsonl, results.json) is always kept.

Writes, into the sweep directory:

    runs.csv     one line per run (grid values, seed, metric, wall time, run directory, error, model kept)
    summary.csv  one line per grid point (with its first error)   summary.md  the same as a Markdown table
    summary.png  metric per grid point with error bars (needs matplotlib: pip install seqtune[plot])
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import shutil
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from seqtune.errors import SeqtuneError, TrainingDiverged

KEEP_MODELS = ("best", "all", "none")

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
                   "(default: the dev set's chance level, the best a constant one-class predictor scores, "
                   "when the task has class labels)")
    p.add_argument("--keep-models", choices=KEEP_MODELS, default="best",
                   help="which runs keep their model/: the best run of each grid point (best, the default), "
                        "every run (all) or none; the rest of each run directory is always kept")
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
    """The most frequent integer label of the features (-100 = ignored position), if any: None when
    the task has no class labels (regression targets, multi-label vectors, QA positions)."""
    counts: dict[int, int] = {}
    for f in features:
        labels = f.get("labels")
        for label in labels if isinstance(labels, list) else [labels]:
            if isinstance(label, (int, np.integer)) and not isinstance(label, bool) and label >= 0:
                counts[int(label)] = counts.get(int(label), 0) + 1
    return max(counts, key=counts.get) if counts else None


def constant_outputs(outputs: list[np.ndarray], label: int) -> list[np.ndarray]:
    """Outputs of a model that answers `label` everywhere: logits +10 for it, -10 for the rest (the
    class axis is the last one, for sequence and token tasks alike)."""
    constant = []
    for out in outputs:
        logits = np.full_like(out, -10.0)
        logits[..., label] = 10.0
        constant.append(logits)
    return constant


def chance_level(cfg) -> float | None:
    """The best dev metric of a constant predictor: one that answers the same class for every input
    (every token, for token tasks), tried for every class. For accuracy this is the share of the dev
    set's most frequent class; for MCC it is 0. A run that predicts a single class scores exactly one
    of these values, so "at or below the chance level" catches it.

    Built from the real task pipeline: the dev set is read and encoded as for training, the model's
    outputs are replaced by constant logits, and the task computes its metrics as for a trained model.
    None when there is no dev set, the task has no class labels (regression, QA, multi-label) or the
    metric is lower-is-better.
    """
    import torch

    from seqtune.inference import resolve_runtime, run_outputs
    from seqtune.models.hf_tokenizer import checkpoint_tokenizer
    from seqtune.models.task_model import model_for_finetuning
    from seqtune.tasks import task_class

    if not cfg.data.dev or not cfg.model.path:
        return None
    task = task_class(cfg.task.type)(cfg.task, cfg.data, checkpoint_tokenizer(cfg.model.path))
    examples = task.read(cfg.data.train, "train")
    task.fit(examples)
    metric = cfg.train.metric or task.primary_metric
    if majority_label(task.encode(examples, "train").features) is None or not task.higher_is_better(metric):
        return None
    dev = task.encode(task.read(cfg.data.dev, "dev"), "dev")
    model, _ = model_for_finetuning(cfg.model.path, task)
    last = [m for m in model.head.modules() if isinstance(m, torch.nn.Linear)][-1]
    runtime = resolve_runtime(cfg.train)
    model.to(runtime.device)
    outputs = run_outputs(model, task, dev, runtime)  # only their shapes are used
    values = []
    for label in range(last.out_features):
        metrics = task.metrics(constant_outputs(outputs, label), dev)
        if metric not in metrics:
            raise SeqtuneError(f"train.metric {metric!r} is not computed by this task; choose one of: "
                               f"{', '.join(k for k, v in metrics.items() if isinstance(v, (int, float)))}.")
        values.append(float(metrics[metric]))
    return max(values)


# ---- running ------------------------------------------------------------------------------------

def run_one(config_path, overrides: list[str]) -> dict:
    """Train once; returns the best dev metric, its name and the wall time. A run that diverged or
    failed with an error has value None and its message under "error"; "diverged" tells which."""
    from seqtune.config import load_config
    from seqtune.training.setup import train_from_config

    start = time.perf_counter()

    def failed(message: str, diverged: bool) -> dict:
        return {"metric": None, "value": None, "wall_seconds": round(time.perf_counter() - start, 2),
                "run_dir": "", "error": message, "diverged": diverged}

    try:
        run_dir = train_from_config(load_config(config_path, overrides))
    except TrainingDiverged as e:
        return failed(str(e), diverged=True)
    except SeqtuneError as e:
        return failed(str(e), diverged=False)
    except Exception as e:  # noqa: BLE001 - out of memory, a bug: the traceback is shown, the sweep goes on
        traceback.print_exc()
        return failed(f"{type(e).__name__}: {e}", diverged=False)
    results = json.loads((run_dir / "results.json").read_text())
    best = results["train"]["best"] or {}
    return {"metric": best.get("metric"), "value": best.get("value"),
            "wall_seconds": round(time.perf_counter() - start, 2), "run_dir": str(run_dir), "error": "",
            "diverged": False}


def is_error(run: dict) -> bool:
    """A run that failed with an error (not one that diverged: that is a result of the study)."""
    return bool(run.get("error")) and not run.get("diverged")


def remove_model(run: dict) -> None:
    """Delete a run's model/ (the rest of its run directory stays) and record that in the run row."""
    if run.get("model"):
        shutil.rmtree(run["model"], ignore_errors=True)
    run["model"] = ""


class ModelKeeper:
    """Applies --keep-models after each run: all, none, or only the best run of each grid point."""

    def __init__(self, keep: str):
        self.keep = keep
        self.best: dict[int, dict] = {}  # grid point -> the run whose model is kept

    def add(self, run: dict, higher_is_better: bool) -> None:
        if self.keep == "all" or not run.get("model"):
            return
        if self.keep == "none" or run["value"] is None:
            remove_model(run)
            return
        current = self.best.get(run["point"])
        better = current is None or (run["value"] > current["value"] if higher_is_better
                                     else run["value"] < current["value"])
        if better:
            if current is not None:
                remove_model(current)
            self.best[run["point"]] = run
        else:
            remove_model(run)


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
    errors = [f"- {', '.join(f'{k}={r[k]}' for k in keys) or 'all runs'}: {r['error']}" for r in rows if r.get("error")]
    notes = failure_note(rows, metric, baseline) + ("\n\nErrors (runs that stopped with an error, counted as "
                                                      "failed):\n" + "\n".join(errors) if errors else "")
    return "\n".join(lines) + "\n\n" + notes + "\n"


def failure_note(rows: list[dict], metric: str, baseline: float | None) -> str:
    """The rule behind the "failed" column, with the threshold used."""
    if baseline is not None:
        shown = f"{metric} {baseline:.4f}"
    elif any(r["baseline"] is not None for r in rows):
        shown = "per grid point: the baseline column of summary.csv"
    else:
        shown = "none: the task has no class labels or the metric is lower-is-better"
    return (f"Failed = diverged, or dev {metric} at or below the chance level ({shown}): the best score of a "
            "predictor that always answers the same class, so a run predicting a single class fails.")


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
        ax.axhline(baseline, linestyle="--", color="red", linewidth=1, label="chance level")
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
    from seqtune.config import load_config, safe_run_name
    from seqtune.tasks import task_class
    from seqtune.training.run_dir import writing

    if args.seeds < 1:
        raise SeqtuneError("--seeds must be at least 1.")
    fixed, keys, points = expand_grid(args.overrides)
    base = load_config(args.config, fixed)  # an error here is one for every run: the sweep stops
    # Every grid point is checked before training; a point that is not valid is recorded, not fatal.
    configs, point_errors = [], []
    for point in points:
        try:
            configs.append(load_config(args.config, fixed + point))
            point_errors.append("")
        except SeqtuneError as e:
            configs.append(None)
            point_errors.append(str(e))
            print(f"sweep: {', '.join(point)}: {e}", file=sys.stderr)
    out = Path(args.output) if args.output else \
        Path(base.output_dir) / f"{base.name or base.task.type}-sweep-{time.strftime('%Y%m%d-%H%M%S')}"
    if out.exists() and not out.is_dir():
        raise SeqtuneError(f"--output {str(out)!r} is a file, not a directory.")
    with writing(out):
        out.mkdir(parents=True, exist_ok=True)
    # One failure threshold per distinct task/data/model/metric (a grid over data.* or task.* changes it).
    thresholds: dict[str, float | None] = {}
    baselines = []
    for p, cfg in enumerate(configs):
        if cfg is None:
            baselines.append(None)
            continue
        what = json.dumps([repr(cfg.task), repr(cfg.data), cfg.model.path, cfg.train.metric])
        if what not in thresholds:
            try:
                thresholds[what] = args.baseline if args.baseline is not None else chance_level(cfg)
            except SeqtuneError as e:  # the dev set or the model of this point cannot be read
                thresholds[what] = None
                point_errors[p] = str(e)
                print(f"sweep: {', '.join(points[p])}: {e}", file=sys.stderr)
        baselines.append(thresholds[what])
    keeper = ModelKeeper(args.keep_models)
    seeds = [base.train.seed + i for i in range(args.seeds)]
    print(f"sweep: {len(points)} grid points x {len(seeds)} seeds = {len(points) * len(seeds)} runs -> {out}",
          file=sys.stderr)

    runs, metric = [], None
    for p, point in enumerate(points):
        for seed in seeds:
            name = safe_run_name("_".join(safe_run_name(t) or "" for t in point)[:180]) or "run"
            overrides = fixed + point + [f"train.seed={seed}", f"output_dir={out}", f"name={name}_seed-{seed}"]
            before = {d for d in out.iterdir() if d.is_dir()}
            if point_errors[p]:  # not valid: recorded for every seed, nothing trained
                result = {"metric": None, "value": None, "wall_seconds": 0.0, "run_dir": "",
                          "error": point_errors[p], "diverged": False}
            else:
                result = run_one(args.config, overrides)
                if is_error(result):
                    print(f"sweep: {', '.join(point) or 'run'}, seed {seed}: {result['error']}", file=sys.stderr)
            if not result["run_dir"]:  # failed: the run directory it kept (one with a saved model/), if any
                made = sorted(d for d in out.iterdir() if d.is_dir() and d not in before)
                result["run_dir"] = str(made[0]) if made else ""
            metric = metric or result["metric"]
            model_dir = Path(result["run_dir"]) / "model" if result["run_dir"] else None
            run_row = {"point": p, **dict(zip(keys, point_values(point))), "seed": seed, **result,
                       "model": str(model_dir) if model_dir is not None and model_dir.is_dir() else ""}
            runs.append(run_row)
            if configs[p] is not None:
                keeper.add(run_row, task_class(configs[p].task.type).higher_is_better(result["metric"]))
            write_csv(out / "runs.csv", runs)  # after every run: a long sweep can be inspected while it runs
    metric = metric or base.train.metric or "metric"

    rows = []
    for p, point in enumerate(points):
        members = [r for r in runs if r["point"] == p]
        rows.append({"point": p, **dict(zip(keys, point_values(point))),
                     **summarise([r["value"] for r in members], baselines[p]), "baseline": baselines[p],
                     "wall_seconds": float(np.mean([r["wall_seconds"] for r in members])),
                     "error": next((r["error"] for r in members if is_error(r)), "")})
    write_csv(out / "summary.csv", [{k: v for k, v in r.items() if k != "point"} for r in rows])
    baseline = baselines[0] if len(set(baselines)) == 1 else None  # one line in the table and plot
    table = markdown_table(rows, keys, metric, baseline)
    (out / "summary.md").write_text(table)
    plot(out / "summary.png", rows, runs, keys, metric, baseline)
    print(table)
    print(out)
    errors = [r for r in runs if is_error(r)]
    if errors:
        print(f"sweep: {len(errors)} of {len(runs)} runs stopped with an error (the error column of "
              f"{out / 'runs.csv'}); the first: {errors[0]['error']}", file=sys.stderr)
        return 2
    return 0
