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
import site
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import cs330
from cs330.grading import api, jail

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
    """Everything one grading run needs. ``private`` holds the tests/reference copies and is hidden
    from student code together with ``hide``; ``workspace`` is the submission's working copy."""

    tests: Path
    workspace: Path
    private: Path
    reference: Path | None = None
    modules: list[str] = field(default_factory=list)
    hide: list[Path] = field(default_factory=list)
    timeout: float = 60.0
    memory_mb: int = 4096
    disk_mb: int = 1024  # the worker's workspace and /tmp, each
    grace: float = 15.0  # seconds past a test's own timeout before its process is killed
    threads: int = 1
    log: list[str] = field(default_factory=list)
    trusted: bool = True  # student code runs only in the worker (False: legacy, in the test process)
    probes: list[Path] = field(default_factory=list)  # probe modules the worker may run
    preload: list[str] = field(default_factory=list)  # installed libraries the worker imports before any test
    uid: int = 61000  # the worker's own unprivileged user
    total_timeout: float = 1800.0  # seconds for the whole submission
    deadline: float = float("inf")  # time.monotonic() when the total runs out (set by run_all / run)


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


@lru_cache(maxsize=1)
def isolation_available() -> bool:
    """Whether test processes can run in their own mount/PID/network namespaces (needs root)."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    cmd = ["unshare", "--mount", "--pid", "--fork", "--net", "--mount-proc", "--propagation", "private", "true"]
    try:
        return subprocess.run(cmd, capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def sandbox_mode(trusted: bool = True) -> str:
    if trusted:
        return jail.describe(jail.available_mode())
    return ("legacy: student code runs in the test process; isolated (namespaces, no capabilities)" if isolation_available()
            else "legacy: student code runs in the test process; basic (same user; hidden files deleted before student code runs)")


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
                o.status, o.message = "timeout", f"not run: the submission used up its total time budget ({job.total_timeout:g} s)"
            break
        _, progressed = _run_process(job, ids=todo)
        left = [o for o in todo if o.status == "not run"]
        if not progressed:  # the process died before running anything: do not spin
            for o in left:
                o.status, o.message = "failed", "not run: the test process exited before this test started\n" + _tail("\n".join(job.log))
            break
        todo = left


def _run_process(job: Job, ids: list[Outcome] | None, collect_only: bool = False):
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=job.private))
    shutil.copytree(job.tests, run_dir / "tests")
    reference = None
    if job.reference is not None:
        reference = run_dir / "reference"
        shutil.copytree(job.reference, reference)
    (run_dir / "pytest.ini").write_text("[pytest]\naddopts =\n")
    isolated = isolation_available() and not job.trusted
    basetemp = Path(tempfile.mkdtemp(prefix="tmp-", dir=job.workspace.parent if not job.trusted else run_dir))
    settings = {
        "modules": job.modules,
        "limits": {
            "memory_mb": job.memory_mb,
            "isolated": isolated,
            "hide": _hideable([Path(tempfile.gettempdir()), grader_root(), *job.hide], keep=_needed_paths()) if isolated else [],
            "keep": [str(job.workspace), str(basetemp)],
            "delete": [] if isolated else [str(run_dir / "tests"), str(reference or run_dir / "reference")],
        },
    }
    read_fd, write_fd = os.pipe()
    cmd = [sys.executable, "-m", "pytest", str(run_dir / "tests"), "-c", str(run_dir / "pytest.ini"), "--rootdir", str(run_dir),
           "-p", "no:cacheprovider", "-q", "--tb=short", "--continue-on-collection-errors", f"--timeout={job.timeout:g}",
           f"--basetemp={basetemp / 'pytest'}", f"--cs330-report-fd={write_fd}", f"--cs330-sandbox={json.dumps(settings)}"]
    # (--basetemp is a subfolder: pytest recreates it, and basetemp itself is a mount point)
    if job.trusted:
        # the test process is trusted: it runs no student code, so it needs no sandbox; the
        # worker's limits are the grader's (per test, and for the whole submission)
        cmd = [c for c in cmd if not c.startswith(("--cs330-sandbox=", "--timeout="))]
        cmd += ["-p", "no:timeout", f"--cs330-worker={json.dumps(worker_config(job, run_dir))}",
                f"--cs330-deadline={job.deadline:.3f}", f"--cs330-default-timeout={job.timeout:g}"]
    if collect_only:
        cmd.append("--collect-only")
    for o in ids or []:
        cmd += ["--cs330-id", o.id]
    if isolated:
        # Before Python starts (no file is open for writing yet): the workspace and temp folder get
        # mounts of their own, then the rest of the file system turns read-only for this process.
        setup = 'mount --bind "$1" "$1" && mount --bind "$2" "$2" && mount -o remount,bind,ro / && shift 2 && exec "$@"'
        cmd = ["unshare", "--mount", "--pid", "--fork", "--net", "--mount-proc", "--propagation", "private", "--kill-child",
               "sh", "-c", setup, "sh", str(job.workspace), str(basetemp), *cmd]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CS330_SUBMISSION", "CS330_REFERENCE", "PYTEST_"))}
    # caches that libraries write at run time go to the test process's own temp folder
    env.update({var: str(basetemp / name) for var, name in (("TORCHINDUCTOR_CACHE_DIR", "torchinductor"), ("TRITON_CACHE_DIR", "triton"),
                                                            ("MPLCONFIGDIR", "matplotlib"), ("XDG_CACHE_HOME", "cache"))})
    threads = str(job.threads)
    env.update(CS330_SUBMISSION=str(job.workspace), TMPDIR=str(basetemp), PYTHONDONTWRITEBYTECODE="1", MPLBACKEND="Agg",
               OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads, PYTHONHASHSEED="0")
    if reference is not None:
        env["CS330_REFERENCE"] = str(reference)
    if job.trusted:
        env[api.ENV_TRUSTED] = "1"
    proc = subprocess.Popen(cmd, cwd=job.workspace, env=env, pass_fds=[write_fd], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    os.close(write_fd)
    console = _Tail(proc.stdout)
    by_node = {o.nodeid: o for o in ids or []}
    outcomes: list[Outcome] = []
    current: Outcome | None = None
    deadline = _until(job, START_TIMEOUT)
    progressed = False
    malformed = False
    buffer = b""
    try:
        with os.fdopen(read_fd, "rb", buffering=0) as events:
            while True:
                wait = deadline - time.monotonic()
                if wait <= 0:
                    _kill(proc)
                    if current is not None:
                        current.status = "timeout"
                        current.message = f"Timed out: still running after {current.timeout or job.timeout:g} s (+{job.grace:g} s grace); the test process was stopped."
                        progressed = True
                    else:
                        job.log.append(f"test process made no progress for {START_TIMEOUT:g} s; stopped")
                    break
                ready, _, _ = select.select([events], [], [], min(wait, 1.0))
                if not ready:
                    continue
                chunk = events.read(65536)
                if not chunk:
                    break
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    event = _event(line)
                    if event is None:  # only a legacy test process (running student code) can send this
                        _kill(proc)
                        job.log.append("the test process sent a malformed report line; stopped")
                        raise _Malformed
                    kind = event["event"]
                    if kind == "fault":
                        raise GraderFault(event["message"])
                    if kind == "collected":
                        if event["errors"]:
                            raise GraderFault("the tests do not load:\n" + "\n".join(event["errors"]))
                        outcomes = [Outcome(nodeid=t["nodeid"], id=t["id"], points=t["points"], visibility=t["visibility"],
                                            hidden=t["hidden"], doc=t["doc"], timeout=t["timeout"]) for t in event["tests"]]
                        if ids is None:
                            by_node = {o.nodeid: o for o in outcomes}
                        deadline = _until(job, START_TIMEOUT)
                    elif kind == "start" or kind == "clock" and job.trusted:  # clock: the worker is ready, the test's time starts
                        current = by_node.get(event["nodeid"])
                        limit = (current.timeout if current and current.timeout else job.timeout) + job.grace
                        deadline = _until(job, limit)
                    elif kind == "end":
                        done = by_node.get(event["nodeid"])
                        if done is not None:
                            done.status, done.message, done.output = event["outcome"], event["message"], event["output"]
                            done.duration = event["duration"]
                            progressed = True
                        current = None
                        deadline = _until(job, START_TIMEOUT)
    except _Malformed:
        malformed = True
    finally:
        code = _reap(proc)
        if job.trusted and jail.available_mode() == "setuid":
            jail.kill_user(job.uid)  # whatever the worker left running, even if its test process was killed
        console.join()
        shutil.rmtree(basetemp, ignore_errors=True)
        shutil.rmtree(run_dir, ignore_errors=True)
    log = console.text()
    if log.strip():
        job.log.append(log)
    if current is not None and current.status == "not run":
        current.status = "crashed"
        why = "it sent a malformed report line and was stopped" if malformed else jail.describe_exit(code)
        current.message = f"The test process died while running this test ({why}).\n{_tail(log)}"
        progressed = True
    if collect_only and not outcomes:
        raise GraderFault(f"no graded tests were collected ({jail.describe_exit(code)}):\n{_tail(log)}")
    return outcomes, progressed


def _until(job: Job, seconds: float) -> float:
    """The time.monotonic() ``seconds`` from now, but never past the submission's budget (+ grace)."""
    return min(time.monotonic() + seconds, job.deadline + job.grace)


