"""Fixed-point arithmetic on shared field elements (Catrina and Saxena, "Secure computation with
fixed-point numbers", FC 2010), and the functions logistic regression and statistics need.

A real ``v`` is represented by the integer ``round(v * 2^f)``, a ``k``-bit signed value: the format
``FixedFormat(k, f)``. The default ``k = 64, f = 20`` over ``p = 2^127 - 1`` gives magnitudes below
``2^43`` (about 8.8e12) with resolution ``2^-20`` (about 1e-6). A product of two such values has up to
``k + f`` significant bits before it is truncated by ``f``; the truncation masks it with ``kappa = 40``
extra random bits, so ``k + f + kappa`` must fit below ``log2 p``: ``84 + 40 < 126``. p61 has no room
for any useful fixed-point format; ``FixedFormat.check`` says so.

Error model. Every truncation is probabilistic: it rounds up with probability equal to the dropped
fraction, so it adds an error below one unit in the last place (ulp, ``2^-f``). So multiplication
is exact up to 1 ulp. The functions below reach, inside their declared ranges, an error of at most
``2^-(f-2) * max(1, |result|)``: relative where ``|result| >= 1``, absolute below that (a fixed-point
result below 1 has only ``f`` bits, so a relative bound there would be a lie). Division ``x / y`` is
``x * (1/y)``, so it adds ``|x|`` times the error of ``1/y``; for large ``|x|`` prefer dividing by a
public number (``mul_public``, which scales the constant to keep full precision).

How the non-linear functions work (each one's round count is fixed, whatever the array size):

* Normalization (for ``reciprocal`` and ``sqrt``): the two's complement bits of ``x``, the bits of
  ``|x| - [x < 0]`` by XOR with the sign, and their suffix-OR (suffix products) give a one-hot vector
  ``h`` of the leading bit position ``i``. Any public function of ``i`` is then a linear combination
  of ``h`` (``Norm.table``): the normalizer ``v = 2^(k-1-i)``, with ``d = |x| v / 2^k`` in
  ``[1/2, 1]``, and the output scale ``2^(2f-1-i)`` (reciprocal) or ``2^((i+1+f)/2)`` (square root,
  an irrational factor for odd ``i``: just a table entry). ``x = -1 ulp`` and powers of two for
  negative ``x`` lead to ``d = 1`` exactly, which the approximations below cover.
* ``reciprocal``: Goldschmidt's iteration on ``d`` from the linear start ``2.9142 - 2d`` (error at most
  0.0858), error squared per iteration, at ``P`` bits of internal precision; then the output scale.
* ``sqrt``: a Chebyshev polynomial for ``sqrt(d)`` on ``[1/2, 1]``, times the table factor. ``sqrt`` of
  a negative value is 0.
* ``exp``: ``e^x = 2^y`` with ``y = x log2 e`` split by its bits into an integer ``a`` and a fraction
  ``b``: ``2^b`` is a polynomial, ``2^a`` a table lookup on the one-hot vector (``rounds.demux``) of
  the low integer bits and the sign, which also saturates at the top of the range and goes to 0
  below ``2^-(f+4)``; an OR of the remaining high bits catches ``|y|`` beyond the table.
* ``sigmoid``: ``1 / (1 + e^-|x|)`` with ``e^-|x|`` from the same parts (the bits of ``y`` give
  ``2^-|y|`` directly: for positive ``y`` it is ``2^(~a) 2^(1-b)``), a Goldschmidt reciprocal on
  ``[1/2, 1]`` without normalization, and the sign applied through the iteration.

All functions are step generators (see ``rounds``); ``sectypes`` runs them. The polynomial
coefficients are fitted here in plain numpy (Chebyshev interpolation) from the target precision.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.polynomial import Chebyshev, Polynomial

from .comparison import KAPPA, RangeError, bit_decompose_steps, check_bits, max_bits, trunc_steps
from .field import PrimeField
from .rounds import (
    Mul,
    Steps,
    Trunc,
    compose_bits,
    demux,
    one_minus,
    or_rows,
    parallel,
    pow2,
    rows,
    suffix_prods,
    sum_groups,
    tile,
    weighted_rows,
    xor_from_product,
)
from .shares import SharedArray

LOG2E = math.log2(math.e)


@dataclass(frozen=True)
class FixedFormat:
    """``k``-bit signed fixed point with ``f`` fractional bits and ``kappa`` bits of statistical security."""

    k: int = 64
    f: int = 20
    kappa: int = KAPPA

    def check(self, field: PrimeField) -> None:
        """Raise ``RangeError`` unless products (``k + f`` bits) can be truncated safely in ``field``."""
        if not 0 < self.f < self.k:
            raise RangeError(f"fixed point needs 0 < f < k, got k = {self.k}, f = {self.f}")
        check_bits(field, self.k + self.f, self.kappa, f"fixed-point products (k + f = {self.k + self.f})")

    @property
    def max_abs(self) -> float:
        """The largest magnitude representable: just below ``2^(k-1-f)``."""
        return float(2.0 ** (self.k - 1 - self.f))

    def ulp(self) -> float:
        return float(2.0**-self.f)


# ---------------------------------------------------------------------------------------- encoding
def encode(values: object, fmt: FixedFormat) -> np.ndarray:
    """Reals to fixed-point integers (int64 when ``k <= 64``); ``RangeError`` outside the format."""
    arr = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise RangeError("fixed-point input holds NaN or infinity")
    scaled = np.rint(arr * 2.0**fmt.f)
    if scaled.size and float(np.max(np.abs(scaled))) >= 2.0 ** (fmt.k - 1):
        bad = float(arr.reshape(-1)[int(np.argmax(np.abs(scaled)))])
        raise RangeError(
            f"value {bad!r} is outside the fixed-point range +-2^{fmt.k - 1 - fmt.f} "
            f"(k = {fmt.k}, f = {fmt.f})"
        )
    if fmt.k <= 64:
        return scaled.astype(np.int64)
    return np.array([int(v) for v in scaled.reshape(-1)], dtype=object).reshape(arr.shape)


def decode(ints: np.ndarray, fmt: FixedFormat) -> np.ndarray:
    """Fixed-point integers (int64 or Python ints) to float64 reals."""
    arr = np.asarray(ints)
    if arr.dtype == object:
        arr = np.array([float(v) for v in arr.reshape(-1)], dtype=np.float64).reshape(arr.shape)
    return arr.astype(np.float64) / 2.0**fmt.f


def check_range(ints: np.ndarray, k: int, what: str) -> None:
    """``RangeError`` if an opened result left its declared ``k``-bit range (it overflowed)."""
    arr = np.asarray(ints)
    if not arr.size:
        return
    lo, hi = min(arr.reshape(-1).tolist()), max(arr.reshape(-1).tolist())
    if lo < -(2 ** (k - 1)) or hi >= 2 ** (k - 1):
        bad = lo if lo < -(2 ** (k - 1)) else hi
        raise RangeError(f"{what} overflowed its declared {k}-bit range (an opened value is {bad})")


# ---------------------------------------------------------------------------------------- products
def mul_steps(x: SharedArray, y: SharedArray, fmt: FixedFormat) -> Steps[SharedArray]:
    """``x * y`` for fixed-point ``x``, ``y``: a Beaver product, then truncation by ``f``. 2 rounds."""
    (z,) = yield [Mul(x, y)]
    return (yield from trunc_steps(z, fmt.k + fmt.f, fmt.f, fmt.kappa))


def dot_steps(xs: SharedArray, ys: SharedArray, groups: int, fmt: FixedFormat) -> Steps[SharedArray]:
    """Sums of products in ``groups`` contiguous equal-size groups: ONE truncation per sum, not per
    product. The sums must fit the format (as any result must)."""
    (z,) = yield [Mul(xs, ys)]
    return (yield from trunc_steps(sum_groups(z, groups), fmt.k + fmt.f, fmt.f, fmt.kappa))


def public_scale(
    c: np.ndarray, fmt: FixedFormat, field: PrimeField, room: int = 0
) -> tuple[np.ndarray, int, int]:
    """Integers ``C ~ c 2^F`` and ``(F, K)`` for multiplying a secret by public reals ``c``.

    ``F`` is as large as the field allows: the product ``x C`` (``|x| < 2^(k-1)``) must be a
    ``K``-bit value with ``K + kappa`` inside the field, so a small constant gets many fractional bits
    (dividing by a public count keeps full relative precision) and a large one fewer. ``room``: keep
    ``K`` that many bits below the largest (2 lets the truncation's mask take a loose edaBit in an
    ``auto`` session, ``rounds.loose_high_width``, for 2 bits of ``C``'s precision).
    """
    kmax = max_bits(field, fmt.kappa) - room
    top = float(np.max(np.abs(c))) if c.size else 0.0
    f_bits = kmax - fmt.k - (math.floor(math.log2(top)) + 1 if top > 0 else 0)
    while f_bits > 0:
        ints = np.rint(c * 2.0**f_bits)
        k_prod = fmt.k + int(max(1, int(np.max(np.abs(ints))) if ints.size else 1)).bit_length()
        if k_prod <= kmax:
            f_bits = min(f_bits, k_prod - 1)
            ints = np.rint(c * 2.0**f_bits)
            return np.array([int(v) for v in ints.reshape(-1)], dtype=object), f_bits, k_prod
        f_bits -= 1
    raise RangeError(f"public factor {top!r} is too large for the fixed-point format k = {fmt.k}")


def mul_public_steps(x: SharedArray, c: np.ndarray, fmt: FixedFormat, room: int = 0) -> Steps[SharedArray]:
    """``x * c`` for public reals ``c`` (one value or one per element). Integer factors are free.
    ``room``: as ``public_scale``'s."""
    c = np.asarray(c, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(c)):
        raise RangeError("public factor holds NaN or infinity")
    if np.all(c == np.rint(c)) and (not c.size or float(np.max(np.abs(c))) < 2.0**62):
        return x * c.astype(np.int64) if c.size > 1 else x * int(c[0])
    ints, f_bits, k_prod = public_scale(c, fmt, x.ctx.field, room)
    f = x.ctx.field
    factor = f.from_ints(ints.tolist())
    return (yield from trunc_steps(x.mul_public_field(factor), k_prod, f_bits, fmt.kappa))


# ---------------------------------------------------------------------------------------- polynomials
@lru_cache(maxsize=64)
def fit(name: str, bits: int) -> tuple[float, ...]:
    """Monomial coefficients (in ``t`` on ``[-1, 1]``) of the lowest-degree Chebyshev interpolant of
    the named function with maximum error below ``2^-bits`` (checked on a fine grid)."""
    fns: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "sqrt": lambda t: np.sqrt(0.75 + 0.25 * t),  # sqrt(d), d = (t + 3) / 4 in [1/2, 1]
        "exp2": lambda t: 2.0 ** ((t + 1) / 2),  # 2^b, b = (t + 1) / 2 in [0, 1]
        "exp2r": lambda t: 2.0 ** ((1 - t) / 2),  # 2^(1 - b)
    }
    fn = fns[name]
    grid = np.linspace(-1.0, 1.0, 20001)
    for deg in range(2, 24):
        poly = Chebyshev.interpolate(fn, deg).convert(kind=Polynomial)
        if float(np.max(np.abs(poly(grid) - fn(grid)))) < 2.0**-bits:
            return tuple(float(c) for c in poly.coef)
    raise RangeError(f"no polynomial for {name} reaches 2^-{bits}")


