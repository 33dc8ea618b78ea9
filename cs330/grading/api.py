"""What homework tests use: the ``graded`` decorator, ``expect_tensor``, ``submission_path``, ``drawn_seed``.

A test takes the ``student`` fixture (the submission's code) and, for hidden checks, ``reference``
(the reference solution); both come from the pytest plugin (cs330.grading.plugin)::

    from cs330.grading import expect_tensor, graded

    @graded("2a-1-hidden", points=2, timeout=30)
    def test_prototypes_match_reference(student, reference):
        \"\"\"Prototypes equal the reference on a seeded episode.\"\"\"
        out = expect_tensor(student.protonet.prototypes(support, labels, 5), "prototypes", shape=(5, 64))
        # BEGIN HIDDEN
        assert torch.allclose(out, reference.protonet.prototypes(support, labels, 5))
        # END HIDDEN

In the autograder ``student.protonet`` is a proxy to the sandboxed worker (cs330.grading.trusted.remote);
in a student's own ``pytest tests`` it is the module itself (cs330.grading.code). Random inputs and
held-out sets come from ``drawn_seed(label)``, never from a seed written in the test file (the worker
could rebuild them from public code). A stated implementation that later code must run on is the test's
own, passed to a probe as ``Trusted(fn)`` (cs330.grading.code): its calls cross back to the test process.
Test ids follow the course convention ``<question>-<n>-basic|hidden``.
Run one with ``pytest hw2_maml_protonet/tests --cs330-id 2a-1-hidden`` or ``cs330 test hw2 2a-1-hidden``.
"""

from __future__ import annotations

import hashlib
import hmac
import inspect
import os
import re
from pathlib import Path

import pytest

TEST_ID = re.compile(r"^(?P<question>\d+[a-z]*)-(?P<n>\d+)-(?P<kind>basic|hidden)$")
VISIBILITIES = ("hidden", "after_due_date", "after_published", "visible")

# Set by the autograder in the process that runs the tests (see cs330.grading.trusted.runner).
ENV_SUBMISSION = "CS330_SUBMISSION"
ENV_REFERENCE = "CS330_REFERENCE"
ENV_SECRET = "CS330_SECRET"  # a file holding this grading's secret (hex), in the test process's private folder
PUBLIC_SECRET = b"cs330: a student's own run; the autograder draws from a secret of its own"


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


def graded_meta(item) -> dict | None:
    """The ``graded`` marks of a collected test (id, points, hidden, visibility), or None."""
    mark = item.get_closest_marker("cs330")
    return dict(mark.kwargs) if mark else None


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


def drawn_seed(label: str) -> int:
    """A seed in [0, 2**63) for one set of a graded test's random inputs, named by ``label``.

    In the autograder it is HMAC-SHA256(this grading's secret, label), and the secret is
    HMAC(course key, the submission's files) (cs330.grading.trusted.grader): the student's code cannot
    know it, and regrading the same submission draws the same inputs. In a student's own ``pytest`` the
    secret is public and fixed, so local runs repeat; a correct solution passes for every draw."""
    secret = PUBLIC_SECRET
    path = os.environ.get(ENV_SECRET)
    if path:
        secret = bytes.fromhex(Path(path).read_text().strip())
    return int.from_bytes(hmac.new(secret, label.encode(), hashlib.sha256).digest()[:8], "big") >> 1
