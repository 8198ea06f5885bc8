"""The preprocessing interface the online phase consumes.

A ``PreprocessingSource`` belongs to one party and lives as long as the party; ``for_session`` hands out
a ``Preprocessing`` view bound to one session id, so that two sessions running at once draw disjoint,
consistently ordered material at every party. All methods are async because a real source (MASCOT) may
have to wait for its pools to refill; they wait, they do not fail, when a pool is empty.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from ..net import Net
from ..shares import ShareContext, SharedArray


class Preprocessing(Protocol):
    """One session's supply of authenticated correlated randomness for one party."""

    ctx: ShareContext

    async def triples(self, n: int) -> tuple[SharedArray, SharedArray, SharedArray]:
        """``n`` Beaver triples ``([a], [b], [c])`` with ``c = a * b``."""
        ...

    async def squares(self, n: int) -> tuple[SharedArray, SharedArray]:
        """``n`` pairs ``([a], [a^2])``."""
        ...

    async def bits(self, n: int) -> SharedArray:
        """``n`` random shared bits."""
        ...

    async def randoms(self, n: int) -> SharedArray:
        """``n`` random shared field elements nobody knows."""
        ...

    async def input_masks(self, owner: int, n: int) -> tuple[SharedArray, np.ndarray | None]:
        """``n`` masks ``[r]``, ``r`` known to ``owner`` only: clear ``r`` there, ``None`` elsewhere."""
        ...

    def compromised(self) -> None:
        """A check failed in this session: forget the MAC key share and discard all material."""
        ...


class PreprocessingSource(Protocol):
    """A party's long-lived preprocessing supplier."""

    insecure: bool

    def for_session(self, session_id: str, net: Net) -> Preprocessing:
        """This party's preprocessing for one session; ``net`` is the session's network (a pooled
        source uses it to agree with the other parties on which material the session gets)."""
        ...
