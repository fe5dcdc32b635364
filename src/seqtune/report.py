"""Run reports: PNG plots and a self-contained report.html from a run directory's records.

Written at the end of every training run (training/setup.py) and by `seqtune report RUN_DIR ...`,
from what the run directory holds: metrics.jsonl (one line per evaluation, each with the training
loss and learning rate every few steps since the previous one, "train_curve"), results.json (the
best dev metrics, test metrics) and config.yaml. Plots (matplotlib, no display needed):

    loss.png              training loss per step (every run overlaid)
    learning_rate.png     learning rate per step
    dev_metric.png        the selection metric at each dev evaluation
    confusion_matrix.png  best dev evaluation, label names on the axes, rows = gold (classification,
                          residues; tagging per entity type, B-/I-/... tags of one type added up)
    per_label.png         precision / recall / F1 per label (tagging: per entity type, seqeval)
    regression.png        predicted against true values on the dev set (regression; the saved model
                          is run on data.dev, when that file is still there)

Several runs give one report that overlays their curves and tabulates their results.
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from seqtune.errors import SeqtuneError

REPORT_FILE = "report.html"


@dataclass
class Run:
    path: Path
    name: str
    evaluations: list[dict]
    results: dict
    config: dict

    @property
    def task(self) -> str:
        return str(self.config.get("task", {}).get("type", ""))

    @property
    def metric(self) -> str | None:
        best = (self.results.get("train") or {}).get("best") or {}
        return best.get("metric")

    def curve(self) -> np.ndarray:
        """(n, 3) [step, loss, lr]: the every-few-steps points, or one per evaluation for runs
        recorded before they existed."""
        points = [p for e in self.evaluations for p in e.get("train_curve", [])]
        if not points:
            points = [[e["step"], e["train_loss"], e["lr"]] for e in self.evaluations if "train_loss" in e]
        return np.array(points, dtype=float).reshape(-1, 3)


def read_run(path: str | Path) -> Run:
    path = Path(path)
    metrics_path = path / "metrics.jsonl"
    if not metrics_path.is_file():
        raise SeqtuneError(f"{path} is not a run directory: it has no metrics.jsonl (seqtune train writes one).")
    evaluations = []
    for n, line in enumerate(metrics_path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                evaluations.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise SeqtuneError(f"{metrics_path}, line {n}: not JSON ({e.msg}).") from None
    results = json.loads((path / "results.json").read_text(encoding="utf-8")) if (path / "results.json").is_file() \
        else {}
    config = yaml.safe_load((path / "config.yaml").read_text(encoding="utf-8")) if (path / "config.yaml").is_file() \
        else {}
    return Run(path, path.name, evaluations, results, config or {})


# ---- plots -----------------------------------------------------------------------------------------

def _figure(width: float = 6.4, height: float = 4.0):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _save(fig, path: Path) -> Path:
    fig.savefig(path, format="png")
    return path


def plot_curves(runs: list[Run], column: int, ylabel: str, path: Path, log_scale: bool = False) -> Path | None:
    fig = _figure()
    ax = fig.add_subplot()
    drawn = False
    for run in runs:
        curve = run.curve()
        if len(curve):
            ax.plot(curve[:, 0], curve[:, column], label=run.name, marker="." if len(curve) < 30 else None)
            drawn = True
    if not drawn:
        return None
    ax.set(xlabel="optimiser step", ylabel=ylabel, title=f"{ylabel} (every few steps)")
    if log_scale:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    if len(runs) > 1:
        ax.legend(fontsize="small")
    return _save(fig, path)


def plot_dev_metric(runs: list[Run], path: Path) -> Path | None:
    fig = _figure()
    ax = fig.add_subplot()
    names = set()
    for run in runs:
        metric = run.metric
        points = [(e["step"], e[metric]) for e in run.evaluations
                  if metric and e.get("split") == "dev" and isinstance(e.get(metric), (int, float))]
        if points:
            steps, values = zip(*points)
            ax.plot(steps, values, marker="o", label=f"{run.name} ({metric})")
            names.add(metric)
    if not names:
        return None
    ax.set(xlabel="optimiser step", ylabel=", ".join(sorted(names)), title="dev metric at each evaluation")
    ax.grid(alpha=0.3)
    if len(runs) > 1:
        ax.legend(fontsize="small")
    return _save(fig, path)


def entity_type(tag: str) -> str:
    """"B-PER" -> "PER", "O" -> "O" (tags without a scheme prefix stay as they are)."""
    prefix, _, rest = tag.partition("-")
    return rest if rest and len(prefix) == 1 else tag


def confusion(run: Run) -> tuple[list[str], np.ndarray] | None:
    """(labels, counts) of the best dev evaluation; tagging's tags added up per entity type."""
    table = (run.results.get("dev") or {}).get("confusion_matrix")
    if not table or run.task == "multilabel":
        return None
    labels, matrix = list(table["labels"]), np.array(table["matrix"], dtype=float)
    if run.task == "tagging":
        types = list(dict.fromkeys(entity_type(t) for t in labels))
        index = np.array([types.index(entity_type(t)) for t in labels])
        merged = np.zeros((len(types), len(types)))
        np.add.at(merged, (index[:, None], index[None, :]), matrix)
        labels, matrix = types, merged
    return labels, matrix


