"""The SPDZ online phase end to end, checked against plaintext arithmetic: every test runs once on a
cluster with the test dealer and once with MASCOT preprocessing (the ``preprocessing`` fixture; the
MASCOT runs are marked slow). What passes with the dealer must pass with the real offline phase:
same results, same aborts.

Each test runs whole clusters (2, 3 and 5 parties, both moduli), so the Hypothesis example counts are
small; the edge cases that random data rarely hits (signed-range limits, empty and scalar inputs,
public constants on either side, shapes) have tests of their own.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import trio
from helpers import (
    MODULI,
    N_PARTIES,
    assert_array_eq,
    assert_same,
    half,
    mod_id,
    pmod_signed,
    preprocessing_kind,
    run_cluster,
    run_each,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import actors
from protocols.errors import AbortError, ConfigError
from protocols.field import P61, P127, FieldError
from protocols.online import Session

pytestmark = pytest.mark.usefixtures("preprocessing")


@pytest.fixture
def autojump_clock(preprocessing: str) -> trio.testing.MockClock | None:
    """Virtual time with the dealer. With MASCOT the real clock: it computes in worker threads, and
    a task waiting for a thread counts as blocked, so virtual time would jump past the cluster
    deadline while honest work is still running (the error cases end promptly on the real clock)."""
    return trio.testing.MockClock(autojump_threshold=0) if preprocessing == "dealer" else None


SETTINGS = settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# |x| below this keeps every product (and a short dot product) inside the signed range
MUL_BOUND = {P61: 2**29, P127: 2**61}

param_n = pytest.mark.parametrize("n", N_PARTIES)
param_p = pytest.mark.parametrize("p", MODULI, ids=mod_id)


def signed(vals: Any, p: int) -> np.ndarray:
    """Plaintext reference: Python-int object arrays reduced into the signed range of GF(p)."""
    arr = np.asarray(vals, dtype=object)
    return np.array([pmod_signed(int(v), p) for v in arr.reshape(-1)], dtype=object).reshape(arr.shape)


def mine(s: Session, data: list[Any], owner: int) -> Any:
    return data[owner] if s.party == owner else None


# ---------------------------------------------------------------------------------------- arithmetic
async def arith_prog(s: Session, data: list[np.ndarray], to: int) -> tuple[Any, ...]:
    xs = [await s.input(mine(s, data, j), owner=j) for j in range(s.n)]
    tot = xs[0]
    for x in xs[1:]:
        tot = tot + x
    prod = await s.mul(xs[0], xs[1])
    d = await s.dot(xs[0], xs[-1])
    opened = [await s.output(x) for x in xs]
    return (
        opened,
        await s.output(tot),
        await s.output(prod),
        await s.output(d),
        await s.output(s.sum(xs[1])),
        await s.open(tot - xs[0]),
        await s.output(tot * 3 - 5, to=to),
    )


def arith_expected(data: list[np.ndarray], p: int, n: int) -> tuple[Any, ...]:
    cols = [np.array(v, dtype=object).reshape(-1) for v in data]
    tot = sum(cols, np.zeros(len(cols[0]), dtype=object))
    return (
        [signed(c, p) for c in cols],
        signed(tot, p),
        signed(cols[0] * cols[1], p),
        signed(int(np.sum(cols[0] * cols[-1])) if len(cols[0]) else 0, p),
        signed(int(np.sum(cols[1])) if len(cols[1]) else 0, p),
        signed(tot - cols[0], p),
        signed(tot * 3 - 5, p),
    )


@st.composite
def party_vectors(draw: st.DrawFn, n: int, bound: int, max_len: int = 12) -> list[np.ndarray]:
    length = draw(st.integers(1, max_len))  # 0 elements: see test_empty_vectors
    elems = st.integers(-bound + 1, bound - 1)
    # object arrays: an empty Python list has its own test (numpy reads it as float64)
    lists = [draw(st.lists(elems, min_size=length, max_size=length)) for _ in range(n)]
    return [np.array(v, dtype=object) for v in lists]


@param_n
@param_p
@SETTINGS
@given(data=st.data())
async def test_arithmetic_matches_plaintext(n: int, p: int, data: st.DataObject) -> None:
    vecs = data.draw(party_vectors(n, MUL_BOUND[p]), label="inputs")
    to = data.draw(st.integers(0, n - 1), label="to")
    res = await run_cluster(n, p, arith_prog, vecs, to)
    exp = arith_expected(vecs, p, n)
    for i, r in enumerate(res):
        assert_array_eq(r[:-1], exp[:-1], f"party {i}")
        assert_array_eq(r[-1], exp[-1] if i == to else None, f"party {i} private output")


@param_p
@SETTINGS
@given(data=st.data())
async def test_linear_ops_on_full_range_values(p: int, data: st.DataObject) -> None:
    """Additions wrap mod p: any signed-range input is fine when the reference reduces too."""
    vecs = data.draw(party_vectors(3, half(p) + 1), label="inputs")
    c = data.draw(st.integers(-half(p), half(p)), label="c")

    async def prog(s: Session) -> tuple[Any, ...]:
        x, y, z = [await s.input(mine(s, vecs, j), owner=j) for j in range(3)]
        return await s.output(x + y - z), await s.output(x * c + c), await s.output(c - y)

    res = await run_cluster(3, p, prog)
    a, b, d = (np.array(v, dtype=object) for v in vecs)
    assert_same(res, (signed(a + b - d, p), signed(a * c + c, p), signed(c - b, p)))


@param_p
async def test_signed_range_edges_round_trip(p: int) -> None:
    h = half(p)
    edge = [h, -h, h - 1, -h + 1, 0, 1, -1, 2**31, -(2**31), 2**32 - 1, 2**59, -(2**59)]
    if p == P127:
        edge += [2**62, -(2**62), 2**63 - 1, -(2**63) + 1, 2**100, -(2**100), 2**125, -(2**125)]
    edge_arr = np.array(edge, dtype=object)

    async def prog(s: Session) -> tuple[Any, ...]:
        x = await s.input(edge_arr if s.party == 1 else None, owner=1)
        return await s.output(x), await s.output(-x), await s.output(x, to=0)

    res = await run_cluster(3, p, prog)
    for i, r in enumerate(res):
        assert_array_eq(r[0], edge, f"party {i}")
        assert_array_eq(r[1], [-v for v in edge], f"party {i}")
        assert_array_eq(r[2], edge if i == 0 else None, f"party {i}")


async def test_int64_limits_as_python_ints_p127() -> None:
    """Values just past the int64 range are in the p127 signed range; a plain list must work."""
    vals = [2**63, -(2**63) - 1, 2**64 - 1, -(2**64), 5]

    async def prog(s: Session) -> Any:
        return await s.output(await s.input(vals if s.party == 0 else None, owner=0))

    assert_same(await run_cluster(2, P127, prog), vals)


@pytest.mark.parametrize("vals", [[2**63, 1], [2**64 - 1, -1]], ids=["2^63", "2^64-1"])
async def test_mixed_big_python_int_list_input_p127(vals: list[int]) -> None:
    """numpy turns such a list into float64; the input path must keep the exact integers."""

    async def prog(s: Session) -> Any:
        return await s.output(await s.input(vals if s.party == 0 else None, owner=0))

    assert_same(await run_cluster(2, P127, prog), vals)


@param_p
async def test_mul_at_the_bound_of_the_product(p: int) -> None:
    b = MUL_BOUND[p] - 1
    xs, ys = [b, -b, b, -b, 0, 1, -1], [b, b, -b, -b, b, -b, -1]

    async def prog(s: Session) -> Any:
        x = await s.input(xs if s.party == 0 else None, owner=0)
        y = await s.input(ys if s.party == 1 else None, owner=1)
        return await s.output(await s.mul(x, y)), await s.output(await s.dot(x, y))

    res = await run_cluster(2, p, prog)
    prods = [a * c for a, c in zip(xs, ys, strict=True)]
    assert_same(res, (prods, pmod_signed(sum(prods), p)))


async def test_mul_wraps_mod_p() -> None:
    """A product outside the signed range comes back reduced, as field arithmetic says."""
    p = P61
    xs, ys = [2**40, -(2**40), 3**30], [2**40, 2**41, 5**20]

    async def prog(s: Session) -> Any:
        x = await s.input(xs if s.party == 0 else None, owner=0)
        y = await s.input(ys if s.party == 2 else None, owner=2)
        return await s.output(await s.mul(x, y))

    assert_same(await run_cluster(3, p, prog), [pmod_signed(a * b, p) for a, b in zip(xs, ys, strict=True)])


# ---------------------------------------------------------------------------------------- sizes, shapes
@param_p
async def test_empty_vectors(p: int) -> None:
    async def prog(s: Session) -> tuple[Any, ...]:
        x = await s.input(np.zeros(0, dtype=np.int64) if s.party == 0 else None, owner=0)
        y = await s.input(np.zeros(0, dtype=np.int64) if s.party == 1 else None, owner=1)
        z = await s.mul(x, y)
        return (
            await s.output(x),
            await s.output(z),
            await s.output(await s.dot(x, y)),
            await s.output(x.sum()),
            await s.output(x + y, to=1),
        )

    res = await run_cluster(3, p, prog)
    for i, r in enumerate(res):
        assert_array_eq(r, ([], [], 0, 0, [] if i == 1 else None), f"party {i}")


@param_p
async def test_empty_python_list_input(p: int) -> None:
    """``[]`` is the natural spelling of "I have no rows"; it must not be refused as a float array."""

    async def prog(s: Session) -> Any:
        x = await s.input([] if s.party == 0 else None, owner=0)
        y = await s.input([5] if s.party == 1 else None, owner=1)
        return await s.output(x), await s.output(y)  # y last: see test_empty_vectors

    assert_same(await run_cluster(2, p, prog), ([], [5]))


@param_p
async def test_one_element_and_scalar(p: int) -> None:
    async def prog(s: Session) -> tuple[Any, ...]:
        x = await s.input([7] if s.party == 0 else None, owner=0)
        y = await s.input(-3 if s.party == 1 else None, owner=1)
        assert x.shape == (1,) and y.shape == ()
        return (
            await s.output(x),
            await s.output(y),
            await s.output(await s.mul(x, y)),
            await s.output(x + y),
            await s.output(y * 4, to=0),
        )

    res = await run_cluster(2, p, prog)
    for i, r in enumerate(res):
        assert_array_eq(r, ([7], np.array(-3), [-21], [4], np.array(-12) if i == 0 else None), f"party {i}")


@param_p
async def test_long_vectors(p: int) -> None:
    """10^5 elements (10^4 with MASCOT): crosses the field's chunk size, big frames; n = 3 once per field."""
    size = 10**5 if preprocessing_kind() == "dealer" else 10**4
    rng = np.random.default_rng(1234)
    b = MUL_BOUND[p]
    if p == P61:
        data = [rng.integers(-b + 1, b, size=size, dtype=np.int64) for _ in range(3)]
    else:
        data = [rng.integers(-(2**62), 2**62, size=size, dtype=np.int64) for _ in range(3)]

    async def prog(s: Session) -> tuple[Any, ...]:
        x, y, z = [await s.input(mine(s, data, j), owner=j) for j in range(3)]
        w = x + y - z
        prod = await s.mul(x, y)
        return (
            await s.output(w),
            await s.output(prod),
            await s.output(await s.dot(y, z)),
            await s.output(s.sum(z)),
            await s.output(w, to=2),
        )

    res = await run_cluster(3, p, prog)
    x, y, z = (d.astype(object) for d in data)
    w = signed(x + y - z, p)
    exp = (w, signed(x * y, p), pmod_signed(int(np.sum(y * z)), p), pmod_signed(int(np.sum(z)), p))
    for i, r in enumerate(res):
        assert_array_eq(r[:4], exp, f"party {i}")
        assert_array_eq(r[4], w if i == 2 else None, f"party {i}")


