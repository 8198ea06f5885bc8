"""Logistic regression to convergence: Böhning's fixed-Hessian Newton method on horizontally split rows.

**Why this method.** The log-loss Hessian ``X^T diag(p (1 - p)) X`` changes with the model, and
recomputing it securely costs ``N d^2 / 2`` products per iteration; gradient descent needs no Hessian
but, on correlated features (radius, perimeter and area of a tumour), hundreds of epochs, each with
every row in MPC. Böhning and Lindsay (1988) bound it once: ``p (1 - p) <= 1/4``, so
``H <= X^T X / 4 + I / C`` for every model, and ``w <- w + H^-1 (X^T (y - p) - w / C)`` increases the
penalized likelihood monotonically. The same bound is what the iDASH 2017 secure logistic regression
entries built on (Bonte and Vercauteren, "Privacy-preserving logistic regression training", BMC
Medical Genomics 2018: the simplified fixed Hessian; Kim et al. used Nesterov-accelerated gradient
descent instead, at more iterations). Here the bound is also what makes the rows cheap:

* ``X^T X`` is a sum of per-party ``X_j^T X_j``: each party computes its own locally, in float64, and
  inputs it (``(d + 1) (d + 2) / 2`` values, whatever its row count; ``docs/local.md``);
* so are ``X^T y`` and ``X^T (y - 1/2)``: the first iteration (from the model 0, where every ``p`` is
  1/2) needs no row in MPC at all;
* and so is a better start (``warm_start``, the default): each party fits its own rows and inputs
  ``B_j w_j``, and ``B^-1 sum_j B_j w_j`` replaces that first step at the same cost (``local_fit``);
* ``H / N`` is factored once in MPC (``L D L^T``, Crout's order: one truncation per entry, a secret
  reciprocal per pivot), and every iteration applies its inverse by two triangular solves;
* only the sigmoid of each row's score needs the rows: every later iteration costs two
  matrix-vector products (``z = X w``, ``X^T p``: ``2 N d`` products) and ``N`` sigmoids. The rows
  are their owners' own values, so the products are *owned* (``rounds.OwnedMul``, in a session with
  binary material): Beaver products whose ``a`` the row's owner knows, a third of a triple's cost.

What it matches: scikit-learn's ``LogisticRegression()`` on standardized features: L2 penalty
``|w|^2 / (2 C)`` (``C = 1``), intercept not penalized. The standardization is ``StandardScaler``'s
(population deviation). The number of iterations is public (``NewtonConfig.iterations``, default
10) and so revealed, like every public parameter; nothing else depends on the data. Plain Böhning
converges linearly, at a rate set by how far the data's actual curvatures ``p (1 - p)`` fall below
1/4: fast where the classes overlap (the synthetic data: a few iterations), slow where most rows are
classified with confidence (breast cancer at ``C = 1``: scores up to 40). Each step is therefore
taken from Nesterov's look-ahead point ``w_k + (k - 1) / (k + 2) (w_k - w_(k-1))`` (public weights,
one truncation per coefficient; ``NewtonConfig.nesterov``), which halves the iterations needed on
the real data sets (``docs/models.md``).

**The sigmoid** (``NewtonConfig.sigmoid``), evaluated on ``z`` at full precision (no truncation):

* ``"spline"`` (default): the linear interpolant of the sigmoid at the knots ``0, +-1.5, +-4``,
  0 below -4 and 1 above 4; its largest error is 0.041 (at ``|z| = 4``). Five comparisons from
  ONE masked opening (``numeric.ltz_offsets_steps``) and five products per row; on binary
  comparisons the symmetry ``s(-z) = 1 - s(z)`` leaves three bits to convert and two products
  (``_symmetric_spline_steps``).
* ``"piecewise"``: SecureML's ``clamp(1/2 + z/4, 0, 1)``, two comparisons from one opening; error
  0.119 (at ``|z| = 2``). Cheapest, but its fixed point is visibly another model.
* ``"exact"``: ``SecretFix.sigmoid`` (about 2 ulp everywhere, ten times the preprocessing).

The error of an approximate sigmoid moves the fixed point of the iteration: the model solves
``X^T (y - s(X w)) = w / C`` for the approximation ``s``; ``tests/test_logistic.py`` states how far
that is from scikit-learn's coefficients.

**Cost** (preprocessing; ``N`` rows, ``d`` features, ``D = d + 1``): each party inputs its rows once
(``N_j d`` input masks) and one summary of ``D (D + 1) / 2 + 2 D`` values; the factorization is about
``D^3 / 6`` triples, ``D^2 / 2`` truncations and ``D`` reciprocals, once; every iteration after the
first costs ``2 N d`` products, the sigmoid per row, and ``D^2`` triples and ``4 D`` truncations for
the solves. In a ``comparison="auto"`` session (binary material) the products are owned (``2 d`` per
row, in groups of 32), the sigmoid is a loose edaBit, three daBits, about 350 AND triples and two
triples per row, and ``regression.logistic_regression`` runs the method inside
``rounds.wide_rounding()``: a truncation draws two ranged randoms (``protocols.mascot.ranged``, a
twelfth of ``m`` field bits' cost) and rounds within ``n / 2 + 1`` units of ``2^-f`` instead of 1; on
the field path the products are triples, the sigmoid 205 triples and 131 field bits per row, and a
truncation ``K + 40`` bits.
At ``d = 30``: 60 owned products and 2 triples per row and iteration (a third of a triple each: about
22 triples' worth), against 267 triples on the field path. ``docs/models.md`` gives the totals
measured with ``actors.plan.preprocessing_plan`` and the time end to end.

Declared ranges (public promises, as everywhere in fixed point): standardized coefficients below
``2^coef_bits``, pivots of ``H / N`` above ``2^-15`` (they are at least ``1 / (C N)`` for the features;
near-collinear features with ``C N > 2^15`` need a smaller ``C`` or fewer features), and the
multipliers ``L_jk`` below ``2^8``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from .. import fixedpoint as fx
from ..binary.bits import AuthBits
from ..binary.circuits import And, ToField
from ..comparison import check_bits, domain_of, max_bits, trunc_steps
from ..comparison_binary import loose_fits, ltz_offsets_bits_steps
from ..fixedpoint import FixedFormat
from ..rounds import Mul, OwnedMul, Steps, current_session, owned_available, parallel, pow2, sum_groups, take
from ..shares import SharedArray
from .numeric import ltz_offsets_steps, tile_rows
from .pooled import _pivot_reciprocal_steps
from .table import ParameterMismatch, pick

__all__ = ["SPLINES", "NewtonConfig", "Spline", "newton_steps", "spline_of", "summary_of"]


@dataclass(frozen=True)
class Spline:
    """A piecewise-linear sigmoid: the linear interpolant of ``values`` at the increasing ``knots``,
    0 below the first knot and 1 from the last one on."""

    knots: tuple[float, ...]
    values: tuple[float, ...]

    def __call__(self, z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, dtype=np.float64)
        out = np.interp(z, self.knots, self.values)
        return np.where(z < self.knots[0], 0.0, np.where(z >= self.knots[-1], 1.0, out))

    def pieces(self) -> list[tuple[float, float, float]]:
        """``(t_i, da_i, ds_i)``: from ``t_i`` on, the line ``a + s z`` changes by ``da_i + ds_i z``."""
        t, v = self.knots, self.values
        lines = [(0.0, 0.0)]
        for i in range(len(t) - 1):
            s = (v[i + 1] - v[i]) / (t[i + 1] - t[i])
            lines.append((v[i] - s * t[i], s))
        lines.append((1.0, 0.0))
        return [(t[i], lines[i + 1][0] - lines[i][0], lines[i + 1][1] - lines[i][1]) for i in range(len(t))]

    @property
    def symmetric(self) -> bool:
        """Knots symmetric about a knot at 0 and ``s(-z) = 1 - s(z)`` (the sigmoid's own symmetry)."""
        t, v = np.asarray(self.knots), np.asarray(self.values)
        return (
            len(t) % 2 == 1
            and bool(np.allclose(t, -t[::-1], atol=0.0, rtol=0.0))
            and t[len(t) // 2] == 0.0
            and bool(np.allclose(v + v[::-1], 1.0, rtol=0.0, atol=1e-12))
        )

    def left_lines(self) -> list[tuple[float, float, float]]:
        """For a symmetric spline: ``(t_j, alpha_j, sigma_j)`` for the positive knots ``t_1 < .. < t_c``,
        such that left of 0 the spline is ``sum_j u_j (alpha_j + sigma_j z)`` with the nested
        indicators ``u_j = [-t_j <= z < t_j]`` (the line of ``[-t_j, -t_(j-1))`` minus the next one out)."""
        t, v = self.knots, self.values
        c = len(t) // 2
        lines = []  # line j (1-based) on [-t_j, -t_(j-1)): through (t[c-j], v[c-j]) and (t[c-j+1], ..)
        for j in range(1, c + 1):
            lo, hi = c - j, c - j + 1
            slope = (v[hi] - v[lo]) / (t[hi] - t[lo])
            lines.append((v[lo] - slope * t[lo], slope))
        lines.append((0.0, 0.0))  # below -t_c: 0
        return [
            (t[c + j], lines[j - 1][0] - lines[j][0], lines[j - 1][1] - lines[j][1]) for j in range(1, c + 1)
        ]

    def max_error(self, lo: float = -64.0, hi: float = 64.0) -> float:
        grid = np.linspace(lo, hi, 1_280_001)
        return float(np.max(np.abs(self(grid) - 1.0 / (1.0 + np.exp(-grid)))))


def _sigmoid_knots(*ts: float) -> Spline:
    knots = (*(-t for t in reversed(ts)), 0.0, *ts)
    return Spline(knots, tuple(float(1.0 / (1.0 + np.exp(-t))) for t in knots))


SPLINES: dict[str, Spline] = {
    "piecewise": Spline((-2.0, 2.0), (0.0, 1.0)),  # SecureML's clamp(1/2 + z/4, 0, 1)
    "spline": _sigmoid_knots(1.5, 4.0),
}


def spline_of(kind: str) -> Spline | None:
    """The spline of a sigmoid choice; ``None`` for ``"exact"``."""
    return None if kind == "exact" else SPLINES[kind]


@dataclass(frozen=True)
class NewtonConfig:
    """Böhning's method (public: every party passes the same). ``C``: scikit-learn's inverse
    regularization strength (``|w|^2 / (2 C)``, intercept not penalized)."""

    iterations: int = 10
    C: float = 1.0  # noqa: N815 (scikit-learn's name)
    nesterov: bool = True  # evaluate each step at w + (k - 1) / (k + 2) (w - w_prev): public weights
    sigmoid: Literal["spline", "piecewise", "exact"] = "spline"
    clip: float = 16.0
    feature_bits: int = 10
    coef_bits: int = 8
    slope_bits: int = 16  # fractional bits of the spline's slopes and values: 2^-16 of rounding
    ddof: int = field(default=0)  # the standardization's: 0 as scikit-learn's StandardScaler
    # start from the bound-weighted average of the parties' own fits (``local_fit``), not from 0
    warm_start: bool = True

    def check(self) -> None:
        if not 1 <= self.iterations <= 1000 or not self.C > 0 or not 1 <= self.clip <= 1024:
            raise ValueError(f"unusable Newton settings {self}")
        if self.sigmoid not in ("spline", "piecewise", "exact"):
            raise ValueError(f"sigmoid must be 'spline', 'piecewise' or 'exact', not {self.sigmoid!r}")
        if not 4 <= self.feature_bits <= 20 or not 1 <= self.coef_bits <= 20:
            raise ValueError("feature_bits must be within 4..20 and coef_bits within 1..20")


# Truncations declared this many bits below the widest the field allows: then, in a session with
# binary material (``comparison="auto"``), their masks fit two ranged randoms (inside
# ``rounds.wide_rounding``: ``rounds.ranged_widths``) or a loose edaBit high part
# (``rounds.loose_high_width``), both up to 84 of p127's 86 bits at three parties, instead of
# ``K + kappa`` field random bits. What it costs: 2 bits of headroom the values never use, 2 bits of
# the public factors 1/N and C (relative 2^-20 instead of 2^-22).
ROOM = 2


def upper_pairs(dim: int) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(dim)


def summary_of(x: np.ndarray, y: np.ndarray, n_total: int, cfg: NewtonConfig | None = None) -> np.ndarray:
    """One party's summary (float64, local): with ``Xa = [x, 1]``, the upper triangle of
    ``Xa^T Xa / (4 N)``, then its part of the first step's right-hand side, then ``Xa^T y / N``. The
    first step's part is ``Xa^T (y - 1/2) / N`` (the gradient at the model 0), or with
    ``cfg.warm_start`` ``B_j w_j / N``: this party's share ``B_j = Xa^T Xa / 4 + (n_j / N) I / C`` of
    the bound times its own fit ``w_j`` (``local_fit``), clipped to the declared coefficient range."""
    cfg = cfg or NewtonConfig()
    xa = np.column_stack([x, np.ones(x.shape[0])])
    iu = upper_pairs(xa.shape[1])
    gram = xa.T @ xa
    if cfg.warm_start:
        pen = _penalty(x.shape[1], cfg.C) * (x.shape[0] / n_total)
        w = np.clip(local_fit(xa, y, pen), -(2.0**cfg.coef_bits) + 1, 2.0**cfg.coef_bits - 1)
        first = (gram / 4.0 + np.diag(pen)) @ w
    else:
        first = xa.T @ (y - 0.5)
    return np.concatenate([gram[iu] / (4.0 * n_total), first / n_total, xa.T @ y / n_total])


def summary_length(d: int) -> int:
    dim = d + 1
    return dim * (dim + 1) // 2 + 2 * dim


def _penalty(d: int, c: float) -> np.ndarray:
    return np.asarray([1.0 / c] * d + [0.0])


def local_fit(xa: np.ndarray, y: np.ndarray, pen: np.ndarray, iterations: int = 30) -> np.ndarray:
    """One party's own fit, in float64 on its own rows only: Newton's method on its log-loss plus
    ``|w|^2 pen / 2`` (its share of the penalty), the intercept held by a penalty of ``1e-4`` times
    its row count so that a party whose rows are all of one class still gets a finite model.

    Why: Böhning's iteration is the same from any start, so a start near the answer saves row passes.
    The bound is a sum over the parties, ``B = sum_j B_j``, and the answer of the quadratic model
    ``B_j`` of party ``j``'s own objective around its own optimum ``w_j`` combine to
    ``B^-1 sum_j B_j w_j``: with the rows dealt at random, every ``w_j`` is near the joint model and so
    is the combination (breast cancer: within 1 point of scikit-learn after ONE row pass instead of
    four, ``docs/models.md``). It costs nothing in MPC: ``B_j w_j`` takes the place of the gradient at
    0 in the summary, and the first step is a solve with no row either way."""
    pen = pen + np.r_[np.zeros(xa.shape[1] - 1), 1e-4 * max(len(y), 1)]
    w = np.zeros(xa.shape[1])
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(xa @ w, -60.0, 60.0)))
        grad = xa.T @ (y - p) - pen * w
        hess = xa.T @ (xa * (p * (1.0 - p))[:, None]) + np.diag(pen)
        step = np.linalg.solve(hess, grad)
        w = w + step
        if float(np.max(np.abs(step))) < 1e-10:
            break
    return w


