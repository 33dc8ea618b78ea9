"""Every command that the results documents quote runs with today's flags.

Finds each command in the fenced ```bash blocks of ``hw*/RESULTS.md`` and ``bench/README.md`` that
starts with ``python <path>.py``, ``python -m cs330.cli`` or ``cs330`` (after any ``VAR=value``
prefixes and ``nice``), and parses its arguments with the script's own parser (``build_parser()``;
``cs330.cli.build_parser()`` for ``cs330``) without running anything. One test per (document, line).
The shell scripts that hand their extra arguments to a python script (``WRAPPERS``) are checked as
that script's command.

Rules for the documents: one command per line (``\\`` continuations are joined); a script path is
relative to the document's folder or, failing that, to the repository root; ``$VAR`` is expanded from
assignment-only lines earlier in the same block (``COMMON="--steps 400"``) and left as it is otherwise.
Flags must be spelled in full (the parsers' prefix matching is turned off here), so that a shortened
flag that only works by accident fails too.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from conftest import imported_from

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted(ROOT.glob("hw*/RESULTS.md")) + [ROOT / "bench" / "README.md"]
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
# shell script -> (the python script it hands "$@" to, positional arguments it takes first, argv it adds)
WRAPPERS = {
    "hw2_maml_protonet/test_shots.sh": ("train.py", 2, ["--test"]),
    "hw0_multitask/run_all.sh": ("train.py", 0, []),
    "hw3_finetune/run_all.sh": ("run.py", 0, ["reviews"]),
}
VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def bash_blocks(text: str):
    """(first line number, lines) of every fenced ```bash block."""
    block, start = None, 0
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if block is None:
            if stripped.startswith("```") and stripped[3:].strip() in ("bash", "sh", "shell"):
                block, start = [], number + 1
        elif stripped.startswith("```"):
            yield start, block
            block = None
        else:
            block.append(line)


def logical_lines(start: int, lines: list[str]):
    """(line number, text) with backslash continuations joined."""
    pending, first = "", None
    for number, line in enumerate(lines, start):
        if first is None:
            first = number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        yield first, pending + line
        pending, first = "", None
    if pending:
        yield first, pending


def words(line: str) -> list[str]:
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    return list(lexer)


def segments(tokens: list[str]):
    """Split a command line at ; && || | into simple commands."""
    part = []
    for token in tokens:
        if token and set(token) <= set(";&|"):
            if part:
                yield part
            part = []
        else:
            part.append(token)
    if part:
        yield part


def expand(line: str, variables: dict[str, str]) -> str:
    return VARIABLE.sub(lambda m: variables.get(m.group(1) or m.group(2), m.group(0)), line)


def wrapped(doc: Path, word: str):
    """The WRAPPERS entry of a shell script named ``word`` in ``doc``'s folder (or the root), or None."""
    for path in (doc.parent / word, ROOT / word):
        if path.is_file():
            key = path.resolve().relative_to(ROOT).as_posix()
            return WRAPPERS.get(key)
    return None


def commands(doc: Path):
    """(line number, words) of every python/cs330 command of ``doc``'s bash blocks."""
    for start, lines in bash_blocks(doc.read_text()):
        variables: dict[str, str] = {}
        for number, line in logical_lines(start, lines):
            for command in segments(words(expand(line, variables))):
                if all(ASSIGNMENT.match(w) for w in command):  # COMMON="..." defines a variable for later lines
                    variables.update(w.split("=", 1) for w in command)
                    continue
                while command and (ASSIGNMENT.match(command[0]) or command[0] in ("nice", "-n", "19", "time")):
                    command = command[1:]
                if command[:1] == ["bash"]:
                    command = command[1:]
                wrapper = command and wrapped(doc, command[0])
                if wrapper:
                    script, positional, added = wrapper
                    command = ["python", script, *added, *command[1 + positional:]]
                if command[:1] == ["cs330"] or command[:3] == ["python", "-m", "cs330.cli"] \
                        or command[:1] == ["python"] and len(command) > 1 and command[1].endswith(".py"):
                    yield number, command


CASES = [pytest.param(doc, number, command, id=f"{doc.relative_to(ROOT)}:{number}")
         for doc in DOCS for number, command in commands(doc)]


_parsers: dict = {}


def parser_of(doc: Path, command: list[str]):
    """(parser, argv) for a command: its script's ``build_parser()`` or the cs330 command line's."""
    if command[0] == "cs330" or command[1:3] == ["-m", "cs330.cli"]:
        argv = command[1:] if command[0] == "cs330" else command[3:]
        key = "cs330"
        if key not in _parsers:
            try:  # the cs330 command line itself has its own tests; here only the documents' flags count
                from cs330.cli import build_parser
                _parsers[key] = build_parser()
            except ImportError as error:
                _parsers[key] = error
        if isinstance(_parsers[key], ImportError):
            pytest.skip(f"cs330.cli does not import here: {_parsers[key]}")
        return _parsers[key], argv
    script = command[1]
    path = next((p for p in (doc.parent / script, ROOT / script) if p.is_file()), None)
    assert path is not None, f"{script}: no such script next to {doc.relative_to(ROOT)} or in the repository root"
    path = path.resolve()
    if path not in _parsers:
        with imported_from(path.parent, path.stem) as module:
            assert hasattr(module, "build_parser"), f"{path.relative_to(ROOT)} has no build_parser()"
            _parsers[path] = module.build_parser()
            _parsers[path].prog = path.relative_to(ROOT).as_posix()  # error messages name the script
    return _parsers[path], command[2:]


def strict(parser):
    """Turn off prefix matching of long flags, in the parser and its subparsers."""
    parser.allow_abbrev = False
    for action in parser._actions:
        for sub in (getattr(action, "choices", None) or {}).values() if hasattr(action, "_name_parser_map") else ():
            strict(sub)
    return parser


def test_the_documents_quote_commands():
    """The collector finds commands (a broken fence or a renamed document would check nothing)."""
    assert len(CASES) >= 20, [c.id for c in CASES]
    for doc in DOCS:
        where = doc.relative_to(ROOT)
        assert any(c.values[0] == doc for c in CASES), f"no python/cs330 command in a ```bash block of {where}"


@pytest.mark.parametrize("doc, number, command", CASES)
def test_command_parses(doc, number, command, capsys):
    parser, argv = parser_of(doc, command)
    try:
        strict(parser).parse_args(argv)
    except SystemExit as exit:
        if exit.code not in (0, None):
            error = capsys.readouterr().err.strip().splitlines()[-1:]
            pytest.fail(f"{doc.relative_to(ROOT)}:{number}: {shlex.join(command)}\n  {' '.join(error)}", pytrace=False)


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: str(d.relative_to(ROOT)))
def test_no_data_path_of_one_machine(doc):
    """Commands name the data root as $CS330_DATA (cs330.data.root), not one machine's folder."""
    hits = [f"{doc.relative_to(ROOT)}:{n}: {line.strip()}" for n, line in enumerate(doc.read_text().splitlines(), 1)
            if re.search(r"/work/|shared/data", line)]
    assert not hits, "a data path of one machine (use $CS330_DATA):\n" + "\n".join(hits)
