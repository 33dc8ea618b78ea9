"""Shared fixtures for the package and toolchain tests."""

import importlib
import os
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

# Homework-style trees (golden release copies, fixture homeworks) are graded by the tests, not collected.
collect_ignore = ["golden", "fixtures"]

REPO = Path(__file__).resolve().parents[1]

# Gradings in the tests draw from a fixed course key, so no test writes a key file into the checkout
# (cs330.grading.authoring.release.course_key); test_grader checks the key file and the draws themselves.
os.environ.setdefault("CS330_GRADING_KEY", "5eed" * 16)
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


# The folders whose scripts share module names (hw1, hw2 and hw4 all have a ``maml`` or a ``model``; every
# homework has a ``train``). Named explicitly: a virtual environment inside the checkout (``.venv/``) holds
# torch, which must never be evicted from sys.modules.
SCRIPT_FOLDERS = sorted(REPO.glob("hw*_*/")) + [REPO / "bench"]


@contextmanager
def imported_from(folder: Path, name: str):
    """Import module ``name`` from ``folder`` (a homework, ``bench/`` or a copy) with it first on sys.path.

    Modules already loaded from any script folder are set aside first, so that another homework's
    ``train`` or ``maml`` is not picked up; afterwards every module loaded from those folders or from
    ``folder`` is forgotten, and the set-aside ones and sys.path are put back."""
    folders = [*SCRIPT_FOLDERS, folder]
    saved_path = list(sys.path)
    set_aside = {module: sys.modules.pop(module) for module in modules_from(*folders)}
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module(name)
    finally:
        sys.path[:] = saved_path
        for module in modules_from(*folders):
            del sys.modules[module]
        sys.modules.update(set_aside)


def modules_from(*folders: Path) -> list[str]:
    """Names of the imported modules whose files lie in one of ``folders``."""
    folders = [folder.resolve() for folder in folders]
    return sorted(
        name
        for name, mod in list(sys.modules.items())
        if isinstance(getattr(mod, "__file__", None), str)
        and any(Path(mod.__file__).resolve().is_relative_to(folder) for folder in folders)
    )
