"""Binary authenticated values (``protocols.binary``): honest runs, exact against plaintext.

Local arithmetic is checked on sharings dealt in the test; everything with a network runs the real
protocol between the parties of a dealer cluster (the dealer is not used: the binary protocols need
only the session's network, rounds and coin tosses). Whatever a generator returns is checked twice:
opened through ``BitSession.output`` (the batched MAC check must pass), and ``reconstruct``-ed from
every party's raw shares and key shares, so a broken session check could not hide a wrong MAC.

The base OTs of ``BinaryParty.setup`` are the slow part, so the honest tests share one set-up party
set per n (``ready_parties``); a test that sees any party fail drops it. The cheating tests
(``test_binary_cheating.py``) always start from fresh parties.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import numpy as np
import pytest
import trio

import actors
from protocols.binary import AuthBits, BinaryContext, BinaryParty, BitSession, bucket_size
from protocols.binary.bits import times_delta
from protocols.binary.check import bit_rows, linear, row_int, x_power_sum
from protocols.binary.triples import bucket_log2_failure, permutation
from protocols.commitments import context_bytes
from protocols.net import PairChannel
from protocols.online import Session
from protocols.ot import KOSReceiver, KOSSender
from protocols.ot.gf128 import ONE, gcm_mul, xor_bytes
from protocols.ot.softspoken import SoftSpokenReceiver, SoftSpokenSender

DEADLINE = 60.0
N_PARTIES = [2, 3]
param_n = pytest.mark.parametrize("n", N_PARTIES, ids=lambda n: f"n{n}")

Held = tuple[np.ndarray, np.ndarray]  # one party's (bit shares, MAC shares)
Program = Callable[..., Awaitable[Any]]


# ---------------------------------------------------------------------------------------- harness
def global_delta(deltas: Sequence[np.ndarray]) -> np.ndarray:
    out = np.zeros(2, dtype=np.uint64)
    for d in deltas:
        out ^= d
    return out


def reconstruct(held: Sequence[Held], deltas: Sequence[np.ndarray], what: str = "") -> np.ndarray:
    """The secret bits from every party's shares, after checking every MAC directly:
    ``XOR_i m_i = x * Delta`` with ``Delta = XOR_i Delta_i``."""
    sizes = {b.size for b, _ in held} | {m.shape[0] for _, m in held}
    assert len(sizes) == 1, f"{what}: parties hold different sizes {sizes}"
    x = np.bitwise_xor.reduce([b for b, _ in held])
    mac = np.bitwise_xor.reduce([m for _, m in held])
    want = times_delta(x, global_delta(deltas))
    wrong = np.flatnonzero(np.any(mac != want, axis=1))
    assert not wrong.size, f"{what}: MAC does not hold for bits {wrong[:10].tolist()} (of {x.size})"
    assert set(np.unique(x).tolist()) <= {0, 1}
    return x


def held(x: AuthBits) -> Held:
    return x.bits.copy(), x.macs.copy()


def deltas_of(parties: Sequence[BinaryParty]) -> list[np.ndarray]:
    return [p.ctx.delta.copy() for p in parties]


async def run_with(
    n: int, progs: Sequence[tuple[Program, tuple[Any, ...]]], interceptors: dict[int, Any] | None = None
) -> list[list[Any]]:
    """Run the programs one after another as sessions of one cluster; per program, each party's result
    or exception. A wall-clock deadline turns a hang into a failure (the protocols compute in worker
    threads, so the autojump clock would jump past honest work)."""
    out: list[list[Any]] = []
    with trio.fail_after(DEADLINE):
        async with actors.local_cluster(n, preprocessing="dealer", interceptors=interceptors) as c:
            for prog, args in progs:
                out.append(await c.run_each(prog, *args))
    return out


async def setup_prog(s: Session, parties: Sequence[BinaryParty]) -> bool:
    await parties[s.party].setup(s)
    return parties[s.party].ready


def raise_any(results: Sequence[Any]) -> None:
    for i, r in enumerate(results):
        if isinstance(r, BaseException):
            raise AssertionError(f"party {i} failed: {r!r}") from r


async def fresh_parties(n: int) -> list[BinaryParty]:
    parties = [BinaryParty(i, n) for i in range(n)]
    (res,) = await run_with(n, [(setup_prog, (parties,))])
    raise_any(res)
    return parties


_READY: dict[int, list[BinaryParty]] = {}


async def ready_parties(n: int) -> list[BinaryParty]:
    if n not in _READY:
        _READY[n] = await fresh_parties(n)
    return _READY[n]


async def run_honest(n: int, prog: Program, *args: Any) -> tuple[list[Any], list[BinaryParty]]:
    """``prog(s, bs, *args)`` with a ``BitSession`` on the shared parties; every party must succeed."""

    async def wrapped(s: Session, parties: Sequence[BinaryParty]) -> Any:
        bs = BitSession(s, parties[s.party])
        out = await prog(s, bs, *args)
        await bs.finish()
        return out

    parties = await ready_parties(n)
    try:
        (res,) = await run_with(n, [(wrapped, (parties,))])
        raise_any(res)
    except BaseException:
        _READY.pop(n, None)  # the OT counters may now differ between parties
        raise
    return res, parties


# ---------------------------------------------------------------------------------------- local
def deal(bits: np.ndarray, ctxs: Sequence[BinaryContext], rng: np.random.Generator) -> list[AuthBits]:
    """An honest sharing of ``bits`` under the parties' key shares ``ctxs`` (no protocol)."""
    n, m = len(ctxs), bits.size
    delta = global_delta([c.delta for c in ctxs])
    shares = [rng.integers(0, 2, m, dtype=np.uint8) for _ in range(n - 1)]
    shares.append(bits ^ np.bitwise_xor.reduce([*shares, np.zeros(m, np.uint8)]))
    macs = [rng.integers(0, 2**64, (m, 2), dtype=np.uint64) for _ in range(n - 1)]
    macs.append(times_delta(bits, delta) ^ np.bitwise_xor.reduce([*macs, np.zeros((m, 2), np.uint64)]))
    return [AuthBits(ctxs[i], shares[i], macs[i]) for i in range(n)]


