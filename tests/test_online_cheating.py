"""Active cheating: one party deviates, every honest party must abort and none may return an output.

The cheater runs the honest ``Session`` code behind test-only wrappers installed with
``local_cluster(..., interceptors={cheater: Cheat(...)})``:

* ``CheatNet`` rewrites what the cheater *sends*. It recognises messages by their wire format (an
  input is two messages, the shape (a list of ints) and then the correction bytes one step later; the
  wrapper holds the targeted input's shape back and presents the pair as one ``[shape, correction]``
  message, so a test can alter either or both; opened share: field-vector bytes; commitment: 32-byte digest;
  commitment opening ``[nonce, data]``, whose data is 32 bytes for a coin-toss seed and
  ``elem_bytes + 32`` for a MAC-check sigma) and counts each kind by step, so a test names its target
  as ``(kind, occurrence)``. The program opens 3- and 6-element vectors, never 32 bytes' worth, so an
  opened share is never mistaken for a digest.
* ``CheatPre`` alters the preprocessing the cheater receives (value or MAC share of a triple or of an
  input mask) before the session uses it.

Every case is checked at n = 2, 3, 5, with party 0 and the last party as cheater, and a control run of
the same wrappers with a no-op mutation must produce the right answer (so these tests can fail).
Tests use the autojump clock: a party that waits forever turns into an immediate ``TooSlowError``.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest
import trio
from helpers import (
    MODULI,
    N_PARTIES,
    Cheat,
    CheatNet,
    CheatPre,
    Mutation,
    add_delta,
    assert_all_aborted,
    assert_array_eq,
    classify,
    flip,
    input_delta,
    mod_id,
    non_canonical,
    noop,
    replace,
    run_each,
)

from netsim.adversaries import plain
from protocols.errors import AbortError, CommitmentError, MacCheckError, ProtocolError
from protocols.field import P61, P127, PrimeField, get_field
from protocols.intercept import PassThrough
from protocols.net import Net
from protocols.online import Session

XS = [3, -4, 5]
YS = [-6, 7, 8]


# ---------------------------------------------------------------------------------------- the program
async def prog(s: Session, to: int, sessions: dict[int, Session]) -> tuple[Any, Any]:
    """Two inputs, a mul, an output to all and one to party ``to``: every kind of message once."""
    sessions[s.party] = s
    x = await s.input(XS if s.party == 0 else None, owner=0)
    y = await s.input(YS if s.party == 1 else None, owner=1)
    z = await s.mul(x, y)
    o1 = await s.output(z)
    o2 = await s.output(z + x, to=to)
    return o1, o2


def expected(n: int, to: int) -> list[tuple[Any, Any]]:
    z = [a * b for a, b in zip(XS, YS, strict=True)]
    zx = [a + b for a, b in zip(z, XS, strict=True)]
    return [(z, zx if i == to else None) for i in range(n)]


async def run_cheat(
    n: int, p: int, cheater: int, cheat: Cheat, to: int | None = None, **session_options: Any
) -> tuple[list[Any], Any]:
    to = (cheater + 1) % n if to is None else to  # an honest recipient for the private output
    sessions: dict[int, Session] = {}
    res = await run_each(
        n, p, prog, to, sessions, interceptors={cheater: cheat}, session_options=session_options or None
    )
    return res, sessions


def check_aborted(
    res: list[Any], sessions: dict[int, Session], n: int, cheater: int, cheat: Cheat, detector: type | None
) -> None:
    assert cheat.hits, "the cheat never fired: the test would prove nothing"
    honest = [i for i in range(n) if i != cheater]
    assert_all_aborted(res, honest)
    if detector is not None:
        # the cheater runs the honest checks too and may be first to notify, so look at everyone
        assert any(isinstance(r, detector) for r in res), f"nobody raised {detector.__name__}: {res!r}"
    for i in honest:
        if i in sessions:
            assert not sessions[i].ctx.alpha.any(), f"party {i} kept its MAC key share after the abort"


def cheaters(n: int) -> list[int]:
    return sorted({0, n - 1})


CASES = [(n, c) for n in N_PARTIES for c in cheaters(n)]
CASE_IDS = [f"n{n}-cheater{c}" for n, c in CASES]
param_case = pytest.mark.parametrize(("n", "cheater"), CASES, ids=CASE_IDS)
param_p = pytest.mark.parametrize("p", MODULI, ids=mod_id)


# ---------------------------------------------------------------------------------------- control
@param_case
@param_p
async def test_noop_wrappers_compute_correctly(n: int, cheater: int, p: int, autojump_clock: Any) -> None:
    to = (cheater + 1) % n
    for target in [("share", 0), ("share", 1), ("share", 2), ("coin-open", 0), ("sigma-open", 1)]:
        cheat = Cheat(net=lambda net, t=target: CheatNet(net, get_field(p), t, noop))  # type: ignore[misc]
        res, _ = await run_cheat(n, p, cheater, cheat, to)
        assert cheat.hits
        assert_array_eq(res, expected(n, to))
    for kind, which, part in [("triple", 0, "value"), ("mask", 0, "mac")]:
        cheat = Cheat(pre=lambda pre, k=kind, w=which, pt=part: CheatPre(pre, k, w, pt, 0))  # type: ignore[misc]
        res, _ = await run_cheat(n, p, cheater, cheat, to)
        assert cheat.hits
        assert_array_eq(res, expected(n, to))


# ---------------------------------------------------------------------------------------- a. opened shares
@param_case
@param_p
@pytest.mark.parametrize("occurrence", [0, 1, 2], ids=["mul-d-e", "output-to-all", "output-to-one"])
async def test_delta_on_an_opened_share(
    n: int, cheater: int, p: int, occurrence: int, autojump_clock: Any
) -> None:
    cheat = Cheat(net=lambda net: CheatNet(net, get_field(p), ("share", occurrence), add_delta(1)))
    res, sessions = await run_cheat(n, p, cheater, cheat)
    check_aborted(res, sessions, n, cheater, cheat, MacCheckError)


@pytest.mark.parametrize("n", [3, 5])
@pytest.mark.parametrize("occurrence", [0, 1, 2], ids=["mul-d-e", "output-to-all", "output-to-one"])
async def test_delta_on_a_share_sent_to_one_party_only(n: int, occurrence: int, autojump_clock: Any) -> None:
    cheater = n - 1
    for victim in (0, 1):
        cheat = Cheat(
            net=lambda net, v=victim: CheatNet(  # type: ignore[misc]
                net, get_field(P61), ("share", occurrence), add_delta(-5, index=2), only_to=v
            )
        )
        res, sessions = await run_cheat(n, P61, cheater, cheat)
        check_aborted(res, sessions, n, cheater, cheat, MacCheckError)


# Openings through kings (``Session._open_via_kings``; here for every opening, ``king_min = 1``): the
# cheater's messages are its shares of the other kings' ranges (to_king) and, as king of its own
# range, the sums it sends back (from_king). Occurrences count opened-share steps: the mul's d, e are
# 0 (to the kings) and 1 (from them), the output to all 2 and 3. p = 2^61 - 1 throughout: the ranges
# hold 0-2 elements, and at 16 bytes per element a 2-element range would look like a digest.
KINGS = {"king_min": 1}


@pytest.mark.parametrize("n", [3, 5])
@pytest.mark.parametrize("cheater", [0, -1], ids=["first", "last"])
async def test_openings_through_kings_compute_correctly(n: int, cheater: int, autojump_clock: Any) -> None:
    cheater %= n
    for occurrence in range(4):
        cheat = Cheat(net=lambda net, o=occurrence: CheatNet(net, get_field(P61), ("share", o), noop))  # type: ignore[misc]
        res, _ = await run_cheat(n, P61, cheater, cheat, **KINGS)
        assert cheat.hits
        assert_array_eq(res, expected(n, (cheater + 1) % n))


@pytest.mark.parametrize("n", [3, 5])
@pytest.mark.parametrize(
    "occurrence", [0, 1, 2, 3], ids=["to-king-d-e", "king-sum-d-e", "to-king-out", "king-sum-out"]
)
async def test_a_wrong_share_to_a_king_or_a_wrong_king_sum_is_caught(
    n: int, occurrence: int, autojump_clock: Any
) -> None:
    cheater = n - 1
    cheat = Cheat(net=lambda net: CheatNet(net, get_field(P61), ("share", occurrence), add_delta(3)))
    res, sessions = await run_cheat(n, P61, cheater, cheat, **KINGS)
    check_aborted(res, sessions, n, cheater, cheat, MacCheckError)


@pytest.mark.parametrize("occurrence", [1, 3], ids=["king-sum-d-e", "king-sum-out"])
async def test_a_king_that_tells_one_party_another_sum_is_caught(
    occurrence: int, autojump_clock: Any
) -> None:
    """The king of a range sends the right sum to all but one party: their views differ, and each
    party's MAC check runs on its own view."""
    n, cheater = 4, 1
    for victim in (0, 3):
        cheat = Cheat(
            net=lambda net, v=victim: CheatNet(  # type: ignore[misc]
                net, get_field(P61), ("share", occurrence), add_delta(1), only_to=v
            )
        )
        res, sessions = await run_cheat(n, P61, cheater, cheat, **KINGS)
        check_aborted(res, sessions, n, cheater, cheat, MacCheckError)


