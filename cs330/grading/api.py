"""What homework tests use: the ``graded`` decorator and access to the student's and reference code.

A test::

    from cs330.grading import graded, student_module, reference_module

    @graded("2a-1-hidden", points=2, timeout=30)
    def test_prototypes_match_reference():
        \"\"\"Prototypes equal the reference on a seeded episode.\"\"\"
        protonet = student_module("protonet")       # import failures become a clear test failure
        out = protonet.prototypes(...)
        # BEGIN HIDDEN
        assert torch.allclose(out, reference_module("protonet").prototypes(...))
        # END HIDDEN

Test ids follow the course convention ``<question>-<n>-basic|hidden``. Run one with
``pytest hw2_maml_protonet/tests --cs330-id 2a-1-hidden`` or ``cs330 test hw2 2a-1-hidden``.
Student modules must be imported inside tests (never at a test file's top level), so that the
autograder can load the tests before any student code runs.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import re
import sys
import traceback
from pathlib import Path

import pytest

TEST_ID = re.compile(r"^(?P<question>\d+[a-z]*)-(?P<n>\d+)-(?P<kind>basic|hidden)$")
VISIBILITIES = ("hidden", "after_due_date", "after_published", "visible")

# Set by the autograder in the process that runs the tests (see cs330.grading.runner).
ENV_SUBMISSION = "CS330_SUBMISSION"
ENV_REFERENCE = "CS330_REFERENCE"
ENV_TRUSTED = "CS330_TRUSTED_GRADER"  # set in a trusted test process: student code runs only in the worker
_reference_modules: dict[str, object] = {}


def graded(test_id: str, points: float = 1, timeout: float | None = None, visibility: str | None = None):
    """Mark a test as graded: its id, points, per-test timeout (seconds) and Gradescope visibility.

    Visibility defaults to ``visible`` for basic tests and ``after_due_date`` for hidden ones.
    """
    match = TEST_ID.match(test_id)
    if not match:
        raise ValueError(f"test id {test_id!r} must look like '2a-1-basic' or '2a-1-hidden'")
    hidden = match.group("kind") == "hidden"
    visibility = visibility or ("after_due_date" if hidden else "visible")
    if visibility not in VISIBILITIES:
        raise ValueError(f"visibility {visibility!r} must be one of {VISIBILITIES}")
    if points < 0:
        raise ValueError(f"points must be >= 0, got {points}")

    def decorate(fn):
        fn = pytest.mark.cs330(id=test_id, points=float(points), hidden=hidden, visibility=visibility)(fn)
        if timeout is not None:
            fn = pytest.mark.timeout(timeout)(fn)
        return fn

    return decorate


def expect_tensor(value, what: str, shape: tuple | None = None):
    """``value`` if it is a ``torch.Tensor`` (of ``shape``, if given); otherwise the test fails,
    saying what ``what`` gave instead. Use it on every tensor a student function returns."""
    import torch

    if not isinstance(value, torch.Tensor):
        kind = "None" if value is None else repr(value) if type(value).__name__ == "Remote" else type(value).__name__
        pytest.fail(f"{what} must return a torch.Tensor, got {kind}", pytrace=False)
    if shape is not None and tuple(value.shape) != tuple(shape):
        pytest.fail(f"{what} must return shape {tuple(shape)}, got {tuple(value.shape)}", pytrace=False)
    return value


def submission_dir(caller_file: str | None = None) -> Path:
    """The folder holding the code under test: the autograder's workspace, or the homework
    folder that contains the calling test file."""
    env = os.environ.get(ENV_SUBMISSION)
    if env:
        return Path(env)
    start = Path(caller_file or inspect.stack()[2].filename).resolve()
    for folder in start.parents:
        if (folder / "homework.toml").is_file():
            return folder
    raise RuntimeError(f"cannot find the homework folder (with homework.toml) above {start}")


def submission_path(*parts: str) -> Path:
    """A path inside the submission, e.g. ``submission_path("results", "metrics.json")``."""
    return submission_dir(inspect.stack()[1].filename).joinpath(*parts)


def student_module(name: str):
    """Import the student's module ``name`` (``"protonet"`` for ``protonet.py``).

    Any error while importing it fails the calling test with a message that says what went wrong,
    so a submission that does not import still gets a full report.
    """
    return _import_student(submission_dir(inspect.stack()[1].filename), name)


def _import_student(folder: Path, name: str):
    if os.environ.get(ENV_TRUSTED):
        pytest.fail(f"this homework is graded with student code in a separate process: reach {name}.py through the "
                    f"`student` fixture (student.{name}), not student_module()/reference_module()", pytrace=False)
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    if not (folder / (name.replace(".", "/") + ".py")).is_file():
        pytest.fail(f"{name.replace('.', '/')}.py is missing from your submission (looked in {folder})", pytrace=False)
    try:
        return importlib.import_module(name)
    except BaseException as e:  # SyntaxError, ImportError, SystemExit, anything raised at import time
        tb = traceback.format_exception(type(e), e, e.__traceback__)
        student_frames = "".join(line for line in tb if str(folder) in line or not line.startswith("  File"))
        pytest.fail(f"Could not import your {name}.py:\n{student_frames.strip()}", pytrace=False)


def reference_module(name: str):
    """The reference solution's module ``name``: for hidden checks only (autograder bundle or repo).

    In the autograder the reference is loaded before any student code runs and is kept out of
    ``sys.modules``; here it returns that private copy. In the course repository, where the code
    under test *is* the reference, it imports it like ``student_module``.
    """
    if name in _reference_modules:
        return _reference_modules[name]
    if os.environ.get(ENV_REFERENCE) is not None:
        raise RuntimeError(f"reference module {name!r} was not preloaded (list it in homework.toml `submit`)")
    return _import_student(submission_dir(inspect.stack()[1].filename), name)


def preload_reference(folder: Path, names: list[str]) -> None:
    """Load the reference modules from ``folder`` into a private table, then drop them (and anything
    they imported from ``folder``) from ``sys.modules`` so student imports get the student's files."""
    folder = folder.resolve()
    sys.path.insert(0, str(folder))
    try:
        for name in names:
            if (folder / (name.replace(".", "/") + ".py")).is_file():
                _reference_modules[name] = importlib.import_module(name)
    finally:
        sys.path.remove(str(folder))
        from cs330.grading.sandbox import modules_from

        for mod_name in modules_from(folder):
            del sys.modules[mod_name]
        importlib.invalidate_caches()