@param_n
async def test_multidimensional_shapes_survive(n: int) -> None:
    p = P61
    a = np.arange(-6, 6, dtype=np.int64).reshape(3, 4)
    b = np.arange(24, dtype=np.int64).reshape(2, 3, 4) - 11

    async def prog(s: Session) -> tuple[Any, ...]:
        x = await s.input(a if s.party == 0 else None, owner=0)
        y = await s.input(a * 2 if s.party == n - 1 else None, owner=n - 1)
        z = await s.input(b if s.party == 1 else None, owner=1)
        assert x.shape == (3, 4) and z.shape == (2, 3, 4)
        xy = await s.mul(x, y)
        assert xy.shape == (3, 4)
        return (
            await s.output(x),
            await s.output(xy),
            await s.output(z),
            await s.output(x[1]),
            await s.output(z.reshape(6, 4)),
            await s.output(x + np.array([1, 2, 3, 4])),
            await s.output(xy, to=n - 1),
        )

    res = await run_cluster(n, p, prog)
    for i, r in enumerate(res):
        assert_array_eq(
            r,
            (
                a,
                a * a * 2,
                b,
                a[1],
                b.reshape(6, 4),
                a + np.array([1, 2, 3, 4]),
                a * a * 2 if i == n - 1 else None,
            ),
            f"party {i}",
        )


