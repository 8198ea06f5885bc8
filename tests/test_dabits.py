"""daBits (``protocols.binary.dabits``): exact against plaintext, and every cheat caught.

Honest runs reconstruct both domains from every party's raw shares, with every MAC checked directly
(the field MAC under ``sum_i alpha_i``, the binary MAC under ``XOR_i Delta_i``), and also open the
daBits through the checked openings. The cheating runs make one party deviate and require that every
honest party raises an ``AbortError`` and that no honest party's generator returns anything:

| deviation | caught by |
|---|---|
| a party inputs the complement of its binary share (one daBit, or all) | integer check |
| a party inputs 2 in place of a 0 share (a field value that is not a bit) | integer check |
| a party's input off by ``2^40`` (one) or ``2^80`` (all): above a weight's bits | integer check |
| a flipped share in the field opening of the check | field MAC check |
| a flipped share in the binary opening of the check | binary MAC check |

Field preprocessing comes from the (insecure, test-only) dealer; the binary side is the real protocol.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import trio
from test_binary import deltas_of, held, reconstruct, setup_prog

import actors
import protocols.binary.dabits as dabits_module
from protocols.binary import AuthBits, BinaryParty, BitSession
from protocols.binary.dabits import (
    MAX_CHUNK,
    STAT_SEC,
    CheckPlan,
    check_plan,
    chunks,
    compress,
    compress_shape,
    dabit_cost,
    generate_dabits,
)
from protocols.errors import AbortError, MacCheckError, PreprocessingError
from protocols.field import P61, P127, PrimeField, get_field
from protocols.online import Session
from protocols.shares import SharedArray

DEADLINE = 120.0
param_n = pytest.mark.parametrize("n", [2, 3], ids=lambda n: f"n{n}")
Program = Callable[..., Awaitable[Any]]
FieldHeld = tuple[np.ndarray, np.ndarray]
CHEATER: contextvars.ContextVar[bool] = contextvars.ContextVar("dabit_cheater", default=False)


# ---------------------------------------------------------------------------------------- harness
async def run_with(
    n: int,
    progs: Sequence[tuple[Program, tuple[Any, ...]]],
    modulus: int = P127,
    deadline: float = DEADLINE,
) -> list[list[Any]]:
    """The programs one after another as sessions of one dealer cluster; per program, each party's
    result or exception (a wall-clock deadline turns a hang into a failure)."""
    out: list[list[Any]] = []
    with trio.fail_after(deadline):
        async with actors.local_cluster(n, modulus=modulus, preprocessing="dealer") as c:
            for prog, args in progs:
                out.append(await c.run_each(prog, *args))
    return out


def raise_any(results: Sequence[Any]) -> None:
    for i, r in enumerate(results):
        if isinstance(r, BaseException):
            raise AssertionError(f"party {i} failed: {r!r}") from r


def field_held(x: SharedArray) -> FieldHeld:
    return x.value.copy(), x.mac.copy()


def alpha_of(s: Session) -> int:
    return s.field.to_ints(s.ctx.alpha)[0]


def field_reconstruct(
    f: PrimeField, shares: Sequence[FieldHeld], alphas: Sequence[int], what: str = ""
) -> list[int]:
    """The secret from every party's field shares, after checking every MAC under ``sum_i alpha_i``."""
    p = f.modulus
    sizes = {v.shape[1] for v, _ in shares} | {m.shape[1] for _, m in shares}
    assert len(sizes) == 1, f"{what}: parties hold different sizes {sizes}"
    values = [f.to_ints(v) for v, _ in shares]
    macs = [f.to_ints(m) for _, m in shares]
    alpha = sum(alphas) % p
    x = [sum(col) % p for col in zip(*values, strict=True)]
    mac = [sum(col) % p for col in zip(*macs, strict=True)]
    wrong = [k for k in range(len(x)) if mac[k] != alpha * x[k] % p]
    assert not wrong, f"{what}: field MAC does not hold for elements {wrong[:10]} (of {len(x)})"
    return x


