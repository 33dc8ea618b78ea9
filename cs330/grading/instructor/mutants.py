"""``cs330 mutants``: does a homework's autograder catch wrong solutions? (an instructor's tool).

A *mutant* is the reference solution with one small, plausible mistake in a solution region
(``# BEGIN SOLUTION`` / ``# END SOLUTION`` lines and inline ``# SOLUTION`` lines of the submitted
modules): an operator swapped, a constant or a ``dim`` changed, a ``.detach()`` or a
``torch.no_grad()`` removed, ``mean`` for ``sum``, a statement skipped, an update made in place...
Each mutant is graded by the real grader (:func:`cs330.grading.trusted.grader.grade_bundle`, on the
bundle that ``grader.grade`` builds, built once here): it is *killed* if it scores fewer points
than the reference (a timeout or a crash loses points too), it *survives* with full marks.
Survivors are reviewed by hand: a missing test, or an *equivalent* mutant (same behaviour as the
reference on every input the contract allows, e.g. a ``.detach()`` removed where no gradient
flows), listed with its reason in
``tests/mutation/<hw folder>.toml``::

    [equivalent]
    "maml.py:75:swap-op-Add-Sub" = "the two terms are equal here: adding or subtracting zero"

Score = killed / (mutants - equivalent). Mutant ids (``file:line:operator``, ``#2`` for the second
of the same kind on a line) are stable while the line stays where it is.
"""

from __future__ import annotations

import ast
import copy
import hashlib
import json
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import cs330
from cs330.grading.trusted import grader
from cs330.grading.authoring import homework
from cs330.grading.authoring.markers import MarkerError, strip_solutions

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class MutantsError(RuntimeError):
    """The measurement cannot be made (the reference does not get full marks, a bad equivalence file)."""


# ---------------------------------------------------------------------------------------------
# Operators
# ---------------------------------------------------------------------------------------------

BINOP_SWAPS = {
    ast.Add: [ast.Sub], ast.Sub: [ast.Add], ast.Mult: [ast.Div], ast.Div: [ast.Mult],
    ast.FloorDiv: [ast.Div], ast.Mod: [ast.FloorDiv], ast.Pow: [ast.Mult], ast.MatMult: [ast.Mult],
    ast.BitAnd: [ast.BitOr], ast.BitOr: [ast.BitAnd], ast.LShift: [ast.RShift], ast.RShift: [ast.LShift],
}
CMP_SWAPS = {
    ast.Lt: [ast.LtE, ast.Gt],
    ast.LtE: [ast.Lt, ast.GtE],
    ast.Gt: [ast.GtE, ast.Lt],
    ast.GtE: [ast.Gt, ast.LtE],
    ast.Eq: [ast.NotEq],
    ast.NotEq: [ast.Eq],
    ast.Is: [ast.IsNot],
    ast.IsNot: [ast.Is],
    ast.In: [ast.NotIn],
    ast.NotIn: [ast.In],
}
BOOLOP_SWAPS = {ast.And: ast.Or, ast.Or: ast.And}
# method / function names swapped for one another (x.mean() -> x.sum(), F.softmax -> F.log_softmax)
CALL_SWAPS = {
    "mean": "sum", "sum": "mean", "softmax": "log_softmax", "log_softmax": "softmax", "max": "min", "min": "max",
    "argmax": "argmin", "argmin": "argmax", "amax": "amin", "amin": "amax",
}
BUILTIN_SWAPS = {"max": "min", "min": "max"}  # plain-name calls (sum -> mean would only be a NameError)
# in-place <-> out-of-place tensor methods (x.add_(y) -> x.add(y) forgets the update; the reverse changes shared state)
INPLACE_SWAPS = {name: name + "_" for name in ("add", "sub", "mul", "div", "clamp", "masked_fill")}
INPLACE_SWAPS.update({v: k for k, v in list(INPLACE_SWAPS.items())})
DIM_SWAPS = {-1: -2, -2: -1, 0: 1, 1: 0}
DIM_KEYWORDS = ("dim", "axis")
# position of a positional dim argument in the method form (x.sum(1)); the function form
# (torch.sum(x, 1), F.softmax(x, -1), torch.cat(xs, 0)) has it one later
DIM_POSITION = {
    "sum": 0, "mean": 0, "softmax": 0, "log_softmax": 0, "argmax": 0, "argmin": 0, "max": 0, "min": 0, "amax": 0,
    "amin": 0, "logsumexp": 0, "cumsum": 0, "prod": 0, "std": 0, "var": 0, "unsqueeze": 0, "squeeze": 0, "size": 0,
    "gather": 0, "index_select": 0, "flatten": 0, "split": 1, "chunk": 1, "topk": 1, "cat": 0, "stack": 0,
    "transpose": 0,
}
FUNCTION_NAMESPACES = {"torch", "F", "functional", "nn", "np", "numpy"}
GRAD_MODES = {"no_grad", "enable_grad", "inference_mode", "set_grad_enabled"}


