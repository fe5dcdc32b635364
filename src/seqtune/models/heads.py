"""Task heads: the "minimal architecture change" of the BERT paper. Each returns logits only.

Every head is a `Head`: the one contract between the encoder and whatever sits on top of it. Its
sub-modules are named so that its state-dict keys are the Hugging Face keys of that head
(`classifier.weight`, `qa_outputs.weight`, ...).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from seqtune.models.encoder import Encoder, EncoderConfig, Pooler

Pooling = Literal["pooler", "cls", "mean", "mlp"]


class Head(nn.Module):
    """The head contract. A new head subclasses this, implements `forward`, and overrides a hook
    only where its default does not fit.

        forward(hidden (B, T, H), attention_mask (B, T), pooler | None, **inputs) -> logits

    `inputs` are the batch entries named in `batch_inputs`, passed by keyword when the batch has them.
    """

    # True when the head reads only position 0 ([CLS]): the encoder's last block then computes that
    # position alone (same numbers, less work). May be set per instance.
    first_token_only: bool = False
    # Batch entries besides input_ids/attention_mask that forward takes (e.g. the MLM head's positions).
    batch_inputs: ClassVar[tuple[str, ...]] = ()
    # The batch entry, (B, T) bool, naming the only positions the head reads (the MLM head's masked
    # positions): the encoder's last block then computes those alone, and forward gets their states
    # (M, H) without that entry. forward must also take (B, T, H) with the entry (the transformers path).
    # May be set per instance.
    chosen_input: str | None = None

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor, pooler: Pooler | None,
                **inputs: torch.Tensor):
        raise NotImplementedError

    def tie_weights(self, encoder: Encoder) -> None:
        """Share weights with the encoder (the MLM decoder is the word-embedding matrix). Default: none."""

    def load_pretrained(self, tensors: dict[str, torch.Tensor]) -> list[str]:
        """Load what this head recognises among a checkpoint's non-encoder tensors; return the keys
        used. Default: nothing (a fresh head)."""
        return []


def masked_mean(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of the real (unpadded) token vectors: (B, T, H), (B, T) -> (B, H)."""
    weights = attention_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)


class SequenceHead(Head):
    """One vector per sequence -> dropout -> linear, giving (B, num_outputs).

    pooling:
      - "pooler": the family's own *ForSequenceClassification head, so `transformers` loads the saved
        model and gives the same logits (the default). BERT: the pretrained pooler, tanh(W h_[CLS]),
        then dropout + linear. RoBERTa/XLM-R/ESM (no pooler): `RobertaClassificationHead` /
        `EsmClassificationHead` on <s>/<cls>; ELECTRA: the same with GELU (`ElectraClassificationHead`);
        DistilBERT: `pre_classifier` -> ReLU -> dropout -> `classifier`;
      - "cls":   the final [CLS] vector as it is (the BERT paper's formulation);
      - "mean":  masked mean over real tokens;
      - "mlp":   [CLS] -> dropout -> linear(H, mlp_hidden) -> GELU -> dropout -> linear.
    """

    def __init__(self, cfg: EncoderConfig, num_outputs: int, pooling: Pooling = "pooler",
                 dropout: float | None = None, mlp_hidden: int | None = None):
        super().__init__()
        self.pooling = pooling
        self.first_token_only = pooling != "mean"  # the encoder may compute only [CLS] in its last block
        p = cfg.hidden_dropout_prob if dropout is None else dropout
        family_head = cfg.family.classifier if pooling == "pooler" else None
        if family_head == "pre_classifier" and dropout is None:
            p = cfg.extra.get("seq_classif_dropout", p)  # DistilBERT's dropout before its classifier
        self.dropout = nn.Dropout(p)
        self.uses_pooler = family_head == "pooler"
        self.pre_classifier = nn.Linear(cfg.hidden_size, cfg.hidden_size) if family_head == "pre_classifier" else None
        if family_head in ("dense_tanh", "dense_gelu"):
            self.classifier = ClassificationHead(cfg.hidden_size, num_outputs, p,
                                                 torch.tanh if family_head == "dense_tanh" else F.gelu)
        elif pooling == "mlp":
            width = mlp_hidden or cfg.hidden_size
            self.classifier = nn.Sequential(
                nn.Linear(cfg.hidden_size, width), nn.GELU(), nn.Dropout(p), nn.Linear(width, num_outputs)
            )
        else:
            self.classifier = nn.Linear(cfg.hidden_size, num_outputs)
        init_linear_layers(self, cfg.initializer_range)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor, pooler: Pooler | None) -> torch.Tensor:
        if self.uses_pooler:
            vector = pooler(hidden)
        elif self.pooling == "mean":
            vector = masked_mean(hidden, attention_mask)
        else:
            vector = hidden[:, 0]
        if self.pre_classifier is not None:
            vector = F.relu(self.pre_classifier(vector))
        return self.classifier(self.dropout(vector))