async def fresh_parties(n: int, modulus: int = P127) -> list[BinaryParty]:
    parties = [BinaryParty(i, n) for i in range(n)]
    (res,) = await run_with(n, [(setup_prog, (parties,))], modulus)
    raise_any(res)
    return parties


_READY: dict[int, list[BinaryParty]] = {}


async def run_honest(
    n: int, prog: Program, *args: Any, modulus: int = P127
) -> tuple[list[Any], list[BinaryParty]]:
    """``prog(s, bs, *args)`` at every party of a dealer cluster, with a ``BitSession`` on a set-up
    party set shared by the honest tests (dropped if anything fails); every party must succeed."""

    async def wrapped(s: Session, parties: Sequence[BinaryParty]) -> Any:
        bs = BitSession(s, parties[s.party])
        out = await prog(s, bs, *args)
        await bs.finish()
        return out

    if n not in _READY:
        _READY[n] = await fresh_parties(n, modulus)
    parties = _READY[n]
    try:
        (res,) = await run_with(n, [(wrapped, (parties,))], modulus)
        raise_any(res)
    except BaseException:
        _READY.pop(n, None)
        raise
    return res, parties


# ---------------------------------------------------------------------------------------- local parts
def test_check_plan_fits_the_field() -> None:
    """With 2^127 - 1: one check of 40-bit weights over chunks of 2^16; with 2^61 - 1: smaller chunks
    and narrower weights, ``checks * m >= 40``, and in both the largest opened value stays below p and
    the private values are field inputs."""
    f61, f127 = get_field(P61), get_field(P127)
    assert check_plan(f127, 3) == CheckPlan(MAX_CHUNK, 40, 1, 40 + 17 + 40)
    for f in (f61, f127):
        for n in (2, 3, 5, 10):
            plan = check_plan(f, n)
            assert plan.checks * plan.m >= STAT_SEC
            assert plan.width == plan.m + plan.chunk.bit_length() + STAT_SEC
            assert plan.chunk * (2**plan.m - 1) + n * (2**plan.width - 1) < f.modulus
            assert 2**plan.width - 1 <= f.half
    p61 = check_plan(f61, 3)
    assert p61.chunk < MAX_CHUNK and 4 <= p61.m < 40 and p61.checks > 1
    for count in (1, 5, MAX_CHUNK + 1, 3 * MAX_CHUNK):
        parts = chunks(count, f127, 3)
        assert parts[0][0] == 0 and parts[-1][1] == count
        assert all(a[1] == b[0] for a, b in zip(parts, parts[1:], strict=False))
        assert max(hi - lo for lo, hi in parts) <= MAX_CHUNK
    assert chunks(0, f61) == []
    cost = dabit_cost(1000, f127, 3)
    assert cost["triples"] == 2 * 1000 and cost["field_bits"] == 0
    assert cost["input_masks"] == 3 * (1000 + 1)
    assert 20_000 <= cost["and_triples"] <= 30_000  # 20 per daBit, plus the padding (about 40% at 1,000)


