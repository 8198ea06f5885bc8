"""Privacy accounting for noisy outputs, with Google's ``dp-accounting`` doing every piece of the math.

Each noisy output is a mechanism with an integer sensitivity (in units of the output's fixed-point
resolution) and integer noise:

* ``DiscreteGaussian(sigma2, sensitivity)``: noise ``N_Z(0, sigma2)`` (``sampling.discrete_gaussian``).
  For the distributed mechanism, ``sigma2`` is what *one* honest party's draw gives, since that is
  all the guarantee may count on;
* ``Binomial(m, sensitivity)``: noise ``Bin(m, 1/2) - m/2`` from ``m`` shared random bits. It is not
  zCDP (its support is bounded: a shifted output can fall where the unshifted one cannot), only
  ``(epsilon, delta)``, so it is accounted through its exact privacy loss distribution.

``Accountant`` composes the mechanisms' privacy loss distributions (``dp_accounting.pld``: the
discrete Gaussian's from the library's own constructor, the binomial's from its two exact probability
mass functions) and reads ``epsilon`` for a ``delta`` off the composition; no composition theorem or
conversion is written here. ``calibrate_sigma2`` searches the smallest discrete Gaussian for a target
``(epsilon, delta)`` with the same accountant. ``zcdp_rho`` is the discrete Gaussian's zCDP parameter
``sensitivity^2 / (2 sigma2)`` (Canonne-Kamath-Steinke 2020), reported for users who budget in rho.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

import numpy as np
from dp_accounting.pld import common
from dp_accounting.pld import privacy_loss_distribution as pld
from scipy.special import gammaln  # dp-accounting's own dependency

DISCRETIZATION = 1e-4  # the PLD's privacy-loss grid (pessimistic rounding: epsilon only grows)
TAIL = 1e-30  # binomial mass left out of a privacy loss distribution's window, counted as infinite loss


def _positive_int(x: object, what: str) -> int:
    if isinstance(x, bool) or not isinstance(x, int) or x <= 0:
        raise ValueError(f"{what} must be a positive int, got {x!r}")
    return x


@dataclass(frozen=True)
class DiscreteGaussian:
    sigma2: Fraction
    sensitivity: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.sigma2, bool) or not isinstance(self.sigma2, (int, Fraction)) or self.sigma2 <= 0:
            raise ValueError(f"sigma2 must be a positive int or Fraction, got {self.sigma2!r}")
        _positive_int(self.sensitivity, "the sensitivity")

    def pld(self) -> pld.PrivacyLossDistribution:
        return _gaussian_pld(Fraction(self.sigma2), self.sensitivity)


@dataclass(frozen=True)
class Binomial:
    m: int
    sensitivity: int = 1

    def __post_init__(self) -> None:
        _positive_int(self.m, "the number of coins")
        _positive_int(self.sensitivity, "the sensitivity")
        if self.sensitivity > self.m:
            raise ValueError(f"{self.m} coins cannot hide a sensitivity of {self.sensitivity}")

    def log_pmf(self, shift: int = 0) -> dict[int, float]:
        """``log P[Bin(m, 1/2) + shift = x]`` over its support."""
        m = self.m
        top = math.lgamma(m + 1) - m * math.log(2)
        return {k + shift: top - math.lgamma(k + 1) - math.lgamma(m - k + 1) for k in range(m + 1)}

    def window(self) -> tuple[int, int]:
        """The outcomes ``[lo, hi]`` outside of which ``Bin(m, 1/2)`` has less than ``TAIL / 2`` of its
        mass, by Hoeffding (``P[|X - m/2| >= t] <= 2 exp(-2 t^2 / m)``)."""
        t = math.ceil(math.sqrt(self.m * math.log(4 / TAIL) / 2))
        return max(0, self.m // 2 - t), min(self.m, self.m // 2 + t)

    def log_pmf_window(self, shift: int = 0) -> dict[int, float]:
        """``log_pmf`` on ``window()`` only (vectorised): the tails are far below any delta."""
        lo, hi = self.window()
        k = np.arange(lo, hi + 1, dtype=np.float64)
        m = float(self.m)
        logs = gammaln(m + 1) - m * math.log(2) - gammaln(k + 1) - gammaln(m - k + 1)
        return dict(zip((np.arange(lo, hi + 1) + shift).tolist(), logs.tolist(), strict=True))

    def pld(self) -> pld.PrivacyLossDistribution:
        return _binomial_pld(self.m, self.sensitivity)


@dataclass(frozen=True)
class EpsDelta:
    """Any ``(epsilon, delta)``-DP computation, whatever its mechanisms: what a ledger charges for a
    program's declared cost before the program runs (its outputs are then held to that cost). The
    library's PLD for it is the worst case over all such mechanisms, so composing it is sound."""

    epsilon: float
    delta: float

    def __post_init__(self) -> None:
        if not (isinstance(self.epsilon, (int, float)) and math.isfinite(self.epsilon) and self.epsilon > 0):
            raise ValueError(f"epsilon must be a positive number, got {self.epsilon!r}")
        if not (isinstance(self.delta, (int, float)) and 0 < self.delta < 1):
            raise ValueError(f"delta must be in (0, 1), got {self.delta!r}")

    def pld(self) -> pld.PrivacyLossDistribution:
        return _epsdelta_pld(float(self.epsilon), float(self.delta))


