"""A homework's code folder seen as a namespace of its modules: ``code.model`` imports ``model.py``.

The same object serves the three places code is run from:

* the student worker (cs330.grading.worker.serve), over the student's workspace;
* the trusted side of the autograder, over the reference solution (the ``reference`` fixture);
* a student's own ``pytest tests`` run, over their folder (the ``student`` fixture, in process).

Probes get it as their first argument, so one probe runs on either side unchanged::

    def losses(code, seed):                     # a probe, in tests/probes.py
        net = code.model.Net(); ...
        return net(x)                           # data goes back to the test
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import sys
from pathlib import Path


class Code:
    """The modules of the folder ``root``, imported on first use (``root`` goes first on sys.path)."""

    def __init__(self, root: str | Path):
        self._root = Path(root)

    def __repr__(self) -> str:
        return f"Code({str(self._root)!r})"

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return self.module(name)

    def module(self, name: str):
        """Import ``name`` (``"model"`` for ``model.py``) from this folder."""
        file = self._root / (name.replace(".", "/") + ".py")
        if not file.is_file():
            raise ModuleNotFoundError(f"{file.name} is missing (looked in {self._root})")
        if str(self._root) not in sys.path:
            sys.path.insert(0, str(self._root))
        module = importlib.import_module(name)
        if not Path(module.__file__).resolve().is_relative_to(self._root.resolve()):
            raise ImportError(f"{name} was already imported from {module.__file__}, not from {self._root}")
        return module

    @contextlib.contextmanager
    def stand_ins(self, module: str, replacements: dict):
        """Until the block ends, the functions ``replacements`` ({name: function}) stand in for ``module``'s own
        functions of those names, wherever this folder's imported modules hold them (under any name, e.g.
        ``from gaussian import kl_diag_gaussians as kl``); the originals are put back after.

        For a probe that grades later code on top of an earlier function *as its contract states it*, so that
        a mistake in the earlier function costs that function's own test only (hw4's question 1)."""
        own = self.module(module)
        by_id = {id(getattr(own, name)): fn for name, fn in replacements.items() if callable(getattr(own, name, None))}
        root = self._root.resolve()
        swapped = []  # (module, attribute, its own value)
        for mod in list(sys.modules.values()):
            file = getattr(mod, "__file__", None)
            if not isinstance(file, str) or not Path(file).resolve().is_relative_to(root):
                continue
            for attr, value in list(vars(mod).items()):
                if id(value) in by_id:
                    swapped.append((mod, attr, value))
                    setattr(mod, attr, by_id[id(value)])
        try:
            yield
        finally:
            for mod, attr, value in reversed(swapped):
                setattr(mod, attr, value)

    def probe(self, fn, *args, **kwargs):
        """Run the probe function ``fn`` on this code: ``fn(self, *args, **kwargs)`` (a :class:`Trusted`
        argument is its function: here the test and the code share one process)."""
        return fn(self, *_in_process(args), **_in_process(kwargs))

    def probe_function(self, module: str, function: str):
        """The probe ``module.function`` (a probe module beside the tests, or one of cs330's)."""
        fn = getattr(importlib.import_module(module), function)
        if not callable(fn):
            raise TypeError(f"{module}.{function} is not a function")
        return fn


class Trusted:
    """A function of the test's process that a probe may call: ``student.probe(fn, Trusted(stated_nll))``.

    In the autograder the worker gets a handle whose calls cross back to the test process, which
    computes the function there (differentiable to any order, under ``vmap`` too:
    cs330.grading.worker.callback): a stated implementation or an instrument never enters the
    student's process. In one process (the reference, a student's own run) it is the function itself.
    The worker calls it by the parameter names of ``fn``; its arguments must be tensors and numbers."""

    def __init__(self, fn):
        self.fn = fn
        self.names = list(inspect.signature(fn).parameters)

    def __repr__(self) -> str:
        return f"Trusted({getattr(self.fn, '__name__', self.fn)!r})"


def _in_process(value):
    if isinstance(value, Trusted):
        return value.fn
    if type(value) in (list, tuple):
        return type(value)(_in_process(v) for v in value)
    if type(value) is dict:
        return {k: _in_process(v) for k, v in value.items()}
    return value
