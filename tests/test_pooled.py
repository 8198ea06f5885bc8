"""The applications on owner-private rows (``protocols.apps.pooled``): against numpy, at 10^6 rows,
what crosses the wire, and cheaters in the combination step. 3 parties, p = 2^127 - 1, dealer.

Tolerances as in ``test_apps``: ``|got - want| <= 1e-3 max(1, |want|)``, counts exact.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from helpers import Cheat, CheatNet, add_delta, assert_all_aborted, noop, run_cluster, run_each
from test_apps import N, each, tables, within

from actors.sessions import is_offline
from protocols.apps import pooled, stats
from protocols.apps import regression as rg
from protocols.apps.table import ParameterMismatch, share_table
from protocols.errors import AbortError, MacCheckError
from protocols.field import P127, get_field
from protocols.intercept import PassThrough
from protocols.online import Session
from protocols.private import NotOwnerError, owned
from protocols.sectypes import SecretFix

EDGES = [0.0, 1500.0, 2500.0, 3000.0, 5000.0]


async def every_statistic(s: Session, data: Any) -> dict[str, Any]:
    return {
        "count": await stats.count(s, data),
        "total": await stats.total(s, data),
        "mean": await stats.mean(s, data),
        "var": await stats.variance(s, data),
        "var0": await stats.variance(s, data, ddof=0),
        "cov": await stats.covariance(s, data),
        "corr": await stats.correlation(s, data),
        "mean_where": await stats.mean_where(s, data, 2),
        "hist": await stats.histogram(s, data, EDGES),
    }


def check_statistics(got: dict[str, Any], u: np.ndarray) -> None:
    assert got["count"] == len(u)
    within(got["total"], u.sum(axis=0), "sum")
    within(got["mean"], u.mean(axis=0), "mean")
    within(got["var"], u.var(axis=0, ddof=1), "variance")
    within(got["var0"], u.var(axis=0), "variance ddof=0")
    within(got["cov"], np.cov(u, rowvar=False), "covariance")
    within(got["corr"], np.corrcoef(u, rowvar=False), "correlation")
    flagged = u[u[:, 2] == 1]
    within(got["mean_where"], flagged[:, [0, 1, 3]].mean(axis=0), "mean_where")
    assert np.array_equal(got["hist"], np.histogram(u[:, 0], bins=np.asarray(EDGES))[0])


async def test_every_statistic_on_private_rows_matches_numpy() -> None:
    parts = tables()
    res = await run_cluster(N, P127, every_statistic, per_party=each(parts))
    for r in res[1:]:
        assert all(np.array_equal(np.asarray(r[k]), np.asarray(res[0][k])) for k in r), "parties disagree"
    check_statistics(res[0], np.concatenate(parts))


async def test_every_statistic_on_joint_secrets_matches_numpy() -> None:
    """The row-level path, chosen by the type: a secret table whose columns were computed from
    several parties' shares (here: each column doubled, then halved again by the public 1/2)."""
    parts = tables(seed=6)

    async def prog(s: Session, mine: np.ndarray) -> dict[str, Any]:
        t = await share_table(s, mine)
        joint = await ((t.x + t.x) * 0.5)  # a joint secret: no party owns its rows any more
        assert isinstance(joint, SecretFix)
        out = await every_statistic(s, t)
        out["mean_joint"] = await stats.mean(s, joint)
        out["corr_joint"] = await stats.correlation(s, joint)
        return out

    res = await run_cluster(N, P127, prog, per_party=each(parts))
    u = np.concatenate(parts)
    check_statistics(res[0], u)
    within(res[0]["mean_joint"], u.mean(axis=0), "mean of a joint secret")
    within(res[0]["corr_joint"], np.corrcoef(u, rowvar=False), "correlation of a joint secret")


async def test_private_values_of_each_party_and_a_party_without_rows() -> None:
    """Statistics take a list of ``Private`` values (one per party, ``None`` for a party without rows),
    one party's ``Private`` alone, and selected columns; outputs to one party reach only it."""
    rng = np.random.default_rng(3)
    parts = [rng.normal(40.0, 9.0, (n, 2)) for n in (15, 0, 11)]
    u = np.concatenate(parts)

    async def prog(s: Session, mine: np.ndarray) -> Any:
        rows = await owned(s, mine)
        assert rows[1] is None and all(r is not None and r.shape == (None, 2) for r in (rows[0], rows[2]))
        col = pooled.select(rows, [1])
        return (
            await stats.mean(s, rows),
            await stats.variance(s, [None if r is None else r[:, 0] for r in rows], to=2),
            await stats.mean(s, rows[2]),  # one party's rows alone
            await stats.covariance(s, col),
        )

    res = await run_cluster(N, P127, prog, per_party=each(parts))
    for i, (m, v, m2, c) in enumerate(res):
        within(m, u.mean(axis=0), "mean")
        assert isinstance(v, float) if i == 2 else v is None
        within(m2, parts[2].mean(axis=0), "one party's mean")
        within(c, np.atleast_2d(np.cov(u[:, 1:], rowvar=False)), "covariance of a selected column")
    within(res[2][1], u[:, 0].var(ddof=1), "variance to party 2")


