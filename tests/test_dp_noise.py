"""Noise inside the MPC (``protocols.dp.noise``), dealer preprocessing, 3 parties: the opened noise
has the distribution it should, and a party that skips or biases its own Gaussian noise leaves the
honest party's draw, which alone has the full distribution, in the total."""

from __future__ import annotations

import contextvars
import math
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from helpers import run_cluster
from scipy import stats
from test_dp_sampling import chi_square_p, gaussian_pmf

import protocols.dp.noise as noise_module
from protocols.dp import discrete_gaussian_variance
from protocols.dp.noise import binomial, distributed_gaussian
from protocols.field import P127
from protocols.online import Session

N = 3
SIZE = 3000
PARTY: contextvars.ContextVar[int] = contextvars.ContextVar("dp_party", default=-1)


def signed(values: Any) -> list[int]:
    half = (P127 - 1) // 2
    return [int(v) - P127 if int(v) > half else int(v) for v in np.asarray(values).reshape(-1)]


async def gaussian_prog(s: Session, sigma2: Fraction) -> list[int]:
    PARTY.set(s.party)
    return signed(await s.open(await distributed_gaussian(s, sigma2, SIZE)))


def record(monkeypatch: pytest.MonkeyPatch, cheat: dict[int, str]) -> dict[int, list[int]]:
    """Patch the draws: remember every party's; a cheater in ``cheat`` inputs zeros or +5 each."""
    drawn: dict[int, list[int]] = {}
    real = noise_module.own_gaussian_draws

    def draws(sigma2: Any, size: int, prg: Any = None) -> list[int]:
        me = PARTY.get()
        mine = real(sigma2, size, prg)
        how = cheat.get(me)
        if how == "skip":
            mine = [0] * size
        elif how == "bias":
            mine = [5] * size
        drawn[me] = mine
        return mine

    monkeypatch.setattr(noise_module, "own_gaussian_draws", draws)
    return drawn


async def test_distributed_gaussian_sums_every_partys_draw(monkeypatch: pytest.MonkeyPatch) -> None:
    """The opened noise is the sum of the three parties' draws, element by element; its variance is
    three times one discrete Gaussian's, and every party's own draws pass the chi-square."""
    sigma2 = Fraction(16)
    drawn = record(monkeypatch, {})
    res = await run_cluster(N, P127, gaussian_prog, sigma2)
    assert all(r == res[0] for r in res)
    assert res[0] == [a + b + c for a, b, c in zip(drawn[0], drawn[1], drawn[2], strict=True)]
    var = float(np.var(res[0]))
    one = discrete_gaussian_variance(sigma2)
    assert abs(var - 3 * one) < 5 * 3 * one * math.sqrt(2 / SIZE)
    xs = range(-12, 13)
    for p in range(N):
        assert chi_square_p(drawn[p], gaussian_pmf(sigma2, xs), -12) > 1e-4


@pytest.mark.parametrize("how", ["skip", "bias"])
async def test_colluders_cannot_remove_the_honest_partys_noise(
    how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parties 1 and 2 collude: they input zeros (or a constant they know) and subtract what they
    input. What is left is party 0's draw, which passes the chi-square of the full discrete Gaussian,
    and its variance is still the single-party requirement."""
    sigma2 = Fraction(16)
    drawn = record(monkeypatch, {1: how, 2: how})
    res = await run_cluster(N, P127, gaussian_prog, sigma2)
    residual = [t - a - b for t, a, b in zip(res[0], drawn[1], drawn[2], strict=True)]
    assert residual == drawn[0]
    xs = range(-12, 13)
    assert chi_square_p(residual, gaussian_pmf(sigma2, xs), -12) > 1e-4
    one = discrete_gaussian_variance(sigma2)
    assert float(np.var(residual)) > one * (1 - 5 * math.sqrt(2 / SIZE))


async def binomial_prog(s: Session, m: int) -> list[int]:
    return signed(await s.open(await binomial(s, m, SIZE)))


async def test_binomial_noise_is_centred_binomial() -> None:
    m = 64
    res = await run_cluster(N, P127, binomial_prog, m)
    assert all(r == res[0] for r in res)
    lo, hi = -12, 12
    pmf = [stats.binom.pmf(x + m // 2, m, 0.5) for x in range(lo, hi + 1)]
    assert chi_square_p(res[0], pmf, lo) > 1e-4
    assert min(res[0]) >= -m // 2 and max(res[0]) <= m // 2


async def bad_prog(s: Session) -> list[str]:
    out = []
    for call in (
        lambda: distributed_gaussian(s, 2.5, 10),  # type: ignore[arg-type]
        lambda: distributed_gaussian(s, 4, 0),
        lambda: binomial(s, 7, 10),
        lambda: binomial(s, 8, True),  # type: ignore[arg-type]
    ):
        try:
            await call()
        except ValueError as e:
            out.append(str(e).split(":")[0])
    return out


async def test_bad_parameters_are_refused_before_anything_is_sent() -> None:
    res = await run_cluster(N, P127, bad_prog)
    assert res[0] == [
        "sigma2 must be a positive int or Fraction, got 2.5",
        "the noise size must be an int in 1..1048576, got 0",
        "the number of coins must be a positive even int, got 7",
        "the noise size must be an int in 1..1048576, got True",
    ]
