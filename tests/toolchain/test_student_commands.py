"""Student commands act on the student's own folder, even with the course repository installed.

The scenario of issue #19: release hw0, go into the student folder, and run `cs330 submit hw0` and
`cs330 test hw0` by name. The name must resolve to the student's folder (at or above the current
directory), never to the repository's reference copy of the same homework.
"""

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from cs330.data.root import repo_root
from cs330.grading.authoring import homework, markers, release

REPO = Path(__file__).resolve().parents[2]


def cs330(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "cs330.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def hw0_release(tmp_path_factory):
    assert repo_root() == REPO, "these tests need cs330 installed from this repository (pip install -e .)"
    out = tmp_path_factory.mktemp("hw0-release")
    return release.release(homework.load(REPO / "hw0_multitask"), out)


def test_submit_by_name_zips_the_students_files(hw0_release, tmp_path):
    student = hw0_release["student"]
    proc = cs330("submit", "hw0", "--out", str(tmp_path / "sub.zip"), "--force", cwd=student)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == f"cs330 submit: {student.resolve()}", (
        "the first line names the folder acted on"
    )
    with zipfile.ZipFile(tmp_path / "sub.zip") as zf:
        names = zf.namelist()
        model = zf.read("model.py")
    assert names == ["model.py"], f"only the student's own files (no results yet), got {names}"
    assert model == (student / "model.py").read_bytes(), "the zip must hold the student's model.py"
    assert model != (REPO / "hw0_multitask" / "model.py").read_bytes()
    # hw0's stubs are `x = None  # TODO` placeholders as well as TODO raises: the warning counts them all
    stubs = markers.count_stubs((student / "model.py").read_text())
    assert stubs > 0 and f"model.py: {stubs} part(s) still a stub" in proc.stdout


def test_test_by_name_runs_the_students_copy(hw0_release):
    student = hw0_release["student"]
    proc = cs330("test", "hw0", "3a-0-basic", cwd=student / "tests")  # from a subfolder too
    assert proc.stdout.splitlines()[0] == f"cs330 test: {student.resolve()}"
    assert proc.returncode != 0 and "1 failed" in proc.stdout, (
        "the starter's bpr_loss is a stub: the test must fail\n" + proc.stdout
    )
    assert str(student / "tests" / "test_model.py") in proc.stdout or "tests/test_model.py" in proc.stdout


def test_a_name_matching_two_folders_is_refused(hw0_release):
    """From the release's parent folder, `hw0` names both the student's folder and the repository's."""
    proc = cs330("submit", "hw0", cwd=hw0_release["student"].parent)
    assert proc.returncode != 0
    assert "matches more than one homework folder" in proc.stderr
    assert str(hw0_release["student"].resolve()) in proc.stderr and str(REPO / "hw0_multitask") in proc.stderr
    assert not list(hw0_release["student"].parent.glob("*.zip")), "nothing is written when the name is ambiguous"


def test_enclosing_and_find(tmp_path, monkeypatch, toyhw):
    import shutil

    copy = tmp_path / "mine" / "toyhw"
    shutil.copytree(toyhw.root, copy)
    monkeypatch.chdir(copy / "tests")
    assert homework.enclosing().root == copy.resolve()
    assert homework.find("toyhw").root == copy.resolve()
    monkeypatch.chdir(tmp_path)
    assert homework.enclosing() is None
    with pytest.raises(homework.HomeworkError, match="no homework called 'toyhw'"):
        homework.find("toyhw")  # the fixture lives under tests/, not at the repository's top level


def test_students_get_the_package_without_the_repository(tmp_path, toy_release):
    """The student zip holds the homework and a wheel of the cs330 package (no homework, no tests):
    installed in an environment of its own, the public tests run against the student's code."""
    with zipfile.ZipFile(toy_release["student_zip"]) as zf:
        zf.extractall(tmp_path / "download")
    (wheel,) = (tmp_path / "download").glob("cs330-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    print("the student wheel holds:", *names, sep="\n  ")
    assert names and all(n.startswith(("cs330/", "cs330-")) for n in names), [
        n for n in names if not n.startswith("cs330")
    ]
    course_only = [n for n in names if n.startswith(tuple(f"cs330/{part}" for part in release.COURSE_ONLY))]
    assert not course_only, f"grading-side and instructor code must not ship to students: {course_only}"
    for needed in [
        "cs330/grading/api.py",
        "cs330/grading/plugin.py",
        "cs330/grading/authoring/submit.py",
        "cs330/data/omniglot.py",
        "cs330/training/loop.py",
        "cs330/models/conv4.py",
        "cs330/runtime.py",
    ]:
        assert needed in names, f"students need {needed}"
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True)
    # torch and pytest come from the running environment (a venv or the base interpreter, wherever the README's
    # commands ran), named in a .pth file after the wheel is in: a folder a .pth names is put on sys.path after
    # the venv's own site-packages, and its own .pth files (the repository's editable install) are not processed.
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    outer = dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))
    (Path(site) / "_running_environment.pth").write_text("".join(f"{path}\n" for path in outer))
    folder = tmp_path / "download" / "toyhw"
    where = subprocess.run(
        [str(python), "-c", "import cs330, cs330.data.root as r; print(cs330.__file__); print(r.repo_root())"],
        cwd=folder,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert where[0].startswith(str(venv)) and where[1] == "None", (
        f"cs330 must come from the wheel, not a repository: {where}"
    )
    proc = subprocess.run(
        [str(python), "-m", "pytest", "tests", "-q"], cwd=folder, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 1 and "NotImplementedError" in proc.stdout, proc.stdout[-3000:]
    assert "6 failed" in proc.stdout, (
        "every part of the starter is a stub, and it has no results yet\n" + proc.stdout[-3000:]
    )
    proc = subprocess.run(
        [str(python), "-m", "cs330.cli", "submit", "toyhw", "--force", "--out", str(tmp_path / "sub.zip")],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0 and (tmp_path / "sub.zip").is_file(), proc.stdout + proc.stderr
    assert "toy.py" in proc.stdout and "missing: results/metrics.json" in proc.stderr, proc.stdout + proc.stderr
    helped = subprocess.run(
        [str(python), "-m", "cs330.cli", "--help"], cwd=folder, capture_output=True, text=True, check=True
    ).stdout
    assert "submit" in helped and "test" in helped and "grade" not in helped and "release" not in helped, helped
    proc = subprocess.run(
        [str(python), "-c", "import cs330.grading.trusted"], cwd=folder, capture_output=True, text=True
    )
    assert proc.returncode != 0 and "No module named 'cs330.grading.trusted'" in proc.stderr, proc.stderr
