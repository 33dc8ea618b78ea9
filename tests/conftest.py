"""Shared fixtures for the package and toolchain tests."""

# Homework-style trees (golden release copies, fixture homeworks) are graded by the tests, not collected.
collect_ignore = ["golden", "fixtures"]

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TOYHW = REPO / "tests" / "fixtures" / "toyhw"


@pytest.fixture(scope="session")
def toyhw():
    from cs330.grading import homework

    return homework.load(TOYHW)


@pytest.fixture(scope="session")
def toy_release(tmp_path_factory, toyhw):
    """The toy homework's release, built once per test session."""
    from cs330.grading import release

    out = tmp_path_factory.mktemp("toy-release")
    return release.release(toyhw, out)