def _bits(v: float) -> int:
    return max(1, int(np.ceil(np.log2(v + 1))))


# ---------------------------------------------------------------------------------------- the bound
@dataclass
class Factor:
    """``H / N = L D L^T``: the multipliers ``W_k = U_k[1:] / U_kk`` (``L_jk = W_k[j - k - 1]``) at scale
    ``2^(2f)``, untruncated, and the reciprocal pivots ``1 / U_kk`` at ``2^f``."""

    w_rows: list[SharedArray]
    invs: SharedArray
    dim: int


def factor_steps(a_upper: SharedArray, dim: int, fmt: FixedFormat) -> Steps[Factor]:
    """Crout's order of ``L D L^T`` for the symmetric ``dim x dim`` matrix given by its upper triangle
    (row-major, scale ``2^f``): each entry of row ``k`` of ``U = D L^T`` is ONE sum
    ``A_kj - sum_l W_lk U_lj`` truncated once (as ``pooled.scaled_solve_steps``)."""
    fb, kappa = fmt.f, fmt.kappa
    at = {}
    iu, ju = upper_pairs(dim)
    for i, (a, b) in enumerate(zip(iu.tolist(), ju.tolist(), strict=True)):
        at[(a, b)] = i
    up = pow2(a_upper.ctx.field, 2 * fb)
    u_rows: list[SharedArray] = []
    w_rows: list[SharedArray] = []
    invs: list[SharedArray] = []
    for k in range(dim):
        cols = list(range(k, dim))
        base = pick(a_upper, np.asarray([at[(k, j)] for j in cols]))
        if k:
            xs, ys = [], []
            for j in cols:
                for ll in range(k):
                    xs.append(pick(w_rows[ll], np.asarray([k - ll - 1])))
                    ys.append(pick(u_rows[ll], np.asarray([j - ll])))
            (prod,) = yield [Mul(SharedArray.concat(xs), SharedArray.concat(ys))]
            uk = yield from trunc_steps(
                base.mul_public_field(up) - sum_groups(prod, len(cols)), 3 * fb + 4, 2 * fb, kappa
            )
        else:
            uk = base
        u_rows.append(uk)
        inv = yield from _pivot_reciprocal_steps(pick(uk, np.asarray([0])), fb, kappa)
        invs.append(inv)
        if k < dim - 1:
            (wk,) = yield [Mul(pick(uk, np.arange(1, len(cols))), tile_rows(inv, len(cols) - 1))]
            w_rows.append(wk)
    return Factor(w_rows, SharedArray.concat(invs), dim)


