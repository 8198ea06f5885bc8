"""Malicious parties: an interception interface on one corrupt party, and a catalogue of strategies.

The interface
-------------
A corrupt party runs the honest code; an ``Adversary`` bends it at four points, which together reach
everything a real cheater controls and nothing it does not:

* ``wrap_net(session, net)`` and ``wrap_preprocessing(session, pre)``: the engine's ``Interceptor``
  hooks, called for every session the party runs (online sessions, and the offline service's MASCOT
  sessions ``mascot/<epoch>/setup`` and ``mascot/<epoch>/<k>``; the leader's first epoch is named
  ``0-<nonce>``). Most strategies wrap the ``Net`` in a ``SessionTap``, which classifies each
  outgoing message by its wire format (see ``Outgoing``) and lets the strategy replace, drop,
  duplicate or delay it; others alter the preprocessing the party draws.
* ``wrap_wire(peer, stream)`` and ``wrap_link(peer, stream)``: the ``LinkHooks`` of ``SimTransport``,
  over each of the party's connections below and above TLS, for replayed, reordered or forged records
  and for going dark.
* ``attach(party, net, nursery)``: the party actor itself (its MASCOT state, its links) and a nursery
  for timers, given once the simulation is running.

An adversary is built from the run's seed (``AttackContext.rng``): which message it hits, by how much,
towards whom, all replay exactly. ``actions`` lists what it did; an adversary that never found its
target has ``fired == False`` (tests treat that as a broken test, not as a pass).

Recognising messages. Programs never open vectors of exactly 32 bytes (``netsim.programs``), so in an
online session a 32-byte message is a commitment, ``[nonce, 32 bytes]`` a coin-toss opening, ``[nonce,
sigma + digest]`` a MAC-check opening, a list of ints an input's shape, the bytes one step after a
shape its correction, and any other bytes an opened share. MASCOT's pairwise sub-protocols use
``PairChannel`` steps ``channel * 2^40 + k`` with the channel ids of ``auth.cope_channel`` and
``triples.ot_channel``. Binary-domain messages (``protocols.binary``) share those formats (packed bits
are bytes), so they are told apart by where the honest code sends them from (``origin``: the protocol
functions on the sending task's stack) and classified as ``binary``: the field strategies never count
or hit them, and the binary ones (``BINARY``, for the programs with ``SimProgram.binary``) look for
their own targets by origin too (``docs/netsim.md``).

What must happen. Strategies deviate once: in the party's first online session, or in the first key
epoch's MASCOT sessions. No strategy may make an honest party accept a wrong output. Every one but the
filtered ones (``filtered = True``: replay, reorder, forge, whose link-level variants the link layer
absorbs) must be noticed: the honest parties abort (SPDZ has no fairness, so one that completed the
last round before a peer's abort may still return the correct output). MASCOT deviations must make
every honest party reject that epoch's material (``OfflineService.failures``); the service re-keys and
the program either completes on fresh material or aborts. ``withhold`` (``sweep = False``: each run waits
out the engine's 600 s receive timeout) keeps its links alive but stops sending; the others abort
when that timeout names it.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np
import trio
from nacl import bindings as sodium

from actors.frames import MSG, Frame
from actors.peerlink import _Hello, encode_hello, new_incarnation
from actors.sessions import MASCOT_PREFIX
from protocols.binary.auth import cot_channel
from protocols.commitments import commit, context_bytes
from protocols.errors import PeerAuthError
from protocols.field import PrimeField
from protocols.intercept import Forwarding, PassThrough
from protocols.mascot.auth import cope_channel
from protocols.mascot.triples import TAU, ot_channel
from protocols.net import Net, PairChannel
from protocols.ot.base import POINT_BYTES
from protocols.preprocessing.base import Preprocessing
from protocols.preprocessing.pool import LEADER
from protocols.shares import SharedArray

from .network import Network
from .programs import SimProgram

STRIDE = PairChannel.STRIDE


class NotApplicable(ValueError):
    """The strategy has no target in this program or at this number of parties."""


@dataclass(frozen=True)
class AttackContext:
    """What an adversary is built from: who it is, the session's field and program, and its RNG."""

    party: int
    n: int
    field: PrimeField
    program: SimProgram
    rng: random.Random

    @property
    def peers(self) -> list[int]:
        return [j for j in range(self.n) if j != self.party]


# ------------------------------------------------------------------------------------------ messages
def plain(msg: Any) -> Any:
    """Bytes-likes (protocol code sends memoryviews) as ``bytes``, inside lists too."""
    if isinstance(msg, (bytearray, memoryview)):
        return bytes(msg)
    if isinstance(msg, (list, tuple)):
        return [plain(m) for m in msg]
    return msg


def origin() -> list[str]:
    """The protocol functions on the calling task's stack, innermost first, as ``module.qualname``.

    Binary messages share their wire formats with the field's (packed bits are bytes, as field vectors
    are), so the binary strategies recognise a message by where the honest code sends it from: a real
    cheater runs its own code and knows which step it is in; reading the stack is the simulator's
    stand-in for that. (``exchange`` and ``Session.input`` send from the caller's task, so their
    callers are on the stack.)"""
    names: list[str] = []
    frame = sys._getframe(1)
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module.startswith("protocols."):
            names.append(f"{module}.{frame.f_code.co_qualname}")
        frame = frame.f_back
    return names


BINARY_OPEN = "protocols.binary.check.BitChecker.open"
FIELD_INPUT = "protocols.online.Session.input"
GENERATORS = ("protocols.binary.dabits._generate", "protocols.binary.edabits._generate")
LEAKY_AND = "protocols.binary.triples.leaky_triples.<locals>.as_sender"


def generating(names: list[str]) -> str | None:
    """Which material the innermost generation on the stack makes: ``dabits``, ``edabits`` or None
    (the daBits that ``generate_edabits`` makes for itself count as daBits)."""
    for name in names:
        if name in GENERATORS:
            return name.split(".")[2]
    return None


HELPERS = ("protocols.net.", "protocols.commitments.", "protocols.concurrency.")
"""Modules of generic sending helpers: a message is the protocol's that called them."""


def from_binary(names: list[str]) -> bool:
    """Whether a message comes from the binary domain (``protocols.binary``): the innermost protocol
    function on the stack that is not a generic helper decides, so the field inputs, products and
    openings of daBit and edaBit generation stay field messages. (OT extensions talk on pair
    channels, which are classified before this.)"""
    for name in names:
        if not name.startswith(HELPERS):
            return name.startswith("protocols.binary.")
    return False


@dataclass
class Outgoing:
    """One message the corrupt party is about to send, and what it is.

    ``kind``: ``shape``, ``correction``, ``share``, ``commit``, ``coin-open``, ``sigma-open``, ``pair``
    (a ``PairChannel`` message: ``channel`` and ``k`` say which), ``binary`` (any other message of the
    binary domain: its openings, checks and announcements; ``from_binary``) or ``other``.
    ``occurrence`` numbers the steps of that kind in the session (a broadcast to several peers is one
    occurrence), ``index`` all of the session's sending steps.
    """

    to: int
    step: int
    msg: Any
    kind: str
    occurrence: int
    index: int

    @property
    def channel(self) -> int:
        return self.step // STRIDE

    @property
    def k(self) -> int:
        return self.step % STRIDE


Send = tuple[int, int, Any]  # (to, step, msg)


class SessionTap:
    """A session's ``Net`` as the corrupt party sees it: every send goes through ``adversary.on_send``,
    which returns what to send instead (nothing, the message, an altered one, several)."""

    def __init__(self, inner: Net, adversary: Adversary, session: str) -> None:
        self.inner = inner
        self.party = inner.party
        self.n = inner.n
        self.adversary = adversary
        self.session = session
        self.sent: list[Send] = []
        self._kind_steps: dict[str, list[int]] = {}
        self._steps: list[int] = []
        self._shape_steps: set[int] = set()

    def _classify(self, to: int, step: int, msg: Any) -> Outgoing:
        if step >= STRIDE:
            kind = "pair"
        elif from_binary(origin()):
            kind = "binary"
        elif isinstance(msg, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in msg):
            kind = "shape"
            self._shape_steps.add(step)
        elif isinstance(msg, bytes) and step - 1 in self._shape_steps:
            kind = "correction"
        elif isinstance(msg, bytes):
            kind = "commit" if len(msg) == 32 else "share"
        elif isinstance(msg, list) and len(msg) == 2 and all(isinstance(x, bytes) for x in msg):
            kind = "coin-open" if len(msg[1]) == 32 else "sigma-open"
        else:
            kind = "other"
        seen = self._kind_steps.setdefault(kind, [])
        if step not in seen:
            seen.append(step)
        if step not in self._steps:
            self._steps.append(step)
        return Outgoing(to, step, msg, kind, seen.index(step), self._steps.index(step))

    async def send(self, to: int, step: int, msg: Any) -> None:
        out = self._classify(to, step, plain(msg))
        for item in self.adversary.on_send(self, out):
            await self.send_raw(*item)

    async def send_raw(self, to: int, step: int, msg: Any) -> None:
        """Send without the adversary's filter (for messages it held back or made up)."""
        self.sent.append((to, step, msg))
        await self.inner.send(to, step, msg)

    async def recv(self, frm: int, step: int) -> Any:
        msg = await self.inner.recv(frm, step)
        self.adversary.on_recv(self, frm, step, msg)
        return msg


