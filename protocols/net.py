"""The abstract network a protocol runs over, and the round helpers built on it.

``protocols/`` never does I/O: it talks to an object with ``send(to, step, msg)`` and
``recv(frm, step)``. The actors layer supplies one per session (memory channels, TLS links or netsim);
the session id is added underneath, so protocol code deals only in *steps*: deterministic program
counters that every party advances in the same order (arrival order is never a tag). Messages are
msgpack-compatible values; field vectors travel as raw bytes.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from .errors import ProtocolError


@runtime_checkable
class Net(Protocol):
    party: int
    n: int

    async def send(self, to: int, step: int, msg: Any) -> None: ...

    async def recv(self, frm: int, step: int) -> Any: ...


async def exchange(net: Net, step: int, msg: Any) -> list[Any]:
    """Send ``msg`` to every other party and collect theirs; index ``i`` holds party ``i``'s message."""
    for j in range(net.n):
        if j != net.party:
            await net.send(j, step, msg)
    out: list[Any] = [None] * net.n
    out[net.party] = msg
    for j in range(net.n):
        if j != net.party:
            out[j] = await net.recv(j, step)
    return out


async def exchange_each(net: Net, step: int, msgs: list[Any]) -> list[Any]:
    """Like ``exchange`` but with a different message for each party (``msgs[j]`` goes to ``j``)."""
    for j in range(net.n):
        if j != net.party:
            await net.send(j, step, msgs[j])
    out: list[Any] = [None] * net.n
    out[net.party] = msgs[net.party]
    for j in range(net.n):
        if j != net.party:
            out[j] = await net.recv(j, step)
    return out


def expect_bytes(msg: Any, frm: int, what: str, length: int | None = None) -> bytes | memoryview:
    """A bytes-like payload (not copied: vectors can be large), checked for type and length."""
    if not isinstance(msg, (bytes, bytearray, memoryview)):
        raise ProtocolError(f"party {frm} sent {type(msg).__name__} for {what}, expected bytes", culprit=frm)
    size = msg.nbytes if isinstance(msg, memoryview) else len(msg)
    if length is not None and size != length:
        raise ProtocolError(f"party {frm} sent {size} bytes for {what}, expected {length}", culprit=frm)
    return bytes(msg) if isinstance(msg, bytearray) else msg


def expect_list(msg: Any, frm: int, what: str, length: int) -> list[Any]:
    if not isinstance(msg, (list, tuple)) or len(msg) != length:
        raise ProtocolError(f"party {frm} sent a malformed {what} (expected a list of {length})", culprit=frm)
    return list(msg)
