"""Numerical building blocks the applications share, written as step generators (see ``rounds``).

Why these and not the plain ``SecretFix`` operators: fixed point has *absolute* resolution ``2^-f``,
so ``a * (1 / b)`` loses relative precision whenever ``1 / b`` is small (``b = 10^4`` leaves
``1 / b`` about 7 significant bits at ``f = 20``). Statistics divide by large sums all the time, so

* ``ratio_steps`` computes ``a / b`` for ``b > 0`` with a *public* bound ``|a / b| < 2^T`` at
  relative precision: both are multiplied by the same secret power of two ``v`` that brings ``b``
  into ``[2^(k-1), 2^k)`` (``fixedpoint.norm_steps``: the leading bit of ``b``), cut to ``P`` bits,
  and ``(a v) / (b v)`` is a division by a number in ``[1/2, 1)``: a Goldschmidt reciprocal and one
  product. The bound keeps ``a v`` (below ``2^(k+T)``) inside what a truncation may handle.
* ``ltz_offsets_steps`` gives ``[a + o < 0]`` for several public offsets ``o`` from ONE masked opening
  of ``a``: the comparison protocol (Catrina and de Hoogh, as ``comparison.ltz_steps``) opens
  ``c = a + 2^(k-1) + r`` and then compares ``c mod 2^m`` with the secret low bits of ``r``; for
  ``a + o`` the opened value is simply ``c + o``, so only that bitwise comparison is repeated, each
  time with a fresh random sign and multiplier (Toft's trick: each run reveals one uniformly random
  bit). The mask bits, ``k + 41`` per element, are drawn once instead of once per offset: a clamp to
  ``[lo, hi]`` costs about a third less preprocessing than two comparisons. In a session that
  compares in the binary domain (``comparison="binary"`` or ``"auto"`` with binary material) the
  mask is ONE loose edaBit and each offset costs ``comparison_binary.ltz_steps``' circuit and a
  daBit (``comparison_binary.ltz_offsets_steps``): no field triple or random bit at all.
* ``pair_sums`` gives ``sum_r x[r, i] x[r, j]`` for a list of column pairs with ONE truncation per
  sum (not per product): the products of one pair are gathered contiguously and summed before the
  truncation (``fixedpoint.dot_steps``), all pairs in one round.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .. import fixedpoint as fx
from ..comparison import RangeError, _bit_lt_public, check_bits, domain_of, max_bits, trunc_steps
from ..comparison_binary import loose_fits
from ..comparison_binary import ltz_offsets_steps as binary_ltz_offsets_steps
from ..fixedpoint import FixedFormat
from ..rounds import (
    Bits,
    Mul,
    Open,
    Randoms,
    Steps,
    Trunc,
    flat,
    inv_pow2,
    masks,
    one_minus,
    parallel,
    pow2,
    public_mod2m,
    rows,
)
from ..shares import SharedArray
from .table import pick

__all__ = ["ltz_offsets_steps", "pair_sums_steps", "ratio_steps", "tile_rows"]


def tile_rows(x: SharedArray, n: int) -> SharedArray:
    """A ``(d,)`` vector repeated as ``n`` rows: the flat ``(n * d,)`` array ``x[r * d + j] = x[j]``."""
    return pick(x, np.tile(np.arange(x.size), n))


def pair_sums_steps(
    x: SharedArray, rows: int, cols: int, pairs: Sequence[tuple[int, int]], fmt: FixedFormat
) -> Steps[SharedArray]:
    """``sum_r x[r, i] x[r, j]`` for each ``(i, j)`` in ``pairs``, ``x`` a flat ``(rows, cols)`` fixed-point
    matrix: ``rows * len(pairs)`` products in one round, then one truncation per sum (2 rounds)."""
    r = np.arange(rows)
    ia = np.concatenate([r * cols + i for i, _ in pairs]) if pairs else np.zeros(0, dtype=np.int64)
    ib = np.concatenate([r * cols + j for _, j in pairs]) if pairs else np.zeros(0, dtype=np.int64)
    return (yield from fx.dot_steps(pick(x, ia), pick(x, ib), len(pairs), fmt))


def _goldschmidt_iters(bits: int) -> int:
    """Iterations of Goldschmidt's method for ``2^-bits`` (the error exponent 3.54 doubles per step)."""
    return max(1, math.ceil(math.log2(bits / 3.54)))


