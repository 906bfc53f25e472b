"""The binary framing between device and server (version 1), and tensor wire precision.

Every message is one frame::

    offset  size  field
    0       4     magic b"ESPL"
    4       1     version (1)
    5       1     type: 1 TASK, 2 RESULT, 3 ERROR, 4 STATUS (ask), 5 STATUS (answer)
    6       2     reserved, 0
    8       4     header length H (little-endian uint32, at most 64 KiB)
    12      8     payload length P (little-endian uint64, at most the receiver's limit)
    20      H     header: a UTF-8 JSON object
    20+H    P     payload: the tensors' bytes, one after another, C order, little-endian

A TASK header names the application (network), the candidate and every tensor of the
payload, in order::

    {"task": 7, "app": "resnet18", "candidate": "layer3_1_relu_1",
     "tensors": [{"name": "layer3_1_relu_1", "dtype": "float16", "shape": [1, 256, 14, 14]}]}

Tensor dtypes on the wire: ``uint8`` (the raw camera image: candidate 0), ``float32``,
``float16``, or ``int8`` (per-tensor affine: the header adds ``"scale"`` and
``"zero_point"``, and ``x = (q - zero_point) * scale``); the simulator counts 1, 4, 2 and
1 bytes per element the same way. A RESULT header gives the output tensors (float32) and
the server's ``server_wait_s`` (queued before its tail started), ``tail_s`` (decode, tail,
encode), ``tail_cpu_s`` (CPU time of the tail alone: what it cost when the machine is
shared) and ``backlog_s`` (work queued behind it); an ERROR header gives ``error`` (what
is wrong), ``field`` and ``value``; a STATUS answer gives ``backlog_s``, ``queued`` and
``served``.

>>> import numpy as np
>>> x = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
>>> meta, data = encode_tensor("t", x, "int8")
>>> y = decode_tensor(meta, data)
>>> bool(np.abs(y - x).max() <= meta["scale"] / 2 + 1e-7)
True
>>> frame = pack_frame(TASK, {"task": 1}, data)
>>> len(frame) == PREFIX.size + len(b'{"task":1}') + x.size
True
"""

from __future__ import annotations

import json
import math
import socket
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "DTYPES",
    "ERROR",
    "MAGIC",
    "MAX_HEADER",
    "PREFIX",
    "RESULT",
    "STATUS",
    "STATUS_REPLY",
    "TASK",
    "VERSION",
    "FrameError",
    "decode_tensor",
    "decode_tensors",
    "encode_tensor",
    "pack_frame",
    "read_frame",
    "recv_exact",
]

MAGIC = b"ESPL"
VERSION = 1
TASK, RESULT, ERROR, STATUS, STATUS_REPLY = 1, 2, 3, 4, 5
TYPES = (TASK, RESULT, ERROR, STATUS, STATUS_REPLY)
PREFIX = struct.Struct("<4sBBHIQ")
MAX_HEADER = 64 * 1024
DTYPES = {"uint8": np.uint8, "float32": np.float32, "float16": np.float16, "int8": np.int8}
"""Wire dtypes (name -> numpy type); element sizes 1, 4, 2, 1."""


class FrameError(ValueError):
    """A frame or a tensor description is malformed.

    ``field`` names the offending part (``magic``, ``header.tensors[0].shape``...),
    ``value`` the culprit; ``fatal`` is true when the byte stream can no longer be trusted
    (the connection must close).
    """

    def __init__(self, field: str, value: Any, problem: str, *, fatal: bool = False) -> None:
        self.field, self.value, self.problem, self.fatal = field, value, problem, fatal
        text = repr(value)
        text = text if len(text) <= 80 else text[:77] + "..."
        super().__init__(f"{field} = {text}: {problem}")


def pack_frame(kind: int, header: dict[str, Any], payload: bytes | bytearray = b"") -> bytes:
    """One frame: prefix, JSON header, payload."""
    head = json.dumps(header, separators=(",", ":"), allow_nan=False).encode()
    if len(head) > MAX_HEADER:
        raise FrameError("header", f"{len(head)} bytes", f"at most {MAX_HEADER} bytes")
    return PREFIX.pack(MAGIC, VERSION, kind, 0, len(head), len(payload)) + head + bytes(payload)


def recv_exact(sock: socket.socket, n: int) -> bytearray:
    """Exactly ``n`` bytes from ``sock``; ``ConnectionError`` if it closes first."""
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if k == 0:
            raise ConnectionError(f"connection closed after {got} of {n} bytes")
        got += k
    return buf