class _Malformed(Exception):
    pass


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
    """What the student worker gets (cs330.grading.jail.enter): its mode, user, files and limits."""
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
        for folder in (workspace.parent, tmp):
            for path in [folder, *folder.rglob("*")]:
                os.lchown(path, job.uid, job.uid)
        for folder in (side, *job.workspace.parents):
            if not folder.is_relative_to(grader_root()) or folder == grader_root():
                break
            os.chmod(folder, 0o711)
    in_jail = mode in ("namespaces", "user-namespace")
    threads = str(job.threads)
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": jail.HOME if in_jail else str(workspace),
           "TMPDIR": "/tmp" if in_jail else str(tmp), "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0", "MPLBACKEND": "Agg",
           "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.update({var: f"{env['TMPDIR']}/{name}" for var, name in (("TORCHINDUCTOR_CACHE_DIR", "torchinductor"), ("TRITON_CACHE_DIR", "triton"),
                                                                  ("MPLCONFIGDIR", "matplotlib"), ("XDG_CACHE_HOME", "cache"))})
    for var in ("CS330_DATA", "CS330_CACHE", "CUDA_VISIBLE_DEVICES"):
        if os.environ.get(var):
            env[var] = os.environ[var]
    return {"mode": mode, "uid": job.uid, "root": str(root), "workspace": str(workspace), "folder": job.workspace.name,
            "binds": _read_only_paths(), "probes": str(probes) if job.probes else "", "probe_modules": sorted(p.stem for p in job.probes),
            "preload": list(job.preload),
            "workspace_mb": job.disk_mb + _size_mb(job.workspace), "tmp_mb": job.disk_mb, "memory_mb": job.memory_mb, "file_mb": job.disk_mb, "nproc": 256, "env": env}


def _size_mb(folder: Path) -> int:
    """The megabytes the files under ``folder`` take (rounded up). The workspace holds them on top of
    the ``disk_mb`` the student's code may write: a submission the grader took never fills it."""
    total = sum(p.lstat().st_size for p in folder.rglob("*") if not p.is_dir() or p.is_symlink())
    return -(-total // (1 << 20)) + 1


def _read_only_paths() -> list[str]:
    try:
        return jail.read_only_paths()
    except ValueError as e:
        raise GraderFault(str(e)) from None


def _hideable(paths: list[Path], keep: list[Path]) -> list[str]:
    """The folders to cover, minus any that hold something the test process needs."""
    out = []
    for path in paths:
        path = Path(path).resolve()
        if path.is_dir() and not any(Path(k).resolve().is_relative_to(path) for k in keep):
            out.append(str(path))
    return out


def _needed_paths() -> list[Path]:
    """What the test process reads, so never covered: Python, its packages, cs330, the data root."""
    from cs330.data.root import data_root

    paths = {sys.prefix, sys.base_prefix, *site.getsitepackages(), str(Path(cs330.__file__).parent), str(data_root())}
    return sorted(Path(p) for p in paths)


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