def ratio_steps(a: SharedArray, b: SharedArray, fmt: FixedFormat, bound_bits: int = 1) -> Steps[SharedArray]:
    """``a / b`` elementwise for fixed-point ``a`` and ``b > 0`` with ``|a / b| < 2^bound_bits`` (public);
    a one-element ``b`` divides every element of ``a`` (normalized and inverted once).

    Relative error about ``2^-(f-2)`` whatever the magnitudes (see the module docstring); absolute
    ``2^-f`` at least, as every fixed-point result. ``b <= 0`` or a ratio beyond the bound gives an
    arbitrary result (the bound is the caller's promise, as every declared range here). Rounds: the
    normalization (about 15), two truncations, the reciprocal (8) and a product (2).
    """
    k, f, kappa = fmt.k, fmt.f, fmt.kappa
    field = a.ctx.field
    top = max_bits(field, kappa)
    p = min(40, f + 8, (top - 3 - bound_bits) // 2)  # 8 guard bits beyond the resolution
    if p < f + 6:
        raise RangeError(
            f"a ratio bounded by 2^{bound_bits} needs {f + 6} bits of precision, the field leaves {p}"
        )
    check_bits(field, k + 2 + bound_bits, kappa, "ratio numerator")
    a, b = flat(a), flat(b)
    one = b.size == 1 and a.size != 1  # one denominator for all: normalized and inverted once
    nm = yield from fx.norm_steps(b, k, kappa)
    v = nm.table(1 << k, [1 << (k - 1 - i) for i in range(k - 1)])  # b v in [2^(k-1), 2^k)
    bv, av = yield [Mul(b, v), Mul(a, tile_rows(v, a.size) if one else v)]
    d, num = yield [Trunc(bv, k + 2, k - p, kappa), Trunc(av, k + 2 + bound_bits, k - p, kappa)]
    w = yield from fx.goldschmidt_steps(d, p, _goldschmidt_iters(f + 6), kappa)  # 2^(2p) / d
    (q,) = yield [Mul(num, tile_rows(w, a.size) if one else w)]
    return (yield from trunc_steps(q, 2 * p + bound_bits + 3, 2 * p - f, kappa))


def ltz_offsets_steps(
    a: SharedArray, k: int, offsets: Sequence[int], kappa: int = 40
) -> Steps[list[SharedArray]]:
    """``[a + o < 0]`` (shared bits, flat) for each public integer offset ``o``; every ``a + o`` must be a
    ``k``-bit signed value. One opening, then the bitwise comparisons of all offsets in parallel.

    Uses ``comparison._bit_lt_public`` (the bitwise ``[c' < r']`` of ``ltz_steps``): the offsets
    change only the public operand ``c'``; fresh ``S`` and ``rho`` per offset keep each revealed bit
    uniform, so the openings of this function reveal what those of separate ``ltz_steps`` would.
    """
    f, ctx = a.ctx.field, a.ctx
    check_bits(f, k, kappa, "comparison")
    a = flat(a)
    n, t = a.size, len(offsets)
    if n == 0 or t == 0:
        return [a for _ in offsets]
    if domain_of(None) == "binary" and loose_fits(f, ctx.n, k, kappa):
        return (yield from binary_ltz_offsets_steps(a, k, [int(o) for o in offsets]))
    m, h = k - 1, kappa + 1
    bits, rho = yield [Bits((m + h + t) * n), Randoms(t * n)]
    r_low, r = masks(bits, n, m, m + h)
    b = a.add_public_field(pow2(f, k - 1))
    (c,) = yield [Open(b, r)]

    def one(j: int) -> Steps[SharedArray]:
        o = int(offsets[j])
        cj = f.add(c, f.from_ints([o])) if o else c  # b + o + r: no wrap, as a + o is k-bit
        bj = b.add_public_field(f.from_ints([o])) if o else b
        sign_bit = rows(bits, n, m + h + j, m + h + j + 1)
        rho_j = rows(rho, n, j, j + 1)
        borrow = yield from _bit_lt_public(cj, rows(bits, n, 0, m), sign_bit, rho_j, m)
        cm = public_mod2m(ctx, cj, m)
        high = (bj + r_low - borrow.mul_public_field(pow2(f, m))).add_public_field(f.neg(cm))
        return one_minus(high.mul_public_field(inv_pow2(f, m)))

    return (yield from parallel([one(j) for j in range(t)]))
