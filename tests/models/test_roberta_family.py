"""RoBERTa and XLM-R on the native encoder: hidden states, saved heads and tokenizers against
transformers, tagging alignment through byte-level BPE, short training runs, QA with exact character
offsets, and the refusals (an unknown model_type, max_length beyond the offset positions, a tokenizer
of another family). MLM: test_family_mlm.py."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from conftest import write_sentiment_tsv
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
from seqtune.config import DataConfig, TaggingOptions
from seqtune.inference import load_trained_model
from seqtune.models.checkpoint import (
    encoder_config_from_dir,
    load_encoder_state,
    read_weights,
    split_checkpoint,
)
from seqtune.models.encoder import PACK_BELOW_FILL, Encoder
from seqtune.tasks.base import collate_inputs
from seqtune.tasks.tagging import TaggingTask
from seqtune.tokenization import load_tokenizer

transformers = pytest.importorskip("transformers")

CORPUS = [
    "The café served crème brûlée and naïve jalapeño dishes.",
    "Ünïcödé wörds: Straße, 東京, Ελλάδα, русский!",
    "Peter Grünewald visited Brussels . the film was good , the plot was dull",
    "so Peter Grünewald visited Brussels and 東京 . the café was good",
    "  several   spaces   here  and tabs\tok",
    "emoji 🙂 great movie , awful actors , boring story , wonderful fun",
] * 20
SPECIAL = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # ids 0-4, as in RoBERTa and XLM-R
AWKWARD = ["The café  served crème brûlée", "東京 and 🙂 ", "   several   spaces", "Ünïcödé Straße\tok",
           "a", "unseen wörds ¿qué?"]
MAX_TOKENS = 64


def write_bpe_tokenizer(directory: Path) -> None:
    """A byte-level BPE laid out as RoBERTa's tokenizer.json."""
    tok = HFTokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(
        vocab_size=600, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0), trim_offsets=True,
                                                      add_prefix_space=False)
    tok.save(str(directory / "tokenizer.json"))
    (directory / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "RobertaTokenizer", "model_max_length": MAX_TOKENS}))


def write_unigram_tokenizer(directory: Path) -> None:
    """A SentencePiece Unigram laid out as XLM-R's tokenizer.json."""
    tok = HFTokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                 pre_tokenizers.Metaspace(prepend_scheme="always")])
    tok.decoder = decoders.Metaspace(prepend_scheme="always")
    tok.train_from_iterator(CORPUS, trainers.UnigramTrainer(vocab_size=200, special_tokens=SPECIAL,
                                                            unk_token="<unk>", show_progress=False))
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    tok.save(str(directory / "tokenizer.json"))
    (directory / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "XLMRobertaTokenizer", "model_max_length": MAX_TOKENS}))


def write_checkpoint(directory: Path, family: str) -> Path:
    """A tiny random RobertaModel / XLMRobertaModel saved by transformers, with its tokenizer."""
    directory.mkdir(parents=True, exist_ok=True)
    (write_bpe_tokenizer if family == "roberta" else write_unigram_tokenizer)(directory)
    vocab_size = HFTokenizer.from_file(str(directory / "tokenizer.json")).get_vocab_size()
    config_class, model_class = ((transformers.RobertaConfig, transformers.RobertaModel) if family == "roberta"
                                 else (transformers.XLMRobertaConfig, transformers.XLMRobertaModel))
    config = config_class(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                          intermediate_size=64, max_position_embeddings=MAX_TOKENS + 2, type_vocab_size=1,
                          pad_token_id=1, bos_token_id=0, eos_token_id=2, hidden_dropout_prob=0.0,
                          attention_probs_dropout_prob=0.0)
    torch.manual_seed(0)
    model = model_class(config, add_pooling_layer=False)
    with torch.no_grad():  # LayerNorms away from 1/0, so that a wrong mapping shows
        for name, p in model.named_parameters():
            if "LayerNorm" in name:
                p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module", params=["roberta", "xlm-roberta"])
def family_dir(request, tmp_path_factory) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp(request.param), request.param)


@pytest.fixture(scope="module")
def roberta_dir(tmp_path_factory) -> Path:
    return write_checkpoint(tmp_path_factory.mktemp("roberta"), "roberta")


def hf_model(directory: Path, auto_class=None):
    auto_class = auto_class or transformers.AutoModel
    return auto_class.from_pretrained(directory).eval()


# ---- the encoder -----------------------------------------------------------------------------------

def seqtune_encoder(directory: Path) -> Encoder:
    cfg = encoder_config_from_dir(directory)
    encoder = Encoder(cfg, add_pooler=False)
    load_encoder_state(encoder, split_checkpoint(read_weights(directory), cfg.family.prefix), str(directory))
    return encoder.eval()


