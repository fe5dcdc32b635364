"""The generic path: a model_type without a native implementation (here a tiny random DeBERTa-v2,
v3-style, built in the test) runs through transformers. Its hidden states and task logits are
transformers' own, what seqtune saves loads with the matching AutoModelFor... class, `seqtune train`
runs classification and tagging on it, the layer strategies work, and bad input gets a clear error."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest
import torch
from conftest import WORDS, write_sentiment_tsv
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import (
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)

from seqtune.cli import main
from seqtune.config import (
    ClassificationOptions,
    DataConfig,
    StrategyConfig,
    TaggingOptions,
)
from seqtune.errors import SeqtuneError
from seqtune.inference import load_trained_model
from seqtune.models.checkpoint import encoder_config_from_dir
from seqtune.models.hf_encoder import GenericTaskModel
from seqtune.models.hf_layout import find_layout
from seqtune.models.hf_tokenizer import generic_tokenizer
from seqtune.models.task_model import model_for_finetuning, save_model
from seqtune.tasks.base import collate_inputs
from seqtune.tasks.classification import ClassificationTask
from seqtune.tasks.tagging import TaggingTask
from seqtune.training.strategies import apply_strategy, parameter_counts

transformers = pytest.importorskip("transformers")

SPECIALS = ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"]  # DeBERTa-v3's ids 0..3, then [MASK]
CORPUS = [" ".join(WORDS), "the film was good", "the plot was awful and very dull", "Zoë's café was not boring!",
          "a wonderful story, actors love it", "it is a terrible movie but fun", "Peter visited Brussels"] * 4
TEXTS = ["the film was good", "Zoë's café was not boring at all, a wonderful story", "dull"]


def unigram_tokenizer() -> HFTokenizer:
    """A SentencePiece-style Unigram tokenizer (Metaspace ▁ word marker), as DeBERTa-v3's."""
    tok = HFTokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(CORPUS, trainers.UnigramTrainer(vocab_size=160, special_tokens=SPECIALS,
                                                            unk_token="[UNK]"))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    return tok


def write_tiny_deberta(directory: Path, seed: int = 0, **overrides) -> Path:
    """config.json + model.safetensors of a random DebertaV2Model, tokenizer.json (+ its config)."""
    directory.mkdir(parents=True, exist_ok=True)
    tok = unigram_tokenizer()
    settings = {"vocab_size": tok.get_vocab_size() + 6, "hidden_size": 32, "num_hidden_layers": 2,
                "num_attention_heads": 4, "intermediate_size": 48, "max_position_embeddings": 64,
                "relative_attention": True, "position_buckets": 16, "pos_att_type": ["p2c", "c2p"],
                "position_biased_input": False, "norm_rel_ebd": "layer_norm", "share_att_key": True,
                "type_vocab_size": 0, "pad_token_id": 0, "hidden_dropout_prob": 0.0,
                "attention_probs_dropout_prob": 0.0}
    settings.update(overrides)
    torch.manual_seed(seed)
    transformers.DebertaV2Model(transformers.DebertaV2Config(**settings)).save_pretrained(str(directory))
    tok.save(str(directory / "tokenizer.json"))
    (directory / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "cls_token": "[CLS]", "sep_token": "[SEP]",
        "pad_token": "[PAD]", "unk_token": "[UNK]", "mask_token": "[MASK]", "model_max_length": 64}))
    return directory


@pytest.fixture(scope="module")
def deberta_dir(tmp_path_factory) -> Path:
    return write_tiny_deberta(tmp_path_factory.mktemp("tiny_deberta"))


def classification_task(model_dir: Path, **options) -> ClassificationTask:
    cfg = encoder_config_from_dir(model_dir)
    task = ClassificationTask(ClassificationOptions(type="classification", **options), DataConfig(),
                              generic_tokenizer(model_dir, cfg))
    return task


def pair_batch(tokenizer) -> dict[str, torch.Tensor]:
    """Three inputs of different lengths (padding in the batch), as pairs with token types."""
    encodings = tokenizer.encode_batch(TEXTS, ["Peter visited Brussels", "it", "the plot was awful"])
    return collate_inputs([{"input_ids": e.ids, "token_type_ids": e.type_ids} for e in encodings], tokenizer.pad_id)


def hf_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}


# ---- parity with transformers ----------------------------------------------------------------------

