"""The TLS transport: mutually authenticated TLS 1.3 under the parties' ``StreamLinks``.

Who is on the other end of a connection is decided here and nowhere else. Both ends present a
certificate from the cluster CA (``pki.server_context`` / ``pki.client_context``: TLS 1.3 only, the peer
certificate required and verified), and both ends read the peer's party id out of that certificate
(``pki.peer_party_id``) instead of believing anything the peer says: the dialer insists on the id it
dialled (``pki.check_peer``), the listener hands the stream to ``links.accept(stream, id)`` under the
id it found, and ``StreamLinks`` refuses ids that should not dial this party. ``PeerLink``'s HELLO then
checks the claimed ids against these authenticated ones, so the id is bound on both ends twice.

Both classes compose over the byte streams below them, the way trio's ``SSLListener`` wraps any
``Listener[Stream]``: by default ``TlsConnector`` dials TCP and ``TlsListener`` binds TCP, and a caller
may inject its own ``open_stream(peer)`` and ``listeners()`` instead. netsim does, so its simulated
connections run through this code (and ``tlsstream.TlsStream``) exactly as a daemon's do.

Two facts shape the code:

* **The client finishes its TLS 1.3 handshake before the server has judged the client's
  certificate.** A server that refuses us does so after our handshake returned; we learn of it only
  when we read. ``PeerLink`` has each side send its HELLO before reading the peer's, so a listener
  that accepted us always speaks first. The connector therefore waits for the listener's first bytes
  before it reports success: an alert or a close in that window is the listener refusing us (our
  certificate or our id), and the dialer gets a ``PeerAuthError`` saying so instead of a bare reset
  later. The bytes read are pushed back in front of the stream, so the link loses nothing.
* **A handshake costs a round trip and some public-key work, and a hostile client can stall it.**
  The listener runs every accepted connection in its own task with its own deadline
  (``handshake_timeout``) and catches everything a peer can cause, so garbage, a huge record, a
  silent or slow client, or a wrong certificate is one refused connection (counted in ``stats`` by
  reason, logged as a warning with the remote address) and never stalls other handshakes or stops the
  listener. At most ``max_handshakes`` handshakes run at once. A quarter of them are reserved for the
  peers' configured addresses, and any other source address holds at most ``max_per_source``: an
  outsider holding idle connections open cannot keep the parties from reconnecting. Refusals are
  counted per reason and logged at most once per reason per 10 s, with the number left out.

Session tickets are off on the listener: every connection does a full handshake and certificate
check, so a certificate that expired or was replaced since the last connection cannot ride on a
resumed session. ``reload()`` re-reads certificate, key and CA from disk (SIGHUP); connections made
after it use the new files, the live ones keep running on the old. TCP_NODELAY is set on every socket
(frames are written whole; Nagle would only add latency to the small ones).

``inprocess.LocalTls`` puts n parties on loopback with a fresh CA in a directory: what
``local_cluster(n, transport="tls")``, the demo and the benchmarks run on.
"""

from __future__ import annotations

import errno
import math
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import structlog
import trio

from protocols.errors import ConfigError, PeerAuthError

from .config import Address
from .links import StreamLinks
from .pki import TlsFiles, check_peer, client_context, peer_party_id, server_context
from .throttle import Throttle
from .tlsstream import ALERT_TIMEOUT, TlsStream, classify_tls_error
from .tlsstream import describe_error as _describe

log = structlog.get_logger("spdz.tls")

DEFAULT_HANDSHAKE_TIMEOUT = 10.0
DEFAULT_MAX_HANDSHAKES = 256
DEFAULT_MAX_PER_SOURCE = 16  # handshakes at once from one address that is not a peer's
_ACCEPT_CAPACITY_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
_ACCEPT_BACKOFF = 0.1

StreamOpener = Callable[[int], Awaitable[trio.abc.Stream]]
"""``open_stream(peer)``: a fresh byte stream to ``peer``, not yet authenticated."""
ListenerOpener = Callable[[], Awaitable[Sequence[trio.abc.Listener[Any]]]]
"""``listeners()``: the listeners whose streams a ``TlsListener`` authenticates."""


def _nodelay(stream: trio.abc.Stream) -> None:
    if isinstance(stream, trio.SocketStream):
        stream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)


def _remote(stream: trio.abc.Stream) -> tuple[str, str]:
    """The far end, alone and as ``host:port`` (for logs): ``("?", "?")`` if it is gone. A stream
    that is not a socket (a simulated one) names its far end in ``remote``, if it can."""
    if not isinstance(stream, trio.SocketStream):
        name = str(getattr(stream, "remote", "?"))
        return name, name
    try:
        host, port, *_ = stream.socket.getpeername()
    except OSError:
        return "?", "?"
    return str(host), f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _count(stats: dict[str, Any], reason: str) -> None:
    refused = stats["refused"]
    refused[reason] = refused.get(reason, 0) + 1