@dataclass(frozen=True)
class Mutant:
    id: str  # "maml.py:75:swap-op-Add-Sub"
    file: str  # path of the module in the homework ("maml.py")
    line: int  # first line of the mutated code, in the reference file
    operator: str
    before: str  # the reference's lines that change
    after: str  # what they become
    text: str = field(repr=False)  # the whole mutated file

    @property
    def diff(self) -> str:
        """A one-line diff: ``old  ->  new`` (whitespace collapsed)."""
        flat = lambda s: " ".join(s.split())  # noqa: E731
        return _clip(f"{flat(self.before)}  ->  {flat(self.after)}", 200)


@dataclass
class _Edit:
    """Replace the source from (line, col) to (end_line, end_col) (1-based lines, UTF-8 byte
    columns, as the ast gives them) with ``text``; named ``operator``."""

    node: ast.AST
    operator: str
    text: str
    wrap: bool = False  # put the text in parentheses (unless the source already has them there)
    line: int = 0
    col: int = 0
    end_line: int = 0
    end_col: int = 0

    def __post_init__(self):
        if not self.line:
            self.line, self.col = self.node.lineno, self.node.col_offset
            self.end_line, self.end_col = self.node.end_lineno, self.node.end_col_offset


def solution_lines(text: str, path: str = "<string>") -> set[int]:
    """Line numbers (1-based) of the code students write: inside BEGIN/END SOLUTION, or inline SOLUTION."""
    return set(strip_solutions(text, path).removed_at)  # MarkerError (file:line) on unbalanced or nested markers


def enumerate_mutants(text: str, path: str = "<string>") -> list[Mutant]:
    """Every mutant of the solution regions of one module's source, in a fixed order (by line,
    column, operator). Mutants that do not parse, or that are the same program as another one (or
    as the reference), are left out."""
    region = solution_lines(text, path)
    if not region:
        return []
    tree = ast.parse(text, filename=path)
    edits = _Collector(region).collect(tree)
    edits.sort(key=lambda e: (e.line, e.col))  # stable: operators keep their order at one place
    reference = ast.dump(tree)
    seen: set[str] = {reference}
    counts: dict[str, int] = {}
    out: list[Mutant] = []
    for edit in edits:
        mutated, before, after = _apply(text, edit)
        try:
            dump = ast.dump(ast.parse(mutated))
        except SyntaxError:
            continue
        if dump in seen:
            continue
        seen.add(dump)
        base = f"{path}:{edit.line}:{edit.operator}"
        counts[base] = counts.get(base, 0) + 1
        mid = base if counts[base] == 1 else f"{base}#{counts[base]}"
        out.append(
            Mutant(id=mid, file=path, line=edit.line, operator=edit.operator, before=before, after=after, text=mutated)
        )
    return out


