"""The preprocessing interface the online phase consumes.

A ``PreprocessingSource`` belongs to one party and lives as long as the party; ``for_session`` hands out
a ``Preprocessing`` view bound to one session id, so that two sessions running at once draw disjoint,
consistently ordered material at every party. All methods are async because a real source (MASCOT) may
have to wait for its pools to refill; they wait, they do not fail, when a pool is empty.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np

from ..net import Net
from ..shares import ShareContext, SharedArray

if TYPE_CHECKING:
    from ..binary.bits import AuthBits, BinaryContext


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


class MixedPreprocessing(Preprocessing, Protocol):
    """A session's supply that also holds binary material: what the binary-domain comparisons use.

    ``bctx`` is this party's binary MAC key share (``protocols.binary.bits.BinaryContext``). Binary
    vectors are ``protocols.binary.bits.AuthBits``; several bits per element are laid out element by
    element, least significant bit first (element ``e``'s bit ``j`` at index ``e * k + j``).
    """

    bctx: BinaryContext

    async def and_triples(self, n: int) -> tuple[AuthBits, AuthBits, AuthBits]:
        """``n`` binary triples ``([[a]], [[b]], [[c]])`` with ``c = a AND b``."""
        ...

    async def dabits(self, n: int) -> tuple[SharedArray, AuthBits]:
        """``n`` random bits ``b`` shared in both domains: ``[b]`` in the field and ``[[b]]``."""
        ...

    async def edabits(self, n: int, k: int) -> tuple[SharedArray, AuthBits]:
        """``n`` random ``r`` in ``[0, 2^k)``: ``[r]`` in the field and its ``k`` bits ``[[r_j]]``
        (``n * k`` bits, element by element, LSB first), with ``r = sum_j 2^j r_j`` exactly."""
        ...

    async def loose_edabits(self, n: int, k: int) -> tuple[SharedArray, AuthBits]:
        """``n`` masks for comparisons: ``[R]`` in the field with ``R < n 2^(k + HIDE)``
        (``protocols.binary.edabits.HIDE``), ``R mod 2^k`` uniform, ``floor(R / 2^k)`` with ``HIDE``
        uniform bits nobody knows, and the ``k`` bits of ``R mod 2^k`` (``n * k`` bits, element by
        element, LSB first): only the low bits are in the binary domain."""
        ...

    async def owned_triples(
        self, owner: int, n: int, width: int
    ) -> tuple[SharedArray, SharedArray, SharedArray]:
        """``n`` groups of ``width`` products for ``owner``'s values (``protocols.mascot.owned``):
        ``[a]`` (``n width``, known to ``owner`` when made), ``[b]`` (``n``) and ``[c]`` (``n width``)
        with ``c = a b``, ``b`` the group's. Pool ``owned<owner>:<width>``."""
        ...
