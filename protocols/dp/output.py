"""``Session.output(x, dp=DP(...))``: a differentially private output, noise added inside the MPC.

``DP`` names the guarantee (``epsilon`` and ``delta``, or ``rho`` for zCDP with the Gaussian), the
sensitivity of the value in its own units, the value's fixed-point ``scale`` (``2^f``; 1 for
integers) and the mechanism:

* ``"gaussian"`` (the default): the distributed discrete Gaussian. Every party draws
  ``N_Z(0, sigma2)`` with the ``sigma2`` that alone meets the guarantee and inputs it, so the
  guarantee holds while one party is honest; the output's noise variance is ``n`` times that;
* ``"binomial"``: ``Bin(m, 1/2) - m/2`` from ``m`` shared random bits per element, ``m`` the fewest
  coins that meet the guarantee; nobody can remove any of it.

The sensitivity is turned into integer units of the encoding, rounded up (``ceil(sensitivity *
scale)``), and the noise is calibrated for that by ``accounting`` (the library's arithmetic). Every
party computes the same parameters from the same ``DP``, which is part of the program every party
runs. In a session with a declared cost (``s.privacy``, set by ``actors.privacy``), the output's
mechanisms are spent from that cost first, and an output beyond it is refused.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

from .accounting import (
    Binomial,
    DiscreteGaussian,
    Mechanism,
    calibrate_coins,
    group_noise,
)
from .noise import binomial, distributed_gaussian

if TYPE_CHECKING:
    from ..online import Session
    from ..shares import SharedArray

MECHANISMS = ("gaussian", "binomial")
MAX_UNITS = 1 << 10
"""The largest sensitivity in units of the encoding. The accountant's discrete Gaussian is a table over
about ``10 sigma`` integers: calibrating epsilon = 0.1 takes about 9 s at 1,024 units (then cached),
and a value at a fine fixed-point resolution (sensitivity 20 at ``2^20``: 2 x 10^7 units)
would not fit in memory. Round such a value to a coarser resolution first (``stats.total`` rounds
each owner's summary)."""


@dataclass(frozen=True)
class DP:
    sensitivity: Fraction | int | float = 1
    epsilon: float | None = None
    delta: float | None = None
    rho: float | None = None
    mechanism: str = "gaussian"
    scale: int = 1
    group: tuple[int, ...] | None = None
    touches: int | None = None

    def __post_init__(self) -> None:
        if self.mechanism not in MECHANISMS:
            raise ValueError(f"unknown DP mechanism {self.mechanism!r}: use one of {MECHANISMS}")
        if isinstance(self.scale, bool) or not isinstance(self.scale, int) or self.scale <= 0:
            raise ValueError(f"the scale must be a positive int (2^f for fixed point), got {self.scale!r}")
        if isinstance(self.sensitivity, bool) or not self.sensitivity > 0:
            raise ValueError(f"the sensitivity must be positive, got {self.sensitivity!r}")
        if self.units > MAX_UNITS:
            raise ValueError(
                f"a sensitivity of {self.units} units of the encoding is above {MAX_UNITS}: round the "
                "value to a coarser resolution before adding noise (a smaller scale)"
            )
        if self.rho is not None:
            if self.epsilon is not None or self.delta is not None:
                raise ValueError("give rho (zCDP) or epsilon and delta, not both")
            if self.mechanism != "gaussian":
                raise ValueError("rho (zCDP) needs the Gaussian: the binomial is only (epsilon, delta)-DP")
            if not self.rho > 0:
                raise ValueError(f"rho must be positive, got {self.rho!r}")
        elif self.epsilon is None or self.delta is None:
            raise ValueError("a DP output needs epsilon and delta, or rho")
        elif not self.epsilon > 0 or not 0 < self.delta < 1:
            raise ValueError(f"need epsilon > 0 and 0 < delta < 1, got {self.epsilon!r}, {self.delta!r}")
        if self.group is not None:
            if not isinstance(self.group, tuple) or not self.group or self.units not in self.group:
                raise ValueError(
                    f"group must be a tuple of the sensitivities (in units) of every output sharing this "
                    f"guarantee, this one's ({self.units}) among them; got {self.group!r}"
                )
        if self.touches is not None and (
            isinstance(self.touches, bool) or not isinstance(self.touches, int) or self.touches <= 0
        ):
            raise ValueError(f"touches must be a positive int, got {self.touches!r}")

    @property
    def units(self) -> int:
        """The sensitivity in integer units of the encoding, rounded up."""
        return math.ceil(Fraction(self.sensitivity) * self.scale)

    def sigma2(self) -> Fraction:
        """The discrete Gaussian variance parameter one party's draw needs."""
        if self.rho is not None:  # zCDP composes by adding: each of the group's outputs gets rho / k
            k = len(self.group) if self.group else 1
            return Fraction(self.units * self.units * k) / (2 * Fraction(self.rho))
        assert self.epsilon is not None and self.delta is not None
        g = group_noise(self.epsilon, self.delta, self.group or (self.units,), "gaussian", self.units)
        assert isinstance(g, DiscreteGaussian)
        return Fraction(g.sigma2)

    def coins(self) -> int:
        assert self.epsilon is not None and self.delta is not None
        if self.group is not None:
            b = group_noise(self.epsilon, self.delta, self.group, "binomial", self.units)
            assert isinstance(b, Binomial)
            return b.m
        return calibrate_coins(self.epsilon, self.delta, self.units)

    def noise(self) -> Mechanism:
        """One element's mechanism, as the accountant sees it."""
        if self.mechanism == "gaussian":
            return DiscreteGaussian(self.sigma2(), self.units)
        return Binomial(self.coins(), self.units)

    def mechanisms(self, size: int) -> list[Mechanism]:
        """What an output of ``size`` elements costs: one mechanism per element that one row can
        change (``touches``; all of them when not given), composed."""
        k = size if self.touches is None else min(size, self.touches)
        return [self.noise()] * k


def at_scale(dp: DP, scale: int, n: int) -> tuple[DP, int]:
    """``dp`` for a value encoded at ``scale`` (a secure type's ``reveal(dp=...)``), and the bits its
    noise may add to the value's range: the binomial's ``m / 2`` exactly, the sum of ``n`` discrete
    Gaussians' 12 standard deviations (a tail below ``e^-72``)."""
    if not isinstance(dp, DP):
        raise TypeError(f"dp= takes a protocols.dp.DP, got {type(dp).__name__}")
    dp = dataclasses.replace(dp, scale=scale)
    reach = dp.coins() // 2 if dp.mechanism == "binomial" else 12 * math.sqrt(n * float(dp.sigma2()))
    return dp, 1 + math.ceil(math.log2(reach + 1))


async def add_noise(s: Session, x: SharedArray, dp: DP) -> SharedArray:
    """``x`` plus secret noise for ``dp``, element by element (nothing is opened)."""
    if not isinstance(dp, DP):
        raise TypeError(f"dp= takes a protocols.dp.DP, got {type(dp).__name__}")
    size = x.size
    if s.privacy is not None:  # a session with a declared cost (actors.privacy): held to it
        s.privacy.spend(dp.mechanisms(size))
    if dp.mechanism == "gaussian":
        noise = await distributed_gaussian(s, dp.sigma2(), size)
    else:
        noise = await binomial(s, dp.coins(), size)
    return x + noise.reshape(x.shape)


__all__ = ["DP", "add_noise", "at_scale"]
