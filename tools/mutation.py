"""Mutation testing of one module against its focused tests (mutmut 3), printing the score and the survivors.

    python tools/mutation.py src/seqtune/tasks/token_metrics.py            # the module's focused tests
    python tools/mutation.py src/seqtune/config.py --tests tests/test_config.py
    python tools/mutation.py src/seqtune/data/batching.py --whole-suite    # survivors again, whole suite

mutmut works in a scratch copy of the repository (--workdir, default /tmp/seqtune-mutation/<module>):
it copies src/ and tests/ there, writes the [tool.mutmut] section of that copy's pyproject.toml for this
one module (the repository's own [tool.mutmut] settings are kept and extended), and runs every mutant
of the module against the tests that execute the mutated function. The score is killed ÷ all mutants
(a timeout counts as killed; a mutant no test reaches counts as a survivor). `--whole-suite` runs the
survivors once more, against every test in tests/ (or the test files given after it), in a second
scratch copy.

After a run, `cd <workdir> && mutmut show <name>` shows a survivor's diff. One worker by default and
under `nice`: the machine is shared. Not part of CI (minutes per module); run it when you change one
of the modules below, and keep tools/mutation_survivors.md up to date.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # mutmut reads pyproject.toml with toml on Python 3.10
    import toml as tomllib

ROOT = Path(__file__).resolve().parent.parent

# Each module's focused tests: the fast files that test it directly (no model training), so that one
# module takes minutes; --whole-suite then tries the survivors against everything.
FOCUSED_TESTS = {
    "src/seqtune/tasks/token_metrics.py": ["tests/tasks/test_token_metrics_exact.py", "tests/tasks/test_tag_decoding.py"],
    "src/seqtune/config.py": ["tests/test_config.py", "tests/test_config_pinned.py"],
    "src/seqtune/data/masking.py": ["tests/data/test_masking.py", "tests/data/test_masking_exact.py"],
    "src/seqtune/data/batching.py": ["tests/data/test_batching.py", "tests/data/test_batching_exact.py",
                                     "tests/data/test_epoch_batches.py"],
    "src/seqtune/tasks/windows.py": ["tests/tasks/test_windows.py"],
    "src/seqtune/tasks/qa_metrics.py": ["tests/tasks/test_qa_metrics.py", "tests/tasks/test_qa_metrics_exact.py"],
    "src/seqtune/tasks/qa_postprocess.py": ["tests/tasks/test_qa_postprocess_exact.py"],
    "src/seqtune/data/readers/conll.py": ["tests/data/test_conll.py", "tests/data/test_conll_exact.py",
                                          "tests/data/test_tagging_ids.py"],
    "src/seqtune/data/readers/fasta_labels.py": ["tests/data/test_fasta_labels.py"],
    "src/seqtune/data/readers/fasta.py": ["tests/data/test_fasta_exact.py", "tests/data/test_encoding.py",
                                          "tests/data/test_formats.py", "tests/data/test_fasta_labels.py",
                                          "tests/data/test_sequences.py"],
    "src/seqtune/data/readers/table.py": ["tests/data/test_table.py", "tests/data/test_table_exact.py",
                                          "tests/data/test_header.py", "tests/data/test_formats.py",
                                          "tests/data/test_format_per_file.py"],
    "src/seqtune/data/readers/sequences.py": ["tests/data/test_sequences.py", "tests/data/test_sequences_exact.py",
                                              "tests/data/test_header.py", "tests/data/test_formats.py",
                                              "tests/data/test_format_per_file.py", "tests/data/test_encoding.py"],
    "src/seqtune/data/readers/squad.py": ["tests/data/test_squad.py", "tests/data/test_squad_exact.py",
                                          "tests/data/test_formats.py", "tests/data/test_encoding.py"],
    "src/seqtune/data/readers/formats.py": ["tests/data/test_formats.py", "tests/data/test_formats_exact.py",
                                            "tests/data/test_format_per_file.py", "tests/data/test_encoding.py",
                                            "tests/data/test_table.py", "tests/data/test_header.py",
                                            "tests/data/test_lines_exact.py"],
    "src/seqtune/data/readers/lines.py": ["tests/data/test_lines_exact.py", "tests/data/test_formats.py"],
    "src/seqtune/tasks/residue_metrics.py": ["tests/tasks/test_residue_metrics_exact.py"],
    "src/seqtune/tasks/sequence_metrics.py": ["tests/tasks/test_sequence_metrics_exact.py"],
}

# mutmut's exit codes (mutmut.stats.status_by_exit_code) reduced to killed / survived.
KILLED = {"killed", "timeout", "segfault", "caught by type check"}


def mutmut_section(module: str, tests: list[str]) -> str:
    """The [tool.mutmut] section for one module: the repository's settings plus this module and its tests."""
    base = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8")).get("tool", {}).get("mutmut", {})
    settings = {**base, "only_mutate": [module], "pytest_add_cli_args_test_selection": tests}
    return "[tool.mutmut]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in settings.items())


