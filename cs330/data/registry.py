"""The named datasets behind ``cs330 data``, collected from the dataset modules that own them.

Each dataset module declares its ``SPECS`` (``cs330.data.spec.Dataset``: files, checksums, URLs,
counts); this module only looks them up by name and hands them to ``spec.verify`` / ``spec.fetch``.
"""

from __future__ import annotations

from cs330.data import movielens, omniglot, spec, text
from cs330.data.spec import Dataset, Report

MODULES = (omniglot, movielens, text)


def datasets() -> dict[str, Dataset]:
    """All datasets by name, in the order of ``MODULES`` (read at each call, so a patched module shows)."""
    return {d.name: d for module in MODULES for d in module.SPECS}


def get(name: str) -> Dataset:
    """The dataset called ``name`` (or one of its aliases); KeyError lists the known names."""
    table = datasets()
    for d in table.values():
        if name == d.name or name in d.aliases:
            return d
    raise KeyError(f"unknown dataset {name!r}; known: {', '.join(table)}")


def verify(name: str, root=None) -> Report:
    """``spec.verify`` of the dataset called ``name`` under the data root."""
    return spec.verify(get(name), root)


def fetch(name: str, root=None, *, only_missing: bool = True, progress: bool = False) -> Report:
    """``spec.fetch`` of the dataset called ``name`` into the data root."""
    return spec.fetch(get(name), root, only_missing=only_missing, progress=progress)