@pytest.mark.parametrize("layout", ["padded", "mostly_padding"])
def test_hidden_states_match_transformers(family_dir, layout):
    tokenizer = load_tokenizer(family_dir)
    # padded: a few padded positions (the padded path runs); mostly_padding: the packed path runs
    base = "Peter Grünewald visited Brussels . the film"
    texts = ([base, base[:-2], base[:-5], base + " was"] if layout == "padded" else
             [CORPUS[0][:40], "a", "b", "ok", "é", "x"])
    batch = collate_inputs([{"input_ids": e.ids} for e in tokenizer.encode_batch(texts)], tokenizer.pad_id)
    mask = batch["attention_mask"]
    assert mask.shape[1] <= MAX_TOKENS
    packed = int(mask.sum()) < PACK_BELOW_FILL * mask.numel()
    assert packed == (layout == "mostly_padding")
    with torch.no_grad():
        ours = seqtune_encoder(family_dir)(batch["input_ids"], mask)
        theirs = hf_model(family_dir)(input_ids=batch["input_ids"], attention_mask=mask).last_hidden_state
    real = mask.bool()
    assert torch.allclose(ours[real], theirs[real], atol=1e-4), (ours[real] - theirs[real]).abs().max()


def test_the_full_length_fits_and_one_more_is_refused(roberta_dir):
    """max_position_embeddings 66 = 64 tokens + pad_token_id + 1 unused slots."""
    cfg = encoder_config_from_dir(roberta_dir)
    assert (cfg.position_offset, cfg.max_tokens) == (2, MAX_TOKENS)
    encoder = seqtune_encoder(roberta_dir)
    ids = torch.randint(5, 100, (1, MAX_TOKENS))
    with torch.no_grad():
        theirs = hf_model(roberta_dir)(input_ids=ids).last_hidden_state
        assert torch.allclose(encoder(ids), theirs, atol=1e-4)
    from seqtune.errors import SeqtuneError
    with pytest.raises(SeqtuneError, match="64 positions \\(max_position_embeddings 66"):
        encoder(torch.randint(5, 100, (1, MAX_TOKENS + 1)))


# ---- the tokenizer ---------------------------------------------------------------------------------

def test_token_ids_match_transformers(family_dir):
    ours = load_tokenizer(family_dir)
    theirs = transformers.AutoTokenizer.from_pretrained(family_dir)
    assert (ours.cls_id, ours.sep_id, ours.pad_id, ours.unk_id, ours.mask_id) == (0, 2, 1, 3, 4)
    for text in AWKWARD:
        assert ours.encode_batch([text])[0].ids == theirs(text)["input_ids"], text
        for other in AWKWARD[:3]:
            enc = ours.encode_batch([text], [other])[0]
            assert enc.ids == theirs(text, other)["input_ids"], (text, other)
            assert enc.ids[0] == 0 and enc.ids.count(2) >= 3 and set(enc.type_ids) == {0}  # <s> A </s></s> B </s>


def test_words_split_as_transformers_with_add_prefix_space(family_dir):
    """Tagging encodes pre-tokenized words; every word's first sub-token is where transformers puts it."""
    words = [["Peter", "Grünewald", "visited", "Brussels", "."], ["東京", "café", "x", "🙂"], ["wörds", "Straße"]]
    tokenizer = load_tokenizer(family_dir)
    theirs = transformers.AutoTokenizer.from_pretrained(family_dir, add_prefix_space=True)
    expected = theirs(words, is_split_into_words=True, add_special_tokens=False)
    task = TaggingTask(TaggingOptions(type="tagging"), DataConfig(max_length=MAX_TOKENS), tokenizer)
    task.fit([_sentence(w, ["O"] * len(w)) for w in words])
    dataset = task.encode([_sentence(w, ["O"] * len(w)) for w in words], "dev")
    for i, sentence in enumerate(words):
        word_ids = expected.word_ids(i)
        assert dataset.features[i]["input_ids"] == [0, *expected["input_ids"][i], 2]
        assert dataset.word_starts[i] == [word_ids.index(w) for w in range(len(sentence))]


def _sentence(words, tags):
    from seqtune.data.readers.conll import TaggedSentence
    return TaggedSentence(list(words), list(tags), "t")


# ---- training and saving ---------------------------------------------------------------------------