@param_n
def test_local_operations_match_plaintext(n: int) -> None:
    """XOR, NOT, XOR/AND with public bits (one or one per element), public constants, slicing and
    concatenation: exact values and valid MACs under the global key."""
    rng = np.random.default_rng(7)
    m = 200
    a, b, c = (rng.integers(0, 2, m, dtype=np.uint8) for _ in range(3))
    ctxs = [BinaryContext(i, n, rng.integers(0, 2**64, 2, dtype=np.uint64)) for i in range(n)]
    deltas = [ctx.delta for ctx in ctxs]
    xa, xb = deal(a, ctxs, rng), deal(b, ctxs, rng)
    cases: dict[str, tuple[list[AuthBits], np.ndarray]] = {
        "xor": ([xa[i] ^ xb[i] for i in range(n)], a ^ b),
        "not": ([~xa[i] for i in range(n)], a ^ 1),
        "xor-public": ([xa[i] ^ c for i in range(n)], a ^ c),
        "public-xor": ([c ^ xa[i] for i in range(n)], a ^ c),
        "xor-one-bit": ([xa[i].xor_public(1) for i in range(n)], a ^ 1),
        "and-public": ([xa[i] & c for i in range(n)], a & c),
        "and-zero": ([xa[i].and_public(0) for i in range(n)], np.zeros(m, np.uint8)),
        "public": ([AuthBits.public(ctxs[i], c) for i in range(n)], c),
        "slice": ([xa[i][10:50] for i in range(n)], a[10:50]),
        "index-list": ([xa[i][[3, 1, 4]] for i in range(n)], a[[3, 1, 4]]),
        "concat": ([AuthBits.concat([xa[i], xb[i]]) for i in range(n)], np.concatenate([a, b])),
        "split": ([AuthBits.concat(xa[i].split([5, m - 5])[::-1]) for i in range(n)], np.roll(a, -5)),
    }
    for name, (shares, want) in cases.items():
        got = reconstruct([held(s) for s in shares], deltas, name)
        assert np.array_equal(got, want), name


def test_local_operations_refuse_misuse() -> None:
    rng = np.random.default_rng(1)
    ctxs = [BinaryContext(i, 2, rng.integers(0, 2**64, 2, dtype=np.uint64)) for i in range(2)]
    xs = deal(rng.integers(0, 2, 8, dtype=np.uint8), ctxs, rng)
    with pytest.raises(TypeError, match="AND triple"):
        _ = xs[0] & xs[0]
    with pytest.raises(ValueError, match="0/1"):
        _ = xs[0] ^ np.array([2] * 8)
    with pytest.raises(ValueError, match="does not fit"):
        _ = xs[0] ^ np.ones(3, dtype=np.uint8)
    with pytest.raises(ValueError, match="8 and 3"):
        _ = xs[0] ^ xs[0][:3]
    with pytest.raises(ValueError, match="MAC shares"):
        AuthBits(ctxs[0], np.zeros(4, np.uint8), np.zeros((3, 2), np.uint64))
    assert "delta" not in repr(ctxs[0]).lower().replace("binarycontext", "")


