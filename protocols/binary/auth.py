"""Bit authentication: turning each party's bits into shares with global-key MACs, from correlated OT.

For every ordered pair, party j is the KOS *sender* with its key share ``Delta_j`` as the correlation
(the same Delta_j towards every receiver: ``KOSSender(context, delta=Delta_j)``) and party i, the owner
of bits x, the receiver with choices x. One ``extend_correlated`` gives i the rows ``M_ij`` and j the
rows ``K_ji`` with ``M_ij = K_ji + x Delta_j``. Owner i's bits then become an authenticated sharing
in which i holds the value x and the others hold 0, with MAC shares

    at i:  x Delta_i + XOR_{j != i} M_ij        at j != i:  K_ji

which XOR to ``x (Delta_i + XOR_j Delta_j) = x Delta``. Random shared bits are the XOR of every
party's own authenticated random bits; a private input is one owner's authenticated bits.

Nothing is returned before the consistency check (``check.PendingAuth``, run by ``BitChecker``) has
passed: the owner authenticates 128 extra random bits per batch, announces a random GF(2^128)
combination of all its bits, and that combination is MAC-checked under the global key. KOS's own
check only binds a receiver to one choice vector per *pair*; the global check catches what KOS
cannot see: a receiver whose choices differ between peers or from the share it keeps, and a sender
that used a different Delta towards some receiver (Frederiksen-Keller-Orsini-Scholl, ASIACRYPT 2015,
bit authentication; the same check as Hazay-Scholl-Soria-Vazquez, ASIACRYPT 2017).

Channel ids: ``cot_channel(receiver, sender)`` is the KOS conversation where ``receiver`` chooses; the
same channel carries the sender's half-AND and leaky-AND messages about the receiver's bits
(``triples.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ..concurrency import task_group
from ..ot.bitmatrix import unpack_bits
from ..prg import PRG
from .bits import U64, times_delta
from .check import MASK_BITS, PendingAuth

if TYPE_CHECKING:
    from ..online import Session
    from .party import BinaryParty


def cot_channel(receiver: int, sender: int) -> int:
    """Channel id of the correlated OTs where ``receiver`` chooses and ``sender`` holds its Delta."""
    return 0x3000 + (receiver << 6) + sender


def random_bits(count: int, prg: PRG | None = None) -> np.ndarray:
    """``count`` uniform bits as uint8 0/1."""
    prg = prg or PRG()
    words = np.frombuffer(prg.random_bytes(8 * (-(-count // 64))), dtype=U64)
    return unpack_bits(words, count).astype(np.uint8)


@dataclass
class CotBatch:
    """One batch of correlated OTs at one party: every owner ``o`` authenticated ``sizes[o]`` bits
    (plus ``MASK_BITS`` random ones at the end if ``masked``).

    ``mine`` are this party's bits (with its mask bits); ``keys[j]`` the rows ``K`` it holds on party
    j's bits; ``macs[j]`` the rows ``M`` it got from j on its own bits.
    """

    party: int
    delta: np.ndarray
    sizes: list[int]
    masked: bool
    mine: np.ndarray | None
    keys: dict[int, np.ndarray] = field(default_factory=dict)
    macs: dict[int, np.ndarray] = field(default_factory=dict)
    _own: np.ndarray | None = None

    def component(self, owner: int) -> np.ndarray:
        """This party's MAC share of ``owner``'s bits (mask rows included, at the end); read-only use."""
        if owner != self.party:
            return self.keys[owner]
        if self._own is None:
            assert self.mine is not None
            acc = times_delta(self.mine, self.delta)
            for rows in self.macs.values():
                acc ^= rows
            self._own = acc
        return self._own

    def pending(self, owner: int) -> PendingAuth:
        """The consistency-check record for ``owner``'s bits of this (masked) batch."""
        if not self.masked:
            raise ValueError("a batch checked on its own must carry the mask bits")
        size = self.sizes[owner]
        comp = self.component(owner)
        auth = PendingAuth(owner, [comp[:size]], comp[size:])
        if owner == self.party:
            assert self.mine is not None
            auth.bits, auth.mask_bits = [self.mine[:size]], self.mine[size:]
        return auth


async def cot_batch(
    s: Session, party: BinaryParty, mine: np.ndarray | None, sizes: Sequence[int], masked: bool = True
) -> CotBatch:
    """Run the correlated OTs of one batch with every peer, both roles at once.

    ``sizes[o]`` bits from each owner ``o`` (the same list at every party); ``mine`` (uint8 0/1) are
    this party's, ``None`` if its size is 0. With ``masked``, every owner with bits appends
    ``MASK_BITS`` fresh random bits for the consistency check.
    """
    me, n = s.party, s.n
    sizes = list(sizes)
    if len(sizes) != n or any(k < 0 for k in sizes):
        raise ValueError("cot_batch needs one non-negative size per party")
    if (mine is None) != (sizes[me] == 0) or (mine is not None and mine.size != sizes[me]):
        raise ValueError("this party's bits do not match its announced size")
    extra = MASK_BITS if masked else 0
    full = None
    if sizes[me]:
        assert mine is not None
        full = np.concatenate([mine.astype(np.uint8), random_bits(extra)]) if extra else mine.astype(np.uint8)
    batch = CotBatch(me, party.ctx.delta, sizes, masked, full)

    async def as_receiver(j: int) -> None:
        ch = s.pair_channel(j, cot_channel(me, j))
        batch.macs[j] = await party.cot_recv[j].extend_correlated(ch, full)

    async def as_sender(j: int) -> None:
        ch = s.pair_channel(j, cot_channel(j, me))
        batch.keys[j] = await party.cot_send[j].extend_correlated(ch, sizes[j] + extra)

    async with task_group() as nursery:
        for j in range(n):
            if j == me:
                continue
            if sizes[me]:
                nursery.start_soon(as_receiver, j)
            if sizes[j]:
                nursery.start_soon(as_sender, j)
    return batch