def train_args(tmp_path: Path, model: Path, task: str, train: Path, *extra: str) -> list[str]:
    sets = [f"model.path={model}", f"data.train={train}", f"data.dev={train}", f"task.type={task}",
            "train.epochs=2", "train.batch_size=8", "train.lr=1e-3", "train.progress=false",
            "train.num_threads=1", f"output_dir={tmp_path / 'runs'}", *extra]
    return ["train", *(x for s in sets for x in ("--set", s))]


def seqtune_logits(model_dir: Path, examples) -> torch.Tensor:
    task, model = load_trained_model(model_dir)
    dataset = task.encode(examples, "predict")
    batch = task.collate(dataset.features)
    with torch.no_grad():
        return model(batch), batch


def test_classification_trains_and_loads_in_transformers(roberta_dir, tmp_path):
    train = write_sentiment_tsv(tmp_path / "train.tsv", n=48)
    assert main(train_args(tmp_path, roberta_dir, "classification", train, "data.text_column=sentence")) == 0
    (run,) = (tmp_path / "runs").iterdir()
    model_dir = run / "model"
    config = json.loads((model_dir / "config.json").read_text())
    assert config["model_type"] == "roberta" and config["architectures"] == ["RobertaForSequenceClassification"]
    task, _ = load_trained_model(model_dir)
    examples = task.examples_from_inputs(["the film was good", "awful plot", "crème brûlée 🙂 " * 4])
    ours, batch = seqtune_logits(model_dir, examples)
    theirs = hf_model(model_dir, transformers.AutoModelForSequenceClassification)(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert torch.allclose(ours, theirs, atol=1e-4), (ours - theirs).abs().max()
    # the saved tokenizer is the one transformers reads
    reloaded = transformers.AutoTokenizer.from_pretrained(model_dir)
    assert batch["input_ids"][0, :int(batch["attention_mask"][0].sum())].tolist() == \
        reloaded("the film was good")["input_ids"]


def test_xlm_r_classifier_saved_by_seqtune_loads_in_transformers(tmp_path):
    from seqtune.config import ClassificationOptions
    from seqtune.models.task_model import model_for_finetuning, save_model
    from seqtune.tasks.classification import ClassificationTask
    from seqtune.tasks.sequence import TextExample

    directory = write_checkpoint(tmp_path / "xlmr", "xlm-roberta")
    tokenizer = load_tokenizer(directory)
    task = ClassificationTask(ClassificationOptions(type="classification"), DataConfig(max_length=MAX_TOKENS),
                              tokenizer)
    task.fit([TextExample(text, None, None, "t", label) for text, label in zip("abc", "012")])
    model, report = model_for_finetuning(str(directory), task)
    assert model.encoder.pooler is None and any("classifier.dense" in line for line in report)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.head.parameters():
            p.normal_(0, 0.5)
    save_model(tmp_path / "saved", model, task, tokenizer)
    assert json.loads((tmp_path / "saved" / "config.json").read_text())["architectures"] == \
        ["XLMRobertaForSequenceClassification"]
    ours, batch = seqtune_logits(tmp_path / "saved", task.examples_from_inputs(AWKWARD))
    theirs = hf_model(tmp_path / "saved", transformers.AutoModelForSequenceClassification)(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    assert torch.allclose(ours, theirs, atol=1e-4), (ours - theirs).abs().max()


def generated_tagging(rng: random.Random, n: int) -> list[tuple[list[str], list[str]]]:
    """Sentences where "Peter"/"Grünewald" are PER and "Brussels"/"東京" LOC; byte-level BPE splits some."""
    out = []
    for _ in range(n):
        words, tags = [], []
        for _ in range(rng.randint(3, 8)):
            r = rng.random()
            if r < 0.2:
                words += ["Peter", "Grünewald"] if rng.random() < 0.5 else ["Peter"]
                tags += ["B-PER", "I-PER"] if len(words) - len(tags) == 2 else ["B-PER"]
            elif r < 0.35:
                words.append(rng.choice(["Brussels", "東京"]))
                tags.append("B-LOC")
            else:
                words.append(rng.choice(["the", "film", "was", "good", "visited", "café", "."]))
                tags.append("O")
        out.append((words, tags))
    return out


def test_tagging_trains_and_loads_in_transformers(roberta_dir, tmp_path):
    rng = random.Random(0)
    sentences = generated_tagging(rng, 80)
    train = tmp_path / "train.txt"
    train.write_text("\n".join("".join(f"{w} {t}\n" for w, t in zip(*s)) for s in sentences))
    code = main(train_args(tmp_path, roberta_dir, "tagging", train, "train.epochs=6", "train.lr=3e-3"))
    assert code == 0
    (run,) = (tmp_path / "runs").iterdir()
    results = json.loads((run / "results.json").read_text())
    assert results["dev"]["accuracy"] > 0.8, results["dev"]
    model_dir = run / "model"
    assert json.loads((model_dir / "config.json").read_text())["architectures"] == ["RobertaForTokenClassification"]
    examples = [_sentence(w, t) for w, t in sentences[:6]]
    ours, batch = seqtune_logits(model_dir, examples)
    theirs = hf_model(model_dir, transformers.AutoModelForTokenClassification)(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    real = batch["attention_mask"].bool()
    assert torch.allclose(ours[real], theirs[real], atol=1e-4), (ours[real] - theirs[real]).abs().max()


# ---- refusals --------------------------------------------------------------------------------------

def test_max_length_beyond_the_offset_positions_is_refused(roberta_dir, tmp_path, capsys):
    train = write_sentiment_tsv(tmp_path / "train.tsv", n=8)
    args = train_args(tmp_path, roberta_dir, "classification", train, "data.text_column=sentence",
                      f"data.max_length={MAX_TOKENS + 1}")
    assert main(args) == 2
    assert "data.max_length 65 is larger than the model's 64 positions" in capsys.readouterr().err


def test_an_unsupported_model_type_lists_the_supported_ones(roberta_dir, tmp_path, capsys):
    model = tmp_path / "unknown"
    model.mkdir()
    for f in roberta_dir.iterdir():
        (model / f.name).write_bytes(f.read_bytes())
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "model_type": "not-a-model"}))  # nor in transformers
    train = write_sentiment_tsv(tmp_path / "train.tsv", n=8)
    assert main(train_args(tmp_path, model, "classification", train, "data.text_column=sentence")) == 2
    err = capsys.readouterr().err
    assert "model_type 'not-a-model' is neither one seqtune runs natively" in err
    assert "'bert', 'roberta', 'xlm-roberta'" in err


