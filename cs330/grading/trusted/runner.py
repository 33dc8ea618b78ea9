"""Run a homework's graded tests on a submission, in child processes that may die at any moment.

One test process runs the tests one after another and streams an event per test (plugin.py).
The runner watches it: a test that overruns its timeout gets its process killed; a process that
dies (``os._exit``, a segfault, a memory or file-size limit) fails the test it was running; either
way a fresh process picks up the tests that had not run yet. So every collected test gets an
outcome, whatever the submission does.
"""

from __future__ import annotations

import atexit
import itertools
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from cs330.grading import api
from cs330.grading.worker import jail

START_TIMEOUT = 300.0  # seconds for a fresh process to import and collect the tests
MAX_LOG = 20_000


class GraderFault(RuntimeError):
    """The tests themselves cannot run (a bug in the homework, not in the submission)."""


@dataclass
class Outcome:
    nodeid: str
    id: str
    points: float
    visibility: str
    hidden: bool
    doc: str
    timeout: float | None
    status: str = "not run"  # passed | failed | skipped | timeout | crashed | not run
    message: str = ""
    output: str = ""
    duration: float = 0.0

    @property
    def score(self) -> float:
        return self.points if self.status == "passed" else 0.0


@dataclass
class Job:
    """Everything one grading run needs. ``private`` holds the tests/reference copies (never
    readable by student code); ``workspace`` is the submission's working copy."""

    tests: Path
    workspace: Path
    private: Path
    reference: Path | None = None
    timeout: float = 60.0
    memory_mb: int = 4096
    disk_mb: int = 1024  # the worker's workspace and /tmp, each
    grace: float = 15.0  # seconds past a test's own timeout before its process is killed
    threads: int = 1
    log: list[str] = field(default_factory=list)
    probes: list[Path] = field(default_factory=list)  # probe modules the worker may run
    preload: list[str] = field(default_factory=list)  # installed libraries the worker imports before any test
    uid: int = 61000  # the worker's own unprivileged user
    total_timeout: float = 1800.0  # seconds for the whole submission
    deadline: float = float("inf")  # time.monotonic() when the total runs out (set by run_all / run)
    secret: str = ""  # hex: what api.drawn_seed draws from (grader.grading_secret); never sent to the worker


@lru_cache(maxsize=1)
def grader_root() -> Path:
    """One folder per grader process for every job's private files and workspace, so that a test
    process can cover all of them at once (other submissions included) and keep only its own."""
    root = Path(tempfile.mkdtemp(prefix="cs330-grader-"))
    os.chmod(root, 0o711)
    atexit.register(shutil.rmtree, root, True)
    return root


def new_job_dirs(folder: str) -> tuple[Path, Path]:
    """A fresh (private, workspace) pair under :func:`grader_root`; the workspace ends in ``folder``."""
    job = Path(tempfile.mkdtemp(dir=grader_root()))
    (job / "private").mkdir(mode=0o700)
    return job / "private", job / "work" / folder


def sandbox_mode() -> str:
    """The student worker's mode on this machine, in words (results.json says it)."""
    return jail.describe(jail.available_mode())


_uids = itertools.count()


def new_uid() -> int:
    """An unprivileged uid for one job's worker, distinct from the other jobs of this grader."""
    return 61000 + next(_uids) % 4000


def collect(job: Job) -> list[Outcome]:
    """The graded tests, read by a test process that runs none of them."""
    outcomes, _ = _run_process(job, ids=None, collect_only=True)
    return sorted(outcomes, key=lambda o: _id_key(o.id))


def run_all(job: Job) -> list[Outcome]:
    """Collect and run every graded test (the first test process does both)."""
    job.deadline = min(job.deadline, time.monotonic() + job.total_timeout)
    outcomes, _ = _run_process(job, ids=None)
    if not outcomes:
        raise GraderFault("no graded tests were collected:\n" + _tail("\n".join(job.log)))
    run(job, outcomes)
    return sorted(outcomes, key=lambda o: _id_key(o.id))


def _id_key(test_id: str):
    question, n, kind = test_id.split("-")
    digits = "".join(c for c in question if c.isdigit())
    return (int(digits), question, int(n), kind)


def run(job: Job, outcomes: list[Outcome]) -> None:
    """Run the given tests, filling in each outcome; restarts the test process after a crash."""
    job.deadline = min(job.deadline, time.monotonic() + job.total_timeout)
    todo = [o for o in outcomes if o.status == "not run"]
    while todo:
        if time.monotonic() >= job.deadline:
            for o in todo:
                o.status, o.message = (
                    "timeout",
                    f"not run: the submission used up its total time budget ({job.total_timeout:g} s)",
                )
            break
        _, progressed = _run_process(job, ids=todo)
        left = [o for o in todo if o.status == "not run"]
        if not progressed:  # the process died before running anything: do not spin
            for o in left:
                o.status, o.message = (
                    "failed",
                    "not run: the test process exited before this test started\n" + _tail("\n".join(job.log)),
                )
            break
        todo = left


