"""The `seqtune` command. One module per subcommand in `seqtune/commands/`."""

from __future__ import annotations

import argparse
import importlib
import sys

from seqtune.errors import SeqtuneError

# Subcommand modules; each has add_parser(subparsers) and run(args) -> exit code.
COMMANDS = [
    "seqtune.commands.train",
    "seqtune.commands.evaluate",
    "seqtune.commands.predict",
    "seqtune.commands.demo",
    "seqtune.commands.sweep",
    "seqtune.commands.pretrain",
    "seqtune.commands.fill_mask",
]


def build_parser() -> tuple[argparse.ArgumentParser, dict]:
    parser = argparse.ArgumentParser(
        prog="seqtune",
        description="Fine-tune and pretrain BERT-family encoders on your own labelled data.",
    )
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
        return modules[args.command].run(args)
    except SeqtuneError as e:
        print(f"seqtune {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