# ---- question answering: character offsets through byte-level BPE and SentencePiece -----------------

QA_CONTEXT = ("The café  served crème brûlée to Peter Grünewald in 東京 ; Ünïcödé wörds, Straße and 🙂 "
              "followed. Later, several   spaces   here and Brussels .")
QA_ANSWERS = ["café", "crème brûlée", "Peter Grünewald", "東京", "Ünïcödé wörds", "Straße", "🙂", "Brussels",
              "spaces", "Later"]


def qa_examples():
    from seqtune.data.readers.squad import Answer, QAExample
    return [QAExample(f"q{i}", f"what is answer {i}?", QA_CONTEXT, [Answer(a, QA_CONTEXT.index(a))], "t")
            for i, a in enumerate(QA_ANSWERS)]


def test_qa_offsets_cut_out_every_answer_exactly(family_dir):
    """Gold token spans (found from character offsets) map back to exactly the answer's characters, in
    every window that holds the answer; and answer extraction from logits peaked there returns it."""
    import numpy as np

    from seqtune.config import QuestionAnsweringOptions
    from seqtune.tasks.qa import QuestionAnsweringTask

    tokenizer = load_tokenizer(family_dir)
    task = QuestionAnsweringTask(QuestionAnsweringOptions(type="qa", doc_stride=20),
                                 DataConfig(max_length=48), tokenizer)
    examples = qa_examples()
    task.fit(examples)
    dataset = task.encode(examples, "dev")
    theirs = transformers.AutoTokenizer.from_pretrained(family_dir)
    found = set()
    outputs = []
    for feature in dataset.features:
        example = examples[feature["example_index"]]
        ids = feature["input_ids"]
        # <s> question </s></s> context-part </s>, as transformers' tokenizer lays out a pair
        question = theirs(example.question, add_special_tokens=False)["input_ids"]
        assert ids[:len(question) + 3] == [0, *question, 2, 2] and ids[-1] == 2
        start, end = feature["start_positions"], feature["end_positions"]
        logits = np.full((len(ids), 2), -10.0, dtype=np.float32)
        if start:
            a, b = feature["offsets"][start][0], feature["offsets"][end][1]
            assert QA_CONTEXT[a:b] == example.answers[0].text, (QA_CONTEXT[a:b], example.answers[0].text)
            found.add(example.id)
            logits[start, 0] = logits[end, 1] = 10.0
        outputs.append(logits)
    assert found == {e.id for e in examples}  # every answer lies whole in some window
    predictions = task.predictions(outputs, dataset)
    assert [p["answer"] for p in predictions] == QA_ANSWERS