@param_case
async def test_large_delta_on_an_opened_share(n: int, cheater: int, autojump_clock: Any) -> None:
    p = P127
    cheat = Cheat(net=lambda net: CheatNet(net, get_field(p), ("share", 1), add_delta(p - 1, index=1)))
    res, sessions = await run_cheat(n, p, cheater, cheat)
    check_aborted(res, sessions, n, cheater, cheat, MacCheckError)


@param_case
async def test_cheat_in_a_program_without_outputs_is_caught_at_session_end(
    n: int, cheater: int, autojump_clock: Any
) -> None:
    async def quiet(s: Session) -> str:
        x = await s.input(XS if s.party == 0 else None, owner=0)
        await s.mul(x, x)
        return "finished"

    cheat = Cheat(net=lambda net: CheatNet(net, get_field(P61), ("share", 0), add_delta(1)))
    res = await run_each(n, P61, quiet, interceptors={cheater: cheat})
    assert cheat.hits
    assert_all_aborted(res, [i for i in range(n) if i != cheater])


# ---------------------------------------------------------------------------------------- b. MAC shares
@param_case
@param_p
@pytest.mark.parametrize(
    ("kind", "which", "call"),
    [("triple", 0, 0), ("triple", 1, 0), ("triple", 2, 0), ("mask", 0, 0), ("mask", 0, 1), ("mask", 0, 2)],
    ids=["triple-a", "triple-b", "triple-c", "mask-input-x", "mask-input-y", "mask-output"],
)
async def test_tampered_mac_share(
    n: int, cheater: int, p: int, kind: str, which: int, call: int, autojump_clock: Any
) -> None:
    cheat = Cheat(pre=lambda pre: CheatPre(pre, kind, which, "mac", 12345, call))
    res, sessions = await run_cheat(n, p, cheater, cheat)
    check_aborted(res, sessions, n, cheater, cheat, MacCheckError)


