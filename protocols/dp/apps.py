"""Differentially private statistics from owner-private rows: clamped sums with noise, and what is
computed from them in the clear.

Every statistic here is a vector of **sums over rows** (a count, column sums, sums of squares, bin
counts, the entries of ``X^T X`` and ``X^T y``), each with a public bound on what one row adds to it,
which follows from the public clipping bounds that every owner clamps its own rows to. Neighbouring
datasets differ by **one row added or removed** at one owner. An entry whose rows add at most ``b``
moves by at most ``b`` between neighbours.

How one entry is released (``release_sums``):

1. the owner computes its clamped sum in float64 and rounds it to a grid of ``b / 1,023`` (exactly:
   ``rint(sum * scale)`` with ``scale`` the largest float with ``b * scale <= 1,023``), so one row
   moves the rounded sum by at most ``1,024`` units (1,023 for the row, 1 for the rounding); a count
   is an integer already and moves by one unit. The binomial rounds to ``b / 7`` (8 units: ``TOP``),
   as its coins grow with the units squared;
2. the owners' integers are added inside the MPC (``pooled.int_totals``: no row count leaves its
   owner) and integer noise for that many units is added before the opening (``output.add_noise``);
3. the opened integer divided by ``scale`` is the noisy sum in real units.

The grid costs nothing the noise does not already cost: the noise's standard deviation is hundreds
of units (with the binomial, 8 units instead of 7 cost 14% more noise). Every real-valued entry has
the same units, whatever its bound, so a statistic of
many entries calibrates as fast as one of two (equal mechanisms self-compose in the accountant).

**One DP for the whole call.** A call's entries all depend on the same row, so they compose: the
caller's ``(epsilon, delta)`` is split over them by ``accounting.calibrate_group`` (``DP.group``),
each entry getting ``sigma2_i = t units_i^2`` (equal signal-to-noise) with the smallest ``t`` whose
composition meets the target. Bin counts are the exception: one row lands in one bin, so a histogram
costs one entry, however many bins (``touches=1``). Everything after the opening (a mean, a
variance, a regression's coefficients) is post-processing and costs nothing more.

``linear_regression`` fits ``y`` on ``x`` by sufficient-statistics perturbation: the noisy
``X^T X`` and ``X^T y`` of the rows with an intercept column, solved in the clear.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import numpy as np

from ..apps import pooled as pl
from ..sectypes import SecretInt
from ..shares import SharedArray
from .output import DP, MAX_UNITS, add_noise

if TYPE_CHECKING:
    from ..online import Session

COUNT_BITS = pl.COUNT_BITS
TOP = {"gaussian": MAX_UNITS, "binomial": 8}
"""The units of a rounded sum's sensitivity, per mechanism: ``top - 1`` for the row, 1 for the rounding.
The binomial needs about ``4 sigma2`` coins, ``sigma2`` growing as the units squared: at 1,024 units
that would be 10^8 random bits per element; at 8, a few thousand (its noise is then ``8 / 7`` of
what the finest grid gives, in real units)."""

Bounds = tuple[float, float]


def scale_for(bound: float, top: int = MAX_UNITS) -> float:
    """The largest float ``scale`` with ``bound * scale <= top - 1`` exactly (as rationals)."""
    if not (math.isfinite(bound) and bound > 0):
        raise ValueError(f"a bound must be a positive finite number, got {bound!r}")
    s = (top - 1) / bound
    while Fraction(bound) * Fraction(s) > top - 1:
        s = float(np.nextafter(s, 0.0))
    return s


def column_bounds(bounds: Any, d: int) -> list[Bounds]:
    """One ``(lo, hi)`` per column: ``bounds`` is one pair for every column, or a sequence of ``d``."""
    if isinstance(bounds, tuple) and len(bounds) == 2 and all(_number(b) for b in bounds):
        pairs = [bounds] * d
    elif isinstance(bounds, (list, tuple)) and all(isinstance(b, tuple) for b in bounds):
        pairs = list(bounds)
    else:
        raise ValueError(
            f"dp= needs public clipping bounds=(lo, hi), or one (lo, hi) per column, got {bounds!r}"
        )
    if len(pairs) != d:
        raise ValueError(
            f"dp= needs public clipping bounds=(lo, hi) for each of the {d} columns, got {bounds!r}"
        )
    out = []
    for p in pairs:
        if len(p) != 2 or not all(_number(b) and math.isfinite(b) for b in p) or not p[0] < p[1]:
            raise ValueError(f"dp= needs public clipping bounds=(lo, hi) with lo < hi, got {bounds!r}")
        out.append((float(p[0]), float(p[1])))
    return out


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def magnitude(b: Bounds) -> float:
    """The most one clamped value can add to a sum: ``max(|lo|, |hi|)``."""
    return max(abs(b[0]), abs(b[1]))


@dataclass(frozen=True)
class Entry:
    """One released sum: ``bound`` is the most one row adds to it (in absolute value); a ``count`` is an
    integer already (no grid, ``bound`` units)."""

    bound: float
    count: bool = False

    def scale(self, mechanism: str = "gaussian") -> float:
        return 1.0 if self.count else scale_for(self.bound, TOP[mechanism])

    def units(self, mechanism: str = "gaussian") -> int:
        return math.ceil(self.bound) if self.count else TOP[mechanism]


def noise_plan(entries: Sequence[Entry], dp: DP, touches: int | None = None) -> list[DP]:
    """The ``DP`` of each entry: the caller's guarantee and mechanism, the entry's units at scale 1,
    and the group of every entry's units when several share the guarantee."""
    if not isinstance(dp, DP):
        raise TypeError(f"dp= takes a protocols.dp.DP, got {type(dp).__name__}")
    units = tuple(e.units(dp.mechanism) for e in entries)
    group = units if len(units) > 1 and touches is None else None
    return [dataclasses.replace(dp, sensitivity=u, scale=1, group=group, touches=touches) for u in units]


