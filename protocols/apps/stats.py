"""Statistics over horizontally split data: each party holds some rows; only the declared result leaves.

Every function takes the session and ``data``, and picks its path by the type of ``data``:

* **owner-private rows** (the default): this party's own rows (a 1-d array: one column; a 2-d
  array: rows of columns; ``None``: no rows), a ``Private`` or a list of them
  (``protocols.private``). Each owner summarises its rows locally (counts, means, centred second
  moments, bin counts) and only the summaries are combined in MPC (``pooled``): the cost depends on
  the parties and columns, not on the rows, and no party's row count is revealed.
* **joint secrets** (the row-level path): a ``Table`` from ``share_table``, or a ``SecretFix``
  ``(N, d)``/``(N,)`` (a column computed from several parties' shares, vertically split data). Every
  row is a secret and each statistic is computed on them; the input protocol announced every
  party's row count.

Every party calls the function with the same public arguments. Results are revealed to every
party, or only to party ``to`` (the others get ``None``), after the MAC checks of
``Session.output``; nothing else is opened except masked values inside the sub-protocols
(statistically hiding, see ``comparison``). Results are fixed point (``FixedFormat``, default
``k = 64, f = 20``): absolute resolution about ``1e-6``, values below ``2^(k-1-f)`` (about
``8.8e12``). Inputs are checked at their owner (range, NaN); a *malicious* owner can input values
(or summaries) outside the declared range, which gives wrong results (and weakens the masking of the
openings that involve them): input range proofs are not part of this library.

Cost of the row-level path, ``N`` rows of ``d`` columns: ``mean``/``total`` need no triples (one
truncation per column for ``mean``); ``variance`` ``N d`` triples; ``covariance`` and ``correlation``
``N d (d + 1) / 2``; ``histogram`` ``N (m + 1)`` secure comparisons for ``m`` bins (a ``k``-bit
comparison costs about ``k + 41`` random bits and ``k`` triples). The pooled path: a few thousand
random bits and triples per statistic, whatever ``N`` (``docs/local.md`` has the figures).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import fixedpoint as fx
from ..fixedpoint import FixedFormat
from ..online import Session
from ..rounds import Steps, flat, run
from ..sectypes import SecretFix, SecretInt, gather
from ..shares import SharedArray
from . import pooled as pl
from .numeric import pair_sums_steps, ratio_steps, tile_rows
from .table import ParameterMismatch, Table, ensure_table, pick

__all__ = [
    "centered",
    "correlation",
    "count",
    "covariance",
    "histogram",
    "mean",
    "mean_where",
    "total",
    "variance",
]

Result = np.ndarray | float | None
COUNT_BITS = pl.COUNT_BITS


def _out(vector: bool, values: np.ndarray | None) -> Result:
    """Per-column results as numpy would give them: a float for 1-d data, an array otherwise."""
    if values is None:
        return None
    return float(np.asarray(values).reshape(-1)[0]) if vector else np.asarray(values)


def _shape_out(t: Table, values: np.ndarray | None) -> Result:
    """Per-column results as numpy would give them: a float for 1-d data, an array otherwise."""
    if values is None:
        return None
    return float(values.reshape(-1)[0]) if t.vector else values


async def count(s: Session, data: Any, *, to: int | None = None, dp: Any = None) -> int | None:
    """The total number of rows over all parties. Reveals only that total: each party inputs its own
    row count as one secret integer (the rows themselves are not input), the counts are added. With
    ``dp=protocols.dp.DP(epsilon=..., delta=...)`` (owner-private rows): the total plus noise for a
    sensitivity of one row, added inside the MPC (``protocols.dp.output``)."""
    if isinstance(data, Table):
        if dp is not None:
            raise ValueError("dp= needs owner-private rows: a Table's row count is already public")
        return data.rows if to is None or to == s.party else None
    local = await pl.local_parts(s, data)
    if local is None:
        raise TypeError("count takes rows or a Table")
    parts, _ = local

    def rows(a: np.ndarray) -> np.ndarray:
        return np.asarray([a.shape[0]])

    if dp is not None:
        from ..dp import apps as dpa

        noisy = await dpa.release_sums(s, parts, rows, [dpa.Entry(1.0, count=True)], dp, to=to)
        return None if noisy is None else int(noisy[0])
    out = await (await pl.int_totals(s, parts, rows, 1, COUNT_BITS)).reveal(to)
    return None if out is None else int(out.reshape(-1)[0])


async def total(
    s: Session,
    data: Any,
    *,
    fmt: FixedFormat | None = None,
    to: int | None = None,
    dp: Any = None,
    bounds: tuple[float, float] | None = None,
) -> Result:
    """Column sums over every party's rows. Reveals the sums. With ``dp=DP(...)`` and public
    ``bounds=(lo, hi)`` (one pair for every column, or one per column; owner-private rows): every
    owner clamps its own rows to the bounds and rounds its sums to a grid of ``max(|lo|, |hi|) /
    1,023``, so one row moves a total by at most 1,024 grid units, and noise for that is added inside
    the MPC before the totals are opened; the columns share the one ``dp`` (``protocols.dp.apps``)."""
    local = await pl.local_parts(s, data)
    if local is not None:
        parts, vector = local
        d = pl.columns_of(parts, vector)
        fmt = fmt or FixedFormat()
        if dp is None:
            summ = await pl.summaries(s, parts, lambda a: pl._as_matrix(a).sum(axis=0), d, fmt=fmt)
            return _out(vector, await SecretFix(s, pl.added(summ), fmt).reveal(to))
        from ..dp import apps as dpa

        cb = dpa.column_bounds(bounds, d)
        out = await dpa.release_sums(
            s,
            parts,
            lambda a: dpa.clamped(a, cb).sum(axis=0),
            [dpa.Entry(dpa.magnitude(b)) for b in cb],
            dp,
            to=to,
        )
        return _out(vector, out)
    _no_dp(dp)
    t = await ensure_table(s, data, fmt)
    return _shape_out(t, await t.x.sum(axis=0).reveal(to))


async def secret_mean(t: Table) -> SecretFix:
    """The column means, still secret (one truncation: the sum times the public ``1 / N``)."""
    if not t.rows:
        raise ParameterMismatch("mean of no rows")
    return await (t.x.sum(axis=0) / t.rows)


async def mean(
    s: Session,
    data: Any,
    *,
    fmt: FixedFormat | None = None,
    to: int | None = None,
    dp: Any = None,
    bounds: Any = None,
) -> Result:
    """Column means. Reveals the means only; with the row counts public (see the module docstring)
    a mean determines the sum, so this is no more private than ``total``, just the declared output.
    On owner-private rows (see ``pooled``) the row counts stay secret.

    With ``dp=DP(...)`` and public ``bounds`` (as ``total``'s; owner-private rows): the noisy column
    sums divided by the noisy count, in the clear, clamped to the bounds. The count and the sums are
    released under the one ``dp`` (``protocols.dp.apps``: they compose); the division is
    post-processing. A noisy count below 1 is taken as 1."""
    local = await pl.local_parts(s, data)
    if local is not None:
        parts, vector = local
        fmt = fmt or FixedFormat()
        if dp is not None:
            from ..dp import apps as dpa

            d = pl.columns_of(parts, vector)
            cb = dpa.column_bounds(bounds, d)

            def sums(a: np.ndarray) -> np.ndarray:
                return np.concatenate([[a.shape[0]], dpa.clamped(a, cb).sum(axis=0)])

            entries = [dpa.Entry(1.0, count=True)] + [dpa.Entry(dpa.magnitude(b)) for b in cb]
            out = await dpa.release_sums(s, parts, sums, entries, dp, to=to)
            if out is None:
                return None
            lo, hi = np.asarray(cb).T
            return _out(vector, np.clip(out[1:] / max(out[0], 1.0), lo, hi))
        m, _ = await pl.pooled(s, parts, pl.columns_of(parts, vector), [], 0, fmt)
        return _out(vector, await SecretFix(s, m, fmt).reveal(to))
    _no_dp(dp)
    t = await ensure_table(s, data, fmt)
    return _shape_out(t, await (await secret_mean(t)).reveal(to))


async def centered(t: Table, means: SecretFix | None = None) -> SecretFix:
    """``x - mean(x)`` per column, ``(N, d)``, secret: the basis of every second moment here. Centring
    first (two passes) keeps the sums of squares small and free of cancellation."""
    m = means if means is not None else await secret_mean(t)
    c = t.x.shares.flatten() - tile_rows(m.shares, t.rows)
    return SecretFix(t.session, c.reshape(t.rows, t.cols), t.fmt)


def _pairs(d: int) -> list[tuple[int, int]]:
    return [(i, j) for i in range(d) for j in range(i, d)]


def _moments_steps(c: SecretFix, pairs: list[tuple[int, int]], scale: float) -> Steps[SharedArray]:
    """``scale * sum_r c[r, i] c[r, j]`` per pair: products, one truncation per sum, the public factor."""
    n, d = c.shape
    sums = yield from pair_sums_steps(flat(c.shares), n, d, pairs, c.fmt)
    return (yield from fx.mul_public_steps(sums, np.asarray([scale]), c.fmt))


async def variance(
    s: Session,
    data: Any,
    *,
    ddof: int = 1,
    fmt: FixedFormat | None = None,
    to: int | None = None,
    dp: Any = None,
    bounds: Any = None,
) -> Result:
    """Column variances ``sum (x - mean)^2 / (N - ddof)``. Reveals the variances only (not the means,
    not the sums of squares).

    With ``dp=DP(...)`` and public ``bounds`` (as ``total``'s; owner-private rows): every owner
    clamps its values to ``[lo, hi]`` and shifts them by the public centre ``c = (lo + hi) / 2``, so
    ``z = x - c`` lies in ``[-h, h]`` with ``h = (hi - lo) / 2``. Released under the one ``dp``: the
    count ``N``, the sums ``S = sum z`` (one row moves them by ``h``) and ``Q = sum z^2`` (by ``h^2``).
    In the clear: ``(Q - S^2 / N) / (N - ddof)`` (shifting does not change a variance), clamped to
    ``[0, h^2 N / (N - ddof)]``, the range of a variance of values in ``[lo, hi]``; a noisy ``N``
    below ``ddof + 1`` is taken as ``ddof + 1``."""
    local = await pl.local_parts(s, data)
    if local is not None:
        parts, vector = local
        fmt = fmt or FixedFormat()
        d = pl.columns_of(parts, vector)
        if dp is not None:
            return _out(vector, await _dp_variance(s, parts, d, ddof, dp, bounds, to))
        _, v = await pl.pooled(s, parts, d, pl.moment_pairs(d, "diag"), ddof, fmt)
        return _out(vector, await SecretFix(s, v, fmt).reveal(to))
    _no_dp(dp)
    t = await ensure_table(s, data, fmt)
    if t.rows - ddof <= 0:
        raise ParameterMismatch(f"variance of {t.rows} rows with ddof = {ddof}")
    c = await centered(t)
    pairs = [(j, j) for j in range(t.cols)]
    v = await run(s, _moments_steps(c, pairs, 1.0 / (t.rows - ddof)))
    return _shape_out(t, await SecretFix(s, v, t.fmt).reveal(to))


async def _dp_variance(
    s: Session, parts: pl.Parts, d: int, ddof: int, dp: Any, bounds: Any, to: int | None
) -> np.ndarray | None:
    from ..dp import apps as dpa

    cb = dpa.column_bounds(bounds, d)
    lo, hi = np.asarray(cb).T
    centre, half = (lo + hi) / 2, (hi - lo) / 2

    def sums(a: np.ndarray) -> np.ndarray:
        z = dpa.clamped(a, cb) - centre
        return np.concatenate([[a.shape[0]], z.sum(axis=0), (z * z).sum(axis=0)])

    entries = (
        [dpa.Entry(1.0, count=True)]
        + [dpa.Entry(float(h)) for h in half]
        + [dpa.Entry(float(h * h)) for h in half]
    )
    out = await dpa.release_sums(s, parts, sums, entries, dp, to=to)
    if out is None:
        return None
    n = max(float(out[0]), ddof + 1.0)
    sz, q = out[1 : 1 + d], out[1 + d :]
    return np.clip((q - sz * sz / n) / (n - ddof), 0.0, half * half * n / (n - ddof))


def _no_dp(dp: Any) -> None:
    if dp is not None:
        raise ValueError("dp= needs owner-private rows (each owner clamps its own rows to the bounds)")


def _square(
    values: np.ndarray, d: int, pairs: list[tuple[int, int]], diag: float | None = None
) -> np.ndarray:
    out = np.zeros((d, d))
    for (i, j), v in zip(pairs, values, strict=True):
        out[i, j] = out[j, i] = v
    if diag is not None:
        np.fill_diagonal(out, diag)
    return out


async def covariance(
    s: Session, data: Any, *, ddof: int = 1, fmt: FixedFormat | None = None, to: int | None = None
) -> np.ndarray | float | None:
    """The ``(d, d)`` covariance matrix of the columns (``numpy.cov(x, rowvar=False, ddof=ddof)``; a
    float for one column). Reveals the matrix only."""
    local = await pl.local_parts(s, data)
    if local is not None:
        parts, vector = local
        fmt = fmt or FixedFormat()
        d = pl.columns_of(parts, vector)
        pairs = pl.moment_pairs(d, "upper")
        _, v = await pl.pooled(s, parts, d, pairs, ddof, fmt)
        cov = await SecretFix(s, v, fmt).reveal(to)
        if cov is None:
            return None
        return float(cov[0]) if vector else _square(cov, d, pairs)
    t = await ensure_table(s, data, fmt)
    if t.rows - ddof <= 0:
        raise ParameterMismatch(f"covariance of {t.rows} rows with ddof = {ddof}")
    c = await centered(t)
    pairs = _pairs(t.cols)
    v = await run(s, _moments_steps(c, pairs, 1.0 / (t.rows - ddof)))
    out = await SecretFix(s, v, t.fmt).reveal(to)
    if out is None:
        return None
    return float(out[0]) if t.vector else _square(out, t.cols, pairs)


def correlation_steps(c: SecretFix, pairs: list[tuple[int, int]]) -> Steps[tuple[SharedArray, SharedArray]]:
    """Pearson's ``r`` for the ``pairs`` (``i < j``) of centred columns ``c``, and the columns' square
    roots of their sums of squares (``sqrt(sum c^2)``, secret; regression reuses them).

    ``r = S_ij / (sqrt(S_ii) sqrt(S_jj))`` with a normalized division (``|r| <= 1``), so neither
    large nor small spreads lose precision to the fixed-point resolution.
    """
    n, d = c.shape
    fmt = c.fmt
    diag = [(j, j) for j in range(d)]
    sums = yield from pair_sums_steps(flat(c.shares), n, d, diag + pairs, fmt)
    sq = pick(sums, np.arange(d))
    roots = yield from fx.sqrt_steps(sq, fmt)
    if not pairs:
        return pick(sums, np.arange(0)), roots
    ia = np.asarray([i for i, _ in pairs])
    ja = np.asarray([j for _, j in pairs])
    den = yield from fx.mul_steps(pick(roots, ia), pick(roots, ja), fmt)
    r = yield from ratio_steps(pick(sums, np.arange(d, d + len(pairs))), den, fmt, bound_bits=1)
    return r, roots


def correlation_from_cov_steps(
    cov: SharedArray, d: int, pairs: list[tuple[int, int]], fmt: FixedFormat
) -> Steps[SharedArray]:
    """Pearson's ``r`` for the ``pairs`` (``i < j``) from the upper triangle of a covariance matrix:
    ``cov_ij / (sqrt(cov_ii) sqrt(cov_jj))`` with a normalized division (``|r| <= 1``)."""
    at = {p: i for i, p in enumerate(pl.moment_pairs(d, "upper"))}
    roots = yield from fx.sqrt_steps(pick(cov, np.asarray([at[(j, j)] for j in range(d)])), fmt)
    ia = np.asarray([i for i, _ in pairs])
    ja = np.asarray([j for _, j in pairs])
    den = yield from fx.mul_steps(pick(roots, ia), pick(roots, ja), fmt)
    num = pick(cov, np.asarray([at[p] for p in pairs]))
    return (yield from ratio_steps(num, den, fmt, bound_bits=1))


async def correlation(
    s: Session, data: Any, *, fmt: FixedFormat | None = None, to: int | None = None
) -> np.ndarray | None:
    """Pearson correlation matrix of the columns (``numpy.corrcoef(x, rowvar=False)``), ``d >= 2``.
    Reveals the off-diagonal coefficients only (the diagonal is 1 by definition, not computed)."""
    local = await pl.local_parts(s, data)
    if local is not None:
        parts, vector = local
        fmt = fmt or FixedFormat()
        d = pl.columns_of(parts, vector)
        if d < 2 or vector:
            raise ParameterMismatch("correlation needs at least two columns")
        upper = pl.moment_pairs(d, "upper")
        _, cov = await pl.pooled(s, parts, d, upper, 0, fmt)
        pairs = [(i, j) for i in range(d) for j in range(i + 1, d)]
        r = await run(s, correlation_from_cov_steps(cov, d, pairs, fmt))
        out = await SecretFix(s, r, fmt).reveal(to)
        return None if out is None else _square(out, d, pairs, diag=1.0)
    t = await ensure_table(s, data, fmt)
    if t.cols < 2 or t.vector:
        raise ParameterMismatch("correlation needs at least two columns")
    c = await centered(t)
    pairs = [(i, j) for i in range(t.cols) for j in range(i + 1, t.cols)]
    r, _ = await run(s, correlation_steps(c, pairs))
    out = await SecretFix(s, r, t.fmt).reveal(to)
    return None if out is None else _square(out, t.cols, pairs, diag=1.0)


async def mean_where(
    s: Session,
    data: Any,
    flag: int,
    *,
    fmt: FixedFormat | None = None,
    to: int | None = None,
) -> np.ndarray | None:
    """Means of the other columns over the rows whose column ``flag`` is 1 (a 0/1 column), e.g. the mean
    amount of the fraudulent transactions. Reveals those means only (not the number of flagged rows,
    nor the sums). A flag column with other values than 0/1 gives a weighted mean; no flagged row at
    all gives an arbitrary result.

    On owner-private rows each owner inputs its number of flagged rows and the means of the other
    columns over them, which are then pooled (see ``pooled``): nothing grows with the rows.
    On a shared ``Table``: ``sum(x flag) / sum(flag)``; the count is at most ``N`` (public), so
    ``2^t / count`` with ``2^t >= N`` is at least 1 and the library's reciprocal is relatively precise.
    """
    local = await pl.local_parts(s, data)
    if local is not None:
        parts, vector = local
        fmt = fmt or FixedFormat()
        d = pl.columns_of(parts, vector)
        flag = flag + d if -d <= flag < 0 else flag  # -1: the last column
        if vector or not 0 <= flag < d or d < 2:
            raise ParameterMismatch(
                "mean_where needs a table with a flag column and at least one other column"
            )
        others = [j for j in range(d) if j != flag]

        def flagged(a: np.ndarray) -> np.ndarray:
            w = a[:, flag]
            c = float(w.sum())
            means = (w @ a[:, others]) / c if c else np.zeros(len(others))
            return np.concatenate([[c], means])

        summ = await pl.summaries(s, parts, flagged, 1 + len(others), fmt=fmt)
        m = await run(s, pl.weighted_mean_steps(summ, len(others), fmt))
        return await SecretFix(s, m, fmt).reveal(to)
    t = await ensure_table(s, data, fmt)
    fmt = t.fmt
    if t.vector or not 0 <= flag < t.cols or t.cols < 2:
        raise ParameterMismatch("mean_where needs a table with a flag column and at least one other column")
    cols = [j for j in range(t.cols) if j != flag]
    shift = max(1, math.ceil(math.log2(max(t.rows, 2))))
    if shift >= fmt.f:
        raise ParameterMismatch(f"mean_where: {t.rows} rows need more than f = {fmt.f} fractional bits")

    def steps() -> Steps[SharedArray]:
        x = flat(t.x.shares)
        sums = yield from pair_sums_steps(x, t.rows, t.cols, [(j, flag) for j in cols], fmt)
        cnt = t.x[:, flag].sum().shares.flatten()
        scaled = yield from fx.mul_public_steps(cnt, np.asarray([2.0**-shift]), fmt)  # exact: an integer
        rec = yield from fx.reciprocal_steps(scaled, fmt)  # 2^t / count, in [1, 2^t]
        prod = yield from fx.mul_steps(sums, tile_rows(rec, len(cols)), fmt)
        return (yield from fx.mul_public_steps(prod, np.asarray([2.0**-shift]), fmt))

    out = await SecretFix(s, await run(s, steps()), fmt).reveal(to)
    return out


async def histogram(
    s: Session,
    data: Any,
    edges: Any,
    *,
    column: int = 0,
    fmt: FixedFormat | None = None,
    to: int | None = None,
    dp: Any = None,
) -> np.ndarray | None:
    """Counts of one column's values in the bins of the public, increasing ``edges`` (as
    ``numpy.histogram(x, bins=edges)``: ``[e_0, e_1), ..., [e_{m-1}, e_m]``, values outside not counted).

    Secure comparisons against the public edges: ``[x < e_j]`` for ``j < m`` and ``[x <= e_m]``,
    all ``N (m + 1)`` of them in one vectorized comparison; the bits are summed per edge (local) and
    the cumulative counts differenced. Reveals the bin counts only (and, with ``N`` public, the
    number of values outside the edges). Values and edges are compared as encoded in the
    fixed-point format (rounded to ``2^-f``).

    On owner-private rows each owner counts its own values (``numpy.histogram`` in float64, exactly
    numpy's bins) and only the counts are added in MPC: no comparison at all. With ``dp=DP(...)``
    (owner-private rows; no bounds needed: a row counts in one bin at most) every bin gets noise for
    a sensitivity of 1, and the histogram costs what ONE such count costs, however many bins
    (``touches=1``: adding or removing a row changes one bin). Noisy counts may be negative.
    """
    local = await pl.local_parts(s, data)
    if local is not None:
        parts, vector = local
        e = np.asarray(edges, dtype=np.float64).reshape(-1)
        if e.size < 2 or not np.all(np.diff(e) > 0) or not np.all(np.isfinite(e)):
            raise ParameterMismatch(
                "histogram edges must be at least two finite, strictly increasing numbers"
            )
        d = pl.columns_of(parts, vector)
        if not 0 <= column < d:
            raise ParameterMismatch(f"histogram of column {column}: the rows have {d}")

        def counts(a: np.ndarray) -> np.ndarray:
            return np.histogram(pl._as_matrix(a)[:, column], bins=e)[0]

        if dp is not None:
            from ..dp import apps as dpa

            entries = [dpa.Entry(1.0, count=True)] * (e.size - 1)
            noisy = await dpa.release_sums(s, parts, counts, entries, dp, to=to, touches=1)
            return None if noisy is None else np.asarray(noisy, dtype=np.int64)
        acc = await pl.int_totals(s, parts, counts, e.size - 1, COUNT_BITS)
        out = await acc.reveal(to)
        return None if out is None else np.asarray(out, dtype=np.int64)
    _no_dp(dp)
    t = await ensure_table(s, data, fmt)
    e = np.asarray(edges, dtype=np.float64).reshape(-1)
    if e.size < 2 or not np.all(np.diff(e) > 0) or not np.all(np.isfinite(e)):
        raise ParameterMismatch("histogram edges must be at least two finite, strictly increasing numbers")
    fx.encode(e, t.fmt)  # RangeError here, at every party, for edges outside the format
    if not 0 <= column < t.cols:
        raise ParameterMismatch(f"histogram of column {column}: the table has {t.cols}")
    n, m = t.rows, e.size - 1
    x = t.column(column)
    below = x[np.repeat(np.arange(n), m)].reshape(n, m) < np.broadcast_to(e[:m], (n, m))
    upto = x <= float(e[m])
    lt, le = await gather(below, upto)
    cum = lt.sum(axis=0)  # (m,): values below each lower edge
    last = le.sum()
    upper = SecretInt(s, SharedArray.concat([cum.shares[1:], last.shares.reshape(1)]), cum.k)
    counts = await (upper - cum).reveal(to)
    return None if counts is None else np.asarray(counts, dtype=np.int64)
