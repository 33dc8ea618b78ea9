"""The student worker: the only process that runs a submission's code. It decides nothing.

Started by the grader's test process (cs330.grading.trusted.remote) as
``python -I -m cs330.grading.worker.serve CONFIG``, it first enters its jail (cs330.grading.worker.jail), then
imports torch and serves requests on one pipe, replying on another (cs330.grading.wire frames):

* the first process is a *zygote*: it imports the heavy libraries once, then for each test
  (``begin``) forks a fresh child that serves that test's requests and exits at ``end``, so no
  state carries from one test to the next and no test pays for importing torch again;
* a child imports the student's modules, calls what it is asked to call (an attribute, a call,
  an item, ``len``, a listing, or a probe function from a probe module) and replies with *data*:
  tensors, numbers, strings, and lists, tuples and dicts of them. Anything else stays here and is
  sent as a handle (a number) the grader can name in later requests.

Every reply carries the test's session token and the request's sequence number; the grader
checks both, owns every deadline, and kills this whole process tree when it is late or lies.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback

from cs330.grading.worker import jail

REQUESTS, REPLIES = 3, 4  # set from the config: the channel's file descriptors


def main(argv: list[str]) -> None:
    global REQUESTS, REPLIES
    cfg = json.loads(argv[0])
    REQUESTS, REPLIES = cfg["fds"]
    workspace = jail.enter(cfg)
    # the libraries first, before the submission's folder is on sys.path (nothing there can stand
    # in for them): imported once here, shared by every forked child
    import torch

    from cs330.grading import code, wire

    for name in cfg.get("preload", []):  # homework.toml's [grading] preload, e.g. transformers
        importlib.import_module(name)
    _warm_up(torch)
    probes = jail.PROBES if cfg["mode"] in ("namespaces", "user-namespace") else cfg.get("probes")
    sys.path[:0] = [probes, str(workspace)] if cfg.get("probes") else [str(workspace)]  # the grader's probes first

    jail.limit_memory(cfg["memory_mb"])
    wire.write(REPLIES, {"ready": os.getpid()})
    while True:
        request = _read()
        if request is None:
            os._exit(0)
        if request.get("op") != "begin":
            os._exit(2)
        session = request["session"]
        pid = os.fork()
        if pid == 0:
            try:
                Session(session, code.Code(workspace), wire).serve()
            finally:
                os._exit(0)
        _, status = os.waitpid(pid, 0)
        if cfg["mode"] != "process":
            _kill_the_rest()
        wire.write(REPLIES, {"session": session, "ended": status})


def _warm_up(torch) -> None:
    """Load, once and here, what a first training step loads lazily (optimizers, autograd, and
    torch.func's transforms, which MAML-style code calls: ~4 s on first use), so that each test's
    child does not pay for it. No student code has run yet; one thread only, so no thread pool
    exists to be carried over a fork."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    net = torch.nn.Linear(4, 1)
    optimizer = torch.optim.Adam(net.parameters())
    torch.nn.functional.mse_loss(net(torch.zeros(2, 4)), torch.zeros(2, 1)).backward()
    optimizer.step()
    params = dict(net.named_parameters())

    def loss(p, x):
        return torch.func.functional_call(net, p, (x,)).square().mean()

    torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0))(params, torch.zeros(2, 3, 4))
    torch.set_num_threads(threads)


def _kill_the_rest() -> None:
    """End whatever the test's code left running (its own children, daemons in a session of their
    own): everything this user may signal, which in the jail is only this submission's processes."""
    import signal

    try:
        os.kill(-1, signal.SIGKILL)
    except OSError:
        pass
    while True:
        try:
            os.waitpid(-1, 0)  # as PID 1 of the namespace, orphans are ours to reap
        except ChildProcessError:
            return


def _read():
    """The grader's next request, or None when it has closed the channel."""
    from cs330.grading import wire

    header = _read_exactly(wire.HEADER.size)
    if header is None:
        return None
    magic, length = wire.HEADER.unpack(header)
    if magic not in wire.FRAMES:
        os._exit(2)
    return wire.read_payload(magic, _read_exactly(length))