# ---------------------------------------------------------------------------------------- public constants
@param_p
async def test_public_constant_ops(p: int) -> None:
    xs = [5, -7, 0, 123456, -(2**20)]
    arr = np.array([1, -2, 3, -4, 5])

    async def prog(s: Session, c: int) -> list[Any]:
        x = await s.input(xs if s.party == 1 else None, owner=1)
        exprs = [x + c, c + x, x - c, c - x, c * x, x * c, -x, x * arr, x + arr, x - arr, -(c - x) + c]
        return [await s.output(e) for e in exprs]

    for c in (0, 1, -1, 3, -(2**30), 2**40, half(p), -half(p)):
        res = await run_cluster(3, p, prog, c)
        x = np.array(xs, dtype=object)
        a = arr.astype(object)
        exp = [x + c, c + x, x - c, c - x, c * x, x * c, -x, x * a, x + a, x - a, x]
        assert_same(res, [signed(e, p) for e in exp])


@pytest.mark.parametrize(
    "c", [-(2**63), np.int64(-(2**63)), np.array([-(2**63)] * 3)], ids=["int", "np.int64", "array"]
)
async def test_subtract_int64_min_p127(c: Any) -> None:
    """x - (-2^63) is x + 2^63 in GF(2^127-1); negating an int64 -2^63 overflows if done in int64."""
    xs = [0, 1, -1]

    async def prog(s: Session) -> Any:
        x = await s.input(xs if s.party == 0 else None, owner=0)
        return await s.output(x - c)

    assert_same(await run_cluster(2, P127, prog), [v + 2**63 for v in xs])


