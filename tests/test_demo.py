"""``spdz demo`` end to end: MASCOT preprocessing, the joint statistics, every figure matching."""

from __future__ import annotations

import pytest

from actors import demo


async def test_demo_matches_plaintext(capsys: pytest.CaptureFixture[str]) -> None:
    assert await demo.run_demo("p61", "tls") == 0
    out = capsys.readouterr().out
    assert "MASCOT" in out and "TLS 1.3" in out and "INSECURE" not in out
    assert "all statistics match the plaintext computation" in out
    assert " NO" not in out


def test_demo_needs_count_every_input_and_product() -> None:
    data = demo.hospital_data()
    need = demo.needs(data)
    assert need["triple"] == sum(len(d["age"]) for d in data)
    assert [need[f"mask{i}"] for i in range(3)] == [4 * len(d["age"]) for d in data]
    marks = demo.demo_watermarks(need)
    assert marks.triple[0] >= need["triple"] and marks.mask[0] >= max(need[f"mask{i}"] for i in range(3))
