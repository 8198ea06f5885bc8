"""MASCOT under attack: one party deviates in the offline phase, every honest party must abort.

The cheater runs the honest protocol code; ``CheatNet`` (installed by the ``CheatAt`` interceptor)
rewrites one kind of message it sends or receives, found by its channel and shape. Pairwise
sub-protocols talk over ``PairChannel`` steps ``channel * 2^40 + k`` with the channel ids of
``auth.cope_channel`` / ``triples.ot_channel``; session-wide rounds (openings, coin tosses) have small
step numbers. What each attack hits and what must catch it (MASCOT.md s. 7):

a. a base-OT point: invalid or echoed -> point validation in setup; another valid point -> point
   validation cannot tell; the KOS correlation check (set-up already extends OTs, for COPE's
   seeds) or the authentication check stops it before any material is returned;
b. KOS u with one column's choice bits flipped, in a batch or in set-up -> KOS correlation check;
c. a COPE correction u_l off by a delta -> the authentication (input) check, MacCheckError;
d. a Gilboa correction d off, as sent or as received (a wrong c share) -> the sacrifice;
e. the cheater's MAC share off (its COPE output) -> the authentication check, MacCheckError;
f. the cheater's opened share of rho, of the sacrifice's zero or of a^2 (bits) -> the MAC check;
g. a coin-toss opening that equivocates (combine, authentication, sacrifice) -> CommitmentError.

Every case asserts that the cheat fired, that every honest party raised an ``AbortError`` and that no
honest party's generator returned anything; a control run of the same wrappers with a no-op mutation
must produce correct material, so these tests can fail. Targets that depend on a secret bit (a COPE
column only matters where the victim's alpha bit is 1, a KOS column only where Delta's bit is 1)
read that bit from the victim's set-up state, so each case is deterministic. All runs use fresh
parties (an aborted run leaves the parties' OT counters out of step) under a wall-clock deadline: a
party that waits forever becomes a ``TooSlowError``. (Not the autojump clock: MASCOT computes in
worker threads, and a task waiting for a thread counts as blocked, so virtual time would jump past
the deadline during honest computation.)
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from helpers import MODULI, assert_all_aborted, mod_id
from nacl import bindings as sodium
from test_mascot import (
    KeyOnly,
    alphas_of,
    held,
    mod,
    reconstruct,
    run_with,
    setup_prog,
)

from netsim.adversaries import plain
from protocols.errors import AbortError, CommitmentError, MacCheckError
from protocols.field import P61, P127, PrimeField, get_field
from protocols.mascot import TAU, MascotParty
from protocols.mascot.auth import cope_channel
from protocols.mascot.cope import CopeReceiver, CopeSender, alpha_bits
from protocols.mascot.triples import ot_channel
from protocols.net import Net, PairChannel
from protocols.online import Session
from protocols.ot.base import POINT_BYTES
from protocols.ot.bitmatrix import unpack_bits

pytestmark = pytest.mark.slow  # real processes or MASCOT: left out of the fast subset

STRIDE = PairChannel.STRIDE
COUNT = 24  # triples per batch: small, and COUNT * elem_bytes is neither 32 nor elem_bytes
CONFIGS = [(p, n) for p in MODULI for n in (2, 3)]
CONFIG_IDS = [f"{mod_id(p)}-n{n}" for p, n in CONFIGS]
param_config = pytest.mark.parametrize(("p", "n"), CONFIGS, ids=CONFIG_IDS)


# ---------------------------------------------------------------------------------------- wrappers
@dataclass
class Wire:
    """One message as the cheater sends (to ``peer``) or receives it (from ``peer``)."""

    peer: int
    step: int
    msg: Any

    @property
    def channel(self) -> int:
        return self.step // STRIDE

    @property
    def k(self) -> int:
        return self.step % STRIDE


@dataclass
class Rule:
    """Which messages to rewrite (``match``), how (``mutate``), in which direction, and which of the
    matching steps (``occurrences``, counted over distinct steps in order: one broadcast to several
    peers is one occurrence)."""

    match: Callable[[Wire], bool]
    mutate: Callable[[CheatNet, Wire], Any]
    direction: str = "send"
    occurrences: tuple[int, ...] = (0,)


class CheatNet:
    """The cheater's ``Net``: passes everything through but the messages its rule targets."""

    def __init__(self, inner: Net, rule: Rule, fld: PrimeField) -> None:
        self.inner = inner
        self.party = inner.party
        self.n = inner.n
        self.rule = rule
        self.field = fld
        self.steps: list[int] = []
        self.hits = 0
        self.received: dict[tuple[int, int], Any] = {}

    def _apply(self, w: Wire) -> Any:
        if not self.rule.match(w):
            return w.msg
        if w.step not in self.steps:
            self.steps.append(w.step)
        if self.steps.index(w.step) not in self.rule.occurrences:
            return w.msg
        self.hits += 1
        return self.rule.mutate(self, w)

    async def send(self, to: int, step: int, msg: Any) -> None:
        if self.rule.direction == "send":
            msg = self._apply(Wire(to, step, plain(msg)))
        await self.inner.send(to, step, msg)

    async def recv(self, frm: int, step: int) -> Any:
        msg = await self.inner.recv(frm, step)
        if step >= STRIDE and isinstance(msg, (bytes, memoryview)) and len(msg) == POINT_BYTES:
            self.received[(frm, step)] = bytes(msg)  # base-OT sender points, for the echo attack
        if self.rule.direction == "recv":
            msg = self._apply(Wire(frm, step, plain(msg)))
        return msg


