"""Parity with transformers on the real all-MiniLM-L6-v2 checkpoint (fp32, max abs diff <= 1e-4)."""

import pytest
import torch

from seqtune.models.checkpoint import encoder_config_from_dir, load_encoder_state, read_weights, split_checkpoint
from seqtune.models.encoder import Encoder
from seqtune.models.task_model import TaskModel, save_model
from seqtune.models.heads import SequenceHead
from seqtune.tokenization import load_tokenizer

transformers = pytest.importorskip("transformers")

TEXTS = ["a gorgeous, witty, seductive movie.", "dull", "the plot is nothing but boilerplate clichés "
         "from start to finish, and the script assumes that not only would subtlety be lost on the "
         "target audience , but that it 's also too stupid to realize", "it's good!"]


def batch_for(tokenizer, texts, pairs=None):
    enc = tokenizer.encode_batch(texts, pairs)
    T = max(len(e.ids) for e in enc)
    ids = torch.tensor([e.ids + [0] * (T - len(e.ids)) for e in enc])
    types = torch.tensor([e.type_ids + [0] * (T - len(e.ids)) for e in enc])
    mask = torch.tensor([[1] * len(e.ids) + [0] * (T - len(e.ids)) for e in enc])
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


@pytest.fixture(scope="module")
def ours(minilm_dir):
    enc = Encoder(encoder_config_from_dir(minilm_dir))
    load_encoder_state(enc, split_checkpoint(read_weights(minilm_dir)), str(minilm_dir))
    return enc.eval()


def test_tokenizer_matches_transformers(minilm_dir):
    ours = load_tokenizer(minilm_dir)
    ref = transformers.AutoTokenizer.from_pretrained(str(minilm_dir))
    for text in TEXTS:
        assert ours.encode_batch([text])[0].ids == ref(text)["input_ids"]
    pair = ours.encode_batch(["is it good?"], ["it was great"])[0]
    expected = ref("is it good?", "it was great")
    assert pair.ids == expected["input_ids"] and pair.type_ids == expected["token_type_ids"]


def test_hidden_states_and_pooler_match_transformers(minilm_dir, ours):
    batch = batch_for(load_tokenizer(minilm_dir), TEXTS)
    ref = transformers.BertModel.from_pretrained(str(minilm_dir)).eval()
    with torch.no_grad():
        hidden = ours(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        expected = ref(**batch)
    real = batch["attention_mask"].bool()
    assert (hidden - expected.last_hidden_state)[real].abs().max() <= 1e-4
    assert (ours.pooler(hidden) - expected.pooler_output).abs().max() <= 1e-4


def test_padding_does_not_change_real_tokens(minilm_dir, ours):
    tokenizer = load_tokenizer(minilm_dir)
    batch = batch_for(tokenizer, TEXTS)
    alone = batch_for(tokenizer, TEXTS[1:2])
    with torch.no_grad():
        padded = ours(batch["input_ids"], batch["attention_mask"])[1, : alone["input_ids"].shape[1]]
        single = ours(alone["input_ids"], alone["attention_mask"])[0]
    assert (padded - single).abs().max() <= 1e-5


class _Task:
    """The minimum save_model needs from a task."""
    def __init__(self, tokenizer):
        from seqtune.tasks.classification import ClassificationOptions
        from seqtune.config import DataConfig
        self.options, self.data, self.tokenizer = ClassificationOptions(type="classification"), DataConfig(), tokenizer
    def hf_config(self):
        return {"architectures": ["BertForSequenceClassification"], "id2label": {"0": "neg", "1": "pos", "2": "mixed"},
                "label2id": {"neg": 0, "pos": 1, "mixed": 2}, "problem_type": "single_label_classification"}
    def state(self):
        return {"labels": ["neg", "pos", "mixed"]}


def test_saved_classifier_loads_in_transformers_with_same_logits(minilm_dir, ours, tmp_path):
    torch.manual_seed(0)
    tokenizer = load_tokenizer(minilm_dir)
    model = TaskModel(ours, SequenceHead(ours.config, 3, "pooler")).eval()
    batch = batch_for(tokenizer, TEXTS, ["a pair", "another text here", "x", "why not"])
    with torch.no_grad():
        logits = model(batch)
    save_model(tmp_path, model, _Task(tokenizer), tokenizer)
    ref = transformers.AutoModelForSequenceClassification.from_pretrained(str(tmp_path)).eval()
    with torch.no_grad():
        expected = ref(**batch).logits
    assert (logits - expected).abs().max() <= 1e-4
    assert ref.config.id2label[2] == "mixed"
    ref_tokenizer = transformers.AutoTokenizer.from_pretrained(str(tmp_path))
    assert ref_tokenizer("is it good?")["input_ids"] == tokenizer.encode_batch(["is it good?"])[0].ids
