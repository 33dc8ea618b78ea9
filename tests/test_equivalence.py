"""The equivalence corpus: independently written correct solutions must earn full marks.

``tests/equivalence/<homework folder>/<variant>/`` holds complete replacements of the homework's
submitted modules, their solution regions written the ways real students write them (loops or
vectorised, ``torch.func`` or ``autograd.grad`` where the contract allows both, another allowed
order of random draws...); ``tests/equivalence/<homework folder>/README.md`` says how each differs.
Each variant is graded by the real grader, laid over the reference's other submitted files (its
results), and must score full marks: a test that fails one of them checks an incidental choice
of the reference, not a property the handout states. The corpus lives outside every homework
folder, so it never ships.
"""

import shutil
from pathlib import Path

import pytest

from cs330.grading.trusted import grader
from cs330.grading.authoring import homework, markers
from cs330.grading.instructor import mutants

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "tests" / "equivalence"
MIN_VARIANTS = 3


def _variants() -> list:
    if not CORPUS.is_dir():
        return []
    return [pytest.param(hw_dir.name, variant.name, id=f"{hw_dir.name}-{variant.name}")
            for hw_dir in sorted(CORPUS.iterdir()) if hw_dir.is_dir()
            for variant in sorted(hw_dir.iterdir()) if variant.is_dir() and not variant.name.startswith((".", "__"))]


def _solution_modules(hw: homework.Homework) -> list[str]:
    """The submitted .py files that hold solution regions (what a variant rewrites)."""
    out = []
    for module in hw.submitted_modules():
        path = hw.root / (module.replace(".", "/") + ".py")
        if path.is_file() and markers.strip_solutions(path.read_text(), str(path)).removed:
            out.append(path.relative_to(hw.root).as_posix())
    return out


def _submission(hw: homework.Homework, variant: Path, dest: Path) -> Path:
    """The reference's submitted files (results included) with the variant's modules laid over them."""
    mutants.submission_with(hw, dest)
    for path in variant.rglob("*.py"):
        shutil.copyfile(path, dest / path.relative_to(variant))
    return dest


@pytest.mark.parametrize("folder, name", _variants())
def test_variant_is_a_whole_different_solution(folder, name):
    """A variant replaces submitted modules only, differs from the reference, and is complete
    (no TODO stubs left, no course markers)."""
    hw = homework.load(REPO / folder)
    variant = CORPUS / folder / name
    files = sorted(p.relative_to(variant).as_posix() for p in variant.rglob("*.py") if "__pycache__" not in p.parts)
    assert files, f"{variant} holds no modules"
    for rel in files:
        assert hw.is_submitted(Path(rel)), f"{folder}/{name}/{rel} is not a file students submit ({hw.submit})"
        text = (variant / rel).read_text()
        assert text != (hw.root / rel).read_text(), f"{folder}/{name}/{rel} is the reference itself"
        assert not markers.count_stubs(text), f"{folder}/{name}/{rel} still has TODO stubs"
        assert not markers.ANY_MARKER.search(text), f"{folder}/{name}/{rel} carries solution/hidden markers"


@pytest.mark.parametrize("folder, name", _variants())
def test_variant_earns_full_marks(folder, name, tmp_path):
    hw = homework.load(REPO / folder)
    report = grader.grade(hw.root, _submission(hw, CORPUS / folder / name, tmp_path / "submission"))
    lost = {o.id: o.message[-600:] for o in report.outcomes if o.score < o.points}
    assert not report.fault, report.fault
    assert report.score == report.max_score and not lost, f"a correct solution ({folder}/{name}) loses points: {lost}"


@pytest.mark.parametrize("hw", homework.discover(REPO), ids=lambda hw: hw.folder)
def test_every_solution_module_has_three_variants(hw):
    """Every submitted module with solution regions is rewritten by at least three variants."""
    folder = CORPUS / hw.folder
    variants = (
        [v for v in sorted(folder.iterdir()) if v.is_dir() and not v.name.startswith((".", "__"))]
        if folder.is_dir()
        else []
    )
    short = {
        rel: n for rel in _solution_modules(hw) if (n := sum((v / rel).is_file() for v in variants)) < MIN_VARIANTS
    }
    assert not short, f"{hw.folder}: modules with fewer than {MIN_VARIANTS} independent solutions in {folder}: {short}"
    assert (folder / "README.md").is_file(), f"{folder}/README.md should say how each variant differs"