def solve_steps(fac: Factor, g: SharedArray, fmt: FixedFormat, bits: int) -> Steps[SharedArray]:
    """``(L D L^T)^-1 g`` for ``g`` at scale ``2^f`` (``|g|``, intermediate values and the result below
    ``2^bits``): forward substitution, the pivots, back substitution; one truncation per element of
    each, ``2 dim`` rounds of products."""
    fb, kappa, dim = fmt.f, fmt.kappa, fac.dim
    up = pow2(g.ctx.field, 2 * fb)
    wide = 3 * fb + bits + 1
    c: list[SharedArray] = [pick(g, np.asarray([0]))]
    for k in range(1, dim):
        coeffs = SharedArray.concat([pick(fac.w_rows[ll], np.asarray([k - ll - 1])) for ll in range(k)])
        (prod,) = yield [Mul(coeffs, SharedArray.concat(c))]
        lifted = pick(g, np.asarray([k])).mul_public_field(up) - prod.sum().flatten()
        c.append((yield from trunc_steps(lifted, wide, 2 * fb, kappa)))
    (ce,) = yield [Mul(SharedArray.concat(c), fac.invs)]
    e = yield from trunc_steps(ce, 2 * fb + bits + 1, fb, kappa)
    out: list[SharedArray | None] = [None] * dim
    out[dim - 1] = pick(e, np.asarray([dim - 1]))
    for k in reversed(range(dim - 1)):
        later = SharedArray.concat([out[j] for j in range(k + 1, dim)])  # type: ignore[misc]
        (prod,) = yield [Mul(fac.w_rows[k], later)]
        lifted = pick(e, np.asarray([k])).mul_public_field(up) - prod.sum().flatten()
        out[k] = yield from trunc_steps(lifted, wide, 2 * fb, kappa)
    return SharedArray.concat(out)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------- the sigmoid
