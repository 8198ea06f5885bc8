"""Pools of checked preprocessing, and how a session draws from them at every party consistently.

Material is made in *batches* (one offline session each, numbered by the leader) and every party
keeps its shares of batch ``k`` under ``k``. A session must use the *same* material at every party,
but sessions run concurrently and request material in different interleavings at different parties.
So party 0 (the leader) decides: for each request of a session, it takes ranges
``(batch, start, count)`` from the front of its pool and sends them to the others over the session's
own network (a reserved channel); the others take exactly those ranges.

A follower never trusts the leader blindly: it marks every item it hands out and refuses a range that
overlaps one already used or runs past the batch, so material is never handed out twice ("never reuse
a triple"). Allocations of concurrent sessions may reach a follower in any order, so ranges need not
be contiguous with the previous one. If the batch has not arrived locally yet the follower waits for
it. Material taken by a session is gone, whether the session succeeds or aborts.

Binary material (``MixedPreprocessing``: AND triples, daBits, edaBits; the kinds of ``mixed.py``) is
pooled and allocated the same way. Its batches hold ``AuthBits`` parts beside ``SharedArray`` ones,
and a part may hold several elements per item (``Batch.widths``: an edaBit of ``k`` bits has one field
element and ``k`` bits).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import trio

from ..binary.bits import AuthBits, BinaryContext
from ..errors import AbortError, ProtocolError
from ..net import Net, PairChannel, expect_list
from ..shares import ShareContext, SharedArray
from . import mixed

ALLOC_CHANNEL = 0x7000
LEADER = 0
KINDS_FIXED = ("triple", "square", "bit", "random")
PARTS = {"triple": 3, "square": 2, "bit": 1, "random": 1}


def mask_kind(owner: int) -> str:
    return f"mask{owner}"


def parts_of(kind: str) -> int:
    if kind.startswith("mask"):
        return 1
    if kind in PARTS:
        return PARTS[kind]
    parsed = mixed.parse(kind)
    if parsed is None:
        raise KeyError(kind)
    return len(parsed[0].layout)


@dataclass
class Batch:
    batch_id: int
    kind: str
    parts: list[Any]  # SharedArray (field) or AuthBits (binary) parts, flat
    clear: np.ndarray | None = None  # input masks: the clear values, at their owner only
    widths: list[int] | None = None  # elements of each part per item (default: one)
    cursor: int = 0  # the leader allocates from here on
    used: np.ndarray | None = None  # which items have been handed out
    nused: int = 0
    nbytes: int = field(default=0, init=False)  # what the batch occupies (see ``Pool``)

    def __post_init__(self) -> None:
        if self.widths is None:
            self.widths = [1] * len(self.parts)
        if len(self.widths) != len(self.parts) or any(
            p.size != self.size * w for p, w in zip(self.parts, self.widths, strict=True)
        ):
            raise ValueError(f"a {self.kind} batch with parts of {[p.size for p in self.parts]} elements")
        self.used = np.zeros(self.size, dtype=bool)
        self.nbytes = sum(_nbytes(p) for p in self.parts)
        if self.kind.startswith("mask"):  # the clear values: counted at every party, so that every
            self.nbytes += _nbytes(self.parts[0]) // 2  # party's pool has the same byte figure

    @property
    def size(self) -> int:
        assert self.widths is not None
        return self.parts[0].size // self.widths[0]

    @property
    def left(self) -> int:
        return self.size - self.nused


def _nbytes(part: Any) -> int:
    """Bytes of one part of a batch: value and MAC shares (or bit and MAC shares, or a bare array)."""
    if hasattr(part, "mac"):
        return int(part.value.nbytes + part.mac.nbytes)
    if hasattr(part, "macs"):
        return int(part.bits.nbytes + part.macs.nbytes)
    return int(np.asarray(part).nbytes)


@dataclass
class Pool:
    """One party's checked material, by kind, oldest batch first.

    ``nbytes`` is what its batches occupy (a batch is held whole until every item of it is handed
    out; the clear values of input masks are counted at every party, so the figure is the same at
    every party that holds the same batches). The pool does not bound itself: the offline service's
    planner makes material ahead of use only while ``nbytes`` leaves room under its byte bound.
    """

    batches: dict[str, deque[Batch]] = field(default_factory=dict)
    by_id: dict[int, Batch] = field(default_factory=dict)
    demand: dict[str, int] = field(default_factory=dict)
    generation: int = 0
    taken: dict[str, int] = field(default_factory=dict)
    nbytes: int = 0
    _changed: trio.Event = field(default_factory=trio.Event)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def notify(self) -> None:
        """Wake every ``changed`` waiter (e.g. the planner, after its targets changed)."""
        self._notify()

    async def changed(self, generation: int | None = None) -> None:
        """Wait for any change; if ``generation`` is given and the pool was purged, abort."""
        await self._changed.wait()
        if generation is not None and generation != self.generation:
            raise AbortError("preprocessing pool purged (MAC key retired) while waiting for material")

    def add(self, batch: Batch) -> None:
        self.batches.setdefault(batch.kind, deque()).append(batch)
        self.by_id[batch.batch_id] = batch
        self.nbytes += batch.nbytes
        # The waiters are woken but have not run yet: a planner looking now must see only what they
        # still lack, not their whole demand again (it made a second batch for a met demand), and
        # still that (a session wanting more than this batch gets its next batch made at once).
        want = self.demand.get(batch.kind, 0)
        if want:
            rest = want - self.level(batch.kind)
            if rest > 0:
                self.demand[batch.kind] = rest
            else:
                del self.demand[batch.kind]
        self._notify()

    def level(self, kind: str) -> int:
        return sum(b.left for b in self.batches.get(kind, ()))

    def levels(self) -> dict[str, int]:
        return {k: self.level(k) for k in self.batches}

    def purge(self) -> None:
        self.generation += 1
        self.batches.clear()
        self.by_id.clear()
        self.demand.clear()
        self.nbytes = 0
        self._notify()

    def _take(self, batch: Batch, lo: int, count: int) -> tuple[list[Any], np.ndarray | None]:
        hi = lo + count
        assert batch.used is not None and batch.widths is not None
        batch.used[lo:hi] = True
        batch.nused += count
        batch.cursor = max(batch.cursor, hi)
        parts = [p[lo * w : hi * w] for p, w in zip(batch.parts, batch.widths, strict=True)]
        clear = batch.clear[:, lo:hi] if batch.clear is not None else None
        if batch.left == 0:
            q = self.batches[batch.kind]
            if q and q[0] is batch:
                q.popleft()
            else:
                q.remove(batch)
            del self.by_id[batch.batch_id]
            self.nbytes -= batch.nbytes
        self.taken[batch.kind] = self.taken.get(batch.kind, 0) + count
        self._notify()
        return parts, clear

    async def allocate(self, kind: str, want: int) -> tuple[list[list[int]], list[Any]]:
        """Leader: up to ``want`` items from the front of the pool (waits for at least one)."""
        gen = self.generation
        while not self.level(kind):
            if want > self.demand.get(kind, 0):
                # Tell the planner, once per new demand. (Notifying on every wake-up made waiting
                # sessions wake each other in a loop that starved the batch they waited for: six
                # sessions waiting for triples took 0.7 s to 44 s instead of a batch's 0.1 s.)
                self.demand[kind] = want
                self._notify()
            await self.changed(gen)
        self.demand.pop(kind, None)
        ranges: list[list[int]] = []
        pieces: list[Any] = []
        q = self.batches[kind]
        while want and q:
            b = q[0]
            c = min(want, b.size - b.cursor)
            ranges.append([b.batch_id, b.cursor, c])
            pieces.append(self._take(b, b.cursor, c))
            want -= c
        return ranges, pieces

    async def take(self, kind: str, ranges: list[list[int]], leader: int) -> list[Any]:
        """Follower: exactly the leader's ranges, after checking them against our own cursors."""
        pieces = []
        gen = self.generation
        for batch_id, start, count in ranges:
            while batch_id not in self.by_id:
                await self.changed(gen)
            b = self.by_id[batch_id]
            assert b.used is not None
            if b.kind != kind or count <= 0 or start + count > b.size or b.used[start : start + count].any():
                raise ProtocolError(
                    f"party {leader} allocated {kind} material ({batch_id}, {start}, {count}) that this "
                    f"party's pool cannot give (batch of {b.size}, already used or wrong kind): refusing "
                    "to reuse material",
                    culprit=leader,
                )
            pieces.append(self._take(b, start, count))
        return pieces


