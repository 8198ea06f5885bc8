"""MASCOT preprocessing, honest runs: COPE, authentication, triples, squares, bits, random values.

These tests drive the protocol layer (``protocols.mascot.MascotParty``) directly inside ordinary
sessions of a dealer cluster: an interceptor swaps each session's preprocessing for one whose share
context is the MascotParty's, so every ``s.output`` is MAC-checked under the MASCOT MAC key. Two
independent checks are applied to whatever the generators return:

* opening it with ``s.output`` (the session's MAC check passes only if every MAC holds), compared with
  the plaintext relation (``c = a b``, ``a2 = a^2``, bits in {0, 1}, ...);
* ``reconstruct``: from every party's raw value and MAC shares and every ``alpha_i``, the sum of the
  value shares is ``x`` and the sum of the MAC shares is ``(sum alpha_i) x`` -- checked directly, so a
  broken session MAC check could not hide a wrong MAC.

The base OTs of ``setup`` are the slow part (~0.2-0.7 s per cluster), so each ``(modulus, n)`` gets
one set of set-up parties that the honest tests share (``ready_parties``); a test that sees any party
fail drops that set, so a desynchronised state never leaks into the next test. The cheating tests
(``test_offline_cheating.py``) always start from fresh parties.

Deadlines are wall-clock (``DEADLINE`` per cluster), not the autojump clock: the generators may
compute in worker threads, and a task waiting for a thread counts as blocked, so virtual time would
jump straight past the deadline.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import numpy as np
import pytest
import trio
from helpers import MODULI, mod_id

import actors
from protocols.field import P61, P127, PrimeField, get_field
from protocols.intercept import PassThrough
from protocols.mascot import MascotParty
from protocols.mascot.auth import authenticate, cope_channel
from protocols.online import Session
from protocols.prg import PRG
from protocols.shares import ShareContext, SharedArray

pytestmark = pytest.mark.slow  # real processes or MASCOT: left out of the fast subset

DEADLINE = 60.0
N_MASCOT = [2, 3]

Shares = tuple[np.ndarray, np.ndarray]  # one party's (value shares, MAC shares) of a vector


# ---------------------------------------------------------------------------------------- harness
class KeyOnly:
    """The session's preprocessing: only the MascotParty's share context (the session needs no other
    material here); records ``compromised`` calls instead of acting on them."""

    def __init__(self, ctx: ShareContext) -> None:
        self.ctx = ctx
        self.compromised_calls = 0

    def compromised(self) -> None:
        self.compromised_calls += 1


class Swap(PassThrough):
    """Interceptor: run party ``i``'s sessions under ``parties[i]``'s MAC key, net untouched."""

    def __init__(self, parties: Sequence[MascotParty], i: int) -> None:
        self.parties = parties
        self.i = i

    def wrap_preprocessing(self, session: str, pre: Any) -> Any:
        return KeyOnly(self.parties[self.i].ctx)


Program = Callable[..., Awaitable[Any]]


async def run_with(
    parties: Sequence[MascotParty],
    progs: Sequence[tuple[Program, tuple[Any, ...]]],
    interceptors: dict[int, Any] | None = None,
) -> list[list[Any]]:
    """Run the programs one after another as sessions of one cluster; per program, each party's result
    or exception (``run_each``). A deadline turns a hang into a failure."""
    f = parties[0].field
    n = len(parties)
    inter: dict[int, Any] = {i: Swap(parties, i) for i in range(n)}
    inter.update(interceptors or {})
    out: list[list[Any]] = []
    with trio.fail_after(DEADLINE):
        async with actors.local_cluster(
            n, modulus=f.modulus, preprocessing="dealer", interceptors=inter
        ) as c:
            for prog, args in progs:
                out.append(await c.run_each(prog, *args))
    return out


async def setup_prog(s: Session, parties: Sequence[MascotParty]) -> bool:
    await parties[s.party].setup(s)
    return parties[s.party].ready


async def fresh_parties(p: int, n: int) -> list[MascotParty]:
    """``n`` new MascotParties with their base OTs done (one setup session)."""
    f = get_field(p)
    parties = [MascotParty(f, i, n) for i in range(n)]
    (res,) = await run_with(parties, [(setup_prog, (parties,))])
    raise_any(res)
    assert res == [True] * n
    return parties


_READY: dict[tuple[int, int], list[MascotParty]] = {}


async def ready_parties(p: int, n: int) -> list[MascotParty]:
    """Set-up parties shared by the honest tests (set up on first use)."""
    key = (p, n)
    if key not in _READY:
        _READY[key] = await fresh_parties(p, n)
    return _READY[key]


async def run_honest(p: int, n: int, prog: Program, *args: Any) -> list[Any]:
    """Run ``prog(s, parties, *args)`` on the shared parties; every party must succeed."""
    parties = await ready_parties(p, n)
    try:
        (res,) = await run_with(parties, [(prog, (parties, *args))])
        raise_any(res)
    except BaseException:
        _READY.pop((p, n), None)  # the COPE/KOS counters may now differ between parties
        raise
    return res


def raise_any(results: Sequence[Any]) -> None:
    for i, r in enumerate(results):
        if isinstance(r, BaseException):
            raise AssertionError(f"party {i} failed: {r!r}") from r


def held(x: SharedArray) -> Shares:
    """This party's raw shares, as copies (returned from a program to the test)."""
    return x.value.copy(), x.mac.copy()