def poly_steps(
    t: SharedArray, polys: Sequence[Sequence[float]], p: int, kappa: int = KAPPA
) -> Steps[list[SharedArray]]:
    """Evaluate polynomials (monomial coefficients) at ``t``, all ``P``-bit fixed point with
    ``|t| <= 1``: the powers in ``ceil(log2 deg)`` levels of (multiply, truncate), then one
    truncation of each weighted sum. ``2 ceil(log2 deg) + 1`` rounds for all the polynomials."""
    f = t.ctx.field
    deg = max(len(c) for c in polys) - 1
    powers: dict[int, SharedArray] = {1: t}
    have = 1
    while have < deg:
        new = list(range(have + 1, min(2 * have, deg) + 1))
        prods = yield [Mul(powers[have], powers[j - have]) for j in new]
        truncs = yield [Trunc(z, 2 * p + 2, p, kappa) for z in prods]
        powers.update(zip(new, truncs, strict=True))
        have = new[-1]
    sums, ks = [], []
    for coeffs in polys:
        acc = SharedArray(t.ctx, f.zeros(t.size), f.zeros(t.size))
        for j, cj in enumerate(coeffs[1:], start=1):
            cint = round(cj * 2.0**p)
            if cint:
                acc = acc + powers[j].mul_public_field(f.from_ints([cint]))
        acc = acc.add_public_field(f.from_ints([round(coeffs[0] * 2.0**p) << p]))
        sums.append(acc)
        ks.append(2 * p + 3 + max(0, math.ceil(math.log2(sum(abs(c) for c in coeffs)))))
    return (yield [Trunc(z, kz, p, kappa) for z, kz in zip(sums, ks, strict=True)])


