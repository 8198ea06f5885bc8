"""``TlsStream``: TLS 1.3 over any trio stream, built for the links' multi-megabyte frames.

The links move frames of many megabytes. ``TlsStream`` moves them in large slices instead of one
16 KiB TLS record per scheduler round trip, can decrypt straight into the reader's buffer
(``receive_into``), and sends the alert of a failed handshake so the peer learns the reason. It knows
nothing of parties, certificates or sockets: ``tls.TlsConnector`` and ``tls.TlsListener`` run it over
TCP in a deployment, and netsim runs the same class over its simulated streams.

``classify_tls_error`` and ``describe_error`` turn a failed handshake into a short stable reason and
a readable message, for the transport's stats and logs.
"""

from __future__ import annotations

import enum
import operator
import ssl
from typing import Any, NoReturn

import trio

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


def describe_error(e: BaseException) -> str:
    """The most telling message in an exception chain (the ``ssl`` error under trio's wrappers)."""
    err: BaseException = e
    while isinstance(err, trio.BrokenResourceError) and err.__cause__ is not None:
        err = err.__cause__
    if isinstance(err, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {err.verify_message}"
    if isinstance(err, ssl.SSLError) and getattr(err, "reason", None):
        return str(err.reason).lower().replace("_", " ")
    return f"{type(err).__name__}: {err}"[:300]


class _State(enum.Enum):
    NEW = "new"
    OK = "ok"
    BROKEN = "broken"
    CLOSED = "closed"


_NEW, _OK, _BROKEN, _CLOSED = _State.NEW, _State.OK, _State.BROKEN, _State.CLOSED


class _OneTask:
    """Raises ``BusyResourceError`` when a second task enters while one is inside (``with``): the
    stream supports one sender and one receiver at a time, and says so instead of interleaving."""

    __slots__ = ("_busy", "_what")

    def __init__(self, what: str) -> None:
        self._busy = False
        self._what = what

    def __enter__(self) -> None:
        if self._busy:
            raise trio.BusyResourceError(f"another task is already {self._what} this TLS stream")
        self._busy = True

    def __exit__(self, *exc: object) -> None:
        self._busy = False


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
        self._sending = _OneTask("sending on")
        self._receiving = _OneTask("receiving on")

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
        with self._sending, self._receiving:
            await self._handshake()
        self._state = _OK

    async def _handshake(self) -> None:
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
            raise trio.BrokenResourceError(f"TLS handshake failed: {describe_error(e)}") from e
        except BaseException:
            self._broke()
            raise

    # ------------------------------------------------------------------------------ data
    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        with self._sending:
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
                        raise trio.BrokenResourceError(f"TLS error: {describe_error(e)}") from e
                    await self._flush()

    async def wait_send_all_might_not_block(self) -> None:
        with self._sending:
            self._check()
            async with self._send_lock:
                await self.transport_stream.wait_send_all_might_not_block()

    def push_back(self, data: bytes) -> None:
        """Put ``data`` (received from this stream) back: the next ``receive_some`` returns it first."""
        self._unread = bytes(data) + self._unread

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        limit = DEFAULT_RECEIVE if max_bytes is None else operator.index(max_bytes)
        if limit < 1:
            raise ValueError("max_bytes must be >= 1")
        with self._receiving:
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

    async def receive_into(self, buffer: memoryview | bytearray) -> int:
        """Receive into ``buffer`` (writable, at least 1 byte): how many bytes came, 0 at the end of
        the stream. As ``receive_some``, a cancelled call loses nothing: once plaintext is in
        ``buffer`` the call returns without another chance of being cancelled."""
        with self._receiving:
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

    def _raise_error(self, e: ssl.SSLError) -> NoReturn:
        """A TLS error found while decrypting, now that the data before it has been handed out."""
        self._broke()
        raise trio.BrokenResourceError(f"TLS error: {describe_error(e)}") from e

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


__all__ = ["TlsStream", "classify_tls_error", "describe_error"]
