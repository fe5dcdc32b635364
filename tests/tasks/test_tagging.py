"""Word tagging: sub-token alignment, predictions back to words (also through windows), seqeval
metrics, scheme detection, bad input, the Hugging Face layout of the saved model, and the CLI."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from seqtune.cli import main
from seqtune.config import DataConfig
from seqtune.data.readers.conll import TaggedSentence
from seqtune.errors import SeqtuneError
from seqtune.tasks.tagging import TaggingOptions, TaggingTask, align_words, order_tags
from seqtune.tasks.token_metrics import allowed_transitions, detect_scheme, invalid_transitions
from seqtune.tasks.windows import IGNORE_INDEX
from seqtune.tokenization import load_tokenizer

SENTENCES = [
    TaggedSentence(["Peter", "Grünewald", "visited", "Brussels", "."], ["B-PER", "I-PER", "O", "B-LOC", "O"], "t:1"),
    TaggedSentence(["The", "European", "Commission", "said"], ["O", "B-ORG", "I-ORG", "O"], "t:7"),
    TaggedSentence(["Germany", "'s", "representative"], ["B-LOC", "O", "O"], "t:12"),
]


@pytest.fixture(scope="module")
def minilm_tokenizer(minilm_dir):
    return load_tokenizer(minilm_dir)


def make_task(tokenizer, max_length: int = 128, **options) -> TaggingTask:
    return TaggingTask(TaggingOptions(type="tagging", **options), DataConfig(max_length=max_length), tokenizer)


def oracle_outputs(task: TaggingTask, dataset, wrong: int = 0) -> list[np.ndarray]:
    """Fake logits per feature: the gold tag at labelled tokens, tag `wrong` at every other token."""
    outputs = []
    for f in dataset.features:
        labels = np.asarray(f["labels"][1:-1])
        logits = np.zeros((len(labels), len(task.labels)), dtype=np.float32)
        logits[np.arange(len(labels)), np.where(labels == IGNORE_INDEX, wrong, labels)] = 5.0
        outputs.append(logits)
    return outputs


def test_align_words_gives_empty_words_an_unk():
    ids, token_word, starts, empty = align_words([10, 11, 12], [0, 0, 2], 3, unk_id=1)
    assert ids == [10, 11, 1, 12] and token_word == [0, 0, 1, 2] and starts == [0, 2, 3] and empty == 1


def test_tag_order_is_stable():
    assert order_tags({"I-PER", "O", "B-LOC", "B-PER", "I-LOC"}) == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]


def test_label_goes_on_first_subtoken(minilm_tokenizer):
    task = make_task(minilm_tokenizer)
    task.fit(SENTENCES)
    ds = task.encode(SENTENCES, "train")
    first = ds.features[0]
    tokens = minilm_tokenizer.backend.encode(SENTENCES[0].tokens, is_pretokenized=True, add_special_tokens=False)
    assert first["input_ids"][1:-1] == tokens.ids  # peter gr ##une ##wald visited brussels .
    assert len(tokens.ids) == 7 and ds.word_starts[0] == [0, 1, 4, 5, 6]
    expected = [task.label_to_id[t] for t in ["B-PER", "I-PER"]] + [IGNORE_INDEX] * 2 + \
        [task.label_to_id[t] for t in ["O", "B-LOC", "O"]]
    assert first["labels"] == [IGNORE_INDEX, *expected, IGNORE_INDEX]


def test_label_all_subtokens_turns_b_into_i(minilm_tokenizer):
    sentence = TaggedSentence(["Grünewald", "said"], ["B-PER", "O"], "t:1")
    task = make_task(minilm_tokenizer, label_all_subtokens=True)
    task.fit(SENTENCES)
    (feature,) = task.encode([sentence], "train").features
    ids = task.label_to_id
    assert feature["labels"][1:-1] == [ids["B-PER"], ids["I-PER"], ids["I-PER"], ids["O"]]


@pytest.mark.parametrize("max_length", [128, 5])  # 5: windows of 3 sub-tokens
def test_predictions_are_one_tag_per_word_from_first_subtokens(minilm_tokenizer, max_length):
    task = make_task(minilm_tokenizer, max_length=max_length, window_stride=2)
    task.fit(SENTENCES)
    ds = task.encode(SENTENCES, "dev")
    if max_length == 5:
        assert len(ds.features) > len(SENTENCES) and ds.info["windowed"] == 3
    wrong = task.label_to_id["B-ORG"]
    predictions = task.predictions(oracle_outputs(task, ds, wrong), ds)
    assert [p["tokens"] for p in predictions] == [s.tokens for s in SENTENCES]
    assert [p["tags"] for p in predictions] == [s.tags for s in SENTENCES]
    metrics = task.metrics(oracle_outputs(task, ds, wrong), ds)
    assert metrics["f1"] == 1.0 and metrics["accuracy"] == 1.0 and metrics["f1_conlleval"] == 1.0
    assert set(metrics["per_type"]) == {"PER", "LOC", "ORG"}


def test_metrics_agree_with_seqeval_on_wrong_predictions(minilm_tokenizer):
    from seqeval.metrics import f1_score
    from seqeval.scheme import IOB2

    task = make_task(minilm_tokenizer, decode="argmax")  # viterbi would not predict the invalid start
    task.fit(SENTENCES)
    ds = task.encode(SENTENCES, "dev")
    outputs = oracle_outputs(task, ds)
    # sentence 0: predict "I-PER I-PER" for "Peter Grünewald" (invalid start in strict IOB2)
    outputs[0][0] = np.eye(len(task.labels))[task.label_to_id["I-PER"]]
    # sentence 1: miss the ORG entity's second word
    outputs[1][ds.word_starts[1][2]] = np.eye(len(task.labels))[task.label_to_id["O"]]
    predicted = [p["tags"] for p in task.predictions(outputs, ds)]
    gold = [s.tags for s in SENTENCES]
    metrics = task.metrics(outputs, ds)
    assert metrics["f1"] == pytest.approx(f1_score(gold, predicted, mode="strict", scheme=IOB2))
    assert metrics["f1_conlleval"] == pytest.approx(f1_score(gold, predicted))
    assert metrics["f1"] < metrics["f1_conlleval"] < 1.0  # strict rejects the I-PER start
    assert metrics["accuracy"] == pytest.approx(10 / 12)
    matrix = np.asarray(metrics["confusion_matrix"]["matrix"])
    assert matrix.sum() == 12 and np.trace(matrix) == 10


def invalid_outputs(task: TaggingTask, dataset) -> list[np.ndarray]:
    """Oracle logits, but sentence 0 scores "I-PER I-PER O B-LOC I-PER" (gold: B-PER I-PER O B-LOC O):
    the first I-PER may not start a sentence, the last may not follow B-LOC."""
    changed = {0: {"I-PER": 1.0}, 4: {"I-PER": 1.0, "O": 0.5}}  # word -> logits (others 0)
    outputs = oracle_outputs(task, dataset)
    for feature, logits in zip(dataset.features, outputs):
        if feature["example_index"] != 0:
            continue
        for word, scores in changed.items():
            position = dataset.word_starts[0][word] - feature["span"][0]
            if 0 <= position < len(logits):  # every window that holds the word
                logits[position] = 0.0
                for tag, value in scores.items():
                    logits[position, task.label_to_id[tag]] = value
    return outputs


@pytest.mark.parametrize("max_length", [128, 5])
def test_viterbi_decoding_gives_valid_tags_in_predictions_and_metrics(minilm_tokenizer, max_length):
    gold = [s.tags for s in SENTENCES]
    argmax_task = make_task(minilm_tokenizer, max_length=max_length, decode="argmax")
    argmax_task.fit(SENTENCES)
    ds = argmax_task.encode(SENTENCES, "dev")
    outputs = invalid_outputs(argmax_task, ds)
    assert argmax_task.predictions(outputs, ds)[0]["tags"] == ["I-PER", "I-PER", "O", "B-LOC", "I-PER"]
    assert argmax_task.metrics(outputs, ds)["f1"] < 1.0

    task = make_task(minilm_tokenizer, max_length=max_length)  # decode: viterbi, the default
    task.fit(SENTENCES)
    assert task.options.decode == "viterbi"
    assert [p["tags"] for p in task.predictions(outputs, ds)] == gold
    metrics = task.metrics(outputs, ds)
    assert metrics["f1"] == 1.0 and metrics["accuracy"] == 1.0


@pytest.mark.parametrize("max_length", [128, 5])
def test_decode_argmax_keeps_each_words_best_tag(minilm_tokenizer, max_length):
    rng = np.random.default_rng(0)
    tasks = {}
    for decode in ("argmax", "viterbi"):
        tasks[decode] = make_task(minilm_tokenizer, max_length=max_length, window_stride=2, decode=decode)
        tasks[decode].fit(SENTENCES)
    ds = tasks["argmax"].encode(SENTENCES, "dev")
    outputs = [rng.normal(size=(len(f["input_ids"]) - 2, len(tasks["argmax"].labels))) * 3 for f in ds.features]
    merged = tasks["argmax"].example_outputs(outputs, ds)
    expected = [logits[starts].argmax(-1) for logits, starts in zip(merged, ds.word_starts)]
    labels = tasks["argmax"].labels
    masks = allowed_transitions(labels, "IOB2")
    found = {}
    for decode, task in tasks.items():
        tags = [p["tags"] for p in task.predictions(outputs, ds)]
        found[decode] = sum(invalid_transitions(np.array([labels.index(t) for t in s]), *masks) for s in tags)
        if decode == "argmax":
            assert tags == [[labels[i] for i in e] for e in expected]
    assert found["argmax"] > 0 and found["viterbi"] == 0


def test_pos_tags_are_decoded_word_by_word(minilm_tokenizer):
    sentences = [TaggedSentence(["EU", "rejects", "German", "call"], ["NNP", "VBZ", "JJ", "NN"], "t:1")]
    task = make_task(minilm_tokenizer)  # decode: viterbi, but scheme "none" has no transitions to check
    task.fit(sentences)
    ds = task.encode(sentences, "dev")
    outputs = [np.random.default_rng(1).normal(size=(len(f["input_ids"]) - 2, len(task.labels))) for f in ds.features]
    (merged,) = task.example_outputs(outputs, ds)
    assert task.predictions(outputs, ds)[0]["tags"] == [task.labels[i] for i in merged[ds.word_starts[0]].argmax(-1)]


@pytest.mark.parametrize("tags, scheme", [
    ([["B-PER", "I-PER", "O", "B-LOC"]], "IOB2"),
    ([["I-PER", "I-PER", "O", "I-LOC", "B-LOC"]], "IOB1"),
    ([["S-PER", "O", "B-LOC", "E-LOC"]], "IOBES"),
    ([["NNP", "VBZ", "O"]], "none"),
    ([["O", "O"]], "none"),
])
def test_detect_scheme(tags, scheme):
    assert detect_scheme(tags) == scheme


def test_pos_tags_score_accuracy(minilm_tokenizer):
    sentences = [TaggedSentence(["EU", "rejects", "German"], ["NNP", "VBZ", "JJ"], "t:1")]
    task = make_task(minilm_tokenizer)
    task.fit(sentences)
    assert task.scheme == "none" and task.primary_metric == "accuracy"
    ds = task.encode(sentences, "dev")
    metrics = task.metrics(oracle_outputs(task, ds), ds)
    assert metrics["accuracy"] == 1.0 and "f1" not in metrics and set(metrics["per_tag"]) == {"NNP", "VBZ", "JJ"}


def test_explicit_scheme_must_fit_the_tags(minilm_tokenizer):
    task = make_task(minilm_tokenizer, scheme="IOBES")
    task.fit([TaggedSentence(["a"], ["B-PER"], "t:1")])  # B- is an IOBES prefix: fine
    with pytest.raises(SeqtuneError, match="task.scheme is 'IOB2'"):
        make_task(minilm_tokenizer, scheme="IOB2").fit([TaggedSentence(["a"], ["S-PER"], "t:1")])


def test_unseen_dev_tag_is_an_error_naming_the_sentence(minilm_tokenizer):
    task = make_task(minilm_tokenizer)
    task.fit(SENTENCES)
    dev = [TaggedSentence(["Paris"], ["B-GPE"], "dev.txt:42")]
    with pytest.raises(SeqtuneError, match=r"dev.txt:42: tag 'B-GPE' does not occur in the training data"):
        task.encode(dev, "dev")


def test_state_round_trip_and_hf_config(minilm_tokenizer):
    task = make_task(minilm_tokenizer)
    task.fit(SENTENCES)
    restored = make_task(minilm_tokenizer)
    restored.load_state(json.loads(json.dumps(task.state())))
    assert restored.labels == task.labels and restored.scheme == "IOB2"
    config = task.hf_config()
    assert config["architectures"] == ["BertForTokenClassification"]
    assert config["id2label"]["0"] == "O" and config["label2id"]["B-PER"] == task.label_to_id["B-PER"]


def test_saved_model_loads_in_transformers_with_same_logits(tiny_checkpoint, tmp_path):
    transformers = pytest.importorskip("transformers")
    from seqtune.models.task_model import model_for_finetuning, save_model

    tokenizer = load_tokenizer(tiny_checkpoint)
    task = make_task(tokenizer)
    words = [TaggedSentence(["the", "film", "was", "great"], ["O", "B-MISC", "O", "B-X"], "t:1")]
    task.fit(words)
    model, _ = model_for_finetuning(str(tiny_checkpoint), task)
    torch.nn.init.normal_(model.head.classifier.bias)  # make the head's bias matter
    model.eval()
    save_model(tmp_path / "model", model, task, tokenizer)
    batch = task.collate(task.encode(words, "dev").features)
    ours = model(batch)
    hf = transformers.AutoModelForTokenClassification.from_pretrained(tmp_path / "model").eval()
    with torch.no_grad():
        theirs = hf(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-4)
    assert hf.config.id2label[task.label_to_id["B-MISC"]] == "B-MISC"


@pytest.mark.parametrize("decode", ["argmax", "viterbi"])
def test_saved_model_keeps_its_decoding(tiny_checkpoint, tmp_path, decode):
    from seqtune.inference import load_trained_model
    from seqtune.models.task_model import model_for_finetuning, save_model

    tokenizer = load_tokenizer(tiny_checkpoint)
    task = make_task(tokenizer, decode=decode)
    task.fit(SENTENCES)
    model, _ = model_for_finetuning(str(tiny_checkpoint), task)
    save_model(tmp_path / "model", model, task, tokenizer)
    assert json.loads((tmp_path / "model" / "seqtune.json").read_text())["task"]["decode"] == decode
    loaded, _ = load_trained_model(tmp_path / "model")
    assert loaded.options.decode == decode and loaded.scheme == "IOB2"
    ds = loaded.encode(SENTENCES, "dev")
    first = loaded.predictions(invalid_outputs(loaded, ds), ds)[0]["tags"]
    assert first == (SENTENCES[0].tags if decode == "viterbi" else ["I-PER", "I-PER", "O", "B-LOC", "I-PER"])


# ---- end to end through the CLI, on generated data ----------------------------------------------
FILLER = ["the", "a", "it", "is", "was", "and", "but", "not", "very"]


def generated_ner(rng: random.Random, n: int) -> list[tuple[list[str], list[str]]]:
    """Sentences where "actors"/"actorsy" are PER and "great film" / "good movies" are two-word MISC.

    "movies" and "actorsy" are not in the tiny vocabulary: they split into sub-tokens.
    """
    out = []
    for _ in range(n):
        words, tags = [], []
        for _ in range(rng.randint(3, 9)):
            r = rng.random()
            if r < 0.2:
                words.append(rng.choice(["actors", "actorsy"]))
                tags.append("B-PER")
            elif r < 0.35:
                words += [rng.choice(["great", "good"]), rng.choice(["film", "movies"])]
                tags += ["B-MISC", "I-MISC"]
            else:
                words.append(rng.choice(FILLER))
                tags.append("O")
        out.append((words, tags))
    return out


def write_conll(path, sentences, with_tags: bool = True):
    blocks = ["-DOCSTART- O\n"]
    for words, tags in sentences:
        blocks.append("".join(f"{w} {t}\n" if with_tags else f"{w}\n" for w, t in zip(words, tags)))
    path.write_text("\n".join(blocks))
    return path


def test_cli_train_evaluate_predict(tiny_checkpoint, tmp_path, capsys):
    rng = random.Random(0)
    train = write_conll(tmp_path / "train.txt", generated_ner(rng, 160))
    dev = write_conll(tmp_path / "dev.txt", generated_ner(rng, 40))
    test_sentences = generated_ner(rng, 40)
    test = write_conll(tmp_path / "test.txt", test_sentences)
    config = tmp_path / "ner.yaml"
    config.write_text(
        "task: {type: tagging}\n"
        f"model: {{path: {tiny_checkpoint}}}\n"
        f"data: {{train: {train}, dev: {dev}, test: {test}, max_length: 12}}\n"  # windows of 10 sub-tokens
        "train: {epochs: 8, batch_size: 16, lr: 3.0e-3, progress: false, seed: 1, num_threads: 1}\n"
        f"output_dir: {tmp_path / 'runs'}\n"
    )
    assert main(["train", str(config)]) == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    # 'O' alone would give accuracy ~0.6 and F1 0: the model must have learnt the entities
    assert results["test"]["accuracy"] > 0.9 and results["test"]["f1"] > 0.7, results["test"]
    assert set(results["test"]["per_type"]) == {"PER", "MISC"}

    words_file = write_conll(tmp_path / "words.txt", test_sentences, with_tags=False)
    out = tmp_path / "pred.jsonl"
    assert main(["predict", str(run_dir / "model"), str(words_file), "--output", str(out)]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["tokens"] for r in records] == [w for w, _ in test_sentences]
    assert all(len(r["tags"]) == len(r["tokens"]) for r in records)

    capsys.readouterr()
    assert main(["evaluate", str(run_dir / "model"), str(test)]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["f1"] == pytest.approx(results["test"]["f1"])

    from seqtune import load

    model = load(run_dir / "model", device="cpu")
    as_text, as_words = model.predict([" ".join(test_sentences[0][0]), test_sentences[0][0]])
    assert as_text == as_words == records[0]


def test_cli_train_rejects_unseen_dev_tag(tiny_checkpoint, tmp_path, capsys):
    train = write_conll(tmp_path / "train.txt", [(["actors", "was"], ["B-PER", "O"])])
    dev = write_conll(tmp_path / "dev.txt", [(["the", "film"], ["O", "B-MISC"])])
    config = tmp_path / "ner.yaml"
    config.write_text(f"task: {{type: tagging}}\nmodel: {{path: {tiny_checkpoint}}}\n"
                      f"data: {{train: {train}, dev: {dev}}}\noutput_dir: {tmp_path / 'runs'}\n")
    code = main(["train", str(config)])
    assert code == 2
    assert f"{dev}:3: tag 'B-MISC' does not occur in the training data" in capsys.readouterr().err


def test_a_saved_model_decodes_as_evaluate_and_predict_ask(tiny_checkpoint, tmp_path):
    """--set task.decode=... switches decoding of a saved model; settings that fix weights stay fixed."""
    from seqtune.errors import SeqtuneError
    from seqtune.inference import load_trained_model
    from seqtune.models.task_model import model_for_finetuning, save_model

    tokenizer = load_tokenizer(tiny_checkpoint)
    task = make_task(tokenizer, decode="viterbi")
    task.fit(SENTENCES)
    model, _ = model_for_finetuning(str(tiny_checkpoint), task)
    save_model(tmp_path / "model", model, task, tokenizer)
    switched, _ = load_trained_model(tmp_path / "model", ["task.decode=argmax"])
    assert switched.options.decode == "argmax"
    ds = switched.encode(SENTENCES, "dev")
    assert switched.predictions(invalid_outputs(switched, ds), ds)[0]["tags"] == ["I-PER", "I-PER", "O", "B-LOC", "I-PER"]
    with pytest.raises(SeqtuneError, match="task.decode"):
        load_trained_model(tmp_path / "model", ["task.head=mlp"])
