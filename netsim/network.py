"""``Network``: a seeded, fault-injecting network of trio streams between numbered parties, in virtual time.

    net = Network(seed=7, parties=3, profile="flaky")
    async with trio.open_nursery() as nursery:
        await nursery.start(net.run)              # timed faults: schedules, partitions, crashes
        listener = net.listen(1)                  # party 1 accepts ...
        stream = await net.dial(0, 1)             # ... party 0 connects: a trio.abc.HalfCloseableStream
        ...
    print(*net.events, sep="\\n")

Two kinds of faults, because they have two kinds of causes:

* *per-chunk* faults (reset, stall, corruption, truncation, half-open) strike a chunk as it is sent: their
  coins are tossed inside ``send_all`` from that connection direction's own RNG (see ``streams.py``);
* *timeline* faults (partition and heal, crash and restart, and anything passed to ``schedule``) strike at
  virtual times, from ``run()``. Without ``run()`` nothing timed happens, and the streams still work.

Every fault can also be injected by hand (``reset``, ``stall``, ``partition``, ``crash``, ...), which is
what tests and adversary scripts do.

Determinism. All randomness comes from ``random.Random(seed)``, but not as one stream shared by every
task: trio randomizes the order in which runnable tasks are resumed, so draws shared between tasks would
be handed out in a different order on every run. Instead the master RNG, at construction and in a fixed
order, seeds one generator per directed link and one per timeline process; each connection direction then
gets its own generator derived from its link's seed and its name (dialer, acceptor, index). A run's fault
schedule is then a function of the seed and of what the application does, not of the scheduler. Two
things remain up to the scheduler, so applications that want exact replay avoid them: several
connections sending on one directed link at the same virtual instant (they queue on the link's
bandwidth in scheduler order), and an application step at exactly the virtual instant of a timed fault.

Time is ``trio.current_time()``, so under ``trio.testing.MockClock(autojump_threshold=0)`` a simulated
hour takes as long as the work done in it. Event times are seconds since the network was created (or
first used, if it was created outside ``trio.run``).
"""

from __future__ import annotations

import errno
import heapq
import itertools
import random
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import trio

from .events import ConnId, FaultEvent
from .profile import FaultProfile
from .streams import INF, Connection, Link, SimStream

INJECTABLE = ("reset", "corrupt", "truncate", "half_open")
"""Kinds ``Network.inject_next`` accepts: they strike the next chunk sent on a link."""


class SimListener(trio.abc.Listener[SimStream]):
    """Accepts the connections dialed to one party. A crash of the party breaks it (``accept`` raises
    ``BrokenResourceError``); the restarted party listens again, as a restarted daemon would."""

    def __init__(self, net: Network, party: int) -> None:
        self._net = net
        self.party = party
        self._queue: deque[SimStream] = deque()
        self._lot = trio.lowlevel.ParkingLot()
        self._closed = False
        self._broken: str | None = None

    def _deliver(self, stream: SimStream) -> None:
        self._queue.append(stream)
        self._lot.unpark_all()

    def _break(self, reason: str) -> None:
        self._broken = reason
        self._drop_queue(reason)

    def _drop_queue(self, reason: str) -> None:
        now = trio.current_time()
        while self._queue:
            self._queue.popleft()._conn.break_now(now, reason)
        self._lot.unpark_all()

    async def accept(self) -> SimStream:
        await trio.lowlevel.checkpoint()
        while True:
            if self._closed:
                raise trio.ClosedResourceError("this listener was closed")
            if self._broken is not None:
                raise trio.BrokenResourceError(self._broken)
            if self._queue:
                return self._queue.popleft()
            await self._lot.park()

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._drop_queue(f"party {self.party} closed its listener")
            self._net._unlisten(self)
        await trio.lowlevel.checkpoint()