def reconstruct(f: PrimeField, shares: Sequence[Shares], alphas: Sequence[int], what: str = "") -> list[int]:
    """The secret from every party's shares, after checking every MAC directly.

    ``sum_i value_i = x`` defines x; then ``sum_i mac_i`` must be ``alpha x`` with ``alpha = sum_i
    alpha_i`` for every element. Returns x as ints in [0, p).
    """
    p = f.modulus
    assert len(shares) == len(alphas)
    sizes = {v.shape[1] for v, _ in shares} | {m.shape[1] for _, m in shares}
    assert len(sizes) == 1, f"{what}: parties hold different sizes {sizes}"
    values = [f.to_ints(v) for v, _ in shares]
    macs = [f.to_ints(m) for _, m in shares]
    alpha = sum(alphas) % p
    x = [sum(col) % p for col in zip(*values, strict=True)]
    mac = [sum(col) % p for col in zip(*macs, strict=True)]
    wrong = [k for k in range(len(x)) if mac[k] != alpha * x[k] % p]
    assert not wrong, f"{what}: MAC does not hold for elements {wrong[:10]} (of {len(x)})"
    return x


def alphas_of(parties: Sequence[MascotParty]) -> list[int]:
    return [m.alpha for m in parties]


def mod(values: Any, p: int) -> list[int]:
    """Opened (signed, decoded) values as ints in [0, p)."""
    return [int(v) % p for v in np.asarray(values).reshape(-1).tolist()]


param_p = pytest.mark.parametrize("p", MODULI, ids=mod_id)
param_n = pytest.mark.parametrize("n", N_MASCOT, ids=lambda n: f"n{n}")


# ---------------------------------------------------------------------------------------- reconstruct
def test_reconstruct_rejects_a_wrong_mac() -> None:
    """The helper itself must be able to fail: one MAC share off by one is reported."""
    f = get_field(MODULI[0])
    alphas = [5, 7]
    x0, x1 = f.from_ints([1, 2]), f.from_ints([10, 20])
    m0, m1 = f.from_ints([0, 0]), f.from_ints([12 * 11, 12 * 22])
    assert reconstruct(f, [(x0, m0), (x1, m1)], alphas) == [11, 22]
    with pytest.raises(AssertionError, match="MAC does not hold"):
        reconstruct(f, [(x0, m0), (x1, f.add(m1, f.from_ints([0, 1])))], alphas)


# ---------------------------------------------------------------------------------------- COPE
COPE_SIZES = [1, 17, 100]


async def cope_prog(s: Session, parties: Sequence[MascotParty], sizes: Sequence[int]) -> dict[str, Any]:
    """Every ordered pair runs one COPE extension per size, both roles at once; collect x, t and q."""
    m = parties[s.party]
    f, me = s.field, s.party
    xs: dict[tuple[int, int], np.ndarray] = {}
    ts: dict[tuple[int, int], np.ndarray] = {}
    qs: dict[tuple[int, int], np.ndarray] = {}

    async def as_owner(j: int) -> None:
        ch = s.pair_channel(j, cope_channel(me, j))
        for r, size in enumerate(sizes):
            x = f.random(size, PRG())
            xs[(j, r)] = x
            ts[(j, r)] = await m.cope_send[j].extend(ch, x)

    async def as_holder(j: int) -> None:
        ch = s.pair_channel(j, cope_channel(j, me))
        for r, size in enumerate(sizes):
            qs[(j, r)] = await m.cope_recv[j].extend(ch, size)

    async with trio.open_nursery() as nursery:
        for j in range(s.n):
            if j != me:
                nursery.start_soon(as_owner, j)
                nursery.start_soon(as_holder, j)
    return {"x": xs, "t": ts, "q": qs}