def spline_steps(z: SharedArray, sp: Spline, zbits: int, fb: int, qs: int, kappa: int) -> Steps[SharedArray]:
    """``sp(z)`` at scale ``2^(fb + qs)`` for ``z`` at scale ``2^fb`` (``zbits``-bit): ``[z < t_i]`` for
    every knot from one masked opening, then ``sum_i [z >= t_i] (da_i + ds_i z)``: one product per
    knot, no truncation."""
    f = z.ctx.field
    if sp.symmetric and domain_of(None) == "binary" and loose_fits(f, z.ctx.n, zbits + 1, kappa):
        return (yield from _symmetric_spline_steps(z, sp, zbits, fb, qs))
    pieces = sp.pieces()
    offsets = [-round(t * 2.0**fb) for t, _, _ in pieces]
    lts = yield from ltz_offsets_steps(z, zbits + 1, offsets, kappa)
    lines = []
    for _, da, ds in pieces:
        lin = z.mul_public_field(f.from_ints([round(ds * 2.0**qs)]))
        lines.append(lin.add_public_field(f.from_ints([round(da * 2.0 ** (fb + qs))])))
    geq = [(-lt).add_public_field(f.from_ints([1])) for lt in lts]
    prods = yield [Mul(b, lin) for b, lin in zip(geq, lines, strict=True)]
    acc = prods[0]
    for p in prods[1:]:
        acc = acc + p
    return acc


