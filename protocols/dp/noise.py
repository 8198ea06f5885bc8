"""Noise inside the MPC: secret integer noise to add to a secret result before it is opened.

* ``distributed_gaussian(s, sigma2, size)``: every party draws its own discrete Gaussian noise
  (``sampling.discrete_gaussian``) and inputs it; the noise is the sum. Each draw alone carries the
  whole guarantee, so it holds as long as one party is honest, whatever the others input (a party
  that inputs 0, or a biased value it knows, removes only its own share of the noise). The price is
  ``n`` times the variance the guarantee needs, and one input round.
* ``binomial(s, m, size)``: ``sum of m shared random bits - m/2`` per element, from the
  preprocessing's random bits (``pre.bits``), which no coalition short of all parties knows; the
  noise is ``Bin(m, 1/2) - m/2``, with variance ``m / 4``, and nobody can remove any of it. The
  price is ``m`` random bits per element from the offline phase.

Both return a ``SharedArray`` of integers (field elements of small signed values), to be added to a
result in the same fixed-point units as the sensitivity that the noise was calibrated for
(``accounting``). Nothing here opens anything.
"""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np

from ..prg import PRG
from ..rounds import sum_groups
from .sampling import discrete_gaussian

if TYPE_CHECKING:
    from ..online import Session
    from ..shares import SharedArray

MAX_NOISE_ELEMENTS = 1 << 20


def _size(size: object) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or not 0 < size <= MAX_NOISE_ELEMENTS:
        raise ValueError(f"the noise size must be an int in 1..{MAX_NOISE_ELEMENTS}, got {size!r}")
    return size


def own_gaussian_draws(sigma2: Fraction | int, size: int, prg: PRG | None = None) -> list[int]:
    """This party's draws (a hook: the tests make a cheater input something else)."""
    prg = prg or PRG()
    return [discrete_gaussian(sigma2, prg) for _ in range(size)]


async def distributed_gaussian(s: Session, sigma2: Fraction | int, size: int) -> SharedArray:
    """``size`` elements of ``sum_i N_Z(0, sigma2)``, party ``i``'s term drawn and input by party ``i``."""
    size = _size(size)
    if isinstance(sigma2, bool) or not isinstance(sigma2, (int, Fraction)) or sigma2 <= 0:
        raise ValueError(f"sigma2 must be a positive int or Fraction, got {sigma2!r}")
    total: SharedArray | None = None
    for owner in range(s.n):
        mine = np.array(own_gaussian_draws(sigma2, size), dtype=np.int64) if s.party == owner else None
        x = await s.input(mine, owner=owner)
        total = x if total is None else total + x
    assert total is not None
    return total


async def binomial(s: Session, m: int, size: int) -> SharedArray:
    """``size`` elements of ``Bin(m, 1/2) - m/2`` from ``m * size`` shared random bits (``m`` even)."""
    size = _size(size)
    if isinstance(m, bool) or not isinstance(m, int) or m <= 0 or m % 2:
        raise ValueError(f"the number of coins must be a positive even int, got {m!r}")
    if m * size > MAX_NOISE_ELEMENTS * 64:
        raise ValueError(f"{m} coins for {size} elements: more than {MAX_NOISE_ELEMENTS * 64} bits at once")
    bits = await s.pre.bits(m * size)  # element e's coins at e * m .. e * m + m - 1
    f = s.field
    # a halving tree over every element's coins at once (a Python add per coin took 1.5 s at 10^4)
    counts = sum_groups(bits, size)
    return counts.add_public_field(f.from_ints([(-(m // 2)) % f.modulus] * size))


__all__ = ["binomial", "distributed_gaussian"]
