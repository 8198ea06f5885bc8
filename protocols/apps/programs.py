"""The applications as registered programs: one coroutine ``run(s, values)`` per name, with the parser
of its input and the renderer of its result. ``actors.programs`` registers them (``spdz submit``,
the daemon, ``local_cluster`` and the embedding API all look them up by name).

Inputs. ``spdz submit`` reads numbers (one per line, or CSV columns: a table) in blocks and sends
them as an array; clients of the control socket and embedders may also send a list of rows.
``parse`` turns either into a float array, which is what ``run`` receives (and what an embedder
passes to it directly):

* column programs (``stats_count``, ``stats_sum``, ``stats_mean``, ``stats_variance``): a flat list is
  one column; a list of rows is a table (one result per column);
* table programs (``stats_covariance``, ``stats_correlation``, ``stats_mean_where``,
  ``linreg_train``, ``logreg_train``): a list of rows, or flat as ``[c, row 1 ..., row 2 ..., ...]``
  with the column count ``c`` first. Regressions take the target as the last column;
  ``stats_mean_where`` the 0/1 flag;
* ``stats_histogram``: flat ``[m, e_1, ..., e_m, x_1, x_2, ...]``: ``m`` bin edges, then the values;
  every party must give the same edges (checked: ``agree``);
* ``linreg_predict``/``logreg_predict``: flat, a role first: ``[1, coef_1, ..., coef_d, intercept]``
  from the party that owns the model, ``[2, d, row 1 ..., row 2 ...]`` from the party whose rows are
  scored (it alone gets the predictions), ``[0]`` from any other party. Roles are public (``agree``
  on the list of roles and ``d``), the model and the rows are not.

A party with no rows gives ``[c]`` (a table program) or an empty row list. Every program's docstring
(its ``summary``) says what it reveals. The statistics and ``linreg_train`` work on owner-private
rows (``protocols.private``, ``pooled``): each party summarises its own rows and only the summaries
are combined, so they reveal their result and the column count, not even the parties' row counts.
``logreg_train`` and the predictions input rows, so they reveal each party's row count (input shapes
are public).
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..online import Session
from . import logistic as lg
from . import regression as rg
from . import stats
from .table import ParameterMismatch, agree, share_table

__all__ = ["PROGRAMS", "AppInputError", "Spec", "parse_numbers"]

MAX_ABS = 2.0**40  # inputs are fixed point with |x| < 2^43; leave room for sums of a few values
MAX_ELEMENTS = 1 << 26  # per party: a daemon's default upload limit, and what one session input takes
LOGREG = lg.NewtonConfig()  # Böhning's method, 10 iterations, scikit-learn's C = 1 and standardization


class AppInputError(ValueError):
    """This party's input does not fit the program; the message is for the submitter."""


@dataclass(frozen=True)
class Spec:
    name: str
    run: Callable[[Session, np.ndarray], Awaitable[Any]]
    summary: str
    parse: Callable[[Sequence[Any]], np.ndarray]
    render: Callable[[Any], str]
    dp: str | None = None  # takes a declared DP cost: "plain", or "bounds" (needs clipping bounds)
    session: dict[str, Any] = field(default_factory=dict)  # Session options it runs with

    @classmethod
    def of(
        cls,
        name: str,
        run: Callable[[Session, np.ndarray], Awaitable[Any]],
        parse: Callable[[Sequence[Any]], np.ndarray],
        summary: str | None = None,
        dp: str | None = None,
        session: dict[str, Any] | None = None,
    ) -> Spec:
        """A spec whose summary is ``summary`` or the program's docstring on one line."""
        text = " ".join((summary or run.__doc__ or "").split())
        return cls(name, run, text, parse, _render, dp, dict(session or {}))


def _number(v: Any, where: str) -> float:
    if isinstance(v, str):
        try:
            # float() parses a digit string of any length (int() refuses more than 4300 digits)
            v = int(v) if v.strip().lstrip("+-").isdigit() and len(v) <= 300 else float(v)
        except ValueError:
            raise AppInputError(f"{where}: {v[:40]!r} is not a number") from None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise AppInputError(f"{where}: expected a number, got {type(v).__name__}")
    x = float(v) if not isinstance(v, int) or abs(v) < 1 << 1000 else math.inf
    if not math.isfinite(x) or abs(x) > MAX_ABS:
        shown = repr(v) if len(repr(v)) <= 40 else f"{repr(v)[:40]}..."
        raise AppInputError(f"{where}: {shown} is not a finite number of magnitude at most 2^40")
    return x


