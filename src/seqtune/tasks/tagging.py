"""Word tagging (NER, POS, chunking): one tag per word, from a token-classification head.

Input: CoNLL column files or JSONL (see `data/readers/conll.py`). Each sentence's words are split
into sub-tokens (WordPiece, or byte-level BPE with a space before every word, as transformers'
add_prefix_space=True) by the fast tokenizer (pre-tokenized input, so its word ids map every
sub-token back to its word). The word's tag goes on its first sub-token; the other sub-tokens get
label -100 and are left out of the loss (or, with `label_all_subtokens`, get the word's tag, with
B-X turned into I-X after the first sub-token, as Hugging Face's run_ner does). A word the
tokenizer turns into no token at all (e.g. a lone zero-width space) becomes one [UNK], so every
word always gets a prediction. Sentences longer than data.max_length sub-tokens are windowed, not
truncated (`windows.py`). The training file is read into a token store (`tagging_store.py`,
`data.token_store`), which gives the features and batches of the in-memory path.

Predictions are one tag per word, read from the word's first sub-token. With an entity scheme they
are decoded by default (`decode: viterbi`) as the tag sequence with the highest summed log-softmax
score among those the scheme allows (no "O I-PER", no "B-LOC I-PER"; IOBES/BILOU entities also
end properly); `decode: argmax` takes each word's best tag alone, as POS tags (scheme "none")
always do. Metrics and predictions use the same decoding. Metrics: entity-level
precision/recall/F1 in seqeval's strict mode for the tag scheme (IOB1/IOB2/IOE1/IOE2/IOBES/BILOU, detected
from the training tags unless `scheme` is set), per-type scores, seqeval's default-mode F1
(`f1_conlleval`), word accuracy and the tag confusion matrix. Tags that are not entity tags (POS)
get scheme "none": accuracy (the primary metric then) plus per-tag scores.

Example config:
    task: {type: tagging, tag_column: -1}
    data: {train: conll2003/train.txt, dev: conll2003/valid.txt, format: conll}
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from seqtune.config import TaggingOptions
from seqtune.data.readers.conll import TaggedSentence, read_tagged
from seqtune.errors import SeqtuneError
from seqtune.tasks.residue_store import label_lookup
from seqtune.tasks.tagging_store import (
    StoredSentences,
    TaggedWindows,
    open_tagging_store,
)
from seqtune.tasks.token_metrics import (
    ENTITY_PREFIXES,
    SCHEMES,
    allowed_transitions,
    detect_scheme,
    entity_report,
    label_report,
    split_tag,
    viterbi_decode,
)
from seqtune.tasks.token_task import TokenDataset, TokenTask
from seqtune.tasks.windows import IGNORE_INDEX


@dataclass
class TaggingDataset(TokenDataset):
    """`word_starts[i][w]`: index (among example i's content tokens) of word w's first sub-token."""

    word_starts: list[list[int]] = field(default_factory=list)


def align_words(ids: list[int], word_ids: list[int | None], n_words: int, unk_id: int):
    """Sub-token ids of a pre-tokenized sentence -> (ids, word of each token, first token of each word, #empty).

    A word with no sub-token gets one [UNK] so that it keeps its place (and its prediction).
    """
    out_ids: list[int] = []
    token_word: list[int] = []
    starts: list[int] = []
    empty, j = 0, 0
    for w in range(n_words):
        starts.append(len(out_ids))
        begun = j
        while j < len(ids) and word_ids[j] == w:
            j += 1
        if j == begun:
            out_ids.append(unk_id)
            token_word.append(w)
            empty += 1
        else:
            out_ids.extend(ids[begun:j])
            token_word.extend([w] * (j - begun))
    return out_ids, token_word, starts, empty


def order_tags(tags: set[str]) -> list[str]:
    """"O" first, then by entity type, then prefix order B, I, E, S, L, U (stable across runs)."""
    def key(tag: str):
        prefix, kind = split_tag(tag)
        rank = ENTITY_PREFIXES.index(prefix) if prefix else -1
        return (tag != "O", kind, rank, tag)
    return sorted(tags, key=key)


class TaggingTask(TokenTask):
    """One tag per word: NER, POS, chunking. Registry name "tagging"."""

    name = "tagging"
    Options = TaggingOptions
    primary_metric = "f1"

    def __init__(self, options, data, tokenizer):
        super().__init__(options, data, tokenizer)
        self.scheme = options.scheme

    # ---- data -------------------------------------------------------------------------------
    def read(self, path: str, split: str) -> list[TaggedSentence] | StoredSentences:
        # the training file goes into a token store (tagging_store.py); a k-mer model, which cannot
        # tokenize words, is refused by `encode` in memory, as without a store
        if split == "train" and self.data.token_store and not self.tokenizer.overlapping_kmer:
            return open_tagging_store(self, path)
        d = self.data
        return read_tagged(path, d.format, labelled=split != "predict", token_column=d.token_column,
                           tag_column=d.tag_column, tokens_key=d.tokens_key, tags_key=d.tags_key,
                           max_sentences=d.max_rows, encoding=d.encoding,
                           id_key=d.id_column if isinstance(d.id_column, str) else None)

    def examples_from_inputs(self, inputs: list) -> list[TaggedSentence]:
        """Python-API inputs: a sentence as a string (split on whitespace) or a list of words."""
        examples = []
        for i, item in enumerate(inputs):
            tokens = item.split() if isinstance(item, str) else item
            if not isinstance(tokens, (list, tuple)) or not all(isinstance(t, str) and t.strip() for t in tokens):
                raise SeqtuneError(f"input {i}: give a sentence as a string or a list of non-empty words.")
            if not tokens:
                raise SeqtuneError(f"input {i}: empty sentence; there is nothing to tag.")
            examples.append(TaggedSentence(list(tokens), None, f"input {i}"))
        return examples

    def fit(self, train_examples: list[TaggedSentence] | StoredSentences) -> None:
        if isinstance(train_examples, StoredSentences):  # the tags and scheme the store collected
            self.set_labels(order_tags(set(train_examples.label_names)))
            detected = train_examples.scheme
        else:
            tag_sequences = [e.tags for e in train_examples]
            self.set_labels(order_tags({t for tags in tag_sequences for t in tags}))
            detected = detect_scheme(tag_sequences) if self.options.scheme == "auto" else None
        self.scheme = detected if self.options.scheme == "auto" else self.options.scheme
        self._check_scheme()

    def _check_scheme(self) -> None:
        if self.scheme == "none":
            self.primary_metric = "accuracy"  # no entities to score
            return
        allowed = set(self.scheme) - {"O"}  # "IOBES" -> I, B, E, S; "BILOU" -> B, I, L, U
        bad = [t for t in self.labels if t != "O" and split_tag(t)[0] not in allowed]
        if self.scheme not in SCHEMES or bad:
            raise SeqtuneError(
                f"task.scheme is {self.scheme!r} but the training tags include {bad[:5]}, which that scheme "
                "does not allow; set task.scheme to the scheme of your tags (IOB1, IOB2, IOE1, IOE2, IOBES, "
                "BILOU) or to none for tags that are not entity tags (POS)."
            )

    def aligned(self, examples: list[TaggedSentence]) -> list[tuple[list[int], list[int], list[int], int]]:
        """Each sentence's `align_words`: sub-token ids, the word of each, each word's first sub-token,
        and how many words had no sub-token (the token store writes what this gives, too)."""
        encodings = self.tokenizer.encode_words([e.tokens for e in examples])
        unk = self.tokenizer.unk_id
        return [align_words(enc.ids, enc.word_ids, len(e.tokens), unk) for e, enc in zip(examples, encodings)]

    def encode(self, examples: list[TaggedSentence] | StoredSentences, split: str) -> TaggingDataset:
        """Sentences -> windowed features; sub-token alignment as the module docstring says."""
        if isinstance(examples, StoredSentences):
            return self.encode_stored(examples)
        all_ids, all_labels, starts_per_example, empty_words = [], [], [], 0
        labelled = all(e.tags is not None for e in examples)
        continuation = self._continuation_ids()
        for e, (ids, token_word, starts, empty) in zip(examples, self.aligned(examples)):
            empty_words += empty
            all_ids.append(ids)
            starts_per_example.append(starts)
            if labelled:
                tag_ids = self.label_ids(e.tags, e.where, "tag")
                labels = [IGNORE_INDEX] * len(ids)
                if self.options.label_all_subtokens:
                    labels = [continuation[tag_ids[w]] for w in token_word]
                for w, start in enumerate(starts):
                    labels[start] = tag_ids[w]
                all_labels.append(labels)
        features = self.make_features(all_ids, all_labels if labelled else None, split)
        lengths = [len(ids) for ids in all_ids]
        info = self.window_info(lengths, features)
        if empty_words:
            info["words_without_tokens"] = empty_words  # each became one [UNK]
        return TaggingDataset(examples, features, source=split, info=info, example_lengths=lengths,
                              word_starts=starts_per_example)

    def encode_stored(self, examples: StoredSentences) -> TaggingDataset:
        """The training windows of a stored file: the features `encode` makes, read from the store
        when the loop asks for them; label map, class weights and info as `encode` gives them."""
        store = examples.store
        first = label_lookup(examples.label_names, self.label_to_id)  # store tag code -> label id
        other = np.full_like(first, IGNORE_INDEX)  # the same for a word's other sub-tokens
        if self.options.label_all_subtokens:
            n = len(examples.label_names)
            other[:n] = np.asarray(self._continuation_ids())[first[:n]]
        features = TaggedWindows(store, first, other, self.window, self.options.window_stride,
                                 self.tokenizer.cls_id, self.tokenizer.sep_id)
        lengths, info = features.fit_and_describe(self, self.window)
        if store.meta["words_without_tokens"]:
            info["words_without_tokens"] = store.meta["words_without_tokens"]
        # no word_starts: they serve predictions, and the training set is not predicted
        return TaggingDataset(examples, features, source="train", info=info, example_lengths=lengths)

    def _continuation_ids(self) -> list[int]:
        """Label id for non-first sub-tokens: B-X -> I-X when I-X exists, else the word's own tag."""
        out = []
        for i, tag in enumerate(self.labels):
            prefix, kind = split_tag(tag)
            inside = f"I{tag[1]}{kind}" if prefix == "B" else None
            out.append(self.label_to_id.get(inside, i) if inside else i)
        return out

    # ---- outputs ----------------------------------------------------------------------------
    def word_predictions(self, outputs: list[np.ndarray], dataset: TaggingDataset) -> list[np.ndarray]:
        """Predicted tag ids, one per word, for every example (decoded as task.decode says)."""
        merged = self.example_outputs(outputs, dataset)
        word_logits = [logits[starts] for logits, starts in zip(merged, dataset.word_starts)]
        if self.options.decode == "argmax" or self.scheme == "none":
            return [logits.argmax(-1) for logits in word_logits]
        masks = allowed_transitions(self.labels, self.scheme)
        # torch's log_softmax (in float64): torch is loaded anyway, scipy.special would add ~0.5 s to every predict
        return [viterbi_decode(torch.from_numpy(logits.astype(np.float64)).log_softmax(-1).numpy(), *masks)
                for logits in word_logits]

    def metric_names(self) -> list[str]:
        if self.scheme == "none":
            return ["accuracy", "macro_f1", "words"]
        return ["precision", "recall", "f1", "f1_conlleval", "accuracy", "words"]

    def metrics(self, outputs: list[np.ndarray], dataset: TaggingDataset) -> dict:
        predicted = self.word_predictions(outputs, dataset)
        if any(e.tags is None for e in dataset.examples):
            raise SeqtuneError(f"{dataset.source}: metrics need tags for every sentence.")
        gold_ids = np.concatenate([self.label_ids(e.tags, e.where, "tag") for e in dataset.examples])
        report = label_report(gold_ids, np.concatenate(predicted), self.labels)
        metrics: dict = {}
        if self.scheme != "none":
            pred_tags = [[self.labels[i] for i in p] for p in predicted]
            metrics.update(entity_report([e.tags for e in dataset.examples], pred_tags, self.scheme))
        metrics["accuracy"] = report["accuracy"]
        if self.scheme == "none":
            metrics["macro_f1"] = report["macro_f1"]
            metrics["per_tag"] = report["per_label"]
        metrics["words"] = int(len(gold_ids))  # scored words: the confusion matrix sums to this
        metrics["confusion_matrix"] = report["confusion_matrix"]  # over tags, rows = gold
        return metrics

    def predictions(self, outputs: list[np.ndarray], dataset: TaggingDataset,
                    probabilities: bool = False) -> list[dict]:
        """{"tokens", "tags"}; with `probabilities`, also {tag: [probability at each word]} (the softmax
        at the word's first sub-token)."""
        records = [{**({"id": e.id} if e.id is not None else {}), "tokens": e.tokens,
                    "tags": [self.labels[i] for i in p]}
                   for e, p in zip(dataset.examples, self.word_predictions(outputs, dataset))]
        if probabilities:
            merged = self.example_outputs(outputs, dataset)
            for record, logits, starts in zip(records, merged, dataset.word_starts):
                record["probabilities"] = self.label_probabilities(logits[starts])
        return records

    # ---- persistence ------------------------------------------------------------------------
    def state(self) -> dict:
        return {**super().state(), "scheme": self.scheme}

    def load_state(self, state: dict) -> None:
        super().load_state(state)
        self.scheme = state["scheme"]
        if self.scheme == "none":
            self.primary_metric = "accuracy"

    def describe(self) -> str:
        shown = ", ".join(self.labels[:12]) + (", ..." if len(self.labels) > 12 else "")
        return f"tagging, {len(self.labels)} tags (scheme {self.scheme}): {shown}"
