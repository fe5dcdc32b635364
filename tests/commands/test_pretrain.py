"""End to end through the CLI: pretrain from scratch, reload in transformers, continue pretraining,
fine-tune from the result; and the bad-input cases of pretraining."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from seqtune.cli import main
from seqtune.demo_data import write_demo_data
from seqtune.models.checkpoint import read_weights

FAST = ["train.progress=false", "train.num_threads=1", "train.batch_size=16", "train.lr=2e-3"]


def sets(*items):
    return [x for item in items for x in ("--set", item)]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return write_demo_data(tmp_path_factory.mktemp("demo"), seed=1, n_unlabelled=120, n_train=24,
                           n_dev=12, n_test=12, min_length=20, max_length=70)


@pytest.fixture(scope="module")
def pretrained(demo, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    code = main(["pretrain", *sets(f"data.train={demo['unlabelled']}", f"data.dev={demo['dev']}",
                                   "data.text_column=sequence", "data.max_length=48",
                                   "model.vocab.alphabet=ACDEFGHIKLMNPQRSTVWY",
                                   "model.architecture.layers=1", "model.architecture.hidden=32",
                                   "model.architecture.heads=2", "model.architecture.max_positions=64",
                                   "train.epochs=2", f"output_dir={out}", "name=mlm", *FAST)])
    assert code == 0
    runs = sorted(p for p in out.iterdir() if p.name.startswith("mlm-") and "init" not in p.name)
    return runs[-1]


def test_pretrain_from_scratch_writes_a_bert_for_masked_lm(pretrained):
    transformers = pytest.importorskip("transformers")
    results = json.loads((pretrained / "results.json").read_text())
    assert results["dev"]["masked_tokens"] > 0 and results["dev"]["loss"] > 0
    metrics = [json.loads(line) for line in (pretrained / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == 2 and metrics[-1]["train_loss"] < metrics[0]["train_loss"] + 0.5
    model_dir = pretrained / "model"
    hf = transformers.BertForMaskedLM.from_pretrained(model_dir).eval()
    tok = transformers.AutoTokenizer.from_pretrained(model_dir)
    ids = torch.tensor([tok("ACDEF[MASK]GHIK")["input_ids"]])
    from seqtune.inference import load_masked_lm

    ours, _ = load_masked_lm(str(model_dir), "cpu")
    with torch.no_grad():
        torch.testing.assert_close(ours({"input_ids": ids, "attention_mask": torch.ones_like(ids)}),
                                   hf(input_ids=ids).logits, rtol=1e-4, atol=1e-4)


def test_pretrain_an_esm_shaped_model_from_scratch(demo, tmp_path, capsys, caplog):
    """model.architecture.family esm: an EsmForMaskedLM with ESM's special tokens that transformers
    loads with the same logits and token ids, and that fine-tunes and fills masks."""
    transformers = pytest.importorskip("transformers")
    code = main(["pretrain", *sets(f"data.train={demo['unlabelled']}", f"data.dev={demo['dev']}",
                                   "data.text_column=sequence", "data.max_length=48",
                                   "model.vocab.alphabet=ACDEFGHIKLMNPQRSTVWY", "model.architecture.family=esm",
                                   "model.architecture.layers=1", "model.architecture.hidden=32",
                                   "model.architecture.heads=2", "model.architecture.max_positions=64",
                                   "train.epochs=1", f"output_dir={tmp_path}", "name=esm", *FAST)])
    assert code == 0
    assert "encoder ESM shape (rotary positions, pre-LayerNorm)" in caplog.text
    model_dir = next(p for p in tmp_path.glob("esm-*") if "init" not in p.name) / "model"
    config = json.loads((model_dir / "config.json").read_text())
    assert config["architectures"] == ["EsmForMaskedLM"] and config["position_embedding_type"] == "rotary"
    assert config["pad_token_id"] == 1 and config["mask_token_id"] == 24 and "type_vocab_size" not in config
    weights = read_weights(model_dir)
    assert "lm_head.dense.weight" in weights and "esm.encoder.emb_layer_norm_after.weight" in weights
    assert not any("position_embeddings" in k or "token_type" in k for k in weights)

    hf = transformers.EsmForMaskedLM.from_pretrained(model_dir).eval()
    text = "ACDEF<mask>GHIKW"
    ids = torch.tensor([transformers.AutoTokenizer.from_pretrained(model_dir)(text)["input_ids"]])
    from seqtune.inference import load_masked_lm
    from seqtune.tokenization import load_tokenizer

    tokenizer = load_tokenizer(model_dir)
    assert ids[0].tolist() == tokenizer.encode_batch([text])[0].ids and ids[0, 0] == 0 and ids[0, -1] == 2
    ours, _ = load_masked_lm(str(model_dir), "cpu")
    with torch.no_grad():
        torch.testing.assert_close(ours({"input_ids": ids, "attention_mask": torch.ones_like(ids)}),
                                   hf(input_ids=ids).logits, rtol=1e-4, atol=1e-4)
    assert main(["fill-mask", str(model_dir), "ACD<mask>FG", "--top-k", "2"]) == 0
    assert "<mask> at token 4:" in capsys.readouterr().out
    code = main(["train", *sets("task.type=residues", f"model.path={model_dir}", f"data.train={demo['train']}",
                                f"data.dev={demo['dev']}", "data.text_column=sequence", "data.label_column=labels",
                                "data.max_length=48", "train.epochs=1", f"output_dir={tmp_path / 'ft'}", *FAST)])
    assert code == 0


def test_fill_mask_command(pretrained, capsys):
    assert main(["fill-mask", str(pretrained / "model"), "ACD[MASK]FG", "--top-k", "2"]) == 0
    out = capsys.readouterr().out
    assert "[MASK] at token 4:" in out and len(out.splitlines()[1].split()) == 8


def test_continued_pretraining_reuses_the_mlm_head(pretrained, demo, tmp_path, capsys):
    model_dir = pretrained / "model"
    code = main(["pretrain", *sets(f"model.path={model_dir}", f"data.train={demo['train']}",
                                   "data.text_column=sequence", "data.max_length=48", "train.epochs=1",
                                   f"output_dir={tmp_path}", "name=dapt", *FAST)])
    assert code == 0
    log = next(tmp_path.glob("dapt-*/log.txt")).read_text()
    assert "newly initialised" not in log  # encoder and cls.predictions.* came from the checkpoint
    before, after = read_weights(model_dir), read_weights(next(tmp_path.glob("dapt-*/model")))
    assert set(before) == set(after)
    assert not torch.equal(before["cls.predictions.bias"], after["cls.predictions.bias"])


def test_fine_tuning_from_the_pretrained_model(pretrained, demo, tmp_path):
    code = main(["train", *sets("task.type=residues", f"model.path={pretrained / 'model'}",
                                f"data.train={demo['train']}", f"data.dev={demo['dev']}",
                                "data.text_column=sequence", "data.label_column=labels",
                                "data.max_length=48", "train.epochs=1", f"output_dir={tmp_path}", *FAST)])
    assert code == 0
    results = json.loads(next(tmp_path.glob("*/results.json")).read_text())
    assert 0.0 <= results["dev"]["accuracy"] <= 1.0


def test_continuing_with_a_different_vocabulary_is_an_error(pretrained, demo, tmp_path, capsys):
    code = main(["pretrain", *sets(f"model.path={pretrained / 'model'}", f"data.train={demo['train']}",
                                   "data.text_column=sequence", "model.vocab.alphabet=protein",
                                   "data.max_length=48", f"output_dir={tmp_path}")])
    assert code == 2
    err = capsys.readouterr().err
    assert "differs from the" in err and "keeps the checkpoint's vocabulary" in err and "new tokens: B O U X Z" in err


def test_max_length_beyond_the_checkpoint_positions_is_an_error(pretrained, demo, tmp_path, capsys):
    code = main(["pretrain", *sets(f"model.path={pretrained / 'model'}", f"data.train={demo['train']}",
                                   "data.text_column=sequence", "data.max_length=100", f"output_dir={tmp_path}")])
    assert code == 2
    assert "max_length 100 is larger than the model's max_position_embeddings 64" in capsys.readouterr().err


def test_from_scratch_bad_inputs(tmp_path, capsys):
    corpus = tmp_path / "c.fasta"
    corpus.write_text(">a\nACGT\n>b\nACGUT\n")
    base = [f"data.train={corpus}", f"output_dir={tmp_path}"]
    assert main(["pretrain", *sets(*base, "model.vocab.alphabet=dna")]) == 2
    assert "record 2 (>b, line 3): characters 'U' are not in the alphabet" in capsys.readouterr().err
    assert main(["pretrain", *sets(*base, "model.vocab.vocab_size=6")]) == 2
    assert "vocab_size 6 is smaller than the 10 tokens needed" in capsys.readouterr().err
    assert main(["pretrain", *sets(*base, "model.architecture.max_positions=64", "data.max_length=128")]) == 2
    assert "max_length 128 is larger than model.architecture.max_positions 64" in capsys.readouterr().err
    (tmp_path / "empty.fasta").write_text("")
    assert main(["pretrain", *sets(f"data.train={tmp_path / 'empty.fasta'}", f"output_dir={tmp_path}")]) == 2
    assert "empty" in capsys.readouterr().err
    assert main(["pretrain", *sets(*base, "task.type=classification")]) == 2
    assert "task.type mlm" in capsys.readouterr().err
    assert main(["pretrain", *sets(*base, "model.architecture.family=esm", "model.vocab.kmer=3")]) == 2
    assert "family esm reads one token per residue" in capsys.readouterr().err
    assert main(["pretrain", *sets(*base, "model.architecture.family=roberta")]) == 2
    assert "model.architecture.family" in capsys.readouterr().err
    assert not list(tmp_path.glob("*-init-*"))  # refused before a model was written


def test_init_only_writes_the_random_baseline(tmp_path, capsys):
    corpus = tmp_path / "c.txt"
    corpus.write_text("ACGT\nGGCA\n")
    assert main(["pretrain", "--init-only", *sets(f"data.train={corpus}", f"output_dir={tmp_path}",
                                                    "data.max_length=32")]) == 0
    init = Path(capsys.readouterr().out.strip())
    assert (init / "config.json").is_file() and (init / "tokenizer.json").is_file()
    assert json.loads((init / "config.json").read_text())["vocab_size"] == 5 + 4


def test_python_api_loads_the_pretrained_model(pretrained, demo):
    import seqtune

    model = seqtune.load(pretrained / "model", device="cpu")
    records = model.predict(["ACDEFGHIKLMNPQ", "WYWYWYWYACDE"])
    assert [r["index"] for r in records] == [0, 1] and all(r["masked_tokens"] >= 1 for r in records)
    metrics = model.evaluate(str(demo["test"]))
    assert metrics["masked_tokens"] > 0 and 0 <= metrics["accuracy"] <= 1
