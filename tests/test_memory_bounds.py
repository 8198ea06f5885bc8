"""Memory bounds of the offline service, without running MASCOT: the leader's planner never asks for a
batch whose estimated working set exceeds ``Watermarks.batch_bytes``, never makes material ahead of use
past ``Watermarks.pool_bytes``, and resumes when a session frees room; a bound too small for one batch
is refused. (The estimate itself is checked against a measured batch in ``test_mascot.py``; the
service under a small pool bound, end to end, in ``test_offline_service.py``.)
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import trio
import trio.testing

from actors.offline import DEFAULT_BATCH_BYTES, MIN_DEMAND_BATCH, OfflineService, Watermarks
from protocols.errors import ConfigError
from protocols.field import P61, P127, get_field
from protocols.mascot import memory
from protocols.preprocessing.pool import Batch, Pool
from protocols.shares import ShareContext, SharedArray

KINDS = ("triple", "square", "bit", "random", "mask0", "mask1")


def service(field: Any, n: int, marks: Watermarks, party: int = 0) -> OfflineService:
    """A service whose planner and pool work (its engine is never used here)."""
    engine = SimpleNamespace(router=SimpleNamespace(on_new_session=None))
    return OfflineService(engine, field, party, n, marks)


def batch_of(field: Any, n: int, kind: str, count: int, batch_id: int) -> Batch:
    """A batch shaped like the generators' output (value and MAC shares of every part)."""
    ctx = ShareContext(field, 0, n, field.from_ints([1]))
    parts = 3 if kind == "triple" else 2 if kind == "square" else 1
    shared = [SharedArray(ctx, field.zeros(count), field.zeros(count)) for _ in range(parts)]
    clear = field.zeros(count) if kind.startswith("mask") else None
    return Batch(batch_id, kind, shared, clear)


@pytest.mark.parametrize("p", [P61, P127], ids=["p61", "p127"])
@pytest.mark.parametrize("n", [2, 3, 5])
@pytest.mark.parametrize("kind", KINDS)
async def test_a_demand_batch_fits_the_batch_bound(p: int, n: int, kind: str) -> None:
    """However much a waiting session asks for, the batch the leader announces has an estimated working
    set within ``batch_bytes``, at the smallest bound the service accepts and at a larger one."""
    f = get_field(p)
    for budget in (memory.min_budget(f, n), 3 * memory.min_budget(f, n)):
        big = dict.fromkeys(("triple", "square", "bit", "random", "mask"), 1 << 20)
        svc = service(f, n, Watermarks(batch=big, batch_bytes=budget))
        svc.pool.demand[kind] = 10**7
        with trio.fail_after(1):
            planned, count = await svc._plan()
        assert planned == kind and count >= MIN_DEMAND_BATCH
        assert memory.batch_bytes(f, n, kind, count) <= budget
        assert memory.batch_bytes(f, n, kind, count + 1) > budget  # and no smaller than it must be


