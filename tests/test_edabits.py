"""edaBits (``protocols.binary.edabits``): exact against plaintext, the circuits, the parameters, and
every cheat caught.

Honest runs reconstruct ``[r]`` and the ``k`` bits from every party's raw shares with every MAC
checked directly (field under ``sum_i alpha_i``, binary under ``XOR_i Delta_i``), and require
``r = sum_j 2^j r_j`` exactly with ``r < 2^k``. The cheating runs make one party deviate; every honest
party must raise an ``AbortError`` and no honest party's generator may return:

| deviation | caught by |
|---|---|
| a private edaBit whose field value is off by one (one item; every item) | bucket check / cut-and-choose |
| a private edaBit with one bit flipped in its binary input | bucket check / cut-and-choose |
| errors +1 on one item and -1 on others (they cancel if they meet in one bucket) | bucket check |
| a wrong carry: the cheater's share of an AND output in the adder flipped | binary MAC check |
| a flipped share in the opening that takes the carries into the field | binary MAC check |
| a flipped share in the field opening of the bucket checks | field MAC check |
| a flipped share in the binary opening of the bucket checks | binary MAC check |
"""

from __future__ import annotations

import contextvars
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from test_binary import deal, deltas_of, held, reconstruct, setup_prog
from test_dabits import (
    alpha_of,
    assert_caught,
    field_held,
    field_reconstruct,
    raise_any,
    run_honest,
    run_with,
)

import protocols.binary.edabits as edabits_module
from protocols.binary import AuthBits, BinaryContext, BinaryParty, BitSession
from protocols.binary.edabits import (
    csa_layer,
    edabit_cost,
    edabit_log2_failure,
    edabit_parameters,
    extra_bits,
    generate_edabits,
    max_bits,
    ripple_add,
    sum_numbers,
)
from protocols.errors import AbortError, MacCheckError, PreprocessingError
from protocols.field import P61, P127, get_field
from protocols.online import Session
from protocols.shares import SharedArray

param_n = pytest.mark.parametrize("n", [2, 3], ids=lambda n: f"n{n}")
CHEATER: contextvars.ContextVar[bool] = contextvars.ContextVar("edabit_cheater", default=False)


# ---------------------------------------------------------------------------------------- parameters
def test_parameters_meet_the_bound() -> None:
    """(B, C) meets 2^-40 for every batch size, B is non-increasing, C is never 0 (an adversary who
    makes every item bad must be caught by the cut-and-choose), and the large-batch figures agree
    with MP-SPDZ's table (B = 5 from 1,024, 4 from 10,368, 3 from 2^20, with C = 3)."""
    previous = 10**9
    for m in [1, 2, 3, 10, 100, 1000, 1024, 5000, 10368, 1 << 15, 1 << 20]:
        b, c = edabit_parameters(m)
        assert edabit_log2_failure(m, b, c) <= -40
        assert c >= 1 and 2 <= b <= previous
        if c:
            assert edabit_log2_failure(m, b, c - 1) > -40, "C is not the smallest for its B"
        previous = b
    assert edabit_parameters(1024)[0] == 5
    assert edabit_parameters(10368) == (4, 3)
    assert edabit_parameters(1 << 20) == (3, 2)
    # the bound is largest at one of its ends: one bad bucket, or every item bad (only the opened
    # items can catch that); exact binomials against the lgamma-based evaluation
    for m, b, c in ((1000, 5, 4), (5000, 4, 3), (20000, 4, 3)):
        one_bucket = math.log2(m) - math.log2(math.comb(m * b + c, b))
        everything = -math.log2(math.comb(m * b + c, c))
        assert abs(edabit_log2_failure(m, b, c) - max(one_bucket, everything)) < 1e-6
    assert edabit_log2_failure(10, 10, 0) == 0.0
    with pytest.raises(ValueError):
        edabit_parameters(0)


def test_field_limits() -> None:
    assert max_bits(get_field(P61), 2) == 60 and max_bits(get_field(P61), 3) == 59
    assert max_bits(get_field(P127), 2) == 126 and max_bits(get_field(P127), 3) == 125
    assert [extra_bits(n, 32) for n in (2, 3, 4, 5, 8, 9)] == [1, 2, 2, 3, 3, 4]
    cost = edabit_cost(1000, 32, 2)
    assert cost["B"] == 5 and cost["items"] == 5004
    assert cost["dabits"] == 5004 + 4000 and cost["and_triples"] == 32 * (5004 + 4000)


