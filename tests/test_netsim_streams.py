"""netsim's simulated streams: trio conformance, timing, every fault kind, and seed determinism.

Timing tests run under pytest-trio's ``autojump_clock`` (virtual time jumps whenever every task is
blocked), so the expected delivery times are exact up to float rounding, and a stream that loses a wake-up
shows up as a ``TooSlowError`` from ``fail_after`` at once instead of a hang.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Awaitable, Callable

import pytest
import trio
import trio.testing
from pytest import approx

from netsim import (
    PROFILE_SPECS,
    PROFILES,
    FaultEvent,
    FaultProfile,
    FaultSpecError,
    Network,
    SimStream,
)
from netsim.events import ConnId

DEADLINE = 600.0  # virtual seconds: generous, and free under the autojump clock

StreamPair = tuple[SimStream, SimStream]


def _maker(profile: FaultProfile | str, seed: int = 0) -> Callable[[], Awaitable[StreamPair]]:
    async def make() -> StreamPair:
        return await Network(seed, profile=profile).connect(0, 1)

    return make


def _kinds(net: Network) -> list[str]:
    return [e.kind for e in net.events]


async def _receive_exactly(stream: SimStream, n: int) -> bytes:
    got = bytearray()
    while len(got) < n:
        data = await stream.receive_some()
        assert data, "unexpected EOF"
        got += data
    return bytes(got)


# ---- trio's own conformance checks -------------------------------------------------------------------


async def test_ideal_streams_pass_trio_conformance_checks() -> None:
    with trio.fail_after(60):
        await trio.testing.check_half_closeable_stream(_maker("none"), _maker(FaultProfile(window=0)))


@pytest.mark.parametrize(
    "spec",
    [
        "latency=3ms,jitter=1ms,bandwidth=10MB,window=64KiB",
        "wan",
        str(PROFILES["chaos"].without_faults()),
        "latency=1ms,window=1KiB",
    ],
)
async def test_shaped_streams_pass_trio_conformance_checks(autojump_clock: trio.abc.Clock, spec: str) -> None:
    profile = FaultProfile.parse(spec)
    assert not profile.has_faults
    clogged = FaultProfile(
        latency=profile.latency, jitter=profile.jitter, bandwidth=profile.bandwidth, window=0
    )
    with trio.fail_after(DEADLINE):
        await trio.testing.check_half_closeable_stream(_maker(profile), _maker(clogged))


# ---- timing ------------------------------------------------------------------------------------------


async def test_latency_and_bandwidth_give_the_expected_delivery_times(autojump_clock: trio.abc.Clock) -> None:
    net = Network(0, profile="latency=10ms,bandwidth=1MB")
    a, b = await net.connect(0, 1)
    t0 = trio.current_time()
    assert t0 == approx(0.020)  # the handshake takes one round trip
    arrivals: list[tuple[float, int]] = []

    async def reader() -> None:
        got = 0
        while got < 300_000:
            got += len(await b.receive_some())
            arrivals.append((trio.current_time() - t0, got))

    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            await a.send_all(bytes(100_000))  # 0.1 s on the wire ...
            assert trio.current_time() - t0 == approx(0.1)
            await a.send_all(bytes(200_000))  # ... then 0.2 s more
            assert trio.current_time() - t0 == approx(0.3)
    # each chunk arrives whole, one latency after its last byte left
    assert arrivals == [(approx(0.11), 100_000), (approx(0.31), 300_000)]

    # the other direction has its own link, idle all this time
    t1 = trio.current_time()
    await b.send_all(bytes(50_000))
    assert await _receive_exactly(a, 50_000) == bytes(50_000)
    assert trio.current_time() - t1 == approx(0.06)


async def test_connections_on_one_link_share_its_bandwidth(autojump_clock: trio.abc.Clock) -> None:
    net = Network(0, profile="latency=10ms,bandwidth=1MB")
    (a1, b1), (a2, b2) = await net.connect(0, 1), await net.connect(0, 1)
    t0 = trio.current_time()
    done: list[float] = []

    async def one(a: SimStream, b: SimStream) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(a.send_all, bytes(100_000))
            await _receive_exactly(b, 100_000)
            done.append(trio.current_time() - t0)

    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(one, a1, b1)
            nursery.start_soon(one, a2, b2)
    assert sorted(done) == [approx(0.11), approx(0.21)]
    assert net.bytes_sent[0, 1] == 200_000 and net.bytes_sent[1, 0] == 0


async def test_jitter_varies_the_delay_but_never_the_byte_order(autojump_clock: trio.abc.Clock) -> None:
    net = Network(5, profile="latency=50ms,jitter=40ms")
    a, b = await net.connect(0, 1)
    n, size = 200, 10
    sent_at: list[float] = []
    received: list[tuple[float, int]] = []
    payload = random.Random(1).randbytes(n * size)  # noqa: S311

    async def reader() -> None:
        got = 0
        while got < n * size:
            got += len(await b.receive_some())
            received.append((trio.current_time(), got))

    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            for i in range(n):
                sent_at.append(trio.current_time())
                await a.send_all(payload[i * size : (i + 1) * size])
                await trio.sleep(0.001)
    # when did the last byte of chunk i arrive?
    delays = []
    for i, t_sent in enumerate(sent_at):
        t_arrived = next(t for t, got in received if got >= (i + 1) * size)
        delays.append(t_arrived - t_sent)
    assert all(0.01 - 1e-9 <= d <= 0.09 + 1e-9 for d in delays), delays
    assert len({round(d, 6) for d in delays}) > n // 4  # jitter was applied
    assert all(x[0] <= y[0] for x, y in zip(received, received[1:], strict=False))


async def test_window_blocks_the_sender_until_the_reader_reads(autojump_clock: trio.abc.Clock) -> None:
    net = Network(0, profile="latency=1s,window=1000")
    a, b = await net.connect(0, 1)
    t0 = trio.current_time()
    arrivals: list[tuple[float, int]] = []

    async def reader() -> None:
        got = 0
        while got < 3000:
            data = await b.receive_some()
            got += len(data)
            arrivals.append((trio.current_time() - t0, len(data)))

    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            await a.send_all(bytes(3000))
            # the third 1000-byte piece could only leave when the second was read, at t0 + 2
            assert trio.current_time() - t0 == approx(2.0)
    assert arrivals == [(approx(1.0), 1000), (approx(2.0), 1000), (approx(3.0), 1000)]


async def test_a_simulated_hour_runs_in_seconds(autojump_clock: trio.abc.Clock) -> None:
    net = Network(11, profile="latency=40ms,jitter=5ms,bandwidth=12.5MB,stall=0.02:500ms,partition=0.01:2s")
    wall0 = time.perf_counter()
    pongs = 0
    with trio.fail_after(2 * 3600):
        async with trio.open_nursery() as nursery:
            await nursery.start(net.run)
            a, b = await net.connect(0, 1)
            t0 = trio.current_time()
            while trio.current_time() - t0 < 3600:
                await a.send_all(b"ping")
                assert await b.receive_some(4) == b"ping"
                await b.send_all(b"pong")
                assert await a.receive_some(4) == b"pong"
                pongs += 1
                await trio.sleep(1.0)
            nursery.cancel_scope.cancel()
    wall = time.perf_counter() - wall0
    assert trio.current_time() - t0 >= 3600
    assert 3000 < pongs < 3600  # one ping a second, minus time lost to stalls and partitions
    kinds = set(_kinds(net))
    assert {"stall", "partition", "heal"} <= kinds
    assert wall < 60, f"a virtual hour took {wall:.1f} s of wall time"


# ---- faults ------------------------------------------------------------------------------------------


async def test_reset_breaks_both_ends_and_wakes_blocked_readers(autojump_clock: trio.abc.Clock) -> None:
    net = Network(0, profile="latency=5ms")
    a, b = await net.connect(0, 1)
    await a.send_all(b"before")
    await trio.sleep(0.01)  # "before" has arrived at b
    woken: list[type[BaseException]] = []

    async def blocked_reader() -> None:
        with pytest.raises(trio.BrokenResourceError) as info:
            await a.receive_some()
        woken.append(info.type)

    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(blocked_reader)
            await trio.testing.wait_all_tasks_blocked()
            net.reset(0, 1)
    assert woken == [trio.BrokenResourceError]
    assert await b.receive_some() == b"before"  # arrived before the reset: still readable
    for end in (a, b):
        with pytest.raises(trio.BrokenResourceError):
            await end.receive_some()
        with pytest.raises(trio.BrokenResourceError):
            await end.send_all(b"after")
        await end.aclose()
        with pytest.raises(trio.ClosedResourceError):
            await end.send_all(b"after")
    assert [(e.kind, e.link, e.conn) for e in net.events] == [("reset", (0, 1), (0, 1, 0))]


async def test_reset_rate_one_resets_on_the_first_chunk(autojump_clock: trio.abc.Clock) -> None:
    net = Network(0, profile="reset=1")
    a, b = await net.connect(0, 1)
    await a.send_all(b"")  # an empty send is not a chunk: no coin is tossed
    with pytest.raises(trio.BrokenResourceError):
        await a.send_all(b"x")
    with pytest.raises(trio.BrokenResourceError):
        await b.receive_some()
    with pytest.raises(trio.BrokenResourceError):
        await b.send_all(b"y")
    assert [(e.kind, e.link, e.conn, e.details["size"]) for e in net.events] == [
        ("reset", (0, 1), (0, 1, 0), 1)
    ]


async def test_stall_holds_one_direction_for_its_duration(autojump_clock: trio.abc.Clock) -> None:
    net = Network(0, profile="latency=10ms")
    a, b = await net.connect(0, 1)
    t0 = trio.current_time()
    net.stall(0, 1, 2.0)
    with trio.fail_after(DEADLINE):
        await b.send_all(b"free")
        assert await a.receive_some() == b"free"
        assert trio.current_time() - t0 == approx(0.01)
        await a.send_all(b"held")
        assert await b.receive_some() == b"held"
        assert trio.current_time() - t0 == approx(2.0)
        t1 = trio.current_time()
        await a.send_all(b"after")
        assert await b.receive_some() == b"after"
        assert trio.current_time() - t1 == approx(0.01)
    assert [(e.kind, e.link, e.details) for e in net.events] == [("stall", (0, 1), {"duration": 2.0})]

    # a stall rate of 1 holds every chunk
    net = Network(0, profile="latency=10ms,stall=1:500ms")
    a, b = await net.connect(0, 1)
    for _ in range(3):
        t1 = trio.current_time()
        await a.send_all(b"x")
        assert await b.receive_some() == b"x"
        assert trio.current_time() - t1 == approx(0.5)
    assert _kinds(net) == ["stall"] * 3


async def test_partition_holds_crossing_bytes_and_connects_until_it_heals(
    autojump_clock: trio.abc.Clock,
) -> None:
    net = Network(0, 3, profile="latency=10ms")
    arrived: list[tuple[bytes, float]] = []
    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            await nursery.start(net.run)
            a0, b1 = await net.connect(0, 1)
            c1, c2 = await net.connect(1, 2)
            t0 = trio.current_time()
            net.partition([0], [1, 2], duration=5.0)
            assert net.partitioned(0, 1) and net.partitioned(2, 0) and not net.partitioned(1, 2)

            async def read(stream: SimStream) -> None:
                data = await stream.receive_some()
                arrived.append((data, trio.current_time() - t0))

            nursery.start_soon(read, b1)
            nursery.start_soon(read, c2)
            await a0.send_all(b"held")  # the window is open: the sender does not notice
            await c1.send_all(b"same side")
            await trio.sleep(4.9)
            assert arrived == [(b"same side", approx(0.01))]
            s0, s1 = await net.connect(0, 1)  # hangs until the heal at 5 s, then one round trip
            assert trio.current_time() - t0 == approx(5.02)
            await s0.send_all(b"new")
            assert await s1.receive_some() == b"new"
            nursery.cancel_scope.cancel()
    assert arrived == [(b"same side", approx(0.01)), (b"held", approx(5.01))]
    events = net.events
    assert [e.kind for e in events] == ["partition", "heal"]
    assert events[0].details == {"groups": ((0,), (1, 2)), "duration": 5.0}
    assert events[1].time - events[0].time == approx(5.0)


async def test_connects_across_a_lasting_partition_time_out(autojump_clock: trio.abc.Clock) -> None:
    net = Network(0, 3, profile="latency=10ms", connect_timeout=3.0)
    net.listen(1)
    net.partition([0, 2], [1])
    t0 = trio.current_time()
    with pytest.raises(TimeoutError):
        await net.dial(0, 1)
    assert trio.current_time() - t0 == approx(3.0)
    a, b = await net.connect(0, 2)  # same side: fine
    net.heal()
    s = await net.dial(0, 1)
    assert s.remote == 1 and s.local == 0
    assert _kinds(net) == ["partition", "heal"]


async def test_corruption_flips_the_logged_bits(autojump_clock: trio.abc.Clock) -> None:
    net = Network(3, profile="latency=1ms,corrupt=1")
    a, b = await net.connect(0, 1)
    payloads = [random.Random(i).randbytes(64) for i in range(5)]  # noqa: S311
    for payload in payloads:
        await a.send_all(payload)
        got = await _receive_exactly(b, len(payload))
        assert got != payload and len(got) == len(payload)
        diff = int.from_bytes(got, "little") ^ int.from_bytes(payload, "little")
        flipped = {(i // 8, i % 8) for i in range(8 * len(payload)) if diff >> i & 1}
        event = net.events[-1]
        assert event.kind == "corrupt" and event.link == (0, 1)
        assert flipped == set(event.details["flips"]) and 1 <= len(flipped) <= 3

    # one chunk by hand, on an ideal link; the next one is clean
    net = Network(3)
    a, b = await net.connect(0, 1)
    net.inject_next(0, 1, "corrupt")
    await a.send_all(b"\x00" * 16)
    assert await b.receive_some() != b"\x00" * 16
    await a.send_all(b"\x00" * 16)
    assert await b.receive_some() == b"\x00" * 16
    assert [(e.kind, e.details["forced"]) for e in net.events] == [("corrupt", True)]


async def test_truncation_delivers_a_prefix_then_resets(autojump_clock: trio.abc.Clock) -> None:
    net = Network(4, profile="latency=10ms,truncate=1")
    a, b = await net.connect(0, 1)
    payload = bytes(range(256)) * 4
    await a.send_all(payload)  # the sender does not notice yet
    got = bytearray()
    with pytest.raises(trio.BrokenResourceError):
        while True:
            got += await b.receive_some()
    (event,) = net.events
    assert event.kind == "truncate" and event.details["size"] == len(payload)
    assert bytes(got) == payload[: event.details["kept"]] and len(got) < len(payload)
    with pytest.raises(trio.BrokenResourceError):
        await a.send_all(b"more")


async def test_half_open_link_drops_one_direction_silently(autojump_clock: trio.abc.Clock) -> None:
    net = Network(0, profile="latency=10ms")
    a, b = await net.connect(0, 1)
    net.half_open(0, 1)
    await a.send_all(b"lost")  # no error: the sender cannot tell
    with trio.move_on_after(30) as waited:
        await b.receive_some()
    assert waited.cancelled_caught
    await b.send_all(b"back")  # the other direction still works
    assert await a.receive_some() == b"back"
    assert [(e.kind, e.link) for e in net.events] == [("half_open", (0, 1))]


async def test_crash_resets_a_partys_streams_and_restart_lets_it_back(autojump_clock: trio.abc.Clock) -> None:
    net = Network(0, 3, profile="latency=1ms")
    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            await nursery.start(net.run)
            listener = net.listen(1)
            s0 = await net.dial(0, 1)
            s1 = await listener.accept()
            assert (s1.local, s1.remote, s1.conn_id) == (1, 0, (0, 1, 0))
            x0, x2 = await net.connect(0, 2)
            t0 = trio.current_time()

            async def accept_breaks() -> None:
                with pytest.raises(trio.BrokenResourceError):
                    await listener.accept()

            nursery.start_soon(accept_breaks)
            await trio.testing.wait_all_tasks_blocked()
            net.crash(1, duration=2.0)
            assert not net.is_up(1)
            with pytest.raises(trio.BrokenResourceError):
                await s0.send_all(b"x")
            with pytest.raises(trio.BrokenResourceError):
                await s1.receive_some()
            with pytest.raises(ConnectionRefusedError):
                await net.dial(0, 1)
            with pytest.raises(ConnectionRefusedError):
                await net.connect(1, 2)
            with pytest.raises(ConnectionRefusedError):
                net.listen(1)
            await x0.send_all(b"unaffected")
            assert await x2.receive_some() == b"unaffected"

            await net.wait_until_up(1)
            assert trio.current_time() - t0 == approx(2.0)
            listener = net.listen(1)
            s0 = await net.dial(0, 1)
            s1 = await listener.accept()
            await s0.send_all(b"again")
            assert await s1.receive_some() == b"again"
            assert s1.conn_id == (0, 1, 1)
            nursery.cancel_scope.cancel()
    assert [(e.kind, e.details["party"]) for e in net.events] == [("crash", 1), ("restart", 1)]


async def test_refused_without_listener_and_listener_close(autojump_clock: trio.abc.Clock) -> None:
    net = Network(0, profile="latency=1ms")
    with pytest.raises(ConnectionRefusedError):
        await net.dial(0, 1)
    listener = net.listen(1)
    with pytest.raises(OSError, match="already listening"):
        net.listen(1)
    s0 = await net.dial(0, 1)  # queued, never accepted
    await listener.aclose()
    with pytest.raises(trio.BrokenResourceError):
        await s0.send_all(b"x")
    with pytest.raises(trio.ClosedResourceError):
        await listener.accept()
    net.listen(1)  # the id is free again


async def test_bad_arguments_are_rejected() -> None:
    net = Network(0, 3)
    with pytest.raises(ValueError, match="unknown party"):
        net.crash(7)
    with pytest.raises(ValueError, match="no link"):
        await net.dial(0, 0)
    with pytest.raises(ValueError, match="two partition groups"):
        net.partition([0, 1], [1, 2])
    with pytest.raises(ValueError, match="at least two"):
        net.partition([0, 1, 2])
    with pytest.raises(ValueError, match="cannot inject 'stall'"):
        net.inject_next(0, 1, "stall")
    with pytest.raises(ValueError, match="distinct"):
        Network(0, [1, 1])


# ---- determinism -------------------------------------------------------------------------------------

CHATTY = (
    "latency=5ms,jitter=3ms,bandwidth=2MB,reset=0.01,stall=0.03:150ms,corrupt=0.05,truncate=0.01,"
    "half_open=0.01,partition=0.3:500ms,crash=0.2:400ms"
)


def _payload(a: int, b: int, attempt: int, i: int) -> bytes:
    return hashlib.sha256(f"{a}>{b}/{attempt}/{i}".encode()).digest() * (1 + i % 5)


def _chatter(seed: int, spec: str = CHATTY) -> tuple[list[FaultEvent], dict[ConnId, bytes]]:
    """Three parties dial each other, send, get cut off, reconnect; return the log and what arrived."""
    net = Network(seed, 3, profile=spec, connect_timeout=0.75)
    received: dict[ConnId, bytearray] = {}

    async def read(stream: SimStream) -> None:
        buf = received.setdefault(stream.conn_id, bytearray())
        try:
            while data := await stream.receive_some(1000):
                buf += data
            buf += b"<eof>"
        except trio.BrokenResourceError:
            buf += b"<broken>"
        finally:
            await stream.aclose()

    async def serve(party: int, nursery: trio.Nursery) -> None:
        while True:
            await net.wait_until_up(party)
            listener = net.listen(party)
            try:
                while True:
                    nursery.start_soon(read, await listener.accept())
            except trio.BrokenResourceError:
                pass  # crashed: listen again once restarted

    async def client(a: int, b: int) -> None:
        for attempt in range(6):
            try:
                stream = await net.dial(a, b)
            except OSError:
                await trio.sleep(0.237)
                continue
            try:
                for i in range(40):
                    await stream.send_all(_payload(a, b, attempt, i))
                    await trio.sleep(0.0113)
                await stream.send_eof()
            except trio.BrokenResourceError:
                pass
            finally:
                await stream.aclose()
            await trio.sleep(0.237)

    async def main() -> None:
        with trio.fail_after(DEADLINE):
            async with trio.open_nursery() as nursery:
                await nursery.start(net.run)
                for p in net.parties:
                    nursery.start_soon(serve, p, nursery)
                async with trio.open_nursery() as clients:
                    for a in net.parties:
                        for b in net.parties:
                            if a != b:
                                clients.start_soon(client, a, b)
                await trio.sleep(1.0)  # let the last bytes land
                nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    return net.events, {cid: bytes(buf) for cid, buf in received.items()}


def test_same_seed_gives_the_same_faults_and_bytes_and_another_seed_does_not() -> None:
    # separate trio.run calls: trio reorders runnable tasks at random, so this also checks that the
    # schedule does not depend on the scheduler
    events, received = _chatter(2024)
    every_kind = {
        "reset",
        "stall",
        "corrupt",
        "truncate",
        "half_open",
        "partition",
        "heal",
        "crash",
        "restart",
    }
    assert every_kind <= {e.kind for e in events}, [str(e) for e in events]
    assert len(received) > 6  # reconnections happened
    assert events[0].time >= 0.01  # times count from the network's first use (here one handshake before)
    again_events, again_received = _chatter(2024)
    assert again_events == events
    assert again_received == received

    other_events, other_received = _chatter(2025)
    assert other_events != events
    assert other_received != received


def test_the_fault_schedule_comes_from_the_seed_alone() -> None:
    """Same seed, same calls: identical coin tosses even in a network with a different history."""

    async def first_faults(seed: int, warm_up: bool) -> list[tuple[str, tuple[int, int] | None]]:
        net = Network(seed, 3, profile="corrupt=0.3,reset=0.05,stall=0.1:1s")
        if warm_up:  # traffic on other links must not shift the draws of link 0->1
            x, y = await net.connect(1, 2)
            for _ in range(10):
                await x.send_all(b"noise")
        a, _ = await net.connect(0, 1)
        for _ in range(30):
            try:
                await a.send_all(b"0123456789")
            except trio.BrokenResourceError:
                break
        return [(e.kind, e.conn) for e in net.events if e.link == (0, 1)]

    def run(seed: int, warm_up: bool) -> list[tuple[str, tuple[int, int] | None]]:
        return trio.run(first_faults, seed, warm_up, clock=trio.testing.MockClock(autojump_threshold=0))

    assert run(9, False) == run(9, True)
    assert run(9, False) != run(10, False)


# ---- the fault spec ----------------------------------------------------------------------------------


def test_fault_spec_parses_the_documented_example() -> None:
    p = FaultProfile.parse("reset=0.01,stall=0.02:0.5,corrupt=0.001,latency=5ms,jitter=1ms,bandwidth=100MB")
    assert p == FaultProfile(
        latency=0.005, jitter=0.001, bandwidth=100e6, reset=0.01, stall=0.02, stall_for=0.5, corrupt=0.001
    )
    assert FaultProfile.parse(str(p)) == p
    q = FaultProfile.parse(
        " flaky , latency=50ms, window=64KiB, partition=2/min:3s, crash=1/h:90s,"
        " bandwidth=1Gbit/s, truncate=5%"
    )
    assert q.reset == PROFILES["flaky"].reset and q.stall_for == 0.5  # from the named profile
    assert (q.latency, q.window, q.bandwidth, q.truncate) == (0.05, 65536, 125e6, 0.05)
    assert (q.partition, q.crash) == (approx(1 / 30), approx(1 / 3600))
    assert (q.partition_for, q.crash_for) == (3.0, 90.0)
    assert FaultProfile.parse("window=inf,bandwidth=inf") == FaultProfile(window=None, bandwidth=None)
    c = FaultProfile.parse("cut=320KiB:1MiB")
    assert (c.cut, c.cut_max) == (320 * 1024, 1 << 20) and c.has_faults
    assert FaultProfile.parse(str(c)) == c and FaultProfile.parse("cut=4KiB").cut_max == 4096
    r = FaultProfile.parse("latency=2ms,restart=45s")
    assert r.restart == 45.0 and r.has_faults and FaultProfile.parse(str(r)) == r
    assert FaultProfile.parse("") == FaultProfile() == PROFILES["none"]


@pytest.mark.parametrize("name", sorted(PROFILE_SPECS))
def test_named_profiles_round_trip(name: str) -> None:
    profile = PROFILES[name]
    assert FaultProfile.parse(name) == profile == FaultProfile.parse(PROFILE_SPECS[name])
    assert FaultProfile.parse(str(profile)) == profile
    assert FaultProfile.of(name) == profile and FaultProfile.of(profile) is profile
    assert profile.without_faults().has_faults is False


def test_the_required_named_profiles_exist_and_inject_what_their_name_says() -> None:
    assert {"none", "flaky", "lossy", "partition"} <= set(PROFILES)
    assert not PROFILES["none"].has_faults
    assert PROFILES["flaky"].reset > 0 and PROFILES["flaky"].stall > 0
    assert PROFILES["lossy"].corrupt > 0 and PROFILES["lossy"].truncate > 0
    assert PROFILES["partition"].partition > 0 and PROFILES["partition"].partition_for > 0


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("stall=0.02", "'stall=0.02'.*stall=RATE:DURATION"),
        ("reset=2", "'reset=2'.*not in \\[0, 1\\]"),
        ("latency=5parsecs", "'latency=5parsecs'.*unknown unit 'parsecs'"),
        ("jitter=fast", "'jitter=fast'.*not a duration"),
        ("colour=blue", "'colour=blue'.*unknown key 'colour'"),
        ("flakey", "'flakey'.*not a key=value pair nor a profile name"),
        ("latency=1ms,lossy", "'lossy'.*must come first"),
        ("latency=1ms,latency=2ms", "'latency=2ms'.*given twice"),
        ("bandwidth=0", "'bandwidth=0'.*bandwidth must be > 0"),
        ("partition=often:1s", "'partition=often:1s'.*not a rate"),
        ("crash=0.1:0", "'crash=0.1:0'.*needs a duration > 0"),
        ("window=1.5B", "'window=1.5B'.*whole number"),
        ("reset=0.1,,corrupt=0.1", "empty term"),
    ],
)
def test_fault_spec_errors_name_the_bad_term(spec: str, message: str) -> None:
    with pytest.raises(FaultSpecError, match=message):
        FaultProfile.parse(spec)


def test_fault_spec_errors_are_config_errors() -> None:
    from protocols.errors import ConfigError

    with pytest.raises(ConfigError):
        FaultProfile.parse("nonsense")
    with pytest.raises(ValueError):
        FaultProfile.parse("nonsense")


def test_events_print_as_one_line_each() -> None:
    event = FaultEvent(1.5, "corrupt", (0, 1), (0, 1, 2), {"flips": ((3, 4),)})
    assert str(event) == "1.500000s corrupt 0->1 conn=0>1#2 flips=((3, 4),)"
    assert str(FaultEvent(2.0, "crash", details={"party": 1})) == "2.000000s crash party=1"
