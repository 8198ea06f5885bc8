"""The control endpoint: a local Unix socket speaking length-prefixed msgpack RPC, and its clients.

Why a Unix socket and not a TCP port: who may submit a party's data and read its results is decided
by the file's owner and mode (0600: the daemon's user only; root can always connect), which is the
access control operators already know, with nothing to configure and no port to firewall. The peer's
uid is checked too (``SO_PEERCRED``), so a socket placed in a shared directory by mistake still
refuses other users.

Why the care at bind time: the socket is created under a ``umask`` of 0177, so it is never, even
briefly, accessible to others; a socket file left by a crashed daemon is removed, but only after a
connection attempt shows nobody serves it (two daemons on one socket would be a misconfiguration that
silently splits the clients between them, so the second one refuses to start instead).

Wire format: each message is a 4-byte big-endian length and that many bytes of msgpack, a map. The
client sends ``{"op": ..., ...}``; the daemon answers ``{"ok": true, ...}`` or ``{"ok": false,
"kind": ..., "error": "a sentence"}``. Lengths and msgpack containers are bounded before anything is
allocated; a bad length gets an error reply and the connection is closed; a bad body gets an error
reply. Nothing a client sends can take the daemon down. Operations (``actors.daemon``):

* ``status``: party id, links per peer, pool levels and rates, sessions, recent aborts, uptime;
* ``submit {program, session, input, [timeout], [reject]}``: run this party's part of a session and
  reply with its output (see ``PartyDaemon.submit``).

Integers beyond msgpack's 64 bits travel as decimal strings (``encode_number``), results too.

Large inputs: the chunked upload. ``input`` is a list (of numbers, or of rows); that is fine up to a
few MiB, but a table of 10^6 rows x 21 columns would be 190 MB of msgpack, far above ``MAX_REQUEST`` (8 MiB),
and a Python object per value at both ends. So ``spdz submit`` (``submit_request``) sends an input of
more than ``UPLOAD_THRESHOLD`` (4 MiB) of values as raw bytes, on one connection:

1. ``{"op": "upload_begin", "dtype": "f8" | "i8", "shape": [rows] | [rows, columns]}``: little-endian
   float64 (the decimal programs) or int64 (the integer ones); a 1-d shape is one column. The server
   refuses (``bad_request``, naming the limit) more than ``max_upload_values`` values in all
   (``spdz party --max-input-values``, default ``MAX_UPLOAD_VALUES`` = 2^26, what one session input
   takes), else reserves the buffer and answers ``{"ok": true, "values": n, "max_values": limit}``.
2. ``{"op": "upload_chunk", "data": <bin>}``, repeated: the next values, in row-major order, a whole
   number of them per chunk (``UPLOAD_CHUNK``, 4 MiB, well below ``MAX_REQUEST``); each is copied into
   the buffer at once and answered ``{"ok": true, "received": values so far}``. A chunk that does not
   fit the announced shape is a ``bad_request`` and discards the upload.
3. ``{"op": "submit", ..., "uploaded": true}`` (no ``input``): the server checks that every value
   arrived, and hands the handler the request with ``input`` = the array of the announced shape.

The upload belongs to the connection: the server holds at most one per connection (a new
``upload_begin`` replaces it), the next request with ``"uploaded": true`` consumes it, and a client
that disconnects at any point leaves nothing behind. The server never holds more than the buffer and
one chunk's request (its bytes, its msgpack object) at a time. Clients of ``call`` may still send any
input as a list, as before.
"""

from __future__ import annotations

import contextlib
import csv as _csv
import errno
import io
import json
import math
import os
import re
import socket
import stat
import struct
import sys
import warnings
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import structlog
import trio

from protocols.errors import ConfigError, SpdzError

log = structlog.get_logger("spdz.control")

HEADER = struct.Struct(">I")
# Checked on the header, before a byte of the body is read. A request is decoded whole, and a msgpack
# list of small integers costs a Python list entry (8 bytes) per input byte: 64 MiB of them took 562
# MB. Inputs above ``UPLOAD_THRESHOLD`` travel as raw bytes in ``UPLOAD_CHUNK``s instead, so no
# request needs to be larger than a chunk and its envelope; 8 MiB bounds a decode to ~64 MB.
MAX_REQUEST = 8 * 1024 * 1024
MAX_REPLY = 64 * 1024 * 1024
MAX_CONNECTIONS = 64
READ_TIMEOUT = 30.0  # to deliver one whole request once its header arrived
IDLE_TIMEOUT = 600.0  # between requests on one connection
FIRST_REQUEST_TIMEOUT = 5.0  # for a new connection's first request: a silent client holds no slot long
STATUS_SLOTS = 1  # beyond max_connections, kept for small "status" requests (an operator's spdz status)
STATUS_MAX_REQUEST = 4096
SUN_PATH_MAX = 107
_INT64 = (-(1 << 63), (1 << 63) - 1)
MAX_UPLOAD_VALUES = 1 << 26  # per submit (spdz party --max-input-values): what one session input takes
MAX_UPLOAD_COLUMNS = 1 << 16
UPLOAD_DTYPES = {"f8": np.dtype("<f8"), "i8": np.dtype("<i8")}
UPLOAD_THRESHOLD = 4 << 20  # bytes of values: a larger input is uploaded in chunks
UPLOAD_CHUNK = 4 << 20  # bytes of values per upload_chunk request (well below MAX_REQUEST)
UPLOAD_TIMEOUT = 60.0  # for the daemon to acknowledge one upload request

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class ControlError(SpdzError):
    """The control socket could not be used: no daemon, no permission, or a malformed reply."""


class _BadRequest(Exception):
    """A request that cannot be parsed; ``fatal`` ones (bad length) end the connection."""

    def __init__(self, message: str, fatal: bool = False) -> None:
        super().__init__(message)
        self.fatal = fatal


# ---------------------------------------------------------------------------------------- encoding
def encode_number(v: int) -> int | str:
    """``v`` as msgpack can carry it: an int within 64 bits, else its decimal string."""
    return v if _INT64[0] <= v <= _INT64[1] else str(v)