class _Collector:
    """Walks a module's ast and proposes one :class:`_Edit` per mutation of a node inside a region."""

    def __init__(self, region: set[int]):
        self.region = region
        self.edits: list[_Edit] = []
        self.skip: set[int] = set()  # ids of nodes a more specific operator already mutates (dims)
        self.parent: ast.AST | None = None  # of the node being mutated

    def collect(self, tree: ast.Module) -> list[_Edit]:
        self._visit(tree, parent=None, function=None)
        return self.edits

    def _inside(self, node: ast.AST) -> bool:
        return all(n in self.region for n in range(node.lineno, node.end_lineno + 1))

    def _visit(self, node: ast.AST, parent, function) -> None:
        if isinstance(node, ast.JoinedStr):  # f-strings: positions are unreliable, and nothing to grade there
            return
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            function = node
        if hasattr(node, "lineno") and self._inside(node):
            self.parent = parent
            self._mutate(node, parent, function)
        for name, value in ast.iter_fields(node):
            if name in ("annotation", "returns", "type_comment", "decorator_list"):
                continue
            for child in value if isinstance(value, list) else [value]:
                if isinstance(child, ast.AST):
                    self._visit(child, node, function)

    def _add(self, node: ast.AST, operator: str, replacement, **span) -> None:
        """Propose replacing ``node`` by ``replacement`` (an ast node, or source text)."""
        wrap = False
        if isinstance(replacement, ast.AST):
            ast.fix_missing_locations(replacement)
            text = ast.unparse(replacement)
            # an operator inside a larger expression keeps its own operands: (a - b) * c, not a - b * c
            wrap = isinstance(replacement, ast.expr) and not _atom(replacement) and not self._bare(node)
        else:
            text = replacement
        self.edits.append(_Edit(node, operator, text, wrap=wrap, **span))

    def _number(self, node: ast.expr, value: int | float) -> str:
        """``value`` as source in the place of ``node``: -2 needs parentheses only where a unary minus
        would bind less tightly than what surrounds it (``(-2) ** x``, ``(-2).real``)."""
        parent = self.parent
        tight = (isinstance(parent, ast.BinOp) and isinstance(parent.op, ast.Pow) and parent.left is node) or (
            isinstance(parent, (ast.Attribute, ast.Subscript)) and parent.value is node)
        return f"({value!r})" if value < 0 and tight else repr(value)

    def _bare(self, node: ast.AST) -> bool:
        """Whether an expression needs no parentheses where it stands (a statement's value, an argument)."""
        parent = self.parent
        return isinstance(parent, (ast.stmt, ast.keyword)) or (isinstance(parent, ast.Call) and node in parent.args)

    def _mutate(self, node: ast.AST, parent, function) -> None:
        ctx = getattr(node, "ctx", None)
        if id(node) in self.skip or (ctx is not None and not isinstance(ctx, ast.Load)):  # not assignment targets
            return
        if isinstance(node, ast.BinOp):
            for new in BINOP_SWAPS.get(type(node.op), []):
                self._add(node, f"swap-op-{_name(node.op)}-{new.__name__}", ast.BinOp(node.left, new(), node.right))
        elif isinstance(node, ast.BoolOp):
            new = BOOLOP_SWAPS[type(node.op)]
            self._add(node, f"swap-op-{_name(node.op)}-{new.__name__}", ast.BoolOp(new(), node.values))
        elif isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                for new in CMP_SWAPS.get(type(op), []):
                    ops = [*node.ops[:i], new(), *node.ops[i + 1 :]]
                    self._add(
                        node, f"swap-op-{_name(op)}-{new.__name__}", ast.Compare(node.left, ops, node.comparators)
                    )
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.Not)):
            self._add(node, "remove-neg" if isinstance(node.op, ast.USub) else "remove-not", node.operand)
        elif isinstance(node, ast.Constant):
            self._constant(node, negated=isinstance(parent, ast.UnaryOp) and isinstance(parent.op, ast.USub))
        elif isinstance(node, ast.Call):
            self._call(node)
        if isinstance(node, ast.stmt):
            self._statement(node, function)

    def _constant(self, node: ast.Constant, negated: bool) -> None:
        """0 <-> 1, c -> c + 1, c -> -c (unless already negated: that is remove-neg), c -> c / 2
        (an odd int is not halved: 0.5 for 1 is a TypeError in any index, shape or count, not a mistake)."""
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return
        half = value / 2 if isinstance(value, float) else value // 2 if value % 2 == 0 else None
        swap = type(value)(1) if value == 0 else type(value)(0) if value == 1 else None
        candidates = [swap, value + 1, None if negated else -value, half]
        done = {value}
        for new in candidates:
            if new is None or new in done:
                continue
            done.add(new)
            self._add(node, f"const-{value!r}-to-{new!r}", self._number(node, new))

    def _call(self, node: ast.Call) -> None:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
        # removing .detach() / .detach_()
        if isinstance(func, ast.Attribute) and name in ("detach", "detach_") and not node.args and not node.keywords:
            self._add(node, f"remove-{name}", func.value)
        # mean <-> sum, softmax <-> log_softmax, max <-> min, argmax <-> argmin; in-place <-> out-of-place
        if isinstance(func, ast.Attribute):
            for new in (CALL_SWAPS.get(name), INPLACE_SWAPS.get(name)):
                if new:
                    self._add(
                        node,
                        f"swap-call-{name}-{new}",
                        ast.Call(ast.Attribute(func.value, new, ast.Load()), node.args, node.keywords),
                    )
        elif name in BUILTIN_SWAPS:
            new = BUILTIN_SWAPS[name]
            self._add(node, f"swap-call-{name}-{new}", ast.Call(ast.Name(new, ast.Load()), node.args, node.keywords))
            return  # max(a, 1): no dim there
        # boolean keywords (create_graph=, retain_graph=, keepdim=, ...) and dim= / axis=
        for i, kw in enumerate(node.keywords):
            if isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, bool):
                keywords = [
                    *node.keywords[:i],
                    ast.keyword(kw.arg, ast.Constant(not kw.value.value)),
                    *node.keywords[i + 1 :],
                ]
                self._add(node, f"toggle-{kw.arg}", ast.Call(func, node.args, keywords))
            elif kw.arg in DIM_KEYWORDS:
                self._dim(kw.value)
        # positional dims: x.sum(1), torch.cat(xs, 0), F.softmax(x, -1)
        position = DIM_POSITION.get(name)
        if position is not None:
            if _function_form(func):
                position += 1
            for arg in node.args[position : position + (2 if name == "transpose" else 1)]:
                self._dim(arg)

    def _dim(self, value: ast.expr) -> None:
        dim = _int_literal(value)
        if dim in DIM_SWAPS:
            new = DIM_SWAPS[dim]
            self._add(value, f"dim-{dim}-to-{new}", self._number(value, new))
            self.skip.update(id(n) for n in ast.walk(value))  # no constant / sign mutants of a dim

    def _statement(self, node: ast.stmt, function) -> None:
        if isinstance(node, ast.AugAssign):
            for new in BINOP_SWAPS.get(type(node.op), []):
                self._add(
                    node, f"swap-op-{_name(node.op)}-{new.__name__}", ast.AugAssign(node.target, new(), node.value)
                )
            target = copy.deepcopy(node.target)
            _set_load(target)
            self._add(node, "to-out-of-place", ast.Assign([node.target], ast.BinOp(target, node.op, node.value)))
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.value, ast.BinOp):
            target = node.targets[0]
            if not isinstance(target, ast.Tuple) and ast.unparse(target) == ast.unparse(node.value.left):
                self._add(node, "to-inplace", ast.AugAssign(target, node.value.op, node.value.right))
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            self._unwrap_with(node)
        last_return = function is not None and isinstance(node, ast.Return) and function.body[-1] is node
        docstring = (
            isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
        )
        if not (
            last_return
            or docstring
            or isinstance(node, (ast.Pass, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        ):
            self._add(node, "stmt-to-pass", "pass")

    def _unwrap_with(self, node: ast.With) -> None:
        """``with torch.no_grad(): body`` -> ``body`` (dedented), when every item is a grad mode."""
        names = [_call_name(item.context_expr) for item in node.items]
        if not names or not all(n in GRAD_MODES for n in names) or any(item.optional_vars for item in node.items):
            return
        first = node.body[0]
        if first.lineno == node.lineno:  # `with no_grad(): x = f()` on one line
            if len(node.body) == 1:
                self._add(node, f"remove-with-{names[0]}", ast.unparse(first))
            return
        self._add(
            node,
            f"remove-with-{names[0]}",
            _Dedent(first.lineno, node.end_lineno, first.col_offset - node.col_offset),
            line=node.lineno,
            col=node.col_offset,
            end_line=node.end_lineno,
            end_col=node.end_col_offset,
        )


@dataclass(frozen=True)
class _Dedent:
    """A replacement text made from the source itself: lines ``first..last`` dedented by ``by``."""

    first: int
    last: int
    by: int


def _apply(text: str, edit: _Edit) -> tuple[str, str, str]:
    """The mutated file, and the reference's lines that changed and what they became."""
    lines = text.splitlines(keepends=True)
    raw = [line.encode() for line in lines]
    start, end = edit.line - 1, edit.end_line - 1
    prefix = raw[start][: edit.col]
    if isinstance(edit.text, _Dedent):  # whole lines: the body's, now at the indentation of the `with`
        dedent = edit.text
        new = b"".join(
            line[min(dedent.by, len(line) - len(line.lstrip(b" \t"))) :] for line in raw[dedent.first - 1 : dedent.last]
        ).decode()
    else:
        suffix = raw[end][edit.end_col :]
        text = edit.text.encode()
        if edit.wrap and not (prefix.rstrip().endswith(b"(") and suffix.lstrip().startswith(b")")):
            text = b"(" + text + b")"
        new = (prefix + text + suffix).decode()
    before = "".join(lines[start : end + 1])
    mutated = "".join(lines[:start]) + new + "".join(lines[end + 1 :])
    return mutated, before.rstrip("\n"), new.rstrip("\n")


def _atom(node: ast.expr) -> bool:
    return isinstance(
        node, (ast.Name, ast.Attribute, ast.Call, ast.Subscript, ast.List, ast.Tuple, ast.Dict, ast.Set)
    ) or (isinstance(node, ast.Constant) and not (isinstance(node.value, (int, float)) and node.value < 0))


def _name(op: ast.AST) -> str:
    return type(op).__name__


def _call_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Call):
        node = node.func
    return node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else None


def _function_form(func: ast.expr) -> bool:
    """``torch.sum`` / ``F.softmax`` / ``torch.nn.functional.softmax`` (the tensor is an argument),
    not ``x.sum`` (the tensor is the receiver)."""
    if not isinstance(func, ast.Attribute):
        return True
    value = func.value
    return _call_name(value) in FUNCTION_NAMESPACES


def _int_literal(node: ast.expr) -> int | None:
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, RecursionError):
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _set_load(node: ast.AST) -> None:
    for n in ast.walk(node):
        if hasattr(n, "ctx"):
            n.ctx = ast.Load()


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


