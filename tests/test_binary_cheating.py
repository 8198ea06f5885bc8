"""Binary MACs under attack: one party deviates, every honest party must abort, nothing is returned.

The cheater runs the honest code of ``protocols.binary``; the deviation is installed one of three ways:

* a ``Rewrite`` of one kind of message it sends (found by its channel and shape: pair-channel steps are
  ``channel * 2^40 + k``, session rounds have small step numbers);
* a local change of its own state: its share or MAC share before an opening, its KOS sender's Delta
  towards one peer (``BinaryParty._sender_delta``), a proxy on its KOS receiver that flips choice bits
  towards one peer, or its z share in the half-AND (``triples.half_and``, patched for the cheater's
  task only, through a context variable);
* garbage in place of a message (``ProtocolError`` naming the cheater, never a crash).

What must catch each deviation:

| deviation | caught by |
|---|---|
| flipped share or wrong MAC share in an opening; a flipped share sent to one party | binary MAC check |
| a flipped share in the bucketing's openings | the MAC check before triples are returned |
| a KOS sender with another Delta towards one receiver | bit-authentication (consistency) check |
| a receiver with other choice bits towards one peer | bit-authentication check |
| a receiver with inconsistent choices inside one KOS instance | KOS's correlation check |
| the same inside one SoftSpokenOT instance (the default) | SoftSpokenOT's correlation check |
| a wrong or split announcement of the consistency combination | that check / broadcast digest |
| a wrong half-AND d, a wrong leaky-AND row W, a wrong z share (or z + r) before bucketing | leaky-AND check |
| a wrong z share in a later slice of the leaky triples (``LEAKY_SLICE``) | leaky-AND check |
| a z + r share told differently to different parties | broadcast digest |

Every case asserts that the cheat fired, that every honest party raised an ``AbortError`` (its own,
or the notice of another party's abort), that some honest party raised the expected error itself,
that no honest party's generator returned anything, and that the honest parties' keys were retired.
A control run of the same wrappers with the change switched off must give correct material, so each
test can fail. All runs use fresh parties under a wall-clock deadline.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from test_binary import deltas_of, held, reconstruct, run_with, setup_prog

import protocols.binary.session as session_module
import protocols.binary.triples as triples_module
from netsim.adversaries import plain
from protocols.binary import AuthBits, BinaryParty, BitSession, bucket_size
from protocols.binary.auth import cot_channel
from protocols.errors import AbortError, MacCheckError, ProtocolError
from protocols.intercept import PassThrough
from protocols.net import Net, PairChannel
from protocols.online import Session
from protocols.ot.bitmatrix import unpack_bits
from protocols.ot.softspoken import DEFAULT_K

pytestmark = pytest.mark.slow  # ~100 clusters with fresh base OTs: left out of the fast subset

STRIDE = PairChannel.STRIDE
COUNT = 100  # bits or triples per run; 100 triples: bucket size 6, 500 opened bits (63 bytes)
E_BYTES = 75  # the broadcast z + r shares of 600 leaky triples
CONFIGS = [(2, 1), (3, 2), (3, 0)]  # (n, cheater); the victim is the next party
param_config = pytest.mark.parametrize(
    ("n", "cheater"), CONFIGS, ids=[f"n{n}-cheater{c}" for n, c in CONFIGS]
)
CHEATER: contextvars.ContextVar[bool] = contextvars.ContextVar("binary_cheater", default=False)


# ---------------------------------------------------------------------------------------- wrappers
@dataclass
class Wire:
    to: int
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
    """Rewrite the messages ``match`` selects with ``mutate``; ``live = False`` passes them unchanged
    (the control run) but still counts them."""

    match: Callable[[Wire], bool]
    mutate: Callable[[Wire], Any]
    live: bool = True
    hits: int = 0


class RewriteNet:
    def __init__(self, inner: Net, rule: Rule) -> None:
        self.inner = inner
        self.party = inner.party
        self.n = inner.n
        self.rule = rule

    async def send(self, to: int, step: int, msg: Any) -> None:
        w = Wire(to, step, plain(msg))
        if self.rule.match(w):
            self.rule.hits += 1
            if self.rule.live:
                msg = self.rule.mutate(w)
        await self.inner.send(to, step, msg)

    async def recv(self, frm: int, step: int) -> Any:
        return await self.inner.recv(frm, step)


class Rewrite(PassThrough):
    """The cheater's interceptor: a ``RewriteNet`` in its ``session``-th session (0 = set-up)."""

    def __init__(self, rule: Rule, session: int = 1) -> None:
        self.rule = rule
        self.session = session
        self.seen = 0

    def wrap_net(self, session: str, net: Net) -> Net:
        index, self.seen = self.seen, self.seen + 1
        return RewriteNet(net, self.rule) if index == self.session else net


