"""Wire frames between parties: msgpack arrays, parsed defensively.

A frame is ``[kind, session_id, step, payload]``:

* ``"m"``: a protocol message for ``step`` of ``session_id``; ``payload`` is any msgpack value
  (field vectors are raw bytes inside it).
* ``"a"``: the sender aborted ``session_id``; ``payload`` is its reason (a string), ``step`` is 0.

In-process transports pass ``Frame`` objects and skip msgpack (no copies of large payloads); they
still go through ``check_frame``. Everything a peer sends is untrusted: ``decode_frame`` checks types
and sizes and raises ``FrameError`` naming what is wrong, and msgpack itself is given hard limits so a
hostile length prefix cannot make us allocate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack

MAX_FRAME_BYTES = 256 * 1024 * 1024
MAX_SESSION_ID = 128
MAX_REASON = 4096

MSG = "m"
ABORT = "a"


class FrameError(ValueError):
    """A peer sent bytes that are not a valid frame."""


@dataclass(frozen=True, slots=True)
class Frame:
    kind: str
    session: str
    step: int
    payload: Any


def encode_frame(kind: str, session: str, step: int, payload: Any) -> bytes:
    return msgpack.packb([kind, session, step, payload], use_bin_type=True)


def decode_frame(data: bytes) -> Frame:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise FrameError(f"frame must be bytes, got {type(data).__name__}")
    if len(data) > MAX_FRAME_BYTES:
        raise FrameError(f"frame of {len(data)} bytes exceeds the limit of {MAX_FRAME_BYTES}")
    try:
        obj = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            max_bin_len=MAX_FRAME_BYTES,
            max_str_len=1 << 20,
            max_array_len=1 << 20,
            max_map_len=1 << 16,
            max_ext_len=0,
        )
    except Exception as e:  # msgpack raises several unrelated types on garbage
        raise FrameError(f"frame is not valid msgpack: {type(e).__name__}: {e}") from None
    if not isinstance(obj, list) or len(obj) != 4:
        raise FrameError("frame is not a 4-element array")
    return check_frame(*obj)


def check_frame(kind: Any, session: Any, step: Any, payload: Any) -> Frame:
    """The structural checks every frame passes, whether it came as bytes or as an in-process object."""
    if kind not in (MSG, ABORT):
        raise FrameError(f"unknown frame kind {kind!r}")
    if not isinstance(session, str) or not 0 < len(session) <= MAX_SESSION_ID:
        raise FrameError("frame has a malformed session id")
    if not isinstance(step, int) or isinstance(step, bool) or not 0 <= step < 1 << 62:
        raise FrameError("frame has a malformed step")
    if kind == ABORT:
        if not isinstance(payload, str):
            raise FrameError("abort frame without a reason string")
        payload = payload[:MAX_REASON]
    return Frame(kind, session, step, payload)