# ---------------------------------------------------------------------------------------- e. value shares
@param_case
@param_p
@pytest.mark.parametrize(
    ("kind", "which", "call"),
    [("triple", 0, 0), ("triple", 1, 0), ("triple", 2, 0), ("mask", 0, 0), ("mask", 0, 1), ("mask", 0, 2)],
    ids=["triple-a", "triple-b", "triple-c", "mask-input-x", "mask-input-y", "mask-output"],
)
async def test_tampered_value_share(
    n: int, cheater: int, p: int, kind: str, which: int, call: int, autojump_clock: Any
) -> None:
    cheat = Cheat(pre=lambda pre: CheatPre(pre, kind, which, "value", 1, call))
    res, sessions = await run_cheat(n, p, cheater, cheat)
    check_aborted(res, sessions, n, cheater, cheat, MacCheckError)


# ---------------------------------------------------------------------------------------- c. broadcasts
INPUT_OWNERS = [(n, c) for n in N_PARTIES for c in (0, 1)]


@pytest.mark.parametrize(("n", "cheater"), INPUT_OWNERS, ids=[f"n{n}-owner{c}" for n, c in INPUT_OWNERS])
@param_p
async def test_wrong_input_broadcast(n: int, cheater: int, p: int, autojump_clock: Any) -> None:
    """The owner's broadcast differs from what it used itself (n = 2: the only receiver gets it)."""
    cheat = Cheat(net=lambda net: CheatNet(net, get_field(p), ("input", 0), input_delta(7)))
    res, sessions = await run_cheat(n, p, cheater, cheat)
    check_aborted(res, sessions, n, cheater, cheat, MacCheckError)


@pytest.mark.parametrize("n", [3, 5])
@pytest.mark.parametrize("cheater", [0, 1])
@param_p
async def test_inconsistent_input_broadcast(n: int, cheater: int, p: int, autojump_clock: Any) -> None:
    """Different corrections to different parties: the broadcast-consistency digest must catch it."""
    others = tuple(j for j in range(n) if j != cheater)
    cheat = Cheat(net=lambda net: CheatNet(net, get_field(p), ("input", 0), input_delta(1, others[:1])))
    res, sessions = await run_cheat(n, p, cheater, cheat)
    check_aborted(res, sessions, n, cheater, cheat, MacCheckError)


