"""Sequences with one label per residue (protein secondary structure, per-base DNA/RNA labels, ...).

Formats:
- CSV / TSV / JSONL (through `table.read_table`): a sequence column and a label column
  (`data.text_column`, `data.label_column`), optionally an id column and a mask column (names, or
  0-based numbers in a CSV/TSV without a header row). A field
  is either one character per residue (`MKVL`, `HHEC`, `0111`) or, when it contains whitespace,
  whitespace-separated items (`M K V L`, `H H E C`, `1.0 0.0`), as in the CB513 CSV. In JSONL a
  field may also be a JSON list.
- FASTA-style (`.fasta`, `.fa`, ...; records split by `fasta.read_fasta`): the convention seqtune
  uses for labelled records is one header line, then the sequence on ONE line, then its labels on
  ONE line, then (only when a mask column is configured) the mask on one line:

      >1es5-A
      VTKPTIAAVGGYAM
      CCCCCCCCCEEEEE
      00111111111111

  Lines are not wrapped (with wrapping, the sequence/label boundary would be ambiguous). Files
  for prediction are plain FASTA: every line after the header belongs to the sequence, so
  80-column wrapped files work there.

Mask values: 1 (or any non-zero number, `True`) = score this residue; 0 = excluded from loss and
metrics (unresolved residues whose label is a placeholder). A record whose label or mask count
differs from its residue count is an error naming the record number, line and both lengths.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from seqtune.data.readers.fasta import iter_fasta
from seqtune.data.readers.formats import check_file, detect_format
from seqtune.data.readers.table import Column, read_table
from seqtune.errors import SeqtuneError

SEQUENCE_FORMATS = ("csv", "tsv", "jsonl", "fasta")
TRUE_WORDS, FALSE_WORDS = {"true", "yes"}, {"false", "no"}


@dataclass
class LabelledSequence:
    """One sequence, its per-residue labels (None when unlabelled) and optional scoring mask."""

    sequence: str
    labels: list[str] | None
    mask: list[bool] | None
    id: str | None
    where: str  # "file:line (record N)", for messages


def split_items(value, what: str, where: str) -> list[str]:
    """A per-residue field -> one item per residue: a JSON list, whitespace-separated items, or characters."""
    if isinstance(value, list):
        items = [str(v) for v in value]
    elif isinstance(value, str):
        text = value.strip()
        items = text.split() if any(c.isspace() for c in text) else list(text)
    else:
        raise SeqtuneError(f"{where}: the {what} should be a string or a list, found {value!r}.")
    return items


def parse_sequence(value, where: str) -> str:
    items = split_items(value, "sequence", where)
    if not items:
        raise SeqtuneError(f"{where}: empty sequence; every record needs at least one residue.")
    long = [s for s in items if len(s) != 1]
    if long:
        raise SeqtuneError(
            f"{where}: the sequence is split into items of more than one character (e.g. {long[0]!r}); "
            "residues must be single characters."
        )
    return "".join(items)


def parse_mask(value, where: str) -> list[bool]:
    if isinstance(value, str) and value.strip() and set(value.strip()) <= {"0", "1"}:
        return [c == "1" for c in value.strip()]  # the common case, e.g. "0011110"
    mask = []
    for item in split_items(value, "mask", where):
        word = item.lower()
        if word in TRUE_WORDS or word in FALSE_WORDS:
            mask.append(word in TRUE_WORDS)
            continue
        try:
            mask.append(float(item) != 0.0)
        except ValueError:
            raise SeqtuneError(f"{where}: mask value {item!r} is not 0/1 (or a number, or true/false).") from None
    return mask


def make_record(
    sequence, labels, mask, record_id, where: str, label_name: str = "labels"
) -> LabelledSequence:
    """Parse and cross-check one record's fields (labels/mask None when absent)."""
    seq = parse_sequence(sequence, where)
    label_items = split_items(labels, "labels", where) if labels is not None else None
    if label_items is not None and len(label_items) != len(seq):
        raise SeqtuneError(
            f"{where}: the sequence has {len(seq)} residues but {label_name} has {len(label_items)} labels; "
            "every residue needs exactly one label (one character each, or separated by spaces)."
        )
    mask_items = parse_mask(mask, where) if mask is not None else None
    if mask_items is not None and len(mask_items) != len(seq):
        raise SeqtuneError(
            f"{where}: the sequence has {len(seq)} residues but the mask has {len(mask_items)} values."
        )
    return LabelledSequence(seq, label_items, mask_items, None if record_id is None else str(record_id), where)