def _read_exactly(n: int) -> bytes | None:
    chunks, left = [], n
    while left:
        chunk = os.read(REQUESTS, min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


class Session:
    """One test's requests, served by a forked child."""

    def __init__(self, token: str, student, wire):
        self.token, self.student, self.wire = token, student, wire
        self.objects: list = []
        self.seq = None  # the request being served

    def serve(self) -> None:
        while True:
            request = _read()
            if request is None or request.get("op") == "end":
                sys.stdout.flush()
                sys.stderr.flush()
                return
            self.seq = request.get("seq")
            reply = {"session": self.token, "seq": self.seq}
            try:
                reply["value"] = self.encode(self.handle(request))
                reply["ok"] = True
            except BaseException as e:  # noqa: BLE001  (the student's exception is the answer)
                reply.update(ok=False, error=self.describe(e))
            try:
                self.wire.write(REPLIES, reply)
            except Exception as e:  # noqa: BLE001  (a value torch cannot save)
                self.wire.write(
                    REPLIES,
                    {
                        "session": self.token,
                        "seq": request.get("seq"),
                        "ok": False,
                        "error": {
                            "type": type(e).__name__,
                            "message": f"the result cannot be sent: {e}",
                            "traceback": "",
                        },
                    },
                )

    def handle(self, request: dict):
        op = request["op"]
        if op == "module":
            try:
                return self.student.module(request["name"])
            except BaseException as e:  # noqa: BLE001  (SyntaxError, SystemExit, anything at import time)
                raise _ImportFailure(request["name"]) from e
        if op == "probe":
            fn = self.student.probe_function(request["module"], request["function"])
            return fn(self.student, *self.decode(request["args"]), **self.decode(request["kwargs"]))
        target = self.objects[request["target"]]
        if op == "getattr":
            return getattr(target, request["name"])
        if op == "call":
            return target(*self.decode(request["args"]), **self.decode(request["kwargs"]))
        if op == "getitem":
            return target[self.decode(request["key"])]
        if op == "len":
            return len(target)
        if op == "iter":
            return list(target)
        raise ValueError(f"unknown request {op!r}")

    def encode(self, value, depth: int = 0):
        """Data as data; anything else as a handle to an object kept here."""
        import torch

        wire = self.wire
        if depth > wire.MAX_DEPTH:
            raise ValueError("the result is nested too deeply")
        if value is None or type(value) in (bool, int, float, str, bytes):
            return value
        for base in (bool, int, float, str):  # IntEnum, numpy.float64, ...: their plain value
            if isinstance(value, base):
                return base(value)
        if isinstance(value, torch.Tensor) and value.layout == torch.strided and not value.is_quantized:
            return value.detach().to("cpu").clone().as_subclass(torch.Tensor)
        if isinstance(value, torch.Size):
            return tuple(int(n) for n in value)
        if isinstance(value, (list, tuple)):
            return type(value)(self.encode(v, depth + 1) for v in value) if type(value) in (list, tuple) else \
                tuple(self.encode(v, depth + 1) for v in value)
        if isinstance(value, dict) and all(type(k) in (str, int) for k in value):
            return {k: self.encode(v, depth + 1) for k, v in value.items()}
        if hasattr(value, "item") and callable(value.item) and type(value).__module__ == "numpy":
            return value.item()
        self.objects.append(value)
        return {wire.HANDLE: len(self.objects) - 1}

    def decode(self, value):
        if isinstance(value, dict):
            if set(value) == {self.wire.HANDLE}:
                return self.objects[value[self.wire.HANDLE]]
            if set(value) == {self.wire.CALLBACK}:
                from cs330.grading.worker.callback import Callback

                n, names = value[self.wire.CALLBACK]
                return Callback(lambda spec, args, n=n: self.call(n, spec, args), names)
            return {k: self.decode(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self.decode(v) for v in value)
        return value

    def call(self, n: int, spec: list, args: list):
        """A round trip to the test process: its function ``n`` (a ``code.Trusted``) on ``args``."""
        self.wire.write(REPLIES, {"session": self.token, "seq": self.seq, "callback": n, "spec": spec, "args": args},
                        flat=True)
        answer = _read()
        if answer is None:
            os._exit(0)
        if answer.get("op") != "answer":
            os._exit(2)
        if not answer["ok"]:
            raise RuntimeError(f"the grader's stated function raised {answer['error']}")
        return answer["value"]

    @staticmethod
    def describe(e: BaseException) -> dict:
        """The exception as text, with the student's (and the probe's) frames only."""
        importing = None
        if isinstance(e, _ImportFailure) and e.__cause__ is not None:
            importing, e = f"{e.name.replace('.', '/')}.py", e.__cause__
        frames = [f for f in traceback.extract_tb(e.__traceback__) if not _internal(f.filename)]
        try:
            message = str(e)
            text = "".join(traceback.format_list(frames)) + "".join(traceback.format_exception_only(type(e), e))
        except BaseException:  # noqa: BLE001  (an exception whose __str__ fails)
            message = text = f"{type(e).__name__} (its message cannot be shown)"
        error = {"type": str(type(e).__name__), "message": message[:4000], "traceback": text[-8000:]}
        if importing:
            error["importing"] = importing
        return error


class _ImportFailure(Exception):
    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


def _internal(filename: str) -> bool:
    """Frames of the worker's own machinery (this package's grading code, importlib)."""
    return filename.startswith("<frozen") or os.path.dirname(os.path.abspath(filename)) == os.path.dirname(
        os.path.abspath(__file__)
    )


if __name__ == "__main__":
    main(sys.argv[1:])