# ---------------------------------------------------------------------------------------- circuits
def _ctxs(n: int, rng: np.random.Generator) -> list[BinaryContext]:
    return [BinaryContext(i, n, rng.integers(0, 2**64, 2, dtype=np.uint64)) for i in range(n)]


def _evaluate(
    make: Callable[[int], Any], n: int, rng: np.random.Generator, ctxs: list[BinaryContext]
) -> list[Any]:
    circuits = [make(i) for i in range(n)]
    requests = [c.send(None) for c in circuits]
    deltas = [c.delta for c in ctxs]
    while True:
        x = np.bitwise_xor.reduce([np.concatenate([v.bits for v in r[0]]) for r in requests])
        y = np.bitwise_xor.reduce([np.concatenate([v.bits for v in r[1]]) for r in requests])
        for side in (0, 1):  # the operands carry valid MACs
            reconstruct(
                [
                    (np.concatenate([v.bits for v in r[side]]), np.concatenate([v.macs for v in r[side]]))
                    for r in requests
                ],
                deltas,
            )
        shares = deal(x & y, ctxs, rng)
        sizes = [v.size for v in requests[0][0]]
        done: list[Any] = []
        nxt = []
        for c, sh in zip(circuits, shares, strict=True):
            try:
                nxt.append(c.send(sh.split(sizes)))
            except StopIteration as stop:
                done.append(stop.value)
        if done:
            assert len(done) == n
            return done
        requests = nxt


@pytest.mark.parametrize("parties", [2, 3, 4, 5])
@pytest.mark.parametrize("k", [1, 5, 16])
def test_adders_against_plaintext(parties: int, k: int) -> None:
    """``sum_numbers`` (carry-save layers, then ripple-carry) and ``ripple_add`` compute exact sums
    with valid MACs, on numbers dealt to 3 parties, all elements at once."""
    rng = np.random.default_rng(parties * 100 + k)
    n, m = 3, 300
    ctxs = _ctxs(n, rng)
    deltas = [c.delta for c in ctxs]
    values = [rng.integers(0, 2**k, m, dtype=np.uint64) for _ in range(parties)]
    dealt = [
        [deal(((v >> np.uint64(j)) & np.uint64(1)).astype(np.uint8), ctxs, rng) for j in range(k)]
        for v in values
    ]
    width = k + extra_bits(parties, k)

    def make(i: int) -> Any:
        return sum_numbers([[dealt[p][j][i] for j in range(k)] for p in range(parties)], width)

    results = _evaluate(make, n, rng, ctxs)
    want_vals = sum(v.astype(object) for v in values)
    got = np.zeros(m, dtype=object)
    for j in range(width):
        planes = [r[j] for r in results]
        if planes[0] is None:
            continue
        bits = reconstruct([held(p) for p in planes], deltas, f"plane {j}")
        got += bits.astype(object) << j
    assert list(got) == list(want_vals)


def test_csa_layer_is_one_layer() -> None:
    """Three numbers become two with one AND layer: x + y + z = s + t."""
    rng = np.random.default_rng(5)
    ctxs = _ctxs(2, rng)
    deltas = [c.delta for c in ctxs]
    k, m = 6, 64
    vals = [rng.integers(0, 2**k, m, dtype=np.uint64) for _ in range(3)]
    dealt = [
        [deal(((v >> np.uint64(j)) & np.uint64(1)).astype(np.uint8), ctxs, rng) for j in range(k)]
        for v in vals
    ]
    layers = []

    def make(i: int) -> Any:
        gen = csa_layer([tuple([dealt[p][j][i] for j in range(k)] for p in range(3))])  # type: ignore[arg-type]

        def counted() -> Any:
            req = gen.send(None)
            layers.append(1)
            try:
                while True:
                    res = yield req
                    req = gen.send(res)
                    layers.append(1)
            except StopIteration as stop:
                return stop.value

        return counted()

    ((s0, t0), (s1, t1)) = [r[0] for r in _evaluate(make, 2, rng, ctxs)]
    s = sum(
        reconstruct([held(a), held(b)], deltas).astype(object) << j
        for j, (a, b) in enumerate(zip(s0, s1, strict=True))
    )
    t = sum(
        reconstruct([held(a), held(b)], deltas).astype(object) << j
        for j, (a, b) in enumerate(zip(t0, t1, strict=True))
        if a is not None
    )
    assert list(s + t) == list(sum(v.astype(object) for v in vals))
    assert len(layers) == 2  # one per party: a single layer each


