"""The real party transport over a simulated ``Network``: ``StreamLinks`` and ``PeerLink`` on ``SimStream``s.

    net = Network(seed, parties=3, profile="flaky")
    transport = SimTransport(net, tls=SimTls.create(3))
    async with actors.local_cluster(3, transport=transport) as c:    # or netsim.runner's own parties
        ...

Nothing above the byte stream is simulated. ``SimTransport.links(party)`` returns the ``StreamLinks``
that production uses (a subclass that adds the listener a TLS transport would run), whose connector
dials with ``Network.dial``; so resets, stalls, partitions, corruption and crashes reach the same
reconnect, resend and peer-timeout code that a TCP reset reaches in a deployment.

Identity. Without TLS the simulated network "authenticates" perfectly: a stream's far end is the party
that dialed it, and that id goes to ``links.accept``. With ``tls`` every party dials through the
production ``tls.TlsConnector`` and listens through the production ``tls.TlsListener``, composed over
the network's dial and listen (``open_stream`` / ``listeners``): every connection runs a real TLS 1.3
handshake in the production ``TlsStream`` (so the sweeps exercise the stream the daemons use, and
``PeerLink``'s ``receive_into`` path), the listener's handshake slots, deadlines and refusals are the
daemon's, and both ends read the peer's id out of its certificate. The certificates come from a
throw-away cluster CA made by ``pki``'s own builders. TLS is also what turns the network's ``corrupt``
faults into connection resets: ``PeerLink`` has no checksum of its own (TCP's and TLS's are below
it), so a flipped bit that reached it would be taken as data. Runs with corruption faults therefore
need ``tls``.

Adversaries. A corrupt party may do anything with its own connections, so the transport lets its
``LinkHooks`` wrap every stream the party owns: ``wrap_wire`` below TLS (the bytes on the wire: a party
that goes dark) and ``wrap_link`` above it (the records its ``PeerLink`` writes: replayed, reordered or
forged records that an honest peer's TLS accepts, because the corrupt party holds a valid key).
"""

from __future__ import annotations

import random
import shutil
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import trio
from cryptography.hazmat.primitives.asymmetric import ed25519

from actors.links import StreamLinks
from actors.peerlink import LinkConfig
from actors.pki import (
    TlsFiles,
    client_context,
    create_ca,
    issue_party_cert,
    server_context,
    write_cert,
    write_private_key,
)
from actors.tls import TlsConnector, TlsListener

from .network import Network, SimListener
from .streams import SimStream


class LinkHooks(Protocol):
    """What a corrupt party does to its own connections (see ``netsim.adversaries``)."""

    def wrap_wire(self, peer: int, stream: trio.abc.Stream) -> trio.abc.Stream:
        """The raw simulated stream to ``peer``, below TLS."""
        ...

    def wrap_link(self, peer: int, stream: trio.abc.Stream) -> trio.abc.Stream:
        """The stream its ``PeerLink`` to ``peer`` reads and writes (above TLS, if any)."""
        ...


@dataclass(frozen=True)
class SimTls:
    """TLS 1.3 contexts for parties ``0..n-1`` of a throw-away cluster CA (server and client side each).

    The contexts and certificates are the real ones (``pki.create_ca`` / ``pki.issue_party_cert``,
    ``pki.server_context`` / ``pki.client_context``: TLS 1.3 only, peer certificate required and
    checked against the CA). One difference, for exact replay: the keys are Ed25519, not P-256, and
    the serials fixed. An ECDSA signature's DER encoding varies by a byte or two from one handshake to
    the next, which shifts every later byte on a bandwidth-limited link by a few nanoseconds and
    moves the bits a ``corrupt`` fault flips; Ed25519 signatures (and these certificates, with fixed
    serials) always have the same size.

    The keys exist only in memory: ``create`` writes them to a private temporary directory just long
    enough for ``ssl`` to load them (it reads keys from files only) and removes it. Contexts can be
    reused by any number of simulations, in any trio run.
    """

    server: tuple[ssl.SSLContext, ...]
    client: tuple[ssl.SSLContext, ...]

    @classmethod
    def create(cls, n: int) -> SimTls:
        ca_cert, ca_key = create_ca(
            key=ed25519.Ed25519PrivateKey.generate(), serial=1, common_name="netsim cluster CA"
        )
        root = Path(tempfile.mkdtemp(prefix="netsim-tls-"))
        try:
            write_cert(root / "ca.pem", ca_cert)
            servers, clients = [], []
            for i in range(n):
                cert, key = issue_party_cert(
                    i, ca_cert=ca_cert, ca_key=ca_key, key=ed25519.Ed25519PrivateKey.generate(), serial=2 + i
                )
                files = TlsFiles(
                    root / "ca.pem",
                    write_cert(root / f"{i}.pem", cert),
                    write_private_key(root / f"{i}.key", key),
                )
                srv = server_context(files)
                srv.num_tickets = 0  # as the real listener: a full handshake and certificate check each time
                servers.append(srv)
                clients.append(client_context(files))
        finally:
            shutil.rmtree(root, ignore_errors=True)
        return cls(tuple(servers), tuple(clients))

    @property
    def n(self) -> int:
        return len(self.server)