def _symmetric_spline_steps(z: SharedArray, sp: Spline, zbits: int, fb: int, qs: int) -> Steps[SharedArray]:
    """``spline_steps`` for a symmetric spline on binary comparisons: the knots' ``[z < t]`` stay in the
    binary domain, where ``g = [z >= 0]`` and ``u_j = [-t_j <= z < t_j]`` (one AND each) are formed,
    and only those ``c + 1`` bits become field bits (daBits), not one per knot. With ``L = sum_j u_j
    alpha_j`` and ``S = sum_j u_j sigma_j`` (``Spline.left_lines``, linear in the converted bits) the
    spline is ``L + S z`` left of 0 and, by ``s(z) = 1 - s(-z)``, ``1 - L + S z`` from 0 on:
    ``L + g (1 - 2 L) + S z``: two products per row (``g (1 - 2 L)`` and ``S z``) for any number of
    knots. At 5 knots: 3 daBits and 2 triples per row instead of 5 and 5."""
    f = z.ctx.field
    n, knots = z.size, sp.knots
    c = len(knots) // 2
    offsets = [-round(t * 2.0**fb) for t in knots]
    lts = yield from ltz_offsets_bits_steps(z, zbits + 1, offsets)  # [z < t_i] in knot order
    pairs = yield [And(~lts[c - j], lts[c + j]) for j in range(1, c + 1)]  # u_j
    (bits,) = yield [ToField(AuthBits.concat([~lts[c], *pairs]))]  # g, u_1 .. u_c
    g, us = pick(bits, np.arange(n)), [pick(bits, np.arange(j * n, (j + 1) * n)) for j in range(1, c + 1)]
    one = 1 << (fb + qs)
    big_l = SharedArray(z.ctx, f.zeros(n), f.zeros(n))  # L = sum_j u_j alpha_j, scale 2^(fb + qs)
    big_s = SharedArray(z.ctx, f.zeros(n), f.zeros(n))  # S = sum_j u_j sigma_j, scale 2^qs
    for u, (_, alpha, sigma) in zip(us, sp.left_lines(), strict=True):
        big_l = big_l + u.mul_public_field(f.from_ints([round(alpha * 2.0 ** (fb + qs))]))
        big_s = big_s + u.mul_public_field(f.from_ints([round(sigma * 2.0**qs)]))
    # L + g (1 - 2 L) + S z: two products per row, whatever the number of knots
    flip = (-big_l.mul_public_field(f.from_ints([2]))).add_public_field(f.from_ints([one]))
    (prods,) = yield [Mul(SharedArray.concat([g, big_s]), SharedArray.concat([flip, z]))]
    return big_l + pick(prods, np.arange(n)) + pick(prods, np.arange(n, 2 * n))


