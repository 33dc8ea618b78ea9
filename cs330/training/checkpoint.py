"""Atomic checkpoints that resume a run exactly, and refuse to resume a different one.

A checkpoint is one ``torch.save``'d dict::

    {"config": dict, "step": int, "model": state_dict, "optimizer": state_dict | None,
     "rng": {"torch": ..., "cuda": [...], "python": ..., "numpy": ..., "generators": [...]},
     **extra}    # e.g. the run's history, its wall time so far

Atomic: it is written to a temporary file in the same folder, then renamed over the old one
(``os.replace`` is atomic within a file system), so a kill during ``torch.save`` leaves the previous
checkpoint intact. Exact: with the RNG states restored, a resumed run draws the same random numbers
as the uninterrupted one would have.
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

import torch


class ConfigMismatchError(ValueError):
    """The checkpoint belongs to a run with other settings; the message names the differing keys."""


def rng_state(generators=()) -> dict:
    """Every RNG state a run may draw from: torch CPU, each CUDA device, python, numpy, and ``generators``."""
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "generators": [g.get_state() for g in generators]}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if "numpy" in sys.modules:
        state["numpy"] = sys.modules["numpy"].random.get_state()
    return state


def set_rng_state(state: dict, generators=()) -> None:
    """Restore what ``rng_state`` recorded (``generators`` in the same order)."""
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if "numpy" in state:
        import numpy

        numpy.random.set_state(state["numpy"])
    if len(generators) != len(state["generators"]):
        raise ValueError(f"the checkpoint holds {len(state['generators'])} generator states, "
                         f"{len(generators)} generators were passed")
    for g, s in zip(generators, state["generators"]):
        g.set_state(s)


def save_checkpoint(path, *, config: dict, step: int, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer | None = None, generators=(), **extra) -> Path:
    """Write the training state after ``step`` steps to ``path`` atomically; return the path.

    ``generators``: the ``torch.Generator``s the run draws from besides the global ones (e.g. its
    sampler's), restored in the same order by ``load_checkpoint``. ``extra``: anything else to keep.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"config": dict(config), "step": int(step), "model": model.state_dict(),
             "optimizer": optimizer.state_dict() if optimizer is not None else None,
             "rng": rng_state(generators), **extra}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # same folder: os.replace stays atomic
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def config_difference(saved: dict, current: dict) -> list[str]:
    """``"key: saved -> current"`` for each key whose value differs (or is in one config only)."""
    missing = object()
    return [f"{k}: {saved.get(k, missing)!r} -> {current.get(k, missing)!r}".replace(repr(missing), "(absent)")
            for k in sorted(set(saved) | set(current)) if saved.get(k, missing) != current.get(k, missing)]


def load_checkpoint(path, *, config: dict, model: torch.nn.Module | None = None,
                    optimizer: torch.optim.Optimizer | None = None, generators=(), map_location="cpu") -> dict:
    """Load ``path``, check that it was saved with ``config``, restore model, optimizer and RNG states.

    Returns the checkpoint dict (its ``step`` and ``extra`` entries). Raises ConfigMismatchError,
    naming every differing key, when the run's config is not ``config``: resuming a different run
    would silently mix two experiments.
    """
    state = torch.load(path, map_location=map_location, weights_only=False)  # our own file: RNG states are objects
    diff = config_difference(state["config"], dict(config))
    if diff:
        raise ConfigMismatchError(f"{path} was saved by a run with other settings, so it cannot be resumed:\n  "
                                  + "\n  ".join(diff)
                                  + "\n  Use the same settings, or start over (another --out, or delete the file).")
    if model is not None:
        model.load_state_dict(state["model"])
    if optimizer is not None and state["optimizer"] is not None:
        optimizer.load_state_dict(state["optimizer"])
    set_rng_state(state["rng"], generators)
    return state
