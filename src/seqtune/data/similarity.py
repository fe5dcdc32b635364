"""Leaving near-duplicates of evaluation sequences out of a pretraining corpus.

A pretraining corpus that holds a test chain (or one nearly identical to it) lets the model learn
that chain before it is tested on it: the classic way a benchmark number lies. `data.exclude_similar_to`
names files of sequences (e.g. the dev and test sets of the fine-tuning task); every corpus record that
shares at least THRESHOLD of its k-mers with one of them is left out:

    shared k-mers / min(k-mers of the record, k-mers of the reference) >= THRESHOLD

(the smaller set as denominator, so a corpus protein that contains a whole test chain counts too).
With k = 5 and 0.9 that catches identical and near-identical sequences (about 98% identity and up,
or a chain inside a longer record); it is a leakage guard, not a homology search.

A reference file is FASTA or plain text (every record), or a table with the column after "#",
e.g. "valid.csv#input". Whitespace inside a sequence is ignored (CB513 lists residues with spaces).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seqtune.data.corpus import Corpus, read_corpus
from seqtune.errors import SeqtuneError
from seqtune.logs import logger

K = 5
THRESHOLD = 0.9


def kmer_codes(sequence: str, k: int = K) -> np.ndarray:
    """The distinct k-mers of `sequence` (case-folded, whitespace removed) as int64 codes."""
    data = np.frombuffer("".join(sequence.split()).upper().encode("ascii", "replace"), dtype=np.uint8)
    if len(data) < k:
        return np.zeros(0, dtype=np.int64)
    codes = np.zeros(len(data) - k + 1, dtype=np.int64)
    for j in range(k):  # base 256: a 5-mer fits easily in 64 bits
        codes = codes * 256 + data[j:len(data) - k + 1 + j]
    return np.unique(codes)


@dataclass
class Match:
    reference: str  # where the reference sequence came from
    shared: float  # shared k-mers / the smaller k-mer set


class NearDuplicateIndex:
    """Reference sequences, indexed by k-mer (sorted arrays, so a look-up is a binary search)."""

    def __init__(self, references: list[tuple[str, str]], k: int = K, threshold: float = THRESHOLD):
        self.k, self.threshold = k, threshold
        self.names = [name for name, _ in references]
        per_reference = [kmer_codes(sequence, k) for _, sequence in references]
        self.sizes = np.array([len(c) for c in per_reference], dtype=np.int64)
        codes = np.concatenate(per_reference) if per_reference else np.zeros(0, dtype=np.int64)
        owners = np.repeat(np.arange(len(per_reference)), self.sizes)
        order = np.argsort(codes, kind="stable")
        self.codes, self.owners = codes[order], owners[order]  # every (k-mer, reference) pair, by k-mer

    def match(self, sequence: str) -> Match | None:
        """The most similar reference at or above the threshold, or None."""
        codes = kmer_codes(sequence, self.k)
        if not len(codes) or not len(self.codes):
            return None
        left = np.searchsorted(self.codes, codes, "left")
        counts = np.searchsorted(self.codes, codes, "right") - left
        hit = counts > 0
        if not hit.any():
            return None
        starts, lengths = left[hit], counts[hit]
        # the positions of every (shared k-mer, reference) pair: concatenated ranges [start, start + length)
        positions = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
        shared = np.bincount(self.owners[positions], minlength=len(self.sizes))
        share = shared / np.maximum(1, np.minimum(len(codes), self.sizes))
        best = int(share.argmax())
        return Match(self.names[best], float(share[best])) if share[best] >= self.threshold else None


def read_references(specs: list[str], header: bool = True) -> list[tuple[str, str]]:
    """(where, sequence) for every record of the reference files ("path" or "path#column")."""
    references = []
    for spec in specs:
        path, _, column = spec.partition("#")
        try:
            corpus = read_corpus(path, "auto", column or "text", None, header)
        except SeqtuneError as e:
            raise SeqtuneError(f"data.exclude_similar_to: {e}") from None
        references += [(record.where, record.text) for record in corpus.records]
    if not references:
        raise SeqtuneError(f"data.exclude_similar_to: no sequences in {', '.join(specs)}.")
    return references


def exclude_similar(corpus: Corpus, specs: list[str], header: bool = True
                    ) -> tuple[Corpus, list[tuple[str, Match]]]:
    """The corpus without records near-identical to a reference sequence, and what was left out."""
    index = NearDuplicateIndex(read_references(specs, header))
    kept, removed = [], []
    for record in corpus.records:
        match = index.match(record.text)
        if match is None:
            kept.append(record)
        else:
            removed.append((record.where, match))
    return Corpus(kept, corpus.source, {**corpus.info, "excluded_similar": len(removed)}), removed


def without_near_duplicates(corpus: Corpus, specs: list[str], header: bool = True) -> Corpus:
    """`exclude_similar`, saying in the run's log how many records were left out and which."""
    kept, removed = exclude_similar(corpus, specs, header)
    shown = "; ".join(f"{where} ~ {m.reference} ({m.shared:.0%})" for where, m in removed[:5])
    logger.info(f"{corpus.source}: left out {len(removed)} of {len(corpus)} records sharing >= {THRESHOLD:.0%} "
                f"of their {K}-mers with a sequence of {', '.join(specs)}" + (f": {shown}" if shown else "")
                + (" ..." if len(removed) > 5 else ""))
    return kept
