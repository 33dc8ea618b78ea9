"""``cs330 mutants``: which mutants of a solution region exist (ids, places, operators), and one
end-to-end measurement on a copy of the toy homework with the real grader."""

import ast
import difflib
import json
import shutil

import pytest

from cs330.cli import main as cli
from cs330.grading.instructor import mutants
from cs330.grading.authoring.markers import MarkerError

SOURCE = '''"""A module with every kind of mutable code in its solution regions."""
import torch


def f(x, y, params, loss):
    """Outside the regions nothing changes."""
    # BEGIN SOLUTION
    a = x + y
    b = (a * 2).sum(dim=-1, keepdim=True)
    c = -torch.softmax(b, 1).mean()
    with torch.no_grad():
        d = c.detach()
    g = torch.autograd.grad(loss, params, create_graph=True)
    x = x - y
    y -= x
    if a.max() > 0 and b.argmax(0) == 1:
        c = c / 2.0
    # END SOLUTION
    e = x * y - 1
    return e + d  # SOLUTION
'''
REGION = set(range(8, 18)) | {20}


def ops(found):
    return {m.id.split(":", 2)[2] for m in found}


def test_region_lines_are_the_solution_lines():
    assert mutants.solution_lines(SOURCE) == REGION


def test_every_operator_kind_produces_a_mutant():
    found = ops(mutants.enumerate_mutants(SOURCE, "m.py"))
    expected = {
        "swap-op-Add-Sub", "swap-op-Mult-Div", "swap-op-Sub-Add", "swap-op-Div-Mult", "swap-op-Gt-GtE", "swap-op-Gt-Lt",
        "swap-op-Eq-NotEq", "swap-op-And-Or",  # operators
        "const-2-to-3", "const-2-to--2", "const-2-to-1", "const-0-to-1", "const-2.0-to-1.0",  # constants
        "dim--1-to--2", "dim-1-to-0", "dim-0-to-1", "toggle-keepdim", "toggle-create_graph",  # dims and flags
        "swap-call-sum-mean", "swap-call-softmax-log_softmax", "swap-call-mean-sum", "swap-call-max-min",
        "swap-call-argmax-argmin", "remove-neg", "remove-detach", "remove-with-no_grad",
        "stmt-to-pass", "to-inplace", "to-out-of-place",
    }
    assert expected <= found, expected - found


def test_only_region_lines_change_and_every_mutant_parses():
    original = SOURCE.splitlines()
    for m in mutants.enumerate_mutants(SOURCE, "m.py"):
        ast.parse(m.text)
        assert m.line in REGION, m.id
        changed = set()
        for tag, i1, i2, _, _ in difflib.SequenceMatcher(a=original, b=m.text.splitlines()).get_opcodes():
            if tag != "equal":
                changed |= set(range(i1 + 1, max(i2, i1 + 1) + 1)) if tag != "insert" else {i1}
        assert changed and changed <= REGION, (m.id, changed)


def test_ids_are_unique_stable_and_in_source_order():
    first = mutants.enumerate_mutants(SOURCE, "m.py")
    ids = [m.id for m in first]
    assert len(ids) == len(set(ids))
    assert ids == [m.id for m in mutants.enumerate_mutants(SOURCE, "m.py")]
    assert [m.line for m in first] == sorted(m.line for m in first)
    # code added outside the regions, below them, leaves every id as it was
    assert ids == [m.id for m in mutants.enumerate_mutants(SOURCE + "\n\ndef g():\n    return 1 + 2\n", "m.py")]
    # a second mutant of the same kind on one line is told apart
    two = mutants.enumerate_mutants("def h(a, b):\n    return a + b + 1  # SOLUTION\n", "h.py")
    assert {"h.py:2:swap-op-Add-Sub", "h.py:2:swap-op-Add-Sub#2"} <= {m.id for m in two}


def test_mutants_write_the_intended_code():
    by_id = {m.id: m for m in mutants.enumerate_mutants(SOURCE, "m.py")}
    assert "        d = c.detach()" not in by_id["m.py:11:remove-with-no_grad"].text
    assert "\n    d = c.detach()\n" in by_id["m.py:11:remove-with-no_grad"].text  # the body, dedented
    assert by_id["m.py:9:swap-op-Mult-Div"].after == "    b = (a / 2).sum(dim=-1, keepdim=True)"  # no extra parentheses
    assert by_id["m.py:8:swap-op-Add-Sub"].diff == "a = x + y  ->  a = x - y"
    assert by_id["m.py:14:to-inplace"].after == "    x -= y"
    assert by_id["m.py:15:to-out-of-place"].after == "    y = y - x"
    assert by_id["m.py:12:remove-detach"].after == "        d = c"
    # an operator inside a larger expression keeps its operands together
    inner = {m.id: m for m in mutants.enumerate_mutants("def k(a, b, c):\n    return a - b * c  # SOLUTION\n", "k.py")}
    assert inner["k.py:2:swap-op-Mult-Div"].after == "    return a - (b / c)  # SOLUTION"


