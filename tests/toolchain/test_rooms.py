"""The package's rooms and the one-way imports between them (every import, module-level or inside a function).

A room is a subpackage (``cs330.data``, ``cs330.grading.trusted``, ...) or a lone module
(``cs330.runtime``, ``cs330.grading.wire``). The imports between rooms form no cycle, the worker
(which runs beside student code) uses nothing of the trusted side, and what ships in the student
wheel reaches course-only code only at the two places that load it on demand.
"""

import ast
from pathlib import Path

import pytest

import cs330
from cs330.grading.authoring.release import COURSE_ONLY

PACKAGE = Path(cs330.__file__).parent
SUBPACKAGES = {"cs330.data", "cs330.models", "cs330.training", "cs330.grading.authoring", "cs330.grading.trusted",
               "cs330.grading.worker", "cs330.grading.instructor"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def room(module: str) -> str:
    for package in SUBPACKAGES:
        if module == package or module.startswith(package + "."):
            return package
    return module


def imports(path: Path) -> list[tuple[str, int, bool]]:
    """(imported cs330 module, line, at module level) for every import in ``path``."""
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    name = module_name(path)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against this module's package
                package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            # `from cs330.grading import cli` imports the module cs330.grading.cli
            targets = [
                f"{base}.{alias.name}"
                if (PACKAGE.parent / f"{base}.{alias.name}".replace(".", "/")).with_suffix(".py").is_file()
                or (PACKAGE.parent / f"{base}.{alias.name}".replace(".", "/")).is_dir()
                else base
                for alias in node.names
            ]
        else:
            continue
        out += [(t, node.lineno, id(node) in top) for t in targets if t == "cs330" or t.startswith("cs330.")]
    return out


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
EDGES = [(name, target, line, top) for name, path in MODULES.items() for target, line, top in imports(path)]


def is_course_only(module: str) -> bool:
    return any(module == "cs330." + part.removesuffix(".py").replace("/", ".")
               or module.startswith("cs330." + part.replace("/", ".") + ".") for part in COURSE_ONLY)


def test_rooms_import_one_way():
    graph: dict[str, set[str]] = {}
    for source, target, _, _ in EDGES:
        if room(source) != room(target) and room(target) != "cs330":  # `import cs330` (its __version__) reaches nothing
            graph.setdefault(room(source), set()).add(room(target))
    print("rooms:", *(f"{r} -> {', '.join(sorted(t))}" for r, t in sorted(graph.items())), sep="\n  ")

    def cycle_from(node, path):
        if node in path:
            return path[path.index(node):] + [node]
        for nxt in sorted(graph.get(node, ())):
            found = cycle_from(nxt, path + [node])
            if found:
                return found
        return None

    for node in sorted(graph):
        found = cycle_from(node, [])
        assert found is None, "an import cycle between rooms: " + " -> ".join(found)


@pytest.mark.parametrize(
    "source_room, forbidden",
    [
        (
            "cs330.grading.worker",
            (
                "cs330.grading.trusted",
                "cs330.grading.authoring",
                "cs330.grading.instructor",
                "cs330.grading.plugin",
                "cs330.grading.cli",
            ),
        ),
        ("cs330.grading.wire", ("cs330.grading.",)),
        (
            "cs330.grading.authoring",
            ("cs330.grading.trusted", "cs330.grading.worker", "cs330.grading.instructor", "cs330.grading.wire"),
        ),
        ("cs330.grading.code", ("cs330.grading.",)),
        ("cs330.data", ("cs330.grading", "cs330.training")),
        ("cs330.models", ("cs330.grading", "cs330.training")),
        ("cs330.training", ("cs330.grading",)),
    ],
)
def test_a_room_uses_nothing_of_the_rooms_it_must_not(source_room, forbidden):
    bad = [f"{MODULES[s].relative_to(PACKAGE.parent)}:{line} imports {t}" for s, t, line, _ in EDGES
           if room(s) == source_room and t.startswith(forbidden)]
    assert not bad, "\n".join(bad)


# The student wheel's two doors to course-only code, each opened only where that code is installed.
ON_DEMAND = {("cs330.grading.plugin", "cs330.grading.trusted"),  # the autograder's test process (--cs330-report-fd)
             ("cs330.cli", "cs330.grading.instructor")}  # the course's subcommands, when installed


def test_student_wheel_code_needs_no_course_only_code():
    bad = [
        f"{MODULES[s].relative_to(PACKAGE.parent)}:{line} imports {t}" + (" at module level" if top else "")
        for s, t, line, top in EDGES
        if not is_course_only(s) and is_course_only(t) and (top or (s, room(t)) not in ON_DEMAND)
    ]
    assert not bad, "\n".join(bad)


def test_the_rules_see_the_imports():
    """The checks above are only as good as the import graph: it must hold the edges we know of."""
    seen = {(s, t) for s, t, _, _ in EDGES}
    for edge in [
        ("cs330.grading.trusted.runner", "cs330.grading.worker.jail"),
        ("cs330.grading.plugin", "cs330.grading.trusted.session"),
        ("cs330.grading.cli", "cs330.grading.authoring.submit"),
        ("cs330.grading.worker.serve", "cs330.grading.wire"),
    ]:
        assert edge in seen, f"{edge} not found among {len(seen)} imports"
    assert is_course_only("cs330.grading.trusted.grader") and is_course_only("cs330.grading.wire")
    assert not is_course_only("cs330.grading.authoring.submit") and not is_course_only("cs330.grading.plugin")


def test_package_docstring_lists_every_room():
    listed = (PACKAGE / "__init__.py").read_text() + (PACKAGE / "grading" / "__init__.py").read_text()
    rooms = {room(m) for m in MODULES} - {"cs330", "cs330.grading"}
    missing = [r for r in sorted(rooms) if r.rsplit(".", 1)[-1] not in listed]
    assert not missing, f"cs330/__init__.py or cs330/grading/__init__.py does not name {missing}"