class CheatAt:
    """Interceptor for the cheater: its ``session``-th session (0 = the first) gets a ``CheatNet``;
    every session runs under the cheater's MascotParty key, like the honest ``Swap``."""

    def __init__(self, parties: Sequence[MascotParty], i: int, rule: Rule | None, session: int) -> None:
        self.parties = parties
        self.i = i
        self.rule = rule
        self.session = session
        self.seen = 0
        self.nets: list[CheatNet] = []

    def wrap_net(self, session: str, net: Net) -> Net:
        index, self.seen = self.seen, self.seen + 1
        if self.rule is None or index != self.session:
            return net
        self.nets.append(CheatNet(net, self.rule, self.parties[self.i].field))
        return self.nets[-1]

    def wrap_preprocessing(self, session: str, pre: Any) -> Any:
        return KeyOnly(self.parties[self.i].ctx)

    @property
    def hits(self) -> int:
        return sum(net.hits for net in self.nets)


# ---------------------------------------------------------------------------------------- programs
Generator = Callable[[MascotParty, Session, int, int], Awaitable[Any]]  # (party, s, count, cheater)

GENERATORS: dict[str, Generator] = {
    "triples": lambda m, s, count, cheater: m.triples(s, count),
    "input_masks": lambda m, s, count, cheater: m.input_masks(s, cheater, count),
    "bits": lambda m, s, count, cheater: m.bits(s, count),
}


def material(kind: str, out: Any) -> list[Any]:
    """The SharedArrays a generator returned (an input mask's clear part dropped)."""
    if kind == "input_masks":
        return [out[0]]
    return list(out) if isinstance(out, tuple) else [out]


Prepare = Callable[[MascotParty, Session], None]


async def batch_prog(
    s: Session,
    parties: Sequence[MascotParty],
    kind: str,
    count: int,
    cheater: int,
    returned: dict[int, Any],
    prepare: Prepare | None,
) -> Any:
    """One batch of ``kind``; the generator's output is recorded the moment it returns (that is what
    a pool would receive), then opened with MAC checks for the control runs."""
    m = parties[s.party]
    if prepare is not None and s.party == cheater:
        prepare(m, s)
    out = material(kind, await GENERATORS[kind](m, s, count, cheater))
    returned[s.party] = out
    return [held(x) for x in out], [await s.output(x) for x in out]


async def setup_then_batch(
    s: Session, parties: Sequence[MascotParty], count: int, returned: dict[int, Any], phase: dict[int, str]
) -> Any:
    """Setup and a triple batch in one session, noting the phase each party is in."""
    m = parties[s.party]
    phase[s.party] = "setup"
    await m.setup(s)
    phase[s.party] = "triples"
    out = material("triples", await m.triples(s, count))
    returned[s.party] = out
    return [held(x) for x in out], [await s.output(x) for x in out]


