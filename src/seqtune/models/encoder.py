"""A BERT encoder in plain PyTorch, readable top to bottom, and the families that share its shape.

What differs between the families is listed in `FAMILIES`:
- RoBERTa and XLM-R: position ids that start after the padding id, no pooler, their own
  classification head (`heads.py`);
- DistilBERT: no token types, its own config field names (`dim`, `n_layers`, ...) and head;
- ELECTRA (discriminator): embeddings of `embedding_size`, projected to `hidden_size` when they differ;
- ESM-2: pre-LayerNorm blocks, rotary position embeddings instead of learnt ones, a LayerNorm after
  the last block, and "token dropout" scaling of the word embeddings.
The checkpoint key names of each family are in `checkpoint.py`.

Shapes: B = batch, T = padded sequence length, H = hidden size, N = attention heads, D = H / N.

The module names are our own (short and descriptive); `checkpoint.py` maps them to and from the
Hugging Face key names. Query, key and value projections are fused into one `qkv` linear layer, so
self-attention does one matrix multiplication instead of three.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from seqtune.errors import SeqtuneError
from seqtune.models import dropout_attention
from seqtune.models.dropout import Dropout

ACTIVATIONS = {
    "gelu": lambda x: F.gelu(x),
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
}


@dataclass(frozen=True)
class Family:
    """What differs between the encoder families that run on this one encoder."""

    hf_name: str  # class-name stem in transformers: Bert -> BertForSequenceClassification
    prefix: str  # key prefix of the encoder in *For* checkpoints ("bert.", "roberta.")
    offset_positions: bool = False  # position ids start at pad_token_id + 1 (fairseq's convention)
    # The *ForSequenceClassification head (heads.py): "pooler" (BERT's pooler, then a linear layer),
    # "dense_tanh" (RoBERTa, ESM), "dense_gelu" (ELECTRA) or "pre_classifier" (DistilBERT's ReLU layer).
    classifier: str = "pooler"
    token_types: bool = True  # token type embeddings (DistilBERT and ESM have none)
    pre_norm: bool = False  # LayerNorm before attention / feed-forward, one more after the last block (ESM)
    rotary: bool = False  # rotary position embeddings in attention instead of learnt ones (ESM-2)
    # config.json names of this family -> our EncoderConfig field names (DistilBERT's own names)
    config_names: tuple[tuple[str, str], ...] = ()
    # EncoderConfig fields that this family's config.json does not have (not written when saving)
    absent_fields: tuple[str, ...] = ()

    @property
    def pooler(self) -> bool:
        """The encoder has BERT's pooler (read by the sequence-classification head)."""
        return self.classifier == "pooler"


DISTILBERT_CONFIG_NAMES = (("dim", "hidden_size"), ("n_layers", "num_hidden_layers"),
                           ("n_heads", "num_attention_heads"), ("hidden_dim", "intermediate_size"),
                           ("activation", "hidden_act"), ("dropout", "hidden_dropout_prob"),
                           ("attention_dropout", "attention_probs_dropout_prob"))

FAMILIES = {
    "bert": Family("Bert", "bert."),
    "roberta": Family("Roberta", "roberta.", offset_positions=True, classifier="dense_tanh"),
    "xlm-roberta": Family("XLMRoberta", "roberta.", offset_positions=True, classifier="dense_tanh"),
    "distilbert": Family("DistilBert", "distilbert.", classifier="pre_classifier", token_types=False,
                         config_names=DISTILBERT_CONFIG_NAMES,
                         absent_fields=("type_vocab_size", "layer_norm_eps", "position_embedding_type")),
    "electra": Family("Electra", "electra.", classifier="dense_gelu"),
    "esm": Family("Esm", "esm.", classifier="dense_tanh", token_types=False, pre_norm=True, rotary=True,
                  absent_fields=("type_vocab_size",)),
}