def wire_safe(obj: Any) -> Any:
    """``obj`` with every value msgpack cannot carry made plain (big ints, numpy, fractions, tuples)."""
    if isinstance(obj, bool) or obj is None or isinstance(obj, (str, bytes, float)):
        return obj
    if isinstance(obj, (int, np.integer)):
        return encode_number(int(obj))
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, Fraction):
        return str(obj)
    if isinstance(obj, np.ndarray):
        return [wire_safe(v) for v in obj.tolist()]
    if isinstance(obj, dict):
        return {str(k): wire_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [wire_safe(v) for v in obj]
    return str(obj)


def pack_message(obj: dict[str, Any]) -> bytes:
    body = msgpack.packb(wire_safe(obj), use_bin_type=True)
    return HEADER.pack(len(body)) + body


def unpack_body(body: bytes, max_bytes: int) -> Any:
    """A message body, parsed with every msgpack container bounded by the message's own size."""
    try:
        return msgpack.unpackb(
            body,
            raw=False,
            strict_map_key=True,
            max_bin_len=max_bytes,
            max_str_len=max_bytes,
            max_array_len=max_bytes,
            max_map_len=1024,
            max_ext_len=0,
        )
    except Exception as e:  # msgpack raises several unrelated types on garbage
        raise _BadRequest(f"the message is not valid msgpack ({type(e).__name__})") from None


def error_reply(kind: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"ok": False, "kind": kind, "error": message, **extra}


# ---------------------------------------------------------------------------------------- server
def _socket_in_use(path: Path) -> bool:
    """True if something accepts connections on ``path`` (a live daemon), False if it is stale."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    probe.settimeout(2.0)
    try:
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        return False
    except OSError as e:
        if e.errno in (errno.ECONNREFUSED, errno.ENOENT):
            return False
        raise ConfigError(f"control socket {path}: cannot tell whether it is in use: {e.strerror}") from None
    finally:
        probe.close()
    return True


def bind_control_socket(path: Path) -> socket.socket:
    """A listening Unix socket at ``path``, mode 0600 from its creation; stale files are replaced.

    Raises ``ConfigError`` naming the path when the directory is missing, the name is too long for
    a socket address, a non-socket file is in the way, or another daemon serves there.
    """
    path = Path(path)
    if len(os.fsencode(path)) > SUN_PATH_MAX:
        raise ConfigError(
            f"control socket path {path} is {len(os.fsencode(path))} bytes; Unix sockets allow "
            f"{SUN_PATH_MAX}: set a shorter control_socket in the config"
        )
    if not path.parent.is_dir():
        raise ConfigError(f"control socket directory {path.parent} does not exist")
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(st.st_mode):
            raise ConfigError(f"control socket path {path} exists and is not a socket; refusing to remove it")
        if _socket_in_use(path):
            raise ConfigError(
                f"another daemon is already serving the control socket {path}; stop it first "
                "(two daemons of one party would split its clients)"
            )
        os.unlink(path)
        log.info("stale_control_socket_removed", path=str(path))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    old = os.umask(0o177)  # the socket is born 0600: never briefly reachable by others
    try:
        sock.bind(str(path))
    except OSError as e:
        sock.close()
        raise ConfigError(f"cannot bind control socket {path}: {e.strerror}") from None
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(128)
    return sock


def _peer_uid(sock: Any) -> int | None:
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except (OSError, AttributeError):
        return None
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid


class ControlServer:
    """Serves ``handler`` on a Unix socket (see the module docstring for format and limits)."""

    def __init__(
        self,
        path: Path,
        handler: Handler,
        *,
        max_request: int = MAX_REQUEST,
        max_connections: int = MAX_CONNECTIONS,
        read_timeout: float = READ_TIMEOUT,
        idle_timeout: float = IDLE_TIMEOUT,
        first_request_timeout: float = FIRST_REQUEST_TIMEOUT,
        max_upload_values: int = MAX_UPLOAD_VALUES,
    ) -> None:
        self.path = Path(path)
        self.handler = handler
        self.max_request = max_request
        self.max_upload_values = max_upload_values
        self._uploads: weakref.WeakSet[_Upload] = weakref.WeakSet()
        self.max_connections = max_connections
        self.read_timeout = read_timeout
        self.idle_timeout = idle_timeout
        self.first_request_timeout = first_request_timeout
        self.connections = 0
        self.status_connections = 0
        self._status_waiting: deque[trio.CancelScope] = deque()  # status-slot holders yet to speak
        self.in_flight = 0
        self._idle = trio.Event()
        self._idle.set()
        self._sock: socket.socket | None = None
        self._inode: tuple[int, int] | None = None

    def bind(self) -> None:
        """Bind now (synchronously), so that start-up fails early and clearly if it cannot."""
        if self._sock is None:
            self._sock = bind_control_socket(self.path)
            st = os.stat(self.path)
            self._inode = (st.st_dev, st.st_ino)

    async def serve(self, *, task_status: trio.TaskStatus[Path] = trio.TASK_STATUS_IGNORED) -> None:
        """Accept clients until cancelled; the socket file is removed on the way out."""
        self.bind()
        assert self._sock is not None
        listener = trio.SocketListener(trio.socket.from_stdlib_socket(self._sock))
        self._sock = None  # the listener owns it now
        try:
            async with listener, trio.open_nursery() as nursery:
                log.info("control_listening", path=str(self.path))
                task_status.started(self.path)
                while True:
                    try:
                        stream = await listener.accept()
                    except OSError as e:  # EMFILE and friends: back off, keep serving
                        log.warning("control_accept_failed", error=str(e))
                        await trio.sleep(0.1)
                        continue
                    nursery.start_soon(self._connection, stream)
        finally:
            self._unlink()

    def close(self) -> None:
        """Give up the socket: close it if ``serve`` never took it over, and remove the file."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._unlink()

    def _unlink(self) -> None:
        """Remove the socket file if it is still ours (a successor may have replaced it)."""
        with contextlib.suppress(OSError):
            st = os.lstat(self.path)
            if (st.st_dev, st.st_ino) == self._inode:
                os.unlink(self.path)

    def uploads_held(self) -> tuple[int, int]:
        """How many uploads are alive (begun, not yet given to a request) and their bytes."""
        ups = list(self._uploads)
        return len(ups), sum(u.buf.nbytes for u in ups)

    async def drain(self, timeout: float) -> None:
        """Wait (at most ``timeout`` s) until no request is being answered: replies get written."""
        with trio.move_on_after(timeout):
            while self.in_flight:
                await self._idle.wait()

    async def _connection(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        try:
            uid = _peer_uid(stream.socket)
            if uid is not None and uid not in (os.getuid(), 0):
                log.warning("control_peer_refused", uid=uid)
                await self._reply(stream, error_reply("denied", f"uid {uid} may not use this control socket"))
                return
            if self.connections > self.max_connections:
                await self._status_only(stream)
                return
            await self._requests(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError):
            pass  # the client went away or stalled: nothing to answer
        finally:
            self.connections -= 1
            await trio.aclose_forcefully(stream)

    async def _status_only(self, stream: trio.SocketStream) -> None:
        """A connection beyond ``max_connections``: served only if it asks for ``status`` at once, in
        a small request, on the reserved status slot; otherwise told ``busy``. A newcomer takes the
        slot from a holder that has not said anything yet (an operator's ``spdz status`` speaks at
        once), so a flood of idle or slow clients never locks the operator out of ``spdz status``."""
        busy = error_reply("busy", "too many control connections; try again")
        if self.status_connections >= STATUS_SLOTS:
            if not self._status_waiting:
                await self._reply(stream, busy)
                return
            self._status_waiting.popleft().cancel()  # it is told busy and gives the slot up
        self.status_connections += 1
        scope = trio.CancelScope()
        self._status_waiting.append(scope)
        try:
            buf = bytearray()
            body = None
            with scope, trio.move_on_after(self.first_request_timeout):
                head = await _read_exactly(stream, buf, HEADER.size)
                if scope in self._status_waiting:
                    self._status_waiting.remove(scope)  # it spoke: no longer evictable
                if head is not None and 1 <= HEADER.unpack(head)[0] <= STATUS_MAX_REQUEST:
                    body = await _read_exactly(stream, buf, HEADER.unpack(head)[0])
            req = None
            if body is not None:
                try:
                    req = unpack_body(bytes(body), len(body))
                except _BadRequest:
                    req = None
            if not isinstance(req, dict) or req.get("op") != "status" or set(req) - {"op"}:
                await self._reply(stream, busy)
                return
            await self._reply(stream, await self._dispatch(bytes(body), len(body)))  # type: ignore[arg-type]
        finally:
            if scope in self._status_waiting:
                self._status_waiting.remove(scope)
            self.status_connections -= 1

    async def _requests(self, stream: trio.SocketStream) -> None:
        buf = bytearray()
        conn = _Connection()  # this connection's upload, if any: it dies with the connection
        first = True
        while True:
            # a connection that has sent nothing yet gets a short time to speak: idle clients that
            # never send hold no slot for long; between requests the longer idle timeout applies
            wait = min(self.first_request_timeout, self.idle_timeout) if first else self.idle_timeout
            first = False
            head = None  # stays None when the wait runs out
            with trio.move_on_after(wait):
                head = await _read_exactly(stream, buf, HEADER.size)
            if head is None:  # idle too long, or a clean end of file between requests
                return
            (size,) = HEADER.unpack(head)
            if not 1 <= size <= self.max_request:
                await self._reply(
                    stream,
                    error_reply(
                        "bad_request", f"request of {size} bytes: the limit is 1..{self.max_request} bytes"
                    ),
                )
                return
            with trio.fail_after(self.read_timeout):
                body = await _read_exactly(stream, buf, size)
            if body is None:
                return
            self.in_flight += 1
            self._idle = trio.Event()
            try:
                reply = await self._dispatch(bytes(body), size, conn)
                del body
                await self._reply(stream, reply)
            finally:
                self.in_flight -= 1
                if not self.in_flight:
                    self._idle.set()

    async def _dispatch(self, body: bytes, size: int, conn: _Connection | None = None) -> dict[str, Any]:
        conn = conn or _Connection()
        try:
            req = unpack_body(body, size)
            del body
            if not isinstance(req, dict) or not isinstance(req.get("op"), str):
                raise _BadRequest('a request is a map with a string "op"')
            if req["op"] == "upload_begin":
                return self._upload_begin(req, conn)
            if req["op"] == "upload_chunk":
                return self._upload_chunk(req, conn)
            if "uploaded" in req:
                self._take_upload(req, conn)
        except _BadRequest as e:
            return error_reply("bad_request", str(e))
        try:
            return await self.handler(req)
        except Exception as e:  # a bug in one operation must not take the endpoint down
            log.error("control_handler_failed", op=req.get("op"), error=f"{type(e).__name__}: {e}")
            return error_reply("internal", f"internal error: {type(e).__name__}: {e}")

    # ------------------------------------------------------------------------------------ uploads
    def _upload_begin(self, req: dict[str, Any], conn: _Connection) -> dict[str, Any]:
        conn.upload = None  # a new upload replaces an unfinished one
        dtype, shape = req.get("dtype"), req.get("shape")
        if set(req) - {"op", "dtype", "shape"}:
            raise _BadRequest(f"unknown upload_begin fields {sorted(set(req) - {'op', 'dtype', 'shape'})}")
        if dtype not in UPLOAD_DTYPES:
            raise _BadRequest(f"upload dtype must be one of {sorted(UPLOAD_DTYPES)}")
        if (
            not isinstance(shape, list)
            or len(shape) not in (1, 2)
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape)
            or (len(shape) == 2 and shape[1] > MAX_UPLOAD_COLUMNS)
        ):
            raise _BadRequest(
                f"upload shape must be [rows] or [rows, columns] of positive integers "
                f"(columns at most {MAX_UPLOAD_COLUMNS})"
            )
        total = math.prod(shape)
        if total > self.max_upload_values:
            raise _BadRequest(
                f"an upload of {total} values is above this daemon's limit of {self.max_upload_values} "
                "values per submit (spdz party --max-input-values)"
            )
        try:
            up = _Upload(UPLOAD_DTYPES[dtype], tuple(shape))
        except MemoryError:
            return error_reply("busy", f"no memory for an upload of {total} values; try again later")
        conn.upload = up
        self._uploads.add(up)
        return {"ok": True, "values": total, "max_values": self.max_upload_values}

    def _upload_chunk(self, req: dict[str, Any], conn: _Connection) -> dict[str, Any]:
        up = conn.upload
        data = req.get("data")
        if up is None:
            raise _BadRequest("upload_chunk without upload_begin on this connection")
        if set(req) != {"op", "data"} or not isinstance(data, bytes):
            conn.upload = None
            raise _BadRequest('upload_chunk takes exactly "data": the values as bytes')
        k, rest = divmod(len(data), up.buf.itemsize)
        if rest or up.received + k > up.buf.size:
            conn.upload = None
            raise _BadRequest(
                f"upload chunk of {len(data)} bytes does not fit: {up.received} of {up.buf.size} values "
                f"of {up.buf.itemsize} bytes received; the upload is discarded"
            )
        up.buf[up.received : up.received + k] = np.frombuffer(data, dtype=up.buf.dtype)
        up.received += k
        return {"ok": True, "received": up.received}

    def _take_upload(self, req: dict[str, Any], conn: _Connection) -> None:
        """Give ``req`` this connection's finished upload as its ``input`` (and forget it here)."""
        up, conn.upload = conn.upload, None
        if req.pop("uploaded") is not True:
            raise _BadRequest('"uploaded" must be true')
        if "input" in req:
            raise _BadRequest('a request has "input" or "uploaded", not both')
        if up is None:
            raise _BadRequest("no upload on this connection: send upload_begin and upload_chunk first")
        if up.received != up.buf.size:
            raise _BadRequest(f"the upload is incomplete: {up.received} of {up.buf.size} values arrived")
        req["input"] = up.buf.reshape(up.shape)
        self._uploads.discard(up)

    async def _reply(self, stream: trio.SocketStream, reply: dict[str, Any]) -> None:
        data = pack_message(reply)
        if len(data) - HEADER.size > MAX_REPLY:
            data = pack_message(error_reply("internal", f"reply of {len(data)} bytes is too large to send"))
        await stream.send_all(data)


class _Upload:
    """One connection's upload: a buffer of the announced size (its pages are committed as chunks
    fill them), the values received so far, and the shape to give the finished array."""

    __slots__ = ("__weakref__", "buf", "received", "shape")

    def __init__(self, dtype: np.dtype[Any], shape: tuple[int, ...]) -> None:
        self.buf = np.empty(math.prod(shape), dtype=dtype)
        self.shape = shape
        self.received = 0


class _Connection:
    """Per-connection state of the control server: the upload in progress, if any."""

    __slots__ = ("upload",)

    def __init__(self) -> None:
        self.upload: _Upload | None = None


async def _read_exactly(stream: trio.abc.ReceiveStream, buf: bytearray, n: int) -> bytearray | None:
    """``n`` bytes from ``stream`` (keeping any surplus in ``buf``), or None at a clean end of file."""
    while len(buf) < n:
        chunk = await stream.receive_some(max(65536, n - len(buf)))
        if not chunk:
            if buf:
                raise trio.BrokenResourceError("the client closed the connection mid-request")
            return None
        buf += chunk
    out = buf[:n]
    del buf[:n]
    return out


# ---------------------------------------------------------------------------------------- client
def _connect(path: Path) -> socket.socket:
    """A connected socket to the daemon at ``path``; every failure a ``ControlError`` saying why."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    sock.settimeout(10.0)
    try:
        sock.connect(str(path))
    except FileNotFoundError:
        sock.close()
        raise ControlError(
            f"no control socket at {path}: is the daemon (spdz party --config ...) running?"
        ) from None
    except PermissionError:
        sock.close()
        raise ControlError(
            f"permission denied on {path}: run this as the daemon's user (the socket is mode 0600)"
        ) from None
    except ConnectionRefusedError:
        sock.close()
        raise ControlError(f"nothing is serving {path} (a stale socket: the daemon is not running)") from None
    except OSError as e:
        sock.close()
        raise ControlError(f"cannot connect to {path}: {e.strerror or e}") from None
    return sock


def _exchange(
    sock: socket.socket, path: Path, request: dict[str, Any], timeout: float | None
) -> dict[str, Any]:
    """One request and its reply on a connected socket (``timeout``: for the reply; None: no limit)."""
    sock.settimeout(timeout)
    try:
        sock.sendall(pack_message(request))
        head = _recv_exactly(sock, HEADER.size)
        (size,) = HEADER.unpack(head)
        if not 1 <= size <= MAX_REPLY:
            raise ControlError(f"the daemon sent a reply of {size} bytes (limit {MAX_REPLY})")
        reply = unpack_body(_recv_exactly(sock, size), size)
    except TimeoutError:
        raise ControlError(f"no reply from the daemon at {path} within {timeout} s") from None
    except _BadRequest as e:
        raise ControlError(f"malformed reply from the daemon: {e}") from None
    except OSError as e:
        raise ControlError(f"the connection to {path} failed: {e.strerror or e}") from None
    if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
        raise ControlError("malformed reply from the daemon (not a map with 'ok')")
    return reply


def call(path: Path, request: dict[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
    """Send one request to the daemon at ``path`` and return its reply (blocking; for the CLI).

    ``timeout`` bounds the wait for the reply (None: wait as long as the session takes).
    """
    path = Path(path)
    sock = _connect(path)
    try:
        return _exchange(sock, path, request, timeout)
    finally:
        sock.close()


class UploadRefused(ControlError):
    """The daemon refused an upload (too large, out of memory): ``reply`` is its error reply."""

    def __init__(self, reply: dict[str, Any]) -> None:
        super().__init__(str(reply.get("error", "upload refused")))
        self.reply = reply


def upload_dtype(values: np.ndarray) -> str | None:
    """The upload dtype of ``values`` (``"f8"``, ``"i8"``), or None if they travel as a list only."""
    if values.dtype.kind == "f":
        return "f8"
    if values.dtype.kind == "i" or (values.dtype.kind == "u" and values.dtype.itemsize < 8):
        return "i8"
    return None


def submit_request(
    path: Path,
    request: dict[str, Any],
    values: np.ndarray | None,
    *,
    timeout: float | None = None,
    threshold: int | None = None,
    chunk_bytes: int | None = None,
) -> dict[str, Any]:
    """Send ``request`` (a submit) with ``values`` as its input, and return the daemon's reply.

    Up to ``threshold`` bytes of values (default ``UPLOAD_THRESHOLD``), and any values that are not
    int64/float64 (Python ints beyond 64 bits), travel in the request as a list (of rows, for a
    table). A larger input is uploaded first on the same connection, ``chunk_bytes`` per request
    (default ``UPLOAD_CHUNK``; see the module docstring), and the submit then says ``"uploaded":
    true``. ``UploadRefused`` if the daemon refuses the upload.
    """
    path = Path(path)
    threshold = UPLOAD_THRESHOLD if threshold is None else threshold
    chunk_bytes = UPLOAD_CHUNK if chunk_bytes is None else chunk_bytes
    if values is None:
        return call(path, request, timeout=timeout)
    dtype = upload_dtype(values)
    if dtype is None or values.nbytes <= threshold or values.ndim not in (1, 2):
        return call(path, {**request, "input": values}, timeout=timeout)
    sock = _connect(path)
    try:
        begin = {"op": "upload_begin", "dtype": dtype, "shape": list(values.shape)}
        reply = _exchange(sock, path, begin, UPLOAD_TIMEOUT)
        if not reply["ok"]:
            raise UploadRefused(reply)
        flat = values.reshape(-1)
        step = max(1, chunk_bytes // 8)
        for i in range(0, flat.size, step):
            data = np.ascontiguousarray(flat[i : i + step], dtype=UPLOAD_DTYPES[dtype]).tobytes()
            reply = _exchange(sock, path, {"op": "upload_chunk", "data": data}, UPLOAD_TIMEOUT)
            if not reply["ok"]:
                raise UploadRefused(reply)
        return _exchange(sock, path, {**request, "uploaded": True}, timeout)
    finally:
        sock.close()


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    parts = []
    while n:
        chunk = sock.recv(min(n, 1 << 20))
        if not chunk:
            raise ControlError("the daemon closed the connection before replying (did it stop?)")
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)


class InputFileError(ValueError):
    """An input file cannot be read as numbers; the message names the file, the line and the value."""

    def __init__(self, message: str, category: str) -> None:
        super().__init__(message)
        self.category = category  # what the daemon is told (and logs): never the offending value


READ_BLOCK = 1 << 22  # bytes the reader takes from the file at a time (cut at the last newline)
MAX_LINE = 1 << 24  # a line longer than this is an error, not a reason to read the whole file
MAX_DIGITS = 60  # no field's bound has more: a longer integer is out of range (int() may refuse it)
_INT_RE = re.compile(r"[+-]?[0-9]+", re.ASCII)
_DEC_RE = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
_NONFINITE = {"nan", "inf", "infinity"}
_CSV_HINT = " (a CSV header? give the column with --column NAME)"
_INTEGER_HINT = (
    ": the built-in programs take integers (scale decimals first, e.g. euros to cents; the stats_*, "
    "linreg_* and logreg_* programs take decimals)"
)


def _shown(text: str) -> str:
    """A value as quoted in an error: at most 40 characters, and the length of a longer one."""
    return repr(text) if len(text) <= 40 else f"{text[:40]!r}... ({len(text)} characters)"


def _value(text: str, where: str, file: Path, *, integers: bool, bound: float | None, hint: str = "") -> Any:
    """``text`` as an int (``integers``) or a float within ``bound``; else an ``InputFileError``."""
    t = text.strip()
    if integers and _INT_RE.fullmatch(t):
        if len(t.lstrip("+-")) > MAX_DIGITS:
            raise InputFileError(
                f"{file}: {where}: {_shown(t)} is out of range: it has more than {MAX_DIGITS} digits",
                "out of range",
            )
        v: Any = int(t)
    elif t.lower().lstrip("+-") in _NONFINITE:
        raise InputFileError(f"{file}: {where}: {_shown(t)} is not a finite number", "non-numeric value")
    elif not _DEC_RE.fullmatch(t):
        raise InputFileError(f"{file}: {where}: {_shown(t)} is not a number{hint}", "non-numeric value")
    elif integers:
        raise InputFileError(
            f"{file}: {where}: {_shown(t)} is not an integer{_INTEGER_HINT}", "non-integer value"
        )
    else:
        v = float(t)  # any number of digits; beyond float64's range it is inf
    if bound is not None and not abs(v) <= bound:
        limit = f"2^{math.log2(bound):g}" if bound == 2.0 ** round(math.log2(bound)) else str(bound)
        raise InputFileError(
            f"{file}: {where}: {_shown(t)} is out of range: |x| must be at most {limit}", "out of range"
        )
    if isinstance(v, float) and not math.isfinite(v):
        raise InputFileError(f"{file}: {where}: {_shown(t)} is beyond a float's range", "out of range")
    return v


def _columns_wanted(columns: str | Sequence[str] | None, names: list[str]) -> list[str] | None:
    """``--column``'s names: one name, or several separated by commas (an exact header name wins)."""
    if columns is None:
        return None
    if isinstance(columns, str):
        if columns.strip() in names:
            return [columns.strip()]
        columns = columns.split(",")
    wanted = [c.strip() for c in columns]
    if not wanted or any(not c for c in wanted):
        raise InputFileError(f"--column {','.join(wanted)!r}: empty column name", "no column")
    return wanted


class TableReader:
    """This party's input file, read in blocks of ``chunk_bytes`` and parsed block by block.

    Formats: (a) one number per line; (b) CSV with a header row, all its columns or the ones named by
    ``columns`` (a list, or one string: a header name, or names separated by commas). ``csv``: True
    or False forces the format; None (``spdz submit``) takes a file as CSV when ``columns`` is given or
    its first non-blank line has a comma. Blank lines are skipped; a UTF-8 byte order mark is allowed.

    ``integers``: the values must be integers (the built-in ``sum``/``mean``/``bench_mul``): int64
    chunks, or object chunks of Python ints beyond 64 bits. Else floats (the ``stats_*``, ``linreg_*``,
    ``logreg_*`` programs): float64 chunks. NaN and infinities are refused, and so is any value with
    ``|x| > bound`` (when given); at most ``limit`` values in all.

    Iterating yields one array per block, ``(rows, width)`` (``width``: the number of columns, 1 for
    a file of lines), so memory is one block plus one block's values; ``read`` assembles them. Each
    block is parsed by numpy (``loadtxt``'s C parser); only a block it refuses, or whose values fail a
    check, is parsed again line by line, which names the exact line, column and value of the first
    problem in an ``InputFileError`` (its ``category``, not the value, is what the daemon is told).
    """

    def __init__(
        self,
        path: Path | str,
        columns: str | Sequence[str] | None = None,
        *,
        integers: bool = False,
        bound: float | None = None,
        limit: int | None = None,
        csv: bool | None = None,
        chunk_bytes: int = READ_BLOCK,
    ) -> None:
        self.path = Path(path)
        self.columns = columns
        self.integers = integers
        self.bound = bound
        self.limit = limit
        self._csv = True if csv is None and columns is not None else csv
        self.csv = self._csv
        self.chunk_bytes = chunk_bytes
        self.names: list[str] | None = None  # the CSV columns read, once the header is parsed
        self.width = 1
        self.values = 0  # values read so far
        self.block_bytes = 0  # the length of the last block read
        self._header_width = 1
        self._index: list[int] = [0]
        self._header_done = False

    # ------------------------------------------------------------------------------------ blocks
    def _blocks(self) -> Iterator[tuple[bytes, int, int]]:
        """``(block, first line number, byte offset)``: whole lines, the last block maybe unterminated."""
        try:
            f = open(self.path, "rb")  # noqa: SIM115 (closed below; a generator)
        except FileNotFoundError:
            raise InputFileError(f"{self.path}: input file does not exist", "missing file") from None
        except OSError as e:
            raise InputFileError(
                f"{self.path}: cannot read input file: {e.strerror or e}", "unreadable file"
            ) from None
        with f:
            carry, line, offset = b"", 1, 0
            while True:
                try:
                    data = f.read(self.chunk_bytes)
                except OSError as e:
                    raise InputFileError(
                        f"{self.path}: cannot read input file: {e.strerror or e}", "unreadable file"
                    ) from None
                if data:
                    buf = carry + data if carry else data
                    cut = buf.rfind(b"\n") + 1
                    if not cut:
                        if len(buf) > MAX_LINE:
                            raise InputFileError(
                                f"{self.path}: line {line} is longer than {MAX_LINE} bytes", "line too long"
                            )
                        carry = buf
                        continue
                    block, carry = buf[:cut], buf[cut:]
                else:
                    block, carry = carry, b""
                if block:
                    yield block, line, offset
                    line += block.count(b"\n")
                    offset += len(block)
                if not data:
                    return

    def _text(self, block: bytes, offset: int) -> str:
        try:
            return block.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InputFileError(
                f"{self.path}: not UTF-8 text (byte {offset + e.start})", "not text"
            ) from None

    # ------------------------------------------------------------------------------------ header
    def _header(self, block: bytes, line: int, offset: int) -> tuple[bytes, int, int] | None:
        """Consume the header (CSV) or decide the format from the first non-blank line; the rest of
        ``block`` with its first line number and byte offset, or None if ``block`` is blank."""
        pos = 0
        while pos < len(block):
            end = block.find(b"\n", pos) + 1 or len(block)
            if block[pos:end].strip():
                break
            pos, line = end, line + 1
        else:
            return None
        first = self._text(block[pos:end], offset + pos).rstrip("\r\n")
        if self.csv is None:
            self.csv = "," in first
        self._header_done = True
        if not self.csv:
            return block[pos:], line, offset + pos
        header = next(_csv.reader([first]))
        names = [h.strip() for h in header]
        if self.columns is None and all(_DEC_RE.fullmatch(n) or _INT_RE.fullmatch(n) for n in names):
            raise InputFileError(
                f"{self.path}: line {line}: {_shown(first.strip())} is not a header row: a CSV file "
                "needs a header naming its columns (or give one number per line)",
                "no header",
            )
        wanted = _columns_wanted(self.columns, names)
        if wanted is None:
            index = list(range(len(names)))
        else:
            missing = [c for c in wanted if c not in names]
            if missing:
                which = ", ".join(repr(c) for c in missing)
                raise InputFileError(
                    f"{self.path}: no column{'s' if len(missing) > 1 else ''} {which} in the CSV header "
                    f"(columns: {', '.join(names)})",
                    "no column",
                )
            index = [names.index(c) for c in wanted]
        if self.integers and len(index) > 1:
            raise InputFileError(
                f"{self.path}: {len(index)} columns ({', '.join(names[i] for i in index)}), but the built-in "
                "programs take one column of integers: choose it with --column NAME",
                "several columns",
            )
        self.names = [names[i] for i in index]
        self._header_width = len(names)
        self._index = index
        self.width = len(index)
        return block[end:], line + 1, offset + end

    # ------------------------------------------------------------------------------------ parsing
    def __iter__(self) -> Iterator[np.ndarray]:
        self.csv, self._header_done, self.values = self._csv, False, 0  # each pass starts afresh
        for data, first_line, first_offset in self._blocks():
            block, line, offset = data, first_line, first_offset
            if offset == 0 and block.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte order mark
                block, offset = block[3:], 3
            if not self._header_done:
                rest = self._header(block, line, offset)
                if rest is None:
                    continue
                block, line, offset = rest
            if not block.strip():
                continue
            chunk = self._fast(block)
            if chunk is None:
                chunk = self._slow(self._text(block, offset), line)
            if chunk.shape[0] == 0:
                continue
            self.values += chunk.size
            self.block_bytes = len(data)
            if self.limit is not None and self.values > self.limit:
                raise InputFileError(f"{self.path}: more than {self.limit} numbers", "too many values")
            yield chunk
        if not self._header_done and self.csv:
            raise InputFileError(f"{self.path}: empty CSV file: no header row", "empty input")

    def _fast(self, block: bytes) -> np.ndarray | None:
        """The block by numpy's C parser, or None if anything in it needs a closer look."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "input contained no data" (blank lines only)
                arr = np.loadtxt(
                    io.BytesIO(block),
                    delimiter=",",
                    comments=None,
                    dtype=np.int64 if self.integers else np.float64,
                    usecols=self._index if self.csv else None,
                    ndmin=2,
                    encoding="utf-8",
                )
        except (ValueError, OverflowError):  # UnicodeDecodeError too: the slow path names the byte
            return None
        # every row has exactly the header's fields (usecols alone would accept extra ones)
        if block.count(b",") != arr.shape[0] * (self._header_width - 1) or arr.shape[1] != self.width:
            return None
        if self.bound is not None and arr.size:
            if self.integers:
                b = min(int(self.bound), (1 << 63) - 1)
                if arr.min() < -b or arr.max() > b:
                    return None
            elif not (arr.min() >= -self.bound and arr.max() <= self.bound):  # NaN fails both
                return None
        elif not self.integers and arr.size and not np.isfinite(arr).all():
            return None
        return arr

    def _slow(self, text: str, first_line: int) -> np.ndarray:
        """The block line by line: the exact line, column and value of the first problem, or its values."""
        rows: list[list[Any]] = []
        for k, raw in enumerate(text.split("\n")):
            line = first_line + k
            if not raw.strip():
                continue
            if not self.csv:
                hint = _CSV_HINT if not self.values and not rows else ""
                rows.append([self._one(raw, f"line {line}", hint)])
                continue
            try:
                cells = next(_csv.reader([raw.rstrip("\r")]))
            except _csv.Error as e:
                raise InputFileError(f"{self.path}: line {line}: not a CSV row ({e})", "not csv") from None
            if not any(c.strip() for c in cells):
                continue
            row = []
            assert self.names is not None
            for i, name in zip(self._index, self.names, strict=True):
                if i >= len(cells) or not cells[i].strip():
                    raise InputFileError(
                        f"{self.path}: line {line}: no value in column {name!r}", "missing value"
                    )
                row.append(self._one(cells[i], f"line {line}, column {name!r}"))
            if len(cells) != self._header_width:
                raise InputFileError(
                    f"{self.path}: line {line}: {len(cells)} values, but the header names "
                    f"{self._header_width} columns",
                    "wrong column count",
                )
            rows.append(row)
        if not self.integers:
            return np.asarray(rows, dtype=np.float64).reshape(-1, self.width)
        flat = [v for r in rows for v in r]
        small = not flat or (-(1 << 63) <= min(flat) and max(flat) < 1 << 63)
        return np.asarray(rows, dtype=np.int64 if small else object).reshape(-1, self.width)

    def _one(self, text: str, where: str, hint: str = "") -> Any:
        return _value(text, where, self.path, integers=self.integers, bound=self.bound, hint=hint)

    # ------------------------------------------------------------------------------------ assembly
    def read(self) -> np.ndarray:
        """The whole input: 1-d for one column (a file of lines, or one CSV column), else 2-d.

        Memory: the values plus one block. The buffer is sized from the file's length and the first
        block's rows (untouched pages of an over-estimate are never resident) and grows by half if
        the estimate was short.
        """
        try:
            size = os.stat(self.path).st_size
        except OSError:
            size = 0
        buf: np.ndarray | None = None
        n = 0
        for chunk in self:
            if buf is None:
                per_row = max(1.0, self.block_bytes / max(1, chunk.shape[0]))
                rows = max(chunk.shape[0], int(size / per_row * 1.05) + 1024)
                buf = np.empty((rows, self.width), dtype=chunk.dtype)
            if chunk.dtype == object and buf.dtype != object:
                buf = buf[:n].astype(object)
            if n + chunk.shape[0] > buf.shape[0]:
                grown = np.empty((max(n + chunk.shape[0], buf.shape[0] * 3 // 2), self.width), buf.dtype)
                grown[:n] = buf[:n]
                buf = grown
            buf[n : n + chunk.shape[0]] = chunk
            n += chunk.shape[0]
        if buf is None or n == 0:
            raise InputFileError(f"{self.path}: no numbers in the file (empty input)", "empty input")
        out = buf[:n] if buf.shape[0] <= 2 * n + 1024 else buf[:n].copy()
        return out.reshape(-1) if self.width == 1 else out


def read_table(
    path: Path | str,
    columns: str | Sequence[str] | None = None,
    **options: Any,
) -> np.ndarray:
    """This party's input as one array (``TableReader(path, columns, **options).read()``)."""
    return TableReader(path, columns, **options).read()


def read_numbers(path: Path, column: str | None = None, limit: int | None = None) -> list[int]:
    """One integer per line (blank lines skipped), or the CSV column ``column``, as Python ints.

    Every problem is an ``InputFileError`` naming the file and the line (or row) and the value.
    """
    from .programs import MAX_INPUT_ELEMENTS

    limit = MAX_INPUT_ELEMENTS if limit is None else limit
    reader = TableReader(path, column, integers=True, limit=limit, csv=column is not None)
    return reader.read().tolist()


# ---------------------------------------------------------------------------------------- CLI
def _control_path(config: str) -> Path:
    from .config import load_config

    return load_config(config, check_files=False).control_socket


def takes_decimals(program: str) -> bool:
    """True for the programs that take decimals (their ``prepare`` is an app's, ``_app_prepare``:
    ``stats_*``, ``linreg_*``, ``logreg_*``); False for the integer programs and unknown names."""
    from .programs import REGISTRY, UnknownProgram

    try:
        spec = REGISTRY.get(program)
    except UnknownProgram:
        return False
    return bool(getattr(spec.prepare, "decimals", False))


def read_input(
    path: Path | str, columns: str | Sequence[str] | None, program: str, field: str, n: int
) -> np.ndarray:
    """What ``spdz submit`` sends for ``program``: decimals within the apps' bound (``MAX_ABS``) for
    the programs that take them, else integers within the field's bound for ``n`` parties."""
    if takes_decimals(program):
        from protocols.apps.programs import MAX_ABS, MAX_ELEMENTS

        return read_table(path, columns, bound=MAX_ABS, limit=MAX_ELEMENTS)
    from protocols.field import get_field

    from .programs import MAX_INPUT_ELEMENTS, value_bound

    bound = value_bound(get_field(field), n)
    return read_table(path, columns, integers=True, bound=bound, limit=MAX_INPUT_ELEMENTS)


def dp_request(args: Any) -> dict[str, Any] | None:
    """The submit's declared DP cost from ``--dp DATASET --epsilon E --delta D [--mechanism M]
    [--bounds LO:HI]`` (every party must give the same), or None."""
    dataset = getattr(args, "dp", None)
    extra = [k for k in ("epsilon", "delta", "bounds", "mechanism") if getattr(args, k, None) is not None]
    if dataset is None:
        if extra:
            raise ValueError(f"--{extra[0]} needs --dp DATASET (the dataset whose budget pays for it)")
        return None
    if getattr(args, "epsilon", None) is None or getattr(args, "delta", None) is None:
        raise ValueError("--dp needs --epsilon and --delta: the program's total privacy cost")
    out: dict[str, Any] = {"dataset": dataset, "epsilon": args.epsilon, "delta": args.delta}
    if args.mechanism is not None:
        out["mechanism"] = args.mechanism
    if args.bounds is not None:
        lo, sep, hi = args.bounds.partition(":")
        try:
            if not sep:
                raise ValueError
            out["bounds"] = [float(lo), float(hi)]
        except ValueError:
            raise ValueError(f"--bounds takes LO:HI (two numbers), got {args.bounds!r}") from None
    return out


def cmd_submit(args: Any) -> int:
    """``spdz submit``: give this party's input to its daemon, wait, print the result."""
    from .config import load_config

    try:
        cfg = load_config(args.config, check_files=False)
    except ConfigError as e:
        print(f"spdz submit: {e}", file=sys.stderr)
        return 2
    path = cfg.control_socket
    local_error: Exception | None = None
    request: dict[str, Any] = {"op": "submit", "program": args.program, "session": args.session}
    if args.timeout is not None:
        request["timeout"] = args.timeout
    try:
        dp = dp_request(args)
    except ValueError as e:
        print(f"spdz submit: {e}", file=sys.stderr)
        return 2
    if dp is not None:
        request["dp"] = dp
    values: np.ndarray | None = None
    try:
        values = read_input(Path(args.input), args.column, args.program, cfg.field, cfg.n)
    except InputFileError as e:
        # The others still have to hear of it: the daemon joins the session only to abort it.
        local_error = e
        request["reject"] = e.category
    try:
        try:
            reply = submit_request(path, request, values)
        except UploadRefused as e:
            local_error = ControlError(f"the daemon refused the input: {e}")
            reply = call(path, {**request, "reject": "input refused by the daemon"})
    except ControlError as e:
        if local_error is not None:
            print(f"spdz submit: {local_error}", file=sys.stderr)
        print(f"spdz submit: {e}", file=sys.stderr)
        return 2
    if reply.get("warning"):
        print(f"spdz submit: WARNING: {reply['warning']}", file=sys.stderr)
    if local_error is not None:
        print(f"spdz submit: {local_error}", file=sys.stderr)
        if not reply.get("ok"):
            print(f"spdz submit: {reply.get('error')}", file=sys.stderr)
        return 1
    if not reply.get("ok"):
        print(f"spdz submit: {reply.get('error', 'failed (no reason given)')}", file=sys.stderr)
        return 2 if reply.get("kind") in ("bad_request", "unknown_program", "busy", "denied") else 1
    if args.json:
        print(json.dumps(reply.get("result"), indent=None))
    else:
        print(reply.get("text", reply.get("result")))
    return 0


def cmd_status(args: Any) -> int:
    """``spdz status``: the daemon's links, pools, sessions and aborts as a table (or JSON)."""
    try:
        reply = call(_control_path(args.config), {"op": "status"}, timeout=30.0)
    except (ConfigError, ControlError) as e:
        print(f"spdz status: {e}", file=sys.stderr)
        return 2
    if not reply.get("ok"):
        print(f"spdz status: {reply.get('error')}", file=sys.stderr)
        return 1
    st = reply["status"]
    print(json.dumps(st, indent=2, sort_keys=True) if args.json else render_status(st))
    return 0


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def _duration(s: float) -> str:
    s = int(s)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    fmt = "  ".join(f"{{:{w}}}" for w in widths)
    return ["  " + fmt.format(*headers).rstrip()] + ["  " + fmt.format(*r).rstrip() for r in rows]


def render_status(st: dict[str, Any]) -> str:
    """A readable multi-line view of a ``status`` reply."""
    out = [
        f"party {st['party']} of {st['parties']}   state {st['state']}   up {_duration(st['uptime'])}   "
        f"field {st['field']}   preprocessing {st['preprocessing']}",
        f"listen {st['listen']}   control {st['control']}   pid {st['pid']}",
        "",
        "links",
    ]
    rows = []
    for peer, link in sorted(st["links"].items(), key=lambda kv: int(kv[0])):
        state = "up" if link["up"] else ("LOST" if link["lost"] else "down")
        rows.append(
            [
                peer,
                link["address"],
                state,
                str(link["reconnects"]),
                _size(link["bytes_sent"]),
                _size(link["bytes_received"]),
                str(link["rejected_streams"]),
            ]
        )
    out += _table(["peer", "address", "state", "reconnects", "sent", "received", "rejected"], rows)
    pool = st.get("pool")
    out.append("")
    if pool is None:
        out.append("pools: none (insecure dealer: material is made per session)")
    else:
        ready = "ready" if pool["ready"] else "setting up (MAC key, base OTs)"
        held = f", {_size(pool['bytes'])} of {_size(pool['bytes_bound'])}" if "bytes" in pool else ""
        out.append(f"pools (epoch {pool['epoch']}, {ready}{held})")
        kinds = sorted(set(pool["levels"]) | set(pool["per_second"]) | set(pool.get("watermarks", {})))
        rows = []
        for k in kinds:
            marks = pool.get("watermarks", {}).get(k)
            rate = pool["per_second"].get(k)
            rows.append(
                [
                    k,
                    str(pool["levels"].get(k, 0)),
                    f"{marks[0]}..{marks[1]}" if marks else "-",
                    f"{rate:,.0f}" if rate else "-",
                    str(pool["generated"].get(k, 0)),
                ]
            )
        out += _table(["kind", "level", "watermarks", "made/s", "made"], rows)
        for f in pool.get("failures", [])[-3:]:
            out.append(f"  re-keyed: {f}")
    sess = st["sessions"]
    out += ["", f"sessions running: {sess['jobs']} submitted, {sess['offline']} offline"]
    if st["jobs"]:
        out += _table(
            ["session", "program", "state", "for"],
            [[j["session"], j["program"], j["state"], _duration(j["seconds"])] for j in st["jobs"]],
        )
    if st["recent"]:
        out += ["", "recent sessions"]
        out += _table(
            ["session", "program", "outcome", "took", "detail"],
            [
                [j["session"], j["program"], j["state"], f"{j['seconds']:.2f}s", (j.get("error") or "")[:80]]
                for j in st["recent"]
            ],
        )
    if st["aborts"]:
        out += ["", "recent aborts"]
        out += _table(["session", "reason"], [[a["session"], a["reason"][:100]] for a in st["aborts"]])
    return "\n".join(out)
