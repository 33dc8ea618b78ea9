"""The student's subcommands: ``cs330 test`` and ``cs330 submit`` (in the student wheel).

In the course repository, cs330.cli adds the course's own subcommands (``release``, ``grade``,
``mutants``, ``demo``) from cs330.grading.instructor.cli; the student wheel does not hold them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cs330.grading.authoring import homework, submit


def add_parsers(sub) -> None:
    p = sub.add_parser("submit", help="check your homework and write the zip to upload")
    p.add_argument("hw", help="homework name (hw2) or folder")
    p.add_argument("--out", type=Path, help="zip to write [default: ./<hw>-submission.zip]")
    p.add_argument("--force", action="store_true", help="write the zip even if checks fail")
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser("test", help="run a homework's tests (all, or some by id such as 2a-1-basic)")
    p.add_argument("hw")
    p.add_argument("ids", nargs="*", help="test ids to run")
    p.set_defaults(func=cmd_test)


def find_homework(name) -> homework.Homework:
    try:
        return homework.find(name)
    except homework.HomeworkError as e:
        raise SystemExit(f"cs330: {e}")


def cmd_submit(args) -> int:
    hw = find_homework(args.hw)
    print(f"cs330 submit: {hw.root}")
    result, out = submit.submit(hw, args.out, force=args.force)
    for rel in result.files:
        print(f"  + {rel}")
    for w in result.warnings:
        print(f"warning: {w}")
    for e in result.errors:
        print(f"error: {e}", file=sys.stderr)
    if out is None:
        print("Not written: fix the errors above (or use --force).", file=sys.stderr)
        return 1
    print(f"Wrote {out}: upload it to Gradescope.")
    return 0


def cmd_test(args) -> int:
    hw = find_homework(args.hw)
    print(f"cs330 test: {hw.root}", flush=True)
    cmd = [sys.executable, "-m", "pytest", str(hw.tests_dir), "-q"] + [x for i in args.ids for x in ("--cs330-id", i)]
    return subprocess.call(cmd, cwd=hw.root)
