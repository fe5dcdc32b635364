"""ESM-2 on the native encoder, against transformers: hidden states (padded and packed, with and
without <mask> tokens, whose token-dropout scaling differs), EsmTokenizer's ids from vocab.txt, one
token per residue, sequence- and token-classification heads saved by seqtune and loaded by
EsmFor..., and short `seqtune train` runs (residues and classification)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from seqtune.cli import main
from seqtune.config import ClassificationOptions, DataConfig, QuestionAnsweringOptions
from seqtune.data.readers.sequences import LabelledSequence
from seqtune.inference import load_trained_model
from seqtune.models.checkpoint import (
    encoder_config_from_dir,
    load_encoder_state,
    read_weights,
    split_checkpoint,
)
from seqtune.models.encoder import PACK_BELOW_FILL, Encoder
from seqtune.models.task_model import model_for_finetuning, save_model
from seqtune.tasks.base import collate_inputs
from seqtune.tasks.classification import ClassificationTask
from seqtune.tasks.qa import QuestionAnsweringTask
from seqtune.tasks.residues import ResidueOptions, ResidueTask
from seqtune.tasks.sequence import TextExample
from seqtune.tokenization import load_tokenizer

transformers = pytest.importorskip("transformers")

# facebook/esm2_t6_8M_UR50D's vocab.txt
ESM_VOCAB = ["<cls>", "<pad>", "<eos>", "<unk>", "L", "A", "G", "V", "S", "E", "R", "T", "I", "D", "P", "K", "Q",
             "N", "F", "Y", "M", "H", "W", "C", "X", "B", "U", "Z", "O", ".", "-", "<null_1>", "<mask>"]
MAX_TOKENS = 64
HELIX, STRAND = set("AELMQKRH"), set("VIYFWT")


def write_checkpoint(directory: Path) -> Path:
    """A tiny random ESM-2 (rotary positions, token dropout) saved by transformers, with EsmTokenizer's files."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.txt").write_text("\n".join(ESM_VOCAB) + "\n")
    transformers.EsmTokenizer(str(directory / "vocab.txt")).save_pretrained(directory)
    config = transformers.EsmConfig(
        vocab_size=len(ESM_VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=MAX_TOKENS + 2, position_embedding_type="rotary", token_dropout=True,
        emb_layer_norm_before=False, mask_token_id=ESM_VOCAB.index("<mask>"), pad_token_id=1,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, layer_norm_eps=1e-5, vocab_list=ESM_VOCAB)
    torch.manual_seed(0)
    model = transformers.EsmModel(config, add_pooling_layer=False)
    with torch.no_grad():  # LayerNorms away from 1/0, so that a wrong mapping shows
        for name, p in model.named_parameters():
            if "LayerNorm" in name or "layer_norm" in name:
                p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def esm_dir(tmp_path_factory) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp("esm"))


def hf_model(directory: Path, auto_class=None):
    return (auto_class or transformers.AutoModel).from_pretrained(directory).eval()


def seqtune_encoder(directory: Path) -> Encoder:
    cfg = encoder_config_from_dir(directory)
    encoder = Encoder(cfg, add_pooler=False)
    load_encoder_state(encoder, split_checkpoint(read_weights(directory), cfg.family.prefix, cfg.model_type),
                       str(directory))
    return encoder.eval()


@pytest.mark.parametrize("layout", ["padded", "mostly_padding"])
@pytest.mark.parametrize("masked", [False, True])
def test_hidden_states_match_transformers(esm_dir, layout, masked):
    tokenizer = load_tokenizer(esm_dir)
    base = "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQ"
    seqs = ([base, base[:-2], base[:-5], base + "A"] if layout == "padded" else [base, "M", "K", "MA", "W", "C"])
    long = sum(len(s) > 4 for s in seqs)
    if masked:  # <mask> tokens: zeroed embeddings, the rest scaled by the observed mask ratio
        seqs = [s[:3] + "<mask>" + s[4:] if len(s) > 4 else s for s in seqs]
    batch = collate_inputs([{"input_ids": e.ids} for e in tokenizer.encode_batch(seqs)], tokenizer.pad_id)
    mask = batch["attention_mask"]
    assert int((batch["input_ids"] == tokenizer.mask_id).sum()) == long * masked
    assert (int(mask.sum()) < PACK_BELOW_FILL * mask.numel()) == (layout == "mostly_padding")
    with torch.no_grad():
        ours = seqtune_encoder(esm_dir)(batch["input_ids"], mask)
        theirs = hf_model(esm_dir)(input_ids=batch["input_ids"], attention_mask=mask).last_hidden_state
    real = mask.bool()
    assert torch.allclose(ours[real], theirs[real], atol=1e-4), (ours[real] - theirs[real]).abs().max()


