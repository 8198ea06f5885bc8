"""The applications (``protocols.apps``) against plaintext numpy: 3 parties, p = 2^127 - 1, dealer.

Tolerances. Statistics: within 1e-3 of numpy, *relative* where the exact value's magnitude is at
least 1 and *absolute* below (fixed point has absolute resolution 2^-20, so a relative bound on tiny
values would promise what no fixed-point result has): ``|got - want| <= 1e-3 max(1, |want|)``. The
data mixes columns of very different scales (thousands, units, hundredths) to exercise exactly that.
Counts (histogram, count) are exact. Regression coefficients: the same bound against
``numpy.linalg.lstsq``. Logistic regression: accuracy within 2 points of the same gradient descent
in float64, coefficients close to it. Inference: the plaintext prediction within 1e-3.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from helpers import (
    add_delta,
    assert_share_cheats_caught,
    noop,
    plain_bohning,
    run_cluster,
    run_each,
)

from actors import programs
from protocols.apps import regression as rg
from protocols.apps import stats
from protocols.apps.programs import LOGREG, PROGRAMS, AppInputError, parse_numbers
from protocols.apps.table import ParameterMismatch, share_table
from protocols.errors import AbortError
from protocols.field import P127
from protocols.online import Session

N = 3
TOL = 1e-3


def within(got: Any, want: Any, what: str, tol: float = TOL) -> None:
    g, w = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert g.shape == w.shape, f"{what}: shape {g.shape} != {w.shape}"
    err = np.abs(g - w) / np.maximum(1.0, np.abs(w))
    assert np.all(err <= tol), f"{what}: worst error {float(np.max(err)):.2e} (got {g}, want {w})"


def tables(seed: int = 5, sizes: tuple[int, ...] = (23, 9, 17)) -> list[np.ndarray]:
    """Rows per party: a column in the thousands, one in units correlated with it, a 0/1 flag and a
    column in hundredths."""
    rng = np.random.default_rng(seed)
    out = []
    for i, n in enumerate(sizes):
        big = rng.normal(2500.0 + 300 * i, 700.0, n)
        mid = 0.002 * big + rng.normal(1.0, 0.8, n)
        flag = (rng.random(n) < 0.4).astype(np.float64)
        small = rng.normal(0.05, 0.02, n) + 0.01 * flag
        out.append(np.column_stack([big, mid, flag, small]))
    return out


def each(values: list[Any]) -> list[tuple[Any, ...]]:
    return [(v,) for v in values]


# ---------------------------------------------------------------------------------------- statistics
async def test_statistics_match_numpy() -> None:
    parts = tables()
    u = np.concatenate(parts)

    async def prog(s: Session, mine: np.ndarray) -> dict[str, Any]:
        t = await share_table(s, mine)
        return {
            "count": await stats.count(s, mine),
            "total": await stats.total(s, t),
            "mean": await stats.mean(s, t),
            "var": await stats.variance(s, t),
            "var0": await stats.variance(s, t, ddof=0),
            "cov": await stats.covariance(s, t),
            "corr": await stats.correlation(s, t),
            "mean_where": await stats.mean_where(s, t, 2),
        }

    res = await run_cluster(N, P127, prog, per_party=each(parts))
    for r in res[1:]:
        assert all(np.array_equal(np.asarray(r[k]), np.asarray(res[0][k])) for k in r), "parties disagree"
    got = res[0]
    assert got["count"] == len(u)
    within(got["total"], u.sum(axis=0), "sum")
    within(got["mean"], u.mean(axis=0), "mean")
    within(got["var"], u.var(axis=0, ddof=1), "variance")
    within(got["var0"], u.var(axis=0), "variance ddof=0")
    within(got["cov"], np.cov(u, rowvar=False), "covariance")
    within(got["corr"], np.corrcoef(u, rowvar=False), "correlation")
    flagged = u[u[:, 2] == 1]
    within(got["mean_where"], flagged[:, [0, 1, 3]].mean(axis=0), "mean_where")


async def test_one_column_gives_scalars_and_private_outputs_reach_one_party() -> None:
    rng = np.random.default_rng(8)
    parts = [rng.normal(40.0, 9.0, n) for n in (15, 0, 11)]  # party 1 has no rows
    u = np.concatenate(parts)

    async def prog(s: Session, mine: np.ndarray) -> tuple[Any, ...]:
        t = await share_table(s, mine if mine.size else None)
        return (
            await stats.mean(s, t),
            await stats.variance(s, t, to=2),
            await stats.covariance(s, t),
            await stats.count(s, mine, to=0),
        )

    res = await run_cluster(N, P127, prog, per_party=each(parts))
    for i, (m, v, c, k) in enumerate(res):
        assert isinstance(m, float)
        within(m, u.mean(), "mean")
        within(c, np.var(u, ddof=1), "covariance of one column")
        assert (v is None) == (i != 2) and (k is None) == (i != 0)
    within(res[2][1], u.var(ddof=1), "private variance")
    assert res[0][3] == len(u)


async def test_histogram_counts_are_exact_at_the_edges_and_outside() -> None:
    edges = [-5.0, 0.0, 2.5, 10.0, 100.0]
    parts = [
        np.array([-5.0, -4.99, 0.0, 2.5, 2.49, 100.0, 100.01, -7.0]),
        np.array([10.0, 9.999, 0.001, 55.0]),
        np.array([-6.0, 3.0, 99.99, 1000.0, 2.5, 0.0]),
    ]
    want = np.histogram(np.concatenate(parts), bins=np.asarray(edges))[0]

    async def prog(s: Session, mine: np.ndarray) -> Any:
        return await stats.histogram(s, mine, edges)

    for got in await run_cluster(N, P127, prog, per_party=each(parts)):
        assert got.dtype.kind == "i" and np.array_equal(got, want), (got, want)


async def test_malformed_requests_fail_at_every_party() -> None:
    async def prog(s: Session, kind: str) -> Any:
        if kind == "columns":  # party 1 brings a different number of columns
            return await stats.mean(s, np.ones((3, 2 if s.party != 1 else 3)))
        if kind == "edges":
            return await stats.histogram(s, np.ones(3), [1.0, 1.0, 2.0])
        return await stats.correlation(s, np.ones(4))

    for kind in ("columns", "edges", "one-column correlation"):
        res = await run_each(N, P127, prog, kind)
        refused(res, kind)


def refused(res: list[Any], what: str) -> None:
    """Every party failed: with ``ParameterMismatch``, or with the abort of a peer that raised it
    first (a party still waiting for a message then hears of the abort before it decides itself)."""
    assert all(isinstance(r, (ParameterMismatch, AbortError)) for r in res), (what, res)
    assert any(isinstance(r, ParameterMismatch) for r in res), (what, res)


# ---------------------------------------------------------------------------------------- regression
async def test_linear_regression_matches_lstsq() -> None:
    rng = np.random.default_rng(11)
    x = rng.normal(0.0, 1.0, (60, 3)) * [1.0, 40.0, 0.05] + [3.0, -100.0, 2.0]
    x[:, 1] += 10.0 * x[:, 0]  # correlated features
    y = x @ [1.5, -0.02, 30.0] + 7.0 + rng.normal(0.0, 0.3, 60)
    cuts = [(0, 25), (25, 37), (37, 60)]
    per = [(x[a:b], y[a:b]) for a, b in cuts]
    want = np.linalg.lstsq(np.column_stack([x, np.ones(len(x))]), y, rcond=None)[0]

    async def prog(s: Session, mine: tuple[np.ndarray, np.ndarray]) -> Any:
        return await rg.linear_regression(s, *mine)

    for m in await run_cluster(N, P127, prog, per_party=each(per)):
        within(m.coef, want[:3], "coefficients")
        within(m.intercept, want[3], "intercept")


def logistic_data(seed: int = 3, n: int = 90, d: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, (n, d))
    y = (x @ np.linspace(1.5, -1.0, d) + 0.3 + rng.logistic(0.0, 0.6, n) > 0).astype(np.int64)
    return x, y


def plain_gd(x: np.ndarray, y: np.ndarray, cfg: rg.GDConfig) -> tuple[np.ndarray, float]:
    sig = (
        (lambda z: 1.0 / (1.0 + np.exp(-z)))
        if cfg.sigmoid == "exact"
        else (lambda z: np.clip(0.5 + z / 4.0, 0.0, 1.0))
    )
    w, b = np.zeros(x.shape[1]), 0.0
    for lr in cfg.rates():
        r = sig(x @ w + b) - y
        w, b = w - lr / len(x) * (x.T @ r), b - lr / len(x) * float(r.sum())
    return w, b


@pytest.mark.parametrize("sigmoid", ["exact", "piecewise"])
async def test_logistic_regression_follows_plaintext_gradient_descent(sigmoid: str) -> None:
    x, y = logistic_data()
    cfg = rg.GDConfig(epochs=4, lr=1.0, sigmoid=sigmoid)  # type: ignore[arg-type]
    per = [(x[:40], y[:40]), (x[40:55], y[40:55]), (x[55:], y[55:])]

    async def prog(s: Session, mine: tuple[np.ndarray, np.ndarray]) -> Any:
        return await rg.logistic_regression(s, *mine, config=cfg, scaler=None)

    res = await run_cluster(N, P127, prog, per_party=each(per))
    w, b = plain_gd(x, y, cfg)
    for m in res:
        # features enter at 2^-10 resolution and the forward pass uses 2^-10 weights: a few 1e-3
        assert np.max(np.abs(m.coef - w)) < 0.02 and abs(m.intercept - b) < 0.02, (m, w, b)
        acc, plain = np.mean(m.predict(x) == y), np.mean(((x @ w + b) > 0) == y)
        assert abs(acc - plain) <= 0.02


async def test_inference_on_a_private_input_equals_plaintext() -> None:
    rng = np.random.default_rng(4)
    model = rg.LogisticModel(np.array([0.8, -1.2, 0.05]), -0.4)
    rows = rng.normal(0.0, 2.0, (7, 3))

    async def prog(s: Session) -> Any:
        secret = await rg.share_model(s, model if s.party == 0 else None, owner=0)
        mine = rows if s.party == 2 else None
        return [
            await rg.predict(s, secret, mine, owner=2, output=o) for o in ("score", "probability", "label")
        ]

    res = await run_cluster(N, P127, prog)
    assert res[0] == [None] * 3 and res[1] == [None] * 3  # the model owner and the third party: nothing
    score, prob, label = res[2]
    within(score, model.decision(rows), "scores")
    within(prob, model.predict_proba(rows), "probabilities")
    assert np.array_equal(label, model.predict(rows))


async def test_a_model_trained_and_kept_secret_scores_another_partys_rows() -> None:
    x, y = logistic_data(seed=9, n=60, d=3)
    cfg = rg.GDConfig(epochs=3, lr=1.0, sigmoid="piecewise")
    queries = np.random.default_rng(1).normal(0.0, 1.0, (5, 3))

    async def prog(s: Session, mine: tuple[np.ndarray, np.ndarray]) -> Any:
        secret = await rg.logistic_regression(s, *mine, config=cfg, scaler=None, reveal=False)
        assert isinstance(secret, rg.SecretModel)
        return await rg.predict(s, secret, queries if s.party == 1 else None, owner=1)

    per = [(x[:20], y[:20]), (x[20:45], y[20:45]), (x[45:], y[45:])]
    res = await run_cluster(N, P127, prog, per_party=each(per))
    assert res[0] is None and res[2] is None
    w, b = plain_gd(x, y, cfg)
    assert np.max(np.abs(res[1] - (queries @ w + b))) < 0.05


async def test_a_party_cheating_during_training_is_caught_by_every_honest_party() -> None:
    x, y = logistic_data(n=45, d=3)
    cfg = rg.GDConfig(epochs=3, lr=1.0, sigmoid="piecewise")
    per = [(x[:15], y[:15]), (x[15:30], y[15:30]), (x[30:], y[30:])]

    async def prog(s: Session, mine: tuple[np.ndarray, np.ndarray]) -> Any:
        return await rg.logistic_regression(s, *mine, config=cfg, scaler=None)

    # the 13th opening of a share: in the second epoch, among the comparisons of the sigmoid
    cases = [
        (("share", 12), c, m) for c, m in ((1, add_delta(1)), (2, add_delta(-(2**40), index=3)), (1, noop))
    ]
    await assert_share_cheats_caught(N, P127, prog, each(per), cases, "cheating during training")


# ---------------------------------------------------------------------------------------- programs
def prepared(name: str, raw: list[Any]) -> list[tuple[np.ndarray]]:
    spec = programs.get(name)
    return [(spec.prepare(r, None, N),) for r in raw]  # type: ignore[arg-type]


async def test_registered_programs_are_callable_by_name() -> None:
    parts = tables(seed=2, sizes=(12, 8, 10))
    u = np.concatenate(parts)
    names = programs.REGISTRY.names()
    for spec in PROGRAMS:
        assert spec.name in names and spec.summary

    async def call(name: str, raw: list[Any]) -> list[Any]:
        spec = programs.get(name)

        async def prog(s: Session, values: np.ndarray) -> Any:
            return await spec.run(s, values)

        res = await run_cluster(N, P127, prog, per_party=prepared(name, raw))
        text = spec.render(res[0])  # what spdz submit prints: one "key: json" line per result
        assert all(f"{key}: " in text for key in res[0]), text
        return res

    col = [p[:, 0].tolist() for p in parts]
    within((await call("stats_mean", col))[0]["mean"], u[:, 0].mean(), "stats_mean")
    within((await call("stats_sum", col))[1]["sum"], u[:, 0].sum(), "stats_sum")
    within((await call("stats_variance", col))[2]["variance"], u[:, 0].var(ddof=1), "stats_variance")
    assert (await call("stats_count", col))[0]["count"] == len(u)
    flat = [[4, *p.reshape(-1).tolist()] for p in parts]  # the flat table form: column count first
    within((await call("stats_correlation", flat))[0]["correlation"], np.corrcoef(u, rowvar=False), "corr")
    rows = [p.tolist() for p in parts]  # the list-of-rows form
    within((await call("stats_covariance", rows))[0]["covariance"], np.cov(u, rowvar=False), "cov")
    flagged = [np.column_stack([p[:, [0, 1]], p[:, 2]]).tolist() for p in parts]
    want = u[u[:, 2] == 1][:, [0, 1]].mean(axis=0)
    within((await call("stats_mean_where", flagged))[0]["mean_where"], want, "stats_mean_where")
    edges = [0.0, 2000.0, 2600.0, 5000.0]
    hist = (await call("stats_histogram", [[4, *edges, *c] for c in col]))[0]
    assert np.array_equal(hist["counts"], np.histogram(u[:, 0], bins=np.asarray(edges))[0])
    fit = (await call("linreg_train", [p[:, [1, 3, 0]].tolist() for p in parts]))[0]
    want = np.linalg.lstsq(np.column_stack([u[:, [1, 3]], np.ones(len(u))]), u[:, 0], rcond=None)[0]
    within([*fit["coef"], fit["intercept"]], want, "linreg_train")
    model = [0.5, -2.0, 1.0]
    q = np.array([[1.0, 2.0], [-3.0, 0.5]])
    pred = await call("linreg_predict", [[1, *model], [0], [2, 2, *q.reshape(-1)]])
    assert pred[0]["score"] is None and pred[1]["score"] is None
    within(pred[2]["score"], q @ model[:2] + model[2], "linreg_predict")
    logit = await call("logreg_predict", [[2, 2, *q.reshape(-1)], [1, *model], [0]])
    within(logit[0]["probability"], 1.0 / (1.0 + np.exp(-(q @ model[:2] + model[2]))), "logreg_predict")


async def test_logreg_program_trains_from_submitted_rows() -> None:
    x, y = logistic_data(seed=6, n=60, d=2)
    rows = np.column_stack([x * [3.0, 0.5] + [10.0, -1.0], y])
    per = [rows[:20].tolist(), rows[20:35].tolist(), rows[35:].tolist()]
    spec = programs.get("logreg_train")

    async def prog(s: Session, values: np.ndarray) -> Any:
        return await spec.run(s, values)

    res = await run_cluster(N, P127, prog, per_party=prepared("logreg_train", per))
    out = res[0]
    model = rg.LogisticModel(np.asarray(out["coef"]), out["intercept"])
    feats = rows[:, :2]
    within(out["mean"], feats.mean(axis=0), "standardization means")
    within(out["scale"], feats.std(axis=0), "standardization deviations (StandardScaler's, ddof = 0)")
    scaler = rg.Standardizer(feats.mean(axis=0), feats.std(axis=0), LOGREG.clip)
    z = scaler.transform(feats)
    parts = [(z[:20], y[:20]), (z[20:35], y[20:35]), (z[35:], y[35:])]
    w = plain_bohning(z, y, LOGREG, parts)  # Böhning's iteration in float64
    plain = rg.LogisticModel(*scaler.to_original(w[:-1], w[-1]))
    assert np.array_equal(model.predict(feats), plain.predict(feats))
    assert np.max(np.abs(model.coef - plain.coef) * scaler.scale) < 0.02


async def test_programs_refuse_bad_input_and_disagreeing_parties() -> None:
    for name, raw in (
        ("stats_mean", []),
        ("stats_mean", ["abc"]),
        ("stats_mean", [float("nan")]),
        ("stats_covariance", [3, 1, 2]),  # 3 columns, 2 values
        ("stats_histogram", [3, 1.0, 0.5, 2.0, 7.0]),  # decreasing edges
        ("logreg_predict", [5, 1, 2]),
        ("stats_sum", [[1, 2], [3]]),
    ):
        with pytest.raises(programs.InputError):
            programs.get(name).prepare(raw, None, N)  # type: ignore[arg-type]
    with pytest.raises(AppInputError):
        parse_numbers({"a": 1})  # type: ignore[arg-type]
    spec = programs.get("stats_histogram")

    async def prog(s: Session, values: np.ndarray) -> Any:
        return await spec.run(s, values)

    raw = [[2, 0.0, 1.0, 0.5], [2, 0.0, 1.0, 0.25], [2, 0.0, 2.0, 0.75]]  # party 2's edges differ
    res = await run_each(N, P127, prog, per_party=prepared("stats_histogram", raw))
    refused(res, "different edges")
    assert all("histogram edges" in str(r) for r in res), res
