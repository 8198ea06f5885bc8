"""The statistics with ``dp=`` (``protocols.apps.stats`` over ``protocols.dp.apps``), the DP linear
regression and ``reveal(dp=...)`` on the secure types; 3 parties, dealer. Each revealed value is the
exact statistic of the clamped, rounded rows plus exactly the noise the parties drew (recorded by
hooking ``own_gaussian_draws``, or opened from the binomial's shared bits), post-processed as
documented; the noise is the one calibrated for the call's entries under ONE guarantee, whose
composition the accountant puts at or below the target; a session's allowance accepts one call at
its declared epsilon and refuses a second."""

from __future__ import annotations

import contextvars
from typing import Any

import numpy as np
import pytest
from helpers import refusals, run_cluster

import protocols.dp.noise as noise_module
import protocols.dp.output as output_module
from protocols.apps import stats
from protocols.dp import DP
from protocols.dp import apps as dpa
from protocols.dp.accounting import Accountant
from protocols.dp.allowance import Allowance, Declared
from protocols.errors import BudgetExceeded
from protocols.field import P127
from protocols.fixedpoint import FixedFormat
from protocols.online import Session
from protocols.sectypes import SecretFix, SecretInt

N = 3
PARTY: contextvars.ContextVar[int] = contextvars.ContextVar("dp_apps_party", default=-1)
GUARANTEE = DP(epsilon=1.0, delta=1e-9)
# dyadic values: every float sum below is exact, whatever the order of the additions
ROWS = [
    np.array([[1.5, -2.0], [2.0, 8.25], [250.0, 0.5]]),
    np.array([[-3.0, 1.0], [4.25, -7.5]]),
    np.array([[10.0, 0.25], [0.5, 3.0], [-99.0, 2.0], [7.0, -0.75]]),
]
BOUNDS = [(-10.0, 20.0), (-4.0, 4.0)]


def record(monkeypatch: pytest.MonkeyPatch) -> dict[int, list[tuple[Any, list[int]]]]:
    """Every party's Gaussian draws, call by call."""
    drawn: dict[int, list[tuple[Any, list[int]]]] = {}
    real = noise_module.own_gaussian_draws

    def draws(sigma2: Any, size: int, prg: Any = None) -> list[int]:
        out = real(sigma2, size, prg)
        drawn.setdefault(PARTY.get(), []).append((sigma2, out))
        return out

    monkeypatch.setattr(noise_module, "own_gaussian_draws", draws)
    return drawn


def record_binomial(monkeypatch: pytest.MonkeyPatch) -> dict[int, list[tuple[int, list[int]]]]:
    """The binomial noise of every call, opened (a test-only extra opening, at every party)."""
    opened: dict[int, list[tuple[int, list[int]]]] = {}
    real = output_module.binomial

    async def binomial(s: Session, m: int, size: int) -> Any:
        noise = await real(s, m, size)
        opened.setdefault(s.party, []).append((m, [int(v) for v in await s.open(noise)]))
        return noise

    monkeypatch.setattr(output_module, "binomial", binomial)
    return opened


def gaussian_noise(
    drawn: dict[int, list[tuple[Any, list[int]]]],
    entries: list[dpa.Entry],
    dp: DP,
    touches: int | None = None,
) -> np.ndarray:
    """Each entry's noise, the sum of the parties' draws, after checking every call's sigma2: one call
    per distinct number of units, in increasing order, entries in order within each."""
    plan = dpa.noise_plan(entries, dp, touches)
    units = np.asarray([p.units for p in plan])
    noise = np.zeros(len(entries), dtype=np.int64)
    assert sorted(drawn) == list(range(N))
    for calls in drawn.values():
        distinct = sorted(set(units.tolist()))
        assert len(calls) == len(distinct)
        for (sigma2, draws), u in zip(calls, distinct, strict=True):
            idx = np.flatnonzero(units == u)
            assert sigma2 == plan[int(idx[0])].sigma2()
            noise[idx] += np.asarray(draws, dtype=np.int64)
    return noise


