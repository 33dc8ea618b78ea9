"""Attacks on the trusted grader, written as a determined student would, with only the files a
student hands in (issue #15). Each submission is the toy reference with ``softmax`` replaced by
an attack that returns the right answer only if the attack got something it must not have
(a secret, a verdict, the reference, a host file, another submission's files, more time); so
each must lose exactly the softmax tests (or, where it attacks the grader's resources, earn what
its honest parts earn), every submission must get a valid results.json, and the host must be
left as it was.

The batch is graded in the strongest sandbox this machine allows; a smaller set of the attacks on
the verdict itself is graded again with the sandbox off (``process`` mode), where verdicts must
still be made outside the student's process.
"""

import json
import os
import stat
import zipfile
from pathlib import Path

import pytest

from cs330.grading.trusted import grader
from cs330.grading.worker import jail

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "toyhw"
REFERENCE = (FIXTURE / "toy.py").read_text()
IDS = ["1a-0-basic", "1a-1-hidden", "1a-2-hidden", "1b-0-basic", "1b-1-hidden", "1c-0-basic", "2a-0-basic"]
ALL_PASS = dict.fromkeys(IDS, "passed")
SOFTMAX_FAILS = {**ALL_PASS, "1a-0-basic": "failed", "1a-1-hidden": "failed", "1a-2-hidden": "failed"}
STARTER = {**dict.fromkeys(IDS, "failed"), "2a-0-basic": "passed"}  # no usable toy.py: graded as the starter
NOTHING = dict.fromkeys(IDS, "failed")
NODEIDS = ["tests/test_toy.py::test_softmax_shape_and_sum", "tests/test_toy.py::test_softmax_matches_reference",
           "tests/test_toy_hidden.py::test_softmax_batched_dims"]
MARK = "cs330-hostile-marker"  # files the attacks try to leave on the host

# Shared by the cheating attacks: the right answer, given only when an attack worked.
CHEAT = '''
def _right(x):
    import torch
    w = (x - x.max(dim=-1, keepdim=True).values).exp()
    return w / w.sum(dim=-1, keepdim=True)

def softmax(x):
    got = _attack()
    print("attack got:", got)
    return _right(x) if got else x * 0
'''

SECRETS = '''
import os, sys
from pathlib import Path

def _attack():
    """Look everywhere for the hidden tests, the reference, the course repository's history, or
    another submission: through /proc (cwd, root, other processes), .., the package's repository."""
    found = []
    me = os.path.realpath(__file__)
    roots = [Path("/proc/self/cwd/.."), Path("/proc/self/root"), Path("/proc/1/cwd"), Path("/proc/1/root/tmp"),
             Path.cwd().parent.parent, Path("/tmp"), Path("/dev/shm"), Path("/home"), Path("/var/tmp"), Path("/work"),
             Path("/root")]
    try:
        import cs330
        roots.append(Path(cs330.__file__).resolve().parents[1])
    except Exception:
        pass
    roots += [Path(f"/proc/{p}/cwd") for p in os.listdir("/proc") if p.isdigit()]
    roots += [Path(f"/proc/{p}/root/tmp") for p in os.listdir("/proc") if p.isdigit()]
    for env in ("CS330_REFERENCE", "CS330_SUBMISSION"):
        if os.environ.get(env):
            roots.append(Path(os.environ[env]))
    seen = 0
    for root in roots:
        for folder, dirs, files in os.walk(root):
            seen += 1
            if seen > 20000 or folder.count(os.sep) > 14 or "site-packages" in folder or "pytest-of-" in folder:
                dirs[:] = []
                continue
            if ".git" in dirs and os.path.isdir(os.path.join(folder, ".git", "objects")):
                found.append(os.path.join(folder, ".git"))
            for name in files:
                if name not in ("toy.py", "test_toy.py", "test_toy_hidden.py"):
                    continue
                path = os.path.join(folder, name)
                try:
                    if os.path.realpath(path) == me:
                        continue
                    text = open(path).read()
                except OSError:
                    continue
                if "BEGIN SOLUTION" in text or "HIDDEN" in text or "def softmax" in text and "_attack" not in text:
                    found.append(path)
    return found
'''

IN_MEMORY = '''
import gc, sys

def _attack():
    """The reference (or the tests) loaded in this process: in sys.modules or on the heap."""
    found = [n for n, m in list(sys.modules.items())
             if getattr(m, "softmax", None) is not None and m is not sys.modules[__name__]
             and "torch" not in n and "scipy" not in n and "numpy" not in n]
    for obj in gc.get_objects():
        filename = getattr(getattr(obj, "__code__", None), "co_filename", __file__)
        if callable(obj) and filename != __file__ and ("toy" in filename or "reference" in filename):
            found.append(filename)
    return found
'''

