"""Wire frames: round trips, and defensive parsing of everything a peer can send.

``decode_frame`` must turn any byte string into either a checked ``Frame`` or a ``FrameError``, and
``Engine.on_frame`` must never raise, whatever arrives: a peer is untrusted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors import frames
from actors.engine import Engine
from actors.frames import (
    ABORT,
    BIG_PAYLOAD,
    MAX_REASON,
    MAX_SESSION_ID,
    MSG,
    Frame,
    FrameError,
    check_frame,
    decode_frame,
    encode_frame,
    frame_parts,
)
from protocols.field import P61, get_field
from protocols.preprocessing.dealer import InsecureDealer


def pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


# ---------------------------------------------------------------------------------------- round trips
PAYLOADS = [
    b"",
    b"\x00" * 1000,
    [[3, 4], b"\x01\x02"],
    [b"n" * 32, b"d" * 48],
    None,
    0,
    2**63,
    -(2**63),
    "text",
    {"k": [1, 2, {"x": b"y"}]},
    [[], [[]]],
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_message_round_trip(payload: Any) -> None:
    f = decode_frame(encode_frame(MSG, "s-1", 17, payload))
    assert f == Frame(MSG, "s-1", 17, payload)


def test_abort_round_trip() -> None:
    assert decode_frame(encode_frame(ABORT, "sess", 0, "party 2 gave up")) == Frame(
        ABORT, "sess", 0, "party 2 gave up"
    )


@settings(max_examples=200, deadline=None)
@given(
    kind=st.sampled_from([MSG, ABORT]),
    session=st.text(min_size=1, max_size=MAX_SESSION_ID),
    step=st.integers(0, 2**62 - 1),
    data=st.binary(max_size=200),
)
def test_round_trip_property(kind: str, session: str, step: int, data: bytes) -> None:
    payload: Any = data.hex() if kind == ABORT else [data, step]
    assert decode_frame(encode_frame(kind, session, step, payload)) == Frame(kind, session, step, payload)


def test_step_limits() -> None:
    assert decode_frame(encode_frame(MSG, "s", 0, None)).step == 0
    assert decode_frame(encode_frame(MSG, "s", 2**62 - 1, None)).step == 2**62 - 1


def test_long_abort_reason_is_truncated() -> None:
    f = decode_frame(encode_frame(ABORT, "s", 0, "x" * (MAX_REASON + 500)))
    assert f.payload == "x" * MAX_REASON


def test_session_id_at_the_limit() -> None:
    sid = "s" * MAX_SESSION_ID
    assert decode_frame(encode_frame(MSG, sid, 1, b"")).session == sid


# ---------------------------------------------------------------------------------------- garbage
GARBAGE = {
    "empty": b"",
    "never-used-byte": b"\xc1",
    "truncated-array": b"\x94\xa1m",
    "truncated-bin": b"\x94\xa1m\xa1s\x01\xc4\x10abc",
    "trailing-bytes": pack(["m", "s", 1, b""]) + b"\x00",
    "huge-bin-prefix": b"\x94\xa1m\xa1s\x01\xc6\x7f\xff\xff\xff",
    "huge-array-prefix": b"\xdd\xff\xff\xff\xff",
    "huge-map-prefix": b"\x94\xa1m\xa1s\x01\xdf\xff\xff\xff\xff",
    "huge-str-prefix": b"\x94\xa1m\xdb\x7f\xff\xff\xff",
    "deep-nesting": b"\x91" * 100_000 + b"\xc0",
    "ext-type": pack(["m", "s", 1, msgpack.ExtType(5, b"x")]),
    "int-map-key": pack(["m", "s", 1, {1: 2}]),
    "invalid-utf8-str": b"\x94\xa1m\xa2\xff\xfe\x01\xc0",
    "not-an-array": pack({"kind": "m"}),
    "scalar": pack(5),
    "arity-3": pack(["m", "s", 1]),
    "arity-5": pack(["m", "s", 1, b"", b""]),
    "arity-0": pack([]),
    "kind-unknown": pack(["x", "s", 1, b""]),
    "kind-bytes": pack([b"m", "s", 1, b""]),
    "kind-int": pack([1, "s", 1, b""]),
    "kind-none": pack([None, "s", 1, b""]),
    "kind-upper": pack(["M", "s", 1, b""]),
    "session-empty": pack(["m", "", 1, b""]),
    "session-long": pack(["m", "s" * (MAX_SESSION_ID + 1), 1, b""]),
    "session-bytes": pack(["m", b"s", 1, b""]),
    "session-int": pack(["m", 5, 1, b""]),
    "session-none": pack(["m", None, 1, b""]),
    "session-list": pack(["m", ["s"], 1, b""]),
    "step-negative": pack(["m", "s", -1, b""]),
    "step-2^62": pack(["m", "s", 2**62, b""]),
    "step-2^64-1": pack(["m", "s", 2**64 - 1, b""]),
    "step-min-int64": pack(["m", "s", -(2**63), b""]),
    "step-true": pack(["m", "s", True, b""]),
    "step-float": pack(["m", "s", 1.0, b""]),
    "step-str": pack(["m", "s", "1", b""]),
    "step-none": pack(["m", "s", None, b""]),
    "abort-bytes-reason": pack(["a", "s", 0, b"reason"]),
    "abort-int-reason": pack(["a", "s", 0, 3]),
    "abort-none-reason": pack(["a", "s", 0, None]),
    "abort-list-reason": pack(["a", "s", 0, ["r"]]),
}


@pytest.mark.parametrize("data", list(GARBAGE.values()), ids=list(GARBAGE))
def test_garbage_is_a_frame_error(data: bytes) -> None:
    with pytest.raises(FrameError):
        decode_frame(data)


def test_oversize_frame_is_refused_before_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(frames, "MAX_FRAME_BYTES", 1000)
    ok = encode_frame(MSG, "s", 1, b"x" * 900)
    assert decode_frame(ok).payload == b"x" * 900
    with pytest.raises(FrameError):
        decode_frame(encode_frame(MSG, "s", 1, b"x" * 1000))


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_decode_or_frame_error(data: bytes) -> None:
    try:
        f = decode_frame(data)
    except FrameError:
        return
    assert f.kind in (MSG, ABORT) and isinstance(f.session, str) and 0 <= f.step < 2**62


msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=8)
    | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(msgpack_values, min_size=0, max_size=6))
def test_random_msgpack_arrays_decode_or_frame_error(obj: list[Any]) -> None:
    try:
        f = decode_frame(pack(obj))
    except FrameError:
        return
    assert len(obj) == 4 and f.kind in (MSG, ABORT)


@pytest.mark.parametrize(
    "fields",
    [
        ("x", "s", 1, b""),
        ("m", "", 1, b""),
        ("m", b"s", 1, b""),
        ("m", "s", -1, b""),
        ("m", "s", True, b""),
        ("m", "s", 2**62, b""),
        ("a", "s", 0, b"reason"),
        ("m", "s" * (MAX_SESSION_ID + 1), 1, b""),
    ],
)
def test_check_frame_applies_the_same_rules_to_objects(fields: tuple[Any, ...]) -> None:
    with pytest.raises(FrameError):
        check_frame(*fields)


# ---------------------------------------------------------------------------------------- large payloads
def frozen(data: bytes) -> memoryview:
    """A read-only byte view of an array, as ``PrimeField.to_wire`` makes for a field vector."""
    arr = np.frombuffer(bytearray(data), dtype=np.uint8)
    arr.flags.writeable = False
    return memoryview(arr)


def general(data: bytes | memoryview) -> Frame:
    """``decode_frame`` without its large-payload path: the reference the fast path must agree with."""
    obj = msgpack.unpackb(data, raw=False, strict_map_key=True)
    if not isinstance(obj, list) or len(obj) != 4:
        raise FrameError("not a 4-element array")
    return check_frame(*obj)


@pytest.mark.parametrize("size", [0, 100, BIG_PAYLOAD - 1, BIG_PAYLOAD, 3 * BIG_PAYLOAD + 7])
@pytest.mark.parametrize("make", [bytes, bytearray, frozen, lambda b: memoryview(bytearray(b))])
def test_frame_parts_are_the_encoding_in_pieces(size: int, make: Callable[[bytes], Any]) -> None:
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    payload = make(data)
    parts = frame_parts(MSG, "s-7", 12, payload)
    assert b"".join(parts) == encode_frame(MSG, "s-7", 12, data)
    assert len(parts) == (2 if size >= BIG_PAYLOAD else 1)
    f = decode_frame(b"".join(parts))
    assert f == Frame(MSG, "s-7", 12, data)
    if size >= BIG_PAYLOAD:
        assert isinstance(f.payload, memoryview) and f.payload.readonly  # a view, not a copy


def test_frame_parts_keep_a_frozen_payload_by_reference_and_copy_a_writable_one() -> None:
    data = bytes(2 * BIG_PAYLOAD)
    view = frozen(data)
    assert frame_parts(MSG, "s", 1, view)[1].obj is view.obj  # no copy of a read-only buffer
    buf = bytearray(data)
    parts = frame_parts(MSG, "s", 1, buf)
    buf[:4] = b"\xff" * 4  # the caller changes its buffer after handing it over
    assert b"".join(parts) == encode_frame(MSG, "s", 1, data)


def test_non_bytes_payloads_still_go_through_msgpack() -> None:
    payload = [b"x" * BIG_PAYLOAD, b"y" * BIG_PAYLOAD]
    (whole,) = frame_parts(MSG, "s", 1, payload)
    assert decode_frame(whole) == Frame(MSG, "s", 1, payload)


@settings(max_examples=300, deadline=None)
@given(
    session=st.text(min_size=0, max_size=MAX_SESSION_ID + 40),
    step=st.one_of(st.integers(-5, 2**64 - 1), st.none(), st.binary(max_size=3)),
    extra=st.integers(-3, 3),
    width=st.sampled_from([0xC5, 0xC6, 0xC4, 0xDB]),
    flips=st.lists(st.tuples(st.integers(0, 200), st.integers(1, 255)), max_size=3),
)
def test_large_frames_decode_as_the_general_path_does(
    session: str, step: Any, extra: int, width: int, flips: list[tuple[int, int]]
) -> None:
    """Whatever the head of a large frame says (long or odd session ids and steps, a wrong payload
    length, another bin or str width, flipped bytes), the fast path gives the general path's answer."""
    n = BIG_PAYLOAD + 10
    head = pack(["m", session, step, b""])[:-2]
    w = {0xC4: 1, 0xC5: 2, 0xC6: 4, 0xDB: 4}[width]  # bin8, bin16, bin32, str32
    size = bytes([width]) + ((n + extra) % (1 << 8 * w)).to_bytes(w, "big")
    data = bytearray(head + size + bytes(n))
    for at, x in flips:
        if at < len(head) + len(size):
            data[at] ^= x
    try:
        want: Frame | None = general(bytes(data))
    except Exception:
        want = None
    if want is None:
        with pytest.raises(FrameError):
            decode_frame(data)
    else:
        assert decode_frame(data) == want