@param_p
@param_n
async def test_cope_products_with_the_mac_key(p: int, n: int) -> None:
    """COPE gives the owner t and the key holder q with q + t = alpha_j x, for several extends in a row
    on the same set-up ends (the PRF counter must advance identically at both ends)."""
    res = await run_honest(p, n, cope_prog, COPE_SIZES)
    parties = await ready_parties(p, n)
    f = get_field(p)
    checked = 0
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            aj = f.from_ints([parties[j].alpha])
            for r, size in enumerate(COPE_SIZES):
                x, t, q = res[i]["x"][(j, r)], res[i]["t"][(j, r)], res[j]["q"][(i, r)]
                assert x.shape == t.shape == q.shape == (f.words, size)
                assert f.to_ints(f.add(q, t)) == f.to_ints(f.mul(x, aj)), f"pair {i}->{j}, extend {r}"
                assert any(f.to_ints(t)), "t is all zero: the check would be trivial"
                checked += 1
    assert checked == n * (n - 1) * len(COPE_SIZES)


@param_p
async def test_cope_extends_differ(p: int) -> None:
    """Two extends of the same x give different (t, q): the PRF counter makes every extend fresh."""

    async def twice(s: Session, parties: Sequence[MascotParty]) -> Any:
        m, f = parties[s.party], s.field
        x = f.from_ints(list(range(1, 9)))
        if s.party == 0:
            ch = s.pair_channel(1, cope_channel(0, 1))
            return [await m.cope_send[1].extend(ch, x) for _ in range(2)]
        if s.party == 1:
            ch = s.pair_channel(0, cope_channel(0, 1))
            return [await m.cope_recv[0].extend(ch, 8) for _ in range(2)]
        return None

    res = await run_honest(p, 2, twice)
    f = get_field(p)
    (t1, t2), (q1, q2) = res
    assert f.to_ints(t1) != f.to_ints(t2)
    assert f.to_ints(q1) != f.to_ints(q2)
    assert f.to_ints(f.add(q1, t1)) == f.to_ints(f.add(q2, t2))  # both alpha_1 * x


# ---------------------------------------------------------------------------------------- authentication
async def masks_prog(s: Session, parties: Sequence[MascotParty], count: int) -> list[Any]:
    """Input masks for every owner in turn; each opened (checked) right away."""
    m = parties[s.party]
    out = []
    for owner in range(s.n):
        r, clear = await m.input_masks(s, owner, count)
        opened = await s.output(r)
        out.append((held(r), None if clear is None else s.field.to_ints(clear), opened))
    return out


@param_p
@param_n
async def test_input_masks(p: int, n: int) -> None:
    """``[[r]]`` with r known to its owner only: the owner's clear r is what opens, the others get None,
    the value shares add up to r and every MAC holds."""
    count = 40
    res = await run_honest(p, n, masks_prog, count)
    parties = await ready_parties(p, n)
    f = get_field(p)
    for owner in range(n):
        clear = res[owner][owner][1]
        assert clear is not None and len(clear) == count
        for i in range(n):
            if i != owner:
                assert res[i][owner][1] is None, f"party {i} got the clear mask of owner {owner}"
            assert mod(res[i][owner][2], p) == clear, f"party {i} opened another r for owner {owner}"
        x = reconstruct(f, [res[i][owner][0] for i in range(n)], alphas_of(parties), f"owner {owner}")
        assert x == clear
        assert len(set(clear)) == count, "masks repeat: not random"
    # every owner's masks differ from every other's
    all_masks = [v for owner in range(n) for v in res[owner][owner][1]]
    assert len(set(all_masks)) == len(all_masks)