def plot_confusion(run: Run, path: Path) -> Path | None:
    found = confusion(run)
    if found is None:
        return None
    labels, matrix = found
    size = min(12.0, 3.0 + 0.5 * len(labels))
    fig = _figure(size + 1.5, size)
    ax = fig.add_subplot()
    shares = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)  # each gold row as fractions
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, label="share of the gold label's items")
    ax.set_xticks(range(len(labels)), labels, rotation=45 if len(labels) > 4 else 0, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    if len(labels) <= 20:
        for i in range(len(labels)):
            for j in range(len(labels)):
                ax.text(j, i, f"{int(matrix[i, j])}", ha="center", va="center", fontsize="small",
                        color="white" if shares[i, j] > 0.5 else "black")
    unit = " (per entity type)" if run.task == "tagging" else ""
    ax.set(xlabel="predicted", ylabel="gold", title=f"{run.name}: dev confusion matrix{unit}")
    return _save(fig, path)


def per_label_scores(run: Run) -> dict[str, dict] | None:
    """{label: {precision, recall, f1}}: the task's own (tagging: entity-level) or, where it gives
    none, from the confusion matrix."""
    dev = run.results.get("dev") or {}
    scores = dev.get("per_tag") or dev.get("per_label")
    if scores:
        return scores
    found = confusion(run)
    if found is None:
        return None
    labels, m = found
    tp = np.diag(m)
    precision = tp / np.maximum(m.sum(0), 1)
    recall = tp / np.maximum(m.sum(1), 1)
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0)
    return {label: {"precision": float(p), "recall": float(r), "f1": float(f)}
            for label, p, r, f in zip(labels, precision, recall, f1)}


def plot_per_label(run: Run, path: Path) -> Path | None:
    scores = per_label_scores(run)
    if not scores:
        return None
    labels = list(scores)
    fig = _figure(max(6.4, 1.0 + 0.6 * len(labels)), 4.0)
    ax = fig.add_subplot()
    x = np.arange(len(labels))
    for k, name in enumerate(("precision", "recall", "f1")):
        ax.bar(x + (k - 1) * 0.27, [scores[label].get(name, 0.0) for label in labels], 0.27, label=name)
    ax.set_xticks(x, labels, rotation=45 if len(labels) > 6 else 0, ha="right" if len(labels) > 6 else "center")
    ax.set(ylim=(0, 1.18), ylabel="score", title=f"{run.name}: dev precision / recall / F1 per label")
    ax.legend(fontsize="small", ncols=3, loc="upper center")
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def regression_pairs(run: Run) -> tuple[np.ndarray, np.ndarray] | None:
    """(true, predicted) on data.dev with the saved model; None when the model or the file is gone."""
    dev = (run.config.get("data") or {}).get("dev")
    if run.task != "regression" or not dev or not (run.path / "model").is_dir():
        return None
    dev_path = Path(str(dev).split("#")[0])
    if not dev_path.is_file():
        return None
    from seqtune.config import TrainConfig
    from seqtune.inference import load_trained_model, resolve_runtime, run_outputs

    task, model = load_trained_model(run.path / "model")
    dataset = task.encode(task.read(str(dev_path), "dev"), "dev")
    records = task.predictions(run_outputs(model, task, dataset, resolve_runtime(TrainConfig(device="cpu"))), dataset)
    return np.array([e.label for e in dataset.examples], dtype=float), np.array([r["score"] for r in records])