# ---------------------------------------------------------------------------------------- normalization
@dataclass
class Norm:
    """The leading-bit information of ``k``-bit ``x``: sign bit, ``|x|`` and the suffix products
    ``z_j = [bits j.. of |x| - sign are all 0]`` from which any table of the leading position is linear."""

    sign: SharedArray
    abs_x: SharedArray
    z: SharedArray  # (k - 1, n)
    k: int
    n: int

    def table(self, at_none: int, values: Sequence[int]) -> SharedArray:
        """``sum_i h_i values[i]`` (``h`` one-hot of the leading position ``i``, ``at_none`` when
        ``|x| - sign = 0``). With ``z_{k-1} = 1``: ``values[k-2] + sum_j z_j (values[j-1] - values[j])``."""
        k, n = self.k, self.n
        prev = [at_none, *values[: k - 2]]
        weights = [prev[j] - values[j] for j in range(k - 1)]
        return weighted_rows(self.z, n, weights).add_public_field(self.z.ctx.field.from_ints([values[k - 2]]))


def norm_steps(x: SharedArray, k: int, kappa: int = KAPPA) -> Steps[Norm]:
    """Bit decomposition, XOR with the sign, suffix products: ``3 + 2 ceil(log2(k-1))`` rounds (15)."""
    n = x.size
    bits = yield from bit_decompose_steps(x, k, kappa)
    sign = rows(bits, n, k - 1, k)
    low = rows(bits, n, 0, k - 1)
    signs = tile(sign, k - 1)
    prod, xs = yield [Mul(low, signs), Mul(x, sign)]
    w = xor_from_product(low, signs, prod)  # bits of |x| - sign
    z = yield from suffix_prods(one_minus(w), n)
    return Norm(sign, x - (xs + xs), z, k, n)


