"""Helpers for functional (``torch.func``) use of modules: parameter dicts and mapping over tasks."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn


def named_params(module: nn.Module) -> dict[str, torch.Tensor]:
    """``{name: parameter}`` of ``module``: the dict ``torch.func.functional_call`` takes."""
    return dict(module.named_parameters())


def map_tasks(fn: Callable, *tasks: torch.Tensor, vectorize: bool = True):
    """Apply ``fn`` to each task of a meta-batch and stack the results along a new dim 0.

    ``tasks`` are tensors whose dim 0 is the task (B); ``fn`` takes one task's slices and returns a
    tensor or a tuple of tensors. ``vectorize=True`` runs ``torch.func.vmap(fn)`` (one batched call,
    ``torch.func.grad`` allowed inside); ``False`` loops over the tasks in Python, the reference
    semantics and a fallback for code that vmap cannot batch.
    """
    if vectorize:
        return torch.func.vmap(fn, randomness="error")(*tasks)
    outs = [fn(*(t[i] for t in tasks)) for i in range(tasks[0].shape[0])]
    if isinstance(outs[0], tuple):
        return tuple(torch.stack(parts) for parts in zip(*outs))
    return torch.stack(outs)