def parse_numbers(raw: Sequence[Any]) -> np.ndarray:
    """A flat list of numbers (1-d) or a list of equal-length rows (2-d) as a float array.

    A numeric numpy array of 1 or 2 dimensions (the daemon's chunked upload, an embedder's data) is
    checked in one pass, without a Python loop (finite, ``|x| <= MAX_ABS``, at most ``MAX_ELEMENTS``),
    and returned as float64 (the same array if it already is).
    """
    if isinstance(raw, np.ndarray) and raw.dtype.kind in "iuf" and raw.ndim in (1, 2):
        if raw.size > MAX_ELEMENTS:
            raise AppInputError(f"input has more than {MAX_ELEMENTS} values")
        if raw.ndim == 2 and raw.shape[0] and not raw.shape[1]:
            raise AppInputError("rows must all have the same, non-zero number of values")
        arr = np.asarray(raw, dtype=np.float64)
        if arr.size and not (arr.min() >= -MAX_ABS and arr.max() <= MAX_ABS):  # NaN fails both
            flat = arr.reshape(-1)
            i = int(np.argmax(~(np.abs(flat) <= MAX_ABS)))
            where = f"row {i // arr.shape[1] + 1}" if arr.ndim == 2 else f"value {i + 1}"
            raise AppInputError(
                f"{where}: {float(flat[i])!r} is not a finite number of magnitude at most 2^40"
            )
        return arr
    if isinstance(raw, np.ndarray):
        raw = raw.tolist()
    if not isinstance(raw, (list, tuple)):
        raise AppInputError(f"input must be a list of numbers or of rows, got {type(raw).__name__}")
    if raw and all(isinstance(r, (list, tuple)) for r in raw):
        width = len(raw[0])
        if width == 0 or any(len(r) != width for r in raw):
            raise AppInputError("rows must all have the same, non-zero number of values")
        if len(raw) * width > MAX_ELEMENTS:
            raise AppInputError(f"input has more than {MAX_ELEMENTS} values")
        return np.asarray(
            [[_number(v, f"row {i + 1}") for v in r] for i, r in enumerate(raw)], dtype=np.float64
        )
    if len(raw) > MAX_ELEMENTS:
        raise AppInputError(f"input has more than {MAX_ELEMENTS} values")
    return np.asarray([_number(v, f"value {i + 1}") for i, v in enumerate(raw)], dtype=np.float64)


def _nonempty(raw: Sequence[Any]) -> np.ndarray:
    arr = parse_numbers(raw)
    if arr.size == 0:
        raise AppInputError("input is empty")
    return arr


def as_table(values: np.ndarray) -> np.ndarray:
    """A table from a 2-d array, or from the flat ``[c, values...]`` form."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 2:
        return arr
    if arr.ndim != 1 or arr.size < 1:
        raise AppInputError("a table is a list of rows, or flat with the column count first")
    c = arr[0]
    if c != int(c) or not 1 <= c <= 1024 or (arr.size - 1) % int(c):
        raise AppInputError(
            f"flat table input: the first value is the column count, then whole rows "
            f"(got {arr[0]:g} columns and {arr.size - 1} values)"
        )
    return arr[1:].reshape(-1, int(c))


def _table_parse(raw: Sequence[Any]) -> np.ndarray:
    arr = _nonempty(raw)
    as_table(arr)  # validate now: the submitter hears of a malformed table, not a session abort
    return arr


def _column_rows(values: np.ndarray) -> np.ndarray | None:
    arr = np.asarray(values, dtype=np.float64)
    return None if arr.size == 0 else arr


def _table_rows(values: np.ndarray) -> np.ndarray | None:
    t = as_table(values)
    return None if t.shape[0] == 0 else t


def _listed(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v


def _render(result: Any) -> str:
    if isinstance(result, dict):
        return "\n".join(f"{k}: {json.dumps(_listed(v))}" for k, v in result.items())
    return str(result)


# ---------------------------------------------------------------------------------------- statistics
def _declared(s: Session) -> Any:
    """The session's declared DP cost (``protocols.dp.allowance.Declared``), or None: an exact output."""
    return None if s.privacy is None else s.privacy.declared


def _dp_note(declared: Any) -> dict[str, Any]:
    return {"dp": declared.describe()} if declared is not None else {}


async def count_program(s: Session, values: np.ndarray) -> dict[str, Any]:
    """Number of rows over all parties. Reveals the total only (not each party's count). With a
    declared DP cost (``spdz submit --dp ...``): the total plus noise for one row."""
    d = _declared(s)
    dp = None if d is None else d.dp()
    return {"count": await stats.count(s, _column_rows(values), dp=dp), **_dp_note(d)}