@pytest.mark.parametrize("n", N_PARTIES)
async def test_input_broadcast_with_another_shape(n: int, autojump_clock: Any) -> None:
    """Same elements, different shape to (some) parties: the shape is part of what is broadcast."""
    cheat = Cheat(
        net=lambda net: CheatNet(net, get_field(P61), ("input", 0), lambda f, to, m: [[1, 3], m[1]])
    )
    res, sessions = await run_cheat(n, P61, 0, cheat)
    check_aborted(res, sessions, n, 0, cheat, MacCheckError)


# ---------------------------------------------------------------------------------------- d. commitments
@param_case
@param_p
@pytest.mark.parametrize(
    ("target", "mutation"),
    [
        (("coin-open", 0), flip(1)),
        (("coin-open", 2), flip(0)),
        (("sigma-open", 0), flip(1)),
        (("sigma-open", 1), flip(0)),
        (("sigma-open", 2), flip(1)),
        (("commit", 0), replace(os.urandom(32))),
        (("commit", 3), replace(bytes(32))),
    ],
    ids=["coin-data", "coin-nonce", "sigma-data", "sigma-nonce", "last-sigma", "coin-commit", "sigma-commit"],
)
async def test_opening_a_commitment_to_another_value(
    n: int, cheater: int, p: int, target: tuple[str, int], mutation: Mutation, autojump_clock: Any
) -> None:
    cheat = Cheat(net=lambda net: CheatNet(net, get_field(p), target, mutation))
    res, sessions = await run_cheat(n, p, cheater, cheat)
    check_aborted(res, sessions, n, cheater, cheat, CommitmentError)


@pytest.mark.parametrize("n", [3, 5])
async def test_opening_a_commitment_differently_to_one_party(n: int, autojump_clock: Any) -> None:
    cheat = Cheat(net=lambda net: CheatNet(net, get_field(P61), ("sigma-open", 0), flip(1), only_to=1))
    res, sessions = await run_cheat(n, P61, n - 1, cheat)
    check_aborted(res, sessions, n, n - 1, cheat, CommitmentError)


# ---------------------------------------------------------------------------------------- f. garbage
def _share_garbage() -> dict[str, Mutation]:
    return {
        "short": lambda f, to, m: m[:-1],
        "one-element-short": lambda f, to, m: m[: -f.elem_bytes],
        "one-element-long": lambda f, to, m: m + bytes(f.elem_bytes),
        "empty": replace(b""),
        "str": replace("garbage"),
        "int": replace(12345),
        "none": replace(None),
        "bool": replace(True),
        "list": lambda f, to, m: [m],
        "map": lambda f, to, m: {"share": m},
        "all-ones": lambda f, to, m: b"\xff" * len(m),
        "p-itself": non_canonical,
        # in-process transports hand objects over as they are: bytes-likes that are not flat bytes
        "memoryview-u64-short": lambda f, to, m: memoryview(np.frombuffer(m, dtype="<u8")[:-1]),
        "numpy-array": lambda f, to, m: np.frombuffer(m, dtype="<u8").reshape(f.words, -1),
    }


SHARE_GARBAGE = _share_garbage()


@param_case
@param_p
@pytest.mark.parametrize("garbage", list(SHARE_GARBAGE), ids=list(SHARE_GARBAGE))
async def test_garbage_for_an_opened_share(
    n: int, cheater: int, p: int, garbage: str, autojump_clock: Any
) -> None:
    cheat = Cheat(net=lambda net: CheatNet(net, get_field(p), ("share", 0), SHARE_GARBAGE[garbage]))
    res, sessions = await run_cheat(n, p, cheater, cheat)
    check_aborted(res, sessions, n, cheater, cheat, ProtocolError)


async def test_non_contiguous_memoryview_for_an_opened_share(autojump_clock: Any) -> None:
    """In-process transports pass payload objects as they are; a strided view must be a ProtocolError."""
    strided = lambda f, to, m: memoryview(np.frombuffer(m + m, dtype=np.uint8)[::2])  # noqa: E731
    cheat = Cheat(net=lambda net: CheatNet(net, get_field(P61), ("share", 0), strided))
    res, sessions = await run_cheat(3, P61, 0, cheat)
    check_aborted(res, sessions, 3, 0, cheat, ProtocolError)


