"""seqtune pretrain CONFIG [--set key=value ...]"""

from __future__ import annotations

SET_HELP = ("override a config key, e.g. --set model.architecture.preset=mini --set train.epochs=2 "
            "(repeatable)")


def add_parser(subparsers):
    p = subparsers.add_parser(
        "pretrain", help="pretrain a masked language model (from scratch or continued)",
        description="Masked-language-model pretraining as CONFIG says (task.type mlm). Without "
                    "model.path: builds a vocabulary from the corpus (model.vocab) and a fresh encoder "
                    "(model.architecture) and trains it from scratch. With model.path: continues "
                    "pretraining that checkpoint on the corpus, keeping its vocabulary. The run "
                    "directory's model/ is a Hugging Face BertForMaskedLM directory, usable as "
                    "model.path of any fine-tuning config. See configs/protein_mlm.yaml.",
    )
    p.add_argument("config", nargs="?", help="YAML config file; task.type defaults to mlm")
    p.add_argument("--init-only", action="store_true",
                   help="only write the randomly initialised model (vocabulary + encoder) and print its "
                        "directory: the from-scratch baseline for fine-tuning")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=SET_HELP)
    return p


def run(args) -> int:
    from pathlib import Path

    import yaml

    from seqtune.config import load_config
    from seqtune.errors import SeqtuneError
    from seqtune.training.pretrain import prepare_from_scratch, pretrain_from_config

    overrides = list(args.overrides)
    raw = {}
    if args.config:
        try:
            raw = yaml.safe_load(Path(args.config).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            raw = {}  # load_config reports the problem
    task = raw.get("task") if isinstance(raw, dict) else None
    given = (isinstance(task, dict) and "type" in task) or any(o.startswith("task.type=") for o in overrides)
    if not given:
        overrides.insert(0, "task.type=mlm")
    cfg = load_config(args.config, overrides)
    if args.init_only:
        if cfg.model.path:
            raise SeqtuneError("--init-only builds a model from scratch; model.path must be unset.")
        print(prepare_from_scratch(cfg))
        return 0
    print(pretrain_from_config(cfg))
    return 0
