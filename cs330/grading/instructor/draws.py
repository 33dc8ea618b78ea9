"""``cs330 draws``: how often the reference passes a draw-dependent test, over many draws.

A graded test that draws its inputs (``api.drawn_seed``) and checks a short training run against a bar
must pass for every draw a correct solution can meet: a failure there costs an honest student points.
This runs the homework's own tests on the reference, once per draw (a fresh secret each), and counts::

    cs330 draws hw0 --id 5a-0-basic --id 5a-1-hidden --n 30

The secrets are ``sha256("cs330 draw <i>")``: public, so a reported failure can be rerun with ``--first i``.
The reference runs in this process's own pytest (no worker): the count is of the tests, not of the sandbox.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

from cs330.grading import api
from cs330.grading.authoring.homework import Homework


def secret(i: int) -> str:
    return hashlib.sha256(f"cs330 draw {i}".encode()).hexdigest()


def run_draw(hw: Homework, ids: list[str], i: int, folder: Path) -> dict[str, str]:
    """{test name: passed | failed | skipped} for the reference under draw ``i``."""
    (folder / "secret").write_text(secret(i))
    report = folder / f"draw-{i}.xml"
    cmd = [sys.executable, "-m", "pytest", str(hw.tests_dir), "-q", "-p", "no:cacheprovider", f"--junitxml={report}"]
    for test_id in ids:
        cmd += ["--cs330-id", test_id]
    env = {**os.environ, api.ENV_SECRET: str(folder / "secret")}
    subprocess.run(cmd, cwd=hw.root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out = {}
    for case in ET.parse(report).iter("testcase"):
        failed = case.find("failure") is not None or case.find("error") is not None
        out[case.get("name")] = "failed" if failed else "skipped" if case.find("skipped") is not None else "passed"
    return out


def main(hw: Homework, args) -> int:
    passes: Counter = Counter()
    runs: Counter = Counter()
    failures: dict[str, list[int]] = {}
    with tempfile.TemporaryDirectory(prefix="cs330-draws-") as tmp:
        for i in range(args.first, args.first + args.n):
            for name, status in run_draw(hw, args.ids, i, Path(tmp)).items():
                runs[name] += 1
                passes[name] += status == "passed"
                if status != "passed":
                    failures.setdefault(name, []).append(i)
            print(f"draw {i}: " + ", ".join(f"{n} {passes[n]}/{runs[n]}" for n in sorted(runs)), flush=True)
    print(f"\n{hw.name}: the reference's pass rate over draws {args.first}..{args.first + args.n - 1}")
    for name in sorted(runs):
        failed = f"  (failed draws {failures[name]})" if name in failures else ""
        print(f"  {name}: {passes[name]}/{runs[name]}{failed}")
    return 0 if runs and all(passes[n] == runs[n] for n in runs) else 1