async def test_refills_stop_at_the_pool_bound_and_resume_when_room_frees(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Refills (watermarks far above what fits) fill the pool up to ``pool_bytes`` and no further:
    every planned batch fits the room left, the pool never holds more than its bound, and the planner
    then waits; once a session takes material it plans again."""
    f, n = get_field(P127), 3
    bound = 2 << 20
    marks = Watermarks(triple=(10**6, 10**6), mask=(10**6, 10**6), pool_bytes=bound)
    svc = service(f, n, marks)
    pool = svc.pool
    made = 0
    while True:
        with trio.move_on_after(5) as waited:
            kind, count = await svc._plan()
        if waited.cancelled_caught:
            break
        assert pool.nbytes + count * memory.item_bytes(f, kind) <= bound
        pool.add(batch_of(f, n, kind, count, made))
        made += 1
        assert pool.nbytes <= bound
        assert made < 1000, "the planner never stopped"
    assert made > 3 and pool.nbytes > bound // 2  # it did fill the pool, in several batches
    assert not any(svc._refill(k) for k in svc._kinds())  # what ``wait_for`` sees: nothing more to make
    # a session takes a whole batch of triples: room for more
    ranges, _ = await pool.allocate("triple", pool.batches["triple"][0].size)
    assert ranges
    with trio.fail_after(5):
        kind, count = await svc._plan()
    assert pool.nbytes + count * memory.item_bytes(f, kind) <= bound


async def test_the_planner_agrees_with_the_batches_it_sizes() -> None:
    """``memory.item_bytes`` is what a batch of that kind occupies in the pool (``Batch.nbytes``), so
    the planner's room arithmetic is the pool's own."""
    f, n = get_field(P127), 3
    for kind in KINDS:
        assert batch_of(f, n, kind, 100, 0).nbytes == 100 * memory.item_bytes(f, kind)


def test_pool_bytes_follow_adds_takes_and_purges() -> None:
    f, n = get_field(P61), 2
    pool = Pool()
    a, b = batch_of(f, n, "triple", 10, 0), batch_of(f, n, "bit", 20, 1)
    pool.add(a)
    pool.add(b)
    assert pool.nbytes == a.nbytes + b.nbytes
    pool._take(a, 0, 4)
    assert pool.nbytes == a.nbytes + b.nbytes  # a batch is held whole until all of it is used
    pool._take(a, 4, 6)
    assert pool.nbytes == b.nbytes
    pool.purge()
    assert pool.nbytes == 0


@pytest.mark.parametrize("n", [2, 3, 8])
def test_a_bound_too_small_for_one_batch_is_refused(n: int) -> None:
    f = get_field(P127)
    low = memory.min_budget(f, n)
    service(f, n, Watermarks(batch_bytes=low))  # accepted
    with pytest.raises(ConfigError, match=f"a MASCOT batch at {n} parties on p127 needs about"):
        service(f, n, Watermarks(batch_bytes=low - 1))
    with pytest.raises(ConfigError, match="pool_mb"):
        service(f, n, Watermarks(pool_bytes=1000))


def test_the_estimate_grows_with_the_count_not_the_chunks() -> None:
    """Chunk scratch does not depend on the count, and hardly on the parties (the chunks shrink as
    1 / (n - 1)); the per-item part is linear in the count and grows with the parties."""
    f = get_field(P127)
    for kind in KINDS:
        small, big = memory.batch_bytes(f, 3, kind, 1), memory.batch_bytes(f, 3, kind, 10**5)
        assert big - small == (10**5 - 1) * memory.per_item_bytes(f, 3, kind)
        assert memory.per_item_bytes(f, 4, kind) > memory.per_item_bytes(f, 3, kind)
    assert max(memory.scratch_bytes(f, n) for n in range(2, 9)) < 2 * memory.scratch_bytes(f, 2)
    assert memory.max_count(f, 3, "triple", memory.scratch_bytes(f, 3)) == 0
    assert np.all([memory.max_count(f, 3, k, DEFAULT_BATCH_BYTES) >= 16384 for k in KINDS])


# ---------------------------------------------------------------------------------------- online
async def long_vector_ops(s: Any, a: np.ndarray, b: np.ndarray, k: int) -> list[Any]:
    from protocols import comparison as cmp
    from protocols.sectypes import SecretInt, gather

    x = await SecretInt.input(s, a if s.party == 0 else None, owner=0, k=k)
    y = await SecretInt.input(s, b if s.party == s.n - 1 else None, owner=s.n - 1, k=k)
    lt, eq = await gather(x < y, x == y)
    bits = await cmp.bit_decompose(s, x.shares, k)
    out = [await lt.reveal(), await eq.reveal()]
    opened = await s.output(bits)
    return [*out, np.array([int(v) for v in opened]).reshape(k, -1)]


@pytest.mark.parametrize("n", [2, 3])
async def test_comparisons_of_a_long_vector_run_in_bounded_slices(
    n: int, monkeypatch: pytest.MonkeyPatch, autojump_clock: trio.abc.Clock
) -> None:
    """With slices of 16 elements, comparisons, equality tests and bit decompositions of 200 values
    (edges and their neighbours included) give numpy's answers, and no request for random bits is
    larger than one slice needs: the protocols never hold more than a slice's preprocessing."""
    from helpers import run_cluster

    from protocols import rounds
    from protocols.preprocessing.plan import PlanRecorder

    monkeypatch.setattr(rounds, "CHUNK", 16)
    k, size = 32, 200
    rng = np.random.default_rng(7)
    top = 2 ** (k - 1)
    edge = np.array([0, 1, -1, top - 1, -top, -top + 1, top - 2, 2])
    a = np.concatenate([rng.integers(-top, top, size - 2 * len(edge)), edge, edge])
    b = np.concatenate([rng.integers(-top, top, size - 2 * len(edge)), edge, edge[::-1]])
    rec = PlanRecorder()
    res = await run_cluster(n, P127, long_vector_ops, a, b, k, interceptors={0: rec})
    for lt, eq, bits in res:
        assert np.array_equal(np.asarray(lt), (a < b).astype(int))
        assert np.array_equal(np.asarray(eq), (a == b).astype(int))
        want = (a[None, :].astype(object) % 2**k >> np.arange(k)[:, None]) & 1
        assert np.array_equal(bits, want.astype(int))
    bit_requests = [m for kind, m in rec.requests if kind == "bits"]
    assert len(bit_requests) >= 3 * (size // 16)  # a request per slice and operation
    # gather merges the comparison's and the equality test's requests of a slice: each needs at most
    # k + 1 + kappa + 1 bits per element (all 200 at once: 29,400)
    assert max(bit_requests) <= 2 * 128 * 16


async def long_products(s: Any, a: np.ndarray, b: np.ndarray) -> list[Any]:
    from protocols.sectypes import SecretFix, SecretInt, gather

    x = await SecretFix.input(s, a if s.party == 0 else None, owner=0)
    y = await SecretFix.input(s, b if s.party == s.n - 1 else None, owner=s.n - 1)
    i = await SecretInt.input(s, np.round(a).astype(np.int64) if s.party == 0 else None, owner=0, k=16)
    fix, ints = await gather(x * y, i * i)  # one step: a product and a truncation, and a product
    return [await fix.reveal(), await ints.reveal()]


@pytest.mark.parametrize("n", [2, 3])
async def test_a_long_step_of_products_and_truncations_runs_in_bounded_slices(
    n: int, monkeypatch: pytest.MonkeyPatch, autojump_clock: trio.abc.Clock
) -> None:
    """With a budget of 40 kB of preprocessing per round, fixed-point and integer products of 300
    values (a step of Beaver products and probabilistic truncations) give numpy's answers, and no
    request for triples or truncation bits is larger than the budget allows."""
    from helpers import run_cluster

    from protocols import rounds
    from protocols.preprocessing.plan import PlanRecorder

    budget = 40_000
    monkeypatch.setattr(rounds, "STEP_BYTES", budget)
    rng = np.random.default_rng(11)
    a, b = rng.uniform(-100, 100, 300), rng.uniform(-100, 100, 300)
    rec = PlanRecorder()
    res = await run_cluster(n, P127, long_products, a, b, interceptors={0: rec})
    for fix, ints in res:
        assert np.max(np.abs(np.asarray(fix) - a * b)) < 1e-3
        assert np.array_equal(np.asarray(ints), np.round(a).astype(np.int64) ** 2)
    e = get_field(P127).elem_bytes
    triples = [m for kind, m in rec.requests if kind == "triples"]
    bits = [m for kind, m in rec.requests if kind == "bits"]
    # 600 triples (58 kB) in 2 slices; 300 truncation masks of 124 bits (1.2 MB) in 30
    assert len(triples) >= 2 and max(triples) * 6 * e <= budget
    assert len(bits) >= 30 and max(bits) * 2 * e <= budget
