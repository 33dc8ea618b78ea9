"""The autograder: full marks for the reference, zero for the stub, and a corpus of broken and
hostile submissions that must each score what they earn while the grader keeps going."""

import json
import os
import shutil
import zipfile
from pathlib import Path

import pytest

from cs330.cli import main as cli
from cs330.grading.authoring import submit
from cs330.grading.trusted import grader
from cs330.grading.worker import jail

IDS = ["1a-0-basic", "1a-1-hidden", "1a-2-hidden", "1b-0-basic", "1b-1-hidden", "1c-0-basic", "2a-0-basic"]
ALL_PASS = dict.fromkeys(IDS, "passed")
SOFTMAX_FAILS = {**ALL_PASS, "1a-0-basic": "failed", "1a-1-hidden": "failed", "1a-2-hidden": "failed"}


def statuses(report) -> dict[str, str]:
    return {o.id: o.status for o in report.outcomes}


def test_reference_scores_full_marks_and_results_are_valid(tmp_path, toyhw):
    results = tmp_path / "results.json"
    assert cli(["grade", str(toyhw.root), str(toyhw.root), "--results", str(results)]) == 0
    data = json.loads(results.read_text())
    grader.validate(data)
    assert data["score"] == 8 and data["extra_data"]["max_score"] == 8
    assert [t["number"] for t in data["tests"]] == IDS
    assert {t["visibility"] for t in data["tests"] if t["number"].endswith("hidden")} == {"after_due_date"}
    assert isinstance(data["execution_time"], float)


def test_student_release_scores_zero(toy_release, toyhw):
    report = grader.grade(toyhw.root, toy_release["student"])
    assert report.score == 0 and report.max_score == 8
    assert set(statuses(report).values()) == {"failed"}
    assert report.missing == ["results/metrics.json"]
    assert "NotImplementedError" in report.outcomes[0].message


def test_bundle_grades_like_the_repo(tmp_path, toy_release, toyhw):
    """The Gradescope bundle's run_autograder path (`cs330 grade <bundle>`) gives the same result."""
    with zipfile.ZipFile(toy_release["autograder_zip"]) as zf:
        zf.extractall(tmp_path / "autograder")
    bundle = tmp_path / "autograder" / "homework"
    assert grader.is_bundle(bundle)
    report = grader.grade(bundle, toyhw.root)
    assert report.score == report.max_score == 8


def test_a_submission_larger_than_the_disk_limit_is_graded(tmp_path, toyhw):
    """``disk_mb`` caps what the student's code writes, not the files it hands in: a submission
    bigger than the cap is graded (full marks here), not reported as a grader fault."""
    hw = tmp_path / "toyhw"
    shutil.copytree(toyhw.root, hw)
    config = hw / "homework.toml"
    config.write_text(config.read_text().replace("disk_mb = 128", "disk_mb = 1"))
    sub = tmp_path / "sub"
    (sub / "results").mkdir(parents=True)
    shutil.copy(toyhw.root / "results" / "metrics.json", sub / "results" / "metrics.json")
    (sub / "toy.py").write_text((toyhw.root / "toy.py").read_text() + "\n" + ("# padding " * 100 + "\n") * 3000)  # 3 MB
    report = grader.grade(hw, sub)
    assert not report.fault, report.fault
    assert report.score == report.max_score == 8, report.table()


def test_preloaded_libraries_are_imported_before_any_test(tmp_path, toyhw):
    """``[grading] preload`` modules are imported by the worker before the submission's code runs
    (every test's process starts with them); a name that does not import is the course's fault."""
    hw = tmp_path / "toyhw"
    shutil.copytree(toyhw.root, hw)
    config = hw / "homework.toml"
    sub = tmp_path / "sub"
    shutil.copytree(toyhw.root, sub, ignore=shutil.ignore_patterns("tests", "homework.toml", "README.md"))
    (sub / "toy.py").write_text(
        "import sys\nprint('PRELOADED' if 'colorsys' in sys.modules else 'COLD')\n"
        + (toyhw.root / "toy.py").read_text()
    )
    config.write_text(config.read_text() + 'preload = ["colorsys"]\n')
    report = grader.grade(hw, sub)
    assert report.score == report.max_score == 8, report.table()
    outputs = "".join(o.output for o in report.outcomes)
    assert "PRELOADED" in outputs and "COLD" not in outputs, outputs[:500]
    config.write_text(config.read_text().replace('"colorsys"', '"no_such_library_cs330"'))
    report = grader.grade(hw, sub)
    assert report.fault and "no_such_library_cs330" in report.fault, report.fault