def test_compress_adds_weighted_bits() -> None:
    """``compress`` on dealt sharings, its ANDs done by a trusted helper: every check's result is the
    weighted sum of its bits, and the AND count is what ``compress_ands`` predicts from the heights."""
    from test_binary import deal

    from protocols.binary import BinaryContext

    rng = np.random.default_rng(8)
    ctxs = [BinaryContext(i, 2, rng.integers(0, 2**64, 2, dtype=np.uint64)) for i in range(2)]
    deltas = [c.delta for c in ctxs]
    heights = [[7, 0, 12, 3, 1], [1, 5, 0, 0, 9, 2]]
    values = [[rng.integers(0, 2, h, dtype=np.uint8) for h in hs] for hs in heights]
    want = [sum(int(v.sum()) << t for t, v in enumerate(vs)) for vs in values]
    dealt = [[deal(v, ctxs, rng) if v.size else None for v in vs] for vs in values]
    gens = [
        compress(
            [[d[i] if d is not None else None for d in ds] for ds in dealt],
            AuthBits(ctxs[i], np.zeros(1, np.uint8), np.zeros((1, 2), np.uint64)),
        )
        for i in range(2)
    ]
    reqs = [g.send(None) for g in gens]
    ands = 0
    while True:
        lefts = [AuthBits.concat(r[0]) for r in reqs]
        rights = [AuthBits.concat(r[1]) for r in reqs]
        x = reconstruct([held(v) for v in lefts], deltas, "lefts")
        y = reconstruct([held(v) for v in rights], deltas, "rights")
        ands += x.size
        z = deal((x & y).astype(np.uint8), ctxs, rng)
        outs = []
        for i, g in enumerate(gens):
            try:
                reqs[i] = g.send(z[i].split([v.size for v in reqs[i][0]]))
            except StopIteration as done:
                outs.append(done.value)
        if outs:
            assert len(outs) == 2
            break
    assert ands == compress_shape(heights)[0]
    got = [0, 0]
    for t, (p0, p1) in enumerate(zip(*outs, strict=True)):
        if p0 is None:
            continue
        bits = reconstruct([held(p0), held(p1)], deltas, f"plane {t}")
        for q in range(2):
            got[q] += int(bits[q]) << t
    assert got == want


# ---------------------------------------------------------------------------------------- honest
async def dabit_prog(s: Session, bs: BitSession, counts: Sequence[int]) -> dict[str, Any]:
    out: dict[str, Any] = {"alpha": alpha_of(s), "items": []}
    for count in counts:
        bf, bb = await generate_dabits(s, bs, count)
        assert bf.size == count and bb.size == count
        out["items"].append(
            {
                "field": field_held(bf),
                "bin": held(bb),
                "opened_field": await s.open(bf),
                "opened_bin": await bs.output(bb),
            }
        )
    return out


def check_dabits(
    res: list[Any], parties: Sequence[BinaryParty], f: PrimeField, counts: Sequence[int]
) -> None:
    n = len(res)
    alphas = [r["alpha"] for r in res]
    deltas = deltas_of(parties)
    for k, count in enumerate(counts):
        items = [r["items"][k] for r in res]
        xf = field_reconstruct(f, [it["field"] for it in items], alphas, f"daBits {k} (field)")
        xb = reconstruct([it["bin"] for it in items], deltas, f"daBits {k} (binary)")
        assert xf == [int(b) for b in xb], f"batch {k}: the two domains differ"
        assert set(xf) <= {0, 1}
        for i in range(n):
            if "opened_field" not in items[i]:
                continue
            assert [int(v) for v in items[i]["opened_field"]] == xf
            assert np.array_equal(items[i]["opened_bin"], xb)
        if count >= 500:
            assert 0.4 * count < sum(xf) < 0.6 * count, f"{sum(xf)} ones in {count}"


@param_n
async def test_dabits_are_exact(n: int) -> None:
    """Both domains hold the same bits (every MAC checked), balanced, fresh per call; sizes 1, 57,
    1000 (one chunk each) and an empty request."""
    counts = [1, 57, 0, 1000]
    res, parties = await run_honest(n, dabit_prog, counts)
    check_dabits(res, parties, get_field(P127), counts)
    assert res[0]["items"][2]["field"][0].shape[1] == 0


async def test_dabits_in_chunks_mod_p61() -> None:
    """With p = 2^61 - 1 the check's chunks are small and its weights narrow (several checks per
    chunk): a batch just above one chunk is checked in two."""
    f = get_field(P61)
    plan = check_plan(f, 2)
    count = plan.chunk + 5
    assert len(chunks(count, f, 2)) == 2 and plan.checks > 1
    res, parties = await run_honest(2, dabit_prog, [count], modulus=P61)
    check_dabits(res, parties, f, [count])


