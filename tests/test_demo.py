"""``spdz demo`` end to end: TLS, MASCOT preprocessing sized by the plan, the bank statistics matching."""

from __future__ import annotations

import pytest

from actors import demo
from actors.offline import Watermarks
from protocols.apps import fraud
from protocols.preprocessing.plan import preprocessing_plan


async def test_demo_matches_plaintext(capsys: pytest.CaptureFixture[str]) -> None:
    assert await demo.run_demo("tls", (12, 8, 10)) == 0
    out = capsys.readouterr().out
    assert "MASCOT" in out and "TLS 1.3" in out and "INSECURE" not in out
    assert "all statistics match the plaintext computation" in out
    assert " NO" not in out and "MISMATCH" not in out


async def test_plan_counts_what_the_program_consumes() -> None:
    banks = fraud.bank_data((12, 8, 10))
    need = await preprocessing_plan(fraud.bank_program, 3, banks)
    # every bank shares its 6 columns twice (the table, then the amounts for the histogram: 7 values
    # per row in all), so the input masks of owner i are 7 x its row count
    assert [need[f"mask{i}"] for i in range(3)] == [7 * len(b) for b in banks]
    assert need["triple"] > 0 and need["bit"] > 0
    # the plan depends on shapes only: other values of the same shapes need the same material
    other = [b.copy() for b in fraud.bank_data((12, 8, 10), seed=1)]
    assert await preprocessing_plan(fraud.bank_program, 3, other) == need
    marks = Watermarks.for_plan(need, 1024)
    assert marks.triple[0] >= need["triple"] and marks.bit[0] >= need["bit"]
    assert marks.mask[0] >= max(need[f"mask{i}"] for i in range(3))
    assert marks.triple[0] % 1024 == 0 and marks.triple[0] - need["triple"] < 1024
