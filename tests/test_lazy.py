"""The lazy corpus: code that does not do the homework must not earn the points of the work it skips.

``tests/lazy/<homework folder>.toml`` lists variants, each a submission a lazy or gaming student could
hand in: the reference with one solution region made degenerate (a
constant, zeros, an identity, a pass-through, a detached copy, a correct shape only) or with an
attack added (a rebound probe helper, an imported stand-in, a rebuilt held-out set). Each names the
tests whose property depends on what it skipped and the most those tests may award it (0 unless a
property really holds). The real grader grades each variant on those tests. The corpus lives
outside every homework folder, so it never ships; tests/lazy/README.md says how to add a variant.
"""

import ast
import textwrap
import tomllib
from pathlib import Path

import pytest

from cs330.grading.authoring import homework, release
from cs330.grading.instructor import mutants
from cs330.grading.trusted import grader

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "tests" / "lazy"


def _variants() -> list:
    out = []
    for path in sorted(CORPUS.glob("*.toml")):
        for variant in tomllib.loads(path.read_text())["variant"]:
            out.append(pytest.param(path.stem, variant, id=f"{path.stem}-{variant['name']}"))
    return out


def with_body(text: str, target: str, body: str) -> str:
    """``text`` with the body of the function ``target`` ("name" or "Class.method") replaced by ``body``
    (its docstring kept)."""
    nodes = ast.parse(text).body
    node = None
    for part in target.split("."):
        node = next((n for n in nodes if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == part), None)
        assert node is not None, f"no {target} here"
        nodes = node.body
    stmts = node.body
    keep = 1 if isinstance(stmts[0], ast.Expr) and isinstance(getattr(stmts[0], "value", None), ast.Constant) else 0
    lines = text.splitlines(keepends=True)
    start = stmts[keep].lineno - 1 if len(stmts) > keep else node.end_lineno
    indent = " " * stmts[0].col_offset
    new = textwrap.indent(textwrap.dedent(body).strip("\n") + "\n", indent)
    return "".join(lines[:start]) + new + "".join(lines[node.end_lineno:])


def build(hw: homework.Homework, variant: dict, dest: Path) -> Path:
    """The variant's submission folder: the reference's submitted files, edited."""
    mutants.submission_with(hw, dest)
    for edit in variant["edit"]:
        path = dest / edit["file"]
        text = path.read_text() if path.exists() else ""
        if "replace" in edit:
            text = with_body(text, edit["replace"], edit["body"])
        text = text + textwrap.dedent(edit.get("append", ""))
        path.write_text(text)
    return dest


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """One autograder bundle per homework, built on first use (a release per variant cost ~3 s each)."""
    built = {}

    def bundle(hw: homework.Homework) -> Path:
        if hw.name not in built:
            built[hw.name] = release.build_bundle(hw, tmp_path_factory.mktemp(f"bundle-{hw.name}") / "homework")
        return built[hw.name]
    return bundle


@pytest.mark.parametrize("folder, variant", _variants())
def test_lazy_variant_earns_at_most_its_maximum(folder, variant, tmp_path, bundles):
    hw = homework.load(REPO / folder)
    submission = build(hw, variant, tmp_path / "submission")
    report = grader.grade(bundles(hw), submission, only=set(variant["tests"]))
    assert not report.fault, report.fault
    earned = {o.id: o.score for o in report.outcomes if o.score}
    assert report.score >= variant.get("min", 0), (  # a real mistake, not a skipped region: the rest still counts
        f"{folder}/{variant['name']} ({variant['about']}) earns {report.score}, less than its {variant['min']}: "
        + str({o.id: o.message[-300:] for o in report.outcomes if o.score < o.points}))
    assert report.score <= variant.get("max", 0), (
        f"{folder}/{variant['name']} ({variant['about']}) earns {report.score} of the at most "
        f"{variant.get('max', 0)} it may: {earned}"
    )


def test_with_body_keeps_the_docstring_and_the_rest():
    text = ('import x\n\n\nclass A:\n    def f(self):\n        """Doc."""\n        return 1\n\n'
            '    def g(self):\n        return 2\n')
    out = with_body(text, "A.f", "return 0")
    assert out == text.replace("return 1", "return 0")
    assert with_body(text, "A.g", "pass") == text.replace("return 2", "pass")
