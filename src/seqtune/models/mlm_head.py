"""BERT's masked-language-model head, with Hugging Face key names (`BertForMaskedLM`'s `cls.*`).

    hidden (M, H) -> dense (H, H) -> activation -> LayerNorm -> decoder (H -> V, tied) + bias (V,)

The decoder weight is the encoder's word-embedding matrix (tied, as in BERT): it is not a parameter
of the head, so the head's state dict holds only `cls.predictions.transform.dense.*`,
`cls.predictions.transform.LayerNorm.*` and `cls.predictions.bias`; `transformers` re-ties
`cls.predictions.decoder.weight` to `bert.embeddings.word_embeddings.weight` on loading.

Why positions are gathered first: the vocabulary projection costs H x V per position, most of the
head's work; with 15% masking, projecting only the masked positions does ~1/7 of it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from seqtune.errors import SeqtuneError
from seqtune.models.encoder import ACTIVATIONS, EncoderConfig
from seqtune.models.heads import Head

HEAD_KEYS = (
    "cls.predictions.transform.dense.weight",
    "cls.predictions.transform.dense.bias",
    "cls.predictions.transform.LayerNorm.weight",
    "cls.predictions.transform.LayerNorm.bias",
    "cls.predictions.bias",
)
TIED_KEYS = ("cls.predictions.decoder.weight", "cls.predictions.decoder.bias")


class PredictionTransform(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.act = ACTIVATIONS[cfg.hidden_act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.act(self.dense(x)))


class Predictions(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.transform = PredictionTransform(cfg)
        self.bias = nn.Parameter(torch.zeros(cfg.vocab_size))


class MaskedLMHead(Head):
    """forward(hidden (B, T, H), attention_mask, pooler, mlm_positions (B, T) bool | None) -> logits.

    With `mlm_positions`: logits (M, V) for the M chosen positions, in row-major order (the order of
    `hidden[mlm_positions]`). Without: logits (B, T, V) at every position, as `BertForMaskedLM`.
    Call `tie_weights(encoder)` before use (TaskModel does).
    """

    batch_inputs = ("mlm_positions",)

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.cls = nn.ModuleDict({"predictions": Predictions(cfg)})
        self._word_embeddings: list[nn.Embedding] = []  # a list: not registered as a submodule
        std = cfg.initializer_range
        nn.init.normal_(self.predictions.transform.dense.weight, std=std)
        nn.init.zeros_(self.predictions.transform.dense.bias)

    @property
    def predictions(self) -> Predictions:
        return self.cls["predictions"]

    def tie_weights(self, encoder: nn.Module) -> None:
        """Use the encoder's word embeddings (V, H) as the decoder weight."""
        embedding = encoder.embeddings.word
        if embedding.num_embeddings != self.predictions.bias.numel():
            raise SeqtuneError(
                f"the MLM head has {self.predictions.bias.numel()} outputs but the encoder "
                f"{embedding.num_embeddings} word embeddings."
            )
        self._word_embeddings[:] = [embedding]

    @property
    def decoder_weight(self) -> torch.Tensor:
        if not self._word_embeddings:
            raise RuntimeError("MaskedLMHead.tie_weights(encoder) was not called.")
        return self._word_embeddings[0].weight

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor | None = None, pooler=None,
                mlm_positions: torch.Tensor | None = None) -> torch.Tensor:
        if mlm_positions is not None:
            hidden = hidden[mlm_positions]  # (B, T, H) -> (M, H): gather before the projection
        x = self.predictions.transform(hidden)
        return F.linear(x, self.decoder_weight, self.predictions.bias)  # (..., V)

    def load_pretrained(self, tensors: dict[str, torch.Tensor]) -> list[str]:
        """Load the MLM head of a checkpoint when it has one; returns the keys used (tied ones too).

        A checkpoint with only some of the head's tensors, or of another vocabulary size, is an error.
        """
        found = [k for k in HEAD_KEYS if k in tensors]
        if not found:
            return []
        missing = [k for k in HEAD_KEYS if k not in tensors]
        if missing:
            raise SeqtuneError(f"the checkpoint has part of an MLM head: {', '.join(missing)} missing.")
        state = {k: tensors[k] for k in HEAD_KEYS}
        own = self.state_dict()
        wrong = [f"{k}: {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in state.items() if v.shape != own[k].shape]
        if wrong:
            raise SeqtuneError(
                "the checkpoint's MLM head does not fit this model (different vocabulary or hidden "
                f"size): {'; '.join(wrong)}."
            )
        self.load_state_dict(state)
        return [*HEAD_KEYS, *(k for k in TIED_KEYS if k in tensors)]