def test_hidden_states_and_classification_logits_are_transformers_own(deberta_dir, tmp_path):
    task = classification_task(deberta_dir)
    task._set_labels(["neg", "pos", "mid"])
    model, report = model_for_finetuning(str(deberta_dir), task)
    assert report[0].startswith("path: through transformers") and "native implementation would add" in report[0]
    model.eval()
    batch = pair_batch(task.tokenizer)
    reference = transformers.AutoModel.from_pretrained(str(deberta_dir)).eval()
    real = batch["attention_mask"].bool()
    with torch.no_grad():
        ours = model.encoder.model(**hf_inputs(batch)).last_hidden_state
        theirs = reference(**hf_inputs(batch)).last_hidden_state
        # each input alone (no padding) gives the same states as inside the padded batch
        alone = reference(input_ids=batch["input_ids"][1:2, :int(real[1].sum())]).last_hidden_state
        logits = model(batch)
    assert torch.allclose(ours[real], theirs[real], atol=1e-5)
    assert torch.allclose(ours[1, :alone.shape[1]], alone[0], atol=1e-4)
    assert logits.shape == (3, 3)

    saved = save_model(tmp_path / "model", model, task, task.tokenizer)
    config = json.loads((saved / "config.json").read_text())
    assert config["architectures"] == ["DebertaV2ForSequenceClassification"]
    assert config["id2label"] == {"0": "neg", "1": "pos", "2": "mid"}
    loaded = transformers.AutoModelForSequenceClassification.from_pretrained(str(saved)).eval()
    with torch.no_grad():
        assert torch.allclose(loaded(**hf_inputs(batch)).logits, logits, atol=1e-5)
        _, again = load_trained_model(saved)
        assert torch.allclose(again(batch), logits, atol=1e-5)
    # the saved tokenizer is the same tokenizer for transformers
    auto = transformers.AutoTokenizer.from_pretrained(str(saved))
    assert auto(TEXTS[1])["input_ids"] == task.tokenizer.encode_batch([TEXTS[1]])[0].ids


def test_a_native_model_type_says_so_in_the_report(tiny_checkpoint):
    from seqtune.tokenization import load_tokenizer

    task = ClassificationTask(ClassificationOptions(type="classification"), DataConfig(), load_tokenizer(tiny_checkpoint))
    task._set_labels(["neg", "pos"])
    model, report = model_for_finetuning(str(tiny_checkpoint), task)
    assert report[0].startswith("path: native") and not isinstance(model, GenericTaskModel)


