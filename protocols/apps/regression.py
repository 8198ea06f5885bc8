"""Regression on horizontally split data, and inference on a private input.

**Linear regression** (``linear_regression``): least squares by the normal equations, solved
securely. The columns are centred (secret means) and the system is put in *correlation form*:
``R_xx b' = r_xy`` with ``R`` the correlation matrix of (features, target) from ``stats``. Its
entries lie in ``[-1, 1]`` and the pivots of Gauss-Jordan elimination in ``(0, 1]``, so the secret
reciprocals are all ``>= 1``, where fixed point is relatively precise, whatever the data's units
(the covariance form would invert pivots of any size). Then ``b_j = b'_j s_y / s_j`` (a normalized
division, spreads within a factor ``2^20`` of each other) and ``b_0 = mean_y - sum_j mean_j b_j``.
Reveals the coefficients and the intercept only. Cost: ``N (d + 1) (d + 2) / 2`` triples for the
moments, then ``d`` rounds of elimination (a reciprocal each); ``d`` is meant to be small (< ~20).

**Cost.** Linear regression on owner-private rows costs what its ``(d + 1) x (d + 1)`` system costs,
whatever the rows (``d = 20``: 13,169 triples and 57,088 random bits; ``pooled`` says how). Logistic
regression needs the rows in MPC: each party inputs its rows once (``d + 1`` input masks per row),
then every epoch after the first costs per row about ``2 d`` triples for the two matrix-vector
products plus the sigmoid: piecewise about 70 triples and 110 random bits, exact about 600 triples
and 2,070 random bits (measured with ``actors.plan.preprocessing_plan``, ``d = 10``; the first
epoch starts from the public model 0 and needs no sigmoid). At 1,200 MASCOT items per second (3
parties on 2 cores), 10^4 rows x 10 features cost about half an hour per piecewise epoch: train on a
sample, or wait for cheaper comparisons (binary-domain bits). The standardization uses per-party
sums, not rows.

**Logistic regression** (``logistic_regression``): full-batch gradient descent,
``w <- w - (lr / N) X^T (sigma(X w + b) - y)``, on standardized features. Standardization: a public
``Standardizer`` (each party transforms its own rows locally); by default it is computed securely
(``standardizer``), which reveals the per-feature means and standard deviations of the union, the
declared price of a well-conditioned problem (see the example). Each party inputs its standardized
rows once; every epoch then costs two secret matrix-vector products (``2 N d`` triples) and ``N``
sigmoids. Only the final model is revealed (intermediate weights never are).

Two sigmoids, one choice (``GDConfig.sigmoid``):

* ``"exact"``: ``SecretFix.sigmoid`` from ``sectypes`` (about 2 ulp over the whole range). Its
  price is what bounds MASCOT runs: about 2,000 random bits and 600 triples per row and epoch.
* ``"piecewise"``: ``clamp(1/2 + z/4, 0, 1)``, the three-piece linear approximation of SecureML
  (Mohassel and Zhang, S&P 2017): two secure comparisons per row that share one masked opening
  (``numeric.ltz_offsets_steps``: about 80 random bits and 75 triples per row for the default
  sizes), on ``z`` at full precision without a truncation; about a sixteenth of the exact sigmoid's
  preprocessing. Gradient descent on it tracks the exact one closely on standardized data (it is
  exact at the decision boundary and saturates where the sigmoid nearly does).

Scales and ranges. Features are fixed point with ``feature_bits`` fractional bits, weights with
``f = 20``; ``X w`` is kept at the product scale (no truncation) and the residuals multiply ``X``
again without truncation; one truncation per weight and epoch applies ``lr / N``. Every declared
bit length follows from public bounds: features are clipped to ``[-clip, clip]`` by their owner, so
``|w_j| <= clip * (sum of the learning rates) + 1`` and ``|z| <= (d clip + 1) max|w|``. A malicious owner can
input values beyond its clip (input range proofs are not part of this library), which gives a wrong
model and weakens the masking of the comparisons involving its rows.

**Inference** (``predict``): one party's feature rows against a model that is secret-shared, either
left secret by training in the same session or input by its owner (``share_model``). The score
``X w + b``, and for a logistic model the probability (exact sigmoid) or the label ``[z > 0]``, is
revealed to the features' owner only. The model's owner learns nothing but the number of rows;
the features' owner learns the predictions (which, as with any prediction service, reveal the
model after enough queries: ``d + 1`` scores determine a linear model).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .. import fixedpoint as fx
from ..comparison import RangeError, check_bits, max_bits, trunc_steps
from ..fixedpoint import FixedFormat
from ..online import Session
from ..private import Private, owned_fits, owned_product_steps
from ..rounds import Mul, Steps, Trunc, pow2, run, sum_groups, wide_rounding
from ..sectypes import SecretFix
from ..shares import SharedArray
from . import logistic as lg
from . import pooled as pl
from .numeric import ltz_offsets_steps, pair_sums_steps, ratio_steps, tile_rows
from .stats import centered, correlation_steps, secret_mean
from .table import ParameterMismatch, Table, as_rows, pick, share_table

__all__ = [
    "GDConfig",
    "LinearModel",
    "LogisticModel",
    "SecretModel",
    "Standardizer",
    "linear_regression",
    "logistic_regression",
    "predict",
    "share_model",
    "standardizer",
]


# ---------------------------------------------------------------------------------------- models
@dataclass(frozen=True)
class LinearModel:
    """``y = x . coef + intercept`` (public, after training revealed it)."""

    coef: np.ndarray
    intercept: float

    def predict(self, x: Any) -> np.ndarray:
        return np.asarray(x, dtype=np.float64) @ self.coef + self.intercept


@dataclass(frozen=True)
class LogisticModel:
    """``P(y = 1 | x) = sigmoid(x . coef + intercept)`` in the original feature units (public)."""

    coef: np.ndarray
    intercept: float

    def decision(self, x: Any) -> np.ndarray:
        return np.asarray(x, dtype=np.float64) @ self.coef + self.intercept

    def predict_proba(self, x: Any) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.decision(x)))

    def predict(self, x: Any) -> np.ndarray:
        return (self.decision(x) > 0).astype(np.int64)


@dataclass(frozen=True)
class Standardizer:
    """Public per-feature scaling: ``clip((x - mean) / scale, -clip, clip)``, applied by each party to
    its own rows (no communication)."""

    mean: np.ndarray
    scale: np.ndarray
    clip: float = 8.0

    def transform(self, x: Any) -> np.ndarray:
        z = (np.asarray(x, dtype=np.float64) - self.mean) / self.scale
        return np.clip(z, -self.clip, self.clip)

    def to_original(self, coef: np.ndarray, intercept: float) -> tuple[np.ndarray, float]:
        """A linear score on standardized features, in the original units (ignoring the clip)."""
        c = np.asarray(coef, dtype=np.float64) / self.scale
        return c, float(intercept - c @ self.mean)


@dataclass(frozen=True)
class SecretModel:
    """A secret-shared linear score ``x . w + b`` (``w`` is ``(d,)``, ``b`` one element); ``scaler``,
    if any, is the public transformation the features go through first (by their owner)."""

    w: SecretFix
    b: SecretFix
    kind: Literal["linear", "logistic"]
    scaler: Standardizer | None = None

    @property
    def features(self) -> int:
        return int(self.w.size)


# ---------------------------------------------------------------------------------------- linear
def _solve_steps(m: SharedArray, d: int, fmt: FixedFormat) -> Steps[SharedArray]:
    """Gauss-Jordan elimination without pivoting on the flat ``(d, d + 1)`` system ``[A | r]`` whose ``A``
    is symmetric positive definite with pivots in ``(0, 1]`` (a correlation matrix); returns ``A^-1 r``.
    Per pivot: a reciprocal (``>= 1``: relatively precise), then the scaled row and the rank-one update
    (``d (d + 1)`` products) in two rounds of products."""
    w = d + 1
    for k in range(d):
        piv = pick(m, np.asarray([k * w + k]))
        inv = yield from fx.reciprocal_steps(piv, fmt)
        rowk = pick(m, k * w + np.arange(w))
        colk = pick(m, np.arange(d) * w + k)
        scaled = yield from fx.mul_steps(rowk, tile_rows(inv, w), fmt)
        outer = yield from fx.mul_steps(
            pick(colk, np.repeat(np.arange(d), w)), pick(scaled, np.tile(np.arange(w), d)), fmt
        )
        rest = m - outer
        m = SharedArray.concat(
            [pick(rest, np.arange(k * w)), scaled, pick(rest, np.arange((k + 1) * w, d * w))]
        )
    return pick(m, np.arange(d) * w + d)


async def linear_regression(
    s: Session,
    x: Any,
    y: Any,
    *,
    fmt: FixedFormat | None = None,
    to: int | None = None,
    ratio_bits: int = 20,
    coef_bits: int = 30,
) -> LinearModel | None:
    """Least-squares fit of ``y`` on the columns of ``x`` over every party's rows. Reveals the
    coefficients and the intercept only (to ``to``, or to all).

    ``x``, ``y``: this party's rows (``(n_i, d)`` or ``(n_i,)``, and ``(n_i,)``; ``None`` for no rows), or
    owner-private values (``Private``, or lists of them, one per party): then each owner computes its
    count, means and centred co-moments of ``[x, y]`` locally, and only those are combined in MPC
    (``pooled``: the cost depends on ``d``, not on the rows, and no row count leaves its owner);
    ``|coef| < 2^coef_bits`` is promised. Joint secrets (``x`` a ``SecretFix`` ``(N, d)`` and ``y`` a
    ``SecretFix`` ``(N,)``, e.g. vertically split data) take the row-level path, whose
    ``ratio_bits`` bounds ``std(y) / std(x_j)`` and its inverse by ``2^ratio_bits``."""
    fmt = fmt or FixedFormat()
    if isinstance(x, SecretFix) or isinstance(y, SecretFix):
        return await _linear_regression_rows(s, _secret_table(s, x, y), fmt, to, ratio_bits)
    parts = await _xy_parts(s, x, y)
    d = pl.columns_of(parts, False) - 1
    if d < 1:
        raise ParameterMismatch("linear regression needs rows of at least one feature and a target")
    pairs = pl.moment_pairs(d + 1, "upper")
    summ = await pl.summaries(s, parts, pl.sums_fn(pairs, fmt), 2 + d + len(pairs), fmt=fmt)

    def steps() -> Steps[SharedArray]:
        means, raw = yield from pl.pooled_sums_steps(summ, d + 1, pairs, fmt)
        return (yield from pl.scaled_solve_steps(raw, means, d, fmt, coef_bits))

    out = await SecretFix(s, await run(s, steps()), fmt).reveal(to)
    return None if out is None else LinearModel(np.asarray(out[:d]), float(out[d]))


async def _xy_parts(s: Session, x: Any, y: Any) -> pl.Parts:
    """Every party's ``[x, y]`` rows as owner-private values."""
    if isinstance(x, (list, tuple)) and any(isinstance(p, Private) for p in x):
        ys = list(y)
        if len(ys) != len(x):
            raise ValueError("x and y must list the same parties' values")
        parts: pl.Parts = []
        for px, py in zip(x, ys, strict=True):
            if px is None or py is None:
                parts.append(None)
                continue
            if px.owner != py.owner:
                raise ValueError("x and y of one row must have the same owner")
            parts.append(px.apply(_stack_xy, py))
        local = await pl.local_parts(s, parts)
    elif isinstance(x, Private):
        local = await pl.local_parts(s, [x.apply(_stack_xy, y)])
    else:
        local = await pl.local_parts(s, _joined(x, y))
    assert local is not None
    parts, vector = local
    if vector:
        raise ParameterMismatch("linear regression needs rows of features and a target")
    return parts