async def misuse_prog(s: Session, bs: BitSession) -> list[str]:
    out = []
    for bad in (-1, 1.5, True, dabits_module.MAX_DABITS + 1):
        try:
            await generate_dabits(s, bs, bad)  # type: ignore[arg-type]
        except (TypeError, ValueError) as e:
            out.append(type(e).__name__)
    bf, _ = await generate_dabits(s, bs, 3)
    out.append(str(bf.size))
    return out


async def test_usage_errors_before_anything_is_sent() -> None:
    res, _ = await run_honest(2, misuse_prog)
    assert res == [["ValueError", "TypeError", "TypeError", "ValueError", "3"]] * 2


# ---------------------------------------------------------------------------------------- cheating
@dataclass
class Attack:
    inputs: Callable[[np.ndarray], Any] | None = None  # what the cheater inputs into the field
    flip_field_opening: bool = False
    flip_binary_opening: bool = False
    detector: type[AbortError] = PreprocessingError
    text: str = ""


def complement_one(bits: np.ndarray) -> np.ndarray:
    out = bits.astype(np.int64)
    out[7] ^= 1
    return out


def complement_all(bits: np.ndarray) -> np.ndarray:
    return bits.astype(np.int64) ^ 1


def two_for_zero(bits: np.ndarray) -> np.ndarray:
    """2 in place of the first 0 share: parity 0 like the binary share, but not a bit."""
    out = bits.astype(np.int64)
    out[int(np.flatnonzero(bits == 0)[0])] = 2
    return out


def plus_2_40_one(bits: np.ndarray) -> list[int]:
    out = [int(b) for b in bits]
    out[7] += 1 << 40
    return out


def plus_2_80_all(bits: np.ndarray) -> list[int]:
    return [int(b) + (1 << 80) for b in bits]


MISMATCH = "field and binary values"
ATTACKS: dict[str, Attack] = {
    "field-input-differs-for-one-dabit": Attack(inputs=complement_one, text=MISMATCH),
    "field-input-differs-for-every-dabit": Attack(inputs=complement_all, text=MISMATCH),
    "field-input-not-a-bit": Attack(inputs=two_for_zero, text=MISMATCH),
    "field-input-plus-2^40-for-one-dabit": Attack(inputs=plus_2_40_one, text=MISMATCH),
    "field-input-plus-2^80-for-every-dabit": Attack(inputs=plus_2_80_all, text=MISMATCH),
    "flipped-share-in-field-check-opening": Attack(flip_field_opening=True, detector=MacCheckError),
    "flipped-share-in-binary-check-opening": Attack(flip_binary_opening=True, detector=MacCheckError),
}
CONFIGS = [(2, 1), (3, 2), (3, 0), (3, 1)]  # (n, cheater)
CASES = [(name, n, c) for name in ATTACKS for n, c in CONFIGS]


def install(attack: Attack, monkeypatch: pytest.MonkeyPatch, hits: list[int], live: bool) -> None:
    """Patch the cheat points; only the task that set ``CHEATER`` deviates."""
    if attack.inputs is not None:
        inputs = attack.inputs

        def cheat_inputs(bits: np.ndarray) -> Any:
            if CHEATER.get():
                hits.append(1)
                return inputs(bits) if live else bits
            return bits

        monkeypatch.setattr(dabits_module, "field_shares_of_bits", cheat_inputs)
    if attack.flip_field_opening:
        real_open = Session.open_unchecked

        async def open_field(self: Session, xs: list[SharedArray]) -> list[np.ndarray]:
            if CHEATER.get() and len(xs) == 1:  # the check's [y]
                hits.append(1)
                if live:
                    y = xs[0]
                    f = y.ctx.field
                    xs = [SharedArray(y.ctx, f.add(y.value, f.from_ints([1] + [0] * (y.size - 1))), y.mac)]
            return await real_open(self, xs)

        monkeypatch.setattr(Session, "open_unchecked", open_field)
    if attack.flip_binary_opening:
        real_bopen = BitSession.open_unchecked

        async def open_bin(self: BitSession, xs: Sequence[AuthBits]) -> list[np.ndarray]:
            if CHEATER.get() and len(xs) == 1:  # the check's [[z]] (an AND opens two vectors)
                hits.append(1)
                if live:
                    z = xs[0]
                    bits = z.bits.copy()
                    bits[3] ^= 1
                    xs = [AuthBits(z.ctx, bits, z.macs)]
            return await real_bopen(self, xs)

        monkeypatch.setattr(BitSession, "open_unchecked", open_bin)


