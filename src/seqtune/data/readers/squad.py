"""Question-answering examples from SQuAD JSON (v1.1, v2.0) and from JSONL, without conversion.

Two layouts are read, told apart by content (not by file extension):

- SQuAD JSON: `{"version", "data": [{"title", "paragraphs": [{"context", "qas": [{"id", "question",
  "answers": [{"text", "answer_start"}], "is_impossible"?}]}]}]}`. v2.0 marks unanswerable questions
  with `"is_impossible": true` and an empty `answers` list (its `plausible_answers` are not used).
- JSONL, one question per line, as Hugging Face `datasets` writes SQuAD:
  `{"id", "question", "context", "answers": {"text": [...], "answer_start": [...]}}`
  (also accepted: `answers` as a list of `{"text", "answer_start"}` objects). An empty answer list
  means "unanswerable"; a record without `answers` is unlabelled (fine for prediction only); a
  record without `id` gets its line number as id.

Part of a SQuAD JSON file is chosen by articles with a selector after the path, so a fixed split
of one file needs no copy of the data: `dev-v1.1.json#articles=0:32` reads articles 0..31,
`dev-v1.1.json#articles=32:` the rest (Python slice syntax, 0-based, end excluded).

Every answer is checked: `context[answer_start : answer_start + len(text)]` must equal `text`;
otherwise the error names the file, the question id and the text found there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from seqtune.data.readers.formats import check_file, detect_format, open_text
from seqtune.data.readers.table import read_table
from seqtune.errors import SeqtuneError

SELECTOR = "#articles="


@dataclass
class Answer:
    text: str
    start: int  # character offset of the answer in the context

    @property
    def end(self) -> int:
        """Character offset just past the answer."""
        return self.start + len(self.text)


@dataclass
class QAExample:
    """One question about one context.

    answers: None when the file gives no answers (unlabelled, prediction input); [] when the
    question is unanswerable (SQuAD v2.0); otherwise one or more gold answers (dev sets have
    several; training uses the first).
    """

    id: str
    question: str
    context: str
    answers: list[Answer] | None
    title: str = ""
    where: str = ""  # "file: question id ..." or "file:line", for messages

    @property
    def is_impossible(self) -> bool:
        return self.answers is not None and not self.answers


def parse_selector(path: str) -> tuple[str, slice | None]:
    """'file.json#articles=0:32' -> ('file.json', slice(0, 32)); a plain path -> (path, None)."""
    if SELECTOR not in path:
        return path, None
    file, spec = path.split(SELECTOR, 1)
    parts = spec.split(":")
    try:
        if len(parts) != 2:
            raise ValueError
        start, stop = (int(p) if p.strip() else None for p in parts)
    except ValueError:
        raise SeqtuneError(
            f"{path}: the article selector {spec!r} is not a slice; write e.g. "
            f"'{file}{SELECTOR}0:32' (first 32 articles) or '{file}{SELECTOR}32:' (from article 32 on)."
        ) from None
    return file, slice(start, stop)


def read_squad(path: str, max_rows: int | None = None, fmt: str = "auto", encoding: str = "utf-8") -> list[QAExample]:
    """Read SQuAD JSON or JSONL (see the module docstring). Errors name the file and the record.

    `fmt` (data.format) is checked, but the content decides the layout, whatever the extension.
    `encoding` is data.encoding.
    """
    file, articles = parse_selector(path)
    check_file(file)
    detect_format(file, fmt, ("squad", "jsonl"), "question-answering", default="squad")
    with open_text(file, encoding) as f:
        text = f.read()
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        document = None  # several JSON values: JSONL (its own reader reports bad lines)
    if isinstance(document, dict) and "data" in document:
        examples = _read_squad_json(file, document, articles, max_rows)
    else:
        if document is not None and not isinstance(document, dict):
            raise SeqtuneError(
                f"{file}: expected SQuAD JSON (an object with a 'data' list of articles) or JSONL "
                f"(one question object per line), found a JSON {type(document).__name__}."
            )
        if articles is not None:
            raise SeqtuneError(
                f"{path}: an article selector needs a SQuAD JSON file with articles; this file is JSONL "
                "(one question per line). Use data.max_rows or split the file instead."
            )
        examples = _read_jsonl(file, max_rows, encoding)
    if not examples:
        chosen = "" if articles is None else (  # a selector is only taken with SQuAD JSON, so `document` has articles
            f" in the articles chosen ({path.split(SELECTOR, 1)[1]}; the file has {len(document['data'])} articles, "
            "numbered from 0)")
        raise SeqtuneError(f"{path}: the dataset has no questions{chosen}.")
    _check_unique_ids(examples)
    return examples


def _read_squad_json(file: str, document: dict, articles: slice | None, max_rows: int | None) -> list[QAExample]:
    data = document["data"]
    if not isinstance(data, list):
        raise SeqtuneError(f"{file}: 'data' must be a list of articles, found {type(data).__name__}.")
    chosen = range(len(data))[articles] if articles is not None else range(len(data))
    examples: list[QAExample] = []
    for a in chosen:
        article = data[a]
        where_article = f"{file}: article {a}"
        paragraphs = _field(article, "paragraphs", list, where_article) if isinstance(article, dict) else None
        if paragraphs is None:
            raise SeqtuneError(f"{where_article}: expected an object with 'title' and 'paragraphs'.")
        title = str(article.get("title", ""))
        for p_index, paragraph in enumerate(paragraphs):
            where_par = f"{where_article} ({title!r}), paragraph {p_index}"
            if not isinstance(paragraph, dict):
                raise SeqtuneError(f"{where_par}: expected an object with 'context' and 'qas'.")
            context = _text(paragraph, "context", where_par)
            for qa in _field(paragraph, "qas", list, where_par):
                if max_rows is not None and len(examples) >= max_rows:
                    return examples
                if not isinstance(qa, dict):
                    raise SeqtuneError(f"{where_par}: each entry of 'qas' must be an object with 'id' and 'question'.")
                qid = _question_id(qa, where_par)
                where = f"{file}: question id {qid!r} ({title!r}, paragraph {p_index})"
                answers = None
                if "answers" in qa:
                    raw = _field(qa, "answers", list, where)
                    answers = [_answer(r.get("text") if isinstance(r, dict) else None,
                                       r.get("answer_start") if isinstance(r, dict) else None,
                                       context, where, i) for i, r in enumerate(raw)]
                answers = _check_impossible(qa, answers, where)
                examples.append(QAExample(qid, _text(qa, "question", where), context, answers, title, where))
    return examples


def _read_jsonl(file: str, max_rows: int | None, encoding: str) -> list[QAExample]:
    table = read_table(file, "jsonl", max_rows, encoding=encoding)
    examples = []
    for i, row in enumerate(table.rows):
        where = table.where(i)
        # JSONL ids are optional (question/context pairs to predict): the line number stands in.
        qid = _question_id(row, where) if "id" in row else str(table.lines[i])
        where = f"{where} (question id {qid!r})"
        context = _text(row, "context", where)
        answers = None
        raw = row.get("answers")
        if isinstance(raw, dict):
            texts, starts = raw.get("text", []), raw.get("answer_start", [])
            if not isinstance(texts, list) or not isinstance(starts, list) or len(texts) != len(starts):
                raise SeqtuneError(
                    f"{where}: 'answers' must hold two lists of equal length, 'text' and 'answer_start'; "
                    f"found {raw!r}."
                )
            answers = [_answer(t, s, context, where, k) for k, (t, s) in enumerate(zip(texts, starts))]
        elif isinstance(raw, list):
            answers = [_answer(r.get("text") if isinstance(r, dict) else None,
                               r.get("answer_start") if isinstance(r, dict) else None,
                               context, where, k) for k, r in enumerate(raw)]
        elif raw is not None:
            raise SeqtuneError(
                f"{where}: 'answers' must be {{\"text\": [...], \"answer_start\": [...]}}, found {raw!r}."
            )
        answers = _check_impossible(row, answers, where)
        examples.append(QAExample(qid, _text(row, "question", where), context, answers,
                                  str(row.get("title", "")), where))
    return examples


def _field(record: dict, key: str, kind: type, where: str):
    if key not in record:
        raise SeqtuneError(f"{where}: missing '{key}'.")
    value = record[key]
    if not isinstance(value, kind):
        raise SeqtuneError(f"{where}: '{key}' must be a {kind.__name__}, found {type(value).__name__}.")
    return value


def _text(record: dict, key: str, where: str) -> str:
    value = record.get(key)
    if not isinstance(value, str) or not value.strip():
        state = "missing" if value is None else f"empty or not text ({value!r})"
        raise SeqtuneError(f"{where}: the {key} is {state}; every question needs a question and a context.")
    return value


def _question_id(record: dict, where: str) -> str:
    qid = record.get("id")
    if qid is None or (isinstance(qid, str) and not qid.strip()):
        raise SeqtuneError(f"{where}: a question has no 'id' (needed to report its prediction).")
    return str(qid)


def _answer(text, start, context: str, where: str, index: int) -> Answer:
    if not isinstance(text, str) or not text:
        raise SeqtuneError(f"{where}: answer {index} has no text (found {text!r}).")
    if not isinstance(start, int) or isinstance(start, bool):
        raise SeqtuneError(f"{where}: answer {index} ({text!r}) has no integer answer_start (found {start!r}).")
    found = context[start:start + len(text)] if 0 <= start < len(context) else ""
    if found != text:
        found_note = (f"the context has {found!r} there" if 0 <= start < len(context)
                      else f"the context has only {len(context)} characters")
        raise SeqtuneError(
            f"{where}: answer {index} {text!r} does not match the context at answer_start {start}: "
            f"{found_note}. answer_start must be the character offset of the answer in the context."
        )
    return Answer(text, start)


def _check_impossible(record: dict, answers: list[Answer] | None, where: str) -> list[Answer] | None:
    """Reconcile SQuAD v2.0's `is_impossible` flag with the answers list."""
    flag = record.get("is_impossible")
    if flag is None:
        return answers
    if not isinstance(flag, bool):
        raise SeqtuneError(f"{where}: is_impossible must be true or false, found {flag!r}.")
    if flag and answers:
        raise SeqtuneError(f"{where}: is_impossible is true but the question has {len(answers)} answers.")
    if not flag and answers is not None and not answers:
        raise SeqtuneError(f"{where}: is_impossible is false but the question has no answers.")
    return [] if flag else answers


def _check_unique_ids(examples: list[QAExample]) -> None:
    seen: dict[str, str] = {}
    for ex in examples:
        if ex.id in seen:
            raise SeqtuneError(
                f"{ex.where}: the question id {ex.id!r} is used twice (first at {seen[ex.id]}); "
                "predictions are keyed by id, so ids must be unique."
            )
        seen[ex.id] = ex.where
