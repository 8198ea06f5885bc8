"""Fixed-point arithmetic and functions, checked against plaintext numpy.

The accuracy bound, for every operation inside its declared range, is the one ``fixedpoint`` states:
``|got - exact| <= 2^-(f-2) * max(1, |exact|)`` (relative for results of magnitude >= 1, absolute
below), where ``exact`` is computed from the *encoded* inputs. Inputs cover each function's whole
range on a log scale, with the edges (0, +-1 ulp, powers of two, the largest values) added. Clusters of
2 and 3 parties over p127 with the default format k = 64, f = 20.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from helpers import assert_all_aborted, preprocessing_kind, run_cluster, run_each
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols import fixedpoint as fx
from protocols.errors import AbortError
from protocols.field import P61, P127, get_field
from protocols.online import Session
from protocols.sectypes import FixedFormat, Pending, RangeError, SecretFix, SecretInt, gather

FMT = FixedFormat()
ULP = 2.0**-FMT.f
TOP = FMT.max_abs  # 2^43
BIG = TOP - 2.0**-9  # the largest float64 below 2^43 (its spacing there is 2^-9)
DEADLINE = 60.0 if preprocessing_kind() == "dealer" else 900.0
SETTINGS = settings(
    max_examples=3,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
param_n = pytest.mark.parametrize("n", [2, 3])


def mine(s: Session, value: Any, owner: int) -> Any:
    return value if s.party == owner else None


def snap(x: np.ndarray) -> np.ndarray:
    """The reals the format actually represents (what the exact reference is computed from)."""
    return fx.decode(fx.encode(x, FMT), FMT)


def assert_close(got: Any, exact: np.ndarray, what: str, ulps: float = 4.0) -> None:
    got = np.asarray(got, dtype=np.float64)
    assert got.shape == exact.shape, f"{what}: shape {got.shape} != {exact.shape}"
    err = (np.abs(got - exact) / np.maximum(1.0, np.abs(exact))).reshape(-1)
    worst = int(np.argmax(err)) if err.size else 0
    assert not err.size or err[worst] <= ulps * ULP, (
        f"{what}: error {err[worst] / ULP:.2f} ulp at index {worst}: got {got.reshape(-1)[worst]!r}, "
        f"exact {exact.reshape(-1)[worst]!r}"
    )


def log_uniform(rng: np.random.Generator, lo: float, hi: float, size: int, signed: bool = True) -> np.ndarray:
    mag = np.exp2(rng.uniform(np.log2(lo), np.log2(hi), size))
    return mag * (rng.choice([-1.0, 1.0], size) if signed else 1.0)


async def unary(s: Session, xs: np.ndarray, fn: Callable[[SecretFix], Pending[SecretFix]]) -> Any:
    x = await SecretFix.input(s, mine(s, xs, s.n - 1), owner=s.n - 1)
    return await (await fn(x)).reveal()


# ---------------------------------------------------------------------------------------- encoding
def test_encoding_round_trips_and_refuses_what_does_not_fit() -> None:
    vals = np.array([0.0, ULP, -ULP, 1.5, -(2.0**42), BIG, -BIG, 1e-9])
    back = fx.decode(fx.encode(vals, FMT), FMT)
    assert np.array_equal(back[:-1], vals[:-1]) and back[-1] == 0.0
    assert fx.encode([[1.0, 2.0]], FMT).shape == (1, 2)
    for bad in ([TOP], [-TOP - 1.0], [np.nan], [np.inf], [1e300]):
        with pytest.raises(RangeError):
            fx.encode(bad, FMT)
    wide = FixedFormat(80, 4)
    assert fx.encode([2.0**70], wide)[0] == 2**74


def test_formats_that_overflow_the_field_are_refused() -> None:
    f61, f127 = get_field(P61), get_field(P127)
    FMT.check(f127)
    FixedFormat(66, 20).check(f127)  # k + f = 86: the limit
    with pytest.raises(RangeError, match="k \\+ f = 87"):
        FixedFormat(67, 20).check(f127)
    with pytest.raises(RangeError, match="p127"):
        FMT.check(f61)
    with pytest.raises(RangeError, match="0 < f < k"):
        FixedFormat(16, 16).check(f127)


async def test_fixed_point_on_p61_is_a_clear_error() -> None:
    async def prog(s: Session) -> Any:
        return await SecretFix.input(s, mine(s, [1.0], 0), owner=0)

    with pytest.raises(RangeError, match="p127"):
        await run_cluster(2, P61, prog)


async def test_functions_refuse_formats_without_internal_precision() -> None:
    fmt = FixedFormat(48, 36)  # k + f = 84 fits, but 1/x needs f + 6 bits beyond 2f

    async def prog(s: Session) -> Any:
        x = await SecretFix.input(s, mine(s, [1.0], 0), owner=0, fmt=fmt)
        return await x.reciprocal()

    with pytest.raises(RangeError, match="reciprocal needs"):
        await run_cluster(2, P127, prog)


async def test_an_out_of_range_input_is_refused_at_the_owner() -> None:
    async def prog(s: Session) -> Any:
        return await SecretFix.input(s, mine(s, [1.0, 2.0**44], 1), owner=1)

    res = await run_each(3, P127, prog, deadline=DEADLINE)
    assert isinstance(res[1], RangeError) and "outside the fixed-point range" in str(res[1])
    assert_all_aborted(res, [0, 2])


async def test_an_overflowing_product_raises_at_reveal() -> None:
    async def prog(s: Session) -> Any:
        x = await SecretFix.input(s, mine(s, [2.0**30], 0), owner=0)
        return await (await (x * x)).reveal()

    res = await run_each(3, P127, prog, deadline=DEADLINE)
    # each party sees the overflow in the revealed value; the first to raise aborts the others
    assert any(isinstance(r, RangeError) and "overflowed its declared 64-bit range" in str(r) for r in res)
    assert all(isinstance(r, (RangeError, AbortError)) for r in res), res


# ---------------------------------------------------------------------------------------- products
@param_n
@SETTINGS
@given(seed=st.integers(0, 2**32 - 1))
async def test_products_and_public_scaling(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)  # public test data
    xs = snap(log_uniform(rng, ULP, 2.0**21, 80))
    ys = snap(log_uniform(rng, ULP, 2.0**21, 80))
    xs[:4], ys[:4] = [0.0, ULP, -1.0, 2.0**21 - ULP], [5.0, -ULP, -1.0, 2.0**21 - ULP]
    c = float(rng.uniform(-3, 3))

    async def prog(s: Session) -> list[Any]:
        x = await SecretFix.input(s, mine(s, xs, 0), owner=0)
        y = await SecretFix.input(s, mine(s, ys, n - 1), owner=n - 1)
        small = await (y * 2.0**-20)
        got = await gather(x * y, x * c, x / 7.0, y.mean(), x.dot(small))
        local = [x * 3, x - y + 1.5, 2.5 - x, small]
        return [await v.reveal() for v in got + local]

    for got in await run_cluster(n, P127, prog, deadline=DEADLINE):
        assert_close(got[0], xs * ys, "x * y")
        assert_close(got[1], xs * c, "x * c")
        assert_close(got[2], xs / 7.0, "x / 7")
        assert_close(got[3], np.asarray(ys.mean()), "mean")
        small = got[8]
        assert_close(small, ys * 2.0**-20, "y * 2^-20")
        assert_close(got[4], np.asarray(np.dot(xs, small)), "dot")
        assert np.array_equal(got[5], xs * 3)
        assert_close(got[6], xs - ys + 1.5, "x - y + 1.5", ulps=0)
        assert_close(got[7], 2.5 - xs, "2.5 - x", ulps=0)


async def test_public_division_keeps_full_precision_for_large_counts() -> None:
    """Dividing a large sum by a public count: the constant is scaled into the field's headroom."""
    sums = snap(np.array([1.23456789e12, -9.87654321e11, 3.0, 1e-3]))

    async def prog(s: Session) -> Any:
        x = await SecretFix.input(s, mine(s, sums, 0), owner=0)
        return await (await (x / 123457.0)).reveal()

    for got in await run_cluster(2, P127, prog):
        assert_close(got, sums / 123457.0, "sum / count", ulps=2)