def _stack_xy(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"{x.shape[0]} feature rows and {y.shape[0]} targets")
    return np.column_stack([x[:, None] if x.ndim == 1 else x, y])


def _secret_table(s: Session, x: Any, y: Any) -> Table:
    """Joint secret features ``(N, d)`` and target ``(N,)`` as one ``(N, d + 1)`` table."""
    if not (isinstance(x, SecretFix) and isinstance(y, SecretFix)):
        raise TypeError("joint secret regression needs x and y both SecretFix")
    xs = x if x.ndim == 2 else x.reshape(x.size, 1)
    n, d = xs.shape
    if y.size != n:
        raise ParameterMismatch(f"{n} feature rows and {y.size} targets")
    flat = SharedArray.concat([xs.shares.flatten(), y.shares.flatten()])
    idx = np.concatenate(
        [np.arange(n)[:, None] * d + np.arange(d)[None, :], n * d + np.arange(n)[:, None]], axis=1
    )
    return Table(SecretFix(s, pick(flat, idx.reshape(-1)).reshape(n, d + 1), x.fmt), (n,), False)


async def _linear_regression_rows(
    s: Session, t: Table, fmt: FixedFormat, to: int | None, ratio_bits: int
) -> LinearModel | None:
    """The row-level path: the rows are joint secrets, centred and correlated securely (``N (d + 1)
    (d + 2) / 2`` triples for the moments, then the elimination)."""
    d = t.cols - 1
    if d < 1 or t.vector:
        raise ParameterMismatch("linear regression needs rows of at least one feature and a target")
    if t.rows <= d + 1:
        raise ParameterMismatch(f"linear regression of {d} features needs more than {d + 1} rows")
    fmt = t.fmt
    means = await secret_mean(t)
    c = await centered(t, means)
    f = s.field
    pairs = [(i, j) for i in range(d + 1) for j in range(i + 1, d + 1)]

    def steps() -> Steps[SharedArray]:
        r, roots = yield from correlation_steps(c, pairs)
        where = {p: i for i, p in enumerate(pairs)}
        one = f.from_ints([1 << fmt.f])
        cells = []
        for i in range(d):
            for j in range(d + 1):
                if i == j:
                    cells.append(SharedArray(r.ctx, f.zeros(1), f.zeros(1)).add_public_field(one))
                else:
                    cells.append(pick(r, np.asarray([where[(min(i, j), max(i, j))]])))
        beta_std = yield from _solve_steps(SharedArray.concat(cells), d, fmt)
        ratio = yield from ratio_steps(
            tile_rows(pick(roots, np.asarray([d])), d), pick(roots, np.arange(d)), fmt, ratio_bits
        )
        coef = yield from fx.mul_steps(beta_std, ratio, fmt)
        mx = pick(means.shares, np.arange(d))
        (prod,) = yield [Mul(mx, coef)]
        dot = yield from trunc_steps(prod.sum().flatten(), fmt.k + fmt.f, fmt.f, fmt.kappa)
        icpt = pick(means.shares, np.asarray([d])) - dot
        return SharedArray.concat([coef, icpt])

    out = await SecretFix(s, await run(s, steps()), fmt).reveal(to)
    return None if out is None else LinearModel(np.asarray(out[:d]), float(out[d]))


