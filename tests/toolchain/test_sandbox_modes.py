"""The worker's weaker modes, each graded for real: ``setuid`` (root without namespaces, as in a
container without CAP_SYS_ADMIN) and the world the ``namespaces`` mode gives the student's code.

``setuid`` needs Python where another user can run it. Here Python may live under folders only
root can enter (``/root/.pyenv``, a venv under a 0700 ``mktemp -d``), so the grader runs in a mount
namespace of its own where each such folder is replaced by a world-traversable one holding only the way
to Python: the machine's own files are untouched, and the grader inside sees ``unshare`` fail the way a
container without namespaces makes it fail (``CS330_SANDBOX=setuid``).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cs330.grading.trusted import grader
from cs330.grading.worker import jail

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "toyhw"
REFERENCE = (FIXTURE / "toy.py").read_text()

WORLD = '''
import json, os, socket

def _world():
    """What this process can see and do, as facts."""
    facts = {"uid": os.getuid(), "euid": os.geteuid(), "cwd": os.getcwd(),
             "fds": sorted(int(f) for f in os.listdir("/proc/self/fd")), "env": sorted(os.environ),
             "root": sorted(os.listdir("/"))}
    def can(action):
        try:
            action()
            return True
        except OSError:
            return False
    facts["write_usr"] = can(lambda: open("/usr/cs330-hostile-marker", "w"))
    panic = "/proc/sys/kernel/panic"
    facts["write_proc_sys"] = can(lambda: open(panic, "w").write(open(panic).read()))
    facts["read_shadow"] = can(lambda: open("/etc/shadow").read())
    facts["write_cwd"] = can(lambda: open("cs330-probe-file", "w").write("x"))
    facts["network"] = can(lambda: socket.create_connection(("127.0.0.1", 9), timeout=0.5))
    facts["lo_up"] = "UP" in os.popen("cat /sys/class/net/lo/operstate 2>/dev/null").read().upper()
    facts["sees_repository"] = any(os.path.exists(os.path.join(REPOSITORY, name))
                                   for name in (".git", "tests", "hw0_multitask"))
    facts["processes"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    return facts

_mean_pool = mean_pool

def mean_pool(x):
    print("WORLD " + json.dumps(_world()))
    return _mean_pool(x)
'''


def world_source() -> str:
    """The probe above, told where the course repository lives on this machine."""
    return WORLD.replace("REPOSITORY", repr(str(Path(__file__).resolve().parents[2])))


def world_of(report) -> dict:
    out = next(o for o in report.outcomes if o.id == "1b-0-basic").output
    line = next(line for line in out.splitlines() if line.startswith("WORLD "))
    return json.loads(line[len("WORLD "):])


def submission(tmp_path: Path, source: str) -> Path:
    sub = tmp_path / "sub"
    (sub / "results").mkdir(parents=True)
    (sub / "toy.py").write_text(source)
    (sub / "results" / "metrics.json").write_text('{"pooled_sum": 2.0}')
    return sub


@pytest.mark.skipif(jail.available_mode() != "namespaces", reason="the namespaces mode needs root and Linux namespaces")
def test_the_workers_world_in_namespaces(tmp_path, toyhw):
    report = grader.grade(toyhw.root, submission(tmp_path, REFERENCE + world_source()))
    assert report.score == report.max_score == 8, report.table()
    world = world_of(report)
    assert world["uid"] == world["euid"] >= 61000, "an unprivileged uid of its own"
    assert world["cwd"] == "/home/student/toyhw"
    assert world["fds"] == [0, 1, 2, 3, 4, 5] or len(world["fds"]) <= 6, (
        f"only its own channel and output: {world['fds']}"
    )
    assert not {"CS330_SUBMISSION", "CS330_REFERENCE", "CS330_TRUSTED_GRADER"} & set(world["env"]), (
        "a scrubbed environment"
    )
    # the top of its root: the system's folders, plus the first folder on the way to each read-only
    # bind (Python, the cs330 package, the data root), wherever the machine keeps them (/check in CI)
    binds = {Path(p).parts[1] for p in jail.read_only_paths()}
    system = {
        "bin",
        "dev",
        "etc",
        "home",
        "lib",
        "lib32",
        "lib64",
        "libx32",
        "probes",
        "proc",
        "root",
        "sbin",
        "sys",
        "tmp",
        "usr",
    }
    assert set(world["root"]) <= system | binds, world["root"]
    assert not world["sees_repository"], "the course repository (tests, reference, .git) is out of its sight"
    assert not (world["write_usr"] or world["write_proc_sys"] or world["read_shadow"] or world["network"]), world
    assert world["write_cwd"], "its own workspace is writable"
    assert len(world["processes"]) <= 3, f"it sees only its own processes: {world['processes']}"


def _closed_folders_before_python() -> list[tuple[Path, list[Path]]]:
    """The folders only their owner can enter on the way to Python and its environment (a 0700
    ``/root/.pyenv``, a venv under a 0700 ``mktemp -d``), outermost first, each with its children on that way."""
    targets = {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve()}
    return [(folder, sorted({folder / t.relative_to(folder).parts[0] for t in targets if t.is_relative_to(folder)}))
            for folder in sorted(jail.closed_to_others([str(t) for t in targets]), key=lambda f: len(f.parts))
            if folder not in targets]


def test_closed_folders_are_named(monkeypatch):
    """setuid mode refuses to start a worker that could not reach Python, naming the folder."""
    import tempfile

    from cs330.grading.trusted import runner

    outer = Path(tempfile.mkdtemp(prefix="cs330-closed-"))
    outer.chmod(0o755)
    if jail.closed_to_others([str(outer)]):
        shutil.rmtree(outer)
        pytest.skip(f"the temp folder {outer.parent} is itself closed to other users")
    closed = outer / "private"
    (closed / "env").mkdir(parents=True)
    closed.chmod(0o700)
    assert jail.closed_to_others([str(closed / "env")]) == [closed]
    monkeypatch.setattr(sys, "prefix", str(closed / "env"))
    try:
        with pytest.raises(runner.GraderFault, match=rf"{closed} is closed to other users \(mode 700\).*chmod o\+x"):
            runner._check_reachable_by_worker()
    finally:
        shutil.rmtree(outer)


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("unshare"), reason="setuid mode needs root (and unshare for this test)"
)
def test_setuid_mode_grades_and_contains(tmp_path, toyhw):
    """Root without namespaces: the worker is another user; the reference scores 8, host files stay
    out of its reach, and results.json says which mode was used."""
    sub = submission(tmp_path, REFERENCE + world_source())
    results = tmp_path / "results.json"
    grade = f"CS330_SANDBOX=setuid exec {sys.executable} -m cs330.cli grade {toyhw.root} {sub} --results {results}"
    hidden = _closed_folders_before_python()
    if hidden:  # e.g. /root/.pyenv: give the sandbox user a path to Python, in this namespace only
        steps = []
        for n, (closed, children) in enumerate(hidden):
            keeps = [tmp_path / f"keep-{n}-{i}" for i in range(len(children))]
            for keep in keeps:
                keep.mkdir()
            steps += [f"mount --bind {child} {keep}" for child, keep in zip(children, keeps)]
            steps.append(f"mount -t tmpfs -o mode=755 tmpfs {closed}")
            steps += [f"mkdir -p {child} && mount --bind {keep} {child}" for child, keep in zip(children, keeps)]
        cmd = ["unshare", "--mount", "--propagation", "private", "sh", "-c", " && ".join([*steps, grade])]
    else:
        cmd = ["sh", "-c", grade]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads(results.read_text())
    grader.validate(data)
    assert data["score"] == 8, json.dumps(data, indent=1)[:3000]
    assert "setuid only" in data["output"]
    out = next(t["output"] for t in data["tests"] if t["number"] == "1b-0-basic")
    world = json.loads(next(line for line in out.splitlines() if line.startswith("WORLD "))[len("WORLD "):])
    assert world["uid"] >= 61000 and not (world["write_usr"] or world["write_proc_sys"] or world["read_shadow"]), world
    assert not Path("/usr/cs330-hostile-marker").exists()


READ_DATA = '''
import os

_mean_pool = mean_pool

def mean_pool(x):
    try:
        print("DATA " + open(os.path.join(os.environ["CS330_DATA"], "marker.txt")).read())
    except OSError as e:
        print("DATA unreadable", e)
    return _mean_pool(x)
'''


@pytest.mark.skipif(jail.available_mode() != "namespaces", reason="the namespaces mode needs root and Linux namespaces")
def test_read_only_paths_under_tmp_stay_visible(tmp_path, toyhw, monkeypatch):
    """The private /tmp must not hide what is bound inside it (a venv, a checkout or data under /tmp)."""
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    (data / "marker.txt").write_text("visible")
    os.chmod(data / "marker.txt", 0o644)
    monkeypatch.setenv("CS330_DATA", str(data))
    report = grader.grade(toyhw.root, submission(tmp_path, REFERENCE + READ_DATA))
    out = next(o for o in report.outcomes if o.id == "1b-0-basic").output
    assert "DATA visible" in out, out


def test_a_data_root_holding_the_graders_files_is_refused(tmp_path, toyhw, monkeypatch):
    """Binding the whole temp folder (where every job's tests and reference live) would show them
    to the student's process: a grader fault that says why, before any student code runs."""
    import tempfile

    monkeypatch.setenv("CS330_DATA", tempfile.gettempdir())
    report = grader.grade(toyhw.root, submission(tmp_path, REFERENCE))
    assert report.fault and "holds the grader's files" in report.fault and report.score == 0