async def test_matrix_products_with_secret_and_public_matrices() -> None:
    rng = np.random.default_rng(7)
    a, b, w = snap(rng.normal(size=(5, 3))), snap(rng.normal(size=(3, 4))), snap(rng.normal(size=3))

    async def prog(s: Session) -> list[Any]:
        sa = await SecretFix.input(s, mine(s, a, 0), owner=0)
        sb = await SecretFix.input(s, mine(s, b, 1), owner=1)
        sw = await SecretFix.input(s, mine(s, w, 1), owner=1)
        got = await gather(sa @ sb, sa @ sw, sa @ b, a.T @ sa, sw @ sw)
        return [await g.reveal() for g in got]

    for got in await run_cluster(2, P127, prog):
        exact = [a @ b, a @ w, a @ b, a.T @ a, w @ w]
        for g, e, what in zip(got, exact, ["AB", "Aw", "A pub", "pub A", "ww"], strict=True):
            assert_close(g, np.asarray(e), what, ulps=3)


async def test_integer_and_fixed_point_values_mix() -> None:
    async def prog(s: Session) -> list[Any]:
        i = await SecretInt.input(s, mine(s, [3, -2, 0], 0), owner=0)
        x = await SecretFix.input(s, mine(s, [0.5, 0.25, -7.0], 1), owner=1)
        lt = await (x < i)
        return [await (x + i).reveal(), await (await (x * i)).reveal(), await lt.reveal()]

    for got in await run_cluster(2, P127, prog):
        assert np.array_equal(got[0], [3.5, -1.75, -7.0])
        assert np.array_equal(got[1], [1.5, -0.5, 0.0])
        assert np.array_equal(got[2], [1, 0, 1])


