"""The reliable peer link: ordered exactly-once delivery over streams that break, and its failure modes.

A link is only as good as the faults it has been shown to survive, so most tests run it over the
``MemoryConnector`` while connections are reset (at random byte counts, at random frames, in the
middle of multi-megabyte frames), held back, corrupted, or impersonated, and then check what arrived
against what was sent, frame by frame and by the links' own counters. Waiting happens in virtual time
(``autojump_clock``) or on events; nothing sleeps on the wall clock.
"""

from __future__ import annotations

import random
import struct
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import pytest
import structlog
import trio
import trio.testing
from helpers import assert_array_eq

import actors
from actors import inprocess
from actors.frames import ABORT, MSG, Frame, FrameError, encode_frame
from actors.inprocess import MemoryConnector, memory_stream_pair
from actors.links import StreamLinks
from actors.party import Party
from actors.peerlink import (
    ACK,
    DATA,
    HELLO,
    LinkConfig,
    LinkStats,
    PeerLink,
    _Hello,
    _RecordReader,
    decode_hello,
    encode_hello,
    new_incarnation,
    resumable,
)
from protocols.errors import AbortError, ConfigError
from protocols.field import P61, P127, get_field
from protocols.online import Session
from protocols.preprocessing.dealer import InsecureDealer

MiB = 1 << 20


def seeded(seed: int) -> random.Random:
    """Reproducible test randomness (payloads, fault schedules): nothing here is secret."""
    return random.Random(seed)  # noqa: S311


# ------------------------------------------------------------------------------------------ helpers
class Inbox:
    """Every frame each party's links delivered, keyed by (sender, receiver), with a wake-up."""

    def __init__(self) -> None:
        self.frames: dict[tuple[int, int], list[Frame]] = defaultdict(list)
        self._changed = trio.Event()
        self.tap: Callable[[int, int, Frame], None] | None = None

    def handler(self, me: int) -> Callable[[int, Frame], None]:
        def on_frame(frm: int, frame: Frame) -> None:
            self.frames[frm, me].append(frame)
            if self.tap is not None:
                self.tap(frm, me, frame)
            self._changed.set()
            self._changed = trio.Event()

        return on_frame

    async def wait(self, frm: int, to: int, count: int) -> None:
        while len(self.frames[frm, to]) < count:
            await self._changed.wait()


async def eventually(pred: Callable[[], bool], step: float = 0.01) -> None:
    """Poll ``pred`` in (virtual) time; the caller's deadline turns a never into a failure."""
    while not pred():
        await trio.sleep(step)


@asynccontextmanager
async def linked(
    n: int = 2, *, config: LinkConfig | None = None, faults: Any = None
) -> AsyncIterator[tuple[MemoryConnector, list[StreamLinks], Inbox]]:
    net = MemoryConnector(n, config=config, faults=faults)
    links = [net.links(i) for i in range(n)]
    inbox = Inbox()
    async with trio.open_nursery() as nursery:
        for i, lk in enumerate(links):
            await nursery.start(lk.serve, inbox.handler(i))
        yield net, links, inbox
        nursery.cancel_scope.cancel()


def make_frame(frm: int, k: int, size: int, rng: random.Random) -> Frame:
    """A frame whose payload says who sent it and which one it is, padded with random bytes."""
    return Frame(MSG, f"s-{frm}", k, frm.to_bytes(2, "big") + k.to_bytes(4, "big") + rng.randbytes(size))