@pytest.mark.parametrize("n", [3, 5])
@pytest.mark.parametrize("occurrence", [0, 1, 2])
async def test_garbage_to_one_party_only(n: int, occurrence: int, autojump_clock: Any) -> None:
    """Only party 1 sees the garbage; the others must hear about its abort and not wait forever."""
    cheat = Cheat(
        net=lambda net: CheatNet(net, get_field(P61), ("share", occurrence), replace(b"junk"), only_to=1)
    )
    res, sessions = await run_cheat(n, P61, 0, cheat, to=2)
    check_aborted(res, sessions, n, 0, cheat, ProtocolError)


INPUT_GARBAGE: dict[str, Mutation] = {
    "not-a-list": replace(b"xx"),
    "arity-1": lambda f, to, m: [m[0]],
    "arity-3": lambda f, to, m: [m[0], m[1], 0],
    "shape-str": lambda f, to, m: ["3", m[1]],
    "shape-negative": lambda f, to, m: [[-3], m[1]],
    "shape-bool": lambda f, to, m: [[True, 3], m[1]],
    "shape-float": lambda f, to, m: [[3.0], m[1]],
    "shape-huge": lambda f, to, m: [[2**40], m[1]],
    "shape-too-many-dims": lambda f, to, m: [[1] * 9 + [3], m[1]],
    "shape-too-few-elements": lambda f, to, m: [[2], m[1]],
    "payload-short": lambda f, to, m: [m[0], m[1][:-1]],
    "payload-str": lambda f, to, m: [m[0], "abc"],
    "payload-out-of-range": lambda f, to, m: [m[0], b"\xff" * len(m[1])],
}


@pytest.mark.parametrize("n", N_PARTIES)
@pytest.mark.parametrize("garbage", list(INPUT_GARBAGE), ids=list(INPUT_GARBAGE))
async def test_garbage_input_broadcast(n: int, garbage: str, autojump_clock: Any) -> None:
    cheat = Cheat(net=lambda net: CheatNet(net, get_field(P127), ("input", 0), INPUT_GARBAGE[garbage]))
    res, sessions = await run_cheat(n, P127, 1, cheat)
    check_aborted(res, sessions, n, 1, cheat, ProtocolError)


COMMIT_GARBAGE: list[tuple[tuple[str, int], Mutation, str]] = [
    (("commit", 0), replace(bytes(31)), "digest-31-bytes"),
    (("commit", 1), replace("digest"), "digest-str"),
    (("commit", 2), replace(None), "digest-none"),
    (("coin-open", 0), lambda f, to, m: [m[0]], "opening-arity-1"),
    (("coin-open", 0), lambda f, to, m: [m[0][:-1], m[1]], "nonce-short"),
    (("coin-open", 1), lambda f, to, m: [m[0], m[1][:-1]], "seed-short"),
    (("sigma-open", 0), lambda f, to, m: [m[0], "sigma"], "sigma-str"),
    (("sigma-open", 0), lambda f, to, m: m[0], "opening-bytes"),
]


@pytest.mark.parametrize("n", N_PARTIES)
@pytest.mark.parametrize(
    ("target", "mutation"), [c[:2] for c in COMMIT_GARBAGE], ids=[c[2] for c in COMMIT_GARBAGE]
)
async def test_garbage_in_commitments(
    n: int, target: tuple[str, int], mutation: Mutation, autojump_clock: Any
) -> None:
    cheat = Cheat(net=lambda net: CheatNet(net, get_field(P61), target, mutation))
    res, sessions = await run_cheat(n, P61, n - 1, cheat)
    check_aborted(res, sessions, n, n - 1, cheat, None)


# ---------------------------------------------------------------------------------------- duplicates
@pytest.mark.parametrize("n", [2, 3])
async def test_two_different_messages_for_one_step(n: int, autojump_clock: Any) -> None:
    """An equivocating sender: the honest share, then a different one for the same step.

    Whichever copy the receiver keeps, no honest party may hang, and the outcome must be either the
    correct result at every honest party or an abort at every honest party.
    """
    cheat = Cheat(net=lambda net: CheatNet(net, get_field(P61), ("share", 0), add_delta(1), duplicate=True))
    res, _ = await run_cheat(n, P61, 0, cheat)
    assert cheat.hits
    honest = [res[i] for i in range(1, n)]
    if all(isinstance(r, AbortError) for r in honest):
        return
    exp = expected(n, 1)
    for i in range(1, n):
        assert_array_eq(res[i], exp[i], f"party {i}")


# ---------------------------------------------------------------------------------------- g. crashes
class Boom(RuntimeError):
    pass


