"""A reliable, ordered, exactly-once frame link to one peer, over any ``trio.abc.Stream``.

Why this exists: a TCP (or TLS) connection can reset in the middle of an MPC session, and the
session cannot simply be retried (its preprocessing is consumed, and a party that saw half a round
would have to be believed about which half). So the link, not the protocol, absorbs connection
loss: every frame gets a sequence number, the sender keeps what the peer has not acknowledged, and
after a reconnect both sides say where they are and resend from there. The protocol above sees one
ordered stream per peer that never loses or repeats a frame, or an abort when the peer is gone for
longer than ``peer_timeout``.

Wire format. A stream carries records, each a 4-byte big-endian length and then that many bytes:

* ``HELLO``  type 1, then a msgpack map ``{proto, v, party, peer, inc, peer_inc, next, base, sent}``:
  the sender's id, the id it believes it talks to, its incarnation, the peer incarnation its
  ``next`` refers to, ``next``, the sequence number it expects from the peer, and its send window:
  ``base``, the oldest frame it still holds, and ``sent``, one past the newest.
* ``DATA``   type 2, then an 8-byte big-endian ``seq``, then the frame, ``frames.encode_frame`` bytes.
* ``ACK``    type 3, then an 8-byte cumulative ``seq``: every record below it arrived. ACKs double as
  heartbeats on an idle connection.
* ``CHUNK``  type 4, then an 8-byte ``seq``, the 8-byte size of the whole frame, and a piece of it.
  A frame larger than ``CHUNK_BYTES`` travels as CHUNKs and a final DATA with the last piece, one
  sequence number each: every piece is acknowledged on its own, and after a reset the resend starts
  at the first piece the peer lacks, not at the start of the frame. (Resent whole, a frame larger
  than what a connection carries between two resets never arrived, and everything queued behind it
  waited.)
* ``SKIP``   type 5, then an 8-byte ``seq``: a frame the sender withdrew (its session aborted at the
  sender, so no peer needs it); it ends any frame whose pieces were arriving.

Sequence numbers count records (DATA, CHUNK, SKIP), not frames.

DATA and ACK use a fixed binary header rather than a msgpack envelope (the first design): a
multi-megabyte frame is then written as header + body without being re-packed, and a hostile header
is parsed with two slices. Large records cost one copy per side above the stream: the sender holds a
frame's payload by reference (``frames.frame_parts``) and writes it from there; the receiver reads a
large record straight into one buffer of the announced size (``receive_into`` when the stream has it,
as ``TlsStream`` does: the plaintext is decrypted in place), and ``decode_frame`` hands the payload on
as a view of that buffer.

Each side sends its HELLO first, then reads the peer's. The HELLO must be the first record, small
(``HELLO_MAX``), and name the authenticated peer id (supplied by the layer underneath: the TLS
transport checks the certificate; this module authenticates nothing by itself) and our id;
otherwise that stream is closed with a logged reason and the link carries on.

Incarnations. A party that restarts has lost its link state: it expects sequence 0 again and has
forgotten what it sent. Each side therefore sends its incarnation (its start time in ns, then 8
random bytes), and says which incarnation of the peer its ``next`` refers to. A peer whose
incarnation changed has restarted: we reset both directions to 0, drop the frames we still held for
its previous life, and report the peer lost, so the sessions that needed it abort instead of waiting
forever.

Resynchronisation. Both HELLOs together decide whether the two sides can resume: each side's resend
point must lie in the other's send window. Both sides evaluate the same rule on the same two HELLOs,
so they agree without another round. When it fails (one side met another incarnation of the peer in
between: a stray connection with the party's certificate, a duplicate daemon), both reset the link
to sequence 0 and report the peer lost, so the sessions that spanned the change abort, and the link
carries on. The newest incarnation wins: while a connection from one incarnation is up, a HELLO
from an older incarnation of the same party is refused (a duplicate daemon started by mistake takes
the link over while it lives, and the original gets it back the moment it leaves).

Connections. The party with the lower id dials (one link per pair, no simultaneous-open races) and
redials after any failure with exponential backoff and full jitter; the accepting side takes each new
authenticated stream, finishes its handshake, and only then replaces the running connection, so a
bad stream cannot take a good connection down.
"""

from __future__ import annotations

import random
import secrets
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np
import structlog
import trio

from protocols.concurrency import leaves
from protocols.errors import ConfigError, PeerAuthError, PeerLostError

from .frames import ABORT, MAX_FRAME_BYTES, Frame, FrameError, decode_frame, frame_parts
from .throttle import Throttle

log = structlog.get_logger("spdz.peerlink")

HELLO, DATA, ACK, CHUNK, SKIP = 1, 2, 3, 4, 5
PROTO = "trio-spdz-link"
VERSION = 2  # 2: the HELLO carries the send window (base, sent)
HELLO_MAX = 1024
INCARNATION_BYTES = 16

_HEAD = struct.Struct(">IBQ")  # length, type, seq: the whole of an ACK, the header of a DATA record
_SEQ = struct.Struct(">Q")
_SEQ_MAX = (1 << 64) - 1
RECV_CHUNK = 1 << 16
SMALL_RECORD = 1 << 16  # records up to this size are cut out of the read buffer; larger ones read whole
COALESCE_BYTES = 1 << 18  # small records are batched into one write up to this size
CHUNK_BYTES = 1 << 18  # frames larger than this travel in pieces of this size


@dataclass
class _Record:
    """One unacknowledged record: DATA (a whole frame, or the last piece of one), CHUNK or SKIP."""

    kind: int
    size: int  # bytes of ``parts``
    parts: Buffers
    session: str
    frame_kind: str
    total: int = 0  # CHUNK: the size of the whole frame


Buffers = tuple[bytes | memoryview, ...]  # one encoded frame, in pieces (``frames.frame_parts``)


