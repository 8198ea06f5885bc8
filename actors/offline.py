"""The OfflineService actor: MASCOT preprocessing in the background, into bounded pools.

Each party runs one. Together they work through *epochs*; an epoch is one MAC key, named by the
leader (party 0): ``<k>-<nonce>``, its own count and 8 random bytes.

1. set-up session ``mascot/<epoch>/setup``: the leader opens it and announces the name in its first
   message; a follower joins the newest set-up the leader opened (``Router.on_new_session``). Then a
   fresh ``MascotParty`` at every party: a new key share, all base OTs;
2. batch sessions ``mascot/<epoch>/<k>`` for k = 0, 1, ...: the leader picks what to make next from
   its pool levels and from what waiting sessions asked for, announces ``[kind, count]`` as the
   first message of the batch, and every party runs the same MASCOT generator. A batch that passes
   every check goes into the pool under its number ``k``; the leader's allocations refer to it.

Why the leader names epochs rather than every party counting them: counters drift. A party that
restarts counts from 0 again while the others are at 8, and one that was cut off retires a
different number of failed set-ups than the others; set-up sessions with different names never
meet, and the cluster never becomes ready again. A name that one party picks and the others follow
cannot drift: a restarted party, leader or follower, is in the next epoch as soon as it is connected.

The same epochs and batch sessions make the binary material of ``MixedPreprocessing`` (AND triples,
daBits, edaBits: the kinds of ``protocols.preprocessing.mixed``): every epoch sets up a
``BinaryParty`` (the binary key share Delta_i and its correlated-OT ends) in the same set-up session
as its ``MascotParty``, a binary batch is announced as ``[kind, count]`` like a field one (``dabit``,
``and_triple``, ``edabit:<k>``), and its field material (triples, input masks, bits) comes from MASCOT
inside the batch session itself (``_BatchMaterial``; ``mixed``'s docstring says why not from the
pools). A session's ``PooledSession`` draws both, under the epoch's two keys; the epoch retires both.

The leader keeps each kind between its low and high watermark: below low it generates, at high it
stops, and it sleeps while every kind is full until a session draws something. Kinds with watermark 0
(bits, squares and every binary kind by default) are made on demand only, when a session is waiting
for them.

Memory is bounded in bytes, per party (``Watermarks.pool_bytes`` and ``batch_bytes``, a config's
``[memory] pool_mb`` and ``batch_mb``; every party should use the same values):

* a batch's count is cut so that its estimated working set (``protocols.mascot.memory``: the OT and
  COPE chunks it streams through, whatever its size, plus a few dozen field elements per item) stays
  within ``batch_bytes``; a bound too small for a batch of 1,024 at this ``n`` is a ``ConfigError``;
* material made ahead of use (the watermarks' refills, or a planned job's, ``wait_for``) stops where
  the pools would pass ``pool_bytes`` (``Pool.nbytes``, the same figure at every party); a batch made
  for a session that waits for it is handed out at once and may pass it by one batch. A planned job
  bigger than the pools waits only until they are full (``wait_for``), and the rest of it is made
  while it runs (``stop_refills``).

Any failed batch, and any failed MAC check (field or binary) in an online session that used this
epoch's keys, retires the epoch: both key shares are zeroed, every pool is purged, binary ones too
(all of it was authenticated under keys that may now be known). The leader then waits until every
peer is connected and opens the next epoch. A retirement names the epoch it is about, so the several
reports of one failure retire it once.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

import structlog
import trio

from protocols.binary import BinaryParty
from protocols.concurrency import task_group
from protocols.errors import AbortError, ConfigError, ProtocolError
from protocols.field import PrimeField
from protocols.mascot import MascotParty, memory
from protocols.net import Net, expect_list
from protocols.ot.extension import DEFAULT as DEFAULT_OT
from protocols.ot.extension import lookup as lookup_ot
from protocols.preprocessing import mixed
from protocols.preprocessing.pool import KINDS_FIXED, LEADER, Batch, Pool, PooledSession, mask_kind
from protocols.shares import ShareContext, SharedArray

from .sessions import MASCOT_PREFIX, mascot_session

log = structlog.get_logger("spdz.offline")


DEFAULT_POOL_BYTES = 256 << 20
DEFAULT_BATCH_BYTES = 640 << 20  # binary batches: AND triples with B = 3, loose edaBits with B = 4 at n = 3
MIN_POOL_BYTES = 1 << 20
POOL_KINDS = ("triple", "mask", "square", "bit", "random")  # the watermarks' field kinds
OFFLINE_OPTIONS = {"comparison": "field"}  # the service's sessions compare nothing (``Engine.run``)
# A set-up normally takes a fraction of a second (base OTs with every peer). One that is not done after
# this long waits for a peer that never joined it: a link reset between the leader's opening and the
# follower's join loses the opening, and with no timeout (set-up sessions wait for peers indefinitely)
# the cluster stayed unready for good (tests/test_recovery.py's stray connection, now and then under
# load). Giving it up retires the epoch, and the leader opens the next one, which the peer joins.
SETUP_TIMEOUT = 20.0
DEFAULT_MIXED_BATCH = {"and_triple": 1 << 16, "dabit": 8192, "edabit": 1024}
PLAN_MIXED_BATCH = {"and_triple": 1 << 19, "dabit": 1 << 16, "edabit": 1 << 14, "loose": 1 << 15}
"""A planned job's largest batch per binary family (``Watermarks.for_plan``): the bigger the batch, the
smaller its bucket (AND triples: B = 3 from 276,325, edaBits: B = 4 from 4,689, ``docs/bits.md``) and
the fewer its fixed costs (a daBit batch's checks); ``[memory] batch_mb`` still cuts every batch to
fit (``_max_batch``), and AND triples come in sub-batches (``mixed.and_chunk``)."""


@dataclass
class Watermarks:
    """Pool targets per kind: generate below ``low``, stop at ``high``, in batches of ``batch``."""

    triple: tuple[int, int] = (20_000, 60_000)
    mask: tuple[int, int] = (2_000, 8_000)
    square: tuple[int, int] = (0, 0)
    bit: tuple[int, int] = (0, 0)
    random: tuple[int, int] = (0, 0)
    # binary kinds ("and_triple", "dabit", "edabit:32", ...; ``protocols.preprocessing.mixed``): none
    # made ahead of use unless named here
    mixed: dict[str, tuple[int, int]] = field(default_factory=dict)
    # per kind; a binary kind's batch may be given by its family ("edabit" for every "edabit:<k>")
    batch: dict[str, int] = field(
        default_factory=lambda: {
            "triple": 8192,
            "mask": 4096,
            "square": 4096,
            "bit": 4096,
            "random": 4096,
            **DEFAULT_MIXED_BATCH,
        }
    )
    pool_bytes: int = DEFAULT_POOL_BYTES  # material made ahead of use: refills stop at this many bytes
    batch_bytes: int = DEFAULT_BATCH_BYTES  # one batch's estimated working set: counts are cut to fit

    @classmethod
    def for_plan(cls, need: dict[str, int], batch: int = 2048, *, ahead: bool = True) -> Watermarks:
        """Pools that hold ``need`` (pool name -> count, e.g. from ``protocols.preprocessing.plan``)
        and hardly more: for a job whose consumption is known in advance. Each kind is made in equal
        batches of at most ``batch`` (binary kinds: ``PLAN_MIXED_BATCH``), sized so that the last one
        is not mostly waste (8,319 triples: 3 batches of 2,773, not 3 of 4,096). ``ahead=False``: the
        same batch sizes, but nothing made until the job's plan is handed to the services
        (``Cluster.stock(need, wait=False)``): the job then runs while exactly its plan is made."""
        masks = max((v for k, v in need.items() if k.startswith("mask")), default=0)
        kinds = {k: need.get(k, 0) for k in ("triple", "square", "bit", "random")}
        kinds["mask"] = masks
        kinds.update({k: v for k, v in need.items() if mixed.is_mixed(k) and v > 0})

        def cap(kind: str) -> int:
            family = kind.partition(mixed.SEP)[0]
            return PLAN_MIXED_BATCH.get(family, batch) if mixed.is_mixed(kind) else batch

        sizes = {k: max(1, -(-v // max(1, -(-v // cap(k))))) for k, v in kinds.items()}
        up = {k: -(-v // sizes[k]) * sizes[k] for k, v in kinds.items()}
        fixed = {k: (up[k], up[k]) if ahead else (0, 0) for k in (*POOL_KINDS,)}
        binary = {k: (up[k], up[k]) for k in kinds if k not in fixed} if ahead else {}
        return cls(**fixed, mixed=binary, batch={**DEFAULT_MIXED_BATCH, **sizes})

    def of(self, kind: str) -> tuple[int, int]:
        if kind.startswith("mask"):
            return self.mask
        if kind in POOL_KINDS:
            return getattr(self, kind)  # type: ignore[no-any-return]
        return self.mixed.get(kind, (0, 0))

    def batch_of(self, kind: str) -> int:
        if kind.startswith("mask"):
            return self.batch["mask"]
        if kind in self.batch:
            return self.batch[kind]
        family = kind.partition(mixed.SEP)[0]
        return self.batch.get(family, DEFAULT_MIXED_BATCH.get(family, 1024))

    def mixed_kinds(self) -> list[str]:
        """The binary kinds these watermarks name (every other one is made on demand only)."""
        return sorted(self.mixed)


class _KeyOnly:
    """The ``Preprocessing`` an offline session runs with: the epoch's key, no material."""

    def __init__(self, ctx: ShareContext, retire: Any, epoch: str) -> None:
        self.ctx = ctx
        self._retire = retire
        self._epoch = epoch

    def compromised(self) -> None:
        self._retire(self._epoch, "an offline session was aborted or cancelled")


class _BatchMaterial(_KeyOnly):
    """The ``Preprocessing`` of one batch session: the field material a binary generator draws
    (``generate_dabits``' triples, input masks and bits) made by MASCOT in that same session, on
    request, in the order the generator asks (the same at every party)."""

    def __init__(self, mascot: MascotParty, retire: Any, epoch: str) -> None:
        super().__init__(mascot.ctx, retire, epoch)
        self._mascot = mascot
        self._s: Any = None

    def bind(self, s: Any) -> None:
        self._s = s

    def _session(self) -> Any:
        if self._s is None:
            raise RuntimeError("a field batch drew preprocessing")
        return self._s

    async def triples(self, n: int) -> Any:
        return await self._mascot.triples(self._session(), n)

    async def squares(self, n: int) -> Any:
        return await self._mascot.squares(self._session(), n)

    async def bits(self, n: int) -> Any:
        if n == 0:
            return SharedArray(self.ctx, self.ctx.field.zeros(0), self.ctx.field.zeros(0))
        return await self._mascot.bits(self._session(), n)

    async def randoms(self, n: int) -> Any:
        return await self._mascot.randoms(self._session(), n)

    async def input_masks(self, owner: int, n: int) -> Any:
        return await self._mascot.input_masks(self._session(), owner, n)

    async def owned_triples(self, owner: int, n: int, width: int) -> Any:
        return await self._mascot.owned_triples(self._session(), owner, n, width)

    async def ranged_randoms(self, n: int, width: int) -> Any:
        return await self._mascot.ranged_randoms(self._session(), n, width)

    async def proven_loose_edabits(self, bs: Any, n: int, k: int) -> Any:
        return await self._mascot.proven_loose_edabits(self._session(), bs, n, k)


class OfflineService:
    insecure = False

    def __init__(
        self,
        engine: Any,
        field: PrimeField,
        party: int,
        n: int,
        watermarks: Watermarks | None = None,
        ot_extension: str = DEFAULT_OT,
    ):
        lookup_ot(ot_extension)  # an unknown name fails here, naming the known ones
        self.engine = engine
        self.field = field
        self.party = party
        self.n = n
        self.ot_extension = ot_extension  # the same at every party: the set-up checks the leader's
        self.marks = watermarks or Watermarks()
        check_memory(field, n, self.marks)
        self.pool = Pool()
        self._planned: dict[str, int] | None = None  # the job ``wait_for`` waits for
        self._quota: dict[str, int] = {}  # after ``stop_refills``: what of that job is still to make
        self.epoch = ""  # the current epoch's name ("" between epochs)
        self.keys = 0  # epochs begun here (a restart counts from 0 again)
        self._count = 0  # the leader's count of the epochs it opened, the first part of their names
        self._offer = ""  # the newest set-up the leader opened that we have not joined
        self._offered = trio.Event()
        self.mascot: MascotParty | None = None
        self.binary: BinaryParty | None = None  # this epoch's binary key share and OT ends
        self._epoch_scope: trio.CancelScope | None = None
        self._ready = trio.Event()
        self.generated: dict[str, int] = {}
        self.gen_seconds = 0.0
        self.kind_seconds: dict[str, float] = {}  # generation time per kind
        self._max_batches: dict[str, int] = {}
        self.failures: list[str] = []
        self.crashes = 0
        self._batches_this_epoch = 0
        self.setup_timeout = SETUP_TIMEOUT  # a set-up not done after this long is given up (a new epoch)
        # before any link runs: the leader's first set-up message may arrive before ``serve`` starts
        engine.router.on_new_session = self._session_seen

    # ------------------------------------------------------------------ what sessions see
    def for_session(self, session_id: str, net: Net) -> PooledSession:
        if self.mascot is None or self.binary is None:
            raise AbortError("preprocessing is not ready: the MAC key is being replaced")
        return PooledSession(self.pool, self.mascot.ctx, net, self._compromised, self.epoch, self.binary.ctx)

    async def wait_ready(self) -> None:
        await self._ready.wait()

    def holds(self, need: dict[str, int]) -> bool:
        """Whether the pools hold ``need`` (pool name -> count, e.g. from ``preprocessing_plan``)."""
        levels = self.pool.levels()
        return all(levels.get(k, 0) >= v for k, v in need.items())

    async def wait_for(self, need: dict[str, int], poll: float = 0.05) -> bool:
        """Until the pools hold ``need``: the offline phase of a job whose consumption is known. Or
        until the service makes nothing more ahead of use (its pools are at their byte bound, or at
        watermarks below ``need``): then the rest is made while the job consumes (see
        ``stop_refills``). Whether the pools hold all of ``need``."""
        self._planned = dict(need)
        while not self.holds(need):
            if self.mascot is not None and not any(self._refill(k) for k in self._kinds()):
                return False
            await trio.sleep(poll)
        return True

    def stop_refills(self, need: dict[str, int] | None = None) -> None:
        """Make nothing more ahead of use than the job last waited for (sessions still get what they
        ask for): once a job's planned material is made, no generation competes with the job for the
        CPU. If the pools' byte bound stopped ``wait_for`` short of the job's needs, the rest of it
        (and no more) is made as room frees up, while the job runs. ``need``: the job's plan, when
        nothing was waited for (the job starts at once and its material is made as it runs)."""
        if need is not None:
            self._planned = dict(need)
        self.marks = dataclasses.replace(self.marks, **dict.fromkeys(POOL_KINDS, (0, 0)), mixed={})
        levels = self.pool.levels()
        rest = {k: v - levels.get(k, 0) for k, v in (self._planned or {}).items()}
        self._quota = {k: v for k, v in rest.items() if v > 0}
        self._planned = None
        self.pool.notify()  # the planner re-plans under the new targets

    def metrics(self) -> dict[str, Any]:
        rate = {k: v / t for k, v in self.generated.items() if (t := self.kind_seconds.get(k, 0.0)) > 0}
        return {
            "epoch": self.epoch,
            "keys": self.keys,
            "levels": self.pool.levels(),
            "pool_bytes": self.pool.nbytes,
            "generated": dict(self.generated),
            "per_second": rate,
            "failures": list(self.failures[-10:]),
        }

    def _compromised(self, epoch: str) -> None:
        self.retire(epoch, "an online session under this key was aborted")

    def _session_seen(self, frm: int, session: str) -> None:
        """A peer's message opened a session unknown here: if it is the leader's newest set-up, the
        epoch we are in (if any) is over for the leader, so it is over here, and we join the new one."""
        m = _SETUP.fullmatch(session)
        if frm != LEADER or self.party == LEADER or m is None or m.group(1) == self.epoch:
            return
        self._offer = m.group(1)
        self._offered.set()
        if self.epoch:
            self.retire(self.epoch, "the leader opened a new epoch")

    def retire(self, epoch: str, reason: str) -> None:
        """Retire ``epoch`` (once): zero the key, purge the pools, leave the epoch."""
        if not epoch or epoch != self.epoch:
            return
        # while the party shuts down (this task is cancelled) retiring the key is routine, not a warning
        stopping = trio.current_effective_deadline() == float("-inf")
        emit = log.info if stopping else log.warning
        emit("mac_key_retired", party=self.party, epoch=epoch, reason=reason)
        self.failures.append(f"epoch {epoch}: {reason}")
        self.epoch = ""
        if self.mascot is not None:
            self.mascot.retire()
            self.mascot = None
        if self.binary is not None:
            self.binary.retire()  # zeroes Delta_i, drops the binary OT ends
            self.binary = None
        self.pool.purge()
        if self._ready.is_set():  # waiters on an unset event keep it: it is set when the new key is
            self._ready = trio.Event()  # ready (replacing it would leave them waiting forever)
        if self._epoch_scope is not None:
            self._epoch_scope.cancel()

    # ------------------------------------------------------------------ the actor
    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        failed_epochs = 0  # consecutive epochs that ended before their first batch
        while True:
            if self.party == LEADER:
                await self._peers_connected()
                epoch = f"{self._count}-{secrets.token_hex(8)}"
                self._count += 1
            else:
                epoch = await self._next_offer()
            self._batches_this_epoch = 0
            with trio.CancelScope() as scope:
                self._epoch_scope = scope
                try:
                    await self._run_epoch(epoch)
                except AbortError as e:
                    self.retire(epoch, f"offline batch failed: {e.reason}")
                except Exception as e:
                    # A bug or a state we did not foresee must not take the party down: this epoch's
                    # key and material are dropped like after an abort, and a new epoch starts.
                    log.error(
                        "offline_batch_crashed", party=self.party, epoch=epoch, error=repr(e), exc_info=True
                    )
                    self.retire(epoch, f"offline batch crashed: {type(e).__name__}: {e}")
                    self.crashes += 1
            failed_epochs = 0 if self._batches_this_epoch else failed_epochs + 1
            if (failed_epochs and self.party == LEADER) or self.crashes:
                # A set-up that keeps failing with every peer connected (a cheater) or a fault that
                # repeats must not turn into a busy loop: back off, doubling up to 30 s, until an
                # epoch makes a batch again. A peer that is down costs no back-off: the leader
                # waits for it to be connected instead, and starts as soon as it is.
                await trio.sleep(min(30.0, 0.05 * 2 ** min(max(failed_epochs, self.crashes) - 1, 10)))

    async def _peers_connected(self) -> None:
        wait = getattr(self.engine.links, "wait_connected", None)
        if wait is not None:
            await wait()

    async def _setup_watchdog(self, epoch: str, setup: trio.CancelScope) -> None:
        """Give up a set-up that is not done after ``setup_timeout``: retire the epoch (with that
        reason) and cancel it."""
        await trio.sleep(self.setup_timeout)
        self.retire(epoch, f"the set-up did not finish in {self.setup_timeout:g} s (a peer never joined it)")
        setup.cancel()

    async def _next_offer(self) -> str:
        """Follower: the name of the newest epoch the leader opened that we have not been in."""
        while not self._offer:
            self._offered = trio.Event()
            await self._offered.wait()
        epoch, self._offer = self._offer, ""
        return epoch

    async def _run_epoch(self, epoch: str) -> None:
        mascot = MascotParty(self.field, self.party, self.n, ot_extension=self.ot_extension)
        binary = BinaryParty(self.party, self.n, ot_extension=self.ot_extension)
        self.mascot, self.binary = mascot, binary
        self.epoch = epoch
        self.keys += 1
        pre = _KeyOnly(mascot.ctx, self.retire, epoch)
        async with task_group() as nursery:
            nursery.start_soon(self._lifeline, epoch, pre)
            with trio.CancelScope() as setup:
                async with trio.open_nursery() as guard:
                    guard.start_soon(self._setup_watchdog, epoch, setup)
                    await self.engine.run(
                        _setup_prog,
                        mascot,
                        binary,
                        epoch,
                        self.ot_extension,
                        session=mascot_session(epoch, "setup"),
                        pre=pre,
                        idle_ok=True,
                        options=OFFLINE_OPTIONS,
                    )
                    guard.cancel_scope.cancel()
            if setup.cancelled_caught:  # retired by the watchdog; the engine told the peers
                raise AbortError(f"the set-up of epoch {epoch} did not finish in {self.setup_timeout:g} s")
            self._ready.set()
            log.info("offline_ready", party=self.party, epoch=epoch)
            k = 0
            while True:
                plan = await self._plan() if self.party == LEADER else None
                t0 = trio.current_time()
                material = _BatchMaterial(mascot, self.retire, epoch)
                kind, count, batch = await self.engine.run(
                    _batch_prog,
                    mascot,
                    binary,
                    plan,
                    material,
                    self._and_chunk(),
                    session=mascot_session(epoch, k),
                    pre=material,
                    idle_ok=True,
                    options=OFFLINE_OPTIONS,
                )
                took = trio.current_time() - t0
                self.gen_seconds += took
                self.kind_seconds[kind] = self.kind_seconds.get(kind, 0.0) + took
                self.generated[kind] = self.generated.get(kind, 0) + count
                if kind in self._quota:
                    self._quota[kind] -= count
                    if self._quota[kind] <= 0:
                        del self._quota[kind]
                batch.batch_id = k
                self.pool.add(batch)
                self._batches_this_epoch += 1
                k += 1

    async def _lifeline(self, epoch: str, pre: _KeyOnly) -> None:
        """A session that lives as long as this epoch's key, at every party, and carries nothing.

        Retiring a key anywhere must retire it everywhere, or the parties' epochs drift apart (their
        next set-up sessions would have different names and wait for each other forever; an idle
        leader would never notice a follower's retirement). When a party retires the epoch, the
        cancellation of its lifeline sends the peers an abort for it; their lifelines raise, and
        the engine retires the epoch there too. A late notice for an epoch already retired does
        nothing."""
        await self.engine.run(
            _lifeline_prog,
            session=mascot_session(epoch, "lifeline"),
            pre=pre,
            idle_ok=True,
            options=OFFLINE_OPTIONS,
        )

    def _kinds(self) -> list[str]:
        """The kinds the planner keeps an eye on: the field kinds, then the binary kinds that the
        watermarks or a planned job name (any other binary kind is made when a session waits)."""
        field_kinds = [*KINDS_FIXED, *(mask_kind(i) for i in range(self.n))]
        named = [*self.marks.mixed_kinds(), *sorted(self._quota), *sorted(self._planned or {})]
        binary = [k for k in dict.fromkeys(named) if self._makes(k)]
        return field_kinds + binary

    def _makes(self, kind: str) -> bool:
        """Whether ``kind`` is a binary kind this field and party count can make."""
        return mixed.is_mixed(kind) and mixed.invalid(kind, 1, self.field, self.n) is None

    def _max_batch(self, kind: str) -> int:
        """The largest batch of ``kind`` whose estimated working set fits ``marks.batch_bytes``."""
        if not mixed.is_mixed(kind):
            return max(1, memory.max_count(self.field, self.n, kind, self.marks.batch_bytes))
        got = self._max_batches.get(kind)
        if got is None:
            got = self._max_batches[kind] = max(
                1, mixed.max_count(self.field, self.n, kind, self.marks.batch_bytes)
            )
        return got

    def _and_chunk(self) -> int:
        """The AND sub-batch of binary batches under ``marks.batch_bytes`` (``mixed.and_chunk``)."""
        return mixed.and_chunk(self.field, self.n, self.marks.batch_bytes)

    def _item_bytes(self, kind: str) -> int:
        if mixed.is_mixed(kind):
            return mixed.item_bytes(self.field, kind)
        return memory.item_bytes(self.field, kind)

    def _refill(self, kind: str) -> int:
        """How many of ``kind`` to make ahead of use now (0: none). Below the low watermark (or, after
        ``stop_refills``, while the job's quota lasts) a batch, ramped up from small ones while the
        pool is nearly empty so that a fresh party serves its first sessions within a fraction of a
        second, and no larger than what the low watermark wants or ``MIN_DEMAND_BATCH``; binary kinds,
        which cost more per item in small batches, are made in the largest batch that stays under
        the high watermark. Then cut to the room left under ``marks.pool_bytes`` and to
        ``_max_batch``, and none at all if that room is too small to be worth a batch. The same at
        every party that holds the same batches (``wait_for`` relies on it)."""
        level = self.pool.level(kind)
        if self._quota:
            want = self._quota.get(kind, 0)
            count = min(self.marks.batch_of(kind), want)
        else:
            low, high = self.marks.of(kind)
            want = low - level
            if mixed.is_mixed(kind):
                # no ramp (a small batch of binary material costs more per item: larger buckets) and
                # never past the high watermark (a daBit is tens of kB: a plan's pools, low = high,
                # get exactly the plan)
                count = min(self.marks.batch_of(kind), high - level)
            else:
                ramp = max(MIN_DEMAND_BATCH, level)
                count = min(self.marks.batch_of(kind), ramp, max(MIN_DEMAND_BATCH, want))
        if want <= 0:
            return 0
        room = max(0, self.marks.pool_bytes - self.pool.nbytes) // self._item_bytes(kind)
        if room < min(MIN_DEMAND_BATCH, want):
            return 0
        return min(count, room, self._max_batch(kind))

    async def _plan(self) -> list[Any]:
        """Leader: the next ``[kind, count]``; waits while every pool is full and nobody waits."""
        while True:
            kinds = self._kinds()
            waited = [k for k in self.pool.demand if k not in kinds and self._makes(k)]
            demanded = [k for k in [*kinds, *waited] if self.pool.demand.get(k)]
            if demanded:
                # made for a session that waits: handed out at once, so not held to the pools' byte
                # bound (which it may pass by at most one batch), only to the batch bound
                kind = demanded[0]
                count = demand_batch(self.pool.demand[kind], self.marks.batch_of(kind))
                return [kind, min(count, self._max_batch(kind))]
            refills = {k: c for k in kinds if (c := self._refill(k))}
            if refills:

                def fill(k: str) -> float:
                    target = self._quota.get(k, 0) if self._quota else self.marks.of(k)[0]
                    return self.pool.level(k) / max(target, 1)

                kind = min(refills, key=fill)
                return [kind, refills[kind]]
            await self.pool.changed()


def check_memory(field: PrimeField, n: int, marks: Watermarks) -> None:
    """``ConfigError`` unless ``marks``' byte bounds leave room for MASCOT batches at ``n`` parties."""
    low = memory.min_budget(field, n)
    if marks.batch_bytes < low:
        raise ConfigError(
            f"a MASCOT batch at {n} parties on {field.name} needs about {_mib(low)} MiB of working "
            f"memory (its OT and COPE chunks with every peer, and 1,024 items): the batch bound of "
            f"{_mib(marks.batch_bytes)} MiB is too small (raise [memory] batch_mb)"
        )
    if marks.pool_bytes < MIN_POOL_BYTES:
        raise ConfigError(
            f"the preprocessing pools' byte bound of {marks.pool_bytes} bytes is below the minimum of "
            f"{_mib(MIN_POOL_BYTES)} MiB ([memory] pool_mb)"
        )


def _mib(b: int) -> int:
    return -(-b // (1 << 20))


MIN_DEMAND_BATCH = 1024
_SETUP = re.compile(re.escape(MASCOT_PREFIX) + r"([0-9]{1,9}-[0-9a-f]{16})/setup")


def _short(value: Any) -> str:
    """A peer's value for an error message, cut to a readable length."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def demand_batch(demand: int, batch: int) -> int:
    """The size of a batch made because a session waits for ``demand`` items: big enough to amortise a
    batch's fixed rounds, small enough that a session asking for a little does not wait for a whole
    standard batch (the watermarks refill the pool afterwards), at most four standard batches."""
    if demand >= batch:
        return min(demand, 4 * batch)
    size = MIN_DEMAND_BATCH
    while size < demand:
        size *= 2
    return min(size, batch)


async def _lifeline_prog(s: Any) -> None:
    """Wait for a message nobody sends: only a peer's abort (or our cancellation) ends this."""
    await s.net.recv((s.party + 1) % s.n, 0)
    raise ProtocolError("a peer sent a message on a key-epoch lifeline", culprit=(s.party + 1) % s.n)


async def _from_leader(s: Any, value: Any) -> Any:
    """One round: the leader sends ``value`` to every other party; each returns what it got (the
    leader its own ``value``)."""
    step = s.next_step()
    if s.party != LEADER:
        return await s.net.recv(LEADER, step)
    for j in range(s.n):
        if j != s.party:
            await s.net.send(j, step, value)
    return value


async def _setup_prog(s: Any, mascot: MascotParty, binary: BinaryParty, epoch: str, ot: str) -> None:
    # The leader's first message opens the epoch at the followers (``OfflineService._session_seen``)
    # before anything else of the set-up, in which it might otherwise wait for them first. It also
    # names the leader's OT extension: parties configured with different ones would otherwise fail
    # in the set-up with a message-length error that names neither.
    theirs = expect_list(await _from_leader(s, [epoch, ot]), LEADER, "set-up announcement", 2)
    if theirs[0] != epoch:
        raise ProtocolError(f"party {LEADER} announced another epoch than its session's", culprit=LEADER)
    if theirs[1] != ot:
        raise AbortError(
            f"party {LEADER} runs MASCOT on the OT extension {str(theirs[1])[:20]!r}, party {s.party} on "
            f"{ot!r}: set ot_extension alike in every party's config"
        )
    await mascot.setup(s)
    await binary.setup(s)  # the epoch's binary key share: its correlated-OT ends with every peer


async def _batch_prog(
    s: Any,
    mascot: MascotParty,
    binary: BinaryParty,
    plan: list[Any] | None,
    material: _BatchMaterial,
    and_chunk: int,
) -> tuple[str, int, Batch]:
    assert (plan is not None) == (s.party == LEADER)
    plan = expect_list(await _from_leader(s, plan), LEADER, "batch plan", 2)
    kind, count = plan
    parsed = mixed.parse(kind)
    if parsed is not None or (isinstance(kind, str) and kind.partition(mixed.SEP)[0] in mixed.KINDS):
        why = mixed.invalid(kind, count, s.field, s.n)
        if why is not None:
            raise ProtocolError(
                f"party {LEADER} announced an invalid batch of binary material {_short(plan)}: {why}",
                culprit=LEADER,
            )
        assert parsed is not None
        material.bind(s)
        parts = await mixed.make_batch(s, binary, parsed[0], parsed[1], count, and_chunk)
        return kind, count, Batch(-1, kind, parts, None, parsed[0].widths(parsed[1]))
    valid = kind in KINDS_FIXED or (
        isinstance(kind, str) and kind.startswith("mask") and kind[4:].isdigit() and int(kind[4:]) < s.n
    )
    if not valid or not isinstance(count, int) or not 0 < count <= 1 << 20:
        raise ProtocolError(f"party {LEADER} announced an invalid batch {_short(plan)}", culprit=LEADER)
    if kind == "triple":
        parts, clear = list(await mascot.triples(s, count)), None
    elif kind == "square":
        parts, clear = list(await mascot.squares(s, count)), None
    elif kind == "bit":
        parts, clear = [await mascot.bits(s, count)], None
    elif kind == "random":
        parts, clear = [await mascot.randoms(s, count)], None
    else:
        r, clear = await mascot.input_masks(s, int(kind[4:]), count)
        parts = [r]
    return kind, count, Batch(-1, kind, [p.flatten() for p in parts], clear)