def _joined(x: Any, y: Any) -> np.ndarray | None:
    """This party's features and targets as one table, the target last."""
    if x is None and y is None:
        return None
    xs = as_rows(x)
    ys = as_rows(y)
    if xs is None or ys is None or ys.ndim != 1 or xs.shape[0] != ys.shape[0]:
        raise ValueError("x must have one row per element of y")
    return np.column_stack([xs.reshape(xs.shape[0], -1), ys])


# ---------------------------------------------------------------------------------------- logistic
@dataclass(frozen=True)
class GDConfig:
    """Hyperparameters of full-batch gradient descent (public: every party passes the same)."""

    epochs: int = 5
    lr: float | tuple[float, ...] = 1.0  # one learning rate, or one per epoch
    sigmoid: Literal["exact", "piecewise"] = "exact"
    clip: float = 8.0
    feature_bits: int = 10

    def rates(self) -> list[float]:
        """The learning rate of each epoch."""
        if isinstance(self.lr, (int, float)):
            return [float(self.lr)] * self.epochs
        return [float(v) for v in self.lr]

    def check(self) -> None:
        rates = self.rates()
        if self.epochs < 1 or len(rates) != self.epochs or not 1 <= self.clip <= 1024:
            raise ValueError(f"unusable gradient-descent settings {self}")
        if not all(0 < r <= 64 for r in rates):
            raise ValueError(f"learning rates must lie in (0, 64], got {rates}")
        if self.sigmoid not in ("exact", "piecewise"):
            raise ValueError(f"sigmoid must be 'exact' or 'piecewise', not {self.sigmoid!r}")
        if not 4 <= self.feature_bits <= 20:
            raise ValueError("feature_bits must be within 4..20")