def test_ripple_add_counts_one_and_per_position() -> None:
    from protocols.binary.edabits import check_circuit_ands, count_ands, sum_circuit_ands

    assert check_circuit_ands(32) == 32
    assert sum_circuit_ands(2, 64) == 64 and sum_circuit_ands(3, 64) == 128
    assert count_ands(lambda plane: ripple_add([plane()] * 5, [plane()] * 2)) == 5
    assert count_ands(lambda plane: ripple_add([plane()] * 3, [None, plane(), None])) == 2


# ---------------------------------------------------------------------------------------- honest
async def edabit_prog(s: Session, bs: BitSession, requests: Sequence[tuple[int, int]]) -> dict[str, Any]:
    out: dict[str, Any] = {"alpha": alpha_of(s), "items": []}
    for count, k in requests:
        r, bits = await generate_edabits(s, bs, count, k)
        assert r.size == count and bits.size == count * k
        out["items"].append(
            {"field": field_held(r), "bin": held(bits), "opened": await s.open(r) if count else None}
        )
    return out


def check_edabits(
    res: list[Any], parties: Sequence[BinaryParty], modulus: int, requests: Sequence[tuple[int, int]]
) -> None:
    f = get_field(modulus)
    alphas = [r["alpha"] for r in res]
    deltas = deltas_of(parties)
    for idx, (count, k) in enumerate(requests):
        items = [r["items"][idx] for r in res]
        r = field_reconstruct(f, [it["field"] for it in items], alphas, f"edaBits {idx} (field)")
        bits = reconstruct([it["bin"] for it in items], deltas, f"edaBits {idx} (binary)")
        assert len(r) == count and bits.size == count * k
        from_bits = [sum(int(bits[e * k + j]) << j for j in range(k)) for e in range(count)]
        assert r == from_bits, f"batch {idx}: r differs from its bits"
        assert all(0 <= v < 1 << k for v in r)
        if count and items[0]["opened"] is not None:
            for it in items:
                assert [int(v) % f.modulus for v in it["opened"]] == r
        if count >= 100 and k >= 8:  # uniform-looking: the top bit is set about half the time
            top = sum(v >> (k - 1) for v in r)
            assert 0.3 * count < top < 0.7 * count, f"{top} of {count} with the top bit set"
        if count >= 100 and k == 1:
            assert 0.3 * count < sum(r) < 0.7 * count


@param_n
@pytest.mark.parametrize("k", [1, 8, 32, 64], ids=lambda k: f"k{k}")
async def test_edabits_are_exact(n: int, k: int) -> None:
    """r = sum_j 2^j r_j exactly, in [0, 2^k), every MAC valid in both domains, opened values agree;
    a batch of 100 (B = 6) and of 3 (a small batch: large B and C)."""
    requests = [(100, k), (3, k)]
    res, parties = await run_honest(n, edabit_prog, requests)
    check_edabits(res, parties, P127, requests)


@param_n
async def test_edabits_longer_than_a_word(n: int) -> None:
    """Above 64 bits (values as Python ints; the comparisons composed in the field): 100 bits and the
    most the 127-bit field allows (126 bits for two parties, 125 for three), as the binary comparisons'
    ``K + 40``-bit masks need."""
    requests = [(40, 100), (20, max_bits(get_field(P127), n))]
    res, parties = await run_honest(n, edabit_prog, requests)
    check_edabits(res, parties, P127, requests)


@pytest.mark.slow
@param_n
async def test_edabits_mod_p61(n: int) -> None:
    """The largest k the 61-bit field allows (60 for two parties, 59 for three) and a small one."""
    requests = [(50, max_bits(get_field(P61), n)), (40, 12)]
    res, parties = await run_honest(n, edabit_prog, requests, modulus=P61)
    check_edabits(res, parties, P61, requests)