def _client_context(tls: TlsFiles | ssl.SSLContext) -> ssl.SSLContext:
    return client_context(tls) if isinstance(tls, TlsFiles) else tls


class TlsConnector:
    """Dials peers over TLS 1.3 and returns streams authenticated as them (``links.Connector``).

    ``peers`` maps party id to the address to dial; it is a public dict, so a caller that learns the
    real ports late (``LocalTls``) or routes through a proxy (tests) may update it. ``tls`` is the
    party's files (``reload`` re-reads them) or a ready client context. ``open_stream(peer)``, if
    given, opens the byte stream under TLS instead of a TCP connection to ``peers[peer]`` (netsim's
    simulated dial). ``stats`` counts ``connected`` streams and ``refused`` ones by reason
    (``refused_by_peer`` when the listener closed on us after the handshake).
    """

    def __init__(
        self,
        me: int,
        peers: dict[int, Address],
        tls: TlsFiles | ssl.SSLContext,
        *,
        handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
        open_stream: StreamOpener | None = None,
    ) -> None:
        if not (math.isfinite(handshake_timeout) and handshake_timeout > 0):
            raise ConfigError(
                f"handshake_timeout must be a positive number of seconds, got {handshake_timeout}"
            )
        self.me = me
        self.peers = dict(peers)
        self.tls = tls
        self.handshake_timeout = handshake_timeout
        self.stats: dict[str, Any] = {"connected": 0, "refused": {}}
        self._ctx = _client_context(tls)
        self._open = open_stream or self._open_tcp

    def reload(self) -> None:
        """Re-read certificate, key and CA from disk; later connections use them.

        On a ``ConfigError`` (missing file, key that does not match) the old files stay in use, so a
        botched certificate renewal does not cut a running party off from its peers.
        """
        if not isinstance(self.tls, TlsFiles):
            raise ConfigError(f"party {self.me}'s connector was given a TLS context, not files to re-read")
        self._ctx = client_context(self.tls)
        log.info("tls_reloaded", party=self.me, side="dialer", cert=str(self.tls.cert))

    def _where(self, peer: int) -> str:
        addr = self.peers.get(peer)
        return f"party {peer}" if addr is None else f"{addr.host}:{addr.port}"

    async def _open_tcp(self, peer: int) -> trio.abc.Stream:
        addr = self.peers.get(peer)
        if addr is None:
            raise ConfigError(f"party {self.me} has no address for party {peer}")
        return await trio.open_tcp_stream(addr.host, addr.port)

    def _refuse(self, peer: int, remote: str, reason: str, detail: str) -> None:
        _count(self.stats, reason)
        log.warning(
            "tls_refused",
            party=self.me,
            peer=peer,
            remote=remote,
            side="dialer",
            reason=reason,
            detail=detail,
        )

    async def connect(self, peer: int) -> tuple[trio.abc.Stream, int]:
        """Connect to ``peer`` (TCP, or ``open_stream``), TLS 1.3 handshake, check that its
        certificate names ``peer``, and wait for its first bytes (its acceptance of us).
        ``PeerAuthError`` when either side refuses the other's certificate or id;
        ``ConnectionError`` / ``OSError`` when the network fails."""
        ctx = self._ctx
        remote = self._where(peer)
        transport = await self._open(peer)
        stream = TlsStream(transport, ctx, server_side=False)
        ok = False
        try:
            _nodelay(transport)
            with trio.fail_after(self.handshake_timeout):
                await self._handshake(stream, peer, remote)
                who = self._check_identity(stream, peer, remote)
                await self._await_verdict(stream, peer, remote)
            ok = True
        except trio.TooSlowError:
            raise ConnectionError(
                f"TLS handshake with party {peer} at {remote} took longer than {self.handshake_timeout} s"
            ) from None
        finally:
            if not ok:
                await trio.aclose_forcefully(stream)
        self.stats["connected"] += 1
        return stream, who

    async def _handshake(self, stream: TlsStream, peer: int, remote: str) -> None:
        try:
            await stream.do_handshake()
        except trio.BrokenResourceError as e:
            reason = classify_tls_error(e)
            if reason in ("disconnected", "tls_error"):
                raise ConnectionError(
                    f"TLS handshake with party {peer} at {remote} failed: {_describe(e)}"
                ) from None
            self._refuse(peer, remote, reason, _describe(e))
            raise PeerAuthError(
                f"party {peer} at {remote} failed TLS authentication ({reason}): {_describe(e)}"
            ) from None

    def _check_identity(self, stream: TlsStream, peer: int, remote: str) -> int:
        try:
            return check_peer(stream, peer)
        except PeerAuthError as e:
            self._refuse(peer, remote, "wrong_party", str(e))
            raise PeerAuthError(f"{remote}: {e}") from None

    async def _await_verdict(self, stream: TlsStream, peer: int, remote: str) -> None:
        """TLS 1.3 lets the client finish before the server has judged it: wait for the listener's
        first bytes (its links speak first). A close or an alert instead is the listener refusing us."""
        try:
            first = await stream.receive_some()
        except trio.BrokenResourceError as e:
            first, why = b"", _describe(e)
        else:
            why = "closed the connection"
        if not first:
            self._refuse(peer, remote, "refused_by_peer", why)
            raise PeerAuthError(
                f"party {peer} at {remote} refused us right after the TLS handshake ({why}): "
                f"it does not accept our certificate or our party id; its log says why"
            )
        stream.push_back(first)