class SimTransport:
    """``links(party)`` for ``local_cluster`` or the netsim runner: parties talk through ``net``.

    ``config`` tunes every party's links (virtual seconds). ``hooks`` maps a corrupt party to the
    ``LinkHooks`` that wrap its streams. ``seed``, if given, seeds each link's reconnect-backoff jitter,
    so that reconnect times (and hence the fault schedule) replay exactly.
    """

    def __init__(
        self,
        net: Network,
        *,
        config: LinkConfig | None = None,
        tls: SimTls | None = None,
        hooks: dict[int, LinkHooks] | None = None,
        seed: int | None = None,
    ) -> None:
        if tls is not None and tls.n < len(net.parties):
            raise ValueError(f"TLS material for {tls.n} parties, but the network has {len(net.parties)}")
        if net.parties != tuple(range(len(net.parties))):
            raise ValueError("the network's parties must be 0..n-1 (party ids are link ids)")
        self.net = net
        self.n = len(net.parties)
        self.config = config or LinkConfig()
        self.tls = tls
        self.hooks = dict(hooks or {})
        self.seed = seed

    def links(self, party: int, **kw: Any) -> SimLinks:
        kw.setdefault("config", self.config)
        return SimLinks(self, party, **kw)

    async def connect(self, me: int, peer: int) -> tuple[trio.abc.Stream, int]:
        """Dial ``peer`` from ``me``: a ``SimStream``, under TLS if configured, wrapped by ``me``'s hooks.
        (A ``SimLinks`` dials through its own ``TlsConnector``; this is for adversaries that dial
        around their links.)"""
        return await self.connector(me).connect(peer)

    def connector(self, me: int) -> _Connector:
        """``me``'s way to its peers: the production ``TlsConnector`` over ``dial``, or ``dial`` alone."""
        hooks = self.hooks.get(me)
        if self.tls is None:
            return _Connector(self, me, None, hooks)
        tls = TlsConnector(
            me,
            {},
            self.tls.client[me],
            handshake_timeout=self.config.handshake_timeout,
            open_stream=lambda peer: self.dial(me, peer),
        )
        return _Connector(self, me, tls, hooks)

    async def dial(self, me: int, peer: int) -> trio.abc.Stream:
        """A raw connection from ``me`` to ``peer``, as ``me``'s hooks have it on the wire."""
        raw = await self.net.dial(me, peer)
        hooks = self.hooks.get(me)
        return raw if hooks is None else hooks.wrap_wire(peer, raw)


class _Connector:
    """One simulated party's ``links.Connector``: dial (through TLS if set), then ``wrap_link``."""

    def __init__(
        self, transport: SimTransport, me: int, tls: TlsConnector | None, hooks: LinkHooks | None
    ) -> None:
        self.transport = transport
        self.me = me
        self.tls = tls
        self.hooks = hooks

    async def connect(self, peer: int) -> tuple[trio.abc.Stream, int]:
        if self.tls is not None:
            stream, who = await self.tls.connect(peer)
        else:
            stream, who = await self.transport.dial(self.me, peer), peer
        return (stream if self.hooks is None else self.hooks.wrap_link(who, stream)), who


