"""What crosses between the grader and the student worker: data, never code.

A message is one frame: ``MAGIC`` (4 bytes), the payload length (8 bytes, big-endian), then the
payload, a ``torch.save`` archive of a plain structure. The grader reads the worker's frames with
``torch.load(..., weights_only=True)`` (which refuses arbitrary objects: no pickled code runs), then
:func:`plain` rebuilds the value from an allow-list, so what a test sees is made of exact builtin
types and dense ``torch.Tensor``: tensor subclasses (``nn.Parameter`` included) arrive as plain
tensors, anything else (a ``torch.Size``, a dtype, an object with its own ``__eq__``) is refused.

A value the worker cannot send as data (a model, a module, a function) stays in the worker and
crosses as a *handle*, ``{HANDLE: n}``: a number that only means something to the worker.
"""

from __future__ import annotations

import io
import os
import struct

import torch

MAGIC = b"C330"
HEADER = struct.Struct(">4sQ")
HANDLE = "__cs330_handle__"
MAX_DEPTH = 32


class NotAResult(ValueError):
    """A frame that is not a well-formed message of plain data."""


def pack(message) -> bytes:
    buffer = io.BytesIO()
    torch.save(message, buffer)
    payload = buffer.getvalue()
    return HEADER.pack(MAGIC, len(payload)) + payload


def unpack(payload: bytes):
    """A message from its payload bytes, rebuilt from plain data only (raises :class:`NotAResult`)."""
    try:
        value = torch.load(io.BytesIO(payload), weights_only=True, map_location="cpu")
    except Exception as e:  # noqa: BLE001  (whatever the unpickler refuses, it is not a result)
        raise NotAResult(f"it does not load as plain data ({type(e).__name__})") from None
    return plain(value)


def plain(value, depth: int = 0):
    """``value`` rebuilt from exact builtin types and dense tensors; raises :class:`NotAResult`."""
    if depth > MAX_DEPTH:
        raise NotAResult("it is nested too deeply")
    kind = type(value)
    if value is None or kind in (bool, int, float, str, bytes):
        return value
    if isinstance(value, torch.Tensor):
        if value.layout != torch.strided or value.is_quantized or value.is_nested or value.device.type != "cpu":
            raise NotAResult(f"it holds a {value.layout} tensor")
        # a fresh plain tensor: no subclass, no hooks, no shared storage with anything else
        return (
            torch.Tensor._make_subclass(torch.Tensor, value.detach().clone(), False)
            if kind is not torch.Tensor
            else value.detach()
        )
    if kind in (list, tuple):
        return kind(plain(v, depth + 1) for v in value)
    if kind is dict or kind.__name__ == "OrderedDict" and isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if type(k) not in (str, int):
                raise NotAResult(f"it has a dict key of type {type(k).__name__}")
            out[k] = plain(v, depth + 1)
        return out
    raise NotAResult(f"it holds a {kind.__name__}")


def write(fd: int, message) -> None:
    data = pack(message)
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