async def sum_program(s: Session, values: np.ndarray) -> dict[str, Any]:
    """Sum of every party's values (per column). Reveals the sums only. With a declared DP cost: one
    column, clamped by every owner to the declared bounds, plus noise for one row."""
    d = _declared(s)
    if d is None:
        return {"sum": await stats.total(s, _column_rows(values))}
    got = await stats.total(s, _column_rows(values), dp=d.dp(), bounds=d.bounds)
    return {"sum": got, **_dp_note(d)}


async def mean_program(s: Session, values: np.ndarray) -> dict[str, Any]:
    """Mean of every party's values (per column), fixed point. Reveals the means only. With a declared
    DP cost: noisy sums over a noisy count, every owner clamping to the declared bounds."""
    d = _declared(s)
    if d is None:
        return {"mean": await stats.mean(s, _column_rows(values))}
    got = await stats.mean(s, _column_rows(values), dp=d.dp(), bounds=d.bounds)
    return {"mean": got, **_dp_note(d)}


async def variance_program(s: Session, values: np.ndarray) -> dict[str, Any]:
    """Sample variance (ddof 1) per column. Reveals the variances only. With a declared DP cost: from
    a noisy count, sums and sums of squares of the rows clamped to the declared bounds."""
    d = _declared(s)
    if d is None:
        return {"variance": await stats.variance(s, _column_rows(values))}
    got = await stats.variance(s, _column_rows(values), dp=d.dp(), bounds=d.bounds)
    return {"variance": got, **_dp_note(d)}


async def covariance_program(s: Session, values: np.ndarray) -> dict[str, Any]:
    """Covariance matrix of the columns (ddof 1). Reveals the matrix only."""
    return {"covariance": await stats.covariance(s, _table_rows(values))}


async def correlation_program(s: Session, values: np.ndarray) -> dict[str, Any]:
    """Pearson correlation matrix of the columns. Reveals the coefficients only."""
    return {"correlation": await stats.correlation(s, _table_rows(values))}


async def mean_where_program(s: Session, values: np.ndarray) -> dict[str, Any]:
    """Means of the columns over the rows whose LAST column is 1 (a 0/1 flag). Reveals those means
    only (not the number of flagged rows, nor the row counts)."""
    return {"mean_where": await stats.mean_where(s, _table_rows(values), -1)}


