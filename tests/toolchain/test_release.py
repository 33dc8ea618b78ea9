"""`cs330 release` on the toy homework, against golden files, and its refusals."""

import os
import shutil
import zipfile
from pathlib import Path

import pytest

from cs330.grading.authoring import homework, release

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "toyhw"


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_student_tree_matches_golden(toy_release):
    got = tree(toy_release["student"])
    if os.environ.get("CS330_UPDATE_GOLDEN"):
        shutil.rmtree(GOLDEN, ignore_errors=True)
        shutil.copytree(toy_release["student"], GOLDEN)
    assert got == tree(GOLDEN), "the student release changed; if on purpose, rerun with CS330_UPDATE_GOLDEN=1"


def test_student_zip_holds_the_tree(toy_release):
    with zipfile.ZipFile(toy_release["student_zip"]) as zf:
        names = sorted(zf.namelist())
    wheel = toy_release["wheel"].name
    assert names == sorted([wheel, *(f"toyhw/{name}" for name in tree(toy_release["student"]))]), (
        "the tree, and the cs330 wheel beside it"
    )


def test_no_solution_or_hidden_text_in_student_tree(toy_release, toyhw):
    student = "\n".join(p.decode() for p in tree(toy_release["student"]).values())
    for secret in [
        "x.max(dim=-1",
        "weights.sum(dim=-1",
        "x.sum(dim=1) / x.shape[1]",
        "x * factor",
        "reference.toy",
        "torch.tensor([[2.0, 3.0]])",
        "test_softmax_batched_dims",
        "BEGIN SOLUTION",
        "BEGIN HIDDEN",
        'pooled_sum": 2.0',
    ]:
        assert secret not in student, f"{secret!r} leaked into the student tree"
    assert not (toy_release["student"] / "tests" / "test_toy_hidden.py").exists()
    assert not (toy_release["student"] / "results").exists(), "artifacts students produce must not ship"


def test_autograder_bundle_layout(toy_release):
    with zipfile.ZipFile(toy_release["autograder_zip"]) as zf:
        names = set(zf.namelist())
        run = zf.getinfo("run_autograder")
    for required in [
        "setup.sh",
        "run_autograder",
        "requirements.txt",
        "cs330_package/pyproject.toml",
        "cs330_package/cs330/grading/trusted/grader.py",
        "homework/BUNDLE",
        "homework/grading.key",
        "homework/tests/test_toy_hidden.py",
        "homework/reference/toy.py",
        "homework/reference/homework.toml",
        "homework/starter/toy.py",
    ]:
        assert required in names, f"{required} missing from the autograder zip"
    assert (run.external_attr >> 16) & 0o111, "run_autograder must be executable"
    with zipfile.ZipFile(toy_release["student_zip"]) as zf:
        student = [n for n in zf.namelist() if not n.endswith(".whl")]
        key = os.environ["CS330_GRADING_KEY"].encode()
        assert not any(key in zf.read(n) for n in student), "the course key must never reach the student zip"


def test_release_refuses_bad_markers(tmp_path, toyhw):
    hw_dir = tmp_path / "broken"
    shutil.copytree(toyhw.root, hw_dir)
    (hw_dir / "toy.py").write_text(
        (hw_dir / "toy.py").read_text().replace("    # END SOLUTION\n    return pooled", "    return pooled", 1)
    )
    with pytest.raises(
        release.ReleaseError, match=r"toy\.py:28: marker .* nested inside the SOLUTION region opened at line 21"
    ):
        release.release(homework.load(hw_dir), tmp_path / "out")


def test_release_refuses_leaks(tmp_path, toyhw):
    hw_dir = tmp_path / "leaky"
    shutil.copytree(toyhw.root, hw_dir)
    readme = hw_dir / "README.md"
    readme.write_text(readme.read_text() + "\nHint: `shifted = x - x.max(dim=-1, keepdim=True).values`\n")
    with pytest.raises(release.ReleaseError, match=r"README\.md:\d+: the student tree would show"):
        release.release(homework.load(hw_dir), tmp_path / "out")


def test_release_refuses_reference_outside_hidden(tmp_path, toyhw):
    use, name = "def test_y(student, reference):\n    assert reference.toy.scale(1, 2) == 2", "the reference fixture"
    hw_dir = tmp_path / "peek"
    shutil.copytree(toyhw.root, hw_dir)
    test = hw_dir / "tests" / "test_toy.py"
    test.write_text(test.read_text() + f"\n\n{use}\n")
    with pytest.raises(release.ReleaseError, match=rf"test_toy\.py:\d+: {name} is only for hidden checks"):
        release.release(homework.load(hw_dir), tmp_path / "out")


def test_bundle_package_builds_offline(tmp_path, toy_release):
    """setup.sh installs the cs330 copy inside the bundle: it must build, schema included."""
    with zipfile.ZipFile(toy_release["autograder_zip"]) as zf:
        zf.extractall(tmp_path / "bundle")
    (tmp_path / "wheel").mkdir()
    wheel = release.build_wheel(tmp_path / "bundle" / "cs330_package", tmp_path / "wheel")  # ReleaseError if it fails
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    assert "cs330/grading/trusted/results_schema.json" in names and "cs330/grading/plugin.py" in names
    assert "torch" in (tmp_path / "bundle" / "requirements.txt").read_text()


def test_cs330_test_runs_one_id(toyhw):
    from cs330.cli import main

    assert main(["test", str(toyhw.root), "1a-0-basic"]) == 0


def test_release_refuses_secret_probes(tmp_path, toyhw):
    hw_dir = tmp_path / "probe"
    shutil.copytree(toyhw.root, hw_dir)
    (hw_dir / "tests" / "probes.py").write_text("def p(code):\n    # BEGIN HIDDEN\n    return 1\n    # END HIDDEN\n")
    with pytest.raises(release.ReleaseError, match=r"probes\.py: a probe module runs in the student's process"):
        release.release(homework.load(hw_dir), tmp_path / "out")


def test_given_files_ship_solved(tmp_path, toyhw):
    """A later homework can be given an earlier one's file (a link in the repository), solved."""
    earlier = tmp_path / "hw_earlier"
    earlier.mkdir()
    (earlier / "inner.py").write_text(
        'def step(x):\n    # BEGIN SOLUTION hint="x + 1"\n    return x + 1\n    # END SOLUTION\n'
        "\n\ndef twice(x):\n    return 2 * x  # SOLUTION\n"
    )
    hw_dir = tmp_path / "later"
    shutil.copytree(toyhw.root, hw_dir)
    (hw_dir / "earlier_inner.py").symlink_to(earlier / "inner.py")
    toml = hw_dir / "homework.toml"
    toml.write_text(toml.read_text().replace('tests = "tests"', 'given = ["earlier_inner.py"]\ntests = "tests"'))
    paths = release.release(homework.load(hw_dir), tmp_path / "out")
    given = (paths["student"] / "earlier_inner.py").read_text()
    assert "return x + 1" in given and "return 2 * x" in given, given
    assert "SOLUTION" not in given and not (paths["student"] / "earlier_inner.py").is_symlink()
    assert "raise NotImplementedError" in (paths["student"] / "toy.py").read_text(), (
        "the homework's own work is still stubbed"
    )
