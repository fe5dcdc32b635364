"""How many pretraining-corpus proteins `data.exclude_similar_to` leaves out as near-duplicates of the
secondary-structure evaluation chains (valid, NEW364, CB513): identical or >= 90% of 5-mers shared
(seqtune/data/similarity.py).

    python benchmarks/overlap_filter.py      # writes benchmarks/out/overlap_filter.json
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from seqtune.data.corpus import read_corpus
from seqtune.data.similarity import exclude_similar

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
REFERENCES = [f"{DATA}/protein_ss/valid.csv#input", f"{DATA}/protein_ss/test_new364.csv#input",
              f"{DATA}/protein_ss/cb513/CB513_HHblits.csv#input"]
CORPORA = ["proteins_ecoli_yeast.fasta", "uniprot_nr50.fasta.gz"]


def main() -> None:
    out = {}
    for name in CORPORA:
        start = time.perf_counter()
        corpus = read_corpus(DATA / "protein_unlabeled" / name, "auto")
        kept, removed = exclude_similar(corpus, REFERENCES)
        by_file: dict[str, int] = {}
        for _, match in removed:
            key = Path(match.reference.split(":")[0].split(" ")[0]).name
            by_file[key] = by_file.get(key, 0) + 1
        out[name] = {"records": len(corpus), "removed": len(removed), "by_reference_file": by_file,
                     "examples": [(where, m.reference, round(m.shared, 3)) for where, m in removed[:8]],
                     "seconds": round(time.perf_counter() - start, 1)}
        print(json.dumps({name: out[name]}), flush=True)
    target = REPO / "benchmarks" / "out" / "overlap_filter.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
