"""The masked-language-model head, with each family's Hugging Face key names (`MLM_LAYOUTS`:
`BertForMaskedLM`'s `cls.*`, RoBERTa's / XLM-R's / ESM's `lm_head.*`, DistilBERT's `vocab_*`).

    hidden (M, H) -> dense (H, H) -> activation -> LayerNorm -> decoder (H -> V, tied) + bias (V,)

The decoder weight is the encoder's word-embedding matrix (tied, as in BERT): it is not a parameter
of the head, so the head's state dict holds only the dense layer, the LayerNorm and the output bias
(`cls.predictions.transform.dense.*`, `cls.predictions.transform.LayerNorm.*`, `cls.predictions.bias`
for BERT); `transformers` re-ties the decoder to the word embeddings on loading.

Why positions are gathered first: the vocabulary projection costs H x V per position, most of the
head's work; with 15% masking, projecting only the masked positions does ~1/7 of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from seqtune.errors import SeqtuneError
from seqtune.models.encoder import ACTIVATIONS, EncoderConfig
from seqtune.models.heads import Head


@dataclass(frozen=True)
class MLMLayout:
    """Where a family's *ForMaskedLM keeps the head's parts (Hugging Face names)."""

    dense: str
    norm: str
    bias: str  # the output bias (V,)
    tied: tuple[str, ...]  # decoder keys that transformers ties to the word embeddings
    activation: str | None = None  # None: the config's hidden_act

    @property
    def keys(self) -> tuple[str, ...]:
        """The head's own tensors, as the checkpoint names them."""
        return (f"{self.dense}.weight", f"{self.dense}.bias", f"{self.norm}.weight", f"{self.norm}.bias", self.bias)


# RoBERTa, XLM-R and ESM: `lm_head` (dense -> GELU -> layer_norm -> decoder); DistilBERT: vocab_transform ->
# activation -> vocab_layer_norm -> vocab_projector. ELECTRA discriminators have no MLM head (the generator,
# a separate model, has).
ROBERTA_MLM = MLMLayout("lm_head.dense", "lm_head.layer_norm", "lm_head.bias",
                        ("lm_head.decoder.weight", "lm_head.decoder.bias"), activation="gelu")
MLM_LAYOUTS = {
    "bert": MLMLayout("cls.predictions.transform.dense", "cls.predictions.transform.LayerNorm", "cls.predictions.bias",
                      ("cls.predictions.decoder.weight", "cls.predictions.decoder.bias")),
    "roberta": ROBERTA_MLM,
    "xlm-roberta": ROBERTA_MLM,
    "esm": ROBERTA_MLM,
    "distilbert": MLMLayout("vocab_transform", "vocab_layer_norm", "vocab_projector.bias", ("vocab_projector.weight",)),
}
HEAD_KEYS = MLM_LAYOUTS["bert"].keys
TIED_KEYS = MLM_LAYOUTS["bert"].tied


def _attach(root: nn.Module, path: str, item: nn.Module | nn.Parameter) -> None:
    """Register `item` at the dotted `path` under `root`, creating empty parent modules as needed."""
    *parents, name = path.split(".")
    for part in parents:
        if not hasattr(root, part):
            root.add_module(part, nn.Module())
        root = getattr(root, part)
    if isinstance(item, nn.Parameter):
        root.register_parameter(name, item)
    else:
        root.add_module(name, item)


class MaskedLMHead(Head):
    """forward(hidden (B, T, H), attention_mask, pooler, mlm_positions (B, T) bool | None) -> logits.

    With `mlm_positions`: logits (M, V) for the M chosen positions, in row-major order (the order of
    `hidden[mlm_positions]`). Without: logits (..., V) at every position of `hidden`, as
    `BertForMaskedLM` for (B, T, H), or (M, V) for states the encoder computed at the masked positions
    alone (TaskModel, `chosen_input`).
    Call `tie_weights(encoder)` before use (TaskModel does).
    """

    batch_inputs = ("mlm_positions",)
    chosen_input = "mlm_positions"  # TaskModel passes the masked positions' states alone, (M, H)

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        if cfg.model_type not in MLM_LAYOUTS:
            raise SeqtuneError(f"model_type {cfg.model_type!r} has no masked-language-model head in seqtune "
                               f"(supported: {', '.join(map(repr, MLM_LAYOUTS))}).")
        self.layout = MLM_LAYOUTS[cfg.model_type]
        _attach(self, self.layout.dense, nn.Linear(cfg.hidden_size, cfg.hidden_size))
        _attach(self, self.layout.norm, nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps))
        _attach(self, self.layout.bias, nn.Parameter(torch.zeros(cfg.vocab_size)))
        self.act = ACTIVATIONS[self.layout.activation or cfg.hidden_act]
        self._word_embeddings: list[nn.Embedding] = []  # a list: not registered as a submodule
        std = cfg.initializer_range
        nn.init.normal_(self.dense.weight, std=std)
        nn.init.zeros_(self.dense.bias)

    @property
    def dense(self) -> nn.Linear:
        return self.get_submodule(self.layout.dense)

    @property
    def norm(self) -> nn.LayerNorm:
        return self.get_submodule(self.layout.norm)

    @property
    def bias(self) -> nn.Parameter:
        return self.get_parameter(self.layout.bias)

    def tie_weights(self, encoder: nn.Module) -> None:
        """Use the encoder's word embeddings (V, H) as the decoder weight."""
        embedding = encoder.embeddings.word
        if embedding.num_embeddings != self.bias.numel():
            raise SeqtuneError(
                f"the MLM head has {self.bias.numel()} outputs but the encoder "
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
        x = self.norm(self.act(self.dense(hidden)))
        return F.linear(x, self.decoder_weight, self.bias)  # (..., V)

    def load_pretrained(self, tensors: dict[str, torch.Tensor]) -> list[str]:
        """Load the MLM head of a checkpoint when it has one; returns the keys used (tied ones too).

        A checkpoint with only some of the head's tensors, or of another vocabulary size, is an error.
        """
        keys = self.layout.keys
        found = [k for k in keys if k in tensors]
        if not found:
            return []
        missing = [k for k in keys if k not in tensors]
        if missing:
            raise SeqtuneError(f"the checkpoint has part of an MLM head: {', '.join(missing)} missing.")
        state = {k: tensors[k] for k in keys}
        own = self.state_dict()
        wrong = [f"{k}: {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in state.items() if v.shape != own[k].shape]
        if wrong:
            raise SeqtuneError(
                "the checkpoint's MLM head does not fit this model (different vocabulary or hidden "
                f"size): {'; '.join(wrong)}."
            )
        self.load_state_dict(state)
        return [*keys, *(k for k in self.layout.tied if k in tensors)]
