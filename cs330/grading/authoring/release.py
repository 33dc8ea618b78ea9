"""``cs330 release``: the student tree and the Gradescope autograder bundle, from the reference code.

    DIR/student/<hw_folder>/     the starter code students get (solutions stubbed, hidden checks removed)
    DIR/<hw>-student.zip         the same, zipped
    DIR/<hw>-autograder.zip      the Gradescope bundle: setup.sh, run_autograder, requirements.txt
                                 (+ requirements-nodeps.txt: homework.toml's `no_deps`, installed with --no-deps),
                                 the cs330 package, and homework/ = starter/ + tests/ + reference/
                                 + grading.key (the course key graded inputs are drawn from)

The release refuses (with ``file:line``) unpaired or nested markers, a generated file that does
not parse, a hidden-only helper used outside a hidden region, and any solution line or hidden
check that would still appear somewhere in the student tree.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import cs330
from cs330.grading.authoring import markers
from cs330.grading.authoring.archive import zip_folder
from cs330.grading.authoring.homework import ALWAYS_EXCLUDED, Homework, matches

ENV_GRADING_KEY = "CS330_GRADING_KEY"
KEY_FILE = ".cs330-grading-key"  # in the course checkout, beside the homework folders (git-ignored)
MIN_LEAK_CHARS = 20  # removed lines at least this long must not appear anywhere in the student tree
HIDDEN_ONLY = re.compile(r"\breference\.\w")  # the reference, used outside a hidden region
TEXT_SUFFIXES = {".py", ".md", ".txt", ".toml", ".cfg", ".ini", ".json", ".yaml", ".yml", ".sh", ".csv", ".ipynb"}


class ReleaseError(ValueError):
    """The reference code cannot be released as it is; the message names file:line."""


@dataclass
class StudentTree:
    root: Path
    files: list[Path] = field(default_factory=list)
    n_solutions: int = 0
    n_hidden: int = 0
    n_hidden_files: int = 0


def student_files(hw: Homework) -> list[Path]:
    """Files shipped to students: all but excluded ones, artifacts students produce, hidden test files."""
    out = []
    for rel in hw.files():
        if matches(rel, hw.exclude) or (hw.is_submitted(rel) and rel.suffix != ".py"):
            continue
        if rel.suffix == ".py" and markers.is_hidden_file((hw.root / rel).read_text()):
            continue
        out.append(rel)
    return out


def build_student_tree(hw: Homework, dest: Path) -> StudentTree:
    """Write the student copy of ``hw`` into ``dest`` (which must not exist yet)."""
    if dest.exists():
        raise ReleaseError(f"{dest} already exists; remove it or pick another --out")
    check_probes(hw)
    tree = StudentTree(root=dest)
    removed: list[tuple[str, str]] = []  # (where it came from, the line)
    shipped = set(student_files(hw))
    for rel in hw.files():
        src = hw.root / rel
        if rel.suffix == ".py" and markers.is_hidden_file(src.read_text()):
            tree.n_hidden_files += 1
        if rel not in shipped:
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if matches(rel, hw.given):  # an earlier homework's file, past its due date: solved
            try:
                target.write_text(markers.solved_copy(src.read_text(), str(src.resolve())))
            except markers.MarkerError as e:
                raise ReleaseError(str(e)) from None
        elif rel.suffix == ".py":
            try:
                copy = markers.student_copy(src.read_text(), str(src))
            except markers.MarkerError as e:
                raise ReleaseError(str(e)) from None
            _check_hidden_only(copy.text, src)
            target.write_text(copy.text)
            tree.n_solutions += copy.n_solutions
            tree.n_hidden += copy.n_hidden
            removed += [(str(src), line.strip()) for line in copy.removed]
        else:
            _check_no_markers(src)
            shutil.copy2(src, target)
        tree.files.append(rel)
    check_no_leaks(dest, removed)
    return tree


def _check_hidden_only(text: str, src: Path) -> None:
    for n, line in enumerate(text.splitlines(), 1):
        found = HIDDEN_ONLY.search(line)
        if found and not line.lstrip().startswith("#"):
            raise ReleaseError(f"{src}:{n}: the reference fixture is only for hidden checks; "
                               "put this line inside BEGIN HIDDEN / END HIDDEN")


def check_probes(hw: Homework) -> None:
    """Probe modules run beside student code, so they must hold nothing hidden."""
    for path in hw.probe_files():
        text = path.read_text()
        if markers.is_hidden_file(text) or markers.ANY_MARKER.search(text):
            raise ReleaseError(
                f"{path}: a probe module runs in the student's process, so it must hold no hidden checks or markers"
            )


def _check_no_markers(src: Path) -> None:
    if src.suffix not in TEXT_SUFFIXES:
        return
    for n, line in enumerate(src.read_text(errors="replace").splitlines(), 1):
        if markers.ANY_MARKER.search(line):
            raise ReleaseError(f"{src}:{n}: markers only work in .py files; this file would ship as it is")


def check_no_leaks(root: Path, removed: list[tuple[str, str]]) -> None:
    """Fail if a removed solution line or hidden check (long enough to be telling) appears in the tree."""
    telling = {line: origin for origin, line in removed if len(line) >= MIN_LEAK_CHARS and not line.startswith("#")}
    if not telling:
        return
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.suffix not in TEXT_SUFFIXES:
            continue
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            for secret, origin in telling.items():
                if secret in line:
                    raise ReleaseError(f"{path}:{n}: the student tree would show hidden or solution text from "
                                       f"{origin}: {secret!r}; mark it too")


def course_key(hw: Homework) -> str:
    """The course's grading key (hex): ``$CS330_GRADING_KEY``, else the checkout's ``.cs330-grading-key``,
    made (0600, 256 random bits) the first time it is needed. Every graded input is drawn from it and
    the submission (api.drawn_seed), so the bundle carries it, and a regrade on the course machine
    (same key) draws what Gradescope drew. Keep the file with the course: a new key draws new inputs."""
    key = os.environ.get(ENV_GRADING_KEY, "").strip()
    if key:
        return key
    path = hw.root.parent / KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:  # O_EXCL: two graders starting together make one key
        f.write(secrets.token_hex(32) + "\n")
    return path.read_text().strip()


def build_bundle(hw: Homework, dest: Path) -> Path:
    """The autograder's view of a homework: ``dest/{starter,tests,reference}`` and ``dest/grading.key``.
    Returns ``dest``."""
    build_student_tree(hw, dest / "starter")
    shutil.copytree(hw.tests_dir, dest / "tests", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    # the reference without what the homework excludes (its results, local runs): no test needs them
    shutil.copytree(hw.root, dest / "reference", ignore=_excluded(hw))
    shutil.rmtree(dest / "reference" / hw.tests, ignore_errors=True)
    (dest / "BUNDLE").write_text(f"cs330 autograder bundle for {hw.name}\nfolder={hw.folder}\n")
    key = dest / "grading.key"
    key.write_text(course_key(hw) + "\n")
    key.chmod(0o600)
    return dest


def _excluded(hw: Homework):
    """A copytree ``ignore`` for the homework's ``exclude`` globs and caches."""

    def ignore(folder: str, names: list[str]) -> list[str]:
        base = Path(folder).relative_to(hw.root) if Path(folder) != hw.root else Path()
        return [
            n
            for n in names
            if matches(base / n, [*hw.exclude, *ALWAYS_EXCLUDED]) or n in ("__pycache__", ".pytest_cache")
        ]

    return ignore


RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for each submission. Same code path as `cs330 grade`.
cd /autograder/source
mkdir -p /autograder/results
chmod 700 /autograder/source  # the tests and the reference: the grader's alone, whatever sandbox mode it gets
python3 -m cs330.cli grade /autograder/source/homework /autograder/submission \\
    --results /autograder/results/results.json
"""

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once when it builds the autograder image.
set -euo pipefail
cd /autograder/source
python3 -m pip install --upgrade pip
python3 -m pip install -r requirements.txt
if [ -s requirements-nodeps.txt ]; then python3 -m pip install --no-deps -r requirements-nodeps.txt; fi
python3 -m pip install ./cs330_package
"""


def release(hw: Homework, out: Path) -> dict[str, Path]:
    """Write the student tree, its zip, and the autograder zip into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    student_root = out / "student" / hw.folder
    build_student_tree(hw, student_root)
    student_zip = zip_folder(student_root, out / f"{hw.name}-student.zip", prefix=hw.folder)

    staging = out / f".{hw.name}-autograder"
    shutil.rmtree(staging, ignore_errors=True)
    build_bundle(hw, staging / "homework")
    stage_package(staging / "cs330_package")  # the autograder gets the whole package
    wheel = build_wheel(stage_package(staging / "student_package", student=True), out)
    shutil.rmtree(staging / "student_package")
    with zipfile.ZipFile(student_zip, "a") as zf:  # the package, beside the homework folder: students need nothing else
        info = zipfile.ZipInfo(wheel.name, date_time=(2020, 1, 1, 0, 0, 0))
        info.external_attr = 0o100644 << 16
        zf.writestr(info, wheel.read_bytes(), zipfile.ZIP_STORED)
    (staging / "requirements.txt").write_text("\n".join(requirements(hw)) + "\n")
    (staging / "requirements-nodeps.txt").write_text("".join(f"{spec}\n" for spec in hw.no_deps))
    (staging / "setup.sh").write_text(SETUP_SH)
    (staging / "run_autograder").write_text(RUN_AUTOGRADER)
    for script in ("setup.sh", "run_autograder"):
        (staging / script).chmod(0o755)
    autograder_zip = zip_folder(staging, out / f"{hw.name}-autograder.zip")
    shutil.rmtree(staging)
    return {"student": student_root, "student_zip": student_zip, "autograder_zip": autograder_zip, "wheel": wheel}


# What only the course runs: the grader and its test processes, the worker and its jail, the wire
# format between them, releasing and the instructor's tools. The student wheel leaves them out.
COURSE_ONLY = [
    "grading/trusted",
    "grading/worker",
    "grading/instructor",
    "grading/wire.py",
    "grading/authoring/release.py",
]


def stage_package(dest: Path, student: bool = False) -> Path:
    """The ``cs330`` package alone (no homework folder, no tests), ready for pip: ``dest/cs330`` and
    ``dest/pyproject.toml``. ``student``: without the :data:`COURSE_ONLY` parts."""
    package_src = Path(cs330.__file__).parent
    shutil.copytree(package_src, dest / "cs330", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    if student:
        for part in COURSE_ONLY:
            path = dest / "cs330" / part
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    repo_pyproject = package_src.parent / "pyproject.toml"
    if not repo_pyproject.is_file():
        raise ReleaseError(f"{repo_pyproject} is missing: release from a course repository checkout")
    shutil.copy2(repo_pyproject, dest / "pyproject.toml")
    (dest / "README.md").write_text("cs330 toolchain (copied by cs330 release)\n")
    return dest


def build_wheel(package: Path, out: Path) -> Path:
    """A wheel of the staged package in ``out`` (offline: no build isolation, no downloads)."""
    import subprocess
    import sys

    for old in out.glob("cs330-*.whl"):
        old.unlink()
    offline = ["--no-deps", "--no-build-isolation", "--no-index", "-q"]
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", *offline, "-w", str(out), str(package)],
                          capture_output=True, text=True)
    wheels = sorted(out.glob("cs330-*.whl"))
    if proc.returncode != 0 or not wheels:
        raise ReleaseError(f"could not build the cs330 wheel:\n{proc.stderr[-2000:]}")
    return wheels[0]


def requirements(hw: Homework) -> list[str]:
    """What the homework's autograder installs: the cs330 package's own dependencies, and those of the
    extras the homework names (``extras`` in homework.toml), from the installed package's metadata."""
    from importlib import metadata

    try:
        declared = metadata.requires("cs330") or []
    except metadata.PackageNotFoundError:
        raise ReleaseError("cs330 is not installed: install it (pip install -e .) before releasing") from None
    out = []
    for line in declared:
        spec, _, marker = line.partition(";")
        extra = re.search(r"""extra\s*==\s*['"]([^'"]+)['"]""", marker)
        if extra is None:
            out.append(line.strip())
        elif extra.group(1) in hw.extras:
            rest = re.sub(r"""(\s*(and|or)\s*)?extra\s*==\s*['"][^'"]+['"]""", "", marker).strip()
            out.append(spec.strip() + (f"; {rest}" if rest else ""))
    unknown = set(hw.extras) - set(re.findall(r"""extra\s*==\s*['"]([^'"]+)['"]""", " ".join(declared)))
    if unknown:
        raise ReleaseError(f"{hw.root / 'homework.toml'}: extras {sorted(unknown)} are not optional dependencies "
                           "of cs330 (pyproject.toml)")
    return out