async def standardizer(
    s: Session,
    x: Any,
    *,
    clip: float = 8.0,
    method: Literal["sums", "rows"] = "sums",
    ddof: int = 1,
) -> Standardizer:
    """Per-feature mean and (sample) standard deviation of every party's rows, computed securely. What
    it reveals, to all: the total row count ``N`` (not each party's, with ``"sums"``), the per-feature
    means and sums of squared deviations ``sum (x - mean)^2`` (with ``N`` public that is the variance,
    revealed as the sum because fixed point resolves a sum ``N - 1`` times finer than a small
    variance). A constant feature gets scale 1. ``ddof``: the deviation's divisor is ``N - ddof`` (0 is
    scikit-learn's ``StandardScaler``).

    ``method="sums"`` (default): each party inputs its own per-feature sums and sums of squares
    (``2 d`` numbers) and its row count; the union's moments follow from the totals: a few hundred
    triples whatever ``N``. ``"rows"`` inputs the rows and centres them securely (``N d`` triples).
    What a cheating party can do differs only in degree: with rows it can move the union's means and
    variances anywhere by choosing outliers; with sums it can also submit sums no data set has (a
    negative variance, which gets scale 1 here). Privacy is the same: only the revealed moments
    leave. Sums of squares must stay below ``2^43``.
    """
    rows = as_rows(x)
    if rows is not None and rows.ndim == 1:
        rows = rows.reshape(-1, 1)
    if method == "rows":
        t = await share_table(s, rows)
        n = t.rows
        means = await secret_mean(t)
        c = await centered(t, means)
        d = t.cols
        sq = await run(s, pair_sums_steps(c.shares.flatten(), n, d, [(j, j) for j in range(d)], t.fmt))
        out = await SecretFix(s, SharedArray.concat([means.shares.flatten(), sq]), t.fmt).reveal()
    elif method == "sums":
        n, out = await _moments_from_sums(s, rows)
    else:
        raise ValueError(f"method must be 'sums' or 'rows', not {method!r}")
    assert out is not None
    d = out.size // 2
    mu, ssd = np.asarray(out[:d]), np.asarray(out[d:])
    sd = np.sqrt(np.maximum(ssd, 0.0) / max(n - ddof, 1))
    return Standardizer(mu, np.where(sd > 1e-9, sd, 1.0), clip)


