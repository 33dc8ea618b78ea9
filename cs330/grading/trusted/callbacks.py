"""The test process's answers to the worker's calls of a ``Trusted`` function (cs330.grading.worker.callback).

The worker names the function (a handle the test gave it), a spec of transforms and the arguments,
all untrusted data: the spec is checked against the arguments before anything is computed, and the
function runs on plain tensors and numbers only (what ``wire.unpack`` rebuilt).
"""

from __future__ import annotations

import torch

from cs330.grading.wire import differentiable

MAX_TRANSFORMS = 6  # vjp of vjp of vmap ...: more than any test needs
MAX_ELEMENTS = 1 << 24  # in one call's arguments: the test process computes on them, at the test's expense


class BadCall(ValueError):
    """A call whose spec or arguments do not fit (the worker's fault: not a result)."""


def _paired(out, cotangents) -> tuple:
    """``fn``'s outputs and the worker's cotangents as tuples, one cotangent per output."""
    outs = out if isinstance(out, tuple) else (out,)
    if len(cotangents) != len(outs):
        raise BadCall(f"{len(cotangents)} cotangents for {len(outs)} outputs")
    return outs, tuple(cotangents)


def _vjp(fn, n_in: int, functional: bool):
    """``(*primals, *cotangents) -> gradients`` of ``fn`` in its floating-point tensor primals: by
    ``torch.func.vjp`` where a ``vmap`` is to wrap it (``functional``), else by autograd (faster), with a
    graph either way, so that a vjp of it is a second derivative."""
    def vjp(*args):
        primals, cotangents = list(args[:n_in]), args[n_in:]
        where = [i for i, p in enumerate(primals) if differentiable(p)]

        def of(*xs):
            full = list(primals)
            for i, x in zip(where, xs):
                full[i] = x
            return fn(*full)

        xs = [primals[i] for i in where]
        if functional:
            out, pull = torch.func.vjp(of, *xs)
            _, cots = _paired(out, cotangents)
            return tuple(pull(cots if isinstance(out, tuple) else cots[0]))
        with torch.enable_grad():
            xs = [x if x.requires_grad else x.detach().requires_grad_() for x in xs]
            outs, cots = _paired(of(*xs), cotangents)
            grads = torch.autograd.grad(outs, xs, cots, create_graph=True, allow_unused=True)
        return tuple(torch.zeros_like(x) if g is None else g for x, g in zip(xs, grads))
    return vjp


def transformed(fn, spec, n_args: int):
    """``fn`` with the transforms of ``spec`` applied in order (the worker's call of ``n_args`` arguments)."""
    if type(spec) not in (list, tuple) or len(spec) > MAX_TRANSFORMS or not all(
            type(step) in (list, tuple) and len(step) == 2 for step in spec):
        raise BadCall("a malformed spec")
    for k, (kind, value) in enumerate(spec):
        if kind == "vjp" and type(value) is int and 0 <= value <= n_args:
            fn = _vjp(fn, value, functional=any(later[0] == "vmap" for later in spec[k + 1:]))
        elif kind == "vmap" and type(value) in (list, tuple) and all(d is None or type(d) is int for d in value):
            fn = torch.vmap(fn, in_dims=tuple(value))
        else:
            raise BadCall(f"a spec step that is not a transform ({kind!r})")
    return fn


def answer(fn, spec, args) -> dict:
    """The answer frame for the worker: ``{"ok": True, "value": ...}`` or ``{"ok": False, "error": text}``.

    Raises :class:`BadCall` for a call no honest worker sends; an error of ``fn`` on the student's
    arguments (a wrong shape, say) is the answer, for the student's code to raise."""
    if type(args) is not list or not all(a is None or type(a) in (bool, int, float) or type(a) is torch.Tensor
                                         for a in args):
        raise BadCall("arguments that are not tensors or numbers")
    if sum(a.numel() for a in args if isinstance(a, torch.Tensor)) > MAX_ELEMENTS:
        raise BadCall(f"arguments of more than {MAX_ELEMENTS} elements")
    fn = transformed(fn, spec, len(args))
    try:
        value = fn(*args)
    except BadCall:
        raise
    except Exception as e:  # noqa: BLE001  (the function's error on the student's arguments)
        return {"ok": False, "error": f"{type(e).__name__}: {e}"[:4000]}
    values = value if isinstance(value, tuple) else (value,)
    if not all(isinstance(v, torch.Tensor) for v in values):
        return {"ok": False, "error": "the stated function did not return tensors"}
    values = tuple(v.detach().contiguous() for v in values)
    return {"ok": True, "value": values if isinstance(value, tuple) else values[0]}