def split_parts(parts: Buffers, size: int, chunk: int) -> list[Buffers]:
    """``parts`` (``size`` bytes) cut into pieces of ``chunk`` bytes (the last one shorter), as
    views: nothing is copied."""
    pieces: list[Buffers] = []
    cur: list[bytes | memoryview] = []
    room = chunk
    for p in parts:
        view = memoryview(p).cast("B")
        while len(view):
            take = view[:room]
            cur.append(take)
            view = view[len(take) :]
            room -= len(take)
            if room == 0:
                pieces.append(tuple(cur))
                cur, room = [], chunk
    if cur:
        pieces.append(tuple(cur))
    assert sum(len(b) for piece in pieces for b in piece) == size
    return pieces


Dialer = Callable[[int], Awaitable[tuple[trio.abc.Stream, int]]]
Deliver = Callable[[Frame], None]
LostCallback = Callable[[int, str], None]
Place = Callable[[int, bytes, int], "memoryview | None"]


class LinkProtocolError(Exception):
    """The peer sent records that break the link protocol; that stream is closed."""


class _PeerClosed(Exception):
    """The peer closed the stream (end of file)."""


@dataclass(frozen=True)
class LinkConfig:
    """Tuning of a peer link. Times are seconds (of trio's clock, so tests can run them virtually)."""

    max_unacked_frames: int = 4096
    max_unacked_bytes: int = 64 * 1024 * 1024
    ack_every: int = 64
    ack_bytes: int = 4 * 1024 * 1024
    ack_delay: float = 0.005
    heartbeat: float = 5.0
    idle_timeout: float = 30.0
    handshake_timeout: float = 10.0
    connect_timeout: float = 10.0
    backoff_initial: float = 0.05
    backoff_max: float = 5.0
    peer_timeout: float = 60.0
    max_frame_bytes: int = MAX_FRAME_BYTES

    def __post_init__(self) -> None:
        for name in ("max_unacked_frames", "max_unacked_bytes", "ack_every", "ack_bytes", "max_frame_bytes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"link option {name} must be positive")
        for name in ("ack_delay", "heartbeat", "handshake_timeout", "connect_timeout", "backoff_initial"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"link option {name} must be positive")
        if not self.heartbeat < self.idle_timeout:
            raise ConfigError("link option heartbeat must be shorter than idle_timeout")
        if not self.backoff_initial <= self.backoff_max:
            raise ConfigError("link option backoff_initial must not exceed backoff_max")
        if not self.peer_timeout > 0:
            raise ConfigError("link option peer_timeout must be positive")
        if self.max_frame_bytes > MAX_FRAME_BYTES:
            raise ConfigError(f"link option max_frame_bytes cannot exceed {MAX_FRAME_BYTES}")


@dataclass
class LinkStats:
    """Counters of one link, for metrics and for tests that check nothing was lost or repeated."""

    up: bool = False
    lost: bool = False
    connects: int = 0
    reconnects: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    frames_sent: int = 0  # frames accepted by send() (each once, however often it was written)
    frames_resent: int = 0  # writes of a frame already written on an earlier connection
    frames_delivered: int = 0
    duplicates_dropped: int = 0
    frames_withdrawn: int = 0  # replaced by SKIPs: their session aborted here before they arrived
    bad_frames: int = 0
    unacked_frames: int = 0
    unacked_bytes: int = 0
    rejected_streams: int = 0
    peer_restarts: int = 0
    resyncs: int = 0  # both sides started over at seq 0 (see "Resynchronisation")
    disconnects: int = 0  # connections we dropped because the peer misbehaved above the link
    last_received: float = 0.0  # trio time of the last bytes from the peer (0: none yet)


@dataclass
class _Hello:
    party: int
    peer: int
    inc: bytes
    peer_inc: bytes | None
    next: int
    base: int = 0  # the sender's send window when it sent the HELLO
    sent: int = 0


@dataclass
class _Conn:
    """One live connection: its stream, its reader, and how far its writer got."""

    stream: trio.abc.Stream
    reader: _RecordReader
    cursor: int  # next seq to write on this connection
    last_write: float = field(default=0.0)


def encode_hello(h: _Hello) -> bytes:
    body = msgpack.packb(
        {
            "proto": PROTO,
            "v": VERSION,
            "party": h.party,
            "peer": h.peer,
            "inc": h.inc,
            "peer_inc": h.peer_inc,
            "next": h.next,
            "base": h.base,
            "sent": h.sent,
        },
        use_bin_type=True,
    )
    return struct.pack(">IB", len(body) + 1, HELLO) + body


def decode_hello(body: bytes | memoryview) -> _Hello:
    """Parse a HELLO body (after the type byte); every field is checked, nothing is trusted."""
    try:
        obj = msgpack.unpackb(
            body,
            raw=False,
            strict_map_key=True,
            max_bin_len=64,
            max_str_len=64,
            max_array_len=0,
            max_map_len=16,
            max_ext_len=0,
        )
    except Exception as e:  # msgpack raises several unrelated types on garbage
        raise LinkProtocolError(f"HELLO is not valid msgpack ({type(e).__name__})") from None
    keys = {"proto", "v", "party", "peer", "inc", "peer_inc", "next", "base", "sent"}
    if not isinstance(obj, dict) or set(obj) != keys:
        raise LinkProtocolError("HELLO is not a map with the expected fields")
    if obj["proto"] != PROTO or obj["v"] != VERSION:
        raise LinkProtocolError("HELLO of another protocol or version")
    for k in ("party", "peer", "next", "base", "sent"):
        v = obj[k]
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= _SEQ_MAX:
            raise LinkProtocolError(f"HELLO field {k} is malformed")
    inc, peer_inc = obj["inc"], obj["peer_inc"]
    if not isinstance(inc, bytes) or len(inc) != INCARNATION_BYTES:
        raise LinkProtocolError("HELLO field inc is malformed")
    if peer_inc is not None and (not isinstance(peer_inc, bytes) or len(peer_inc) != INCARNATION_BYTES):
        raise LinkProtocolError("HELLO field peer_inc is malformed")
    if obj["base"] > obj["sent"]:
        raise LinkProtocolError("HELLO send window is empty the wrong way round")
    return _Hello(obj["party"], obj["peer"], inc, peer_inc, obj["next"], obj["base"], obj["sent"])


def new_incarnation(now_ns: int | None = None) -> bytes:
    """A party's incarnation: its start time (ns since the epoch, big-endian, so that byte order is
    time order: the newest incarnation wins) and 8 random bytes."""
    t = time.time_ns() if now_ns is None else now_ns
    return t.to_bytes(8, "big") + secrets.token_bytes(INCARNATION_BYTES - 8)


def resumable(mine: _Hello, theirs: _Hello) -> bool:
    """Whether two sides that exchanged ``mine`` and ``theirs`` can resume where they are: each side's
    resend point lies in the other's send window, after each has reset what it held for an
    incarnation of the other that is gone. Symmetric, so both sides decide alike."""

    def side(a: _Hello, b: _Hello) -> bool:  # a resends to b from where b's HELLO says
        reset = a.peer_inc is not None and a.peer_inc != b.inc
        base, sent = (0, 0) if reset else (a.base, a.sent)
        start = b.next if b.peer_inc == a.inc else 0
        return base <= start <= sent

    return side(mine, theirs) and side(theirs, mine)


class _RecordReader:
    """Cuts length-prefixed records out of a stream, checking each length before reading the body.

    A large record is received into one buffer of its announced size, left uninitialised
    (``numpy.empty``; ``bytearray(n)`` would write n zeros first): its pages are only touched as the
    bytes arrive, so a huge but in-range length costs only what the peer really sends.
    ``idle_timeout`` bounds each wait for bytes (a silent peer is a dead connection).
    """

    def __init__(self, stream: trio.abc.Stream, idle_timeout: float, stats: LinkStats) -> None:
        self._stream = stream
        self._buf = bytearray()
        self._idle = idle_timeout
        self._stats = stats
        self.placed = 0  # bytes of the last record's payload that went where ``place`` said

    async def _receive(self, max_bytes: int) -> bytes | bytearray:
        with trio.fail_after(self._idle):
            chunk = await self._stream.receive_some(max_bytes)
        if not chunk:
            raise _PeerClosed("the peer closed the connection")
        self._stats.bytes_received += len(chunk)
        self._stats.last_received = trio.current_time()
        return chunk

    async def read(self, limit: int, place: Place | None = None) -> tuple[int, memoryview]:
        """The next record's type and body (after the type byte); its length must be in 1..limit.

        ``place(kind, header, n)`` may name where a large record's ``n`` payload bytes (those after
        its ``header``: the seq, and a CHUNK's frame size) are to go; they are then received
        straight there, the body returned is the header alone, and ``placed`` says how many."""
        self.placed = 0
        while len(self._buf) < 4:
            self._buf += await self._receive(RECV_CHUNK)
        size = int.from_bytes(self._buf[:4], "big")
        if not 1 <= size <= limit:
            raise LinkProtocolError(f"record length {size} outside 1..{limit}")
        total = 4 + size
        if place is not None and size > SMALL_RECORD and len(self._buf) < total:
            while len(self._buf) < 5 + 2 * _SEQ.size:
                self._buf += await self._receive(RECV_CHUNK)
            kind = self._buf[4]
            head = 5 + (2 if kind == CHUNK else 1) * _SEQ.size
            header = bytes(self._buf[5:head])
            target = place(kind, header, total - head)
            if target is not None:
                await self._fill(target, head)
                self.placed = len(target)
                return kind, memoryview(header)
        if size <= SMALL_RECORD or len(self._buf) >= total:
            while len(self._buf) < total:
                self._buf += await self._receive(RECV_CHUNK)
            body = bytes(self._buf[4:total])
            del self._buf[:total]
        else:
            body = await self._read_whole(size)
        return body[0], memoryview(body)[1:]

    async def _read_whole(self, size: int) -> memoryview:
        """A large record's body, the buffered start included; read-only (it may reach the protocol)."""
        view = memoryview(np.empty(size, dtype=np.uint8))
        await self._fill(view, 4)
        return view.toreadonly()

    async def _fill(self, view: memoryview, skip: int) -> None:
        """Fill ``view`` with the rest of the record whose first ``skip`` bytes are buffered (all
        of the buffer belongs to it)."""
        have = len(self._buf) - skip
        view[:have] = memoryview(self._buf)[skip:]
        self._buf = bytearray()
        size = len(view)
        receive_into = getattr(self._stream, "receive_into", None)
        while have < size:
            if receive_into is not None:
                with trio.fail_after(self._idle):
                    got = await receive_into(view[have:])
                if not got:
                    raise _PeerClosed("the peer closed the connection")
                self._stats.bytes_received += got
                self._stats.last_received = trio.current_time()
            else:
                chunk = await self._receive(size - have)
                got = len(chunk)
                view[have : have + got] = chunk
            have += got


class PeerLink:
    """The reliable link from party ``me`` to party ``peer`` (see the module docstring).

    ``dial`` is given when ``me < peer`` (we dial): ``await dial(peer)`` returns a stream and the peer
    id the layer underneath authenticated. Otherwise the owner hands inbound streams to ``accept``.
    ``on_lost(peer, reason)`` is called when the peer has been disconnected for ``peer_timeout`` (and
    again every ``peer_timeout`` while it stays away), and when it is seen to have restarted.
    """

    def __init__(
        self,
        me: int,
        peer: int,
        *,
        incarnation: bytes,
        dial: Dialer | None = None,
        config: LinkConfig | None = None,
        on_lost: LostCallback | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if me == peer:
            raise ValueError("a party has no link to itself")
        if len(incarnation) != INCARNATION_BYTES:
            raise ValueError(f"incarnation must be {INCARNATION_BYTES} bytes")
        if (dial is not None) != (me < peer):
            raise ValueError("the party with the lower id dials, the other accepts")
        self.me = me
        self.peer = peer
        self.incarnation = incarnation
        self.config = config or LinkConfig()
        self.stats = LinkStats()
        self._dial = dial
        self._on_lost = on_lost
        self._rng = rng or random.Random()  # noqa: S311 -- jitter only, nothing secret
        # send side
        self._next_seq = 0
        self._base = 0  # oldest unacknowledged seq
        self._unacked: dict[int, _Record] = {}
        self._stalled_since: float | None = None  # since when the oldest unacknowledged record waits
        self._stall_connects = 0  # connections made before that
        self._unacked_bytes = 0
        self._high_written = 0  # one past the highest seq ever written (to count resends)
        self._room = trio.Event()
        self._progress = trio.Event()
        self._enqueue_lock = trio.Lock()
        # receive side
        self._peer_inc: bytes | None = None
        self._recv_next = 0
        self._ack_frames = 0
        self._ack_bytes = 0
        self._ack_due_at: float | None = None
        # connection state
        self._deliver: Deliver | None = None
        self._nursery: trio.Nursery | None = None
        self._closed = False
        self._kick = trio.Event()
        self._state = trio.Event()
        self._conn_scope: trio.CancelScope | None = None
        self._slot = trio.Lock()
        self._inbound_gen = 0
        self._down_since = 0.0  # set by run(): trio's clock exists only inside trio.run
        self._lost_reason: str | None = None
        self._lost_at = 0.0
        self._drop_reason = ""
        self._reject_log = Throttle()  # an outsider can make rejected streams: bounded log lines
        self._stall_reported = False  # the peer is lost because it acknowledged nothing for too long
        self._partial: tuple[memoryview, int] | None = None  # a chunked frame arriving: buffer, filled

    # ------------------------------------------------------------------------------------ sending
    @property
    def up(self) -> bool:
        return self.stats.up

    @property
    def lost(self) -> bool:
        return self._lost_reason is not None

    def _lost_error(self) -> PeerLostError:
        return PeerLostError(self.peer, self._lost_reason or "unreachable")

    def _has_room(self, n: int) -> bool:
        if not self._unacked:
            return True  # a frame larger than the byte limit still goes, alone
        return (
            len(self._unacked) < self.config.max_unacked_frames
            and self._unacked_bytes + n <= self.config.max_unacked_bytes
        )

    async def send(self, frame: Frame) -> None:
        """Queue ``frame`` for the peer; blocks while the unacknowledged buffer is full.

        Once this returns, the frame will reach the peer exactly once if the peer is ever reachable
        again in the same incarnation. While the peer is lost, protocol messages raise ``AbortError``
        at once (their session cannot finish); abort notices are still queued if there is room.
        """
        await trio.lowlevel.checkpoint_if_cancelled()  # a party shutting down cancels, not "closed"
        if self._closed:
            raise trio.ClosedResourceError("the link is closed")
        if self.lost and frame.kind != ABORT:
            raise self._lost_error()
        data = frame_parts(frame.kind, frame.session, frame.step, frame.payload)
        size = sum(len(b) for b in data)
        if size > self.config.max_frame_bytes:
            raise FrameError(f"frame of {size} bytes exceeds the limit of {self.config.max_frame_bytes}")
        if self.lost and not self._has_room(size):
            log.info("abort_notice_dropped", party=self.me, peer=self.peer, session=frame.session)
            return
        pieces = split_parts(data, size, CHUNK_BYTES) if size > CHUNK_BYTES else [data]
        async with self._enqueue_lock:  # FIFO: a large frame is not starved by a stream of small ones
            for k, piece in enumerate(pieces):
                n = size if len(pieces) == 1 else sum(len(b) for b in piece)
                while not self._has_room(n):
                    self._room = trio.Event()
                    await self._room.wait()
                    failure: BaseException | None = None
                    if self._closed:
                        failure = trio.ClosedResourceError("the link is closed")
                    elif self.lost and frame.kind != ABORT:
                        failure = self._lost_error()
                    elif self.lost:
                        log.info("abort_notice_dropped", party=self.me, peer=self.peer, session=frame.session)
                    if failure is not None or self.lost:
                        if k:  # pieces of this frame are queued: end it at the peer
                            self._append(_Record(SKIP, 0, (), frame.session, frame.kind))
                        if failure is not None:
                            raise failure
                        return
                last = k == len(pieces) - 1
                kind = DATA if last else CHUNK
                self._append(_Record(kind, n, piece, frame.session, frame.kind, 0 if last else size))
            self.stats.frames_sent += 1

    def _append(self, rec: _Record) -> None:
        seq = self._next_seq
        self._next_seq += 1
        if not self._unacked and self._stalled_since is None:
            self._stalled_since = trio.current_time()
            self._stall_connects = self.stats.connects
        self._unacked[seq] = rec
        self._unacked_bytes += rec.size
        self._update_buffer_stats()
        self._kick.set()

    def withdraw(self, session: str) -> int:
        """The session ended badly here: replace its frames that the peer has not acknowledged by
        SKIPs (abort notices stay), so that nothing queued behind them waits for them. Returns how
        many were withdrawn."""
        count = 0
        for seq in range(self._base, self._next_seq):
            rec = self._unacked[seq]
            if rec.session == session and rec.kind != SKIP and rec.frame_kind != ABORT:
                self._unacked_bytes -= rec.size
                self._unacked[seq] = _Record(SKIP, 0, (), session, rec.frame_kind)
                count += 1
        if count:
            self.stats.frames_withdrawn += count
            self._update_buffer_stats()
            self._wake()
        return count

    async def flush(self) -> None:
        """Wait until the peer has acknowledged every frame queued so far, or the link is down, lost
        or closed. A party about to stop calls this so that its last messages (say, the final reveal
        of a MAC check) are not lost with the process; a peer that is not connected is not waited
        for (a daemon whose peers are down stops at once)."""
        while self._unacked and self.stats.up and not self.lost and not self._closed:
            self._progress = trio.Event()
            await self._progress.wait()

    def _wake(self) -> None:
        """Acknowledgements arrived, or the link was reset, lost or closed: wake blocked senders and
        flushers (each waits on its own event, so one cannot consume the other's wake-up)."""
        self._room.set()
        self._progress.set()

    def _update_buffer_stats(self) -> None:
        self.stats.unacked_frames = len(self._unacked)
        self.stats.unacked_bytes = self._unacked_bytes

    def _release(self, upto: int) -> None:
        """The peer has every frame below ``upto``: drop them from the buffer, wake blocked senders."""
        if upto <= self._base:
            return
        for s in range(self._base, upto):
            self._unacked_bytes -= self._unacked.pop(s).size
        self._base = upto
        self._stalled_since = trio.current_time() if self._unacked else None
        self._stall_connects = self.stats.connects
        if self._stall_reported and self.stats.up:  # progress again: the peer is not lost after all
            self._stall_reported = False
            self._lost_reason = None
            self.stats.lost = False
        self._update_buffer_stats()
        self._wake()

    def _reset_send(self) -> None:
        """The peer restarted: what we held for its previous life can never be delivered."""
        self._unacked.clear()
        self._unacked_bytes = 0
        self._next_seq = self._base = self._high_written = 0
        self._stalled_since = None
        self._update_buffer_stats()
        self._wake()

    # ------------------------------------------------------------------------------------ lifetime
    async def run(
        self, deliver: Deliver, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Keep the link up until cancelled; ``deliver`` gets every frame from the peer, in order."""
        if self._deliver is not None or self._closed:
            raise RuntimeError("a PeerLink runs once")
        self._deliver = deliver
        self._down_since = trio.current_time()
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._watchdog)
                nursery.start_soon(self._stall_watch)
                if self._dial is not None:
                    nursery.start_soon(self._dial_loop)
                task_status.started()
        finally:
            self._nursery = None
            self._closed = True
            self._wake()

    async def accept(self, stream: trio.abc.Stream) -> None:
        """Take over an inbound stream already authenticated as this link's peer.

        The handshake runs in the link's own task; the current connection, if any, is replaced only
        once the new stream's HELLO checks out.
        """
        if self._nursery is None or self._dial is not None:
            await trio.aclose_forcefully(stream)
            return
        self._inbound_gen += 1
        self._nursery.start_soon(self._inbound, stream, self._inbound_gen)

    def disconnect(self, reason: str) -> None:
        """Close the current connection (the peer misbehaved above the link: named in ``reason``).
        Nothing queued is lost; the peer may reconnect."""
        if self._conn_scope is not None:
            log.warning("peer_disconnected", party=self.me, peer=self.peer, reason=reason)
            self.stats.disconnects += 1
            self._drop_reason = reason
            self._conn_scope.cancel()

    async def wait_up(self) -> None:
        """Return once a connection to the peer has completed its handshake."""
        while not self.stats.up:
            await self._state_changed()

    async def _state_changed(self) -> None:
        await self._state.wait()

    def _notify_state(self) -> None:
        self._state.set()
        self._state = trio.Event()

    # ------------------------------------------------------------------------------------ connections
    async def _dial_loop(self) -> None:
        assert self._dial is not None
        delay = self.config.backoff_initial
        while True:
            ok = False
            stream: trio.abc.Stream | None = None
            try:
                with trio.fail_after(self.config.connect_timeout):
                    stream, who = await self._dial(self.peer)
            except Exception as e:  # any connector failure means: try again later
                level = log.warning if isinstance(e, PeerAuthError) else log.info
                level("link_connect_failed", party=self.me, peer=self.peer, error=_describe(e))
            else:
                if who != self.peer:
                    self._reject("connector authenticated another party", who=who)
                    await trio.aclose_forcefully(stream)
                else:
                    shaken = await self._handshake(stream)
                    if shaken is not None:
                        async with self._slot:
                            ok = await self._run_connection(stream, *shaken)
            if ok:
                delay = self.config.backoff_initial
            await trio.sleep(self._rng.uniform(0, delay))
            delay = min(delay * 2, self.config.backoff_max)

    async def _inbound(self, stream: trio.abc.Stream, gen: int) -> None:
        shaken = await self._handshake(stream)
        if shaken is None:
            return
        if gen != self._inbound_gen:
            await trio.aclose_forcefully(stream)  # a newer stream arrived meanwhile
            return
        if self._conn_scope is not None:
            self._conn_scope.cancel()
        async with self._slot:
            if gen != self._inbound_gen:
                await trio.aclose_forcefully(stream)
                return
            await self._run_connection(stream, *shaken)

    async def _handshake(self, stream: trio.abc.Stream) -> tuple[_Hello, _RecordReader, _Hello] | None:
        """Send our HELLO, read and check the peer's (both sides send first: the TLS dialer takes the
        listener's first bytes as its verdict on our certificate). Returns the peer's HELLO, the
        reader and ours; on failure the stream is closed, None returned.

        Nothing of the link's state changes here: a stream is only adopted (``_adopt_hello``) once it
        holds the connection slot, so a stream that fails here leaves the running connection alone.
        """
        reader = _RecordReader(stream, self.config.idle_timeout, self.stats)
        try:
            with trio.fail_after(self.config.handshake_timeout):
                ours = await self._send_hello(stream)
                kind, body = await reader.read(HELLO_MAX)
                if kind != HELLO:
                    raise LinkProtocolError(f"first record has type {kind}, not HELLO")
                hello = decode_hello(body)
                if hello.party != self.peer or hello.peer != self.me:
                    raise PeerAuthError(
                        f"HELLO claims party {hello.party} talking to {hello.peer}, "
                        f"but the stream is authenticated as {self.peer} talking to {self.me}"
                    )
                newest = self._peer_inc
                if self.stats.up and newest is not None and hello.inc != newest and hello.inc < newest:
                    # The newest incarnation wins: an older one (the original daemon while a
                    # duplicate runs) waits until the newer one's connection is gone. It has seen
                    # our HELLO and may start over at 0; the next HELLOs settle that (see
                    # "Resynchronisation").
                    raise LinkProtocolError("an older incarnation of the peer while a newer one is connected")
        except (LinkProtocolError, PeerAuthError) as e:
            self._reject(str(e))
            await trio.aclose_forcefully(stream)
            return None
        except Exception as e:  # reset, timeout, closed: an ordinary failed attempt
            log.info("link_handshake_failed", party=self.me, peer=self.peer, error=_describe(e))
            await trio.aclose_forcefully(stream)
            return None
        return hello, reader, ours

    async def _send_hello(self, stream: trio.abc.Stream) -> _Hello:
        ours = _Hello(
            self.me, self.peer, self.incarnation, self._peer_inc, self._recv_next, self._base, self._next_seq
        )
        mine = encode_hello(ours)
        await stream.send_all(mine)
        self.stats.bytes_sent += len(mine)
        return ours

    def _reject(self, reason: str, **fields: Any) -> None:
        """Count and log a refused stream: at most one line per link per 10 s (an outsider with a
        stolen certificate, or a duplicate daemon, can make them as fast as it can connect)."""
        self.stats.rejected_streams += 1
        self._reject_log.emit(
            log.warning, "link_rejected", party=self.me, peer=self.peer, reason=reason, **fields
        )

    async def _run_connection(
        self, stream: trio.abc.Stream, hello: _Hello, reader: _RecordReader, ours: _Hello
    ) -> bool:
        """Adopt a handshaken stream and pump it until it fails or is replaced; True if it came up."""
        scope = trio.CancelScope()
        self._conn_scope = scope
        came_up = False
        reason = "closed"
        try:
            with scope:
                conn = _Conn(stream, reader, self._adopt_hello(hello, ours), trio.current_time())
                self._set_up(True)
                came_up = True
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._writer, conn)
                    await self._reader(conn)
            if scope.cancelled_caught:
                reason = self._drop_reason or "replaced by a newer connection"
                self._drop_reason = ""
        except Exception as e:
            reason = self._connection_failed(e)
        finally:
            if self._conn_scope is scope:
                self._conn_scope = None
            if came_up:
                self._set_up(False, reason)
            await trio.aclose_forcefully(stream)
        return came_up

    def _adopt_hello(self, hello: _Hello, ours: _Hello) -> int:
        """Apply the peer's HELLO (``ours`` is what we sent on the same stream) to the link state;
        return the seq to resend from."""
        if ours.peer_inc != self._peer_inc:  # another connection was adopted since our HELLO
            raise LinkProtocolError("the peer's incarnation changed during the handshake")
        restarted = self._peer_inc is not None and hello.inc != self._peer_inc
        if restarted:
            self.stats.peer_restarts += 1
        if not resumable(ours, hello):
            # Both sides see the same two HELLOs and come to the same verdict: start over at 0.
            self.stats.resyncs += 1
            self._reset_send()
            self._reset_receive(hello.inc)
            self._report(
                "it restarted (new incarnation)"
                if restarted
                else f"link resynchronised: the peer resumes at {hello.next} of our frames "
                f"{ours.base}..{ours.sent}, we at {ours.next} of its {hello.base}..{hello.sent}"
            )
            return 0
        if hello.inc != self._peer_inc:
            if restarted:
                self._reset_send()
            self._reset_receive(hello.inc)
        # ``next`` counts frames of our current incarnation only; a peer that has not met it yet
        # (first contact, or we restarted) has none of them. Frames it acknowledged on the previous
        # connection after it sent its HELLO are not resent.
        resend_from = max(hello.next if hello.peer_inc == self.incarnation else 0, self._base)
        if restarted:
            self._report("it restarted (new incarnation)")
        self._release(resend_from)
        return resend_from

    def _reset_receive(self, inc: bytes) -> None:
        self._peer_inc = inc
        self._recv_next = 0
        self._partial = None
        self._ack_frames = self._ack_bytes = 0
        self._ack_due_at = None

    def _set_up(self, up: bool, reason: str = "") -> None:
        if up:
            self.stats.up = True
            self.stats.connects += 1
            self.stats.reconnects = self.stats.connects - 1
            if self._lost_reason is not None:
                log.warning("peer_back", party=self.me, peer=self.peer)
                self._lost_reason = None
                self.stats.lost = False
                self._stall_reported = False
            log.info("link_up", party=self.me, peer=self.peer, connects=self.stats.connects)
        else:
            self.stats.up = False
            self._down_since = trio.current_time()
            log.info("link_down", party=self.me, peer=self.peer, reason=reason)
            self._progress.set()  # a flush does not wait for a peer that is not connected
        self._notify_state()

    def _connection_failed(self, e: BaseException) -> str:
        err = _leaf(e)
        if isinstance(err, (LinkProtocolError, PeerAuthError)):
            log.warning("link_protocol_error", party=self.me, peer=self.peer, reason=str(err))
            return f"protocol error: {err}"
        if isinstance(err, trio.TooSlowError):
            log.warning("link_idle_timeout", party=self.me, peer=self.peer, timeout=self.config.idle_timeout)
            return "idle timeout"
        if isinstance(err, (_PeerClosed, trio.BrokenResourceError, trio.ClosedResourceError, OSError)):
            return f"connection lost: {_describe(err)}"
        log.error("link_failed", party=self.me, peer=self.peer, error=_describe(err))
        return f"failed: {_describe(err)}"

    # ------------------------------------------------------------------------------------ pumping
    async def _reader(self, conn: _Conn) -> None:
        limit = 1 + _SEQ.size + self.config.max_frame_bytes
        while True:
            kind, body = await conn.reader.read(limit, self._place)
            if conn.reader.placed:  # a piece of a chunked frame, received into it by ``_place``
                self._recv_next += 1
                self._filled(conn.reader.placed, last=kind == DATA)
                self._count_for_ack(conn.reader.placed)
                continue
            if kind in (DATA, CHUNK, SKIP):
                if len(body) < _SEQ.size:
                    raise LinkProtocolError("record without a sequence number")
                (seq,) = _SEQ.unpack_from(body)
                if seq < self._recv_next:
                    self.stats.duplicates_dropped += 1
                    continue
                if seq > self._recv_next:
                    raise LinkProtocolError(f"record seq {seq} skips ahead of {self._recv_next}")
                self._recv_next += 1
                if kind == DATA:
                    self._complete(body[_SEQ.size :])
                elif kind == CHUNK:
                    self._piece(body)
                else:
                    if len(body) != _SEQ.size:
                        raise LinkProtocolError("SKIP record of the wrong size")
                    self._partial = None
                self._count_for_ack(len(body))
            elif kind == ACK:
                if len(body) != _SEQ.size:
                    raise LinkProtocolError("ACK record of the wrong size")
                (upto,) = _SEQ.unpack_from(body)
                if upto > conn.cursor:
                    raise LinkProtocolError(f"ACK {upto} of frames never sent (sent up to {conn.cursor})")
                self._release(upto)
            else:
                raise LinkProtocolError(f"unexpected record type {kind}")

    def _count_for_ack(self, nbytes: int) -> None:
        cfg = self.config
        self._ack_frames += 1
        self._ack_bytes += nbytes
        if self._ack_frames >= cfg.ack_every or self._ack_bytes >= cfg.ack_bytes:
            self._ack_due_at = trio.current_time()
            self._kick.set()
        elif self._ack_due_at is None:
            self._ack_due_at = trio.current_time() + cfg.ack_delay
            self._kick.set()

    def _chunk_slot(self, total: int, n: int) -> memoryview:
        """Where the next ``n`` bytes of a chunked frame of ``total`` bytes go (checked)."""
        if self._partial is None:
            if not CHUNK_BYTES < total <= self.config.max_frame_bytes:
                raise LinkProtocolError(
                    f"CHUNK of a frame of {total} bytes (limit {self.config.max_frame_bytes})"
                )
            self._partial = (memoryview(np.empty(total, dtype=np.uint8)), 0)
        buf, filled = self._partial
        if len(buf) != total or filled + n >= total or not n:
            raise LinkProtocolError("the pieces of a chunked frame do not add up to its size")
        return buf[filled : filled + n]

    def _place(self, kind: int, header: bytes, n: int) -> memoryview | None:
        """``_RecordReader.read``'s ``place``: the next piece of the frame being assembled goes
        straight into it (no copy); anything else (a duplicate, a whole frame) is read as usual."""
        if kind not in (CHUNK, DATA) or _SEQ.unpack_from(header)[0] != self._recv_next:
            return None
        if kind == CHUNK:
            return self._chunk_slot(_SEQ.unpack_from(header, _SEQ.size)[0], n)
        if self._partial is None:
            return None
        buf, filled = self._partial
        return buf[filled:] if filled + n == len(buf) else None

    def _piece(self, body: memoryview) -> None:
        """A CHUNK read whole: copy its piece into the frame being assembled."""
        if len(body) < 2 * _SEQ.size:
            raise LinkProtocolError("CHUNK record without the frame size")
        (total,) = _SEQ.unpack_from(body, _SEQ.size)
        piece = body[2 * _SEQ.size :]
        self._chunk_slot(total, len(piece))[:] = piece
        self._filled(len(piece), last=False)

    def _complete(self, data: memoryview) -> None:
        """A DATA record: a whole frame, or the last piece of a chunked one."""
        if self._partial is None:
            self._deliver_frame(data)
            return
        buf, filled = self._partial
        if filled + len(data) != len(buf):
            raise LinkProtocolError("the pieces of a chunked frame do not add up to its size")
        buf[filled:] = data
        self._filled(len(data), last=True)

    def _filled(self, n: int, *, last: bool) -> None:
        """``n`` more bytes of the frame being assembled are in place; the last piece delivers it."""
        assert self._partial is not None
        buf, filled = self._partial
        if last:
            self._partial = None
            self._deliver_frame(buf.toreadonly())
        else:
            self._partial = (buf, filled + n)

    def _deliver_frame(self, data: memoryview) -> None:
        try:
            frame = decode_frame(data)
        except FrameError as e:
            self.stats.bad_frames += 1
            log.warning("bad_frame_dropped", party=self.me, peer=self.peer, error=str(e))
            return
        self.stats.frames_delivered += 1
        assert self._deliver is not None
        try:
            self._deliver(frame)
        except Exception as e:  # the handler's bug must not take the link down
            log.error("frame_handler_failed", party=self.me, peer=self.peer, error=_describe(e))

    def _ack_record(self) -> bytes:
        self._ack_frames = self._ack_bytes = 0
        self._ack_due_at = None
        return _HEAD.pack(1 + _SEQ.size, ACK, self._recv_next)

    async def _write(self, conn: _Conn, data: bytes | memoryview) -> None:
        await conn.stream.send_all(data)
        self.stats.bytes_sent += len(data)
        conn.last_write = trio.current_time()

    async def _writer(self, conn: _Conn) -> None:
        """Write unsent frames (small ones batched, large ones as header + body), ACKs and heartbeats."""
        cfg = self.config
        while True:
            self._kick = trio.Event()
            parts: list[bytes | memoryview] = []
            size = 0
            wrote = False
            conn.cursor = max(conn.cursor, self._base)
            while conn.cursor < self._next_seq and size < COALESCE_BYTES:
                seq = conn.cursor
                rec = self._unacked[seq]
                n, data = rec.size, rec.parts
                conn.cursor += 1
                if seq < self._high_written:
                    self.stats.frames_resent += 1
                else:
                    self._high_written = seq + 1
                if rec.kind == CHUNK:
                    head = _HEAD.pack(1 + 2 * _SEQ.size + n, CHUNK, seq) + _SEQ.pack(rec.total)
                else:
                    head = _HEAD.pack(1 + _SEQ.size + n, rec.kind, seq)
                if n > SMALL_RECORD:
                    if parts:
                        await self._write(conn, b"".join(parts))
                        parts, size = [], 0
                    *first, last = data
                    await self._write(conn, b"".join((head, *first)))
                    await self._write(conn, last)
                    wrote = True
                else:
                    parts += (head, *data)
                    size += len(head) + n
            now = trio.current_time()
            if self._ack_due_at is not None and (parts or wrote or self._ack_due_at <= now):
                parts.insert(0, self._ack_record())
            elif not parts and not wrote and now >= conn.last_write + cfg.heartbeat:
                parts.append(self._ack_record())
            if parts:
                await self._write(conn, b"".join(parts))
                continue
            if wrote:
                continue
            deadline = conn.last_write + cfg.heartbeat
            if self._ack_due_at is not None:
                deadline = min(deadline, self._ack_due_at)
            with trio.move_on_at(deadline):
                await self._kick.wait()

    # ------------------------------------------------------------------------------------ peer loss
    async def _watchdog(self) -> None:
        """Report the peer lost once it has been away ``peer_timeout``, and again each period after."""
        timeout = self.config.peer_timeout
        while True:
            if self.stats.up:
                await self._state_changed()
                continue
            since = self._lost_at if self.lost else self._down_since
            with trio.move_on_at(since + timeout) as cs:
                await self._state_changed()
            if not cs.cancelled_caught or self.stats.up:
                continue
            now = trio.current_time()
            # say how long the peer has really been silent: a silent (frozen) peer is noticed only
            # after idle_timeout, and peer_timeout counts from there (lower idle_timeout to notice
            # sooner; counting from the last data instead would cut short the reconnects that heal a
            # half-open connection)
            heard = self.stats.last_received
            if 0.0 < heard <= self._down_since:
                self._declare_lost(
                    f"nothing received for {now - heard:.1f} s (connection dead after "
                    f"{self._down_since - heard:.1f} s of silence, none since)"
                )
            else:
                self._declare_lost(f"no connection for {now - self._down_since:.1f} s")

    async def _stall_watch(self) -> None:
        """Report the peer lost when records have waited ``idle_timeout + peer_timeout`` (what a
        silent peer is given) for its acknowledgement while connections came and went, or one
        stayed up: a link that reconnects but never gets anything through is as useless as one
        that is down, and the sessions waiting on it must abort rather than wait for the receive
        timeout. Their frames are then withdrawn, so the link frees itself for the sessions after
        them."""
        timeout = self.config.idle_timeout + self.config.peer_timeout
        while True:
            await trio.sleep(min(1.0, timeout / 4))
            since = self._stalled_since
            if since is None or self.lost:
                continue
            now = trio.current_time()
            reconnects = self.stats.connects - self._stall_connects
            if now - since < timeout or not (self.stats.up or reconnects):
                continue  # a link that is simply down is the watchdog's
            self._stall_reported = True
            self._stalled_since = now  # the next report, if any, one period later
            self._declare_lost(
                f"no progress: {len(self._unacked)} records ({self._unacked_bytes} bytes) "
                f"unacknowledged for {now - since:.1f} s over {reconnects} reconnects"
            )

    def _declare_lost(self, reason: str) -> None:
        """The peer is lost (``reason``): messages to it fail fast until it is back, and the owner
        is told, so that the sessions that need it abort."""
        self._lost_reason = reason
        self._lost_at = trio.current_time()
        self.stats.lost = True
        self._wake()  # senders blocked on a full buffer re-check and raise
        self._report(reason)

    def _report(self, reason: str) -> None:
        log.warning("peer_lost", party=self.me, peer=self.peer, reason=reason)
        if self._on_lost is not None:
            try:
                self._on_lost(self.peer, reason)
            except Exception as e:
                log.error("peer_lost_handler_failed", party=self.me, peer=self.peer, error=_describe(e))


def _leaf(e: BaseException) -> BaseException:
    """The error that explains a failed connection. The reader and the writer often fail together
    (a reset breaks both), giving a group: a protocol error wins, then the first other error that is
    not a cancellation."""
    errors = [x for x in leaves(e) if not isinstance(x, trio.Cancelled)]
    for x in errors:
        if isinstance(x, (LinkProtocolError, PeerAuthError)):
            return x
    return errors[0] if errors else e


def _describe(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"[:300]