# ---------------------------------------------------------------------------------------------
# A homework's mutants, graded
# ---------------------------------------------------------------------------------------------

def homework_mutants(hw: homework.Homework, files: list[str] | None = None) -> list[Mutant]:
    """The mutants of every submitted module of ``hw`` (or only of ``files``, e.g. ["maml.py"])."""
    modules = [m.replace(".", "/") + ".py" for m in hw.submitted_modules()]
    if files:
        unknown = [f for f in files if f not in modules]
        if unknown:
            raise MutantsError(f"{unknown} are not submitted modules of {hw.name} (those are {modules})")
        modules = [m for m in modules if m in files]
    out: list[Mutant] = []
    for rel in modules:
        path = hw.root / rel
        if path.is_file():
            out += enumerate_mutants(path.read_text(), rel)
    return out


def equivalence_file(hw: homework.Homework) -> Path:
    """``tests/mutation/<hw folder>.toml`` of the course repository that holds the cs330 package (where
    the package is installed from elsewhere: ``tests/mutation`` beside the homework's folder)."""
    from cs330.data.root import repo_root

    root = repo_root() or hw.root.parent
    return root / "tests" / "mutation" / f"{hw.folder}.toml"


def load_equivalent(path: Path) -> dict[str, str]:
    """Reviewed equivalent mutants: id -> why they cannot be killed."""
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise MutantsError(f"{path}: {e}") from None
    table = data.get("equivalent", {})
    if set(data) - {"equivalent"} or not all(isinstance(v, str) and v.strip() for v in table.values()):
        raise MutantsError(f'{path}: expected only an [equivalent] table of "mutant id" = "reason" lines')
    return dict(table)


