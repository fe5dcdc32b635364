"""seqtune train CONFIG [--set key=value ...] | seqtune train --resume RUN_DIR"""

from __future__ import annotations

SET_HELP = ("override a config key, e.g. --set train.lr=3e-5 --set data.max_rows=1000 "
            "(repeatable; every key of the config can be set)")


def add_parser(subparsers):
    p = subparsers.add_parser(
        "train", help="fine-tune a model as a YAML config says",
        description="Fine-tune as CONFIG says. Writes a run directory with the resolved config.yaml, "
                    "log.txt, metrics.jsonl (one line per evaluation), results.json, model/ "
                    "(the best checkpoint, in Hugging Face format) and checkpoints/ (the training state at "
                    "each epoch end and every train.checkpoint_every_steps steps). Ctrl-C or SIGTERM stops "
                    "after the current optimiser step with a checkpoint (exit 130/143); a second Ctrl-C "
                    "stops at once.",
    )
    p.add_argument("config", nargs="?", help="YAML config file (see configs/ for examples); may be "
                   "omitted when every setting is given with --set")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=SET_HELP)
    p.add_argument("--nproc", type=int, metavar="N",
                   help="train with N processes on this machine (data parallel): starts `torchrun "
                        "--standalone --nproc_per_node N -m seqtune train ...`; gloo on CPU, NCCL on GPUs. "
                        "The global batch is N x train.batch_size (or N x train.max_tokens)")
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="continue a stopped or killed run from its newest complete checkpoint, with the "
                        "settings it started with (its config.yaml); ends with exactly the weights and "
                        "metrics of an uninterrupted run. --set may only change train.progress, "
                        "train.checkpoint_every_steps and train.keep_checkpoints")
    return p


def run(args) -> int:
    import os

    from seqtune.config import load_config
    from seqtune.errors import SeqtuneError
    from seqtune.training.setup import train_from_config

    if args.nproc is not None:
        return launch(args)

    if args.resume:
        from seqtune.training.resume import prepare_resume

        if args.config:
            raise SeqtuneError(f"--resume {args.resume} takes the run's own config.yaml; leave out {args.config}.")
        cfg, point = prepare_resume(args.resume, args.overrides)
        run_dir = train_from_config(cfg, resume=point)
    else:
        run_dir = train_from_config(load_config(args.config, args.overrides))
    if os.environ.get("RANK", "0") == "0":  # under torchrun: the run directory is rank 0's
        print(run_dir)
    return 0


def launch(args) -> int:
    """`--nproc N`: the same command under torchrun, N processes on this machine; its exit status."""
    import os
    import subprocess
    import sys

    from seqtune.errors import SeqtuneError

    if args.nproc < 1:
        raise SeqtuneError(f"--nproc must be at least 1 (got {args.nproc}).")
    if "RANK" in os.environ:
        raise SeqtuneError("--nproc starts torchrun itself; under torchrun leave it out.")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={args.nproc}",
               "-m", "seqtune", "train", *([args.config] if args.config else []),
               *(["--resume", args.resume] if args.resume else []),
               *[x for o in args.overrides for x in ("--set", o)]]
    return subprocess.run(command, check=False).returncode
