"""Masked-language modelling for RoBERTa, XLM-R, DistilBERT and ESM: the checkpoint's MLM head is
read under the family's key names, gives transformers' *ForMaskedLM logits, is saved so that
transformers loads it back, fill-mask finds the family's mask token, and ELECTRA is refused clearly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import test_distilbert_electra as wordpiece_families
import test_esm_family as esm_family
import test_roberta_family as roberta_family
import torch

from seqtune.cli import main
from seqtune.config import DataConfig, MaskedLMOptions
from seqtune.errors import SeqtuneError
from seqtune.inference import fill_mask, load_masked_lm, load_trained_model
from seqtune.models.task_model import model_for_finetuning, save_model
from seqtune.tasks.base import collate_inputs
from seqtune.tasks.mlm import MaskedLMTask
from seqtune.tokenization import load_tokenizer

transformers = pytest.importorskip("transformers")

TEXTS = {"roberta": ["The café served <mask> brûlée", "Peter <mask> visited 東京"],
         "xlm-roberta": ["The café served <mask> brûlée", "Peter <mask> visited 東京"],
         "distilbert": ["the café served [MASK] brûlée", "peter [MASK] visited 東京"],
         "esm": ["MKT<mask>YIAKQR", "M<mask>"]}
HEAD_PREFIX = {"roberta": "lm_head.", "xlm-roberta": "lm_head.", "distilbert": "vocab_", "esm": "lm_head."}


def write_mlm_checkpoint(directory: Path, family: str) -> Path:
    """A tiny random <Family>ForMaskedLM saved by transformers (encoder and head), with its tokenizer."""
    if family in ("roberta", "xlm-roberta"):
        base = roberta_family.write_checkpoint(directory / "base", family)
    elif family == "distilbert":
        base = wordpiece_families.write_checkpoint(directory / "base", family)
    else:
        base = esm_family.write_checkpoint(directory / "base")
    config = transformers.AutoConfig.from_pretrained(base)
    torch.manual_seed(2)
    model = transformers.AutoModelForMaskedLM.from_config(config)
    with torch.no_grad():  # a head whose LayerNorm and bias matter
        for name, p in model.named_parameters():
            if "norm" in name.lower() or name.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.1)
    out = directory / "mlm"
    model.save_pretrained(out)
    for f in base.iterdir():
        if f.name not in ("config.json", "model.safetensors"):
            shutil.copy(f, out / f.name)
    return out


@pytest.fixture(scope="module", params=["roberta", "xlm-roberta", "distilbert", "esm"])
def mlm_dir(request, tmp_path_factory) -> tuple[str, Path]:
    return request.param, write_mlm_checkpoint(tmp_path_factory.mktemp(request.param), request.param)


def _logits(model, batch):
    with torch.no_grad():
        return model(batch)


def test_mlm_head_gives_transformers_logits_and_round_trips(mlm_dir, tmp_path):
    family, directory = mlm_dir
    tokenizer = load_tokenizer(directory)
    task = MaskedLMTask(MaskedLMOptions(), DataConfig(max_length=32), tokenizer)
    model, report = model_for_finetuning(str(directory), task)
    assert not any("head: newly initialised" in line for line in report), report
    texts = TEXTS[family]
    tokenizer.backend.add_special_tokens([tokenizer.special["mask"]])  # "[MASK]" in text as one token, as fill_mask
    encoded = tokenizer.encode_batch(texts)
    batch = collate_inputs([{"input_ids": e.ids} for e in encoded], tokenizer.pad_id)
    assert int((batch["input_ids"] == tokenizer.mask_id).sum()) == 2
    real = batch["attention_mask"].bool()
    theirs = transformers.AutoModelForMaskedLM.from_pretrained(directory).eval()(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    ours = _logits(model.eval(), batch)
    assert torch.allclose(ours[real], theirs[real], atol=1e-4), (ours[real] - theirs[real]).abs().max()
    # fill-mask finds the family's mask token and ranks as transformers does
    filled = fill_mask(*load_masked_lm(str(directory), device="cpu"), texts, top_k=3)
    positions = (batch["input_ids"] == tokenizer.mask_id).nonzero().tolist()
    for (row, col), entries in zip(positions, [e for per_text in filled for e in per_text]):
        assert entries["position"] == col
        assert [p["id"] for p in entries["predictions"]] == theirs[row, col].topk(3).indices.tolist()
    # saved by seqtune: transformers loads encoder and head under the family's names
    save_model(tmp_path / "saved", model, task, tokenizer)
    config = json.loads((tmp_path / "saved" / "config.json").read_text())
    assert config["architectures"] == [transformers.AutoConfig.from_pretrained(directory).architectures[0]]
    reloaded = transformers.AutoModelForMaskedLM.from_pretrained(tmp_path / "saved").eval()(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert torch.allclose(ours[real], reloaded[real], atol=1e-4)
    _, again = load_trained_model(tmp_path / "saved")
    assert any(k.startswith(HEAD_PREFIX[family]) for k in again.head.state_dict())


def test_pretrain_runs_through_the_cli(mlm_dir, tmp_path):
    family, directory = mlm_dir
    corpus = tmp_path / "corpus.txt"
    lines = (esm_family.ESM_VOCAB[4:24] if family == "esm" else roberta_family.CORPUS[:6])
    corpus.write_text("\n".join("".join(lines[i:] + lines[:i]) if family == "esm" else line
                                for i, line in enumerate(lines)) + "\n")
    sets = [f"model.path={directory}", f"data.train={corpus}", "train.epochs=1", "train.batch_size=4",
            "train.progress=false", "train.num_threads=1", "data.max_length=32", f"output_dir={tmp_path / 'runs'}"]
    assert main(["pretrain", *(x for s in sets for x in ("--set", s))]) == 0
    (run,) = (tmp_path / "runs").iterdir()
    assert json.loads((run / "model" / "config.json").read_text())["architectures"][0].endswith("ForMaskedLM")


def test_electra_discriminator_has_no_mlm(tmp_path):
    directory = wordpiece_families.write_checkpoint(tmp_path / "electra", "electra")
    task = MaskedLMTask(MaskedLMOptions(), DataConfig(max_length=32), load_tokenizer(directory))
    with pytest.raises(SeqtuneError, match="the mlm task supports checkpoints of model_type .* not 'electra'"):
        model_for_finetuning(str(directory), task)