def test_student_view_of_hidden_tests(toy_release, tmp_path):
    """In the student copy, a hidden test still calls student code but is reported as skipped."""
    import subprocess
    import sys

    student = tmp_path / "toyhw"
    shutil.copytree(toy_release["student"], student)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "tests", "-q", "-rs", "--cs330-id", "1a-1-hidden"],
        cwd=student,
        capture_output=True,
        text=True,
    )
    assert "NotImplementedError" in proc.stdout, "the hidden test must still call the student's code"



def test_students_cannot_read_after_due_date_outcomes_before_the_due_date():
    """No early oracle: what a student sees before the due date (the top-level output, score line and the
    visible tests) is the same whether an after-due-date test passed or failed."""
    from cs330.grading.trusted.runner import Outcome

    def seen_before_due_date(hidden_status: str) -> dict:
        outcomes = [Outcome("t::a", "1a-0-basic", 2, "visible", False, "a", None, status="passed"),
                    Outcome("t::b", "1a-1-hidden", 3, "after_due_date", True, "b", None, status=hidden_status)]
        data = grader.Report("s", outcomes, sandbox="namespaces").to_gradescope()
        return {"output": data["output"], "tests": [t for t in data["tests"] if t["visibility"] == "visible"]}

    passed, failed = seen_before_due_date("passed"), seen_before_due_date("failed")
    assert passed == failed, (passed, failed)
    assert "Visible tests: 2 / 2" in passed["output"] and "3 points" in passed["output"]
    only_visible = grader.Report("s", [Outcome("t::a", "1a-0-basic", 2, "visible", False, "a", None, "passed")])
    assert only_visible.to_gradescope()["output"].startswith("Score: 2 / 2")


def test_graded_inputs_are_drawn_from_the_course_key_and_the_submission(tmp_path, toyhw, monkeypatch):
    """api.drawn_seed's secret: the same for a regrade, new for any changed file or another course key, and
    a bundle without a key is a grader fault, not a grade. The key file is made once, 0600."""
    from cs330.grading import api
    from cs330.grading.authoring import release
    from cs330.grading.trusted.runner import GraderFault

    bundle, work = tmp_path / "bundle", tmp_path / "work"
    (bundle).mkdir()
    (bundle / "grading.key").write_text("ab" * 32)
    (work / "sub").mkdir(parents=True)
    (work / "toy.py").write_text("x = 1\n")
    secret = grader.grading_secret(bundle, work)
    assert grader.grading_secret(bundle, work) == secret, "a regrade must draw the same inputs"
    (work / "sub" / "notes.txt").write_text("")
    assert grader.grading_secret(bundle, work) != secret, "a new file changes the draw"
    (work / "sub" / "notes.txt").unlink()
    (bundle / "grading.key").write_text("cd" * 32)
    assert grader.grading_secret(bundle, work) != secret, "another course key changes the draw"
    (bundle / "grading.key").unlink()
    with pytest.raises(GraderFault, match="grading.key"):
        grader.grading_secret(bundle, work)

    (tmp_path / "secret").write_text(secret)
    monkeypatch.setenv(api.ENV_SECRET, str(tmp_path / "secret"))
    drawn = api.drawn_seed("5a-0 ratings")
    assert 0 <= drawn < 2**63 and drawn != api.drawn_seed("5a-1 ratings")
    monkeypatch.delenv(api.ENV_SECRET)
    assert api.drawn_seed("5a-0 ratings") != drawn, "a student's own run must not draw the grader's inputs"

    monkeypatch.delenv(release.ENV_GRADING_KEY)
    course = tmp_path / "course"
    shutil.copytree(toyhw.root, course / "toyhw")
    from cs330.grading.authoring import homework

    hw = homework.load(course / "toyhw")
    key = release.course_key(hw)
    assert len(key) == 64 and release.course_key(hw) == key
    assert (course / release.KEY_FILE).stat().st_mode & 0o777 == 0o600

