"""Sequences with one label per residue (protein secondary structure, per-base DNA/RNA labels, ...).

Formats:
- CSV / TSV / JSONL (through `table.read_table`): a sequence column and a label column
  (`data.text_column`, `data.label_column`), optionally an id column and a mask column. A field
  is either one character per residue (`MKVL`, `HHEC`, `0111`) or, when it contains whitespace,
  whitespace-separated items (`M K V L`, `H H E C`, `1.0 0.0`), as in the CB513 CSV. In JSONL a
  field may also be a JSON list.
- FASTA-style (`.fasta`, `.fa`, `.faa`, `.fna`): the convention seqtune uses for labelled records
  is one header line, then the sequence on ONE line, then its labels on ONE line, then (only when
  a mask column is configured) the mask on one line:

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

from dataclasses import dataclass
from pathlib import Path

from seqtune.data.readers.table import FORMATS_BY_SUFFIX, check_file, read_table
from seqtune.errors import SeqtuneError

FASTA_SUFFIXES = (".fasta", ".fa", ".faa", ".fna", ".fas")
TRUE_WORDS, FALSE_WORDS = {"true", "yes"}, {"false", "no"}


@dataclass
class LabelledSequence:
    """One sequence, its per-residue labels (None when unlabelled) and optional scoring mask."""

    sequence: str
    labels: list[str] | None
    mask: list[bool] | None
    id: str | None
    where: str  # "file:line (record N)", for messages


def sequence_format(path: str, fmt: str = "auto") -> str:
    if fmt in ("csv", "tsv", "jsonl", "fasta"):
        return fmt
    if fmt != "auto":
        raise SeqtuneError(f"{path}: data.format {fmt!r} is not a sequence format; use csv, tsv, jsonl or fasta.")
    suffix = Path(path).suffix.lower()
    if suffix in FASTA_SUFFIXES:
        return "fasta"
    if suffix in FORMATS_BY_SUFFIX:
        return FORMATS_BY_SUFFIX[suffix]
    raise SeqtuneError(
        f"{path}: cannot tell the format from the extension {suffix!r}; set data.format to csv, tsv, "
        "jsonl or fasta."
    )


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


def read_sequences(
    path: str,
    fmt: str = "auto",
    *,
    labelled: bool = True,
    sequence_column: str = "sequence",
    label_column: str = "labels",
    mask_column: str | None = None,
    id_column: str | None = "id",
    max_records: int | None = None,
) -> list[LabelledSequence]:
    """Read labelled (or, for prediction, unlabelled) sequences; see the module docstring."""
    fmt = sequence_format(path, fmt)
    if fmt == "fasta":
        return read_fasta_records(path, labelled=labelled, with_mask=mask_column is not None,
                                  max_records=max_records)
    table = read_table(path, fmt, max_records)
    table.require(sequence_column, "sequence, data.text_column")
    if labelled:
        table.require(label_column, "per-residue labels, data.label_column")
    use_mask = mask_column is not None and (labelled or mask_column in table.columns)
    if use_mask:
        table.require(mask_column, "scoring mask, task.mask_column")
    records = []
    for i, row in enumerate(table.rows):
        where = f"{table.where(i)} (record {i + 1})"
        records.append(make_record(
            row.get(sequence_column),
            row.get(label_column) if labelled else None,
            row.get(mask_column) if use_mask else None,
            row.get(id_column) if id_column else None,
            where,
            f"column {label_column!r}",
        ))
    return records


def read_fasta_records(
    path: str, *, labelled: bool, with_mask: bool = False, max_records: int | None = None
) -> list[LabelledSequence]:
    """FASTA records: labelled = header/sequence/labels[/mask] lines; unlabelled = plain FASTA."""
    p = check_file(path)
    records: list[LabelledSequence] = []
    header: str | None = None
    header_line = 0
    body: list[str] = []

    def close() -> None:
        if header is None:
            return
        where = f"{path}:{header_line} (record {len(records) + 1})"
        rid = header.split()[0] if header.strip() else None
        if not labelled:
            records.append(make_record("".join(body), None, None, rid, where))
            return
        want = 3 if with_mask else 2
        if len(body) != want:
            raise SeqtuneError(
                f"{where}: a labelled FASTA record has {want} lines after the header (sequence, labels"
                f"{', mask' if with_mask else ''}), each on one unwrapped line; this one has {len(body)}."
            )
        records.append(make_record(body[0], body[1], body[2] if with_mask else None, rid, where,
                                   "the label line"))

    try:
        with p.open(encoding="utf-8") as f:
            for n, line in enumerate(f, start=1):
                text = line.strip()
                if not text:
                    continue
                if text.startswith(">"):
                    close()
                    if max_records is not None and len(records) >= max_records:
                        header = None
                        break
                    header, header_line, body = text[1:], n, []
                elif header is None:
                    raise SeqtuneError(f"{path}:{n}: expected a FASTA header line starting with '>'.")
                else:
                    body.append(text)
    except UnicodeDecodeError as e:
        raise SeqtuneError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}).") from None
    close()
    if not records:
        raise SeqtuneError(f"{path}: the file has no FASTA records (lines starting with '>').")
    return records