async def noisy(
    s: Session, x: SharedArray, entries: Sequence[Entry], dp: DP, touches: int | None = None
) -> SharedArray:
    """``x`` (one element per entry) plus each entry's noise: one ``add_noise`` per distinct number of
    units, in increasing order of units (elements in their order within each)."""
    plan = noise_plan(entries, dp, touches)
    units = np.asarray([p.units for p in plan])
    order, parts = [], []
    for u in sorted(set(units.tolist())):
        idx = np.flatnonzero(units == u)
        order.append(idx)
        parts.append(await add_noise(s, x[idx], plan[int(idx[0])]))
    back = np.argsort(np.concatenate(order), kind="stable")
    return SharedArray.concat(parts)[back]


async def release_sums(
    s: Session,
    parts: pl.Parts,
    sums: Callable[[np.ndarray], np.ndarray],
    entries: Sequence[Entry],
    dp: DP,
    *,
    to: int | None = None,
    touches: int | None = None,
) -> np.ndarray | None:
    """The noisy ``sum over every party of sums(rows)`` (one element per entry), in real units, to
    every party (or to party ``to`` only). ``sums`` is each owner's clamped sums, float64."""
    if not isinstance(dp, DP):
        raise TypeError(f"dp= takes a protocols.dp.DP, got {type(dp).__name__}")
    scales = np.asarray([e.scale(dp.mechanism) for e in entries])
    length = len(entries)

    def rounded(a: np.ndarray) -> np.ndarray:
        v = np.asarray(sums(a), dtype=np.float64).reshape(-1)
        return np.rint(v * scales).astype(np.int64)

    bits = COUNT_BITS + 1 + math.ceil(math.log2(max(e.units(dp.mechanism) for e in entries) + 1))
    acc = await pl.int_totals(s, parts, rounded, length, bits)
    out = await SecretInt(s, await noisy(s, acc.shares, entries, dp, touches), bits + 2).reveal(to)
    return None if out is None else np.asarray(out, dtype=np.float64) / scales


def clamped(a: np.ndarray, bounds: Sequence[Bounds]) -> np.ndarray:
    """The owner's rows as a matrix, each column clamped to its bounds."""
    x = pl._as_matrix(np.asarray(a, dtype=np.float64))
    return np.clip(x, [b[0] for b in bounds], [b[1] for b in bounds])


def predicted_std(entries: Sequence[Entry], dp: DP, n: int, touches: int | None = None) -> np.ndarray:
    """The standard deviation of each entry's noise in real units, as calibrated (``n`` parties: the
    distributed Gaussian's variance is ``n`` times one draw's)."""
    from .sampling import discrete_gaussian_variance

    out = []
    for e, p in zip(entries, noise_plan(entries, dp, touches), strict=True):
        var = (
            n * float(discrete_gaussian_variance(p.sigma2())) if p.mechanism == "gaussian" else p.coins() / 4
        )
        out.append(math.sqrt(var) / e.scale(dp.mechanism))
    return np.asarray(out)


# -- linear regression by sufficient statistics


