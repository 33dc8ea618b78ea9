"""The ``cs330`` command. Each room adds its own subcommands; this file only wires them up."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cs330", description="cs330 course toolchain")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    from cs330.data import cli as data_cli
    from cs330.grading import cli as student_cli

    course_cli = _course_cli()
    if course_cli is not None:
        course_cli.add_parsers(sub)
    student_cli.add_parsers(sub)
    data_cli.add_parser(sub)
    return parser


def _course_cli():
    """The course's subcommands (release, grade, mutants, demo), or None in the student wheel."""
    try:
        from cs330.grading.instructor import cli
    except ModuleNotFoundError as e:
        if e.name != "cs330.grading.instructor":
            raise
        return None
    return cli


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
