"""One party's long-lived binary state: its MAC key share Delta_i and its correlated-OT ends.

``BinaryParty`` is to the binary domain what ``MascotParty`` is to the field: created once per party
set, ``setup`` once inside some session (128 base OTs per ordered pair; every one of this party's
OT-extension senders is built with ``Delta_i`` as its correlation, ``SoftSpokenSender(context,
delta=...)`` or ``KOSSender(context, delta=...)``), then used from any number of sessions through
``BitSession``. The OT ends are instances of their own (not MASCOT's: their Delta is the MAC key
share) on channels ``auth.cot_channel``. SoftSpokenOT (k = 2, the default) sends half of KOS's bytes
per authenticated bit.

If a check fails, the key share may have leaked (a failed check can reveal Delta times an error the
adversary knows), and the OT ends may be out of step with the peers': ``retire()`` zeroes the key
and drops the ends; the owner builds a new ``BinaryParty``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..concurrency import task_group
from ..errors import AbortError
from ..ot.extension import DEFAULT as DEFAULT_OT
from ..ot.extension import lookup as lookup_ot
from ..prg import PRG
from .auth import cot_channel
from .bits import BinaryContext

if TYPE_CHECKING:
    from ..online import Session


class BinaryParty:
    def __init__(self, party: int, n: int, ot_extension: str = DEFAULT_OT) -> None:
        """``ot_extension``: the correlated OTs' extension (``protocols.ot.extension``: ``"softspoken"``,
        the default, sends 8 bytes per authenticated bit and peer, ``"kos"`` 16); every party of a set
        must use the same one."""
        self.sender_cls, self.receiver_cls = lookup_ot(ot_extension)
        self.ot_extension = ot_extension
        if not 0 <= party < n or n < 2:
            raise ValueError(f"party {party} of {n} is not a party of a set of at least 2")
        if n > 64:
            raise ValueError("at most 64 parties (channel ids and hash tweaks hold 6-bit party ids)")
        self.ctx = BinaryContext(party, n, PRG().random_words(2))
        self.party = party
        self.n = n
        self.cot_send: dict[int, Any] = {}  # OTExtensionSender with a fixed delta
        self.cot_recv: dict[int, Any] = {}
        self.hashed: dict[tuple[int, int], int] = {}  # (receiver, sender) -> OTs hashed (tweaks)
        self.ready = False
        self.retired = False

    def __repr__(self) -> str:
        return f"<BinaryParty party={self.party}/{self.n} ready={self.ready}>"

    async def setup(self, s: Session) -> None:
        """With every peer, both roles, concurrently: the base OTs of one KOS instance per direction."""
        if self.retired:
            raise AbortError("this binary MAC key was retired after a failed check")
        if (s.party, s.n) != (self.party, self.n):
            raise ValueError("the session's party id or count differs from this BinaryParty's")
        me = self.party
        context = s.commit_context("binary-cot")

        async def as_receiver(j: int) -> None:
            await self.cot_recv[j].setup(s.pair_channel(j, cot_channel(me, j)))

        async def as_sender(j: int) -> None:
            await self.cot_send[j].setup(s.pair_channel(j, cot_channel(j, me)))

        try:
            async with task_group() as nursery:
                for j in range(self.n):
                    if j == me:
                        continue
                    self.cot_send[j] = self.sender_cls(context, delta=self._sender_delta(j))  # type: ignore[call-arg]
                    self.cot_recv[j] = self.receiver_cls(context)
                    nursery.start_soon(as_receiver, j)
                    nursery.start_soon(as_sender, j)
        except AbortError:
            self.retire()
            raise
        self.ready = True

    def _sender_delta(self, peer: int) -> np.ndarray:
        """The correlation of our KOS sender towards ``peer``: always our key share (a cheating test
        overrides this to use another one towards one peer)."""
        return self.ctx.delta

    def check_usable(self, s: Session) -> None:
        if self.retired:  # e.g. a batch still in flight when a check elsewhere failed
            raise AbortError("this binary MAC key was retired after a failed check")
        if not self.ready:
            raise RuntimeError("BinaryParty.setup() has not run")
        if (s.party, s.n) != (self.party, self.n):
            raise ValueError("the session's party id or count differs from this BinaryParty's")

    def retire(self) -> None:
        """Forget the key share and every OT end: after a failed check they may be known."""
        self.ctx.delta[...] = 0
        self.cot_send.clear()
        self.cot_recv.clear()
        self.ready = False
        self.retired = True