def prepare(workdir: Path, module: str, tests: list[str]) -> None:
    """A scratch copy with src/, tests/ and a pyproject.toml configured for `module`; an earlier run's
    results (mutants/) are dropped, so every run starts fresh."""
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    for name in ("src", "tests"):
        shutil.copytree(ROOT / name, workdir / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    text = (ROOT / "pyproject.toml").read_text("utf-8")
    head, _, rest = text.partition("[tool.mutmut]")
    if rest:  # drop the repository's section (up to the next table); mutmut_section writes it again
        rest = rest[rest.find("\n[") + 1:] if "\n[" in rest else ""
    (workdir / "pyproject.toml").write_text(head.rstrip() + "\n\n" + rest + mutmut_section(module, tests), "utf-8")
    # Made now, before Python looks at PYTHONPATH: a folder missing at the first import is cached as
    # "nothing here", and the tests would silently import the installed, unmutated seqtune.
    (workdir / "mutants" / "src").mkdir(parents=True)
    shared = ROOT.parent / "shared"  # tests/conftest.py finds the real datasets next to the repository
    if shared.exists():
        (workdir / "shared").symlink_to(shared)


def run_mutmut(workdir: Path, workers: int, names: list[str] = ()) -> None:
    env = {**os.environ, "PYTHONPATH": str(workdir / "mutants" / "src"), "OMP_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1"}  # CLI tests that start `python -m seqtune` import the mutated copy too
    mutmut = Path(sys.executable).with_name("mutmut")
    command = ["nice", "-n", "10", str(mutmut), "run", "--max-children", str(workers), *names]
    with open(workdir / "mutmut.log", "a", encoding="utf-8") as log:  # mutmut's progress output
        subprocess.run(command, cwd=workdir, env=env, check=False, stdout=log, stderr=subprocess.STDOUT)


def results(workdir: Path, module: str) -> dict[str, str]:
    """{mutant name: status} from mutmut's record of the module."""
    from mutmut.stats import status_by_exit_code

    meta = workdir / "mutants" / (module + ".meta")
    if not meta.exists():
        raise SystemExit(f"mutmut wrote no results for {module}: see {workdir / 'mutmut.log'}")
    codes = json.loads(meta.read_text("utf-8"))["exit_code_by_key"]
    return {name: status_by_exit_code[code] for name, code in codes.items()}


def report(title: str, statuses: dict[str, str]) -> list[str]:
    survivors = sorted(name for name, status in statuses.items() if status not in KILLED)
    killed = len(statuses) - len(survivors)
    score = killed / len(statuses) if statuses else 1.0
    counts = ", ".join(f"{n} {status}" for status, n in Counter(statuses.values()).most_common())
    print(f"{title}: {killed}/{len(statuses)} killed = {score:.1%} ({counts})")
    for name in survivors:
        print(f"  {statuses[name]:<12} {name}")
    return survivors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("module", help="a file under src/, e.g. src/seqtune/tasks/windows.py")
    parser.add_argument("--tests", nargs="+", help="test files to run (default: the module's focused tests)")
    parser.add_argument("--whole-suite", nargs="*", metavar="TESTS",
                        help="run the survivors again against these tests (default: all of tests/)")
    parser.add_argument("--workers", type=int, default=1, help="mutmut's --max-children (default 1)")
    parser.add_argument("--workdir", type=Path, help="scratch directory (default /tmp/seqtune-mutation/<module>)")
    args = parser.parse_args()

    module = Path(args.module).resolve().relative_to(ROOT).as_posix()
    tests = args.tests or FOCUSED_TESTS.get(module)
    if not tests:
        raise SystemExit(f"no focused tests known for {module}: pass --tests")
    tests = [t for t in tests if (ROOT / t).exists()]
    workdir = args.workdir or Path("/tmp/seqtune-mutation") / Path(module).stem
    prepare(workdir, module, tests)
    run_mutmut(workdir, args.workers)
    survivors = report(f"{module} against {' '.join(tests)}", results(workdir, module))
    if args.whole_suite is not None and survivors:
        whole = workdir.with_name(workdir.name + "-whole")
        prepare(whole, module, args.whole_suite or ["tests"])
        run_mutmut(whole, args.workers, survivors)
        statuses = results(workdir, module)
        statuses.update({name: status for name, status in results(whole, module).items() if name in survivors})
        report(f"{module} against {' '.join(args.whole_suite) or 'the whole suite'}", statuses)


if __name__ == "__main__":
    main()