def _parse_ranges(msg: Any, leader: int, want: int) -> list[list[int]]:
    ranges = expect_list(msg, leader, "preprocessing allocation", len(msg) if isinstance(msg, list) else -1)
    if not ranges:
        raise ProtocolError(f"party {leader} sent an empty preprocessing allocation", culprit=leader)
    total = 0
    out = []
    for r in ranges:
        if (
            not isinstance(r, (list, tuple))
            or len(r) != 3
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in r)
        ):
            raise ProtocolError(f"party {leader} sent a malformed preprocessing range {r!r}", culprit=leader)
        total += r[2]
        out.append(list(r))
    if total > want:
        raise ProtocolError(f"party {leader} allocated {total} items for a request of {want}", culprit=leader)
    return out


class PooledSession:
    """A session's ``Preprocessing`` backed by a ``Pool`` and the leader's allocations; with a binary
    key share ``bctx`` also a ``MixedPreprocessing`` (AND triples, daBits, edaBits from the pools
    of ``mixed.KINDS``; a kind registered there is drawn by its ``method`` name here)."""

    def __init__(
        self,
        pool: Pool,
        ctx: ShareContext,
        net: Net,
        on_compromise: Any,
        epoch: Any,
        bctx: BinaryContext | None = None,
    ) -> None:
        self.ctx = ctx
        if bctx is not None:
            self.bctx = bctx
        self._generation = pool.generation  # a purge (the epoch retired) ends this session's supply
        self._pool = pool
        self._net = net
        self._on_compromise = on_compromise
        self.epoch = epoch
        self._channels: dict[int, PairChannel] = {}

    def _channel(self, peer: int) -> PairChannel:
        ch = self._channels.get(peer)
        if ch is None:
            ch = self._channels[peer] = PairChannel(self._net, peer, ALLOC_CHANNEL)
        return ch

    async def _get(self, kind: str, want: int) -> tuple[list[Any], np.ndarray | None]:
        if want < 0:
            raise ValueError("negative preprocessing request")
        k = parts_of(kind)
        if want == 0:
            f = self.ctx.field
            empty = [SharedArray(self.ctx, f.zeros(0), f.zeros(0)) for _ in range(k)]
            return empty, f.zeros(0)
        if self._pool.generation != self._generation:
            raise AbortError(
                f"the MAC keys of epoch {self.epoch} were retired: its preprocessing is gone (the "
                "session started under them cannot draw the next epoch's)"
            )
        pieces: list[Any] = []
        got = 0
        me = self._net.party
        while got < want:
            if me == LEADER:
                ranges, new = await self._pool.allocate(kind, want - got)
                for j in range(self._net.n):
                    if j != me:
                        await self._channel(j).send(ranges)
            else:
                msg = await self._channel(LEADER).recv()
                ranges = _parse_ranges(msg, LEADER, want - got)
                new = await self._pool.take(kind, ranges, LEADER)
            pieces.extend(new)
            got += sum(r[2] for r in ranges)
        parts = [
            type(pieces[0][0][i]).concat([p[0][i] for p in pieces]) if len(pieces) > 1 else pieces[0][0][i]
            for i in range(k)
        ]
        clears = [p[1] for p in pieces if p[1] is not None]
        clear = (clears[0] if len(clears) == 1 else np.concatenate(clears, axis=1)) if clears else None
        return parts, clear

    async def triples(self, n: int) -> tuple[SharedArray, SharedArray, SharedArray]:
        (a, b, c), _ = await self._get("triple", n)
        return a, b, c

    async def squares(self, n: int) -> tuple[SharedArray, SharedArray]:
        (a, a2), _ = await self._get("square", n)
        return a, a2

    async def bits(self, n: int) -> SharedArray:
        (b,), _ = await self._get("bit", n)
        return b

    async def randoms(self, n: int) -> SharedArray:
        (r,), _ = await self._get("random", n)
        return r

    async def input_masks(self, owner: int, n: int) -> tuple[SharedArray, np.ndarray | None]:
        if not 0 <= owner < self.ctx.n:
            raise ValueError(f"no party {owner}")
        (r,), clear = await self._get(mask_kind(owner), n)
        if owner == self.ctx.party and (clear is None or clear.shape[1] != n):
            raise AbortError("input masks arrived without their clear values at their owner")
        return r, (clear if owner == self.ctx.party else None)

    # ------------------------------------------------------------------ binary material
    async def _mixed(self, name: str, n: int) -> list[Any]:
        bctx = getattr(self, "bctx", None)
        if bctx is None:
            raise AttributeError("this pooled session has no binary key share: no binary material")
        parsed = mixed.parse(name)
        if parsed is None:
            raise ValueError(f"no binary material of kind {name!r}")
        kind, k = parsed
        if kind.sized:
            assert kind.max_bits is not None
            top = kind.max_bits(self.ctx.field, self.ctx.n)
            if not 1 <= k <= top:
                raise ValueError(f"{kind.method} of {k} bits: this field and party count allow 1 to {top}")
        if n < 0:
            raise ValueError("negative preprocessing request")
        if n == 0:
            f = self.ctx.field
            empty = {
                part: lambda: SharedArray(self.ctx, f.zeros(0), f.zeros(0)) for part in ("field", "group")
            }
            return [empty.get(part, lambda: _no_bits(bctx))() for part in kind.layout]
        parts, _ = await self._get(name, n)
        return parts

    async def and_triples(self, n: int) -> tuple[AuthBits, AuthBits, AuthBits]:
        a, b, c = await self._mixed("and_triple", n)
        return a, b, c

    async def dabits(self, n: int) -> tuple[SharedArray, AuthBits]:
        b, bb = await self._mixed("dabit", n)
        return b, bb

    async def edabits(self, n: int, k: int) -> tuple[SharedArray, AuthBits]:
        r, bits = await self._mixed(f"edabit{mixed.SEP}{k}", n)
        return r, bits

    async def loose_edabits(self, n: int, k: int) -> tuple[SharedArray, AuthBits]:
        r, bits = await self._mixed(f"loose{mixed.SEP}{k}", n)
        return r, bits

    async def ranged_randoms(self, n: int, width: int) -> SharedArray:
        (r,) = await self._mixed(f"{mixed.RANGED}{mixed.SEP}{width}", n)
        return r  # type: ignore[no-any-return]

    async def owned_triples(
        self, owner: int, n: int, width: int
    ) -> tuple[SharedArray, SharedArray, SharedArray]:
        if not 0 <= owner < self.ctx.n:
            raise ValueError(f"no party {owner}")
        a, b, c = await self._mixed(mixed.owned_name(owner, width), n)
        return a, b, c

    def __getattr__(self, name: str) -> Any:
        """The draw of any other registered mixed kind, by its ``method`` name (``mixed.register``)."""
        kind = mixed.BY_METHOD.get(name)
        if kind is None or name.startswith("_") or "bctx" not in self.__dict__:
            raise AttributeError(name)
        if kind.sized:

            async def draw_sized(n: int, k: int) -> tuple[Any, ...]:
                return tuple(await self._mixed(kind.name(k), n))

            return draw_sized

        async def draw(n: int) -> tuple[Any, ...]:
            return tuple(await self._mixed(kind.name(), n))

        return draw

    def compromised(self) -> None:
        self._on_compromise(self.epoch)


def _no_bits(bctx: BinaryContext) -> AuthBits:
    return AuthBits.empty(bctx)
