"""Simulated connections: a pair of trio ``HalfCloseableStream`` ends joined by two timed byte pipes.

Why it is built this way
------------------------
trio's ``memory_stream_pair`` moves bytes the moment ``send_all`` runs; a network does not. Here every
chunk a sender hands over becomes a *segment* stamped with the virtual time at which it arrives::

    arrival = max(finish + delay, hold floor, previous arrival on this pipe)
    finish  = max(now, link busy until) + len(chunk) / bandwidth        (the link serializes chunks)
    delay   = latency +- uniform(jitter), >= 0                          (one draw per send_all)

The ``max`` with the previous arrival keeps byte order (TCP never reorders a stream, jitter or not);
the hold floor is how stalls and partitions delay bytes without any timer task.

Nothing runs in the background. A segment "arrives" simply because ``trio.current_time()`` has passed
its stamp: a reader with nothing to read parks until the next stamp (``move_on_at``) or until another
task changes the pipe (new segment, close, reset) and unparks it. So the simulator adds no tasks, no
nursery and no polling, and under ``MockClock(autojump_threshold=0)`` the clock jumps straight from one
arrival to the next.

A reset is also a time, not an action: a connection is broken from ``broken_at()`` on, the minimum of an
immediate reset time and the arrival stamps of any RST markers (a truncated chunk is followed by one, so
the receiver reads the cut prefix and only then sees ``BrokenResourceError``). Bytes that arrived before
the break stay readable; bytes still in flight are lost, as with a TCP RST.

Flow control is a window: bytes in flight plus bytes arrived but unread. ``send_all`` waits while the
window is full; reading reopens it instantly (no ack delay is simulated). A window of 0 is a rendezvous:
the sender may only hand bytes to a reader already waiting in ``receive_some``, which is exactly the
"clogged stream" that ``trio.testing.check_two_way_stream`` wants.

Fault decisions for a chunk (``plan``) are drawn from the pipe's own RNG, once per ``send_all`` call, in
a fixed order, so a pipe's fault schedule depends only on the sequence of calls made on it, never on how
trio's (deliberately randomized) scheduler interleaves tasks.
"""

from __future__ import annotations

import math
import operator
import random
import sys
from collections import deque
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

import trio

from .events import ConnId
from .profile import FaultProfile

if TYPE_CHECKING:
    from .network import Network

INF = math.inf
UNLIMITED = sys.maxsize
CHUNK_FAULTS = ("reset", "stall", "corrupt", "truncate", "half_open")
"""Per-chunk faults, in the order their coins are tossed (changing it changes every schedule)."""

_DATA, _EOF, _RST = 0, 1, 2
_MAX_FLIPS = 3