def plot_regression(run: Run, path: Path) -> Path | None:
    pairs = regression_pairs(run)
    if pairs is None:
        return None
    true, predicted = pairs
    fig = _figure(5.0, 5.0)
    ax = fig.add_subplot()
    ax.scatter(true, predicted, s=8, alpha=0.5)
    low, high = float(min(true.min(), predicted.min())), float(max(true.max(), predicted.max()))
    ax.plot([low, high], [low, high], color="grey", linewidth=1, label="predicted = true")
    ax.set(xlabel="true", ylabel="predicted", title=f"{run.name}: dev predictions ({len(true)})")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return _save(fig, path)


# ---- the report --------------------------------------------------------------------------------------

def draw(runs: list[Run], directory: Path) -> list[Path]:
    """Every plot that the runs' records allow, as PNGs in `directory`."""
    plots = [
        plot_curves(runs, 1, "training loss", directory / "loss.png"),
        plot_curves(runs, 2, "learning rate", directory / "learning_rate.png"),
        plot_dev_metric(runs, directory / "dev_metric.png"),
    ]
    for run in runs:
        suffix = f"-{run.name}" if len(runs) > 1 else ""
        plots += [plot_confusion(run, directory / f"confusion_matrix{suffix}.png"),
                  plot_per_label(run, directory / f"per_label{suffix}.png"),
                  plot_regression(run, directory / f"regression{suffix}.png")]
    return [p for p in plots if p is not None]


def _results_table(runs: list[Run]) -> str:
    rows = []
    for run in runs:
        for split in ("dev", "test"):
            metrics = run.results.get(split) or {}
            scalars = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
            if scalars:
                cells = ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in scalars.items())
                rows.append(f"<tr><td>{html.escape(run.name)}</td><td>{split}</td><td>{html.escape(cells)}</td></tr>")
    if not rows:
        return "<p>No dev or test metrics recorded.</p>"
    return "<table><tr><th>run</th><th>split</th><th>metrics</th></tr>" + "".join(rows) + "</table>"


def _settings(run: Run) -> str:
    c = run.config
    train, model = c.get("train") or {}, c.get("model") or {}
    facts = {"task": run.task, "model": model.get("path"), "train": (c.get("data") or {}).get("train"),
             "epochs": train.get("epochs"), "lr": train.get("lr"), "batch size": train.get("batch_size"),
             "steps": (run.results.get("train") or {}).get("steps"),
             "wall time (s)": (run.results.get("run") or {}).get("wall_seconds")}
    return f"<li><b>{html.escape(run.name)}</b>: " + ", ".join(
        f"{k} {html.escape(str(v))}" for k, v in facts.items() if v is not None) + "</li>"


def write_html(runs: list[Run], plots: list[Path], path: Path) -> Path:
    images = "".join(
        f'<figure><img alt="{p.stem}" src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}">'
        f"<figcaption>{p.name}</figcaption></figure>" for p in plots)
    title = runs[0].name if len(runs) == 1 else f"{len(runs)} runs"
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>seqtune report: {html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}}
figure{{display:inline-block;margin:8px}}img{{max-width:100%}}</style></head><body>
<h1>seqtune report: {html.escape(title)}</h1>
<ul>{"".join(_settings(run) for run in runs)}</ul>
<h2>Results</h2>{_results_table(runs)}
<h2>Plots</h2>{images or "<p>Nothing to plot: the runs recorded no evaluation.</p>"}
</body></html>
"""
    path.write_text(page, encoding="utf-8")
    return path


def write_report(run_dirs: list[str | Path], output: str | Path | None = None) -> Path:
    """report.html and the PNGs: in the run directory for one run (unless `output` is given), in
    `output` for several. Returns the report's path."""
    runs = [read_run(p) for p in run_dirs]
    if not runs:
        raise SeqtuneError("give at least one run directory.")
    if output is None and len(runs) > 1:
        raise SeqtuneError("several runs make one overlaid report: give --output DIR for it.")
    names = [run.name for run in runs]
    if len(set(names)) < len(names):  # same folder names from different places: keep plots apart
        for i, run in enumerate(runs):
            run.name = f"{i + 1}-{run.name}"
    directory = Path(output) if output is not None else runs[0].path
    directory.mkdir(parents=True, exist_ok=True)
    return write_html(runs, draw(runs, directory), directory / REPORT_FILE)


def report_at_end_of_run(run_dir: Path, log) -> None:
    """The report of a run that has just finished; a plot that fails is logged, never fails the run."""
    try:
        log(f"report: {write_report([run_dir])}")
    except Exception as error:  # noqa: BLE001 - the run's results are written; say what is missing
        log(f"report: not written ({type(error).__name__}: {error}); rebuild it with seqtune report {run_dir}")