@lru_cache(maxsize=256)
def _epsdelta_pld(epsilon: float, delta: float) -> pld.PrivacyLossDistribution:
    return pld.from_privacy_parameters(
        common.DifferentialPrivacyParameters(epsilon, delta), value_discretization_interval=DISCRETIZATION
    )


@lru_cache(maxsize=256)
def _gaussian_pld(sigma2: Fraction, sensitivity: int) -> pld.PrivacyLossDistribution:
    """(Cached: the library tabulates about ``10 sigma`` integers, seconds at ``sigma = 10^5``; a
    ledger recomposes every past charge.)"""
    return pld.from_discrete_gaussian_mechanism(
        math.sqrt(sigma2), sensitivity=sensitivity, value_discretization_interval=DISCRETIZATION
    )


@lru_cache(maxsize=256)
def _binomial_pld(m: int, sensitivity: int) -> pld.PrivacyLossDistribution:
    """From the two pmfs (``Bin(m, 1/2)`` and its shift by the sensitivity) on their windows: a few
    ``sqrt(m)`` outcomes instead of ``m``. What the windows leave out of the shifted distribution
    (below ``TAIL``) is given to one outcome of its own that the unshifted one never takes, which
    the library counts as infinite privacy loss: the pessimistic side, ``TAIL`` (10^-30) far below
    any delta."""
    b = Binomial(m, sensitivity)
    lower, upper = b.log_pmf_window(0), b.log_pmf_window(sensitivity)
    if len(upper) < m + 1:
        upper["tail"] = math.log(TAIL)  # type: ignore[index]
    return pld.from_two_probability_mass_functions(lower, upper, value_discretization_interval=DISCRETIZATION)


Mechanism = DiscreteGaussian | Binomial | EpsDelta


class Accountant:
    """The composition of noisy outputs so far; ``epsilon(delta)`` of all of them together."""

    def __init__(self) -> None:
        self._pld: pld.PrivacyLossDistribution | None = None
        self.mechanisms: list[Mechanism] = []

    def add(self, mechanism: Mechanism, count: int = 1) -> None:
        _positive_int(count, "count")
        one = mechanism.pld()
        step = one.self_compose(count) if count > 1 else one
        self._pld = step if self._pld is None else self._pld.compose(step)
        self.mechanisms.extend([mechanism] * count)

    def copy(self) -> Accountant:
        """An accountant with the same outputs (composition makes new distributions: nothing shared
        is ever changed)."""
        c = Accountant()
        c._pld, c.mechanisms = self._pld, list(self.mechanisms)
        return c

    def epsilon(self, delta: float) -> float:
        if not 0 < delta < 1:
            raise ValueError(f"delta must be in (0, 1), got {delta!r}")
        return 0.0 if self._pld is None else float(self._pld.get_epsilon_for_delta(delta))

    def delta(self, epsilon: float) -> float:
        if epsilon < 0:
            raise ValueError(f"epsilon must not be negative, got {epsilon!r}")
        return 0.0 if self._pld is None else float(self._pld.get_delta_for_epsilon(epsilon))


