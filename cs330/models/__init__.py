"""Shared networks for the homeworks, written to run under ``torch.func`` (``functional_call``, ``grad``, ``vmap``)."""

from cs330.models.conv4 import Conv4, TaskNorm2d
from cs330.models.functional import map_tasks, named_params
from cs330.models.mlp import MLP

__all__ = ["MLP", "Conv4", "TaskNorm2d", "map_tasks", "named_params"]