@pytest.mark.parametrize("masked", [False, True])
def test_hidden_states_match_transformers_attending_per_sequence(esm_dir, masked, monkeypatch):
    """The packed batch again, with attention one sequence at a time (rotary positions per sequence)."""
    import seqtune.models.encoder as encoder_module

    monkeypatch.setattr(encoder_module, "ATTENTION_CALL_COST", 0)  # a group per distinct length
    monkeypatch.setattr(encoder_module, "ATTENTION_ROW_COST", 0)
    test_hidden_states_match_transformers(esm_dir, "mostly_padding", masked)


def test_token_ids_match_esm_tokenizer(esm_dir):
    ours = load_tokenizer(esm_dir)
    theirs = transformers.AutoTokenizer.from_pretrained(esm_dir)
    assert ours.kind == "esm" and (ours.cls_id, ours.sep_id, ours.pad_id, ours.unk_id, ours.mask_id) == (0, 2, 1, 3, 32)
    awkward = ["MKTAYIAKQR", "MKT<mask>AY", "M K T", "mkTAY", "MKJJT", "MK-.X", "<cls>MK", "ÄMK", "M\tK"]
    for text in awkward:
        assert ours.encode_batch([text])[0].ids == theirs(text)["input_ids"], text
        assert ours.encode_batch([text], ["MKV"])[0].ids == theirs(text, "MKV")["input_ids"], text


def test_one_token_per_residue_and_case_folded(esm_dir):
    tokenizer = load_tokenizer(esm_dir)
    task = ResidueTask(ResidueOptions(type="residues"), DataConfig(max_length=MAX_TOKENS), tokenizer)
    seqs = ["MKTAYIAKQR", "mktayiakqr", "MKXBUZO"]
    task.fit([LabelledSequence(s, ["C"] * len(s), None, "p", "t") for s in seqs])
    dataset = task.encode([LabelledSequence(s, ["C"] * len(s), None, "p", "t") for s in seqs], "dev")
    theirs = transformers.AutoTokenizer.from_pretrained(esm_dir)
    for seq, feature in zip(seqs, dataset.features):
        assert feature["input_ids"] == theirs(seq.upper())["input_ids"]
        assert len(feature["input_ids"]) == len(seq) + 2
    assert not dataset.unknown


def _randomise_head(model) -> None:
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.head.parameters():
            p.normal_(0, 0.5)


def _saved_logits(directory: Path, examples):
    task, model = load_trained_model(directory)
    batch = task.collate(task.encode(examples, "predict").features)
    with torch.no_grad():
        return model(batch), batch


