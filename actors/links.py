"""``StreamLinks``: the engine's transport over byte streams, one reliable ``PeerLink`` per peer.

The engine needs only ``send(to, frame)`` and ``serve(on_frame)``; where the bytes go is a
``Connector``'s business. A connector dials (``await connector.connect(peer)`` returns a stream and
the peer id the layer authenticated, e.g. from a TLS certificate), and whoever listens for inbound
connections hands each authenticated stream to ``await links.accept(stream, peer)``. The TLS
transport, the simulated network and the in-process ``MemoryConnector`` below all fit under the same
links, so the code that recovers from resets is the code that runs in production.

``MemoryConnector`` wires the parties of one process with trio's memory streams, and can break them:
kill a connection now or after some number of bytes, refuse connections to a partitioned party,
hold back one direction (a peer that does not read), or write raw bytes into a live stream. It is
what the link tests and ``local_cluster(n, transport="stream")`` run on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import structlog
import trio

from .frames import Frame
from .peerlink import LinkConfig, LinkStats, PeerLink, new_incarnation

log = structlog.get_logger("spdz.links")

FrameHandler = Callable[[int, Frame], None]
PeerLostHandler = Callable[[int, str], None]


class Connector(Protocol):
    """How a party reaches the peers it dials (the ones with a higher id than its own)."""

    async def connect(self, peer: int) -> tuple[trio.abc.Stream, int]:
        """Open a stream to ``peer``; return it with the peer id the transport authenticated."""
        ...


class StreamLinks:
    """One party's links to all its peers (the engine's ``Links``), one ``PeerLink`` each.

    ``on_peer_lost(peer, reason)`` is called when a peer has been unreachable for
    ``config.peer_timeout`` or has restarted; the party wires it to
    ``Engine.abort_sessions_with`` so sessions abort instead of hanging. It may be set after
    construction (the engine is usually built after its links).
    """

    def __init__(
        self,
        party: int,
        n: int,
        connector: Connector,
        *,
        config: LinkConfig | None = None,
        on_peer_lost: PeerLostHandler | None = None,
        incarnation: bytes | None = None,
    ) -> None:
        if not 0 <= party < n:
            raise ValueError(f"party {party} is not in 0..{n - 1}")
        self.party = party
        self.n = n
        self.config = config or LinkConfig()
        self.incarnation = incarnation or new_incarnation()
        self.on_peer_lost = on_peer_lost
        self._connector = connector
        self._accepting = False
        self._links = {
            j: PeerLink(
                party,
                j,
                incarnation=self.incarnation,
                dial=connector.connect if party < j else None,
                config=self.config,
                on_lost=self._peer_lost,
            )
            for j in range(n)
            if j != party
        }

    def link(self, peer: int) -> PeerLink:
        return self._links[peer]

    @property
    def accepting(self) -> bool:
        """True while ``serve`` runs: inbound streams are taken, not refused."""
        return self._accepting

    def _peer_lost(self, peer: int, reason: str) -> None:
        if self.on_peer_lost is not None:
            self.on_peer_lost(peer, reason)

    def withdraw(self, session: str) -> int:
        """Withdraw the frames of ``session`` that no peer has acknowledged (it aborted here)."""
        return sum(link.withdraw(session) for link in self._links.values())

    def disconnect(self, peer: int, reason: str) -> None:
        """Drop the connection to ``peer`` now (it is misbehaving); the link stays, and reconnects."""
        self._links[peer].disconnect(reason)

    async def send(self, to: int, frame: Frame) -> None:
        link = self._links.get(to)
        if link is None:
            raise ValueError(f"party {to} is not a peer of party {self.party} (n = {self.n})")
        await link.send(frame)

    async def serve(
        self, on_frame: FrameHandler, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Run every peer link until cancelled; ``on_frame(peer, frame)`` gets each arriving frame."""
        try:
            async with trio.open_nursery() as nursery:
                for j, link in self._links.items():
                    await nursery.start(link.run, _bind(on_frame, j))
                self._accepting = True
                task_status.started()
        finally:
            self._accepting = False

    async def accept(self, stream: trio.abc.Stream, peer: int) -> None:
        """Hand over an inbound ``stream`` whose far end the transport authenticated as ``peer``.

        The links own the stream from here on (they close it). Streams from parties we dial
        ourselves, from unknown ids, or arriving while the links are not serving are closed at once.
        """
        link = self._links.get(peer) if isinstance(peer, int) else None
        why = None
        if link is None:
            why = "unknown party id"
        elif peer > self.party:
            why = "we dial that party ourselves"
        elif not self._accepting:
            why = "not serving"
        if why is not None or link is None:
            log.warning("inbound_refused", party=self.party, peer=peer, reason=why)
            await trio.aclose_forcefully(stream)
            return
        await link.accept(stream)

    async def flush(self, timeout: float = 5.0) -> bool:
        """Wait up to ``timeout`` s until every peer has acknowledged what was sent to it; ``True`` if
        all did."""
        with trio.move_on_after(timeout):
            async with trio.open_nursery() as nursery:
                for link in self._links.values():
                    nursery.start_soon(link.flush)
            return True
        return False

    async def wait_connected(self, peers: Iterable[int] | None = None) -> None:
        """Return once the links to ``peers`` (default: all) are up."""
        for j in self._links if peers is None else peers:
            await self._links[j].wait_up()

    def metrics(self) -> dict[int, dict[str, Any]]:
        """Per-peer counters: bytes, link up/lost, reconnects, frames sent/resent/delivered, ..."""
        return {j: dataclasses.asdict(link.stats) for j, link in self._links.items()}

    def stats(self, peer: int) -> LinkStats:
        return self._links[peer].stats

    @property
    def bytes_sent(self) -> int:
        return sum(link.stats.bytes_sent for link in self._links.values())