# ---------------------------------------------------------------------------------------- cases
RuleFactory = Callable[[Sequence[MascotParty], int, int, bool], Rule | None]  # parties, cheater, victim, live
PrepareFactory = Callable[[int, bool, list[int]], Prepare]  # victim, live, hit counter -> prepare


@dataclass
class Case:
    """One attack: how to build the cheater's rule (or its local tampering), where it applies, and
    what must catch it. ``live = False`` builds the same wrappers with a no-op change (the control)."""

    rule: RuleFactory | None = None
    prepare: PrepareFactory | None = None
    kind: str = "triples"
    in_setup: bool = False
    detector: type[AbortError] | None = None
    text: str | None = None


@dataclass
class Run:
    """What one attacked (or control) run produced."""

    parties: list[MascotParty]
    cheat: CheatAt
    kind: str
    setup: list[Any] = field(default_factory=list)
    results: list[Any] = field(default_factory=list)
    returned: dict[int, Any] = field(default_factory=dict)
    phase: dict[int, str] = field(default_factory=dict)
    local_hits: list[int] = field(default_factory=list)

    @property
    def hits(self) -> int:
        return self.cheat.hits + sum(self.local_hits)


async def run_case(case: Case, p: int, n: int, cheater: int, live: bool = True) -> Run:
    """Fresh parties; the rule applies in the setup session (``in_setup``: setup and one triple batch
    in a single session) or in a batch session that follows an honest setup session."""
    f = get_field(p)
    # the rules below edit KOS's messages by their layout (u as 128 rows, its base OTs): run MASCOT on
    # KOS here; SoftSpokenOT's own checks are attacked in test_ot_softspoken.py
    parties = [MascotParty(f, i, n, ot_extension="kos") for i in range(n)]
    victim = victim_of(n, cheater)
    rule = case.rule(parties, cheater, victim, live) if case.rule is not None else None
    cheat = CheatAt(parties, cheater, rule, session=0 if case.in_setup else 1)
    run = Run(parties, cheat, case.kind)
    if case.in_setup:
        (run.results,) = await run_with(
            parties, [(setup_then_batch, (parties, COUNT, run.returned, run.phase))], {cheater: cheat}
        )
        return run
    prepare = case.prepare(victim, live, run.local_hits) if case.prepare is not None else None
    progs = [
        (setup_prog, (parties,)),
        (batch_prog, (parties, case.kind, COUNT, cheater, run.returned, prepare)),
    ]
    run.setup, run.results = await run_with(parties, progs, {cheater: cheat})
    assert run.setup == [True] * n, f"the honest setup session failed: {run.setup!r}"
    return run


def victim_of(n: int, cheater: int) -> int:
    return (cheater + 1) % n


def honest(n: int, cheater: int) -> list[int]:
    return [i for i in range(n) if i != cheater]


def check_aborted(run: Run, cheater: int, case: Case) -> None:
    """The cheat fired; every honest party raised an AbortError and got nothing from the generator."""
    n = len(run.parties)
    res = run.results
    assert run.hits, "the cheat never fired: the test would prove nothing"
    assert_all_aborted(res, honest(n, cheater))
    leaked = sorted(set(run.returned) & set(honest(n, cheater)))
    assert not leaked, f"the generator returned material at honest parties {leaked} despite the cheat"
    if case.detector is not None:
        # the cheater runs the honest checks too and may be first to notify, so look at everyone
        name = case.detector.__name__
        assert any(isinstance(r, case.detector) for r in res), f"nobody raised {name}: {res!r}"
    if case.text is not None:
        assert any(isinstance(r, AbortError) and case.text in str(r) for r in res), (
            f"no {case.text!r}: {res!r}"
        )


def check_material(run: Run) -> None:
    """Control runs: every party succeeded and the material is right (MACs and relations)."""
    res = run.results
    for i, r in enumerate(res):
        assert not isinstance(r, BaseException), f"party {i} failed in a control run: {r!r}"
    assert run.hits, "the no-op wrapper never fired: its target is wrong"
    f = run.parties[0].field
    p, n = f.modulus, len(run.parties)
    vals = [
        reconstruct(f, [res[i][0][k] for i in range(n)], alphas_of(run.parties), f"{run.kind}[{k}]")
        for k in range(len(res[0][0]))
    ]
    for i in range(n):
        assert [mod(o, p) for o in res[i][1]] == vals, f"party {i} opened other values"
    if run.kind == "triples":
        a, b, c = vals
        assert all(x * y % p == z for x, y, z in zip(a, b, c, strict=True))
    if run.kind == "bits":
        assert set(vals[0]) <= {0, 1}


