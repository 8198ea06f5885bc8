"""Log lines that an outsider can trigger, at a bounded rate.

A refused connection, a rejected stream or a flooding peer is worth one line; a thousand of them a
second are worth one line every few seconds that says how many there were. ``Throttle`` decides per
key (a reason, a peer) whether this occurrence gets a line, and how many went unlogged since the
last one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

LOG_PERIOD = 10.0  # s: at most one line per key per period
MAX_KEYS = 1024  # keys remembered (an outsider choosing keys cannot grow this without bound)


class Throttle:
    def __init__(self, period: float = LOG_PERIOD) -> None:
        self.period = period
        self._last: dict[object, float] = {}
        self._skipped: dict[object, int] = {}

    def __len__(self) -> int:
        """Keys remembered now (at most ``MAX_KEYS``)."""
        return len(self._last)

    def __call__(self, key: object = None) -> int | None:
        """None: do not log this one. Otherwise log it, with the returned count of lines skipped
        for ``key`` since the last one logged."""
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.period:
            self._skipped[key] = self._skipped.get(key, 0) + 1
            return None
        if key not in self._last and len(self._last) >= MAX_KEYS:
            oldest = min(self._last, key=self._last.__getitem__)
            self._last.pop(oldest)
            self._skipped.pop(oldest, None)
        self._last[key] = now
        return self._skipped.pop(key, 0)

    def emit(self, method: Callable[..., Any], event: str, key: object = None, **fields: Any) -> None:
        """``method(event, **fields)`` (a structlog level method) unless ``key`` was logged within the
        period; a line after skipped ones says how many (``suppressed``)."""
        skipped = self(key)
        if skipped is None:
            return
        if skipped:
            fields["suppressed"] = skipped
        method(event, **fields)
