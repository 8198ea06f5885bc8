"""The offline service makes and pools binary material (AND triples, daBits, edaBits, loose edaBits).

Real MASCOT and the real binary protocols (``protocols.binary``), p = 2^61 - 1, small batches, n = 2
and 3: comparisons on ``Session(comparison="binary")`` exact against plaintext with every binary item
drawn from the pools; one session drawing field triples and every binary kind, each item opened and
checked; the plan's counts and a planned job's stock; retirement (a failed binary check online, a failed
binary batch) zeroing both keys and purging every pool; a session of a retired epoch failing cleanly;
the memory bounds; a leader's malformed binary batch named in a ``ProtocolError``; the config keys.
"""

from __future__ import annotations

import dataclasses
import tracemalloc
from typing import Any

import numpy as np
import pytest
import trio
from helpers import DEADLINE

import actors
from actors import metrics
from actors.config import ConfigError, _read_pool, _Reader
from actors.offline import Watermarks, _BatchMaterial
from actors.plan import preprocessing_plan
from protocols.binary import BinaryParty
from protocols.binary.bits import AuthBits
from protocols.binary.circuits import checker
from protocols.binary.triples import bucket_size
from protocols.errors import AbortError, MacCheckError, ProtocolError
from protocols.field import P61, get_field
from protocols.intercept import Forwarding, PassThrough
from protocols.mascot import MascotParty, memory
from protocols.online import Session
from protocols.preprocessing import mixed
from protocols.preprocessing.pool import Batch, Pool
from protocols.sectypes import SecretInt, gather

F61 = get_field(P61)
SMALL = {"triple": 512, "mask": 512, "square": 512, "bit": 512, "random": 512}
BINARY_BATCH = {"and_triple": 4096, "dabit": 256, "edabit": 32, "loose": 32}


def marks(triple: tuple[int, int] = (0, 0), **changes: Any) -> Watermarks:
    return Watermarks(triple=triple, mask=(0, 0), batch={**SMALL, **BINARY_BATCH}, **changes)


def binary_kinds(levels: dict[str, int]) -> set[str]:
    return {k for k in levels if mixed.is_mixed(k)}


# ---------------------------------------------------------------------------------------- programs
K = 16  # SecretInt bits (p61 leaves 20 with 40 bits of statistical security)


async def compare(s: Session, a: np.ndarray, b: np.ndarray, c: int) -> list[Any]:
    x = await SecretInt.input(s, a if s.party == 0 else None, owner=0, k=K)
    y = await SecretInt.input(s, b if s.party == s.n - 1 else None, owner=s.n - 1, k=K)
    res = await gather(x < y, x <= y, x == y, x < c, x == c)
    return [await r.reveal() for r in res]


def expected(a: np.ndarray, b: np.ndarray, c: int) -> list[np.ndarray]:
    return [np.asarray(v, dtype=np.int64) for v in (a < b, a <= b, a == b, a < c, a == c)]


