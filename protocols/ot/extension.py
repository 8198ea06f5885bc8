"""The OT-extension interface MASCOT builds on, and the registry of implementations.

MASCOT needs, between every ordered pair of parties, an endless supply of *random* 1-out-of-2 OTs of
128-bit strings: the set-up takes ``bits(p)`` of them as COPE's seeds (``cope.setup_from``), and every
triple batch takes ``bits(p)`` per element of ``a`` for Gilboa's multiplication (``triples``). It calls
nothing else on the two ends, so an OT extension is any pair of classes with the methods below. KOS
(``kos.py``) and SoftSpokenOT (``softspoken.py``) are registered; another one is one more class pair
and one more line in ``EXTENSIONS``, and ``MascotParty(..., ot_extension="name")`` selects it.

Construction: ``Sender(context)`` / ``Receiver(context)``, where ``context`` (bytes) names the session
and is the same at both ends; it must go into every hash or commitment that binds a run to its
session. Each end then runs on one ``PairChannel`` per direction of a pair (``triples.ot_channel``),
shared with its caller: MASCOT sends its own messages (COPE corrections, Gilboa corrections) on the
same channel between calls, so each call must have sent and received all of its own messages, in an
order both ends agree on, by the time it returns. Calls on the two ends match one for one (``setup``
with ``setup``, the sender's ``extend(ch, m)`` with the receiver's ``extend(ch, choices)`` of length
m); one end is never used by two tasks at once.

Security MASCOT relies on (the random-OT functionality, against a malicious peer):

* the receiver learns exactly one message of each OT, ``v_{x_j}[j]``, and nothing about the other;
* the sender learns nothing about the choice bits;
* the messages are pseudo-random and independent across OTs and across ``extend`` calls of one set-up
  (they are used directly as PRF keys and, cut to ``bits(p)`` bits, as field elements), so no
  correlation internal to the extension (KOS's Delta) may survive into the outputs;
* a peer that deviates in a way that would break the above is caught, except with negligible
  probability, and the honest end raises ``AbortError`` (or a ``ProtocolError`` for malformed
  messages) with ``culprit`` set to the peer, before returning any output of that call.

What stays MASCOT's own business: a party that misuses honest OT outputs afterwards (wrong COPE or
Gilboa corrections: the MAC checks and the sacrifice catch them), including a sender's selective
failure that tells it a few of the receiver's choice bits by whether a later check passes (the random
combination of ``tau`` copies in ``triples`` makes those bits useless).

Output format, at both ends: 128-bit strings as ``uint64`` arrays of shape ``(m, 2)``, two
little-endian words per string, low word first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import numpy as np

from ..net import PairChannel
from .kos import KOSReceiver, KOSSender
from .softspoken import SoftSpokenReceiver, SoftSpokenSender

__all__ = [
    "DEFAULT",
    "EXTENSIONS",
    "OTExtensionReceiver",
    "OTExtensionSender",
    "ReceiverFactory",
    "SenderFactory",
    "lookup",
    "register",
]


@runtime_checkable
class OTExtensionSender(Protocol):
    """The sender end: gets both messages of every OT."""

    async def setup(self, ch: PairChannel) -> None:
        """Once, before any ``extend``, with the receiver's ``setup`` on the same channel: whatever
        public-key work (base OTs) and secret state (KOS: Delta) the extension needs."""
        ...

    async def extend(self, ch: PairChannel, m: int) -> tuple[np.ndarray, np.ndarray]:
        """``m`` (> 0) random OTs: ``(v0, v1)``, each ``uint64`` of shape ``(m, 2)``; the receiver
        gets ``v1[j]`` where its choice bit ``x_j`` is 1 and ``v0[j]`` where it is 0. Checks the
        receiver's consistency before returning (``AbortError`` naming it if that fails)."""
        ...


@runtime_checkable
class OTExtensionReceiver(Protocol):
    """The receiver end: chooses, and gets the chosen message of every OT."""

    async def setup(self, ch: PairChannel) -> None:
        """Once, before any ``extend``, with the sender's ``setup`` on the same channel."""
        ...

    async def extend(self, ch: PairChannel, choices: np.ndarray) -> np.ndarray:
        """Random OTs with the choice bits ``choices`` (non-empty 1-d, bool or 0/1; anything else is a
        ``ValueError``): ``v`` ``uint64`` of shape ``(m, 2)``, ``v[j]`` the sender's ``v_{x_j}[j]``."""
        ...


SenderFactory = Callable[[bytes], OTExtensionSender]
ReceiverFactory = Callable[[bytes], OTExtensionReceiver]

DEFAULT = "softspoken"
"""MASCOT's extension unless told otherwise. SoftSpokenOT with k = 2 costs what KOS costs in compute
on this project's 2-core reference machine (``ot_bench.py``) and sends half the bytes per OT (8 instead
of 16; 14% fewer bytes per MASCOT triple, ``offline_bench.py``), which matters more on real networks
than on loopback. MP-SPDZ's default is the same."""

EXTENSIONS: dict[str, tuple[SenderFactory, ReceiverFactory]] = {
    "kos": (KOSSender, KOSReceiver),  # Keller-Orsini-Scholl 2015: IKNP plus a correlation check
    "softspoken": (SoftSpokenSender, SoftSpokenReceiver),  # Roy 2022: small-field VOLE, k = 2 default
}


def lookup(name: str) -> tuple[SenderFactory, ReceiverFactory]:
    """The ``(sender class, receiver class)`` registered as ``name``; a ``ValueError`` naming the
    known extensions if there is none."""
    try:
        return EXTENSIONS[name]
    except (KeyError, TypeError):
        known = ", ".join(repr(k) for k in sorted(EXTENSIONS))
        raise ValueError(f"unknown OT extension {name!r}; known: {known}") from None


def register(name: str, sender: SenderFactory, receiver: ReceiverFactory) -> None:
    """Make ``(sender, receiver)`` available as ``name``; a name is registered once."""
    if name in EXTENSIONS:
        raise ValueError(f"OT extension {name!r} is already registered")
    EXTENSIONS[name] = (sender, receiver)
