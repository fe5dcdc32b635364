"""Simple baselines for 3-state protein secondary structure, on the splits seqtune's benchmark uses.

Every Q3 figure of a seqtune model is read against these two (no pretraining, no evolutionary
profiles, one-hot residues only):

  logreg  logistic regression (scikit-learn) on one-hot windows of +-7 residues (15 x 22 features:
          20 amino acids, X for any other letter, and an "outside the chain" symbol), trained on the
          first `--logreg-proteins` training proteins (default 4,000);
  cnn     a small 1-D CNN over one-hot residues (PyTorch): two convolutions of width 9 with 128
          channels, ReLU and dropout 0.2, then a per-residue linear layer; Adam (lr 1e-3), batches of
          ~16k padded residues, `--cnn-epochs` epochs on all training proteins, the epoch with the best
          validation Q3 kept.

Scored residues: resolved_mask == 1 (FLIP splits: valid, NEW364) and disorder == 1.0 (CB513), as
seqtune scores them.

    python benchmarks/ss_baselines.py                 # both baselines, writes benchmarks/out/ss_baselines.json
    python benchmarks/ss_baselines.py --quick         # smoke test (small subsets, < 1 minute)
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "protein_ss"
AMINO = "ACDEFGHIKLMNPQRSTVWY"
X_INDEX, OUTSIDE = len(AMINO), len(AMINO) + 1  # 20: any other letter; 21: beyond the chain's ends
SYMBOLS = OUTSIDE + 1
LABELS = "HEC"
HALF_WINDOW = 7


def encode_residues(sequence: str) -> np.ndarray:
    table = {a: i for i, a in enumerate(AMINO)}
    return np.array([table.get(a, X_INDEX) for a in sequence.upper()], dtype=np.int64)


def read_flip(path: Path, limit: int | None = None) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(residue ids, label ids, scored mask) per protein of a FLIP CSV (id,input,dssp3,resolved_mask)."""
    csv.field_size_limit(1 << 30)
    out = []
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            out.append((encode_residues(row["input"]), np.array([LABELS.index(c) for c in row["dssp3"]]),
                        np.array([c == "1" for c in row["resolved_mask"]])))
            if limit and len(out) >= limit:
                break
    return out