def test_qa_model_saved_by_seqtune_loads_in_transformers(family_dir, tmp_path):
    from seqtune.config import QuestionAnsweringOptions
    from seqtune.models.task_model import model_for_finetuning, save_model
    from seqtune.tasks.qa import QuestionAnsweringTask

    tokenizer = load_tokenizer(family_dir)
    task = QuestionAnsweringTask(QuestionAnsweringOptions(type="qa", doc_stride=8), DataConfig(max_length=32),
                                 tokenizer)
    examples = qa_examples()[:4]
    task.fit(examples)
    model, _ = model_for_finetuning(str(family_dir), task)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.head.parameters():
            p.normal_(0, 0.5)
    save_model(tmp_path / "saved", model, task, tokenizer)
    family = encoder_config_from_dir(family_dir).family.hf_name
    assert json.loads((tmp_path / "saved" / "config.json").read_text())["architectures"] == \
        [family + "ForQuestionAnswering"]
    (start, end), batch = seqtune_logits(tmp_path / "saved", examples)
    out = hf_model(tmp_path / "saved", transformers.AutoModelForQuestionAnswering)(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    real = batch["attention_mask"].bool()
    assert torch.allclose(start[real], out.start_logits[real], atol=1e-4)
    assert torch.allclose(end[real], out.end_logits[real], atol=1e-4)


def test_qa_trains_through_the_cli(roberta_dir, tmp_path):
    squad = tmp_path / "squad.jsonl"
    squad.write_text("".join(json.dumps({"id": e.id, "question": e.question, "context": e.context,
                                         "answers": {"text": [e.answers[0].text],
                                                     "answer_start": [e.answers[0].start]}}) + "\n"
                             for e in qa_examples()))
    assert main(train_args(tmp_path, roberta_dir, "qa", squad, "data.max_length=48", "task.doc_stride=16")) == 0
    (run,) = (tmp_path / "runs").iterdir()
    results = json.loads((run / "results.json").read_text())
    assert set(results["dev"]) >= {"exact_match", "f1"}
    assert json.loads((run / "model" / "config.json").read_text())["architectures"] == \
        ["RobertaForQuestionAnswering"]


def test_a_tokenizer_of_another_family_is_refused(roberta_dir, tmp_path, capsys):
    """RoBERTa weights with an ESM tokenizer (vocab.txt of <cls> <pad> <eos> ...): exit 2, naming both."""
    model = tmp_path / "mixed"
    model.mkdir()
    for name in ("config.json", "model.safetensors"):
        (model / name).write_bytes((roberta_dir / name).read_bytes())
    (model / "vocab.txt").write_text("\n".join(["<cls>", "<pad>", "<eos>", "<unk>", *"LAGVSERTIDPKQNFYMHWC",
                                                "<mask>"]) + "\n")
    train = write_sentiment_tsv(tmp_path / "train.tsv", n=8)
    assert main(train_args(tmp_path, model, "classification", train, "data.text_column=sentence")) == 2
    err = capsys.readouterr().err
    assert "the tokenizer starts inputs with '<cls>', but roberta models" in err and "'<s>'" in err
    assert "Traceback" not in err


def test_a_word_that_normalises_to_nothing_keeps_a_token(family_dir):
    """A word of only whitespace after normalisation (U+3000 is a space after NFKC): transformers gives it
    no token; seqtune gives it one <unk>, so that it is still predicted, and every other word keeps
    transformers' pieces."""
    words = ["Peter", "\u3000", "Grünewald", "\u200b", "東京"]
    tokenizer = load_tokenizer(family_dir)
    theirs = transformers.AutoTokenizer.from_pretrained(family_dir, add_prefix_space=True)
    task = TaggingTask(TaggingOptions(type="tagging"), DataConfig(max_length=MAX_TOKENS), tokenizer)
    sentence = _sentence(words, ["O"] * len(words))
    task.fit([sentence])
    dataset = task.encode([sentence], "dev")
    ids, starts = dataset.features[0]["input_ids"][1:-1], dataset.word_starts[0]
    expected = theirs([words], is_split_into_words=True, add_special_tokens=False)
    pieces = {w: [t for t, wid in zip(expected["input_ids"][0], expected.word_ids(0)) if wid == w]
              for w in range(len(words))}
    empty = [w for w in range(len(words)) if not pieces[w]]
    # byte-level BPE keeps every byte; the SentencePiece pipeline (NFKC, whitespace split) empties U+3000
    assert bool(empty) == (encoder_config_from_dir(family_dir).model_type == "xlm-roberta")
    for w in range(len(words)):
        end = starts[w + 1] if w + 1 < len(words) else len(ids)
        assert ids[starts[w]:end] == (pieces[w] or [tokenizer.unk_id]), (words[w], ids[starts[w]:end])
    assert dataset.info.get("words_without_tokens", 0) == len(empty)