async def _moments_from_sums(s: Session, rows: np.ndarray | None) -> tuple[int, np.ndarray | None]:
    """``N`` and the revealed ``[means; sums of squared deviations]`` from every party's sums, in two
    passes: the means first (from the sums), then each party's own ``sum (x - mean)^2`` around the
    now public means, computed locally in float64, so no fixed-point cancellation can occur."""
    from .stats import count

    n = await count(s, rows)
    assert n is not None
    if n < 2:
        raise ParameterMismatch("moments of fewer than two rows")
    have = rows is not None and rows.size > 0
    # each party divides its own sums by the public N: the sum of the quotients is the mean, with no
    # truncation in MPC (the rounding: at most half a unit per party)
    sums = await _summed(s, rows.sum(axis=0) / n if have else None)
    means = await sums.reveal()
    assert means is not None
    dev = await _summed(s, ((rows - means) ** 2).sum(axis=0) if have else None)
    ssd = await dev.reveal()
    assert ssd is not None
    return n, np.concatenate([means, ssd])


async def _summed(s: Session, mine: np.ndarray | None) -> SecretFix:
    """The sum over the parties of one vector each (parties without one input nothing)."""
    t = await share_table(s, None if mine is None else mine.reshape(1, -1))
    if any(c not in (0, 1) for c in t.counts):
        raise ParameterMismatch("each party gives one vector of sums")
    return t.x.sum(axis=0)


def _bits(v: float) -> int:
    """Bits of the magnitude ``v`` (``|x| <= v`` implies ``|x| < 2^bits``)."""
    return max(1, math.ceil(math.log2(v + 1)))