class _Relisten(trio.abc.Listener[trio.abc.Stream]):
    """A party's listener on the simulated network that outlives crashes of its host.

    The network breaks a crashed party's listener; a restarted daemon binds its port again. This
    does the same inside ``accept``: wait until the host is up, listen again, go on. Streams come out
    as the party's hooks have them on the wire (``wrap_wire``).
    """

    def __init__(self, transport: SimTransport, party: int) -> None:
        self.transport = transport
        self.party = party
        self._inner: SimListener | None = None
        if transport.net.is_up(party):
            self._inner = transport.net.listen(party)  # at once: a peer may dial before accept runs

    async def accept(self) -> trio.abc.Stream:
        return (await self.accept_from())[0]

    async def accept_from(self) -> tuple[trio.abc.Stream, int]:
        """The next inbound stream and the party that dialed it."""
        net = self.transport.net
        while True:
            if self._inner is None:
                await net.wait_until_up(self.party)
                self._inner = net.listen(self.party)
            try:
                stream: SimStream = await self._inner.accept()
            except trio.BrokenResourceError:
                await self._close_inner()  # the host crashed: listen again after its restart
                continue
            hooks = self.transport.hooks.get(self.party)
            return (stream if hooks is None else hooks.wrap_wire(stream.remote, stream)), stream.remote

    async def _close_inner(self) -> None:
        inner, self._inner = self._inner, None
        if inner is not None:
            await inner.aclose()

    async def aclose(self) -> None:
        await self._close_inner()


class SimLinks(StreamLinks):
    """``StreamLinks`` plus the party's listener on the simulated network.

    The listener runs inside ``serve`` (so ``local_cluster`` needs nothing special). With TLS it is
    the production ``TlsListener`` over the simulated listener (``listener``, its ``stats`` count
    refusals by reason); without, each inbound stream goes to ``accept`` under the dialer's true id.
    When the party's host crashes the listener breaks; it listens again once the network brings the
    host back, as a restarted daemon would.
    """

    def __init__(self, transport: SimTransport, party: int, **kw: Any) -> None:
        super().__init__(party, transport.n, transport.connector(party), **kw)
        self.transport = transport
        self.listener: TlsListener | None = None
        if transport.tls is not None:
            self.listener = TlsListener(
                party,
                None,
                transport.tls.server[party],
                self,
                handshake_timeout=self.config.handshake_timeout,
                listeners=self._listeners,
            )
        if transport.seed is not None:
            # Reconnect backoff draws jitter from each PeerLink's RNG; seeded, a run's reconnect times
            # (and so its fault schedule) replay exactly. StreamLinks takes no RNG, so set it here.
            for j in range(self.n):
                if j != party:
                    self.link(j)._rng = random.Random(f"{transport.seed}/backoff/{party}/{j}")  # noqa: S311

    async def _listeners(self) -> list[trio.abc.Listener[trio.abc.Stream]]:
        await trio.lowlevel.checkpoint()
        return [_Relisten(self.transport, self.party)]

    async def accept(self, stream: trio.abc.Stream, peer: int) -> None:
        """An authenticated inbound stream, as the party's hooks have it above TLS (``wrap_link``)."""
        hooks = self.transport.hooks.get(self.party)
        await super().accept(stream if hooks is None else hooks.wrap_link(peer, stream), peer)

    async def serve(
        self, on_frame: Any, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(super().serve, on_frame)
            if self.listener is not None:
                await nursery.start(self.listener.serve)
            else:
                nursery.start_soon(self._accept_plain)
            task_status.started()

    async def _accept_plain(self) -> None:
        """Without TLS: every inbound stream is the dialer's, under its true id."""
        listener = _Relisten(self.transport, self.party)
        async with listener, trio.open_nursery() as nursery:
            while True:
                stream, dialer = await listener.accept_from()
                nursery.start_soon(self.accept, stream, dialer)


__all__ = ["LinkHooks", "SimLinks", "SimTls", "SimTransport"]
