"""DistilBERT and ELECTRA (discriminator) on the native encoder, against transformers: hidden states
(padded and packed), sequence / token classification and QA heads saved by seqtune and loaded by the
matching AutoModelFor..., WordPiece ids and word alignment, and short `seqtune train` runs."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from conftest import write_sentiment_tsv
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import models, normalizers, pre_tokenizers, trainers

from seqtune.cli import main
from seqtune.config import (
    ClassificationOptions,
    DataConfig,
    QuestionAnsweringOptions,
    TaggingOptions,
)
from seqtune.data.readers.conll import TaggedSentence
from seqtune.data.readers.squad import Answer, QAExample
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
from seqtune.tasks.sequence import TextExample
from seqtune.tasks.tagging import TaggingTask
from seqtune.tokenization import load_tokenizer

transformers = pytest.importorskip("transformers")

CORPUS = [
    "The café served crème brûlée and naïve jalapeño dishes.",
    "Ünïcödé wörds: Straße, 東京, Ελλάδα, русский!",
    "Peter Grünewald visited Brussels . the film was good , the plot was dull",
    "so Peter Grünewald visited Brussels and 東京 . the café was good",
    "emoji great movie , awful actors , boring story , wonderful fun",
    "good great wonderful fun love bad awful dull boring hate the film movie plot was it is",
] * 20
# accented, multi-byte, several pieces per word, and U+200B / U+00AD: a word that is nothing after
# BERT's normalisation (control/format characters are dropped)
AWKWARD = ["The café  served crème brûlée", "東京 and Ελλάδα", "Ünïcödé Straße\tok", "a",
           "unseen wörds ¿qué?", "zero\u200bwidth \u00ad soft"]
MAX_TOKENS = 64


def write_wordpiece_vocab(directory: Path, lowercase: bool) -> int:
    tok = HFTokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(CORPUS, trainers.WordPieceTrainer(
        vocab_size=300, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], show_progress=False))
    vocab = sorted(tok.get_vocab().items(), key=lambda kv: kv[1])
    (directory / "vocab.txt").write_text("".join(t + "\n" for t, _ in vocab))
    (directory / "tokenizer_config.json").write_text(json.dumps(
        {"do_lower_case": lowercase, "model_max_length": MAX_TOKENS}))
    return len(vocab)


def write_checkpoint(directory: Path, family: str) -> Path:
    """A tiny random DistilBertModel / ElectraModel saved by transformers, with a WordPiece vocab.txt."""
    directory.mkdir(parents=True, exist_ok=True)
    vocab_size = write_wordpiece_vocab(directory, lowercase=family == "distilbert")
    if family == "distilbert":
        config = transformers.DistilBertConfig(vocab_size=vocab_size, dim=32, n_layers=2, n_heads=4, hidden_dim=64,
                                               max_position_embeddings=MAX_TOKENS, dropout=0.0,
                                               attention_dropout=0.0, activation="gelu", pad_token_id=0)
        model = transformers.DistilBertModel
    else:  # an ELECTRA discriminator: embeddings narrower than the hidden size, projected
        config = transformers.ElectraConfig(vocab_size=vocab_size, embedding_size=16, hidden_size=32,
                                            num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                                            max_position_embeddings=MAX_TOKENS, hidden_dropout_prob=0.0,
                                            attention_probs_dropout_prob=0.0)
        model = transformers.ElectraModel
    torch.manual_seed(0)
    model = model(config)
    with torch.no_grad():  # LayerNorms away from 1/0 and token types apart, so that a wrong mapping shows
        for name, p in model.named_parameters():
            if "LayerNorm" in name or "layer_norm" in name:
                p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module", params=["distilbert", "electra"])
def family_dir(request, tmp_path_factory) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp(request.param), request.param)


def hf_model(directory: Path, auto_class=None):
    return (auto_class or transformers.AutoModel).from_pretrained(directory).eval()


@pytest.mark.parametrize("layout", ["padded", "mostly_padding"])
def test_hidden_states_match_transformers(family_dir, layout):
    tokenizer = load_tokenizer(family_dir)
    base = "Peter Grünewald visited Brussels . the film"
    texts = ([base, base[:-2], base[:-5], base + " was"] if layout == "padded" else
             [CORPUS[0][:40], "a", "b", "ok", "é", "x"])
    encoded = tokenizer.encode_batch(texts, pairs=texts[::-1])  # pairs: ELECTRA's token types matter
    batch = collate_inputs([{"input_ids": e.ids, "token_type_ids": e.type_ids} for e in encoded], tokenizer.pad_id)
    mask = batch["attention_mask"]
    packed = int(mask.sum()) < PACK_BELOW_FILL * mask.numel()
    assert packed == (layout == "mostly_padding") and 0 < int(mask.sum()) < mask.numel()
    cfg = encoder_config_from_dir(family_dir)
    encoder = Encoder(cfg, add_pooler=False)
    load_encoder_state(encoder, split_checkpoint(read_weights(family_dir), cfg.family.prefix, cfg.model_type),
                       str(family_dir))
    inputs = {"input_ids": batch["input_ids"], "attention_mask": mask}
    if cfg.model_type == "electra":
        inputs["token_type_ids"] = batch["token_type_ids"]
    with torch.no_grad():
        ours = encoder.eval()(batch["input_ids"], mask, batch["token_type_ids"])
        theirs = hf_model(family_dir)(**inputs).last_hidden_state
    real = mask.bool()
    assert torch.allclose(ours[real], theirs[real], atol=1e-4), (ours[real] - theirs[real]).abs().max()


def test_config_round_trips_in_the_family_names(family_dir, tmp_path):
    cfg = encoder_config_from_dir(family_dir)
    saved = cfg.to_dict()
    original = json.loads((family_dir / "config.json").read_text())
    if cfg.model_type == "distilbert":
        assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.intermediate_size, cfg.type_vocab_size) == (32, 2, 64, 0)
        assert "hidden_size" not in saved and "type_vocab_size" not in saved
    else:
        assert cfg.embedding_size == 16 and cfg.hidden_size == 32
    for key, value in original.items():
        assert saved[key] == value, key


def test_token_ids_and_word_starts_match_transformers(family_dir):
    ours = load_tokenizer(family_dir)
    theirs = transformers.AutoTokenizer.from_pretrained(family_dir)
    for text in AWKWARD:
        assert ours.encode_batch([text])[0].ids == theirs(text)["input_ids"], text
        enc = ours.encode_batch([text], ["the film"])[0]
        assert enc.ids == theirs(text, "the film")["input_ids"], text
    words = [["Peter", "Grünewald", "visited", "東京", "."], ["cafés", "Straßenbahn", "jalapeños"]]
    task = TaggingTask(TaggingOptions(type="tagging"), DataConfig(max_length=MAX_TOKENS), ours)
    sentences = [TaggedSentence(w, ["O"] * len(w), "t") for w in [*words, ["\u200b", *words[1]]]]
    task.fit(sentences)
    dataset = task.encode(sentences, "dev")
    expected = theirs(words, is_split_into_words=True, add_special_tokens=False)
    for i, sentence in enumerate(words):
        word_ids = expected.word_ids(i)
        assert len(expected["input_ids"][i]) > len(sentence)  # some words are several pieces
        assert dataset.features[i]["input_ids"] == [ours.cls_id, *expected["input_ids"][i], ours.sep_id]
        assert dataset.word_starts[i] == [word_ids.index(w) for w in range(len(sentence))]
    # a word that normalisation empties (U+200B): transformers gives it no token; seqtune one [UNK],
    # so that it still gets a prediction, and the other words keep their pieces
    assert dataset.features[2]["input_ids"] == [ours.cls_id, ours.unk_id, *expected["input_ids"][1], ours.sep_id]
    assert dataset.word_starts[2] == [0, *(s + 1 for s in dataset.word_starts[1])]
    assert dataset.info["words_without_tokens"] == 1


def _randomise_head(model) -> None:
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.head.parameters():
            p.normal_(0, 0.5)


def _saved_logits(directory: Path, task, examples):
    _, model = load_trained_model(directory)
    batch = task.collate(task.encode(examples, "predict").features)
    with torch.no_grad():
        return model(batch), batch


def _their_inputs(batch):
    return {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in batch}


def _drop_token_types(family: str, inputs: dict) -> dict:
    if family == "distilbert":
        inputs.pop("token_type_ids", None)
    return inputs


def test_sequence_classifier_saved_by_seqtune_loads_in_transformers(family_dir, tmp_path):
    family = encoder_config_from_dir(family_dir).model_type
    tokenizer = load_tokenizer(family_dir)
    task = ClassificationTask(ClassificationOptions(type="classification"), DataConfig(max_length=MAX_TOKENS),
                              tokenizer)
    task.fit([TextExample(t, None, None, "t", label) for t, label in zip("abc", "012")])
    model, report = model_for_finetuning(str(family_dir), task)
    fresh = {"distilbert": "pre_classifier", "electra": "classifier.dense"}[family]
    assert model.encoder.pooler is None and any(fresh in line for line in report)
    _randomise_head(model)
    save_model(tmp_path / "saved", model, task, tokenizer)
    config = json.loads((tmp_path / "saved" / "config.json").read_text())
    assert config["architectures"] == [{"distilbert": "DistilBert", "electra": "Electra"}[family]
                                       + "ForSequenceClassification"]
    ours, batch = _saved_logits(tmp_path / "saved", task, task.examples_from_inputs(AWKWARD))
    theirs = hf_model(tmp_path / "saved", transformers.AutoModelForSequenceClassification)(
        **_drop_token_types(family, _their_inputs(batch))).logits
    assert torch.allclose(ours, theirs, atol=1e-4), (ours - theirs).abs().max()


def test_token_classifier_saved_by_seqtune_loads_in_transformers(family_dir, tmp_path):
    family = encoder_config_from_dir(family_dir).model_type
    tokenizer = load_tokenizer(family_dir)
    task = TaggingTask(TaggingOptions(type="tagging"), DataConfig(max_length=MAX_TOKENS), tokenizer)
    sentences = [TaggedSentence(["Peter", "Grünewald", "visited", "東京"], ["B-PER", "I-PER", "O", "B-LOC"], "t"),
                 TaggedSentence(["the", "café"], ["O", "O"], "t")]
    task.fit(sentences)
    model, _ = model_for_finetuning(str(family_dir), task)
    _randomise_head(model)
    save_model(tmp_path / "saved", model, task, tokenizer)
    ours, batch = _saved_logits(tmp_path / "saved", task, sentences)
    theirs = hf_model(tmp_path / "saved", transformers.AutoModelForTokenClassification)(
        **_drop_token_types(family, _their_inputs(batch))).logits
    real = batch["attention_mask"].bool()
    assert torch.allclose(ours[real], theirs[real], atol=1e-4), (ours[real] - theirs[real]).abs().max()


def test_qa_model_saved_by_seqtune_loads_in_transformers(family_dir, tmp_path):
    family = encoder_config_from_dir(family_dir).model_type
    tokenizer = load_tokenizer(family_dir)
    task = QuestionAnsweringTask(QuestionAnsweringOptions(type="qa", doc_stride=8),
                                 DataConfig(max_length=MAX_TOKENS), tokenizer)
    context = "Peter Grünewald visited Brussels and 東京 . the café was good"
    examples = [QAExample("q1", "who visited?", context, [Answer("Peter Grünewald", 0)], "t"),
                QAExample("q2", "where?", context, [Answer("東京", context.index("東京"))], "t")]
    task.fit(examples)
    model, _ = model_for_finetuning(str(family_dir), task)
    _randomise_head(model)
    save_model(tmp_path / "saved", model, task, tokenizer)
    (start, end), batch = _saved_logits(tmp_path / "saved", task, examples)
    out = hf_model(tmp_path / "saved", transformers.AutoModelForQuestionAnswering)(
        **_drop_token_types(family, _their_inputs(batch)))
    real = batch["attention_mask"].bool()
    assert torch.allclose(start[real], out.start_logits[real], atol=1e-4)
    assert torch.allclose(end[real], out.end_logits[real], atol=1e-4)
    features = task.encode(examples, "dev").features
    for feature, example in zip(features, examples):  # the gold span's offsets cut out the answer exactly
        offsets = feature["offsets"]
        a, b = offsets[feature["start_positions"]][0], offsets[feature["end_positions"]][1]
        assert example.context[a:b] == example.answers[0].text


# ---- `seqtune train` --------------------------------------------------------------------------------

def train_args(tmp_path: Path, model: Path, task: str, train: Path, *extra: str) -> list[str]:
    sets = [f"model.path={model}", f"data.train={train}", f"data.dev={train}", f"task.type={task}",
            "train.epochs=3", "train.batch_size=8", "train.lr=3e-3", "train.progress=false",
            "train.num_threads=1", f"output_dir={tmp_path / 'runs'}", *extra]
    return ["train", *(x for s in sets for x in ("--set", s))]


def test_classification_and_tagging_train_through_the_cli(family_dir, tmp_path):
    family = encoder_config_from_dir(family_dir).model_type
    prefix = {"distilbert": "DistilBert", "electra": "Electra"}[family]
    train = write_sentiment_tsv(tmp_path / "train.tsv", n=48)
    assert main(train_args(tmp_path / "cls", family_dir, "classification", train, "data.text_column=sentence",
                "train.epochs=6")) == 0
    (run,) = (tmp_path / "cls" / "runs").iterdir()
    assert json.loads((run / "model" / "config.json").read_text())["architectures"] == \
        [prefix + "ForSequenceClassification"]
    assert json.loads((run / "results.json").read_text())["dev"]["accuracy"] > 0.7

    rng = random.Random(0)
    lines = []
    for _ in range(60):
        for _ in range(rng.randint(3, 7)):
            word = rng.choice(["Peter", "Brussels", "東京", "the", "film", "café", "."])
            lines.append(f"{word} {'B-PER' if word == 'Peter' else 'B-LOC' if word in ('Brussels', '東京') else 'O'}")
        lines.append("")
    data = tmp_path / "tags.txt"
    data.write_text("\n".join(lines) + "\n")
    assert main(train_args(tmp_path / "tag", family_dir, "tagging", data, "train.epochs=4")) == 0
    (run,) = (tmp_path / "tag" / "runs").iterdir()
    assert json.loads((run / "model" / "config.json").read_text())["architectures"] == \
        [prefix + "ForTokenClassification"]
    assert json.loads((run / "results.json").read_text())["dev"]["accuracy"] > 0.8