def assert_caught(
    results: list[Any],
    returned: dict[int, Any],
    hits: int,
    n: int,
    cheater: int,
    detector: type[AbortError],
    text: str,
    what: str,
) -> list[int]:
    """The cheat fired, every honest party aborted, none returned ``what``, and some honest party
    raised ``detector`` itself with ``text`` in it; the honest parties' ids."""
    assert hits, "the cheat never fired"
    honest = [i for i in range(n) if i != cheater]
    for i in honest:
        assert isinstance(results[i], AbortError), f"honest party {i} gave {results[i]!r}"
    leaked = sorted(set(returned) & set(honest))
    assert not leaked, f"{what} were returned at honest parties {leaked}"
    own = [results[i] for i in honest if isinstance(results[i], detector) and not results[i].remote]
    assert own, f"no honest party raised {detector.__name__} itself: {results!r}"
    assert any(text in str(e) for e in own), f"{text!r} not in {own!r}"
    return honest


async def attack_prog(
    s: Session, parties: Sequence[BinaryParty], cheater: int, count: int, returned: dict[int, Any]
) -> Any:
    bs = BitSession(s, parties[s.party])
    if s.party == cheater:
        CHEATER.set(True)
        try:
            bf, bb = await generate_dabits(s, bs, count)
        except AbortError as e:  # the cheater keeps quiet: the honest parties must find out themselves
            return e
    else:
        bf, bb = await generate_dabits(s, bs, count)
    returned[s.party] = True
    out = {"alpha": alpha_of(s), "items": [{"field": field_held(bf), "bin": held(bb)}]}
    await bs.finish()
    await s.mac_check()
    return out


async def run_attack(
    attack: Attack, n: int, cheater: int, live: bool, monkeypatch: pytest.MonkeyPatch, count: int = 100
) -> tuple[list[Any], dict[int, Any], int, list[BinaryParty]]:
    hits: list[int] = []
    install(attack, monkeypatch, hits, live)
    parties = [BinaryParty(i, n) for i in range(n)]
    returned: dict[int, Any] = {}
    setup, results = await run_with(
        n, [(setup_prog, (parties,)), (attack_prog, (parties, cheater, count, returned))]
    )
    assert setup == [True] * n
    return results, returned, len(hits), parties


@pytest.mark.slow
@pytest.mark.parametrize(("name", "n", "cheater"), CASES, ids=[f"{a}-n{n}-cheater{c}" for a, n, c in CASES])
async def test_cheat_is_caught_by_every_honest_party(
    name: str, n: int, cheater: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    attack = ATTACKS[name]
    results, returned, hits, _ = await run_attack(attack, n, cheater, True, monkeypatch)
    assert_caught(results, returned, hits, n, cheater, attack.detector, attack.text, "daBits")


@pytest.mark.slow
@pytest.mark.parametrize("name", list(ATTACKS))
async def test_control_run_of_each_cheat_is_correct(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same patches switched off: every party succeeds and the daBits are right."""
    results, _, hits, parties = await run_attack(ATTACKS[name], 3, 2, False, monkeypatch)
    assert hits, "the patch never fired: its target is wrong"
    raise_any(results)
    check_dabits(results, parties, get_field(P127), [100])
