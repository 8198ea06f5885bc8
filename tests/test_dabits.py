"""daBits (``protocols.binary.dabits``): exact against plaintext, and every cheat caught.

Honest runs reconstruct both domains from every party's raw shares, with every MAC checked directly
(the field MAC under ``sum_i alpha_i``, the binary MAC under ``XOR_i Delta_i``), and also open the
daBits through the checked openings. The cheating runs make one party deviate and require that every
honest party raises an ``AbortError`` and that no honest party's generator returns anything:

| deviation | caught by |
|---|---|
| a party inputs into the field the complement of its binary share (one daBit, or all) | parity check |
| a party inputs 2 in place of a 0 share (a field value that is not a bit) | bit check |
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
    PARITY_CHECKS,
    chunks,
    dabit_cost,
    generate_dabits,
    mask_bits,
    max_chunk,
    subset_xors,
    subsets,
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
def test_chunks_and_mask_bits() -> None:
    """A chunk's opened sum stays below p: 2^18 daBits per chunk for 2^61 - 1, one chunk for 2^127 - 1
    up to 2^30; chunks are near-equal and cover the range."""
    f61, f127 = get_field(P61), get_field(P127)
    assert max_chunk(f61) == 1 << 18
    assert max_chunk(f127) == 1 << 30
    for f in (f61, f127):
        c = max_chunk(f)
        assert c + 1 + 2 * (2 ** mask_bits(c) - 1) < f.modulus
        assert 2 * c + 1 + 2 * (2 ** mask_bits(2 * c) - 1) >= f.modulus or c == 1 << 30
    assert mask_bits(100) == 47
    for count in (1, 5, (1 << 18) + 1, 3 << 19):
        parts = chunks(count, f61)
        assert parts[0][0] == 0 and parts[-1][1] == count
        assert all(a[1] == b[0] for a, b in zip(parts, parts[1:], strict=False))
        assert max(hi - lo for lo, hi in parts) <= 1 << 18
    assert chunks(0, f61) == []
    cost = dabit_cost(1000, f127, 3)
    assert cost["triples"] == 3 * (1000 + PARITY_CHECKS) and cost["field_bits"] == PARITY_CHECKS * 50


def test_subsets_and_subset_xors() -> None:
    """The subsets are a deterministic function of the seed, about half of the range each; the XOR of
    a subset of a dealt sharing is the XOR of the selected bits, with a valid MAC."""
    from test_binary import deal

    from protocols.binary import BinaryContext

    seed = bytes(range(32))
    sel = subsets(seed, 1000)
    assert sel.shape == (PARITY_CHECKS, 1000)
    assert np.array_equal(sel, subsets(seed, 1000))
    assert 400 < int(sel[0].sum()) < 600
    rng = np.random.default_rng(3)
    ctxs = [BinaryContext(i, 3, rng.integers(0, 2**64, 2, dtype=np.uint64)) for i in range(3)]
    x = rng.integers(0, 2, 1000, dtype=np.uint8)
    shares = deal(x, ctxs, rng)
    got = [subset_xors(sh, sel) for sh in shares]
    value = reconstruct([held(g) for g in got], [c.delta for c in ctxs], "subset xors")
    assert np.array_equal(value, (sel.astype(int) @ x.astype(int)) % 2)


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


@pytest.mark.slow
async def test_dabits_in_chunks_mod_p61() -> None:
    """With p = 2^61 - 1 a batch above 2^18 is checked in two chunks (each with its own 40 checks)."""
    count = (1 << 18) + 5
    res, parties = await run_honest(2, dabit_prog, [count], modulus=P61)
    assert len(chunks(count, get_field(P61))) == 2
    check_dabits(res, parties, get_field(P61), [count])


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
    inputs: Callable[[np.ndarray], np.ndarray] | None = None  # what the cheater inputs into the field
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


ATTACKS: dict[str, Attack] = {
    "field-input-differs-for-one-dabit": Attack(inputs=complement_one, text="field and binary values"),
    "field-input-differs-for-every-dabit": Attack(inputs=complement_all, text="field and binary values"),
    "field-input-not-a-bit": Attack(inputs=two_for_zero, text="not a bit"),
    "flipped-share-in-field-check-opening": Attack(flip_field_opening=True, detector=MacCheckError),
    "flipped-share-in-binary-check-opening": Attack(flip_binary_opening=True, detector=MacCheckError),
}
CONFIGS = [(2, 1), (3, 2), (3, 0)]  # (n, cheater)
param_config = pytest.mark.parametrize(
    ("n", "cheater"), CONFIGS, ids=[f"n{n}-cheater{c}" for n, c in CONFIGS]
)


def install(attack: Attack, monkeypatch: pytest.MonkeyPatch, hits: list[int], live: bool) -> None:
    """Patch the cheat points; only the task that set ``CHEATER`` deviates."""
    if attack.inputs is not None:
        inputs = attack.inputs

        def cheat_inputs(bits: np.ndarray) -> np.ndarray:
            if CHEATER.get():
                hits.append(1)
                return inputs(bits) if live else bits
            return bits

        monkeypatch.setattr(dabits_module, "field_shares_of_bits", cheat_inputs)
    if attack.flip_field_opening:
        real_open = Session.open_unchecked

        async def open_field(self: Session, xs: list[SharedArray]) -> list[np.ndarray]:
            if CHEATER.get() and len(xs) == 2 and xs[1].shape == ():  # the check's [y, bit check]
                hits.append(1)
                if live:
                    y = xs[0]
                    f = y.ctx.field
                    xs = [
                        SharedArray(y.ctx, f.add(y.value, f.from_ints([1] + [0] * (y.size - 1))), y.mac),
                        xs[1],
                    ]
            return await real_open(self, xs)

        monkeypatch.setattr(Session, "open_unchecked", open_field)
    if attack.flip_binary_opening:
        real_bopen = BitSession.open_unchecked

        async def open_bin(self: BitSession, xs: Sequence[AuthBits]) -> list[np.ndarray]:
            if (
                CHEATER.get()
                and len(xs) == 1
                and xs[0].size % PARITY_CHECKS == 0
                and xs[0].size <= 4 * PARITY_CHECKS
            ):
                hits.append(1)
                if live:
                    z = xs[0]
                    bits = z.bits.copy()
                    bits[3] ^= 1
                    xs = [AuthBits(z.ctx, bits, z.macs)]
            return await real_bopen(self, xs)

        monkeypatch.setattr(BitSession, "open_unchecked", open_bin)


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
@param_config
@pytest.mark.parametrize("name", list(ATTACKS))
async def test_cheat_is_caught_by_every_honest_party(
    name: str, n: int, cheater: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    attack = ATTACKS[name]
    results, returned, hits, _ = await run_attack(attack, n, cheater, True, monkeypatch)
    assert hits, "the cheat never fired"
    honest = [i for i in range(n) if i != cheater]
    for i in honest:
        assert isinstance(results[i], AbortError), f"honest party {i} gave {results[i]!r}"
    leaked = sorted(set(returned) & set(honest))
    assert not leaked, f"daBits were returned at honest parties {leaked}"
    own = [results[i] for i in honest if isinstance(results[i], attack.detector) and not results[i].remote]
    assert own, f"no honest party raised {attack.detector.__name__} itself: {results!r}"
    assert any(attack.text in str(e) for e in own), f"{attack.text!r} not in {own!r}"


@pytest.mark.slow
@pytest.mark.parametrize("name", list(ATTACKS))
async def test_control_run_of_each_cheat_is_correct(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same patches switched off: every party succeeds and the daBits are right."""
    results, _, hits, parties = await run_attack(ATTACKS[name], 3, 2, False, monkeypatch)
    assert hits, "the patch never fired: its target is wrong"
    raise_any(results)
    check_dabits(results, parties, get_field(P127), [100])