FORGE_REPORT = f'''
import json, os

def _attack():
    """Write 'passed' events for the softmax tests into every descriptor this process has or can
    reach (the report channel of the old design), and into other processes' descriptors."""
    events = [dict(event=e, nodeid=n, outcome="passed", message="", output="", duration=0.0)
              for n in {NODEIDS!r} for e in ("start", "end")]
    lines = b"".join((json.dumps(event) + "\\n").encode() for event in events)
    for fd in range(0, 256):
        try:
            os.write(fd, lines)
        except OSError:
            pass
    for pid in os.listdir("/proc"):
        try:
            for fd in os.listdir(f"/proc/{{pid}}/fd"):
                with open(f"/proc/{{pid}}/fd/{{fd}}", "wb") as f:
                    f.write(lines)
        except OSError:
            pass
    return []  # if the grader believed any of it, the softmax tests pass anyway
'''

FORGE_REPLY = '''
import inspect, io, os, struct

def _attack():
    """Find the worker's channel and session token on the stack, and send the grader a reply of our
    own for this request: a verdict instead of a result, then garbage."""
    frame = inspect.currentframe()
    while frame is not None and "request" not in frame.f_locals:
        frame = frame.f_back
    if frame is None:
        return []
    session, request, replies = frame.f_locals["self"], frame.f_locals["request"], frame.f_globals["REPLIES"]
    import torch
    buffer = io.BytesIO()
    reply = {"session": session.token, "seq": request.get("seq"), "ok": True,
             "value": {"verdict": "passed", "score": 8}}
    torch.save(reply, buffer)
    os.write(replies, b"C330" + struct.pack(">Q", len(buffer.getvalue())) + buffer.getvalue())
    os.write(replies, b"garbage that is not a frame" * 100)
    return []
'''

PATCH_COMPARISONS = '''
import builtins, torch

def _attack():
    """Make every comparison succeed, as if the checks ran in this process."""
    torch.allclose = lambda *a, **k: True
    torch.equal = lambda *a, **k: True
    torch.Tensor.__eq__ = lambda *a, **k: True
    torch.Tensor.__ne__ = lambda *a, **k: False
    builtins.abs = lambda x: 0.0
    return []
'''

LYING_TENSOR = '''
import torch

class Liar(torch.Tensor):
    """A tensor that claims to equal anything."""
    def __eq__(self, other):
        return True
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func in (torch.allclose, torch.equal):
            return True
        return super().__torch_function__(func, types, args, kwargs or {})

class Anything:
    """Not a tensor at all: whatever is asked of it, it answers what a check wants to hear."""
    shape = (4, 5)
    def __eq__(self, other):
        return True
    def sum(self, *a, **k):
        return torch.ones(4)

def _attack():
    return []

def softmax(x):
    return Anything() if tuple(x.shape) == (4, 5) else torch.zeros_like(x).as_subclass(Liar)
'''

HOST_FILES = '''
import os

def _attack():
    """Read host secrets, write kernel settings and system folders, become root again."""
    got = []
    for path in ("/etc/shadow", "/etc/gshadow", "/root/.bash_history"):
        try:
            got.append(open(path).read()[:10])
        except OSError:
            pass
    for path in ("/proc/sys/vm/overcommit_ratio", "/proc/sys/kernel/panic"):
        try:
            current = open(path).read()
            with open(path, "w") as f:  # the same value: nothing changes even when this succeeds
                f.write(current)
            got.append(path)
        except OSError:
            pass
    for path in ("/etc/MARK", "/usr/MARK", "/MARK", "/root/MARK", "/var/tmp/MARK"):
        try:
            with open(path.replace("MARK", "cs330-hostile-marker"), "w") as f:
                f.write("x")
            got.append(path)
        except OSError:
            pass
    try:
        os.setuid(0)
        got.append("setuid(0)")
    except OSError:
        pass
    return got
'''

PERSIST = '''
import os

ME = "{name}"

def _attack():
    """Leave a stash where another submission might find it, and look for one left by another."""
    got = []
    for folder in ("/dev/shm", "/tmp", "/var/tmp", os.path.expanduser("~")):
        path = os.path.join(folder, "cs330-hostile-marker")
        try:
            if open(path).read() != ME:
                got.append(path)
        except OSError:
            pass
        try:
            with open(path, "w") as f:
                f.write(ME)
        except OSError:
            pass
    return got
'''