def zcdp_rho(sigma2: Fraction | int, sensitivity: int = 1) -> float:
    """The discrete Gaussian's zCDP parameter ``sensitivity^2 / (2 sigma2)``."""
    return sensitivity * sensitivity / (2 * float(sigma2))


def _target(epsilon: float, delta: float, sensitivity: int) -> None:
    if not epsilon > 0 or not 0 < delta < 1:
        raise ValueError(f"need epsilon > 0 and 0 < delta < 1, got {epsilon!r}, {delta!r}")
    _positive_int(sensitivity, "the sensitivity")


def _meets(mechanism: Mechanism, epsilon: float, delta: float, count: int = 1) -> bool:
    acc = Accountant()
    acc.add(mechanism, count)
    return acc.epsilon(delta) <= epsilon


@lru_cache(maxsize=256)
def calibrate_sigma2(epsilon: float, delta: float, sensitivity: int = 1, count: int = 1) -> Fraction:
    """The smallest ``sigma2`` (to 1 part in 1,000, rounded up to a rational) whose discrete Gaussian,
    composed ``count`` times, is ``(epsilon, delta)``-DP by the accountant (``count`` outputs that
    share one target: a mean's noisy sum and count, a histogram's bins that one row can change)."""
    _target(epsilon, delta, sensitivity)
    _positive_int(count, "count")
    return calibrate_group(epsilon, delta, (sensitivity,) * count) * sensitivity * sensitivity