def _bind(on_frame: FrameHandler, peer: int) -> Callable[[Frame], None]:
    def deliver(frame: Frame) -> None:
        on_frame(peer, frame)

    return deliver


# ---------------------------------------------------------------------------------------------------
# In-process connector with fault injection


class _MemoryConnection:
    """A bidirectional in-memory connection between parties ``a`` (dialer) and ``b``.

    Built from trio's ``MemorySendStream``/``MemoryReceiveStream`` (so it passes trio's stream
    conformance checks) with our own pump in the send hook: that is where bytes are counted against
    a kill budget, held back while a direction is paused, and where a kill discards what is in flight.
    """

    def __init__(self, a: int, b: int, budget: int | None) -> None:
        self.a, self.b = a, b
        self.budget = budget
        self.dead = False
        self.paused: set[int] = set()
        self.bytes = [0, 0]
        import trio.testing  # here, not at module level: it imports pytest (~0.3 s for every CLI call)

        self._send = [trio.testing.MemorySendStream(), trio.testing.MemorySendStream()]
        self._recv = [trio.testing.MemoryReceiveStream(), trio.testing.MemoryReceiveStream()]
        for d in (0, 1):
            self._send[d].send_all_hook = self._async_pump(d)
            self._send[d].close_hook = self._close_pump(d)
        # direction 0 is a -> b, direction 1 is b -> a
        self.ends = (
            trio.StapledStream(self._send[0], self._recv[1]),
            trio.StapledStream(self._send[1], self._recv[0]),
        )

    def direction(self, frm: int) -> int:
        return 0 if frm == self.a else 1

    def _async_pump(self, d: int) -> Callable[[], Any]:
        async def hook() -> None:
            self.pump(d)

        return hook

    def _close_pump(self, d: int) -> Callable[[], None]:
        def hook() -> None:
            try:
                self.pump(d)
            except trio.BrokenResourceError:
                pass

        return hook

    def pump(self, d: int) -> None:
        if self.dead or d in self.paused:
            return
        src, dst = self._send[d], self._recv[d]
        while True:
            try:
                data = src.get_data_nowait(self.budget)
            except trio.WouldBlock:
                return
            try:
                if not data:
                    dst.put_eof()
                    return
                dst.put_data(data)
            except trio.ClosedResourceError:
                raise trio.BrokenResourceError("the other end closed the connection") from None
            self.bytes[d] += len(data)
            if self.budget is not None:
                self.budget -= len(data)
                if self.budget <= 0:
                    self.kill()
                    raise trio.BrokenResourceError("connection reset (injected fault)")

    def kill(self) -> None:
        """Break both directions now: data in flight is lost, every later operation fails."""
        if self.dead:
            return
        self.dead = True
        for r in self._recv:
            r.close()
        for s in self._send:
            s.close()

    def inject(self, frm: int, data: bytes) -> None:
        self._recv[self.direction(frm)].put_data(data)


class _MemoryDialer:
    def __init__(self, net: MemoryConnector, party: int) -> None:
        self._net = net
        self._party = party

    async def connect(self, peer: int) -> tuple[trio.abc.Stream, int]:
        return await self._net.connect(self._party, peer)