# ------------------------------------------------------------------------------------------ base class
class Adversary(PassThrough):
    """The honest behaviour; each strategy overrides the hooks it needs (module docstring)."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    mascot: ClassVar[bool] = False  # acts in MASCOT's offline sessions: the run needs MASCOT preprocessing
    filtered: ClassVar[bool] = False  # a correct output is acceptable too: the deviation may be absorbed
    sweep: ClassVar[bool] = True  # part of ``--adversary all``
    needs_triples: ClassVar[bool] = False
    binary: ClassVar[bool] = False  # attacks the binary domain: only programs with ``SimProgram.binary``
    programs: ClassVar[tuple[str, ...]] = ("mul",)
    """The programs ``--adversary all`` (and a named adversary without ``--program``) runs it on; a run's
    seed picks one of them (``program_for``)."""

    def __init__(self, ctx: AttackContext) -> None:
        self.ctx = ctx
        self.party = ctx.party
        self.field = ctx.field
        self.rng = ctx.rng
        self.actions: list[str] = []
        self.plan = ""
        self.nursery: trio.Nursery | None = None
        self.network: Network | None = None
        self.actor: Any = None
        if self.needs_triples and ctx.program.triples == 0:
            raise NotApplicable(
                f"{self.name} needs a program with multiplications; {ctx.program.name} has none"
            )

    @property
    def fired(self) -> bool:
        return bool(self.actions)

    def act(self, what: str) -> None:
        self.actions.append(what)

    def attach(self, party: Any, network: Network, nursery: trio.Nursery) -> None:
        """The corrupt party's actor, the network and a nursery for timers (called once, at start)."""
        self.actor, self.network, self.nursery = party, network, nursery

    # -- Interceptor (``wrap_preprocessing``: PassThrough's, the preprocessing as drawn)
    def wrap_net(self, session: str, net: Net) -> Net:
        return SessionTap(net, self, session) if self.taps(session) else net

    def taps(self, session: str) -> bool:
        """Whether this strategy looks at ``session``'s messages (default: the first online session)."""
        return self.first_online(session)

    def first_online(self, session: str) -> bool:
        """True for the first online session this party runs (and for it only): strategies deviate
        once, so later sessions of a run show whether the honest parties recover."""
        if session.startswith(MASCOT_PREFIX):
            return False
        if self._online is None:
            self._online = session
        return session == self._online

    _online: str | None = None

    def on_send(self, tap: SessionTap, out: Outgoing) -> list[Send]:
        return [(out.to, out.step, out.msg)]

    def on_recv(self, tap: SessionTap, frm: int, step: int, msg: Any) -> None:
        return None

    # -- LinkHooks
    def wrap_wire(self, peer: int, stream: trio.abc.Stream) -> trio.abc.Stream:
        return stream

    def wrap_link(self, peer: int, stream: trio.abc.Stream) -> trio.abc.Stream:
        return stream

    # -- helpers
    def subset(self, strict: bool) -> list[int]:
        """A random non-empty set of peers; a proper subset when ``strict`` and there are 2+ peers."""
        peers = self.ctx.peers
        top = len(peers) - 1 if strict and len(peers) > 1 else len(peers)
        k = self.rng.randint(1, top)
        return sorted(self.rng.sample(peers, k))

    def delta(self) -> int:
        return self.rng.randrange(1, self.field.modulus)

    def add_to_vector(self, msg: bytes, delta: int, indices: list[int]) -> bytes:
        """``msg`` (a field vector) with ``delta`` added at ``indices``."""
        f = self.field
        v = f.from_bytes(msg)
        d = [0] * v.shape[1]
        for i in indices:
            d[i] = delta
        return f.to_bytes(f.add(v, f.from_ints(d)))


def _flip_last(b: bytes) -> bytes:
    return b[:-1] + bytes([b[-1] ^ 1])


# ------------------------------------------------------------------------------------------ online
class MessageAttack(Adversary):
    """Alter one targeted message (``kind``, ``occurrence``) towards ``victims``."""

    kind = "share"
    strict = False  # victims a proper subset of the peers (equivocation) or any non-empty set
    what = ""  # how the message was changed, for ``actions``

    def __init__(self, ctx: AttackContext) -> None:
        super().__init__(ctx)
        self.occurrence = self.rng.randrange(self.occurrences())
        self.victims = self.subset(self.strict)

    def occurrences(self) -> int:
        return self.ctx.program.openings

    def on_send(self, tap: SessionTap, out: Outgoing) -> list[Send]:
        if out.kind == self.kind and out.occurrence == self.occurrence and out.to in self.victims:
            new = self.mutate(out)
            self.act(f"{self.kind} #{out.occurrence} (step {out.step}) to party {out.to}: {self.what}")
            return [(out.to, out.step, new)]
        return [(out.to, out.step, out.msg)]

    def mutate(self, out: Outgoing) -> Any:
        raise NotImplementedError


class WrongShare(MessageAttack):
    name = "wrong-share"
    description = "adds a random delta to its share in one opening (Beaver, output, private output)"

    def __init__(self, ctx: AttackContext) -> None:
        super().__init__(ctx)
        self.d = self.delta()
        self.what = f"share + {self.d}"
        self.plan = f"opening #{self.occurrence}, to parties {self.victims}"

    def mutate(self, out: Outgoing) -> Any:
        size = len(out.msg) // self.field.elem_bytes
        return self.add_to_vector(out.msg, self.d, [self.rng.randrange(size)])


class InconsistentBroadcast(MessageAttack):
    name = "inconsistent-broadcast"
    description = "sends a different input correction or opened share to some parties than to the others"
    strict = True

    def __init__(self, ctx: AttackContext) -> None:
        owned = ctx.party in ctx.program.owners(ctx.n) and ctx.n > 2
        self.kind = "correction" if owned and ctx.rng.random() < 0.5 else "share"
        super().__init__(ctx)
        self.d = self.delta()
        self.what = f"another value (+ {self.d}) than to the rest"
        self.plan = f"{self.kind} #{self.occurrence}: a different value to parties {self.victims}"

    def occurrences(self) -> int:
        if self.kind == "correction":
            return self.ctx.program.owners(self.ctx.n).count(self.party)
        return self.ctx.program.openings

    def mutate(self, out: Outgoing) -> Any:
        size = len(out.msg) // self.field.elem_bytes
        return self.add_to_vector(out.msg, self.d, [self.rng.randrange(size)])


class BadCommitment(MessageAttack):
    name = "bad-commitment"
    description = "opens its MAC-check commitment to another value (sigma or nonce changed)"
    kind = "sigma-open"

    def __init__(self, ctx: AttackContext) -> None:
        super().__init__(ctx)
        self.part = self.rng.randrange(2)
        self.what = f"{('nonce', 'sigma')[self.part]} changed"
        self.plan = f"MAC check #{self.occurrence}: opens with its {('nonce', 'sigma')[self.part]} changed"

    def occurrences(self) -> int:
        return self.ctx.program.checks

    def mutate(self, out: Outgoing) -> Any:
        opening = list(out.msg)
        opening[self.part] = _flip_last(opening[self.part])
        return opening


