"""Functions of the test process that student code may call (``code.Trusted``, cs330.grading.worker.callback).

A stated implementation handed to a probe must give the worker the same values and derivatives as the
function itself (first and second order, under ``vmap`` and ``torch.func.grad``), while its code stays in
the test process; a call the test did not hand over, or a malformed one, is not a result; a flat frame
is checked against its bytes before any tensor is built.
"""

import shutil
import struct
from pathlib import Path

import pytest
import torch

from cs330.grading import wire
from cs330.grading.trusted import callbacks, grader

TOYHW = Path(__file__).resolve().parents[1] / "fixtures" / "toyhw"

THROUGH = '''

def through(f, x, w):
    """Calls the function it is given (a stated one, in the test below)."""
    return f(x, w) * 2
'''

PROBES = '''
import torch


def derivatives(code, x, f):
    """Values, first and second derivatives, vmap and grad-of-vmap of ``toy.through(f, ., w)``."""
    w = torch.linspace(0.5, 1.5, x.shape[-1], dtype=x.dtype)
    x = x.clone().requires_grad_(True)
    y = code.toy.through(f, x, w)
    (g,) = torch.autograd.grad(y.sum(), x, create_graph=True)
    (h,) = torch.autograd.grad((g**2).sum(), x)
    one = lambda r: code.toy.through(f, r, w).sum()  # noqa: E731
    v = torch.func.vmap(lambda r: code.toy.through(f, r, w))(x.detach())
    gv = torch.func.vmap(torch.func.grad(one))(x.detach())
    hv = torch.func.vmap(torch.func.grad(lambda r: torch.func.grad(one)(r).square().sum()))(x.detach())
    return {"y": y, "g": g, "h": h, "v": v, "gv": gv, "hv": hv}


def source(code, f):
    """What the worker can learn of the function it was given."""
    import inspect
    try:
        return inspect.getsource(f)
    except (OSError, TypeError) as e:
        return type(e).__name__
'''

TESTS = '''
import torch

import probes
from cs330.grading import graded
from cs330.grading import Trusted


def cubic(x, w):
    return (x**3 * w).sum(-1) + torch.sin(x).prod(-1)  # STATED-MARKER


@graded("3a-0-hidden")
def test_derivatives_cross(student, reference):
    x = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    got = student.probe(probes.derivatives, x, Trusted(cubic))
    # BEGIN HIDDEN
    want = reference.probe(probes.derivatives, x, Trusted(cubic))
    for k, v in want.items():
        assert torch.allclose(got[k], v, rtol=1e-10, atol=1e-12), k
    # END HIDDEN


@graded("3a-1-basic")
def test_code_stays_here(student):
    assert "STATED-MARKER" not in student.probe(probes.source, Trusted(cubic))
'''

FORGE = '''
def _attack():
    """Reach for a function of the grader's process that this test never handed over."""
    import gc, torch
    session = next(o for o in gc.get_objects() if type(o).__name__ == "Session")
    return session.call(0, [], [torch.ones(2)])
'''


@pytest.fixture(scope="module")
def homework(tmp_path_factory):
    root = tmp_path_factory.mktemp("callbackhw") / "toyhw"
    shutil.copytree(TOYHW, root)
    (root / "toy.py").write_text((root / "toy.py").read_text() + THROUGH)
    (root / "tests" / "probes.py").write_text(PROBES)
    (root / "tests" / "test_callbacks.py").write_text(TESTS)
    return root


def grade(homework, tmp_path, toy_source, only):
    sub = tmp_path / "sub"
    (sub / "results").mkdir(parents=True)
    (sub / "results" / "metrics.json").write_text('{"pooled_sum": 2.0}')
    (sub / "toy.py").write_text(toy_source)
    return {o.id: o for o in grader.grade(homework, sub, only=only).outcomes}


def test_stated_functions_cross_with_their_derivatives(homework, tmp_path):
    out = grade(homework, tmp_path, (homework / "toy.py").read_text(), {"3a-0-hidden", "3a-1-basic"})
    assert {k: o.status for k, o in out.items()} == {"3a-0-hidden": "passed", "3a-1-basic": "passed"}, {
        k: o.output[:2000] for k, o in out.items()}


def test_a_call_the_test_did_not_hand_over_is_not_a_result(homework, tmp_path):
    source = (homework / "toy.py").read_text().replace("def softmax(x", "def _softmax(x") + FORGE + (
        "\n\ndef softmax(x):\n    return _attack()\n")
    out = grade(homework, tmp_path, source, {"1a-0-basic"})
    assert out["1a-0-basic"].status == "failed"
    assert "a function this test did not give" in out["1a-0-basic"].message, out["1a-0-basic"].message[:2000]


def test_flat_frames_round_trip():
    message = {"args": [torch.arange(6.0).reshape(2, 3), torch.zeros(0, 2), 0.5, None, True],
               "spec": [["vjp", 2]], "n": torch.tensor([1, 2], dtype=torch.int64), "b": torch.tensor([True])}
    got = wire.unpack_flat(wire.pack_flat(message)[wire.HEADER.size:])
    assert got["spec"] == [["vjp", 2]] and got["args"][2:] == [0.5, None, True]
    for a, b in [(got["args"][0], message["args"][0]), (got["args"][1], message["args"][1]),
                 (got["n"], message["n"]), (got["b"], message["b"])]:
        assert type(a) is torch.Tensor and a.dtype == b.dtype and torch.equal(a, b)


def _flat(head: dict, blob: bytes = b"") -> bytes:
    text = __import__("json").dumps(head).encode()
    return struct.pack(">I", len(text)) + text + blob


@pytest.mark.parametrize("payload", [
    _flat({"message": {"__tensor__": 0}, "tensors": [["float32", [1 << 40]]]}, b"\0" * 16),  # larger than its frame
    _flat({"message": 1, "tensors": [["float32", [2]]]}, b"\0" * 12),  # bytes left over
    _flat({"message": 1, "tensors": [["object", [1]]]}, b"\0" * 8),  # not an allowed dtype
    _flat({"message": 1, "tensors": [["float32", [-1]]]}),  # a negative size
    _flat({"message": {"__tensor__": 3}, "tensors": []}),  # no such tensor
    struct.pack(">I", 10_000) + b"[" * 100,  # a JSON length past the frame, unbalanced JSON
    _flat({"message": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]], "tensors": []}),
])
def test_malformed_flat_frames_are_not_results(payload):
    with pytest.raises(wire.NotAResult):
        wire.unpack_flat(payload)


@pytest.mark.parametrize("spec", [[["grad", 1]], [["vjp", 9]], [["vmap", ["a"]]], "vjp", [["vjp"]] * 7, [1]])
def test_malformed_specs_are_bad_calls(spec):
    with pytest.raises(callbacks.BadCall):
        callbacks.answer(lambda x: x, spec, [torch.ones(2)])


def test_an_error_of_the_function_is_the_answer():
    out = callbacks.answer(lambda x, y: x @ y, [], [torch.ones(2, 3), torch.ones(2, 3)])
    assert out["ok"] is False and "RuntimeError" in out["error"]
