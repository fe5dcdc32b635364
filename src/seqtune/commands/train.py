"""seqtune train CONFIG [--set key=value ...]"""

from __future__ import annotations

SET_HELP = ("override a config key, e.g. --set train.lr=3e-5 --set data.max_rows=1000 "
            "(repeatable; every key of the config can be set)")


def add_parser(subparsers):
    p = subparsers.add_parser(
        "train", help="fine-tune a model as a YAML config says",
        description="Fine-tune as CONFIG says. Writes a run directory with the resolved config.yaml, "
                    "log.txt, metrics.jsonl (one line per evaluation), results.json and model/ "
                    "(the best checkpoint, in Hugging Face format).",
    )
    p.add_argument("config", nargs="?", help="YAML config file (see configs/ for examples); may be "
                   "omitted when every setting is given with --set")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=SET_HELP)
    return p


def run(args) -> int:
    from seqtune.config import load_config
    from seqtune.training.setup import train_from_config

    run_dir = train_from_config(load_config(args.config, args.overrides))
    print(run_dir)
    return 0