def test_token_classification_logits_are_transformers_own(deberta_dir, tmp_path):
    cfg = encoder_config_from_dir(deberta_dir)
    task = TaggingTask(TaggingOptions(type="tagging"), DataConfig(), generic_tokenizer(deberta_dir, cfg))
    task.set_labels(["O", "B-PER", "I-PER", "B-LOC", "I-LOC"])
    model, _ = model_for_finetuning(str(deberta_dir), task)
    model.eval()
    batch = pair_batch(task.tokenizer)
    batch.pop("token_type_ids")
    with torch.no_grad():
        logits = model(batch)
    saved = save_model(tmp_path / "model", model, task, task.tokenizer)
    assert json.loads((saved / "config.json").read_text())["architectures"] == ["DebertaV2ForTokenClassification"]
    loaded = transformers.AutoModelForTokenClassification.from_pretrained(str(saved)).eval()
    with torch.no_grad():
        theirs = loaded(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    real = batch["attention_mask"].bool()
    assert logits.shape == (3, batch["input_ids"].shape[1], 5)
    assert torch.allclose(logits[real], theirs[real], atol=1e-5)


def test_regression_saves_a_one_output_model_transformers_loads(deberta_dir, tmp_path):
    from seqtune.config import RegressionOptions
    from seqtune.tasks.regression import RegressionTask

    cfg = encoder_config_from_dir(deberta_dir)
    task = RegressionTask(RegressionOptions(type="regression"), DataConfig(),
                          generic_tokenizer(deberta_dir, cfg))
    model, _ = model_for_finetuning(str(deberta_dir), task)
    model.eval()
    batch = pair_batch(task.tokenizer)
    with torch.no_grad():
        ours = model(batch)
        saved = save_model(tmp_path / "model", model, task, task.tokenizer)
        loaded = transformers.AutoModelForSequenceClassification.from_pretrained(str(saved)).eval()
        assert loaded.config.problem_type == "regression" and ours.shape == (3, 1)
        assert torch.allclose(loaded(**hf_inputs(batch)).logits, ours, atol=1e-5)


def test_a_seqtune_head_saves_an_encoder_that_automodel_loads(deberta_dir, tmp_path):
    task = classification_task(deberta_dir, head="mean")
    task._set_labels(["neg", "pos"])
    model, report = model_for_finetuning(str(deberta_dir), task)
    assert any("seqtune's SequenceHead" in line for line in report)
    model.eval()
    batch = pair_batch(task.tokenizer)
    with torch.no_grad():
        logits = model(batch)
        hidden = model.encoder.model(**hf_inputs(batch)).last_hidden_state
    saved = save_model(tmp_path / "model", model, task, task.tokenizer)
    assert json.loads((saved / "config.json").read_text())["architectures"] == ["DebertaV2Model"]
    encoder = transformers.AutoModel.from_pretrained(str(saved)).eval()
    real = batch["attention_mask"].bool()
    with torch.no_grad():
        assert torch.allclose(encoder(**hf_inputs(batch)).last_hidden_state[real], hidden[real], atol=1e-5)
        _, again = load_trained_model(saved)
        assert torch.allclose(again(batch), logits, atol=1e-5)


def test_qa_and_mlm_heads_are_transformers_own(deberta_dir, tmp_path):
    from seqtune.config import MaskedLMOptions, QuestionAnsweringOptions
    from seqtune.tasks.mlm import MaskedLMTask
    from seqtune.tasks.qa import QuestionAnsweringTask

    tokenizer = generic_tokenizer(deberta_dir, encoder_config_from_dir(deberta_dir))
    batch = pair_batch(tokenizer)
    for task, auto in [(QuestionAnsweringTask(QuestionAnsweringOptions(type="qa"), DataConfig(), tokenizer),
                        transformers.AutoModelForQuestionAnswering),
                       (MaskedLMTask(MaskedLMOptions(type="mlm"), DataConfig(), tokenizer),
                        transformers.AutoModelForMaskedLM)]:
        model, _ = model_for_finetuning(str(deberta_dir), task)
        model.eval()
        batch["mlm_positions"] = batch["input_ids"] == tokenizer.cls_id  # any positions will do
        with torch.no_grad():
            ours = model(batch)
            saved = save_model(tmp_path / task.name, model, task, tokenizer)
            out = auto.from_pretrained(str(saved)).eval()(**hf_inputs(batch))
        theirs = (out.start_logits, out.end_logits) if task.name == "qa" else (out.logits[batch["mlm_positions"]],)
        for a, b in zip(ours if task.name == "qa" else (ours,), theirs):
            assert torch.allclose(a, b, atol=1e-5), task.name


def test_a_checkpoint_without_tokenizer_json_converts_through_autotokenizer(tmp_path):
    """DeBERTa (v1) ships GPT-2 style vocab.json + merges.txt: transformers' fast tokenizer is used."""
    from tokenizers import pre_tokenizers as pre

    model_dir = tmp_path / "deberta-v1"
    model_dir.mkdir()
    tok = HFTokenizer(models.BPE())
    tok.pre_tokenizer = pre.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=300, special_tokens=SPECIALS,
                                                        initial_alphabet=pre.ByteLevel.alphabet()))
    tok.model.save(str(model_dir))  # vocab.json, merges.txt
    (model_dir / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "DebertaTokenizer", "cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]",
        "unk_token": "[UNK]", "mask_token": "[MASK]", "bos_token": "[CLS]", "eos_token": "[SEP]"}))
    config = transformers.DebertaConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=2,
                                        num_attention_heads=4, intermediate_size=48, max_position_embeddings=64)
    transformers.DebertaModel(config).save_pretrained(str(model_dir))
    ours = generic_tokenizer(model_dir, encoder_config_from_dir(model_dir))
    auto = transformers.AutoTokenizer.from_pretrained(str(model_dir))
    assert ours.kind == "bpe" and ours.special["cls"] == "[CLS]"
    for text in TEXTS:
        assert ours.encode_batch([text])[0].ids == auto(text)["input_ids"]
    assert ours.encode_batch(["a b"], ["Zoë"])[0].ids == auto("a b", "Zoë")["input_ids"]
    # transformers joins this tokenizer's pairs as [CLS] a [SEP] [SEP] b [SEP]: not QA's layout
    from seqtune.config import QuestionAnsweringOptions
    from seqtune.models.hf_encoder import check_task
    from seqtune.tasks.qa import QuestionAnsweringTask

    assert len(ours.encode_batch(["a"], ["a"])[0].ids) == 2 * len(ours.encode_batch(["a"])[0].ids)
    qa = QuestionAnsweringTask(QuestionAnsweringOptions(type="qa"), DataConfig(), ours)
    with pytest.raises(SeqtuneError, match="the qa task needs the \\[CLS\\] question \\[SEP\\] context"):
        check_task(qa, encoder_config_from_dir(model_dir))


