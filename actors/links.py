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
        self.connector = connector  # how this party dials (public: transports and tests read its stats)
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