async def auth_prog(s: Session, parties: Sequence[MascotParty], sizes: Sequence[int]) -> list[Any]:
    """``authenticate`` with chosen values: owner i authenticates 1000 i + k for k < sizes[i]."""
    m, f = parties[s.party], s.field
    size = sizes[s.party]
    mine = f.from_ints([1000 * s.party + k for k in range(size)]) if size else None
    owned = await authenticate(s, m.cope_send, m.cope_recv, mine, list(sizes))
    out: list[Any] = []
    for sh in owned:
        out.append(None if sh is None else (held(sh), await s.output(sh)))
    return out


@param_p
@param_n
async def test_authenticate_chosen_values(p: int, n: int) -> None:
    """Several owners at once with different sizes, one of them 0: owners of nothing yield None at
    every party; the others' values come out exactly, with valid MACs, and open to the same values."""
    sizes = [3, 0, 5][:n] if n == 3 else [0, 4]
    res = await run_honest(p, n, auth_prog, sizes)
    parties = await ready_parties(p, n)
    f = get_field(p)
    for owner in range(n):
        want = [1000 * owner + k for k in range(sizes[owner])]
        if not sizes[owner]:
            assert all(res[i][owner] is None for i in range(n))
            continue
        x = reconstruct(f, [res[i][owner][0] for i in range(n)], alphas_of(parties), f"owner {owner}")
        assert x == want
        for i in range(n):
            assert mod(res[i][owner][1], p) == want


# ---------------------------------------------------------------------------------------- triples
async def triples_prog(s: Session, parties: Sequence[MascotParty], sizes: Sequence[int]) -> list[Any]:
    """One triple batch per entry of ``sizes``; raw shares and the checked openings of each."""
    m = parties[s.party]
    out = []
    for count in sizes:
        abc = await m.triples(s, count)
        out.append(([held(x) for x in abc], [await s.output(x) for x in abc]))
    return out


@param_p
@param_n
async def test_triples(p: int, n: int) -> None:
    """c = a b for every triple of two batches, every MAC holds, and the batches are different."""
    sizes = [120, 80]
    res = await run_honest(p, n, triples_prog, sizes)
    parties = await ready_parties(p, n)
    f = get_field(p)
    batches = []
    for b, count in enumerate(sizes):
        abc = [
            reconstruct(f, [res[i][b][0][k] for i in range(n)], alphas_of(parties), f"batch {b} {'abc'[k]}")
            for k in range(3)
        ]
        a, bb, c = abc
        assert len(a) == len(bb) == len(c) == count
        wrong = [t for t in range(count) if a[t] * bb[t] % p != c[t]]
        assert not wrong, f"batch {b}: c != a b for triples {wrong[:10]}"
        for i in range(n):
            assert [mod(o, p) for o in res[i][b][1]] == abc, f"party {i} opened other values"
        assert len(set(a)) == count and len(set(bb)) == count, "a or b repeats within a batch"
        assert set(a).isdisjoint(bb)
        batches.append(abc)
    for k in range(3):
        assert set(batches[0][k]).isdisjoint(batches[1][k]), f"two batches share values of {'abc'[k]}"


@param_p
@param_n
async def test_a_batch_of_one_triple(p: int, n: int) -> None:
    """The smallest batch (every vector of length 1, OT extension padded far beyond it) works."""
    res = await run_honest(p, n, triples_prog, [1, 1])
    parties = await ready_parties(p, n)
    f = get_field(p)
    for b in range(2):
        a, bb, c = (reconstruct(f, [res[i][b][0][k] for i in range(n)], alphas_of(parties)) for k in range(3))
        assert len(a) == 1 and a[0] * bb[0] % p == c[0]


# ------------------------------------------------------------------------------ squares, bits, randoms
async def others_prog(
    s: Session, parties: Sequence[MascotParty], n_sq: int, n_bits: int, n_rand: int
) -> dict[str, Any]:
    m = parties[s.party]
    a, a2 = await m.squares(s, n_sq)
    bits = await m.bits(s, n_bits)
    rand = await m.randoms(s, n_rand)
    rand2 = await m.randoms(s, n_rand)
    out: dict[str, Any] = {"shares": {}, "opened": {}}
    for name, x in [("a", a), ("a2", a2), ("bits", bits), ("rand", rand), ("rand2", rand2)]:
        out["shares"][name] = held(x)
        out["opened"][name] = await s.output(x)
    return out