# ---------------------------------------------------------------------------------------- functions
def reciprocal_inputs(rng: np.random.Generator) -> np.ndarray:
    edges = [ULP, -ULP, 1.0, -1.0, 2.0**-10, -(2.0**-10), 2.0**20, -(2.0**20), BIG, -BIG, 3 * ULP]
    return snap(np.concatenate([log_uniform(rng, ULP, TOP / 2, 50), edges]))


def sqrt_inputs(rng: np.random.Generator) -> np.ndarray:
    edges = [0.0, ULP, 2 * ULP, 1.0, 2.0, 0.5, 2.0**42, BIG, 12345.678]
    return snap(np.concatenate([log_uniform(rng, ULP, TOP / 2, 50, signed=False), edges]))


def exp_inputs(rng: np.random.Generator) -> np.ndarray:
    edges = [0.0, ULP, -ULP, 1.0, -1.0, 29.0, -15.0, -40.0, -1e6, -BIG]
    return snap(np.concatenate([rng.uniform(-25, 29, 50), edges]))


def sigmoid_inputs(rng: np.random.Generator) -> np.ndarray:
    edges = [0.0, ULP, -ULP, 1.0, -1.0, 16.0, -16.0, 50.0, -50.0, 1e6, -1e6, BIG, -BIG]
    return snap(np.concatenate([rng.uniform(-20, 20, 40), log_uniform(rng, 1e-4, 1e9, 10), edges]))


FUNCTIONS: dict[str, tuple[Callable[[SecretFix], Any], Callable[[np.ndarray], np.ndarray], Any]] = {
    "reciprocal": (lambda x: x.reciprocal(), lambda v: 1.0 / v, reciprocal_inputs),
    "sqrt": (lambda x: x.sqrt(), np.sqrt, sqrt_inputs),
    "exp": (lambda x: x.exp(), np.exp, exp_inputs),
    "sigmoid": (lambda x: x.sigmoid(), lambda v: 0.5 * (1 + np.tanh(v / 2)), sigmoid_inputs),
}


@param_n
@pytest.mark.parametrize("name", list(FUNCTIONS))
async def test_functions_match_numpy_over_their_range(n: int, name: str) -> None:
    op, ref, inputs = FUNCTIONS[name]
    xs = inputs(np.random.default_rng(len(name) + 10 * n))
    for got in await run_cluster(n, P127, unary, xs, op, deadline=DEADLINE):
        assert_close(got, ref(xs), name)


async def test_division_of_secrets() -> None:
    rng = np.random.default_rng(11)
    xs = snap(rng.uniform(-2, 2, 60))
    ys = snap(log_uniform(rng, 2.0**-8, 2.0**30, 60))

    async def prog(s: Session) -> Any:
        x = await SecretFix.input(s, mine(s, xs, 0), owner=0)
        y = await SecretFix.input(s, mine(s, ys, 1), owner=1)
        return [
            await (await (x / y)).reveal(),
            await (await (1.0 / y)).reveal(),
            await (await (3.0 / y)).reveal(),
        ]

    for got in await run_cluster(3, P127, prog, deadline=DEADLINE):
        assert_close(got[0], xs / ys, "x / y (|x| <= 2)")
        assert_close(got[1], 1 / ys, "1 / y")
        assert_close(got[2], 3 / ys, "3 / y")