# ---------------------------------------------------------------------------------------- mutations
def on_channel(channel: Callable[[int, int], int], cheater: int, victim: int, k: int | None = None):
    """Match messages to/from ``victim`` on one PairChannel (``channel(cheater, victim)`` is its id)."""
    cid = channel(cheater, victim)

    def match(w: Wire) -> bool:
        return w.peer == victim and w.channel == cid and (k is None or w.k == k)

    return match


def session_round(w: Wire) -> bool:
    """A session-wide round (opening, coin toss), not a PairChannel message."""
    return w.step < STRIDE


def n_elements(f: PrimeField, count: int) -> Callable[[Wire], bool]:
    return lambda w: isinstance(w.msg, bytes) and len(w.msg) == count * f.elem_bytes


def blocks_of(f: PrimeField, per: int) -> Callable[[Wire], bool]:
    """Bytes made of whole blocks of ``per`` field elements (longer than any seed or commitment)."""
    return lambda w: isinstance(w.msg, bytes) and len(w.msg) > 32 and len(w.msg) % (per * f.elem_bytes) == 0


def every(*preds: Callable[[Wire], bool]) -> Callable[[Wire], bool]:
    return lambda w: all(pr(w) for pr in preds)


def add_at(indices: Callable[[int], list[int]], delta: int) -> Callable[[CheatNet, Wire], bytes]:
    """Add ``delta`` to the field elements at ``indices(total elements)`` of a field vector."""

    def mut(net: CheatNet, w: Wire) -> bytes:
        f = net.field
        v = f.from_bytes(w.msg)
        total = v.shape[1]
        d = [0] * total
        for i in indices(total):
            d[i] = delta
        return f.to_bytes(f.add(v, f.from_ints(d)))

    return mut


def noop(net: CheatNet, w: Wire) -> Any:
    return w.msg


def random_point() -> bytes:
    scalar = sodium.crypto_core_ed25519_scalar_reduce(os.urandom(64))
    return sodium.crypto_scalarmult_ed25519_base_noclamp(scalar)


OFF_CURVE = bytes.fromhex("02" + "00" * 31)
IDENTITY = bytes.fromhex("01" + "00" * 31)
ORDER_8 = bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a")
NON_CANONICAL_Y = bytes.fromhex("ee" + "ff" * 30 + "7f")  # y = p + 1


def point_at(index: int, make: Callable[[CheatNet, Wire], bytes]) -> Callable[[CheatNet, Wire], bytes]:
    """Replace point ``index`` of a base-OT message (the sender's single A is index 0)."""

    def mut(net: CheatNet, w: Wire) -> bytes:
        raw = bytearray(w.msg)
        raw[index * POINT_BYTES : (index + 1) * POINT_BYTES] = make(net, w)
        return bytes(raw)

    return mut


def echo_a(net: CheatNet, w: Wire) -> bytes:
    """The base-OT sender's own point A, which the cheater (the receiver) got first on this channel."""
    return net.received[(w.peer, w.channel * STRIDE)]


BAD_POINTS: dict[str, Callable[[CheatNet, Wire], bytes]] = {
    "off-curve": lambda net, w: OFF_CURVE,
    "identity": lambda net, w: IDENTITY,
    "small-order": lambda net, w: ORDER_8,
    "non-canonical": lambda net, w: NON_CANONICAL_Y,
    "mixed-order": lambda net, w: sodium.crypto_core_ed25519_add(random_point(), ORDER_8),
    "echo-A": echo_a,
    "valid-other": lambda net, w: random_point(),
}

# Base-OT messages in setup are the first (k = 0) on each KOS channel (COPE has no base OTs of its
# own: its seeds are KOS OTs). The cheater is the base-OT sender (one point A) on
# ot_channel(cheater, victim), and the receiver (one B_i per OT) on ot_channel(victim, cheater).
BASE_OT_TARGETS: dict[str, tuple[Callable[[int, int], int], bool]] = {
    "kos-A": (ot_channel, False),
    "kos-B": (lambda c, v: ot_channel(v, c), True),
}