def _run_process(job: Job, ids: list[Outcome] | None, collect_only: bool = False) -> tuple[list[Outcome], bool]:
    """One test process over ``ids`` (every graded test when None): start it, follow its events
    until it ends or overruns, reap it and blame the test it died in. Returns the outcomes it
    reported and whether it settled any test."""
    run_dir = _run_folder(job)
    basetemp = Path(tempfile.mkdtemp(prefix="tmp-", dir=run_dir))
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(_command(job, run_dir, basetemp, write_fd, ids, collect_only), cwd=job.workspace,
                            env=_environment(job, run_dir, basetemp), pass_fds=[write_fd], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    os.close(write_fd)
    console = _Tail(proc.stdout)
    events = _Events(job, ids)
    try:
        with os.fdopen(read_fd, "rb", buffering=0) as stream:
            events.follow(stream, proc)
    finally:
        code = _reap(proc)
        if jail.available_mode() == "setuid":
            jail.kill_user(job.uid)  # whatever the worker left running, even if its test process was killed
        console.join()
        shutil.rmtree(basetemp, ignore_errors=True)
        shutil.rmtree(run_dir, ignore_errors=True)
    log = console.text()
    if log.strip():
        job.log.append(log)
    _blame(events, code, log)
    if collect_only and not events.outcomes:
        raise GraderFault(f"no graded tests were collected ({jail.describe_exit(code)}):\n{_tail(log)}")
    return events.outcomes, events.progressed


# --- the command and its environment ---------------------------------------------------------------


def _run_folder(job: Job) -> Path:
    """A fresh private copy of the tests (and the reference) for one test process."""
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=job.private))
    shutil.copytree(job.tests, run_dir / "tests")
    if job.reference is not None:
        shutil.copytree(job.reference, run_dir / "reference")
    (run_dir / "pytest.ini").write_text("[pytest]\naddopts =\n")
    if job.secret:  # in the private run folder (0700, never mounted in the worker), not on a command line
        fd = os.open(run_dir / "secret", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(job.secret)
    return run_dir


def _command(
    job: Job, run_dir: Path, basetemp: Path, report_fd: int, ids: list[Outcome] | None, collect_only: bool
) -> list[str]:
    """pytest over the run folder's tests, reporting on ``report_fd``. The test process runs no
    student code, so it needs no sandbox and no pytest-timeout: the worker's limits are the grader's
    (per test, and for the whole submission)."""
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        str(run_dir / "tests"),
        "-c",
        str(run_dir / "pytest.ini"),
        "--rootdir",
        str(run_dir),
        "-p",
        "no:cacheprovider",
        "-p",
        "no:timeout",
        "-q",
        "--tb=short",
        "--continue-on-collection-errors",
        f"--basetemp={basetemp / 'pytest'}",
        f"--cs330-report-fd={report_fd}",
        f"--cs330-worker={json.dumps(worker_config(job, run_dir))}",
        f"--cs330-deadline={job.deadline:.3f}",
        f"--cs330-default-timeout={job.timeout:g}",
    ]
    if collect_only:
        cmd.append("--collect-only")
    for o in ids or []:
        cmd += ["--cs330-id", o.id]
    return cmd


def _environment(job: Job, run_dir: Path, basetemp: Path) -> dict[str, str]:
    """The test process's environment: the grader's, minus what a test could mistake for its own
    settings, with caches in its own temp folder and the submission and reference named."""
    ours = ("CS330_SUBMISSION", "CS330_REFERENCE", "CS330_SECRET", "PYTEST_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    env.update(
        {
            var: str(basetemp / name)
            for var, name in (
                ("TORCHINDUCTOR_CACHE_DIR", "torchinductor"),
                ("TRITON_CACHE_DIR", "triton"),
                ("MPLCONFIGDIR", "matplotlib"),
                ("XDG_CACHE_HOME", "cache"),
            )
        }
    )
    threads = str(job.threads)
    env.update(CS330_SUBMISSION=str(job.workspace), TMPDIR=str(basetemp), PYTHONDONTWRITEBYTECODE="1", MPLBACKEND="Agg",
               OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads, PYTHONHASHSEED="0")
    if job.reference is not None:
        env[api.ENV_REFERENCE] = str(run_dir / "reference")
    if job.secret:
        env[api.ENV_SECRET] = str(run_dir / "secret")
    return env