# ---------------------------------------------------------------------------------------- GF(2^128)
def test_x_power_sum_is_the_polynomial_in_x() -> None:
    """``x_power_sum(rows) = sum_k X^k rows[k]``, X^k being GCM's element with bit k set (MSB first)."""
    rows = np.frombuffer(os.urandom(16 * 128), dtype=np.uint64).reshape(128, 2)
    acc = bytes(16)
    for k in range(128):
        xk = (1 << (127 - k)).to_bytes(16, "big")
        acc = xor_bytes(acc, gcm_mul(xk, rows[k].tobytes()))
    assert x_power_sum(rows) == acc
    # on bits it packs them: bit k becomes the coefficient of X^k, a bijection
    bits = np.frombuffer(os.urandom(16), dtype=np.uint8)
    bits = np.unpackbits(bits)[:128]
    packed = sum(int(b) << (127 - k) for k, b in enumerate(bits)).to_bytes(16, "big")
    assert x_power_sum(bit_rows(bits)) == packed
    assert row_int(bit_rows(np.ones(1, np.uint8))[0]) == int.from_bytes(ONE, "big")


def test_linear_combination_of_bits_times_delta() -> None:
    """The MAC check's identity: lin(x Delta) = lin(x * ONE) * Delta, and lin is linear."""
    seed = os.urandom(32)
    m = 20000  # two PolyHash chunks
    x = np.frombuffer(os.urandom(m), dtype=np.uint8) & 1
    delta = np.frombuffer(os.urandom(16), dtype=np.uint64).copy()
    lhs = linear(seed, times_delta(x, delta))
    rhs = gcm_mul(linear(seed, bit_rows(x)), delta.tobytes())
    assert lhs == rhs
    a = np.frombuffer(os.urandom(16 * m), dtype=np.uint64).reshape(m, 2)
    b = np.frombuffer(os.urandom(16 * m), dtype=np.uint64).reshape(m, 2)
    assert xor_bytes(linear(seed, a), linear(seed, b)) == linear(seed, a ^ b)
    assert linear(seed, np.zeros((0, 2), np.uint64)) == bytes(16)


# ---------------------------------------------------------------------------------------- buckets
def test_bucket_sizes() -> None:
    """B is the smallest size whose bound is <= 2^-40, non-increasing in the batch size; 40 for one
    triple (the adversary must guess all 40 x bits of the only bucket), 3 from 2^20."""
    assert bucket_size(1) == 40
    assert bucket_size(1 << 20) == 3
    assert bucket_size(1 << 12) == 4
    previous = 41
    for count in [1, 2, 10, 100, 1000, 10_000, 100_000, 1 << 20, 1 << 24]:
        b = bucket_size(count)
        assert b <= previous
        assert bucket_log2_failure(count, b) <= -40
        assert b == 2 or bucket_log2_failure(count, b - 1) > -40
        previous = b
    with pytest.raises(ValueError):
        bucket_size(0)


def test_permutation_is_a_shared_uniform_permutation() -> None:
    seed = os.urandom(32)
    p = permutation(seed, 1000)
    assert np.array_equal(np.sort(p), np.arange(1000))
    assert np.array_equal(p, permutation(seed, 1000))
    assert not np.array_equal(p, permutation(os.urandom(32), 1000))


# ------------------------------------------------------------------------ OT extensions with a given Delta
@pytest.mark.parametrize(
    "ext", ["kos", "softspoken-1", "softspoken-2", "softspoken-3", "softspoken-5", "softspoken-8"]
)
async def test_an_ot_extension_sender_with_a_given_delta(ext: str) -> None:
    """``KOSSender(context, delta=...)`` and ``SoftSpokenSender(context, k, delta=...)`` use that Delta
    (16 bytes or uint64 (2,)): the correlated rows satisfy ``q + t = x Delta``, at every SoftSpokenOT
    block size (the last block shorter where k does not divide 128); a malformed Delta is a
    ValueError at construction."""
    name, _, k = ext.partition("-")

    def sender(ctx: bytes, delta: Any) -> Any:
        return KOSSender(ctx, delta=delta) if name == "kos" else SoftSpokenSender(ctx, int(k), delta=delta)

    def receiver(ctx: bytes) -> Any:
        return KOSReceiver(ctx) if name == "kos" else SoftSpokenReceiver(ctx, int(k))

    wanted = np.frombuffer(os.urandom(16), dtype=np.uint64).copy()
    x = np.frombuffer(os.urandom(300), dtype=np.uint8) & 1

    async def prog(s: Session, form: str) -> Any:
        ch = PairChannel(s.net, 1 - s.party, 5)
        ctx = context_bytes(s.session_id, "given-delta")
        if s.party == 0:
            snd = sender(ctx, wanted if form == "array" else wanted.tobytes())
            await snd.setup(ch)
            return snd.delta, await snd.extend_correlated(ch, x.size)
        rcv = receiver(ctx)
        await rcv.setup(ch)
        return await rcv.extend_correlated(ch, x)

    for form in ("array", "bytes"):
        (((delta, q), t),) = await run_with(2, [(prog, (form,))])
        assert np.array_equal(delta, wanted)
        assert np.array_equal(q ^ t, times_delta(x, wanted))
    for bad in (np.zeros(3, np.uint64), np.zeros(2, np.int64), b"short"):
        with pytest.raises(ValueError, match="delta"):
            sender(b"", bad)