@pytest.mark.parametrize("op", ["add", "sub", "mul"])
async def test_numpy_array_on_the_left(op: str) -> None:
    """``c op x`` with a public numpy array ``c`` must mean the same as with a list or a scalar."""
    xs = [4, -5, 6]
    c = np.array([10, 20, -30])

    async def prog(s: Session) -> Any:
        x = await s.input(xs if s.party == 0 else None, owner=0)
        e = {"add": lambda: c + x, "sub": lambda: c - x, "mul": lambda: c * x}[op]()
        return await s.output(e)

    x = np.array(xs)
    exp = {"add": c + x, "sub": c - x, "mul": c * x}[op]
    assert_same(await run_cluster(2, P61, prog), exp)


async def test_numpy_scalar_on_the_left() -> None:
    xs = [4, -5, 6]

    async def prog(s: Session) -> Any:
        x = await s.input(xs if s.party == 0 else None, owner=0)
        return await s.output(np.int64(3) * x), await s.output(np.int64(3) - x)

    x = np.array(xs)
    assert_same(await run_cluster(2, P61, prog), (3 * x, 3 - x))


async def test_broadcast_scalar_secret_with_vector() -> None:
    async def prog(s: Session) -> Any:
        x = await s.input([1, 2, 3] if s.party == 0 else None, owner=0)
        t = x.sum()
        return await s.output(x + t), await s.output(t - x)

    assert_same(await run_cluster(2, P61, prog), ([7, 8, 9], [5, 4, 3]))


# ---------------------------------------------------------------------------------------- checks happen
async def test_output_returns_only_after_a_mac_check() -> None:
    seen: list[tuple[int, int, int]] = []

    async def prog(s: Session) -> Any:
        x = await s.input([1, 2] if s.party == 0 else None, owner=0)
        y = await s.mul(x, x)
        before = s.stats["mac_checks"]
        out = await s.output(y)
        seen.append((s.party, s.stats["mac_checks"] - before, s.unchecked))
        return out

    assert_same(await run_cluster(3, P61, prog), [1, 4])
    assert sorted(seen) == [(0, 2, 0), (1, 2, 0), (2, 2, 0)]


async def test_private_output_is_checked_before_it_is_returned() -> None:
    seen: list[tuple[int, int]] = []

    async def prog(s: Session) -> Any:
        x = await s.input([3] if s.party == 1 else None, owner=1)
        before = s.stats["mac_checks"]
        out = await s.output(x, to=0)
        seen.append((s.stats["mac_checks"] - before, s.unchecked))
        return out

    res = await run_cluster(2, P61, prog)
    assert_array_eq(res, ([3], None))
    assert seen == [(1, 0), (1, 0)]


