"""The command-line options every run script shares, spelled one way: ``--words-with-dashes``.

    p = argparse.ArgumentParser()
    add_common_args(p, "n_way", "k_shot", "steps", "seed", "device", n_way=5)   # a subset, own defaults
    p.add_argument("--hidden", ...)                                            # the homework's own options
    args = p.parse_args()                                                      # args.n_way, args.time_limit ...

Units: ``--time-limit`` in seconds; ``--steps`` and ``--eval-every`` in optimizer steps.
"""

from __future__ import annotations

import argparse

# dest: (type, default, help); the flag is "--" + dest with "-" for "_"
OPTIONS = {
    "n_way": (int, 5, "N: classes per task"),
    "k_shot": (int, 1, "K: support examples per class"),
    "n_query": (int, 15, "Q: query examples per class"),
    "batch_size": (int, 64, "examples per step"),
    "meta_batch_size": (int, 16, "tasks per meta-batch (one optimizer step)"),
    "steps": (int, 1000, "optimizer steps in total (a resumed run continues up to this)"),
    "lr": (float, 1e-3, "the optimizer's (Adam's) learning rate"),
    "seed": (int, 0, "seeds the weights, the data order and every RNG"),
    "device": (str, "auto", "cpu, cuda, cuda:1 ...; auto: CUDA when available"),
    "threads": (int, None, "CPU threads (default: torch's, one per core)"),
    "deterministic": (bool, False, "deterministic kernels: a rerun gives the same numbers (slower on a GPU)"),
    "eval_every": (int, 100, "evaluate (and checkpoint) every this many steps, at the end and when out of time"),
    "time_limit": (float, None, "stop after this many seconds (evaluated and checkpointed)"),
    "out": (str, "results", "folder for results, plots and checkpoints"),
    "resume": (bool, False, "continue from the run's checkpoint if it exists (same settings required)"),
    "no_progress": (bool, False, "no progress bar (log lines only)"),
}
# settings that do not change what a run computes: a resumed run may change them
NOT_CONFIG = ("device", "threads", "eval_every", "time_limit", "out", "resume", "no_progress")


def add_common_args(parser: argparse.ArgumentParser, *names: str, **defaults) -> argparse.ArgumentParser:
    """Add the shared options ``names`` (all when none are named) to ``parser``; ``defaults`` override
    the default of an option by its name (``n_way=20``). Returns the parser."""
    unknown = [n for n in (*names, *defaults) if n not in OPTIONS]
    if unknown:
        raise ValueError(f"unknown common options {unknown}; known: {', '.join(OPTIONS)}")
    for name in names or OPTIONS:
        kind, default, help_text = OPTIONS[name]
        default = defaults.get(name, default)
        flag = "--" + name.replace("_", "-")
        if kind is bool:
            parser.add_argument(flag, action="store_true", default=default, help=help_text)
        else:
            parser.add_argument(flag, type=kind, default=default, help=f"{help_text} (default: {default})")
    return parser


def config_from_args(args: argparse.Namespace, exclude=()) -> dict:
    """The options that define a run (what a checkpoint must match to be resumed): all but ``NOT_CONFIG``
    and ``exclude``."""
    return {k: v for k, v in vars(args).items() if k not in NOT_CONFIG and k not in exclude}
