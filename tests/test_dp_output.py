"""``Session.output(x, dp=DP(...))`` (``protocols.dp.output``), 3 parties, dealer: the opened values
are the secret ones plus noise of the calibrated size, the same at every party; the guarantee's
parameters turn into noise parameters as documented; a malformed ``DP`` is refused."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from helpers import run_cluster

from protocols.dp import DP, discrete_gaussian_variance
from protocols.dp.accounting import Accountant, Binomial, DiscreteGaussian
from protocols.field import P127
from protocols.online import Session

N = 3
SIZE = 2000
DELTA = 1e-9


async def noisy_prog(s: Session, dp: DP) -> list[int]:
    values = np.arange(SIZE, dtype=np.int64) * 1000 if s.party == 0 else None
    x = await s.input(values, owner=0)
    out = await s.output(x, dp=dp)
    assert out is not None
    return [int(v) for v in out]


def noise_of(res: list[list[int]]) -> np.ndarray:
    assert all(r == res[0] for r in res), "the parties opened different values"
    return np.array(res[0]) - np.arange(SIZE) * 1000


async def test_gaussian_output_carries_every_partys_calibrated_noise() -> None:
    dp = DP(sensitivity=1, epsilon=1.0, delta=DELTA)
    sigma2 = dp.sigma2()
    acc = Accountant()
    acc.add(DiscreteGaussian(sigma2))
    assert acc.epsilon(DELTA) <= 1.0  # one party's draw alone meets the guarantee
    noise = noise_of(await run_cluster(N, P127, noisy_prog, dp))
    want = N * discrete_gaussian_variance(sigma2)
    assert abs(float(np.var(noise)) - want) < 5 * want * math.sqrt(2 / SIZE)
    assert abs(float(np.mean(noise))) < 5 * math.sqrt(want / SIZE)


async def test_binomial_output_has_the_fewest_coins_for_the_guarantee() -> None:
    dp = DP(sensitivity=1, epsilon=1.0, delta=DELTA, mechanism="binomial")
    m = dp.coins()
    acc = Accountant()
    acc.add(Binomial(m))
    assert acc.epsilon(DELTA) <= 1.0
    noise = noise_of(await run_cluster(N, P127, noisy_prog, dp))
    assert noise.min() >= -m // 2 and noise.max() <= m // 2
    assert abs(float(np.var(noise)) - m / 4) < 5 * (m / 4) * math.sqrt(2 / SIZE)


def test_parameters_follow_the_guarantee_and_the_scale() -> None:
    """rho gives ``sigma2 = units^2 / (2 rho)``; a fixed-point scale multiplies the sensitivity's
    units (rounded up); a larger sensitivity or a smaller epsilon asks for more noise."""
    assert DP(rho=0.5).sigma2() == 1
    assert DP(sensitivity=Fraction(1, 2), scale=2**8, rho=2).units == 2**7
    with pytest.raises(ValueError, match="coarser resolution"):
        DP(sensitivity=20, scale=2**20, rho=1)  # 2 x 10^7 units: the accountant's table would not fit
    assert DP(sensitivity=0.3, scale=10, rho=1).units == 3
    assert DP(sensitivity=2, epsilon=1, delta=DELTA).sigma2() > DP(epsilon=1, delta=DELTA).sigma2()
    assert DP(epsilon=0.1, delta=DELTA).sigma2() > 50 * DP(epsilon=1, delta=DELTA).sigma2()


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({"epsilon": 1.0}, "needs epsilon and delta"),
        ({"rho": 1.0, "epsilon": 1.0}, "not both"),
        ({"rho": 1.0, "mechanism": "binomial"}, "needs the Gaussian"),
        ({"rho": 1.0, "mechanism": "laplace"}, "unknown DP mechanism"),
        ({"rho": 1.0, "scale": 0}, "scale"),
        ({"rho": 1.0, "sensitivity": 0}, "sensitivity"),
        ({"epsilon": 1.0, "delta": 1.5}, "0 < delta < 1"),
        ({"rho": -1.0}, "rho must be positive"),
    ],
    ids=[
        "no-delta",
        "rho-and-epsilon",
        "rho-binomial",
        "unknown-mechanism",
        "zero-scale",
        "zero-sensitivity",
        "delta-above-1",
        "negative-rho",
    ],
)
def test_a_malformed_guarantee_is_refused(kwargs: dict[str, object], text: str) -> None:
    with pytest.raises(ValueError, match=text):
        DP(**kwargs)  # type: ignore[arg-type]


async def not_a_dp(s: Session) -> str:
    x = await s.input(np.arange(3) if s.party == 0 else None, owner=0)
    try:
        await s.output(x, dp={"epsilon": 1})
    except TypeError as e:
        return str(e)
    return "accepted"


async def test_dp_must_be_a_DP() -> None:
    res = await run_cluster(N, P127, not_a_dp)
    assert res == ["dp= takes a protocols.dp.DP, got dict"] * N