def _gd_steps(
    x: SharedArray,
    y: SharedArray,
    n: int,
    d: int,
    cfg: GDConfig,
    fmt: FixedFormat,
    progress: Callable[[int], None] | None = None,
) -> Steps[SharedArray]:
    """Full-batch gradient descent; returns ``[w; b]`` at scale ``2^f``. ``x`` is the flat ``(n, d)``
    feature matrix at scale ``2^feature_bits``, ``y`` the 0/1 labels.

    The forward pass uses the weights truncated to ``f - feature_bits`` fractional bits, so that
    ``z = X w`` comes out at scale ``2^f`` without a truncation per row (the exact sigmoid takes it as
    is) and the comparisons of the piecewise sigmoid are ``feature_bits`` bits narrower, i.e. cheaper.
    The first epoch starts from the public model 0: ``sigma(0) = 1/2`` needs no secure evaluation.
    """
    f = x.ctx.field
    top = max_bits(f, fmt.kappa)
    fxb, fw = cfg.feature_bits, fmt.f
    rates = cfg.rates()
    wmax = sum(rates) * cfg.clip + 1
    wbits = _bits(wmax) + fw + 2
    zbits = _bits((d * cfg.clip + 1) * wmax) + fw + 2  # z at scale 2^f
    check_bits(f, wbits, fmt.kappa, "logistic regression: weights")
    if cfg.sigmoid == "piecewise":
        check_bits(f, zbits + 1, fmt.kappa, "logistic regression: z +- 2")
        rs = fw + 2  # residuals at scale 2^(f + 2): sigma * 2^(f + 2) = 2^(f + 1) + clamp(z) 2^f
    else:
        check_bits(f, zbits, fmt.kappa, "logistic regression: z")
        rs = fw
    gbits = _bits(n * cfg.clip) + fxb + rs + 2
    scalings = [_step_scaling(lr / n, gbits, top, fxb + rs - fw) for lr in rates]
    cols = np.arange(n * d).reshape(n, d).T.reshape(-1)  # column-major order of the products
    row_of = np.repeat(np.arange(n), d)
    every = np.zeros(n, dtype=np.int64)
    wb = SharedArray(x.ctx, f.zeros(d + 1), f.zeros(d + 1))
    two = f.from_ints([2 << fw])
    half = SharedArray(x.ctx, f.zeros(n), f.zeros(n)).add_public_field(f.from_ints([1 << (rs - 1)]))
    for epoch in range(cfg.epochs):
        if epoch == 0:
            sig = half  # the model is the public 0
        else:
            wl = yield from trunc_steps(wb, wbits, fxb, fmt.kappa)
            w, b = pick(wl, np.arange(d)), pick(wl, np.asarray([d]))
            (prod,) = yield [Mul(x, tile_rows(w, n))]
            z = sum_groups(prod, n) + pick(b.mul_public_field(pow2(f, fxb)), every)  # scale 2^f
            if cfg.sigmoid == "piecewise":
                # lo = [z < -2], upto = [z <= 2] from one masked opening of z; then
                # clamp(z) = z - lo (z + 2) + (1 - upto) (2 - z)
                a1, a2 = z.add_public_field(two), (-z).add_public_field(two)
                lo, upto = yield from ltz_offsets_steps(z, zbits + 1, [2 << fw, -(2 << fw) - 1], fmt.kappa)
                p1, p2 = yield [Mul(lo, a1), Mul(upto, a2)]
                sig = (z - p1 + a2 - p2) + half
            else:
                sig = yield from fx.sigmoid_steps(z, fmt)
        r = sig - y.mul_public_field(pow2(f, rs))
        (gp,) = yield [Mul(x, pick(r, row_of))]
        g = sum_groups(pick(gp, cols), d)
        gb = r.sum().flatten().mul_public_field(pow2(f, fxb))
        lr_int, shift, gk = scalings[epoch]
        grad = SharedArray.concat([g, gb]).mul_public_field(f.from_ints([lr_int]))
        (delta,) = yield [Trunc(grad, gk, shift, fmt.kappa)]
        wb = wb - delta
        if progress is not None:
            progress(epoch + 1)
    return wb


def _step_scaling(step: float, gbits: int, top: int, excess: int) -> tuple[int, int, int]:
    """``(L, shift, K)`` to apply the public factor ``step`` to a ``gbits``-bit gradient that carries
    ``excess`` more fractional bits than the weights: multiply by ``L ~ step 2^F`` with ``F`` as large as
    the field allows, truncate the ``K``-bit product by ``shift = excess + F`` bits."""
    fbits = top
    while gbits + int(round(step * 2.0**fbits)).bit_length() + 1 > top:
        fbits -= 1
    lr_int = int(round(step * 2.0**fbits))
    shift = excess + fbits
    if lr_int < 1 << 8 or shift <= 0:
        raise RangeError(f"logistic regression: lr / N = {step:g} is out of the fixed-point range")
    return lr_int, shift, gbits + lr_int.bit_length() + 1