class Network:
    """Parties ``0..n-1`` (or the given ids), a directed ``Link`` between every two, and their faults.

    ``profile`` is every link's default (an object, a name from ``PROFILES`` or a spec string); ``links``
    overrides it per directed link ``(src, dst)``. The default profile's ``partition`` and ``crash`` rates
    drive ``run()``'s random timeline. ``connect_timeout`` is how long a connection attempt across a
    partition hangs (waiting for a heal) before it fails with ``TimeoutError``.
    """

    def __init__(
        self,
        seed: int,
        parties: int | Iterable[int] = 2,
        *,
        profile: FaultProfile | str = "none",
        links: Mapping[tuple[int, int], FaultProfile | str] | None = None,
        connect_timeout: float = 10.0,
    ) -> None:
        self.seed = seed
        self.parties: tuple[int, ...] = tuple(range(parties)) if isinstance(parties, int) else tuple(parties)
        if len(set(self.parties)) != len(self.parties) or not self.parties:
            raise ValueError(f"parties must be distinct and non-empty, not {self.parties!r}")
        self.parties = tuple(sorted(self.parties))
        self.profile = FaultProfile.of(profile)
        self.connect_timeout = connect_timeout
        rng = random.Random(seed)  # noqa: S311 -- fault decisions, nothing secret
        pairs = [(a, b) for a in self.parties for b in self.parties if a != b]
        self._link_seeds = {pair: rng.getrandbits(64) for pair in pairs}
        self._partition_rng = random.Random(rng.getrandbits(64))  # noqa: S311
        self._crash_rng = random.Random(rng.getrandbits(64))  # noqa: S311
        self._links = {pair: Link(*pair, self.profile) for pair in pairs}
        for pair, prof in (links or {}).items():
            self.set_link(*pair, prof)
        self._conn_counts: dict[tuple[int, int], int] = dict.fromkeys(pairs, 0)
        self._conns: dict[ConnId, Connection] = {}
        self._listeners: dict[int, SimListener] = {}
        self._down: set[int] = set()
        self._group_of: dict[int, int] | None = None
        self._generation = itertools.count()
        self._partition_gen = -1
        self._crash_gen: dict[int, int] = {}
        self._state_lot = trio.lowlevel.ParkingLot()
        self._timers: list[tuple[float, int, Callable[[], object]]] = []
        self._timer_seq = itertools.count()
        self._timer_lot = trio.lowlevel.ParkingLot()
        self._running = False
        self._events: list[FaultEvent] = []
        try:
            self._epoch: float | None = trio.current_time()
        except RuntimeError:
            self._epoch = None

    def __repr__(self) -> str:
        return f"<Network seed={self.seed} parties={self.parties} profile={str(self.profile)!r}>"

    # ---- time, log, links -------------------------------------------------------------------------

    def now(self) -> float:
        """Virtual seconds since the network was created (or first used)."""
        t = trio.current_time()
        if self._epoch is None:
            self._epoch = t
        return t - self._epoch

    def _abs(self, t: float) -> float:
        self.now()
        assert self._epoch is not None
        return t + self._epoch

    @property
    def events(self) -> list[FaultEvent]:
        """Every fault injected so far, in canonical (time, then content) order."""
        return sorted(self._events, key=FaultEvent.sort_key)

    def _record(
        self, kind: str, link: tuple[int, int] | None = None, conn: ConnId | None = None, **details: Any
    ) -> None:
        self._events.append(FaultEvent(self.now(), kind, link, conn, details))

    @property
    def bytes_sent(self) -> dict[tuple[int, int], int]:
        """Bytes put on each directed link so far (including bytes a fault then lost)."""
        return {pair: link.bytes_sent for pair, link in self._links.items()}

    def link(self, src: int, dst: int) -> FaultProfile:
        return self._link(src, dst).profile

    def set_link(self, src: int, dst: int, profile: FaultProfile | str) -> None:
        """Change one directed link's profile; it applies to chunks sent from now on."""
        self._link(src, dst).profile = FaultProfile.of(profile)

    def _link(self, src: int, dst: int) -> Link:
        try:
            return self._links[src, dst]
        except KeyError:
            raise ValueError(f"no link {src}->{dst} among parties {self.parties}") from None

    def _check_party(self, party: int) -> None:
        if party not in self.parties:
            raise ValueError(f"unknown party {party!r}; parties are {self.parties}")

    # ---- connections ------------------------------------------------------------------------------

    def is_up(self, party: int) -> bool:
        self._check_party(party)
        return party not in self._down

    def partitioned(self, a: int, b: int) -> bool:
        """True while a partition separates ``a`` from ``b``."""
        return self._group_of is not None and self._group_of[a] != self._group_of[b]

    async def wait_until_up(self, party: int) -> None:
        """Return once ``party`` is not crashed (at once if it is up)."""
        await trio.lowlevel.checkpoint()
        while not self.is_up(party):
            await self._state_lot.park()

    def listen(self, party: int) -> SimListener:
        """Start accepting connections dialed to ``party``; one listener per party at a time."""
        self._check_party(party)
        if party in self._down:
            raise ConnectionRefusedError(errno.ECONNREFUSED, f"party {party} is down")
        if party in self._listeners:
            raise OSError(errno.EADDRINUSE, f"party {party} is already listening")
        listener = SimListener(self, party)
        self._listeners[party] = listener
        self.now()
        return listener

    def _unlisten(self, listener: SimListener) -> None:
        if self._listeners.get(listener.party) is listener:
            del self._listeners[listener.party]

    async def dial(self, src: int, dst: int) -> SimStream:
        """Connect ``src`` to ``dst``'s listener; return ``src``'s end (the listener accepts the other).

        Takes one round trip of virtual time. Raises ``ConnectionRefusedError`` if either party is down or
        ``dst`` is not listening, and ``TimeoutError`` if a partition lasts ``connect_timeout``.
        """
        await self._handshake(src, dst)
        listener = self._listeners.get(dst)
        if listener is None:
            raise ConnectionRefusedError(errno.ECONNREFUSED, f"party {dst} is not listening")
        conn = self._new_conn(src, dst)
        listener._deliver(conn.streams[1])
        return conn.streams[0]

    async def connect(self, a: int, b: int) -> tuple[SimStream, SimStream]:
        """A connection between ``a`` and ``b`` without a listener: (the end at ``a``, the end at ``b``).

        The same faults, timing and failures as ``dial`` (``a`` counts as the dialer).
        """
        await self._handshake(a, b)
        conn = self._new_conn(a, b)
        return conn.streams

    async def _handshake(self, src: int, dst: int) -> None:
        self._link(src, dst)
        self.now()  # pins the epoch, if this is the network's first use
        deadline = trio.current_time() + self.connect_timeout
        while True:
            for p in (src, dst):
                if p in self._down:
                    await trio.lowlevel.checkpoint()
                    raise ConnectionRefusedError(errno.ECONNREFUSED, f"party {p} is down")
            if self.partitioned(src, dst):
                if trio.current_time() >= deadline:
                    raise TimeoutError(errno.ETIMEDOUT, f"connect {src}->{dst}: partitioned, timed out")
                with trio.move_on_at(deadline):
                    await self._state_lot.park()
                continue
            await trio.sleep(self.link(src, dst).latency + self.link(dst, src).latency)
            if src not in self._down and dst not in self._down and not self.partitioned(src, dst):
                return

    def _new_conn(self, a: int, b: int) -> Connection:
        k = self._conn_counts[a, b]
        self._conn_counts[a, b] = k + 1
        name = f"{a}>{b}#{k}"
        rngs = (
            random.Random(f"{self._link_seeds[a, b]}/{name}"),  # noqa: S311
            random.Random(f"{self._link_seeds[b, a]}/{name}"),  # noqa: S311
        )
        conn = Connection(self, (a, b, k), (self._links[a, b], self._links[b, a]), rngs)
        self._conns[conn.id] = conn
        return conn

    def _forget(self, conn: Connection) -> None:
        self._conns.pop(conn.id, None)

    def _between(self, a: int, b: int) -> list[Connection]:
        return [c for c in self._conns.values() if set(c.parties) == {a, b}]

    # ---- faults injected by hand ------------------------------------------------------------------

    def reset(self, a: int, b: int) -> None:
        """Reset every open connection between ``a`` and ``b``: both ends get ``BrokenResourceError``."""
        self._link(a, b)
        now = trio.current_time()
        for conn in self._between(a, b):
            self._record("reset", (a, b), conn.id)
            conn.break_now(now, f"connection reset between {a} and {b}")

    def stall(self, src: int, dst: int, duration: float) -> None:
        """Hold every byte ``src`` sends to ``dst`` (in flight or sent later) for ``duration`` seconds."""
        self._link(src, dst)
        now = trio.current_time()
        for conn in self._between(src, dst):
            self._record("stall", (src, dst), conn.id, duration=duration)
            conn.pipe_from(src).hold("stall", now + duration, now)

    def half_open(self, src: int, dst: int) -> None:
        """Kill direction ``src -> dst`` of every open connection: its bytes vanish, without an error."""
        self._link(src, dst)
        for conn in self._between(src, dst):
            self._record("half_open", (src, dst), conn.id)
            conn.pipe_from(src).kill()

    def inject_next(self, src: int, dst: int, *kinds: str) -> None:
        """Make the next chunk sent on link ``src -> dst`` suffer ``kinds`` (from ``INJECTABLE``)."""
        for kind in kinds:
            if kind not in INJECTABLE:
                raise ValueError(f"cannot inject {kind!r}; injectable kinds: {', '.join(INJECTABLE)}")
        self._link(src, dst).pending.extend(kinds)

    def partition(self, *groups: Iterable[int], duration: float | None = None) -> None:
        """Split the parties into ``groups`` (parties left out form one more group) until ``heal()``.

        Bytes crossing the cut are held (senders keep going until the window fills) and arrive after the
        heal; connection attempts across it hang until the heal or ``connect_timeout``. With ``duration``
        the heal is scheduled (it needs ``run()``). A new partition replaces the current one.
        """
        sets = [set(g) for g in groups]
        seen: set[int] = set()
        for g in sets:
            for p in g:
                self._check_party(p)
                if p in seen:
                    raise ValueError(f"party {p} is in two partition groups")
                seen.add(p)
        rest = set(self.parties) - seen
        sets = [g for g in sets if g] + ([rest] if rest else [])
        if len(sets) < 2:
            raise ValueError("a partition needs at least two non-empty groups")
        self.heal()
        canonical = sorted(tuple(sorted(g)) for g in sets)
        self._group_of = {p: i for i, g in enumerate(canonical) for p in g}
        self._partition_gen = gen = next(self._generation)
        now = trio.current_time()
        self._record("partition", groups=tuple(canonical), duration=duration)
        for conn in list(self._conns.values()):
            if self.partitioned(*conn.parties):
                for pipe in conn.pipes:
                    pipe.hold("partition", INF, now)
        if duration is not None:
            self.schedule(self.now() + duration, lambda: self._heal_if(gen))

    def _heal_if(self, gen: int) -> None:
        if self._partition_gen == gen:
            self.heal()

    def heal(self) -> None:
        """End the current partition (if any): held bytes arrive one latency later, connects go through."""
        if self._group_of is None:
            return
        now = trio.current_time()
        for conn in list(self._conns.values()):
            for pipe in conn.pipes:
                pipe.release("partition", now)
        self._group_of = None
        self._record("heal")
        self._state_lot.unpark_all()

    def crash(self, party: int, duration: float | None = None) -> None:
        """Crash ``party``: every connection it has is reset, its listener breaks, connects are refused
        until ``restart`` (scheduled after ``duration`` if given; that needs ``run()``)."""
        self._check_party(party)
        if party in self._down:
            return
        self._down.add(party)
        self._record("crash", party=party, duration=duration)
        now = trio.current_time()
        for conn in list(self._conns.values()):
            if party in conn.parties:
                conn.break_now(now, f"connection reset: party {party} crashed")
        listener = self._listeners.pop(party, None)
        if listener is not None:
            listener._break(f"party {party} crashed")
        self._crash_gen[party] = gen = next(self._generation)
        if duration is not None:
            self.schedule(self.now() + duration, lambda: self._restart_if(party, gen))
        self._state_lot.unpark_all()

    def _restart_if(self, party: int, gen: int) -> None:
        if self._crash_gen.get(party) == gen:
            self.restart(party)

    def restart(self, party: int) -> None:
        """Bring a crashed party back: it may listen and connect again (its old streams stay broken)."""
        self._check_party(party)
        if party not in self._down:
            return
        self._down.discard(party)
        self._record("restart", party=party)
        self._state_lot.unpark_all()

    # ---- timeline ---------------------------------------------------------------------------------

    def schedule(self, at: float, action: Callable[[], object]) -> None:
        """Run ``action()`` at virtual time ``at`` (seconds, as ``now()``), from ``run()``."""
        heapq.heappush(self._timers, (at, next(self._timer_seq), action))
        self._timer_lot.unpark_all()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Drive the timed faults until cancelled: ``schedule``d actions, scheduled heals and restarts,
        and the default profile's random partitions and crashes. Start it in the nursery that owns the
        simulation: ``await nursery.start(net.run)``."""
        if self._running:
            raise RuntimeError("Network.run() is already running")
        self._running = True
        self.now()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._run_timers)
                if self.profile.partition > 0 and len(self.parties) > 1:
                    nursery.start_soon(self._random_partitions)
                if self.profile.crash > 0:
                    nursery.start_soon(self._random_crashes)
                task_status.started()
        finally:
            self._running = False

    async def _run_timers(self) -> None:
        while True:
            if self._timers and self._timers[0][0] <= self.now():
                _, _, action = heapq.heappop(self._timers)
                action()
                await trio.lowlevel.checkpoint()
                continue
            deadline = self._abs(self._timers[0][0]) if self._timers else INF
            with trio.move_on_at(deadline):
                await self._timer_lot.park()

    async def _random_partitions(self) -> None:
        """Partitions as a Poisson process: each splits the parties in two at random, then heals."""
        rng, prof = self._partition_rng, self.profile
        while True:
            await trio.sleep(rng.expovariate(prof.partition))
            order = list(self.parties)
            rng.shuffle(order)
            cut = rng.randint(1, len(order) - 1)
            self.partition(order[:cut], order[cut:])
            await trio.sleep(prof.partition_for)
            self.heal()

    async def _random_crashes(self) -> None:
        """Crashes as a Poisson process: a random party goes down for ``crash_for`` seconds."""
        rng, prof = self._crash_rng, self.profile
        while True:
            await trio.sleep(rng.expovariate(prof.crash))
            party = rng.choice(self.parties)
            if party in self._down:
                continue
            self.crash(party)
            await trio.sleep(prof.crash_for)
            self.restart(party)


__all__ = ["INJECTABLE", "Network", "SimListener"]