def read_frame(
    sock: socket.socket, max_payload: int = 1 << 30
) -> tuple[int, dict[str, Any], bytearray]:
    """Read one frame: ``(type, header, payload)``.

    Raises
    ------
    FrameError
        (fatal) on a wrong magic, version or type, lengths past the limits, or a header
        that is not a UTF-8 JSON object.
    ConnectionError, TimeoutError
        If the peer closes or stalls (the socket's time-out).
    """
    raw = recv_exact(sock, PREFIX.size)
    magic, version, kind, _, hlen, plen = PREFIX.unpack(raw)
    if magic != MAGIC:
        raise FrameError("magic", bytes(magic), f"expected {MAGIC!r}", fatal=True)
    if version != VERSION:
        raise FrameError("version", version, f"this peer speaks version {VERSION}", fatal=True)
    if kind not in TYPES:
        raise FrameError("type", kind, f"expected one of {TYPES}", fatal=True)
    if hlen > MAX_HEADER:
        raise FrameError("header_length", hlen, f"at most {MAX_HEADER}", fatal=True)
    if plen > max_payload:
        raise FrameError("payload_length", plen, f"at most {max_payload}", fatal=True)
    try:
        header = json.loads(bytes(recv_exact(sock, hlen)).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FrameError("header", "(bytes)", f"not a UTF-8 JSON object ({e})", fatal=True) from e
    if not isinstance(header, dict):
        raise FrameError("header", header, "must be a JSON object", fatal=True)
    payload = recv_exact(sock, plen)
    return kind, header, payload


def encode_tensor(name: str, x: np.ndarray, wire_dtype: str) -> tuple[dict[str, Any], bytes]:
    """A tensor's header entry and bytes at ``wire_dtype``.

    ``uint8`` tensors (the raw input) travel as they are, whatever ``wire_dtype`` says;
    float tensors are cast (``float32``, ``float16``) or quantised (``int8``, per tensor).
    """
    if x.dtype == np.uint8:
        wire_dtype = "uint8"
    if wire_dtype not in DTYPES:
        raise FrameError("wire_dtype", wire_dtype, f"expected one of {sorted(DTYPES)}")
    meta: dict[str, Any] = {"name": name, "dtype": wire_dtype, "shape": list(x.shape)}
    if wire_dtype == "int8":
        lo, hi = float(x.min(initial=0.0)), float(x.max(initial=0.0))
        scale = (hi - lo) / 255.0 if hi > lo else 1.0
        zero = int(np.clip(round(-lo / scale) - 128, -128, 127))
        q = np.clip(np.rint(x / np.float32(scale)) + zero, -128, 127).astype(np.int8)
        meta["scale"], meta["zero_point"] = scale, zero
        return meta, q.tobytes()
    little = np.dtype(DTYPES[wire_dtype]).newbyteorder("<")
    return meta, np.ascontiguousarray(x).astype(little, copy=False).tobytes()


def _shape(value: Any, field: str) -> tuple[int, ...]:
    if not isinstance(value, list) or len(value) > 8:
        raise FrameError(field, value, "expected a list of at most 8 non-negative integers")
    for s in value:
        if isinstance(s, bool) or not isinstance(s, int) or s < 0:
            raise FrameError(field, value, "expected a list of at most 8 non-negative integers")
        if s >= 2**31:  # numpy refuses such a dimension with a message naming nothing
            raise FrameError(field, value, "a dimension must be below 2**31")
    return tuple(value)


def decode_tensors(
    metas: Any, payload: bytes | bytearray, field: str = "header.tensors"
) -> list[np.ndarray]:
    """Split ``payload`` into the tensors ``metas`` describes (float32, or uint8 input).

    Raises
    ------
    FrameError
        (not fatal: the frame was read whole) naming the tensor field at fault, or when the
        sizes do not add up to the payload.
    """
    if not isinstance(metas, list) or not metas:
        raise FrameError(field, metas, "expected a non-empty list of tensor descriptions")
    out, offset = [], 0
    for i, meta in enumerate(metas):
        f = f"{field}[{i}]"
        if not isinstance(meta, dict):
            raise FrameError(f, meta, "expected an object")
        dtype = meta.get("dtype")
        if dtype not in DTYPES:
            raise FrameError(f"{f}.dtype", dtype, f"expected one of {sorted(DTYPES)}")
        shape = _shape(meta.get("shape"), f"{f}.shape")
        n = math.prod(shape) * np.dtype(DTYPES[dtype]).itemsize
        if offset + n > len(payload):
            raise FrameError(
                f"{f}.shape", list(shape), f"needs {n} bytes; the payload has "
                f"{len(payload) - offset} left",
            )  # fmt: skip
        out.append(decode_tensor(meta, payload[offset : offset + n], f))
        offset += n
    if offset != len(payload):
        raise FrameError("payload_length", len(payload), f"the tensors take {offset} bytes")
    return out


def decode_tensor(
    meta: dict[str, Any], data: bytes | bytearray, field: str = "tensor"
) -> np.ndarray:
    """One tensor from its header entry and bytes (int8 dequantised to float32)."""
    dtype = meta["dtype"]
    shape = tuple(meta["shape"])
    arr = np.frombuffer(data, dtype=np.dtype(DTYPES[dtype]).newbyteorder("<")).reshape(shape)
    if dtype == "uint8":
        return arr.copy()
    if dtype == "int8":
        scale, zero = meta.get("scale"), meta.get("zero_point")
        if (
            isinstance(scale, bool)
            or not isinstance(scale, (int, float))
            or not (math.isfinite(scale) and scale > 0)
        ):
            raise FrameError(f"{field}.scale", scale, "an int8 tensor needs a positive scale")
        if isinstance(zero, bool) or not isinstance(zero, int) or not -128 <= zero <= 127:
            raise FrameError(f"{field}.zero_point", zero, "expected an integer in [-128, 127]")
        return (arr.astype(np.float32) - np.float32(zero)) * np.float32(scale)
    return arr.astype(np.float32)  # a native-order, writable copy


def error_header(task: Any, err: Exception) -> dict[str, Any]:
    """The header of an ERROR frame for ``err``."""
    field = getattr(err, "field", None)
    value = getattr(err, "value", None)
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        value = repr(value)
    return {"task": task, "error": str(err), "field": field, "value": value}


def check_names(expected: Sequence[str], metas: list[dict[str, Any]]) -> None:
    """The tensor names of a TASK must be the candidate's cut, in order."""
    got = [m.get("name") for m in metas]
    if got != list(expected):
        raise FrameError("header.tensors[].name", got, f"expected the cut {list(expected)}")