async def _input_features(
    s: Session,
    rows: np.ndarray | None,
    labels: np.ndarray | None,
    cfg: GDConfig | lg.NewtonConfig,
    with_labels: bool = True,
    counts: list[int] | None = None,
) -> tuple[SharedArray, SharedArray, int, int]:
    """Every party's standardized features (``feature_bits`` fixed point) and 0/1 labels, stacked
    (without ``with_labels``, the labels are checked but not input: the result's labels are empty).
    ``counts``, if given, receives each party's row count (the stacking order)."""
    xs, ys = [], []
    for owner in range(s.n):
        mine_x = mine_y = None
        if owner == s.party:
            xr = np.zeros((0, 0)) if rows is None else rows
            yr = np.zeros(0) if labels is None else labels
            if xr.size and float(np.max(np.abs(xr))) > cfg.clip:
                raise RangeError(f"features beyond the clip {cfg.clip}: standardize and clip them first")
            if not np.all((yr == 0) | (yr == 1)):
                raise ValueError("logistic regression labels must be 0 or 1")
            mine_x = np.rint(xr * 2.0**cfg.feature_bits).astype(np.int64)
            mine_y = yr.astype(np.int64)
        xs.append(await s.input(mine_x, owner=owner))
        if with_labels:
            ys.append(await s.input(mine_y, owner=owner))
    if counts is not None:
        counts.extend(p.shape[0] if p.size else 0 for p in xs)
    if not with_labels:
        return _stacked(xs, [p.shape[0] if p.size else 0 for p in xs])
    counts = [p.size for p in ys]
    widths = {p.shape[1] for p in xs if p.size}
    if len(widths) != 1 or any(p.size != c * next(iter(widths)) for p, c in zip(xs, counts, strict=True)):
        raise ParameterMismatch(f"feature rows do not fit together: shapes {[p.shape for p in xs]}")
    d = widths.pop()
    n = sum(counts)
    return (
        SharedArray.concat([p for p in xs if p.size]),
        SharedArray.concat([p for p in ys if p.size]),
        n,
        d,
    )


def _stacked(xs: list[SharedArray], counts: list[int]) -> tuple[SharedArray, SharedArray, int, int]:
    """The parties' input feature rows stacked, without labels."""
    widths = {p.shape[1] for p in xs if p.size}
    if len(widths) != 1:
        raise ParameterMismatch(f"feature rows do not fit together: shapes {[p.shape for p in xs]}")
    present = [p for p in xs if p.size]
    empty = SharedArray(present[0].ctx, present[0].ctx.field.zeros(0), present[0].ctx.field.zeros(0))
    return SharedArray.concat(present), empty, sum(counts), widths.pop()


async def logistic_regression(
    s: Session,
    x: Any,
    y: Any,
    *,
    config: GDConfig | lg.NewtonConfig | None = None,
    scaler: Standardizer | Literal["secure"] | None = "secure",
    fmt: FixedFormat | None = None,
    to: int | None = None,
    reveal: bool = True,
    progress: Callable[[int], None] | None = None,
) -> LogisticModel | SecretModel | None:
    """Train a logistic model on every party's rows (this party's ``x``: ``(n_i, d)``, ``y``: 0/1).

    ``config``: a ``logistic.NewtonConfig`` (default: Böhning's fixed-Hessian Newton method, trained
    to scikit-learn's ``LogisticRegression()`` on standardized features; see ``logistic``) or a
    ``GDConfig`` (full-batch gradient descent, a fixed number of epochs).

    ``scaler``: ``"secure"`` (default) computes a ``Standardizer`` securely (revealing per-feature
    means and deviations), a given one is applied as is, ``None`` takes ``x`` as already scaled (it
    must lie within ``config.clip``). Reveals the final model in the original units (to ``to`` or to
    all); with ``reveal=False`` it returns the model still secret (a ``SecretModel`` on the scaled
    features) for ``predict`` in the same session, and reveals nothing. ``progress(epoch)`` is called
    locally after each epoch (e.g. to show progress; it must not touch the session).
    """
    cfg = config or lg.NewtonConfig()
    cfg.check()
    fmt = fmt or FixedFormat()
    fmt.check(s.field)
    xs = as_rows(x)
    if xs is not None and xs.ndim == 1:
        xs = xs.reshape(-1, 1)
    ys = as_rows(y)
    newton = isinstance(cfg, lg.NewtonConfig)
    if scaler == "secure":
        scaler = await standardizer(s, xs, clip=cfg.clip, ddof=cfg.ddof if newton else 1)
    elif scaler is not None and not isinstance(scaler, Standardizer):
        raise TypeError("scaler must be 'secure', a Standardizer or None")
    scaled = scaler.transform(xs) if scaler is not None and xs is not None else xs
    owners: list[int] = []
    xsh, ysh, n, d = await _input_features(s, scaled, ys, cfg, with_labels=not newton, counts=owners)
    if isinstance(cfg, lg.NewtonConfig):
        summ = await _summed_summaries(s, scaled, ys, n, d, fmt, cfg)
        # the factorization, the solves and the scalings round within a few units of 2^-f (ranged
        # masks: rounds.wide_rounding), which moves the iteration less than its own error does
        with wide_rounding():
            wb = await run(s, lg.newton_steps(xsh, summ, n, d, cfg, fmt, progress, owners))
    else:
        wb = await run(s, _gd_steps(xsh, ysh, n, d, cfg, fmt, progress))
    if not reveal:
        return SecretModel(
            SecretFix(s, pick(wb, np.arange(d)), fmt),
            SecretFix(s, pick(wb, np.asarray([d])).reshape(()), fmt),
            "logistic",
            scaler,
        )
    out = await SecretFix(s, wb, fmt).reveal(to)
    if out is None:
        return None
    coef, icpt = np.asarray(out[:d]), float(out[d])
    if scaler is not None:
        coef, icpt = scaler.to_original(coef, icpt)
    return LogisticModel(coef, icpt)


