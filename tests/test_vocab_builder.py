"""Building character / k-mer / WordPiece tokenizers from a corpus, and their bad-input errors."""

from __future__ import annotations

import pytest

from seqtune.errors import SeqtuneError
from seqtune.tokenization import SPECIAL_TOKENS, load_tokenizer
from seqtune.vocab_builder import (
    ALPHABETS,
    VocabSpec,
    build_char_tokenizer,
    build_tokenizer,
    build_wordpiece_tokenizer,
    same_vocabulary,
)

PROTEINS = ["MKTAYIAKQR", "GGHWLLVDE", "MKKLLPTAAAGLLLLAAQPAMA"]


def tokens(tok, text):
    return tok.backend.encode(text).tokens


def test_char_tokenizer_one_token_per_residue_with_bert_specials():
    tok = build_char_tokenizer(PROTEINS)
    vocab = tok.backend.get_vocab()
    assert [vocab[t] for t in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    letters = sorted(set("".join(PROTEINS)))
    assert tok.vocab_size == 5 + len(letters)
    assert tokens(tok, "MKTA") == ["[CLS]", "M", "K", "T", "A", "[SEP]"]
    assert tok.kind == "char" and tok.mask_id == 4


def test_char_tokenizer_keeps_mask_token_and_splits_at_whitespace():
    tok = build_char_tokenizer(alphabet="dna")
    assert tokens(tok, "AC[MASK]G T") == ["[CLS]", "A", "C", "[MASK]", "G", "T", "[SEP]"]
    assert tok.vocab_size == 5 + len(ALPHABETS["dna"])


def test_char_tokenizer_round_trips_through_save_and_load(tmp_path):
    tok = build_char_tokenizer(PROTEINS, alphabet="protein")
    tok.save(tmp_path)
    again = load_tokenizer(tmp_path)
    assert again.kind == "char"
    assert same_vocabulary(tok, again)
    text = "MKTAYW[MASK]C"
    assert again.backend.encode(text).ids == tok.backend.encode(text).ids
    assert (tmp_path / "vocab.txt").read_text().splitlines()[:5] == list(SPECIAL_TOKENS)


def test_esm_char_tokenizer_has_esms_special_tokens_and_template(tmp_path):
    tok = build_char_tokenizer(PROTEINS, family="esm", vocab_size=32)
    vocab = tok.backend.get_vocab()
    letters = sorted(set("".join(PROTEINS)))
    order = sorted(vocab, key=vocab.get)
    assert order[:4] == ["<cls>", "<pad>", "<eos>", "<unk>"] and order[4:4 + len(letters)] == letters
    assert order[4 + len(letters)] == "<mask>" and order[-1] == f"<null_{32 - 5 - len(letters)}>"
    assert tok.special == {"cls": "<cls>", "sep": "<eos>", "pad": "<pad>", "unk": "<unk>", "mask": "<mask>"}
    assert (tok.cls_id, tok.pad_id, tok.sep_id, tok.unk_id) == (0, 1, 2, 3)
    assert tokens(tok, "MK<mask>TA") == ["<cls>", "M", "K", "<mask>", "T", "A", "<eos>"]
    assert tokens(tok, "MB") == ["<cls>", "M", "<unk>", "<eos>"]
    assert set(tok.backend.encode("MK", "TA").type_ids) == {0}  # ESM has no token types
    tok.save(tmp_path)
    again = load_tokenizer(tmp_path)
    assert again.kind == "char" and same_vocabulary(tok, again) and again.special == tok.special
    assert again.backend.encode("MK<mask>TA").ids == tok.backend.encode("MK<mask>TA").ids


def test_esm_family_reads_single_residues_only(tmp_path):
    with pytest.raises(SeqtuneError, match="family esm reads one token per residue.*kmer 3"):
        build_char_tokenizer(alphabet="ACGT", kmer=3, family="esm")
    with pytest.raises(SeqtuneError, match="not kind 'wordpiece'"):
        build_tokenizer(VocabSpec(kind="wordpiece", vocab_size=100), ["hello world"], "corpus", family="esm")
    build_char_tokenizer(alphabet="ACGT").save(tmp_path)  # a BERT-shaped tokenizer given as model.vocab.path
    with pytest.raises(SeqtuneError, match=r"starts inputs with '\[CLS\]', but esm models .* start them with '<cls>'"):
        build_tokenizer(VocabSpec(path=str(tmp_path)), [], "corpus", family="esm")
    assert build_tokenizer(VocabSpec(path=str(tmp_path)), [], "corpus").kind == "char"


def test_kmer_tokenizer_cuts_non_overlapping_kmers_with_short_tail():
    tok = build_char_tokenizer(alphabet="ACGT", kmer=3)
    assert tokens(tok, "ACGTACGT")[1:-1] == ["ACG", "TAC", "GT"]
    assert tok.vocab_size == 5 + 4 + 16 + 64
    assert "[UNK]" not in tokens(tok, "TTTTGCA")


def test_vocab_size_pads_with_unused_tokens_that_are_special():
    tok = build_char_tokenizer(alphabet="ACGT", vocab_size=16)
    assert tok.vocab_size == 16
    assert tokens(tok, "A[unused3]C")[1:-1] == ["A", "[unused3]", "C"]


def test_vocab_size_smaller_than_specials_plus_alphabet_is_an_error():
    with pytest.raises(SeqtuneError, match="vocab_size 8 is smaller than the 9 tokens"):
        build_char_tokenizer(alphabet="ACGT", vocab_size=8)
    with pytest.raises(SeqtuneError, match="smaller than the"):
        build_wordpiece_tokenizer(["hello world"] * 3, vocab_size=8)


def test_characters_outside_the_alphabet_are_an_error_naming_the_record():
    records = [("ACGT", "genes.fa record 1"), ("ACGZT", "genes.fa record 2")]
    with pytest.raises(SeqtuneError, match=r"record 2: characters 'Z' are not in the alphabet"):
        build_char_tokenizer(records, alphabet="dna")


def test_empty_corpus_is_an_error():
    with pytest.raises(SeqtuneError, match="empty"):
        build_char_tokenizer([])
    with pytest.raises(SeqtuneError, match="empty"):
        build_char_tokenizer(["", "  "], alphabet="dna")
    with pytest.raises(SeqtuneError, match="empty"):
        build_wordpiece_tokenizer(["   "], vocab_size=100)


def test_bad_alphabets_are_errors():
    with pytest.raises(SeqtuneError, match="more than once"):
        build_char_tokenizer(alphabet="ACGA")
    with pytest.raises(SeqtuneError, match="whitespace"):
        build_char_tokenizer(alphabet="AC GT")


def test_wordpiece_trains_requested_size_and_marks_word_pieces():
    words = "the protein folds into a helix and the sheet packs against the helix core".split()
    corpus = [" ".join(words[i:] + words[:i]) for i in range(len(words))] * 5
    tok = build_wordpiece_tokenizer(corpus, vocab_size=120, lowercase=True)
    assert tok.kind == "wordpiece"
    assert 60 < tok.vocab_size <= 120
    enc = tok.backend.encode("The helixes")
    assert enc.tokens[0] == "[CLS]" and enc.tokens[1] == "the"
    # "helixes" is not a training word: several pieces sharing one word id
    pieces = [t for t, w in zip(enc.tokens, enc.word_ids) if w == 1]
    assert len(pieces) >= 2 and all(p.startswith("##") for p in pieces[1:])


def test_build_tokenizer_from_spec(tmp_path):
    tok = build_tokenizer(VocabSpec(kind="char", alphabet="rna"), ["ACGU"], "corpus")
    assert tokens(tok, "ACGU")[1:-1] == list("ACGU")
    tok.save(tmp_path)
    assert same_vocabulary(build_tokenizer(VocabSpec(path=str(tmp_path)), [], "corpus"), tok)
    with pytest.raises(SeqtuneError, match="vocab_size is required"):
        build_tokenizer(VocabSpec(kind="wordpiece"), ["hello"], "corpus")