# --- the event stream --------------------------------------------------------------------------------


class _Events:
    """What one test process reports, one JSON event per line (cs330.grading.trusted.session), and
    the clock: a test's time starts when its worker is ready (``clock``) and runs out at its
    timeout plus ``grace``; between tests the process has ``START_TIMEOUT``."""

    def __init__(self, job: Job, ids: list[Outcome] | None):
        self.job = job
        self.by_node = {o.nodeid: o for o in ids or []}
        self.wanted_all = ids is None
        self.outcomes: list[Outcome] = []
        self.current: Outcome | None = None  # the test running now
        self.deadline = _until(job, START_TIMEOUT)
        self.progressed = False  # whether any test was settled
        self.malformed = False

    def follow(self, stream, proc: subprocess.Popen) -> None:
        """Read events until the process closes its end, or kill it when the clock runs out."""
        buffer = b""
        while True:
            wait = self.deadline - time.monotonic()
            if wait <= 0:
                _kill(proc)
                self._overran()
                return
            ready, _, _ = select.select([stream], [], [], min(wait, 1.0))
            if not ready:
                continue
            chunk = stream.read(65536)
            if not chunk:
                return
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                event = _event(line)
                if event is None:  # a bug on the trusted side: never blamed on the student
                    _kill(proc)
                    self.job.log.append("the test process sent a malformed report line; stopped")
                    self.malformed = True
                    return
                self._handle(event)

    def _handle(self, event: dict) -> None:
        kind, job = event["event"], self.job
        if kind == "fault":
            raise GraderFault(event["message"])
        if kind == "collected":
            if event["errors"]:
                raise GraderFault("the tests do not load:\n" + "\n".join(event["errors"]))
            self.outcomes = [Outcome(nodeid=t["nodeid"], id=t["id"], points=t["points"], visibility=t["visibility"],
                                     hidden=t["hidden"], doc=t["doc"], timeout=t["timeout"]) for t in event["tests"]]
            if self.wanted_all:
                self.by_node = {o.nodeid: o for o in self.outcomes}
            self.deadline = _until(job, START_TIMEOUT)
        elif kind in ("start", "clock"):  # clock: the worker is ready, the test's time starts (again)
            self.current = self.by_node.get(event["nodeid"])
            limit = (self.current.timeout if self.current and self.current.timeout else job.timeout) + job.grace
            self.deadline = _until(job, limit)
        elif kind == "end":
            done = self.by_node.get(event["nodeid"])
            if done is not None:
                done.status, done.message, done.output = event["outcome"], event["message"], event["output"]
                done.duration = event["duration"]
                self.progressed = True
            self.current = None
            self.deadline = _until(job, START_TIMEOUT)

    def _overran(self) -> None:
        job, current = self.job, self.current
        if current is not None:
            current.status = "timeout"
            current.message = (
                f"Timed out: still running after {current.timeout or job.timeout:g} s (+{job.grace:g} s grace); "
                "the test process was stopped."
            )
            self.progressed = True
        else:
            job.log.append(f"test process made no progress for {START_TIMEOUT:g} s; stopped")


# --- reaping and blame -------------------------------------------------------------------------------


def _blame(events: _Events, code: int, log: str) -> None:
    """A test the process died in (and that no event settled) is failed as ``crashed``, saying why."""
    current = events.current
    if current is None or current.status != "not run":
        return
    current.status = "crashed"
    why = "it sent a malformed report line and was stopped" if events.malformed else jail.describe_exit(code)
    current.message = f"The test process died while running this test ({why}).\n{_tail(log)}"
    events.progressed = True


def _until(job: Job, seconds: float) -> float:
    """The time.monotonic() ``seconds`` from now, but never past the submission's budget (+ grace)."""
    return min(time.monotonic() + seconds, job.deadline + job.grace)


def _event(line: bytes) -> dict | None:
    """One report line as an event, or None when it is not a well-formed one."""
    try:
        event = json.loads(line)
    except ValueError:
        return None
    if type(event) is not dict or type(event.get("event")) is not str:
        return None
    return event


