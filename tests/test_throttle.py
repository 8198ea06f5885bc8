"""Log lines an outsider can trigger: at most one per key per period, the next one counting the rest."""

from __future__ import annotations

from typing import Any

import pytest

from actors import throttle


def test_one_line_per_key_per_period_and_the_count_of_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(throttle.time, "monotonic", lambda: now[0])
    lines: list[tuple[str, dict[str, Any]]] = []
    t = throttle.Throttle(period=10.0)

    def warn(event: str, **fields: Any) -> None:
        lines.append((event, fields))

    for _ in range(1000):
        t.emit(warn, "busy", key="a", n=1)
    t.emit(warn, "other", key="b")
    now[0] += 10.0
    t.emit(warn, "busy", key="a", n=2)
    assert lines == [("busy", {"n": 1}), ("other", {}), ("busy", {"n": 2, "suppressed": 999})]


def test_the_keys_remembered_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(throttle, "MAX_KEYS", 8)
    t = throttle.Throttle()
    for k in range(100):
        assert t(k) == 0
    assert len(t) <= 8