@pytest.mark.slow
async def test_edabits_large_batch() -> None:
    """A batch of 5,000 (B = 4: large C, the bound's cut-and-choose regime) at two parties."""
    requests = [(5000, 16)]
    res, parties = await run_honest(2, edabit_prog, requests)
    assert edabit_parameters(5000)[0] == 4
    check_edabits(res, parties, P127, requests)


async def misuse_prog(s: Session, bs: BitSession) -> list[str]:
    out = []
    for count, k in ((-1, 8), (2, 0), (2, 127), (2, 1.5), (1 << 23, 64), (True, 8)):
        try:
            await generate_edabits(s, bs, count, k)  # type: ignore[arg-type]
        except (TypeError, ValueError) as e:
            out.append(type(e).__name__)
    r, bits = await generate_edabits(s, bs, 0, 8)
    out.append(f"{r.size} {bits.size}")
    return out


async def test_usage_errors_before_anything_is_sent() -> None:
    res, _ = await run_honest(2, misuse_prog)
    assert (
        res == [["ValueError", "ValueError", "ValueError", "TypeError", "ValueError", "TypeError", "0 0"]] * 2
    )


# ---------------------------------------------------------------------------------------- cheating
@dataclass
class Attack:
    private: Callable[[np.ndarray, np.ndarray, int], tuple[np.ndarray, np.ndarray]] | None = None
    and_flip: int | None = None  # flip the cheater's share of this AND call's first output
    open_flip: str | None = None  # "carries" (the masked carries), "check-field", "check-bits"
    detector: type[AbortError] = PreprocessingError
    text: str = "does not match its bits"