def values(size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    top = 2 ** (K - 1)
    edges = np.array([0, 1, -1, top - 1, -top, -top + 1, 5, 5])
    rng = np.random.default_rng(seed)
    a = np.concatenate([rng.integers(-top, top, size), edges])
    b = np.concatenate([rng.integers(-top, top, size), edges[::-1]])
    return a, b


async def open_bits(s: Session, x: AuthBits) -> np.ndarray:
    (bits,) = await checker(s).open([x])
    await s.mac_check()  # the binary check is attached to the session's
    return bits.astype(np.int64)


async def mixed_program(s: Session, xs: list[int]) -> dict[str, Any]:
    """Field products and every kind of binary material in one session, each item opened (checked)."""
    pre: Any = s.pre
    x = await s.input(np.array(xs) if s.party == 0 else None, owner=0)
    squares = await s.output(await s.mul(x, x))
    a, b, c = await pre.and_triples(300)
    d_f, d_b = await pre.dabits(40)
    e_f, e_b = await pre.edabits(12, 10)
    l_f, l_b = await pre.loose_edabits(12, 6)
    cube = await s.output(await s.mul(await s.mul(x, x), x))
    return {
        "squares": [int(v) for v in squares],
        "cubes": [int(v) for v in cube],
        "and": [await open_bits(s, v) for v in (a, b, c)],
        "dabit": ([int(v) for v in await s.output(d_f)], await open_bits(s, d_b)),
        "edabit": ([int(v) for v in await s.output(e_f)], await open_bits(s, e_b)),
        "loose": ([int(v) for v in await s.output(l_f)], await open_bits(s, l_b)),
    }


def compose(bits: np.ndarray, k: int) -> list[int]:
    return [sum(int(v) << j for j, v in enumerate(row)) for row in bits.reshape(-1, k)]


# ---------------------------------------------------------------------------------------- online use
@pytest.mark.parametrize("n", [2, 3])
async def test_binary_comparisons_run_on_material_the_service_made(n: int) -> None:
    """Comparisons on the binary path: every AND triple, daBit and edaBit comes from the pools (the
    service made them on demand, in batches announced by the leader), the results are exact, every
    party holds the same binary batches, and no field bit was made (the field path's material)."""
    a, b = values(24, seed=n)
    with trio.fail_after(DEADLINE):
        async with actors.local_cluster(
            n, modulus=P61, watermarks=marks(), session_options={"comparison": "binary"}
        ) as c:
            res = await c.run(compare, a, b, 5)
            svcs = [p.offline for p in c.parties]
            made = [binary_kinds(svc.generated) for svc in svcs]
            ids = [sorted((bt.batch_id, bt.kind, bt.size) for bt in svc.pool.by_id.values()) for svc in svcs]
    want = expected(a, b, 5)
    for got in res:
        for g, e in zip(got, want, strict=True):
            assert np.array_equal(np.asarray(g), e)
    for kinds in made:
        assert {"and_triple", "dabit"} <= kinds, kinds
        assert any(k.startswith(("edabit:", "loose:")) for k in kinds), kinds
    assert all("bit" not in svc.generated for svc in svcs), [svc.generated for svc in svcs]
    assert all(i == ids[0] for i in ids)


@pytest.mark.parametrize("n", [2, 3])
async def test_one_session_draws_field_triples_and_every_binary_kind(n: int) -> None:
    """AND triples (c = a AND b), daBits (the same bit in both domains), edaBits (r = sum 2^j r_j) and
    loose edaBits (R mod 2^k = their bits) from the pools, beside field products, in one session:
    all exact and the same at every party."""
    xs = [3, -4, 1000, 0]
    with trio.fail_after(DEADLINE):
        async with actors.local_cluster(n, modulus=P61, watermarks=marks()) as c:
            res = await c.run(mixed_program, xs)
    for r in res:
        assert r["squares"] == [x * x for x in xs] and r["cubes"] == [x**3 for x in xs]
        a, b, cc = r["and"]
        assert a.size == 300 and np.array_equal(a & b, cc) and 0 < a.sum() < 300
        field, bits = r["dabit"]
        assert field == bits.tolist() and 0 < sum(field) < 40
        field, bits = r["edabit"]
        assert field == compose(bits, 10) and len(set(field)) > 6 and max(field) < 2**10
        field, bits = r["loose"]
        assert [v % 2**6 for v in field] == compose(bits, 6) and max(field) >= 2**6
    assert all(str(r) == str(res[0]) for r in res)


async def test_the_plan_counts_binary_material_and_a_planned_job_runs_on_its_stock() -> None:
    """``preprocessing_plan(comparison="binary")`` counts AND triples, daBits and edaBits under their
    pool names; ``Watermarks.for_plan`` and ``Cluster.stock`` make that before the job (binary kinds:
    up to the plan's equal batches, not one batch more), which then runs on it without a single batch
    made on demand."""
    n = 2
    a, b = values(10, seed=7)
    need = await preprocessing_plan(compare, n, a, b, 5, modulus=P61, comparison="binary")
    field_only = await preprocessing_plan(compare, n, a, b, 5, modulus=P61)
    assert need["and_triple"] > 0 and need["dabit"] > 0, need
    sized = {k: v for k, v in need.items() if k.startswith(("edabit:", "loose:"))}
    assert sized and all(v > 0 for v in sized.values()), need
    assert "bit" not in need and field_only.get("bit", 0) > 0 and not binary_kinds(field_only)
    wm = Watermarks.for_plan(need, batch=4096)
    assert all(wm.of(k)[0] >= v for k, v in need.items())
    with trio.fail_after(DEADLINE):
        async with actors.local_cluster(
            n, modulus=P61, watermarks=wm, session_options={"comparison": "binary"}
        ) as c:
            await c.stock(need)
            svcs = [p.offline for p in c.parties]
            assert all(svc.holds(need) for svc in svcs)
            before = [dict(svc.generated) for svc in svcs]
            res = await c.run(compare, a, b, 5)
            assert [dict(svc.generated) for svc in svcs] == before  # nothing made while it ran
            levels = [svc.pool.levels() for svc in svcs]
    for got in res:
        for g, e in zip(got, expected(a, b, 5), strict=True):
            assert np.array_equal(np.asarray(g), e)
    for lv, made in zip(levels, before, strict=True):
        for kind, count in need.items():
            assert made[kind] - lv.get(kind, 0) == count, kind  # exactly the plan was drawn
            if binary_kinds({kind: count}):  # and made: up to the plan's equal batches, no further
                assert made[kind] == wm.of(kind)[1] < count + wm.batch_of(kind), (kind, made[kind], count)


async def test_a_plan_handed_over_at_the_start_is_made_once_while_the_job_runs() -> None:
    """``Watermarks.for_plan(need, ahead=False)`` makes nothing before the plan is handed over;
    ``stock(need, wait=False)`` returns at once, the job runs while its material is made, and what is
    made is the plan in its batches: not the plan again when the job drains the pools."""
    n = 2
    a, b = values(10, seed=8)
    need = await preprocessing_plan(compare, n, a, b, 5, modulus=P61, comparison="binary")
    wm = Watermarks.for_plan(need, batch=4096, ahead=False)
    with trio.fail_after(DEADLINE):
        async with actors.local_cluster(
            n, modulus=P61, watermarks=wm, session_options={"comparison": "binary"}
        ) as c:
            svcs = [p.offline for p in c.parties]
            await trio.sleep(0.5)
            assert [dict(svc.generated) for svc in svcs] == [{}, {}]  # nothing ahead of the plan
            await c.stock(need, wait=False)
            assert not any(svc.holds(need) for svc in svcs)  # returned at once
            res = await c.run(compare, a, b, 5)
            await trio.sleep(0.5)  # no refill afterwards either
            made = [dict(svc.generated) for svc in svcs]
    for got in res:
        for g, e in zip(got, expected(a, b, 5), strict=True):
            assert np.array_equal(np.asarray(g), e)
    for m in made:
        for kind, count in need.items():
            assert count <= m.get(kind, 0) < count + wm.batch_of(kind), (kind, m.get(kind), count)


async def test_a_planned_binary_pool_is_made_in_one_batch_of_the_plan() -> None:
    """A plan of 3,000 daBits gets 3,000: not ramped up from 1,024 (1,024 + 1,024 + 2,048 = 4,096 made,
    a quarter of it waste at tens of kB per daBit), not past the watermark."""
    need = {"dabit": 3000}
    with trio.fail_after(DEADLINE):
        async with actors.local_cluster(2, modulus=P61, watermarks=Watermarks.for_plan(need)) as c:
            await c.stock(need)
            svcs = [p.offline for p in c.parties]
            assert [svc.generated.get("dabit") for svc in svcs] == [3000, 3000]


# ---------------------------------------------------------------------------------------- retirement
class FlipTripleBit(PassThrough):
    """Flips party ``who``'s share of the first AND triple's ``c`` in every online session."""

    def wrap_preprocessing(self, session: str, pre: Any) -> Any:
        if session.startswith("mascot/"):
            return pre

        class Flip(Forwarding):
            async def and_triples(self, n: int) -> Any:
                a, b, c = await self.inner.and_triples(n)  # type: ignore[attr-defined]
                bits = c.bits.copy()
                bits[0] ^= 1
                return a, b, AuthBits(c.ctx, bits, c.macs)

        return Flip(pre)


async def open_triples(s: Session) -> Any:
    a, b, c = await s.pre.and_triples(64)  # type: ignore[attr-defined]
    return await open_bits(s, c)


async def test_a_failed_binary_check_retires_both_keys_and_purges_every_pool() -> None:
    """Party 1 of 3 holds a wrong share of an AND triple: the binary MAC check of the opening fails,
    every party aborts, and every service retires the epoch: the binary key share zeroed, the MAC key
    zeroed, the pools purged (binary and field), and the next epoch serves correct material."""
    n = 3
    wm = marks(triple=(512, 1024), mixed={"and_triple": (4096, 8192), "dabit": (200, 400)})
    with trio.fail_after(DEADLINE):
        async with actors.local_cluster(
            n, modulus=P61, watermarks=wm, interceptors={1: FlipTripleBit()}
        ) as c:
            svcs = [p.offline for p in c.parties]
            while any(
                s.pool.level("and_triple") < 4096
                or s.pool.level("dabit") < 200
                or s.pool.level("triple") < 512
                for s in svcs
            ):
                await trio.sleep(0.02)
            old = [(s.epoch, s.binary, s.mascot, s.pool.generation) for s in svcs]
            held = [s.pool.nbytes for s in svcs]
            results = await c.run_each(open_triples)
            assert all(isinstance(r, AbortError) for r in results), results
            assert any(isinstance(r, MacCheckError) for r in results)
            for svc, (epoch, binary, mascot, gen) in zip(svcs, old, strict=True):
                assert binary.retired and not binary.ctx.delta.any() and not binary.cot_send
                assert mascot.retired and not mascot.ctx.alpha.any()
                assert svc.pool.generation > gen and any(epoch in f for f in svc.failures)
                assert svc.epoch != epoch
                # no batch of the old epoch is left (the new epoch's are numbered from 0 again)
                assert all(bt.batch_id < 10 for bt in svc.pool.by_id.values())
            assert all(h > 0 for h in held)
            # the next epoch's binary material is good (a session without the cheater's wrapper)
            c.parties[1].engine.interceptor = None
            again = await c.run(open_triples)
            assert all(len(r) == 64 for r in again)


class BreakBinaryBatch(PassThrough):
    """Party 1 flips a bit of the first large message it sends in epoch 0's first binary batch (after
    the leader's announcement of an ``and_triple`` batch): some binary check of that batch fails."""

    def __init__(self) -> None:
        self.hits = 0

    def wrap_net(self, session: str, net: Any) -> Any:
        if not session.startswith("mascot/0-") or session.endswith(("/setup", "/lifeline")):
            return net
        outer = self
        seen: list[Any] = []

        class Net:
            party, n = net.party, net.n

            async def send(self, to: int, step: int, msg: Any) -> None:
                if seen and not outer.hits and isinstance(msg, bytes) and len(msg) >= 64:
                    outer.hits += 1
                    raw = bytearray(msg)
                    raw[len(raw) // 2] ^= 0x10
                    msg = bytes(raw)
                await net.send(to, step, msg)

            async def recv(self, frm: int, step: int) -> Any:
                got = await net.recv(frm, step)
                if isinstance(got, list) and len(got) == 2 and got[0] == "and_triple":
                    seen.append(got)
                return got

        return Net()


async def test_a_failed_binary_batch_retires_the_epoch_and_the_service_recovers() -> None:
    n = 2
    cheat = BreakBinaryBatch()
    wm = marks(triple=(512, 1024), mixed={"and_triple": (2048, 4096)})
    with trio.fail_after(DEADLINE):
        async with actors.local_cluster(n, modulus=P61, watermarks=wm, interceptors={1: cheat}) as c:
            svcs = [p.offline for p in c.parties]
            first = [s.binary for s in svcs]
            while any(s.keys < 2 or s.pool.level("and_triple") < 2048 for s in svcs):
                await trio.sleep(0.02)
            assert cheat.hits == 1
            for svc, binary in zip(svcs, first, strict=True):
                assert svc.failures and svc.failures[0].startswith("epoch 0-")
                assert binary is not None and binary.retired and not binary.ctx.delta.any()
                assert svc.binary is not binary and svc.binary is not None and svc.binary.ready
            res = await c.run(open_triples)
            assert all(len(r) == 64 for r in res)


async def test_a_session_of_a_retired_epoch_cannot_draw_binary_material() -> None:
    """A session that started under an epoch and draws binary material after the epoch retired gets an
    ``AbortError`` saying so at every party, not the next epoch's material (nor a hang)."""
    n = 3
    gate = trio.Event()

    def ours(p: Any) -> bool:
        return any(not sid.startswith("mascot/") for sid in p.engine.running)

    async def late_draw(s: Session) -> Any:
        await gate.wait()
        return await s.pre.edabits(4, 8)  # type: ignore[attr-defined]

    with trio.fail_after(DEADLINE):
        async with actors.local_cluster(n, modulus=P61, watermarks=marks(triple=(256, 512))) as c:
            svcs = [p.offline for p in c.parties]
            await svcs[0].wait_ready()
            async with trio.open_nursery() as nursery:
                out: list[Any] = []

                async def run() -> None:
                    out.extend(await c.run_each(late_draw))

                nursery.start_soon(run)
                while not all(ours(p) for p in c.parties):  # running everywhere, at the gate
                    await trio.sleep(0.01)
                svcs[0].retire(svcs[0].epoch, "retired by the test")
                gate.set()
            assert all(isinstance(r, AbortError) for r in out), out
            assert any("retired" in str(r) for r in out), out


# ---------------------------------------------------------------------------------------- malformed
@pytest.mark.parametrize(
    ("plan", "why"),
    [
        (["edabit:0", 16], "edabit of 0 bits"),
        (["edabit:60", 16], "allows 1 to 59"),
        (["edabit:032", 16], "malformed kind"),
        (["edabit", 16], "malformed kind"),
        (["dabit:3", 16], "malformed kind"),
        (["and_triple", 0], "positive integer"),
        (["and_triple", True], "positive integer"),
        (["dabit", 1 << 30], "more than a batch may hold"),
        (["loose:8", "16"], "positive integer"),
    ],
)
async def test_a_malformed_binary_batch_announcement_is_a_protocol_error_naming_the_leader(
    plan: list[Any], why: str
) -> None:
    class Announce(PassThrough):
        def __init__(self) -> None:
            self.hits = 0

        def wrap_net(self, session: str, net: Any) -> Any:
            if not (session.startswith("mascot/0-") and session.endswith("/0")):
                return net
            outer = self

            class Net:
                party, n = net.party, net.n

                async def send(self, to: int, step: int, msg: Any) -> None:
                    if isinstance(msg, list) and len(msg) == 2 and msg[0] == "triple":
                        outer.hits += 1
                        msg = plan
                    await net.send(to, step, msg)

                async def recv(self, frm: int, step: int) -> Any:
                    return await net.recv(frm, step)

            return Net()

    cheat = Announce()
    with trio.fail_after(DEADLINE):
        async with actors.local_cluster(
            3, modulus=P61, watermarks=marks(triple=(256, 512)), interceptors={0: cheat}
        ) as c:
            prefix = f"party 0 announced an invalid batch of binary material {plan!r}: "

            def told(p: Any) -> bool:
                return any(prefix in r and why in r for _, r in p.engine.aborts)

            # the first follower to read the announcement names the leader; the other may hear of the
            # abort first through the epoch's lifeline (its batch session is then cancelled, not
            # failed), so it only has to have aborted
            followers = c.parties[1:]
            while not (any(told(p) for p in followers) and all(p.engine.aborts for p in followers)):
                await trio.sleep(0.01)
    assert cheat.hits == 2


def test_validation_of_binary_kinds_and_counts() -> None:
    assert mixed.invalid("edabit:32", 100, F61, 3) is None and mixed.invalid("triple", 5, F61, 3) is None
    assert mixed.invalid("loose:16", 100, F61, 3) is None
    assert "allows 1 to 16" in str(mixed.invalid("loose:17", 100, F61, 3))
    assert mixed.parse("edabit:+3") is None and mixed.parse("edabit: 3") is None and mixed.parse(7) is None
    assert mixed.parse("edabit:٣") is None  # a non-ASCII digit
    assert ProtocolError  # (the batch test above checks the raised type through the abort reasons)


# ---------------------------------------------------------------------------------------- memory
async def test_refills_of_binary_kinds_stop_at_the_pools_byte_bound() -> None:
    """Watermarks far above what 1 MiB holds: AND-triple and daBit refills stop where the next batch
    would pass the bound, and every batch's count is at most what the batch bound allows."""
    n = 2
    bound = 1 << 20
    wm = marks(mixed={"and_triple": (10**6, 10**6), "dabit": (10**5, 10**5)})
    wm = dataclasses.replace(wm, pool_bytes=bound)
    with trio.fail_after(DEADLINE):
        async with actors.local_cluster(n, modulus=P61, watermarks=wm) as c:
            svcs = [p.offline for p in c.parties]
            while any(s._refill("and_triple") or s._refill("dabit") for s in svcs) or not all(
                s.generated.get("dabit") for s in svcs
            ):
                await trio.sleep(0.05)
            await trio.sleep(0.3)  # nothing more is made
            for svc in svcs:
                assert 0 < svc.pool.nbytes <= bound, svc.pool.nbytes
                assert svc.pool.level("and_triple") < 10**6 and svc.pool.level("dabit") < 10**5
                assert svc.pool.nbytes == sum(
                    bt.size * mixed.item_bytes(F61, bt.kind) for bt in svc.pool.by_id.values()
                )
                for bt in svc.pool.by_id.values():
                    assert bt.size <= mixed.max_count(F61, n, bt.kind, wm.batch_bytes)
            gen = [dict(s.generated) for s in svcs]
            await trio.sleep(0.3)
            assert [dict(s.generated) for s in svcs] == gen


def test_batch_counts_fit_the_batch_bound() -> None:
    """``max_count`` inverts ``batch_bytes``; a bigger budget allows bigger batches; the AND
    sub-batch of a binary batch grows with the budget from ``MIN_AND_CHUNK`` (B = 4) up to 2^19, and
    the default budget already allows B = 3."""
    budget = 384 << 20
    for n in (2, 3):
        for name in ("and_triple", "dabit", "edabit:32", "loose:12"):
            m = mixed.max_count(F61, n, name, budget)
            assert m > 0
            assert mixed.batch_bytes(F61, n, name, m, budget) <= budget
            assert mixed.batch_bytes(F61, n, name, m + 1, budget) > budget or m == mixed.MAX_ITEMS_PER_BATCH
            assert mixed.max_count(F61, n, name, 2 * budget) > m or m == mixed.MAX_ITEMS_PER_BATCH
        assert mixed.and_chunk(F61, n, 1) == mixed.MIN_AND_CHUNK
        chunks = [mixed.and_chunk(F61, n, mb << 20) for mb in (64, 128, 256, 384, 512, 1024)]
        assert chunks == sorted(chunks) and chunks[0] < chunks[-1] == 1 << 19
        assert mixed.and_chunk(F61, n, budget) >= mixed.B3_FROM  # the default budget buckets with B = 3
    # B3_FROM is where the AND triples' bucket drops to 3 (and_chunk's search depends on it)
    assert bucket_size(mixed.B3_FROM) == 3 and bucket_size(mixed.B3_FROM - 1) == 4
    assert mixed.item_bytes(F61, "and_triple") == 3 * 17
    assert mixed.item_bytes(F61, "edabit:32") == 2 * F61.elem_bytes + 32 * 17


async def batch_peak(n: int, name: str, count: int, budget: int) -> tuple[int, list[Any]]:
    """Per party: the traced peak of one binary batch (field material from MASCOT in the session),
    from after the MASCOT and binary set-ups (a session of their own) to the batch's end."""
    kind, k = mixed.parse(name)  # type: ignore[misc]
    chunk = mixed.and_chunk(F61, n, budget)
    ms = [MascotParty(F61, i, n) for i in range(n)]
    bps = [BinaryParty(i, n) for i in range(n)]
    out: list[Any] = [None] * n

    async def setup(s: Session, i: int, material: _BatchMaterial) -> None:
        await ms[i].setup(s)
        await bps[i].setup(s)

    async def batch(s: Session, i: int, material: _BatchMaterial) -> Any:
        material.bind(s)
        return await mixed.make_batch(s, bps[i], kind, k, count, chunk)

    async def everywhere(c: Any, prog: Any, sid: str) -> None:
        async def one(i: int) -> None:
            m = _BatchMaterial(ms[i], lambda *a: None, "t")
            out[i] = await c.parties[i].engine.run(prog, i, m, session=sid, pre=m)

        async with trio.open_nursery() as nursery:
            for i in range(n):
                nursery.start_soon(one, i)

    async with actors.local_cluster(n, preprocessing="dealer") as c:
        await everywhere(c, setup, "setup")
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            await everywhere(c, batch, "batch")
            peak = tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()
    return peak // n, out


@pytest.mark.slow
@pytest.mark.parametrize("n", [2, 3])
async def test_a_binary_batch_stays_within_its_estimate(n: int) -> None:
    """tracemalloc's peak of one batch of each kind (all parties in this process, per party) is below
    ``mixed.batch_bytes``. AND-triple batches use no MASCOT, so they must fit the estimate without
    MASCOT's scratch: one of 30,000, and one of 20 minimal sub-batches under a budget that forces the
    minimum (made whole, its leaky triples alone would be ~6x that estimate at n = 3); only batches
    with field material count MASCOT's scratch (its OT matrices only for products)."""
    budget = 384 << 20
    scratch = memory.scratch_bytes(F61, n)  # with Gilboa's products (triples: daBits, strict edaBits)
    cope = memory.scratch_bytes(F61, n, gilboa=False)  # input masks only (loose edaBits)
    for name, count in (("dabit", 2048), ("edabit:16", 32), ("loose:10", 32), ("and_triple", 30_000)):
        peak, parts = await batch_peak(n, name, count, budget)
        est = mixed.batch_bytes(F61, n, name, count, budget)
        assert peak <= est, (name, peak, est)
        # only batches with field material count MASCOT's scratch, and only products its OT matrices
        assert (est >= scratch) == (name in ("dabit", "edabit:16")), (name, est, scratch)
        assert est >= cope or name == "and_triple", (name, est, cope)
        assert all(p is not None and p[0].size >= count for p in parts)
    small = mixed.MIN_AND_CHUNK
    assert mixed.and_chunk(F61, n, 1) == small
    peak, _ = await batch_peak(n, "and_triple", 20 * small, 1)
    assert peak <= mixed.batch_bytes(F61, n, "and_triple", 20 * small, 1)


# ---------------------------------------------------------------------------------------- the pieces
def test_a_batch_of_edabits_slices_element_by_element() -> None:
    """A pool batch of an edaBit kind holds ``k`` bits per item: ranges cut whole items."""
    ctx = BinaryParty(0, 2).ctx
    from protocols.shares import ShareContext, SharedArray

    sctx = ShareContext(F61, 0, 2, F61.from_ints([5]))
    count, k = 6, 4
    field = SharedArray(sctx, F61.from_ints(list(range(count))), F61.from_ints([0] * count))
    bits = AuthBits(ctx, (np.arange(count * k) % 2).astype(np.uint8), np.zeros((count * k, 2), np.uint64))
    pool = Pool()
    pool.add(Batch(3, "edabit:4", [field, bits], None, [1, k]))
    assert pool.level("edabit:4") == count and pool.nbytes == count * mixed.item_bytes(F61, "edabit:4")
    with pytest.raises(ValueError, match="parts of"):
        Batch(4, "edabit:4", [field, bits[:5]], None, [1, k])
    (f2, b2), _ = pool._take(pool.by_id[3], 2, 3)
    assert F61.to_ints(f2.value) == [2, 3, 4] and b2.size == 3 * k
    assert np.array_equal(b2.bits, bits.bits[2 * k : 5 * k])


def test_watermarks_and_plans_name_binary_kinds() -> None:
    wm = Watermarks.for_plan({"triple": 5000, "and_triple": 9000, "edabit:32": 300, "mask1": 10}, batch=4096)
    assert wm.of("edabit:32") == (300, 300) and wm.of("and_triple") == (3 * 3000, 3 * 3000)
    assert wm.batch_of("edabit:32") == 300 and wm.batch_of("edabit:41") == 1024  # the family default
    assert wm.of("dabit") == (0, 0) and wm.mixed_kinds() == ["and_triple", "edabit:32"]
    assert Watermarks().of("and_triple") == (0, 0) and Watermarks().batch_of("dabit") == 8192


def test_the_config_reads_binary_watermarks_and_refuses_bad_ones(tmp_path: Any) -> None:
    r = _Reader(tmp_path / "party.toml")
    doc = {
        "pool": {
            "and_triple": [1000, 5000],
            "dabit": [0, 0],
            "edabit:32": [10, 20],
            "batch": {"edabit": 64, "edabit:32": 16, "and_triple": 4096},
        }
    }
    wm = _read_pool(r, doc, "p61", 3)
    assert wm.of("and_triple") == (1000, 5000) and wm.of("edabit:32") == (10, 20)
    assert wm.mixed == {"and_triple": (1000, 5000), "edabit:32": (10, 20)}  # [0, 0]: on demand
    assert wm.batch_of("edabit:32") == 16 and wm.batch_of("edabit:20") == 64
    for bad, key in (
        ({"edabit:60": [0, 1]}, 'pool."edabit:60"'),  # 59 bits at most with p61 at 3 parties
        ({"edabit:07": [0, 1]}, 'pool."edabit:07"'),
        ({"gadget": [0, 1]}, "pool.gadget"),
        ({"dabit": [5, 1]}, "pool.dabit"),
        ({"batch": {"edabit:0": 5}}, 'pool.batch."edabit:0"'),
    ):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            _read_pool(r, {"pool": bad}, "p61", 3)


def test_status_and_metrics_show_binary_pools() -> None:
    st = {
        "uptime": 1.0,
        "links": {},
        "pool": {
            "ready": True,
            "epoch": "0-00",
            "keys": 1,
            "levels": {"triple": 10, "and_triple": 4096, "edabit:32": 7},
            "watermarks": {"triple": [0, 0], "and_triple": [1000, 5000]},
            "generated": {"and_triple": 8192, "edabit:32": 64},
            "per_second": {"and_triple": 50_000.0, "edabit:32": 12.5},
            "bytes": 1000,
            "bytes_bound": 2000,
            "failures": [],
        },
        "sessions": {"jobs": 0, "offline": 1, "total": 1},
        "abort_counts": {},
    }
    text = metrics.render(lambda: st).decode()
    assert 'spdz_pool_level{kind="edabit:32"} 7.0' in text
    assert 'spdz_generated_total{kind="and_triple"} 8192.0' in text
    assert 'spdz_pool_low_watermark{kind="and_triple"} 1000.0' in text
    from actors import control

    full = {
        **st,
        "party": 0,
        "parties": 2,
        "pid": 1,
        "state": "serving",
        "field": "p61",
        "preprocessing": "mascot",
        "listen": "x:1",
        "control": "c",
        "reloads": 0,
        "tls": {},
        "jobs": [],
        "recent": [],
        "aborts": [],
    }
    out = control.render_status(full)
    row = next(line.split() for line in out.splitlines() if line.strip().startswith("edabit:32"))
    assert row[1] == "7" and row[-1] == "64"