class MemoryConnector:
    """The parties of one process connected by in-memory byte streams, with faults on demand.

    ``faults(a, b)``, if given, is called for every new connection and returns a byte budget after
    which that connection is reset (or None for no reset): a seeded random ``faults`` is a
    reproducible storm of resets. The ids given to ``accept`` are the true ones (the memory
    "transport" authenticates perfectly); tests that forge identities hand streams in themselves.
    """

    def __init__(
        self,
        n: int,
        *,
        config: LinkConfig | None = None,
        faults: Callable[[int, int], int | None] | None = None,
    ) -> None:
        self.n = n
        self.config = config
        self.faults = faults
        self.connections = 0
        self.kills = 0
        self._links: dict[int, StreamLinks] = {}
        self._live: dict[tuple[int, int], _MemoryConnection] = {}
        self._partitioned: set[int] = set()

    def links(self, party: int, **kw: Any) -> StreamLinks:
        """New ``StreamLinks`` for ``party``, reachable through this connector (replacing any older
        ones for that party: that is how a test restarts a party)."""
        kw.setdefault("config", self.config)
        links = StreamLinks(party, self.n, _MemoryDialer(self, party), **kw)
        self._links[party] = links
        return links

    async def connect(self, frm: int, to: int) -> tuple[trio.abc.Stream, int]:
        await trio.lowlevel.checkpoint()
        target = self._links.get(to)
        if frm in self._partitioned or to in self._partitioned:
            raise ConnectionRefusedError(f"party {to} is unreachable (partitioned)")
        if target is None or not target.accepting:
            raise ConnectionRefusedError(f"party {to} is not listening")
        conn = _MemoryConnection(frm, to, self.faults(frm, to) if self.faults else None)
        self._live[frm, to] = conn
        self.connections += 1
        await target.accept(conn.ends[1], frm)
        return conn.ends[0], to

    def _conn(self, a: int, b: int) -> _MemoryConnection | None:
        conn = self._live.get((min(a, b), max(a, b)))
        return conn if conn is not None and not conn.dead else None

    def kill(self, a: int, b: int) -> bool:
        """Reset the live connection between ``a`` and ``b`` (like a TCP RST); False if there is none."""
        conn = self._conn(a, b)
        if conn is None:
            return False
        conn.kill()
        self.kills += 1
        return True

    def kill_all(self) -> int:
        return sum(self.kill(a, b) for a, b in list(self._live))

    def kill_after(self, a: int, b: int, nbytes: int) -> bool:
        """Reset the live connection between ``a`` and ``b`` after ``nbytes`` more bytes cross it."""
        conn = self._conn(a, b)
        if conn is None:
            return False
        conn.budget = max(1, nbytes)
        return True

    def partition(self, *parties: int) -> None:
        """Cut ``parties`` off: their connections are reset and new ones refused until ``heal``."""
        self._partitioned.update(parties)
        for a, b in list(self._live):
            if a in parties or b in parties:
                self.kill(a, b)

    def heal(self, *parties: int) -> None:
        self._partitioned.difference_update(parties)

    def freeze(self, party: int) -> None:
        """``party`` stops like a process under SIGSTOP: its live connections stay open but carry
        nothing either way, and new connections to or from it are refused, until ``heal``."""
        self._partitioned.add(party)
        for a, b in list(self._live):
            if party in (a, b):
                self.pause(a, b)
                self.pause(b, a)

    def pause(self, frm: int, to: int) -> None:
        """Hold back bytes from ``frm`` to ``to`` on the live connection (a peer that stops reading)."""
        conn = self._conn(frm, to)
        if conn is None:
            raise LookupError(f"no live connection between {frm} and {to}")
        conn.paused.add(conn.direction(frm))

    def resume(self, frm: int, to: int) -> None:
        conn = self._conn(frm, to)
        if conn is None:
            return
        d = conn.direction(frm)
        conn.paused.discard(d)
        try:
            conn.pump(d)
        except trio.BrokenResourceError:
            pass

    def inject(self, frm: int, to: int, data: bytes) -> None:
        """Write raw ``data`` into the live stream from ``frm`` to ``to`` (a corrupting middlebox)."""
        conn = self._conn(frm, to)
        if conn is None:
            raise LookupError(f"no live connection between {frm} and {to}")
        conn.inject(frm, data)

    def bytes_between(self, frm: int, to: int) -> int:
        """Bytes that crossed the live connection from ``frm`` to ``to``."""
        conn = self._conn(frm, to)
        return 0 if conn is None else conn.bytes[conn.direction(frm)]


def memory_stream_pair() -> tuple[trio.abc.Stream, trio.abc.Stream]:
    """A fault-free connected pair of the streams ``MemoryConnector`` uses (for conformance tests)."""
    conn = _MemoryConnection(0, 1, None)
    return conn.ends
