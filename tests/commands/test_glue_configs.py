"""The shipped GLUE-layout configs run end to end on generated files in exactly that layout."""

import json
import random

import pytest

from seqtune.cli import main

REPO_CONFIGS = __import__("pathlib").Path(__file__).resolve().parents[2] / "configs"
WORDS = "the a film movie good great bad awful fun dull plot story".split()


def sentence(rng):
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 6)))


def write_mrpc(path, n, rng):
    lines = ["Quality\t#1 ID\t#2 ID\t#1 String\t#2 String"]
    for i in range(n):
        a = sentence(rng)
        same = i % 2
        b = a if same else sentence(rng)
        lines.append(f"{same}\t{i}\t{i + 1000}\t{a}\t{b}")
    path.write_text("\n".join(lines) + "\n")


def write_stsb(path, n, rng):
    lines = ["index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore"]
    for i in range(n):
        a, b = sentence(rng), sentence(rng)
        score = 5.0 * len(set(a.split()) & set(b.split())) / len(set(a.split()) | set(b.split()))
        lines.append(f"{i}\tmain-news\tf\t2012\t{i}\tnone\tnone\t{a}\t{b}\t{score:.3f}")
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("config, writer, metric", [
    ("mrpc_pair.yaml", write_mrpc, "f1_macro"), ("stsb_regression.yaml", write_stsb, "pearson")])
def test_glue_layout_config(tmp_path, tiny_checkpoint, config, writer, metric):
    rng = random.Random(0)
    writer(tmp_path / "train.tsv", 48, rng)
    writer(tmp_path / "dev.tsv", 16, rng)
    code = main(["train", str(REPO_CONFIGS / config), "--set", f"model.path={tiny_checkpoint}",
                 "--set", f"data.train={tmp_path / 'train.tsv'}", "--set", f"data.dev={tmp_path / 'dev.tsv'}",
                 "--set", "train.epochs=1", "--set", "train.progress=false", "--set", f"output_dir={tmp_path / 'runs'}"])
    assert code == 0
    run = next((tmp_path / "runs").iterdir())
    results = json.loads((run / "results.json").read_text())
    assert metric in results["dev"]
    saved = json.loads((run / "model" / "seqtune.json").read_text())
    assert saved["data"]["text_pair_column"] in ("#2 String", "sentence2")
