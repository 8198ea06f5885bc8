"""``spdz demo`` end to end: TLS, MASCOT preprocessing sized by the plan, the bank statistics matching."""

from __future__ import annotations

from typing import Any

import pytest

from actors import demo
from actors.offline import Watermarks
from actors.plan import preprocessing_plan
from protocols.apps import fraud

pytestmark = pytest.mark.slow  # real processes or MASCOT: left out of the fast subset


async def test_demo_matches_plaintext(capsys: pytest.CaptureFixture[str]) -> None:
    assert await demo.run_demo("tls", (12, 8, 10)) == 0
    out = capsys.readouterr().out
    assert "MASCOT" in out and "TLS 1.3" in out and "INSECURE" not in out
    assert "all statistics match the plaintext computation" in out
    assert " NO" not in out and "MISMATCH" not in out


def test_demo_with_one_process_per_bank(capsys: pytest.CaptureFixture[str]) -> None:
    """``spdz demo``'s default: three party processes over TLS, each with its own bank's rows."""
    assert demo.run_processes((12, 8, 10)) == 0
    out = capsys.readouterr().out
    assert "3 parties in 3 processes" in out and "MASCOT" in out
    assert "all statistics match the plaintext computation" in out and " NO" not in out


def test_demo_refuses_bad_sizes_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from actors import cli

    assert cli.main(["demo", "--sizes", "a,b,c"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--sizes takes three transaction counts" in err[0]


async def test_plan_counts_what_the_program_consumes() -> None:
    banks = fraud.bank_data((12, 8, 10))
    need = await preprocessing_plan(fraud.bank_program, 3, banks)
    # the banks' rows stay owner-private: each bank inputs a few summaries per statistic, the same
    # number for every bank, whatever its row count
    assert len({need[f"mask{i}"] for i in range(3)}) == 1 and 0 < need["mask0"] < 100
    assert need["triple"] > 0 and need["bit"] > 0
    # the plan depends on the columns only: other values and other row counts need the same material
    other = [b.copy() for b in fraud.bank_data((120, 800, 1000), seed=1)]
    assert await preprocessing_plan(fraud.bank_program, 3, other) == need
    # the row-level program's input masks grow with the rows: 7 values per row (6 columns, then
    # the amounts again for the histogram)
    rows = await preprocessing_plan(fraud.bank_program_rows, 3, banks)
    assert [rows[f"mask{i}"] for i in range(3)] == [7 * len(b) for b in banks]
    # and so does its preprocessing: at 300 rows the row-level program already needs 5x the bits
    many = await preprocessing_plan(fraud.bank_program_rows, 3, fraud.bank_data((120, 80, 100)))
    assert many["bit"] > 5 * need["bit"] and many["triple"] > 5 * need["triple"]
    marks = Watermarks.for_plan(need, 1024)
    assert marks.triple[0] >= need["triple"] and marks.bit[0] >= need["bit"]
    assert marks.mask[0] >= max(need[f"mask{i}"] for i in range(3))
    batches = -(-need["triple"] // 1024)
    assert marks.batch_of("triple") <= 1024 and marks.triple[0] - need["triple"] < batches


async def test_stock_fills_the_planned_pools_then_stops_generating() -> None:
    """``Cluster.stock``: every party's pools reach the plan; a job that then consumes material
    triggers no refill (the generation counters stay where they were once every task is idle)."""
    import numpy as np
    import trio.testing

    from actors.cluster import local_cluster

    need = {"triple": 300, "bit": 200, "mask0": 210, "mask1": 10, "mask2": 10}
    marks = Watermarks.for_plan(need, 256)

    async def prog(s: Any) -> Any:
        x = await s.input(np.arange(200) if s.party == 0 else None, owner=0)
        return await s.output(await s.mul(x, x))

    async with local_cluster(3, preprocessing="mascot", watermarks=marks) as c:
        await c.stock(need)
        for p in c.parties:
            assert p.offline is not None
            levels = p.offline.metrics()["levels"]
            assert all(levels.get(k, 0) >= v for k, v in need.items()), levels
        made = [dict(p.offline.metrics()["generated"]) for p in c.parties if p.offline is not None]
        out = await c.run(prog)
        assert np.array_equal(out[0], np.arange(200) ** 2)
        await trio.testing.wait_all_tasks_blocked(cushion=0.2)
        assert [dict(p.offline.metrics()["generated"]) for p in c.parties if p.offline is not None] == made
        assert all(p.offline.metrics()["levels"]["triple"] < need["triple"] for p in c.parties if p.offline)
