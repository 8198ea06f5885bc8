"""Secure comparison, equality, bit decomposition and truncation, checked against plaintext numpy.

Clusters of 2 and 3 parties; p127 with 32- and 64-bit integers and p61 with 16-bit ones. Comparisons
must be *exact* over the whole declared range, so besides random values every test throws in the
edges (0, +-1, +-(2^(k-1) - 1), -2^(k-1)) and every pair of them, where the difference of two k-bit
values needs k + 1 bits. The cheating tests alter the cheater's share of an opening inside a
comparison and check that every honest party aborts with a MAC-check failure before any output.

Inside ``helpers.using("mascot")`` the same tests run on MASCOT preprocessing (small vectors: every
comparison consumes about k + 42 random bits per element); the suite runs them on the test dealer.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from helpers import (
    Cheat,
    CheatNet,
    add_delta,
    assert_all_aborted,
    mod_id,
    noop,
    preprocessing_kind,
    run_cluster,
    run_each,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols import comparison as cmp
from protocols.errors import AbortError, MacCheckError
from protocols.field import P61, P127, get_field
from protocols.online import Session
from protocols.prg import PRG
from protocols.rounds import compose_bits, demux, parallel, run, suffix_prods
from protocols.sectypes import RangeError, SecretFix, SecretInt, gather, maximum, minimum, where
from protocols.shares import ShareContext, SharedArray

SETTINGS = settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
DEADLINE = 60.0 if preprocessing_kind() == "dealer" else 900.0

# (modulus, k): the widest useful SecretInt of each field, and the default
CONFIGS = [(P127, 32), (P127, 64), (P61, 16)]
CONFIG_IDS = [f"{mod_id(p)}-k{k}" for p, k in CONFIGS]
param_cfg = pytest.mark.parametrize(("p", "k"), CONFIGS, ids=CONFIG_IDS)
param_n = pytest.mark.parametrize("n", [2, 3])


def edges(k: int) -> list[int]:
    top = 2 ** (k - 1)
    return [0, 1, -1, 2, -2, top - 1, -(top - 1), -top, top - 2, -top + 1]


def mine(s: Session, value: Any, owner: int) -> Any:
    return value if s.party == owner else None


@pytest.fixture
def clock(request: pytest.FixtureRequest) -> Any:
    """The autojump clock with the dealer (a hang fails at once); the real one with MASCOT, which
    computes in worker threads that virtual time would not wait for."""
    if preprocessing_kind() == "dealer":
        return request.getfixturevalue("autojump_clock")
    return None


# ---------------------------------------------------------------------------------------- the six comparisons
async def compare_all(s: Session, a: np.ndarray, b: np.ndarray, k: int, c: int) -> list[Any]:
    x = await SecretInt.input(s, mine(s, a, 0), owner=0, k=k)
    y = await SecretInt.input(s, mine(s, b, s.n - 1), owner=s.n - 1, k=k)
    res = await gather(x < y, x <= y, x > y, x >= y, x == y, x != y, x < c, c <= x, x == c)
    return [await r.reveal() for r in res]


def expected_all(a: np.ndarray, b: np.ndarray, c: int) -> list[np.ndarray]:
    a, b = a.astype(object), b.astype(object)
    out = [a < b, a <= b, a > b, a >= b, a == b, a != b, a < c, c <= a, a == c]
    return [np.asarray(v, dtype=np.int64) for v in out]


def check_all(res: list[Any], exp: list[np.ndarray]) -> None:
    names = ["<", "<=", ">", ">=", "==", "!=", "< c", "c <=", "== c"]
    for party, got in enumerate(res):
        for name, g, e in zip(names, got, exp, strict=True):
            assert g.shape == e.shape, f"party {party} {name}: shape {g.shape}"
            bad = np.flatnonzero(np.asarray(g) != e)
            assert not bad.size, (
                f"party {party} {name}: wrong at {bad[:5]}: got {g[bad[:5]]}, want {e[bad[:5]]}"
            )


@param_n
@param_cfg
@SETTINGS
@given(data=st.data())
async def test_comparisons_exact_on_random_values(n: int, p: int, k: int, data: st.DataObject) -> None:
    top = 2 ** (k - 1)
    vals = st.integers(-top, top - 1)
    size = data.draw(st.integers(1, 60), label="size")
    a = data.draw(st.lists(vals, min_size=size, max_size=size), label="a")
    b = data.draw(st.lists(vals, min_size=size, max_size=size), label="b")
    # some equal pairs and near misses, which random draws almost never give
    eq = data.draw(st.lists(st.integers(0, size - 1), max_size=4), label="equal")
    for i in eq:
        b[i] = a[i] + data.draw(st.sampled_from([0, 0, 1, -1]), label="delta")
        b[i] = min(max(b[i], -top), top - 1)
    c = data.draw(st.sampled_from([0, 1, -1, top - 1, -top, a[0]]), label="c")
    a_arr, b_arr = np.array(a, dtype=object), np.array(b, dtype=object)
    if k <= 63:
        a_arr, b_arr = a_arr.astype(np.int64), b_arr.astype(np.int64)
    res = await run_cluster(n, p, compare_all, a_arr, b_arr, k, c, deadline=DEADLINE)
    check_all(res, expected_all(a_arr, b_arr, c))


@param_cfg
async def test_comparisons_exact_on_every_pair_of_edges(p: int, k: int) -> None:
    e = edges(k)
    a = np.array([x for x in e for _ in e], dtype=object)
    b = np.array([y for _ in e for y in e], dtype=object)
    res = await run_cluster(3, p, compare_all, a, b, k, -(2 ** (k - 1)), deadline=DEADLINE)
    check_all(res, expected_all(a, b, -(2 ** (k - 1))))


async def test_comparisons_keep_shape_and_broadcast_a_scalar() -> None:
    a = np.arange(-6, 6).reshape(3, 4)

    async def prog(s: Session) -> list[Any]:
        x = await SecretInt.input(s, mine(s, a, 0), owner=0)
        t = await SecretInt.input(s, mine(s, [2], 1), owner=1)
        lt, ge = await gather(x < t, t >= x)
        return [await lt.reveal(), await ge.reveal(), await (await (x[1] == x[1])).reveal()]

    res = await run_cluster(2, P127, prog)
    for got in res:
        assert got[0].shape == (3, 4) and np.array_equal(got[0], (a < 2).astype(int))
        assert np.array_equal(got[1], (2 >= a).astype(int))
        assert np.array_equal(got[2], np.ones(4, dtype=int))


# ---------------------------------------------------------------------------------------- the primitives
@param_cfg
async def test_ltz_eqz_and_bit_decomposition_primitives(p: int, k: int) -> None:
    rng = np.random.default_rng(k)  # public test data
    top = 2 ** (k - 1)
    vals = [int(v) for v in rng.integers(-top, top - 1, size=40, endpoint=True, dtype=np.int64)] + edges(k)
    arr = np.array(vals, dtype=object)

    async def prog(s: Session) -> list[Any]:
        x = await s.input(mine(s, arr, 0), owner=0)
        got = await run(
            s, parallel([cmp.ltz_steps(x, k), cmp.eqz_steps(x, k), cmp.bit_decompose_steps(x, k)])
        )
        return [await s.output(v) for v in got]

    for lt, eq, bits in await run_cluster(2, p, prog, deadline=DEADLINE):
        assert [int(v) for v in lt] == [int(v < 0) for v in vals]
        assert [int(v) for v in eq] == [int(v == 0) for v in vals]
        b = np.asarray(bits, dtype=object).reshape(k, -1)
        twos = [sum(int(b[i, j]) << i for i in range(k)) for j in range(len(vals))]
        assert twos == [v % 2**k for v in vals]
        assert set(np.asarray(bits).reshape(-1).tolist()) <= {0, 1}


@pytest.mark.parametrize("p", [P61, P127], ids=mod_id)
async def test_probabilistic_truncation_rounds_to_a_neighbour(p: int) -> None:
    k, m = (20, 7) if p == P61 else (84, 20)
    top = 2 ** (k - 1)
    vals = [0, 1, -1, top - 1, -top, 2**m, -(2**m), 2**m - 1] + [
        (j * 7919) % top - top // 2 for j in range(200)
    ]
    arr = np.array(vals, dtype=object)

    async def prog(s: Session) -> Any:
        x = await s.input(mine(s, arr, 0), owner=0)
        return await s.output(await cmp.trunc_pr(s, x, k, m))

    res = await run_cluster(2, p, prog, deadline=DEADLINE)
    floor = np.array([v >> m for v in vals], dtype=object)
    for got in res:
        d = np.asarray(got, dtype=object) - floor
        assert set(int(v) for v in d) <= {0, 1}
        exact = np.array([v % 2**m == 0 for v in vals])
        assert not any(int(v) for v in d[exact]), "a multiple of 2^m must truncate exactly"
        assert 0 < sum(int(v) for v in d) < len(vals), "rounding should go both ways"


async def test_round_count_does_not_depend_on_the_size() -> None:
    """One round count per operation for the whole array."""
    k = 33

    async def prog(s: Session, size: int) -> tuple[int, int, int]:
        x = await s.input(mine(s, np.arange(size) - size // 2, 0), owner=0)
        r0 = s.stats["rounds"]
        await cmp.ltz(s, x, k)
        r1 = s.stats["rounds"]
        await cmp.eqz(s, x, k)
        r2 = s.stats["rounds"]
        await cmp.bit_decompose(s, x, k)
        return r1 - r0, r2 - r1, s.stats["rounds"] - r2

    small = (await run_cluster(2, P127, prog, 1))[0]
    large = (await run_cluster(2, P127, prog, 500))[0]
    # LTZ: mask, ceil(log2(k + 1)) product levels, zero test; EQZ: mask, ceil(log2 k) levels;
    # bit decomposition: mask, ceil(log2(k - 1)) carry levels, the final XOR
    assert small == large == (1 + 6 + 1, 1 + 6, 1 + 5 + 1)


async def test_gather_merges_rounds() -> None:
    async def prog(s: Session) -> tuple[int, int]:
        x = await SecretInt.input(s, mine(s, [1, -2, 3], 0), owner=0)
        r0 = s.stats["rounds"]
        await (x < 0)
        r1 = s.stats["rounds"]
        await gather(x < 0, x > 1, x <= 2)
        return r1 - r0, s.stats["rounds"] - r1

    one, three = (await run_cluster(2, P127, prog))[0]
    assert one == three


async def test_where_maximum_minimum_abs_and_empty() -> None:
    a, b = np.array([5, -7, 0, 2**31 - 1, -(2**31)]), np.array([-5, 3, 0, -(2**31), 2**31 - 1])

    async def prog(s: Session) -> list[Any]:
        x = await SecretInt.input(s, mine(s, a, 0), owner=0)
        y = await SecretInt.input(s, mine(s, b, 1), owner=1)
        e = await SecretInt.input(s, mine(s, np.zeros(0, dtype=np.int64), 0), owner=0)
        sel = await where(await (x < y), x, y)
        out = [sel, await maximum(x, y), await minimum(x, 0), await abs(y.with_bits(33))]
        return [await v.reveal() for v in out] + [await (await (e < 1)).reveal()]

    for got in await run_cluster(3, P127, prog):
        assert np.array_equal(got[0], np.minimum(a, b))
        assert np.array_equal(got[1], np.maximum(a, b))
        assert np.array_equal(got[2], np.minimum(a, 0))
        assert [int(v) for v in got[3]] == [abs(int(v)) for v in b]
        assert got[4].shape == (0,)


# ---------------------------------------------------------------------------------------- clear errors
def test_declared_ranges_that_overflow_the_field_are_refused() -> None:
    f61, f127 = get_field(P61), get_field(P127)
    cmp.check_bits(f61, 20)
    cmp.check_bits(f127, 86)
    with pytest.raises(RangeError, match="at most 20 bits.*p127"):
        cmp.check_bits(f61, 21)
    with pytest.raises(RangeError, match="at most 86 bits"):
        cmp.check_bits(f127, 87)
    with pytest.raises(RangeError, match="below the minimum"):
        cmp.check_bits(f127, 32, kappa=20)


async def test_secret_int_too_wide_for_p61_is_a_clear_error() -> None:
    async def prog(s: Session) -> Any:
        return await SecretInt.input(s, mine(s, [1, 2], 0), owner=0)  # default k = 32

    with pytest.raises(RangeError, match=r"SecretInt\(k=32\).*at most 20 bits"):
        await run_cluster(2, P61, prog)


async def test_out_of_range_input_is_refused_at_the_owner(clock: Any) -> None:
    async def prog(s: Session) -> Any:
        return await SecretInt.input(s, mine(s, [1, 2**15], 0), owner=0, k=16)

    res = await run_each(3, P127, prog, deadline=DEADLINE)
    assert isinstance(res[0], RangeError) and "16-bit range" in str(res[0])
    assert_all_aborted(res, [1, 2])


async def test_an_overflowed_result_raises_at_reveal() -> None:
    async def prog(s: Session) -> Any:
        x = await SecretInt.input(s, mine(s, [2**20, 3], 0), owner=0, k=32)
        return await (await (x * x)).reveal()

    # every party opens the same value and sees the overflow; one that hears a peer's abort first
    # raises that abort instead, which must carry the same reason
    res = await run_each(2, P127, prog, deadline=DEADLINE)
    assert any(isinstance(r, RangeError) for r in res), res
    for r in res:
        assert isinstance(r, RangeError | AbortError) and "overflowed its declared 32-bit range" in str(r), r


async def test_misusing_a_pending_value_is_a_type_error() -> None:
    async def prog(s: Session) -> str:
        x = await SecretInt.input(s, mine(s, [1, 2], 0), owner=0)
        with pytest.raises(TypeError, match="await"):
            _ = (x < 1) + 1  # type: ignore[operator]
        with pytest.raises(TypeError, match="await"):
            bool(x == 1)
        with pytest.raises(TypeError, match="SecretFix"):
            _ = x + 0.5
        return "ok"

    assert await run_cluster(2, P127, prog) == ["ok", "ok"]


# ---------------------------------------------------------------------------------------- cheating
XS, YS = np.array([3, -4, 5, 0, 7]), np.array([-6, 7, 5, 0, 2**31 - 1])  # 5 elements: no 32-byte payloads


async def cmp_prog(s: Session) -> Any:
    x = await SecretInt.input(s, mine(s, XS, 0), owner=0)
    y = await SecretInt.input(s, mine(s, YS, 1), owner=1)
    return await (await (x < y)).reveal()


async def trunc_prog(s: Session) -> Any:
    x = await SecretFix.input(s, mine(s, XS * 0.25, 0), owner=0)
    y = await SecretFix.input(s, mine(s, YS * 1e-9, 1), owner=1)
    return await (await (x * y)).reveal()


# LTZ on 33 bits opens: the mask (0), six product-tree levels (1-6), the masked product (7)
CHEATS = [(cmp_prog, 0), (cmp_prog, 3), (cmp_prog, 7), (trunc_prog, 1)]
CHEAT_IDS = ["ltz-mask", "ltz-product-tree", "ltz-zero-test", "truncation-mask"]


@pytest.mark.parametrize(("n", "cheater"), [(2, 0), (2, 1), (3, 0), (3, 2)])
@pytest.mark.parametrize(("prog", "occurrence"), CHEATS, ids=CHEAT_IDS)
async def test_a_delta_on_an_opening_inside_a_comparison_or_truncation_is_caught(
    n: int, cheater: int, prog: Any, occurrence: int, clock: Any
) -> None:
    p = P127
    control = Cheat(net=lambda net: CheatNet(net, get_field(p), ("share", occurrence), noop))
    ok = await run_each(n, p, prog, interceptors={cheater: control}, deadline=DEADLINE)
    assert control.hits, "the targeted opening does not exist: the test would prove nothing"
    assert not any(isinstance(r, BaseException) for r in ok), ok
    cheat = Cheat(net=lambda net: CheatNet(net, get_field(p), ("share", occurrence), add_delta(1, index=2)))
    res = await run_each(n, p, prog, interceptors={cheater: cheat}, deadline=DEADLINE)
    assert cheat.hits
    honest = [i for i in range(n) if i != cheater]
    assert_all_aborted(res, honest, "cheat inside a comparison")
    assert any(isinstance(r, MacCheckError) for r in res), res
    assert all(not isinstance(r, np.ndarray) for r in res)


async def test_a_wrong_triple_share_inside_a_comparison_is_caught(clock: Any) -> None:
    """Tampered preprocessing (a triple's value share) inside the product tree: caught the same way."""
    from helpers import CheatPre

    cheat = Cheat(pre=lambda pre: CheatPre(pre, "triple", 2, "value", 1, call=1))
    res = await run_each(3, P127, cmp_prog, interceptors={1: cheat}, deadline=DEADLINE)
    assert cheat.hits
    assert_all_aborted(res, [0, 2])
    assert any(isinstance(r, MacCheckError) for r in res)


# ---------------------------------------------------------------------------------------- circuit helpers
@pytest.mark.parametrize("n", [3, 700], ids=["tree", "horner"])
def test_composing_bit_rows_matches_integers(n: int) -> None:
    """Both summation paths for p127 (a rotation tree for short rows, Horner for long ones), and the
    generic one for p61, against Python integers; inputs include p - 1 and 0 in every row."""
    for p in (P127, P61):
        f = get_field(p)
        ctx = ShareContext(f, 0, 2, f.const(1))
        rows_, lo = 75, 5
        v = f.random(rows_ * n, PRG(bytes(32)))
        v[:, ::7] = f.const(-1)
        v[:, 1::7] = 0
        got = compose_bits(SharedArray(ctx, v, v), n, lo, rows_)
        ints = f.to_ints(v)
        want = [sum(ints[(lo + i) * n + e] << i for i in range(rows_ - lo)) % p for e in range(n)]
        assert f.to_ints(got.value) == want and f.is_canonical(got.value)


async def test_demux_and_suffix_products_circuits() -> None:
    rng = np.random.default_rng(3)
    bits = rng.integers(0, 2, size=(5, 40))

    async def prog(s: Session) -> list[Any]:
        b = await s.input(mine(s, bits.reshape(-1), 0), owner=0)
        rows_ = [
            SharedArray(b.ctx, b.value[:, i * 40 : (i + 1) * 40], b.mac[:, i * 40 : (i + 1) * 40])
            for i in range(5)
        ]
        onehot, suffix = await run(s, parallel([demux(rows_), suffix_prods(b, 40)]))
        return [await s.output(onehot), await s.output(suffix)]

    for onehot, suffix in await run_cluster(2, P127, prog):
        value = sum(bits[j] << j for j in range(5))
        assert np.array_equal(
            np.asarray(onehot).reshape(32, 40), (np.arange(32)[:, None] == value).astype(int)
        )
        want = np.flip(np.cumprod(np.flip(bits, axis=0), axis=0), axis=0)
        assert np.array_equal(np.asarray(suffix).reshape(5, 40), want)


@pytest.mark.parametrize("name", ["p61", "p127"])
def test_signed_limb_sums_reduce_to_the_field_sum(name: str) -> None:
    """``to_limbs`` / ``from_limbs``: signed integer combinations of field elements done on 32-bit
    limbs, reduced once, equal the same combination computed with Python integers mod p (edges: 0,
    p - 1, results that land on p or below zero)."""
    from protocols.field import get_field
    from protocols.prg import PRG
    from protocols.rounds import from_limbs, to_limbs

    f = get_field(name)
    p = f.modulus
    a = f.random(400, PRG())
    a[:, :2] = f.from_ints([0, p - 1])
    assert np.array_equal(from_limbs(f, to_limbs(f, a)), a)
    rng = np.random.default_rng(7)  # public coefficients
    vecs = [f.random(400, PRG()) for _ in range(40)]
    coef = rng.integers(-300, 300, (40, 400))
    acc = sum(to_limbs(f, v) * c for v, c in zip(vecs, coef, strict=True))
    got = f.to_ints(from_limbs(f, acc))
    ints = [f.to_ints(v) for v in vecs]
    want = [sum(int(coef[k, j]) * ints[k][j] for k in range(40)) % p for j in range(400)]
    assert got == want
    edge = np.zeros((limb_count := to_limbs(f, a).shape[0], 3), dtype=np.int64)
    edge[0] = [-1, -5, 0]
    assert f.to_ints(from_limbs(f, edge)) == [p - 1, p - 5, 0]
    full = to_limbs(f, f.from_ints([p - 1, p - 1, 1]))
    full[0, 0] += 1  # p itself: zero
    assert f.to_ints(from_limbs(f, full)) == [0, p - 1, 1]
    assert limb_count == -(-f.bits // 32)
