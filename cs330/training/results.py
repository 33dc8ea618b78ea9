"""One results schema for every run, written atomically and checked on load.

    {"name": str,                                       # the run, e.g. "lstm-k1-n2"
     "config": {...},                                   # the settings that define the run
     "env": {"versions": {...}, "device": str, "data_fingerprint": str | None},
     "history": [{"step": int, ...}, ...],              # one row per evaluation, steps increasing
     "final": {...}}                                    # the numbers the run is reported by

``merge`` collects runs into one table file, ``{key: entry}``, updated in place (e.g. the test
results of several runs).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

KEYS = {"name": str, "config": dict, "env": dict, "history": list, "final": dict}
ENV_KEYS = ("versions", "device", "data_fingerprint")


class ResultsError(ValueError):
    """A results file does not follow the schema; the message names the file and what is wrong."""


def make_results(name: str, config: dict, env: dict, history: list[dict], final: dict) -> dict:
    """A results dict in the schema (checked)."""
    results = {"name": name, "config": dict(config), "env": dict(env), "history": list(history), "final": dict(final)}
    problems = schema_problems(results)
    if problems:
        raise ResultsError(f"results of {name!r}: " + "; ".join(problems))
    return results


def schema_problems(results) -> list[str]:
    """What in ``results`` breaks the schema (empty when nothing does)."""
    if not isinstance(results, dict):
        return [f"expected a JSON object, got {type(results).__name__}"]
    problems = [f"missing key {k!r}" for k in KEYS if k not in results]
    problems += [f"{k!r} must be a {t.__name__}, got {type(results[k]).__name__}"
                 for k, t in KEYS.items() if k in results and not isinstance(results[k], t)]
    if problems:
        return problems
    problems += [f"env lacks {k!r}" for k in ENV_KEYS if k not in results["env"]]
    steps = []
    for i, row in enumerate(results["history"]):
        if not isinstance(row, dict) or not isinstance(row.get("step"), int):
            problems.append(f"history[{i}] has no integer 'step'")
        else:
            steps.append(row["step"])
    if any(b <= a for a, b in zip(steps, steps[1:])):
        problems.append(f"history steps do not increase: {steps}")
    return problems


def write_json_atomic(path, obj, sort_keys: bool = False) -> Path:
    """``json.dump`` to a temporary file in the same folder, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(obj, indent=1, sort_keys=sort_keys) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def save_results(path, results: dict) -> Path:
    """Check ``results`` against the schema and write it to ``path`` (JSON, atomically)."""
    problems = schema_problems(results)
    if problems:
        raise ResultsError(f"not saving {path}: " + "; ".join(problems))
    return write_json_atomic(path, results)


def load_results(path) -> dict:
    """Read a results file; ResultsError names the file when it is missing, not JSON, or off-schema."""
    path = Path(path)
    try:
        results = json.loads(path.read_text())
    except FileNotFoundError:
        raise ResultsError(f"{path}: no such results file") from None
    except json.JSONDecodeError as e:
        raise ResultsError(f"{path} is not valid JSON ({e}): a truncated or hand-edited file?") from None
    problems = schema_problems(results)
    if problems:
        raise ResultsError(f"{path} is not a results file of the cs330 schema: " + "; ".join(problems))
    return results


def merge(path, entries: dict) -> dict:
    """Add ``entries`` (``{key: entry}``) to the JSON table at ``path`` (created if absent), replacing
    entries of the same key; write it atomically; return the whole table."""
    path = Path(path)
    try:
        table = json.loads(path.read_text()) if path.is_file() else {}
    except json.JSONDecodeError as e:
        raise ResultsError(f"{path} is not valid JSON ({e}); not overwriting it") from None
    if not isinstance(table, dict):
        raise ResultsError(f"{path} holds a {type(table).__name__}, not a table of runs; not overwriting it")
    table.update(entries)
    write_json_atomic(path, table, sort_keys=True)
    return table