# --- broken and hostile submissions -------------------------------------------------------------

REFERENCE = (Path(__file__).resolve().parents[1] / "fixtures" / "toyhw" / "toy.py").read_text()

SNOOP = '''
import os, sys
from pathlib import Path

def _snoop():
    """Look everywhere a student could for the hidden tests or the reference solution."""
    me = sys.modules[__name__]
    found = [name for name, mod in list(sys.modules.items())
             if hasattr(mod, "softmax") and mod is not me and "torch" not in name and "triton" not in name]
    # where the grader's secrets live: its temp folders, the homework sources, the reference
    import cs330
    roots = [p for p in Path("/tmp").iterdir() if p.name.startswith("cs330-")]
    roots += [Path.cwd().parent, Path(os.environ.get("CS330_REFERENCE", "/nonexistent"))]
    roots += [Path(p) for p in sys.path if p and "site-packages" not in p and "python3" not in p]
    roots.append(Path(cs330.__file__).resolve().parents[1] / "tests" / "fixtures")
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            roots.append(Path(f"/proc/{pid}/cwd"))
    for root in roots:
        try:
            for dirpath, dirnames, filenames in os.walk(root):
                # pytest-of-*: this test session's own unrelated folders, which no grader knows of
                if dirpath.count(os.sep) > 12 or "site-packages" in dirpath or "pytest-of-" in dirpath:
                    dirnames[:] = []
                for name in filenames:
                    if name in ("test_toy_hidden.py", "test_toy.py", "toy.py"):
                        path = os.path.join(dirpath, name)
                        if os.path.realpath(path) == os.path.realpath(__file__):
                            continue
                        try:
                            text = open(path).read()
                        except OSError:
                            continue
                        if "BEGIN HIDDEN" in text or "BEGIN SOLUTION" in text or "HIDDEN FILE" in text:
                            found.append(path)
        except OSError:
            pass
    return found

def softmax(x):
    found = _snoop()
    print("found:", found)
    if found:  # cheating worked: return the right answer
        w = (x - x.max(dim=-1, keepdim=True).values).exp()
        return w / w.sum(dim=-1, keepdim=True)
    return x * 0
'''

TAMPER = '''
import os, signal
from pathlib import Path
import cs330
for target in [Path(cs330.__file__).resolve().parents[1] / "TAMPERED", Path("/tmp/cs330-TAMPERED")]:
    try:
        target.write_text("written by a submission")
    except OSError:
        pass
import time
# the nearest folders first, then all of /tmp; bounded by a deadline checked at every folder, since a
# walk of a busy /tmp can go seconds without a match and outlast the test timeout
deadline, hits = time.monotonic() + 2.0, 0
for root in [Path.cwd(), *Path.cwd().parents[:3], Path("/tmp")]:
    for folder, _, files in os.walk(root):
        if time.monotonic() > deadline or hits >= 100:
            break
        for name in files:
            path = Path(folder) / name
            if not (name == "results.json" or name.startswith("test_toy") and name.endswith(".py")):
                continue
            if "pytest-of-" in str(path):  # this test session's own folders, which no grader knows of
                continue
            hits += 1
            try:
                path.write_text("tampered")
            except OSError:
                pass
for pid in [os.getppid(), *map(int, filter(str.isdigit, os.listdir("/proc")))]:
    try:
        if pid > 1 and pid != os.getpid():  # any other process it can see (the grader, in basic mode)
            os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
'''

