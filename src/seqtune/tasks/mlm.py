"""Masked-language-model (pretraining) task: predict masked tokens of an unlabelled corpus.

Registry name "mlm". Saved models are `BertForMaskedLM` directories: `transformers` loads them with
the same logits, and every fine-tuning task takes them as `model.path`.

Data: a corpus (`data/corpus.py`: text lines, FASTA, CSV/TSV/JSONL column), tokenized once and cut
into windows of data.max_length (long records are chunked, never truncated).

Masking (`data/masking.py`) happens in `collate`, so every epoch sees new masks of the same
windows, drawn from a generator seeded with `task.mask_seed` (runs repeat exactly). The dev and test
sets are masked once, when encoded, with their own fixed seed: every evaluation scores the same
positions, so the held-out curve is comparable across steps and runs. With overlapping k-mers
(`model.vocab.kmer_overlap`) the chosen tokens are spans of k (`data/kmer_masking.py`).

Logits exist only at masked positions (the head gathers them before the vocabulary projection);
the loss is their mean cross-entropy. Metrics: loss, perplexity = exp(loss), masked-token accuracy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from seqtune.config import DataConfig, MaskedLMOptions
from seqtune.data.corpus import (
    Corpus,
    CorpusRecord,
    encode_corpus,
    iter_corpus,
    read_corpus,
)
from seqtune.data.kmer_masking import choose_kmer_spans
from seqtune.data.masking import MaskingConfig, mask_tokens, maskable_positions
from seqtune.data.similarity import (
    THRESHOLD,
    K,
    NearDuplicateIndex,
    read_references,
    without_near_duplicates,
)
from seqtune.data.token_store import (
    StoredRecords,
    StoreSpec,
    StoreWindows,
    TokenStore,
    file_digest,
    open_store,
)
from seqtune.errors import SeqtuneError
from seqtune.kmers import require_whole_kmers
from seqtune.logs import logger
from seqtune.models.mlm_head import MaskedLMHead
from seqtune.tasks.base import EncodedDataset, Task, collate_inputs, pad

EVAL_SEED_OFFSET = {"dev": 1_000_003, "test": 2_000_003}
EVAL_MASK_GROUP = 256  # features masked together when fixing the held-out masks


@dataclass
class StoredCorpus:
    """A training corpus read into a token store (`data/token_store.py`) instead of Python objects."""

    store: TokenStore
    source: str
    info: dict

    def __len__(self) -> int:
        return self.store.records


class StoredDataset(EncodedDataset):
    """An EncodedDataset whose features are the windows of a token store, made when asked for."""

    @property
    def lengths(self):
        return self.features.lengths


def store_spec(data: DataConfig, path: str) -> StoreSpec:
    """What the token store of a training corpus is made from: the file, the reading settings and
    the files whose near-duplicates are left out (by content)."""
    compared = []
    for spec in data.exclude_similar_to or []:
        file, _, column = spec.partition("#")
        try:
            compared.append(f"{column}@{file_digest(file)}")
        except OSError as e:
            raise SeqtuneError(f"data.exclude_similar_to: cannot read {file}: {e.strerror}.") from None
    reading = {"format": data.format, "column": data.text_column, "header": data.header,
               "encoding": data.encoding, "max_records": data.max_rows}
    return StoreSpec(Path(path), reading, compared)


class MaskedLMTask(Task):
    """Masked-language modelling on an unlabelled corpus. Needs a tokenizer with [MASK]."""

    name = "mlm"
    Options = MaskedLMOptions
    hf_architecture = "BertForMaskedLM"
    # Families with a masked-language-model head (mlm_head.MLM_LAYOUTS); ELECTRA discriminators have none.
    model_types = ("bert", "roberta", "xlm-roberta", "distilbert", "esm")
    primary_metric = "loss"
    lower_is_better = frozenset({"loss", "perplexity"})
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
    def read(self, path: str, split: str) -> Corpus | StoredCorpus:
        # overlapping k-mers are cut by seqtune (kmers.py), not by the tokenizer the store runs: in memory
        if split == "train" and self.data.token_store and not self.tokenizer.overlapping_kmer:
            return self._read_into_store(path)
        corpus = read_corpus(path, self.data.format, self.data.text_column, self.data.max_rows, self.data.header,
                             self.data.encoding)
        if split == "train" and self.data.exclude_similar_to:
            corpus = without_near_duplicates(corpus, self.data.exclude_similar_to, self.data.header)
        return corpus

    def _read_into_store(self, path: str) -> StoredCorpus:
        """The training corpus as a token store: built on the first run (streamed, left-out records
        skipped), opened by later ones."""
        d = self.data
        index = None
        if d.exclude_similar_to:
            index = NearDuplicateIndex(read_references(d.exclude_similar_to, d.header))

        def records(info: dict):
            removed = []
            for record in iter_corpus(path, d.format, d.text_column, d.max_rows, d.header, d.encoding, info):
                match = index.match(record.text) if index is not None else None
                if match is None:
                    yield record
                else:
                    removed.append(f"{record.where} ~ {match.reference} ({match.shared:.0%})")
                    yield None
            if index is not None:
                info["excluded_similar"] = len(removed)
                info["excluded_shown"] = removed[:5]

        spec = store_spec(d, path)
        store = open_store(spec, self.tokenizer, records, log=logger.info)
        info = dict(store.meta["info"])
        shown = info.pop("excluded_shown", [])
        if index is not None:
            n = info["excluded_similar"]
            logger.info(f"{spec.path.name}: left out {n} of {store.records + n} records sharing >= {THRESHOLD:.0%} "
                        f"of their {K}-mers with a sequence of {', '.join(d.exclude_similar_to)}"
                        + (f": {'; '.join(shown)}" if shown else "") + (" ..." if n > 5 else ""))
        return StoredCorpus(store, spec.path.name, info)

    def examples_from_inputs(self, inputs: list[str]) -> Corpus:
        """In-memory texts (the Python API's `predict`) as a corpus."""
        if not all(isinstance(t, str) and t.strip() for t in inputs):
            raise SeqtuneError("masked-language-model inputs must be non-empty strings.")
        return Corpus([CorpusRecord(t, f"input {i + 1}") for i, t in enumerate(inputs)], "inputs")

    def encode(self, examples: Corpus | StoredCorpus, split: str) -> EncodedDataset:
        if isinstance(examples, StoredCorpus):  # the training corpus: windows read from the store
            windows = StoreWindows(examples.store, self.options.packing, self.data.max_length,
                                   self.tokenizer.cls_id, self.tokenizer.sep_id, self.uses_word_ids)
            info = {"records": examples.store.records, "windows": len(windows),
                    "chunked_records": windows.info["chunked_records"], "tokens": int(windows.lengths.sum()),
                    "unknown_tokens": examples.store.meta["unknown_tokens"], **examples.info}
            return StoredDataset(StoredRecords(examples.store, examples.source), windows, examples.source, info)
        if self.tokenizer.overlapping_kmer:  # a record shorter than k has no whole k-mer (kmers.py)
            require_whole_kmers(((r.text, r.where) for r in examples.records), self.tokenizer.overlapping_kmer)
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
        k = self.tokenizer.overlapping_kmer  # overlapping k-mers: spans of k tokens (kmer_masking.py)
        chosen = choose_kmer_spans(maskable, self.masking.probability, k, generator) if k else None
        masked = mask_tokens(batch["input_ids"], maskable, self.masking, self.tokenizer.mask_id,
                             self.random_ids, generator, word_ids, chosen)
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
    def random_generators(self) -> dict[str, torch.Generator]:
        return {"masking": self.generator}

    def build_head(self, encoder_config) -> MaskedLMHead:
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

    def metric_names(self) -> list[str]:
        return ["loss", "perplexity", "accuracy", "masked_tokens"]

    def metrics(self, outputs: list[np.ndarray], dataset: EncodedDataset) -> dict:
        scored = np.concatenate(outputs) if outputs else np.zeros((0, 2))
        if not len(scored):
            raise SeqtuneError(f"{dataset.source}: no masked tokens to evaluate.")
        loss = float(scored[:, 0].mean())
        return {
            "loss": loss,
            "perplexity": math.exp(min(loss, 50.0)),
            "accuracy": float(scored[:, 1].mean()),
            "masked_tokens": len(scored),
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
                "masked_tokens": len(scored),
                "loss": round(float(scored[:, 0].mean()), 6) if len(scored) else None,
                "accuracy": round(float(scored[:, 1].mean()), 6) if len(scored) else None,
            })
        return records

    def hf_config(self) -> dict:
        return {"architectures": [self.hf_architecture], "tie_word_embeddings": True}

    def describe(self) -> str:
        m = self.masking
        return (f"masked language model, {self.tokenizer.vocab_size} tokens ({self.tokenizer.kind}), "
                f"masking {m.probability:.0%} ({m.mask_fraction:.0%} {self.tokenizer.special['mask']}, "
                f"{m.random_fraction:.0%} random){', whole words' if self.uses_word_ids else ''}"
                f"{f', spans of {self.tokenizer.overlapping_kmer} overlapping k-mers' if self.tokenizer.overlapping_kmer else ''}")