@dataclass
class Result:
    id: str
    file: str
    line: int
    operator: str
    diff: str
    status: str  # killed | survived | equivalent
    score: float | None = None
    max_score: float | None = None
    lost: list[str] = field(default_factory=list)  # ids of the tests that lost points
    why: dict[str, str] = field(default_factory=dict)  # their status and message
    seconds: float = 0.0  # the grading's wall time
    tests_seconds: float = 0.0  # of which running tests (the rest: starting the test process and the worker)
    until_loss_seconds: float = 0.0  # running the tests up to the first one that lost points (in id order)
    note: str = ""  # the equivalence reason, or a grader fault
    stage: str = "full"  # "first": killed by the --first test files alone (score, lost: of that grading)
    sha: str = ""  # of the mutated file: a verdict is reused (--resume) only for the same text


@dataclass
class Measurement:
    homework: str
    reference_score: float
    max_score: float
    results: list[Result]
    stale: list[str]  # equivalence entries that no longer name a mutant
    seconds: float
    jobs: int
    fingerprint: str = ""  # of the bundle (tests, reference, starter) and the cs330 package that graded

    def by_file(self) -> dict[str, dict[str, float]]:
        rows: dict[str, list[Result]] = {}
        for r in self.results:
            rows.setdefault(r.file, []).append(r)
        return {f: _counts(rs) for f, rs in rows.items()}

    def total(self) -> dict[str, float]:
        return _counts(self.results)

    def survivors(self) -> list[Result]:
        return [r for r in self.results if r.status == "survived"]

    def table(self) -> str:
        header = ("file", "mutants", "killed", "equivalent", "survived", "score")
        rows = [
            (f, *(f"{row[k]:g}" for k in header[1:5]), f"{100 * row['score']:.1f}%")
            for f, row in self.by_file().items()
        ]
        total = self.total()
        rows.append(("total", *(f"{total[k]:g}" for k in header[1:5]), f"{100 * total['score']:.1f}%"))
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        fmt = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
        rule = "  ".join("-" * w for w in widths)
        lines = [
            f"mutants of {self.homework} (reference {self.reference_score:g}/{self.max_score:g})",
            fmt(header),
            rule,
            *map(fmt, rows[:-1]),
            rule,
            fmt(rows[-1]),
        ]
        graded = [r for r in self.results if r.status != "equivalent" and r.seconds]
        if graded:
            per = sum(r.seconds for r in graded) / len(graded)
            tests = sum(r.tests_seconds for r in graded) / len(graded)
            lines.append(
                f"{len(graded)} mutants graded in {self.seconds:.0f} s with --jobs {self.jobs}: {per:.1f} s a grading, "
                f"{tests:.1f} s of it running tests, {per - tests:.1f} s starting processes"
            )
            killed = [r for r in graded if r.status == "killed"]
            early = [r for r in killed if r.stage == "first"]
            if early:
                lines.append(
                    f"({len(early)} of the {len(killed)} killed mutants lost points in the --first test files alone, "
                    f"{sum(r.seconds for r in early) / len(early):.1f} s a grading)"
                )
            if killed:
                after = sum(r.tests_seconds - r.until_loss_seconds for r in killed)
                lines.append(f"(tests after the first lost point: {after / len(killed):.1f} s a killed mutant, "
                             f"{100 * after / sum(r.seconds for r in graded):.0f}% of all grading time)")
        if self.survivors():
            lines.append("\nsurvivors (full marks: add a test, or list them as equivalent with the reason):")
            lines += [f"  {r.id}\n      {r.diff}" for r in self.survivors()]
        doubtful = [r for r in self.results if r.status == "killed" and (r.note or _only_timeouts(r))]
        if doubtful:
            lines.append("\nkilled by a grader fault or only by timeouts (check these by hand):")
            lines += [f"  {r.id}: {_clip(r.note or 'timed out: ' + ', '.join(r.lost), 150)}" for r in doubtful]
        if self.stale:
            lines.append(f"\nequivalence entries naming no mutant any more: {', '.join(self.stale)}")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {
            "homework": self.homework,
            "reference_score": self.reference_score,
            "max_score": self.max_score,
            "fingerprint": self.fingerprint,
            "seconds": round(self.seconds, 1),
            "jobs": self.jobs,
            "files": self.by_file(),
            "total": self.total(),
            "stale_equivalent": self.stale,
            "mutants": [asdict(r) for r in self.results],
        }