CASES = {
    # name: (toy.py source or None, include metrics artifact, expected statuses)
    "syntax_error": (
        "def softmax(x):\n    return x +\n",
        True,
        {**dict.fromkeys(IDS, "failed"), "2a-0-basic": "passed"},
    ),
    "exit_at_import": (
        REFERENCE + "\nimport sys\nsys.exit(3)\n",
        True,
        {**dict.fromkeys(IDS, "failed"), "2a-0-basic": "passed"},
    ),
    "missing_code": (None, True, {**dict.fromkeys(IDS, "failed"), "2a-0-basic": "passed"}),
    "infinite_loop": (REFERENCE + "\ndef softmax(x):\n    while True:\n        pass\n", True, SOFTMAX_FAILS),
    "ignores_alarm": (
        REFERENCE + "\nimport signal\ndef softmax(x):\n    signal.signal(signal.SIGALRM, signal.SIG_IGN)\n"
        "    signal.setitimer(signal.ITIMER_REAL, 0)\n    while True:\n        pass\n",
        True,
        SOFTMAX_FAILS,
    ),
    "os_exit": (REFERENCE + "\nimport os\ndef softmax(x):\n    os._exit(0)\n", True, SOFTMAX_FAILS),
    "segfault": (REFERENCE + "\nimport ctypes\ndef softmax(x):\n    ctypes.string_at(0)\n", True, SOFTMAX_FAILS),
    "memory_bomb": (
        REFERENCE + "\ndef softmax(x):\n    hog = bytearray(64 << 30)\n    return hog\n",
        True,
        SOFTMAX_FAILS,
    ),
    "huge_output": (
        REFERENCE + "\n_mean_pool = mean_pool\ndef mean_pool(x):\n    for _ in range(20):\n"
        "        print('spam' * 2_500_000)\n    return _mean_pool(x)\n",
        True,
        ALL_PASS,
    ),
    "snoop": (REFERENCE + SNOOP, True, SOFTMAX_FAILS),
    # legitimate run-time writes: temp files and library caches land in the test's own temp folder
    "writes_caches": (
        REFERENCE + "\n_mean_pool = mean_pool\ndef mean_pool(x):\n    import tempfile\n"
        "    from torch._inductor.runtime.cache_dir_utils import cache_dir\n"
        "    with tempfile.NamedTemporaryFile() as f:\n        f.write(b'x')\n"
        "    open(cache_dir() + '/probe', 'w').write('x')\n    return _mean_pool(x)\n",
        True,
        ALL_PASS,
    ),
    "tamper": (REFERENCE + TAMPER, True, ALL_PASS),
}


def make_submissions(folder: Path) -> None:
    for name, (source, with_metrics, _) in CASES.items():
        sub = folder / name
        sub.mkdir(parents=True)
        if source is not None:
            (sub / "toy.py").write_text(source)
        if with_metrics:
            (sub / "results").mkdir()
            (sub / "results" / "metrics.json").write_text('{"pooled_sum": 2.0}')
    # a zip that tries to write outside its folder, and one that is not a zip at all
    with zipfile.ZipFile(folder / "zip_slip.zip", "w") as zf:
        zf.writestr("toy.py", REFERENCE)
        zf.writestr("results/metrics.json", '{"pooled_sum": 2.0}')
        zf.writestr("../../escaped.py", "print('escaped')")
    (folder / "not_a_zip.zip").write_text("this is not a zip")


@pytest.fixture(scope="module")
def hostile_batch(tmp_path_factory):
    from cs330.grading.authoring import homework

    hw = homework.load(Path(__file__).resolve().parents[1] / "fixtures" / "toyhw")
    folder = tmp_path_factory.mktemp("submissions")
    make_submissions(folder)
    out = tmp_path_factory.mktemp("grades")
    # as left behind by torch in the grader's own process: the child must not write there
    saved = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = "/tmp/torchinductor_grader"
    try:
        gradebook = grader.grade_batch(hw.root, folder, out, jobs=2, log=lambda *_: None)
    finally:
        os.environ.pop("TORCHINDUCTOR_CACHE_DIR") if saved is None else os.environ.update(TORCHINDUCTOR_CACHE_DIR=saved)
    return folder, out, gradebook


def private_root() -> bool:
    """Whether the worker gets a private root file system on this machine."""
    return jail.available_mode() in ("namespaces", "user-namespace")


def results_of(out: Path, name: str) -> dict:
    data = json.loads((out / name / "results.json").read_text())
    grader.validate(data)
    return data


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_submission_scores_what_it_earns(hostile_batch, case):
    if case in ("snoop", "tamper") and not private_root():
        pytest.skip(
            "a private root file system for the worker needs Linux namespaces (modes setuid/process only limit it)"
        )
    _, out, _ = hostile_batch
    data = results_of(out, case)
    got = {t["number"]: t["status"] for t in data["tests"]}
    expected = {i: ("passed" if s == "passed" else "failed") for i, s in CASES[case][2].items()}
    assert got == expected, f"{case}: " + json.dumps({t["number"]: t["output"][:300] for t in data["tests"]}, indent=1)
    for test in data["tests"]:
        assert len(test["output"]) < 60_000, "captured output must be clipped"


