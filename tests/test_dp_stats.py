"""``count`` and ``total`` with ``dp=`` (``protocols.apps.stats``), 3 parties, dealer: the revealed
value is the exact statistic of the clamped rows plus exactly the parties' noise, calibrated for the
sensitivity the bounds give; misuse is refused."""

from __future__ import annotations

import contextvars
from typing import Any

import numpy as np
import pytest
from helpers import refusals, run_cluster

import protocols.dp.noise as noise_module
from protocols.apps import stats
from protocols.dp import DP
from protocols.dp.apps import scale_for
from protocols.field import P127
from protocols.online import Session

N = 3
PARTY: contextvars.ContextVar[int] = contextvars.ContextVar("dp_stats_party", default=-1)
GUARANTEE = DP(epsilon=1.0, delta=1e-9)
ROWS = [np.array([1.5, 2.0, 250.0]), np.array([-3.0, 4.25]), np.array([10.0, 0.5, -99.0, 7.0])]


def record(monkeypatch: pytest.MonkeyPatch) -> dict[int, tuple[Any, list[int]]]:
    drawn: dict[int, tuple[Any, list[int]]] = {}
    real = noise_module.own_gaussian_draws

    def draws(sigma2: Any, size: int, prg: Any = None) -> list[int]:
        out = real(sigma2, size, prg)
        drawn[PARTY.get()] = (sigma2, out)
        return out

    monkeypatch.setattr(noise_module, "own_gaussian_draws", draws)
    return drawn


async def count_prog(s: Session) -> Any:
    PARTY.set(s.party)
    return await stats.count(s, ROWS[s.party], dp=GUARANTEE)


async def total_prog(s: Session) -> Any:
    PARTY.set(s.party)
    return await stats.total(s, ROWS[s.party], dp=GUARANTEE, bounds=(-10.0, 20.0))


async def test_a_dp_count_is_the_count_plus_every_partys_noise(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn = record(monkeypatch)
    res = await run_cluster(N, P127, count_prog)
    assert len(set(res)) == 1
    noise = sum(d[1][0] for d in drawn.values())
    assert res[0] == sum(len(r) for r in ROWS) + noise
    assert {d[0] for d in drawn.values()} == {DP(epsilon=1.0, delta=1e-9, sensitivity=1).sigma2()}


async def test_a_dp_total_clamps_each_owners_rows_and_adds_noise_for_the_bounds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    drawn = record(monkeypatch)
    res = await run_cluster(N, P127, total_prog)
    assert len(set(res)) == 1
    scale = scale_for(20.0)  # the grid of 20 / 1,023: one row moves the rounded sum by <= 1,024 units
    assert 20.0 * scale <= 1023 and scale > 1023 / 20 * (1 - 1e-15)
    clamped = [float(np.clip(r, -10.0, 20.0).sum()) for r in ROWS]  # 250 -> 20, -99 -> -10
    exact = sum(round(c * scale) for c in clamped)
    noise = sum(d[1][0] for d in drawn.values())
    assert res[0] == (exact + noise) / scale
    want = DP(epsilon=1.0, delta=1e-9, sensitivity=1024)
    assert {d[0] for d in drawn.values()} == {want.sigma2()}


async def misuse_prog(s: Session) -> list[str]:
    rows = ROWS[s.party]
    return await refusals(
        (
            lambda: stats.total(s, rows, dp=GUARANTEE),
            lambda: stats.total(s, rows, dp=GUARANTEE, bounds=(5.0, 1.0)),
            lambda: stats.total(s, np.column_stack([rows, rows]), dp=GUARANTEE, bounds=[(0.0, 1.0)]),
            lambda: stats.count(s, rows, dp={"epsilon": 1}),
        ),
        cut=":,",
    )


async def test_misuse_is_refused_at_every_party() -> None:
    res = await run_cluster(N, P127, misuse_prog)
    assert (
        res
        == [
            [
                "dp= needs public clipping bounds=(lo",
                "dp= needs public clipping bounds=(lo",
                "dp= needs public clipping bounds=(lo",
                "dp= takes a protocols.dp.DP",
            ]
        ]
        * N
    )
