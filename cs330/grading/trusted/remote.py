"""The grader's side of the student worker: start it, ask it things, and judge nothing it says.

The ``student`` fixture (cs330.grading.plugin) gives a test a :class:`Student`: ``student.model``
stands for the submission's ``model.py``, and every attribute, call, item or listing reached
through it is a request to the worker (cs330.grading.worker.serve). What comes back is data: a plain
tensor, a number, a string, or lists/tuples/dicts of them; an object that is not data (a model,
a layer) comes back as a :class:`Remote` that can be used the same way. ``student.probe(fn, ...)``
runs a probe function (from a probe module: no secrets) beside the student's code and returns its
data; ``reference.probe(fn, ...)`` runs the same function on the reference, here.

The clock is the grader's: each request waits at most until the test's deadline (and the
submission's), then the worker's whole process tree is killed and the test fails with
:class:`StudentTimeout`. A reply that is malformed, too large, from another test or not data
fails the test with :class:`NotAResult` and the worker is killed. The student's own exceptions
fail the test as :class:`StudentError`, with their traceback.
"""

from __future__ import annotations

import json
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from typing import NoReturn

from cs330.grading import wire
from cs330.grading.code import Trusted
from cs330.grading.trusted import callbacks
from cs330.grading.worker import jail

START_TIMEOUT = 180.0  # seconds for a fresh worker to start Python and import torch
END_TIMEOUT = 10.0
MAX_REPLY = 256 << 20  # bytes in one reply
MAX_OUTPUT = 20_000  # characters of the worker's output kept per test


class StudentFailure(AssertionError):
    """A test failed because of what the student's code did (the message is for the student)."""


class StudentError(StudentFailure):
    """The student's code raised an exception."""

    def __init__(self, error: dict):
        self.type_name = error.get("type", "Exception")
        self.message = error.get("message", "")
        if error.get("importing"):
            text = f"Could not import your {error['importing']}:\n{error.get('traceback', '')}"
        else:
            text = f"your code raised {self.type_name}: {self.message}\n{error.get('traceback', '')}"
        super().__init__(text.rstrip())


class StudentTimeout(StudentFailure):
    """The student's code ran past the test's (or the submission's) time limit."""


class StudentCrash(StudentFailure):
    """The student's process died (a crash, os._exit, the memory limit)."""


class NotAResult(StudentFailure):
    """The student's process sent something that is not a result."""


class WorkerStartError(RuntimeError):
    """The worker could not be set up (before any student code ran): a grader fault."""