async def test_sqrt_of_negative_values_is_zero_and_exp_saturates() -> None:
    async def prog(s: Session) -> Any:
        x = await SecretFix.input(s, mine(s, [-1.0, -ULP, -(2.0**40)], 0), owner=0)
        big = await SecretFix.input(s, mine(s, [40.0, 1e6, BIG], 0), owner=0)
        return [await (await x.sqrt()).reveal(), await (await big.exp()).reveal()]

    for got in await run_cluster(2, P127, prog, deadline=DEADLINE):
        assert np.array_equal(got[0], [0.0, 0.0, 0.0])
        assert np.all(got[1] >= 2.0 ** (FMT.k - FMT.f - 2)) and np.all(got[1] < TOP)


async def test_function_round_counts_do_not_depend_on_the_size() -> None:
    async def prog(s: Session, size: int) -> list[int]:
        x = await SecretFix.input(s, mine(s, np.linspace(0.1, 3, size), 0), owner=0)
        counts = []
        fns = (lambda v: v.reciprocal(), lambda v: v.sqrt(), lambda v: v.exp(), lambda v: v.sigmoid())
        for fn in (*fns, lambda v: v * v):
            r0, c0 = s.stats["rounds"], s.stats["mac_checks"]
            await fn(x)
            # a MAC check forced by the bound on unchecked values takes 4 rounds of its own
            counts.append(s.stats["rounds"] - r0 - 4 * (s.stats["mac_checks"] - c0))
        return counts

    small = (await run_cluster(2, P127, prog, 1, deadline=DEADLINE))[0]
    large = (await run_cluster(2, P127, prog, 300, deadline=DEADLINE))[0]
    assert small == large == [27, 26, 19, 28, 2]


async def test_the_module_example_program_runs() -> None:
    """The program in ``sectypes``' docstring, as written there."""
    from protocols.sectypes import where

    async def prog(s: Session, data: np.ndarray | None) -> np.ndarray:
        x = await SecretFix.input(s, data if s.party == 0 else None, owner=0)  # floats in
        y = await SecretFix.input(s, data if s.party == 1 else None, owner=1)
        z = x + y - 1.5  # linear: local, no await
        w = await (x * y)  # a product communicates
        m = await (x < y)  # SecretInt bits (0/1), same shape
        big = await where(m, y, x)  # elementwise select
        p = await (w + big - z).sigmoid()
        return await p.reveal()  # MAC-checked output, as float64

    a, b = snap(np.array([0.5, -1.0, 2.0])), snap(np.array([1.5, -3.0, 2.0]))
    res = await run_cluster(3, P127, prog, per_party=[[a], [b], [None]])
    exact = 1 / (1 + np.exp(-(a * b + np.maximum(a, b) - (a + b - 1.5))))
    for got in res:
        assert_close(got, exact, "example")


async def test_transpose_and_axis_sums() -> None:
    a = snap(np.arange(12.0).reshape(3, 4) / 8 - 0.5)
    ints = np.arange(24).reshape(2, 3, 4) - 10

    async def prog(s: Session) -> list[Any]:
        x = await SecretFix.input(s, mine(s, a, 0), owner=0)
        i = await SecretInt.input(s, mine(s, ints, 1), owner=1, k=8)
        got = [x.T, x.sum(axis=0), x.sum(axis=1), i.sum(axis=2), i.transpose(2, 0, 1), await (x.T @ x)]
        return [await g.reveal() for g in got] + [i.sum(axis=0).k]

    for got in await run_cluster(2, P127, prog):
        assert np.array_equal(got[0], a.T)
        assert np.array_equal(got[1], a.sum(axis=0)) and np.array_equal(got[2], a.sum(axis=1))
        assert np.array_equal(got[3], ints.sum(axis=2)) and np.array_equal(got[4], ints.transpose(2, 0, 1))
        assert_close(got[5], a.T @ a, "x.T @ x")
        assert got[6] == 9  # k = 8 widened by log2(2) for a sum of two