def worker_config(job: Job, run_dir: Path) -> dict:
    """What the student worker gets (cs330.grading.worker.jail.enter): its mode, user, files and limits."""
    mode = jail.available_mode()
    # beside the workspace (job/work/), not in the private run folder: in `setuid` mode the worker
    # reaches them by path, while everything under job/private stays unreadable to it
    side = Path(tempfile.mkdtemp(prefix=".worker-", dir=job.workspace.parent))
    probes, root, tmp = side / "probes", side / "root", side / "tmp"
    probes.mkdir(mode=0o755)
    for path in job.probes:
        shutil.copy(path, probes / path.name)
    root.mkdir()
    tmp.mkdir(mode=0o700)
    workspace = job.workspace
    if mode in ("setuid", "process"):
        # no private root: the worker gets a copy of its own, so what it writes (a link planted
        # where a results file was, say) never reaches the files the tests read (job.workspace)
        workspace = side / "work" / job.workspace.name
        shutil.copytree(job.workspace, workspace, symlinks=True)
    if mode == "setuid":  # the worker's own files are owned by its user, the rest is not
        _check_reachable_by_worker()
        for folder in (workspace.parent, tmp):
            for path in [folder, *folder.rglob("*")]:
                os.lchown(path, job.uid, job.uid)
        for folder in (side, *job.workspace.parents):
            if not folder.is_relative_to(grader_root()) or folder == grader_root():
                break
            os.chmod(folder, 0o711)
    in_jail = mode in ("namespaces", "user-namespace")
    threads = str(job.threads)
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": jail.HOME if in_jail else str(workspace),
        "TMPDIR": "/tmp" if in_jail else str(tmp),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        "MPLBACKEND": "Agg",
        "OMP_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    env.update(
        {
            var: f"{env['TMPDIR']}/{name}"
            for var, name in (
                ("TORCHINDUCTOR_CACHE_DIR", "torchinductor"),
                ("TRITON_CACHE_DIR", "triton"),
                ("MPLCONFIGDIR", "matplotlib"),
                ("XDG_CACHE_HOME", "cache"),
            )
        }
    )
    for var in ("CS330_DATA", "CS330_CACHE", "CUDA_VISIBLE_DEVICES"):
        if os.environ.get(var):
            env[var] = os.environ[var]
    return {
        "mode": mode,
        "uid": job.uid,
        "root": str(root),
        "workspace": str(workspace),
        "folder": job.workspace.name,
        "binds": _read_only_paths(),
        "probes": str(probes) if job.probes else "",
        "probe_modules": sorted(p.stem for p in job.probes),
        "preload": list(job.preload),
        "workspace_mb": job.disk_mb + _size_mb(job.workspace),
        "tmp_mb": job.disk_mb,
        "memory_mb": job.memory_mb,
        "file_mb": job.disk_mb,
        "nproc": 256,
        "env": env,
    }


def _size_mb(folder: Path) -> int:
    """The megabytes the files under ``folder`` take (rounded up). The workspace holds them on top of
    the ``disk_mb`` the student's code may write: a submission the grader took never fills it."""
    total = sum(p.lstat().st_size for p in folder.rglob("*") if not p.is_dir() or p.is_symlink())
    return -(-total // (1 << 20)) + 1


def _check_reachable_by_worker() -> None:
    """In ``setuid`` mode the worker is another user: Python, its packages and cs330 must be
    reachable by others, or every test would fail as the student's (``No module named 'torch'``)."""
    import site

    import cs330

    closed = jail.closed_to_others(
        [sys.prefix, sys.base_prefix, *site.getsitepackages(), str(Path(cs330.__file__).parent)]
    )
    if closed:
        raise GraderFault(
            f"the student worker runs as another user here (setuid mode), and {closed[0]} is closed to other "
            f"users (mode {closed[0].stat().st_mode & 0o777:o}), so it cannot start Python: make that folder "
            "searchable (chmod o+x) or put the Python environment elsewhere"
        )


def _read_only_paths() -> list[str]:
    try:
        return jail.read_only_paths()
    except ValueError as e:
        raise GraderFault(str(e)) from None


class _Tail(threading.Thread):
    """Drains a pipe in the background, keeping its first and last characters."""

    def __init__(self, stream):
        super().__init__(daemon=True)
        self.stream, self.head, self.tail, self.total = stream, b"", b"", 0
        self.start()

    def run(self):
        half = MAX_LOG // 2
        for chunk in iter(lambda: self.stream.read1(65536), b""):
            self.total += len(chunk)
            take = max(0, half - len(self.head))
            self.head += chunk[:take]
            self.tail = (self.tail + chunk[take:])[-half:]

    def text(self) -> str:
        cut = self.total - len(self.head) - len(self.tail)
        middle = f"\n... [{cut} bytes cut] ...\n".encode() if cut > 0 else b""
        return (self.head + middle + self.tail).decode(errors="replace")


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _reap(proc: subprocess.Popen) -> int:
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        _kill(proc)
        return proc.wait()


def _tail(text: str, n: int = 3000) -> str:
    return text if len(text) <= n else "..." + text[-n:]
