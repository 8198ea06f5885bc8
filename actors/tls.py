"""The TLS transport: mutually authenticated TLS 1.3 over TCP under the parties' ``StreamLinks``.

Who is on the other end of a connection is decided here and nowhere else. Both ends present a
certificate from the cluster CA (``pki.server_context`` / ``pki.client_context``: TLS 1.3 only, the peer
certificate required and verified), and both ends read the peer's party id out of that certificate
(``pki.peer_party_id``) instead of believing anything the peer says: the dialer insists on the id it
dialled (``pki.check_peer``), the listener hands the stream to ``links.accept(stream, id)`` under the
id it found, and ``StreamLinks`` refuses ids that should not dial this party. ``PeerLink``'s HELLO then
checks the claimed ids against these authenticated ones, so the id is bound on both ends twice.

Three facts shape the code:

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
* **The links move multi-megabyte frames.** ``TlsStream`` (below) moves them in large slices
  instead of one 16 KiB TLS record per scheduler round trip, can decrypt straight into the reader's
  buffer (``receive_into``), and sends the alert of a failed handshake so the peer learns the reason.

Session tickets are off on the listener: every connection does a full handshake and certificate
check, so a certificate that expired or was replaced since the last connection cannot ride on a
resumed session. ``reload()`` re-reads certificate, key and CA from disk (SIGHUP); connections made
after it use the new files, the live ones keep running on the old. TCP_NODELAY is set on every socket
(frames are written whole; Nagle would only add latency to the small ones).

``LocalTls`` puts n parties on loopback with a fresh CA in a directory: what
``local_cluster(n, transport="tls")``, the demo and the benchmarks run on.
"""

from __future__ import annotations

import enum
import errno
import math
import operator
import socket
import ssl
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NoReturn

import structlog
import trio

from protocols.errors import ConfigError, PeerAuthError

