"""Exact integer noise for differentially private outputs: discrete Laplace and discrete Gaussian.

Every draw is exact, in integers and fractions only: no floating-point ``exp`` or ``log`` anywhere, so
the distribution is the one the privacy proof assumes (Mironov, CCS 2012, shows what floating-point
Laplace leaks through the low bits of its output). The algorithms are Canonne, Kamath and Steinke,
"The Discrete Gaussian for Differential Privacy" (NeurIPS 2020), section 5:

* ``bernoulli_exp(gamma)``: a coin with ``P[1] = exp(-gamma)`` for a rational ``gamma >= 0``, from
  Bernoulli coins of rational bias only (von Neumann's trick for ``gamma <= 1``: draw Bernoulli(gamma
  / k) for k = 1, 2, ... until one is 0, and answer whether the count of 1s is even; ``exp(-gamma) =
  exp(-1)^floor(gamma) exp(-frac(gamma))`` above);
* ``discrete_laplace(scale)``: ``P[x] ~ exp(-|x| / scale)`` over the integers, for a rational scale:
  a geometric number of ``exp(-1)`` coins plus a uniform remainder accepted with ``exp(-U / t)``;
* ``discrete_gaussian(sigma2)``: ``P[x] ~ exp(-x^2 / (2 sigma2))`` over the integers, for a rational
  variance parameter: a discrete Laplace proposal of scale ``floor(sigma) + 1``, accepted with
  ``exp(-(|y| - sigma2 / t)^2 / (2 sigma2))``. (``sigma2`` is the parameter, not exactly the variance,
  which is slightly below it: ``discrete_gaussian_variance``.)

Randomness comes from ``protocols.prg.PRG`` (AES-CTR seeded from ``os.urandom``), or from a PRG the
caller passes with a fixed seed for reproducible tests. Draws take time that depends on their values
(rejection sampling); they run inside one party, before its noise is input into the MPC, so the
timing is that party's own business.
"""

from __future__ import annotations

import math
from fractions import Fraction
from numbers import Rational

from ..prg import PRG

Number = int | Fraction


def _rational(x: object, what: str) -> Fraction:
    if isinstance(x, bool) or not isinstance(x, (int, Rational)):
        raise TypeError(f"{what} must be an int or a Fraction (exact), got {type(x).__name__}")
    return Fraction(x)  # type: ignore[arg-type]


def bernoulli(p: Fraction, prg: PRG) -> int:
    """1 with probability ``p`` (a rational in [0, 1]), else 0."""
    if not 0 <= p <= 1:
        raise ValueError(f"a probability must be in [0, 1], got {p}")
    return int(prg.random_below(p.denominator) < p.numerator)


def bernoulli_exp(gamma: Number, prg: PRG | None = None) -> int:
    """1 with probability ``exp(-gamma)`` for a rational ``gamma >= 0``, exactly."""
    g = _rational(gamma, "gamma")
    if g < 0:
        raise ValueError(f"gamma must not be negative, got {g}")
    prg = prg or PRG()
    for _ in range(math.floor(g)):
        if not _bernoulli_exp_below_one(Fraction(1), prg):
            return 0
    return _bernoulli_exp_below_one(g - math.floor(g), prg)


def _bernoulli_exp_below_one(g: Fraction, prg: PRG) -> int:
    k = 1
    while bernoulli(g / k, prg):
        k += 1
    return k % 2


def discrete_laplace(scale: Number, prg: PRG | None = None) -> int:
    """One draw with ``P[x] ~ exp(-|x| / scale)`` over the integers, for a rational ``scale > 0``."""
    sc = _rational(scale, "scale")
    if sc <= 0:
        raise ValueError(f"the scale must be positive, got {sc}")
    prg = prg or PRG()
    s, t = sc.denominator, sc.numerator  # scale = t / s
    while True:
        u = prg.random_below(t)
        if not bernoulli_exp(Fraction(u, t), prg):
            continue
        v = 0
        while bernoulli_exp(1, prg):
            v += 1
        y = (u + t * v) // s
        negative = prg.random_below(2)
        if negative and y == 0:
            continue
        return -y if negative else y


def discrete_gaussian(sigma2: Number, prg: PRG | None = None) -> int:
    """One draw with ``P[x] ~ exp(-x^2 / (2 sigma2))`` over the integers, for a rational ``sigma2 > 0``."""
    s2 = _rational(sigma2, "sigma2")
    if s2 <= 0:
        raise ValueError(f"sigma2 must be positive, got {s2}")
    prg = prg or PRG()
    t = math.isqrt(s2.numerator // s2.denominator) + 1  # floor(sigma) + 1
    while True:
        y = discrete_laplace(t, prg)
        gap = abs(y) - s2 / t
        if bernoulli_exp(gap * gap / (2 * s2), prg):
            return y


def samples(draw: str, parameter: Number, count: int, prg: PRG | None = None) -> list[int]:
    """``count`` independent draws of ``discrete_laplace`` or ``discrete_gaussian``."""
    fns = {"laplace": discrete_laplace, "gaussian": discrete_gaussian}
    if draw not in fns:
        raise ValueError(f"unknown noise {draw!r}: use one of {sorted(fns)}")
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError(f"count must be a non-negative int, got {count!r}")
    prg = prg or PRG()
    fn = fns[draw]
    return [fn(parameter, prg) for _ in range(count)]


def discrete_gaussian_variance(sigma2: Number, terms: int = 0) -> float:
    """The variance of ``discrete_gaussian(sigma2)`` (a float, for reports and tests): the weighted sum
    over ``|x|`` up to ``terms`` (default: far enough that the tail is below double precision)."""
    s2 = float(_rational(sigma2, "sigma2"))
    top = terms or int(40 * math.sqrt(s2)) + 40
    weights = [math.exp(-x * x / (2 * s2)) for x in range(top + 1)]
    total = weights[0] + 2 * sum(weights[1:])
    return 2 * sum(x * x * w for x, w in enumerate(weights)) / total


__all__ = [
    "bernoulli_exp",
    "discrete_gaussian",
    "discrete_gaussian_variance",
    "discrete_laplace",
    "samples",
]
