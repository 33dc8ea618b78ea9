"""Shared fixtures for the package and toolchain tests."""

import importlib
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

# Homework-style trees (golden release copies, fixture homeworks) are graded by the tests, not collected.
collect_ignore = ["golden", "fixtures"]

REPO = Path(__file__).resolve().parents[1]
TOYHW = REPO / "tests" / "fixtures" / "toyhw"


@pytest.fixture(scope="session")
def toyhw():
    from cs330.grading.authoring import homework

    return homework.load(TOYHW)


@pytest.fixture(scope="session")
def toy_release(tmp_path_factory, toyhw):
    """The toy homework's release, built once per test session."""
    from cs330.grading.authoring import release

    out = tmp_path_factory.mktemp("toy-release")
    return release.release(toyhw, out)


@contextmanager
def imported_from(folder: Path, name: str):
    """Import module ``name`` from a homework folder; afterwards forget every module loaded from that
    folder, so that another homework's modules of the same names (train, model, maml) load afresh."""
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module(name)
    finally:
        sys.path.remove(str(folder))
        for module in modules_from(folder):
            del sys.modules[module]


def modules_from(folder: Path) -> list[str]:
    """Names of the imported modules whose files lie in ``folder``."""
    folder = folder.resolve()
    return sorted(
        name
        for name, mod in list(sys.modules.items())
        if isinstance(getattr(mod, "__file__", None), str) and Path(mod.__file__).resolve().is_relative_to(folder)
    )
