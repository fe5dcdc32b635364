import pytest

from seqtune.data.readers.table import read_table
from seqtune.errors import SeqtuneError


def test_glue_tsv_with_quotes_kept(tmp_path):
    p = tmp_path / "t.tsv"
    p.write_text('sentence\tlabel\nit\'s "quoted" text \t1\nplain\t0\n')
    t = read_table(str(p))
    assert t.rows[0]["sentence"] == 'it\'s "quoted" text ' and t.lines == [2, 3]


def test_wrong_field_count_names_file_and_line(tmp_path):
    p = tmp_path / "t.tsv"
    p.write_text("sentence\tlabel\nok\t1\nbad\t1\textra\n")
    with pytest.raises(SeqtuneError, match=r"t.tsv:3: expected 2 fields"):
        read_table(str(p))


def test_jsonl_and_bad_json(tmp_path):
    p = tmp_path / "t.jsonl"
    p.write_text('{"text": "a", "label": 1}\n\n{"text": "b"\n')
    with pytest.raises(SeqtuneError, match=r"t.jsonl:3: not valid JSON"):
        read_table(str(p))


def test_missing_file_and_empty_file(tmp_path):
    with pytest.raises(SeqtuneError, match="does not exist"):
        read_table(str(tmp_path / "none.csv"))
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(SeqtuneError, match="empty"):
        read_table(str(tmp_path / "e.csv"))