def raise_on_send(f: PrimeField, to: int, msg: Any) -> Any:
    raise Boom("the cheater's process fell over")


@param_case
@pytest.mark.parametrize(
    "target",
    [("input", 0), ("share", 0), ("commit", 0), ("coin-open", 1), ("share", 2), ("sigma-open", 2)],
    ids=["input", "mul", "first-commit", "coin", "private-output", "last-sigma"],
)
async def test_a_party_that_raises_mid_protocol(
    n: int, cheater: int, target: tuple[str, int], autojump_clock: Any
) -> None:
    if target[0] == "input" and cheater not in (0, 1):
        target = ("share", 1)
    cheat = Cheat(net=lambda net: CheatNet(net, get_field(P61), target, raise_on_send))
    res, _ = await run_cheat(n, P61, cheater, cheat)
    assert isinstance(res[cheater], Boom), res[cheater]
    assert_all_aborted(res, [i for i in range(n) if i != cheater])


@param_case
async def test_a_program_that_raises_between_operations(n: int, cheater: int, autojump_clock: Any) -> None:
    async def flaky(s: Session) -> Any:
        x = await s.input(XS if s.party == 0 else None, owner=0)
        first = await s.output(x)
        if s.party == cheater:
            raise Boom("bug in the cheater's program")
        return first, await s.output(await s.mul(x, x))

    res = await run_each(n, P61, flaky)
    assert isinstance(res[cheater], Boom)
    assert_all_aborted(res, [i for i in range(n) if i != cheater])


@param_case
async def test_a_cancelled_party_aborts_the_others(n: int, cheater: int, autojump_clock: Any) -> None:
    async def cancelled(s: Session) -> Any:
        x = await s.input(XS if s.party == 0 else None, owner=0)
        if s.party == cheater:
            with trio.CancelScope() as cs:
                cs.cancel()
                await s.output(x)
            raise Boom("gave up after a cancelled output")
        return await s.output(x)

    res = await run_each(n, P61, cancelled)
    assert_all_aborted(res, [i for i in range(n) if i != cheater])


@pytest.mark.parametrize("p", [P61])
async def test_abort_reason_names_the_culprit(p: int, autojump_clock: Any) -> None:
    cheat = Cheat(net=lambda net: CheatNet(net, get_field(p), ("share", 0), replace(b"x")))
    res, _ = await run_cheat(3, p, 2, cheat)
    received = [r for r in res[:2] if isinstance(r, ProtocolError)]
    assert received and all(r.culprit == 2 for r in received)


# ---------------------------------------------------------------------------------------- honest traffic
class Recorder(PassThrough):
    """Records everything one party sends (no cheating): to look at the honest traffic."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, int, Any]] = []

    def wrap_net(self, session: str, net: Net) -> Net:
        rec = self

        class RecNet:
            party, n = net.party, net.n

            async def send(self, to: int, step: int, msg: Any) -> None:
                rec.sent.append((to, step, plain(msg)))
                await net.send(to, step, msg)

            async def recv(self, frm: int, step: int) -> Any:
                return await net.recv(frm, step)

        return RecNet()


async def test_every_mac_check_tosses_a_fresh_coin(autojump_clock: Any) -> None:
    """FRESCO reused one coin for all checks; here each check's seed contribution must be new."""
    rec = Recorder()
    sessions: dict[int, Session] = {}
    res = await run_each(3, P61, prog, 2, sessions, interceptors={1: rec})
    assert_array_eq(res, expected(3, 2))
    seeds = {m[1] for to, _, m in rec.sent if to == 0 and classify(m) == "coin-open"}
    assert sessions[1].stats["mac_checks"] == 3
    assert len(seeds) == 3
    # a second session at the same party draws new seeds again
    res = await run_each(3, P61, prog, 2, sessions, interceptors={1: rec})
    seeds2 = {m[1] for to, _, m in rec.sent if to == 0 and classify(m) == "coin-open"}
    assert len(seeds2) == 6


async def test_mac_shares_and_key_share_never_leave_a_party(autojump_clock: Any) -> None:
    rec = Recorder()
    sessions: dict[int, Session] = {}
    await run_each(2, P61, prog, 1, sessions, interceptors={0: rec})
    f = get_field(P61)
    alpha = f.to_bytes(sessions[0].ctx.alpha)
    blob = b"".join(
        m if isinstance(m, bytes) else b"".join(x for x in m if isinstance(x, bytes)) for _, _, m in rec.sent
    )
    assert alpha not in blob
