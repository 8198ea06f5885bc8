"""Ranged randoms (``protocols.mascot.ranged``) and the wide-rounding truncation built on them.

MASCOT: the output is a sum of one uniform ``W``-bit value per party (range, MACs, spread), and a
cheating party is caught at every honest party, whichever check it attacks: digits that are no digits
(the QuickSilver range check), a carry or decomposition that does not add up to its committed value (the
linear check), a tampered proof, a false complaint, the opened check value, the coin. Control runs
with the same wrappers and no change give good material. Online: ``wide_rounding`` truncations
against plaintext (the error within ``n / 2 + 1`` units, centred), only ranged randoms drawn, and
tampered ranged material caught by the MAC check.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
import test_offline_cheating as oc
import trio
from helpers import Cheat, assert_all_aborted, run_each, tamper
from test_mascot import alphas_of, reconstruct, run_with

from protocols.comparison import trunc_steps
from protocols.errors import CommitmentError, MacCheckError
from protocols.field import P61, P127, get_field
from protocols.intercept import Forwarding
from protocols.mascot import MascotParty
from protocols.mascot.ranged import (
    DEGREE,
    add_mod_pow2,
    bit_planes,
    decompose,
    digit_widths,
    generate_ranged,
    max_width,
    uniform_below_pow2,
)
from protocols.online import Session
from protocols.preprocessing import mixed
from protocols.prg import PRG
from protocols.rounds import ranged_available, ranged_widths, run, wide_rounding

WIDTH = 20
oc.GENERATORS["ranged"] = lambda m, s, count, cheater: m.ranged_randoms(s, count, WIDTH)


# ---------------------------------------------------------------------------------------- helpers
def test_add_mod_pow2_and_planes_match_python_ints() -> None:
    prg = PRG(b"\x01" * 16)
    for width, words in [(1, 1), (20, 1), (60, 1), (63, 2), (64, 2), (65, 2), (100, 2), (124, 2)]:
        a = uniform_below_pow2(prg, 200, width, words)
        b = uniform_below_pow2(prg, 200, width, words)
        ai = [sum(int(a[w, e]) << (64 * w) for w in range(words)) for e in range(200)]
        bi = [sum(int(b[w, e]) << (64 * w) for w in range(words)) for e in range(200)]
        assert max(ai) < 1 << width and max(ai) >= 1 << max(0, width - 3)  # uniform below 2^width
        r, carry = add_mod_pow2(a, b, width)
        ri = [sum(int(r[w, e]) << (64 * w) for w in range(words)) for e in range(200)]
        assert ri == [(x + y) % (1 << width) for x, y in zip(ai, bi, strict=True)]
        assert carry.tolist() == [(x + y) >> width for x, y in zip(ai, bi, strict=True)]
        planes = bit_planes(r, width)
        assert [sum(int(planes[j, e]) << j for j in range(width)) for e in range(200)] == ri
        rows = decompose(a, b, width)
        widths = digit_widths(width)
        assert rows.shape == (len(widths), 200) and rows[-1].tolist() == carry.tolist()
        assert all(int(rows[i].max()) < 1 << w for i, w in enumerate(widths))
        offsets = np.cumsum([0, *widths[:-1]])
        assert [
            sum(int(rows[i, e]) << int(offsets[i]) for i in range(len(widths) - 1)) for e in range(200)
        ] == ri


def test_widths() -> None:
    f127, f61 = get_field(P127), get_field(P61)
    assert max_width(f127, 3) == 123 and max_width(f61, 2) == 57
    m, wh = ranged_widths(f127, 3, 64, 20, 40) or (0, 0)
    assert m == 20 and wh >= 64 - 20 + 40 + 1 and wh % 8 == 0
    assert (1 << 64) + 3 * (1 << (m + wh)) < P127
    assert ranged_widths(f61, 3, 60, 20, 40) is None  # p61 leaves no room for a statistical mask


def test_pool_names_are_validated() -> None:
    f = get_field(P127)
    assert mixed.invalid("ranged:40", 100, f, 3) is None
    assert "allows 1 to 123" in (mixed.invalid("ranged:124", 100, f, 3) or "")
    assert mixed.invalid("ranged:040", 100, f, 3) == "malformed kind"
    assert mixed.item_bytes(f, "ranged:40") == 2 * f.elem_bytes


# ---------------------------------------------------------------------------------------- MASCOT
def check_ranged(run_: oc.Run, width: int) -> list[int]:
    """Control runs: every party succeeded, MACs right, every value below ``n 2^width``."""
    res = run_.results
    for i, r in enumerate(res):
        assert not isinstance(r, BaseException), f"party {i} failed in a control run: {r!r}"
    f = run_.parties[0].field
    n = len(run_.parties)
    (vals,) = [reconstruct(f, [res[i][0][0] for i in range(n)], alphas_of(run_.parties), "ranged")]
    assert all(0 <= v < n << width for v in vals)
    return vals


@pytest.mark.parametrize(("p", "n"), [(P127, 3), (P61, 2), (P127, 4)], ids=["p127-n3", "p61-n2", "p127-n4"])
async def test_ranged_randoms_are_sums_of_uniform_contributions(p: int, n: int) -> None:
    count, width = 3000, 12
    f = get_field(p)
    parties = [MascotParty(f, i, n) for i in range(n)]

    async def prog(s: Session) -> Any:
        await parties[s.party].setup(s)
        r = await parties[s.party].ranged_randoms(s, count, width)
        return (r.value.copy(), r.mac.copy()), (await s.output(r)).tolist()

    (res,) = await run_with(parties, [(prog, ())])
    for i, r in enumerate(res):
        assert not isinstance(r, BaseException), f"party {i}: {r!r}"
    vals = reconstruct(f, [r[0] for r in res], alphas_of(parties), "ranged")
    assert [int(v) % p for v in res[0][1]] == vals
    arr = np.asarray(vals, dtype=np.float64) / 2**width
    assert arr.min() >= 0 and arr.max() < n
    # the sum of n uniforms on [0, 1): mean n / 2, variance n / 12, and its low bits uniform
    assert abs(arr.mean() - n / 2) < 0.05 and abs(arr.var() - n / 12) < 0.03
    assert abs(np.mean([v & 1 for v in vals]) - 0.5) < 0.05
    assert abs(np.mean([v % (1 << width) for v in vals]) / 2**width - 0.5) < 0.03


async def test_bad_widths_are_refused_before_anything_is_sent() -> None:
    f = get_field(P127)
    parties = [MascotParty(f, i, 3) for i in range(3)]

    async def prog(s: Session, width: int, count: int) -> Any:
        return await generate_ranged(s, {}, {}, count, width)

    for width, count in [(0, 5), (124, 5), (10, -1)]:
        (res,) = await run_with(parties, [(prog, (width, count))])
        assert all(isinstance(r, ValueError) for r in res), res
    (res,) = await run_with(parties, [(prog, (10, 0))])
    assert all(r.size == 0 for r in res)


def cheat_prepare(bad: Any) -> oc.PrepareFactory:
    """The cheater's step 3 replaced by ``bad(rows, width) -> rows`` on the honest digit rows (``live``:
    else the honest)."""

    def factory(victim: int, live: bool, hits: list[int]) -> oc.Prepare:
        def prepare(m: MascotParty, s: Session) -> None:
            def step3(v: np.ndarray, rho: np.ndarray, width: int) -> np.ndarray:
                hits.append(1)
                rows = decompose(v, rho, width)
                return bad(rows, width) if live else rows

            async def ranged(s: Session, count: int, width: int) -> Any:
                return await generate_ranged(s, m.cope_send, m.cope_recv, count, width, decompose=step3)

            m.ranged_randoms = ranged  # type: ignore[method-assign]

        return prepare

    return factory


def non_digit(rows: np.ndarray, width: int) -> np.ndarray:
    """Digit 0 of an item raised by the base and digit 1 lowered by one: the same value (the linear
    check passes), with a row that holds no digit."""
    out = rows.copy()
    e = int(np.flatnonzero(rows[1] > 0)[0])
    out[0, e], out[1, e] = rows[0, e] + DEGREE, rows[1, e] - 1
    return out


def wrong_carry(rows: np.ndarray, width: int) -> np.ndarray:
    """The carry of one item flipped: ``R`` off by ``2^W`` (or below 0)."""
    out = rows.copy()
    out[-1, 3] ^= 1
    return out


def another_value(rows: np.ndarray, width: int) -> np.ndarray:
    """Well-formed digits of another value than the committed one (digit 0 of an item moved by one)."""
    out = rows.copy()
    out[0, 5] ^= 1
    return out


PROOF_STEP: dict[tuple[int, int], int] = {}


def is_verdict(w: oc.Wire) -> bool:
    return isinstance(w.msg, (bytes, bytearray)) and len(w.msg) == 1


async def proof_step(p: int, n: int) -> int:
    """The session round of the proofs: the one before the verdicts (found by a recording run; a
    coin toss's 32-byte messages look like two p127 elements, so the size alone cannot tell)."""
    if (p, n) not in PROOF_STEP:
        seen: list[int] = []

        def record(parties: Sequence[MascotParty], cheater: int, victim: int, live: bool) -> oc.Rule:
            return oc.Rule(
                oc.every(oc.session_round, is_verdict), lambda net, w: seen.append(w.step) or w.msg
            )

        await oc.run_case(oc.Case(rule=record, kind="ranged"), p, n, n - 1, live=False)
        PROOF_STEP[(p, n)] = seen[0] - 1
    return PROOF_STEP[(p, n)]


def proof_rule(parties: Sequence[MascotParty], cheater: int, victim: int, live: bool) -> oc.Rule:
    """The cheater's proof (its ``DEGREE`` coefficients) to the victim, the second one larger."""
    f = parties[0].field
    step = PROOF_STEP[(f.modulus, len(parties))]
    return oc.Rule(
        oc.every(lambda w: w.step == step, oc.n_elements(f, DEGREE), lambda w: w.peer == victim),
        oc.add_at(lambda t: [1], 1 if live else 0),
    )


def verdict_rule(parties: Sequence[MascotParty], cheater: int, victim: int, live: bool) -> oc.Rule:
    """The cheater complains (its one-byte verdict turned into a failure)."""

    def mutate(net: oc.CheatNet, w: oc.Wire) -> Any:
        return b"\x00" if live else w.msg

    return oc.Rule(oc.every(oc.session_round, is_verdict), mutate)


def linear_value_rule(parties: Sequence[MascotParty], cheater: int, victim: int, live: bool) -> oc.Rule:
    """The cheater's share of the opened linear-check values (``n`` elements, one per owner)."""
    f = parties[0].field
    n = len(parties)
    return oc.Rule(
        oc.every(oc.session_round, oc.n_elements(f, n)), oc.add_at(lambda t: [0], 1 if live else 0)
    )


RANGED_CASES: dict[str, oc.Case] = {
    "a row that is no digit": oc.Case(prepare=cheat_prepare(non_digit), kind="ranged", text="digit check"),
    "a wrong carry": oc.Case(prepare=cheat_prepare(wrong_carry), kind="ranged", text="do not add up"),
    "digits of another value": oc.Case(
        prepare=cheat_prepare(another_value), kind="ranged", text="do not add up"
    ),
    "a tampered proof": oc.Case(rule=proof_rule, kind="ranged", text="digit check"),
    "a false complaint": oc.Case(rule=verdict_rule, kind="ranged", text="reports a failed digit check"),
    "the opened check value": oc.Case(rule=linear_value_rule, kind="ranged", detector=MacCheckError),
    "the coin": oc.Case(rule=oc.coin_rule(0, 1), kind="ranged", detector=CommitmentError),
}


@pytest.mark.parametrize(("p", "n"), [(P127, 3), (P61, 2)], ids=["p127-n3", "p61-n2"])
@pytest.mark.parametrize("name", list(RANGED_CASES))
async def test_a_cheater_in_ranged_randoms_is_caught(p: int, n: int, name: str) -> None:
    case = RANGED_CASES[name]
    await proof_step(p, n)
    run_ = await oc.run_case(case, p, n, n - 1)
    oc.check_aborted(run_, n - 1, case)


@pytest.mark.parametrize("name", list(RANGED_CASES))
async def test_ranged_control_no_op_wrappers_give_good_material(name: str) -> None:
    case = RANGED_CASES[name]
    await proof_step(P127, 3)
    run_ = await oc.run_case(case, P127, 3, 2, live=False)
    assert run_.hits, "the no-op wrapper never fired: its target is wrong"
    check_ranged(run_, WIDTH)


# ---------------------------------------------------------------------------------------- online
N_VALUES, K, M = 6000, 60, 20
VALUES = np.random.default_rng(7).integers(-(2**57), 2**57, N_VALUES)


async def trunc_prog(s: Session, wide: bool) -> Any:
    x = await s.input(VALUES if s.party == 0 else None, owner=0)
    if wide:
        with wide_rounding():
            y = await run(s, trunc_steps(x, K, M))
    else:
        y = await run(s, trunc_steps(x, K, M))
    return (await s.output(y)).tolist(), ranged_available(s)


class Drawn(Forwarding):
    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.kinds: list[str] = []

    def drawn(self, kind: str, n: int, owner: int | None = None) -> None:
        self.kinds.append(kind)


@pytest.mark.parametrize("n", [2, 3, 4], ids=lambda n: f"n{n}")
async def test_wide_rounding_is_within_n_half_plus_one_units_and_centred(n: int) -> None:
    watch: dict[int, Drawn] = {}

    def keep(pre: Any) -> Any:
        watch[0] = Drawn(pre)
        return watch[0]

    res = await run_each(
        n, P127, trunc_prog, True, session_options={"comparison": "auto"}, interceptors={0: Cheat(pre=keep)}
    )
    got = np.asarray(res[0][0], dtype=np.float64)
    assert res[0][1] and all(r == res[0] for r in res)
    err = got - VALUES / 2.0**M
    assert np.abs(err).max() < n / 2 + 1
    assert np.abs(err).max() > 1  # the spread is wider than one unit: the ranged path ran
    assert abs(err.mean()) < 0.04  # centred (plain rounding's standard error here is 0.005)
    assert set(watch[0].kinds) == {"input_masks", "ranged_randoms"}  # no field bits, no loose edaBit


async def test_outside_wide_rounding_truncation_stays_within_one_unit() -> None:
    res = await run_each(3, P127, trunc_prog, False, session_options={"comparison": "auto"})
    err = np.asarray(res[0][0], dtype=np.float64) - VALUES / 2.0**M
    assert np.abs(err).max() < 1


async def test_wide_rounding_without_ranged_material_falls_back() -> None:
    """A field-path session has no ranged randoms: the same request rounds as before."""
    res = await run_each(3, P127, trunc_prog, True, session_options={"comparison": "field"})
    assert not res[0][1]
    err = np.asarray(res[0][0], dtype=np.float64) - VALUES / 2.0**M
    assert np.abs(err).max() < 1


class TamperRanged(Forwarding):
    """The cheater's ranged randoms with one share (value or MAC) off."""

    def __init__(self, inner: Any, part: str) -> None:
        super().__init__(inner)
        self.part, self.hits = part, 0

    async def ranged_randoms(self, n: int, width: int) -> Any:
        self.hits += 1
        return tamper(await self.inner.ranged_randoms(n, width), 3, self.part)  # type: ignore[attr-defined]


@pytest.mark.parametrize("part", ["value", "mac"])
async def test_tampered_ranged_material_is_caught_online(part: str) -> None:
    cheat = Cheat(pre=lambda pre: TamperRanged(pre, part))
    res = await run_each(
        3, P127, trunc_prog, True, session_options={"comparison": "auto"}, interceptors={2: cheat}
    )
    assert cheat.hits
    assert_all_aborted(res, [0, 1])


def test_the_dealer_draws_sums_of_party_contributions() -> None:
    async def prog(s: Session) -> Any:
        r = await s.pre.ranged_randoms(4000, 10)  # type: ignore[attr-defined]
        return (await s.output(r)).tolist()

    res = trio.run(lambda: run_each(3, P127, prog, session_options={"comparison": "auto"}))
    vals = np.asarray(res[0], dtype=np.float64) / 2**10
    assert vals.min() >= 0 and vals.max() < 3 and abs(vals.mean() - 1.5) < 0.05