class TlsListener:
    """Accepts peers' TLS connections for one party and hands authenticated streams to its links.

    ``serve`` binds ``listen`` over TCP (port 0: an ephemeral port, reported through ``task_status``
    and ``port``) and accepts until cancelled; with ``listeners`` it accepts from the listeners that
    call returns instead (netsim's simulated ones), and ``listen`` may be None. ``tls`` is the party's
    files (``reload`` re-reads them) or a ready server context. ``links`` is public so that a
    restarted party's new links can take over the listener. ``stats``: ``accepted``, ``refused`` (a
    dict reason -> count) and ``handshaking`` (handshakes in progress now).
    """

    def __init__(
        self,
        me: int,
        listen: Address | None,
        tls: TlsFiles | ssl.SSLContext,
        links: StreamLinks,
        *,
        handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
        max_handshakes: int = DEFAULT_MAX_HANDSHAKES,
        peer_hosts: Iterable[str] = (),
        max_per_source: int = DEFAULT_MAX_PER_SOURCE,
        listeners: ListenerOpener | None = None,
    ) -> None:
        if links.party != me:
            raise ValueError(f"listener of party {me} given the links of party {links.party}")
        if listen is None and listeners is None:
            raise ValueError(f"party {me}'s listener needs an address to bind or listeners to accept from")
        if not (math.isfinite(handshake_timeout) and handshake_timeout > 0):
            raise ConfigError(
                f"handshake_timeout must be a positive number of seconds, got {handshake_timeout}"
            )
        if max_handshakes < 1:
            raise ConfigError(f"max_handshakes must be at least 1, got {max_handshakes}")
        self.me = me
        self.listen = listen
        self.tls = tls
        self.links = links
        self.handshake_timeout = handshake_timeout
        self.max_handshakes = max_handshakes
        self.port: int | None = None
        self.stats: dict[str, Any] = {"accepted": 0, "refused": {}, "handshaking": 0}
        self._ctx = self._context()
        self._open_listeners = listeners
        self.max_per_source = max_per_source
        self._peer_names = tuple(peer_hosts)
        # slots only the peers' addresses may use
        self.reserved = max(1, max_handshakes // 4) if self._peer_names else 0
        self._peer_ips: set[str] = set()
        self._by_source: dict[str, int] = {}  # handshakes in progress per source address
        self._others = 0  # handshakes in progress from addresses that are not a peer's
        self._log_refusal = Throttle()

    def _context(self) -> ssl.SSLContext:
        if not isinstance(self.tls, TlsFiles):
            return self.tls
        ctx = server_context(self.tls)
        ctx.num_tickets = 0  # no resumption: every connection's certificate is verified afresh
        return ctx

    def reload(self) -> None:
        """Re-read certificate, key and CA from disk; later connections use them (old ones on error)."""
        if not isinstance(self.tls, TlsFiles):
            raise ConfigError(f"party {self.me}'s listener was given a TLS context, not files to re-read")
        self._ctx = self._context()
        log.info("tls_reloaded", party=self.me, side="listener", cert=str(self.tls.cert))

    async def serve(self, *, task_status: trio.TaskStatus[int | None] = trio.TASK_STATUS_IGNORED) -> None:
        """Bind (or open the injected listeners), report the bound port, accept until cancelled."""
        if self._open_listeners is None:
            listeners: Sequence[trio.abc.Listener[Any]] = await self._bind_tcp()
        else:
            listeners = await self._open_listeners()
        async with trio.open_nursery() as nursery:
            for listener in listeners:
                nursery.start_soon(self._accept_loop, listener, nursery)
            task_status.started(self.port)

    async def _bind_tcp(self) -> list[trio.SocketListener]:
        assert self.listen is not None
        listeners = await trio.open_tcp_listeners(self.listen.port, host=self.listen.host)
        for name in self._peer_names:  # resolved once: a peer's address is what it dials us from
            try:
                infos = await trio.socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
            except OSError as e:
                log.warning("peer_address_unresolved", party=self.me, host=name, error=_describe(e))
                continue
            self._peer_ips.update(str(info[4][0]) for info in infos)
        if self.listen.port == 0 and len(listeners) > 1:
            # port 0 on several addresses would give each its own port; peers can only be told one
            for extra in listeners[1:]:
                await extra.aclose()
            listeners = listeners[:1]
        self.port = int(listeners[0].socket.getsockname()[1])
        log.info("tls_listening", party=self.me, host=self.listen.host, port=self.port)
        return listeners

    async def _accept_loop(self, listener: trio.abc.Listener[Any], nursery: trio.Nursery) -> None:
        """Accept forever, one task per connection. Not ``trio.serve_listeners``: that closes each
        stream when its handler returns, and ours live on in the links after the handshake task ends."""
        async with listener:
            while True:
                try:
                    transport = await listener.accept()
                except OSError as e:
                    if e.errno not in _ACCEPT_CAPACITY_ERRNOS:
                        raise
                    log.error("tls_accept_capacity", party=self.me, error=_describe(e))
                    await trio.sleep(_ACCEPT_BACKOFF)  # out of file descriptors: let some close
                    continue
                nursery.start_soon(self._handle, transport)

    def _refuse(self, remote: str, reason: str, detail: str, *, quiet: bool = False) -> None:
        _count(self.stats, reason)
        self._log_refusal.emit(
            log.info if quiet else log.warning,
            "tls_refused",
            key=reason,
            party=self.me,
            remote=remote,
            side="listener",
            reason=reason,
            detail=detail,
        )

    async def _handle(self, transport: trio.abc.Stream) -> None:
        """One inbound connection: handshake under a deadline, identify, hand over. Never raises."""
        source, remote = _remote(transport)
        try:
            await self._admit(transport, source, remote)
        except Exception as e:  # a bug here must cost one connection, not the listener
            _count(self.stats, "internal_error")
            log.error("tls_accept_failed", party=self.me, remote=remote, error=_describe(e))
            await trio.aclose_forcefully(transport)

    async def _admit(self, transport: trio.abc.Stream, source: str, remote: str) -> None:
        if not self.links.accepting:
            self._refuse(remote, "not_serving", "this party's links are not running", quiet=True)
            await trio.aclose_forcefully(transport)
            return
        trusted = source in self._peer_ips
        busy = ""
        if self.stats["handshaking"] >= self.max_handshakes:
            busy = f"{self.stats['handshaking']} handshakes already in progress"
        elif not trusted and self._others >= self.max_handshakes - self.reserved:
            busy = f"the {self.max_handshakes - self.reserved} handshake slots for other addresses are taken"
        elif not trusted and self._by_source.get(source, 0) >= self.max_per_source:
            busy = f"{self.max_per_source} handshakes from {source} already in progress"
        if busy:
            self._refuse(remote, "busy", busy)
            await trio.aclose_forcefully(transport)
            return
        _nodelay(transport)
        stream = TlsStream(transport, self._ctx, server_side=True)
        peer: int | None = None
        reason = detail = ""
        self.stats["handshaking"] += 1
        self._by_source[source] = self._by_source.get(source, 0) + 1
        self._others += not trusted
        try:
            with trio.move_on_after(self.handshake_timeout) as scope:
                await stream.do_handshake()
                peer = peer_party_id(stream)
            if scope.cancelled_caught:
                reason, detail = "handshake_timeout", f"no TLS handshake within {self.handshake_timeout} s"
        except trio.BrokenResourceError as e:
            reason, detail = classify_tls_error(e), _describe(e)
        except PeerAuthError as e:
            reason, detail = "no_party_id", str(e)
        finally:
            self.stats["handshaking"] -= 1
            self._others -= not trusted
            left = self._by_source.pop(source) - 1
            if left:
                self._by_source[source] = left
        if not reason and peer is not None:
            if peer == self.me or peer >= self.links.n:
                reason = "not_a_peer"
                detail = f"certificate names party {peer}, not a peer of party {self.me} (n = {self.links.n})"
            elif peer > self.me:
                reason = "wrong_direction"
                detail = f"certificate names party {peer}, which party {self.me} dials itself"
        if reason or peer is None:
            self._refuse(remote, reason or "no_party_id", detail, quiet=reason == "disconnected")
            with trio.move_on_after(ALERT_TIMEOUT):
                await stream.aclose()  # after a handshake: close_notify, so the dialer sees a clean "no"
            return
        self.stats["accepted"] += 1
        log.info("tls_accepted", party=self.me, peer=peer, remote=remote)
        await self.links.accept(stream, peer)


__all__ = ["ListenerOpener", "StreamOpener", "TlsConnector", "TlsListener", "classify_tls_error"]
