"""The pytest plugin (registered as an entry point, so it is active wherever cs330 is installed).

For everyone:
  * registers the ``cs330`` marker that ``graded`` sets;
  * ``--cs330-id ID`` (repeatable) runs only the tests with those ids;
  * in a student copy, a hidden test that ran without error is reported as *skipped* with a note
    that its checks run on the autograder (it would otherwise look like a pass it has not earned).

Fixtures for homework tests:
  * ``student``: the submission's code. In a student's own ``pytest tests`` it imports the code in
    this process (cs330.grading.code): students are grading themselves there. In the autograder's
    test process it is a proxy to the sandboxed student worker (cs330.grading.trusted.session).
  * ``reference``: the reference solution, always in this (trusted) process: for hidden checks.

The autograder's test process (``--cs330-report-fd``) loads cs330.grading.trusted.session, which
streams one JSON event per test to the grader; that room is not in the student wheel.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pytest

from cs330.grading import api
from cs330.grading.api import graded_meta
from cs330.grading.authoring import markers
from cs330.grading.code import Code


def pytest_addoption(parser):
    group = parser.getgroup("cs330")
    group.addoption(
        "--cs330-id", action="append", default=[], metavar="ID", help="run only the graded test(s) with this id"
    )
    # the autograder's test process only (cs330.grading.trusted.runner sets them)
    group.addoption("--cs330-report-fd", type=int, default=None, help=argparse.SUPPRESS)
    group.addoption("--cs330-worker", default=None, help=argparse.SUPPRESS)
    group.addoption("--cs330-deadline", type=float, default=float("inf"), help=argparse.SUPPRESS)
    group.addoption("--cs330-default-timeout", type=float, default=60.0, help=argparse.SUPPRESS)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "cs330(id, points, hidden, visibility): a graded test (set by cs330.grading.graded)"
    )
    if config.getoption("--cs330-report-fd") is not None:
        from cs330.grading.trusted import session

        session.configure(config)


def pytest_collection_modifyitems(config, items):
    wanted = set(config.getoption("--cs330-id"))
    if config.getoption("--cs330-report-fd") is not None and not wanted:  # the autograder runs graded tests only
        wanted = {graded_meta(item)["id"] for item in items if graded_meta(item)}
    if not wanted:
        return
    keep = [item for item in items if (graded_meta(item) or {}).get("id") in wanted]
    missing = wanted - {graded_meta(item)["id"] for item in keep}
    if missing:
        raise pytest.UsageError(f"no graded test with id {', '.join(sorted(missing))}")
    config.hook.pytest_deselected(items=[item for item in items if item not in keep])
    items[:] = keep


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture
def student(request):
    """The submission's code: ``student.model.f(x)``, ``student.probe(fn, ...)``."""
    if request.config.getoption("--cs330-worker") is None:
        yield Code(api.submission_dir(str(request.path)))
        return
    from cs330.grading.trusted import session

    yield from session.student(request)


@pytest.fixture
def reference(request):
    """The reference solution's code, in this process (hidden checks only; never in a student copy)."""
    folder = os.environ.get(api.ENV_REFERENCE)
    return Code(folder if folder else api.submission_dir(str(request.path)))


# --- reports ---------------------------------------------------------------------------------------


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    remote = sys.modules.get("cs330.grading.trusted.remote")  # loaded only where a student worker runs
    if call.excinfo is not None and remote is not None and isinstance(call.excinfo.value, remote.StudentFailure):
        # what the student's code did, in the student's terms: no grader traceback
        report.longrepr = str(call.excinfo.value)
        report.cs330_timeout = isinstance(call.excinfo.value, remote.StudentTimeout)
    meta = graded_meta(item)
    if call.when == "call" and report.passed and meta and meta["hidden"] and _is_student_copy(item):
        report.outcome = "skipped"
        report.longrepr = (
            str(item.path),
            item.location[1] or 0,
            "hidden test: your code ran without errors; its checks run on the autograder",
        )


def _is_student_copy(item) -> bool:
    module = getattr(item, "module", None)
    if module is None:
        return False
    cached = getattr(module, "__cs330_student_copy__", None)
    if cached is None:
        try:
            cached = Path(module.__file__).read_text().startswith(markers.STUDENT_COPY_TAG)
        except OSError:
            cached = False
        module.__cs330_student_copy__ = cached
    return cached