@param_p
@param_n
async def test_squares_bits_randoms(p: int, n: int) -> None:
    """Squares: a2 = a^2. Bits: every one is 0 or 1, both values frequent. Random values: MACs hold
    and two calls differ. All checked from the raw shares and through a MAC-checked opening."""
    n_sq, n_bits, n_rand = 60, 256, 30
    res = await run_honest(p, n, others_prog, n_sq, n_bits, n_rand)
    parties = await ready_parties(p, n)
    f = get_field(p)
    x = {
        name: reconstruct(f, [res[i]["shares"][name] for i in range(n)], alphas_of(parties), name)
        for name in ["a", "a2", "bits", "rand", "rand2"]
    }
    for i in range(n):
        for name, v in x.items():
            assert mod(res[i]["opened"][name], p) == v, f"party {i} opened other {name}"
    assert len(x["a"]) == n_sq and len(x["a2"]) == n_sq
    assert all(a * a % p == a2 for a, a2 in zip(x["a"], x["a2"], strict=True))
    assert len(set(x["a"])) == n_sq
    bits = x["bits"]
    assert len(bits) == n_bits
    assert set(bits) <= {0, 1}, f"non-bits: {sorted(set(bits) - {0, 1})[:5]}"
    ones = sum(bits)
    assert 64 < ones < 192, f"{ones} ones in {n_bits} bits (8 standard deviations from balanced)"
    assert len(x["rand"]) == n_rand and len(set(x["rand"])) == n_rand
    assert set(x["rand"]).isdisjoint(x["rand2"])


# ---------------------------------------------------------------------------------------- zero size
ZERO_CALLS: dict[str, Callable[[MascotParty, Session], Awaitable[Any]]] = {
    "triples": lambda m, s: m.triples(s, 0),
    "squares": lambda m, s: m.squares(s, 0),
    "bits": lambda m, s: m.bits(s, 0),
    "randoms": lambda m, s: m.randoms(s, 0),
    "input_masks": lambda m, s: m.input_masks(s, s.n - 1, 0),
}


def sizes_of(result: Any) -> list[int]:
    """Element counts of every SharedArray in a generator's result (tuples flattened)."""
    items = result if isinstance(result, tuple) else (result,)
    return [x.size for x in items if isinstance(x, SharedArray)]


async def zero_prog(s: Session, parties: Sequence[MascotParty], name: str) -> Any:
    return sizes_of(await ZERO_CALLS[name](parties[s.party], s))


@pytest.mark.parametrize("n", N_MASCOT, ids=lambda n: f"n{n}")
@pytest.mark.parametrize("name", list(ZERO_CALLS))
async def test_zero_size_requests(name: str, n: int) -> None:
    """A request for 0 items must not hang. Acceptable outcomes, the same at every party: empty
    material, or a plain ``ValueError`` (a usage error, raised before anything is sent). Not
    acceptable: an ``ExceptionGroup`` leaking out of the generator's nursery (callers catching
    ``ValueError`` or ``AbortError`` miss it), or different outcomes at different parties. The
    parties must still work afterwards."""
    p = MODULI[0]
    parties = await ready_parties(p, n)
    try:
        res, after = await run_with(parties, [(zero_prog, (parties, name)), (triples_prog, (parties, [1]))])
        raise_any(after)
    except BaseException:
        _READY.pop((p, n), None)
        raise
    kinds = {
        type(r).__name__ if isinstance(r, BaseException) else "empty" if not any(r) else "non-empty"
        for r in res
    }
    assert len(kinds) == 1, f"{name}(0): parties disagree: {res!r}"
    (kind,) = kinds
    assert kind in ("empty", "ValueError"), f"{name}(0) gave {res!r}"


# ---------------------------------------------------------------------------------------- memory
class CountingEnd:
    """An OT-extension or COPE end that writes down the size of every ``extend`` and passes it on."""

    def __init__(self, inner: Any, sizes: list[int]) -> None:
        self.inner = inner
        self.sizes = sizes

    async def extend(self, ch: Any, arg: Any) -> Any:
        self.sizes.append(arg if isinstance(arg, int) else np.asarray(arg).shape[-1])
        return await self.inner.extend(ch, arg)


