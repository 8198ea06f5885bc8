"""Loose edaBits (``protocols.binary.edabits.generate_loose_edabits``): the comparisons' masks.

Honest runs reconstruct ``[R]`` and the ``k`` low bits from every party's raw shares with every MAC
checked directly, and require ``R mod 2^k`` = the bits, ``R < n 2^(k + HIDE)``, and that the part
above ``k`` varies (it is what hides a masked opening's carries). Cheats, each caught by every honest
party with no honest generator returning:

| deviation | caught by |
|---|---|
| a private value whose field value is off by one (one item; every item) | bucket check / cut-and-choose |
| a private value off only above bit ``k`` (the part no output bit shows) | bucket check / cut-and-choose |
| a private value with one bit flipped in its binary input | bucket check / cut-and-choose |
| errors +1 on one item and -1 on others (they cancel if they meet in one bucket) | bucket check |
| a wrong carry in the sum adder or the check adder | binary MAC check |
| a flipped share in the field or binary opening of the bucket checks | field / binary MAC check |
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from test_binary import deltas_of, held, reconstruct
from test_dabits import alpha_of, assert_caught, field_held, field_reconstruct, raise_any, run_honest
from test_edabits import CHEATER, check_edabits, edabit_prog, run_installed

import protocols.binary.edabits as edabits_module
from protocols.binary import AuthBits, BinaryParty, BitSession
from protocols.binary.edabits import (
    HIDE,
    edabit_parameters,
    extra_bits,
    generate_loose_edabits,
    loose_edabit_cost,
    loose_max_bits,
)
from protocols.errors import AbortError, MacCheckError, PreprocessingError
from protocols.field import P61, P127, get_field
from protocols.online import Session
from protocols.shares import SharedArray

param_n = pytest.mark.parametrize("n", [2, 3], ids=lambda n: f"n{n}")


def test_limits_and_cost() -> None:
    f127, f61 = get_field(P127), get_field(P61)
    assert [loose_max_bits(f127, n) for n in (2, 3)] == [83, 82]
    assert [loose_max_bits(f61, n) for n in (2, 3)] == [17, 16]
    for n in (2, 3):  # a + f of two items, below 2 n 2^(k + HIDE), fits the field at the limit
        k = loose_max_bits(f127, n)
        assert 2 * n * ((1 << (k + HIDE)) - 1) < f127.modulus
    cost = loose_edabit_cost(10_000, 33, 3)
    b, c = edabit_parameters(10_000)
    assert cost["dabits"] == 0 and cost["items"] == 10_000 * b + c
    width = 33 + HIDE  # two adders for three parties (carry-save, then ripple) per item, one per check
    per_item = 2 * width
    per_check = width + extra_bits(3, width)
    assert cost["and_triples"] == cost["items"] * per_item + (b - 1) * 10_000 * per_check


# ---------------------------------------------------------------------------------------- honest
async def loose_prog(s: Session, bs: BitSession, requests: Sequence[tuple[int, int]]) -> dict[str, Any]:
    out: dict[str, Any] = {"alpha": alpha_of(s), "items": []}
    for count, k in requests:
        r, bits = await generate_loose_edabits(s, bs, count, k)
        assert r.size == count and bits.size == count * k
        out["items"].append({"field": field_held(r), "bin": held(bits)})
    return out


def check_loose(
    res: list[Any], parties: Sequence[BinaryParty], modulus: int, requests: Sequence[tuple[int, int]], n: int
) -> None:
    f = get_field(modulus)
    alphas = [r["alpha"] for r in res]
    deltas = deltas_of(parties)
    for idx, (count, k) in enumerate(requests):
        items = [r["items"][idx] for r in res]
        r = field_reconstruct(f, [it["field"] for it in items], alphas, f"loose {idx} (field)")
        bits = reconstruct([it["bin"] for it in items], deltas, f"loose {idx} (binary)")
        low = [sum(int(bits[e * k + j]) << j for j in range(k)) for e in range(count)]
        assert [v % (1 << k) for v in r] == low, f"batch {idx}: R mod 2^k differs from its bits"
        assert all(0 <= v < n << (k + HIDE) for v in r)
        if count >= 100:
            assert len({v >> k for v in r}) == count, "the hiding part repeats"
            top = sum(v >> (k - 1) & 1 for v in r)
            assert 0.3 * count < top < 0.7 * count, f"{top} of {count} with bit k - 1 set"


@param_n
@pytest.mark.parametrize("k", [1, 8, 33, 64], ids=lambda k: f"k{k}")
async def test_loose_edabits_are_right(n: int, k: int) -> None:
    requests = [(100, k), (3, k)]
    res, parties = await run_honest(n, loose_prog, requests)
    check_loose(res, parties, P127, requests, n)


@param_n
async def test_loose_edabits_at_the_field_limits(n: int) -> None:
    requests = [(20, loose_max_bits(get_field(P127), n))]
    res, parties = await run_honest(n, loose_prog, requests)
    check_loose(res, parties, P127, requests, n)
    requests = [(40, loose_max_bits(get_field(P61), n))]
    res, parties = await run_honest(n, loose_prog, requests, modulus=P61)
    check_loose(res, parties, P61, requests, n)


async def misuse_prog(s: Session, bs: BitSession) -> list[str]:
    out = []
    for count, k in ((-1, 8), (2, 0), (2, 84), (2, 1.5), (1 << 22, 33), (True, 8)):
        try:
            await generate_loose_edabits(s, bs, count, k)  # type: ignore[arg-type]
        except (TypeError, ValueError) as e:
            out.append(type(e).__name__)
    r, bits = await generate_loose_edabits(s, bs, 0, 8)
    out.append(f"{r.size} {bits.size}")
    return out


async def test_usage_errors_before_anything_is_sent() -> None:
    res, _ = await run_honest(2, misuse_prog)
    assert (
        res == [["ValueError", "ValueError", "ValueError", "TypeError", "ValueError", "TypeError", "0 0"]] * 2
    )


# ---------------------------------------------------------------------------------------- cheating
COUNT, K = 100, 8
WIDTH = K + HIDE


@dataclass
class Attack:
    private: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None
    and_flip: str | None = None  # "sum": the sum adder's first layer; "check": the check adder's last
    open_flip: str | None = None  # "check-field", "check-bits"
    detector: type[AbortError] = PreprocessingError
    text: str = "does not match its bits"


def off_by_one(values: np.ndarray, bits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    v = values.copy()
    v[11] ^= np.uint64(1)
    return v, bits


def all_off(values: np.ndarray, bits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return values ^ np.uint64(1), bits


def off_above_k(values: np.ndarray, bits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    v = values.copy()
    v[11] ^= np.uint64(1 << (K + 5))  # no output bit shows it; the mask's bound would
    return v, bits


def bit_flipped(values: np.ndarray, bits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    b = bits.copy()
    b[11 * WIDTH + WIDTH - 1] ^= 1
    return values, b


def cancelling(values: np.ndarray, bits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    v = values.astype(object)
    bad = [(v[0] + 1) % (1 << WIDTH)] + [(x - 1) % (1 << WIDTH) for x in v[1:10]]
    out = values.copy()
    for i, x in enumerate(bad):
        out[i] = np.uint64(x)
    return out, bits


ATTACKS: dict[str, Attack] = {
    "field-value-off-for-one-item": Attack(private=off_by_one),
    "field-value-off-for-every-item": Attack(private=all_off),
    "field-value-off-above-bit-k": Attack(private=off_above_k),
    "bit-flipped-for-one-item": Attack(private=bit_flipped),
    "errors-that-cancel-in-pairs": Attack(private=cancelling),
    "wrong-carry-in-the-sum-adder": Attack(and_flip="sum", detector=MacCheckError, text="binary MAC check"),
    "wrong-carry-in-the-check-adder": Attack(
        and_flip="check", detector=MacCheckError, text="binary MAC check"
    ),
    "flipped-share-in-the-field-check-opening": Attack(
        open_flip="check-field", detector=MacCheckError, text="MAC check"
    ),
    "flipped-share-in-the-binary-check-opening": Attack(
        open_flip="check-bits", detector=MacCheckError, text="binary MAC check"
    ),
}
CONFIGS = [(2, 1), (3, 2), (3, 0)]
param_config = pytest.mark.parametrize(
    ("n", "cheater"), CONFIGS, ids=[f"n{n}-cheater{c}" for n, c in CONFIGS]
)


def _sizes() -> tuple[int, int]:
    b, c = edabit_parameters(COUNT)
    return COUNT * b + c, (b - 1) * COUNT


def install(attack: Attack, monkeypatch: pytest.MonkeyPatch, hits: list[int], live: bool, n: int) -> None:
    items, checks = _sizes()
    if attack.private is not None:
        real_private = edabits_module.private_edabits
        change = attack.private

        def private(count: int, k: int) -> tuple[np.ndarray, np.ndarray]:
            values, bits = real_private(count, k)
            if CHEATER.get():
                hits.append(1)
                if live:
                    return change(values, bits)
            return values, bits

        monkeypatch.setattr(edabits_module, "private_edabits", private)
    if attack.and_flip is not None:
        real_and = BitSession.and_
        where = attack.and_flip

        async def and_(self: BitSession, x: AuthBits, y: AuthBits, triples: Any = None) -> AuthBits:
            z = await real_and(self, x, y, triples)
            # the sum adder's layers are over all items, the check adder's over all checks
            target = (where == "sum" and x.size == items and not hits) or (
                where == "check" and x.size == checks
            )
            if CHEATER.get() and target:
                hits.append(1)
                if live:
                    bits = z.bits.copy()
                    bits[0] ^= 1
                    z = AuthBits(z.ctx, bits, z.macs)
            return z

        monkeypatch.setattr(BitSession, "and_", and_)
    if attack.open_flip == "check-bits":
        real_bopen = BitSession.open_unchecked

        async def bopen(self: BitSession, xs: Sequence[AuthBits]) -> list[np.ndarray]:
            full = WIDTH + extra_bits(self.s.n, WIDTH) + 1
            if CHEATER.get() and len(xs) == 2 and xs[0].size == checks * full:
                hits.append(1)
                if live:
                    x = xs[0]
                    bits = x.bits.copy()
                    bits[5] ^= 1
                    xs = [AuthBits(x.ctx, bits, x.macs), *xs[1:]]
            return await real_bopen(self, xs)

        monkeypatch.setattr(BitSession, "open_unchecked", bopen)
    if attack.open_flip == "check-field":
        real_open = Session.open_unchecked

        async def fopen(self: Session, xs: list[SharedArray]) -> list[np.ndarray]:
            if CHEATER.get() and len(xs) == 2 and xs[0].size == checks:
                hits.append(1)
                if live:
                    y = xs[0]
                    fld = y.ctx.field
                    bump = fld.from_ints([0, 1] + [0] * (y.size - 2))
                    xs = [SharedArray(y.ctx, fld.add(y.value, bump), y.mac), xs[1]]
            return await real_open(self, xs)

        monkeypatch.setattr(Session, "open_unchecked", fopen)


async def run_attack(
    attack: Attack, n: int, cheater: int, live: bool, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[Any], dict[int, Any], int, list[BinaryParty]]:
    hits: list[int] = []
    install(attack, monkeypatch, hits, live, n)
    results, returned, parties = await run_installed(n, cheater, generate_loose_edabits)
    return results, returned, len(hits), parties


@pytest.mark.slow
@param_config
@pytest.mark.parametrize("name", list(ATTACKS))
async def test_cheat_is_caught_by_every_honest_party(
    name: str, n: int, cheater: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    attack = ATTACKS[name]
    results, returned, hits, _ = await run_attack(attack, n, cheater, True, monkeypatch)
    assert_caught(results, returned, hits, n, cheater, attack.detector, attack.text, "loose edaBits")


@pytest.mark.parametrize("name", list(ATTACKS))
async def test_control_run_of_each_cheat_is_correct(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same patches switched off: every party succeeds and the masks are right."""
    results, _, hits, parties = await run_attack(ATTACKS[name], 3, 2, False, monkeypatch)
    assert hits, "the patch never fired: its target is wrong"
    raise_any(results)
    check_loose(results, parties, P127, [(COUNT, K)], 3)


async def test_items_input_in_slices(monkeypatch: pytest.MonkeyPatch) -> None:
    """Private values input and summed ``ITEM_SLICE`` items at a time: exact, strict and loose; and a
    cheat in the last slice only is caught by every honest party."""
    monkeypatch.setattr(edabits_module, "ITEM_SLICE", 97)  # 100 outputs, B = 6: 605 items, 7 slices
    requests = [(COUNT, K)]
    res, parties = await run_honest(3, loose_prog, requests)
    check_loose(res, parties, P127, requests, 3)
    res, parties = await run_honest(2, edabit_prog, requests)
    check_edabits(res, parties, P127, requests)
    calls: list[int] = []

    def late(values: np.ndarray, bits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        calls.append(1)
        return off_by_one(values, bits) if len(calls) == -(-_sizes()[0] // 97) else (values, bits)

    results, returned, hits, _ = await run_attack(Attack(private=late), 3, 1, True, monkeypatch)
    assert hits and len(calls) == -(-_sizes()[0] // 97)
    assert all(isinstance(results[i], AbortError) for i in (0, 2)) and not returned