@dataclass
class EncoderConfig:
    """The fields of a Hugging Face `config.json` (a model_type of `FAMILIES`) that define the encoder.

    Keys of `config.json` that are not encoder fields (id2label, architectures, ...) are kept in
    `extra` and written back when the model is saved.
    """

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    initializer_range: float = 0.02
    pad_token_id: int = 0
    model_type: str = "bert"
    position_embedding_type: str = "absolute"
    extra: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.model_type not in FAMILIES:
            raise SeqtuneError(
                f"model_type {self.model_type!r} is not supported: seqtune reads checkpoints of the model "
                f"types {', '.join(map(repr, FAMILIES))} (config.json's model_type). Other families "
                "(DeBERTa, ModernBERT, ALBERT, ...) have other layers or position encodings."
            )
        if self.max_tokens < 1:
            raise SeqtuneError(
                f"max_position_embeddings {self.max_position_embeddings} leaves no position for tokens: "
                f"{self.model_type} position ids start at pad_token_id + 1 = {self.position_offset}."
            )
        wanted = "rotary" if self.family.rotary else "absolute"
        if self.position_embedding_type != wanted:
            raise SeqtuneError(
                f"position_embedding_type {self.position_embedding_type!r} is not supported for model_type "
                f"{self.model_type!r} (only {wanted!r}"
                + ("; ESM-1 checkpoints with learnt positions are not, ESM-2 ones are)." if self.family.rotary
                   else ").")
            )
        if self.hidden_act not in ACTIVATIONS:
            raise SeqtuneError(
                f"hidden_act {self.hidden_act!r} is not supported; use one of {sorted(ACTIVATIONS)}."
            )
        if self.hidden_size % self.num_attention_heads:
            raise SeqtuneError(
                f"hidden_size {self.hidden_size} is not divisible by num_attention_heads "
                f"{self.num_attention_heads}."
            )

    @property
    def family(self) -> Family:
        return FAMILIES[self.model_type]

    @property
    def embedding_size(self) -> int:
        """Width of the embeddings: ELECTRA's `embedding_size` (projected to hidden_size), else hidden_size."""
        return int(self.extra.get("embedding_size") or self.hidden_size)

    @property
    def token_dropout(self) -> bool:
        """ESM's token dropout: word embeddings of <mask> are zeroed and the rest rescaled (Embeddings)."""
        return bool(self.extra.get("token_dropout", False))

    @property
    def mask_token_id(self) -> int | None:
        return self.extra.get("mask_token_id")

    @property
    def position_offset(self) -> int:
        """Position id of the first token: 0, or pad_token_id + 1 for RoBERTa and XLM-R (whose
        max_position_embeddings counts those unused slots: 514 for 512 tokens)."""
        return self.pad_token_id + 1 if self.family.offset_positions else 0

    @property
    def max_tokens(self) -> int:
        """The longest input the position embeddings allow, special tokens included."""
        return self.max_position_embeddings - self.position_offset

    @classmethod
    def from_dict(cls, d: dict) -> EncoderConfig:
        family = FAMILIES.get(d.get("model_type", "bert"))
        renamed = dict(family.config_names) if family else {}
        d = {renamed.get(k, k): v for k, v in d.items()}
        if family and not family.token_types:
            d["type_vocab_size"] = 0
        if family and family.rotary:
            d.setdefault("position_embedding_type", "absolute")  # EsmConfig's default, refused above
        names = {f.name for f in fields(cls)} - {"extra"}
        known = {k: v for k, v in d.items() if k in names}
        extra = {k: v for k, v in d.items() if k not in names}
        return cls(**known, extra=extra)

    def to_dict(self) -> dict:
        """The config.json fields, under the family's own names."""
        d = asdict(self)
        extra = d.pop("extra")
        for name in self.family.absent_fields:
            d.pop(name)
        back = {ours: theirs for theirs, ours in self.family.config_names}
        return {**extra, **{back.get(k, k): v for k, v in d.items()}}


