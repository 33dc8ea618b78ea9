"""The course's subcommands: ``release``, ``grade``, ``mutants``, ``draws``, ``demo`` (course repository only)."""

from __future__ import annotations

import sys
from pathlib import Path

from cs330.grading.authoring import homework, release
from cs330.grading.cli import find_homework
from cs330.grading.trusted import grader


def add_parsers(sub) -> None:
    p = sub.add_parser("release", help="generate the student tree and the Gradescope autograder bundle")
    p.add_argument("hw", help="homework name (hw2), folder name or path")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.set_defaults(func=cmd_release)

    p = sub.add_parser("grade", help="grade a submission (folder or zip), or a folder of submissions")
    p.add_argument("hw", help="homework name, folder, or an autograder bundle folder")
    p.add_argument("submission", type=Path, help="a submission folder or zip; or a folder of them (batch)")
    p.add_argument("--results", type=Path, help="where to write results.json (single) [default: ./results.json]")
    p.add_argument(
        "--out", type=Path, help="grade SUBMISSION as a folder of submissions, into this folder (gradebook + results)"
    )
    p.add_argument(
        "--batch",
        action="store_true",
        help="grade SUBMISSION as a folder of submissions (into --out, default ./grades)",
    )
    p.add_argument("--jobs", type=int, default=1, help="parallel test processes (single) or submissions (batch)")
    p.set_defaults(func=cmd_grade)

    p = sub.add_parser(
        "mutants", help="instructors: mutation score of a homework's tests (grades mutants of the reference)"
    )
    p.add_argument("hw", help="homework name, folder name or path")
    p.add_argument("--file", action="append", help="mutate only this submitted module (maml.py); repeatable")
    p.add_argument(
        "--id", action="append", dest="ids", help="grade only this mutant id (as --list prints it); repeatable"
    )
    p.add_argument("--limit", type=int, help="grade only the first N mutants (in source order, as --list prints them)")
    p.add_argument(
        "--sample", type=int, help="grade N mutants spread evenly over the list (every k-th), for a quick estimate"
    )
    p.add_argument("--list", action="store_true", help="list the mutants and their diffs; grade nothing")
    p.add_argument("--jobs", type=int, default=1, help="mutants graded at the same time")
    p.add_argument(
        "--equivalent", type=Path, help="reviewed equivalent mutants [default: tests/mutation/<hw folder>.toml]"
    )
    p.add_argument(
        "--out", type=Path, help="report JSON, written after every mutant [default: ./mutants-<hw folder>.json]"
    )
    p.add_argument("--first", action="append", metavar="TEST_FILE",
                   help="grade each mutant with only this (fast) test file first: killed if a test there fails, "
                        "else graded in full; repeatable (test_model.py)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="reuse the verdicts in --out made with the same tests, reference and grader",
    )
    p.set_defaults(func=cmd_mutants)

    p = sub.add_parser("draws", help="instructors: the reference's pass rate over many draws of the graded inputs")
    p.add_argument("hw", help="homework name, folder name or path")
    p.add_argument("--id", action="append", dest="ids", required=True, help="a test id (5a-0-basic); repeatable")
    p.add_argument("--n", type=int, default=20, help="number of draws [default: 20]")
    p.add_argument("--first", type=int, default=0, help="index of the first draw [default: 0]")
    p.set_defaults(func=cmd_draws)

    p = sub.add_parser("demo", help="release a homework, grade its reference and its stub, print the tables")
    p.add_argument("hw", nargs="?", help="homework [default: the first one found, else the toy example]")
    p.set_defaults(func=cmd_demo)


def cmd_release(args) -> int:
    hw = find_homework(args.hw)
    try:
        paths = release.release(hw, args.out)
    except release.ReleaseError as e:
        print(f"cs330 release: {e}", file=sys.stderr)
        return 1
    for what, path in paths.items():
        print(f"{what:15s} {path}")
    return 0


def cmd_grade(args) -> int:
    target = args.hw if grader.is_bundle(Path(args.hw)) else find_homework(args.hw).root
    if not args.submission.exists():
        print(f"cs330 grade: {args.submission} does not exist", file=sys.stderr)
        return 2
    # A batch only when asked for (--batch or --out): a single submission can never be mistaken for
    # one, and Gradescope's run_autograder (single, --results) always writes its results.json.
    if not (args.batch or args.out) and args.submission.is_dir() and _looks_like_batch(target, args.submission):
        print(f"note: {args.submission} looks like a folder of submissions; grading it as one submission "
              "(use --batch or --out to grade each entry)", file=sys.stderr)
    if args.batch or args.out:
        gradebook = grader.grade_batch(target, args.submission, args.out or Path("grades"), jobs=args.jobs)
        print(f"gradebook: {gradebook}")
        return 0
    try:
        report = grader.grade(target, args.submission, jobs=args.jobs)
    except (FileNotFoundError, ValueError) as e:
        print(f"cs330 grade: {e}", file=sys.stderr)
        return 2
    grader.write_results(report, args.results or Path("results.json"))
    print(report.table())
    print(f"results: {args.results or 'results.json'}  (sandbox: {report.sandbox})")
    return 1 if report.fault else 0


def _looks_like_batch(target, folder: Path) -> bool:
    """A folder of submissions holds only subfolders or zips and none of the files students hand in."""
    hw = homework.load(Path(target) / "reference") if grader.is_bundle(Path(target)) else homework.load(target)
    if any(hw.is_submitted(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()):
        return False
    return bool(grader.batch_entries(folder))


def cmd_mutants(args) -> int:
    from cs330.grading.instructor import mutants  # loaded only when used: it reads the whole homework

    return mutants.main(find_homework(args.hw), args)


def cmd_draws(args) -> int:
    from cs330.grading.instructor import draws

    return draws.main(find_homework(args.hw), args)


def cmd_demo(args) -> int:
    from cs330.grading.instructor import demo

    return demo.main(find_homework(args.hw or demo.default_demo()))