# ---------------------------------------------------------------------------------------- matchers
def opened_share(length: int, only_to: int | None = None) -> Callable[[Wire], bool]:
    """A packed share in an opening: ``length`` bytes on a session round (to ``only_to``, or to all)."""

    def match(w: Wire) -> bool:
        ok = w.step < STRIDE and isinstance(w.msg, bytes) and len(w.msg) == length
        return ok and (only_to is None or w.to == only_to)

    return match


def announcement(only_to: int | None = None) -> Callable[[Wire], bool]:
    """The consistency-check announcement: a list of one 16-byte combination on a session round."""

    def match(w: Wire) -> bool:
        ok = w.step < STRIDE and isinstance(w.msg, list) and len(w.msg) == 1
        ok = ok and isinstance(w.msg[0], bytes) and len(w.msg[0]) == 16
        return ok and (only_to is None or w.to == only_to)

    return match


def half_and_message(cheater: int, victim: int) -> Callable[[Wire], bool]:
    """The cheater's [d, W] to the victim, on the victim's correlated-OT channel."""
    return lambda w: w.channel == cot_channel(victim, cheater) and isinstance(w.msg, list) and w.to == victim


def input_size() -> Callable[[Wire], bool]:
    return lambda w: w.step < STRIDE and type(w.msg) is int


