"""The MLM task: encode/collate/masking per epoch, held-out masks fixed, metrics, HF round trip."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from seqtune.config import DataConfig
from seqtune.data.corpus import Corpus, CorpusRecord
from seqtune.errors import SeqtuneError
from seqtune.models.presets import ArchitectureSpec, encoder_config, write_initial_model
from seqtune.models.encoder import check_positions
from seqtune.inference import fill_mask, load_masked_lm, load_trained_model
from seqtune.models.task_model import model_for_finetuning, save_model
from seqtune.tasks.mlm import MaskedLMOptions, MaskedLMTask
from seqtune.vocab_builder import build_char_tokenizer, build_wordpiece_tokenizer

AMINO = "ACDEFGHIKLMNPQRSTVWY"


def corpus(n=40, seed=0, lo=10, hi=60):
    rng = np.random.default_rng(seed)
    records = ["".join(rng.choice(list(AMINO), size=rng.integers(lo, hi))) for _ in range(n)]
    return Corpus([CorpusRecord(r, f"c.fa record {i + 1}") for i, r in enumerate(records)], "c.fa")


@pytest.fixture
def char_task():
    tok = build_char_tokenizer(alphabet="protein")
    return MaskedLMTask(MaskedLMOptions(mask_seed=3), DataConfig(max_length=32), tok)


def test_training_masks_change_each_epoch_and_repeat_with_the_seed(char_task):
    ds = char_task.encode(corpus(), "train")
    feats = ds.features[:8]
    first, second = char_task.collate(feats), char_task.collate(feats)
    assert not torch.equal(first["mlm_positions"], second["mlm_positions"])
    again = MaskedLMTask(MaskedLMOptions(mask_seed=3), char_task.data, char_task.tokenizer)
    assert torch.equal(again.collate(feats)["input_ids"], first["input_ids"])
    # labels are the original tokens at the masked positions; specials are never masked
    plain = torch.nn.utils.rnn.pad_sequence([torch.tensor(f["input_ids"]) for f in feats], batch_first=True)
    assert torch.equal(first["mlm_labels"], plain[first["mlm_positions"]])
    assert not first["mlm_positions"][:, 0].any()
    assert all(len(f["input_ids"]) <= 32 for f in ds.features)


def test_held_out_masks_are_fixed_at_encoding_and_independent_of_batching(char_task):
    ds = char_task.encode(corpus(seed=1), "dev")
    a = char_task.collate(ds.features[:6])
    b = char_task.collate(ds.features[:6])
    assert torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(a["mlm_labels"], b["mlm_labels"])
    single = char_task.collate(ds.features[2:3])
    n = len(ds.features[2]["input_ids"])
    assert torch.equal(single["input_ids"][0, :n], a["input_ids"][2, :n])
    again = char_task.encode(corpus(seed=1), "dev")
    assert [f["mlm_positions"] for f in again.features] == [f["mlm_positions"] for f in ds.features]


def test_whole_word_masking_for_wordpiece_text():
    words = "alpha beta gamma delta epsilon helices strands unfolding refolding".split()
    rng = np.random.default_rng(0)
    lines = [" ".join(rng.choice(words, size=12)) for _ in range(60)]
    tok = build_wordpiece_tokenizer(lines[:20], vocab_size=40, lowercase=True)
    task = MaskedLMTask(MaskedLMOptions(), DataConfig(max_length=64), tok)
    ds = task.encode(Corpus([CorpusRecord(t, f"l{i}") for i, t in enumerate(lines)], "t.txt"), "train")
    batch = task.collate(ds.features)
    word_ids = torch.nn.utils.rnn.pad_sequence([torch.tensor(f["word_ids"]) for f in ds.features],
                                               batch_first=True, padding_value=-1)
    for row in range(len(ds.features)):
        for w in word_ids[row].unique().tolist():
            if w < 0:
                continue
            chosen = batch["mlm_positions"][row][word_ids[row] == w]
            assert bool(chosen.all()) or not bool(chosen.any())


def test_metrics_from_split_outputs(char_task):
    ds = char_task.encode(corpus(n=6), "dev")
    batch = char_task.collate(ds.features)
    labels = batch["mlm_labels"]
    V = char_task.tokenizer.vocab_size
    logits = torch.full((len(labels), V), -5.0)
    logits[torch.arange(len(labels)), labels] = 5.0  # every prediction right
    logits[0] = 0.0  # ... except the first: uniform
    outputs = char_task.split_outputs(logits, batch)
    assert [len(o) for o in outputs] == batch["mlm_positions"].sum(1).tolist()
    m = char_task.metrics(outputs, ds)
    assert set(char_task.metric_names()) == {k for k, v in m.items() if isinstance(v, (int, float))}
    assert m["masked_tokens"] == len(labels)
    assert m["accuracy"] == pytest.approx((len(labels) - 1) / len(labels))
    expected = (math.log(V) + (len(labels) - 1) * torch.log_softmax(logits[1], -1).max().neg().item()) / len(labels)
    assert m["loss"] == pytest.approx(expected, rel=1e-5)
    assert m["perplexity"] == pytest.approx(math.exp(m["loss"]))
    preds = char_task.predictions(outputs, ds)
    assert [p["index"] for p in preds] == list(range(6))


def test_max_length_beyond_positions_is_an_error(char_task):
    cfg = encoder_config(ArchitectureSpec(layers=1, hidden=32, heads=2, max_positions=16), 30)
    with pytest.raises(SeqtuneError, match="max_length 32 is larger than the model's max_position_embeddings 16"):
        check_positions(char_task.data.max_length, cfg.max_position_embeddings)


def small_model_dir(tmp_path, tok):
    cfg = encoder_config(ArchitectureSpec(layers=2, hidden=32, heads=4, intermediate=64, max_positions=64),
                         tok.vocab_size)
    return write_initial_model(tmp_path / "init", cfg, tok, seed=0)


def test_saved_model_gives_identical_mlm_logits_in_transformers(tmp_path, char_task):
    transformers = pytest.importorskip("transformers")
    init = small_model_dir(tmp_path, char_task.tokenizer)
    model, report = model_for_finetuning(str(init), char_task)
    assert not any("newly initialised" in line for line in report)  # the MLM head was loaded
    with torch.no_grad():  # make every weight non-trivial, the head's included
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    out = save_model(tmp_path / "saved", model, char_task, char_task.tokenizer)
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["BertForMaskedLM"]
    hf = transformers.BertForMaskedLM.from_pretrained(out).eval()
    model.eval()
    ds = char_task.encode(corpus(n=5, seed=4), "dev")
    batch = char_task.collate(ds.features)
    with torch.no_grad():
        ours = model({"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]})
        theirs = hf(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        gathered = model(batch)
    real = batch["attention_mask"].bool()
    torch.testing.assert_close(ours[real], theirs[real], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(gathered, theirs[batch["mlm_positions"]], rtol=1e-4, atol=1e-4)
    # transformers' tokenizer from the saved directory gives the same ids
    hf_tok = transformers.AutoTokenizer.from_pretrained(out)
    assert hf_tok("MKT[MASK]W")["input_ids"] == char_task.tokenizer.backend.encode("MKT[MASK]W").ids
    # and seqtune reloads it strictly, tied
    _, again = load_trained_model(out)
    assert again.head.decoder_weight is again.encoder.embeddings.word.weight
    with torch.no_grad():
        torch.testing.assert_close(again(batch), gathered)


def test_fill_mask_predicts_each_mask(tmp_path, char_task):
    init = small_model_dir(tmp_path, char_task.tokenizer)
    model, tok = load_masked_lm(str(init), "cpu")
    slots = fill_mask(model, tok, ["MK[MASK]AY[MASK]", "GG[MASK]"], top_k=3)
    assert [[s["position"] for s in t] for t in slots] == [[3, 6], [3]]
    probs = [p["probability"] for p in slots[0][0]["predictions"]]
    assert len(probs) == 3 and probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1
    with pytest.raises(SeqtuneError, match="no \\[MASK\\]"):
        fill_mask(model, tok, ["MKT"])


def test_fill_mask_leaves_out_embedding_rows_past_the_tokenizer(tmp_path, char_task):
    # A model whose vocabulary is padded past the tokenizer's (e.g. to a multiple of 8): before session 6
    # those rows were ranked too and printed as token None.
    tok = char_task.tokenizer
    cfg = encoder_config(ArchitectureSpec(layers=1, hidden=32, heads=2, intermediate=64, max_positions=64),
                         tok.vocab_size + 5)
    init = write_initial_model(tmp_path / "padded", cfg, tok, seed=0)
    model, loaded = load_masked_lm(str(init), "cpu")
    predictions = fill_mask(model, loaded, ["MK[MASK]AY"], top_k=tok.vocab_size + 5)[0][0]["predictions"]
    assert len(predictions) == tok.vocab_size
    assert all(p["token"] is not None and p["id"] < tok.vocab_size for p in predictions)
    assert sum(p["probability"] for p in predictions) == pytest.approx(1.0, abs=1e-4)


def test_fill_mask_refuses_a_checkpoint_without_mlm_head(tiny_checkpoint):
    with pytest.raises(SeqtuneError, match="no MLM head"):
        load_masked_lm(str(tiny_checkpoint), "cpu")
