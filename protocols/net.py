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
    if isinstance(msg, memoryview) and not msg.c_contiguous:
        raise ProtocolError(f"party {frm} sent a non-contiguous buffer for {what}", culprit=frm)
    size = msg.nbytes if isinstance(msg, memoryview) else len(msg)
    if length is not None and size != length:
        raise ProtocolError(f"party {frm} sent {size} bytes for {what}, expected {length}", culprit=frm)
    return bytes(msg) if isinstance(msg, bytearray) else msg


def expect_list(msg: Any, frm: int, what: str, length: int) -> list[Any]:
    if not isinstance(msg, (list, tuple)) or len(msg) != length:
        raise ProtocolError(f"party {frm} sent a malformed {what} (expected a list of {length})", culprit=frm)
    return list(msg)


class PairChannel:
    """A two-party conversation inside a session's ``Net``, with its own step space.

    Pairwise sub-protocols (OT, OT extension, COPE) between the same two parties may run at the same
    time in different roles, so they cannot share one step counter. A channel is named by a small
    integer ``channel`` that both ends pick the same way (e.g. from the protocol and the direction);
    its messages use steps ``channel * 2^40 + k`` for the k-th message in each direction. Messages
    are keyed by (sender, step) on arrival, so the two directions never collide.
    """

    STRIDE = 1 << 40

    def __init__(self, net: Net, peer: int, channel: int) -> None:
        if not 0 < channel < (1 << 21):
            raise ValueError(f"channel id {channel} out of range")
        if peer == net.party or not 0 <= peer < net.n:
            raise ValueError(f"party {peer} is not a peer of party {net.party}")
        self.net = net
        self.peer = peer
        self.party = net.party
        self.channel = channel
        self._sent = 0
        self._received = 0

    async def send(self, msg: Any) -> None:
        step = self.channel * self.STRIDE + self._sent
        self._sent += 1
        await self.net.send(self.peer, step, msg)

    async def recv(self) -> Any:
        step = self.channel * self.STRIDE + self._received
        self._received += 1
        return await self.net.recv(self.peer, step)

    async def exchange(self, msg: Any) -> Any:
        await self.send(msg)
        return await self.recv()