class CoinEquivocation(Adversary):
    name = "coin-equivocation"
    description = "equivocates in a MAC-check coin toss: another seed for some parties (opened or committed)"

    def __init__(self, ctx: AttackContext) -> None:
        super().__init__(ctx)
        self.occurrence = self.rng.randrange(ctx.program.checks)
        self.victims = self.subset(strict=True)
        # "open": a seed that does not match the commitment; "fork": a second, valid commitment and
        # opening for the victims, so each side computes another coin (the MAC check itself must fail)
        self.mode = self.rng.choice(["open", "fork"])
        self.alt_seed = self.rng.randbytes(32)
        self.alt: dict[int, tuple[bytes, bytes]] = {}  # commit step -> (commitment, nonce) for the fork
        self.plan = f"coin toss #{self.occurrence}: {self.mode} towards parties {self.victims}"

    def on_send(self, tap: SessionTap, out: Outgoing) -> list[Send]:
        keep = [(out.to, out.step, out.msg)]
        if out.to not in self.victims:
            return keep
        # each MAC check commits twice (coin, then sigma): coin toss #i is commitment #2i
        if self.mode == "fork" and out.kind == "commit" and out.occurrence == 2 * self.occurrence:
            if out.step not in self.alt:
                # Session.mac_check's coin context; the victims get a valid commitment to another seed
                context = context_bytes(tap.session, "mac-check-coin", out.step)
                self.alt[out.step] = commit(context, self.party, self.alt_seed)
            return [(out.to, out.step, self.alt[out.step][0])]
        if out.kind == "coin-open" and out.occurrence == self.occurrence:
            if self.mode == "open":
                new = [out.msg[0], _flip_last(out.msg[1])]
                self.act(f"coin toss #{out.occurrence} to party {out.to}: opened another seed")
            else:
                new = [self.alt[out.step - 1][1], self.alt_seed]
                self.act(
                    f"coin toss #{out.occurrence} to party {out.to}: committed to and opened another seed"
                )
            return [(out.to, out.step, new)]
        return keep


class PreprocessingTamper(Forwarding):
    """The corrupt party's preprocessing with ``delta`` added to one share (value or MAC) of the
    ``call``-th request of ``kind`` (``triple`` part a/b/c, or ``mask``)."""

    def __init__(
        self,
        inner: Preprocessing,
        adversary: Adversary,
        kind: str,
        which: int,
        part: str,
        call: int,
        delta: int,
    ) -> None:
        super().__init__(inner)
        self.adversary = adversary
        self.kind, self.which, self.part, self.call, self.d = kind, which, part, call, delta
        self.calls: dict[str, int] = {}

    def _due(self, kind: str) -> bool:
        k = self.calls.get(kind, 0)
        self.calls[kind] = k + 1
        return kind == self.kind and k == self.call

    def _tamper(self, sa: SharedArray, what: str) -> SharedArray:
        f = sa.ctx.field
        index = self.adversary.rng.randrange(sa.size)
        d = f.from_ints([self.d if i == index else 0 for i in range(sa.size)])
        self.adversary.act(f"{what}: {self.part} share of element {index} + {self.d}")
        if self.part == "value":
            return SharedArray(sa.ctx, f.add(sa.value, d), sa.mac, sa.shape)
        return SharedArray(sa.ctx, sa.value, f.add(sa.mac, d), sa.shape)

    async def triples(self, n: int) -> tuple[SharedArray, SharedArray, SharedArray]:
        abc = list(await self.inner.triples(n))
        if self._due("triple"):
            abc[self.which] = self._tamper(
                abc[self.which], f"triple request #{self.call}, part {'abc'[self.which]}"
            )
        return abc[0], abc[1], abc[2]

    async def input_masks(self, owner: int, n: int) -> tuple[SharedArray, np.ndarray | None]:
        r, clear = await self.inner.input_masks(owner, n)
        if self._due("mask"):
            r = self._tamper(r, f"input-mask request #{self.call} (owner {owner})")
        return r, clear


class MaterialAttack(Adversary):
    """Tamper with one share of the preprocessing the corrupt party draws in its online session."""

    part = "mac"
    kinds: tuple[str, ...] = ("triple", "mask")

    def __init__(self, ctx: AttackContext) -> None:
        super().__init__(ctx)
        kinds = [
            k for k in self.kinds if (ctx.program.triples if k == "triple" else ctx.program.masks(ctx.n))
        ]
        if not kinds:
            raise NotApplicable(f"{self.name}: {ctx.program.name} draws no {' or '.join(self.kinds)}")
        self.kind = self.rng.choice(kinds)
        calls = ctx.program.triples if self.kind == "triple" else ctx.program.masks(ctx.n)
        self.call = self.rng.randrange(calls)
        self.which = self.rng.randrange(3) if self.kind == "triple" else 0
        self.d = self.delta()
        what = (
            f"triple #{self.call} part {'abc'[self.which]}" if self.kind == "triple" else f"mask #{self.call}"
        )
        self.plan = f"{what}: its {self.part} share + {self.d}"

    def wrap_preprocessing(self, session: str, pre: Preprocessing) -> Preprocessing:
        if not self.first_online(session):
            return pre
        return PreprocessingTamper(pre, self, self.kind, self.which, self.part, self.call, self.d)


class WrongMac(MaterialAttack):
    name = "wrong-mac"
    description = "uses a tampered MAC share of a triple or an input mask"


class BadTriple(MaterialAttack):
    name = "bad-triple"
    description = "uses a triple whose value share (a, b or c) it altered"
    part = "value"
    kinds = ("triple",)
    needs_triples = True


class WrongInputMask(MaterialAttack):
    name = "wrong-input-mask"
    description = "uses an input mask whose value share it altered (a wrong input or output correction)"
    part = "value"
    kinds = ("mask",)


# ------------------------------------------------------------------------------------------ net-level
class Replay(Adversary):
    name = "replay"
    description = "replays one of its earlier messages (same session and step) or an earlier link record"
    filtered = True

    def __init__(self, ctx: AttackContext) -> None:
        super().__init__(ctx)
        self.mode = self.rng.choice(["step", "record"])
        self.at = self.rng.randrange(1, 1 + 2 * ctx.program.openings)  # after this many sending steps
        self.victim = self.rng.choice(ctx.peers)
        self.plan = (
            f"re-sends an earlier message to party {self.victim} after its step #{self.at}"
            if self.mode == "step"
            else f"re-writes an earlier DATA record to party {self.victim} after record #{self.at}"
        )

    def on_send(self, tap: SessionTap, out: Outgoing) -> list[Send]:
        sends = [(out.to, out.step, out.msg)]
        if self.mode == "step" and not self.fired and out.to == self.victim and out.index >= self.at:
            earlier = [s for s in tap.sent if s[0] == self.victim]
            if earlier:
                again = earlier[self.rng.randrange(len(earlier))]
                self.act(f"re-sent its step-{again[1]} message to party {self.victim}")
                sends.append(again)
        return sends

    def wrap_link(self, peer: int, stream: trio.abc.Stream) -> trio.abc.Stream:
        if self.mode != "record" or peer != self.victim:
            return stream
        return RecordTamper(stream, self, "replay", self.at)


class Reorder(Adversary):
    name = "reorder"
    description = "sends a message after its next one (or swaps two link records), order not being a tag"
    filtered = True
    HOLD = 0.05  # virtual seconds: a held message goes out by then even if no next one comes

    def __init__(self, ctx: AttackContext) -> None:
        super().__init__(ctx)
        self.mode = self.rng.choice(["step", "record"])
        self.at = self.rng.randrange(0, 2 * ctx.program.openings)
        self.victim = self.rng.choice(ctx.peers)
        self.held: dict[int, Send] = {}
        self.plan = (
            f"holds its message #{self.at} to party {self.victim} back until after the next"
            if self.mode == "step"
            else f"holds DATA record #{self.at} to party {self.victim} back behind the next record"
        )

    def on_send(self, tap: SessionTap, out: Outgoing) -> list[Send]:
        held = self.held.pop(out.to, None)
        msg = (out.to, out.step, out.msg)
        if held is not None:
            self.act(f"sent step {out.step} before step {held[1]} to party {out.to}")
            return [msg, held]
        if self.mode == "step" and not self.fired and out.to == self.victim and out.index >= self.at:
            self.held[out.to] = msg
            assert self.nursery is not None
            self.nursery.start_soon(self._release, tap, out.to, msg)
            return []
        return [msg]

    async def _release(self, tap: SessionTap, to: int, msg: Send) -> None:
        await trio.sleep(self.HOLD)
        if self.held.get(to) is msg:
            del self.held[to]
            self.act(f"sent held step {msg[1]} to party {to} late (nothing followed)")
            try:
                await tap.send_raw(*msg)
            except Exception:  # noqa: S110 -- the session may be over; a cheater does not care
                pass

    def wrap_link(self, peer: int, stream: trio.abc.Stream) -> trio.abc.Stream:
        if self.mode != "record" or peer != self.victim:
            return stream
        return RecordTamper(stream, self, "reorder", self.at)