def test_a_failed_conversion_says_what_to_add(deberta_dir, tmp_path):
    model_dir = edited_copy(deberta_dir, tmp_path / "m")
    (model_dir / "tokenizer.json").unlink()
    (model_dir / "spm.model").write_bytes(b"not a sentencepiece model")
    (model_dir / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "DebertaV2Tokenizer"}))
    with pytest.raises(SeqtuneError, match="has no tokenizer.json.*Add the tokenizer.json of the model"):
        generic_tokenizer(model_dir, encoder_config_from_dir(model_dir))


# ---- strategies ------------------------------------------------------------------------------------

def test_layer_strategies_see_the_layers(deberta_dir):
    task = classification_task(deberta_dir)
    task._set_labels(["neg", "pos"])
    model, _ = model_for_finetuning(str(deberta_dir), task)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    frozen = apply_strategy(model, StrategyConfig(top_layers=1, reinit_layers=1))
    assert frozen == 1
    counts = parameter_counts(model)
    # DeBERTa's relative position embeddings and their LayerNorm freeze with the embeddings
    assert counts["embeddings"]["trainable"] == 0 and counts["layer.0"]["trainable"] == 0
    assert counts["layer.1"]["frozen"] == 0 and counts["head"]["frozen"] == 0
    assert counts["total"]["trainable"] + counts["total"]["frozen"] == sum(p.numel() for p in model.parameters())
    in_embeddings = {id(p) for p in model.encoder.embeddings.parameters()}
    assert id(model.encoder.model.encoder.rel_embeddings.weight) in in_embeddings
    assert id(model.encoder.model.encoder.LayerNorm.weight) in in_embeddings
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(n.startswith("encoder.layers.1.") for n in changed)  # re-initialised: the top layer


@pytest.mark.parametrize("family", ["modernbert", "mpnet", "megatron-bert", "albert"])
def test_layouts_of_other_families(family):
    """Modules outside the layer list go where the forward pass runs them: before the first layer
    (with the embeddings) or after the last (with the top layer); ALBERT has no list at all."""
    sizes = {"vocab_size": 100, "hidden_size": 32, "num_hidden_layers": 3, "num_attention_heads": 4,
             "intermediate_size": 48, "max_position_embeddings": 64}
    config = {"modernbert": transformers.ModernBertConfig(**sizes, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                                                          cls_token_id=1, sep_token_id=2),
              "mpnet": transformers.MPNetConfig(**sizes),
              "megatron-bert": transformers.MegatronBertConfig(**sizes),
              "albert": transformers.AlbertConfig(**sizes, embedding_size=16)}[family]
    base = transformers.AutoModel.from_config(config)
    layout = find_layout(base)
    names = {id(m): n for n, m in base.named_modules()}
    before, after = [names[id(m)] for m in layout.embeddings], [names[id(m)] for m in layout.after]
    expected = {"modernbert": (["embeddings", "rotary_emb"], ["final_norm"]),
                "mpnet": (["embeddings", "encoder.relative_attention_bias"], ["pooler"]),
                "megatron-bert": (["embeddings"], ["encoder.ln", "pooler"]),
                "albert": (["embeddings"], [])}[family]
    assert (before, after) == expected
    assert (layout.layers is None) == (family == "albert")


# ---- seqtune train through the CLI -----------------------------------------------------------------

