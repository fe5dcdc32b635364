from seqtune.training.run_dir import new_directory


def test_new_directory_never_reuses_a_taken_name(tmp_path):
    base = tmp_path / "runs" / "classification-20261123-120000"
    made = [new_directory(base) for _ in range(3)]
    assert [p.name for p in made] == [base.name, f"{base.name}-2", f"{base.name}-3"]
    assert all(p.is_dir() and not any(p.iterdir()) for p in made)