class Worker:
    """One sandboxed worker process tree (a zygote and, during a test, its child)."""

    def __init__(self, config: dict):
        self.config = config
        self.proc: subprocess.Popen | None = None
        self.output = _Drain()
        self.token = ""
        self.seq = 0
        self.callbacks: list = []  # this test's code.Trusted functions, by the number the worker knows
        self.deadline, self.limit = float("inf"), ""
        self._ready = False

    # -- life cycle ---------------------------------------------------------------------------
    def start_soon(self) -> None:
        """Start the worker now, without waiting for it: it imports torch while the tests are
        collected; the first :meth:`begin` waits for it to be ready."""
        self._spawn()

    def start(self) -> None:
        self._spawn()
        self._await_ready()

    def _spawn(self) -> None:
        requests_r, requests_w = os.pipe()
        replies_r, replies_w = os.pipe()
        out_r, out_w = os.pipe()
        cfg = {**self.config, "fds": [requests_r, replies_w]}
        cmd = [*jail.command(cfg["mode"]), sys.executable, "-I", "-m", "cs330.grading.worker.serve", json.dumps(cfg)]
        if shutil.which("setpriv"):  # if this test process dies, its worker goes with it
            cmd = ["setpriv", "--pdeathsig", "KILL", *cmd]  # (tied to this thread: spawn from the main thread only)
        # the worker's fds: 0 /dev/null, 1-2 its output, and its channel; nothing else is inherited
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out_w, stderr=out_w, env=cfg["env"], cwd="/",
                                     pass_fds=(requests_r, replies_w), close_fds=True, start_new_session=True)
        for fd in (requests_r, replies_w, out_w):
            os.close(fd)
        self.requests, self.replies = requests_w, replies_r
        self.output.attach(out_r)
        self._ready = False

    def _await_ready(self) -> None:
        try:
            self._read(time.monotonic() + START_TIMEOUT, starting=True)
        except StudentFailure as e:
            output = self.output.take()
            raise WorkerStartError(
                f"the student worker could not start ({e}); sandbox mode {self.config['mode']}:\n{output[-3000:]}"
            ) from None
        self._ready = True

    def kill(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.config["mode"] == "setuid":  # no PID namespace: end every process of the job's own user
            jail.kill_user(self.config["uid"])
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        for fd in (self.requests, self.replies):
            try:
                os.close(fd)
            except OSError:
                pass
        self.output.detach()
        self.proc = None

    def begin(self, seconds: float, total: float) -> None:
        """Start a test: a fresh child of the zygote, answering until :meth:`end`. The test's clock
        starts once the worker is ready (starting Python and torch is not the student's time): it
        may take ``seconds``, and never past ``total`` (the submission's deadline, time.monotonic)."""
        if self.proc is not None and not self._ready:
            self._await_ready()
        if self.proc is None or self.proc.poll() is not None:
            self.kill()
            self.start()
        own = time.monotonic() + seconds
        self.deadline = min(own, total)
        self.limit = f"{seconds:g} s" if own <= total else "the submission's total time budget"
        self.token, self.seq, self.callbacks = secrets.token_hex(8), 0, []
        self._send({"op": "begin", "session": self.token})

    def end(self) -> str:
        """End the test's child; returns what it printed. A worker that does not end cleanly is killed."""
        if self.proc is not None and self.token:
            try:
                self._send({"op": "end"})
                reply = self._read(min(self.deadline, time.monotonic()) + END_TIMEOUT)
                if reply.get("session") != self.token or "ended" not in reply:
                    self._lie("a reply at the end of the test that is not the end")
            except StudentFailure:
                self.kill()
        self.token = ""
        self.output.settle()
        return self.output.take()

    # -- requests -----------------------------------------------------------------------------
    def request(self, message: dict):
        if self.proc is None or not self.token:
            raise StudentCrash("your code's process is no longer running (it was stopped earlier in this test)")
        self.seq += 1
        self._send({**message, "seq": self.seq})
        reply = self._read(self.deadline)
        while "callback" in reply and reply.get("session") == self.token and reply.get("seq") == self.seq:
            self._answer(reply)  # the student's code calls a Trusted function while it serves the request
            reply = self._read(self.deadline)
        if reply.get("session") == self.token and "ended" in reply and type(reply["ended"]) is int:
            self.token = ""  # the zygote reports that this test's child is gone
            self._crash(os.waitstatus_to_exitcode(reply["ended"]))
        if reply.get("session") != self.token or reply.get("seq") != self.seq or type(reply.get("ok")) is not bool:
            self._lie("a reply that answers no request")
        if not reply["ok"]:
            error = reply.get("error")
            if type(error) is not dict or not all(
                type(error.get(k, "")) is str for k in ("type", "message", "traceback", "importing")
            ):
                self._lie("a malformed error")
            raise StudentError(error)
        return reply.get("value")

    def _answer(self, call: dict) -> None:
        n = call["callback"]
        if type(n) is not int or not 0 <= n < len(self.callbacks):
            self._lie("a call of a function this test did not give")
        try:
            answer = callbacks.answer(self.callbacks[n].fn, call.get("spec"), call.get("args"))
        except callbacks.BadCall as e:
            self._lie(f"a malformed call: {e}")
        self._send({"op": "answer", **answer}, flat=True)

    def _send(self, message: dict, flat: bool = False) -> None:
        try:
            wire.write(self.requests, message, flat)
        except OSError:
            self._died()

    def _read(self, deadline: float, starting: bool = False) -> dict:
        header = self._read_exactly(wire.HEADER.size, deadline, starting)
        magic, length = wire.HEADER.unpack(header)
        if magic not in wire.FRAMES or length > MAX_REPLY:
            self._lie("too large" if magic in wire.FRAMES else "not a message")
        payload = self._read_exactly(length, deadline, starting)
        try:
            message = wire.read_payload(magic, payload)
        except wire.NotAResult as e:
            self._lie(str(e))
        if type(message) is not dict or starting and "ready" not in message:
            self._lie("not a message")
        return message

    def _read_exactly(self, n: int, deadline: float, starting: bool) -> bytes:
        chunks, left = [], n
        while left:
            wait = deadline - time.monotonic()
            if wait <= 0:
                self.kill()
                if starting:
                    raise StudentTimeout(f"the worker did not start within {START_TIMEOUT:g} s")
                raise StudentTimeout(
                    f"Timed out: your code was still running at the time limit ({self.limit}); its process was stopped."
                )
            ready, _, _ = select.select([self.replies], [], [], min(wait, 1.0))
            if not ready:
                continue
            chunk = os.read(self.replies, min(left, 1 << 20))
            if not chunk:
                self._died()
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def _died(self):
        code = self.proc.wait(timeout=30) if self.proc is not None else None
        self.kill()
        self._crash(code)

    def _crash(self, code) -> NoReturn:
        """Fail the test: the student's process exited with ``code``."""
        output = self.output.peek()
        raise StudentCrash(
            f"your code's process died ({jail.describe_exit(code)})."
            + (f"\nIts last output:\n{output[-3000:]}" if output.strip() else "")
        )

    def _lie(self, why: str) -> NoReturn:
        """Fail the test and stop the worker: what it sent is not a result (``why``)."""
        self.kill()
        raise NotAResult(f"your code's process sent something that is not a result ({why})")

    # -- values -------------------------------------------------------------------------------
    def encode(self, value):
        """A test's argument as data for the worker (a Remote becomes its handle)."""
        if isinstance(value, Remote):
            if value._worker is not self or value._token != self.token:
                raise ValueError("this object belongs to another test's process")
            return {wire.HANDLE: value._handle}
        if isinstance(value, Trusted):
            self.callbacks.append(value)
            return {wire.CALLBACK: [len(self.callbacks) - 1, value.names]}
        if isinstance(value, (list, tuple)):
            return (
                type(value)(self.encode(v) for v in value)
                if type(value) in (list, tuple)
                else tuple(self.encode(v) for v in value)
            )
        if isinstance(value, dict):
            return {k: self.encode(v) for k, v in value.items()}
        return value

    def decode(self, value, label: str):
        if isinstance(value, dict):
            if set(value) == {wire.HANDLE} and type(value[wire.HANDLE]) is int:
                return Remote(self, value[wire.HANDLE], label)
            return {k: self.decode(v, f"{label}[{k!r}]") for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self.decode(v, f"{label}[{i}]") for i, v in enumerate(value))
        return value

    def ask(self, label: str, **message):
        return self.decode(self.request(self.encode(message)), label)


class Remote:
    """An object that lives in the student's worker; using it sends requests there."""

    __slots__ = ("_worker", "_handle", "_label", "_token")

    def __init__(self, worker: Worker, handle: int, label: str):
        object.__setattr__(self, "_worker", worker)
        object.__setattr__(self, "_handle", handle)
        object.__setattr__(self, "_label", label)
        object.__setattr__(self, "_token", worker.token)

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return self._worker.ask(f"{self._label}.{name}", op="getattr", target=self._handle, name=name)

    def __setattr__(self, name, value):
        raise TypeError(f"cannot set {self._label}.{name}: it lives in your code's process (use a probe)")

    def __call__(self, *args, **kwargs):
        return self._worker.ask(f"{self._label}(...)", op="call", target=self._handle, args=list(args), kwargs=kwargs)

    def __getitem__(self, key):
        return self._worker.ask(f"{self._label}[{key!r}]", op="getitem", target=self._handle, key=key)

    def __len__(self) -> int:
        n = self._worker.request({"op": "len", "target": self._handle})
        if type(n) is not int or n < 0:
            raise NotAResult(f"len({self._label}) is not a length: {n!r}")
        return n

    def __iter__(self):
        items = self._worker.ask(f"list({self._label})", op="iter", target=self._handle)
        if type(items) is not list:
            raise NotAResult(f"list({self._label}) is not a list")
        return iter(items)

    def __repr__(self) -> str:
        return f"<{self._label} in your code's process>"

    # A Remote is not data: it cannot be compared, tested for truth or turned into a number here
    # (an object that claims to equal anything must not pass a check). Tests that expect a tensor
    # check ``isinstance(out, torch.Tensor)`` first.
    def _not_data(self, *_):
        raise NotAResult(f"{self._label} is not a tensor, number or string, so it cannot be checked here")

    __bool__ = __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __float__ = __int__ = __index__ = __contains__ = (
        _not_data
    )
    __hash__ = object.__hash__


class Student:
    """The ``student`` fixture in the autograder: the submission's modules, reached through the worker."""

    def __init__(self, worker: Worker, probe_modules: set[str]):
        self._worker, self._probe_modules = worker, probe_modules

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return self.module(name)

    def module(self, name: str):
        return self._worker.ask(name, op="module", name=name)

    def probe(self, fn, *args, **kwargs):
        """Run the probe ``fn(code, *args, **kwargs)`` in the worker, on the student's code."""
        module, function = fn.__module__, fn.__qualname__
        if module not in self._probe_modules and not module.startswith("cs330."):
            raise ValueError(f"{module}.{function} is not in a probe module (list its file in homework.toml `probes`)")
        return self._worker.ask(
            f"{function}(...)", op="probe", module=module, function=function, args=list(args), kwargs=kwargs
        )


class _Drain:
    """Collects what the worker prints, keeping the first and last characters per test."""

    def __init__(self):
        self.lock = threading.Lock()
        self.head, self.tail, self.total = "", "", 0
        self.thread, self.fd = None, None

    def attach(self, fd: int) -> None:
        self.fd = fd
        self.thread = threading.Thread(target=self._run, args=(fd,), daemon=True)
        self.thread.start()

    def _run(self, fd: int) -> None:
        with os.fdopen(fd, "rb", buffering=0) as stream:
            for chunk in iter(lambda: stream.read(65536), b""):  # noqa: B023
                text = chunk.decode(errors="replace")
                with self.lock:
                    self.total += len(text)
                    take = max(0, MAX_OUTPUT // 2 - len(self.head))
                    self.head += text[:take]
                    self.tail = (self.tail + text[take:])[-MAX_OUTPUT // 2:]

    def settle(self, fd_timeout: float = 0.5) -> None:
        """Wait (briefly) until what is already in the pipe has been read."""
        import fcntl
        import termios

        end = time.monotonic() + fd_timeout
        buf = bytearray(4)
        while self.fd is not None and time.monotonic() < end:
            try:
                fcntl.ioctl(self.fd, termios.FIONREAD, buf)
            except OSError:
                return
            if int.from_bytes(buf, sys.byteorder) == 0:
                time.sleep(0.002)  # what the reader thread took, it appends right away
                return
            time.sleep(0.002)

    def detach(self) -> None:
        if self.thread is not None:
            self.thread.join(timeout=2)
        self.fd = None

    def peek(self) -> str:
        with self.lock:
            cut = self.total - len(self.head) - len(self.tail)
            return self.head + (f"\n... [{cut} characters cut] ...\n" if cut > 0 else "") + self.tail

    def take(self) -> str:
        text = self.peek()
        with self.lock:
            self.head, self.tail, self.total = "", "", 0
        return text