async def test_session_end_checks_what_the_program_left_unchecked() -> None:
    """A program that opens (via mul) and returns without an output still gets its final MAC check."""
    sessions: list[Session] = []

    async def prog(s: Session) -> str:
        sessions.append(s)
        x = await s.input([1, 2, 3] if s.party == 0 else None, owner=0)
        await s.mul(x, x)
        assert s.unchecked == 6 and s.stats["mac_checks"] == 0
        return "done"

    assert await run_cluster(3, P127, prog) == ["done"] * 3
    assert len(sessions) == 3
    for s in sessions:
        assert s.stats["mac_checks"] == 1
        assert s.unchecked == 0


async def test_inputs_alone_get_a_broadcast_check_at_session_end() -> None:
    sessions: list[Session] = []

    async def prog(s: Session) -> None:
        sessions.append(s)
        await s.input([1] if s.party == 1 else None, owner=1)

    assert await run_cluster(2, P61, prog) == [None, None]
    assert [s.stats["mac_checks"] for s in sessions] == [1, 1]


async def test_check_bound_forces_a_check() -> None:
    counts: list[list[int]] = []

    async def prog(s: Session) -> Any:
        x = await s.input(list(range(4)) if s.party == 0 else None, owner=0)
        ones = await s.input([1, 1, 1, 1] if s.party == 1 else None, owner=1)
        c = []
        for _ in range(5):
            x = await s.mul(x, ones)  # opens 8 values
            c.append(s.stats["mac_checks"])
        counts.append(c)
        return await s.output(x)

    res = await run_cluster(2, P61, prog, session_options={"check_bound": 20})
    assert_same(res, [0, 1, 2, 3])
    assert counts == [[0, 0, 1, 1, 1]] * 2


# ---------------------------------------------------------------------------------------- misuse
async def test_owner_passing_none_fails_everyone(autojump_clock: trio.abc.Clock) -> None:
    async def prog(s: Session) -> Any:
        x = await s.input(None, owner=1)
        return await s.output(x)

    res = await run_each(3, P61, prog)
    assert isinstance(res[1], ValueError)
    assert isinstance(res[0], AbortError) and isinstance(res[2], AbortError)


async def test_non_owner_passing_values_fails_everyone(autojump_clock: trio.abc.Clock) -> None:
    async def prog(s: Session) -> Any:
        x = await s.input([1, 2] if s.party in (0, 2) else None, owner=0)
        return await s.output(x)

    res = await run_each(3, P61, prog)
    assert isinstance(res[2], ValueError)
    for i in (0, 1):
        assert isinstance(res[i], AbortError), res[i]


@param_n
@param_p
async def test_out_of_range_input_fails_everyone(n: int, p: int, autojump_clock: trio.abc.Clock) -> None:
    bad = [1, half(p) + 1]
    owner = n - 1

    async def prog(s: Session) -> Any:
        x = await s.input(bad if s.party == owner else None, owner=owner)
        return await s.output(x)

    res = await run_each(n, p, prog)
    assert isinstance(res[owner], FieldError), res[owner]
    for i in range(n - 1):
        assert isinstance(res[i], AbortError), f"party {i}: {res[i]!r}"


@pytest.mark.parametrize(
    "bad", [[1.5], np.array([1.0, 2.0]), ["x"], [-(2**61)]], ids=["float", "floats", "str", "neg"]
)
async def test_invalid_input_values_fail_everyone(bad: Any, autojump_clock: trio.abc.Clock) -> None:
    async def prog(s: Session) -> Any:
        return await s.output(await s.input(bad if s.party == 0 else None, owner=0))

    res = await run_each(2, P61, prog)
    assert isinstance(res[0], FieldError), res[0]
    assert isinstance(res[1], AbortError), res[1]


async def test_input_owner_out_of_range(autojump_clock: trio.abc.Clock) -> None:
    async def prog(s: Session) -> Any:
        return await s.input(None, owner=s.n)

    res = await run_each(2, P61, prog)
    for r in res:
        assert isinstance(r, (ValueError, AbortError)) and not isinstance(r, FieldError), r


async def test_a_program_that_raises_aborts_the_others(autojump_clock: trio.abc.Clock) -> None:
    async def prog(s: Session) -> Any:
        x = await s.input([1] if s.party == 0 else None, owner=0)
        if s.party == 1:
            raise RuntimeError("boom")
        return await s.output(x)

    res = await run_each(3, P61, prog)
    assert isinstance(res[1], RuntimeError)
    assert isinstance(res[0], AbortError) and isinstance(res[2], AbortError)


async def test_cluster_run_raises_the_abort() -> None:
    """``Cluster.run`` raises when any party fails (here, with the owner's own error)."""

    async def prog(s: Session) -> Any:
        return await s.input(None, owner=0)

    with pytest.raises((ValueError, AbortError)):
        await run_cluster(2, P61, prog, deadline=30)


