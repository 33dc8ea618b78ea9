"""What crosses between the grader and the student worker: data, never code.

A message is one frame: ``MAGIC`` (4 bytes), the payload length (8 bytes, big-endian), then the
payload, a ``torch.save`` archive of a plain structure. The grader reads the worker's frames with
``torch.load(..., weights_only=True)`` (which refuses arbitrary objects: no pickled code runs), then
:func:`plain` rebuilds the value from an allow-list, so what a test sees is made of exact builtin
types and dense ``torch.Tensor``: tensor subclasses (``nn.Parameter`` included) arrive as plain
tensors, anything else (a ``torch.Size``, a dtype, an object with its own ``__eq__``) is refused.

A value the worker cannot send as data (a model, a module, a function) stays in the worker and
crosses as a *handle*, ``{HANDLE: n}``: a number that only means something to the worker. The mirror
image, a function of the test process the worker may call (``code.Trusted``), crosses as
``{CALLBACK: [n, parameter names]}``; the worker's call is a frame ``{"callback": n, "spec", "args"}``
sent while it serves a request, answered by an ``{"op": "answer"}`` frame (cs330.grading.worker.callback).
"""

from __future__ import annotations

import io
import json
import math
import os
import struct

import torch

MAGIC = b"C330"
FLAT = b"C33F"  # a flat frame: JSON and raw tensor bytes, for the many small frames of callbacks
FRAMES = (MAGIC, FLAT)
HEADER = struct.Struct(">4sQ")
HANDLE = "__cs330_handle__"
CALLBACK = "__cs330_callback__"  # {CALLBACK: [n, names]}: a function of the test process (code.Trusted)
MAX_DEPTH = 32


class NotAResult(ValueError):
    """A frame that is not a well-formed message of plain data."""


def pack(message) -> bytes:
    buffer = io.BytesIO()
    torch.save(message, buffer)
    payload = buffer.getvalue()
    return HEADER.pack(MAGIC, len(payload)) + payload


def pack_flat(message) -> bytes:
    """A flat frame: a 4-byte JSON length, JSON (tensors as ``{"__tensor__": i}``), then each tensor's bytes.
    For plain structures of numbers, strings and CPU tensors; ~20x faster than ``torch.save`` on small ones."""
    tensors, blobs = [], []

    def flat(value):
        if isinstance(value, torch.Tensor):
            t = value.detach().cpu().contiguous()
            tensors.append([str(t.dtype).removeprefix("torch."), list(t.shape)])
            blobs.append(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
            return {TENSOR: len(tensors) - 1}
        if isinstance(value, (list, tuple)):
            return [flat(v) for v in value]
        if isinstance(value, dict):
            return {k: flat(v) for k, v in value.items()}
        return value

    head = json.dumps({"message": flat(message), "tensors": tensors}).encode()
    payload = struct.pack(">I", len(head)) + head + b"".join(blobs)
    return HEADER.pack(FLAT, len(payload)) + payload


def unpack_flat(payload: bytes):
    """A message from a flat frame's payload, checked against the frame before any tensor is built."""
    try:
        (n,) = struct.unpack(">I", payload[:4])
        head = json.loads(payload[4:4 + n])
        tensors, offset = [], 4 + n
        for dtype, shape in head["tensors"]:
            dtype = FLAT_DTYPES[dtype]
            if type(shape) is not list or len(shape) > 16 or not all(type(d) is int and d >= 0 for d in shape):
                raise ValueError("a bad shape")
            size = math.prod(shape) * dtype.itemsize
            if size > len(payload) - offset:
                raise ValueError("a tensor larger than its frame")
            data = bytearray(payload[offset:offset + size])
            tensor = torch.frombuffer(data, dtype=dtype) if size else torch.zeros(0, dtype=dtype)
            tensors.append(tensor.reshape(shape))
            offset += size
        if offset != len(payload):
            raise ValueError("bytes left over")
        return _with_tensors(head["message"], tensors, 0)
    except NotAResult:
        raise
    except Exception as e:  # noqa: BLE001  (whatever does not parse, it is not a result)
        raise NotAResult(f"it is not a well-formed flat frame ({type(e).__name__})") from None


TENSOR = "__tensor__"
FLAT_DTYPES = {str(d).removeprefix("torch."): d for d in (
    torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.int16, torch.int8,
    torch.uint8, torch.bool)}


def _with_tensors(value, tensors, depth):
    if depth > MAX_DEPTH:
        raise NotAResult("it is nested too deeply")
    if type(value) is list:
        return [_with_tensors(v, tensors, depth + 1) for v in value]
    if type(value) is dict:
        if set(value) == {TENSOR}:
            return tensors[value[TENSOR]]
        return {k: _with_tensors(v, tensors, depth + 1) for k, v in value.items()}
    return value


def differentiable(value) -> bool:
    """Whether a callback argument gets a gradient (both sides of a call must agree): float tensors."""
    return isinstance(value, torch.Tensor) and value.is_floating_point()


def read_payload(magic: bytes, payload: bytes):
    """The message of a frame of either kind."""
    return unpack(payload) if magic == MAGIC else unpack_flat(payload)


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


def write(fd: int, message, flat: bool = False) -> None:
    data = pack_flat(message) if flat else pack(message)
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
