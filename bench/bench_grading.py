"""Grading wall time per submission: this checkout against a named peer commit, in the same run.

    python bench/bench_grading.py --homework hw0 --peer 30421cb --repeats 3

For each side (``this``: the working tree; ``peer``: a git worktree of the peer commit), it
releases the homework, then times ``cs330 grade`` (a fresh process, as a TA or Gradescope runs
it) on the reference solution and on the untouched starter code, alternating sides so that load
on the machine hits both alike. Prints the times, the median of each, and this/peer ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def grade_seconds(tree: Path, homework: str, submission: Path, results: Path) -> tuple[float, float]:
    """(wall seconds, score) of one `cs330 grade` run with the cs330 package of ``tree``."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "cs330.cli", "grade", str(tree / homework), str(submission),
                           "--results", str(results)], cwd=tree, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"grading failed in {tree}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return wall, json.loads(results.read_text())["score"]


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser (builds nothing else: the docs' commands are checked against it)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--homework", default="hw0_multitask", help="homework folder [hw0_multitask]")
    parser.add_argument("--peer", default="30421cb",
                        help="the commit to compare with [30421cb: before trusted grading]")
    parser.add_argument("--repeats", type=int, default=3)
    return parser


def main() -> None:
    args = build_parser().parse_args()
    folder = args.homework if (REPO / args.homework).is_dir() else next(p.name for p in REPO.glob(f"{args.homework}_*"))
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as tmp:
        tmp = Path(tmp)
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(tmp / "peer"), args.peer],
                       check=True, capture_output=True)
        try:
            sides = {"this": REPO, "peer": tmp / "peer"}
            starters = {}
            for name, tree in sides.items():
                env = {**os.environ, "PYTHONPATH": str(tree)}
                subprocess.run([sys.executable, "-m", "cs330.cli", "release", str(tree / folder),
                                "--out", str(tmp / f"rel-{name}")], cwd=tree, env=env, check=True, capture_output=True)
                starters[name] = tmp / f"rel-{name}" / "student" / folder
            times = {(side, kind): [] for side in sides for kind in ("reference", "starter")}
            for r in range(args.repeats):
                for side, tree in sides.items():
                    for kind, submission in (("reference", tree / folder), ("starter", starters[side])):
                        wall, score = grade_seconds(tree, folder, submission, tmp / "results.json")
                        times[side, kind].append(wall)
                        print(f"run {r + 1}  {side:4s}  {kind:9s}  {wall:6.1f} s  score {score:g}", flush=True)
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tmp / "peer")],
                           capture_output=True)
    print(f"\n{folder}, median of {args.repeats} (wall seconds per submission, `cs330 grade` in a fresh process):")
    for kind in ("reference", "starter"):
        this, peer = statistics.median(times["this", kind]), statistics.median(times["peer", kind])
        print(f"  {kind:9s}  this {this:6.1f} s   peer ({args.peer}) {peer:6.1f} s   this/peer {this / peer:.2f}x")


if __name__ == "__main__":
    main()