class _Guard:
    """Raise ``BusyResourceError`` when two tasks use one side of a stream at once (as trio's streams do)."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._held = False

    def __enter__(self) -> None:
        if self._held:
            raise trio.BusyResourceError(f"another task is already {self._what} this stream")
        self._held = True

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._held = False


class Link:
    """A directed link ``src -> dst``: its profile, its serializer (shared by all its connections),
    its byte counters, and one-shot faults queued for the next chunk it carries."""

    def __init__(self, src: int, dst: int, profile: FaultProfile) -> None:
        self.src = src
        self.dst = dst
        self.profile = profile
        self.busy_until = -INF
        self.bytes_sent = 0
        self.chunks_sent = 0
        self.pending: list[str] = []

    def transmit(self, nbytes: int, now: float) -> float:
        """Put ``nbytes`` on the wire behind whatever is already queued; return when the last one leaves."""
        bandwidth = self.profile.bandwidth
        self.bytes_sent += nbytes
        if bandwidth is None:
            return now
        self.busy_until = max(now, self.busy_until) + nbytes / bandwidth
        return self.busy_until


class _Segment:
    __slots__ = ("at", "data", "kind")

    def __init__(self, at: float, kind: int, data: bytes = b"") -> None:
        self.at = at
        self.kind = kind
        self.data = data


@dataclass
class _Plan:
    """What the faults decided for one ``send_all`` call."""

    payload: bytes
    delay: float
    truncated: bool = False


class _Pipe:
    """One direction of one connection."""

    def __init__(self, conn: Connection, link: Link, rng: random.Random) -> None:
        self.conn = conn
        self.link = link
        self.rng = rng
        self.queue: deque[_Segment] = deque()
        self.arrived = bytearray()
        self.buffered = 0  # bytes in flight + arrived and unread: what the window limits
        self.eof_sent = False
        self.eof_arrived = False
        self.last_at = -INF
        self.holds: dict[str, float] = {}
        self.dead = False
        self.reader_waiting = False
        self.cut_left: int | None = None  # bytes this direction may still carry (``cut`` faults)
        self.reader_max: int | None = None
        self.lot = trio.lowlevel.ParkingLot()

    @property
    def floor(self) -> float:
        return max(self.holds.values(), default=-INF)

    def push(self, kind: int, at: float, data: bytes = b"") -> _Segment:
        seg = _Segment(max(at, self.floor, self.last_at), kind, data)
        self.last_at = seg.at
        if not self.dead:
            self.queue.append(seg)
            self.buffered += len(data)
        self.lot.unpark_all()
        return seg

    def credit(self) -> int:
        """How many bytes a sender may hand over right now without overfilling the window."""
        window = self.link.profile.window
        if self.dead or window is None:
            return UNLIMITED
        free = window - self.buffered
        if free > 0:
            return free
        if self.buffered == 0 and self.reader_waiting:
            return self.reader_max or UNLIMITED
        return 0

    def drain(self, limit: float) -> None:
        """Move every segment that has arrived by ``limit`` into the readable buffer."""
        queue = self.queue
        while queue and queue[0].at <= limit:
            seg = queue.popleft()
            if seg.kind == _DATA:
                self.arrived += seg.data
            elif seg.kind == _EOF:
                self.eof_arrived = True

    def next_at(self) -> float:
        return self.queue[0].at if self.queue else INF

    def hold(self, name: str, until: float, now: float) -> None:
        """Delay every byte not yet arrived, and every byte sent later, to ``until`` at the earliest."""
        self.holds[name] = max(self.holds.get(name, -INF), until)
        for seg in self.queue:
            if seg.at > now:
                seg.at = max(seg.at, until)
        if self.queue:
            self.last_at = max(self.last_at, self.queue[-1].at)
        self.lot.unpark_all()

    def release(self, name: str, now: float) -> None:
        """End an open-ended hold: what it held arrives one latency from now (order kept)."""
        if self.holds.pop(name, None) is None:
            return
        base = max(now + self.link.profile.latency, self.floor)
        for seg in self.queue:
            if seg.at == INF:
                seg.at = base
        if self.queue:
            self.last_at = self.queue[-1].at
        elif not math.isfinite(self.last_at):
            self.last_at = now
        self.lot.unpark_all()

    def kill(self) -> None:
        """Half-open: from now on this direction silently drops everything, in flight or sent later."""
        self.dead = True
        self.queue = deque(s for s in self.queue if s.kind == _RST)
        self.buffered = len(self.arrived)
        self.lot.unpark_all()

    def take(self, max_bytes: int | None) -> bytes:
        chunk = bytes(self.arrived[:max_bytes])
        del self.arrived[: len(chunk)]
        self.buffered -= len(chunk)
        self.lot.unpark_all()
        return chunk

    def plan(self, payload: bytes, now: float) -> _Plan:
        """Toss this chunk's coins (see ``CHUNK_FAULTS``) and apply what they decide."""
        prof, rng, conn, link = self.link.profile, self.rng, self.conn, self.link
        delay = prof.latency
        if prof.jitter:
            delay = max(0.0, delay + rng.uniform(-prof.jitter, prof.jitter))
        hits = {kind for kind in CHUNK_FAULTS if getattr(prof, kind) and rng.random() < getattr(prof, kind)}
        forced = set(link.pending)
        link.pending.clear()
        hits |= forced
        where = (link.src, link.dst)
        plan = _Plan(payload, delay)
        link.chunks_sent += 1

        def record(kind: str, **details: Any) -> None:
            if kind in forced:
                details["forced"] = True
            conn.net._record(kind, where, conn.id, **details)

        if "reset" in hits:
            record("reset", size=len(payload))
            conn.break_now(now, f"connection reset by the network (chunk {link.src}->{link.dst})")
            raise trio.BrokenResourceError(conn.reason)
        if "half_open" in hits:
            record("half_open")
            self.kill()
        if "stall" in hits:
            until = now + prof.stall_for
            record("stall", duration=prof.stall_for)
            self.hold("stall", until, now)
        if "corrupt" in hits and payload:
            nbits = 8 * len(payload)
            positions = sorted(rng.sample(range(nbits), rng.randint(1, min(_MAX_FLIPS, nbits))))
            mutable = bytearray(payload)
            for pos in positions:
                mutable[pos // 8] ^= 1 << (pos % 8)
            plan.payload = bytes(mutable)
            record("corrupt", size=len(payload), flips=tuple((p // 8, p % 8) for p in positions))
        if "truncate" in hits and payload:
            keep = rng.randrange(len(payload))
            plan.payload = plan.payload[:keep]
            plan.truncated = True
            record("truncate", size=len(payload), kept=keep)
        if prof.cut and not plan.truncated:
            if self.cut_left is None:  # drawn at this direction's first bytes
                self.cut_left = rng.randint(prof.cut, prof.cut_max)
            if len(plan.payload) >= self.cut_left:
                keep = self.cut_left
                record("cut", size=len(plan.payload), kept=keep)
                plan.payload = plan.payload[:keep]
                plan.truncated = True
            else:
                self.cut_left -= len(plan.payload)
        return plan


class Connection:
    """Two stream ends and the two pipes between them; ``pipes[i]`` carries what end ``i`` sends."""

    def __init__(
        self,
        net: Network,
        cid: ConnId,
        links: tuple[Link, Link],
        rngs: tuple[random.Random, random.Random],
    ) -> None:
        self.net = net
        self.id = cid
        self.parties = (cid[0], cid[1])
        self.pipes = (_Pipe(self, links[0], rngs[0]), _Pipe(self, links[1], rngs[1]))
        self.closed = [False, False]
        self.break_at = INF
        self.reason = ""
        self.rst: list[_Segment] = []
        self.streams = (SimStream(self, 0), SimStream(self, 1))

    def broken_at(self) -> float:
        return min([self.break_at, *(seg.at for seg in self.rst)])

    def is_broken(self, now: float) -> bool:
        return now >= self.broken_at()

    def pipe_from(self, src: int) -> _Pipe:
        """The pipe carrying bytes sent by party ``src`` (one of ``parties``)."""
        return self.pipes[self.parties.index(src)]

    def wake(self) -> None:
        for pipe in self.pipes:
            pipe.lot.unpark_all()

    def break_now(self, now: float, reason: str) -> None:
        """Both ends see ``BrokenResourceError`` from now on (after reading what already arrived)."""
        if now < self.broken_at():
            self.break_at = now
            self.reason = reason
        self.wake()
        self.net._forget(self)

    def add_rst(self, seg: _Segment, reason: str) -> None:
        self.rst.append(seg)
        if not self.reason:
            self.reason = reason
        self.wake()

    def close_end(self, index: int) -> None:
        """Close one end: a graceful FIN for the peer, and the end's unread bytes are discarded."""
        if self.closed[index]:
            return
        self.closed[index] = True
        now = trio.current_time()
        out, inc = self.pipes[index], self.pipes[1 - index]
        if not out.eof_sent and not self.is_broken(now):
            out.eof_sent = True
            out.push(_EOF, now + out.link.profile.latency)
        inc.queue = deque(s for s in inc.queue if s.kind == _RST)
        inc.arrived.clear()
        inc.buffered = 0
        self.wake()
        if all(self.closed):
            self.net._forget(self)


class SimStream(trio.abc.HalfCloseableStream):
    """One end of a simulated connection, at party ``local``, talking to party ``remote``.

    Semantics follow a TCP socket: ``send_all`` returns once the chunk is on the wire (it blocks for the
    serialization time and while the window is full); closing sends EOF to the peer and makes the peer's
    later sends fail with ``BrokenResourceError``; a reset breaks both ends.
    """

    def __init__(self, conn: Connection, index: int) -> None:
        self._conn = conn
        self._i = index
        self._out = conn.pipes[index]
        self._in = conn.pipes[1 - index]
        self._send_guard = _Guard("sending on")
        self._recv_guard = _Guard("receiving from")

    @property
    def local(self) -> int:
        """The party this end belongs to."""
        return self._conn.parties[self._i]

    @property
    def remote(self) -> int:
        """The party at the other end."""
        return self._conn.parties[1 - self._i]

    @property
    def conn_id(self) -> ConnId:
        """(dialer, acceptor, index): the name of this connection in the event log."""
        return self._conn.id

    def __repr__(self) -> str:
        a, b, k = self._conn.id
        return f"<SimStream {self.local}->{self.remote} conn={a}>{b}#{k}>"

    def _check_send(self) -> None:
        conn = self._conn
        if conn.closed[self._i]:
            raise trio.ClosedResourceError("this stream was closed")
        if self._out.eof_sent:
            raise trio.ClosedResourceError("send_eof() was called on this stream")
        if conn.is_broken(trio.current_time()):
            raise trio.BrokenResourceError(conn.reason)
        if conn.closed[1 - self._i]:
            raise trio.BrokenResourceError("the peer closed its end of the connection")

    async def _wait_credit(self) -> int:
        while True:
            self._check_send()
            credit = self._out.credit()
            if credit > 0:
                return credit
            with trio.move_on_at(self._conn.broken_at()):
                await self._out.lot.park()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        with self._send_guard:
            await trio.lowlevel.checkpoint()
            self._check_send()
            if not len(data):
                return
            out, link = self._out, self._out.link
            plan = out.plan(bytes(data), trio.current_time())
            view = memoryview(plan.payload)
            while view:
                credit = await self._wait_credit()
                piece, view = view[:credit], view[credit:]
                now = trio.current_time()
                finish = link.transmit(len(piece), now)
                out.push(_DATA, finish + plan.delay, bytes(piece))
                if finish > now:
                    await trio.sleep_until(finish)
            if plan.truncated:
                seg = out.push(_RST, trio.current_time() + plan.delay)
                self._conn.add_rst(seg, f"connection reset after a truncated chunk {link.src}->{link.dst}")

    async def wait_send_all_might_not_block(self) -> None:
        with self._send_guard:
            await trio.lowlevel.checkpoint()
            while True:
                try:
                    self._check_send()
                except trio.BrokenResourceError:
                    return  # send_all would not block: it would fail at once
                if self._out.credit() > 0:
                    return
                with trio.move_on_at(self._conn.broken_at()):
                    await self._out.lot.park()

    async def send_eof(self) -> None:
        with self._send_guard:
            await trio.lowlevel.checkpoint()
            conn, out = self._conn, self._out
            if conn.closed[self._i]:
                raise trio.ClosedResourceError("this stream was closed")
            if out.eof_sent:
                return
            now = trio.current_time()
            if conn.is_broken(now):
                raise trio.BrokenResourceError(conn.reason)
            out.eof_sent = True
            out.push(_EOF, now + out.link.profile.latency)

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        with self._recv_guard:
            if max_bytes is not None:
                max_bytes = operator.index(max_bytes)
                if max_bytes < 1:
                    raise ValueError("max_bytes must be >= 1")
            await trio.lowlevel.checkpoint()
            conn, inc = self._conn, self._in
            while True:
                if conn.closed[self._i]:
                    raise trio.ClosedResourceError("this stream was closed")
                now = trio.current_time()
                broken_at = conn.broken_at()
                inc.drain(min(now, broken_at))
                if inc.arrived:
                    return inc.take(max_bytes)
                if inc.eof_arrived:
                    return b""
                if now >= broken_at:
                    raise trio.BrokenResourceError(conn.reason)
                inc.reader_waiting, inc.reader_max = True, max_bytes
                if inc.buffered == 0:
                    inc.lot.unpark_all()  # a sender on a rendezvous (window=0) link may go now
                try:
                    with trio.move_on_at(min(inc.next_at(), broken_at)):
                        await inc.lot.park()
                finally:
                    inc.reader_waiting = False

    async def aclose(self) -> None:
        self._conn.close_end(self._i)
        await trio.lowlevel.checkpoint()


__all__ = ["CHUNK_FAULTS", "Connection", "Link", "SimStream"]