def test_hostile_messages_explain(hostile_batch):
    _, out, _ = hostile_batch
    first = {name: results_of(out, name)["tests"][0]["output"] for name in CASES}
    assert "Could not import your toy.py" in first["syntax_error"] and "SyntaxError" in first["syntax_error"]
    assert "Could not import your toy.py" in first["exit_at_import"]
    assert "NotImplementedError" in first["missing_code"], "a file left out is graded as the starter code"
    assert "Missing from your submission: toy.py" in results_of(out, "missing_code")["output"]
    assert "Timeout" in first["infinite_loop"] or "Timed out" in first["infinite_loop"]
    assert "Timed out" in first["ignores_alarm"]
    assert "your code's process died (exit code 0)" in first["os_exit"]
    assert "segmentation fault" in first["segfault"]
    assert "MemoryError" in first["memory_bomb"]
    assert "characters cut" in results_of(out, "huge_output")["tests"][3]["output"]


def test_batch_gradebook_and_bad_entries(hostile_batch):
    folder, out, gradebook = hostile_batch
    rows = {r.split(",")[0]: r.split(",") for r in gradebook.read_text().splitlines()[1:]}
    assert set(rows) == set(CASES) | {"zip_slip", "not_a_zip"}
    assert rows["tamper"][1] == "8" and rows["syntax_error"][1] == "1"
    assert rows["zip_slip"][1] == "8", "a zip's safe entries are graded, its escaping entry ignored"
    assert not (folder.parent / "escaped.py").exists() and not (folder / "escaped.py").exists()
    assert rows["not_a_zip"][3] == "missing files" and rows["not_a_zip"][1] == "0", "graded as if nothing was handed in"
    assert "neither a folder nor a zip" in results_of(out, "not_a_zip")["output"]
    # the tampering submission could not touch other results, the tests, or files outside its workspace
    assert results_of(out, "syntax_error")["score"] == 1
    if private_root():
        import cs330

        assert not (Path(cs330.__file__).resolve().parents[1] / "TAMPERED").exists()
        assert not Path("/tmp/cs330-TAMPERED").exists()


def test_grade_cli_exit_codes(tmp_path, toyhw):
    assert cli(["grade", str(toyhw.root), str(tmp_path / "nope")]) == 2
    with pytest.raises(SystemExit):
        cli(["grade", "no-such-homework", str(tmp_path)])


def test_submit_checks_and_zips(tmp_path, toy_release, monkeypatch):
    student = tmp_path / "toyhw"
    shutil.copytree(toy_release["student"], student)
    from cs330.grading.authoring import homework

    hw = homework.load(student)
    result, out = submit.submit(hw, tmp_path / "s.zip")
    assert out is None and any("results/metrics.json" in e for e in result.errors)
    assert any("NotImplementedError" in w for w in result.warnings)
    shutil.copy(toy_release["student"].parents[1] / "student" / "toyhw" / "toy.py", student / "toy.py")
    (student / "toy.py").write_text(REFERENCE)
    (student / "results").mkdir()
    (student / "results" / "metrics.json").write_text('{"pooled_sum": 2.0}')
    monkeypatch.chdir(tmp_path)
    assert cli(["submit", str(student), "--out", str(tmp_path / "s.zip")]) == 0
    with zipfile.ZipFile(tmp_path / "s.zip") as zf:
        assert sorted(zf.namelist()) == ["results/metrics.json", "toy.py"]
    report = grader.grade(Path(__file__).resolve().parents[1] / "fixtures" / "toyhw", tmp_path / "s.zip")
    assert report.score == report.max_score == 8
    (student / "toy.py").write_text("import nonexistent_module\n")
    result, out = submit.submit(hw, tmp_path / "t.zip")
    assert out is None and any("does not import" in e and "nonexistent_module" in e for e in result.errors)
