"""Question + context -> model windows, with answer token positions and character offsets.

`[CLS] question [SEP] context-part [SEP]`, token types 0/1 (RoBERTa and XLM-R: `<s> question </s></s>
context-part </s>`, type 0; the tokenizer's post-processor decides). Only the context is truncated: a
context too long for `max_length` tokens becomes several windows, consecutive windows sharing
`doc_stride` context tokens (the `tokenizers` library's `stride`, as in Hugging Face's run_qa), so
every answer lies whole inside at least one window unless it is longer than the overlap.

Each window keeps the character span (start, end) of every context token in the original context
(from the `tokenizers` offsets, which point into the original text whatever the tokenizer does to
it: BERT's normalisation, byte-level BPE's leading-space marker, SentencePiece's `▁`), so an
answer's characters map to token positions for training and a predicted token span maps back to the
exact original text. A window that does not contain the
whole answer (and every window of an unanswerable question) points start and end at [CLS] (index 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seqtune.data.readers.squad import QAExample
from seqtune.errors import SeqtuneError
from seqtune.tasks.text_features import QAWindows
from seqtune.tokenization import Tokenizer, encodings_in_chunks


@dataclass
class WindowSettings:
    max_length: int = 384  # tokens per window, special tokens included
    doc_stride: int = 128  # context tokens shared by consecutive windows
    max_windows: int | None = 64  # more windows for one context is an error (None: no cap)


def make_windows(examples: list[QAExample], tokenizer: Tokenizer, settings: WindowSettings) -> QAWindows:
    """All windows of all examples, in example order, held flat (text_features.QAWindows: each reads
    as the dict below). Tokenizes in chunks of examples, each in parallel (Rust).

    Each feature: input_ids, token_type_ids (lists of int, length T <= max_length);
    example_index; offsets (T, 2) int32 array of character spans, (-1, -1) outside the context;
    context_start / context_end: first and last context token index; start_positions /
    end_positions: token indices of the (first) gold answer, 0 for "not in this window".
    """
    _check_question_room(examples, tokenizer, settings)
    backend = tokenizer.backend
    backend.enable_truncation(settings.max_length, stride=settings.doc_stride, strategy="only_second")
    features = QAWindows()
    try:  # the tokenizer runs a chunk of examples at a time (encodings_in_chunks), truncating all of them
        encodings = encodings_in_chunks(backend, [(ex.question.lstrip(), ex.context) for ex in examples])
        for index, (example, first) in enumerate(zip(examples, encodings)):
            windows = [first, *first.overflowing]
            if settings.max_windows is not None and len(windows) > settings.max_windows:
                raise SeqtuneError(
                    f"{example.where}: the context needs {len(windows)} windows of {settings.max_length} "
                    f"tokens (doc_stride {settings.doc_stride}), more than task.max_windows = "
                    f"{settings.max_windows}. Split the context into shorter passages, or raise "
                    "task.max_windows (null for no cap)."
                )
            for window in windows:
                features.add(_window_feature(window, example, index))
    finally:
        backend.no_truncation()
    return features


def _window_feature(window, example: QAExample, example_index: int) -> dict:
    sequence_ids = window.sequence_ids
    in_context = np.array([s == 1 for s in sequence_ids], dtype=bool)
    context_tokens = np.nonzero(in_context)[0]
    if len(context_tokens) == 0:
        raise SeqtuneError(f"{example.where}: the context gives no tokens (only spaces or control characters?).")
    offsets = np.asarray(window.offsets, dtype=np.int32).reshape(-1, 2)
    offsets[~in_context] = -1
    feature = {
        "input_ids": list(window.ids),
        "token_type_ids": list(window.type_ids),
        "example_index": example_index,
        "offsets": offsets,
        "context_start": int(context_tokens[0]),
        "context_end": int(context_tokens[-1]),
    }
    if example.answers is not None:
        start, end = answer_tokens(offsets, feature["context_start"], feature["context_end"], example)
        feature["start_positions"], feature["end_positions"] = start, end
    return feature


def answer_tokens(offsets: np.ndarray, context_start: int, context_end: int, example: QAExample) -> tuple[int, int]:
    """Token indices (start, end), inclusive, of the example's first answer in this window; (0, 0) if absent.

    The start token is the last context token starting at or before the answer's first character,
    the end token the first one ending at or after its last character, so an answer that begins or
    ends inside a word piece still covers it.
    """
    if not example.answers:
        return 0, 0
    answer = example.answers[0]
    token_starts = offsets[context_start:context_end + 1, 0]
    token_ends = offsets[context_start:context_end + 1, 1]
    if token_starts[0] > answer.start or token_ends[-1] < answer.end:
        return 0, 0  # the answer is not wholly inside this window
    start = context_start + int(np.searchsorted(token_starts, answer.start, side="right")) - 1
    end = context_start + int(np.searchsorted(token_ends, answer.end, side="left"))
    return start, end


def _check_question_room(examples: list[QAExample], tokenizer: Tokenizer, settings: WindowSettings) -> None:
    """A window must fit the question, the special tokens (3 for BERT, 4 for RoBERTa) and more context
    tokens than the stride."""
    if settings.doc_stride < 0 or settings.max_length < 8:
        raise SeqtuneError(
            f"data.max_length ({settings.max_length}) must be at least 8 and task.doc_stride "
            f"({settings.doc_stride}) not negative."
        )
    lengths = [len(e.ids) for e in encodings_in_chunks(
        tokenizer.backend, [ex.question.lstrip() for ex in examples], add_special_tokens=False)]
    room = settings.max_length - tokenizer.backend.num_special_tokens_to_add(True)
    for example, n in zip(examples, lengths):
        if room - n <= settings.doc_stride:
            raise SeqtuneError(
                f"{example.where}: the question has {n} tokens, which leaves {max(0, room - n)} context "
                f"tokens per window of data.max_length = {settings.max_length}; that must be more than "
                f"task.doc_stride = {settings.doc_stride}. Shorten the question, raise data.max_length "
                "or lower task.doc_stride."
            )
