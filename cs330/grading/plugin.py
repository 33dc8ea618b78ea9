"""The pytest plugin (registered as an entry point, so it is active wherever cs330 is installed).

For everyone:
  * registers the ``cs330`` marker that ``graded`` sets;
  * ``--cs330-id ID`` (repeatable) runs only the tests with those ids;
  * in a student copy, a hidden test that ran without error is reported as *skipped* with a note
    that its checks run on the autograder (it would otherwise look like a pass it has not earned).

Fixtures for homework tests:
  * ``student``: the submission's code. In the autograder (``--cs330-worker``) it reaches the
    student worker (cs330.grading.remote): a fresh sandboxed child process per test, with the
    test's time limit; anywhere else (a student's own ``pytest tests``) it imports the code in
    process (cs330.grading.code), as students are grading themselves there.
  * ``reference``: the reference solution, always in this (trusted) process: for hidden checks.

In the autograder's test process (``--cs330-report-fd``), it also streams one JSON line per event
to the grader. For homeworks still on the legacy in-process design (``trusted = false``), it loads
the reference before any student code runs, then enters the sandbox (cs330.grading.sandbox).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from cs330.grading import api, markers
from cs330.grading.code import Code

MAX_OUTPUT = 20_000  # characters of failure text and captured output kept per test


def pytest_addoption(parser):
    group = parser.getgroup("cs330")
    group.addoption("--cs330-id", action="append", default=[], metavar="ID", help="run only the graded test(s) with this id")
    group.addoption("--cs330-report-fd", type=int, default=None, help=argparse_suppress())
    group.addoption("--cs330-sandbox", default="{}", help=argparse_suppress())
    group.addoption("--cs330-worker", default=None, help=argparse_suppress())
    group.addoption("--cs330-deadline", type=float, default=float("inf"), help=argparse_suppress())
    group.addoption("--cs330-default-timeout", type=float, default=60.0, help=argparse_suppress())


def argparse_suppress():
    import argparse

    return argparse.SUPPRESS


def pytest_configure(config):
    config.addinivalue_line("markers", "cs330(id, points, hidden, visibility): a graded test (set by cs330.grading.graded)")
    fd = config.getoption("--cs330-report-fd")
    if fd is not None and config.getoption("--cs330-worker") is not None:
        # the trusted test process: not dumpable, so a worker running as the same user (the
        # `process` mode) cannot open its descriptors or memory through /proc, nor ptrace it
        import ctypes

        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
        if not config.getoption("--collect-only"):
            _worker(config).start_soon()  # Python and torch start there while the tests are collected here
    if fd is not None:
        config.pluginmanager.register(GraderReporter(os.fdopen(fd, "w", buffering=1), config), "cs330-grader-reporter")


def graded_meta(item) -> dict | None:
    mark = item.get_closest_marker("cs330")
    return dict(mark.kwargs) if mark else None


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
    """The submission's code: ``student.model.f(x)``, ``student.probe(fn, ...)`` (see cs330.grading.remote)."""
    config = request.config
    if config.getoption("--cs330-worker") is None:
        yield Code(api.submission_dir(str(request.path)))
        return
    from cs330.grading import remote

    total = config.getoption("--cs330-deadline")
    if time.monotonic() >= total:
        raise remote.StudentTimeout("Timed out: not run, the submission used up its total time budget")
    worker = _worker(config)
    mark = request.node.get_closest_marker("timeout")
    limit = float(mark.args[0]) if mark and mark.args else config.getoption("--cs330-default-timeout")
    reporter = config.pluginmanager.get_plugin("cs330-grader-reporter")
    try:
        worker.begin(limit, total)
    except remote.WorkerStartError as e:
        if reporter is not None:
            reporter.emit(event="fault", message=str(e))
        os._exit(3)
    if reporter is not None:  # the test's clock starts now, for the runner's backstop too
        reporter.emit(event="clock", nodeid=request.node.nodeid)
    yield remote.Student(worker, worker.config["probe_modules"])
    output = worker.end()
    if output.strip():
        sys.stdout.write(output)


@pytest.fixture
def reference(request):
    """The reference solution's code, in this process (hidden checks only; never in a student copy)."""
    folder = os.environ.get(api.ENV_REFERENCE)
    return Code(folder if folder else api.submission_dir(str(request.path)))


_WORKER = None