# ---------------------------------------------------------------------------------------- the engine
class NullLinks:
    party = 0
    n = 3

    async def send(self, to: int, frame: Any) -> None:  # pragma: no cover - never called here
        raise AssertionError("on_frame must not send")


def make_engine() -> Engine:
    return Engine(0, 3, NullLinks(), InsecureDealer(get_field(P61), 3, 0, b"s" * 32))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 2), st.binary(max_size=120)), max_size=20))
def test_engine_on_frame_never_raises_on_random_bytes(frames_in: list[tuple[int, bytes]]) -> None:
    eng = make_engine()
    for frm, data in frames_in:
        eng.on_frame(frm, data)


@pytest.mark.parametrize("data", list(GARBAGE.values()), ids=list(GARBAGE))
def test_engine_on_frame_drops_garbage(data: bytes) -> None:
    eng = make_engine()
    eng.on_frame(1, data)
    assert not eng.router.sessions()


@pytest.mark.parametrize(
    "obj",
    [
        None,
        "m",
        12,
        [MSG, "s", 1, b""],
        (MSG, "s", 1, b""),
        {"kind": MSG},
        Frame("x", "s", 1, b""),
        Frame(MSG, 5, 1, b""),
    ],
    ids=["none", "str", "int", "list", "tuple", "dict", "frame-bad-kind", "frame-bad-session"],
)
def test_engine_on_frame_never_raises_on_odd_objects(obj: Any) -> None:
    """In-process transports hand over objects, not bytes; anything but a valid frame is dropped."""
    eng = make_engine()
    eng.on_frame(1, obj)
    assert not eng.router.sessions()


@settings(max_examples=200, deadline=None)
@given(st.lists(msgpack_values, min_size=4, max_size=4))
def test_engine_on_frame_never_raises_on_random_frame_objects(fields: list[Any]) -> None:
    eng = make_engine()
    eng.on_frame(2, Frame(*fields))
    eng.on_frame(2, pack(fields))


def test_engine_on_frame_delivers_valid_frames() -> None:
    eng = make_engine()
    eng.on_frame(1, encode_frame(MSG, "s", 3, [b"x"]))
    eng.on_frame(2, Frame(MSG, "s", 3, b"y"))
    box = eng.router.mailbox("s")
    assert box is not None and box.waiting() == {(1, 3): [b"x"], (2, 3): b"y"}
    eng.on_frame(2, encode_frame(ABORT, "t", 0, "no"))
    aborted = eng.router.mailbox("t")
    assert aborted is not None and aborted.error is not None and aborted.error.culprit == 2
