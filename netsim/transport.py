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
that dialed it, and that id goes to ``links.accept``. With ``tls`` every connection runs a real TLS 1.3
handshake over the simulated stream in the production ``TlsStream`` (so the sweeps exercise the stream
the daemons use, and ``PeerLink``'s ``receive_into`` path), with certificates from a throw-away cluster
CA made by ``pki``'s own builders, and both ends read the peer's id out of its certificate
(``pki.check_peer`` / ``pki.peer_party_id``) as the real transport does. TLS is also what turns the
network's ``corrupt`` faults into connection resets: ``PeerLink`` has no checksum of its own (TCP's
and TLS's are below it), so a flipped bit that reached it would be taken as data. Runs with
corruption faults therefore need ``tls``.

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

import structlog
import trio
from cryptography.hazmat.primitives.asymmetric import ed25519

from actors.links import StreamLinks
from actors.peerlink import LinkConfig
from actors.pki import (
    TlsFiles,
    check_peer,
    client_context,
    create_ca,
    issue_party_cert,
    peer_party_id,
    server_context,
    write_cert,
    write_private_key,
)
from actors.tls import TlsStream
from protocols.errors import PeerAuthError

from .network import Network

log = structlog.get_logger("spdz.netsim")


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
        self.refused: list[tuple[int, str]] = []  # (party, reason) of inbound connections refused

    def links(self, party: int, **kw: Any) -> SimLinks:
        kw.setdefault("config", self.config)
        return SimLinks(self, party, **kw)

    async def connect(self, me: int, peer: int) -> tuple[trio.abc.Stream, int]:
        """Dial ``peer`` from ``me``: a ``SimStream``, under TLS if configured, wrapped by ``me``'s hooks."""
        raw = await self.net.dial(me, peer)
        hooks = self.hooks.get(me)
        stream: trio.abc.Stream = raw if hooks is None else hooks.wrap_wire(peer, raw)
        try:
            if self.tls is not None:
                tls_stream = TlsStream(stream, self.tls.client[me], server_side=False)
                await tls_stream.do_handshake()
                check_peer(tls_stream, peer)
                stream = tls_stream
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise
        return (stream if hooks is None else hooks.wrap_link(peer, stream)), peer

    async def admit(self, me: int, raw: trio.abc.Stream, dialer: int) -> tuple[trio.abc.Stream, int] | None:
        """An inbound connection at ``me``: the TLS handshake and the peer id from its certificate
        (or, without TLS, the dialer's true id). None, with the stream closed, if it fails."""
        hooks = self.hooks.get(me)
        stream: trio.abc.Stream = raw if hooks is None else hooks.wrap_wire(dialer, raw)
        peer = dialer
        if self.tls is not None:
            tls_stream = TlsStream(stream, self.tls.server[me], server_side=True)
            try:
                with trio.fail_after(self.config.handshake_timeout):
                    await tls_stream.do_handshake()
                peer = peer_party_id(tls_stream)
            except (
                trio.BrokenResourceError,
                trio.ClosedResourceError,
                trio.TooSlowError,
                PeerAuthError,
            ) as e:
                self.refused.append((me, f"{type(e).__name__}: {e}"))
                log.info("netsim_inbound_refused", party=me, dialer=dialer, error=f"{type(e).__name__}: {e}")
                await trio.aclose_forcefully(tls_stream)
                return None
            stream = tls_stream
        return (stream if hooks is None else hooks.wrap_link(peer, stream)), peer


class _Dialer:
    def __init__(self, transport: SimTransport, party: int) -> None:
        self._transport = transport
        self._party = party

    async def connect(self, peer: int) -> tuple[trio.abc.Stream, int]:
        return await self._transport.connect(self._party, peer)


class SimLinks(StreamLinks):
    """``StreamLinks`` plus the party's listener on the simulated network.

    The listener runs inside ``serve`` (so ``local_cluster`` needs nothing special), accepts each
    inbound stream, admits it in its own task (one slow TLS handshake never stalls the others) and
    hands it to ``accept``. When the party's host crashes the listener breaks; it listens again once
    the network brings the host back, as a restarted daemon would.
    """

    def __init__(self, transport: SimTransport, party: int, **kw: Any) -> None:
        super().__init__(party, transport.n, _Dialer(transport, party), **kw)
        self.transport = transport
        if transport.seed is not None:
            # Reconnect backoff draws jitter from each PeerLink's RNG; seeded, a run's reconnect times
            # (and so its fault schedule) replay exactly. StreamLinks takes no RNG, so set it here.
            for j in range(self.n):
                if j != party:
                    self.link(j)._rng = random.Random(f"{transport.seed}/backoff/{party}/{j}")  # noqa: S311

    async def serve(
        self, on_frame: Any, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(super().serve, on_frame)
            nursery.start_soon(self._listen)
            task_status.started()

    async def _listen(self) -> None:
        net = self.transport.net
        async with trio.open_nursery() as nursery:
            while True:
                await net.wait_until_up(self.party)
                listener = net.listen(self.party)
                try:
                    while True:
                        stream = await listener.accept()
                        nursery.start_soon(self._admit, stream)
                except trio.BrokenResourceError:
                    continue  # the host crashed: listen again after its restart
                finally:
                    await listener.aclose()

    async def _admit(self, stream: Any) -> None:
        admitted = await self.transport.admit(self.party, stream, stream.remote)
        if admitted is not None:
            await self.accept(*admitted)


__all__ = ["LinkHooks", "SimLinks", "SimTls", "SimTransport"]
