"""Datasets, samplers and synthetic tasks. See ``cs330.data.root`` for where data lives."""

from cs330.data.root import DataNotFoundError, data_root

__all__ = ["DataNotFoundError", "data_root"]