DISK_BOMB = '''
import os

def _fill(folder, limit=1 << 30):
    written, chunk = 0, b"\\0" * (16 << 20)
    try:
        with open(os.path.join(folder, "cs330-hostile-marker-bomb"), "wb") as f:
            while written < limit:
                f.write(chunk)
                written += len(chunk)
    except OSError:
        pass
    return written

BOMBED = [_fill("."), _fill("/tmp"), _fill("/dev/shm")]  # at import, up to 1 GB each (the toy caps its space at 128 MB)
'''

WATCHDOG = '''
import os, time

def softmax(x):
    """Keep a 5 s test alive: a child in a session of its own holds the channel open and writes
    nothing; this process sleeps. Nothing it does may move the grader's deadline."""
    if os.fork() == 0:
        os.setsid()
        while True:
            time.sleep(0.2)
    while True:
        time.sleep(0.2)
'''

HUGE_REPLY = '''
import torch

def softmax(x):
    return torch.zeros(80_000_000)  # 320 MB: over the size cap on one reply
'''

PLANT_LINK = '''
import os

# No results file was handed in: plant one as a link to a file with the right numbers (a grader
# that reads results as root would follow it), or else write one.
os.makedirs("results", exist_ok=True)
try:
    os.symlink(PLANTED, "results/metrics.json")
except OSError:
    try:
        with open("results/metrics.json", "w") as f:
            f.write('{"pooled_sum": 2.0}')
    except OSError:
        pass
'''

FORK_BOMB = '''
import os

def softmax(x):
    children = 0
    try:
        for _ in range(100_000):
            if os.fork() == 0:
                import time
                time.sleep(30)
                os._exit(0)
            children += 1
    except OSError:
        pass
    return x * 0
'''

CASES = {
    # name: (toy.py source, expected statuses)
    "secrets": (REFERENCE + SECRETS + CHEAT, SOFTMAX_FAILS),
    "in_memory_reference": (REFERENCE + IN_MEMORY + CHEAT, SOFTMAX_FAILS),
    "forge_report": (REFERENCE + FORGE_REPORT + CHEAT, SOFTMAX_FAILS),
    "forge_reply": (REFERENCE + FORGE_REPLY + CHEAT, SOFTMAX_FAILS),
    "patch_comparisons": (REFERENCE + PATCH_COMPARISONS + CHEAT, SOFTMAX_FAILS),
    "lying_tensor": (REFERENCE + LYING_TENSOR, SOFTMAX_FAILS),
    "host_files": (REFERENCE + HOST_FILES + CHEAT, SOFTMAX_FAILS),
    "persist_a": (REFERENCE + PERSIST.replace("{name}", "a") + CHEAT, SOFTMAX_FAILS),
    "persist_b": (REFERENCE + PERSIST.replace("{name}", "b") + CHEAT, SOFTMAX_FAILS),
    "disk_bomb": (REFERENCE + DISK_BOMB, ALL_PASS),
    "watchdog": (REFERENCE + WATCHDOG, SOFTMAX_FAILS),
    "huge_reply": (REFERENCE + HUGE_REPLY, SOFTMAX_FAILS),
    "fork_bomb": (REFERENCE + FORK_BOMB, SOFTMAX_FAILS),
    "plant_link": (REFERENCE + PLANT_LINK, {**ALL_PASS, "2a-0-basic": "failed"}),
}
NO_RESULTS = {"plant_link"}  # handed in without results/metrics.json
# forge_report is left out: a worker running as root in `process` mode (only forced here, for the
# test; a root grader uses `setuid` mode) could write into any process's descriptors.
VERDICT_CASES = ["in_memory_reference", "forge_reply", "patch_comparisons", "lying_tensor", "huge_reply", "plant_link"]
PRIVATE_ROOT = jail.available_mode() in ("namespaces", "user-namespace")
if not PRIVATE_ROOT:  # these write to the real /tmp and /dev/shm when there is no private root
    for name in ("disk_bomb", "persist_a", "persist_b", "host_files"):
        del CASES[name]
SUBMISSION_CASES = {  # attacks through the submission's files themselves
    "symlink_file": STARTER, "symlink_submission": NOTHING, "zip_symlink": STARTER, "zip_bomb": ALL_PASS,
    "zip_odd_entries": STARTER,
}


def make_submissions(folder: Path, cases) -> None:
    planted = folder / "planted.json"  # what the plant_link attack points its link at
    planted.write_text('{"pooled_sum": 2.0}')
    for name in cases:
        sub = folder / name
        sub.mkdir(parents=True)
        (sub / "toy.py").write_text(CASES[name][0].replace("PLANTED", repr(str(planted))))
        if name not in NO_RESULTS:
            (sub / "results").mkdir()
            (sub / "results" / "metrics.json").write_text('{"pooled_sum": 2.0}')


