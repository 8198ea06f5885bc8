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
"""

from __future__ import annotations

import contextlib
import csv
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
from collections.abc import Awaitable, Callable
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
MAX_REQUEST = 64 * 1024 * 1024
MAX_REPLY = 64 * 1024 * 1024
MAX_CONNECTIONS = 64
READ_TIMEOUT = 30.0  # to deliver one whole request once its header arrived
IDLE_TIMEOUT = 600.0  # between requests on one connection
SUN_PATH_MAX = 107
_INT64 = (-(1 << 63), (1 << 63) - 1)

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
    ) -> None:
        self.path = Path(path)
        self.handler = handler
        self.max_request = max_request
        self.max_connections = max_connections
        self.read_timeout = read_timeout
        self.idle_timeout = idle_timeout
        self.connections = 0
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
                await self._reply(stream, error_reply("busy", "too many control connections; try again"))
                return
            await self._requests(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError):
            pass  # the client went away or stalled: nothing to answer
        finally:
            self.connections -= 1
            await trio.aclose_forcefully(stream)

    async def _requests(self, stream: trio.SocketStream) -> None:
        buf = bytearray()
        while True:
            with trio.move_on_after(self.idle_timeout):
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
                reply = await self._dispatch(bytes(body), size)
                await self._reply(stream, reply)
            finally:
                self.in_flight -= 1
                if not self.in_flight:
                    self._idle.set()

    async def _dispatch(self, body: bytes, size: int) -> dict[str, Any]:
        try:
            req = unpack_body(body, size)
            if not isinstance(req, dict) or not isinstance(req.get("op"), str):
                raise _BadRequest('a request is a map with a string "op"')
        except _BadRequest as e:
            return error_reply("bad_request", str(e))
        try:
            return await self.handler(req)
        except Exception as e:  # a bug in one operation must not take the endpoint down
            log.error("control_handler_failed", op=req.get("op"), error=f"{type(e).__name__}: {e}")
            return error_reply("internal", f"internal error: {type(e).__name__}: {e}")

    async def _reply(self, stream: trio.SocketStream, reply: dict[str, Any]) -> None:
        data = pack_message(reply)
        if len(data) - HEADER.size > MAX_REPLY:
            data = pack_message(error_reply("internal", f"reply of {len(data)} bytes is too large to send"))
        await stream.send_all(data)


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
def call(path: Path, request: dict[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
    """Send one request to the daemon at ``path`` and return its reply (blocking; for the CLI).

    ``timeout`` bounds the wait for the reply (None: wait as long as the session takes).
    """
    path = Path(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.settimeout(10.0)
        try:
            sock.connect(str(path))
        except FileNotFoundError:
            raise ControlError(
                f"no control socket at {path}: is the daemon (spdz party --config ...) running?"
            ) from None
        except PermissionError:
            raise ControlError(
                f"permission denied on {path}: run this as the daemon's user (the socket is mode 0600)"
            ) from None
        except ConnectionRefusedError:
            raise ControlError(
                f"nothing is serving {path} (a stale socket: the daemon is not running)"
            ) from None
        except OSError as e:
            raise ControlError(f"cannot connect to {path}: {e.strerror or e}") from None
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
    finally:
        sock.close()
    if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
        raise ControlError("malformed reply from the daemon (not a map with 'ok')")
    return reply


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


_INT_RE = re.compile(r"[+-]?[0-9]+")


def _number(text: str, where: str, file: Path, hint: str = "") -> int:
    t = text.strip()
    if _INT_RE.fullmatch(t):
        return int(t)
    try:
        f = float(t)
    except ValueError:
        shown = text.strip()[:40]
        raise InputFileError(
            f"{file}: {where}: {shown!r} is not a number{hint}", "non-numeric value"
        ) from None
    if not math.isfinite(f):
        raise InputFileError(f"{file}: {where}: {text.strip()!r} is not a finite number", "non-numeric value")
    raise InputFileError(
        f"{file}: {where}: {text.strip()!r} is not an integer: the built-in programs take integers "
        "(scale decimals first, e.g. euros to cents)",
        "non-integer value",
    )


def read_numbers(path: Path, column: str | None = None, limit: int | None = None) -> list[int]:
    """This party's input: one integer per line (blank lines skipped), or the CSV column ``column``.

    Every problem is an ``InputFileError`` naming the file and the line (or row) and the value.
    """
    from .programs import MAX_INPUT_ELEMENTS

    limit = MAX_INPUT_ELEMENTS if limit is None else limit
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputFileError(f"{path}: input file does not exist", "missing file") from None
    except OSError as e:
        raise InputFileError(
            f"{path}: cannot read input file: {e.strerror or e}", "unreadable file"
        ) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputFileError(f"{path}: not UTF-8 text (byte {e.start})", "not text") from None
    out: list[int] = []
    if column is None:
        for k, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            hint = " (a CSV header? give the column with --column NAME)" if not out and "," in line else ""
            out.append(_number(line, f"line {k}", path, hint))
            if len(out) > limit:
                raise InputFileError(f"{path}: more than {limit} numbers", "too many values")
    else:
        reader = csv.reader(io.StringIO(text, newline=""))
        try:
            header = next(reader)
        except StopIteration:
            raise InputFileError(f"{path}: empty CSV file: no header row", "empty input") from None
        names = [h.strip() for h in header]
        if column not in names:
            raise InputFileError(
                f"{path}: no column {column!r} in the CSV header (columns: {', '.join(names)})", "no column"
            )
        idx = names.index(column)
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            line = reader.line_num
            if idx >= len(row) or not row[idx].strip():
                raise InputFileError(f"{path}: line {line}: no value in column {column!r}", "missing value")
            out.append(_number(row[idx], f"line {line}, column {column!r}", path))
            if len(out) > limit:
                raise InputFileError(f"{path}: more than {limit} numbers", "too many values")
    if not out:
        raise InputFileError(f"{path}: no numbers in the file (empty input)", "empty input")
    return out


# ---------------------------------------------------------------------------------------- CLI
def _control_path(config: str) -> Path:
    from .config import load_config

    return load_config(config, check_files=False).control_socket


def cmd_submit(args: Any) -> int:
    """``spdz submit``: give this party's input to its daemon, wait, print the result."""
    try:
        path = _control_path(args.config)
    except ConfigError as e:
        print(f"spdz submit: {e}", file=sys.stderr)
        return 2
    local_error: InputFileError | None = None
    request: dict[str, Any] = {"op": "submit", "program": args.program, "session": args.session}
    if args.timeout is not None:
        request["timeout"] = args.timeout
    try:
        request["input"] = [encode_number(v) for v in read_numbers(Path(args.input), args.column)]
    except InputFileError as e:
        # The others still have to hear of it: the daemon joins the session only to abort it.
        local_error = e
        request["reject"] = e.category
    try:
        reply = call(path, request)
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
        return 2 if reply.get("kind") in ("bad_request", "busy", "denied") else 1
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
        out.append(f"pools (epoch {pool['epoch']}, {ready})")
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