def _histogram_parts(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size < 1 or arr[0] != int(arr[0]) or not 2 <= arr[0] <= 256 or arr.size < 1 + int(arr[0]):
        raise AppInputError("histogram input: the edge count m (2..256) first, then m edges, then the values")
    m = int(arr[0])
    edges = arr[1 : 1 + m]
    if not np.all(np.diff(edges) > 0):
        raise AppInputError("histogram edges must be strictly increasing")
    return edges, arr[1 + m :]


def _histogram_parse(raw: Sequence[Any]) -> np.ndarray:
    arr = _nonempty(raw)
    _histogram_parts(arr)
    return arr


async def histogram_program(s: Session, values: np.ndarray) -> dict[str, Any]:
    """Counts of every party's values in the agreed bins (each party counts its own; the counts are
    added securely). Reveals the bin counts only."""
    edges, xs = _histogram_parts(values)
    await agree(s, "histogram edges", edges)
    d = _declared(s)
    counts = await stats.histogram(s, xs if xs.size else None, edges, dp=None if d is None else d.dp())
    return {"edges": edges, "counts": counts, **_dp_note(d)}


# ---------------------------------------------------------------------------------------- regression
def _xy(values: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
    t = _table_rows(values)
    if t is None:
        return None, None
    if t.shape[1] < 2:
        raise AppInputError("a regression table needs feature columns and the target last")
    return t[:, :-1], t[:, -1]


async def linreg_program(s: Session, values: np.ndarray) -> dict[str, Any]:
    """Least-squares linear regression of the last column on the others. Reveals the coefficients and
    the intercept only."""
    model = await rg.linear_regression(s, *_xy(values))
    assert model is not None
    return {"coef": model.coef, "intercept": model.intercept}


async def logreg_program(s: Session, values: np.ndarray) -> dict[str, Any]:
    """Logistic regression (0/1 target last) as scikit-learn's ``LogisticRegression()`` on
    ``StandardScaler``-standardized features (L2, C = 1): Böhning's fixed-Hessian method, 10
    iterations, spline sigmoid (``protocols.apps.logistic``). Reveals the model, the total row count,
    the per-feature means and standard deviations used to standardize, and the row counts."""
    x, y = _xy(values)
    scaler = await rg.standardizer(s, x, clip=LOGREG.clip, ddof=LOGREG.ddof)
    model = await rg.logistic_regression(s, x, y, config=LOGREG, scaler=scaler)
    assert isinstance(model, rg.LogisticModel)
    return {"coef": model.coef, "intercept": model.intercept, "mean": scaler.mean, "scale": scaler.scale}


def _predict_parse(raw: Sequence[Any]) -> np.ndarray:
    arr = _nonempty(raw)
    _predict_role(arr)
    return arr


def _predict_role(values: np.ndarray) -> tuple[int, int, np.ndarray]:
    """``(role, d, payload)``: 1 the model (``d`` coefficients and an intercept), 2 rows of ``d`` features
    to score, 0 nothing."""
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    role = arr[0] if arr.size else -1
    if role == 0 and arr.size == 1:
        return 0, 0, arr[:0]
    if role == 1 and arr.size >= 3:
        return 1, arr.size - 2, arr[1:]
    if role == 2 and arr.size >= 2 and arr[1] == int(arr[1]) and arr[1] >= 1:
        d = int(arr[1])
        if (arr.size - 2) % d == 0 and arr.size > 2:
            return 2, d, arr[2:].reshape(-1, d)
    raise AppInputError(
        "prediction input: [1, coef..., intercept] (the model), [2, d, rows...] (rows to score) or [0]"
    )


def _predict_program(kind: str, output: str) -> Callable[[Session, np.ndarray], Awaitable[Any]]:
    async def run(s: Session, values: np.ndarray) -> dict[str, Any]:
        role, d, payload = _predict_role(values)
        roles = [int(r) for r in await _announce(s, role, d)]
        if roles.count(1) != 1 or roles.count(2) != 1:
            raise ParameterMismatch(f"prediction needs one model owner and one row owner, roles were {roles}")
        model_owner, rows_owner = roles.index(1), roles.index(2)
        model = None
        if role == 1:
            cls = rg.LogisticModel if kind == "logistic" else rg.LinearModel
            model = cls(payload[:-1], float(payload[-1]))
        secret = await rg.share_model(s, model, model_owner)
        preds = await rg.predict(s, secret, payload if role == 2 else None, rows_owner, output=output)
        return {"role": ("other", "model owner", "row owner")[role], output: preds}

    return run


async def _announce(s: Session, role: int, d: int) -> list[float]:
    """Every party's role, made public; the parties must agree on the feature count ``d`` of the model
    owner and the row owner (the others announce 0)."""
    t = await share_table(s, np.asarray([[role, d]], dtype=np.float64))
    out = await t.x.reveal()
    assert out is not None
    dims = {int(dd) for r, dd in out if r in (1, 2)}
    if len(dims) > 1:
        raise ParameterMismatch(f"the model and the rows have different feature counts: {sorted(dims)}")
    return [float(r) for r, _ in out]


PROGRAMS: tuple[Spec, ...] = (
    Spec.of("stats_count", count_program, parse_numbers, dp="plain"),
    Spec.of("stats_sum", sum_program, _nonempty, dp="bounds"),
    Spec.of("stats_mean", mean_program, _nonempty, dp="bounds"),
    Spec.of("stats_variance", variance_program, _nonempty, dp="bounds"),
    Spec.of("stats_covariance", covariance_program, _table_parse),
    Spec.of("stats_correlation", correlation_program, _table_parse),
    Spec.of("stats_mean_where", mean_where_program, _table_parse),
    Spec.of("stats_histogram", histogram_program, _histogram_parse, dp="plain"),
    Spec.of("linreg_train", linreg_program, _table_parse),
    # its sigmoid's comparisons and its truncation masks on binary material where the party has it
    # (a quarter of the preprocessing: docs/models.md); the field path otherwise
    Spec.of("logreg_train", logreg_program, _table_parse, session={"comparison": "auto"}),
    Spec.of(
        "linreg_predict",
        _predict_program("linear", "score"),
        _predict_parse,
        "Score one party's rows with another party's linear model: the scores go to the row owner only; "
        "the model owner learns nothing but the row count.",
    ),
    Spec.of(
        "logreg_predict",
        _predict_program("logistic", "probability"),
        _predict_parse,
        "Probabilities of one party's rows under another party's logistic model, to the row owner only; "
        "the model owner learns nothing but the row count.",
    ),
)