@lru_cache(maxsize=256)
def calibrate_coins(epsilon: float, delta: float, sensitivity: int = 1, count: int = 1) -> int:
    """The fewest coins ``m`` (even, so that ``m / 2`` is an integer) whose binomial noise, composed
    ``count`` times, is ``(epsilon, delta)``-DP by the accountant (to within 1%: the search steps by
    1% of ``m``)."""
    _target(epsilon, delta, sensitivity)
    _positive_int(count, "count")

    def ok(m: int) -> bool:
        return _meets(Binomial(m, sensitivity), epsilon, delta, count)

    # start from the Gaussian of the same variance (m / 4 = sigma2), then walk
    g = calibrate_sigma2(epsilon, delta, sensitivity, count)
    m = max(2 * sensitivity, 2 * math.ceil(2 * float(g)))
    while not ok(m):
        m += max(2, 2 * (m // 200))
    while m > 2 and ok(m - max(2, 2 * (m // 200))):
        m -= max(2, 2 * (m // 200))
    return m


def _noise(mechanism: str, t: Fraction, units: int) -> Mechanism:
    """The noise of a group member with sensitivity ``units`` at common level ``t`` (``sigma2 / units^2``)."""
    if mechanism == "gaussian":
        return DiscreteGaussian(t * units * units, units)
    return Binomial(max(2 * units, 2 * math.ceil(2 * t * units * units)), units)


@lru_cache(maxsize=256)
def calibrate_group(
    epsilon: float, delta: float, units: tuple[int, ...], mechanism: str = "gaussian"
) -> Fraction:
    """The common level ``t`` for outputs that share one ``(epsilon, delta)``: output ``i`` (sensitivity
    ``units[i]``) gets ``sigma2_i = t units[i]^2`` (binomial: ``m_i``, the even number nearest above
    ``4 t units[i]^2``), the smallest ``t`` (to 1 part in 1,000; the binomial's to 1%) whose outputs,
    all of them composed, meet the target by the accountant. Equal signal-to-noise ratios: the natural
    split, and the one a continuous Gaussian would make exact. ``group_noise`` gives the mechanisms."""
    if not units:
        raise ValueError("a group needs at least one output")
    for u in units:
        _target(epsilon, delta, u)
    if mechanism not in ("gaussian", "binomial"):
        raise ValueError(f"unknown mechanism {mechanism!r}")

    def ok(t: Fraction) -> bool:
        acc = Accountant()
        for u, k in Counter(units).items():  # equal members self-compose: one FFT power, not k convolutions
            acc.add(_noise(mechanism, t, u), k)
        return acc.epsilon(delta) <= epsilon

    if mechanism == "binomial":
        # the binomial needs a little more variance than the Gaussian (its tails are lighter where
        # the shift matters): start there and search to 1% (the coins' PLDs take seconds to tabulate)
        start, precision = calibrate_group(epsilon, delta, units, "gaussian"), 100
    else:
        # the discrete Gaussian is within a fraction of a percent of the continuous one of the same
        # sigma / sensitivity, whose distribution costs the same at every scale: start there, so the
        # discrete tables (seconds each at 1,024 units) are built a handful of times, not twenty
        start, precision = _continuous_level(epsilon, delta, len(units)), 1000
    # the Gaussian's bracket starts at 0.3% (the discrete and continuous levels are that close)
    t = _smallest(ok, start, precision, Fraction(1003, 1000) if mechanism == "gaussian" else Fraction(21, 20))
    r = t.limit_denominator(1000)
    return r if r >= t or ok(r) else t


def _continuous_level(epsilon: float, delta: float, k: int) -> Fraction:
    """``sigma^2 / sensitivity^2`` of the continuous Gaussian whose ``k``-fold composition meets the
    target, by the library's PLD (to 1 part in 1,000)."""

    def ok(t: Fraction) -> bool:
        one = pld.from_gaussian_mechanism(math.sqrt(t), value_discretization_interval=DISCRETIZATION)
        return float((one.self_compose(k) if k > 1 else one).get_epsilon_for_delta(delta)) <= epsilon

    # the classical bound sigma^2 >= 2 ln(1.25 / delta) / epsilon^2 per output (an overestimate, and a
    # near one: the search starts where the library's distributions are cheap to build)
    guess = Fraction(2 * k * math.log(1.25 / delta) / (epsilon * epsilon)).limit_denominator(1000)
    return _smallest(ok, max(guess, Fraction(1, 100)), 1000)


def _smallest(
    ok: Callable[[Fraction], bool], start: Fraction, precision: int, first: Fraction = Fraction(21, 20)
) -> Fraction:
    """The smallest ``t > 0`` with ``ok(t)`` (``ok`` monotone), to 1 part in ``precision``: a bracket
    grown from ``start`` by steps of ``first`` (squared at every step, up to doubling, once far off),
    then bisection. Never returns a ``t`` that fails."""
    hi, step = start, first
    while not ok(hi):
        hi *= step
        step = min(step * step, Fraction(2))
    lo = start / first if hi == start else hi / step
    step = first
    while ok(lo):
        hi, lo = lo, lo / step
        step = min(step * step, Fraction(2))
        if lo < Fraction(1, 10**12):
            return hi
    while hi - lo > hi / precision:
        mid = (lo + hi) / 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi


def group_noise(epsilon: float, delta: float, units: tuple[int, ...], mechanism: str, u: int) -> Mechanism:
    """The mechanism of the group member with sensitivity ``u`` (``calibrate_group``)."""
    if u not in units:
        raise ValueError(f"sensitivity {u} is not in the group {units}")
    return _noise(mechanism, calibrate_group(epsilon, delta, units, mechanism), u)


__all__ = [
    "Accountant",
    "Binomial",
    "DiscreteGaussian",
    "EpsDelta",
    "Mechanism",
    "calibrate_coins",
    "calibrate_group",
    "calibrate_sigma2",
    "group_noise",
    "zcdp_rho",
]
