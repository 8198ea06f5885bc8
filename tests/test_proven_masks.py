"""Loose edaBits from range proofs (``protocols.mascot.masks``): what the offline service makes for the
``loose:<k>`` pools now, instead of the cut-and-choose.

Honest runs (MASCOT and a binary party set, p127 at 2 and 3 parties, p61 at 2) reconstruct ``[R]``
and the bits from every party's raw shares with every MAC checked directly, and require ``R mod 2^k``
= the bits, ``R < n 2^(k + HIDE)`` and a high part that varies. Cheats, each caught by every honest
party with no honest generator returning, and each wrapper with no change giving good material:

| the cheater's inputs | caught by |
|---|---|
| one binary bit flipped (its field bit right) | the parity checks |
| one field bit flipped (its binary bit right) | the parity checks |
| a field "bit" 2 where the binary bit is 0 (same parity) | the range proof |
| a high-part or a check-pad digit of 16 | the range proof |
| a wrong share of the opened field parity values | the MAC check |
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest
import trio
from test_binary import deltas_of, held, reconstruct
from test_binary import setup_prog as binary_setup
from test_dabits import field_held
from test_mascot import alphas_of, run_with
from test_mascot import reconstruct as field_reconstruct

from protocols.binary import BinaryParty, BitSession
from protocols.binary.edabits import HIDE
from protocols.errors import AbortError, MacCheckError
from protocols.field import P61, P127, get_field
from protocols.mascot import MascotParty
from protocols.mascot.masks import CHECKS, generate_proven_loose
from protocols.online import Session

pytestmark = pytest.mark.slow  # MASCOT: left out of the fast subset

Tamper = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


async def both_setup(s: Session, mparties: Sequence[MascotParty], bparties: Sequence[BinaryParty]) -> bool:
    await mparties[s.party].setup(s)
    return await binary_setup(s, bparties)


async def masks_prog(
    s: Session,
    mparties: Sequence[MascotParty],
    bparties: Sequence[BinaryParty],
    count: int,
    k: int,
    cheater: int,
    tamper: Tamper | None,
    returned: dict[int, Any],
) -> Any:
    m = mparties[s.party]
    bs = BitSession(s, bparties[s.party])
    r, bits = await generate_proven_loose(
        s, bs, m.cope_send, m.cope_recv, count, k, tamper=tamper if s.party == cheater else None
    )
    returned[s.party] = True
    await bs.finish()
    return field_held(r), held(bits), s.field.to_ints(s.ctx.alpha)[0]


async def run_masks(
    p: int,
    n: int,
    count: int,
    k: int,
    cheater: int = 0,
    tamper: Tamper | None = None,
    interceptors: Any = None,
    mparties: list[MascotParty] | None = None,
) -> tuple[list[Any], dict[int, Any], list[MascotParty], list[BinaryParty]]:
    f = get_field(p)
    mparties = mparties or [MascotParty(f, i, n) for i in range(n)]
    bparties = [BinaryParty(i, n) for i in range(n)]
    returned: dict[int, Any] = {}
    setup, res = await run_with(
        mparties,
        [
            (both_setup, (mparties, bparties)),
            (masks_prog, (mparties, bparties, count, k, cheater, tamper, returned)),
        ],
        interceptors,
    )
    assert setup == [True] * n, setup
    return res, returned, mparties, bparties


def check_masks(
    res: list[Any],
    mparties: Sequence[MascotParty],
    bparties: Sequence[BinaryParty],
    p: int,
    count: int,
    k: int,
) -> None:
    for i, r in enumerate(res):
        assert not isinstance(r, BaseException), f"party {i} failed: {r!r}"
    n = len(res)
    f = get_field(p)
    big_r = field_reconstruct(f, [r[0] for r in res], alphas_of(mparties), "R")
    bits = reconstruct([r[1] for r in res], deltas_of(bparties), "bits").reshape(count, k)
    low = [sum(int(b) << j for j, b in enumerate(row)) for row in bits]
    assert [v % (1 << k) for v in big_r] == low
    assert all(0 <= v < n << (k + HIDE) for v in big_r)
    highs = {v >> k for v in big_r}
    assert len(highs) > count // 2  # the part above k varies: it hides a masked opening's carries
    assert abs(np.mean(bits) - 0.5) < 0.1


@pytest.mark.parametrize(
    ("p", "n", "k"), [(P127, 3, 40), (P127, 2, 40), (P61, 2, 12)], ids=["p127-n3", "p127-n2", "p61-n2"]
)
async def test_proven_loose_edabits_are_loose_edabits(p: int, n: int, k: int) -> None:
    count = 200
    res, returned, mp, bp = await run_masks(p, n, count, k)
    assert sorted(returned) == list(range(n))
    check_masks(res, mp, bp, p, count, k)


def flip_binary(bits: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    bits[7] ^= 1
    return bits, values


def flip_field(bits: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    values[7] ^= 1
    return bits, values


def two_for_zero(bits: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    e = int(np.flatnonzero(bits[:-CHECKS] == 0)[0])
    values[e] = 2  # even: the parity checks cannot see it
    return bits, values


def digit_sixteen(where: str) -> Tamper:
    def tamper(bits: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        values[bits.size if where == "high" else -1] = 16
        return bits, values

    return tamper


CASES: dict[str, tuple[Tamper, str]] = {
    "a binary bit flipped": (flip_binary, "differ from its binary bits"),
    "a field bit flipped": (flip_field, "differ from its binary bits"),
    "a field 2 for a binary 0": (two_for_zero, "digit check"),
    "a high digit of 16": (digit_sixteen("high"), "digit check"),
    "a pad digit of 16": (digit_sixteen("pad"), "digit check"),
}


@pytest.mark.parametrize("name", list(CASES))
async def test_a_cheater_in_proven_loose_edabits_is_caught(name: str) -> None:
    tamper, text = CASES[name]
    n, cheater = 3, 2
    res, returned, _, _ = await run_masks(P127, n, 50, 20, cheater, tamper)
    honest = [i for i in range(n) if i != cheater]
    assert all(isinstance(res[i], AbortError) for i in honest), res
    assert not set(returned) & set(honest), "an honest generator returned despite the cheat"
    assert any(isinstance(r, AbortError) and text in str(r) for r in res), res


@pytest.mark.parametrize("name", list(CASES))
async def test_proven_loose_control_no_op_tamper_gives_good_material(name: str) -> None:
    calls: list[int] = []

    def noop(bits: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        CASES[name][0](bits.copy(), values.copy())  # the cheat's own code runs, on copies
        calls.append(1)
        return bits, values

    res, _, mp, bp = await run_masks(P127, 3, 50, 20, 2, noop)
    assert calls
    check_masks(res, mp, bp, P127, 50, 20)


async def test_a_wrong_share_of_the_opened_field_parities_is_caught() -> None:
    """The cheater's share of the field parity values (the one opening of ``n * CHECKS`` elements)
    one larger: the MAC check."""
    import test_offline_cheating as oc

    f = get_field(P127)
    n, cheater = 3, 2
    size = n * CHECKS * f.elem_bytes

    def factory(parties: Sequence[MascotParty], c: int, victim: int, live: bool) -> oc.Rule:
        return oc.Rule(
            oc.every(oc.session_round, lambda w: isinstance(w.msg, bytes) and len(w.msg) == size),
            oc.add_at(lambda t: [0], 1),
        )

    mparties = [MascotParty(f, i, n) for i in range(n)]
    cheat = oc.CheatAt(mparties, cheater, factory(mparties, cheater, 0, True), session=1)
    res, returned, _, _ = await run_masks(P127, n, 50, 20, interceptors={cheater: cheat}, mparties=mparties)
    assert cheat.hits
    assert all(isinstance(res[i], AbortError) for i in (0, 1)), res
    assert any(isinstance(r, MacCheckError) for r in res), res
    assert not set(returned) & {0, 1}


def test_the_pool_is_made_this_way_where_mascot_makes_it() -> None:
    """The ``loose`` kind's generator takes this path when the batch's field material has it."""
    from protocols.preprocessing import mixed

    called: list[tuple[int, int]] = []

    class Material:
        async def proven_loose_edabits(self, bs: Any, n: int, k: int) -> Any:
            called.append((n, k))
            return "made"

    class S:
        pre = Material()

    out = trio.run(mixed.KINDS["loose"].generate, S(), None, 5, 9)  # type: ignore[arg-type]
    assert out == "made" and called == [(5, 9)]


async def test_large_batches_run_in_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch above ``MAX_SLICE_BITS`` is made slice by slice (each with its own checks) and joined."""
    import protocols.mascot.masks as masks_module

    monkeypatch.setattr(masks_module, "MAX_SLICE_BITS", 600)  # 30 items of 20 bits per slice
    res, returned, mp, bp = await run_masks(P127, 3, 100, 20)
    assert sorted(returned) == [0, 1, 2]
    check_masks(res, mp, bp, P127, 100, 20)
