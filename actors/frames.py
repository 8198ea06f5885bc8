"""Wire frames between parties: msgpack arrays, parsed defensively.

A frame is ``[kind, session_id, step, payload]``:

* ``"m"``: a protocol message for ``step`` of ``session_id``; ``payload`` is any msgpack value
  (field vectors are raw bytes inside it).
* ``"a"``: the sender aborted ``session_id``; ``payload`` is its reason (a string), ``step`` is 0.

In-process transports pass ``Frame`` objects and skip msgpack (no copies of large payloads); they
still go through ``check_frame``. Everything a peer sends is untrusted: ``decode_frame`` checks types
and sizes and raises ``FrameError`` naming what is wrong, and msgpack itself is given hard limits so a
hostile length prefix cannot make us allocate.

Large byte payloads (field vectors: megabytes) are not copied by msgpack on either side. ``frame_parts``
gives the encoding as a small msgpack head followed by the payload buffer itself (a frozen
``memoryview`` or ``bytes``, so nothing can change it while the link holds it), and ``decode_frame``
hands such a payload out as a read-only view into the received record. The bytes on the wire are
exactly ``encode_frame``'s; only who copies them changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack

MAX_FRAME_BYTES = 256 * 1024 * 1024
MAX_SESSION_ID = 128
MAX_REASON = 4096

BIG_PAYLOAD = 1 << 16  # bytes payloads from this size on skip msgpack's copy (>= 2^16: a bin32)
_PEEK = 256  # holds a frame's head (kind, step, an ASCII session id); longer heads take the slow path
_BIN16, _BIN32 = 0xC5, 0xC6
_LIMITS = {  # msgpack's hard limits on what a peer's frame may declare
    "max_bin_len": MAX_FRAME_BYTES,
    "max_str_len": 1 << 20,
    "max_array_len": 1 << 20,
    "max_map_len": 1 << 16,
    "max_ext_len": 0,
}

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


def frame_parts(kind: str, session: str, step: int, payload: Any) -> tuple[bytes | memoryview, ...]:
    """``encode_frame``'s bytes as buffers to write one after the other, without copying a large
    bytes payload: ``(head, payload)`` for one, ``(whole,)`` otherwise. A writable payload buffer is
    copied once (the caller could change it while the link still holds the frame)."""
    if isinstance(payload, (bytes, bytearray, memoryview)):
        view = memoryview(payload)
        if view.nbytes >= BIG_PAYLOAD and view.c_contiguous:
            body: bytes | memoryview = view.cast("B") if view.readonly else view.tobytes()
            n = view.nbytes
            head = msgpack.packb([kind, session, step, b""], use_bin_type=True)[:-2]  # drop bin8 b""
            return head + bytes((_BIN32,)) + n.to_bytes(4, "big"), body  # as msgpack: n >= 2^16
    return (encode_frame(kind, session, step, payload),)


def decode_frame(data: bytes | bytearray | memoryview) -> Frame:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise FrameError(f"frame must be bytes, got {type(data).__name__}")
    size = data.nbytes if isinstance(data, memoryview) else len(data)
    if size > MAX_FRAME_BYTES:
        raise FrameError(f"frame of {size} bytes exceeds the limit of {MAX_FRAME_BYTES}")
    if size >= BIG_PAYLOAD and (view := memoryview(data)).c_contiguous:
        frame = _decode_big(view.cast("B"))
        if frame is not None:
            return frame
    try:
        obj = msgpack.unpackb(data, raw=False, strict_map_key=True, **_LIMITS)
    except Exception as e:  # msgpack raises several unrelated types on garbage
        raise FrameError(f"frame is not valid msgpack: {type(e).__name__}: {e}") from None
    if not isinstance(obj, list) or len(obj) != 4:
        raise FrameError("frame is not a 4-element array")
    return check_frame(*obj)


def _decode_big(view: memoryview) -> Frame | None:
    """A frame whose last element is a bytes payload running to the end of ``view``, with the payload
    as a read-only view of ``view`` (no copy); None for any other shape (the general path decides)."""
    if view[0] != 0x94:  # a fixarray of 4
        return None
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=True, max_buffer_size=_PEEK, **_LIMITS)
    unpacker.feed(view[:_PEEK])
    try:
        unpacker.read_array_header()
        kind, session, step = unpacker.unpack(), unpacker.unpack(), unpacker.unpack()
    except Exception:  # a head longer than _PEEK, or garbage: leave it to the general path
        return None
    at = unpacker.tell()
    if at >= len(view) or view[at] not in (_BIN16, _BIN32):
        return None
    width = 2 if view[at] == _BIN16 else 4
    start = at + 1 + width
    if int.from_bytes(view[at + 1 : start], "big") != len(view) - start:
        return None
    return check_frame(kind, session, step, view[start:].toreadonly())


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