def test_sequence_classifier_saved_by_seqtune_loads_in_transformers(esm_dir, tmp_path):
    tokenizer = load_tokenizer(esm_dir)
    task = ClassificationTask(ClassificationOptions(type="classification"), DataConfig(max_length=MAX_TOKENS),
                              tokenizer)
    task.fit([TextExample(t, None, None, "t", label) for t, label in zip(["MK", "AY", "QR"], "012")])
    model, report = model_for_finetuning(str(esm_dir), task)
    assert any("not used" in line and "contact_head.regression" in line for line in report)
    _randomise_head(model)
    save_model(tmp_path / "saved", model, task, tokenizer)
    assert json.loads((tmp_path / "saved" / "config.json").read_text())["architectures"] == \
        ["EsmForSequenceClassification"]
    assert not (tmp_path / "saved" / "tokenizer.json").exists()
    ours, batch = _saved_logits(tmp_path / "saved", task.examples_from_inputs(
        ["MKTAYIAKQRQISFVK", "mkXay", "W"]))
    theirs = hf_model(tmp_path / "saved", transformers.AutoModelForSequenceClassification)(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert torch.allclose(ours, theirs, atol=1e-4), (ours - theirs).abs().max()
    reloaded = transformers.AutoTokenizer.from_pretrained(tmp_path / "saved")  # letters folded to upper case first
    assert reloaded("MKXAY")["input_ids"] == batch["input_ids"][1, :7].tolist()


def test_token_classifier_saved_by_seqtune_loads_in_transformers(esm_dir, tmp_path):
    tokenizer = load_tokenizer(esm_dir)
    task = ResidueTask(ResidueOptions(type="residues"), DataConfig(max_length=MAX_TOKENS), tokenizer)
    records = [LabelledSequence(s, list(lab), None, "p", "t") for s, lab in
               [("MKTAYIAKQR", "CHHHHHEECC"), ("VIYF", "EEEE")]]
    task.fit(records)
    model, _ = model_for_finetuning(str(esm_dir), task)
    _randomise_head(model)
    save_model(tmp_path / "saved", model, task, tokenizer)
    assert json.loads((tmp_path / "saved" / "config.json").read_text())["architectures"] == \
        ["EsmForTokenClassification"]
    ours, batch = _saved_logits(tmp_path / "saved", records)
    theirs = hf_model(tmp_path / "saved", transformers.AutoModelForTokenClassification)(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    real = batch["attention_mask"].bool()
    assert torch.allclose(ours[real], theirs[real], atol=1e-4), (ours[real] - theirs[real]).abs().max()


def test_qa_refuses_esm_clearly(esm_dir):
    from seqtune.errors import SeqtuneError

    task = QuestionAnsweringTask(QuestionAnsweringOptions(type="qa"), DataConfig(max_length=MAX_TOKENS),
                                 load_tokenizer(esm_dir))
    with pytest.raises(SeqtuneError, match="the qa task supports checkpoints of model_type .* not 'esm'"):
        task.check_model_type("esm")


def test_residues_and_classification_train_through_the_cli(esm_dir, tmp_path):
    rng = random.Random(0)
    protein = "ACDEFGHIKLMNPQRSTVWY"
    rows = []
    for i in range(100):
        seq = "".join(rng.choice(protein) for _ in range(rng.randint(5, 40)))
        rows.append((f"p{i}", seq, "".join("H" if c in HELIX else "E" if c in STRAND else "C" for c in seq)))
    train = tmp_path / "ss.csv"
    train.write_text("id,input,dssp3\n" + "".join(",".join(r) + "\n" for r in rows))
    sets = [f"model.path={esm_dir}", f"data.train={train}", f"data.dev={train}", "task.type=residues",
            "data.text_column=input", "data.label_column=dssp3", "train.epochs=6", "train.batch_size=16",
            "train.lr=3e-3", "train.progress=false", "train.num_threads=1", f"output_dir={tmp_path / 'res'}"]
    assert main(["train", *(x for s in sets for x in ("--set", s))]) == 0
    (run,) = (tmp_path / "res").iterdir()
    assert json.loads((run / "results.json").read_text())["dev"]["q3"] > 0.8

    labelled = tmp_path / "cls.tsv"  # the label: does the sequence hold a W?
    labelled.write_text("sequence\tlabel\n" + "".join(f"{r[1]}\t{int('W' in r[1])}\n" for r in rows))
    sets = [f"model.path={esm_dir}", f"data.train={labelled}", f"data.dev={labelled}", "task.type=classification",
            "data.text_column=sequence", "train.epochs=2", "train.batch_size=16", "train.progress=false",
            "train.num_threads=1", f"output_dir={tmp_path / 'cls'}",
            # a strategy: frozen, cached bottom layer; the final LayerNorm trains with the head
            "strategy.freeze_layers=1", "strategy.cache_frozen=true", "strategy.layer_lr_decay=0.9"]
    assert main(["train", *(x for s in sets for x in ("--set", s))]) == 0
    (run,) = (tmp_path / "cls").iterdir()
    results = json.loads((run / "results.json").read_text())
    assert results["parameters"]["layer.0"]["frozen"] > 0 and results["parameters"]["head"]["trainable"] > 0
    assert json.loads((run / "model" / "config.json").read_text())["architectures"] == \
        ["EsmForSequenceClassification"]