from .config import Address
from .links import StreamLinks
from .peerlink import LinkConfig
from .pki import (
    CA_CERT,
    CA_KEY,
    CERT,
    KEY,
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
from .throttle import Throttle

log = structlog.get_logger("spdz.tls")

DEFAULT_HANDSHAKE_TIMEOUT = 10.0
DEFAULT_MAX_HANDSHAKES = 256
DEFAULT_MAX_PER_SOURCE = 16  # handshakes at once from one address that is not a peer's
_ACCEPT_CAPACITY_ERRNOS = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
_ACCEPT_BACKOFF = 0.1
SEND_CHUNK = 1 << 18  # plaintext encrypted per transport write: 16 records, bounded buffers
RECEIVE_FILL = 1 << 18  # ciphertext asked of the transport per read
DEFAULT_RECEIVE = 1 << 16
TLS_RECORD = 1 << 14  # the most plaintext one TLS record holds
ALERT_TIMEOUT = 1.0

# OpenSSL X509_V_ERR_* codes of the verification failures worth telling apart in logs and stats.
_VERIFY_REASONS = {
    2: "unknown_ca",  # unable to get issuer certificate
    7: "bad_signature",
    9: "not_yet_valid",
    10: "expired",
    18: "self_signed",  # depth-zero self-signed: not issued by any CA
    19: "unknown_ca",  # a self-signed root we do not trust in the chain
    20: "unknown_ca",  # unable to get local issuer certificate
    21: "unknown_ca",  # unable to verify the first certificate
    26: "bad_purpose",
}


def classify_tls_error(e: BaseException) -> str:
    """A short stable reason for a failed TLS handshake, from the exception the handshake raised.

    Used as the key of ``stats["refused"]`` and in the ``tls_refused`` log event, so operators can
    tell an expired certificate from a foreign CA from a port scanner without reading OpenSSL text.
    """
    err: BaseException | None = e
    while err is not None and not isinstance(err, (ssl.SSLError, ssl.CertificateError, OSError)):
        err = err.__cause__
    if isinstance(err, ssl.SSLCertVerificationError):
        return _VERIFY_REASONS.get(err.verify_code, "bad_certificate")
    if isinstance(err, ssl.SSLEOFError) or (isinstance(err, OSError) and not isinstance(err, ssl.SSLError)):
        return "disconnected"
    if isinstance(err, ssl.SSLError):
        why = (getattr(err, "reason", None) or "").upper()
        if "PEER_DID_NOT_RETURN_A_CERTIFICATE" in why or "CERTIFICATE_REQUIRED" in why:
            return "no_certificate"
        if "UNSUPPORTED_PROTOCOL" in why or "PROTOCOL_VERSION" in why or "NO_PROTOCOLS_AVAILABLE" in why:
            return "protocol_version"
        if "ALERT" in why:  # the peer's TLS stack refused us (e.g. TLSV1_ALERT_UNKNOWN_CA)
            return "refused_by_peer"
        return "tls_error"
    return "disconnected"


def _describe(e: BaseException) -> str:
    """The most telling message in an exception chain (the ``ssl`` error under trio's wrappers)."""
    err: BaseException = e
    while isinstance(err, trio.BrokenResourceError) and err.__cause__ is not None:
        err = err.__cause__
    if isinstance(err, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {err.verify_message}"
    if isinstance(err, ssl.SSLError) and getattr(err, "reason", None):
        return str(err.reason).lower().replace("_", " ")
    return f"{type(err).__name__}: {err}"[:300]


def _nodelay(stream: trio.SocketStream) -> None:
    stream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)


def _remote(stream: trio.SocketStream) -> tuple[str, str]:
    """The far end's address, alone and as ``host:port`` (for logs): ``("?", "?")`` if it is gone."""
    try:
        host, port, *_ = stream.socket.getpeername()
    except OSError:
        return "?", "?"
    return str(host), f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _count(stats: dict[str, Any], reason: str) -> None:
    refused = stats["refused"]
    refused[reason] = refused.get(reason, 0) + 1


class _State(enum.Enum):
    NEW = "new"
    OK = "ok"
    BROKEN = "broken"
    CLOSED = "closed"


_NEW, _OK, _BROKEN, _CLOSED = _State.NEW, _State.OK, _State.BROKEN, _State.CLOSED


class TlsStream(trio.abc.Stream):
    """TLS over a trio stream, for one sending task and one receiving task at a time.

    Why not ``trio.SSLStream``: it is general (renegotiation, any number of tasks, any TLS version)
    and pays for it on every call. Each ``receive_some`` returns at most one TLS record (16 KiB) and
    goes through the scheduler, which for the links' multi-megabyte frames is tens of thousands of
    round trips through trio per frame; here one call decrypts every record already received, up to
    ``max_bytes``. And it does not send the alert OpenSSL produces when a handshake fails, so a refused
    peer sees only a closed connection; here the alert goes out, and the peer's log says "certificate
    expired" or "unknown ca" instead of "EOF".

    The protocol is OpenSSL's (``SSLObject`` over two ``MemoryBIO``); this class only moves bytes. Its
    rules: ciphertext leaves in the order OpenSSL produced it, because the outgoing BIO is only read
    under ``_send_lock`` (strict FIFO) by whoever then sends what it read. A receive that makes OpenSSL
    produce output (a TLS 1.3 key update) sends it only if no send is in progress; otherwise the send
    in progress carries it, and no reader ever waits behind a blocked writer. A transport EOF without
    TLS close_notify is an error (``BrokenResourceError``), not an end of data: a truncation attack
    must not look like a clean close. A cancelled send may leave the stream unusable (as with any
    trio stream that frames bytes); a cancelled receive loses nothing.

    ``do_handshake`` must be called before data moves (the transport checks the peer's certificate
    between the two). ``push_back`` returns received bytes to the front of the stream: the dialer
    reads the listener's first bytes as its verdict and hands them on. ``receive_into`` is
    ``receive_some`` that decrypts into the caller's buffer (``PeerLink`` reads large records so,
    saving a copy and an allocation per record).
    """

    def __init__(self, transport: trio.abc.Stream, context: ssl.SSLContext, *, server_side: bool) -> None:
        self.transport_stream = transport
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._ssl = context.wrap_bio(self._in, self._out, server_side=server_side, server_hostname=None)
        self._send_lock = trio.StrictFIFOLock()
        self._state = _NEW
        self._unread = b""
        self._eof = False  # the peer's close_notify arrived
        self._error: ssl.SSLError | None = None  # a TLS error found after data still to hand out
        self._sending = False
        self._receiving = False

    # ------------------------------------------------------------------------------ information
    def getpeercert(self, binary_form: bool = False) -> Any:
        return self._ssl.getpeercert(binary_form)

    def version(self) -> str | None:
        return self._ssl.version()

    def cipher(self) -> tuple[str, str, int] | None:
        return self._ssl.cipher()

    # ------------------------------------------------------------------------------ plumbing
    def _check(self) -> None:
        if self._state is _CLOSED:
            raise trio.ClosedResourceError("this TLS stream was closed")
        if self._state is _BROKEN:
            raise trio.BrokenResourceError("an earlier TLS or transport error broke this stream")
        if self._state is _NEW:
            raise RuntimeError("call do_handshake() before sending or receiving")

    def _broke(self) -> None:
        if self._state is not _CLOSED:
            self._state = _BROKEN

    async def _flush(self) -> None:
        """Send what OpenSSL has queued. The BIO is read under the lock: bytes leave in queue order."""
        async with self._send_lock:
            data = self._out.read()
            if data:
                try:
                    await self.transport_stream.send_all(data)
                except BaseException:
                    self._broke()  # an unknown part of a record went out: the stream cannot go on
                    raise

    async def _fill(self) -> None:
        """Receive ciphertext (or the transport's EOF) into OpenSSL."""
        try:
            data = await self.transport_stream.receive_some(RECEIVE_FILL)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._broke()
            raise
        if data:
            self._in.write(data)
        else:
            self._in.write_eof()

    async def _send_alert(self) -> None:
        """Best effort: tell the peer why the handshake failed (OpenSSL queued an alert)."""
        data = self._out.read()
        if not data or self._send_lock.locked():
            return
        with trio.CancelScope(shield=True), trio.move_on_after(ALERT_TIMEOUT):
            try:
                await self.transport_stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError, trio.BusyResourceError):
                pass

    # ------------------------------------------------------------------------------ handshake
    async def do_handshake(self) -> None:
        """Run the TLS handshake; ``BrokenResourceError`` (from the ``ssl`` error) if it fails."""
        if self._state is not _NEW:
            self._check()
            await trio.lowlevel.checkpoint()
            return
        if self._sending or self._receiving:
            raise trio.BusyResourceError("another task is already running this TLS handshake")
        self._sending = self._receiving = True
        try:
            while True:
                try:
                    self._ssl.do_handshake()
                    done = True
                except ssl.SSLWantReadError:
                    done = False
                await self._flush()
                if done:
                    break
                await self._fill()
        except (ssl.SSLError, ssl.CertificateError) as e:
            self._broke()
            await self._send_alert()
            raise trio.BrokenResourceError(f"TLS handshake failed: {_describe(e)}") from e
        except BaseException:
            self._broke()
            raise
        finally:
            self._sending = self._receiving = False
        self._state = _OK

    # ------------------------------------------------------------------------------ data
    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._sending:
            raise trio.BusyResourceError("another task is already sending on this TLS stream")
        self._sending = True
        try:
            self._check()
            await trio.lowlevel.checkpoint_if_cancelled()
            with memoryview(data) as whole, whole.cast("B") as view:  # slice bytes, not items
                if not view:
                    await trio.lowlevel.checkpoint()
                    return
                for i in range(0, len(view), SEND_CHUNK):
                    try:
                        self._ssl.write(view[i : i + SEND_CHUNK])
                    except ssl.SSLError as e:
                        self._broke()
                        raise trio.BrokenResourceError(f"TLS error: {_describe(e)}") from e
                    await self._flush()
        finally:
            self._sending = False

    async def wait_send_all_might_not_block(self) -> None:
        if self._sending:
            raise trio.BusyResourceError("another task is already sending on this TLS stream")
        self._sending = True
        try:
            self._check()
            async with self._send_lock:
                await self.transport_stream.wait_send_all_might_not_block()
        finally:
            self._sending = False

    def push_back(self, data: bytes) -> None:
        """Put ``data`` (received from this stream) back: the next ``receive_some`` returns it first."""
        self._unread = bytes(data) + self._unread

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        limit = DEFAULT_RECEIVE if max_bytes is None else operator.index(max_bytes)
        if limit < 1:
            raise ValueError("max_bytes must be >= 1")
        if self._receiving:
            raise trio.BusyResourceError("another task is already receiving on this TLS stream")
        self._receiving = True
        try:
            self._check()
            await trio.lowlevel.checkpoint_if_cancelled()
            yielded = False
            while not self._unread:
                if self._eof:
                    break
                if self._error is not None:
                    self._raise_error(self._error)
                self._unread = self._decrypt(limit)
                if self._out.pending and not self._send_lock.locked():
                    await self._flush()
                    yielded = True
                if not self._unread and not self._eof and self._error is None:
                    await self._fill()
                    yielded = True
            if not yielded:
                await trio.lowlevel.checkpoint()  # the data waits in _unread if this raises Cancelled
            if len(self._unread) <= limit:
                out, self._unread = self._unread, b""
            else:
                out, self._unread = self._unread[:limit], self._unread[limit:]
            return out
        finally:
            self._receiving = False

    async def receive_into(self, buffer: memoryview | bytearray) -> int:
        """Receive into ``buffer`` (writable, at least 1 byte): how many bytes came, 0 at the end of
        the stream. As ``receive_some``, a cancelled call loses nothing: once plaintext is in
        ``buffer`` the call returns without another chance of being cancelled."""
        if self._receiving:
            raise trio.BusyResourceError("another task is already receiving on this TLS stream")
        self._receiving = True
        try:
            self._check()
            await trio.lowlevel.checkpoint_if_cancelled()
            with memoryview(buffer) as whole, whole.cast("B") as view:
                if not view:
                    raise ValueError("receive_into needs a buffer of at least 1 byte")
                if self._unread:
                    got = min(len(view), len(self._unread))
                    view[:got] = self._unread[:got]
                    self._unread = self._unread[got:]
                    await trio.lowlevel.cancel_shielded_checkpoint()
                    return got
                while not self._eof:
                    if self._error is not None:
                        self._raise_error(self._error)
                    if self._out.pending and not self._send_lock.locked():
                        await self._flush()  # before decrypting: the plaintext must not wait behind it
                    got = self._decrypt_into(view)
                    if got:
                        await trio.lowlevel.cancel_shielded_checkpoint()
                        return got
                    if not self._eof and self._error is None:
                        await self._fill()
                await trio.lowlevel.cancel_shielded_checkpoint()
                return 0
        finally:
            self._receiving = False

    def _raise_error(self, e: ssl.SSLError) -> NoReturn:
        """A TLS error found while decrypting, now that the data before it has been handed out."""
        self._broke()
        raise trio.BrokenResourceError(f"TLS error: {_describe(e)}") from e

    def _decrypt_into(self, view: memoryview) -> int:
        """Decrypt every whole record OpenSSL holds into ``view``, as far as it goes; bytes written."""
        got = 0
        try:
            while got < len(view):
                n = self._ssl.read(len(view) - got, view[got:])
                if not n:
                    self._eof = True
                    break
                got += n
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLZeroReturnError:
            self._eof = True
        except ssl.SSLError as e:
            self._error = e  # raised once the data before it is handed out
        return got

    def _decrypt(self, limit: int) -> bytes:
        """Every whole record OpenSSL can decrypt now, up to ``limit`` bytes of plaintext."""
        parts: list[bytes] = []
        got = 0
        try:
            while got < limit:
                part = self._ssl.read(min(limit - got, TLS_RECORD))
                if not part:
                    self._eof = True
                    break
                parts.append(part)
                got += len(part)
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLZeroReturnError:
            self._eof = True
        except ssl.SSLError as e:
            self._error = e  # raised once the data before it is handed out
        return parts[0] if len(parts) == 1 else b"".join(parts)

    # ------------------------------------------------------------------------------ closing
    async def aclose(self) -> None:
        """Send close_notify if the stream is healthy and idle, then close the transport."""
        if self._state is _CLOSED:
            await trio.lowlevel.checkpoint()
            return
        healthy = self._state is _OK
        self._state = _CLOSED
        self._unread = b""
        try:
            if healthy and not self._send_lock.locked():
                try:
                    self._ssl.unwrap()
                except (ssl.SSLWantReadError, ssl.SSLError):
                    pass  # our close_notify is queued; we do not wait for the peer's
                data = self._out.read()
                if data:
                    with trio.move_on_after(ALERT_TIMEOUT):
                        await self.transport_stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.BusyResourceError):
            pass
        finally:
            await self.transport_stream.aclose()