def binomial_noise(
    opened: dict[int, list[tuple[int, list[int]]]], entries: list[dpa.Entry], dp: DP
) -> np.ndarray:
    plan = dpa.noise_plan(entries, dp)
    units = np.asarray([p.units for p in plan])
    calls = opened[0]
    assert all(o == calls for o in opened.values())
    noise = np.zeros(len(entries), dtype=np.int64)
    for (m, values), u in zip(calls, sorted(set(units.tolist())), strict=True):
        idx = np.flatnonzero(units == u)
        assert m == plan[int(idx[0])].coins()
        assert all(-m // 2 <= v <= m // 2 for v in values)
        noise[idx] += np.asarray(values, dtype=np.int64)
    return noise


def scales(entries: list[dpa.Entry], mechanism: str = "gaussian") -> np.ndarray:
    return np.asarray([e.scale(mechanism) for e in entries])


def exact(entries: list[dpa.Entry], per_owner: list[np.ndarray], mechanism: str = "gaussian") -> np.ndarray:
    """The sum of the owners' sums, each rounded to its entry's grid."""
    return sum(np.rint(v * scales(entries, mechanism)).astype(np.int64) for v in per_owner)


def clamp(rows: np.ndarray) -> np.ndarray:
    return np.clip(rows, [b[0] for b in BOUNDS], [b[1] for b in BOUNDS])


SUM_ENTRIES = [dpa.Entry(20.0), dpa.Entry(4.0)]
MEAN_ENTRIES = [dpa.Entry(1.0, count=True), *SUM_ENTRIES]


async def total_prog(s: Session, dp: DP) -> Any:
    PARTY.set(s.party)
    return await stats.total(s, ROWS[s.party], dp=dp, bounds=BOUNDS)


async def test_a_dp_total_of_two_columns_is_each_clamped_sum_plus_the_noise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    drawn = record(monkeypatch)
    res = await run_cluster(N, P127, total_prog, GUARANTEE)
    assert all(np.array_equal(r, res[0]) for r in res)
    ints = exact(SUM_ENTRIES, [clamp(r).sum(axis=0) for r in ROWS])
    noise = gaussian_noise(drawn, SUM_ENTRIES, GUARANTEE)
    assert np.array_equal(res[0], (ints + noise) / scales(SUM_ENTRIES))
    # both columns have 1,024 units: one call, the group (1024, 1024) composed meets the target
    acc = Accountant()
    for p in dpa.noise_plan(SUM_ENTRIES, GUARANTEE):
        acc.add(p.noise())
    assert 0.95 <= acc.epsilon(1e-9) <= 1.0


async def test_a_binomial_dp_total_carries_the_opened_coins(monkeypatch: pytest.MonkeyPatch) -> None:
    opened = record_binomial(monkeypatch)
    dp = DP(epsilon=1.0, delta=1e-9, mechanism="binomial")
    res = await run_cluster(N, P127, total_prog, dp)
    ints = exact(SUM_ENTRIES, [clamp(r).sum(axis=0) for r in ROWS], "binomial")
    noise = binomial_noise(opened, SUM_ENTRIES, dp)
    assert np.array_equal(res[0], (ints + noise) / scales(SUM_ENTRIES, "binomial"))


async def mean_prog(s: Session, dp: DP) -> Any:
    PARTY.set(s.party)
    return await stats.mean(s, ROWS[s.party], dp=dp, bounds=BOUNDS)


def mean_of(noisy: np.ndarray) -> np.ndarray:
    lo, hi = np.asarray(BOUNDS).T
    return np.clip(noisy[1:] / max(noisy[0], 1.0), lo, hi)


def mean_sums() -> list[np.ndarray]:
    return [np.concatenate([[len(r)], clamp(r).sum(axis=0)]) for r in ROWS]


async def test_a_dp_mean_is_the_noisy_sum_over_the_noisy_count(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn = record(monkeypatch)
    res = await run_cluster(N, P127, mean_prog, GUARANTEE)
    assert all(np.array_equal(r, res[0]) for r in res)
    noise = gaussian_noise(drawn, MEAN_ENTRIES, GUARANTEE)
    noisy = (exact(MEAN_ENTRIES, mean_sums()) + noise) / scales(MEAN_ENTRIES)
    assert np.array_equal(res[0], mean_of(noisy))


async def test_a_binomial_dp_mean(monkeypatch: pytest.MonkeyPatch) -> None:
    opened = record_binomial(monkeypatch)
    dp = DP(epsilon=1.0, delta=1e-9, mechanism="binomial")
    res = await run_cluster(N, P127, mean_prog, dp)
    noise = binomial_noise(opened, MEAN_ENTRIES, dp)
    noisy = (exact(MEAN_ENTRIES, mean_sums(), "binomial") + noise) / scales(MEAN_ENTRIES, "binomial")
    assert np.array_equal(res[0], mean_of(noisy))


async def variance_prog(s: Session) -> Any:
    PARTY.set(s.party)
    return await stats.variance(s, ROWS[s.party], dp=GUARANTEE, bounds=BOUNDS)


async def test_a_dp_variance_is_post_processed_from_noisy_shifted_moments(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    drawn = record(monkeypatch)
    res = await run_cluster(N, P127, variance_prog)
    lo, hi = np.asarray(BOUNDS).T
    centre, half = (lo + hi) / 2, (hi - lo) / 2
    entries = [dpa.Entry(1.0, count=True), *(dpa.Entry(float(h)) for h in half)]
    entries += [dpa.Entry(float(h * h)) for h in half]
    zs = [clamp(r) - centre for r in ROWS]
    per_owner = [np.concatenate([[len(z)], z.sum(axis=0), (z * z).sum(axis=0)]) for z in zs]
    noise = gaussian_noise(drawn, entries, GUARANTEE)
    out = (exact(entries, per_owner) + noise) / scales(entries)
    n = max(out[0], 2.0)
    want = np.clip((out[3:] - out[1:3] ** 2 / n) / (n - 1), 0.0, half * half * n / (n - 1))
    assert np.array_equal(res[0], want)
    assert np.all(res[0] >= 0)


EDGES = [-10.0, 0.0, 5.0, 20.0]


async def histogram_prog(s: Session) -> Any:
    PARTY.set(s.party)
    return await stats.histogram(s, ROWS[s.party], EDGES, column=0, dp=GUARANTEE)


async def test_a_dp_histogram_costs_one_count_whatever_the_bins(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn = record(monkeypatch)
    res = await run_cluster(N, P127, histogram_prog)
    counts = sum(np.histogram(r[:, 0], bins=EDGES)[0] for r in ROWS)
    entries = [dpa.Entry(1.0, count=True)] * 3
    noise = gaussian_noise(drawn, entries, GUARANTEE, touches=1)
    assert np.array_equal(res[0], counts + noise)
    one = DP(epsilon=1.0, delta=1e-9, sensitivity=1)
    assert {c[0] for calls in drawn.values() for c in calls} == {one.sigma2()}
    assert DP(epsilon=1.0, delta=1e-9, touches=1).mechanisms(3) == [one.noise()]


async def allowance_prog(s: Session) -> Any:
    PARTY.set(s.party)
    declared = Declared("patients", epsilon=1.0, delta=1e-9, bounds=(-10.0, 20.0))
    s.privacy = Allowance(declared)
    rows = ROWS[s.party][:, 0]
    first = await stats.mean(s, rows, dp=declared.dp(), bounds=(-10.0, 20.0))
    try:
        await stats.mean(s, rows, dp=declared.dp(), bounds=(-10.0, 20.0))
        second = "accepted"
    except BudgetExceeded as e:
        second = type(e).__name__
    acc = Accountant()
    for m in s.privacy.spent:
        acc.add(m)
    return first, second, len(s.privacy.spent), acc.epsilon(1e-9)


async def test_the_allowance_takes_one_mean_at_its_epsilon_and_refuses_a_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    record(monkeypatch)
    res = await run_cluster(N, P127, allowance_prog)
    for first, second, spent, eps in res:
        assert isinstance(first, float)
        assert second == "BudgetExceeded"
        assert spent == 2  # the count and the sum: nothing of the refused call
        assert 0.95 <= eps <= 1.0  # the mean's two outputs compose to the one epsilon


XY = [
    (np.array([[0.5, 1.0], [1.0, -0.5], [3.0, 0.25]]), np.array([1.5, 0.75, 9.0])),
    (np.array([[-1.0, 0.5], [0.25, 0.25]]), np.array([-2.0, 0.5])),
    (np.array([[2.0, 2.0], [1.5, -1.0], [-0.5, 0.0]]), np.array([4.0, 1.0, -1.0])),
]
XB, YB = [(-2.0, 2.0), (-1.0, 1.0)], (-4.0, 4.0)


async def regression_prog(s: Session) -> Any:
    PARTY.set(s.party)
    x, y = XY[s.party]
    return await dpa.linear_regression(s, x, y, dp=GUARANTEE, bounds=XB, y_bounds=YB)


async def test_dp_regression_solves_the_noisy_sufficient_statistics(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn = record(monkeypatch)
    res = await run_cluster(N, P127, regression_prog)
    pairs, entries = dpa.regression_entries(XB, YB)
    assert [e.bound for e in entries][:4] == [1.0, 2.0, 1.0, 4.0]  # n, sum x1, sum x2, sum y
    ia, ib = np.asarray(pairs).T
    per_owner = []
    for x, y in XY:
        z = np.column_stack([np.ones(len(y)), np.clip(x, *np.asarray(XB).T), np.clip(y, *YB)])
        per_owner.append((z.T @ z)[ia, ib])
    noise = gaussian_noise(drawn, entries, GUARANTEE)
    released = (exact(entries, per_owner) + noise) / scales(entries)
    want = dpa.solve(released, 2)
    for model in res:
        assert np.array_equal(model.coef, want.coef) and model.intercept == want.intercept
        assert np.array_equal(model.xtx, want.xtx) and np.array_equal(model.xty, want.xty)
    assert want.xtx[0, 0] == released[0]  # the noisy count


def test_dp_regression_recovers_a_line_from_many_rows() -> None:
    """Post-processing alone, on statistics with the calibrated noise: with 30,000 rows the noise is
    small beside X^T X, and the fit is close to the truth."""
    rng = np.random.default_rng(7)
    x = rng.uniform(-2, 2, size=(30_000, 2))
    y = np.clip(x @ np.array([1.5, -0.5]) + 0.25 + rng.normal(0, 0.1, 30_000), -4, 4)
    pairs, entries = dpa.regression_entries(XB, YB)
    z = np.column_stack([np.ones(len(y)), np.clip(x, -2, 2), y])
    ia, ib = np.asarray(pairs).T
    std = dpa.predicted_std(entries, GUARANTEE, N)
    released = (z.T @ z)[ia, ib] + rng.normal(0, std)
    model = dpa.solve(released, 2)
    assert np.allclose(model.coef, [1.5, -0.5], atol=0.05) and abs(model.intercept - 0.25) < 0.05


async def reveal_prog(s: Session) -> Any:
    PARTY.set(s.party)
    xi = await SecretInt.input(s, np.array([5, -7, 1000]) if s.party == 0 else None, owner=0)
    xf = await SecretFix.input(s, np.array([0.5, -1.25]) if s.party == 1 else None, owner=1)
    a = await xi.reveal(dp=DP(sensitivity=3, epsilon=1.0, delta=1e-9))
    b = await xf.reveal(dp=DP(sensitivity=2.0**-11, epsilon=1.0, delta=1e-9))
    try:
        await xf.reveal(dp=DP(sensitivity=1, epsilon=1.0, delta=1e-9))
        c = "accepted"
    except ValueError as e:
        c = str(e).split(":")[0]
    return a, b, c


async def test_reveal_with_dp_adds_noise_at_the_types_scale(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn = record(monkeypatch)
    res = await run_cluster(N, P127, reveal_prog)
    ints = sum(np.asarray(drawn[p][0][1]) for p in range(N))
    fixed = sum(np.asarray(drawn[p][1][1]) for p in range(N))
    f = FixedFormat().f
    for a, b, c in res:
        assert np.array_equal(a, np.array([5, -7, 1000]) + ints)
        assert np.array_equal(b, np.array([0.5, -1.25]) + fixed / 2**f)
        assert c == "a sensitivity of 1048576 units of the encoding is above 1024"
    assert drawn[0][0][0] == DP(sensitivity=3, epsilon=1.0, delta=1e-9).sigma2()
    assert drawn[0][1][0] == DP(sensitivity=512, epsilon=1.0, delta=1e-9).sigma2()


async def misuse_prog(s: Session) -> list[str]:
    rows = ROWS[s.party]
    return await refusals(
        (
            lambda: stats.mean(s, rows, dp=GUARANTEE),
            lambda: stats.variance(s, rows, dp=GUARANTEE, bounds=[(0.0, 1.0)]),
            lambda: stats.total(s, rows, dp=GUARANTEE, bounds=[(0.0, 1.0), (3.0, 2.0)]),
            lambda: stats.histogram(s, rows, EDGES, dp={"epsilon": 1}),
        )
    )


async def test_misuse_is_refused_at_every_party() -> None:
    res = await run_cluster(N, P127, misuse_prog)
    assert (
        res
        == [
            [
                "dp= needs public clipping bounds=(lo",
                "dp= needs public clipping bounds=(lo",
                "dp= needs public clipping bounds=(lo",
                "dp= takes a protocols.dp.DP",
            ]
        ]
        * N
    )