async def test_errors_from_a_cluster_block_are_catchable_as_themselves() -> None:
    """``except AbortError`` around ``async with local_cluster(...)`` must work (no ExceptionGroup)."""

    async def prog(s: Session) -> Any:
        x = await s.input([1] if s.party == 0 else None, owner=0)
        if s.party == 0:
            raise AbortError("give up")
        return await s.output(x)

    with trio.fail_after(30), pytest.raises(AbortError):
        async with actors.local_cluster(2, modulus=P61, preprocessing="dealer") as c:
            await c.run(prog)


async def test_default_preprocessing_is_mascot_and_secure() -> None:
    """Without ``preprocessing=`` the cluster runs MASCOT, never the dealer, and computes correctly."""
    from actors.offline import Watermarks

    small = Watermarks(
        triple=(64, 128), mask=(16, 32), batch={k: 64 for k in ("triple", "mask", "square", "bit", "random")}
    )

    async def prog(s: Session) -> Any:
        x = await s.input([3, -4] if s.party == 0 else None, owner=0)
        y = await s.input([5, 6] if s.party == 1 else None, owner=1)
        return await s.output(await s.mul(x, y))

    with trio.fail_after(60):
        async with actors.local_cluster(2, modulus=P61, watermarks=small) as c:
            assert all(p.offline is not None and not p.source.insecure for p in c.parties)
            assert_same(await c.run(prog), [15, -24])


@pytest.mark.parametrize("n", [1, 0, -1])
async def test_fewer_than_two_parties_is_a_config_error(n: int) -> None:
    with pytest.raises(ConfigError):
        async with actors.local_cluster(n, modulus=P61, preprocessing="dealer"):
            pass


@pytest.mark.parametrize(
    "kw", [{"preprocessing": "nope"}, {"transport": "carrier-pigeon"}], ids=["preprocessing", "transport"]
)
async def test_unknown_options_are_config_errors(kw: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        async with actors.local_cluster(2, **{"preprocessing": "dealer", **kw}):
            pass


async def test_mul_shape_mismatch_is_a_local_error(autojump_clock: trio.abc.Clock) -> None:
    async def prog(s: Session) -> Any:
        x = await s.input([1, 2] if s.party == 0 else None, owner=0)
        y = await s.input([1, 2, 3] if s.party == 0 else None, owner=0)
        return await s.mul(x, y)

    res = await run_each(2, P61, prog)
    for r in res:
        assert isinstance(r, (ValueError, AbortError)), r


async def test_secret_times_secret_needs_mul() -> None:
    async def prog(s: Session) -> Any:
        x = await s.input([1] if s.party == 0 else None, owner=0)
        with pytest.raises(TypeError):
            _ = x * x
        return await s.output(x)

    assert_same(await run_cluster(2, P61, prog), [1])


@pytest.mark.parametrize("n", [3, 4])
async def test_large_openings_go_through_kings_and_match_numpy(
    n: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Vectors of at least ``DEFAULT_KING_MIN`` elements are opened through per-range kings (two
    rounds); an uneven size leaves the ranges unequal. Mul, output to all and to one against numpy."""
    from protocols.online import DEFAULT_KING_MIN

    size = DEFAULT_KING_MIN + 7
    rng = np.random.default_rng(11)  # public test data
    a, b = rng.integers(-(2**20), 2**20, size), rng.integers(-(2**20), 2**20, size)
    routed: list[int] = []
    honest = Session._open_via_kings

    async def spy(self: Session, mine: Any) -> Any:
        routed.append(mine.shape[1])
        return await honest(self, mine)

    monkeypatch.setattr(Session, "_open_via_kings", spy)

    async def prog(s: Session) -> Any:
        x = await s.input(a if s.party == 0 else None, owner=0)
        y = await s.input(b if s.party == 1 else None, owner=1)
        z = await s.mul(x, y)
        return await s.output(z), await s.output(z + x, to=n - 1)

    res = await run_cluster(n, P61, prog)
    for i, (out, mine) in enumerate(res):
        assert np.array_equal(np.asarray(out), a * b)
        assert (mine is not None) == (i == n - 1)
        if mine is not None:
            assert np.array_equal(np.asarray(mine), a * b + a)
    # at every party: the mul's d and e together, the output to all, the masked output to one
    assert sorted(routed) == sorted([2 * size, size, size] * n)
