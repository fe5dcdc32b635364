"""Task heads: the "minimal architecture change" of the BERT paper. Each returns logits only.

Every head has `forward(hidden (B, T, H), attention_mask (B, T), pooler) -> logits`, and its
sub-modules are named so that its state-dict keys are the Hugging Face keys of that head
(`classifier.weight`, `qa_outputs.weight`, ...).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from seqtune.models.encoder import EncoderConfig, Pooler

Pooling = Literal["pooler", "cls", "mean", "mlp"]


def masked_mean(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of the real (unpadded) token vectors: (B, T, H), (B, T) -> (B, H)."""
    weights = attention_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)


class SequenceHead(nn.Module):
    """One vector per sequence -> dropout -> linear, giving (B, num_outputs).

    pooling:
      - "pooler": BERT's pretrained pooler, tanh(W h_[CLS]); exactly `BertForSequenceClassification`,
        so `transformers` loads the saved model and gives the same logits (the default);
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
        self.dropout = nn.Dropout(p)
        if pooling == "mlp":
            width = mlp_hidden or cfg.hidden_size
            self.classifier = nn.Sequential(
                nn.Linear(cfg.hidden_size, width), nn.GELU(), nn.Dropout(p), nn.Linear(width, num_outputs)
            )
        else:
            self.classifier = nn.Linear(cfg.hidden_size, num_outputs)
        init_linear_layers(self, cfg.initializer_range)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor, pooler: Pooler | None) -> torch.Tensor:
        if self.pooling == "pooler":
            vector = pooler(hidden)
        elif self.pooling == "mean":
            vector = masked_mean(hidden, attention_mask)
        else:
            vector = hidden[:, 0]
        return self.classifier(self.dropout(vector))


class TokenHead(nn.Module):
    """dropout -> linear on every position: (B, T, H) -> (B, T, num_labels). `BertForTokenClassification`."""

    def __init__(self, cfg: EncoderConfig, num_labels: int, dropout: float | None = None):
        super().__init__()
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob if dropout is None else dropout)
        self.classifier = nn.Linear(cfg.hidden_size, num_labels)
        init_linear_layers(self, cfg.initializer_range)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor, pooler: Pooler | None = None) -> torch.Tensor:
        return self.classifier(self.dropout(hidden))


class SpanHead(nn.Module):
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
