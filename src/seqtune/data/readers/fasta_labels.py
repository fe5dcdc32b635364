"""FASTA records with one label per record, for sequence classification and regression.

The sequence is every line after the header, joined (so 60- or 80-column wrapped files work). The
record's label comes from one of two places:

- a `key=value` field of the header, with `data.label_column` as the key:

      >seq1 label=promoter
      >sp|P69905|HBA_HUMAN Hemoglobin alpha OS=Homo sapiens OX=9606

  A value runs to the next ` key=` or the end of the line (so UniProt's `OS=Homo sapiens` is
  "Homo sapiens");
- a labels table (`data.labels_file`, CSV/TSV/JSONL, read like any table: `data.header`,
  `data.encoding`), joined on the record id (the first word of the header) through its columns
  `data.id_column` and `data.label_column`. One table may hold the labels of the train, dev and test
  files; an id listed twice with different labels is an error.

A labelled record without a label is an error naming the record, never dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from seqtune.data.readers.fasta import read_fasta
from seqtune.data.readers.table import Column, read_table
from seqtune.errors import SeqtuneError


@dataclass
class FastaText:
    id: str | None
    text: str  # the sequence, its lines joined
    label: str | None  # the raw label (None when unlabelled)
    where: str  # "file:line (record N)", for messages


def header_value(header: str, key: str) -> str | None:
    """The value of `key=value` in a FASTA header (without its '>'), or None when the key is absent."""
    found = re.search(rf"(?:^|\s){re.escape(key)}=(.*?)(?=\s+[^\s=]+=|\s*$)", header)
    return None if found is None else found.group(1).strip()


def read_label_table(path: str, id_column: Column | None, label_column: Column, *, header: bool = True,
                     encoding: str = "utf-8") -> dict[str, tuple[str, str]]:
    """record id -> (raw label, "file:line") from a labels table."""
    if id_column is None:
        raise SeqtuneError(f"data.labels_file is {path}, but data.id_column is not set; name the column of "
                           "record ids to join the FASTA records on (e.g. --set data.id_column=id).")
    table = read_table(path, "auto", header=header, what="labels", encoding=encoding)
    table.require(id_column, "data.id_column", "record ids of data.labels_file")
    table.require(label_column, "data.label_column", "labels of data.labels_file")
    labels: dict[str, tuple[str, str]] = {}
    for i, row in enumerate(table.rows):
        record_id, label = row.get(id_column), row.get(label_column)
        if record_id is None or not str(record_id).strip():
            raise SeqtuneError(f"{table.where(i)}: empty record id in column {id_column!r} of the labels file.")
        record_id = str(record_id).strip()
        if record_id in labels and labels[record_id][0] != label:
            raise SeqtuneError(
                f"{table.where(i)}: record id {record_id!r} is listed again with label {label!r}; "
                f"{labels[record_id][1]} gives it {labels[record_id][0]!r}. Keep one label per id."
            )
        labels.setdefault(record_id, (label, table.where(i)))
    return labels


def read_fasta_texts(
    path: str,
    *,
    labelled: bool,
    label_key: Column = "label",
    labels_file: str | None = None,
    id_column: Column | None = "id",
    header: bool = True,
    max_records: int | None = None,
    encoding: str = "utf-8",
) -> list[FastaText]:
    """FASTA records as texts, with labels from the header's `label_key=value` or from `labels_file`."""
    table = read_label_table(labels_file, id_column, label_key, header=header, encoding=encoding) \
        if labelled and labels_file else None
    if labelled and table is None and not isinstance(label_key, str):
        raise SeqtuneError(
            f"{path}: data.label_column is {label_key}, a column number, but FASTA records take their label "
            "from a key=value field of the header, named by data.label_column (e.g. label for "
            "'>seq1 label=promoter'); or set data.labels_file to a table of labels."
        )
    texts: list[FastaText] = []
    missing: list[str] = []
    for record in read_fasta(path, max_records, encoding):
        where = f"{path}:{record.line} (record {record.number})"
        text = "".join(record.lines)
        if not text:
            raise SeqtuneError(f"{where}: the record >{record.header[:60]} has no sequence.")
        label = None
        if labelled and table is not None:
            if record.id is None:
                raise SeqtuneError(f"{where}: the header has no id to look up in data.labels_file {labels_file}.")
            if record.id not in table:
                missing.append(record.id)
                continue
            label, found = table[record.id]
            where = f"{where}, label from {found}"
        elif labelled:
            label = header_value(record.header, label_key)
            if label is None:
                raise SeqtuneError(
                    f"{where}: the header >{record.header[:80]} has no {label_key}=VALUE field. A labelled "
                    f"FASTA record reads e.g. '>seq1 {label_key}=promoter' (data.label_column names the key), "
                    "or set data.labels_file to a table of record ids and labels."
                )
        texts.append(FastaText(record.id, text, label, where))
    if missing:
        shown = ", ".join(repr(m) for m in missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise SeqtuneError(
            f"{path}: {len(missing)} records have no label in data.labels_file {labels_file} (column "
            f"{id_column!r}): {shown}. Every labelled record needs one; remove the record or add its label."
        )
    if not texts:
        raise SeqtuneError(f"{path}: the file has no FASTA records (lines starting with '>').")
    return texts