def make_file_attacks(folder: Path) -> None:
    # a folder whose toy.py is a link to the reference, and a submission that is itself a link to it
    (folder / "symlink_file" / "results").mkdir(parents=True)
    (folder / "symlink_file" / "results" / "metrics.json").write_text('{"pooled_sum": 2.0}')
    (folder / "symlink_file" / "toy.py").symlink_to(FIXTURE / "toy.py")
    (folder / "symlink_submission").symlink_to(FIXTURE, target_is_directory=True)
    # a zip whose toy.py is a symbolic link to the reference
    with zipfile.ZipFile(folder / "zip_symlink.zip", "w") as zf:
        link = zipfile.ZipInfo("toy.py")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, str(FIXTURE / "toy.py"))
        zf.writestr("results/metrics.json", '{"pooled_sum": 2.0}')
    # a zip bomb: one entry of 600 MB of zeros (a few hundred KB compressed), then 2500 tiny files
    with zipfile.ZipFile(folder / "zip_bomb.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("toy.py", REFERENCE)
        zf.writestr("results/metrics.json", '{"pooled_sum": 2.0}')
        with zf.open("results/bomb.bin", "w", force_zip64=True) as f:
            zeros = b"\0" * (1 << 20)
            for _ in range(600):
                f.write(zeros)
        for i in range(2500):
            zf.writestr(f"junk/{i}.txt", "x")
    # odd entries: absolute, climbing, backslashes, control characters, toy.py as a folder
    with zipfile.ZipFile(folder / "zip_odd_entries.zip", "w") as zf:
        for name in [
            "/tmp/cs330-hostile-marker-abs.py",
            "../../cs330-hostile-marker.py",
            "a/../../cs330-hostile-marker.py",
            "..\\..\\cs330-hostile-marker.py",
            "evil\x01name.py",
            "C:/cs330-hostile-marker.py",
        ]:
            zf.writestr(name, "print('escaped')")
        zf.writestr("toy.py/inner.py", REFERENCE)
        zf.writestr("results/metrics.json", '{"pooled_sum": 2.0}')


def _uids_alive() -> list[int]:
    """Sandbox users that still have a live (not zombie) process, after a few seconds' grace."""
    import time

    for _ in range(20):
        uids = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                uid, state = (
                    os.stat(f"/proc/{pid}").st_uid,
                    Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0],
                )
            except (OSError, IndexError):
                continue
            if 61000 <= uid < 65000 and state != "Z":
                uids.append(uid)
        if not uids:
            return []
        time.sleep(0.5)
    return uids


def _markers() -> list[str]:
    places = [Path("/dev/shm"), Path("/tmp"), Path("/var/tmp"), Path("/etc"), Path("/usr"), Path("/"), Path("/root")]
    return [str(p) for d in places if d.is_dir() for p in d.glob("cs330-hostile-marker*")]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    from cs330.grading.authoring import homework

    assert not _markers(), f"leftovers from an earlier run: {_markers()}"
    hw = homework.load(FIXTURE)
    folder = tmp_path_factory.mktemp("hostile")
    make_submissions(folder, CASES)
    make_file_attacks(folder)
    out = tmp_path_factory.mktemp("hostile-grades")
    gradebook = grader.grade_batch(hw.root, folder, out, jobs=2, log=lambda *_: None)
    return folder, out, gradebook


def results_of(out: Path, name: str) -> dict:
    data = json.loads((out / name / "results.json").read_text())
    grader.validate(data)
    return data


def statuses(data: dict) -> dict:
    return {t["number"]: t["status"] for t in data["tests"]}


@pytest.mark.parametrize("case", sorted(CASES) + sorted(SUBMISSION_CASES))
def test_attack_scores_only_what_it_earns(hostile, case):
    _, out, _ = hostile
    data = results_of(out, case)
    expected = CASES[case][1] if case in CASES else SUBMISSION_CASES[case]
    assert statuses(data) == expected, f"{case}: " + json.dumps(
        {t["number"]: t["output"][:400] for t in data["tests"]}, indent=1
    )
    if PRIVATE_ROOT and case in ("secrets", "host_files", "persist_a", "persist_b"):
        assert "attack got: []" in data["tests"][0]["output"], data["tests"][0]["output"][:2000]