def _to_precision(c: SharedArray, k: int, p: int, kappa: int) -> Steps[SharedArray]:
    """``c`` in ``[2^(k-1), 2^k]`` rescaled to ``P`` bits: ``d`` in ``[2^(P-1), 2^P]``."""
    if k > p:
        return (yield from trunc_steps(c, k + 2, k - p, kappa))
    return c.mul_public_field(pow2(c.ctx.field, p - k))


def goldschmidt_steps(
    d: SharedArray, p: int, iters: int, kappa: int = KAPPA, sign: SharedArray | None = None
) -> Steps[SharedArray]:
    """``2^P / d`` for ``P``-bit ``d`` in ``[1/2, 1]``, times ``1 - 2 sign`` if given; ``2 + 2 iters`` rounds.

    ``w = w (1 + e)``, ``e = e^2`` from ``w0 = 2.9142 - 2d`` and ``e0 = 1 - d w0``, ``|e0| <= 0.0858``:
    after ``t`` iterations the error is ``0.0858^(2^t)`` plus a few ulps of ``2^-P`` from truncation.
    """
    f = d.ctx.field
    one = f.from_ints([1 << p])
    w = (-(d + d)).add_public_field(f.from_ints([round(2.9142 * 2.0**p)]))
    reqs = [Mul(d, w)] + ([Mul(w, sign)] if sign is not None else [])
    got = yield reqs
    if sign is not None:
        w = w - (got[1] + got[1])  # the sign rides along: w' (1 + e) keeps it
    (dw,) = yield [Trunc(got[0], 2 * p + 3, p, kappa)]
    e = (-dw).add_public_field(one)
    for it in range(iters):
        last = it == iters - 1
        prods = yield [Mul(w, e.add_public_field(one))] + ([] if last else [Mul(e, e)])
        truncs = yield [Trunc(z, 2 * p + 3, p, kappa) for z in prods]
        w = truncs[0]
        if not last:
            e = truncs[1]
    return w