def flip_bit(index: int) -> Callable[[Wire], bytes]:
    def mutate(w: Wire) -> bytes:
        b = bytearray(w.msg)
        b[index // 8] ^= 1 << (index % 8)
        return bytes(b)

    return mutate


def flip_all_d(w: Wire) -> list[bytes]:
    d, rows = w.msg
    count = len(rows) // 16
    bits = np.unpackbits(np.frombuffer(d, np.uint8), bitorder="little")[:count] ^ 1
    return [np.packbits(bits, bitorder="little").tobytes(), rows]


def flip_w_rows(w: Wire) -> list[bytes]:
    d, rows = w.msg
    arr = np.frombuffer(rows, dtype=np.uint64).reshape(-1, 2).copy()
    arr[:, 1] ^= np.uint64(1 << 40)
    return [d, arr.tobytes()]


def replace(value: Any) -> Callable[[Wire], Any]:
    return lambda w: value


# ---------------------------------------------------------------------------------------- local cheats
class FlipChoices:
    """A proxy on the cheater's KOS receiver towards one peer: choice bit ``index`` flipped in every
    batch, so the cheater's choices towards that peer differ from its share and from its choices
    towards any other peer; each KOS instance on its own stays consistent."""

    def __init__(self, inner: Any, index: int, counter: list[int], live: bool) -> None:
        self.inner, self.index, self.counter, self.live = inner, index, counter, live

    async def extend_correlated(self, ch: PairChannel, choices: np.ndarray) -> np.ndarray:
        self.counter.append(1)
        if self.live:
            choices = choices.copy()
            choices[self.index] ^= 1
        return await self.inner.extend_correlated(ch, choices)


Prepare = Callable[[BitSession, int, bool, list[int]], None]  # (bs, victim, live, hits)
Tamper = Callable[[list[AuthBits], bool, list[int]], list[AuthBits]]  # (items, live, hits)


def flip_choices(bs: BitSession, victim: int, live: bool, hits: list[int]) -> None:
    party = bs.party
    party.cot_recv[victim] = FlipChoices(party.cot_recv[victim], 5, hits, live)  # type: ignore[assignment]


def wrong_z_share(bs: BitSession, victim: int, live: bool, hits: list[int]) -> None:
    """Mark the cheater's task: the patched ``half_and`` flips its z share of triple 7."""
    if live:
        CHEATER.set(True)
    hits.append(1)


def wrong_z_share_late(bs: BitSession, victim: int, live: bool, hits: list[int]) -> None:
    """As ``wrong_z_share``, in the last slice of leaky triples only (``LEAKY_SLICE`` made small)."""
    wrong_z_share(bs, victim, live, hits)


def flip_share(items: list[AuthBits], live: bool, hits: list[int]) -> list[AuthBits]:
    hits.append(1)
    if not live:
        return items
    x = items[0]
    bits = x.bits.copy()
    bits[3] ^= 1
    return [AuthBits(x.ctx, bits, x.macs), *items[1:]]


def wrong_mac(items: list[AuthBits], live: bool, hits: list[int]) -> list[AuthBits]:
    hits.append(1)
    if not live:
        return items
    x = items[0]
    macs = x.macs.copy()
    macs[3, 1] ^= np.uint64(1 << 17)
    return [AuthBits(x.ctx, x.bits, macs), *items[1:]]


# ---------------------------------------------------------------------------------------- cases
RuleFactory = Callable[[Sequence[BinaryParty], int, int], Rule]  # parties, cheater, victim


def kos_column(parties: Sequence[BinaryParty], cheater: int, victim: int) -> Rule:
    """The cheater's [u, commitment] to the victim with bits flipped in one column where the victim's
    Delta bit is 1: inconsistent choices inside one KOS instance."""

    def mutate(w: Wire) -> list[Any]:
        col = int(np.flatnonzero(unpack_bits(parties[victim].ctx.delta, 128))[0])
        u = np.frombuffer(w.msg[0], dtype=np.uint64).reshape(128, -1).copy()
        u[col, 0] ^= np.uint64(0b100101)
        return [u.tobytes(), w.msg[1]]

    channel = cot_channel(cheater, victim)
    return Rule(lambda w: w.channel == channel and w.k == 0 and isinstance(w.msg, list), mutate)


def softspoken_block(parties: Sequence[BinaryParty], cheater: int, victim: int) -> Rule:
    """The cheater's SoftSpokenOT corrections to the victim with bits flipped in one block where the
    victim's Delta block is not 0: inconsistent choices inside one SoftSpokenOT instance."""

    def mutate(w: Wire) -> list[Any]:
        k = DEFAULT_K
        bits = unpack_bits(parties[victim].ctx.delta, 128)
        block = next(b for b in range(128 // k) if bits[b * k : (b + 1) * k].any())
        c = np.frombuffer(bytes(w.msg[0]), dtype=np.uint64).reshape(128 // k, -1).copy()
        c[block, 0] ^= np.uint64(0b100101)
        return [c.tobytes(), w.msg[1]]

    channel = cot_channel(cheater, victim)
    return Rule(lambda w: w.channel == channel and w.k == 0 and isinstance(w.msg, list), mutate)


@dataclass
class Case:
    kind: str  # "random_bits", "input" (the cheater owns it) or "triples"
    rule: RuleFactory | None = None
    prepare: Prepare | None = None
    tamper: Tamper | None = None  # on the generated items, before they are output
    other_delta: bool = False  # the cheater's KOS sender uses another Delta towards the victim
    detector: type[AbortError] = MacCheckError
    text: str | tuple[str, ...] | None = None  # what the error says (one of these)
    culprit: bool = False  # the detector must name the cheater
    at_output: bool = False  # the cheat is in the opening after the generator returned
    ot: str = "softspoken"  # the parties' OT extension (the default; "kos" for KOS's own check)


def simple(rule: Callable[[int, int], Rule]) -> RuleFactory:
    return lambda parties, cheater, victim: rule(cheater, victim)


MAC = "binary MAC check failed"
AUTH = "bit authentication check failed"
RELATION = "binary relation check failed"
DETECTED: dict[str, Case] = {
    "opening-flipped-share": Case("random_bits", tamper=flip_share, text=MAC),
    "opening-wrong-mac-share": Case("random_bits", tamper=wrong_mac, text=MAC),
    "opening-share-flipped-towards-one-party": Case(
        "random_bits",
        simple(lambda c, v: Rule(opened_share(13, only_to=v), flip_bit(6))),
        text=MAC,
    ),
    "bucketing-opening-flipped": Case(
        "triples", simple(lambda c, v: Rule(opened_share(63, only_to=v), flip_bit(200))), text=MAC
    ),
    "sender-with-another-delta-towards-one-receiver": Case("random_bits", other_delta=True, text=AUTH),
    "sender-with-another-delta-in-triples": Case("triples", other_delta=True, text=AUTH),
    "receiver-with-other-choices-towards-one-peer": Case("random_bits", prepare=flip_choices, text=AUTH),
    "input-owner-with-other-choices-towards-one-peer": Case("input", prepare=flip_choices, text=AUTH),
    "triples-with-other-choices-towards-one-peer": Case("triples", prepare=flip_choices, text=AUTH),
    "receiver-inconsistent-inside-kos": Case(
        "random_bits", kos_column, detector=AbortError, text="correlation check", culprit=True, ot="kos"
    ),
    "receiver-inconsistent-inside-softspoken": Case(
        "random_bits",
        softspoken_block,
        detector=AbortError,
        text="SoftSpokenOT correlation check",
        culprit=True,
    ),
    "wrong-announcement": Case(  # the cheater's own transcript keeps the true value: either check
        "random_bits",
        simple(lambda c, v: Rule(announcement(), lambda w: [bytes(16)])),
        text=(AUTH, "broadcast consistency"),
    ),
    "split-announcement": Case(
        "random_bits",
        simple(lambda c, v: Rule(announcement(only_to=v), lambda w: [bytes(16)])),
        text="broadcast consistency",
    ),
    "leaky-and-wrong-half-and-corrections": Case(
        "triples", simple(lambda c, v: Rule(half_and_message(c, v), flip_all_d)), text=RELATION
    ),
    "leaky-and-wrong-check-rows": Case(
        "triples", simple(lambda c, v: Rule(half_and_message(c, v), flip_w_rows)), text=RELATION
    ),
    "wrong-triple-share-before-bucketing": Case("triples", prepare=wrong_z_share, text=RELATION),
    "wrong-triple-share-in-a-later-slice": Case("triples", prepare=wrong_z_share_late, text=RELATION),
    "leaky-and-wrong-z-plus-r": Case(  # the cheater's own transcript keeps its true value
        "triples",
        simple(lambda c, v: Rule(opened_share(E_BYTES), flip_bit(77))),
        text=(RELATION, "broadcast consistency"),
    ),
    "leaky-and-z-plus-r-split": Case(
        "triples",
        simple(lambda c, v: Rule(opened_share(E_BYTES, only_to=v), flip_bit(77))),
        text="broadcast consistency",
    ),
}

MALFORMED: dict[str, Case] = {
    "opened-share-too-short": Case(
        "random_bits", simple(lambda c, v: Rule(opened_share(13), lambda w: w.msg[:-1]))
    ),
    "opened-share-not-bytes": Case(
        "random_bits", simple(lambda c, v: Rule(opened_share(13), replace(12345)))
    ),
    "opened-share-padding-set": Case(
        "random_bits", simple(lambda c, v: Rule(opened_share(13), flip_bit(103)))
    ),
    "z-plus-r-too-short": Case(
        "triples", simple(lambda c, v: Rule(opened_share(E_BYTES), lambda w: w.msg[:-1]))
    ),
    "half-and-message-not-a-list": Case(
        "triples", simple(lambda c, v: Rule(half_and_message(c, v), replace("junk")))
    ),
    "half-and-message-short-list": Case(
        "triples", simple(lambda c, v: Rule(half_and_message(c, v), lambda w: w.msg[:1]))
    ),
    "half-and-rows-too-short": Case(
        "triples", simple(lambda c, v: Rule(half_and_message(c, v), lambda w: [w.msg[0], w.msg[1][:-16]]))
    ),
    "half-and-corrections-too-long": Case(
        "triples", simple(lambda c, v: Rule(half_and_message(c, v), lambda w: [w.msg[0] + b"\0", w.msg[1]]))
    ),
    "announcement-empty": Case("random_bits", simple(lambda c, v: Rule(announcement(), replace([])))),
    "announcement-short-value": Case(
        "random_bits", simple(lambda c, v: Rule(announcement(), lambda w: [w.msg[0][:15]]))
    ),
    "input-size-negative": Case("input", simple(lambda c, v: Rule(input_size(), replace(-1)))),
    "input-size-a-string": Case("input", simple(lambda c, v: Rule(input_size(), replace("100")))),
    "input-size-huge": Case("input", simple(lambda c, v: Rule(input_size(), replace(1 << 40)))),
}
for _name, _case in MALFORMED.items():
    _case.detector, _case.culprit = ProtocolError, True
    _case.at_output = _name.startswith("opened-share")
for _name, _case in DETECTED.items():
    _case.at_output = _name.startswith("opening")


# ---------------------------------------------------------------------------------------- running
def input_bits() -> np.ndarray:
    return (np.arange(COUNT) * 7 % 3 % 2).astype(np.uint8)


async def generate(bs: BitSession, kind: str, cheater: int) -> list[AuthBits]:
    if kind == "random_bits":
        return [await bs.random_bits(COUNT)]
    if kind == "input":
        return [await bs.input(input_bits() if bs.s.party == cheater else None, owner=cheater)]
    return list(await bs.and_triples(COUNT))


async def attack_prog(
    s: Session,
    parties: Sequence[BinaryParty],
    case: Case,
    cheater: int,
    live: bool,
    returned: dict[int, Any],
    hits: list[int],
) -> Any:
    if s.party == cheater:
        try:
            return await honest_prog(s, parties, case, cheater, live, returned, hits)
        except AbortError as e:
            # a cheater does not announce its own abort (the engine would tell everyone): the honest
            # parties must find out for themselves
            return e
    return await honest_prog(s, parties, case, cheater, live, returned, hits)


async def honest_prog(
    s: Session,
    parties: Sequence[BinaryParty],
    case: Case,
    cheater: int,
    live: bool,
    returned: dict[int, Any],
    hits: list[int],
) -> Any:
    bs = BitSession(s, parties[s.party])
    victim = (cheater + 1) % s.n
    if s.party == cheater and case.prepare is not None:
        case.prepare(bs, victim, live, hits)
    items = await generate(bs, case.kind, cheater)
    returned[s.party] = items
    if s.party == cheater and case.tamper is not None:
        items = case.tamper(items, live, hits)
    opened = [await bs.output(x) for x in items]
    await bs.finish()
    return [held(x) for x in items], opened


@dataclass
class Run:
    parties: list[BinaryParty]
    results: list[Any]
    returned: dict[int, Any]
    hits: int
    deltas: list[np.ndarray] = field(default_factory=list)


async def run_case(case: Case, n: int, cheater: int, live: bool, monkeypatch: pytest.MonkeyPatch) -> Run:
    parties = [BinaryParty(i, n, ot_extension=case.ot) for i in range(n)]
    victim = (cheater + 1) % n
    hits: list[int] = []
    if case.other_delta:
        other = np.frombuffer(bytes(range(16)), dtype=np.uint64).copy()
        real = parties[cheater]._sender_delta

        def sender_delta(peer: int) -> np.ndarray:
            hits.append(1)
            return other if live and peer == victim else real(peer)

        parties[cheater]._sender_delta = sender_delta  # type: ignore[method-assign]
    if case.prepare in (wrong_z_share, wrong_z_share_late):
        original = triples_module.half_and
        late = case.prepare is wrong_z_share_late
        calls: list[int] = []
        if late:  # COUNT triples, B leaky ones each: several slices, the cheat in the last one
            monkeypatch.setattr(session_module, "LEAKY_SLICE", COUNT * bucket_size(COUNT) // 3 + 1)

        def half_and(*args: Any) -> tuple[np.ndarray, np.ndarray]:
            z, acc = original(*args)
            if CHEATER.get():
                calls.append(1)
                if not late or len(calls) == 3:
                    z[7] ^= 1
            return z, acc

        monkeypatch.setattr(triples_module, "half_and", half_and)
    rule = case.rule(parties, cheater, victim) if case.rule is not None else None
    inter = {}
    if rule is not None:
        rule.live = live
        inter = {cheater: Rewrite(rule)}
    returned: dict[int, Any] = {}
    (setup, results) = await run_with(
        n,
        [(setup_prog, (parties,)), (attack_prog, (parties, case, cheater, live, returned, hits))],
        inter,
    )
    assert setup == [True] * n, f"set-up failed: {setup!r}"
    deltas = deltas_of(parties)
    return Run(parties, results, returned, len(hits) + (rule.hits if rule else 0), deltas)


def check_aborted(run: Run, case: Case, n: int, cheater: int) -> None:
    honest = [i for i in range(n) if i != cheater]
    res = run.results
    assert run.hits, "the cheat never fired: the test would prove nothing"
    for i in honest:
        assert isinstance(res[i], AbortError), f"honest party {i} gave {res[i]!r}, not an AbortError"
        assert run.parties[i].retired, f"honest party {i} kept its key after the abort"
    if not case.at_output:  # the cheat was in the generation: nothing may have come out of it
        leaked = sorted(set(run.returned) & set(honest))
        assert not leaked, f"the generator returned material at honest parties {leaked}"
    own = [res[i] for i in honest if isinstance(res[i], case.detector) and not res[i].remote]
    assert own, f"no honest party raised {case.detector.__name__} itself: {res!r}"
    if case.text is not None:
        texts = (case.text,) if isinstance(case.text, str) else case.text
        assert any(t in str(r) for r in own for t in texts), f"none of {texts} in {own!r}"
    if case.culprit:
        assert any(r.culprit == cheater for r in own), f"no error names party {cheater}: {own!r}"


def check_material(run: Run, case: Case, n: int) -> None:
    res = run.results
    for i, r in enumerate(res):
        assert not isinstance(r, BaseException), f"party {i} failed in a control run: {r!r}"
    assert run.hits, "the no-op wrapper never fired: its target is wrong"
    vals = [
        reconstruct([res[i][0][k] for i in range(n)], run.deltas, f"item {k}") for k in range(len(res[0][0]))
    ]
    for i in range(n):
        assert all(np.array_equal(o, v) for o, v in zip(res[i][1], vals, strict=True))
    if case.kind == "triples":
        x, y, z = vals
        assert np.array_equal(z, x & y)
    if case.kind == "input":
        assert np.array_equal(vals[0], input_bits())


@param_config
@pytest.mark.parametrize("name", list(DETECTED))
async def test_cheat_is_caught_by_every_honest_party(
    name: str, n: int, cheater: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = DETECTED[name]
    run = await run_case(case, n, cheater, True, monkeypatch)
    check_aborted(run, case, n, cheater)


@pytest.mark.parametrize("name", list(DETECTED))
async def test_control_run_of_each_cheat_is_correct(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same wrappers with the change switched off: every party succeeds, the material is right."""
    case = DETECTED[name]
    run = await run_case(case, 3, 2, False, monkeypatch)
    check_material(run, case, 3)


@param_config
@pytest.mark.parametrize("name", list(MALFORMED))
async def test_malformed_message_is_a_protocol_error(
    name: str, n: int, cheater: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = MALFORMED[name]
    run = await run_case(case, n, cheater, True, monkeypatch)
    check_aborted(run, case, n, cheater)
    victim = (cheater + 1) % n
    assert isinstance(run.results[victim], ProtocolError) or run.results[victim].remote
