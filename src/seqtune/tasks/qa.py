"""Extractive question answering (SQuAD v1.1 and v2.0), the BERT paper's span set-up.

Input: a question and a context (SQuAD JSON or JSONL, see `seqtune.data.readers.squad`). The model
gives a start and an end logit per token (`SpanHead`, transformers' `BertForQuestionAnswering`);
the loss is the mean of the start and end cross-entropies. Long contexts become overlapping windows
(`qa_features`); answers are chosen over all windows of a question and cut from the original text
(`qa_postprocess`); scores follow the official SQuAD scripts (`qa_metrics`).

SQuAD v2.0 (unanswerable questions) is on when the training file has any question without an
answer, or when `task.version_2_with_negative: true`. Then "" is predicted when the no-answer score
beats the best span by more than `task.null_score_diff_threshold`, and evaluation also reports the
threshold that would have been best on that set (`best_f1_thresh`), to set for the next run.

    task: {type: qa, doc_stride: 128}
    data: {train: train-v1.1.json, dev: "dev-v1.1.json#articles=32:", max_length: 384}
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from seqtune.config import QuestionAnsweringOptions
from seqtune.data.readers.squad import QAExample, read_squad
from seqtune.errors import SeqtuneError
from seqtune.models.heads import SpanHead
from seqtune.tasks.base import EncodedDataset, Task, collate_inputs
from seqtune.tasks.qa_features import WindowSettings, make_windows
from seqtune.tasks.qa_metrics import (
    best_null_threshold,
    per_question_scores,
    squad_scores,
)
from seqtune.tasks.qa_postprocess import AnswerSettings, answer_questions


class QuestionAnsweringTask(Task):
    """Start/end span prediction over question + context windows. Primary metric: F1 (in [0, 1])."""

    name = "qa"
    Options = QuestionAnsweringOptions
    hf_architecture = "BertForQuestionAnswering"
    # ESM: transformers has no EsmForQuestionAnswering.
    model_types = ("bert", "roberta", "xlm-roberta", "distilbert", "electra")
    primary_metric = "f1"
    default_max_length = 384  # tokens per window: question + context part + 3 special tokens
    needs_pooler = False

    def __init__(self, options, data, tokenizer):
        super().__init__(options, data, tokenizer)
        self.version_2 = bool(options.version_2_with_negative)
        if tokenizer is not None and tokenizer.overlapping_kmer:  # k-mer tokens have no answer boundaries to cut at
            raise SeqtuneError(
                f"task.type qa needs a vocabulary of words or characters, but the model reads overlapping "
                f"{tokenizer.overlapping_kmer}-mers (model.vocab.kmer_overlap): a span of them does not end at "
                "an answer's last character. Use residues, tagging or a sequence task with this model."
            )
        if options.n_best < 1 or options.max_answer_length < 1:
            raise SeqtuneError(
                f"task.n_best ({options.n_best}) and task.max_answer_length ({options.max_answer_length}) "
                "must be at least 1."
            )

    # ---- data -------------------------------------------------------------------------------
    def read(self, path: str, split: str) -> list[QAExample]:
        """SQuAD JSON or JSONL; every split but "predict" needs answers (or v2.0's is_impossible)."""
        examples = read_squad(path, self.data.max_rows, self.data.format, self.data.encoding)
        if split == "predict":
            return examples
        unlabelled = next((e for e in examples if e.answers is None), None)
        if unlabelled is not None:
            raise SeqtuneError(
                f"{unlabelled.where}: the question has no 'answers', which the {split} split needs. "
                "Unanswerable questions (SQuAD v2.0) need \"answers\": [] or \"is_impossible\": true."
            )
        explicit_v1 = self.options.version_2_with_negative is False
        if (explicit_v1 or split != "train") and not self.version_2:
            impossible = next((e for e in examples if e.is_impossible), None)
            if impossible is not None:
                raise SeqtuneError(
                    f"{impossible.where}: the question is unanswerable (no answers), but this "
                    f"{'task has' if explicit_v1 else 'model was trained with'} no no-answer option "
                    "(SQuAD v1.1). Set task.version_2_with_negative: true and train on data with "
                    "unanswerable questions."
                )
        return examples

    def fit(self, train_examples: list[QAExample]) -> None:
        if self.options.version_2_with_negative is None:
            self.version_2 = any(e.is_impossible for e in train_examples)

    def examples_from_inputs(self, inputs: list) -> list[QAExample]:
        """Python-API inputs: {"question", "context", "id"?} dicts or (question, context) pairs."""
        examples = []
        for i, item in enumerate(inputs):
            where = f"input {i}"
            if isinstance(item, dict):
                question, context, qid = item.get("question"), item.get("context"), item.get("id", str(i))
            elif isinstance(item, (list, tuple)) and len(item) == 2:
                (question, context), qid = item, str(i)
            else:
                raise SeqtuneError(f"{where}: give a {{'question': ..., 'context': ...}} dict or a "
                                   "(question, context) pair.")
            for name, value in (("question", question), ("context", context)):
                if not isinstance(value, str) or not value.strip():
                    raise SeqtuneError(f"{where}: the {name} is missing or empty.")
            examples.append(QAExample(str(qid), question, context, None, where=where))
        return examples

    def encode(self, examples: list[QAExample], split: str) -> EncodedDataset:
        settings = WindowSettings(self.data.max_length, self.options.doc_stride, self.options.max_windows)
        features = make_windows(examples, self.tokenizer, settings)
        return EncodedDataset(examples, features, source=split,
                              info={"windows": len(features), "examples": len(examples)})

    def collate(self, features: list[dict]) -> dict[str, torch.Tensor]:
        batch = collate_inputs(features, self.tokenizer.pad_id)
        if "start_positions" in features[0]:
            batch["start_positions"] = torch.tensor([f["start_positions"] for f in features])
            batch["end_positions"] = torch.tensor([f["end_positions"] for f in features])
        return batch

    # ---- model ------------------------------------------------------------------------------
    def build_head(self, encoder_config) -> SpanHead:
        return SpanHead(encoder_config)

    def loss(self, logits, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(CE(start) + CE(end)) / 2 over each window's real tokens (padding never competes)."""
        padding = batch["attention_mask"] == 0
        start, end = (x.float().masked_fill(padding, float("-inf")) for x in logits)
        return (F.cross_entropy(start, batch["start_positions"]) + F.cross_entropy(end, batch["end_positions"])) / 2

    def split_outputs(self, logits, batch: dict[str, torch.Tensor]) -> list[np.ndarray]:
        """(start (B, T), end (B, T)) -> one (T_i, 2) float32 array per window, padding removed."""
        both = torch.stack(logits, dim=-1).detach().float().cpu().numpy()
        lengths = batch["attention_mask"].sum(1).tolist()
        return [both[i, :n] for i, n in enumerate(lengths)]

    # ---- outputs ----------------------------------------------------------------------------
    def _answer_settings(self) -> AnswerSettings:
        o = self.options
        return AnswerSettings(o.n_best, o.max_answer_length, self.version_2, o.null_score_diff_threshold)

    def predictions(self, outputs: list[np.ndarray], dataset: EncodedDataset) -> list[dict]:
        """Per question: id, answer, n_best [{text, score, probability, start}] (v2.0: score_diff too)."""
        return answer_questions(dataset.examples, dataset.features, outputs, self._answer_settings())

    def metric_names(self) -> list[str]:
        names = ["exact_match", "f1", "total"]
        if self.version_2:
            names += [f"{split}{m}" for split in ("has_ans_", "no_ans_") for m in ("exact_match", "f1", "total")]
            names += ["best_exact_match", "best_exact_match_thresh", "best_f1", "best_f1_thresh"]
        return names

    def metrics(self, outputs: list[np.ndarray], dataset: EncodedDataset) -> dict:
        """exact_match, f1 (in [0, 1]), total (int); v2.0: has_ans_*/no_ans_*, and best_exact_match /
        best_f1 (in [0, 1]) with the null_score_diff_threshold that reaches them (`*_thresh`, on the
        logit scale of score_diff)."""
        records = self.predictions(outputs, dataset)
        golds = {e.id: [a.text for a in e.answers] for e in dataset.examples}
        result = squad_scores({r["id"]: r["answer"] for r in records}, golds, self.version_2)
        if self.version_2:
            # Tune the threshold on what each question's best *span* would score.
            span_em, span_f1 = per_question_scores({r["id"]: r["best_span"] for r in records}, golds, True)
            diffs = np.array([r["score_diff"] for r in records])
            has_answer = np.array([bool(golds[r["id"]]) for r in records])
            result["best_exact_match_thresh"], result["best_exact_match"] = best_null_threshold(diffs, span_em, has_answer)
            result["best_f1_thresh"], result["best_f1"] = best_null_threshold(diffs, span_f1, has_answer)
        return result

    def prediction_files(self, records: list[dict]) -> dict[str, dict]:
        """Extra files for `seqtune predict`, by name suffix: the official SQuAD prediction file
        `{id: answer}` (what evaluate-v1.1/v2.0.py read) and, for v2.0, `{id: score_diff}` (their
        `na_prob` file: higher means "no answer" is more likely)."""
        files = {".answers.json": {r["id"]: r["answer"] for r in records}}
        if self.version_2:
            files[".null_odds.json"] = {r["id"]: r["score_diff"] for r in records}
        return files

    # ---- persistence ------------------------------------------------------------------------
    def state(self) -> dict:
        return {"version_2_with_negative": self.version_2}

    def load_state(self, state: dict) -> None:
        self.version_2 = bool(state.get("version_2_with_negative", self.version_2))

    def describe(self) -> str:
        kind = "SQuAD v2.0 (with unanswerable questions)" if self.version_2 else "SQuAD v1.1 (always answers)"
        o = self.options
        return (f"qa, {kind}; windows of {self.data.max_length} tokens sharing {o.doc_stride}, answers up to "
                f"{o.max_answer_length} tokens, {o.n_best}-best")