class TlsConnector:
    """Dials peers over TLS 1.3 and returns streams authenticated as them (``links.Connector``).

    ``peers`` maps party id to the address to dial; it is a public dict, so a caller that learns the
    real ports late (``LocalTls``) or routes through a proxy (tests) may update it. ``stats`` counts
    ``connected`` streams and ``refused`` ones by reason (``refused_by_peer`` when the listener closed
    on us after the handshake).
    """

    def __init__(
        self,
        me: int,
        peers: dict[int, Address],
        tls: TlsFiles,
        *,
        handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
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
        self._ctx = client_context(tls)

    def reload(self) -> None:
        """Re-read certificate, key and CA from disk; later connections use them.

        On a ``ConfigError`` (missing file, key that does not match) the old files stay in use, so a
        botched certificate renewal does not cut a running party off from its peers.
        """
        self._ctx = client_context(self.tls)
        log.info("tls_reloaded", party=self.me, side="dialer", cert=str(self.tls.cert))

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
        """TCP connect to ``peer``, TLS 1.3 handshake, check that its certificate names ``peer``, and
        wait for its first bytes (its acceptance of us). ``PeerAuthError`` when either side refuses
        the other's certificate or id; ``ConnectionError`` / ``OSError`` when the network fails."""
        addr = self.peers.get(peer)
        if addr is None:
            raise ConfigError(f"party {self.me} has no address for party {peer}")
        remote = f"{addr.host}:{addr.port}"
        ctx = self._ctx
        tcp = await trio.open_tcp_stream(addr.host, addr.port)
        stream = TlsStream(tcp, ctx, server_side=False)
        ok = False
        try:
            _nodelay(tcp)
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

    ``serve`` binds ``listen`` (port 0: an ephemeral port, reported through ``task_status`` and
    ``port``) and accepts until cancelled. ``links`` is public so that a restarted party's new links
    can take over the listener. ``stats``: ``accepted``, ``refused`` (a dict reason -> count) and
    ``handshaking`` (handshakes in progress now).
    """

    def __init__(
        self,
        me: int,
        listen: Address,
        tls: TlsFiles,
        links: StreamLinks,
        *,
        handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
        max_handshakes: int = DEFAULT_MAX_HANDSHAKES,
        peer_hosts: Iterable[str] = (),
        max_per_source: int = DEFAULT_MAX_PER_SOURCE,
    ) -> None:
        if links.party != me:
            raise ValueError(f"listener of party {me} given the links of party {links.party}")
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
        self.max_per_source = max_per_source
        self._peer_names = tuple(peer_hosts)
        # slots only the peers' addresses may use
        self.reserved = max(1, max_handshakes // 4) if self._peer_names else 0
        self._peer_ips: set[str] = set()
        self._by_source: dict[str, int] = {}  # handshakes in progress per source address
        self._others = 0  # handshakes in progress from addresses that are not a peer's
        self._log_refusal = Throttle()

    def _context(self) -> ssl.SSLContext:
        ctx = server_context(self.tls)
        ctx.num_tickets = 0  # no resumption: every connection's certificate is verified afresh
        return ctx

    def reload(self) -> None:
        """Re-read certificate, key and CA from disk; later connections use them (old ones on error)."""
        self._ctx = self._context()
        log.info("tls_reloaded", party=self.me, side="listener", cert=str(self.tls.cert))

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Bind, report the bound port, and accept connections until cancelled."""
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
        async with trio.open_nursery() as nursery:
            for listener in listeners:
                nursery.start_soon(self._accept_loop, listener, nursery)
            task_status.started(self.port)

    async def _accept_loop(self, listener: trio.SocketListener, nursery: trio.Nursery) -> None:
        """Accept forever, one task per connection. Not ``trio.serve_listeners``: that closes each
        stream when its handler returns, and ours live on in the links after the handshake task ends."""
        async with listener:
            while True:
                try:
                    tcp = await listener.accept()
                except OSError as e:
                    if e.errno not in _ACCEPT_CAPACITY_ERRNOS:
                        raise
                    log.error("tls_accept_capacity", party=self.me, error=_describe(e))
                    await trio.sleep(_ACCEPT_BACKOFF)  # out of file descriptors: let some close
                    continue
                nursery.start_soon(self._handle, tcp)

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

    async def _handle(self, tcp: trio.SocketStream) -> None:
        """One inbound connection: handshake under a deadline, identify, hand over. Never raises."""
        source, remote = _remote(tcp)
        try:
            await self._admit(tcp, source, remote)
        except Exception as e:  # a bug here must cost one connection, not the listener
            _count(self.stats, "internal_error")
            log.error("tls_accept_failed", party=self.me, remote=remote, error=_describe(e))
            await trio.aclose_forcefully(tcp)

    async def _admit(self, tcp: trio.SocketStream, source: str, remote: str) -> None:
        if not self.links.accepting:
            self._refuse(remote, "not_serving", "this party's links are not running", quiet=True)
            await trio.aclose_forcefully(tcp)
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
            await trio.aclose_forcefully(tcp)
            return
        _nodelay(tcp)
        stream = TlsStream(tcp, self._ctx, server_side=True)
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


# ---------------------------------------------------------------------------------------------------
# n parties on loopback


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