def read_cb513(path: Path, limit: int | None = None) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The same from CB513_HHblits.csv (space-separated per-residue fields; scored where disorder == 1.0)."""
    out = []
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f, skipinitialspace=True):
            out.append((encode_residues("".join(row["input"].split())),
                        np.array([LABELS.index(c) for c in row["dssp3"].split()]),
                        np.array([float(v) == 1.0 for v in row["disorder"].split()])))
            if limit and len(out) >= limit:
                break
    return out


def q3(proteins, predict) -> float:
    right = total = 0
    for residues, labels, scored in proteins:
        pred = predict(residues)
        right += int((pred[scored] == labels[scored]).sum())
        total += int(scored.sum())
    return right / total


def majority_q3(train, proteins) -> float:
    counts = np.bincount(np.concatenate([lab[m] for _, lab, m in train]), minlength=3)
    return q3(proteins, lambda r: np.full(len(r), counts.argmax()))


# ---- logistic regression on one-hot windows --------------------------------------------------------------

def window_features(residues: np.ndarray):
    """Sparse one-hot of the 15-residue window around each position: (n, 15 * SYMBOLS)."""
    from scipy.sparse import csr_matrix

    padded = np.concatenate([np.full(HALF_WINDOW, OUTSIDE), residues, np.full(HALF_WINDOW, OUTSIDE)])
    n, width = len(residues), 2 * HALF_WINDOW + 1
    cols = np.stack([padded[o:o + n] + o * SYMBOLS for o in range(width)], axis=1)  # (n, 15)
    rows = np.repeat(np.arange(n), width)
    return csr_matrix((np.ones(n * width, dtype=np.float32), (rows, cols.ravel())), shape=(n, width * SYMBOLS))


def train_logreg(train):
    from scipy.sparse import vstack
    from sklearn.linear_model import LogisticRegression

    x = vstack([window_features(r)[m] for r, _, m in train])
    y = np.concatenate([lab[m] for _, lab, m in train])
    model = LogisticRegression(max_iter=300, C=1.0)
    model.fit(x, y)
    return lambda residues: model.predict(window_features(residues)), int(x.shape[0])


# ---- a small one-hot CNN ------------------------------------------------------------------------------

def cnn_batches(proteins, budget: int, rng: np.random.Generator | None):
    """Index lists of length-sorted proteins whose padded size stays within `budget` residues."""
    order = np.argsort([len(p[0]) for p in proteins])
    batches, current, longest = [], [], 0
    for i in order:
        n = len(proteins[i][0])
        if current and max(longest, n) * (len(current) + 1) > budget:
            batches.append(current)
            current, longest = [], 0
        current.append(int(i))
        longest = max(longest, n)
    batches.append(current)
    if rng is not None:
        rng.shuffle(batches)
    return batches


def collate(proteins, idx):
    import torch

    longest = max(len(proteins[i][0]) for i in idx)
    x = torch.full((len(idx), longest), OUTSIDE, dtype=torch.long)
    y = torch.full((len(idx), longest), -100, dtype=torch.long)
    for row, i in enumerate(idx):
        residues, labels, scored = proteins[i]
        x[row, :len(residues)] = torch.from_numpy(residues)
        y[row, :len(residues)] = torch.from_numpy(np.where(scored, labels, -100))
    return x, y


def train_cnn(train, valid, epochs: int, seed: int, budget: int = 16384):
    import torch
    from torch import nn

    torch.manual_seed(seed)

    class CNN(nn.Module):
        def __init__(self, channels: int = 128, width: int = 9):
            super().__init__()
            self.net = nn.Sequential(
                nn.Conv1d(SYMBOLS, channels, width, padding=width // 2), nn.ReLU(), nn.Dropout(0.2),
                nn.Conv1d(channels, channels, width, padding=width // 2), nn.ReLU(), nn.Dropout(0.2),
                nn.Conv1d(channels, len(LABELS), 1),
            )

        def forward(self, x):  # (B, T) residue ids -> (B, T, 3)
            onehot = nn.functional.one_hot(x, SYMBOLS).float()
            onehot[..., OUTSIDE] = 0.0  # padding is all zeros, as beyond the chain's ends in "same" padding
            return self.net(onehot.transpose(1, 2)).transpose(1, 2)

    model = CNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(seed)

    def predictor(m):
        def predict(residues):
            with torch.inference_mode():
                return m(torch.from_numpy(residues)[None]).argmax(-1)[0].numpy()
        return predict

    best, best_state, history = -1.0, None, []
    for epoch in range(epochs):
        model.train()
        for idx in cnn_batches(train, budget, rng):
            x, y = collate(train, idx)
            loss = nn.functional.cross_entropy(model(x).reshape(-1, len(LABELS)), y.reshape(-1))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        score = q3(valid, predictor(model))
        history.append(round(score, 4))
        if score > best:
            best, best_state = score, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    model.eval()
    return predictor(model), history


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baselines", default="logreg,cnn")
    parser.add_argument("--logreg-proteins", type=int, default=4000)
    parser.add_argument("--cnn-epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    limit = 200 if args.quick else None
    train = read_flip(DATA / "train.csv", limit)
    splits = {"valid": read_flip(DATA / "valid.csv", limit), "new364": read_flip(DATA / "test_new364.csv", limit),
              "cb513": read_cb513(DATA / "cb513" / "CB513_HHblits.csv", limit)}
    report: dict = {"train_proteins": len(train), "seed": args.seed,
                    "majority_class": {name: round(majority_q3(train, p), 4) for name, p in splits.items()}}
    if "logreg" in args.baselines:
        start = time.perf_counter()
        predict, rows = train_logreg(train[:200 if args.quick else args.logreg_proteins])
        report["logreg"] = {"train_proteins": min(len(train), args.logreg_proteins), "train_residues": rows,
                            "seconds": round(time.perf_counter() - start, 1),
                            **{name: round(q3(p, predict), 4) for name, p in splits.items()}}
        print(json.dumps({"logreg": report["logreg"]}), flush=True)
    if "cnn" in args.baselines:
        start = time.perf_counter()
        predict, history = train_cnn(train, splits["valid"], 1 if args.quick else args.cnn_epochs, args.seed)
        report["cnn"] = {"epochs": len(history), "valid_q3_per_epoch": history,
                         "seconds": round(time.perf_counter() - start, 1),
                         **{name: round(q3(p, predict), 4) for name, p in splits.items()}}
        print(json.dumps({"cnn": report["cnn"]}), flush=True)
    out = Path(args.out or REPO / "benchmarks" / "out" / f"ss_baselines{'_quick' if args.quick else ''}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