def test_a_sample_is_spread_over_the_list():
    found = mutants.enumerate_mutants(SOURCE, "m.py")
    sample = mutants.spread(found, 4)
    assert len(sample) == 4 and sample[0] is found[0] and sample == mutants.spread(found, 4)
    assert sample[-1].line > found[len(found) // 2].line  # not just the first function
    assert mutants.spread(found, 10_000) == found


def test_what_is_never_mutated():
    found = mutants.enumerate_mutants(SOURCE, "m.py")
    assert not any(m.line == 20 and m.operator == "stmt-to-pass" for m in found), "the function's last return stays"
    assert not any(m.line == 19 for m in found), "line 19 is outside every region"
    # a dim is changed only as a dim (-1 <-> -2), not as a number too
    assert not any(m.line == 9 and m.operator.startswith(("const-1", "remove-neg")) for m in found)
    assert mutants.enumerate_mutants("def z(x):\n    return x + 1\n", "z.py") == []


def test_unbalanced_markers_are_an_error_with_the_line():
    with pytest.raises(MarkerError, match="z.py:2"):
        mutants.enumerate_mutants("def z(x):\n    # BEGIN SOLUTION\n    return x\n", "z.py")


def test_equivalence_file_and_score(tmp_path):
    table = tmp_path / "hw.toml"
    table.write_text('[equivalent]\n"m.py:8:stmt-to-pass" = "a is never read"\n')
    assert mutants.load_equivalent(table) == {"m.py:8:stmt-to-pass": "a is never read"}
    assert mutants.load_equivalent(tmp_path / "missing.toml") == {}
    (tmp_path / "bad.toml").write_text('[equivalent]\n"m.py:8:stmt-to-pass" = ""\n')
    with pytest.raises(mutants.MutantsError, match="reason"):
        mutants.load_equivalent(tmp_path / "bad.toml")
    results = [mutants.Result(f"m.py:{n}:op", "m.py", n, "op", "a -> b", status) for n, status in
               enumerate(["killed", "killed", "killed", "survived", "equivalent"])]
    m = mutants.Measurement("hw", 8, 8, results, stale=["m.py:1:gone"], seconds=10, jobs=1)
    assert m.total() == {"mutants": 5, "equivalent": 1, "killed": 3, "survived": 1, "score": 0.75}
    text = m.table()
    assert "75.0%" in text and "m.py:3:op" in text and "m.py:1:gone" in text


def test_mutants_of_the_toy_homework_are_graded_by_the_real_grader(tmp_path, toyhw):
    """A copy of the toy with one more solution line, ``x = x + 0``: ``x + 1`` loses points, ``x - 0``
    keeps full marks (a survivor, since it is equivalent), ``pass`` is listed as equivalent (not graded)."""
    hw = tmp_path / "toyhw"
    shutil.copytree(toyhw.root, hw)
    toy = hw / "toy.py"
    text = toy.read_text().replace(
        "    return x * factor  # SOLUTION", "    x = x + 0  # SOLUTION\n    return x * factor  # SOLUTION"
    )
    toy.write_text(text)
    # the toy's 5 s per test is tight for two gradings at once on a busy machine; this copy is ours
    config = hw / "homework.toml"
    config.write_text(config.read_text().replace("timeout = 5", "timeout = 60"))
    line = text.splitlines().index("    x = x + 0  # SOLUTION") + 1
    killed, survivor, equivalent = (f"toy.py:{line}:{op}" for op in ("const-0-to-1", "swap-op-Add-Sub", "stmt-to-pass"))
    table = tmp_path / "toyhw.toml"
    table.write_text(f'[equivalent]\n"{equivalent}" = "adding zero does nothing"\n"toy.py:1:gone" = "stale"\n')
    out = tmp_path / "report.json"
    args = [
        "mutants",
        str(hw),
        "--id",
        killed,
        "--id",
        survivor,
        "--id",
        equivalent,
        "--equivalent",
        str(table),
        "--out",
        str(out),
        "--jobs",
        "2",
    ]
    assert cli(args) == 0
    report = json.loads(out.read_text())
    status = {m["id"]: m["status"] for m in report["mutants"]}
    assert status == {killed: "killed", survivor: "survived", equivalent: "equivalent"}
    lost = {m["id"]: m["lost"] for m in report["mutants"]}
    assert lost[killed] == ["1c-0-basic"] and lost[survivor] == []
    assert report["total"]["score"] == 0.5 and report["stale_equivalent"] == ["toy.py:1:gone"]
    assert report["reference_score"] == report["max_score"] == 8


def fake_grader(calls, verdicts, caught_by_test_toy=()):
    """A stand-in for grader.grade_bundle: the tests of ``verdicts`` (text in toy.py -> statuses);
    texts in ``caught_by_test_toy`` fail only where the bundle has tests/test_toy.py."""
    from cs330.grading.trusted import grader
    from cs330.grading.trusted.runner import Outcome

    def grade_bundle(bundle, submission, jobs=1):
        text = (submission / "toy.py").read_text()
        calls.append(text)
        statuses = next((v for k, v in verdicts.items() if k in text), ["passed", "passed"])
        if (bundle / "tests" / "test_toy.py").is_file() and any(k in text for k in caught_by_test_toy):
            statuses = ["passed", "failed"]
        outcomes = [
            Outcome(
                nodeid=f"t{i}",
                id=f"1a-{i}-basic",
                points=1,
                visibility="visible",
                hidden=False,
                doc="",
                timeout=5,
                status=s,
                message=s,
                duration=0.5,
            )
            for i, s in enumerate(statuses)
        ]
        return grader.Report(submission=str(submission), outcomes=outcomes, execution_time=2.0)

    return grade_bundle


def test_verdicts_are_written_as_they_come_and_reused_only_for_the_same_text_and_grader(tmp_path, toyhw, monkeypatch):
    from cs330.grading.trusted import grader

    calls = []
    monkeypatch.setattr(
        grader,
        "grade_bundle",
        fake_grader(calls, {"x.min(": ["failed", "passed"], "x.max(dim=-2,": ["timeout", "passed"]}),
    )
    chosen = mutants.homework_mutants(toyhw)[:5]
    report = tmp_path / "r.json"
    first = mutants.measure(toyhw, chosen, {chosen[0].id: "reviewed"}, jobs=2, log=lambda _: None, report=report)
    status = {r.id: r.status for r in first.results}
    assert [r.id for r in first.results] == [m.id for m in chosen]  # source order, whatever finished first
    assert status == {
        chosen[0].id: "equivalent",
        "toy.py:13:swap-op-Sub-Add": "survived",
        "toy.py:13:swap-call-max-min": "killed",
        "toy.py:13:toggle-keepdim": "survived",
        "toy.py:13:dim--1-to--2": "killed",
    }
    assert len(calls) == 1 + 4 + 1  # the reference, four mutants, the timeout-only kill graded again alone
    assert "graded again alone" in next(r.note for r in first.results if r.operator == "dim--1-to--2")
    assert json.loads(report.read_text())["total"]["mutants"] == 5
    # resumed: only the reference is graded again
    calls.clear()
    again = mutants.measure(toyhw, chosen, {}, log=lambda _: None, previous=json.loads(report.read_text()))
    assert len(calls) == 1 + 1  # the reference, and the mutant that was listed as equivalent before
    assert {r.id: r.status for r in again.results}["toy.py:13:swap-call-max-min"] == "killed"
    # another grader or other tests: nothing is reused
    calls.clear()
    stale = {**json.loads(report.read_text()), "fingerprint": "something else"}
    mutants.measure(toyhw, chosen, {}, log=lambda _: None, previous=stale)
    assert len(calls) == 1 + 5 + 1  # (the timeout-only kill graded again alone, again)


def test_a_reference_without_full_marks_stops_the_measurement(toyhw, monkeypatch):
    from cs330.grading.trusted import grader

    calls = []
    monkeypatch.setattr(grader, "grade_bundle", fake_grader(calls, {"def softmax": ["failed", "passed"]}))
    with pytest.raises(mutants.MutantsError, match="full marks"):
        mutants.measure(toyhw, mutants.homework_mutants(toyhw)[:3], log=lambda _: None)
    assert len(calls) == 1


def test_first_test_files_kill_what_they_catch_and_the_rest_is_graded_in_full(toyhw, monkeypatch):
    from cs330.grading.trusted import grader

    calls = []
    monkeypatch.setattr(
        grader,
        "grade_bundle",
        fake_grader(calls, {"x.min(": ["failed", "passed"]}, caught_by_test_toy=["keepdim=False"]),
    )
    chosen = [
        m
        for m in mutants.homework_mutants(toyhw)
        if m.operator in ("swap-call-max-min", "toggle-keepdim", "swap-op-Sub-Add")
    ][:3]
    result = mutants.measure(toyhw, chosen, log=lambda _: None, first=["test_toy_hidden.py"])
    verdicts = {r.operator: (r.status, r.stage) for r in result.results}
    assert verdicts == {
        "swap-call-max-min": ("killed", "first"),
        "toggle-keepdim": ("killed", "full"),
        "swap-op-Sub-Add": ("survived", "full"),
    }
    assert len(calls) == 2 + 1 + 2 + 2  # the reference on both bundles; one grading for the first; two for the others
    with pytest.raises(mutants.MutantsError, match="not a test file"):
        mutants.measure(toyhw, chosen, log=lambda _: None, first=["test_nothing.py"])
