"""Whole clusters inside one process: the transports that tests, the demo and benchmarks run on.

Nothing here is used by a deployed daemon; each piece stands in for the network so that a cluster
fits in one process, and each runs the production code above it:

* ``MemoryHub``: frames between engines over bounded trio memory channels, no bytes at all.
  Serializing multi-megabyte vectors only to parse them again in the same process would measure
  memcpy, not MPC; the receiving engine still runs every frame through the same structural checks as
  a decoded one (``frames.check_frame``). The channel bound gives backpressure.
  (``local_cluster(n)``, the default.)
* ``MemoryConnector``: byte streams between ``StreamLinks`` (so ``PeerLink`` framing, resend and
  reconnect run), with faults on demand: kill a connection now or after some number of bytes, refuse
  connections to a partitioned party, hold back one direction (a peer that does not read), freeze a
  party (SIGSTOP), or write raw bytes into a live stream. (``local_cluster(n, transport="stream")``
  and the link tests.)
* ``LocalTls``: the real TLS transport (``tls.TlsConnector`` / ``tls.TlsListener``) on loopback with a
  fresh cluster CA. (``local_cluster(n, transport="tls")``, the demo's in-process path, benchmarks.)

netsim's ``SimTransport`` is the fourth: the TLS transport over a simulated network with faults in
virtual time.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import trio

from protocols.errors import ConfigError

from .config import Address
from .links import FrameHandler, StreamLinks
from .peerlink import LinkConfig
from .pki import (
    CA_CERT,
    CA_KEY,
    CERT,
    KEY,
    TlsFiles,
    create_ca,
    issue_party_cert,
    write_cert,
    write_private_key,
)
from .tls import DEFAULT_HANDSHAKE_TIMEOUT, TlsConnector, TlsListener

# ---------------------------------------------------------------------------------------------------
# Frames between engines


class MemoryHub:
    """Wires ``n`` parties together in one process."""

    def __init__(self, n: int, buffer: int = 4096) -> None:
        self.n = n
        self._send: dict[tuple[int, int], trio.MemorySendChannel[Any]] = {}
        self._recv: dict[tuple[int, int], trio.MemoryReceiveChannel[Any]] = {}
        for i in range(n):
            for j in range(n):
                if i != j:
                    s, r = trio.open_memory_channel[Any](buffer)
                    self._send[i, j], self._recv[i, j] = s, r
        self.bytes_sent = [0] * n
        self.bytes_by_service: dict[str, int] = {}  # "mascot" (offline sessions) or "online"

    def links(self, party: int) -> MemoryLinks:
        return MemoryLinks(self, party)


class MemoryLinks:
    """One party's view of the hub: ``send`` to a peer, ``serve`` to receive from all of them."""

    def __init__(self, hub: MemoryHub, party: int) -> None:
        self.hub = hub
        self.party = party
        self.n = hub.n

    async def send(self, to: int, frame: Any) -> None:
        size = _payload_bytes(getattr(frame, "payload", frame))
        self.hub.bytes_sent[self.party] += size
        session = getattr(frame, "session", "")
        service = session.split("/", 1)[0] if "/" in session else "online"
        self.hub.bytes_by_service[service] = self.hub.bytes_by_service.get(service, 0) + size
        await self.hub._send[self.party, to].send(frame)

    async def serve(
        self, on_frame: FrameHandler, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        async with trio.open_nursery() as nursery:
            for j in range(self.n):
                if j != self.party:
                    nursery.start_soon(self._pump, j, on_frame)
            task_status.started()

    async def _pump(self, frm: int, on_frame: FrameHandler) -> None:
        async for data in self.hub._recv[frm, self.party]:
            on_frame(frm, data)


def _payload_bytes(obj: Any) -> int:
    """Approximate wire size of a payload: the bytes it carries (views and arrays at their real size),
    plus a byte per container and 9 per scalar."""
    if isinstance(obj, (bytes, bytearray, str)):
        return len(obj)
    if isinstance(obj, (memoryview, np.ndarray)):
        return obj.nbytes
    if isinstance(obj, (list, tuple)):
        return sum(_payload_bytes(o) for o in obj) + 1
    return 9


# ---------------------------------------------------------------------------------------------------
# Byte streams between links, with fault injection


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


# ---------------------------------------------------------------------------------------------------
# The TLS transport on loopback


class LocalTls:
    """n parties' TLS endpoints on loopback with a fresh cluster CA: ``local_cluster(transport="tls")``.

    Writes ``ca.pem``, ``ca-key.pem`` and ``party<i>/{ca,cert,key}.pem`` (``pki.make_cluster``'s
    layout, so ``pki.issue_party(directory, ...)`` can re-issue certificates) into ``directory``, or
    into a temporary directory removed by ``close()``. Listeners bind ephemeral ports; ``serve`` starts
    them and then gives every connector the real ports (or the address set with ``route``).
    """

    def __init__(
        self,
        n: int,
        directory: Path | None = None,
        *,
        host: str = "127.0.0.1",
        config: LinkConfig | None = None,
        handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
    ) -> None:
        if n < 2:
            raise ConfigError(f"a cluster needs at least 2 parties, got {n}")
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if directory is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="spdz-tls-")
            directory = Path(self._tmp.name)
        self.directory = Path(directory).absolute()
        self.n = n
        self.host = host
        self.config = config
        self.handshake_timeout = handshake_timeout
        self._routes: dict[tuple[int, int], Address] = {}
        ca_cert, ca_key = create_ca()
        write_private_key(self.directory / CA_KEY, ca_key)
        write_cert(self.directory / CA_CERT, ca_cert)
        for i in range(n):
            cert, key = issue_party_cert(i, ca_cert=ca_cert, ca_key=ca_key, host=host)
            d = self.directory / f"party{i}"
            write_private_key(d / KEY, key)
            write_cert(d / CERT, cert)
            write_cert(d / CA_CERT, ca_cert)
        self.connectors = [
            TlsConnector(
                i,
                {j: Address(host, 0) for j in range(n) if j != i},
                self.files(i),
                handshake_timeout=handshake_timeout,
            )
            for i in range(n)
        ]
        self.listeners: list[TlsListener | None] = [None] * n

    def files(self, party: int) -> TlsFiles:
        d = self.directory / f"party{party}"
        return TlsFiles(ca=d / CA_CERT, cert=d / CERT, key=d / KEY)

    def links(self, party: int, **kw: Any) -> StreamLinks:
        """New ``StreamLinks`` for ``party`` over TLS; its listener (made on first call) feeds them."""
        kw.setdefault("config", self.config)
        links = StreamLinks(party, self.n, self.connectors[party], **kw)
        listener = self.listeners[party]
        if listener is None:
            self.listeners[party] = TlsListener(
                party,
                Address(self.host, 0),
                self.files(party),
                links,
                handshake_timeout=self.handshake_timeout,
            )
        else:
            listener.links = links
        return links

    def route(self, frm: int, to: int, address: Address) -> None:
        """Make party ``frm`` dial ``to`` at ``address`` (a proxy) instead of ``to``'s listener."""
        self._routes[frm, to] = address
        if to in self.connectors[frm].peers:
            self.connectors[frm].peers[to] = address

    def address(self, party: int) -> Address:
        """Where ``party``'s listener is (once ``serve`` has started it)."""
        listener = self.listeners[party]
        if listener is None or listener.port is None:
            raise LookupError(f"party {party}'s listener is not running")
        return Address(self.host, listener.port)

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run every party's listener; report started once all are bound and connectors know the ports."""
        missing = [i for i, lst in enumerate(self.listeners) if lst is None]
        if missing:
            raise RuntimeError(f"links(party) was never called for parties {missing}")
        async with trio.open_nursery() as nursery:
            for listener in self.listeners:
                assert listener is not None
                await nursery.start(listener.serve)
            for i, conn in enumerate(self.connectors):
                for j in conn.peers:
                    conn.peers[j] = self._routes.get((i, j), self.address(j))
            task_status.started()

    def reload(self, party: int) -> None:
        """Re-read ``party``'s files in its connector and listener (what SIGHUP does in the daemon)."""
        self.connectors[party].reload()
        listener = self.listeners[party]
        if listener is not None:
            listener.reload()

    def close(self) -> None:
        """Remove the temporary directory, if this object made one (keys included)."""
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