def off_by_one(values: np.ndarray, bits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    v = values.copy()
    v[11] ^= np.uint64(1)  # the field value differs from the bits in the lowest bit
    return v, bits


def all_off(values: np.ndarray, bits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    return values ^ np.uint64(1), bits


def bit_flipped(values: np.ndarray, bits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    b = bits.copy()
    b[11 * k + k - 1] ^= 1  # the top bit of item 11 in the binary input only
    return values, b


def cancelling(values: np.ndarray, bits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """+1 on item 0 and -1 on items 1..9 (mod 2^k in the bits' view: the field is off by +-1): a bucket
    made of item 0 as output and only such items as the others would pass."""
    v = values.astype(object)
    bad = [(v[0] + 1) % (1 << k)] + [(x - 1) % (1 << k) for x in v[1:10]]
    out = values.copy()
    for i, x in enumerate(bad):
        out[i] = np.uint64(x)
    return out, bits


ATTACKS: dict[str, Attack] = {
    "private-field-value-off-for-one-item": Attack(private=off_by_one),
    "private-field-value-off-for-every-item": Attack(private=all_off),
    "private-bit-flipped-for-one-item": Attack(private=bit_flipped),
    "private-errors-that-cancel-in-pairs": Attack(private=cancelling),
    "wrong-carry-in-the-sum-adder": Attack(and_flip=3, detector=MacCheckError, text="binary MAC check"),
    "wrong-carry-in-the-check-adder": Attack(and_flip=-1, detector=MacCheckError, text="binary MAC check"),
    "flipped-share-in-the-carry-opening": Attack(
        open_flip="carries", detector=MacCheckError, text="binary MAC check"
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
COUNT, K = 100, 8
SUM_LAYERS = {2: K, 3: K + 1}  # AND calls of the sum circuit (check circuit: K more)


def install(attack: Attack, monkeypatch: pytest.MonkeyPatch, hits: list[int], live: bool, n: int) -> None:
    if attack.private is not None:
        real_private = edabits_module.private_edabits
        change = attack.private

        def private(count: int, k: int) -> tuple[np.ndarray, np.ndarray]:
            values, bits = real_private(count, k)
            if CHEATER.get():
                hits.append(1)
                if live:
                    return change(values, bits, k)
            return values, bits

        monkeypatch.setattr(edabits_module, "private_edabits", private)
    if attack.and_flip is not None:
        real_and = BitSession.and_
        target = attack.and_flip if attack.and_flip >= 0 else SUM_LAYERS[n] + K // 2
        calls: list[int] = []

        async def and_(self: BitSession, x: AuthBits, y: AuthBits, triples: Any = None) -> AuthBits:
            z = await real_and(self, x, y, triples)
            if CHEATER.get():
                calls.append(1)
                if len(calls) - 1 == target:
                    hits.append(1)
                    if live:
                        bits = z.bits.copy()
                        bits[0] ^= 1
                        z = AuthBits(z.ctx, bits, z.macs)
            return z

        monkeypatch.setattr(BitSession, "and_", and_)
    if attack.open_flip in ("carries", "check-bits"):
        real_bopen = BitSession.open_unchecked
        which = attack.open_flip

        async def bopen(self: BitSession, xs: Sequence[AuthBits]) -> list[np.ndarray]:
            if CHEATER.get():
                items, checks = _sizes(self.s.n)
                hit = (
                    which == "carries"
                    and len(xs) == 1
                    and xs[0].size == items * edabits_module.extra_bits(self.s.n, K)
                ) or (which == "check-bits" and len(xs) == 2 and xs[0].size == checks * K)
                if hit:
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
            _, checks = _sizes(self.n)
            if CHEATER.get() and len(xs) == 2 and xs[0].size == checks:
                hits.append(1)
                if live:
                    y = xs[0]
                    fld = y.ctx.field
                    bump = fld.from_ints([0, 1] + [0] * (y.size - 2))
                    xs = [SharedArray(y.ctx, fld.add(y.value, bump), y.mac), xs[1]]
            return await real_open(self, xs)

        monkeypatch.setattr(Session, "open_unchecked", fopen)


def _sizes(n: int) -> tuple[int, int]:
    b, c = edabit_parameters(COUNT)
    return COUNT * b + c, (b - 1) * COUNT


async def attack_prog(
    s: Session, parties: Sequence[BinaryParty], cheater: int, returned: dict[int, Any], make: Any
) -> Any:
    """``make(s, bs, COUNT, K)`` at every party, the cheater's task marked (``CHEATER``)."""
    bs = BitSession(s, parties[s.party])
    if s.party == cheater:
        CHEATER.set(True)
        try:
            r, bits = await make(s, bs, COUNT, K)
        except AbortError as e:  # the cheater keeps quiet: the honest parties must find out themselves
            return e
    else:
        r, bits = await make(s, bs, COUNT, K)
    returned[s.party] = True
    out = {"alpha": alpha_of(s), "items": [{"field": field_held(r), "bin": held(bits), "opened": None}]}
    await bs.finish()
    await s.mac_check()
    return out


async def run_installed(
    n: int, cheater: int, make: Any = generate_edabits
) -> tuple[list[Any], dict[int, Any], list[BinaryParty]]:
    """One generation by ``make`` with whatever cheat is installed: results, who returned, parties."""
    parties = [BinaryParty(i, n) for i in range(n)]
    returned: dict[int, Any] = {}
    setup, results = await run_with(
        n, [(setup_prog, (parties,)), (attack_prog, (parties, cheater, returned, make))]
    )
    assert setup == [True] * n
    return results, returned, parties


async def run_attack(
    attack: Attack, n: int, cheater: int, live: bool, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[Any], dict[int, Any], int, list[BinaryParty]]:
    hits: list[int] = []
    install(attack, monkeypatch, hits, live, n)
    results, returned, parties = await run_installed(n, cheater)
    return results, returned, len(hits), parties


@pytest.mark.slow
@param_config
@pytest.mark.parametrize("name", list(ATTACKS))
async def test_cheat_is_caught_by_every_honest_party(
    name: str, n: int, cheater: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    attack = ATTACKS[name]
    results, returned, hits, parties = await run_attack(attack, n, cheater, True, monkeypatch)
    honest = assert_caught(results, returned, hits, n, cheater, attack.detector, attack.text, "edaBits")
    if attack.detector is MacCheckError and "binary" in attack.text:
        for i in honest:
            assert parties[i].retired, f"honest party {i} kept its binary key after a failed MAC check"


@pytest.mark.slow
@pytest.mark.parametrize("name", list(ATTACKS))
async def test_control_run_of_each_cheat_is_correct(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same patches switched off: every party succeeds and the edaBits are right."""
    results, _, hits, parties = await run_attack(ATTACKS[name], 3, 2, False, monkeypatch)
    assert hits, "the patch never fired: its target is wrong"
    raise_any(results)
    check_edabits(results, parties, P127, [(COUNT, K)])
