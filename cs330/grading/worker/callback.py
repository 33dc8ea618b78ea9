"""Functions of the test process that the student's code may call: the worker holds only a handle.

A test passes ``code.Trusted(fn)`` to a probe (a stated implementation of an earlier function, say);
here it arrives as a :class:`Callback`. Calling it sends the arguments to the test process, which
computes ``fn`` there and answers with the value: the implementation never enters this process.

The value is differentiable like ``fn`` itself, to any order and under ``torch.func`` transforms:
the backward of a call is another call, of ``fn``'s vector-Jacobian product (computed by the test
process: cs330.grading.trusted.callbacks), and a call under ``vmap`` asks for ``vmap(fn)`` on the
whole batch. So a call carries a *spec*, the transforms to apply to ``fn`` in order::

    []                         fn(*args)
    [["vjp", n]]               the gradients of fn(*args[:n]) against the cotangents args[n:],
                               one per floating-point tensor among args[:n]
    [["vmap", in_dims]]        torch.vmap(fn, in_dims)(*args), batched along dim 0

Each call is one round trip (a fraction of a millisecond): keep callbacks to small tests.
"""

from __future__ import annotations

import inspect

import torch

from cs330.grading.wire import differentiable


class Callback:
    """A function of the test process; ``ask(spec, args)`` is the session's round trip to it."""

    def __init__(self, ask, names: list[str]):
        self._ask = ask
        self._signature = inspect.Signature(
            [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in names]
        )
        self.__name__ = self.__qualname__ = "stated"

    def __call__(self, *args, **kwargs):
        bound = self._signature.bind(*args, **kwargs)  # the stated function's own parameter names
        return _Call.apply(self._ask, (), *bound.args)

    def __repr__(self) -> str:
        return f"<a function of the grader's process{self._signature}>"


class _Call(torch.autograd.Function):
    """``transformed(fn, spec)(*args)`` computed by the test process; its backward is another call."""

    @staticmethod
    def forward(ask, spec, *args):
        value = ask(list(spec), [a.detach().cpu() if isinstance(a, torch.Tensor) else a for a in args])
        device = next((a.device for a in args if isinstance(a, torch.Tensor)), torch.device("cpu"))
        if isinstance(value, (list, tuple)):
            return tuple(v.to(device) for v in value)
        return value.to(device)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ask, spec, *args = inputs
        ctx.ask, ctx.spec = ask, spec
        ctx.tensors = [i for i, a in enumerate(args) if isinstance(a, torch.Tensor)]
        ctx.others = [None if isinstance(a, torch.Tensor) else a for a in args]
        ctx.save_for_backward(*[args[i] for i in ctx.tensors])

    @staticmethod
    def backward(ctx, *cotangents):
        args = list(ctx.others)
        for i, t in zip(ctx.tensors, ctx.saved_tensors):
            args[i] = t
        grads = _Call.apply(ctx.ask, (*ctx.spec, ("vjp", len(args))), *args, *cotangents)
        grads = iter(grads if isinstance(grads, tuple) else (grads,))
        return (None, None, *[next(grads) if differentiable(a) else None for a in args])

    @staticmethod
    def vmap(info, in_dims, ask, spec, *args):
        out = _Call.apply(ask, (*spec, ("vmap", list(in_dims[2:]))), *args)
        return out, (tuple(0 for _ in out) if isinstance(out, tuple) else 0)