async def test_parties_with_different_columns_are_told_so() -> None:
    parts = [np.ones((4, 3)), np.ones((5, 2)), np.ones((3, 3))]

    async def prog(s: Session, mine: np.ndarray) -> Any:
        return await stats.mean(s, mine)

    res = await run_each(N, P127, prog, per_party=each(parts))
    assert all(isinstance(r, (ParameterMismatch, AbortError)) for r in res), res
    assert any(isinstance(r, ParameterMismatch) and "same columns" in str(r) for r in res)


async def test_a_million_rows_whose_row_level_sums_would_overflow() -> None:
    """10^6 rows per party near 10^7: the column sum (3 x 10^13) is beyond the fixed-point range
    (2^43 = 8.8 x 10^12), so the row-level path could not even form it; the pooled path never adds
    rows in MPC and gets mean, variance and correlation right."""
    rng = np.random.default_rng(11)
    n = 1_000_000
    parts = []
    for i in range(N):
        a = rng.normal(1.0e7 + 1000 * i, 50.0, n)
        parts.append(np.column_stack([a, 0.3 * a + rng.normal(0.0, 20.0, n)]))
    u = np.concatenate(parts)
    assert np.abs(u.sum(axis=0)).max() > 2.0**43  # the row-level sum would overflow

    async def prog(s: Session, mine: np.ndarray) -> Any:
        return (
            await stats.count(s, mine),
            await stats.mean(s, mine),
            await stats.variance(s, mine),
            await stats.correlation(s, mine),
        )

    cnt, mean, var, corr = (await run_cluster(N, P127, prog, per_party=each(parts)))[0]
    assert cnt == 3 * n
    within(mean, u.mean(axis=0), "mean at 3 x 10^6 rows", tol=1e-6)
    within(var, u.var(axis=0, ddof=1), "variance at 3 x 10^6 rows")
    within(corr, np.corrcoef(u, rowvar=False), "correlation at 3 x 10^6 rows")


