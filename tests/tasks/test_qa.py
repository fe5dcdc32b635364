"""QuestionAnsweringTask: options, reading rules, loss, outputs, metrics, and train/evaluate/predict
end to end through the CLI on generated data (a tiny random BERT learns to point at a phrase)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from seqtune.cli import main
from seqtune.config import DataConfig, config_from_dict
from seqtune.errors import SeqtuneError
from seqtune.tasks.qa import QuestionAnsweringTask
from seqtune.tokenization import load_tokenizer

FILLER = "the a film movie bad awful not fun dull plot actors love hate boring terrible it is was and but".split()
QUESTION = "what is good ?"
ANSWER = "wonderful story"


def generated_record(rng: random.Random, qid: str, before: int, after: int) -> dict:
    """A context of filler words with the answer phrase once, after `before` words."""
    words = [rng.choice(FILLER) for _ in range(before + after)]
    prefix = " ".join(words[:before])
    context = (prefix + " " if prefix else "") + ANSWER + " " + " ".join(words[before:])
    return {"id": qid, "question": QUESTION, "context": context.strip(),
            "answers": {"text": [ANSWER], "answer_start": [len(prefix) + 1 if prefix else 0]}}


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def make_task(tokenizer, max_length=None, **options) -> QuestionAnsweringTask:
    cfg = config_from_dict({"task": {"type": "qa", **options}})
    return QuestionAnsweringTask(cfg.task, DataConfig(max_length=max_length), tokenizer)


@pytest.fixture(scope="module")
def tokenizer(tiny_checkpoint):
    return load_tokenizer(tiny_checkpoint)


def test_options_are_validated_by_the_config():
    cfg = config_from_dict({"task": {"type": "qa", "doc_stride": 64, "max_windows": None}})
    task = QuestionAnsweringTask(cfg.task, cfg.data, None)
    assert (task.data.max_length, cfg.task.doc_stride, cfg.task.n_best, cfg.task.max_windows) == (384, 64, 20, None)
    with pytest.raises(SeqtuneError, match="valid keys in task are: type, doc_stride"):
        config_from_dict({"task": {"type": "qa", "stride": 64}})


def test_windows_follow_data_max_length_and_the_old_key_names_its_new_home():
    cfg = config_from_dict({"task": {"type": "qa"}, "data": {"max_length": 256}})
    assert cfg.data.max_length == 256
    with pytest.raises(SeqtuneError, match="task.max_length has moved to data.max_length"):
        config_from_dict({"task": {"type": "qa", "max_length": 256}})


def test_training_needs_answers_and_v1_refuses_unanswerable(tmp_path, tokenizer):
    unlabelled = write_jsonl(tmp_path / "u.jsonl", [{"id": "u1", "question": "q?", "context": "a film"}])
    task = make_task(tokenizer)
    with pytest.raises(SeqtuneError, match="u1.*no 'answers', which the train split needs"):
        task.read(str(unlabelled), "train")
    assert task.read(str(unlabelled), "predict")[0].answers is None
    impossible = write_jsonl(tmp_path / "i.jsonl", [
        {"id": "i1", "question": "q?", "context": "a film", "answers": {"text": [], "answer_start": []}}])
    with pytest.raises(SeqtuneError, match="i1.*unanswerable .*version_2_with_negative"):
        make_task(tokenizer, version_2_with_negative=False).read(str(impossible), "train")
    auto = make_task(tokenizer)
    auto.fit(auto.read(str(impossible), "train"))
    assert auto.version_2 and auto.state() == {"version_2_with_negative": True}
    restored = make_task(tokenizer)
    restored.load_state(auto.state())
    assert restored.version_2


def test_loss_is_mean_of_start_and_end_cross_entropy_and_ignores_padding(tokenizer):
    task = make_task(tokenizer, max_length=32, doc_stride=8)
    rng = random.Random(0)
    records = [generated_record(rng, "a", 2, 1), generated_record(rng, "b", 6, 9)]
    dataset = task.encode([task.examples_from_inputs([r])[0] for r in records], "train")
    features = list(dataset.features)  # the windows as dicts (the dataset holds them flat)
    for f, r in zip(features, records):  # examples_from_inputs drops answers: add labels back
        f["start_positions"], f["end_positions"] = 1, 2
    batch = task.collate(features)
    assert batch["input_ids"].shape[0] == 2 and batch["attention_mask"][0].sum() < batch["input_ids"].shape[1]
    torch.manual_seed(0)
    start, end = torch.randn(batch["input_ids"].shape), torch.randn(batch["input_ids"].shape)
    loss = task.loss((start, end), batch)
    by_hand = []
    for i in range(2):  # each window alone, without padding
        n = int(batch["attention_mask"][i].sum())
        by_hand.append((F.cross_entropy(start[i:i + 1, :n], torch.tensor([1]))
                        + F.cross_entropy(end[i:i + 1, :n], torch.tensor([2]))) / 2)
    assert loss.item() == pytest.approx(torch.stack(by_hand).mean().item(), rel=1e-6)
    outputs = task.split_outputs((start, end), batch)
    assert [o.shape for o in outputs] == [(int(m.sum()), 2) for m in batch["attention_mask"]]
    assert np.allclose(outputs[1][:, 1], end[1, :outputs[1].shape[0]].numpy())


def test_v2_metrics_from_window_logits(tmp_path, tokenizer):
    task = make_task(tokenizer, max_length=32, doc_stride=8)
    rng = random.Random(1)
    answerable = generated_record(rng, "has", 3, 3)
    impossible = {"id": "none", "question": QUESTION, "context": "the film was dull",
                  "answers": {"text": [], "answer_start": []}}
    path = write_jsonl(tmp_path / "v2.jsonl", [answerable, impossible])
    examples = task.read(str(path), "train")
    task.fit(examples)
    dataset = task.encode(examples, "dev")
    outputs = []
    for f in dataset.features:  # perfect logits: the labelled positions score highest
        logits = np.zeros((len(f["input_ids"]), 2), dtype=np.float32)
        logits[f["start_positions"], 0] = logits[f["end_positions"], 1] = 10.0
        outputs.append(logits)
    metrics = task.metrics(outputs, dataset)
    assert set(task.metric_names()) == {k for k, v in metrics.items() if isinstance(v, (int, float))}
    assert metrics["exact_match"] == metrics["f1"] == 1.0  # 0-1 like every other metric
    assert metrics["has_ans_total"] == metrics["no_ans_total"] == 1
    assert type(metrics["total"]) is type(metrics["has_ans_total"]) is int
    assert metrics["best_f1"] == metrics["best_exact_match"] == 1.0 and "best_f1_thresh" in metrics
    assert json.loads(json.dumps(metrics)) == metrics
    files = task.prediction_files(task.predictions(outputs, dataset))
    assert files[".answers.json"] == {"has": ANSWER, "none": ""}
    assert set(files[".null_odds.json"]) == {"has", "none"}


def test_train_evaluate_predict_end_to_end(tmp_path, tiny_checkpoint, capsys):
    """A tiny BERT learns the phrase; the answer in the 3rd window of a long context is found."""
    rng = random.Random(0)
    train = write_jsonl(tmp_path / "train.jsonl", [
        generated_record(rng, f"t{i}", rng.randint(0, 30), rng.randint(0, 20)) for i in range(64)])
    dev = write_jsonl(tmp_path / "dev.jsonl", [
        generated_record(rng, f"d{i}", rng.randint(0, 30), rng.randint(0, 20)) for i in range(24)])
    code = main(["train", "--set", "task.type=qa", "--set", "data.max_length=32", "--set", "task.doc_stride=8",
                 "--set", f"model.path={tiny_checkpoint}", "--set", f"data.train={train}",
                 "--set", f"data.dev={dev}", "--set", "train.epochs=3", "--set", "train.batch_size=16",
                 "--set", "train.lr=3e-3", "--set", "train.progress=false", "--set", f"output_dir={tmp_path}/runs"])
    assert code == 0
    run_dir = Path(capsys.readouterr().out.strip().splitlines()[-1])
    results = json.loads((run_dir / "results.json").read_text())
    assert results["dev"]["f1"] > 0.9

    model_dir = run_dir / "model"
    assert main(["evaluate", str(model_dir), str(dev)]) == 0
    assert json.loads(capsys.readouterr().out)["exact_match"] == results["dev"]["exact_match"]

    # A SQuAD JSON with one long context whose answer only the third window holds.
    long_record = generated_record(random.Random(5), "long", 37, 30)
    context = long_record["context"].replace(ANSWER, "Wonderful STORY")
    start = context.index("Wonderful STORY")
    squad = {"version": "1.1", "data": [{"title": "generated", "paragraphs": [{"context": context, "qas": [
        {"id": "long", "question": QUESTION, "answers": [{"text": "Wonderful STORY", "answer_start": start}]}]}]}]}
    squad_path = tmp_path / "long.json"
    squad_path.write_text(json.dumps(squad))

    from seqtune.api import load

    model = load(model_dir, device="cpu")
    windows = model.task.encode(model.task.read(str(squad_path), "test"), "test").features
    assert len(windows) >= 4 and [i for i, w in enumerate(windows) if w["start_positions"]] == [2]

    out = tmp_path / "pred.jsonl"
    assert main(["predict", str(model_dir), str(squad_path), "--output", str(out)]) == 0
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert record["id"] == "long" and record["answer"] == "Wonderful STORY"
    assert record["n_best"][0]["start"] == start and len(record["n_best"]) == 20
    # and the official SQuAD prediction file beside it: {id: answer}
    assert json.loads((tmp_path / "pred.answers.json").read_text()) == {"long": "Wonderful STORY"}


def test_saved_model_loads_in_transformers_with_the_same_logits(tmp_path, tiny_checkpoint):
    transformers = pytest.importorskip("transformers")
    from seqtune.models.task_model import model_for_finetuning, save_model

    tokenizer = load_tokenizer(tiny_checkpoint)
    task = make_task(tokenizer, max_length=32, doc_stride=8)
    model, _ = model_for_finetuning(str(tiny_checkpoint), task)
    save_model(tmp_path / "m", model.eval(), task, tokenizer)
    hf = transformers.BertForQuestionAnswering.from_pretrained(tmp_path / "m").eval()
    rng = random.Random(2)
    examples = task.examples_from_inputs([generated_record(rng, "a", 3, 40), ("what ?", "a film")])
    batch = task.collate(task.encode(examples, "predict").features)
    with torch.no_grad():
        start, end = model(batch)
        reference = hf(**{k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")})
    real = batch["attention_mask"].bool()
    assert torch.allclose(start[real], reference.start_logits[real], atol=1e-5)
    assert torch.allclose(end[real], reference.end_logits[real], atol=1e-5)


def test_python_api_inputs(tokenizer):
    task = make_task(tokenizer)
    examples = task.examples_from_inputs([("what ?", "a film"), {"id": "x", "question": "q", "context": "c"}])
    assert [e.id for e in examples] == ["0", "x"]
    with pytest.raises(SeqtuneError, match="input 0: the context is missing"):
        task.examples_from_inputs([{"question": "q"}])


@pytest.mark.slow
def test_official_dev_answers_map_to_tokens(shared_data, minilm_dir):
    """Nearly every answer of the real dev set is recovered exactly from its token span."""
    from seqtune.tasks.qa_metrics import normalize_answer

    task = make_task(load_tokenizer(minilm_dir))
    examples = task.read(str(shared_data / "squad_v1.1" / "dev-v1.1.json") + "#articles=32:", "train")
    dataset = task.encode(examples, "train")
    labelled = [f for f in dataset.features if f["start_positions"]]
    exact = sum(
        normalize_answer(examples[f["example_index"]].context[f["offsets"][f["start_positions"], 0]:
                                                              f["offsets"][f["end_positions"], 1]])
        == normalize_answer(examples[f["example_index"]].answers[0].text)
        for f in labelled)
    assert len(examples) == 3335 and len(dataset.features) > len(examples)
    assert exact / len(labelled) > 0.99  # the rest are answers inside a word ("gold" in "golden")


def test_a_model_of_overlapping_kmers_is_refused():
    from seqtune.vocab_builder import build_char_tokenizer

    kmers = build_char_tokenizer(alphabet="ACGT", kmer=3, overlap=True)
    with pytest.raises(SeqtuneError, match="task.type qa needs a vocabulary of words or characters, but the "
                                           "model reads overlapping 3-mers"):
        make_task(kmers)