def train_args(tmp_path: Path, model: Path, task: str, train: Path, *extra: str) -> list[str]:
    sets = [f"model.path={model}", f"data.train={train}", f"data.dev={train}", f"data.test={train}",
            f"task.type={task}", "train.epochs=6", "train.batch_size=8", "train.progress=false", "train.lr=3e-3",
            f"output_dir={tmp_path / 'runs'}", *extra]
    return ["train", *(x for s in sets for x in ("--set", s))]


def only_run(tmp_path: Path) -> Path:
    (run,) = (tmp_path / "runs").iterdir()
    return run


def test_seqtune_train_classification_then_evaluate_and_predict(deberta_dir, tmp_path, capsys):
    train = write_sentiment_tsv(tmp_path / "train.tsv", n=48)
    code = main(train_args(tmp_path, deberta_dir, "classification", train, "data.text_column=sentence",
                           "strategy.layer_lr_decay=0.9"))
    assert code == 0, capsys.readouterr().err
    run = only_run(tmp_path)
    results = json.loads((run / "results.json").read_text())
    assert results["test"]["accuracy"] > 0.75, results["test"]
    assert results["run"]["versions"]["transformers"] == transformers.__version__
    capsys.readouterr()
    assert main(["evaluate", str(run / "model"), str(train)]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == pytest.approx(results["test"]["accuracy"])
    assert main(["predict", str(run / "model"), str(train), "--output", str(tmp_path / "p.jsonl")]) == 0
    assert len((tmp_path / "p.jsonl").read_text().splitlines()) == 48


def test_frozen_layers_stay_as_loaded_without_an_activation_cache(deberta_dir, tmp_path, caplog):
    train = write_sentiment_tsv(tmp_path / "train.tsv", n=16)
    with caplog.at_level("INFO", logger="seqtune"):
        assert main(train_args(tmp_path, deberta_dir, "classification", train, "data.text_column=sentence",
                               "train.epochs=1", "strategy.freeze_layers=1")) == 0
    assert "path: through transformers" in caplog.text
    assert "activation cache is not on the transformers path" in caplog.text
    saved = transformers.AutoModel.from_pretrained(str(only_run(tmp_path) / "model")).state_dict()
    original = transformers.AutoModel.from_pretrained(str(deberta_dir)).state_dict()
    frozen = [k for k in original if k.startswith(("embeddings.", "encoder.layer.0.", "encoder.rel_embeddings"))]
    trained = [k for k in original if k.startswith("encoder.layer.1.") and k.endswith("weight")]
    assert all(torch.equal(saved[k], original[k]) for k in frozen)
    assert not all(torch.equal(saved[k], original[k]) for k in trained)


def generated_tagging(n: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    blocks = []
    for _ in range(n):
        lines = []
        for _ in range(rng.randint(2, 6)):
            if rng.random() < 0.3:
                lines.append(f"{rng.choice(['Peter', 'Zoë'])} B-PER")
            else:
                lines.append(f"{rng.choice(['the', 'film', 'was', 'good', 'visited', 'café', '.'])} O")
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)


def test_seqtune_train_tagging(deberta_dir, tmp_path, capsys):
    train = tmp_path / "train.txt"
    train.write_text(generated_tagging(60))
    assert main(train_args(tmp_path, deberta_dir, "tagging", train)) == 0, capsys.readouterr().err
    run = only_run(tmp_path)
    results = json.loads((run / "results.json").read_text())
    assert results["dev"]["accuracy"] > 0.8, results["dev"]
    config = json.loads((run / "model" / "config.json").read_text())
    assert config["architectures"] == ["DebertaV2ForTokenClassification"]
    assert set(config["id2label"].values()) == {"O", "B-PER"}


def test_seqtune_pretrain_continues_a_masked_lm_then_fill_mask(deberta_dir, tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(CORPUS * 2) + "\n")
    sets = [f"model.path={deberta_dir}", f"data.train={corpus}", f"data.dev={corpus}", "task.type=mlm",
            "train.epochs=1", "train.batch_size=8", "train.progress=false", "data.max_length=32",
            f"output_dir={tmp_path / 'runs'}"]
    assert main(["pretrain", *(x for s in sets for x in ("--set", s))]) == 0, capsys.readouterr().err
    model_dir = only_run(tmp_path) / "model"
    assert json.loads((model_dir / "config.json").read_text())["architectures"] == ["DebertaV2ForMaskedLM"]
    transformers.AutoModelForMaskedLM.from_pretrained(str(model_dir))  # loads (logits: the QA/MLM test)
    capsys.readouterr()
    assert main(["fill-mask", str(model_dir), "the film was [MASK]"]) == 0
    assert "[MASK] at token" in capsys.readouterr().out


# ---- bad input -------------------------------------------------------------------------------------

def edited_copy(source: Path, target: Path, **config_changes) -> Path:
    target.mkdir()
    for f in source.iterdir():
        (target / f.name).write_bytes(f.read_bytes())
    config = json.loads((target / "config.json").read_text())
    (target / "config.json").write_text(json.dumps({**config, **config_changes}))
    return target


def run_fails(tmp_path: Path, model: Path, capsys, *extra: str) -> str:
    train = write_sentiment_tsv(tmp_path / "train.tsv", n=8)
    code = main(train_args(tmp_path, model, "classification", train, "data.text_column=sentence", *extra))
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert not (tmp_path / "runs").exists()  # refused before a run directory is made
    return err


def test_a_model_type_neither_native_nor_known_to_transformers(deberta_dir, tmp_path, capsys):
    model = edited_copy(deberta_dir, tmp_path / "m", model_type="not-a-model")
    err = run_fails(tmp_path, model, capsys)
    assert "model_type 'not-a-model' is neither one seqtune runs natively" in err
    assert f"transformers {transformers.__version__}" in err


def test_a_decoder_is_refused(deberta_dir, tmp_path, capsys):
    model = edited_copy(deberta_dir, tmp_path / "m", model_type="gpt2")
    assert "model_type 'gpt2' is not an encoder" in run_fails(tmp_path, model, capsys)


def test_missing_transformers_names_what_to_install(deberta_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers raises ImportError
    err = run_fails(tmp_path, deberta_dir, capsys)
    assert "model_type 'deberta-v2' has no native implementation" in err and 'pip install "seqtune[hf]"' in err


def test_weights_of_another_family_fail_before_the_data_is_read(tiny_checkpoint, tmp_path, capsys):
    model = edited_copy(tiny_checkpoint, tmp_path / "m", model_type="deberta-v2")  # BERT weights
    err = run_fails(tmp_path, model, capsys)
    assert "does not match its config.json (model_type 'deberta-v2'): missing encoder weights" in err


def test_a_tokenizer_larger_than_the_embeddings_is_refused(deberta_dir, tmp_path, capsys):
    model = edited_copy(deberta_dir, tmp_path / "m")
    (model / "tokenizer.json").unlink()  # BERT's WordPiece vocabulary instead of the model's own
    (model / "tokenizer_config.json").unlink()
    (model / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
                                                *(f"w{i}" for i in range(200))]) + "\n")
    err = run_fails(tmp_path, model, capsys)
    assert "the tokenizer has 205 tokens but the model's embeddings have" in err