class Embeddings(nn.Module):
    """word + position + token type embeddings, then LayerNorm and dropout (BERT, RoBERTa, DistilBERT,
    ELECTRA; ELECTRA then projects embedding_size to hidden_size). ESM-2: word embeddings only, with
    token dropout (positions are rotary, applied in attention)."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        E = cfg.embedding_size
        self.word = nn.Embedding(cfg.vocab_size, E, padding_idx=cfg.pad_token_id)
        rotary = cfg.family.rotary
        self.position = None if rotary else nn.Embedding(cfg.max_position_embeddings, E)
        if cfg.extra.get("sinusoidal_pos_embds"):  # DistilBERT's fixed sinusoidal positions stay fixed
            self.position.weight.requires_grad_(False)
        self.token_type = nn.Embedding(cfg.type_vocab_size, E) if cfg.type_vocab_size else None
        self.position_offset = cfg.position_offset
        self.max_tokens = cfg.max_tokens
        # ESM-2 has no LayerNorm here (emb_layer_norm_before: false) and no dropout
        norm = cfg.extra.get("emb_layer_norm_before", False) if rotary else True
        self.norm = nn.LayerNorm(E, eps=cfg.layer_norm_eps) if norm else None
        self.dropout = Dropout(0.0 if rotary else cfg.hidden_dropout_prob)
        self.project = nn.Linear(E, cfg.hidden_size) if E != cfg.hidden_size else None
        # token dropout without a mask_token_id still scales (nothing is masked), as transformers does
        self.mask_token_id = (-1 if cfg.mask_token_id is None else cfg.mask_token_id) if cfg.token_dropout else None

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None,
                attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        # input_ids, token_type_ids, attention_mask: (B, T) -> (B, T, H)
        # Inputs are right-padded, so real tokens sit at 0..n-1: positions offset + 0..n-1, as
        # transformers' create_position_ids_from_input_ids gives them (padding gets other ids there,
        # which changes no real token's output).
        check_positions(input_ids.shape[1], self.max_tokens, "a batch of inputs of", self.position_offset)
        x = self.word(input_ids)
        if self.mask_token_id is not None:
            x = token_dropout(x, input_ids, attention_mask, self.mask_token_id)
        if self.position is not None:
            positions = torch.arange(input_ids.shape[1], device=input_ids.device) + self.position_offset
            x = x + self.position(positions)
        if self.token_type is not None:
            # One token type (RoBERTa, XLM-R): every token is type 0, whatever ids come (the `tokenizers`
            # library gives a pair template's overflowing windows type 1 for the second text).
            one_type = token_type_ids is None or self.token_type.num_embeddings == 1
            x = x + (self.token_type.weight[0] if one_type else self.token_type(token_type_ids))
        if self.norm is not None:
            x = self.norm(x)
        x = self.dropout(x)
        return self.project(x) if self.project is not None else x


# ESM's token dropout: pretraining masked 15% of tokens, 80% of those as <mask>, whose embeddings are
# zeroed; the others are scaled so that the expected sum matches pretraining (as ESM and transformers do,
# in training and in evaluation).
ESM_MASK_RATIO_TRAIN = 0.15 * 0.8


def token_dropout(x: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                  mask_token_id: int) -> torch.Tensor:
    is_mask = input_ids == mask_token_id  # (B, T)
    x = x.masked_fill(is_mask.unsqueeze(-1), 0.0)
    lengths = attention_mask.sum(-1) if attention_mask is not None else input_ids.shape[1]
    observed = is_mask.sum(-1).float() / lengths  # (B,)
    return (x * (1 - ESM_MASK_RATIO_TRAIN) / (1 - observed)[:, None, None]).to(x.dtype)


class Rotary(nn.Module):
    """Rotary position embeddings (RoFormer; ESM-2): query and key vectors rotated by their position.
    Position p, frequency pair i: angle p * theta^(-2i/D); the two halves of a head vector are the pairs."""

    def __init__(self, head_dim: int, theta: float):
        super().__init__()
        inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float) / head_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)  # computed, as ESM does

    def forward(self, q: torch.Tensor, k: torch.Tensor,
                query_positions: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        # q: (B, N, Tq, D) at positions 0..Tq-1 (Tq = 1: position 0 only, or T), or at query_positions
        # (B, Tq) when given; k: (B, N, T, D)
        T = k.shape[2]
        freqs = torch.arange(T, device=k.device, dtype=torch.float)[:, None] * self.inv_freq.to(k.device)
        angles = torch.cat((freqs, freqs), dim=-1)  # (T, D)
        cos, sin = angles.cos().to(k.dtype), angles.sin().to(k.dtype)
        if query_positions is not None:  # (B, Tq, D), the same for every head
            q_cos, q_sin = cos[query_positions][:, None], sin[query_positions][:, None]
        else:
            q_cos, q_sin = cos[:q.shape[2]], sin[:q.shape[2]]
        return rotate(q, q_cos, q_sin), rotate(k, cos, sin)


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated_half = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated_half * sin


# The cost of attention on a CPU, in one head's query-key pairs (forward + backward in training, with
# dropout), for choosing how a packed batch's sequences attend (`attention_groups`): a call costs
# ATTENTION_CALL_COST on top of its pairs, each query row ATTENTION_ROW_COST. Fitted by hand on
# MiniLM-shaped heads (12 x 32), one core: about 350 us a call, 1.2 us a row and 12.4 ns a pair of one
# head. `benchmarks/attention_groups.py --calibrate` refits them (a later fit: 109,000 and 188); the
# optimum is flat, both give the same step times within 3% (BENCHMARKS.md, "Session 8: grouped attention").
ATTENTION_CALL_COST = 28_000
ATTENTION_ROW_COST = 97


def attention_groups(lengths: Sequence[int], heads: int) -> list[tuple[list[int], int]]:
    """How a packed batch's sequences attend: groups of similar length, each one attention call padded
    to its longest member. Sorted by length, the sequences are cut where the cost model above is least
    (dynamic programming over the cut points, which lie between distinct lengths: splitting equal
    lengths only adds a call): one group for many short sequences (the call overhead dominates), one
    call per distinct length for long ones (the padding's quadratic work dominates). The work grows
    with the square of the number of distinct lengths, at most the padded length.
    Returns [(indices of the group's sequences, its padded length), ...]."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    distinct, counts = np.unique(np.asarray(lengths, dtype=np.int64), return_counts=True)
    ends = np.cumsum(counts)  # sequences up to and including each distinct length
    before = np.concatenate(([0], ends[:-1]))  # sequences shorter than each distinct length
    best = np.zeros(len(distinct) + 1)  # best[i]: least cost of the sequences of the i shortest lengths
    cut = np.zeros(len(distinct) + 1, dtype=np.int64)
    for i in range(1, len(distinct) + 1):
        T = float(distinct[i - 1])  # a group that ends at the i-th length is padded to it
        costs = best[:i] + ATTENTION_CALL_COST + heads * (ends[i - 1] - before[:i]) * (ATTENTION_ROW_COST * T + T * T)
        cut[i] = int(np.argmin(costs))
        best[i] = costs[cut[i]]
    groups, i = [], len(distinct)
    while i > 0:
        groups.append((order[before[cut[i]]:ends[i - 1]].tolist(), int(distinct[i - 1])))
        i = int(cut[i])
    return groups[::-1]


@dataclass(frozen=True)
class AttentionGroup:
    """Sequences that attend in one call: rows start..start + size * length of the group buffer."""

    start: int
    size: int
    length: int
    mask: torch.Tensor | None  # (size, 1, 1, length) bool, True = attend; None when none is padded


@dataclass(frozen=True)
class Packing:
    """Where the real tokens of a padded (B, T) batch are: `index` holds their flat positions in
    B * T. Blocks run their per-token work (projections, feed-forward, LayerNorm) on the packed
    (N, H) real tokens only. Attention runs in `groups` (`attention_groups`): `slots` places each
    real token in a buffer of the groups' padded rows, and each group attends in one call."""

    index: torch.Tensor  # (N,) long
    batch: int
    length: int
    slots: torch.Tensor  # (N,) long: each real token's row in the group buffer
    rows: int  # rows of the group buffer
    groups: tuple[AttentionGroup, ...]

    @classmethod
    def of(cls, attention_mask: torch.Tensor, heads: int) -> Packing:
        B, T = attention_mask.shape
        device = attention_mask.device
        lengths = attention_mask.sum(1).tolist()
        starts = np.cumsum([0, *lengths[:-1]])  # each sequence's first row in the packed tokens
        base = np.zeros(B, dtype=np.int64)  # each sequence's first row in the group buffer
        groups, start = [], 0
        for members, length in attention_groups(lengths, heads):
            size = len(members)
            base[members] = start + length * np.arange(size)
            group_lengths = torch.tensor([lengths[i] for i in members], device=device)
            mask = None
            if int(group_lengths.min()) < length:  # (size, 1, 1, length), True = attend
                mask = (torch.arange(length, device=device)[None] < group_lengths[:, None])[:, None, None]
            groups.append(AttentionGroup(start, size, length, mask))
            start += size * length
        slots = np.repeat(base - starts, lengths) + np.arange(sum(lengths))
        return cls(attention_mask.reshape(-1).nonzero().squeeze(1), B, T, torch.from_numpy(slots).to(device),
                   start, tuple(groups))

    def pack(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, ...) -> (N, ...)
        return x.reshape(self.batch * self.length, *x.shape[2:]).index_select(0, self.index)

    def unpack(self, x: torch.Tensor) -> torch.Tensor:  # (N, ...) -> (B, T, ...), zeros at padding
        full = x.new_zeros(self.batch * self.length, *x.shape[1:]).index_copy(0, self.index, x)
        return full.view(self.batch, self.length, *x.shape[1:])


@dataclass(frozen=True)
class Queries:
    """The positions whose output a block computes when the head reads only those (the MLM head: the
    masked positions); every position is still attended to. `rows` are their rows in the block's
    input, (B * T) padded or packed (see Packing), in row-major order of the (B, T) positions;
    `slots` place each in a query buffer of `width` rows a sequence, `positions` (B, width) give each
    buffer row's position in its sequence (rotary; 0 for unused rows)."""

    rows: torch.Tensor  # (M,) long
    slots: torch.Tensor  # (M,) long
    positions: torch.Tensor  # (B, width) long
    batch: int
    length: int
    width: int

    @classmethod
    def of(cls, chosen: torch.Tensor, packing: Packing | None) -> Queries | None:
        """chosen: (B, T) bool, real positions only. None when nothing is chosen."""
        B, T = chosen.shape
        flat = chosen.reshape(-1).nonzero().squeeze(1)  # (M,) positions in B * T
        if not flat.numel():
            return None
        counts = chosen.sum(1)
        width = int(counts.max())
        sequence, position = flat // T, flat % T
        rank = torch.arange(flat.numel(), device=flat.device) - (counts.cumsum(0) - counts)[sequence]
        slots = sequence * width + rank
        positions = torch.zeros(B * width, dtype=torch.long, device=flat.device).index_copy(0, slots, position)
        # packed: a real position's row is its rank among the real positions (packing.index is sorted)
        rows = flat if packing is None else torch.searchsorted(packing.index, flat)
        return cls(rows, slots, positions.view(B, width), B, T, width)


class SelfAttention(nn.Module):
    """Multi-head self-attention. The one place that decides which attention kernel runs."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.num_heads = cfg.num_attention_heads
        self.rotary = (Rotary(cfg.hidden_size // cfg.num_attention_heads, float(cfg.extra.get("rope_theta", 10000.0)))
                       if cfg.family.rotary else None)
        self.qkv = nn.Linear(cfg.hidden_size, 3 * cfg.hidden_size)
        self.out = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.dropout_p = cfg.attention_probs_dropout_prob

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, first_only: bool = False,
                packing: Packing | None = None) -> torch.Tensor:
        return self.out(self.context(x, mask, first_only, packing))

    def context(self, x: torch.Tensor, mask: torch.Tensor | None, first_only: bool = False,
                packing: Packing | None = None, queries: Queries | None = None) -> torch.Tensor:
        """The attended values of every head, concatenated: what the output projection `out` takes.
        x: (B, T, H), or (N, H) real tokens when packed; mask: (B, 1, 1, T) bool, True = attend, or
        None when nothing is padded. first_only: only position 0 asks (queries); every position is
        still attended to. Returns (B, Tq, H), or (N, H) when packed. queries: see query_context."""
        if queries is not None:
            return self.query_context(x, mask, queries, packing)
        N, D = self.num_heads, x.shape[-1] // self.num_heads
        if packing is not None:  # (N, H) real tokens; never with first_only (run_layers unpacks first)
            return self.attend_groups(self.qkv(x), packing, N, D)
        B, T, H = x.shape
        if first_only:
            w, b = self.qkv.weight, self.qkv.bias  # rows: query, key, value
            q = F.linear(x[:, :1], w[:H], b[:H]).view(B, 1, N, D).transpose(1, 2)  # (B, N, 1, D)
            k, v = F.linear(x, w[H:], b[H:]).view(B, T, 2, N, D).permute(2, 0, 3, 1, 4)
        else:
            q, k, v = self.qkv(x).view(B, T, 3, N, D).permute(2, 0, 3, 1, 4)
        # q: (B, N, Tq, D); k, v: (B, N, T, D)
        y = self.attend(q, k, v, mask)
        return y.transpose(1, 2).reshape(B, q.shape[2], H)

    def query_context(self, x: torch.Tensor, mask: torch.Tensor | None, queries: Queries,
                      packing: Packing | None = None) -> torch.Tensor:
        """`context` for the chosen positions alone: x (R, H) rows, padded (B * T) or packed -> (M, H).
        Keys and values for every row, queries for the M chosen ones, in a buffer of `queries.width`
        rows a sequence (zeros in unused rows, whose outputs are dropped)."""
        H = x.shape[-1]
        N, D = self.num_heads, H // self.num_heads
        B, T, W = queries.batch, queries.length, queries.width
        w, b = self.qkv.weight, self.qkv.bias  # rows: query, key, value
        kv = F.linear(x, w[H:], b[H:])  # (R, 2H)
        if packing is not None:
            kv = packing.unpack(kv)  # (B, T, 2H), zeros at padding (masked out)
        k, v = kv.reshape(B, T, 2, N, D).permute(2, 0, 3, 1, 4)  # (B, N, T, D)
        q_rows = F.linear(x.index_select(0, queries.rows), w[:H], b[:H])  # (M, H)
        q = q_rows.new_zeros(B * W, H).index_copy(0, queries.slots, q_rows).view(B, W, N, D).transpose(1, 2)
        y = self.attend(q, k, v, mask, queries.positions)  # (B, N, W, D)
        return y.transpose(1, 2).reshape(B * W, H).index_select(0, queries.slots)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
               query_positions: torch.Tensor | None = None) -> torch.Tensor:
        """Rotary positions (ESM), then scaled dot-product attention with dropout in training.
        q: (B, N, Tq, D) at positions 0..Tq-1, or at query_positions (B, Tq); k, v: (B, N, T, D)
        -> (B, N, Tq, D)."""
        if self.rotary is not None:
            q, k = self.rotary(q, k, query_positions)
        p = self.dropout_p if self.training else 0.0
        if dropout_attention.applies(q, mask, p):  # CPU training: keeps 5 bytes a weight, not 12
            return dropout_attention.dropout_attention(q, k, v, mask, p)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)

    def attend_groups(self, qkv: torch.Tensor, packing: Packing, N: int, D: int) -> torch.Tensor:
        """Attention of packed sequences, a group of similar lengths at a time (Packing.groups):
        qkv (Ntok, 3H) -> (Ntok, H). The tokens go to their rows of the group buffer (zeros at the
        groups' padding), each group attends in one call, and the real rows come back in packed order.
        A group whose sequences fill it needs no mask (without dropout SDPA then takes its fused kernel)."""
        buffer = qkv.new_zeros(packing.rows, qkv.shape[1]).index_copy(0, packing.slots, qkv)
        outputs = []
        # split, not a slice per group: in backward a slice's gradient is a zero-filled copy of the
        # whole buffer (one per group, then summed); split's is one concatenation
        pieces = buffer.split([group.size * group.length for group in packing.groups])
        for group, rows in zip(packing.groups, pieces):
            q, k, v = rows.view(group.size, group.length, 3, N, D).permute(2, 0, 3, 1, 4)  # (size, N, L, D)
            y = self.attend(q, k, v, group.mask)
            outputs.append(y.transpose(1, 2).reshape(group.size * group.length, N * D))
        return torch.cat(outputs).index_select(0, packing.slots)


class Layer(nn.Module):
    """One transformer block. Post-LayerNorm (BERT): x = LN(x + Attn(x)); x = LN(x + FFN(x)).
    Pre-LayerNorm (ESM): x = x + Attn(LN(x)); x = x + FFN(LN(x)).

    `add_attention` and `feed_forward` are the per-token parts after attention; `train.compile`
    compiles them and `SelfAttention.attend` (training/compiling.py)."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.attention = SelfAttention(cfg)
        self.attention_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.ffn_in = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
        self.ffn_out = nn.Linear(cfg.intermediate_size, cfg.hidden_size)
        self.ffn_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.act = ACTIVATIONS[cfg.hidden_act]
        self.dropout = Dropout(cfg.hidden_dropout_prob)
        self.pre_norm = cfg.family.pre_norm

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, first_only: bool = False,
                packing: Packing | None = None, queries: Queries | None = None) -> torch.Tensor:
        # first_only: compute the output at position 0 alone, (B, 1, H) (see Encoder.forward).
        # packing: x is (N, H), the real tokens only (see Packing); not with first_only.
        # queries: compute the outputs of the chosen positions alone, (M, H) (see Encoder.run_layers).
        if queries is not None:
            x = x.reshape(-1, x.shape[-1])  # (B * T, H) or packed (N, H)
            residual = x.index_select(0, queries.rows)
        else:
            residual = x[:, :1] if first_only else x
        attention_input = self.attention_norm(x) if self.pre_norm else x
        context = self.attention.context(attention_input, mask, first_only, packing, queries)
        return self.feed_forward(self.add_attention(residual, context))

    def add_attention(self, residual: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """Output projection, dropout, residual (and LayerNorm, post-LN)."""
        x = residual + self.dropout(self.attention.out(context))
        return x if self.pre_norm else self.attention_norm(x)

    def feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        """x + FFN(x), then LayerNorm (post-LN); x + FFN(LN(x)) (pre-LN)."""
        if self.pre_norm:
            return x + self.dropout(self.ffn_out(self.act(self.ffn_in(self.ffn_norm(x)))))
        return self.ffn_norm(x + self.dropout(self.ffn_out(self.act(self.ffn_in(x)))))


def check_positions(length: int, max_positions: int, what: str = "data.max_length", offset: int = 0) -> None:
    """The one check that inputs of `length` tokens fit the model's position embeddings.
    max_positions: the usable positions; offset: the position id of the first token (RoBERTa)."""
    if length > max_positions:
        usable = (f"max_position_embeddings {max_positions}" if not offset else
                  f"{max_positions} positions (max_position_embeddings {max_positions + offset}, whose "
                  f"first {offset} are never used by tokens)")
        raise SeqtuneError(f"{what} {length} is larger than the model's {usable}; lower data.max_length.")


class Pooler(nn.Module):
    """BERT's pooler: tanh(W h_[CLS] + b), pretrained with next-sentence prediction."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.hidden_size)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(hidden[:, 0]))  # (B, T, H) -> (B, H)


# Below this share of real tokens in a padded batch, blocks run packed (see Packing): the gather
# and scatter cost less than the projections and feed-forward on padding would.
PACK_BELOW_FILL = 0.9


class Encoder(nn.Module):
    """Embeddings, `num_hidden_layers` blocks and (optionally) the pooler.

    forward(input_ids (B, T), attention_mask (B, T) of 1 = real / 0 = padding, token_type_ids (B, T))
    returns the last hidden states (B, T, H). Padding never changes a real token's output: keys at
    padded positions are masked out of every attention.

    With first_token_only=True it returns (B, 1, H), the last state of position 0 ([CLS]) alone: the
    last block then computes queries, attention output and feed-forward for that one position (keys
    and values still for all). Same numbers, ~1/L less work for heads that read only [CLS].
    With `chosen` positions (B, T) bool it returns their states alone, (M, H), computed the same way
    (`run_layers`): the MLM head reads only the masked positions.

    A batch with much padding (under PACK_BELOW_FILL real tokens) runs packed: every per-token
    operation sees only the real tokens, so randomly composed batches cost about what length-sorted
    ones do. The real tokens' outputs are the same; padded positions come out as zeros.
    """

    gradient_checkpointing = False  # train.gradient_checkpointing: recompute each block in backward

    def __init__(self, cfg: EncoderConfig, add_pooler: bool = True):
        super().__init__()
        self.config = cfg
        self.embeddings = Embeddings(cfg)
        self.layers = nn.ModuleList(Layer(cfg) for _ in range(cfg.num_hidden_layers))
        # ESM: a LayerNorm after the last block (pre-LayerNorm blocks leave their output unnormalised)
        self.final_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps) if cfg.family.pre_norm else None
        # RoBERTa's classification head has its own dense + tanh: its encoder has no pooler.
        self.pooler = Pooler(cfg) if add_pooler and cfg.family.pooler else None
        self.apply(self.init_weights)

    def init_weights(self, module: nn.Module) -> None:
        """BERT's initialiser: N(0, initializer_range) weights, zero biases, unit LayerNorm."""
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=std)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=std)
            if module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        first_token_only: bool = False,
        chosen: torch.Tensor | None = None,
    ) -> torch.Tensor:
        hidden = self.embeddings(input_ids, token_type_ids, attention_mask)
        return self.run_layers(hidden, attention_mask, first_token_only=first_token_only, chosen=chosen)

    def run_layers(
        self,
        hidden: torch.Tensor,
        attention_mask: torch.Tensor | None,
        start: int = 0,
        end: int | None = None,
        first_token_only: bool = False,
        chosen: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Run blocks[start:end] on hidden states (B, T, H); lets frozen bottoms be cached.
        first_token_only: the last block run computes position 0 alone (see forward).
        chosen: (B, T) bool, real positions only: the last block run computes those positions alone
        (queries, attention output and feed-forward; keys and values for all), and the result is
        their states (M, H), in the row-major order of `hidden[chosen]`. The MLM head reads only
        the masked positions: at 15% masking this spares most of the last block's work."""
        layers = self.layers[start:end]
        mask, packing = None, None  # mask None: nothing is padded, and SDPA takes its fastest path
        real = None if attention_mask is None else int(attention_mask.sum())  # one device sync
        if real is not None and real < attention_mask.numel():
            mask = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, T), True = attend
            # Pack unless the only block is a [CLS]-only one (that block always runs padded).
            if real < PACK_BELOW_FILL * attention_mask.numel() and len(layers) > int(first_token_only):
                packing = Packing.of(attention_mask, self.config.num_attention_heads)
                hidden = packing.pack(hidden)
        queries = None
        for i, layer in enumerate(layers):
            last = i == len(layers) - 1
            first_only = first_token_only and last
            if first_only and packing is not None:
                hidden, packing = packing.unpack(hidden), None
            if chosen is not None and last:
                queries = Queries.of(chosen, packing)  # None when nothing is chosen
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                # keep only the block's input; recompute its inside in backward (same dropout masks)
                hidden = checkpoint(layer, hidden, mask, first_only, packing, queries, use_reentrant=False)
            else:
                hidden = layer(hidden, mask, first_only=first_only, packing=packing, queries=queries)
        if self.final_norm is not None and (end is None or end >= len(self.layers)):
            hidden = self.final_norm(hidden)
        if queries is not None:
            return hidden  # (M, H)
        hidden = packing.unpack(hidden) if packing is not None else hidden
        return hidden if chosen is None else hidden[chosen]  # no block ran, or nothing chosen