@param_p
@param_n
async def test_a_batch_streams_through_bounded_chunks(
    p: int, n: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch far larger than one chunk: every OT extension of Gilboa's products stays within
    ``ot_chunk(n)`` OTs and every COPE extension within ``cope_values(n)`` values (and within one
    message of ``cope_message_bytes``), there are many of each, and the triples are still right. The
    chunks are made tiny here, so that a small batch needs dozens of them."""
    from protocols.mascot import auth, triples

    monkeypatch.setattr(triples, "OT_CHUNK", 1 << 12)
    monkeypatch.setattr(triples, "MIN_OT_CHUNK", 1 << 10)
    monkeypatch.setattr(auth, "COPE_MESSAGE_BYTES", 1)  # the floor: one COPE pass per message
    f = get_field(p)
    count = 700  # 5 * 700 + 1 values per owner: 4 COPE messages, 2 of them after an acknowledgement
    parties = await fresh_parties(p, n)
    ot_sizes: list[int] = []
    cope_sizes: list[int] = []
    for m in parties:
        for j in list(m.ot_send):
            m.ot_send[j] = CountingEnd(m.ot_send[j], ot_sizes)  # type: ignore[assignment]
            m.cope_send[j] = CountingEnd(m.cope_send[j], cope_sizes)  # type: ignore[assignment]
    (res,) = await run_with(parties, [(triples_prog, (parties, [count]))])
    raise_any(res)
    a, b, c = (reconstruct(f, [res[i][0][0][k] for i in range(n)], alphas_of(parties)) for k in range(3))
    assert all(a[t] * b[t] % p == c[t] for t in range(count))
    per_ot = triples.ot_chunk(n)
    assert max(ot_sizes) <= per_ot and len(ot_sizes) >= n * (n - 1) * (3 * count * f.bits // per_ot)
    assert max(cope_sizes) <= auth.cope_values(f, n) and len(cope_sizes) == n * (n - 1) * 4
    assert auth.cope_values(f, n) * f.bits * f.elem_bytes == auth.cope_message_bytes(f, n)


async def batch_peak(p: int, n: int, kind: str, count: int, ot: str) -> int:
    """The traced peak (``tracemalloc``) of all ``n`` parties while they make one batch on OT extension
    ``ot``, above what they held before it."""
    import tracemalloc

    parties = [MascotParty(get_field(p), i, n, ot_extension=ot) for i in range(n)]
    (ready,) = await run_with(parties, [(setup_prog, (parties,))])
    raise_any(ready)
    base: list[int] = []

    async def one_batch(s: Session, parties: Sequence[MascotParty]) -> None:
        await s.mac_check()  # every party is here: nothing of the set-up is still in flight
        if s.party == 0:
            tracemalloc.reset_peak()
            base.append(tracemalloc.get_traced_memory()[0])
        await s.mac_check()
        m = parties[s.party]
        if kind == "triple":
            await m.triples(s, count)
        elif kind == "bit":
            await m.bits(s, count)
        else:
            await m.randoms(s, count)

    started = tracemalloc.is_tracing()
    if not started:
        tracemalloc.start()
    try:
        (res,) = await run_with(parties, [(one_batch, (parties,))])
        raise_any(res)
        return tracemalloc.get_traced_memory()[1] - base[0]
    finally:
        if not started:
            tracemalloc.stop()


@pytest.mark.parametrize(
    ("p", "n", "kind", "count", "ot"),
    [
        (P127, 3, "triple", 3_000, "kos"),
        (P127, 3, "triple", 3_000, "softspoken"),
        (P127, 2, "bit", 4_000, "softspoken"),
        (P61, 3, "random", 40_000, "kos"),
    ],
    ids=["p127-n3-triple-kos", "p127-n3-triple-softspoken", "p127-n2-bit-softspoken", "p61-n3-random"],
)
async def test_a_batch_stays_within_its_estimated_working_set(
    p: int, n: int, kind: str, count: int, ot: str
) -> None:
    """Measured with tracemalloc: the n parties making one batch (in this process) peak at no more
    than n times ``memory.batch_bytes``, the estimate the offline service keeps under its bound. The
    batches are several OT or COPE chunks long, so a batch materialised whole would not fit: the old
    generators held about 100 kB per p127 triple at n = 3 (300 MB per party for the first one)."""
    from protocols.mascot import memory

    f = get_field(p)
    estimate = memory.batch_bytes(f, n, kind, count)
    peak = await batch_peak(p, n, kind, count, ot)
    assert peak <= n * estimate, f"{peak / 2**20:.0f} MiB traced, estimate {n} x {estimate / 2**20:.0f} MiB"