# ---------------------------------------------------------------------------------------- regression
def regression_data(
    d: int, sizes: tuple[int, ...], seed: int = 2
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    scale = 10.0 ** rng.uniform(-0.5, 1.5, d)
    beta = rng.normal(0.0, 2.0, d) / scale
    xs = [rng.normal(3.0, 1.0, (n, d)) * scale for n in sizes]
    ys = [x @ beta + 4.0 + rng.normal(0.0, 0.5, len(x)) for x in xs]
    return xs, ys


def lstsq(xs: list[np.ndarray], ys: list[np.ndarray]) -> tuple[np.ndarray, float]:
    x, y = np.concatenate(xs), np.concatenate(ys)
    sol = np.linalg.lstsq(np.column_stack([x, np.ones(len(x))]), y, rcond=None)[0]
    return sol[:-1], float(sol[-1])


@pytest.mark.parametrize("d", [1, 4, 8])
async def test_linear_regression_on_private_rows_matches_lstsq(d: int) -> None:
    xs, ys = regression_data(d, (120, 90, 150))
    coef, icpt = lstsq(xs, ys)

    async def prog(s: Session, x: np.ndarray, y: np.ndarray) -> Any:
        return await rg.linear_regression(s, x[:, 0] if d == 1 else x, y)

    res = await run_cluster(N, P127, prog, per_party=list(zip(xs, ys, strict=True)))
    for m in res:
        within(m.coef, coef, f"coefficients, d = {d}")
        within(m.intercept, icpt, f"intercept, d = {d}")


async def test_linear_regression_on_private_values_and_on_joint_secrets() -> None:
    xs, ys = regression_data(3, (60, 70, 80), seed=4)
    coef, icpt = lstsq(xs, ys)

    async def prog(s: Session, x: np.ndarray, y: np.ndarray) -> Any:
        px, py = await owned(s, x), await owned(s, y)
        local = await rg.linear_regression(s, px, py)
        t = await share_table(s, np.column_stack([x, y]))
        joint = await rg.linear_regression(s, t.x[:, np.arange(3)], t.x[:, 3])
        return local, joint

    for local, joint in await run_cluster(N, P127, prog, per_party=list(zip(xs, ys, strict=True))):
        for m, what in ((local, "private"), (joint, "joint")):
            within(m.coef, coef, f"{what} coefficients")
            within(m.intercept, icpt, f"{what} intercept")


# ---------------------------------------------------------------------------------------- the wire
class Recorder(PassThrough):
    """An interceptor that writes down the bytes every message of its party's sessions carries."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def wrap_net(self, session: str, net: Any) -> Any:
        if is_offline(session):
            return net
        rec = self

        class RecNet:
            party, n = net.party, net.n

            async def send(self, to: int, step: int, msg: Any) -> None:
                rec.sent.extend(_leaves(msg))
                await net.send(to, step, msg)

            async def recv(self, frm: int, step: int) -> Any:
                return await net.recv(frm, step)

            def __getattr__(self, name: str) -> Any:
                return getattr(net, name)

        return RecNet()


def _leaves(msg: Any) -> list[bytes]:
    """The payloads a message carries, one per byte string (numbers and names: 8 bytes each,
    whatever their value, so that sizes compare across runs). Kept apart, not joined: a search in
    the joined bytes finds chance matches across boundaries (the top bytes of one random element
    followed by the zeros of the next)."""
    if isinstance(msg, (bytes, bytearray, memoryview)):
        return [bytes(msg)]
    if isinstance(msg, (list, tuple)):
        return [b for m in msg for b in _leaves(m)]
    return [b"\0" * 8]


def _elements(leaves: list[bytes], width: int) -> set[bytes]:
    """Every ``width``-byte field element the payloads carry, at the offsets where they are packed."""
    return {b[i : i + width] for b in leaves if len(b) % width == 0 for i in range(0, len(b), width)}


async def test_no_row_of_a_private_value_crosses_the_wire() -> None:
    """What party 1 sends is the same size whether it holds 50 or 5,000 rows (its rows never enter
    the MPC), holds neither a row's float64 bytes nor its fixed-point encoding, and the other parties
    cannot read its value: ``Private.value`` raises ``NotOwnerError`` there."""
    held: dict[int, Any] = {}

    async def prog(s: Session, mine: np.ndarray) -> Any:
        rows = await owned(s, mine)
        for j, r in enumerate(rows):
            assert r is not None
            if j != s.party:
                with pytest.raises(NotOwnerError):
                    _ = r.value
                held[(s.party, j)] = r._value
        return await every_statistic(s, rows)

    sizes = []
    for n1 in (50, 5000):
        parts = tables(seed=9, sizes=(40, n1, 30))
        rec = Recorder()
        res = await run_cluster(N, P127, prog, per_party=each(parts), interceptors={1: rec})
        check_statistics(res[0], np.concatenate(parts))
        sizes.append(sum(len(b) for b in rec.sent))
        fld = get_field(P127)
        width = len(fld.to_bytes(fld.from_ints([0])))
        elements = _elements(rec.sent, width)
        odd = [b for b in rec.sent if len(b) % width]
        for v in parts[1][:20][:, [0, 1, 3]].reshape(-1):  # the amounts, not the 0/1 flags
            assert not any(np.float64(v).tobytes() in b for b in rec.sent)
            enc = fld.to_bytes(fld.from_ints([int(round(v * 2**20))]))
            assert enc not in elements
            assert not any(enc in b for b in odd)
    assert sizes[0] == sizes[1], f"party 1 sent {sizes[0]} bytes with 50 rows and {sizes[1]} with 5,000"
    assert all(v is None for v in held.values()), "a non-owner held a private value"


# ---------------------------------------------------------------------------------------- cheating
@pytest.mark.parametrize("target", [("share", 0), ("share", 5), ("share", 14)])
async def test_a_party_cheating_in_the_combination_is_caught(target: tuple[str, int]) -> None:
    """A wrong share in an opening of the combination (the weights' normalization, the pooled mean,
    the co-moments, the square roots of the correlation): every honest party aborts."""
    parts = tables(seed=12)

    async def prog(s: Session, mine: np.ndarray) -> Any:
        return await stats.correlation(s, mine)

    for cheater, mutation in ((1, add_delta(1)), (2, add_delta(-(2**30))), (0, noop)):
        cheat = Cheat(net=lambda net, m=mutation: CheatNet(net, get_field(P127), target, m))
        res = await run_each(N, P127, prog, per_party=each(parts), interceptors={cheater: cheat})
        assert cheat.hits, "the cheat never fired: the test would prove nothing"
        if mutation is noop:
            assert not any(isinstance(r, BaseException) for r in res), res
            within(res[0], np.corrcoef(np.concatenate(parts), rowvar=False), "correlation, honest run")
            continue
        assert_all_aborted(res, [i for i in range(N) if i != cheater], f"cheating at {target}")
        assert any(isinstance(r, MacCheckError) for r in res)


async def test_a_party_equivocating_its_column_count_is_caught() -> None:
    """The announcement of a private value's metadata is a broadcast: telling the parties different
    column counts is caught (here by the shape check, else by the next MAC check's transcript)."""
    parts = tables(seed=13)

    def lie(f: Any, to: int, msg: Any) -> Any:
        return ["float", [None, 3]] if to == 2 else msg

    async def prog(s: Session, mine: np.ndarray) -> Any:
        return await stats.mean(s, mine)

    cheat = Cheat(net=lambda net: CheatNet(net, get_field(P127), ("other", 0), lie))
    res = await run_each(N, P127, prog, per_party=each(parts), interceptors={0: cheat})
    assert cheat.hits
    assert all(isinstance(r, (AbortError, ParameterMismatch)) for r in res), res
    assert isinstance(res[2], ParameterMismatch) and "same columns" in str(res[2])
