"""The fault event log: what was injected, when (virtual time), where, and with which random choices.

The log is the reproducibility contract of the simulator: two runs with the same seed (and the same
application behaviour) give equal logs. Events that happen at the same virtual instant are recorded in
whatever order trio's scheduler (which randomizes on purpose) runs the tasks, so ``Network.events``
returns them in a canonical order: by time, then by the rest of the event.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ConnId = tuple[int, int, int]
"""A connection: (dialing party, accepting party, index among that ordered pair's connections)."""


@dataclass(frozen=True)
class FaultEvent:
    """One injected fault (or the end of one: ``heal``, ``restart``).

    ``link`` is the directed link ``(src, dst)`` the fault acted on, or None for network-wide events
    (``partition``, ``heal``, ``crash``, ``restart``); ``conn`` the connection, if one was hit.
    ``details`` holds the random choices (bit positions, cut offsets, groups) so a report can show them.
    """

    time: float
    kind: str
    link: tuple[int, int] | None = None
    conn: ConnId | None = None
    details: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def sort_key(self) -> tuple[Any, ...]:
        """Canonical order: time first; ties broken by the rest, so equal runs give equal lists."""
        return (self.time, self.kind, self.link or (), self.conn or (), repr(sorted(self.details.items())))

    def __str__(self) -> str:
        where = "" if self.link is None else f" {self.link[0]}->{self.link[1]}"
        if self.conn is not None:
            where += f" conn={self.conn[0]}>{self.conn[1]}#{self.conn[2]}"
        extra = "".join(f" {k}={v}" for k, v in self.details.items())
        return f"{self.time:.6f}s {self.kind}{where}{extra}"


__all__ = ["ConnId", "FaultEvent"]