def frame_size(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.05:
        return rng.randrange(2 * MiB, 4 * MiB)  # multi-megabyte: resets land inside them
    if r < 0.2:
        return rng.randrange(64 * 1024, 512 * 1024)
    return rng.randrange(0, 3000)


async def read_until_closed(stream: trio.abc.Stream) -> bytes:
    """What the far end wrote before it closed the stream (EOF or a reset both count as closed)."""
    got = bytearray()
    while True:
        try:
            chunk = await stream.receive_some()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return bytes(got)
        if not chunk:
            return bytes(got)
        got += chunk


class IntoStream(trio.abc.Stream):
    """A stream that also has ``receive_into`` (as ``TlsStream`` does): ``PeerLink`` then reads large
    records straight into their buffer, a path of its own to run through the same faults."""

    def __init__(self, inner: trio.abc.Stream) -> None:
        self.inner = inner

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self.inner.receive_some(max_bytes)

    async def receive_into(self, buffer: memoryview) -> int:
        data = await self.inner.receive_some(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture(params=["receive_some", "receive_into"])
def reads(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test over the ``MemoryConnector``'s plain streams, and again over ``IntoStream``s."""
    if request.param == "receive_into":
        plain = inprocess._MemoryConnection.__init__

        def init(self: Any, *args: Any) -> None:
            plain(self, *args)
            self.ends = tuple(IntoStream(end) for end in self.ends)

        monkeypatch.setattr(inprocess._MemoryConnection, "__init__", init)
    return request.param


# ------------------------------------------------------------------------------------------ the streams
async def test_memory_streams_pass_trios_stream_conformance_checks() -> None:
    """The fault-injecting streams still behave like trio streams when no fault is injected."""

    async def maker() -> tuple[trio.abc.Stream, trio.abc.Stream]:
        return memory_stream_pair()

    await trio.testing.check_two_way_stream(maker, None)


# ------------------------------------------------------------------------------------------ delivery
@pytest.mark.parametrize("seed", range(4))
async def test_frames_arrive_in_order_exactly_once_across_random_resets(
    seed: int, reads: str, autojump_clock: Any
) -> None:
    """Both directions at once; most connections reset after a random number of bytes (often inside
    a multi-megabyte frame), and a few are killed outright when a frame is delivered."""
    rng = seeded(seed)
    kill_rng = seeded(seed + 1000)

    def faults(a: int, b: int) -> int | None:
        return kill_rng.randrange(1, 6 * MiB) if kill_rng.random() < 0.7 else None

    count = 60
    async with linked(2, faults=faults) as (net, links, inbox):
        inbox.tap = lambda frm, to, f: net.kill(0, 1) if kill_rng.random() < 0.03 else None
        sent: dict[int, list[Frame]] = {0: [], 1: []}
        frames = {i: [make_frame(i, k, frame_size(rng), rng) for k in range(count)] for i in (0, 1)}

        async def producer(i: int) -> None:
            for f in frames[i]:
                await links[i].send(1 - i, f)
                sent[i].append(f)

        with trio.fail_after(3600):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(producer, 0)
                nursery.start_soon(producer, 1)
            await inbox.wait(0, 1, count)
            await inbox.wait(1, 0, count)
            await eventually(lambda: all(lk.stats(1 - i).unacked_frames == 0 for i, lk in enumerate(links)))
        for i in (0, 1):
            assert inbox.frames[i, 1 - i] == sent[i] == frames[i], (
                f"frames from {i} lost, repeated or reordered"
            )
            out, into = links[i].stats(1 - i), links[1 - i].stats(i)
            assert out.frames_sent == into.frames_delivered == count
            assert into.bad_frames == 0
        resets = sum(lk.stats(1 - i).reconnects for i, lk in enumerate(links))
        resent = sum(lk.stats(1 - i).frames_resent for i, lk in enumerate(links))
        dups = sum(lk.stats(1 - i).duplicates_dropped for i, lk in enumerate(links))
        assert resets >= 3 and resent >= 1, (
            f"the fault storm was too mild to test anything: {resets=} {resent=}"
        )
        assert dups <= resent


async def test_a_reset_inside_a_large_frame_resends_from_the_piece_it_broke_in(
    reads: str, autojump_clock: Any
) -> None:
    """A 5 MiB frame travels in 20 pieces; a reset after 2 MiB costs a resend of the pieces the peer
    had not acknowledged, not of the whole frame."""
    rng = seeded(5)
    async with linked(2) as (net, links, inbox):
        with trio.fail_after(60):
            await links[0].wait_connected()
            await links[1].wait_connected()
            frames = [make_frame(0, 0, 100, rng), make_frame(0, 1, 5 * MiB, rng), make_frame(0, 2, 100, rng)]
            assert net.kill_after(0, 1, 2 * MiB)
            for f in frames:
                await links[0].send(1, f)
            await inbox.wait(0, 1, 3)
        assert inbox.frames[0, 1] == frames
        assert net.kills == 0 and links[0].stats(1).reconnects == 1  # the budget reset, not kill()
        assert 1 <= links[0].stats(1).frames_resent <= 12  # of 22 records; 2 MiB = 8 pieces got through
        assert links[1].stats(0).frames_delivered == 3


async def test_a_frame_larger_than_a_connection_carries_between_resets_arrives(
    reads: str, autojump_clock: Any
) -> None:
    """Every connection is reset after 600 KiB, and a 3.2 MB frame is queued with small ones before
    and after it: the pieces that got through stay delivered, so each connection moves the frame on,
    and everything arrives in order. (Resent whole, the frame never arrived on any connection and
    the small frame behind it waited with it: a livelock that only the 600 s receive timeout ended.)"""
    rng = seeded(12)
    frames = [make_frame(0, 0, 100, rng), make_frame(0, 1, 3_200_000, rng), make_frame(0, 2, 100, rng)]
    async with linked(2, faults=lambda a, b: 600 * 1024) as (_net, links, inbox):
        with trio.fail_after(120):
            for f in frames:
                await links[0].send(1, f)
            await inbox.wait(0, 1, 3)
    assert inbox.frames[0, 1] == frames
    assert links[0].stats(1).reconnects >= 5


async def test_frames_of_a_session_aborted_at_the_sender_are_withdrawn(autojump_clock: Any) -> None:
    """Frames queued for a session that then aborts at the sender are replaced by SKIPs (its abort
    notice stays): a peer that was unreachable meanwhile gets the notice and the next session's
    frames, not megabytes nobody needs; a chunked frame broken off midway is discarded whole."""
    rng = seeded(13)
    async with linked(2, config=LinkConfig(peer_timeout=600.0)) as (net, links, inbox):
        with trio.fail_after(60):
            await links[0].wait_connected()
            net.pause(0, 1)  # party 0's bytes to party 1 stop moving
            big = Frame(MSG, "doomed", 0, rng.randbytes(3 * MiB))
            await links[0].send(1, big)
            await links[0].send(1, Frame(MSG, "doomed", 1, b"small"))
            assert links[0].link(1).withdraw("doomed") == 14  # 13 pieces (3 MiB + header), 1 small
            await links[0].send(1, Frame(ABORT, "doomed", 0, "aborted at party 0"))
            await links[0].send(1, Frame(MSG, "next", 0, b"hello"))
            assert links[0].stats(1).unacked_bytes < 4096
            net.resume(0, 1)
            await inbox.wait(0, 1, 2)
    got = inbox.frames[0, 1]
    assert [(f.kind, f.session) for f in got] == [(ABORT, "doomed"), (MSG, "next")]
    assert links[0].stats(1).frames_withdrawn == 14


async def test_a_link_that_reconnects_but_moves_nothing_reports_the_peer_lost(autojump_clock: Any) -> None:
    """Every connection carries the two HELLOs and a few bytes more, then resets: the link is up again
    and again, but nothing is ever acknowledged. After ``idle_timeout + peer_timeout`` of that (what
    a silent peer is given) the peer is reported
    lost, naming the stall, so the sessions waiting on it abort instead of waiting for the 600 s
    receive timeout; once connections carry data again, the frame arrives and the link is healthy."""
    hello = len(encode_hello(_Hello(0, 1, b"i" * 16, b"j" * 16, 1 << 40, 1 << 40, 1 << 40)))
    budget: list[int | None] = [2 * hello + 20]
    lost: list[tuple[float, str]] = []
    cfg = LinkConfig(peer_timeout=20.0)
    async with linked(2, config=cfg, faults=lambda a, b: budget[0]) as (_net, links, inbox):
        links[0].on_peer_lost = lambda peer, why: lost.append((trio.current_time(), why))
        with trio.fail_after(300):
            t0 = trio.current_time()
            await links[0].send(1, make_frame(0, 0, 4000, seeded(14)))
            await eventually(lambda: bool(lost))
            when, why = lost[0]
            assert why.startswith("no progress: 1 records") and "reconnects" in why, why
            bound = cfg.idle_timeout + cfg.peer_timeout
            assert bound <= when - t0 <= bound + 2
            assert links[0].stats(1).reconnects >= 3
            budget[0] = None
            await inbox.wait(0, 1, 1)
            await eventually(lambda: not links[0].stats(1).lost)


async def test_an_aborted_session_withdraws_what_it_still_had_queued(autojump_clock: Any) -> None:
    """Party 0 queues 3 MiB for party 1 (which reads nothing for now) and then aborts the session:
    the engine withdraws those frames before it sends the abort notice, so party 1 gets the notice,
    not the megabytes, and the link is free for the next session."""
    net = MemoryConnector(2, config=LinkConfig(peer_timeout=600.0))
    field = get_field(P61)
    parties = [Party(i, 2, net.links(i), InsecureDealer(field, 2, i, b"w" * 32)) for i in range(2)]

    async def prog(s: Session) -> Any:
        if s.party == 0:
            await s.net.send(1, 1, b"x" * (3 * MiB))
            raise AbortError("party 0 gives up")
        return await s.net.recv(0, 1)

    results: list[Any] = [None, None]

    async def one(i: int) -> None:
        try:
            results[i] = await parties[i].run(prog, session="doomed")
        except AbortError as e:
            results[i] = e

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            for p in parties:
                await nursery.start(p.serve)
            await parties[0].links.wait_connected()
            net.pause(0, 1)
            async with trio.open_nursery() as sessions:
                sessions.start_soon(one, 0)
                await eventually(lambda: isinstance(results[0], AbortError))
                net.resume(0, 1)
                sessions.start_soon(one, 1)
            assert (await actors.Cluster(parties).run(mpc_prog, mpc_inputs(2, 5, 3)))[0] is not None
            nursery.cancel_scope.cancel()
    assert parties[0].links.stats(1).frames_withdrawn >= 12
    assert isinstance(results[1], AbortError) and "party 0 aborted the session" in str(results[1])


async def test_frames_sent_before_the_peer_listens_are_delivered(autojump_clock: Any) -> None:
    """A party may start sending before its peers are up: the link queues, dials with backoff,
    and delivers once the peer listens."""
    net = MemoryConnector(2)
    links = [net.links(0), net.links(1)]
    inbox = Inbox()
    rng = seeded(1)
    frames = [make_frame(0, k, 10, rng) for k in range(5)]
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await nursery.start(links[0].serve, inbox.handler(0))
            for f in frames:
                await links[0].send(1, f)
            await trio.sleep(3)  # several refused dials
            await nursery.start(links[1].serve, inbox.handler(1))
            await inbox.wait(0, 1, 5)
            nursery.cancel_scope.cancel()
    assert inbox.frames[0, 1] == frames


async def test_an_idle_link_stays_up_on_heartbeats(autojump_clock: Any) -> None:
    cfg = LinkConfig(heartbeat=1.0, idle_timeout=3.0)
    async with linked(2, config=cfg) as (_net, links, _inbox):
        await links[0].wait_connected()
        await trio.sleep(100)
        assert links[0].stats(1).up and links[0].stats(1).reconnects == 0
        assert links[1].stats(0).bytes_received > 0


async def test_a_silent_connection_is_dropped_after_the_idle_timeout(autojump_clock: Any) -> None:
    """A connection that stops carrying bytes (a dead path that never resets) is replaced."""
    cfg = LinkConfig(heartbeat=1.0, idle_timeout=3.0, peer_timeout=60.0)
    rng = seeded(2)
    async with linked(2, config=cfg) as (net, links, inbox):
        with trio.fail_after(60):
            await links[0].wait_connected()
            net.pause(0, 1)
            f = make_frame(0, 0, 1000, rng)
            await links[0].send(1, f)
            await inbox.wait(0, 1, 1)
        assert inbox.frames[0, 1] == [f]
        assert links[1].stats(0).reconnects == 1


async def test_a_frozen_peer_is_reported_lost_with_how_long_it_was_silent(autojump_clock: Any) -> None:
    """A peer that stops (SIGSTOP: the connection stays open and silent) is noticed after
    ``idle_timeout`` and reported lost ``peer_timeout`` later; the report says how long nothing was
    received in all (not only the time since the connection was declared dead)."""
    cfg = LinkConfig(heartbeat=1.0, idle_timeout=4.0, peer_timeout=6.0)
    lost: list[tuple[float, str]] = []
    async with linked(2, config=cfg) as (net, links, _inbox):
        links[0].on_peer_lost = lambda peer, reason: lost.append((trio.current_time(), reason))
        await links[0].wait_connected()
        await trio.sleep(10.0)  # heartbeats flowing
        t0 = trio.current_time()
        net.freeze(1)
        await trio.sleep(20.0)
        assert lost, "the frozen peer was never reported lost"
        at, reason = lost[0]
        # last heard at most one heartbeat before the freeze: lost idle + peer timeouts after that
        assert t0 + 10.0 - cfg.heartbeat - 1e-6 <= at <= t0 + 10.0 + 1e-6, at - t0
        assert reason.startswith("nothing received for 10.0 s (connection dead after 4.0 s"), reason


# ------------------------------------------------------------------------------------------ backpressure
@pytest.mark.parametrize("limit", ["frames", "bytes"])
async def test_send_blocks_while_the_peer_does_not_read_and_resumes(limit: str) -> None:
    rng = seeded(3)
    frames = [make_frame(0, k, 3000, rng) for k in range(20)]
    size = len(encode_frame(frames[0].kind, frames[0].session, frames[0].step, frames[0].payload))
    if limit == "frames":
        cfg, expect = LinkConfig(max_unacked_frames=8), 8
    else:
        cfg, expect = LinkConfig(max_unacked_bytes=5 * size + size // 2), 5
    progress = 0
    with trio.fail_after(30):
        async with linked(2, config=cfg) as (net, links, inbox):
            await links[0].wait_connected()
            await links[1].wait_connected()
            net.pause(0, 1)

            async def producer() -> None:
                nonlocal progress
                for f in frames:
                    await links[0].send(1, f)
                    progress += 1

            async with trio.open_nursery() as nursery:
                nursery.start_soon(producer)
                await trio.testing.wait_all_tasks_blocked()
                assert progress == expect, "send() did not block on a full buffer"
                assert links[0].stats(1).unacked_frames == expect
                assert not inbox.frames[0, 1]
                net.resume(0, 1)
            await inbox.wait(0, 1, len(frames))
    assert inbox.frames[0, 1] == frames


async def test_large_payloads_travel_by_reference_and_arrive_as_read_only_views(
    reads: str, autojump_clock: Any
) -> None:
    """A frozen payload is written from the sender's own buffer and a writable one is copied when
    queued (changing it afterwards changes nothing); the receiver gets a read-only view either way."""
    rng = seeded(6)
    data = [rng.randbytes(3 * MiB), rng.randbytes(MiB)]
    arr = np.frombuffer(bytearray(data[0]), dtype=np.uint8)
    arr.flags.writeable = False
    writable = bytearray(data[1])
    async with linked(2) as (_net, links, inbox):
        with trio.fail_after(60):
            await links[0].send(1, Frame(MSG, "s", 0, memoryview(arr)))
            await links[0].send(1, Frame(MSG, "s", 1, writable))
            writable[:] = bytes(len(writable))
            await inbox.wait(0, 1, 2)
    got = [f.payload for f in inbox.frames[0, 1]]
    assert got == data
    assert all(isinstance(p, memoryview) and p.readonly for p in got)


async def test_a_frame_larger_than_the_byte_limit_goes_alone(autojump_clock: Any) -> None:
    rng = seeded(4)
    cfg = LinkConfig(max_unacked_bytes=10_000)
    big, small = make_frame(0, 0, 50_000, rng), make_frame(0, 1, 10, rng)
    async with linked(2, config=cfg) as (_net, links, inbox):
        with trio.fail_after(60):
            await links[0].send(1, big)  # an empty buffer takes it
            await links[0].send(1, small)  # waits for big's ACK
            await inbox.wait(0, 1, 2)
    assert inbox.frames[0, 1] == [big, small]


async def test_oversized_frames_and_bad_options_are_refused() -> None:
    lk = PeerLink(1, 0, incarnation=bytes(16), config=LinkConfig(max_frame_bytes=1000))
    with pytest.raises(FrameError):
        await lk.send(Frame(MSG, "s", 0, b"x" * 2000))
    with pytest.raises(ConfigError):
        LinkConfig(heartbeat=5.0, idle_timeout=5.0)
    with pytest.raises(ConfigError):
        LinkConfig(max_unacked_frames=0)
    with pytest.raises(ValueError, match="lower id dials"):
        PeerLink(0, 1, incarnation=bytes(16))


# ------------------------------------------------------------------------------------------ MPC on top
async def mpc_prog(s: Session, data: list[list[int]]) -> tuple[Any, ...]:
    xs = [await s.input(data[j] if s.party == j else None, owner=j) for j in range(s.n)]
    total = xs[0]
    for x in xs[1:]:
        total = total + x
    prod = await s.mul(xs[0], xs[1])
    dot = await s.dot(xs[1], xs[-1])
    return await s.output(total), await s.output(prod), await s.output(dot), await s.output(total, to=0)


def plaintext(data: list[list[int]]) -> tuple[Any, ...]:
    a = [np.array(d, dtype=object) for d in data]
    return sum(a[1:], a[0]), a[0] * a[1], int(np.dot(a[1], a[-1]))


def mpc_inputs(n: int, size: int, seed: int) -> list[list[int]]:
    r = np.random.default_rng(seed)
    return [r.integers(-(2**20), 2**20, size=size).tolist() for _ in range(n)]


@pytest.mark.parametrize("seed", range(2))
async def test_mpc_session_is_correct_while_connections_are_reset(seed: int, autojump_clock: Any) -> None:
    """Parties built as local_cluster builds them, on StreamLinks: a 3-party program with vectors
    of megabytes per message completes correctly while connections reset at random byte counts and
    at random delivered frames; every frame is delivered once (the engine's mailbox would abort on
    a duplicate; the counters and a tap check it directly)."""
    n, size = 3, 120_000
    kill_rng = seeded(seed)

    def faults(a: int, b: int) -> int | None:
        return kill_rng.randrange(1, 8 * MiB) if kill_rng.random() < 0.6 else None

    net = MemoryConnector(n, faults=faults)
    field = get_field(P127)
    dealer_seed = bytes([seed]) * 32
    parties = [Party(i, n, net.links(i), InsecureDealer(field, n, i, dealer_seed)) for i in range(n)]
    seen: set[tuple[int, int, str, int]] = set()
    twice: list[tuple[int, int, str, int]] = []
    for p in parties:
        p.links.on_peer_lost = p.engine.abort_sessions_with
        inner = p.engine.on_frame

        def tapped(frm: int, frame: Any, me: int = p.id, inner: Any = inner) -> None:
            key = (frm, me, frame.session, frame.step)
            if key in seen:
                twice.append(key)
            seen.add(key)
            if kill_rng.random() < 0.05:
                net.kill(min(frm, me), max(frm, me))
            inner(frm, frame)

        p.engine.on_frame = tapped  # type: ignore[method-assign]
    data = mpc_inputs(n, size, seed)
    results: list[Any] = [None] * n
    with trio.fail_after(3600):
        async with trio.open_nursery() as nursery:
            for p in parties:
                await nursery.start(p.serve)

            async def one(i: int) -> None:
                results[i] = await parties[i].run(mpc_prog, data, session="mpc")

            async with trio.open_nursery() as inner_nursery:
                for i in range(n):
                    inner_nursery.start_soon(one, i)
            nursery.cancel_scope.cancel()
    assert not twice, f"frames delivered twice: {twice}"
    total, prod, dot = plaintext(data)
    for i, r in enumerate(results):
        assert_array_eq(r[:3], (total, prod, dot), f"party {i}")
        assert_array_eq(r[3], total if i == 0 else None, f"party {i} private output")
    for i in range(n):
        for j in range(n):
            if i != j:
                sent, got = parties[i].links.stats(j), parties[j].links.stats(i)
                assert sent.frames_sent == got.frames_delivered, f"{i}->{j}: sent {sent} got {got}"
                assert got.bad_frames == 0
    assert len(seen) == sum(p.links.stats(j).frames_sent for p in parties for j in range(n) if j != p.id)
    assert sum(p.links.stats(j).reconnects for p in parties for j in range(n) if j != p.id) >= 2
    assert sum(p.links.stats(j).frames_resent for p in parties for j in range(n) if j != p.id) >= 1


@pytest.mark.parametrize("transport", ["stream", "connector"])
async def test_local_cluster_runs_on_stream_links(transport: str, autojump_clock: Any) -> None:
    n = 3
    rng = seeded(11)
    net: Any = "stream"
    if transport == "connector":
        net = MemoryConnector(
            n, faults=lambda a, b: rng.randrange(1, 200_000) if rng.random() < 0.5 else None
        )
    data = mpc_inputs(n, 5000, 3)
    with trio.fail_after(600):
        async with actors.local_cluster(n, transport=net, modulus=P61, preprocessing="dealer") as c:
            results = await c.run(mpc_prog, data)
            assert all(isinstance(p.links, StreamLinks) for p in c.parties)
            assert c.parties[0].links.bytes_sent > 0
    total, prod, dot = plaintext(data)
    for i, r in enumerate(results):
        assert_array_eq(r[:3], (total, prod, dot), f"party {i}")


# ------------------------------------------------------------------------------------------ lost peers
async def cut_prog(s: Session, data: list[list[int]], cut: Callable[[], None]) -> Any:
    """``mpc_prog``, but party 0 cuts the network right after the first output (mid-session)."""
    xs = [await s.input(data[j] if s.party == j else None, owner=j) for j in range(s.n)]
    first = await s.output(xs[0])
    if s.party == 0:
        cut()
    prod = await s.mul(xs[0], xs[1])
    return first, await s.output(prod)


async def test_a_peer_gone_past_peer_timeout_aborts_sessions_and_the_party_recovers(
    autojump_clock: Any,
) -> None:
    cfg = LinkConfig(peer_timeout=5.0)
    net = MemoryConnector(3, config=cfg)
    data = mpc_inputs(3, 50, 4)
    with trio.fail_after(600):
        async with actors.local_cluster(3, transport=net, modulus=P61, preprocessing="dealer") as c:
            for p in c.parties:
                await p.links.wait_connected()
            t0 = trio.current_time()
            res = await c.run_each(cut_prog, data, lambda: net.partition(2))
            waited = trio.current_time() - t0
            for i in (0, 1):
                assert isinstance(res[i], AbortError), f"party {i} returned {res[i]!r}"
                assert "lost party 2" in str(res[i]), str(res[i])
            assert isinstance(res[2], AbortError) and "lost party" in str(res[2])
            assert cfg.peer_timeout <= waited < 2 * cfg.peer_timeout
            assert c.parties[0].links.stats(2).lost

            # while the peer is lost, messages to it fail at once, and new sessions abort within a
            # peer_timeout (the loss is reported again each period) instead of hanging
            with pytest.raises(AbortError, match="lost party 2"):
                await c.parties[0].links.send(2, Frame(MSG, "x", 0, b""))
            t0 = trio.current_time()
            res = await c.run_each(mpc_prog, data)
            assert all(isinstance(r, AbortError) for r in res), res
            assert trio.current_time() - t0 < 1.5 * cfg.peer_timeout

            net.heal(2)
            for p in c.parties:
                await p.links.wait_connected()
            assert not c.parties[0].links.stats(2).lost
            results = await c.run(mpc_prog, data)
    total, prod, dot = plaintext(data)
    for i, r in enumerate(results):
        assert_array_eq(r[:3], (total, prod, dot), f"party {i}")


async def test_a_restarted_peer_is_detected_and_its_stale_state_dropped(autojump_clock: Any) -> None:
    """A party that restarts (new links, new incarnation) before peer_timeout: the sessions that
    needed its previous life abort naming it, the frames held for that life are dropped, and the new
    party runs sessions with the old ones."""
    n = 3
    cfg = LinkConfig(peer_timeout=600.0)
    net = MemoryConnector(n, config=cfg)
    field = get_field(P61)
    seed = b"r" * 32
    data = mpc_inputs(n, 20, 5)

    def make_party(i: int) -> Party:
        p = Party(i, n, net.links(i), InsecureDealer(field, n, i, seed))
        p.links.on_peer_lost = p.engine.abort_sessions_with
        return p

    parties = [make_party(i) for i in range(n)]
    scopes: list[trio.CancelScope] = [trio.CancelScope() for _ in range(n)]

    async def serve(i: int, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        with scopes[i]:
            await parties[i].serve(task_status=task_status)

    with trio.fail_after(600):
        async with trio.open_nursery() as nursery:
            for i in range(n):
                await nursery.start(serve, i)
            out = await actors.Cluster(parties).run(mpc_prog, data)

            scopes[1].cancel()  # party 1 dies ...
            stuck: list[Any] = [None] * n

            async def session_without_1(i: int) -> None:
                try:
                    stuck[i] = await parties[i].run(mpc_prog, data, session="stuck")
                except AbortError as e:
                    stuck[i] = e

            async with trio.open_nursery() as sessions:
                sessions.start_soon(session_without_1, 0)
                sessions.start_soon(session_without_1, 2)
                await trio.sleep(1)
                assert parties[0].links.stats(1).unacked_frames > 0  # held for the dead party 1
                parties[1] = make_party(1)  # ... and comes back with no memory of its links
                scopes[1] = trio.CancelScope()
                await nursery.start(serve, 1)
            for i in (0, 2):
                assert isinstance(stuck[i], AbortError), stuck[i]
                assert "lost party 1" in str(stuck[i]) and "restarted" in str(stuck[i]), str(stuck[i])
            for p in parties:
                await p.links.wait_connected()
            for i in (0, 2):
                stats = parties[i].links.stats(1)
                assert stats.peer_restarts == 1
                assert stats.frames_resent == 0  # what was held for the old life was dropped, not resent
            again = await actors.Cluster(parties).run(mpc_prog, data)
            nursery.cancel_scope.cancel()
    for r in (out, again):
        total, prod, dot = plaintext(data)
        for i in range(n):
            assert_array_eq(r[i][:3], (total, prod, dot), f"party {i}")


async def test_while_a_peer_is_lost_messages_fail_fast_and_abort_notices_never_block(
    autojump_clock: Any,
) -> None:
    """Party 0 never shows up: party 1 reports it lost every peer_timeout; protocol messages to it
    raise at once, abort notices are queued while there is room and dropped (not waited on) after."""
    net = MemoryConnector(2, config=LinkConfig(max_unacked_frames=1, peer_timeout=1.0))
    links = net.links(1)
    lost: list[tuple[int, str]] = []
    links.on_peer_lost = lambda peer, reason: lost.append((peer, reason))
    async with trio.open_nursery() as nursery:
        await nursery.start(links.serve, Inbox().handler(1))
        await trio.sleep(2.5)
        assert [p for p, _ in lost] == [0, 0] and "no connection" in lost[0][1]
        assert links.stats(0).lost
        with trio.fail_after(0.5):  # any wait would jump the virtual clock past this
            await links.send(0, Frame(ABORT, "s", 0, "why"))
            await links.send(0, Frame(ABORT, "t", 0, "why"))
            with pytest.raises(AbortError, match="lost party 0") as info:
                await links.send(0, Frame(MSG, "s", 1, b""))
        assert info.value.culprit == 0
        assert links.stats(0).frames_sent == 1
        nursery.cancel_scope.cancel()


# ------------------------------------------------------------------------------------------ the protocol
class RawPeer:
    """Party 0 speaking the link protocol by hand, to drive a real link into the corners."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.reader = _RecordReader(stream, 1e9, LinkStats())

    async def hello(
        self, inc: bytes, peer_inc: bytes | None, nxt: int, base: int = 0, sent: int = 0
    ) -> _Hello:
        """Send our HELLO (``base``..``sent``: the frames we say we hold), return the link's."""
        await self.stream.send_all(encode_hello(_Hello(0, 1, inc, peer_inc, nxt, base, sent)))
        kind, body = await self.reader.read(1 << 30)
        assert kind == HELLO
        return decode_hello(body)

    async def data(self, seq: int, frame: Frame) -> None:
        body = encode_frame(frame.kind, frame.session, frame.step, frame.payload)
        await self.stream.send_all(struct.pack(">IBQ", 9 + len(body), DATA, seq) + body)

    async def read_data(self) -> int:
        """The seq of the next DATA record (ACKs and heartbeats skipped)."""
        while True:
            kind, body = await self.reader.read(1 << 30)
            if kind == DATA:
                return int.from_bytes(body[:8], "big")


async def raw_connection(links: StreamLinks) -> RawPeer:
    a, b = memory_stream_pair()
    await links.accept(b, 0)
    return RawPeer(a)


async def test_frames_repeated_by_the_peer_are_dropped_by_seq(autojump_clock: Any) -> None:
    net = MemoryConnector(2)
    links = net.links(1)
    inbox = Inbox()
    frames = [Frame(MSG, "s", k, bytes([k])) for k in range(3)]
    inc = b"\x07" * 16
    async with trio.open_nursery() as nursery:
        await nursery.start(links.serve, inbox.handler(1))
        with trio.fail_after(60):
            peer = await raw_connection(links)
            theirs = await peer.hello(inc, None, 0)
            assert theirs.next == 0 and theirs.inc == links.incarnation
            for seq in (0, 0, 1):
                await peer.data(seq, frames[seq])
            await inbox.wait(0, 1, 2)
            peer = await raw_connection(links)  # reconnect: the link says it has 0 and 1 ...
            theirs = await peer.hello(inc, links.incarnation, 0, 0, 3)  # we hold 0..2
            assert theirs.next == 2
            for seq in (1, 2):  # ... and drops a resent 1
                await peer.data(seq, frames[seq])
            await inbox.wait(0, 1, 3)
        nursery.cancel_scope.cancel()
    assert inbox.frames[0, 1] == frames
    assert links.stats(0).duplicates_dropped == 2 and links.stats(0).peer_restarts == 0


async def test_resending_starts_where_the_peers_hello_says(autojump_clock: Any) -> None:
    net = MemoryConnector(2)
    links = net.links(1)
    inc = b"\x08" * 16
    async with trio.open_nursery() as nursery:
        await nursery.start(links.serve, Inbox().handler(1))
        with trio.fail_after(60):
            for k in range(4):
                await links.send(0, Frame(MSG, "s", k, b"x"))
            peer = await raw_connection(links)
            await peer.hello(inc, None, 0)
            assert [await peer.read_data() for _ in range(4)] == [0, 1, 2, 3]
            peer = await raw_connection(links)
            await peer.hello(inc, links.incarnation, 2)  # got 0 and 1 only
            assert [await peer.read_data() for _ in range(2)] == [2, 3]
            assert links.stats(0).unacked_frames == 2  # the HELLO acknowledged 0 and 1
            with structlog.testing.capture_logs() as logs:
                peer = await raw_connection(links)
                # claims frames never sent: the two sides cannot resume, so both start over at 0
                # (rejecting the stream instead would wedge the link for good)
                theirs = await peer.hello(inc, links.incarnation, 9)
                assert (theirs.base, theirs.sent) == (2, 4)
                await eventually(lambda: links.stats(0).resyncs == 1)  # what it held is dropped
                await links.send(0, Frame(MSG, "t", 0, b"y"))
                assert await peer.read_data() == 0
            lost = [e for e in logs if e["event"] == "peer_lost"]
            assert lost and "link resynchronised" in lost[0]["reason"], logs
            assert links.stats(0).unacked_frames == 1
        nursery.cancel_scope.cancel()


async def test_a_stray_incarnation_never_wedges_the_link(autojump_clock: Any) -> None:
    """A stray connection with party 0's identity and a newer incarnation (a duplicate daemon, or
    someone holding the certificate) takes over party 1's end of the link; while it is connected the
    real, older party 0 is refused (the newest incarnation wins); once it is gone the real one gets
    back in, both sides see that they cannot resume where they were, start over at 0 and report the
    peer lost (the sessions that spanned the change abort), and frames flow both ways again. (The
    link used to refuse that HELLO forever: "peer expects seq 0, but we hold 3..4".)"""
    rng = seeded(11)
    lost: list[tuple[int, str]] = []
    async with linked(2, config=LinkConfig(peer_timeout=600.0)) as (_net, links, inbox):
        for i in (0, 1):
            links[i].on_peer_lost = lambda peer, why, i=i: lost.append((i, why))
        with trio.fail_after(300):
            await links[1].wait_connected()
            for k in range(3):
                await links[0].send(1, make_frame(0, k, 10, rng))
                await links[1].send(0, make_frame(1, k, 10, rng))
            await inbox.wait(0, 1, 3)
            await inbox.wait(1, 0, 3)
            stray = await raw_connection(links[1])
            await stray.hello(new_incarnation(), None, 0)
            await eventually(lambda: links[1].stats(0).peer_restarts == 1)
            await eventually(lambda: links[1].stats(0).rejected_streams >= 1)  # the real 0, refused
            await stray.stream.aclose()
            await eventually(lambda: links[1].stats(0).up and links[1].stats(0).peer_restarts == 2)
            for k in range(3, 6):
                await links[0].send(1, make_frame(0, k, 10, rng))
                await links[1].send(0, make_frame(1, k, 10, rng))
            await inbox.wait(0, 1, 6)
            await inbox.wait(1, 0, 6)
    for frm, to in ((0, 1), (1, 0)):
        assert [f.step for f in inbox.frames[frm, to]] == list(range(6))
    assert {i for i, _ in lost} == {0, 1}
    assert links[0].stats(1).resyncs >= 1  # party 0 could not resume where it was with party 1


def test_both_sides_decide_alike_whether_to_resume() -> None:
    """``resumable`` is symmetric, accepts a plain reconnect and a restart, and refuses a side that
    met another incarnation of its peer in between."""
    a, b, b2 = b"a" * 16, b"b" * 16, b"c" * 16

    def h(inc: bytes, peer_inc: bytes | None, nxt: int, base: int, sent: int) -> _Hello:
        return _Hello(0, 1, inc, peer_inc, nxt, base, sent)

    cases = {
        "reconnect": (h(a, b, 5, 3, 9), h(b, a, 3, 5, 7), True),
        "first contact": (h(a, None, 0, 0, 4), h(b, None, 0, 0, 2), True),
        "b restarted": (h(a, b, 5, 3, 9), h(b2, None, 0, 0, 2), True),
        "a met a stray b": (h(a, b2, 0, 0, 1), h(b, a, 3, 5, 7), False),
        "next beyond the window": (h(a, b, 5, 3, 9), h(b, a, 10, 5, 7), False),
        "next before the window": (h(a, b, 5, 3, 9), h(b, a, 2, 5, 7), False),
    }
    for name, (x, y, expected) in cases.items():
        assert resumable(x, y) == resumable(y, x) == expected, name


# ------------------------------------------------------------------------------------------ bad peers
HELLO_KW = {"inc": b"\x01" * 16, "peer_inc": None, "next": 0}  # base, sent: 0
ATTACKS = {
    "garbage": b"\x00\x00\x00\x08GARBAGE!",
    "random_bytes": seeded(9).randbytes(64),
    "huge_length": b"\xff\xff\xff\xff" + b"x" * 100,
    "hello_too_long": (5000).to_bytes(4, "big") + b"\x01" * 100,
    "not_msgpack_hello": b"\x00\x00\x00\x05\x01\xc1\xc1\xc1\xc1",
    "wrong_party_in_hello": encode_hello(_Hello(party=7, peer=1, **HELLO_KW)),
    "wrong_peer_in_hello": encode_hello(_Hello(party=0, peer=0, **HELLO_KW)),
    "data_before_hello": struct.pack(">IBQ", 9, DATA, 0),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
async def test_a_bad_inbound_stream_is_closed_and_logged_and_the_link_carries_on(
    attack: str, autojump_clock: Any
) -> None:
    rng = seeded(6)
    async with linked(2) as (net, links, inbox):
        with trio.fail_after(60):
            await links[1].wait_connected()
            await links[0].send(1, make_frame(0, 0, 10, rng))
            await inbox.wait(0, 1, 1)
            a, b = memory_stream_pair()
            with structlog.testing.capture_logs() as logs:
                await links[1].accept(b, 0)  # the transport vouches for party 0
                await a.send_all(ATTACKS[attack])
                await read_until_closed(a)  # the victim closes it (a hang here fails the test)
            rejected = [e for e in logs if e["event"] == "link_rejected"]
            assert rejected and rejected[0]["peer"] == 0, logs
            assert "GARBAGE" not in repr(logs)  # reasons, never payload bytes
            stats = links[1].stats(0)
            assert stats.rejected_streams == 1
            assert stats.up and stats.reconnects == 0, "the good connection was disturbed"
            await links[0].send(1, make_frame(0, 1, 10, rng))
            await inbox.wait(0, 1, 2)
            assert net.kill(0, 1)  # and a reconnect after it works
            await links[0].send(1, make_frame(0, 2, 10, rng))
            await inbox.wait(0, 1, 3)
            assert links[1].stats(0).reconnects == 1
    assert [f.step for f in inbox.frames[0, 1]] == [0, 1, 2]


async def test_inbound_streams_from_parties_we_dial_or_unknown_ids_are_refused(autojump_clock: Any) -> None:
    async with linked(3) as (_net, links, _inbox):
        for victim, claimed in ((0, 1), (1, 2), (1, 5), (1, 1)):
            a, b = memory_stream_pair()
            with structlog.testing.capture_logs() as logs:
                await links[victim].accept(b, claimed)
            assert [e["event"] for e in logs] == ["inbound_refused"]
            assert await read_until_closed(a) == b""


async def test_a_connector_vouching_for_the_wrong_party_is_rejected(autojump_clock: Any) -> None:
    """The dialer checks the id the transport authenticated, not only the HELLO."""
    net = MemoryConnector(2)
    calls = 0

    class Impostor:
        async def connect(self, peer: int) -> tuple[trio.abc.Stream, int]:
            nonlocal calls
            calls += 1
            stream, who = await net.connect(0, peer)
            return stream, (who + 1 if calls == 1 else who)

    links0 = StreamLinks(0, 2, Impostor())
    links1 = net.links(1)
    inbox = Inbox()
    with trio.fail_after(60), structlog.testing.capture_logs() as logs:
        async with trio.open_nursery() as nursery:
            await nursery.start(links1.serve, inbox.handler(1))
            await nursery.start(links0.serve, inbox.handler(0))
            await links0.send(1, Frame(MSG, "s", 0, b"hi"))
            await inbox.wait(0, 1, 1)
            nursery.cancel_scope.cancel()
    assert calls >= 2 and links0.stats(1).rejected_streams == 1
    assert any(e["event"] == "link_rejected" and e.get("who") == 2 for e in logs)


GOOD_FRAME = encode_frame(MSG, "x", 0, b"")
CORRUPTIONS = {
    "huge_length": b"\xff\xff\xff\xff",
    "unknown_record_type": struct.pack(">IB", 1, 9),
    "seq_gap": struct.pack(">IBQ", 9 + len(GOOD_FRAME), DATA, 1000) + GOOD_FRAME,
    "ack_of_unsent_frames": struct.pack(">IBQ", 9, ACK, 10**6),
    "short_ack": struct.pack(">IBI", 5, ACK, 0),
    "second_hello": encode_hello(_Hello(party=0, peer=1, **HELLO_KW)),
}


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
async def test_a_corrupted_record_mid_stream_resets_the_connection_and_loses_nothing(
    corruption: str, autojump_clock: Any
) -> None:
    rng = seeded(7)
    frames = [make_frame(0, k, rng.randrange(0, 5000), rng) for k in range(20)]
    async with linked(2) as (net, links, inbox):
        with trio.fail_after(60):
            for f in frames[:10]:
                await links[0].send(1, f)
            await inbox.wait(0, 1, 10)
            await eventually(lambda: links[0].stats(1).unacked_frames == 0)
            with structlog.testing.capture_logs() as logs:
                net.inject(0, 1, CORRUPTIONS[corruption])
                for f in frames[10:]:
                    await links[0].send(1, f)
                await inbox.wait(0, 1, 20)
        assert inbox.frames[0, 1] == frames
        assert any(e["event"] == "link_protocol_error" and e["party"] == 1 for e in logs), logs
        assert links[1].stats(0).reconnects == 1
