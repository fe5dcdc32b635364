"""The checkpoints/ folder: the newest `keep` are kept, and newer (broken) ones a resume skipped go."""

from __future__ import annotations

from seqtune.training.checkpoint import (
    Checkpoints,
    checkpoint_folders,
    newest_checkpoint,
)


def test_keeps_the_newest_and_drops_the_ones_a_resume_skipped(tmp_path):
    folder = tmp_path / "checkpoints"
    checkpoints = Checkpoints(folder, keep=2, identity={})
    for step in (2, 4, 6):
        checkpoints.save(step, step / 2, {"x": step})
    assert [p.name for p in checkpoint_folders(folder)] == ["step-00000006", "step-00000004"]
    (folder / "step-00000006" / "state.pt").write_bytes(b"broken")
    found = newest_checkpoint(folder)
    assert found.path.name == "step-00000004" and "step-00000006" in found.skipped[0]
    checkpoints.save(5, 2.5, {"x": 5})  # the resumed run goes on from step 4
    assert [p.name for p in checkpoint_folders(folder)] == ["step-00000005", "step-00000004"]
    assert not list(folder.glob(".tmp-*"))