class Forge(Adversary):
    name = "forge"
    description = (
        "sends forged frames: garbage for a protocol step, a frame for another session, a bad record"
    )
    filtered = True

    def __init__(self, ctx: AttackContext) -> None:
        super().__init__(ctx)
        self.mode = self.rng.choice(["payload", "session", "record"])
        self.at = self.rng.randrange(0, 2 * ctx.program.openings)
        self.victim = self.rng.choice(ctx.peers)
        self.plan = {
            "payload": f"replaces its message #{self.at} to party {self.victim} by garbage",
            "session": f"sends party {self.victim} frames of sessions it does not run at message #{self.at}",
            "record": f"writes a malformed record to party {self.victim} after DATA record #{self.at}",
        }[self.mode]

    def on_send(self, tap: SessionTap, out: Outgoing) -> list[Send]:
        msg = (out.to, out.step, out.msg)
        if self.fired or out.to != self.victim or out.index < self.at or self.mode == "record":
            return [msg]
        if self.mode == "payload":
            garbage = self.rng.choice(
                [
                    self.rng.randbytes(len(out.msg) if isinstance(out.msg, bytes) else 17),
                    "garbage",
                    2**70,
                    [1.5],
                ]
            )
            self.act(f"sent {type(garbage).__name__} garbage for step {out.step} to party {out.to}")
            return [(out.to, out.step, garbage)]
        assert self.nursery is not None and self.actor is not None
        others = [f"s-{self.rng.randbytes(8).hex()}", f"{MASCOT_PREFIX}0/100000"]
        self.act(f"sent party {self.victim} frames for sessions {others} (step {out.step})")
        self.nursery.start_soon(self._other_sessions, others, out.step, out.msg)
        return [msg]

    async def _other_sessions(self, others: list[str], step: int, payload: Any) -> None:
        """Frames for a session nobody runs and for a MASCOT batch far in the future."""
        for sid in others:
            try:
                await self.actor.links.send(self.victim, Frame(MSG, sid, step, payload))
            except Exception:  # noqa: S110 -- the cheater's own link trouble is not ours to report
                pass

    def wrap_link(self, peer: int, stream: trio.abc.Stream) -> trio.abc.Stream:
        if self.mode != "record" or peer != self.victim:
            return stream
        return RecordTamper(stream, self, "forge", self.at)


class Silent(Adversary):
    name = "silent"
    description = "stops responding mid-session: its host goes dark (nothing in or out) for good"

    def __init__(self, ctx: AttackContext) -> None:
        super().__init__(ctx)
        self.at = self.rng.randrange(0, ctx.program.openings + 4 * ctx.program.checks)
        self.dark = False
        self.plan = f"goes dark at its sending step #{self.at}"

    def on_send(self, tap: SessionTap, out: Outgoing) -> list[Send]:
        if not self.dark and out.index >= self.at and out.kind != "pair":
            self.dark = True
            self.act(f"went dark at step {out.step} (its sending step #{out.index})")
        return [(out.to, out.step, out.msg)]

    def wrap_wire(self, peer: int, stream: trio.abc.Stream) -> trio.abc.Stream:
        return DarkStream(stream, self)


class StrayIncarnation(Adversary):
    name = "stray-incarnation"
    description = (
        "a second incarnation of itself (a duplicate daemon, a stolen certificate) takes over its link "
        "to a peer mid-session, for a while"
    )
    filtered = True  # the sessions that span the change abort; one that finished before it is right

    def __init__(self, ctx: AttackContext) -> None:
        super().__init__(ctx)
        self.victim = self.rng.choice(ctx.peers)
        self.at = self.rng.randrange(0, ctx.program.openings + 2 * ctx.program.checks)
        self.hold = self.rng.choice([0.005, 0.5, 5.0])
        self.plan = (
            f"at its sending step #{self.at}, a new incarnation takes its link to party {self.victim} "
            f"and holds the link for {self.hold:g} s"
        )

    def on_send(self, tap: SessionTap, out: Outgoing) -> list[Send]:
        if not self.fired and out.index >= self.at and self.nursery is not None:
            self.act(f"a new incarnation reached for party {self.victim} at step {out.step}")
            self.nursery.start_soon(self._stray)
        return [(out.to, out.step, out.msg)]

    async def _stray(self) -> None:
        """Reach the victim as this party: dial it if it accepts from us, else drop our link to it
        and answer its redial in place of our links. Say HELLO as a newer incarnation, stay a
        while, leave."""
        links = self.actor.links
        if self.victim < self.party:  # the victim dials us: take its next stream
            taken: trio.MemorySendChannel[trio.abc.Stream]
            taken, arrived = trio.open_memory_channel[trio.abc.Stream](1)
            original = links.accept

            async def accept(stream: trio.abc.Stream, peer: int) -> None:
                if peer != self.victim:
                    await original(stream, peer)
                    return
                links.accept = original
                taken.send_nowait(stream)

            links.accept = accept
            links.link(self.victim).disconnect("a stray incarnation takes the link over")
            stream = await arrived.receive()
        else:
            try:
                stream, _ = await links.transport.connect(self.party, self.victim)
            except (OSError, trio.BrokenResourceError, PeerAuthError) as e:
                self.act(f"the stray could not connect: {type(e).__name__}")
                return
        await self._speak(stream)

    async def _speak(self, stream: trio.abc.Stream) -> None:
        try:
            hello = _Hello(self.party, self.victim, new_incarnation(), None, 0)
            await stream.send_all(encode_hello(hello))
            with trio.move_on_after(self.hold):
                while await stream.receive_some(1 << 16):
                    pass
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            await trio.aclose_forcefully(stream)


class Withhold(Adversary):
    name = "withhold"
    description = "stops sending protocol messages mid-session but keeps its links alive (receive timeout)"
    sweep = False

    def __init__(self, ctx: AttackContext) -> None:
        super().__init__(ctx)
        self.at = self.rng.randrange(0, ctx.program.openings + 4 * ctx.program.checks)
        self.plan = f"sends nothing from its sending step #{self.at} on"

    def on_send(self, tap: SessionTap, out: Outgoing) -> list[Send]:
        if out.index >= self.at and out.kind != "pair":
            if not self.fired:
                self.act(f"withheld everything from step {out.step} on")
            return []
        return [(out.to, out.step, out.msg)]


# ------------------------------------------------------------------------------------------ streams
class DarkStream(trio.abc.Stream):
    """A stream that works until its adversary goes dark; then nothing leaves and nothing arrives."""

    def __init__(self, inner: trio.abc.Stream, owner: Silent) -> None:
        self.inner = inner
        self.owner = owner

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self.owner.dark:
            await trio.lowlevel.checkpoint()
            return
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        if self.owner.dark:
            await trio.sleep_forever()
        data = await self.inner.receive_some(max_bytes)
        if self.owner.dark:
            await trio.sleep_forever()
        return data

    async def aclose(self) -> None:
        await self.inner.aclose()


class RecordTamper(trio.abc.Stream):
    """The corrupt party's link stream with one record-level deviation after DATA record ``at``.

    ``PeerLink`` writes 4-byte-length-prefixed records (type 2 = DATA with a sequence number). This
    wrapper follows the record boundaries of what it writes and, once, either re-writes an earlier
    DATA record (``replay``: the peer drops the duplicate), writes a DATA record behind the record that
    follows it (``reorder``: a sequence gap, the peer drops the connection and the link resends), or
    writes a malformed record (``forge``: the same). Each connection has its own wrapper; the deviation
    happens once per adversary.
    """

    def __init__(self, inner: trio.abc.Stream, owner: Adversary, mode: str, at: int) -> None:
        self.inner = inner
        self.owner = owner
        self.mode = mode
        self.at = at
        self._buf = bytearray()
        self._data_records: list[bytes] = []
        self._held: bytes | None = None

    def _records(self, data: bytes) -> list[bytes]:
        self._buf += data
        out = []
        while len(self._buf) >= 4:
            size = int.from_bytes(self._buf[:4], "big")
            if len(self._buf) < 4 + size:
                break
            out.append(bytes(self._buf[: 4 + size]))
            del self._buf[: 4 + size]
        return out

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self.owner.fired and self._held is None and not self._buf:
            await self.inner.send_all(data)
            return
        out = bytearray()
        # only whole records go out (a large DATA record's header waits for its body, written next)
        for rec in self._records(bytes(data)):
            is_data = len(rec) > 4 and rec[4] == 2
            if self._held is not None:
                out += rec + self._held
                self.owner.act(f"wrote a DATA record behind the next record ({'DATA' if is_data else 'ACK'})")
                self._held = None
                continue
            if is_data and not self.owner.fired and len(self._data_records) >= self.at:
                if self.mode == "reorder":
                    self._held = rec
                    continue
                out += rec + self._deviation(rec)
                continue
            if is_data:
                self._data_records.append(rec)
            out += rec
        if out:
            await self.inner.send_all(bytes(out))
        else:
            await trio.lowlevel.checkpoint()

    def _deviation(self, rec: bytes) -> bytes:
        rng = self.owner.rng
        if self.mode == "replay":
            again = rng.choice([*self._data_records, rec])
            self.owner.act(f"re-wrote DATA record seq {int.from_bytes(again[5:13], 'big')}")
            return again
        garbage = rng.choice(
            [
                (0xFFFFFFF0).to_bytes(4, "big") + b"\x02",  # a length far beyond any limit
                (9).to_bytes(4, "big") + b"\x07" + bytes(8),  # an unknown record type
                (9).to_bytes(4, "big") + b"\x03" + (2**63).to_bytes(8, "big"),  # an ACK of frames never sent
            ]
        )
        self.owner.act(f"wrote a malformed record ({garbage[:5].hex()}...)")
        return garbage

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self.inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.inner.aclose()