# ---------------------------------------------------------------------------------------- the method
def newton_steps(
    x: SharedArray,
    summ: SharedArray,
    n: int,
    d: int,
    cfg: NewtonConfig,
    fmt: FixedFormat,
    progress: Callable[[int], None] | None = None,
    owners: Sequence[int] | None = None,
) -> Steps[SharedArray]:
    """Böhning's iteration; returns ``[w; b]`` (standardized units) at scale ``2^f``.

    ``x``: the flat ``(n, d)`` rows at scale ``2^feature_bits``; ``summ``: the sum of the parties'
    ``summary_of`` at scale ``2^f``. ``owners``: how many of the rows (in order) each party input;
    then, in a session that compares on bits (binary material), ``X w`` and ``X^T p`` are owned
    products (``rounds.OwnedMul``: each party's rows are its own) instead of triples."""
    f = x.ctx.field
    fb, fxb, kappa = fmt.f, cfg.feature_bits, fmt.kappa
    dim = d + 1
    q = dim * (dim + 1) // 2
    iu, ju = upper_pairs(dim)
    diag = np.asarray([i for i, (a, b) in enumerate(zip(iu, ju, strict=True)) if a == b and a < d])
    lam = 1.0 / (cfg.C * n)
    a_upper = pick(summ, np.arange(q))
    bump = np.zeros(q, dtype=object)
    bump[diag] = round(lam * 2.0**fb)
    if round(lam * 2.0**fb) < 1 << 5:
        raise ParameterMismatch(f"1 / (C N) = {lam:g} is below the resolution of the pivots: use a smaller C")
    a_upper = _add_public(a_upper, bump)
    first = pick(summ, q + np.arange(dim))  # the first step's right-hand side (summary_of)
    r_y = pick(summ, q + dim + np.arange(dim))
    top = max_bits(f, kappa)
    wb_bits = cfg.coef_bits + fb + 2
    zbits = _bits(d * cfg.clip + 1) + cfg.coef_bits + fb + 2
    check_bits(f, zbits + 1, kappa, "logistic regression: scores")
    sp = spline_of(cfg.sigmoid)
    qs = 0 if sp is None else cfg.slope_bits
    gbits = _bits(n * cfg.clip) + fxb + fb + qs + 2
    lr_int, shift, gk = _scaling(1.0 / n, gbits, top - ROOM, fxb + qs)
    cols = np.arange(n * d).reshape(n, d).T.reshape(-1)
    row_of = np.repeat(np.arange(n), d)
    every = np.zeros(n, dtype=np.int64)
    pen = _penalty(d, cfg.C * n)  # lam on the features

    owned = owners is not None and owned_available(current_session())
    if owners is not None and sum(owners) != n:
        raise ParameterMismatch(f"the owners' row counts {list(owners)} do not add up to {n} rows")
    bounds = np.cumsum([0, *(owners if owners is not None else [n])])
    # party j's rows r0 <= r < r1 are x[r0 d : r1 d] (flat, row-major); parties without rows: none
    spans = [(j, r0, r1) for j, (r0, r1) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)) if r1 > r0]

    # the row products: a row's features times w (an owned group per column), or times that row's p
    # (a group per row)
    def times_w(w: SharedArray) -> list[Mul | OwnedMul]:
        if not owned:
            return [Mul(x, tile_rows(w, n))]
        return [
            OwnedMul(take(x, slice(r0 * d, r1 * d)), w, np.tile(np.arange(d), r1 - r0), j)
            for j, r0, r1 in spans
        ]

    def times_p(p: SharedArray) -> list[Mul | OwnedMul]:
        if not owned:
            return [Mul(x, pick(p, row_of))]
        return [
            OwnedMul(
                take(x, slice(r0 * d, r1 * d)),
                pick(p, np.arange(r0, r1)),
                np.repeat(np.arange(r1 - r0), d),
                j,
            )
            for j, r0, r1 in spans
        ]

    fac = yield from factor_steps(a_upper, dim, fmt)
    wb = SharedArray(x.ctx, f.zeros(dim), f.zeros(dim))  # w_k
    prev = wb  # w_(k-1)
    for it in range(cfg.iterations):
        at = wb
        if it == 0:
            # from 0: p = 1/2 everywhere, the summaries' X^T (y - 1/2) / N; warm: B^-1 sum_j B_j w_j
            g = first
        else:
            # the look-ahead point, public weight (k - 1) / (k + 2) for step k = it + 1; a warm start
            # is a restart: its first row pass has no momentum, so k counts from it
            k = it - 1 if cfg.warm_start else it
            if cfg.nesterov and k:
                at = wb + (yield from fx.mul_public_steps(wb - prev, np.full(dim, k / (k + 3)), fmt, ROOM))
            wl = yield from trunc_steps(at, wb_bits, fxb, kappa)  # scale 2^(f - fxb)
            w, b = pick(wl, np.arange(d)), pick(wl, np.asarray([d]))
            prod = SharedArray.concat((yield times_w(w)))
            z = sum_groups(prod, n) + pick(b.mul_public_field(pow2(f, fxb)), every)  # scale 2^f
            if sp is None:
                p = yield from fx.sigmoid_steps(z, fmt)
            else:
                p = yield from spline_steps(z, sp, zbits, fb, qs, kappa)  # scale 2^(f + qs)
            gp = SharedArray.concat((yield times_p(p)))
            xtp = SharedArray.concat(
                [sum_groups(pick(gp, cols), d), p.sum().flatten().mul_public_field(pow2(f, fxb))]
            )
            xtp_n, pen_w = yield from parallel(
                [_scaled_steps(xtp, lr_int, shift, gk, kappa), fx.mul_public_steps(at, pen, fmt, ROOM)]
            )
            g = r_y - xtp_n - pen_w
        step = yield from solve_steps(fac, g, fmt, top - ROOM - 3 * fb - 1)
        prev, wb = wb, at + step
        if it == 0 and cfg.warm_start:
            prev = wb
        if progress is not None:
            progress(it + 1)
    return wb


def _add_public(x: SharedArray, c: np.ndarray) -> SharedArray:
    f = x.ctx.field
    return x.add_public_field(f.from_ints([int(v) for v in c]))


def _scaled_steps(x: SharedArray, lr_int: int, shift: int, k: int, kappa: int) -> Steps[SharedArray]:
    f = x.ctx.field
    return (yield from trunc_steps(x.mul_public_field(f.from_ints([lr_int])), k, shift, kappa))


def _scaling(step: float, gbits: int, top: int, excess: int) -> tuple[int, int, int]:
    from .regression import _step_scaling

    return _step_scaling(step, gbits, top, excess)
