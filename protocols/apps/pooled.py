"""Statistics from per-party summaries: each owner summarises its rows locally, MPC combines the summaries.

Every function of ``stats`` and ``regression.linear_regression`` takes this path when its data is
owner-private (a party's own array, a ``Private``, or a list of them): whatever one party's rows
determine is computed by that party in float64, at numpy speed, and only the combination across
parties runs in MPC. The cost of the MPC part depends on the number of parties ``P`` and columns
``d``, never on the rows.

**What each owner inputs** (one fixed-point vector per party, one input round each):

* ``count``: its row count ``n_j``; ``total``: its column sums; ``histogram``: its bin counts;
* ``mean``: ``n_j`` and its column means ``m_j``;
* second moments (``variance``, ``covariance``, ``correlation``, linear regression): ``n_j``, ``m_j`` and
  its *population* co-moments ``C_j = (X_j - m_j)^T (X_j - m_j) / n_j`` (only the entries needed),
  each computed in two passes in float64 (centred first: no cancellation);
* ``mean_where``: the number of its flagged rows and the means of the other columns over them.

**The combination** is Chan, Golub and LeVeque's parallel update, done for all parties at once and
written so that nothing grows with the row count:

* the weights ``w_j = n_j / N`` and ``u_j = n_j / (N - ddof)`` (``N = sum n_j``, secret) come from a
  normalized division (``numeric.ratio_steps``), relatively precise (about ``2^-18``) and bounded by 2;
* the mean is ``m = sum_j w_j m_j``;
* with ``delta_j = m_j - m``, the co-moments are ``sum_j u_j (C_j + delta_j delta_j^T)``.

Every input is of the magnitude of the data's own means and (co)variances, whatever ``N``: the
combination cannot overflow where the result itself fits. (Row-level fixed-point sums of squares
overflow ``2^43`` at about 10^6 rows of values near 3,000; here, ``N`` enters only through the
weights.) Counts must stay below ``2^43``.

**What is revealed**: the declared result only. Unlike the row-level path, not even the row counts
leave the owners: ``N`` and each ``n_j`` stay secret (``count`` reveals ``N``, by definition). The
public metadata of each party's data, its column count, is announced (``private.owned``). What a
cheating owner can do is what it could do with rows: input a summary of any data it likes (or of
no data set at all, e.g. a negative variance, which gives a meaningless result); a party that
deviates in the combination itself is caught by the MAC checks like everywhere else.

Cost, ``P`` parties, ``q`` second-moment entries: ``2P`` normalized divisions, ``P d`` products for the
``u_j delta_j`` and one truncation per output; in total a few thousand random bits and triples for
the fraud statistics example, against about ``N (m + 1) (k + 41)`` bits for a row-level histogram.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .. import fixedpoint as fx
from ..comparison import bit_decompose_steps, trunc_steps
from ..fixedpoint import FixedFormat
from ..online import Session
from ..private import Private, owned
from ..rounds import (
    Mul,
    Steps,
    one_minus,
    parallel,
    pow2,
    run,
    suffix_prods,
    sum_groups,
    weighted_rows,
)
from ..sectypes import SecretInt, _Secret
from ..shares import SharedArray
from .numeric import ratio_steps, tile_rows
from .table import ParameterMismatch, Table, as_rows, pick

__all__ = [
    "Parts",
    "local_parts",
    "moment_pairs",
    "pooled_steps",
    "select",
    "summaries",
]

Parts = list[Private | None]
CHUNK = 1 << 16  # rows per block of the owners' local passes: memory stays O(rows x columns)


async def local_parts(s: Session, data: Any) -> tuple[Parts, bool] | None:
    """``data`` as every party's owner-private rows, and whether the data is one column (``vector``);
    ``None`` when it is already secret (a ``Table`` or a secret array: the row-level path).

    ``data`` may be this party's own rows (an array, ``None`` for none; one announcement round), a
    ``Private`` (one party's rows), or a list of them (``None`` entries: parties without data)."""
    if isinstance(data, Table | _Secret):
        return None
    if isinstance(data, Private):
        parts: Parts = [data]
    elif isinstance(data, (list, tuple)) and data and all(p is None or isinstance(p, Private) for p in data):
        parts = list(data)
        if all(p is None for p in parts):
            raise ParameterMismatch("no party has any rows")
    else:
        rows = as_rows(data)
        parts = list(await owned(s, rows if rows is not None and rows.size else None))
    present = [p for p in parts if p is not None]
    for p in present:
        if p.session is not s:
            raise ValueError("the private values belong to another session")
    if not present:
        raise ParameterMismatch("no party has any rows")
    shapes = {None if p.shape is None else tuple(p.shape[1:]) for p in present}
    ndims = {p.ndim for p in present}
    if None in shapes or len(shapes) != 1 or len(ndims) != 1 or ndims.pop() not in (1, 2):
        raise ParameterMismatch(
            f"the parties' rows do not have the same columns: shapes {[p.shape for p in present]}"
        )
    vector = present[0].ndim == 1
    return parts, vector


def columns_of(parts: Parts, vector: bool) -> int:
    """The public column count of the parts."""
    p = next(q for q in parts if q is not None)
    return 1 if vector else int(p.shape[1])  # type: ignore[index]


def select(parts: Parts, cols: Sequence[int]) -> Parts:
    """The given columns of every party's rows (local at each owner)."""
    idx = np.asarray(cols, dtype=np.int64)
    return [None if p is None else p[:, idx] for p in parts]


def _as_matrix(a: np.ndarray) -> np.ndarray:
    return a.reshape(-1, 1) if a.ndim == 1 else a


def _moments(x: np.ndarray, pairs: Sequence[tuple[int, int]]) -> np.ndarray:
    """``[n, means, C_ab for (a, b) in pairs]`` of the rows ``x``: two passes over blocks of rows."""
    x = _as_matrix(x)
    n, d = x.shape
    if n == 0:
        return np.zeros(1 + d + len(pairs))
    mean = np.zeros(d)
    for i in range(0, n, CHUNK):
        mean += x[i : i + CHUNK].sum(axis=0)
    mean /= n
    out = np.empty(1 + d + len(pairs))
    out[0], out[1 : 1 + d] = n, mean
    if pairs:
        gram = np.zeros((d, d))
        for i in range(0, n, CHUNK):
            c = x[i : i + CHUNK] - mean
            gram += c.T @ c
        ia = np.asarray([a for a, _ in pairs])
        ib = np.asarray([b for _, b in pairs])
        out[1 + d :] = gram[ia, ib] / n
    return out


async def summaries(
    s: Session,
    parts: Parts,
    fn: Callable[[np.ndarray], np.ndarray],
    length: int,
    *,
    fmt: FixedFormat | None = None,
    k: int | None = None,
) -> list[SharedArray]:
    """Each owner's ``fn(rows)`` (a vector of the public ``length``) secret-shared, in party order:
    fixed point (``fmt``), or integers of ``k`` bits when ``k`` is given."""
    out = []
    for p in parts:
        if p is None:
            continue
        summary = p.apply(
            lambda a: np.asarray(fn(a), dtype=np.float64 if k is None else np.int64).reshape(-1),
            shape=(length,),
            kind="float" if k is None else "int",
        )
        if p.mine and summary.value.shape != (length,):
            raise ValueError(f"a local summary of {summary.value.shape[0]} values, {length} expected")
        sec = await summary.share(fmt=fmt, k=k)
        out.append(sec.shares)
    return out


def moment_pairs(d: int, which: str) -> list[tuple[int, int]]:
    """The co-moment entries a statistic needs: ``"diag"``, ``"upper"`` (``i <= j``) or ``"none"``."""
    if which == "diag":
        return [(j, j) for j in range(d)]
    if which == "upper":
        return [(i, j) for i in range(d) for j in range(i, d)]
    return []


def moments_fn(pairs: Sequence[tuple[int, int]]) -> Callable[[np.ndarray], np.ndarray]:
    return lambda a: _moments(a, pairs)


def sums_fn(pairs: Sequence[tuple[int, int]], fmt: FixedFormat) -> Callable[[np.ndarray], np.ndarray]:
    """``[n, means, M2_ab for (a, b) in pairs]`` with the centred *sums* of products ``M2 = n C`` (not
    divided by ``n``), and ``n`` encoded so that its share is the integer ``n`` itself (``n 2^-f``)."""

    def fn(a: np.ndarray) -> np.ndarray:
        out = _moments(a, pairs)
        n, d = out[0], _as_matrix(a).shape[1]
        out[1 + d :] *= n
        out[0] = n * 2.0**-fmt.f
        return out

    return fn


def _weighted_mean_steps(w: SharedArray, mj: SharedArray, d: int, fmt: FixedFormat) -> Steps[SharedArray]:
    """``m_a = sum_j w_j m_j,a`` for the party-major ``(P * d,)`` means: the products are ordered by
    column, so that each column's ``P`` products are a group with one truncation."""
    P = w.size
    order_m = (np.arange(P)[None, :] * d + np.arange(d)[:, None]).reshape(-1)
    return (yield from fx.dot_steps(pick(w, np.tile(np.arange(P), d)), pick(mj, order_m), d, fmt))


def pooled_sums_steps(
    summ: Sequence[SharedArray], d: int, pairs: Sequence[tuple[int, int]], fmt: FixedFormat
) -> Steps[tuple[SharedArray, SharedArray]]:
    """The union's means ``(d,)`` and centred sums of products ``M2_ab = sum (x_a - m_a)(x_b - m_b)``,
    untruncated at scale ``2^(2f)``, from ``sums_fn`` summaries: ``M2 = sum_j M2_j + n_j delta_j
    delta_j^T`` with the integer ``n_j`` (exact products, no truncation). Sums keep the precision of
    the row-level path (``2^-f`` absolute on a sum, not on a mean of ``n`` terms), and overflow
    where the row-level sums would (``M2 < 2^43``); for a regression only their ratios matter."""
    P, q = len(summ), len(pairs)
    n = SharedArray.concat([pick(x, np.asarray([0])) for x in summ])  # integers
    w = yield from ratio_steps(n, n.sum().flatten(), fmt, bound_bits=2)  # n_j / N, fixed point
    mj = SharedArray.concat([pick(x, 1 + np.arange(d)) for x in summ])  # (P * d,): party-major
    mean = yield from _weighted_mean_steps(w, mj, d, fmt)
    delta = mj - tile_rows(mean, P)
    (nd,) = yield [Mul(pick(n, np.repeat(np.arange(P), d)), delta)]  # n_j delta_j, exact (scale 2^f)
    left = np.concatenate([np.arange(P) * d + a for a, _ in pairs])
    right = np.concatenate([np.arange(P) * d + b for _, b in pairs])
    (prod,) = yield [Mul(pick(nd, left), pick(delta, right))]
    m2 = SharedArray.concat([pick(x, 1 + d + np.arange(q)) for x in summ])  # (P * q,) party-major
    order_q = (np.arange(P)[None, :] * q + np.arange(q)[:, None]).reshape(-1)
    within = sum_groups(pick(m2, order_q), q).mul_public_field(pow2(m2.ctx.field, fmt.f))
    return mean, within + sum_groups(prod, q)


def pooled_steps(
    summ: Sequence[SharedArray],
    d: int,
    pairs: Sequence[tuple[int, int]],
    ddof: int,
    fmt: FixedFormat,
) -> Steps[tuple[SharedArray, SharedArray]]:
    """The union's means ``(d,)`` and co-moments ``sum (x_a - m_a)(x_b - m_b) / (N - ddof)`` for the
    ``pairs``, from the parties' ``[n_j, m_j, C_j]`` summaries (see the module docstring).

    ``N <= ddof`` (or no rows at all) gives an arbitrary result: ``N`` is secret, so nobody can check
    it without revealing it; the programs that need it public reveal ``count`` first."""
    f = summ[0].ctx.field
    P, q = len(summ), len(pairs)
    n = SharedArray.concat([pick(x, np.asarray([0])) for x in summ])
    total = n.sum().flatten()
    ratios = [ratio_steps(n, total, fmt, bound_bits=2)]  # one normalization per denominator
    if q and ddof:
        ratios.append(
            ratio_steps(n, total.add_public_field(f.from_ints([-(ddof << fmt.f)])), fmt, bound_bits=2)
        )
    got = yield from parallel(ratios)
    weights = SharedArray.concat(got)
    # the last weight is 1 minus the others (local): the weights then sum to exactly 1, so their
    # rounding errors e_j (relative 2^-(f-2)) move the mean by sum e_j (m_j - m_P), not by sum e_j m_j:
    # at 10^7 with f = 20 that is the difference between an error in the units and one in 10^-3
    head = pick(weights, np.arange(P - 1))
    last = (-head.sum().flatten()).add_public_field(f.from_ints([1 << fmt.f]))
    w = SharedArray.concat([head, last])
    mj = SharedArray.concat([pick(x, 1 + np.arange(d)) for x in summ])  # (P * d,): party-major
    mean = yield from _weighted_mean_steps(w, mj, d, fmt)
    if not q:
        return mean, SharedArray(mean.ctx, f.zeros(0), f.zeros(0))
    u = pick(weights, P + np.arange(P)) if ddof else w
    delta = mj - tile_rows(mean, P)  # (P * d,) party-major: m_j - m
    ud = yield from fx.mul_steps(pick(u, np.repeat(np.arange(P), d)), delta, fmt)
    # co-moment (a, b): sum_j u_j C_j,ab + (u_j delta_j,a) delta_j,b, one group of 2P products per pair
    c_all = SharedArray.concat([pick(x, 1 + d + np.arange(q)) for x in summ])  # (P * q,) party-major
    left, right = [], []
    for i, (a, b) in enumerate(pairs):
        left.append(np.concatenate([np.arange(P), P + np.arange(P) * d + a]))
        right.append(np.concatenate([np.arange(P) * q + i, P * q + np.arange(P) * d + b]))
    lhs = SharedArray.concat([u, ud])
    rhs = SharedArray.concat([c_all, delta])
    (prod,) = yield [Mul(pick(lhs, np.concatenate(left)), pick(rhs, np.concatenate(right)))]
    return mean, (yield from trunc_steps(sum_groups(prod, q), fmt.k + fmt.f, fmt.f, fmt.kappa))


async def pooled(
    s: Session, parts: Parts, d: int, pairs: Sequence[tuple[int, int]], ddof: int, fmt: FixedFormat
) -> tuple[SharedArray, SharedArray]:
    """``pooled_steps`` on the parties' summaries, input now."""
    summ = await summaries(s, parts, moments_fn(pairs), 1 + d + len(pairs), fmt=fmt)
    return await run(s, pooled_steps(summ, d, pairs, ddof, fmt))


def weighted_mean_steps(summ: Sequence[SharedArray], d: int, fmt: FixedFormat) -> Steps[SharedArray]:
    """``sum_j (c_j / C) v_j`` for summaries ``[c_j, v_j]`` (``C = sum c_j``): a pooled mean."""
    mean, _ = yield from pooled_steps(summ, d, [], 0, fmt)
    return mean


COUNT_BITS = 44
"""Row counts below ``2^43``: what the fixed-point weights of the pooled path allow (the bit length
of a row count, or of a sum of row-level integers, as ``int_totals`` inputs it)."""


async def int_totals(
    s: Session, parts: Parts, fn: Callable[[np.ndarray], np.ndarray], length: int, k: int
) -> SecretInt:
    """The sum over the parties of an integer vector each owner computes (counts)."""
    return SecretInt(s, added(await summaries(s, parts, fn, length, k=k)), k)


def added(summ: Sequence[SharedArray]) -> SharedArray:
    """The parties' summaries added up (local)."""
    acc = summ[0]
    for x in summ[1:]:
        acc = acc + x
    return acc


def scaled_solve_steps(
    raw: SharedArray, means: SharedArray, d: int, fmt: FixedFormat, coef_bits: int
) -> Steps[SharedArray]:
    """Least squares from the union's means and co-moments of ``[x_1 .. x_d, y]``: ``raw`` is the upper
    triangle, row-major (``(d + 1)(d + 2) / 2`` entries), at scale ``2^(2f)`` before its truncation
    (``pooled_sums_steps``; any common positive factor is fine: it cancels). Returns
    ``[coef (d); intercept]``.

    Scaling: each variable gets a secret power of two ``2^-h_a`` with ``2^-2h_a cov_aa`` in
    ``[1/4, 1)`` (from the leading bit of ``cov_aa``: one bit decomposition per variable), so the
    scaled matrix has a diagonal in ``[1/4, 1)`` and, being a covariance, every entry in ``[-1, 1]``;
    its pivots lie in ``(0, 1]`` and their reciprocals are at least 1, where fixed point is relatively
    precise, whatever the data's units. The scaling rides on the co-moments' own truncation, and
    that truncation on the elimination's: each entry of the scaled matrix is truncated only once,
    as part of the eliminated row it belongs to.

    Elimination: Crout's form of Gaussian elimination. Each entry of the eliminated row ``k`` is ONE
    sum ``A_kj - sum_l U_lk U_lj / U_ll`` truncated once (a right-looking elimination truncates every
    entry at every step: ``d^3 / 6`` truncations instead of ``d^2 / 2``); the multipliers ``U_lj / U_ll``
    are kept untruncated at scale ``2^(2f)``, so the three-factor terms are truncated together. Then
    back substitution and the unscaling ``b_a = z_a 2^(h_y - h_a)``.

    ``|coef| < 2^coef_bits`` is the caller's promise (public, as every declared range), and so are
    pivots above ``2^-15`` (the scaled matrix's condition number below about ``10^4``) and scaled
    coefficients below ``2^20``: beyond them, the result is wrong, not an error (nobody may look at
    the values to tell)."""
    fb, kappa = fmt.f, fmt.kappa
    v = d + 1
    pairs = moment_pairs(v, "upper")
    at = {p: i for i, p in enumerate(pairs)}
    # the scaling needs only the integer part of each M2_aa (its magnitude, below 2^(k-1-f)): a
    # decomposition of k - f bits, not k; an M2_aa below 1 is scaled as if it were 1
    ibits = fmt.k - fb + 1
    diag = yield from trunc_steps(
        pick(raw, np.asarray([at[(a, a)] for a in range(v)])), fmt.k + fb, 2 * fb, kappa
    )
    s_up, t_y, hi, lo = yield from _scales_steps(diag, ibits, 0, kappa)
    shift = 2 * hi
    ia = np.asarray([a for a, _ in pairs])
    ib = np.asarray([b for _, b in pairs])
    (sab,) = yield [Mul(pick(s_up, ia), pick(s_up, ib))]
    (scaled,) = yield [Mul(raw, sab)]  # the scaled matrix at scale 2^(2f + shift), |entries| <= 1
    up = pow2(scaled.ctx.field, shift - fb)  # from the products' scale 2^(3f) to the matrix's
    wide = 2 * fb + shift + 2  # |U_kj| <= 1 at scale 2^(2f + shift): one truncation per entry

    def entry(a: int, b: int) -> SharedArray:
        return pick(scaled, np.asarray([at[(min(a, b), max(a, b))]]))

    u_rows: list[SharedArray] = []  # U_k: columns k .. d-1, then the right-hand side (scale 2^f)
    w_rows: list[SharedArray] = []  # U_k[1:] / U_kk, untruncated (scale 2^(2f)), |.| < 2^8
    for k in range(d):
        cols = list(range(k, d)) + [d]
        base = SharedArray.concat([entry(k, j) for j in cols])
        if k:
            xs, ys = [], []
            for j in cols:
                for ll in range(k):
                    xs.append(pick(w_rows[ll], np.asarray([k - ll - 1])))
                    ys.append(pick(u_rows[ll], np.asarray([j - ll if j < d else d - ll])))
            (prod,) = yield [Mul(SharedArray.concat(xs), SharedArray.concat(ys))]
            base = base - sum_groups(prod, len(cols)).mul_public_field(up)
        uk = yield from trunc_steps(base, wide, fb + shift, kappa)
        u_rows.append(uk)
        inv = yield from _pivot_reciprocal_steps(pick(uk, np.asarray([0])), fb, kappa)
        (wk,) = yield [Mul(pick(uk, np.arange(1, len(cols))), tile_rows(inv, len(cols) - 1))]
        w_rows.append(wk)
    # back substitution: z_k = W_k,rhs - sum_{j > k} W_kj z_j, one truncation each (scale 2^(3f))
    zbits = 3 * fb + 22
    one_f = np.asarray([1 << fb], dtype=np.int64)
    z: list[SharedArray | None] = [None] * d
    for k in reversed(range(d)):
        wk = w_rows[k]
        rhs = pick(wk, np.asarray([d - k - 1])) * one_f
        if k == d - 1:
            z[k] = yield from trunc_steps(rhs, zbits, 2 * fb, kappa)
            continue
        later = SharedArray.concat([z[j] for j in range(k + 1, d)])  # type: ignore[misc]
        (prod,) = yield [Mul(pick(wk, np.arange(d - k - 1)), later)]
        z[k] = yield from trunc_steps(rhs - prod.sum().flatten(), zbits, 2 * fb, kappa)
    zs = SharedArray.concat(z)  # type: ignore[arg-type]
    (zs_up,) = yield [Mul(zs, pick(s_up, np.arange(d)))]
    (zst,) = yield [Mul(zs_up, tile_rows(pick(t_y, np.asarray([d])), d))]
    coef = yield from trunc_steps(zst, coef_bits + fb + hi - lo + 2, hi - lo, kappa)
    mx = pick(means, np.arange(d))
    dot = yield from fx.dot_steps(mx, coef, 1, fmt)
    icpt = pick(means, np.asarray([d])) - dot
    return SharedArray.concat([coef, icpt])


def _scales_steps(
    x: SharedArray, k: int, fb: int, kappa: int
) -> Steps[tuple[SharedArray, SharedArray, int, int]]:
    """Powers of two that bring each ``x >= 0`` (``k``-bit, scale ``2^fb``) into ``[1/4, 1)`` when
    applied twice: ``x 2^-2h`` with ``h`` from the leading base-4 digit of ``x``. Returns the integers
    ``2^(hi - h)`` and ``2^(h - lo)`` and the public ``hi``, ``lo`` (the range of ``h``).

    A bit decomposition, one OR per pair of bits, and suffix products over the ``k / 2`` digits: the
    position of the leading *digit* is all a square-root scaling needs (a general normalization
    finds the leading bit and handles a sign: more products)."""
    n = x.size
    bits = yield from bit_decompose_steps(x, k, kappa)  # rows 0 .. k-2 the magnitude (x >= 0)
    r = k - 1
    t_count = (r + 1) // 2
    paired = [t for t in range(t_count) if 2 * t + 1 < r]
    ev = np.concatenate([2 * t * n + np.arange(n) for t in paired])
    od = np.concatenate([(2 * t + 1) * n + np.arange(n) for t in paired])
    (both,) = yield [Mul(pick(bits, ev), pick(bits, od))]
    digits = pick(bits, ev) + pick(bits, od) - both  # OR of the digit's two bits
    if len(paired) < t_count:  # a last digit of one bit
        digits = SharedArray.concat([digits, pick(bits, (r - 1) * n + np.arange(n))])
    z = yield from suffix_prods(one_minus(digits), n)  # z_t = 1 iff no digit >= t is set
    # leading digit t: x in [2^(2t - fb), 2^(2t + 2 - fb)), h = ceil((2t + 2 - fb) / 2)
    hs = [-((fb - 2 - 2 * t) // 2) for t in range(t_count)]
    hi, lo = max(hs), min(hs)

    def table(values: list[int], at_zero: int) -> SharedArray:
        # sum_t [leading digit = t] values[t] = sum_t z_t (values[t-1] - values[t]) + values[T-1],
        # with values[-1] := at_zero (z_0 = 1 iff x = 0)
        prev = [at_zero, *values[:-1]]
        weights = [prev[t] - values[t] for t in range(t_count)]
        return weighted_rows(z, n, weights).add_public_field(x.ctx.field.from_ints([values[-1]]))

    s_up = table([1 << (hi - h) for h in hs], 1 << (hi - lo))  # x = 0: as the lowest digit
    t_y = table([1 << (h - lo) for h in hs], 1)
    return s_up, t_y, hi, lo


def _pivot_reciprocal_steps(p: SharedArray, fb: int, kappa: int) -> Steps[SharedArray]:
    """``1 / p`` for a pivot ``p`` in ``(2^-15, 1]`` (scale ``2^fb``): a normalization over ``fb + 2``
    bits (not ``fmt.k``), Goldschmidt at ``fb + 8`` bits, one product and a narrow truncation."""
    kn, prec = fb + 2, fb + 8
    nm = yield from fx.norm_steps(p, kn, kappa)
    v = nm.table(1 << kn, [1 << (kn - 1 - i) for i in range(kn - 1)])  # p v in [2^(kn-1), 2^kn)
    (c,) = yield [Mul(p, v)]
    d = c.mul_public_field(pow2(p.ctx.field, prec - kn))  # in [2^(prec-1), 2^prec)
    w = yield from fx.goldschmidt_steps(d, prec, fx._iters(fb + 6), kappa)  # 2^(2 prec) / d
    (vw,) = yield [Mul(v, w)]
    # 1 / p_raw = v w 2^-(prec + kn): the result at scale 2^fb is 2^(2 fb) / p_raw, below 2^(fb + 15)
    shift = prec + kn - 2 * fb
    return (yield from trunc_steps(vw, fb + 15 + shift + 2, shift, kappa))
