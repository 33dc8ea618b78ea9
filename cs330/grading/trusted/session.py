"""The autograder's test process: pytest over the bundle's tests, with student code in a worker.

cs330.grading.plugin loads this module when the runner starts pytest with ``--cs330-report-fd``.
It then
  * marks this process non-dumpable, so a worker running as the same user (the ``process`` mode)
    cannot open its descriptors or memory through ``/proc``, nor ptrace it;
  * starts the one student worker of this process while the tests are collected (cs330.grading.trusted.remote);
  * serves the ``student`` fixture: per test, a fresh worker child with the test's time limit;
  * streams one JSON event per line to the grader (:class:`GraderReporter`): ``collected``,
    ``start``, ``clock`` (the worker is ready: the test's time starts), ``end``, ``fault``.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
import time

from cs330.grading.api import graded_meta
from cs330.grading.trusted import remote

MAX_OUTPUT = 20_000  # characters of failure text and captured output kept per test
PR_SET_DUMPABLE = 4

_WORKER: remote.Worker | None = None


def configure(config) -> None:
    """Set up this test process (called from the plugin's ``pytest_configure``)."""
    if config.getoption("--cs330-worker") is None:
        raise SystemExit("--cs330-report-fd needs --cs330-worker: student code runs only in the worker")
    ctypes.CDLL(None).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    if not config.getoption("--collect-only"):
        _worker(config).start_soon()  # Python and torch start there while the tests are collected here
    stream = os.fdopen(config.getoption("--cs330-report-fd"), "w", buffering=1)
    config.pluginmanager.register(GraderReporter(stream, config), "cs330-grader-reporter")


def student(request):
    """The ``student`` fixture in the test process: a proxy to a fresh worker child for this test."""
    config = request.config
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
        reporter.emit(event="fault", message=str(e))
        os._exit(3)
    # the test's clock starts now, for the runner's backstop too
    reporter.emit(event="clock", nodeid=request.node.nodeid)
    yield remote.Student(worker, worker.config["probe_modules"])
    output = worker.end()
    if output.strip():
        sys.stdout.write(output)


def _worker(config) -> remote.Worker:
    """This test process's one worker (started on first use, restarted after a kill)."""
    global _WORKER
    if _WORKER is None:
        _WORKER = remote.Worker(json.loads(config.getoption("--cs330-worker")))
    return _WORKER


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
            tests.append(
                {
                    **meta,
                    "nodeid": item.nodeid,
                    "timeout": timeout.args[0] if timeout and timeout.args else None,
                    "doc": doc,
                }
            )
        self.emit(event="collected", tests=tests, errors=self.collect_errors)

    def pytest_collectreport(self, report):
        if report.failed:
            self.collect_errors.append(_clip(f"{report.nodeid}: {report.longreprtext}"))

    def pytest_unconfigure(self, config):
        if _WORKER is not None:
            _WORKER.kill()

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
        self.emit(
            event="end",
            nodeid=report.nodeid,
            outcome=outcome,
            message=_clip(text),
            output=_clip(captured),
            duration=sum(r.duration for r in reports),
        )


def _longrepr(report) -> str:
    if isinstance(report.longrepr, tuple):
        return str(report.longrepr[2])
    return str(report.longreprtext if hasattr(report, "longreprtext") else report.longrepr)


def _clip(text: str) -> str:
    if len(text) <= MAX_OUTPUT:
        return text
    half = MAX_OUTPUT // 2
    return f"{text[:half]}\n... [{len(text) - MAX_OUTPUT} characters cut] ...\n{text[-half:]}"