def _iters(bits: int) -> int:
    """Goldschmidt iterations for ``2^-bits``: the error exponent ``log2(1/0.0858) = 3.54`` doubles each."""
    return max(1, math.ceil(math.log2(bits / 3.54)))


# ---------------------------------------------------------------------------------------- functions
def _precision(fmt: FixedFormat, field: PrimeField, cap: int, what: str) -> int:
    p = min(40, (max_bits(field, fmt.kappa) - 3) // 2, cap)
    if p < fmt.f + 6:
        raise RangeError(
            f"{what} needs {fmt.f + 6} bits of internal precision, the field leaves {p} "
            f"for k = {fmt.k}, f = {fmt.f}: use a smaller k or f"
        )
    return p


def reciprocal_steps(x: SharedArray, fmt: FixedFormat) -> Steps[SharedArray]:
    """``1 / x``; ``x = 0`` gives garbage (no error: that would leak). 27 rounds for the defaults."""
    k, fb, kappa = fmt.k, fmt.f, fmt.kappa
    field = x.ctx.field
    fmt.check(field)
    p = _precision(fmt, field, max_bits(field, kappa) - 3 - 2 * fb, "reciprocal")
    check_bits(field, k + 2, kappa, "reciprocal normalization")
    nm = yield from norm_steps(x, k, kappa)
    v = nm.table(1 << k, [1 << (k - 1 - i) for i in range(k - 1)])
    u = nm.table(1 << (2 * fb), [1 << (2 * fb - 1 - i) if 2 * fb - 1 - i >= 0 else 0 for i in range(k - 1)])
    c, us = yield [Mul(nm.abs_x, v), Mul(u, nm.sign)]
    d = yield from _to_precision(c, k, p, kappa)
    r = yield from goldschmidt_steps(d, p, _iters(fb + 6), kappa)
    (wr,) = yield [Mul(r, u - (us + us))]
    return (yield from trunc_steps(wr, p + 2 * fb + 3, p, kappa))


def div_steps(x: SharedArray, y: SharedArray, fmt: FixedFormat) -> Steps[SharedArray]:
    """``x / y = x * (1/y)``: the error of ``1/y`` scaled by ``|x|``, plus 1 ulp. 29 rounds."""
    r = yield from reciprocal_steps(y, fmt)
    return (yield from mul_steps(x, r, fmt))


def sqrt_steps(x: SharedArray, fmt: FixedFormat) -> Steps[SharedArray]:
    """``sqrt(x)`` for ``x >= 0``; 0 for negative ``x``. 26 rounds for the defaults."""
    k, fb, kappa = fmt.k, fmt.f, fmt.kappa
    field = x.ctx.field
    fmt.check(field)
    q = 4  # fractional bits of the scale table: its rounding costs at most 2^-q ulp
    half = math.ceil((k - 1 + fb) / 2)
    p = _precision(fmt, field, max_bits(field, kappa) - 2 - q - half, "sqrt")
    check_bits(field, k + 2, kappa, "sqrt normalization")
    nm = yield from norm_steps(x, k, kappa)
    v = nm.table(1 << k, [1 << (k - 1 - i) for i in range(k - 1)])
    g = nm.table(0, [round(2.0 ** ((i + 1 + fb) / 2 + q)) for i in range(k - 1)])
    c, gs = yield [Mul(nm.abs_x, v), Mul(g, nm.sign)]
    d = yield from _to_precision(c, k, p, kappa)
    t = (d * 4).add_public_field(field.from_ints([-(3 << p)]))
    (root,) = yield from poly_steps(t, [fit("sqrt", fb + 8)], p, kappa)
    (o,) = yield [Mul(root, g - gs)]
    return (yield from trunc_steps(o, p + q + half + 2, p + q, kappa))


def _log2e_times(x: SharedArray, fmt: FixedFormat) -> Steps[SharedArray]:
    """``x log2(e)`` as ``x + x (log2 e - 1)``: only the second product is rounded, at as many bits as
    the field allows. The result needs ``k + 1`` bits."""
    kmax = max_bits(x.ctx.field, fmt.kappa)
    f1 = kmax - fmt.k + 1  # |x C| < 2^(k-1) 2^(F1-1): a (k + F1 - 1)-bit product
    c1 = round((LOG2E - 1) * 2.0**f1)
    t = yield from trunc_steps(x * c1, fmt.k + f1 - 1, f1, fmt.kappa)
    return x + t


Exp2Parts = tuple[SharedArray, int, SharedArray, SharedArray, list[SharedArray]]


def _exp2_parts(y: SharedArray, kb: int, fmt: FixedFormat, p: int, names: Sequence[str]) -> Steps[Exp2Parts]:
    """Bits of ``y`` (``kb``-bit, ``f`` fractional) and, in parallel: the one-hot of (low integer bits,
    sign), the OR of the high integer bits XOR sign (``|y|`` beyond the table), the polynomials."""
    fb, kappa, n = fmt.f, fmt.kappa, y.size
    bits = yield from bit_decompose_steps(y, kb, kappa)
    sign = rows(bits, n, kb - 1, kb)
    lbits = max(fmt.k - fb, fb + 5).bit_length()
    high = kb - 1 - fb - lbits
    b = compose_bits(bits, n, 0, fb)  # the fraction, f bits
    field = y.ctx.field
    t = (b * 2).mul_public_field(pow2(field, p - fb)).add_public_field(field.from_ints([-(1 << p)]))

    def beyond() -> Steps[SharedArray]:
        if high <= 0:
            return SharedArray(y.ctx, y.ctx.field.zeros(n), y.ctx.field.zeros(n))
        hb = rows(bits, n, fb + lbits, kb - 1)
        signs = tile(sign, high)
        (prod,) = yield [Mul(hb, signs)]
        return (yield from or_rows(xor_from_product(hb, signs, prod), n))

    ints = [rows(bits, n, fb + j, fb + j + 1) for j in range(lbits)]
    onehot, out, polys = yield from parallel(
        [demux([*ints, sign]), beyond(), poly_steps(t, [fit(nm, fb + 8) for nm in names], p, kappa)]
    )
    return sign, lbits, onehot, out, polys


def exp_steps(x: SharedArray, fmt: FixedFormat) -> Steps[SharedArray]:
    """``e^x``; saturates at ``2^(k-f-2)`` and above (overflow); below ``2^-(f+5)`` it is 0. 19 rounds."""
    k, fb, kappa = fmt.k, fmt.f, fmt.kappa
    field = x.ctx.field
    fmt.check(field)
    kmax = max_bits(field, kappa)
    p = _precision(fmt, field, kmax - k + fb, "exp")
    check_bits(field, k + 1, kappa, "exp")
    y = yield from _log2e_times(x, fmt)
    n = x.size
    ft = 4  # fractional bits of the negative-exponent table: its rounding costs at most 2^-ft ulp
    amax = k - fb - 2

    def tables(
        lbits: int, onehot: SharedArray, beyond: SharedArray, sign: SharedArray
    ) -> Steps[list[SharedArray]]:
        half = 1 << lbits
        ta = [1 << min(u, amax) for u in range(half)] + [0] * half
        tb = [0] * half + [_round_pow2(u - half + fb + ft) for u in range(half)]
        va, vb = weighted_rows(onehot, n, ta), weighted_rows(onehot, n, tb)
        sat = one_minus(sign).mul_public_field(pow2(field, amax)) - va  # saturate or vanish beyond
        oa, ob = yield [Mul(beyond, sat), Mul(beyond, vb)]
        return [va + oa, vb - ob]

    sign, lbits, onehot, beyond, (pw,) = yield from _exp2_parts(y, k + 1, fmt, p, ["exp2"])
    va, vb = yield from tables(lbits, onehot, beyond, sign)
    pa, pb = yield [Mul(va, pw), Mul(vb, pw)]
    ra, rb = yield [Trunc(pa, k - fb + p, p - fb, kappa), Trunc(pb, fb + ft + p + 1, p + ft, kappa)]
    return ra + rb


def _round_pow2(e: int) -> int:
    return 1 << e if e >= 0 else round(2.0**e)


def sigmoid_steps(x: SharedArray, fmt: FixedFormat) -> Steps[SharedArray]:
    """``1 / (1 + e^-x)``, accurate to about 2 ulp over the whole range. 28 rounds."""
    k, fb, kappa = fmt.k, fmt.f, fmt.kappa
    field = x.ctx.field
    fmt.check(field)
    p = _precision(fmt, field, 10**6, "sigmoid")
    check_bits(field, k + 1, kappa, "sigmoid")
    y = yield from _log2e_times(x, fmt)
    n = x.size
    sign, lbits, onehot, beyond, (p1, p2) = yield from _exp2_parts(y, k + 1, fmt, p, ["exp2", "exp2r"])
    # e^-|x| = 2^-|y|: for y < 0 it is 2^a 2^b (a = u - 2^L); for y >= 0 it is 2^(-u-1) 2^(1-b).
    # Tables carry P fractional bits; the product with a P-bit polynomial is truncated to P - 1.
    half = 1 << lbits
    t1 = [0] * half + [_round_pow2(u - half + p) for u in range(half)]
    t2 = [_round_pow2(-u - 1 + p) for u in range(half)] + [0] * half
    v1, v2 = weighted_rows(onehot, n, t1), weighted_rows(onehot, n, t2)
    o1, o2 = yield [Mul(beyond, v1), Mul(beyond, v2)]
    q1, q2 = yield [Mul(v1 - o1, p1), Mul(v2 - o2, p2)]
    (e,) = yield [Trunc(q1 + q2, 2 * p + 1, p + 1, kappa)]  # e^-|x| with P - 1 fractional bits
    d = e.add_public_field(field.from_ints([1 << (p - 1)]))  # (1 + e) / 2, P bits, in [1/2, 1]
    r = yield from goldschmidt_steps(d, p, _iters(fb + 6), kappa, sign)  # (1 - 2s) 2^P / d
    # sigma(|x|) = r / 2; sigma(x) = s + (1 - 2s) sigma(|x|)
    low = yield from trunc_steps(r, p + 3, p + 1 - fb, kappa)
    return low + sign.mul_public_field(pow2(field, fb))
