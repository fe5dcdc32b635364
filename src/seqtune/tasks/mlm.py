"""Masked-language-model (pretraining) task: predict masked tokens of an unlabelled corpus.

Registry name "mlm". Saved models are `BertForMaskedLM` directories: `transformers` loads them with
the same logits, and every fine-tuning task takes them as `model.path`.

Data: a corpus (`data/corpus.py`: text lines, FASTA, CSV/TSV/JSONL column), tokenized once and cut
into windows of data.max_length (long records are chunked, never truncated).

Masking (`data/masking.py`) happens in `collate`, so every epoch sees new masks of the same
windows, drawn from a generator seeded with `task.mask_seed` (runs repeat exactly). The dev and test
sets are masked once, when encoded, with their own fixed seed: every evaluation scores the same
positions, so the held-out curve is comparable across steps and runs.

Logits exist only at masked positions (the head gathers them before the vocabulary projection);
the loss is their mean cross-entropy. Metrics: loss, perplexity = exp(loss), masked-token accuracy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from seqtune.data.corpus import Corpus, CorpusRecord, encode_corpus, read_corpus
from seqtune.data.masking import MaskingConfig, maskable_positions, mask_tokens
from seqtune.errors import SeqtuneError
from seqtune.models.mlm_head import MaskedLMHead
from seqtune.models.presets import ArchitectureSpec
from seqtune.tasks.base import EncodedDataset, Task, TaskOptions, collate_inputs, pad
from seqtune.vocab_builder import VocabSpec

EVAL_SEED_OFFSET = {"dev": 1_000_003, "test": 2_000_003}
EVAL_MASK_GROUP = 256  # features masked together when fixing the held-out masks


@dataclass
class MaskedLMOptions(TaskOptions):
    type: str = "mlm"
    packing: Literal["lines", "concatenate"] = "lines"  # one record per example, or joined and cut
    mask_probability: float = 0.15  # share of tokens chosen for prediction
    mask_fraction: float = 0.8  # of the chosen: replaced by [MASK]
    random_fraction: float = 0.1  # of the chosen: replaced by a random token (the rest unchanged)
    whole_word_mask: bool = True  # WordPiece: mask every piece of a chosen word (no effect on "char")
    mask_seed: int = 0  # seed of the masking generator
    # Only for `seqtune pretrain` without model.path (training from scratch):
    vocab: VocabSpec | None = None  # how to build the tokenizer (default: characters of the corpus)
    architecture: ArchitectureSpec | None = None  # encoder size (default: preset tiny)


class MaskedLMTask(Task):
    """Masked-language modelling on an unlabelled corpus. Needs a tokenizer with [MASK]."""

    name = "mlm"
    Options = MaskedLMOptions
    hf_architecture = "BertForMaskedLM"
    primary_metric = "loss"
    greater_is_better = False
    needs_pooler = False

    def __init__(self, options: MaskedLMOptions, data, tokenizer):
        super().__init__(options, data, tokenizer)
        if tokenizer.mask_id is None:
            raise SeqtuneError("the tokenizer has no [MASK] token, which masked-language modelling needs.")
        self.masking = MaskingConfig(options.mask_probability, options.mask_fraction,
                                     options.random_fraction, options.whole_word_mask)
        self.generator = torch.Generator().manual_seed(options.mask_seed)
        vocab = tokenizer.backend.get_vocab()
        special = {t for t in vocab if t.startswith("[") and t.endswith("]")}
        special |= {t.content for t in tokenizer.backend.get_added_tokens_decoder().values() if t.special}
        self.special_ids = torch.tensor(sorted(vocab[t] for t in special if t in vocab), dtype=torch.long)
        self.random_ids = torch.tensor(sorted(i for t, i in vocab.items() if t not in special), dtype=torch.long)
        if not len(self.random_ids):
            raise SeqtuneError("the tokenizer has no ordinary tokens to predict.")

    @property
    def uses_word_ids(self) -> bool:
        return self.masking.whole_word and self.tokenizer.kind != "char"

    # ---- data -----------------------------------------------------------------------------
    def read(self, path: str, split: str) -> Corpus:
        return read_corpus(path, self.data.format, self.data.text_column, self.data.max_rows)

    def examples_from_inputs(self, inputs: list[str]) -> Corpus:
        """In-memory texts (the Python API's `predict`) as a corpus."""
        if not all(isinstance(t, str) and t.strip() for t in inputs):
            raise SeqtuneError("masked-language-model inputs must be non-empty strings.")
        return Corpus([CorpusRecord(t, f"input {i + 1}") for i, t in enumerate(inputs)], "inputs")

    def encode(self, examples: Corpus, split: str) -> EncodedDataset:
        features, info = encode_corpus(examples, self.tokenizer, self.data.max_length,
                                       self.options.packing, with_word_ids=self.uses_word_ids)
        if split != "train":
            self._fix_masks(features, self.options.mask_seed + EVAL_SEED_OFFSET.get(split, 3_000_017))
        return EncodedDataset(examples.records, features, examples.source, info)

    def _fix_masks(self, features: list[dict], seed: int) -> None:
        """Mask held-out features once, in order, with a seeded generator: the same every evaluation."""
        generator = torch.Generator().manual_seed(seed)
        for start in range(0, len(features), EVAL_MASK_GROUP):
            group = features[start:start + EVAL_MASK_GROUP]
            batch = self._mask(collate_inputs(group, self.tokenizer.pad_id), group, generator)
            for row, feature in enumerate(group):
                n = len(feature["input_ids"])
                feature["masked_input_ids"] = batch["input_ids"][row, :n].tolist()
                feature["mlm_positions"] = batch["mlm_positions"][row, :n].nonzero()[:, 0].tolist()

    def _mask(self, batch: dict, features: list[dict], generator: torch.Generator) -> dict:
        word_ids = pad([f["word_ids"] for f in features], -1) if self.uses_word_ids else None
        maskable = maskable_positions(batch["input_ids"], batch["attention_mask"], self.special_ids)
        masked = mask_tokens(batch["input_ids"], maskable, self.masking, self.tokenizer.mask_id,
                             self.random_ids, generator, word_ids)
        batch["input_ids"] = masked.input_ids
        batch["mlm_positions"] = masked.positions
        batch["mlm_labels"] = masked.labels
        return batch

    def collate(self, features: list[dict]) -> dict[str, torch.Tensor]:
        """Pad, then mask: fresh masks for training features, the fixed ones for held-out features.

        Adds mlm_positions (B, T) bool and mlm_labels (M,) (original ids at those positions).
        """
        batch = collate_inputs(features, self.tokenizer.pad_id)
        if "mlm_positions" not in features[0]:
            return self._mask(batch, features, self.generator)
        positions = torch.zeros_like(batch["attention_mask"], dtype=torch.bool)
        for row, f in enumerate(features):
            positions[row, f["mlm_positions"]] = True
        batch["mlm_labels"] = batch["input_ids"][positions]
        batch["input_ids"] = pad([f["masked_input_ids"] for f in features], self.tokenizer.pad_id)
        batch["mlm_positions"] = positions
        return batch

    # ---- model ------------------------------------------------------------------------------
    def build_head(self, encoder_config) -> MaskedLMHead:
        if self.data.max_length > encoder_config.max_position_embeddings:
            raise SeqtuneError(
                f"data.max_length {self.data.max_length} is larger than the model's "
                f"max_position_embeddings {encoder_config.max_position_embeddings}; lower data.max_length."
            )
        return MaskedLMHead(encoder_config)

    def loss(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        # logits (M, V) at the masked positions; labels (M,)
        return F.cross_entropy(logits.float(), batch["mlm_labels"])

    # ---- outputs ----------------------------------------------------------------------------
    def split_outputs(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> list[np.ndarray]:
        """Per feature: an (m, 2) array of [negative log-likelihood, correct] per masked token."""
        labels = batch["mlm_labels"]
        nll = F.cross_entropy(logits.float(), labels, reduction="none")
        correct = (logits.argmax(-1) == labels).float()
        per_token = torch.stack([nll, correct], dim=1).cpu().numpy()  # (M, 2)
        counts = batch["mlm_positions"].sum(1).cpu().tolist()
        return np.split(per_token, np.cumsum(counts)[:-1])

    def metrics(self, outputs: list[np.ndarray], dataset: EncodedDataset) -> dict:
        scored = np.concatenate(outputs) if outputs else np.zeros((0, 2))
        if not len(scored):
            raise SeqtuneError(f"{dataset.source}: no masked tokens to evaluate.")
        loss = float(scored[:, 0].mean())
        return {
            "loss": loss,
            "perplexity": math.exp(min(loss, 50.0)),
            "accuracy": float(scored[:, 1].mean()),
            "masked_tokens": int(len(scored)),
        }

    def predictions(self, outputs: list[np.ndarray], dataset: EncodedDataset) -> list[dict]:
        """One record per corpus record that starts a window: its masked-token loss and accuracy."""
        by_example: dict[int, list[np.ndarray]] = {}
        for feature, out in zip(dataset.features, outputs):
            by_example.setdefault(feature["example_index"], []).append(out)
        records = []
        for index in sorted(by_example):
            scored = np.concatenate(by_example[index])
            records.append({
                "index": index,
                "where": dataset.examples[index].where,
                "masked_tokens": int(len(scored)),
                "loss": round(float(scored[:, 0].mean()), 6) if len(scored) else None,
                "accuracy": round(float(scored[:, 1].mean()), 6) if len(scored) else None,
            })
        return records

    def hf_config(self) -> dict:
        return {"architectures": [self.hf_architecture], "tie_word_embeddings": True}

    def describe(self) -> str:
        m = self.masking
        return (f"masked language model, {self.tokenizer.vocab_size} tokens ({self.tokenizer.kind}), "
                f"masking {m.probability:.0%} ({m.mask_fraction:.0%} [MASK], {m.random_fraction:.0%} "
                f"random){', whole words' if self.uses_word_ids else ''}")


# ---- probing a trained model: `seqtune fill-mask` ----------------------------------------------

def load_masked_lm(path: str, device: str = "auto"):
    """(model, tokenizer) from a seqtune MLM directory or any Hugging Face BERT checkpoint with an
    MLM head (`cls.predictions.*`). The model is in eval mode on the chosen device."""
    from pathlib import Path

    from seqtune.config import DataConfig, TrainConfig
    from seqtune.models.checkpoint import encoder_config_from_dir, read_weights
    from seqtune.models.mlm_head import HEAD_KEYS
    from seqtune.models.task_model import SEQTUNE_FILE, load_trained_model, model_for_finetuning
    from seqtune.tokenization import load_tokenizer
    from seqtune.training.loop import resolve_runtime

    if (Path(path) / SEQTUNE_FILE).is_file():
        task, model = load_trained_model(path)
        if task.name != "mlm":
            raise SeqtuneError(f"{path} was trained for the {task.name!r} task; fill-mask needs a masked "
                               "language model (seqtune pretrain, or a checkpoint with an MLM head).")
        tokenizer = task.tokenizer
    else:
        weights = read_weights(path)
        if not all(k in weights for k in HEAD_KEYS):
            raise SeqtuneError(f"{path} has no MLM head (cls.predictions.* weights), so it cannot "
                               "predict masked tokens.")
        tokenizer = load_tokenizer(path)
        positions = encoder_config_from_dir(path).max_position_embeddings
        task = MaskedLMTask(MaskedLMOptions(), DataConfig(max_length=positions), tokenizer)
        model, _ = model_for_finetuning(path, task, weights)
    model.to(resolve_runtime(TrainConfig(device=device)).device).eval()
    return model, tokenizer


def fill_mask(model, tokenizer, texts: list[str], top_k: int = 5) -> list[list[dict]]:
    """Top-k predictions at every [MASK] of each text.

    Returns, per text, one entry per [MASK]: {"position": token index, "predictions":
    [{"token", "id", "probability"}, ...]} (probabilities over the whole vocabulary).
    """
    if tokenizer.mask_id is None:
        raise SeqtuneError("the tokenizer has no [MASK] token.")
    tokenizer.backend.add_special_tokens(["[MASK]"])  # so "[MASK]" in text is one token, not "[", "mask", "]"
    encodings = tokenizer.backend.encode_batch(texts)
    for text, enc in zip(texts, encodings):
        if tokenizer.mask_id not in enc.ids:
            raise SeqtuneError(f"{text!r} has no [MASK] token to fill.")
    features = [{"input_ids": enc.ids} for enc in encodings]
    batch = collate_inputs(features, tokenizer.pad_id)
    batch["mlm_positions"] = batch["input_ids"] == tokenizer.mask_id
    device = next(model.parameters()).device
    batch = {k: v.to(device) for k, v in batch.items()}
    with torch.inference_mode():
        probs = model(batch).float().softmax(-1)  # (M, V)
    top = probs.topk(min(top_k, probs.shape[-1]), dim=-1)
    rows, cols = batch["mlm_positions"].nonzero(as_tuple=True)
    out: list[list[dict]] = [[] for _ in texts]
    for m, (row, col) in enumerate(zip(rows.tolist(), cols.tolist())):
        out[row].append({
            "position": col,
            "predictions": [
                {"token": tokenizer.backend.id_to_token(i), "id": i, "probability": round(p, 6)}
                for p, i in zip(top.values[m].tolist(), top.indices[m].tolist())
            ],
        })
    return out