def test_the_host_is_left_as_it_was(hostile):
    folder, _, _ = hostile
    assert not _markers(), "an attack left files on the host"
    assert not _uids_alive(), "a sandboxed process outlived its submission"
    assert not list(folder.parent.rglob("escaped*")) and not (folder / "cs330-hostile-marker.py").exists()
    assert (FIXTURE / "toy.py").read_text() == REFERENCE


def test_attacks_get_clear_messages(hostile):
    _, out, gradebook = hostile
    first = {name: results_of(out, name)["tests"][0]["output"] for name in [*CASES, *SUBMISSION_CASES]}
    assert "must return a torch.Tensor" in first["forge_reply"] or "not a result" in first["forge_reply"]
    assert "not a tensor" in first["lying_tensor"] or "must return a torch.Tensor" in first["lying_tensor"]
    assert "Timed out" in first["watchdog"] and "5 s" in first["watchdog"]
    assert "not a result" in first["huge_reply"] and "too large" in first["huge_reply"]
    summary = {name: results_of(out, name)["output"] for name in SUBMISSION_CASES}
    assert "toy.py: a symbolic link, left out" in summary["symlink_file"]
    assert "is a symbolic link: submissions are never followed through links" in summary["symlink_submission"]
    assert "toy.py: a symbolic link, left out" in summary["zip_symlink"]
    assert (
        "results/bomb.bin: over 256 MB, left out" in summary["zip_bomb"]
        and "more than 2000 files" in summary["zip_bomb"]
    )
    assert "toy.py is a folder; a file was expected" in summary["zip_odd_entries"]
    assert summary["zip_odd_entries"].count("not a plain relative path") == 6
    rows = {r.split(",")[0]: r.split(",") for r in gradebook.read_text().splitlines()[1:]}
    assert all(row[3] != "fault" for row in rows.values()), "no attack may turn into a grader fault"


def test_watchdog_cannot_extend_the_deadline(hostile):
    """The keep-alive test (5 s + 3 s grace in the toy homework) is stopped on the grader's clock."""
    _, out, _ = hostile
    assert results_of(out, "watchdog")["execution_time"] < 60


@pytest.mark.parametrize("case", VERDICT_CASES)
def test_verdicts_stay_outside_without_a_sandbox(tmp_path, monkeypatch, case):
    """With no namespaces and no other user (``process`` mode), the grader still judges from data."""
    from cs330.grading.authoring import homework

    monkeypatch.setenv("CS330_SANDBOX", "process")
    jail.available_mode.cache_clear()
    try:
        make_submissions(tmp_path, [case])
        report = grader.grade(homework.load(FIXTURE).root, tmp_path / case)
    finally:
        jail.available_mode.cache_clear()
    assert "separate process only" in report.sandbox
    assert {o.id: ("passed" if o.status == "passed" else "failed") for o in report.outcomes} == CASES[case][1]


def test_total_time_budget_is_the_graders(tmp_path):
    """A submission's total time (``total_timeout``) is enforced whatever its tests' own limits: once
    it is spent, every test still to run fails at once, and the grader writes its results."""
    import shutil
    import time

    from cs330.grading.authoring import homework

    hw_dir = tmp_path / "toyhw"
    shutil.copytree(FIXTURE, hw_dir)
    toml = hw_dir / "homework.toml"
    # 20 s: the worker's start (Python, torch, the jail: 5-8 s on a loaded 2-core machine) leaves room for
    # 1a-0 to reach its own 5 s limit before the budget runs out
    toml.write_text(toml.read_text().replace("timeout = 5\n", "timeout = 5\ntotal_timeout = 20\n"))
    sub = tmp_path / "loops"
    sub.mkdir()
    (sub / "toy.py").write_text(
        REFERENCE.replace(
            '    """Mean over the sequence dimension', '    while True:\n        pass\n    """Mean', 1
        ).replace('    """Softmax over the last dimension', '    while True:\n        pass\n    """Softmax', 1)
    )
    start = time.monotonic()
    report = grader.grade(homework.load(hw_dir).root, sub)
    took = time.monotonic() - start
    status = {o.id: o.status for o in report.outcomes}
    assert not report.fault and report.score == 0, report.table()
    assert status["1a-0-basic"] == "timeout" and "(5 s)" in report.outcomes[0].message
    assert status["1c-0-basic"] == "timeout", "scale is correct, but its test comes after the budget ran out"
    late = [o for o in report.outcomes if "total time budget" in o.message]
    assert late, "the tests after the budget ran out say so:\n" + report.table()
    assert took < 20 + 3 + 25, f"the budget was 20 s (+3 s grace); grading took {took:.0f} s"
