"""Per-residue labelling: one label for every character of a sequence (protein secondary structure,
per-base DNA/RNA annotation, or any string whose characters each carry a class).

Input: CSV/TSV/JSONL with a sequence column (`data.text_column`) and a label column
(`data.label_column`), or labelled FASTA records (see `data/readers/sequences.py`). Labels are one
character per residue or whitespace-separated; an optional mask column (`data.mask_column`, e.g.
`resolved_mask`) marks residues to leave out of the loss and the metrics.

Tokens: every residue is exactly one token, so the alignment is exact. Each distinct character is
looked up once as a one-character word of the checkpoint's tokenizer: with a character vocabulary
(a model pretrained on sequences) that is the character's own token; with a WordPiece checkpoint
(e.g. an English BERT) each residue is treated as a word. A character with no token of its own is
unknown: it becomes [UNK] (`unknown_residues: unk`, the default) or is an error
(`unknown_residues: error`, which names the first record where each occurs); with [UNK] they are
counted per character in `EncodedDataset.info["unknown_residues"]` and `metrics["residues"]["unknown"]`,
and over 2% of the residues they are a warning naming the characters. Letters are first folded as
`data.case` says (`alphabet.py`: by default to the case of a single-case character vocabulary, so
soft-masked `mkvl` reads as `MKVL`).

Overlapping k-mers (a model pretrained with `model.vocab.kmer_overlap`, DNABERT's tokens): residue i's
token is the k-mer that starts at it (the last k - 1 residues take the shorter k-mers of the end, see
`kmers.py`), so there is still exactly one token per residue, its label is residue i's label, and its
prediction is residue i's. A k-mer holding an unknown character is [UNK]; the unknown characters are
counted and handled as above. A vocabulary of non-overlapping k-mers is refused: it has no token per
residue.

Sequences longer than data.max_length - 2 are cut into overlapping windows (`windows.py`); every
residue gets exactly one prediction. Metrics: per-residue accuracy (also named q3 for 3-state
{H, E, C} and q8 for 8-state DSSP labels), macro F1, per-label precision/recall/F1 and the confusion
matrix, all over unmasked residues.

Example config (protein secondary structure):
    task: {type: residues, mask_column: resolved_mask}
    data: {train: protein_ss/train.csv, text_column: input, label_column: dssp3, max_length: 512}
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from seqtune.config import ResidueOptions
from seqtune.data.readers.sequences import LabelledSequence, make_record, read_sequences
from seqtune.errors import SeqtuneError
from seqtune.kmers import position_kmers, require_whole_kmers
from seqtune.tasks.alphabet import case_folder, kmer_length, source_of, warn_unknown
from seqtune.tasks.residue_metrics import accuracy_alias, residue_metrics
from seqtune.tasks.residue_store import (
    StoredSequences,
    StoredWindows,
    UnknownTally,
    label_lookup,
    open_residue_store,
)
from seqtune.tasks.sequence import natural_sort
from seqtune.tasks.token_task import TokenDataset, TokenTask
from seqtune.tasks.windows import IGNORE_INDEX

@dataclass
class ResidueDataset(TokenDataset):
    unknown: Counter = field(default_factory=Counter)  # unknown character -> count


class ResidueTask(TokenTask):
    """One label per character of a sequence. Registry name "residues"."""

    name = "residues"
    Options = ResidueOptions
    primary_metric = "accuracy"

    def __init__(self, options, data, tokenizer):
        super().__init__(options, data, tokenizer)
        self._char_ids: dict[str, int | None] = {}  # character -> token id, None when unknown
        self.fold = case_folder(self.data.case, tokenizer)  # data.case; None: residues as they are
        self.k = tokenizer.overlapping_kmer  # 0: one character per token
        self._kmer_ids: dict[str, int] = {}  # k-mer -> token id ([UNK] when unknown)
        k = kmer_length(tokenizer)
        if k > 1 and not self.k:
            raise SeqtuneError(
                f"the model's tokenizer is a vocabulary of non-overlapping k-mers (tokens of up to {k} characters), "
                "but per-residue labelling needs one token per residue, an input such a model never saw in "
                "pretraining. Use a model with a single-character vocabulary (model.vocab.kmer: 1) or overlapping "
                "k-mers (model.vocab.kmer_overlap: true), one k-mer per residue."
            )

    # ---- data -------------------------------------------------------------------------------
    def read(self, path: str, split: str) -> list[LabelledSequence] | StoredSequences:
        # the training file goes into a token store (residue_store.py); overlapping k-mers stay in memory
        if split == "train" and self.data.token_store and not self.k:
            return open_residue_store(self, path)
        return read_sequences(
            path, self.data.format, labelled=split != "predict", sequence_column=self.data.text_column,
            label_column=self.data.label_column, mask_column=self.data.mask_column,
            id_column=self.data.id_column, max_records=self.data.max_rows, header=self.data.header,
            encoding=self.data.encoding,
        )

    def examples_from_inputs(self, inputs: list) -> list[LabelledSequence]:
        """Python-API inputs: sequences as strings."""
        return [make_record(item, None, None, None, f"input {i}") for i, item in enumerate(inputs)]

    def fit(self, train_examples: list[LabelledSequence] | StoredSequences) -> None:
        if isinstance(train_examples, StoredSequences):
            self.set_labels(natural_sort(set(train_examples.label_names)))
            return
        self.set_labels(natural_sort({label for e in train_examples for label in e.labels}))

    # ---- tokens -----------------------------------------------------------------------------
    def char_id(self, char: str) -> int | None:
        """Token id of one residue (looked up once per distinct character), None when unknown."""
        if char not in self._char_ids:
            folded = self.fold(char) if self.fold is not None else char
            enc = self.tokenizer.backend.encode([folded], is_pretokenized=True, add_special_tokens=False)
            ok = len(enc.ids) == 1 and enc.ids[0] != self.tokenizer.unk_id
            self._char_ids[char] = enc.ids[0] if ok else None
        return self._char_ids[char]

    def kmer_ids(self, sequence: str) -> list[int]:
        """Overlapping k-mers: the token id of the k-mer starting at each residue (one per residue)."""
        if self.fold is not None:
            sequence = self.fold(sequence)
        ids, unk, backend = self._kmer_ids, self.tokenizer.unk_id, self.tokenizer.backend
        normalizer = backend.normalizer
        out = []
        for kmer in position_kmers(sequence, self.k):
            i = ids.get(kmer)
            if i is None:
                i = backend.token_to_id(normalizer.normalize_str(kmer) if normalizer else kmer)
                i = ids[kmer] = unk if i is None else i
            out.append(i)
        return out

    def alphabet(self) -> str:
        """The single characters the tokenizer has a token for (for messages)."""
        chars = sorted(t for t in self.tokenizer.backend.get_vocab() if len(t) == 1 and not t.isspace())
        return "".join(c for c in chars if self.char_id(c) is not None)

    def residue_ids(self, examples: list[LabelledSequence]) -> tuple[list[list[int]], Counter]:
        """Token ids per sequence; unknown characters -> [UNK] (or an error), counted."""
        tally = UnknownTally()
        all_ids = self.token_ids(examples, tally)
        self.report_unknown(tally, source_of(examples), len(examples), sum(map(len, all_ids)))
        return all_ids, tally.counts

    def token_ids(self, examples: list[LabelledSequence], tally: UnknownTally) -> list[list[int]]:
        """Token ids per sequence, unknown characters as [UNK], counted in `tally`."""
        unk = self.tokenizer.unk_id
        all_ids = []
        for e in examples:
            table = {c: self.char_id(c) for c in set(e.sequence)}
            tally.affected += any(i is None for i in table.values())
            for c, i in table.items():
                if i is None:
                    tally.counts[c] += e.sequence.count(c)
                    tally.first_seen.setdefault(c, e.where)
            if self.k:
                all_ids.append(self.kmer_ids(e.sequence))
            else:
                ids = {c: (unk if i is None else i) for c, i in table.items()}
                all_ids.append([ids[c] for c in e.sequence])
        return all_ids

    def report_unknown(self, tally: UnknownTally, source: str, total_sequences: int, total_residues: int) -> None:
        """An error under `unknown_residues: error`, else a warning when they are many."""
        unknown = tally.counts
        if unknown and self.options.unknown_residues == "error":
            raise SeqtuneError(self._unknown_message(unknown, tally.first_seen, tally.affected, total_sequences))
        if unknown:
            warn_unknown(source, unknown, sum(unknown.values()), total_residues, self.tokenizer, self.data.case,
                         what="residues")

    def _unknown_message(self, unknown: Counter, first_seen: dict, affected: int, total_sequences: int) -> str:
        total = sum(unknown.values())
        listed = "; ".join(f"{c!r} x{n} (first at {first_seen[c]})" for c, n in unknown.most_common(10))
        alphabet = self.alphabet()
        shown = alphabet if len(alphabet) <= 80 else alphabet[:80] + "..."
        return (
            f"{total} residues in {affected} of {total_sequences} sequences are not in the model's alphabet: "
            f"{listed}. "
            f"The tokenizer has single-character tokens for: {shown}. Set task.unknown_residues: unk to "
            "read them as [UNK], or fix the sequences."
        )

    def encode(self, examples: list[LabelledSequence] | StoredSequences, split: str) -> ResidueDataset:
        if isinstance(examples, StoredSequences):
            return self.encode_stored(examples)
        if self.k:
            require_whole_kmers(((e.sequence, e.where) for e in examples), self.k)
        all_ids, unknown = self.residue_ids(examples)
        labelled = all(e.labels is not None for e in examples)
        all_labels = None
        if labelled:
            all_labels = []
            for e in examples:
                labels = self.label_ids(e.labels, e.where)
                if e.mask is not None:
                    labels = [lab if keep else IGNORE_INDEX for lab, keep in zip(labels, e.mask)]
                all_labels.append(labels)
        features = self.make_features(all_ids, all_labels, split)
        lengths = [len(ids) for ids in all_ids]
        info = self.window_info(lengths, features)
        if unknown:
            info["unknown_residues"] = dict(unknown.most_common())
        return ResidueDataset(examples, features, source=split, info=info, example_lengths=lengths,
                              unknown=unknown)

    def encode_stored(self, examples: StoredSequences) -> ResidueDataset:
        """The training windows of a stored file: the features `encode` makes, read from the store
        when the loop asks for them; label map, class weights and info as `encode` gives them."""
        store = examples.store
        features = StoredWindows(store, label_lookup(examples.label_names, self.label_to_id), self.window,
                                 self.options.window_stride, self.tokenizer.cls_id, self.tokenizer.sep_id)
        lengths, info = features.fit_and_describe(self, self.window)
        unknown = Counter(store.meta["unknown"])
        if unknown:
            info["unknown_residues"] = dict(unknown.most_common())
        return ResidueDataset(examples, features, source="train", info=info, example_lengths=lengths,
                              unknown=unknown)

    # ---- outputs ----------------------------------------------------------------------------
    def residue_predictions(self, outputs: list[np.ndarray], dataset: ResidueDataset) -> list[np.ndarray]:
        """Predicted label ids, one per residue, for every example."""
        return [logits.argmax(-1) for logits in self.example_outputs(outputs, dataset)]

    def metric_names(self) -> list[str]:
        alias = accuracy_alias(self.labels)
        return ["accuracy", *([alias] if alias else []), "macro_f1"]

    def metrics(self, outputs: list[np.ndarray], dataset: ResidueDataset) -> dict:
        """Over unmasked residues (`residue_metrics.residue_metrics`)."""
        gold = []
        for e in dataset.examples:
            if e.labels is None:
                raise SeqtuneError(f"{e.where}: metrics need labels for every sequence.")
            gold.append(np.asarray(self.label_ids(e.labels, e.where)))
        return residue_metrics(gold, self.residue_predictions(outputs, dataset),
                               [e.mask for e in dataset.examples], self.labels, dataset.unknown)

    def predictions(self, outputs: list[np.ndarray], dataset: ResidueDataset,
                    probabilities: bool = False) -> list[dict]:
        """{"id", "sequence", "label_string", "labels"}: one label per residue, aligned with the sequence;
        with `probabilities`, also {label: [probability at each residue]}.

        The label string joins single-character labels directly and longer labels with spaces.
        """
        joiner = "" if all(len(label) == 1 for label in self.labels) else " "
        records = []
        for e, p in zip(dataset.examples, self.residue_predictions(outputs, dataset)):
            labels = [self.labels[i] for i in p]
            record = {"id": e.id} if e.id is not None else {}
            record.update({"sequence": e.sequence, "label_string": joiner.join(labels), "labels": labels})
            records.append(record)
        if probabilities:
            for record, logits in zip(records, self.example_outputs(outputs, dataset)):
                record["probabilities"] = self.label_probabilities(logits)
        return records

    def describe(self) -> str:
        return f"residues, {len(self.labels)} labels: {', '.join(self.labels[:20])}"
