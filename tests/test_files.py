"""Atomic writes: a failure (or a kill) in the middle of a write leaves the old complete file."""

from __future__ import annotations

import pytest

from seqtune.files import atomic_write, publish_directory, publish_files, write_text


def test_a_write_that_fails_midway_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "results.json"
    write_text(path, "old\n")
    with pytest.raises(RuntimeError), atomic_write(path) as f:
        f.write("new, half")
        raise RuntimeError("killed")
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]
    write_text(path, "new\n")
    assert path.read_text() == "new\n" and len(list(tmp_path.iterdir())) == 1


def test_the_new_content_is_invisible_until_the_block_ends(tmp_path):
    path = tmp_path / "out.bin"
    with atomic_write(path, binary=True) as f:
        f.write(b"\x00\x01")
        assert not path.exists()
    assert path.read_bytes() == b"\x00\x01"


def test_publish_files_replaces_each_file_and_keeps_the_others(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "model.safetensors").write_text("old weights")
    (target / "vocab.txt").write_text("vocab")
    staging = tmp_path / ".model-x"
    (staging / "sub").mkdir(parents=True)
    (staging / "model.safetensors").write_text("new weights")
    (staging / "sub" / "a.json").write_text("{}")
    publish_files(staging, target)
    assert (target / "model.safetensors").read_text() == "new weights"
    assert (target / "vocab.txt").read_text() == "vocab" and (target / "sub" / "a.json").exists()
    assert not staging.exists()


def test_publish_directory_renames_a_finished_folder(tmp_path):
    staging = tmp_path / ".tmp-step-3"
    staging.mkdir()
    (staging / "state.pt").write_bytes(b"x")
    publish_directory(staging, tmp_path / "step-3")
    assert (tmp_path / "step-3" / "state.pt").read_bytes() == b"x" and not staging.exists()