def _counts(results: list[Result]) -> dict[str, float]:
    counts = dict(mutants=len(results), killed=0, equivalent=0, survived=0)
    for r in results:
        counts[r.status] += 1
    judged = counts["mutants"] - counts["equivalent"]
    counts["score"] = counts["killed"] / judged if judged else 1.0
    return counts


def submission_with(hw: homework.Homework, folder: Path, mutant: Mutant | None = None) -> Path:
    """A submission folder holding the reference's submitted files, ``mutant`` applied."""
    folder.mkdir(parents=True)
    for rel in hw.files():
        if hw.is_submitted(rel):
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(hw.root / rel, folder / rel)
    if mutant is not None:
        (folder / mutant.file).write_text(mutant.text)
    return folder


def fingerprint(bundle: Path) -> str:
    """What a verdict depends on besides the mutant: the bundle (tests, reference, starter) and the
    cs330 package that grades."""
    digest = hashlib.sha256()
    for root in (bundle, Path(cs330.__file__).parent):
        for path in sorted(root.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def measure(hw: homework.Homework, mutants: list[Mutant], equivalent: dict[str, str] | None = None, jobs: int = 1,
            log=print, previous: dict | None = None, report: Path | None = None, first: list[str] | None = None,
            every: set[str] | None = None) -> Measurement:
    """Grade the reference (it must get full marks), then every mutant not listed as equivalent.

    A mutant killed only by timeouts is graded again alone, after the others: a busy machine (other
    gradings beside it) must not count as a test that catches the mistake. ``previous``: a
    report (``to_json``) whose verdicts are reused for the same mutated text, when it was made with
    the same tests, reference and grader (fingerprint). ``report``: written after every verdict, so
    an interrupted run can be resumed. ``first``: test files (the fast ones) that grade each mutant
    first, on a bundle holding only them: a test there that fails or crashes is a lost point of the
    full grading too (every test runs on its own fresh worker), so the mutant is killed without
    running the slow files; otherwise it is graded in full. ``every``: the ids of all the homework's
    mutants (equivalence entries naming none of them are stale; default: those of ``mutants``)."""
    equivalent = equivalent or {}
    start = time.monotonic()
    with grader.bundle_for(hw.root) as bundle, tempfile.TemporaryDirectory(prefix="cs330-mutants-") as tmp:
        grading = _Grading(hw, bundle, Path(tmp))
        reusable = _reusable(previous, grading.fingerprint, log)
        quick = _bundle_with_tests(bundle, first, Path(tmp) / "first") if first else None
        reference = _check_reference(grading, quick, first, log)
        ids = every if every is not None else {m.id for m in mutants}
        result = Measurement(
            homework=hw.folder,
            reference_score=reference.score,
            max_score=reference.max_score,
            results=[],
            stale=sorted(i for i in equivalent if i not in ids),
            seconds=0.0,
            jobs=jobs,
            fingerprint=grading.fingerprint,
        )
        judge = _Judge(
            grading, result, reference.score, quick, first, equivalent, reusable, report, start, len(mutants), log
        )
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            results = list(pool.map(judge, range(len(mutants)), mutants))
        _regrade_timeouts(grading, mutants, results, reference.score, log)
    result.results = results  # in source order
    result.seconds = time.monotonic() - start
    if report is not None:
        write_report(result, report)
    return result


class _Grading:
    """Grades the reference or one mutant of it, in a fresh submission folder under ``tmp``."""

    def __init__(self, hw: homework.Homework, bundle: Path, tmp: Path):
        self.hw, self.bundle, self.tmp = hw, bundle, tmp
        self.fingerprint = fingerprint(bundle)

    def __call__(self, mutant: Mutant | None, name: str, on: Path | None = None) -> grader.Report:
        submission = submission_with(self.hw, self.tmp / name / self.hw.folder, mutant)
        try:
            return grader.grade_bundle(on or self.bundle, submission)
        finally:
            shutil.rmtree(submission.parent, ignore_errors=True)


def _reusable(previous: dict | None, print_: str, log) -> dict[str, Result]:
    """The verdicts of a previous report made with the same tests, reference and grader."""
    if not previous:
        return {}
    if previous.get("fingerprint") != print_:
        log("previous report made with other tests, reference or grader: every mutant is graded again")
        return {}
    known = {f.name for f in fields(Result)}
    return {r["id"]: Result(**{k: v for k, v in r.items() if k in known})
            for r in previous.get("mutants", []) if r.get("status") in ("killed", "survived")}


def _check_reference(grade: _Grading, quick: Path | None, first: list[str] | None, log) -> grader.Report:
    """The reference's grading, which must be full marks (on the quick bundle too, if any)."""
    reference = grade(None, "reference")
    for on, what in [
        (grade.bundle, "the reference"),
        *([(quick, f"the reference on {', '.join(first)}")] if quick else []),
    ]:
        checked = reference if on == grade.bundle else grade(None, "reference-first", quick)
        if checked.fault or not checked.max_score or checked.score < checked.max_score:
            raise MutantsError(f"{what} does not get full marks, so mutants cannot be judged:\n{checked.table()}")
        log(f"{what}: {checked.score:g}/{checked.max_score:g} in {checked.execution_time:.1f} s")
    return reference


class _Judge:
    """The verdict on one mutant (listed, reused, or graded: on the quick tests first, if any), logged
    and written to the report as soon as it is known. Called from several threads."""

    def __init__(self, grade: _Grading, result: Measurement, reference_score: float, quick: Path | None,
                 first: list[str] | None, equivalent: dict[str, str], reusable: dict[str, Result], report: Path | None,
                 start: float, total: int, log):
        self.grade, self.result, self.reference_score, self.quick, self.first = (
            grade,
            result,
            reference_score,
            quick,
            first,
        )
        self.equivalent, self.reusable, self.report, self.start, self.total, self.log = (
            equivalent,
            reusable,
            report,
            start,
            total,
            log,
        )
        self.lock = threading.Lock()
        self.begun = time.monotonic()

    def __call__(self, n: int, mutant: Mutant) -> Result:
        old = self.reusable.get(mutant.id)
        if mutant.id in self.equivalent:
            verdict = Result(mutant.id, mutant.file, mutant.line, mutant.operator, mutant.diff, "equivalent",
                             note=self.equivalent[mutant.id])
            detail = "listed"
        elif old is not None and old.sha == _sha(mutant.text):
            verdict, detail = old, "from the previous report"
        else:
            verdict = self._graded(n, mutant)
            where = f" on {', '.join(self.first)}" if verdict.stage == "first" else ""
            detail = f"{verdict.score:g}/{verdict.max_score:g}{where}, {verdict.seconds:.1f} s"
        self._record(verdict, mutant, detail)
        return verdict

    def _graded(self, n: int, mutant: Mutant) -> Result:
        verdict = Result(mutant.id, mutant.file, mutant.line, mutant.operator, mutant.diff, "", sha=_sha(mutant.text))
        spent = 0.0
        if self.quick is not None:
            trial = self.grade(mutant, f"m{n}-first", self.quick)
            if not trial.fault and any(o.score < o.points and o.status != "timeout" for o in trial.outcomes):
                _verdict(verdict, trial, trial.max_score)  # a test failed or crashed: a lost point
                verdict.stage = "first"
                return verdict
            spent = trial.execution_time  # nothing conclusive there: the full grading decides
        _verdict(verdict, self.grade(mutant, f"m{n}"), self.reference_score)
        verdict.seconds += spent
        return verdict

    def _record(self, verdict: Result, mutant: Mutant, detail: str) -> None:
        with self.lock:
            result = self.result
            result.results.append(verdict)
            done, elapsed = len(result.results), time.monotonic() - self.begun
            left = elapsed / done * (self.total - done)
            self.log(f"[{done}/{self.total}] {verdict.status:10s} {mutant.id}  ({detail}; ~{left / 60:.0f} min left)")
            if self.report is not None:
                result.seconds = time.monotonic() - self.start
                write_report(result, self.report)


def _regrade_timeouts(
    grade: _Grading, mutants: list[Mutant], results: list[Result], reference_score: float, log
) -> None:
    """Grade again, alone, each mutant killed only by timeouts (a busy machine is not a test that catches it)."""
    for n, (mutant, verdict) in enumerate(zip(mutants, results)):
        if verdict.status == "killed" and not verdict.note and _only_timeouts(verdict):
            note = f"only timeouts ({', '.join(verdict.lost)}) when first graded; graded again alone"
            _verdict(verdict, grade(mutant, f"again{n}"), reference_score)
            verdict.note, verdict.stage = note, "full"
            score = f"{verdict.score:g}/{verdict.max_score:g}, {verdict.seconds:.1f} s"
            log(f"[again] {verdict.status:10s} {mutant.id}  ({score})")


def _bundle_with_tests(bundle: Path, files: list[str], dest: Path) -> Path:
    """A copy of ``bundle`` whose tests folder keeps, of its test files, only ``files`` (names
    relative to the tests folder; helpers such as conftest.py and probes.py stay)."""
    tests = sorted(p.relative_to(bundle / "tests").as_posix() for p in (bundle / "tests").rglob("test_*.py"))
    wanted = {f.removeprefix("tests/") for f in files}
    unknown = sorted(wanted - set(tests))
    if unknown:
        raise MutantsError(
            f"--first {', '.join(unknown)}: not a test file of this homework (those are {', '.join(tests)})"
        )
    shutil.copytree(bundle, dest)
    for rel in tests:
        if rel not in wanted:
            (dest / "tests" / rel).unlink()
    return dest


def _only_timeouts(result: Result) -> bool:
    return bool(result.why) and all(w.startswith("timeout") for w in result.why.values())


def _verdict(result: Result, report: grader.Report, reference_score: float) -> None:
    """Killed: fewer points than the reference (a failure, a timeout, a crash, a grader fault)."""
    result.score, result.max_score, result.seconds = report.score, report.max_score, report.execution_time
    result.tests_seconds = sum(o.duration for o in report.outcomes)
    lost = [o for o in report.outcomes if o.score < o.points]
    result.lost = [o.id for o in lost]
    first = report.outcomes.index(lost[0]) if lost else len(report.outcomes) - 1
    result.until_loss_seconds = sum(o.duration for o in report.outcomes[: first + 1])
    result.why = {o.id: f"{o.status}: {_clip(o.message.strip(), 300)}" for o in lost}
    result.note = report.fault
    result.status = "killed" if report.fault or report.score < reference_score else "survived"


def write_report(measurement: Measurement, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(measurement.to_json(), indent=1) + "\n")
    tmp.replace(path)  # never a half-written report


def _read_report(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise MutantsError(f"--resume: cannot read {path}: {e}") from None


def spread(mutants: list[Mutant], n: int) -> list[Mutant]:
    """``n`` mutants evenly spread over the list (deterministic: the same ones every time)."""
    if n >= len(mutants):
        return list(mutants)
    return [mutants[i * len(mutants) // n] for i in range(n)]


def main(hw: homework.Homework, args) -> int:
    """``cs330 mutants``: list, or grade and report. Exit 0 whatever the score (it is a measurement)."""
    try:
        every = homework_mutants(hw)
        chosen = homework_mutants(hw, args.file) if args.file else every
        if args.ids:
            unknown = sorted(set(args.ids) - {m.id for m in chosen})
            if unknown:
                raise MutantsError(f"no such mutant(s): {', '.join(unknown)} (see --list)")
            chosen = [m for m in chosen if m.id in set(args.ids)]
        if args.sample:
            chosen = spread(chosen, args.sample)
        if args.limit is not None:
            chosen = chosen[: args.limit]
        table = args.equivalent or equivalence_file(hw)
        equivalent = load_equivalent(table)
        if args.list:
            for m in chosen:
                print(f"{m.id}\n    {m.diff}" + (f"\n    equivalent: {equivalent[m.id]}" if m.id in equivalent else ""))
            print(f"{len(chosen)} mutants" + (f" (of {len(every)})" if len(chosen) != len(every) else ""))
            return 0
        print(
            f"cs330 mutants: {hw.folder}: {len(chosen)} mutants; {len(equivalent)} listed as equivalent in {table}",
            flush=True,
        )
        out = args.out or Path(f"mutants-{hw.folder}.json")
        previous = _read_report(out) if args.resume and out.is_file() else None
        result = measure(
            hw,
            chosen,
            equivalent,
            jobs=args.jobs,
            log=lambda line: print(line, flush=True),
            previous=previous,
            report=out,
            first=args.first,
            every={m.id for m in every},
        )
    except (MutantsError, MarkerError) as e:
        print(f"cs330 mutants: {e}", file=sys.stderr)
        return 2
    write_report(result, out)
    print("\n" + result.table())
    print(f"\nreport: {out}")
    return 0