def read_sequences(path: str, fmt: str = "auto", **settings) -> list[LabelledSequence]:
    """Read labelled (or, for prediction, unlabelled) sequences; see the module docstring and
    `iter_sequences` for the settings."""
    return list(iter_sequences(path, fmt, **settings))


def iter_sequences(
    path: str,
    fmt: str = "auto",
    *,
    labelled: bool = True,
    sequence_column: Column = "sequence",
    label_column: Column = "labels",
    mask_column: Column | None = None,
    id_column: Column | None = "id",
    max_records: int | None = None,
    header: bool = True,
    encoding: str = "utf-8",
) -> Iterator[LabelledSequence]:
    """`read_sequences` one record at a time (for the token store): FASTA is streamed, a CSV/TSV/JSONL
    table is read whole and its records are made one by one.

    `header=False`: a CSV/TSV without a header row, columns given by 0-based number. The id column
    is optional, so a name that a headerless file cannot have is passed over. `encoding`: data.encoding.
    """
    check_file(path)
    fmt = detect_format(path, fmt, SEQUENCE_FORMATS, "per-residue")
    if fmt == "fasta":
        yield from iter_fasta_records(path, labelled=labelled, with_mask=mask_column is not None,
                                      max_records=max_records, encoding=encoding)
        return
    table = read_table(path, fmt, max_records, header=header, what="per-residue", encoding=encoding)
    table.require(sequence_column, "data.text_column", "sequence")
    if labelled:
        table.require(label_column, "data.label_column", "per-residue labels")
    use_mask = mask_column is not None and (labelled or table.has(mask_column))
    if use_mask:
        table.require(mask_column, "data.mask_column", "scoring mask")
    use_id = id_column is not None and (table.has(id_column) or isinstance(id_column, int))
    if use_id:
        table.require(id_column, "data.id_column", "record id")
    for i, row in enumerate(table.rows):
        where = f"{table.where(i)} (record {i + 1})"
        yield make_record(
            row.get(sequence_column),
            row.get(label_column) if labelled else None,
            row.get(mask_column) if use_mask else None,
            row.get(id_column) if use_id else None,
            where,
            f"column {label_column!r}",
        )


def iter_fasta_records(
    path: str, *, labelled: bool, with_mask: bool = False, max_records: int | None = None, encoding: str = "utf-8"
) -> Iterator[LabelledSequence]:
    """FASTA records: labelled = header/sequence/labels[/mask] lines; unlabelled = plain FASTA."""
    count = 0
    for record in iter_fasta(path, max_records, encoding):
        where = f"{path}:{record.line} (record {record.number})"
        body = record.lines
        count += 1
        if not labelled:
            yield make_record("".join(body), None, None, record.id, where)
            continue
        want = 3 if with_mask else 2
        if len(body) != want:
            raise SeqtuneError(
                f"{where}: a labelled FASTA record has {want} lines after the header (sequence, labels"
                f"{', mask' if with_mask else ''}), each on one unwrapped line; this one has {len(body)}."
            )
        yield make_record(body[0], body[1], body[2] if with_mask else None, record.id, where, "the label line")
    if not count:
        raise SeqtuneError(f"{path}: the file has no FASTA records (lines starting with '>').")
