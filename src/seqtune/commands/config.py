"""seqtune config show [CONFIG] [--set key=value ...]

Prints the resolved config — the file with the overrides applied, validated, paths resolved and every
default filled in — as YAML, the same text a run writes to its config.yaml. It trains nothing, so a
config can be checked before a long run: an unknown key or a value of the wrong type is the usual
one-paragraph error, exit code 2.
"""

from __future__ import annotations

import argparse

SET_HELP = "override a config key, e.g. --set train.lr=3e-5 (repeatable; values are parsed as YAML)"


def add_parser(subparsers):
    p = subparsers.add_parser(
        "config", help="show the resolved config (all defaults filled) without training",
        description=__doc__.split("\n", 2)[2], formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    show = actions.add_parser(
        "show", help="print the resolved config as YAML",
        description="Print CONFIG with the overrides applied and every default filled in, as YAML "
                    "(what `seqtune train` would run with). Exit code 0, or 2 with a message when the "
                    "config is invalid.",
    )
    show.add_argument("config", nargs="?", help="YAML config file; may be omitted when every setting is "
                      "given with --set")
    show.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                      help=SET_HELP)
    return p


def run(args) -> int:
    from seqtune.config import config_to_yaml, load_config

    print(config_to_yaml(load_config(args.config, args.overrides)), end="")
    return 0