def base_ot_case(target: str, bad: str) -> Case:
    channel, is_receiver = BASE_OT_TARGETS[target]

    def rule(parties: Sequence[MascotParty], cheater: int, victim: int, live: bool) -> Rule:
        mutate = point_at(5 if is_receiver else 0, BAD_POINTS[bad]) if live else noop
        return Rule(on_channel(channel, cheater, victim, k=0), mutate)

    return Case(rule=rule, in_setup=True)


def kos_u_rule(parties: Sequence[MascotParty], cheater: int, victim: int, live: bool) -> Rule:
    """The cheater as KOS receiver: in its ``[u, commitment]`` messages to the victim, flip rows 0 and 9
    of a column where the victim's Delta bit is 1 (where Delta_l = 0 the flip changes nothing). In
    set-up the victim's Delta may not exist yet when the cheater sends (the victim may not have
    finished its base OTs): then the rows are flipped in the 64 even columns, inconsistent choice bits
    that go unnoticed only if Delta is 0 in all of them (probability 2^-64)."""

    def mutate(net: CheatNet, w: Wire) -> Any:
        if not live:
            return w.msg
        try:
            delta_bits = unpack_bits(parties[victim].ot_send[cheater].delta, 128)
            cols = [int(np.flatnonzero(delta_bits)[0])]
        except RuntimeError:  # the victim's KOS set-up has not finished
            cols = list(range(0, 128, 2))
        u = np.frombuffer(w.msg[0], dtype=np.uint64).reshape(128, -1).copy()
        for col in cols:
            for row in (0, 9):
                u[col, row // 64] ^= np.uint64(1) << np.uint64(row % 64)
        return [u.tobytes(), w.msg[1]]

    def is_u(w: Wire) -> bool:
        m = w.msg
        return isinstance(m, list) and len(m) == 2 and isinstance(m[0], bytes) and len(m[0]) > 32

    return Rule(every(on_channel(ot_channel, cheater, victim), is_u), mutate)


def cope_u_rule(parties: Sequence[MascotParty], cheater: int, victim: int, live: bool) -> Rule:
    """The cheater as COPE owner: add 1 to element 1 of the correction u_l of a column l where the
    victim's alpha bit is 1 (the victim ignores u_l where it is 0). Layout: (W, k * m), column-major
    in l, so the element is ``l * m + 1``."""
    f = parties[0].field
    col = int(np.flatnonzero(alpha_bits(f, parties[victim].alpha))[0])
    k = f.bits
    mutate = add_at(lambda total: [col * (total // k) + 1], 1 if live else 0)
    return Rule(every(on_channel(cope_channel, cheater, victim), blocks_of(f, k)), mutate)


def gilboa_rule(direction: str) -> RuleFactory:
    """Gilboa correction d (layout (W, k * tau * N), bit l of element e at ``l * tau N + e``): add a
    delta to element e = 2 in every bit block, so the receiver's product share moves by delta times
    its whole a_e. ``send``: the cheater's d to the victim (the victim's c share goes wrong);
    ``recv``: the victim's d as the cheater receives it (the cheater's own c share goes wrong, as if
    it added an error to its c^i before authentication)."""

    def rule(parties: Sequence[MascotParty], cheater: int, victim: int, live: bool) -> Rule:
        f = parties[0].field
        k, m = f.bits, TAU * COUNT
        # the cheater is the Gilboa/OT sender on ot_channel(victim, cheater), the receiver on the other
        channel = (lambda c, v: ot_channel(v, c)) if direction == "send" else ot_channel
        mutate = add_at(lambda total: [lv * m + 2 for lv in range(k)], 12345 if live else 0)
        return Rule(every(on_channel(channel, cheater, victim), n_elements(f, k * m)), mutate, direction)

    return rule


class OffCope:
    """A COPE end whose ``extend`` output (the cheater's MAC-share contribution) is off by ``delta``
    at element 3: the cheater's MAC share of a value in the batch is wrong, the value is not."""

    def __init__(self, inner: CopeSender | CopeReceiver, delta: int, hits: list[int]) -> None:
        self.inner = inner
        self.delta = delta
        self.hits = hits

    async def extend(self, ch: PairChannel, arg: Any) -> np.ndarray:
        out = await self.inner.extend(ch, arg)  # type: ignore[arg-type]
        f = self.inner.field
        d = [0] * out.shape[1]
        d[3] = self.delta
        self.hits.append(1)
        return f.add(out, f.from_ints(d))


def mac_share_prepare(role: str) -> PrepareFactory:
    """``sender``: the cheater's MAC share of its own values; ``receiver``: of the victim's values."""

    def factory(victim: int, live: bool, hits: list[int]) -> Prepare:
        def prepare(m: MascotParty, s: Session) -> None:
            ends: Any = m.cope_send if role == "sender" else m.cope_recv
            ends[victim] = OffCope(ends[victim], 777 if live else 0, hits)

        return prepare

    return factory


def opening_rule(occurrence: int) -> RuleFactory:
    """The cheater's share in the ``occurrence``-th opening of a COUNT-element vector: in a triple
    batch 0 = rho and 1 = the zero check of the sacrifice; in ``bits`` 2 = e (a - b, for the
    squares) and 3 = the square a^2 whose root makes the bits."""

    def rule(parties: Sequence[MascotParty], cheater: int, victim: int, live: bool) -> Rule:
        f = parties[0].field
        match = every(session_round, n_elements(f, COUNT))
        return Rule(match, add_at(lambda total: [0], 1 if live else 0), occurrences=(occurrence,))

    return rule


def coin_rule(occurrence: int, part: int) -> RuleFactory:
    """Flip the last byte of the cheater's coin-toss opening ``[nonce, seed]`` (part 0 or 1) in the
    ``occurrence``-th coin toss of a triple batch: 0 combine, 1 authentication, 2 the authentication's
    MAC check, 3 sacrifice."""

    def rule(parties: Sequence[MascotParty], cheater: int, victim: int, live: bool) -> Rule:
        def is_coin_opening(w: Wire) -> bool:
            m = w.msg
            return (
                isinstance(m, list)
                and len(m) == 2
                and all(isinstance(x, bytes) for x in m)
                and len(m[1]) == 32
            )

        def mutate(net: CheatNet, w: Wire) -> Any:
            out = list(w.msg)
            if live:
                out[part] = out[part][:-1] + bytes([out[part][-1] ^ 1])
            return out

        return Rule(every(session_round, is_coin_opening), mutate, occurrences=(occurrence,))

    return rule


CASES: dict[str, Case] = {
    # a. base OT: a valid substitute point passes validation; a later check must fail
    **{f"base-ot-{t}-valid-other": base_ot_case(t, "valid-other") for t in BASE_OT_TARGETS},
    # b. KOS, in a batch and in set-up (the extension that makes COPE's seeds)
    "kos-inconsistent-choice-bits": Case(rule=kos_u_rule, text="correlation check"),
    "kos-inconsistent-choice-bits-in-setup": Case(rule=kos_u_rule, in_setup=True, text="correlation check"),
    # c. COPE corrections
    "cope-correction-triples": Case(rule=cope_u_rule, detector=MacCheckError),
    "cope-correction-input-mask": Case(rule=cope_u_rule, kind="input_masks", detector=MacCheckError),
    # d. wrong product shares
    "gilboa-correction-sent": Case(rule=gilboa_rule("send"), text="sacrifice"),
    "gilboa-correction-received": Case(rule=gilboa_rule("recv"), text="sacrifice"),
    # e. wrong MAC shares
    "mac-share-own-values": Case(prepare=mac_share_prepare("sender"), detector=MacCheckError),
    "mac-share-peer-values": Case(prepare=mac_share_prepare("receiver"), detector=MacCheckError),
    "mac-share-input-mask": Case(
        prepare=mac_share_prepare("sender"), kind="input_masks", detector=MacCheckError
    ),
    # f. wrong openings
    "open-rho": Case(rule=opening_rule(0), detector=MacCheckError),
    "open-sacrifice-zero": Case(rule=opening_rule(1), detector=MacCheckError),
    "open-square-for-bits": Case(rule=opening_rule(3), kind="bits", detector=MacCheckError),
    # g. equivocating coin tosses
    "coin-combine-seed": Case(rule=coin_rule(0, 1), detector=CommitmentError),
    "coin-combine-nonce": Case(rule=coin_rule(0, 0), detector=CommitmentError),
    "coin-auth-seed": Case(rule=coin_rule(1, 1), detector=CommitmentError),
    "coin-sacrifice-seed": Case(rule=coin_rule(3, 1), detector=CommitmentError),
}

# one representative of each attack at both moduli and n = 2, 3; its variants at one quick setting
# (every run pays for ~500 base OTs, so the full matrix would take minutes)
CORE = [
    "base-ot-kos-B-valid-other",
    "base-ot-kos-A-valid-other",
    "kos-inconsistent-choice-bits",
    "cope-correction-triples",
    "gilboa-correction-sent",
    "gilboa-correction-received",
    "mac-share-own-values",
    "open-rho",
    "coin-combine-seed",
    "coin-sacrifice-seed",
]
VARIANTS = [name for name in CASES if name not in CORE]
QUICK = (P127, 2)


# ---------------------------------------------------------------------------------------- tests
async def attack_and_check(name: str, p: int, n: int, cheater: int) -> None:
    case = CASES[name]
    run = await run_case(case, p, n, cheater)
    check_aborted(run, cheater, case)
    if case.rule is kos_u_rule and case.in_setup:  # the extension for COPE's seeds is checked there
        assert run.phase[victim_of(n, cheater)] == "setup", "set-up's own OT extension went unchecked"


@param_config
@pytest.mark.parametrize("name", CORE)
async def test_cheating_in_the_offline_phase_aborts(p: int, n: int, name: str) -> None:
    """Each deviation of MASCOT.md s. 7 makes every honest party abort without material."""
    await attack_and_check(name, p, n, n - 1)


@pytest.mark.parametrize("name", VARIANTS)
async def test_cheating_variants_abort(name: str) -> None:
    """The other channels, generators and message parts of the same attacks (p = 2^127 - 1, n = 2)."""
    await attack_and_check(name, *QUICK, QUICK[1] - 1)


@pytest.mark.parametrize("name", ["cope-correction-triples", "gilboa-correction-received", "open-rho"])
@pytest.mark.parametrize("n", [2, 3], ids=["n2", "n3"])
async def test_cheater_party_zero(n: int, name: str) -> None:
    """The cheater's position does not matter: party 0 as the cheater (party 1 the victim)."""
    await attack_and_check(name, P61, n, 0)


@pytest.mark.parametrize("name", list(CASES))
async def test_control_no_op_wrappers_give_correct_material(name: str) -> None:
    """The same wrappers with a no-op change: the run succeeds and the material is right, so the
    targets are real messages and the aborts above come from the change alone."""
    run = await run_case(CASES[name], *QUICK, QUICK[1] - 1, live=False)
    check_material(run)


@pytest.mark.parametrize(
    "name", ["kos-inconsistent-choice-bits", "gilboa-correction-received", "coin-sacrifice-seed"]
)
async def test_control_no_op_wrappers_three_parties(name: str) -> None:
    """Controls at n = 3, where the rules pick one victim among two peers."""
    run = await run_case(CASES[name], P61, 3, 2, live=False)
    check_material(run)


INVALID_POINTS = [
    ("kos-A", "off-curve"),
    ("kos-B", "echo-A"),
    ("kos-A", "identity"),
    ("kos-A", "non-canonical"),
    ("kos-B", "small-order"),
    ("kos-B", "mixed-order"),
]


@param_config
@pytest.mark.parametrize(("target", "bad"), INVALID_POINTS, ids=[f"{t}-{b}" for t, b in INVALID_POINTS])
async def test_invalid_base_ot_point_aborts_setup(p: int, n: int, target: str, bad: str) -> None:
    """A point the victim must reject (off the curve, small order, non-canonical, the identity, or the
    sender's own A echoed as a B_i) stops setup at the victim, which names the cheater."""
    cheater = n - 1
    victim = victim_of(n, cheater)
    run = await run_case(base_ot_case(target, bad), p, n, cheater)
    check_aborted(run, cheater, Case())
    err = run.results[victim]
    assert err.culprit == cheater, f"the victim blamed {err.culprit}: {err!r}"
    assert run.phase[victim] == "setup" and not run.parties[victim].ready