async def _summed_summaries(
    s: Session,
    rows: np.ndarray | None,
    labels: np.ndarray | None,
    n: int,
    d: int,
    fmt: FixedFormat,
    cfg: lg.NewtonConfig,
) -> SharedArray:
    """The sum of every party's ``logistic.summary_of`` (each computed by its owner, in float64), one
    input round per party; a party without rows inputs zeros."""
    length = lg.summary_length(d)
    acc: SharedArray | None = None
    for owner in range(s.n):
        mine = None
        if owner == s.party:
            if rows is None or rows.size == 0:
                vec = np.zeros(length)
            else:
                vec = lg.summary_of(rows, np.asarray(labels, dtype=np.float64).reshape(-1), n, cfg)
            mine = fx.encode(vec, fmt)
        got = await s.input(mine, owner=owner)
        if got.size != length:
            raise ParameterMismatch(f"party {owner} input a summary of {got.size} values, {length} expected")
        acc = got.flatten() if acc is None else acc + got.flatten()
    assert acc is not None
    return acc


# ---------------------------------------------------------------------------------------- inference
async def share_model(
    s: Session,
    model: LinearModel | LogisticModel | None,
    owner: int,
    *,
    fmt: FixedFormat | None = None,
) -> SecretModel:
    """The owner's public-to-it model (``coef``, ``intercept``) as a secret-shared model; the other
    parties pass ``None`` and learn only the number of features."""
    fmt = fmt or FixedFormat()
    mine = None
    kind: Literal["linear", "logistic"] = "logistic" if isinstance(model, LogisticModel) else "linear"
    if s.party == owner:
        if model is None:
            raise ValueError(f"party {owner} owns the model but passed none")
        mine = np.concatenate([np.asarray(model.coef, dtype=np.float64).reshape(-1), [model.intercept]])
    v = await SecretFix.input(s, mine, owner=owner, fmt=fmt)
    if v.ndim != 1 or v.size < 2:
        raise ParameterMismatch(f"a model needs coefficients and an intercept, got shape {v.shape}")
    d = v.size - 1
    return SecretModel(v[np.arange(d)], v[d], kind)


async def predict(
    s: Session,
    model: SecretModel,
    x: Any,
    owner: int,
    *,
    output: Literal["score", "probability", "label"] = "score",
) -> np.ndarray | None:
    """Predictions for the rows ``x`` of party ``owner`` (the others pass ``None``), revealed to that
    party only: the score ``x . w + b``, or for a logistic model the probability (``sectypes``'
    sigmoid) or the 0/1 label (one secure comparison). The model stays secret."""
    if output not in ("score", "probability", "label"):
        raise ValueError(f"output must be 'score', 'probability' or 'label', not {output!r}")
    fmt = model.w.fmt
    mine = None
    if s.party == owner:
        rows = as_rows(x)
        if rows is None:
            raise ValueError(f"party {owner} owns the features but passed none")
        rows = rows.reshape(-1, model.features) if rows.ndim == 1 else rows
        mine = model.scaler.transform(rows) if model.scaler is not None else rows
    feats = await SecretFix.input(s, mine, owner=owner, fmt=fmt)
    if feats.ndim != 2 or feats.shape[1] != model.features:
        raise ParameterMismatch(f"features of shape {feats.shape} for a model of {model.features} features")
    if owned_fits(s, feats, model.w):
        # the rows are the owner's own values: owned products (a third of a triple each), one
        # truncation per row as the secret product's
        z = (await run(s, owned_product_steps(feats, model.w, owner, matmul=True))) + model.b
    else:
        z = (await (feats @ model.w)) + model.b
    if output == "probability":
        z = await z.sigmoid()
    elif output == "label":
        return await (await (z > 0)).reveal(to=owner)
    return await z.reveal(to=owner)
