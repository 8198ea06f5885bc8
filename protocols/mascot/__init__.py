"""MASCOT preprocessing (Keller, Orsini, Scholl, CCS 2016): the maliciously secure offline phase.

``MascotParty`` is one party's long-lived offline state under one MAC key: its key share ``alpha_i``,
the COPE ends (both roles) and the OT-extension ends (both roles) with every peer. The extension is
named in ``protocols.ot.extension``'s registry (default ``"kos"``) or given as a pair of classes.
``setup`` runs all base OTs once (for KOS, 128 per ordered pair; COPE's seeds come from the extension);
the generators then run inside an offline ``Session`` (which supplies the network, round numbers, coin
tosses and MAC checks) and return only material whose checks passed.

If any check fails, the key share may have leaked (a failed MAC check reveals alpha times an error
the adversary knows): ``retire()`` zeroes it, and the owner must build a new ``MascotParty``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..concurrency import task_group
from ..errors import AbortError
from ..field import PrimeField
from ..ot.extension import (
    DEFAULT,
    OTExtensionReceiver,
    OTExtensionSender,
    ReceiverFactory,
    SenderFactory,
    lookup,
)
from ..prg import PRG
from ..shares import ShareContext, SharedArray
from .auth import authenticate
from .cope import CopeReceiver, CopeSender
from .masks import generate_proven_loose
from .owned import generate_owned_triples
from .ranged import generate_ranged
from .triples import TAU, generate_triples, ot_channel

if TYPE_CHECKING:
    from ..online import Session

__all__ = ["TAU", "MascotParty"]


class MascotParty:
    def __init__(
        self,
        field: PrimeField,
        party: int,
        n: int,
        ot_extension: str | tuple[SenderFactory, ReceiverFactory] = DEFAULT,
    ) -> None:
        """``ot_extension``: a name registered in ``protocols.ot.extension`` (an unknown one is a
        ``ValueError`` here, before any set-up) or a ``(sender class, receiver class)`` pair."""
        sender, receiver = lookup(ot_extension) if isinstance(ot_extension, str) else ot_extension
        self.ot_ends: tuple[SenderFactory, ReceiverFactory] = (sender, receiver)
        self.field = field
        self.party = party
        self.n = n
        key = field.random(1, PRG())
        self.ctx = ShareContext(field, party, n, key)
        self.cope_send: dict[int, CopeSender] = {}
        self.cope_recv: dict[int, CopeReceiver] = {}
        self.ot_send: dict[int, OTExtensionSender] = {}
        self.ot_recv: dict[int, OTExtensionReceiver] = {}
        self.ready = False
        self.retired = False

    def __repr__(self) -> str:
        return f"<MascotParty party={self.party}/{self.n} field={self.field.name} ready={self.ready}>"

    @property
    def alpha(self) -> int:
        return self.field.to_ints(self.ctx.alpha)[0]

    async def setup(self, s: Session) -> None:
        """With every peer, both roles, concurrently: the OT extension's set-up (base OTs), then COPE's
        seeds from the first OTs of that extension (the key holder is its receiver; see ``cope``)."""
        f, me = self.field, self.party
        ctx = s.commit_context("mascot-setup")
        alpha = self.alpha
        make_sender, make_receiver = self.ot_ends

        async def as_receiver(j: int) -> None:  # OT receiver and COPE key holder towards j
            ch = s.pair_channel(j, ot_channel(me, j))
            await self.ot_recv[j].setup(ch)
            await self.cope_recv[j].setup_from(self.ot_recv[j], ch, alpha)

        async def as_sender(j: int) -> None:  # OT sender and COPE owner towards j
            ch = s.pair_channel(j, ot_channel(j, me))
            await self.ot_send[j].setup(ch)
            await self.cope_send[j].setup_from(self.ot_send[j], ch)

        async with task_group() as nursery:
            for j in range(self.n):
                if j == me:
                    continue
                self.cope_send[j], self.cope_recv[j] = CopeSender(f), CopeReceiver(f)
                self.ot_send[j], self.ot_recv[j] = make_sender(ctx), make_receiver(ctx)
                nursery.start_soon(as_receiver, j)
                nursery.start_soon(as_sender, j)
        self.ready = True

    def _check(self, s: Session) -> None:
        if self.retired:  # a batch still in flight when a check elsewhere failed
            raise AbortError("this MAC key was retired after a failed check")
        if not self.ready:
            raise RuntimeError("MascotParty.setup() has not run")
        if s.ctx is not self.ctx:
            raise ValueError("the offline session must use this MascotParty's share context")

    async def triples(self, s: Session, count: int) -> tuple[SharedArray, SharedArray, SharedArray]:
        self._check(s)
        return await generate_triples(s, self.cope_send, self.cope_recv, self.ot_send, self.ot_recv, count)

    async def owned_triples(
        self, s: Session, owner: int, count: int, width: int
    ) -> tuple[SharedArray, SharedArray, SharedArray]:
        """``count`` groups of ``width`` products whose ``a`` ``owner`` knows (``owned.py``)."""
        self._check(s)
        return await generate_owned_triples(
            s,
            self.cope_send,
            self.cope_recv,
            self.ot_send,
            self.ot_recv,
            lambda m: self.triples(s, m),
            owner,
            count,
            width,
        )

    async def ranged_randoms(self, s: Session, count: int, width: int) -> SharedArray:
        """``[R]`` for ``count`` sums of the parties' range-proven uniform ``width``-bit randoms
        (``ranged.py``): what a wide-rounding truncation masks with."""
        self._check(s)
        return await generate_ranged(s, self.cope_send, self.cope_recv, count, width)

    async def proven_loose_edabits(self, s: Session, bs: Any, count: int, k: int) -> tuple[SharedArray, Any]:
        """``count`` loose edaBits of ``k`` bits from every party's range-proven inputs (``masks.py``):
        the contract of ``binary.edabits.generate_loose_edabits`` without its cut-and-choose."""
        self._check(s)
        return await generate_proven_loose(s, bs, self.cope_send, self.cope_recv, count, k)

    async def input_masks(self, s: Session, owner: int, count: int) -> tuple[SharedArray, np.ndarray | None]:
        """``[[r]]`` for ``count`` random ``r`` known to ``owner`` only (clear ``r`` returned there)."""
        self._check(s)
        if count < 0:
            raise ValueError(f"the number of input masks must not be negative, got {count}")
        if count == 0:  # every party sees the same count: nothing to send
            empty = SharedArray(s.ctx, self.field.zeros(0), self.field.zeros(0))
            return empty, self.field.zeros(0) if owner == self.party else None
        sizes = [0] * self.n
        sizes[owner] = count
        r = self.field.random(count, PRG()) if owner == self.party else None
        shares = await authenticate(s, self.cope_send, self.cope_recv, r, sizes)
        masked = shares[owner]
        assert masked is not None
        return masked, r

    async def randoms(self, s: Session, count: int) -> SharedArray:
        """``[[r]]`` for ``count`` random ``r`` nobody knows: the sum of one random input per party."""
        self._check(s)
        if count < 0:
            raise ValueError(f"the number of random values must not be negative, got {count}")
        if count == 0:
            return SharedArray(s.ctx, self.field.zeros(0), self.field.zeros(0))
        mine = self.field.random(count, PRG())
        shares = await authenticate(s, self.cope_send, self.cope_recv, mine, [count] * self.n)
        total = shares[0]
        assert total is not None
        for sh in shares[1:]:
            assert sh is not None
            total = total + sh
        return total

    async def squares(self, s: Session, count: int) -> tuple[SharedArray, SharedArray]:
        """``([[a]], [[a^2]])`` from checked triples: open ``e = a - b`` (uniform: a, b independent),
        then ``a^2 = a (b + e) = c + e a``. The opening is MAC-checked before anything is returned."""
        a, b, c = await self.triples(s, count)
        (e,) = await s.open_unchecked([a - b])
        await s.mac_check()
        return a, c + a.mul_public_field(e)

    async def bits(self, s: Session, count: int) -> SharedArray:
        """``count`` random shared bits: open a random square ``a^2`` (checked), take its root
        ``v = (a^2)^((p+1)/4)`` (p = 3 mod 4), and ``b = (a / v + 1) / 2``; ``a / v = +-1`` with a
        uniform sign. Squares that open to zero (probability 1/p) are dropped and redrawn."""
        f = self.field
        out: list[SharedArray] = []
        have = 0
        while have < count:
            need = count - have
            a, a2 = await self.squares(s, need)
            (sq,) = await s.open_unchecked([a2])
            await s.mac_check()
            keep = np.flatnonzero(np.any(sq != 0, axis=0))
            if keep.size == 0:
                continue
            a, sq = a[keep], sq[:, keep]
            root = f.pow(sq, (f.modulus + 1) // 4)
            half = f.from_ints([(f.modulus + 1) // 2])
            sign = a.mul_public_field(f.inv(root))  # +-1
            out.append((sign + 1).mul_public_field(half))
            have += keep.size
        return out[0] if len(out) == 1 else SharedArray.concat(out)

    def retire(self) -> None:
        """Forget the MAC key share and every OT seed: after a failed check they may be known."""
        self.ctx.alpha[...] = 0
        self.cope_send.clear()
        self.cope_recv.clear()
        self.ot_send.clear()
        self.ot_recv.clear()
        self.ready = False
        self.retired = True
