"""What a homework's run script needs that is not a solution: one implementation of each idea.

- ``env``         ``setup(seed, device, threads, deterministic)``; ``environment()`` for a results file
- ``checkpoint``  atomic ``save_checkpoint`` / ``load_checkpoint``: model, optimizer, config, RNG states;
                  resuming with another config is refused (``ConfigMismatchError``)
- ``loop``        ``train_loop(step_fn, evaluate_fn, state, ...)``: evaluation cadence, one smoothed
                  running loss, one time limit, tqdm plus a log line, a clean Ctrl-C
- ``results``     one results schema ``{name, config, env, history, final}``: ``make_results``,
                  ``save_results``, ``load_results`` (schema checked), ``merge``
- ``plots``       ``plot_curves``: curves of one or several results, matplotlib Agg
- ``cli``         ``add_common_args``: the shared options, one spelling (``--n-way``, ``--time-limit`` ...)
- ``data``        ``omniglot_or_glyphs``: the real Omniglot when present, the synthetic glyphs only when absent

A run script reads top to bottom (nanoGPT style): parse options, ``setup``, build, resume, ``train_loop``,
``save_results``. The homework keeps its own step and evaluation functions.
"""

from cs330.training.checkpoint import ConfigMismatchError, load_checkpoint, save_checkpoint
from cs330.training.cli import add_common_args, config_from_args
from cs330.training.data import fingerprint, glyph_splits, omniglot_or_glyphs
from cs330.training.env import environment, setup
from cs330.training.loop import RunState, train_loop
from cs330.training.plots import plot_curves
from cs330.training.results import ResultsError, load_results, make_results, merge, save_results

__all__ = [
    "ConfigMismatchError", "ResultsError", "RunState", "add_common_args", "config_from_args", "environment",
    "fingerprint", "glyph_splits", "load_checkpoint", "load_results", "make_results", "merge", "omniglot_or_glyphs",
    "plot_curves", "save_checkpoint", "save_results", "setup", "train_loop",
]