# ------------------------------------------------------------------------------------------ MASCOT
class MascotAttack(Adversary):
    """Deviates once, in the first epoch's MASCOT sessions, against one victim."""

    mascot = True
    session_kind = "batch"  # "setup": the base-OT session; "batch": the batch sessions
    batch_kind = "triple"  # the batch kind it attacks (None: any)

    def __init__(self, ctx: AttackContext) -> None:
        super().__init__(ctx)
        self.victim = self.rng.choice(ctx.peers)
        self.victims = [self.victim]
        self.hit: set[int] = set()  # victims it has deviated towards (once each)
        self.batch: dict[str, tuple[str, int]] = {}  # session -> (kind, count) from the leader's plan

    def taps(self, session: str) -> bool:
        if not session.startswith(f"{MASCOT_PREFIX}0-"):
            return False
        last = session.rsplit("/", 1)[1]
        return last == "setup" if self.session_kind == "setup" else last.isdigit()

    def plan_of(self, tap: SessionTap) -> tuple[str, int] | None:
        return self.batch.get(tap.session)

    def _note_plan(self, tap: SessionTap, msg: Any) -> None:
        if isinstance(msg, list) and len(msg) == 2 and isinstance(msg[0], str) and isinstance(msg[1], int):
            self.batch[tap.session] = (msg[0], msg[1])

    def on_recv(self, tap: SessionTap, frm: int, step: int, msg: Any) -> None:
        if frm == LEADER and step == 1:
            self._note_plan(tap, msg)

    def on_send(self, tap: SessionTap, out: Outgoing) -> list[Send]:
        if out.step == 1 and self.party == LEADER:
            self._note_plan(tap, out.msg)
        plan = self.plan_of(tap)
        if (
            out.to in self.victims
            and out.to not in self.hit
            and (self.session_kind == "setup" or (plan is not None and self.batch_kind in (None, plan[0])))
        ):
            new = self.deviate(tap, out, plan)
            if new is not None:
                self.hit.add(out.to)
                return [(out.to, out.step, new)]
        return [(out.to, out.step, out.msg)]

    def deviate(self, tap: SessionTap, out: Outgoing, plan: tuple[str, int] | None) -> Any:
        """The altered message, or None to leave ``out`` alone."""
        return None


def _random_point(rng: random.Random) -> bytes:
    scalar = sodium.crypto_core_ed25519_scalar_reduce(rng.randbytes(64))
    return sodium.crypto_scalarmult_ed25519_base_noclamp(scalar)


_BAD_POINTS: dict[str, Callable[[random.Random], bytes]] = {
    "off-curve": lambda rng: bytes.fromhex("02" + "00" * 31),
    "identity": lambda rng: bytes.fromhex("01" + "00" * 31),
    "small-order": lambda rng: bytes.fromhex(
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"
    ),
    "non-canonical": lambda rng: bytes.fromhex("ee" + "ff" * 30 + "7f"),
    "valid-other": _random_point,
}


