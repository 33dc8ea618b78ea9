"""``cs330 grade``: grade one submission (folder or zip) or a folder of them into Gradescope results.

Every grading goes through :func:`grade_bundle`: from the repository, the homework is first
turned into the same bundle that Gradescope gets (release.build_bundle), so ``cs330 grade`` and
the bundle's ``run_autograder`` share one code path.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import json
import os
import shutil
import stat
import tempfile
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cs330.grading.authoring import homework, release
from cs330.grading.trusted import runner
from cs330.grading.trusted.runner import GraderFault, Outcome

SCHEMA = Path(__file__).with_name("results_schema.json")


@dataclass
class Report:
    submission: str
    outcomes: list[Outcome] = field(default_factory=list)
    execution_time: float = 0.0
    missing: list[str] = field(default_factory=list)
    fault: str = ""
    sandbox: str = ""
    notes: list[str] = field(default_factory=list)  # what was left out of the submission, and why

    @property
    def score(self) -> float:
        return sum(o.score for o in self.outcomes)

    @property
    def max_score(self) -> float:
        return sum(o.points for o in self.outcomes)

    def to_gradescope(self) -> dict:
        """The results.json Gradescope reads (its documented format, nothing more)."""
        tests = []
        for o in self.outcomes:
            text = {"passed": "", "skipped": "Skipped (scores 0): "}.get(o.status, "")
            text += o.message
            if o.output.strip():
                text += ("\n\n" if text else "") + "Output:\n" + o.output
            tests.append({"name": f"{o.id}: {o.doc}", "number": o.id, "score": o.score, "max_score": o.points,
                          "status": "passed" if o.status == "passed" else "failed", "visibility": o.visibility,
                          "output": text.strip() or "Passed"})
        summary = [self.score_line()]
        if self.missing:
            summary.append("Missing from your submission: " + ", ".join(self.missing))
        if self.notes:
            summary.append("Left out of your submission:\n" + "\n".join(f"  {n}" for n in self.notes[:50]))
        summary.append(f"Sandbox: {self.sandbox}")
        if self.fault:
            summary.append(
                "The autograder could not run the tests (this is not your fault; tell the course staff):\n" + self.fault
            )
        return {"score": self.score, "execution_time": round(self.execution_time, 3), "output": "\n".join(summary),
                "visibility": "visible", "stdout_visibility": "hidden", "tests": tests,
                "extra_data": {"max_score": self.max_score, "sandbox": self.sandbox, "fault": bool(self.fault)}}

    def score_line(self) -> str:
        """The score line of the top-level output, which students always see. Before the due date it must
        not reveal an after-due-date test (no early oracle): with such tests it counts the visible ones only.
        The top-level ``score`` is safe as it is: Gradescope hides the total while any test is not yet shown."""
        shown = [o for o in self.outcomes if o.visibility == "visible"]
        if len(shown) == len(self.outcomes):
            return f"Score: {_fmt(self.score)} / {_fmt(self.max_score)}"
        later = sum(o.points for o in self.outcomes if o.visibility != "visible")
        return (f"Visible tests: {_fmt(sum(o.score for o in shown))} / {_fmt(sum(o.points for o in shown))}. "
                f"The other tests ({_fmt(later)} points) and your total are shown after the due date.")

    def table(self) -> str:
        """A human-readable score table."""
        rows = [("test", "points", "result", "time")]
        for o in self.outcomes:
            rows.append((f"{o.id}  {o.doc}"[:70], f"{_fmt(o.score)}/{_fmt(o.points)}", o.status, f"{o.duration:.1f}s"))
        rows.append(("total", f"{_fmt(self.score)}/{_fmt(self.max_score)}", "", f"{self.execution_time:.1f}s"))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = [f"{self.submission}"]
        for n, row in enumerate(rows):
            if n in (1, len(rows) - 1):
                lines.append("  ".join("-" * w for w in widths))
            lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths)))
        if self.missing:
            lines.append("missing: " + ", ".join(self.missing))
        for note in self.notes[:50]:
            lines.append("left out: " + note)
        if self.fault:
            lines.append("GRADER FAULT: " + self.fault)
        return "\n".join(lines)


def _fmt(x: float) -> str:
    return f"{x:g}"


def is_bundle(path: Path) -> bool:
    return (Path(path) / "BUNDLE").is_file()


@contextmanager
def bundle_for(hw_or_bundle: str | Path):
    """An autograder bundle: the bundle folder itself, or one built from a homework (name/folder)
    in a temporary folder for the duration."""
    if is_bundle(Path(hw_or_bundle)):
        yield Path(hw_or_bundle)
        return
    hw = homework.find(hw_or_bundle)
    with tempfile.TemporaryDirectory(prefix=f"cs330-bundle-{hw.name}-") as tmp:
        yield release.build_bundle(hw, Path(tmp) / "homework")


def grade(hw_or_bundle: str | Path, submission: str | Path, jobs: int = 1, only: set[str] | None = None) -> Report:
    """Grade ``submission`` against a homework (name/folder) or an autograder bundle folder; ``only``: run just
    the tests of these ids (the corpora's checks of a few tests)."""
    with bundle_for(hw_or_bundle) as bundle:
        return grade_bundle(bundle, Path(submission), jobs=jobs, only=only)


def grading_secret(bundle: Path, workspace: Path) -> str:
    """What this grading's inputs are drawn from (api.drawn_seed): HMAC-SHA256(the bundle's course key,
    a digest of every file the submission's workspace holds). Unknown to the student's code; the same
    for the same submission, so a regrade gives the same grade."""
    key = bundle / "grading.key"
    if not key.is_file():
        raise GraderFault(f"{bundle} has no grading.key: rebuild the autograder bundle with `cs330 release`")
    digest = hashlib.sha256()
    for path in sorted(p for p in workspace.rglob("*") if p.is_file() and not p.is_symlink()):
        name = path.relative_to(workspace).as_posix().encode()
        digest.update(len(name).to_bytes(8, "big") + name + hashlib.sha256(path.read_bytes()).digest())
    return hmac.new(key.read_text().strip().encode(), digest.digest(), hashlib.sha256).hexdigest()


def grade_bundle(bundle: Path, submission: Path, jobs: int = 1, only: set[str] | None = None) -> Report:
    start = time.monotonic()
    hw = homework.load(bundle / "reference")
    folder = (bundle / "BUNDLE").read_text().split("folder=", 1)[-1].strip() or hw.name
    report = Report(submission=str(submission), sandbox=runner.sandbox_mode())
    private, workspace = runner.new_job_dirs(folder)
    try:
        shutil.copytree(bundle / "starter", workspace)
        try:
            source = _unpack(submission, private / "unpacked", hw, report.notes)
        except ValueError as e:  # not a zip, a link: graded as if nothing was handed in
            report.notes.append(str(e))
            source = private / "unpacked"
            shutil.rmtree(source, ignore_errors=True)
            source.mkdir(parents=True)
        report.missing = _overlay(hw, source, workspace, report.notes)
        cores = os.cpu_count() or 1
        try:
            job = runner.Job(
                tests=bundle / "tests",
                workspace=workspace,
                private=private,
                reference=bundle / "reference",
                timeout=hw.timeout,
                memory_mb=hw.memory_mb,
                disk_mb=hw.disk_mb,
                grace=hw.grace,
                threads=max(1, cores // max(1, jobs)),
                probes=hw.probe_files(bundle / "tests"),
                preload=hw.preload,
                uid=runner.new_uid(),
                total_timeout=hw.total_timeout,
                secret=grading_secret(bundle, workspace),
            )
            if only is not None:
                outcomes = [o for o in runner.collect(job) if o.id in only]
                unknown = set(only) - {o.id for o in outcomes}
                if unknown:
                    raise GraderFault(f"no graded tests with the ids {sorted(unknown)}")
                runner.run(job, outcomes)
            elif jobs > 1:
                outcomes = runner.collect(job)
                with ThreadPoolExecutor(max_workers=jobs) as pool:
                    list(pool.map(lambda i: runner.run(job, outcomes[i::jobs]), range(jobs)))
            else:
                outcomes = runner.run_all(job)
            report.outcomes = outcomes
        except GraderFault as e:
            report.fault = str(e)
    finally:
        shutil.rmtree(private.parent, ignore_errors=True)
    report.execution_time = time.monotonic() - start
    return report


MAX_FILES = 2000  # files taken from one submission
MAX_BYTES = 512 << 20  # bytes taken from one submission, all files together
MAX_FILE_BYTES = 256 << 20  # bytes of any one file


def _unpack(submission: Path, dest: Path, hw: homework.Homework, notes: list[str]) -> Path:
    """A private copy of the submitted files (from a zip or a folder), and the folder inside it that
    holds them (a single wrapping folder is skipped). Links are never followed, sizes and counts are
    capped, and odd entries are left out; each thing left out is said in ``notes``."""
    if submission.is_symlink():
        raise ValueError(f"{submission} is a symbolic link: submissions are never followed through links")
    if not submission.exists():
        raise FileNotFoundError(f"submission {submission} does not exist")
    dest.mkdir(parents=True)
    budget = {"files": MAX_FILES, "bytes": MAX_BYTES}
    if submission.is_file():
        if not zipfile.is_zipfile(submission):
            raise ValueError(f"{submission} is neither a folder nor a zip file")
        with zipfile.ZipFile(submission) as zf:
            for info in zf.infolist():
                rel = _safe_name(info.filename, notes)
                if rel is None:
                    continue
                if info.is_dir():
                    _make_dir(dest, rel, notes)
                elif stat.S_ISLNK(info.external_attr >> 16):
                    notes.append(f"{info.filename}: a symbolic link, left out")
                elif info.flag_bits & 0x1:
                    notes.append(f"{info.filename}: encrypted, left out")
                else:
                    with zf.open(info) as src:
                        _take_file(src, dest, rel, budget, notes)
    else:
        for folder, dirs, files in os.walk(submission):  # os.walk never descends into linked folders
            base = Path(folder).relative_to(submission)
            for name in sorted(dirs):
                if (Path(folder) / name).is_symlink():
                    notes.append(f"{(base / name).as_posix()}: a symbolic link, left out")
                else:
                    _make_dir(dest, base / name, notes)
            for name in sorted(files):
                path = Path(folder) / name
                if path.is_symlink() or not path.is_file():
                    what = "a symbolic link" if path.is_symlink() else "not a regular file"
                    notes.append(f"{(base / name).as_posix()}: {what}, left out")
                    continue
                with open(path, "rb") as src:
                    _take_file(src, dest, base / name, budget, notes)
    # A zip of the folder itself ("hw0_multitask/model.py"): look inside the single wrapping folder.
    entries = [p for p in dest.iterdir() if not p.name.startswith((".", "__MACOSX"))]
    if len(entries) == 1 and entries[0].is_dir() and _n_submitted(hw, entries[0]) > _n_submitted(hw, dest):
        return entries[0]
    return dest


def _safe_name(name: str, notes: list[str]) -> Path | None:
    """A zip entry's name as a safe relative path, or None (noted) when it is not one."""
    parts = name.rstrip("/").split("/")
    odd = (not name or name.startswith("/") or "\\" in name or any(ord(c) < 32 for c in name)
           or any(p in ("", ".", "..") for p in parts) or ":" in parts[0])
    if odd:
        notes.append(f"{name!r}: not a plain relative path, left out")
        return None
    return Path(*parts)


def _make_dir(dest: Path, rel: Path, notes: list[str]) -> None:
    target = dest / rel
    if target.exists() and not target.is_dir():
        notes.append(f"{rel.as_posix()}: both a file and a folder; the folder is left out")
        return
    target.mkdir(parents=True, exist_ok=True)


def _take_file(src, dest: Path, rel: Path, budget: dict, notes: list[str]) -> None:
    """Copy one file into ``dest``, within the submission's file and byte budgets."""
    target = dest / rel
    if budget["files"] <= 0:
        if budget["files"] == 0:
            notes.append(f"more than {MAX_FILES} files: the rest are left out")
            budget["files"] = -1
        return
    if target.exists() or any(p.exists() and not p.is_dir() for p in target.parents):
        what = "given twice" if target.is_file() else "a file where a folder is (or the reverse)"
        notes.append(f"{rel.as_posix()}: {what}; left out")
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    written, limit = 0, min(MAX_FILE_BYTES, budget["bytes"])
    with open(target, "wb") as out:
        for chunk in iter(lambda: src.read(1 << 20), b""):
            written += len(chunk)
            if written > limit:
                break
            out.write(chunk)
    if written > limit:
        target.unlink()
        why = (
            f"over {MAX_FILE_BYTES >> 20} MB"
            if limit == MAX_FILE_BYTES
            else f"past the submission's {MAX_BYTES >> 20} MB in all"
        )
        notes.append(f"{rel.as_posix()}: {why}, left out")
        return
    budget["files"] -= 1
    budget["bytes"] -= written


def _n_submitted(hw: homework.Homework, root: Path) -> int:
    return sum(1 for p in root.rglob("*") if p.is_file() and hw.is_submitted(p.relative_to(root)))


def _overlay(hw: homework.Homework, source: Path, workspace: Path, notes: list[str]) -> list[str]:
    """Copy the submitted files over the starter code; returns the expected files that were missing."""
    found = set()
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source)
        if path.is_dir() and hw.is_submitted(rel) and rel.suffix == ".py":
            notes.append(f"{rel.as_posix()} is a folder; a file was expected")
        if path.is_file() and not path.is_symlink() and hw.is_submitted(rel):
            target = workspace / rel
            if target.is_dir():
                notes.append(f"{rel.as_posix()}: the starter code has a folder there; left out")
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            found.add(rel.as_posix())
    missing = []
    for pattern in hw.submit:
        if not any(homework.matches(f, [pattern]) for f in found):
            missing.append(pattern)
    return missing


def write_results(report: Report, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(report.to_gradescope(), indent=2))
    os.replace(tmp, path)


def validate(results: dict) -> None:
    """Check a results.json dict against the Gradescope schema (raises jsonschema.ValidationError)."""
    import jsonschema

    jsonschema.validate(results, json.loads(SCHEMA.read_text()))


def batch_entries(folder: Path) -> list[Path]:
    return sorted(
        p for p in Path(folder).iterdir() if not p.name.startswith(".") and (p.is_dir() or p.suffix == ".zip")
    )


def _name(entry: Path) -> str:
    return entry.stem if entry.is_file() else entry.name


def grade_batch(hw_or_bundle: str | Path, folder: Path, out: Path, jobs: int = 1, log=print) -> Path:
    """Grade every subfolder or zip of ``folder`` (``jobs`` at a time) into ``out/<name>/results.json``
    and ``out/gradebook.csv``. One broken submission never stops the batch."""
    folder, out = Path(folder), Path(out)
    entries = batch_entries(folder)
    out.mkdir(parents=True, exist_ok=True)
    with bundle_for(hw_or_bundle) as bundle:

        def one(entry: Path) -> Report:
            try:
                report = grade_bundle(bundle, entry, jobs=1)
            except Exception as e:  # noqa: BLE001 (an unreadable zip, say: recorded, never fatal to the batch)
                report = Report(submission=str(entry), fault=f"{type(e).__name__}: {e}")
            log(f"{_name(entry)}: {_fmt(report.score)}/{_fmt(report.max_score)}" + (" (fault)" if report.fault else ""))
            return report

        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            reports = list(pool.map(one, entries))
    # Written only once every submission has run, so no submission can touch another's results.
    for entry, report in zip(entries, reports):
        write_results(report, out / _name(entry) / "results.json")
    ids = list(dict.fromkeys(o.id for r in reports for o in r.outcomes))
    gradebook = out / "gradebook.csv"
    with open(gradebook, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["submission", "score", "max_score", "status", *ids])
        for entry, r in zip(entries, reports):
            scores = {o.id: _fmt(o.score) for o in r.outcomes}
            status = "fault" if r.fault else "missing files" if r.missing else "ok"
            writer.writerow([_name(entry), _fmt(r.score), _fmt(r.max_score), status, *(scores.get(i, "") for i in ids)])
    return gradebook
