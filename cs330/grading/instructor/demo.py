"""``cs330 demo``: release a homework, grade its reference solution and its untouched starter."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from cs330.grading.authoring import homework, release
from cs330.grading.trusted import grader


def default_demo() -> Path:
    """The homework at or above the current folder, else the first one found, else the toy example."""
    here = homework.enclosing()
    if here is not None:
        return here.root
    found = homework.discover()
    if found:
        return found[0].root
    from cs330.data.root import repo_root

    return (repo_root() or Path.cwd()) / "tests" / "fixtures" / "toyhw"


def main(hw: homework.Homework) -> int:
    """Release ``hw``, grade its reference (full marks expected) and its starter; 0 when all is well."""
    with tempfile.TemporaryDirectory(prefix="cs330-demo-") as tmp:
        print(f"== cs330 release {hw.name} ({hw.root})")
        try:
            paths = release.release(hw, Path(tmp))
        except release.ReleaseError as e:
            print(f"cs330 demo: {e}", file=sys.stderr)
            return 1
        for what, path in paths.items():
            print(f"   {what:15s} {Path(path).name}")
        print(f"\n== grading the reference solution ({hw.folder}/)")
        ref = grader.grade(hw.root, hw.root)
        print(ref.table())
        print("\n== grading the untouched student release (every coding test should score 0)")
        stub = grader.grade(hw.root, paths["student"])
        print(stub.table())
        grader.validate(ref.to_gradescope())
        grader.validate(stub.to_gradescope())
        print(f"\nreference {ref.score:g}/{ref.max_score:g}, stub {stub.score:g}/{stub.max_score:g}; "
              f"results.json valid; sandbox: {ref.sandbox}")
        ok = ref.score == ref.max_score > 0 and not ref.fault and not stub.fault
    return 0 if ok else 1