async def test_binary_parties_on_either_extension() -> None:
    """The binary domain on KOS and on SoftSpokenOT (the default) alike: exact material, and SoftSpokenOT
    sends fewer bytes for the same random bits; an unknown extension is refused by name."""
    sent: dict[str, int] = {}
    for name in ("kos", "softspoken"):
        parties = [BinaryParty(i, 2, ot_extension=name) for i in range(2)]
        assert parties[0].ot_extension == name

        async def prog(s: Session, parties: Sequence[BinaryParty]) -> Any:
            bs = BitSession(s, parties[s.party])
            x, y, z = await bs.and_triples(2000)
            bits = await bs.random_bits(1 << 16)
            out = [await bs.output(v) for v in (x, y, z)]
            await bs.finish()
            return out, bits.size

        async with actors.local_cluster(2, preprocessing="dealer") as cluster:
            raise_any(await cluster.run_each(setup_prog, parties))
            before = sum(cluster.hub.bytes_sent)
            res = await cluster.run_each(prog, parties)
            sent[name] = sum(cluster.hub.bytes_sent) - before
        raise_any(res)
        (x, y, z), size = res[0]
        assert size == 1 << 16 and np.array_equal(z, x & y) and res[1][0][2].tolist() == z.tolist()
    assert sent["softspoken"] < 0.75 * sent["kos"], sent
    with pytest.raises(ValueError, match="unknown OT extension 'iknp'"):
        BinaryParty(0, 2, ot_extension="iknp")


# ---------------------------------------------------------------------------------------- protocols
async def material_prog(s: Session, bs: BitSession, count: int, triples: int) -> dict[str, Any]:
    """Random bits, an input from every owner, AND triples; raw shares and checked openings."""
    out: dict[str, Any] = {"held": {}, "opened": {}, "inputs": {}}
    items: dict[str, AuthBits] = {"rand": await bs.random_bits(count)}
    for owner in range(s.n):
        mine = input_of(owner, count) if s.party == owner else None
        items[f"in{owner}"] = await bs.input(mine, owner=owner)
    x, y, z = await bs.and_triples(triples)
    items.update(x=x, y=y, z=z, rand2=await bs.random_bits(count))
    for name, v in items.items():
        out["held"][name] = held(v)
        out["opened"][name] = await bs.output(v)
    return out


def input_of(owner: int, count: int) -> np.ndarray:
    return (np.arange(count + owner) * (owner + 3) % 5 % 2).astype(np.uint8)


@param_n
@pytest.mark.parametrize("triples", [1, 50, 3000], ids=lambda t: f"t{t}")
async def test_generated_material_is_exact(n: int, triples: int) -> None:
    """Random bits are balanced and fresh; inputs are exactly the owner's bits; z = x AND y for every
    triple; every MAC holds; every party opens the same values through the checked opening."""
    count = 500
    res, parties = await run_honest(n, material_prog, count, triples)
    deltas = deltas_of(parties)
    vals = {
        name: reconstruct([res[i]["held"][name] for i in range(n)], deltas, name) for name in res[0]["held"]
    }
    for i in range(n):
        for name, v in vals.items():
            assert np.array_equal(res[i]["opened"][name], v), f"party {i} opened other {name}"
    for owner in range(n):
        assert np.array_equal(vals[f"in{owner}"], input_of(owner, count))
    x, y, z = vals["x"], vals["y"], vals["z"]
    assert x.size == y.size == z.size == triples
    assert np.array_equal(z, x & y)
    for name in ("rand", "rand2"):
        assert 150 < int(vals[name].sum()) < 350, f"{name}: {int(vals[name].sum())} ones in {count}"
    assert not np.array_equal(vals["rand"], vals["rand2"])
    if triples >= 3000:
        for v in (x, y):
            assert 1200 < int(v.sum()) < 1800
        assert 450 < int(z.sum()) < 1050