class MascotBaseOT(MascotAttack):
    name = "mascot-base-ot"
    description = (
        "sends bad base-OT points (invalid, small-order or other valid ones) to every peer in set-up"
    )
    session_kind = "setup"
    kinds = tuple(_BAD_POINTS)

    def __init__(self, ctx: AttackContext) -> None:
        super().__init__(ctx)
        self.victims = list(ctx.peers)
        self.target = self.rng.choice(["kos-A", "kos-B"])  # COPE's seeds are KOS OTs: no base OTs of its own
        self.bad = self.rng.choice(self.kinds)
        self.plan = f"{self.bad} point as {self.target} towards parties {self.victims}"

    def deviate(self, tap: SessionTap, out: Outgoing, plan: tuple[str, int] | None) -> Any:
        role = self.target.split("-")[1]
        # the cheater sends A (one point) as base-OT sender on ot_channel(cheater, victim), the B_i as
        # receiver on ot_channel(victim, cheater); both are the first message (k = 0) on that channel
        channel = ot_channel(self.party, out.to) if role == "A" else ot_channel(out.to, self.party)
        if out.kind != "pair" or out.channel != channel or out.k != 0 or not isinstance(out.msg, bytes):
            return None
        index = 0 if role == "A" else self.rng.randrange(len(out.msg) // POINT_BYTES)
        raw = bytearray(out.msg)
        raw[index * POINT_BYTES : (index + 1) * POINT_BYTES] = _BAD_POINTS[self.bad](self.rng)
        self.act(f"base OT to party {out.to} (channel {channel:#x}): point {index} is a {self.bad} point")
        return bytes(raw)


class MascotOT(MascotAttack):
    name = "mascot-ot"
    description = (
        "OT extension with inconsistent choice bits (one OT's bit flipped in half of the correction rows: "
        "KOS's 128 columns or SoftSpokenOT's blocks)"
    )
    needs_triples = True

    def __init__(self, ctx: AttackContext) -> None:
        super().__init__(ctx)
        self.plan = f"first triple batch: inconsistent choice bits towards party {self.victim}"

    def _rows(self) -> int:
        """Correction rows per extend of the cheater's OT extension towards the victim: KOS sends one
        per column (128), SoftSpokenOT one per block of k columns."""
        offline = getattr(self.actor, "offline", None)
        mascot = getattr(offline, "mascot", None)
        receiver = None if mascot is None else mascot.ot_recv.get(self.victim)
        k = getattr(receiver, "k", None)
        return 128 if k is None else -(-128 // k)

    def deviate(self, tap: SessionTap, out: Outgoing, plan: tuple[str, int] | None) -> Any:
        m = out.msg
        if out.kind != "pair" or out.channel != ot_channel(self.party, self.victim):
            return None
        if not (isinstance(m, list) and len(m) == 2 and isinstance(m[0], bytes) and len(m[0]) > 32):
            return None
        rows = self._rows()
        if len(m[0]) % (8 * rows):
            return None
        u = np.frombuffer(m[0], dtype=np.uint64).reshape(rows, -1).copy()
        row = self.rng.randrange(min(64 * u.shape[1], 64))
        for r in sorted(self.rng.sample(range(rows), rows // 2)):
            u[r, row // 64] ^= np.uint64(1) << np.uint64(row % 64)
        flipped = f"OT {row}'s choice bit flipped in {rows // 2} of {rows} rows"
        self.act(f"OT corrections to party {self.victim}: {flipped}")
        return [u.tobytes(), m[1]]


class MascotCope(MascotAttack):
    name = "mascot-cope"
    description = "a wrong COPE correction (authentication of its values) towards one party"
    batch_kind = None

    def __init__(self, ctx: AttackContext) -> None:
        super().__init__(ctx)
        self.d = self.delta()
        self.columns = sorted(self.rng.sample(range(ctx.field.bits), max(1, ctx.field.bits // 2)))
        self.plan = f"first batch it authenticates in: correction + {self.d} towards party {self.victim}"

    def deviate(self, tap: SessionTap, out: Outgoing, plan: tuple[str, int] | None) -> Any:
        f, k = self.field, self.field.bits
        m = out.msg
        if out.kind != "pair" or out.channel != cope_channel(self.party, self.victim):
            return None
        if not (isinstance(m, bytes) and len(m) > 32 and len(m) % (k * f.elem_bytes) == 0):
            return None
        per = len(m) // (k * f.elem_bytes)  # layout (W, k * m), column l holds elements l*m .. l*m+m-1
        e = self.rng.randrange(per)
        self.act(
            f"COPE correction to party {self.victim}: + {self.d} at element {e}, {len(self.columns)} columns"
        )
        return self.add_to_vector(m, self.d, [col * per + e for col in self.columns])


class MascotTriple(MascotAttack):
    name = "mascot-triple"
    description = "a wrong Gilboa correction in triple generation (a wrong product share: the sacrifice)"
    needs_triples = True

    def __init__(self, ctx: AttackContext) -> None:
        super().__init__(ctx)
        self.d = self.delta()
        self.plan = f"first triple batch: Gilboa correction + {self.d} towards party {self.victim}"

    def deviate(self, tap: SessionTap, out: Outgoing, plan: tuple[str, int] | None) -> Any:
        f, k = self.field, self.field.bits
        if plan is None or out.kind != "pair" or out.channel != ot_channel(self.victim, self.party):
            return None
        m = TAU * plan[1]
        if not (isinstance(out.msg, bytes) and len(out.msg) == k * m * f.elem_bytes):
            return None
        e = self.rng.randrange(m)
        self.act(f"Gilboa correction to party {self.victim}: + {self.d} at element {e} of every bit block")
        return self.add_to_vector(out.msg, self.d, [bit * m + e for bit in range(k)])


class OffCope:
    """A COPE end whose ``extend`` output (the party's MAC-share contribution) is off by ``delta``."""

    def __init__(self, inner: Any, adversary: Adversary, delta: int, role: str) -> None:
        self.inner = inner
        self.adversary = adversary
        self.delta = delta
        self.role = role

    async def extend(self, ch: PairChannel, arg: Any) -> np.ndarray:
        out = await self.inner.extend(ch, arg)
        f = self.inner.field
        index = self.adversary.rng.randrange(out.shape[1])
        d = [0] * out.shape[1]
        d[index] = self.delta
        self.adversary.act(f"MAC share ({self.role} of COPE with party {ch.peer}) + {self.delta} at {index}")
        return f.add(out, f.from_ints(d))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class MascotMac(MascotAttack):
    name = "mascot-mac"
    description = "a wrong MAC share in MASCOT's authentication (its COPE output altered)"
    batch_kind = None

    def __init__(self, ctx: AttackContext) -> None:
        super().__init__(ctx)
        self.role = self.rng.choice(["sender", "receiver"])
        self.d = self.delta()
        whose = "its own values" if self.role == "sender" else f"party {self.victim}'s values"
        self.plan = f"epoch 0: its MAC shares of {whose} + {self.d}"
        self._patched = False

    def wrap_net(self, session: str, net: Net) -> Net:
        if self.taps(session) and not self._patched and self.actor is not None:
            mascot = self.actor.offline.mascot if self.actor.offline is not None else None
            if mascot is not None:
                ends: Any = mascot.cope_send if self.role == "sender" else mascot.cope_recv
                ends[self.victim] = OffCope(ends[self.victim], self, self.d, self.role)
                self._patched = True
        return net


class MascotSacrifice(MascotAttack):
    name = "mascot-sacrifice"
    description = "opens a wrong share of rho or of the zero check in the triple sacrifice"
    needs_triples = True

    def __init__(self, ctx: AttackContext) -> None:
        super().__init__(ctx)
        self.which = self.rng.randrange(2)
        self.d = self.delta()
        self.plan = f"first triple batch: its {('rho', 'zero')[self.which]} share + {self.d}"
        self.openings: dict[str, list[int]] = {}  # session -> steps of count-element openings
        self.target: tuple[str, int] | None = None

    def on_send(self, tap: SessionTap, out: Outgoing) -> list[Send]:
        if out.step == 1 and self.party == LEADER:
            self._note_plan(tap, out.msg)
        plan = self.plan_of(tap)
        keep = [(out.to, out.step, out.msg)]
        if self.target is not None and (tap.session, out.step) != self.target:
            return keep
        if plan is None or plan[0] != "triple" or out.kind != "share":
            return keep
        if not (isinstance(out.msg, bytes) and len(out.msg) == plan[1] * self.field.elem_bytes):
            return keep  # a check value y of the authentication (one element), not a sacrifice opening
        seen = self.openings.setdefault(tap.session, [])
        if out.step not in seen:
            seen.append(out.step)
        if seen.index(out.step) != self.which:
            return keep
        self.target = (tap.session, out.step)  # this opening, to every peer, and nothing else
        self.act(f"sacrifice opening {('rho', 'zero')[self.which]} to party {out.to}: + {self.d}")
        return [(out.to, out.step, self.add_to_vector(out.msg, self.d, [0]))]


# ------------------------------------------------------------------------------------------ binary domain
_STEPS = {
    "openings": "binary openings",
    "dealt": "dealt binary material (MixedPreprocessing)",
    "generation": "binary material generated in the session (BinaryParty, BitSession)",
}


class BinaryAttack(Adversary):
    """A deviation in the binary domain: only for programs that run the binary step ``needs``
    (``SimProgram.binary``); the cheater deviates once, in its first online session."""

    binary = True
    needs: ClassVar[str] = "openings"
    programs = ("cmp-binary", "bits")

    def __init__(self, ctx: AttackContext) -> None:
        super().__init__(ctx)
        if self.needs not in ctx.program.binary:
            raise NotApplicable(f"{self.name} attacks {_STEPS[self.needs]}; {ctx.program.name} has none")


class BinaryShare(BinaryAttack):
    """A flipped bit in its share of one binary opening (an AND layer's ``d, e``, a daBit conversion, a
    bucketing or edaBit-check opening), to every peer or to some: the binary MAC check fails."""

    name = "binary-share"
    description = "flips a bit of its share in one binary opening (to all or to some peers)"

    def __init__(self, ctx: AttackContext) -> None:
        super().__init__(ctx)
        self.occurrence = self.rng.randrange(ctx.program.binary_openings(ctx.n, ctx.field))
        self.victims = self.subset(strict=False)
        self.steps: list[int] = []
        self.bit: int | None = None
        self.plan = f"binary opening #{self.occurrence}: one share bit flipped towards parties {self.victims}"

    def on_send(self, tap: SessionTap, out: Outgoing) -> list[Send]:
        keep = [(out.to, out.step, out.msg)]
        if not isinstance(out.msg, bytes) or BINARY_OPEN not in origin():
            return keep
        if out.step not in self.steps:
            self.steps.append(out.step)
        if self.steps.index(out.step) != self.occurrence or out.to not in self.victims:
            return keep
        if self.bit is None:  # a bit of the opened vector, never the zero padding of the last byte
            self.bit = self.rng.randrange(8 * (len(out.msg) - 1) + 1)
        raw = bytearray(out.msg)
        raw[self.bit // 8] ^= 1 << (self.bit % 8)
        where = f"binary opening #{self.occurrence} (step {out.step}) to party {out.to}"
        self.act(f"{where}: bit {self.bit} flipped")
        return [(out.to, out.step, bytes(raw))]


class MixedTamper(Forwarding):
    """The corrupt party's mixed preprocessing with one binary MAC share altered: in the first draw of
    ``kind`` (``and-a``, ``and-b``: an AND triple's ``a`` or ``b``; ``dabit``: a daBit's binary half;
    ``edabit``: a bit of the first edaBit mask, strict or loose, which the comparison circuit uses),
    each of which reaches an opening (an AND input, the conversion's ``x XOR b``, a propagate bit in
    the carry tree).

    The first strict edaBit of a comparison is its ``r'`` (``masks_steps`` asks for it before the
    field-only ``r''``), so the tampered bits are always used."""

    def __init__(self, inner: Preprocessing, adversary: BinaryMac) -> None:
        super().__init__(inner)
        self.adversary = adversary
        self.kind = adversary.kind
        self.done = False

    def _due(self, kind: str) -> bool:
        due = not self.done and self.kind.startswith(kind)
        self.done = self.done or due
        return due

    async def and_triples(self, n: int) -> tuple[Any, Any, Any]:
        abc = list(await self.inner.and_triples(n))  # type: ignore[attr-defined]
        if self._due("and"):
            which = "ab".index(self.kind[-1])
            index = self.adversary.rng.randrange(n)
            abc[which] = self.adversary.tamper(abc[which], index, f"AND triple {self.kind[-1]}")
        return abc[0], abc[1], abc[2]

    async def dabits(self, n: int) -> tuple[SharedArray, Any]:
        field, bits = await self.inner.dabits(n)  # type: ignore[attr-defined]
        if self._due("dabit"):
            bits = self.adversary.tamper(bits, self.adversary.rng.randrange(n), "daBit (binary half)")
        return field, bits

    async def edabits(self, n: int, k: int) -> tuple[SharedArray, Any]:
        field, bits = await self.inner.edabits(n, k)  # type: ignore[attr-defined]
        return field, self._edabit_bits(bits, n, k, "edaBit")

    async def loose_edabits(self, n: int, k: int) -> tuple[SharedArray, Any]:
        field, bits = await self.inner.loose_edabits(n, k)  # type: ignore[attr-defined]
        return field, self._edabit_bits(bits, n, k, "loose edaBit")

    def _edabit_bits(self, bits: Any, n: int, k: int, what: str) -> Any:
        # bit 0 of the mask may reach no opening (where the public c_0 is 1, docs/bits.md); bits 1 ..
        # k-1 do (propagate bits of the carry tree, the equality's ANDs, the top bit's conversion)
        if k < 2 or not self._due("edabit"):
            return bits
        e, j = self.adversary.rng.randrange(n), self.adversary.rng.randrange(1, k)
        return self.adversary.tamper(bits, e * k + j, f"{what} {e}, bit {j} of {k}")


class BinaryMac(BinaryAttack):
    """A wrong MAC share of dealt binary material that the program opens: the binary MAC check of the
    opening fails (the opened bit is right, its MAC is not)."""

    name = "binary-mac"
    description = "uses a wrong binary MAC share of a dealt AND triple, daBit or edaBit bit"
    needs = "dealt"
    programs = ("cmp-binary",)
    KINDS = ("and-a", "and-b", "dabit", "edabit")

    def __init__(self, ctx: AttackContext) -> None:
        super().__init__(ctx)
        self.kind = self.rng.choice(self.KINDS)
        self.d = self.rng.randbytes(16)
        while not any(self.d):
            self.d = self.rng.randbytes(16)
        self.plan = f"first {self.kind} draw: its MAC share of one bit XOR {self.d.hex()}"

    def tamper(self, x: Any, index: int, what: str) -> Any:
        macs = x.macs.copy()
        macs[index] ^= np.frombuffer(self.d, dtype=np.uint64)
        self.act(f"{what}: MAC share of bit {index} XOR {self.d.hex()}")
        return type(x)(x.ctx, x.bits, macs)

    def wrap_preprocessing(self, session: str, pre: Preprocessing) -> Preprocessing:
        return MixedTamper(pre, self) if self.first_online(session) else pre


class BinarySigma(BinaryAttack):
    """A wrong MAC share in the binary MAC check itself: in the first check that covers openings it
    commits to, and reveals, its sigma (``sum_j chi_j (m_ij + b_j Delta_i)``, its MAC shares of the
    opened bits) XOR a random 128-bit value, consistently (a valid commitment, the same to every
    peer). The parties' sigmas no longer add up to 0: the binary MAC check fails."""

    name = "binary-sigma"
    description = "commits to and reveals a wrong sigma (its MAC shares) in a binary MAC check"

    CHECK = "protocols.binary.check.BitChecker.check"
    REVEAL = "protocols.commitments.commit_and_reveal"
    COIN = "protocols.commitments.coin_toss"

    def __init__(self, ctx: AttackContext) -> None:
        super().__init__(ctx)
        self.e = self.rng.randbytes(16)
        while not any(self.e):
            self.e = self.rng.randbytes(16)
        self.step: int | None = None  # the commitment's step; the opening is the next one
        self.commitment = b""
        self.opening: list[bytes] = []
        self.plan = f"first binary MAC check with openings: its sigma XOR {self.e.hex()}"

    def on_send(self, tap: SessionTap, out: Outgoing) -> list[Send]:
        keep = [(out.to, out.step, out.msg)]
        if out.kind != "binary":
            return keep
        if self.step is None:
            names = origin()
            if self.CHECK not in names or self.REVEAL not in names or self.COIN in names:
                return keep
            if not caller_local(self.CHECK, "bits"):  # nothing opened since the last check
                return keep
            data = caller_local(self.REVEAL, "data")
            context = caller_local(self.REVEAL, "context")
            if not isinstance(data, bytes) or not isinstance(context, bytes) or len(data) < 16:
                return keep
            wrong = bytes(a ^ b for a, b in zip(data[:16], self.e, strict=True)) + data[16:]
            self.commitment, nonce = commit(context, self.party, wrong)
            self.opening = [nonce, wrong]
            self.step = out.step
        where = f"binary MAC check (step {out.step}) to party {out.to}"
        if out.step == self.step:
            self.act(f"{where}: committed to its sigma XOR {self.e.hex()}")
            return [(out.to, out.step, self.commitment)]
        if out.step == self.step + 1:
            self.act(f"{where}: opened its sigma XOR {self.e.hex()}")
            return [(out.to, out.step, list(self.opening))]
        return keep


class LeakyAnd(BinaryAttack):
    """A bad leaky-AND input in AND-triple generation: as the half-AND sender towards one victim it
    sends wrong corrections ``d`` (every bit flipped) or wrong check rows ``W`` (a random 128-bit value
    XORed into every row). Each changes the victim's share by its own ``x`` bit, so the leaky-AND
    check fails unless all of the victim's ``x`` bits are 0 (at most ``2^-count``, ``count >= 40``
    leaky triples)."""

    name = "leaky-and"
    description = "a wrong half-AND d or leaky-AND W message in AND-triple generation (to one party)"
    needs = "generation"
    programs = ("bits",)

    def __init__(self, ctx: AttackContext) -> None:
        super().__init__(ctx)
        self.victim = self.rng.choice(ctx.peers)
        self.part = self.rng.choice(["d", "W"])
        self.row = self.rng.randbytes(16)
        while not any(self.row):
            self.row = self.rng.randbytes(16)
        what = "every d bit flipped" if self.part == "d" else f"every W row XOR {self.row.hex()}"
        self.plan = f"first leaky triples, towards party {self.victim}: {what}"

    def on_send(self, tap: SessionTap, out: Outgoing) -> list[Send]:
        keep = [(out.to, out.step, out.msg)]
        m = out.msg
        if self.fired or out.to != self.victim or out.kind != "pair":
            return keep
        if not (isinstance(m, list) and len(m) == 2 and all(isinstance(v, bytes) for v in m)):
            return keep
        count = len(m[1]) // 16
        if len(m[1]) % 16 or len(m[0]) != -(-count // 8) or LEAKY_AND not in origin():
            return keep
        if self.part == "d":
            ones = np.packbits(np.ones(count, dtype=np.uint8), bitorder="little")
            new = [bytes(np.frombuffer(m[0], dtype=np.uint8) ^ ones), m[1]]
        else:
            rows = np.frombuffer(m[1], dtype=np.uint64).reshape(count, 2) ^ np.frombuffer(self.row, np.uint64)
            new = [m[0], rows.tobytes()]
        self.act(f"half-AND message to party {out.to} ({count} leaky triples): {self.plan.split(': ')[1]}")
        return [(out.to, out.step, new)]


def caller_local(qualname: str, name: str) -> Any:
    """The local ``name`` of the innermost frame of ``qualname`` (``module.qualname``) on the stack: what
    the honest code is working on there (the corrupt party knows its own inputs)."""
    frame = sys._getframe(1)
    while frame is not None:
        if f"{frame.f_globals.get('__name__', '')}.{frame.f_code.co_qualname}" == qualname:
            return frame.f_locals.get(name)
        frame = frame.f_back
    return None


class InputShift(Forwarding):
    """The corrupt party's preprocessing, where ``adversary.shift`` may change the clear input masks it
    draws for its own inputs (everything else passes through)."""

    def __init__(self, inner: Preprocessing, adversary: FieldInputAttack) -> None:
        super().__init__(inner)
        self.adversary = adversary

    async def input_masks(self, owner: int, n: int) -> tuple[SharedArray, np.ndarray | None]:
        r, clear = await self.inner.input_masks(owner, n)
        if owner == self.adversary.party and clear is not None:
            clear = self.adversary.shift(clear, origin())
        return r, clear


class FieldInputAttack(BinaryAttack):
    """Its own field input in one generation (``target``: ``dabits`` or ``edabits``) becomes ``x + d``:
    it shifts the clear input mask it draws for that input by ``-d``, so the correction ``x - r`` it
    broadcasts is that of ``x + d``, the same towards every peer and in its own transcript (changing
    the message on the wire instead would be a broadcast inconsistency, which the broadcast digest
    catches before the generation's own check)."""

    needs = "generation"
    programs = ("bits",)
    target = "dabits"

    def wrap_preprocessing(self, session: str, pre: Preprocessing) -> Preprocessing:
        return InputShift(pre, self) if self.first_online(session) else pre

    def shift(self, clear: np.ndarray, names: list[str]) -> np.ndarray:
        if self.fired or FIELD_INPUT not in names or generating(names) != self.target:
            return clear
        offsets = self.offsets(clear.shape[1])
        if offsets is None:
            return clear
        f = self.field
        return f.sub(clear, f.from_ints([d % f.modulus for d in offsets]))

    def offsets(self, size: int) -> list[int] | None:
        """``d`` per element of the input (``None``: leave this input alone)."""
        raise NotImplementedError


class EdabitMismatch(FieldInputAttack):
    """An edaBit whose private bits do not match its field value: the cheater inputs its private
    edaBits' bits honestly in binary and their field values off by ``d`` (one item, or all), in the
    strict edaBits' generation or the loose ones' (chosen by the seed, where the program makes both):
    caught by the cut-and-choose or the bucket check (``PreprocessingError``)."""

    name = "edabit-mismatch"
    description = "a private edaBit (strict or loose) whose field value does not match its bits"
    target = "edabits"
    GENERATE = "protocols.binary.edabits._generate"

    def __init__(self, ctx: AttackContext) -> None:
        super().__init__(ctx)
        self.d = self.rng.choice([1, -1, self.delta()])
        self.all = self.rng.random() < 0.5
        self.loose = self.rng.random() < 0.5 if "loose" in ctx.program.binary else False
        which = "every item" if self.all else "one item"
        kind = "loose" if self.loose else "strict"
        self.plan = f"its private {kind} edaBits: field value + {self.d} ({which})"

    def offsets(self, size: int) -> list[int] | None:
        if bool(caller_local(self.GENERATE, "loose")) != self.loose:
            return None
        items = list(range(size)) if self.all else [self.rng.randrange(size)]
        where = "every item" if self.all else f"item {items[0]}"
        kind = "loose edaBits" if self.loose else "edaBits"
        self.act(f"{kind}: its field input + {self.d} at {where} of {size}, its bits as drawn")
        return [self.d if i in items else 0 for i in range(size)]


class DabitComplement(FieldInputAttack):
    """A daBit inconsistent between the domains: the cheater's field input is the complement ``1 - u``
    of its binary share ``u`` (one daBit, or all), so every field value is still a bit: caught by the
    integer check (``PreprocessingError``)."""

    name = "dabit-complement"
    description = "a daBit whose field input is the complement of its binary share (one or all)"
    target = "dabits"

    def __init__(self, ctx: AttackContext) -> None:
        super().__init__(ctx)
        self.all = self.rng.random() < 0.5
        self.plan = f"first daBits: field input 1 - u for {'every daBit' if self.all else 'one daBit'}"

    def offsets(self, size: int) -> list[int] | None:
        shares = caller_local(FIELD_INPUT, "values")  # its binary shares u, which it inputs
        if shares is None or len(shares) != size or any(int(u) not in (0, 1) for u in shares):
            return None
        items = list(range(size)) if self.all else [self.rng.randrange(size)]
        where = "every daBit" if self.all else f"daBit {items[0]}"
        self.act(f"daBits: its field input 1 - u at {where} of {size}")
        return [1 - 2 * int(shares[i]) if i in items else 0 for i in range(size)]


def ot_end_on_stack() -> Any:
    """The OT-extension end (``self`` of the innermost ``protocols.ot`` method) on the stack, if any."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_globals.get("__name__", "").startswith("protocols.ot.") and "self" in frame.f_locals:
            return frame.f_locals["self"]
        frame = frame.f_back
    return None


class BitAuthOT(BinaryAttack):
    """Bit authentication's correlated OTs (the binary party's own OT extension, SoftSpokenOT or KOS,
    with the MAC key share as the sender's correlation) with inconsistent choice bits: as the receiver
    towards one victim, one OT's choice bit flipped in half of the correction rows (KOS's 128 columns,
    SoftSpokenOT's blocks of ``k``). Caught by the extension's correlation check."""

    name = "bit-auth-ot"
    description = "inconsistent choice bits in the binary domain's correlated OTs towards one party"
    needs = "generation"
    programs = ("bits",)

    def __init__(self, ctx: AttackContext) -> None:
        super().__init__(ctx)
        self.victim = self.rng.choice(ctx.peers)
        self.plan = f"first bit authentication: inconsistent choice bits towards party {self.victim}"

    def on_send(self, tap: SessionTap, out: Outgoing) -> list[Send]:
        keep = [(out.to, out.step, out.msg)]
        m = out.msg
        if self.fired or out.kind != "pair" or out.channel != cot_channel(self.party, self.victim):
            return keep
        if not (isinstance(m, list) and len(m) == 2 and isinstance(m[0], bytes) and len(m[0]) > 32):
            return keep
        k = getattr(ot_end_on_stack(), "k", None)  # SoftSpokenOT's block size; KOS has none
        rows = 128 if k is None else -(-128 // k)
        if len(m[0]) % (8 * rows):
            return keep
        u = np.frombuffer(m[0], dtype=np.uint64).reshape(rows, -1).copy()
        ot = self.rng.randrange(64)
        for r in sorted(self.rng.sample(range(rows), rows // 2)):
            u[r, ot // 64] ^= np.uint64(1) << np.uint64(ot % 64)
        flipped = f"OT {ot}'s choice bit flipped in {rows // 2} of {rows} rows"
        self.act(f"correlated-OT corrections to party {self.victim}: {flipped}")
        return [(out.to, out.step, [u.tobytes(), m[1]])]


# ------------------------------------------------------------------------------------------ catalogue
ADVERSARIES: Mapping[str, type[Adversary]] = MappingProxyType(
    {
        cls.name: cls
        for cls in (
            WrongShare,
            WrongMac,
            InconsistentBroadcast,
            BadCommitment,
            BadTriple,
            WrongInputMask,
            Replay,
            Reorder,
            Forge,
            Silent,
            CoinEquivocation,
            MascotBaseOT,
            MascotOT,
            MascotCope,
            MascotTriple,
            MascotMac,
            MascotSacrifice,
            StrayIncarnation,
            Withhold,
            BinaryShare,
            BinaryMac,
            BinarySigma,
            LeakyAnd,
            EdabitMismatch,
            DabitComplement,
            BitAuthOT,
        )
    }
)
"""Every strategy by name (``Withhold`` documents a known gap and is not in ``--adversary all``)."""

SWEEP: tuple[str, ...] = tuple(name for name, cls in ADVERSARIES.items() if cls.sweep)
"""``--adversary all``: every strategy but ``withhold``, each on its own programs (``Adversary.programs``:
the field strategies on ``mul``, the binary ones on ``cmp-binary`` and ``bits``)."""

FIELD: tuple[str, ...] = tuple(name for name in SWEEP if not ADVERSARIES[name].binary)
"""The field-domain strategies of the sweep (every program has targets for them; ``all`` runs them on
``mul``)."""

BINARY: tuple[str, ...] = tuple(name for name, cls in ADVERSARIES.items() if cls.binary)
"""The binary-domain strategies: for the programs that run the binary domain (``cmp-binary``, ``bits``;
``NotApplicable`` elsewhere)."""

HONEST_PROGRAMS = ("mul",)
"""The programs of the honest control (``none``) in a sweep without ``--program``."""


def programs_of(name: str | None) -> tuple[str, ...]:
    """The programs a sweep without ``--program`` runs adversary ``name`` (None: honest) on."""
    return HONEST_PROGRAMS if name is None else ADVERSARIES[name].programs


def program_for(name: str | None, seed: int) -> str:
    """The program of ``name``'s run with ``seed`` in a sweep without ``--program``: its programs in
    turn, by seed (so that ``--replay SEED`` finds the same one)."""
    progs = programs_of(name)
    return progs[seed % len(progs)]


def make_adversary(name: str, ctx: AttackContext) -> Adversary:
    """The strategy ``name`` for ``ctx``; ``KeyError`` naming the choices, ``NotApplicable`` if it has no
    target in this program."""
    try:
        cls = ADVERSARIES[name]
    except KeyError:
        raise KeyError(f"unknown adversary {name!r}; adversaries: {', '.join(ADVERSARIES)}") from None
    return cls(ctx)


@dataclass
class AdversaryInfo:
    """A catalogue entry as ``--list`` shows it."""

    name: str
    description: str
    mascot: bool
    filtered: bool
    sweep: bool
    programs: tuple[str, ...] = ("mul",)


def catalogue() -> list[AdversaryInfo]:
    return [
        AdversaryInfo(name, cls.description, cls.mascot, cls.filtered, cls.sweep, cls.programs)
        for name, cls in ADVERSARIES.items()
    ]


__all__ = [
    "ADVERSARIES",
    "BINARY",
    "FIELD",
    "HONEST_PROGRAMS",
    "SWEEP",
    "Adversary",
    "AdversaryInfo",
    "AttackContext",
    "NotApplicable",
    "Outgoing",
    "SessionTap",
    "catalogue",
    "make_adversary",
    "program_for",
    "programs_of",
]
