"""``cs330 submit``: check a student's homework folder and zip what to hand in."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from cs330.grading.authoring import markers
from cs330.grading.authoring.archive import zip_folder
from cs330.grading.authoring.homework import Homework, matches

IMPORT_TIMEOUT = 120


@dataclass
class Check:
    files: list[Path] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def check(hw: Homework) -> Check:
    """What would be handed in, and what is wrong with it."""
    result = Check()
    candidates = [rel for rel in hw.files() if hw.is_submitted(rel)]
    for pattern in hw.submit:
        hits = [rel for rel in candidates if matches(rel, [pattern])]
        if not hits:
            hint = " (run the training script to produce it)" if not pattern.endswith(".py") else ""
            result.errors.append(f"missing: {pattern}{hint}")
    result.files = candidates
    for rel in candidates:
        if rel.suffix != ".py":
            continue
        module = rel.with_suffix("").as_posix().replace("/", ".")
        code = f"import sys; sys.path.insert(0, {str(hw.root)!r}); import {module}"
        try:
            proc = subprocess.run(
                [sys.executable, "-c", code], cwd=hw.root, capture_output=True, text=True, timeout=IMPORT_TIMEOUT
            )
        except subprocess.TimeoutExpired:
            result.errors.append(f"{rel}: importing it took over {IMPORT_TIMEOUT} s (does it run work at import time?)")
            continue
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["(no message)"])[-1]
            result.errors.append(f"{rel}: does not import: {last}")
        stubs = markers.count_stubs((hw.root / rel).read_text())
        if stubs:
            result.warnings.append(
                f"{rel}: {stubs} part(s) still a stub from the release (`raise NotImplementedError('TODO...` "
                "or `... = None  # TODO`): not implemented yet?"
            )
    return result


def submit(hw: Homework, out: Path | None = None, force: bool = False) -> tuple[Check, Path | None]:
    """Check, then (if all is well, or ``force``) write the zip to upload."""
    result = check(hw)
    if result.errors and not force:
        return result, None
    out = Path(out) if out else Path.cwd() / f"{hw.name}-submission.zip"
    staging = out.with_name(f".{out.stem}-staging")
    import shutil

    shutil.rmtree(staging, ignore_errors=True)
    for rel in result.files:
        (staging / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(hw.root / rel, staging / rel)
    staging.mkdir(exist_ok=True)
    zip_folder(staging, out)
    shutil.rmtree(staging)
    return result, out
