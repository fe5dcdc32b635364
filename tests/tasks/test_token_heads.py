"""Per-position heads of the token tasks (task.head: linear, mlp, conv) and class weights in their loss
(task.class_weights), plus the classification task's class-weight forms."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from seqtune.config import ClassificationOptions, DataConfig, config_from_dict
from seqtune.data.readers.sequences import LabelledSequence
from seqtune.errors import SeqtuneError
from seqtune.inference import load_trained_model
from seqtune.models.heads import ConvTokenHead, MLPTokenHead, TokenHead
from seqtune.models.task_model import model_for_finetuning, save_model
from seqtune.tasks.classification import ClassificationTask
from seqtune.tasks.residues import ResidueOptions, ResidueTask
from seqtune.tasks.sequence import TextExample
from seqtune.tasks.windows import IGNORE_INDEX
from seqtune.tokenization import load_tokenizer

from test_residues import write_char_checkpoint


@pytest.fixture(scope="module")
def char_checkpoint(tmp_path_factory):
    return write_char_checkpoint(tmp_path_factory.mktemp("char_bert_heads"))


def make_task(tokenizer, max_length: int = 64, **options) -> ResidueTask:
    return ResidueTask(ResidueOptions(type="residues", **options), DataConfig(max_length=max_length), tokenizer)


def record(sequence: str, labels: str | None = None, n: int = 1) -> LabelledSequence:
    return LabelledSequence(sequence, list(labels) if labels else None, None, f"p{n}", f"train.csv:{n + 1}")


TRAIN = [record("MKVLAAGHE", "CHHHHEECC"), record("WYC", "EEC", n=2), record("MKTAYIAKQRQISFVKSHF", "C" * 19, n=3)]
HEADS = {"linear": TokenHead, "mlp": MLPTokenHead, "conv": ConvTokenHead}


def fitted(char_checkpoint, **options):
    tokenizer = load_tokenizer(char_checkpoint)
    task = make_task(tokenizer, **options)
    task.fit(TRAIN)
    return task, tokenizer


# ---- heads ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("head", ["linear", "mlp", "conv"])
def test_each_head_saves_and_reloads_with_identical_outputs(char_checkpoint, tmp_path, head):
    task, tokenizer = fitted(char_checkpoint, head=head)
    model, _ = model_for_finetuning(str(char_checkpoint), task)
    assert type(model.head) is HEADS[head]
    for p in model.head.parameters():  # make every head weight matter (fresh biases are zero)
        torch.nn.init.normal_(p, std=0.5)
    model.eval()
    save_model(tmp_path / "model", model, task, tokenizer)
    batch = task.collate(task.encode(TRAIN, "dev").features)
    with torch.no_grad():
        ours = model(batch)
    reloaded_task, reloaded = load_trained_model(tmp_path / "model")
    assert type(reloaded.head) is HEADS[head] and reloaded_task.options.head == head
    with torch.no_grad():
        torch.testing.assert_close(reloaded(batch), ours, rtol=0, atol=0)

    config = json.loads((tmp_path / "model" / "config.json").read_text())
    keys = set(model.head.state_dict())
    if head == "linear":
        assert config["architectures"] == ["BertForTokenClassification"]
        assert keys == {"classifier.weight", "classifier.bias"}
    else:  # transformers must load only the encoder: no claim of BertForTokenClassification, own keys
        assert config["architectures"] == ["BertModel"]
        assert not any(k.startswith("classifier.") for k in keys)


@pytest.mark.parametrize("head", ["mlp", "conv"])
def test_transformers_loads_the_encoder_of_a_seqtune_head(char_checkpoint, tmp_path, head):
    transformers = pytest.importorskip("transformers")
    task, tokenizer = fitted(char_checkpoint, head=head)
    model, _ = model_for_finetuning(str(char_checkpoint), task)
    assert type(model.head) is HEADS[head]
    model.eval()
    save_model(tmp_path / "model", model, task, tokenizer)
    hf = transformers.AutoModel.from_pretrained(tmp_path / "model").eval()
    assert type(hf).__name__ == "BertModel"
    batch = task.collate(task.encode(TRAIN[:1], "dev").features)
    with torch.no_grad():
        theirs = hf(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        hidden = model.encoder.run_layers(model.encoder.embeddings(batch["input_ids"], None),
                                          batch["attention_mask"], 0)
    torch.testing.assert_close(hidden, theirs, atol=1e-5, rtol=1e-4)


def test_mlp_head_shape_and_settings(char_checkpoint):
    task, _ = fitted(char_checkpoint, head="mlp", head_hidden=16, head_activation="tanh")
    head = task.build_head(model_for_finetuning(str(char_checkpoint), task)[0].encoder.config)
    assert head.mlp_dense.weight.shape == (16, 32) and head.mlp_out.weight.shape == (3, 16)
    assert isinstance(head.activation, torch.nn.Tanh)
    head.eval()
    hidden = torch.randn(2, 5, 32)
    expected = head.mlp_out(torch.tanh(head.mlp_dense(hidden)))
    torch.testing.assert_close(head(hidden, torch.ones(2, 5)), expected)


def test_conv_head_layers_and_receptive_field(char_checkpoint):
    task, _ = fitted(char_checkpoint, head="conv", conv_kernel=3, conv_layers=2, head_hidden=8)
    head = task.build_head(model_for_finetuning(str(char_checkpoint), task)[0].encoder.config).eval()
    assert [c.weight.shape for c in head.conv_layers] == [(8, 32, 3), (8, 8, 3)]
    assert head.conv_out.weight.shape == (3, 8)
    hidden = torch.randn(1, 12, 32)
    base = head(hidden, torch.ones(1, 12))
    moved = hidden.clone()
    moved[0, 6] += 1.0  # two kernel-3 layers: positions 4..8 see position 6, the others do not
    changed = (head(moved, torch.ones(1, 12)) - base).abs().sum(-1)[0] > 0
    assert changed.tolist() == [i in range(4, 9) for i in range(12)]


def test_conv_head_ignores_what_lies_at_padding(char_checkpoint):
    """Padding must not leak into real positions: garbage hidden states beyond a sequence's end change
    nothing, and a sequence gets the same logits alone as padded in a batch with a longer one."""
    task, tokenizer = fitted(char_checkpoint, head="conv", conv_layers=2)
    head = task.build_head(model_for_finetuning(str(char_checkpoint), task)[0].encoder.config).eval()
    assert isinstance(head, ConvTokenHead)
    mask = torch.tensor([[1] * 6 + [0] * 4])
    hidden = torch.randn(1, 10, 32)
    noisy = hidden.clone()
    noisy[0, 6:] = 100.0 * torch.randn(4, 32)
    torch.testing.assert_close(head(noisy, mask)[0, :6], head(hidden, mask)[0, :6])
    torch.testing.assert_close(head(hidden, mask)[0, :6], head(hidden[:, :6], mask[:, :6])[0])

    model, _ = model_for_finetuning(str(char_checkpoint), task)
    model.eval()
    features = task.encode(TRAIN, "dev").features
    with torch.no_grad():
        together = model(task.collate(features))
        for i, f in enumerate(features):
            alone = model(task.collate([f]))
            n = len(f["input_ids"])
            torch.testing.assert_close(together[i, :n], alone[0], atol=1e-5, rtol=1e-4)


def test_token_head_settings_come_from_the_config():
    cfg = config_from_dict({"task": {"type": "residues", "head": "conv", "conv_kernel": 5, "conv_layers": 2,
                                     "head_hidden": 16, "class_weights": {"H": 2.0}},
                            "model": {"path": "m"}, "data": {"train": "t.csv"}})
    assert cfg.task.head == "conv" and cfg.task.class_weights == {"H": 2.0}
    with pytest.raises(SeqtuneError, match="task.head"):
        config_from_dict({"task": {"type": "tagging", "head": "lstm"}, "model": {"path": "m"}})


# ---- class weights in the token loss --------------------------------------------------------------

def tiny_batch(task):
    """Two inputs: C E H on the first, H H then one masked position on the second; padded."""
    ids = task.label_to_id
    labels = torch.tensor([[IGNORE_INDEX, ids["C"], ids["E"], ids["H"], IGNORE_INDEX],
                           [IGNORE_INDEX, ids["H"], ids["H"], IGNORE_INDEX, IGNORE_INDEX]])
    torch.manual_seed(0)
    return torch.randn(2, 5, 3), {"labels": labels}


def test_named_class_weights_give_the_weighted_mean_loss(char_checkpoint):
    task, _ = fitted(char_checkpoint, class_weights={"E": 3.0, "H": 0.5})
    task.encode(TRAIN, "train")
    ids = task.label_to_id
    assert task.class_weights == [1.0 if label == "C" else 3.0 if label == "E" else 0.5 for label in task.labels]
    logits, batch = tiny_batch(task)
    nll = -torch.log_softmax(logits, -1)
    terms = [(nll[0, 1, ids["C"]], 1.0), (nll[0, 2, ids["E"]], 3.0), (nll[0, 3, ids["H"]], 0.5),
             (nll[1, 1, ids["H"]], 0.5), (nll[1, 2, ids["H"]], 0.5)]
    expected = sum(w * x for x, w in terms) / sum(w for _, w in terms)  # sum(w * loss) / sum(w)
    assert task.loss(logits, batch).item() == pytest.approx(expected.item(), rel=1e-6)
    unweighted = sum(x for x, _ in terms) / len(terms)
    assert expected.item() != pytest.approx(unweighted.item(), rel=1e-3)  # the weights change the loss


def test_class_weights_under_training_mean_normalisation(char_checkpoint):
    task, _ = fitted(char_checkpoint, class_weights={"E": 3.0}, loss_normalization="training_mean")
    train = [record("MK", "CE"), record("MKVL", "CCCC", n=2)]
    task.encode(train, "train")
    w = dict(zip(task.labels, task.class_weights))
    assert (w["C"], w["E"]) == (1.0, 3.0)
    assert task.labelled_per_feature == pytest.approx((1.0 + 3.0 + 4 * 1.0) / 2)  # weighted labels per input: 4
    logits, batch = tiny_batch(task)
    summed = F.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten(), ignore_index=IGNORE_INDEX,
                             weight=torch.tensor(task.class_weights), reduction="sum")
    assert task.loss(logits, batch).item() == pytest.approx(summed.item() / (2 * 4.0), rel=1e-6)


def test_auto_class_weights_are_balanced_over_the_trained_labels(char_checkpoint):
    task, _ = fitted(char_checkpoint, class_weights="auto")
    task.encode(TRAIN, "train")
    counts = {label: sum(r.labels.count(label) for r in TRAIN) for label in task.labels}
    n = sum(counts.values())
    expected = [n / (len(counts) * counts[label]) for label in task.labels]  # sklearn's "balanced"
    assert task.class_weights == pytest.approx(expected)
    assert task.class_weights[task.label_to_id["C"]] < 1 < task.class_weights[task.label_to_id["E"]]
    # dev/test encoding leaves them alone, and the saved state carries them
    task.encode(TRAIN[:1], "dev")
    assert task.class_weights == pytest.approx(expected)
    restored, _ = fitted(char_checkpoint)
    restored.load_state(json.loads(json.dumps(task.state())))
    assert restored.class_weights == pytest.approx(expected)


def test_no_class_weights_leave_the_loss_as_it_was(char_checkpoint):
    task, _ = fitted(char_checkpoint)
    task.encode(TRAIN, "train")
    assert task.class_weights is None and task.state()["class_weights"] is None
    logits, batch = tiny_batch(task)
    plain = F.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten(), ignore_index=IGNORE_INDEX)
    assert task.loss(logits, batch).item() == pytest.approx(plain.item(), rel=1e-6)


@pytest.mark.parametrize("weights, message", [
    ({"X": 2.0}, r"task.class_weights names label 'X', which is not in the training data; the labels are: C, E, H\."),
    ({"H": 0}, r"the weight of label 'H' is 0; weights are positive numbers"),
    ({"H": "big"}, r"the weight of label 'H' is 'big'"),
])
def test_bad_class_weights_are_clear_errors(char_checkpoint, weights, message):
    with pytest.raises(SeqtuneError, match=message):
        fitted(char_checkpoint, class_weights=weights)  # as soon as the labels are known


def test_numeric_labels_can_be_weighted_with_yaml_numbers(char_checkpoint):
    tokenizer = load_tokenizer(char_checkpoint)
    task = make_task(tokenizer, class_weights={1: 4.0})  # YAML reads `{1: 4.0}` with an int key
    train = [record("MKV", "011")]
    task.fit(train)
    task.encode(train, "train")
    assert task.class_weights == [1.0, 4.0]


# ---- classification: "auto" and {label: weight} ------------------------------------------------------

def classification(tiny_checkpoint, class_weights):
    task = ClassificationTask(ClassificationOptions(class_weights=class_weights), DataConfig(),
                              load_tokenizer(tiny_checkpoint))
    raw = ["neg", "neg", "neg", "pos", "mid", "mid"]
    task.fit([TextExample("a film", None, None, f"t:{i}", r) for i, r in enumerate(raw)])
    return task


def test_classification_auto_weights_equal_balanced(tiny_checkpoint):
    auto = classification(tiny_checkpoint, "auto").weights
    assert auto == classification(tiny_checkpoint, "balanced").weights
    assert auto == pytest.approx([6 / (3 * 2), 6 / (3 * 3), 6 / (3 * 1)])  # mid, neg, pos


def test_classification_named_weights(tiny_checkpoint):
    task = classification(tiny_checkpoint, {"pos": 5.0})
    assert task.weights == [1.0, 1.0, 5.0]
    logits = torch.tensor([[0.2, 0.1, -0.3], [1.0, 0.0, 0.5]])
    labels = torch.tensor([2, 0])
    nll = -torch.log_softmax(logits, -1)
    expected = (5.0 * nll[0, 2] + 1.0 * nll[1, 0]) / 6.0
    assert task.loss(logits, {"labels": labels}).item() == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(SeqtuneError, match=r"names label 'neutral', which is not in the label map; "
                                           r"the labels are: mid, neg, pos"):
        classification(tiny_checkpoint, {"neutral": 2.0})
    with pytest.raises(SeqtuneError, match="is not 'balanced'"):
        classification(tiny_checkpoint, "rare")
    assert np.isclose(classification(tiny_checkpoint, [1, 2, 3]).weights, [1, 2, 3]).all()


# ---- end to end through the CLI ---------------------------------------------------------------------

def test_cli_trains_a_conv_head_with_auto_class_weights(char_checkpoint, tmp_path, capsys):
    import random

    from test_residues import generated_proteins, write_csv

    from seqtune.cli import main

    rng = random.Random(0)
    train = write_csv(tmp_path / "train.csv", generated_proteins(rng, 60))
    dev = write_csv(tmp_path / "dev.csv", generated_proteins(rng, 10))
    config = tmp_path / "ss.yaml"
    config.write_text(
        "task: {type: residues, head: conv, conv_layers: 2, class_weights: auto}\n"
        f"model: {{path: {char_checkpoint}}}\n"
        f"data: {{train: {train}, dev: {dev}, text_column: input, label_column: dssp3, "
        "mask_column: resolved_mask, max_length: 32}\n"
        "train: {epochs: 4, batch_size: 16, lr: 3.0e-3, progress: false, seed: 1, num_threads: 1}\n"
        f"output_dir: {tmp_path / 'runs'}\n"
    )
    assert main(["train", str(config)]) == 0
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert "class weights (auto): C " in (run_dir / "log.txt").read_text()
    saved = json.loads((run_dir / "model" / "seqtune.json").read_text())
    assert saved["task"]["head"] == "conv" and len(saved["task_state"]["class_weights"]) == 3
    assert json.loads((run_dir / "results.json").read_text())["dev"]["q3"] > 0.6  # a constant guess: ~0.4

    config.write_text(config.read_text().replace("class_weights: auto", "class_weights: {X: 2}"))
    capsys.readouterr()
    assert main(["train", str(config)]) == 2
    err = capsys.readouterr().err
    assert "task.class_weights names label 'X'" in err and "Traceback" not in err


def test_classification_class_weights_take_every_form_through_the_config():
    from seqtune.config import load_config
    from seqtune.errors import SeqtuneError

    for value, expected in [("auto", "auto"), ("balanced", "balanced"), ("[1, 2.5]", [1.0, 2.5]),
                            ("{pos: 3}", {"pos": 3.0})]:
        cfg = load_config(None, ["task.type=classification", f"task.class_weights={value}"])
        assert cfg.task.class_weights == expected
    with pytest.raises(SeqtuneError, match="class_weights"):
        load_config(None, ["task.type=classification", "task.class_weights={pos: 0}"])