async def ops_prog(s: Session, bs: BitSession) -> dict[str, Any]:
    """Local operations on generated values, opened with checks, against the plaintext of the inputs."""
    a = await bs.input(input_of(0, 64) if s.party == 0 else None, owner=0)
    b = await bs.input(input_of(1, 63)[:64] if s.party == 1 else None, owner=1)
    c = np.arange(64) % 3 % 2
    r = await bs.random_bits(64)
    opened = await bs.open_unchecked([a ^ b, ~a, a ^ c, b & c, AuthBits.public(bs.ctx, c) ^ r, r])
    unchecked = bs.unchecked
    await bs.check()
    return {"opened": opened, "unchecked": unchecked, "after": bs.unchecked}


@param_n
async def test_operations_on_generated_values(n: int) -> None:
    res, _ = await run_honest(n, ops_prog)
    a, b = input_of(0, 64), input_of(1, 63)[:64]
    c = (np.arange(64) % 3 % 2).astype(np.uint8)
    for i in range(n):
        xor, na, ac, bc, cr, r = res[i]["opened"]
        assert np.array_equal(xor, a ^ b) and np.array_equal(na, a ^ 1)
        assert np.array_equal(ac, a ^ c) and np.array_equal(bc, b & c)
        assert np.array_equal(cr, c ^ r)
        assert res[i]["unchecked"] == 6 * 64 and res[i]["after"] == 0


async def zero_prog(s: Session, bs: BitSession) -> list[int]:
    r = await bs.random_bits(0)
    x, y, z = await bs.and_triples(0)
    e = await bs.input(np.zeros(0, np.uint8) if s.party == 1 else None, owner=1)
    after = await bs.and_triples(2)
    return [r.size, x.size, y.size, z.size, e.size, after[0].size]


@param_n
async def test_zero_size_requests(n: int) -> None:
    """Empty requests return empty vectors at every party, and the parties work afterwards."""
    res, _ = await run_honest(n, zero_prog)
    assert res == [[0, 0, 0, 0, 0, 2]] * n


async def misuse_prog(s: Session, bs: BitSession) -> list[str]:
    out = []
    for call in (
        lambda: bs.random_bits(-1),
        lambda: bs.and_triples(-3),
        lambda: bs.and_triples(1.5),  # type: ignore[arg-type]
        lambda: bs.input(None, owner=7),
        lambda: bs.input([1, 0] if s.party != 0 else None, owner=0),
    ):
        try:
            await call()
        except (ValueError, TypeError) as e:
            out.append(type(e).__name__)
    out.append(str((await bs.and_triples(1))[0].size))
    return out


async def test_usage_errors_are_raised_before_anything_is_sent() -> None:
    """Usage errors (negative or non-int counts, a bad owner, values at the wrong party, non-bits) are
    plain ValueError/TypeError at the caller; nothing is sent, so the parties stay in step."""
    res, _ = await run_honest(2, misuse_prog)
    assert res == [["ValueError", "ValueError", "TypeError", "ValueError", "ValueError", "1"]] * 2


async def test_a_session_without_setup_or_with_a_retired_key_refuses() -> None:
    parties = [BinaryParty(i, 2) for i in range(2)]

    async def prog(s: Session) -> str:
        try:
            BitSession(s, parties[s.party])
        except RuntimeError as e:
            return str(e)
        return "no error"

    (res,) = await run_with(2, [(prog, ())])
    assert all("setup" in r for r in res)
    parties[0].ready = True
    parties[0].retire()
    assert not np.any(parties[0].ctx.delta) and parties[0].retired
    with pytest.raises(ValueError):
        BinaryParty(2, 2)


async def and_prog(s: Session, bs: BitSession) -> dict[str, Any]:
    a = await bs.input(input_of(0, 300) if s.party == 0 else None, owner=0)
    b = await bs.input(input_of(1, 299) if s.party == 1 else None, owner=1)
    r = await bs.random_bits(300)
    ab = await bs.and_(a, b)
    chained = await bs.and_(ab ^ r, ~a, await bs.and_triples(300))
    return {"ab": await bs.output(ab), "chained": await bs.output(chained), "r": await bs.output(r)}


@param_n
async def test_secret_and_with_triples(n: int) -> None:
    """The online AND gate (Beaver with binary triples) on inputs and random bits, chained."""
    res, _ = await run_honest(n, and_prog)
    a, b = input_of(0, 300), input_of(1, 299)
    for out in res:
        assert np.array_equal(out["ab"], a & b)
        assert np.array_equal(out["chained"], ((a & b) ^ out["r"]) & (a ^ 1))
