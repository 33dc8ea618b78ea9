"""``cs330 grade``: grade one submission (folder or zip) or a folder of them into Gradescope results.

Every grading goes through :func:`grade_bundle`: from the repository, the homework is first
turned into the same bundle that Gradescope gets (release.build_bundle), so ``cs330 grade`` and
the bundle's ``run_autograder`` share one code path.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cs330.grading import homework, release, runner
from cs330.grading.runner import GraderFault, Outcome

SCHEMA = Path(__file__).with_name("results_schema.json")


@dataclass
class Report:
    submission: str
    outcomes: list[Outcome] = field(default_factory=list)
    execution_time: float = 0.0
    missing: list[str] = field(default_factory=list)
    fault: str = ""
    sandbox: str = ""

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
        summary = [f"Score: {_fmt(self.score)} / {_fmt(self.max_score)}"]
        if self.missing:
            summary.append("Missing from your submission: " + ", ".join(self.missing))
        if self.fault:
            summary.append("The autograder could not run the tests (this is not your fault; tell the course staff):\n" + self.fault)
        return {"score": self.score, "execution_time": round(self.execution_time, 3), "output": "\n".join(summary),
                "visibility": "visible", "stdout_visibility": "hidden", "tests": tests,
                "extra_data": {"max_score": self.max_score, "sandbox": self.sandbox, "fault": bool(self.fault)}}

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
        if self.fault:
            lines.append("GRADER FAULT: " + self.fault)
        return "\n".join(lines)


def _fmt(x: float) -> str:
    return f"{x:g}"


def is_bundle(path: Path) -> bool:
    return (Path(path) / "BUNDLE").is_file()


@contextmanager
def bundle_for(hw_or_bundle: str | Path):
    """An autograder bundle and the homework sources to hide: the bundle folder itself, or one
    built from a homework (name/folder) in a temporary folder for the duration."""
    if is_bundle(Path(hw_or_bundle)):
        yield Path(hw_or_bundle), []
        return
    hw = homework.find(hw_or_bundle)
    with tempfile.TemporaryDirectory(prefix=f"cs330-bundle-{hw.name}-") as tmp:
        yield release.build_bundle(hw, Path(tmp) / "homework"), [hw.root]


def grade(hw_or_bundle: str | Path, submission: str | Path, jobs: int = 1, hide: list[Path] = ()) -> Report:
    """Grade ``submission`` against a homework (name/folder) or an autograder bundle folder."""
    with bundle_for(hw_or_bundle) as (bundle, sources):
        return grade_bundle(bundle, Path(submission), jobs=jobs, hide=[*sources, *hide])


def grade_bundle(bundle: Path, submission: Path, jobs: int = 1, hide: list[Path] = ()) -> Report:
    start = time.monotonic()
    hw = homework.load(bundle / "reference")
    folder = (bundle / "BUNDLE").read_text().split("folder=", 1)[-1].strip() or hw.name
    report = Report(submission=str(submission), sandbox=runner.sandbox_mode(hw.trusted))
    private, workspace = runner.new_job_dirs(folder)
    try:
        shutil.copytree(bundle / "starter", workspace)
        source = _unpack(submission, private / "unpacked", hw)
        report.missing = _overlay(hw, source, workspace)
        cores = os.cpu_count() or 1
        job = runner.Job(tests=bundle / "tests", workspace=workspace, private=private, reference=bundle / "reference",
                         modules=hw.submitted_modules(), hide=[bundle, submission, *hide], timeout=hw.timeout,
                         memory_mb=hw.memory_mb, grace=hw.grace, threads=max(1, cores // max(1, jobs)), trusted=hw.trusted,
                         probes=hw.probe_files(bundle / "tests"), uid=runner.new_uid(), total_timeout=hw.total_timeout)
        try:
            if jobs > 1:
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


def _unpack(submission: Path, dest: Path, hw: homework.Homework) -> Path:
    """The folder holding the submitted files (a zip is extracted safely; a wrapping folder is skipped)."""
    if not submission.exists():
        raise FileNotFoundError(f"submission {submission} does not exist")
    if submission.is_file():
        if not zipfile.is_zipfile(submission):
            raise ValueError(f"{submission} is neither a folder nor a zip file")
        dest.mkdir(parents=True)
        with zipfile.ZipFile(submission) as zf:
            for info in zf.infolist():
                target = (dest / info.filename).resolve()
                if not target.is_relative_to(dest.resolve()):
                    continue  # a path that climbs out of the folder ("../x") is ignored
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                elif info.file_size <= 512 << 20:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(info) as src, open(target, "wb") as out:
                        shutil.copyfileobj(src, out)
        submission = dest
    # A zip of the folder itself ("hw0_multitask/model.py"): look inside the single wrapping folder.
    entries = [p for p in submission.iterdir() if not p.name.startswith((".", "__MACOSX"))]
    if len(entries) == 1 and entries[0].is_dir() and _n_submitted(hw, entries[0]) > _n_submitted(hw, submission):
        return entries[0]
    return submission


def _n_submitted(hw: homework.Homework, root: Path) -> int:
    return sum(1 for p in root.rglob("*") if p.is_file() and hw.is_submitted(p.relative_to(root)))


def _overlay(hw: homework.Homework, source: Path, workspace: Path) -> list[str]:
    """Copy the submitted files over the starter code; returns the expected files that were missing."""
    found = set()
    for path in sorted(source.rglob("*")):
        if path.is_file() and not path.is_symlink():
            rel = path.relative_to(source)
            if hw.is_submitted(rel):
                (workspace / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, workspace / rel)
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
    return sorted(p for p in Path(folder).iterdir() if not p.name.startswith(".") and (p.is_dir() or p.suffix == ".zip"))


def _name(entry: Path) -> str:
    return entry.stem if entry.is_file() else entry.name


def grade_batch(hw_or_bundle: str | Path, folder: Path, out: Path, jobs: int = 1, log=print) -> Path:
    """Grade every subfolder or zip of ``folder`` (``jobs`` at a time) into ``out/<name>/results.json``
    and ``out/gradebook.csv``. One broken submission never stops the batch."""
    folder, out = Path(folder), Path(out)
    entries = batch_entries(folder)
    out.mkdir(parents=True, exist_ok=True)
    with bundle_for(hw_or_bundle) as (bundle, sources):
        hide = [folder, out, *sources]

        def one(entry: Path) -> Report:
            try:
                report = grade_bundle(bundle, entry, jobs=1, hide=hide)
            except Exception as e:  # an unreadable zip, say: recorded, never fatal to the batch
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