def test_a_tokenizer_of_another_family_is_refused(deberta_dir, tmp_path, capsys):
    model = edited_copy(deberta_dir, tmp_path / "m", pad_token_id=1)  # a RoBERTa-style padding id
    err = run_fails(tmp_path, model, capsys)
    assert "padding token '[PAD]' has id 0 but config.json says pad_token_id 1" in err
    assert "another family" in err


def test_layer_strategies_on_a_model_without_a_layer_list_are_refused(tmp_path, capsys):
    """ALBERT shares one layer group across its depth: it trains whole, layer strategies are refused."""
    model = tmp_path / "albert"
    tok = unigram_tokenizer()
    torch.manual_seed(0)
    config = transformers.AlbertConfig(vocab_size=tok.get_vocab_size(), embedding_size=16, hidden_size=32,
                                       num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
                                       max_position_embeddings=64, pad_token_id=0)
    transformers.AlbertModel(config).save_pretrained(str(model))
    tok.save(str(model / "tokenizer.json"))
    err = run_fails(tmp_path, model, capsys, "strategy.top_layers=1")
    assert "strategy.top_layers needs the model's layers one by one" in err and "Fine-tune it whole" in err
    train = tmp_path / "train.tsv"
    assert main(train_args(tmp_path, model, "classification", train, "data.text_column=sentence",
                           "train.epochs=1")) == 0
    config = json.loads((only_run(tmp_path) / "model" / "config.json").read_text())
    assert config["architectures"] == ["AlbertForSequenceClassification"]
