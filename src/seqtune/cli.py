"""The `seqtune` command. One module per subcommand in `seqtune/commands/`."""

from __future__ import annotations

import argparse
import importlib
import sys

from seqtune.errors import SeqtuneError, TrainingStopped

# Subcommand modules; each has add_parser(subparsers) and run(args) -> exit code.
COMMANDS = [
    "seqtune.commands.train",
    "seqtune.commands.evaluate",
    "seqtune.commands.predict",
    "seqtune.commands.demo",
    "seqtune.commands.sweep",
    "seqtune.commands.pretrain",
    "seqtune.commands.fill_mask",
    "seqtune.commands.config",
    "seqtune.commands.serve",
    "seqtune.commands.export",
    "seqtune.commands.report",
]


def package_version() -> str:
    """The installed distribution's version; seqtune.__version__ when run from a source tree."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("seqtune")
    except PackageNotFoundError:
        from seqtune import __version__

        return __version__


def build_parser() -> tuple[argparse.ArgumentParser, dict]:
    parser = argparse.ArgumentParser(
        prog="seqtune",
        description="Fine-tune and pretrain BERT-family encoders on your own labelled data.",
    )
    parser.add_argument("--version", action="version", version=f"seqtune {package_version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = {}
    for name in COMMANDS:
        module = importlib.import_module(name)
        sub = module.add_parser(subparsers)
        modules[sub.prog.split()[-1]] = module
    return parser, modules


def main(argv: list[str] | None = None) -> int:
    parser, modules = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    try:
        code = modules[args.command].run(args)
        sys.stdout.flush()  # here, not at exit, so that a closed pipe is caught below
        return code
    except SeqtuneError as e:
        print(f"seqtune {args.command}: error: {e}", file=sys.stderr)
        return 2
    except TrainingStopped as e:  # a clean stop: the message says how to resume
        print(f"seqtune {args.command}: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # stdout's reader stopped early, e.g. `seqtune predict MODEL f.tsv | head -2`
        return reader_gone()


def reader_gone() -> int:
    """Stop quietly when the reader of stdout has closed it. stdout is pointed at /dev/null so that
    Python's flush at exit cannot fail a second time. Exit status 141 (128 + SIGPIPE) is what a command
    stopped by its reader gives (`yes | head`): silent in a shell, a failure under `set -o pipefail`."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (AttributeError, OSError, ValueError):  # stdout replaced by an object without a file
        pass
    return 141
