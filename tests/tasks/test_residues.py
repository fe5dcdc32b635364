"""Per-residue labelling: one token per residue, unknown letters, masks, windows (3x the model's maximum,
and bit-identical predictions for sequences that fit), metrics, predictions, and the CLI end to end."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from tokenizers import Regex
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import models, pre_tokenizers

from seqtune.cli import main
from seqtune.config import DataConfig
from seqtune.data.readers.sequences import LabelledSequence
from seqtune.errors import SeqtuneError
from seqtune.models.checkpoint import encoder_state_to_hf, save_weights, write_json
from seqtune.models.encoder import Encoder, EncoderConfig
from seqtune.models.task_model import model_for_finetuning
from seqtune.tasks.residues import ResidueOptions, ResidueTask
from seqtune.tasks.windows import IGNORE_INDEX, window_owners, window_spans
from seqtune.tokenization import SPECIAL_TOKENS, Tokenizer, bert_post_processor, load_tokenizer
from seqtune.inference import Runtime, run_outputs

PROTEIN = "ACDEFGHIKLMNPQRSTVWY"


def write_char_checkpoint(directory: Path, alphabet: str = PROTEIN, hidden: int = 32, layers: int = 2,
                          max_positions: int = 64, seed: int = 0) -> Path:
    """A random-weight BERT whose vocabulary is one token per character (a protein model from scratch).

    Minimal on purpose; the shared builders of the pretraining work (a character tokenizer and a
    fresh model directory) should replace it once they are in the repository.
    """
    vocab = {t: i for i, t in enumerate([*SPECIAL_TOKENS, *alphabet])}
    backend = HFTokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(Regex("."), behavior="isolated")])
    backend.post_processor = bert_post_processor(vocab)
    directory.mkdir(parents=True, exist_ok=True)
    Tokenizer(backend, lowercase=False, model_max_length=max_positions, kind="char").save(directory)
    torch.manual_seed(seed)
    cfg = EncoderConfig(vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=4, intermediate_size=2 * hidden, max_position_embeddings=max_positions)
    encoder = Encoder(cfg, add_pooler=False)
    write_json(directory / "config.json", {**cfg.to_dict(), "architectures": ["BertModel"]})
    save_weights(directory / "model.safetensors", encoder_state_to_hf(encoder.state_dict()))
    return directory


@pytest.fixture(scope="module")
def char_checkpoint(tmp_path_factory) -> Path:
    return write_char_checkpoint(tmp_path_factory.mktemp("char_bert"))


def make_task(tokenizer, max_length: int = 64, **options) -> ResidueTask:
    return ResidueTask(ResidueOptions(type="residues", **options), DataConfig(max_length=max_length), tokenizer)


def record(sequence: str, labels: str | None = None, mask: str | None = None, n: int = 1) -> LabelledSequence:
    return LabelledSequence(sequence, list(labels) if labels else None,
                            [c == "1" for c in mask] if mask else None, f"p{n}", f"train.csv:{n + 1} (record {n})")


def test_one_token_per_residue_and_unknown_letters_counted(char_checkpoint):
    tokenizer = load_tokenizer(char_checkpoint)
    task = make_task(tokenizer)
    train = [record("MKXVLX", "CCHHEE"), record("AXC", "CEH", n=2)]
    task.fit(train)
    ds = task.encode(train, "train")
    vocab = tokenizer.backend.get_vocab()
    assert ds.features[0]["input_ids"] == [tokenizer.cls_id, vocab["M"], vocab["K"], tokenizer.unk_id, vocab["V"],
                                           vocab["L"], tokenizer.unk_id, tokenizer.sep_id]
    assert ds.info["unknown_residues"] == {"X": 3}
    metrics = task.metrics([np.zeros((len(r.sequence), 3), dtype=np.float32) for r in train], ds)
    assert metrics["residues"]["unknown"] == {"X": 3}
    ids = task.label_to_id
    assert ds.features[1]["labels"] == [IGNORE_INDEX, ids["C"], ids["E"], ids["H"], IGNORE_INDEX]


def test_unknown_letters_can_be_an_error(char_checkpoint):
    task = make_task(load_tokenizer(char_checkpoint), unknown_residues="error")
    train = [record("MKV", "CCH"), record("MXBX", "CCHH", n=2), record("ZZ", "CC", n=3)]
    task.fit(train)
    with pytest.raises(SeqtuneError) as err:
        task.encode(train, "train")
    message = str(err.value)
    assert "5 residues in 2 of 3 sequences are not in the model's alphabet" in message
    assert "'X' x2 (first at train.csv:3 (record 2))" in message and "'Z' x2" in message and "'B' x1" in message
    assert PROTEIN in message  # the alphabet the model has


def test_wordpiece_checkpoint_reads_each_residue_as_a_word(minilm_dir):
    tokenizer = load_tokenizer(minilm_dir)
    task = make_task(tokenizer)
    train = [record("MKVé\u2603", "CCHHE")]
    task.fit(train)
    ds = task.encode(train, "train")
    vocab = tokenizer.backend.get_vocab()
    # the uncased BERT normaliser lower-cases and strips accents; the snowman has no token
    assert ds.features[0]["input_ids"][1:-1] == [vocab["m"], vocab["k"], vocab["v"], vocab["e"], tokenizer.unk_id]
    assert ds.info["unknown_residues"] == {"\u2603": 1}


def test_a_dev_set_with_every_residue_masked_scores_zero_instead_of_crashing(char_checkpoint):
    """Nothing scored: every score 0 and `scored: 0` say so (this raised scikit-learn's ValueError
    "Found empty input array" before)."""
    task = make_task(load_tokenizer(char_checkpoint))
    task.fit([record("MKVL", "HHEC")])
    ds = task.encode([record("MKVL", "HHEC", mask="0000")], "dev")
    metrics = task.metrics([np.zeros((4, 3), dtype=np.float32)], ds)
    assert (metrics["accuracy"], metrics["q3"], metrics["macro_f1"]) == (0.0, 0.0, 0.0)
    assert metrics["residues"] == {"scored": 0, "masked": 4, "unknown": {}}
    assert metrics["confusion_matrix"]["matrix"] == [[0, 0, 0]] * 3
    assert {v["support"] for v in metrics["per_label"].values()} == {0}


def test_masked_residues_leave_the_loss_and_the_metrics(char_checkpoint):
    task = make_task(load_tokenizer(char_checkpoint))
    train = [record("MKVL", "HHEC", mask="0110")]
    task.fit(train)
    ds = task.encode(train, "dev")
    assert ds.features[0]["labels"][1:-1] == [IGNORE_INDEX, task.label_to_id["H"], task.label_to_id["E"], IGNORE_INDEX]
    # predict "C" everywhere: right only at the masked last residue, wrong at both scored ones
    logits = np.zeros((4, 3), dtype=np.float32)
    logits[:, task.label_to_id["C"]] = 1.0
    metrics = task.metrics([logits], ds)
    assert metrics["accuracy"] == 0.0 and metrics["q3"] == 0.0
    assert metrics["residues"] == {"scored": 2, "masked": 2, "unknown": {}}
    batch = task.collate(ds.features)
    loss = task.loss(torch.as_tensor(np.pad(logits, ((1, 1), (0, 0))))[None], batch)
    assert loss.item() == pytest.approx(-np.log(np.exp(0) / (np.exp(1) + 2)), rel=1e-5)


def test_training_mean_loss_weighs_every_labelled_token_alike(char_checkpoint):
    task = make_task(load_tokenizer(char_checkpoint), loss_normalization="training_mean")
    train = [record("MK", "HE", n=1), record("MKVLAC", "HECCHE", n=2)]  # 2 and 6 labels: mean 4 per input
    task.fit(train)
    ds = task.encode(train, "train")
    assert task.labelled_per_feature == 4.0
    torch.manual_seed(0)
    short, long = (task.collate([f]) for f in ds.features)
    for batch in (short, long):
        logits = torch.randn(*batch["input_ids"].shape, 3)
        labelled = int((batch["labels"] != IGNORE_INDEX).sum())
        per_token = torch.nn.functional.cross_entropy(logits[0], batch["labels"][0], ignore_index=IGNORE_INDEX)
        # sum over the batch / (1 input x 4): a 2-label batch counts half as much as a mean would say
        assert task.loss(logits, batch).item() == pytest.approx(per_token.item() * labelled / 4, rel=1e-5)


def test_unseen_dev_label_names_the_record(char_checkpoint):
    task = make_task(load_tokenizer(char_checkpoint))
    task.fit([record("MKV", "HEC")])
    with pytest.raises(SeqtuneError, match=r"train.csv:6 \(record 5\): label 'T' does not occur in the training data"):
        task.encode([record("MK", "HT", n=5)], "dev")


def test_metrics_and_predictions(char_checkpoint):
    task = make_task(load_tokenizer(char_checkpoint))
    data = [record("MKVL", "HHEC"), record("AC", "CC", n=2)]
    task.fit(data)
    ds = task.encode(data, "dev")
    eye = np.eye(3, dtype=np.float32)
    ids = task.label_to_id
    outputs = [eye[[ids[c] for c in "HHCC"]], eye[[ids[c] for c in "CC"]]]  # one error: E -> C
    metrics = task.metrics(outputs, ds)
    assert metrics["accuracy"] == pytest.approx(5 / 6) and metrics["q3"] == metrics["accuracy"]
    assert metrics["per_label"]["E"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert metrics["per_label"]["C"]["recall"] == 1.0 and metrics["per_label"]["C"]["precision"] == 0.75
    matrix = metrics["confusion_matrix"]
    assert matrix["labels"] == ["C", "E", "H"] and matrix["matrix"][ids["E"]][ids["C"]] == 1
    predictions = task.predictions(outputs, ds)
    assert predictions[0] == {"id": "p1", "sequence": "MKVL", "label_string": "HHCC", "labels": list("HHCC")}


def direct_logits(model, tokenizer, ids: list[int]) -> np.ndarray:
    """The model on one unpadded input [CLS] ids [SEP], without any windowing: (len(ids), C)."""
    input_ids = torch.tensor([[tokenizer.cls_id, *ids, tokenizer.sep_id]])
    with torch.no_grad():
        logits = model({"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)})
    return logits[0, 1:-1].numpy()


def test_windowing_long_and_short_sequences(char_checkpoint):
    """The acceptance test: a sequence 3x longer than the model maximum gets exactly one prediction per
    residue (each from the window where it has most context), and a sequence that fits gets exactly
    the predictions of the model run on it without windowing."""
    max_length = 16  # 14 residues per window
    tokenizer = load_tokenizer(char_checkpoint)
    task = make_task(tokenizer, max_length=max_length, window_stride=5)
    rng = random.Random(0)
    long_seq = "".join(rng.choice(PROTEIN) for _ in range(3 * max_length))
    short_seq = "MKVLAAGHE"
    examples = [record(long_seq, "H" * len(long_seq)), record(short_seq, "C" * len(short_seq), n=2),
                record("W", "E", n=3)]
    task.fit(examples)
    model, _ = model_for_finetuning(str(char_checkpoint), task)
    model.eval()
    ds = task.encode([record(long_seq, n=1), record(short_seq, n=2), record("W", n=3)], "predict")
    assert ds.info["windowed"] == 1 and len(ds.features) == len(window_spans(48, 14, 5)) + 2
    outputs = run_outputs(model, task, ds, Runtime(torch.device("cpu")), batch_tokens=64)  # padded batches
    merged = task.example_outputs(outputs, ds)
    predictions = task.predictions(outputs, ds)

    assert [len(p["labels"]) for p in predictions] == [48, 9, 1]
    assert [len(p["label_string"]) for p in predictions] == [48, 9, 1]
    assert [p["sequence"] for p in predictions] == [long_seq, short_seq, "W"]

    ids = [tokenizer.backend.get_vocab()[c] for c in long_seq]
    spans = window_spans(len(ids), 14, 5)
    owner = window_owners(spans, len(ids))
    for w, (start, end) in enumerate(spans):
        window_logits = direct_logits(model, tokenizer, ids[start:end])
        mine = np.nonzero(owner[start:end] == w)[0]
        np.testing.assert_allclose(merged[0][start + mine], window_logits[mine], atol=1e-5)

    for i, seq in ((1, short_seq), (2, "W")):
        unwindowed = direct_logits(model, tokenizer, [tokenizer.backend.get_vocab()[c] for c in seq])
        np.testing.assert_allclose(merged[i], unwindowed, atol=1e-5)
        assert predictions[i]["labels"] == [task.labels[j] for j in unwindowed.argmax(-1)]


# ---- end to end through the CLI, on generated data ----------------------------------------------
HELIX, STRAND = set("AELMQKR"), set("VIYFWT")


def generated_proteins(rng: random.Random, n: int, min_len: int = 5, max_len: int = 60):
    """(id, sequence, dssp3, mask): the label follows from the residue; masked residues get a random label."""
    rows = []
    for i in range(n):
        seq = "".join(rng.choice(PROTEIN) for _ in range(rng.randint(min_len, max_len)))
        mask = "".join("0" if rng.random() < 0.1 else "1" for _ in seq)
        labels = "".join(("H" if c in HELIX else "E" if c in STRAND else "C") if m == "1" else rng.choice("HEC")
                         for c, m in zip(seq, mask))
        rows.append((f"prot{i}", seq, labels, mask))
    return rows


def write_csv(path: Path, rows) -> Path:
    path.write_text("id,input,dssp3,resolved_mask\n" + "".join(",".join(r) + "\n" for r in rows))
    return path


def test_cli_train_evaluate_predict(char_checkpoint, tmp_path, capsys):
    rng = random.Random(0)
    train = write_csv(tmp_path / "train.csv", generated_proteins(rng, 120))
    dev = write_csv(tmp_path / "dev.csv", generated_proteins(rng, 20))
    test_rows = generated_proteins(rng, 20, min_len=40, max_len=100)  # longer than the 30-residue windows
    test = write_csv(tmp_path / "test.csv", test_rows)
    config = tmp_path / "ss.yaml"
    config.write_text(
        "task: {type: residues}\n"
        f"model: {{path: {char_checkpoint}}}\n"
        f"data: {{train: {train}, dev: {dev}, test: {test}, text_column: input, label_column: dssp3, "
        "mask_column: resolved_mask, max_length: 32}\n"
        "train: {epochs: 6, batch_size: 16, lr: 3.0e-3, progress: false, seed: 1, num_threads: 1}\n"
        f"output_dir: {tmp_path / 'runs'}\n"
    )
    assert main(["train", str(config)]) == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    assert results["test"]["q3"] > 0.9, results["test"]  # a constant guess gets ~0.4
    assert results["test"]["residues"]["masked"] == sum(r[3].count("0") for r in test_rows)

    fasta = tmp_path / "query.fasta"
    fasta.write_text("".join(f">{r[0]} some description\n{r[1][:30]}\n{r[1][30:]}\n" for r in test_rows))
    out = tmp_path / "pred.jsonl"
    assert main(["predict", str(run_dir / "model"), str(fasta), "--output", str(out)]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(p["id"], p["sequence"]) for p in records] == [(r[0], r[1]) for r in test_rows]
    assert all(len(p["label_string"]) == len(p["sequence"]) == len(p["labels"]) for p in records)

    capsys.readouterr()
    assert main(["evaluate", str(run_dir / "model"), str(test)]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["q3"] == pytest.approx(results["test"]["q3"])

    from seqtune import load

    (api,) = load(run_dir / "model", device="cpu").predict([test_rows[0][1]])
    assert api["label_string"] == records[0]["label_string"] and "id" not in api


def test_cli_rejects_the_issue_example(char_checkpoint, tmp_path, capsys):
    train = tmp_path / "train.csv"
    train.write_text("sequence,labels\nMKV,012\nDFASDGFTHGFDDFSDASFDASF , 00000001111111100000000022222\n")
    config = tmp_path / "c.yaml"
    config.write_text(f"task: {{type: residues}}\nmodel: {{path: {char_checkpoint}}}\n"
                      f"data: {{train: {train}, text_column: sequence, label_column: labels}}\n"
                      f"output_dir: {tmp_path / 'runs'}\n")
    assert main(["train", str(config)]) == 2
    err = capsys.readouterr().err
    assert f"{train}:3 (record 2)" in err and "23 residues" in err and "29 labels" in err