class ClassificationHead(nn.Module):
    """RoBERTa's sequence-classification head after its first dropout: dense -> tanh -> dropout ->
    out_proj (keys `classifier.dense.*`, `classifier.out_proj.*`, as `RobertaClassificationHead`,
    `EsmClassificationHead`; ELECTRA's has GELU for tanh). The dense layer plays the part of BERT's
    pooler, trained from scratch with the head."""

    def __init__(self, hidden_size: int, num_outputs: int, dropout: float, activation=torch.tanh):
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.activation = activation
        self.dropout = nn.Dropout(dropout)
        self.out_proj = nn.Linear(hidden_size, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out_proj(self.dropout(self.activation(self.dense(x))))


class TokenHead(Head):
    """dropout -> linear on every position: (B, T, H) -> (B, T, num_labels). `BertForTokenClassification`."""

    def __init__(self, cfg: EncoderConfig, num_labels: int, dropout: float | None = None):
        super().__init__()
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob if dropout is None else dropout)
        self.classifier = nn.Linear(cfg.hidden_size, num_labels)
        init_linear_layers(self, cfg.initializer_range)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor, pooler: Pooler | None = None) -> torch.Tensor:
        return self.classifier(self.dropout(hidden))


ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "tanh": nn.Tanh}


class MLPTokenHead(Head):
    """Two layers on every position: linear(H, hidden) -> activation -> dropout -> linear(hidden, labels).

    Keys `mlp_dense.*`, `mlp_out.*`: not `BertForTokenClassification`'s, so `transformers` loads only
    the encoder of a model saved with this head."""

    def __init__(self, cfg: EncoderConfig, num_labels: int, hidden: int | None = None,
                 activation: str = "gelu", dropout: float | None = None):
        super().__init__()
        width = hidden or cfg.hidden_size
        self.mlp_dense = nn.Linear(cfg.hidden_size, width)
        self.activation = ACTIVATIONS[activation]()
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob if dropout is None else dropout)
        self.mlp_out = nn.Linear(width, num_labels)
        init_linear_layers(self, cfg.initializer_range)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor, pooler: Pooler | None = None) -> torch.Tensor:
        return self.mlp_out(self.dropout(self.activation(self.mlp_dense(hidden))))


class ConvTokenHead(Head):
    """1-D convolutions along the sequence, then a linear layer per position (as ProtTrans' secondary-
    structure CNN): `layers` x [Conv1d(channels, kernel, "same" padding) -> activation -> dropout] ->
    linear(channels, labels). Each position sees `kernel` neighbours per layer.

    Padding positions are zeroed before every convolution, so a sequence gets the same outputs
    whatever it is padded to in a batch (the zero padding of "same" convolutions at its real ends
    included). [CLS] and [SEP] are real positions and feed their neighbours. Keys `conv_layers.<i>.*`,
    `conv_out.*`: `transformers` loads only the encoder of a model saved with this head."""

    def __init__(self, cfg: EncoderConfig, num_labels: int, channels: int | None = None, kernel: int = 7,
                 layers: int = 1, activation: str = "gelu", dropout: float | None = None):
        super().__init__()
        channels = channels or 32
        self.conv_layers = nn.ModuleList(
            nn.Conv1d(cfg.hidden_size if i == 0 else channels, channels, kernel, padding="same")
            for i in range(layers)
        )
        self.activation = ACTIVATIONS[activation]()
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob if dropout is None else dropout)
        self.conv_out = nn.Linear(channels, num_labels)
        init_linear_layers(self, cfg.initializer_range)  # the linear layer; convolutions keep torch's init

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor, pooler: Pooler | None = None) -> torch.Tensor:
        keep = attention_mask.to(hidden.dtype).unsqueeze(1)  # (B, 1, T)
        x = hidden.transpose(1, 2)  # (B, H, T): channels first, as Conv1d wants
        for conv in self.conv_layers:
            x = self.dropout(self.activation(conv(x * keep)))
        return self.conv_out(x.transpose(1, 2))


class SpanHead(Head):
    """linear(H, 2) per token: start and end logits, each (B, T). `BertForQuestionAnswering`."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.qa_outputs = nn.Linear(cfg.hidden_size, 2)
        init_linear_layers(self, cfg.initializer_range)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor, pooler: Pooler | None = None):
        start, end = self.qa_outputs(hidden).unbind(-1)
        return start, end


def init_linear_layers(module: nn.Module, std: float) -> None:
    """BERT's initialiser for a fresh head: N(0, std) weights, zero biases."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=std)
            nn.init.zeros_(m.bias)