@dataclass(frozen=True)
class NoisyLinearModel:
    """``y = x . coef + intercept`` fitted on noisy sufficient statistics: ``xtx`` is the noisy
    ``X^T X`` of the rows with an intercept column first (``xtx[0, 0]`` the noisy count), ``xty``
    the noisy ``X^T y``; every figure here is public."""

    coef: np.ndarray
    intercept: float
    xtx: np.ndarray
    xty: np.ndarray

    def predict(self, x: Any) -> np.ndarray:
        return np.asarray(x, dtype=np.float64) @ self.coef + self.intercept


def regression_entries(xb: Sequence[Bounds], yb: Bounds) -> tuple[list[tuple[int, int]], list[Entry]]:
    """The upper triangle of ``Z^T Z`` for ``Z = [1, x, y]`` without ``y^T y`` (pairs, row-major), and
    each entry's bound: ``max |z_a z_b|`` over the clamped values."""
    mags = [1.0, *(magnitude(b) for b in xb), magnitude(yb)]
    v = len(mags)
    pairs = [(a, b) for a in range(v) for b in range(a, v) if (a, b) != (v - 1, v - 1)]
    return pairs, [Entry(1.0, count=True) if a == b == 0 else Entry(mags[a] * mags[b]) for a, b in pairs]


async def linear_regression(
    s: Session,
    x: Any,
    y: Any,
    *,
    dp: DP,
    bounds: Any,
    y_bounds: Bounds,
    ridge: float = 0.0,
    to: int | None = None,
) -> NoisyLinearModel | None:
    """Least squares of ``y`` on the columns of ``x`` over every party's rows, differentially private by
    sufficient-statistics perturbation. ``x``, ``y`` as ``regression.linear_regression`` takes them on
    owner-private rows; ``bounds`` the public ``(lo, hi)`` of the features (one pair, or one per
    column) and ``y_bounds`` the target's, which every owner clamps its rows to.

    Released with noise, under the one ``dp``: the ``(d + 1)(d + 2) / 2`` entries of ``X^T X`` (an
    intercept column of ones first: the count and the column sums among them) and the ``d + 1`` of
    ``X^T y``; entry ``(a, b)`` moves by at most ``max|x_a| max|x_b|`` when a row is added or removed.
    The coefficients are then solved in the clear, ``(X^T X + ridge I) beta = X^T y`` (the ridge
    spares the intercept; least squares when the noisy matrix is singular): post-processing, free.
    """
    from ..apps.regression import _xy_parts

    parts = await _xy_parts(s, x, y)
    d = pl.columns_of(parts, False) - 1
    if d < 1:
        raise ValueError("linear regression needs rows of at least one feature and a target")
    xb = column_bounds(bounds, d)
    yb = column_bounds(y_bounds, 1)[0]
    pairs, entries = regression_entries(xb, yb)
    ia = np.asarray([a for a, _ in pairs])
    ib = np.asarray([b for _, b in pairs])

    def sums(a: np.ndarray) -> np.ndarray:
        z = clamped(a, [*xb, yb])
        z = np.column_stack([np.ones(z.shape[0]), z])
        gram = np.zeros((d + 2, d + 2))
        for i in range(0, z.shape[0], pl.CHUNK):
            gram += z[i : i + pl.CHUNK].T @ z[i : i + pl.CHUNK]
        return gram[ia, ib]

    out = await release_sums(s, parts, sums, entries, dp, to=to)
    if out is None:
        return None
    return solve(out, d, ridge)


def solve(released: np.ndarray, d: int, ridge: float = 0.0) -> NoisyLinearModel:
    """The model from the released upper triangle of ``[1, x, y]^T [1, x, y]`` (without ``y^T y``)."""
    v = d + 2
    full = np.zeros((v, v))
    k = 0
    for a in range(v):
        for b in range(a, v):
            if (a, b) == (v - 1, v - 1):
                continue
            full[a, b] = full[b, a] = released[k]
            k += 1
    xtx, xty = full[: d + 1, : d + 1], full[: d + 1, d + 1]
    reg = xtx + ridge * np.diag([0.0] + [1.0] * d)
    beta = np.linalg.lstsq(reg, xty, rcond=None)[0]
    return NoisyLinearModel(beta[1:], float(beta[0]), xtx, xty)


__all__ = [
    "Entry",
    "NoisyLinearModel",
    "column_bounds",
    "linear_regression",
    "noisy",
    "predicted_std",
    "release_sums",
    "scale_for",
    "solve",
]