def _worker(config):
    """This test process's one worker (started on first use, restarted after a kill)."""
    global _WORKER
    if _WORKER is None:
        from cs330.grading import remote

        _WORKER = remote.Worker(json.loads(config.getoption("--cs330-worker")))
    return _WORKER


def pytest_unconfigure(config):
    if _WORKER is not None:
        _WORKER.kill()


# --- reports ---------------------------------------------------------------------------------------


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    remote = sys.modules.get("cs330.grading.remote")  # loaded only where a student worker runs
    if call.excinfo is not None and remote is not None and isinstance(call.excinfo.value, remote.StudentFailure):
        # what the student's code did, in the student's terms: no grader traceback
        report.longrepr = str(call.excinfo.value)
        report.cs330_timeout = isinstance(call.excinfo.value, remote.StudentTimeout)
    meta = graded_meta(item)
    if call.when == "call" and report.passed and meta and meta["hidden"] and _is_student_copy(item):
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1] or 0, "hidden test: your code ran without errors; its checks run on the autograder")


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


class GraderReporter:
    """Streams test events to the grader process, one JSON object per line."""

    def __init__(self, stream, config):
        self.stream, self.config = stream, config
        self.reports: dict[str, list] = {}
        self.collect_errors: list[str] = []

    def emit(self, **event):
        self.stream.write(json.dumps(event) + "\n")
        self.stream.flush()

    def pytest_collection_finish(self, session):
        tests = []
        for item in session.items:
            meta = graded_meta(item)
            if meta is None:
                continue
            timeout = item.get_closest_marker("timeout")
            doc = (getattr(getattr(item, "function", None), "__doc__", None) or item.name).strip().splitlines()[0]
            tests.append({**meta, "nodeid": item.nodeid, "timeout": timeout.args[0] if timeout and timeout.args else None, "doc": doc})
        self.emit(event="collected", tests=tests, errors=self.collect_errors)
        if self.config.getoption("--cs330-worker") is None:  # legacy: student code runs in this process
            self._enter_sandbox()

    def pytest_collectreport(self, report):
        if report.failed:
            self.collect_errors.append(_clip(f"{report.nodeid}: {report.longreprtext}"))

    def _enter_sandbox(self):
        from cs330.grading import sandbox

        settings = json.loads(self.config.getoption("--cs330-sandbox"))
        submission = os.environ.get(api.ENV_SUBMISSION)
        imported = sandbox.modules_from(Path(submission)) if submission else []
        if imported:
            self.emit(event="fault", message=f"test files import student code at their top level ({', '.join(imported)}); import it inside tests with student_module()")
            os._exit(3)
        if os.environ.get(api.ENV_REFERENCE):
            api.preload_reference(Path(os.environ[api.ENV_REFERENCE]), settings.get("modules", []))
        try:
            sandbox.enter(**settings.get("limits", {}))
        except OSError as e:  # never run student code half-sandboxed
            self.emit(event="fault", message=f"could not set up the sandbox: {e}")
            os._exit(3)

    def pytest_runtest_logstart(self, nodeid, location):
        self.emit(event="start", nodeid=nodeid)

    def pytest_runtest_logreport(self, report):
        self.reports.setdefault(report.nodeid, []).append(report)
        if report.when != "teardown":
            return
        reports = self.reports.pop(report.nodeid)
        failed = [r for r in reports if r.failed]
        skipped = [r for r in reports if r.skipped]
        if failed:
            outcome, text = "failed", "\n".join(_longrepr(r) for r in failed)
            if any(getattr(r, "cs330_timeout", False) for r in failed):
                outcome = "timeout"
        elif skipped:
            outcome, text = "skipped", _longrepr(skipped[0])
        else:
            outcome, text = "passed", ""
        captured = reports[-1].capstdout + reports[-1].capstderr  # the teardown report holds every phase's output
        self.emit(event="end", nodeid=report.nodeid, outcome=outcome, message=_clip(text), output=_clip(captured), duration=sum(r.duration for r in reports))


def _longrepr(report) -> str:
    if isinstance(report.longrepr, tuple):
        return str(report.longrepr[2])
    return str(report.longreprtext if hasattr(report, "longreprtext") else report.longrepr)


def _clip(text: str) -> str:
    if len(text) <= MAX_OUTPUT:
        return text
    half = MAX_OUTPUT // 2
    return f"{text[:half]}\n... [{len(text) - MAX_OUTPUT} characters cut] ...\n{text[-half:]}"
