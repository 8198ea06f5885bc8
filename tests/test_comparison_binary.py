"""The binary-domain path of comparison, equality, bit decomposition and truncation (edaBits, AND
triples, daBits), and the INSECURE dealer's mixed material it runs on.

Exact against plaintext numpy on both paths (``Session(comparison="binary" | "field")``), edges of
every declared range included; rounds per operation constant in the number of elements; every
deviation in the binary part (a flipped share in an AND-layer opening or in the daBit conversion, a
wrong MAC share, a wrong daBit) makes every honest party abort before any output.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pytest
from helpers import Cheat, assert_all_aborted, run_cluster, run_each, tamper
from test_comparison import check_all, compare_all, edges, expected_all

from netsim.adversaries import plain
from protocols import comparison as cmp
from protocols.binary.bits import AuthBits, times_delta
from protocols.binary.circuits import (
    And,
    DaBits,
    EdaBits,
    MissingBinaryMaterial,
    OpenBits,
    ToField,
    and_rows,
    by_position,
    carry_out,
    lt_public,
    prefix_carries,
    sub_public,
)
from protocols.errors import AbortError, MacCheckError
from protocols.field import P61, P127, get_field
from protocols.intercept import Forwarding
from protocols.net import Net
from protocols.online import Session
from protocols.preprocessing.base import Preprocessing
from protocols.preprocessing.dealer import InsecureDealer
from protocols.rounds import _sklansky, parallel, run
from protocols.sectypes import SecretFix, SecretInt, gather
from protocols.shares import SharedArray


# ---------------------------------------------------------------------------------------- the dealer
def _open_bits(parts: list, delta: np.ndarray) -> np.ndarray:
    bits = np.bitwise_xor.reduce([p.bits for p in parts])
    macs = np.bitwise_xor.reduce([p.macs for p in parts])
    assert np.array_equal(macs, times_delta(bits, delta)), "a binary MAC does not match"
    return bits


def _open_field(parts: list, alpha: int, p: int) -> list[int]:
    f = parts[0].ctx.field
    vals = [sum(v) % p for v in zip(*[f.to_ints(x.value) for x in parts], strict=True)]
    macs = [sum(v) % p for v in zip(*[f.to_ints(x.mac) for x in parts], strict=True)]
    assert macs == [v * alpha % p for v in vals], "a field MAC does not match"
    return vals


@pytest.mark.parametrize("p", [P61, P127], ids=["p61", "p127"])
async def test_dealer_deals_consistent_mixed_material(p: int) -> None:
    """AND triples, daBits and edaBits reconstructed from all three parties' shares: every MAC checked
    under ``XOR Delta_i`` (binary) and ``sum alpha_i`` (field), ``c = a AND b``, the two halves of a
    daBit equal, an edaBit's field value the sum of its bits (LSB first), the widths up to the field."""
    f, n = get_field(p), 3
    ss = [InsecureDealer(f, n, i, seed=bytes(32)).for_session("mixed") for i in range(n)]
    delta = np.bitwise_xor.reduce([s.bctx.delta for s in ss])
    alpha = sum(f.to_ints(s.ctx.alpha)[0] for s in ss) % p
    assert len({s.bctx.delta.tobytes() for s in ss}) == n  # each party its own key share
    t = [await s.and_triples(2000) for s in ss]
    a, b, c = (_open_bits([x[i] for x in t], delta) for i in range(3))
    assert np.array_equal(a & b, c) and 800 < a.sum() < 1200 and 800 < b.sum() < 1200
    d = [await s.dabits(700) for s in ss]
    assert _open_field([x[0] for x in d], alpha, p) == _open_bits([x[1] for x in d], delta).tolist()
    widths = [1, 2, 8, 31, 60] + ([64, 65, 100, 126] if p == P127 else [])
    for k in widths:
        e = [await s.edabits(400, k) for s in ss]
        vals = _open_field([x[0] for x in e], alpha, p)
        bits = _open_bits([x[1] for x in e], delta).reshape(400, k)
        assert vals == [sum(int(v) << j for j, v in enumerate(row)) for row in bits]
        assert max(vals) < 2**k and (k < 4 or max(vals) >= 2 ** (k - 2))
    empty = await ss[0].edabits(0, 5)
    assert empty[0].size == 0 and empty[1].size == 0
    with pytest.raises(ValueError, match="do not fit"):
        await ss[0].edabits(3, f.bits)
    # same seed and session: the same material at every call position; another session: other material
    again = InsecureDealer(f, n, 0, seed=bytes(32)).for_session("mixed")
    other = InsecureDealer(f, n, 0, seed=bytes(32)).for_session("other")
    first = (await again.and_triples(2000))[0].bits
    assert np.array_equal(first, t[0][0].bits)
    assert not np.array_equal((await other.and_triples(2000))[0].bits, first)
    ss[1].compromised()
    assert not ss[1].bctx.delta.any() and not ss[1].ctx.alpha.any()


# ---------------------------------------------------------------------------------------- helpers
BINARY = {"comparison": "binary"}
DEADLINE = 120.0


def mine(s: Session, value: Any, owner: int) -> Any:
    return value if s.party == owner else None


def sample_values(k: int, count: int = 40) -> list[int]:
    """Random ``k``-bit signed values (public test data) and the edges of the range."""
    rng = np.random.default_rng(k)
    top = 2 ** (k - 1)
    rand = [int(v) for v in rng.integers(-top, top - 1, size=count, endpoint=True, dtype=np.int64)]
    return rand + edges(k)


def ceil_log2(x: int) -> int:
    return (x - 1).bit_length()


class Counting(Forwarding):
    """Counts the binary material a session draws (AND triples, daBits, edaBits and their bits), and
    the field random bits and triples."""

    def __init__(self, inner: Preprocessing) -> None:
        super().__init__(inner)
        self.counts: Counter[str] = Counter()

    async def bits(self, n: int) -> SharedArray:
        self.counts["bits"] += n
        return await self.inner.bits(n)

    async def triples(self, n: int) -> tuple[SharedArray, SharedArray, SharedArray]:
        self.counts["triples"] += n
        return await self.inner.triples(n)

    async def and_triples(self, n: int) -> tuple[AuthBits, AuthBits, AuthBits]:
        self.counts["and"] += n
        return await self.inner.and_triples(n)  # type: ignore[attr-defined, no-any-return]

    async def dabits(self, n: int) -> tuple[SharedArray, AuthBits]:
        self.counts["dabit"] += n
        return await self.inner.dabits(n)  # type: ignore[attr-defined, no-any-return]

    async def edabits(self, n: int, k: int) -> tuple[SharedArray, AuthBits]:
        self.counts["edabit"] += n
        self.counts["edabit_bits"] += n * k
        return await self.inner.edabits(n, k)  # type: ignore[attr-defined, no-any-return]

    async def loose_edabits(self, n: int, k: int) -> tuple[SharedArray, AuthBits]:
        self.counts["loose"] += n
        self.counts["loose_bits"] += n * k
        return await self.inner.loose_edabits(n, k)  # type: ignore[attr-defined, no-any-return]


class FieldOnly(Forwarding):
    """A source without binary material (as the MASCOT pools are today)."""

    bctx = None
    and_triples = dabits = edabits = loose_edabits = None


# ---------------------------------------------------------------------------------------- exact, both paths
CONFIGS = [(P127, 8), (P127, 32), (P127, 64), (P61, 8), (P61, 20)]
CONFIG_IDS = [f"{'p127' if p == P127 else 'p61'}-k{k}" for p, k in CONFIGS]


@pytest.mark.parametrize("domain", ["binary", "field", "auto"])
@pytest.mark.parametrize(("p", "k"), CONFIGS, ids=CONFIG_IDS)
async def test_primitives_exact_on_both_paths(domain: str, p: int, k: int) -> None:
    """ltz, eqz, bit decomposition and exact truncation (three shifts) exact on random values and the
    edges, probabilistic truncation within one of the floor, on the session's path (``auto``: the
    binary comparisons and truncation masks whose high part is a loose edaBit where one fits)."""
    vals = sample_values(k)
    arr = np.array(vals, dtype=object)
    shifts = sorted({1, k // 2, k - 1})

    async def prog(s: Session) -> list[Any]:
        x = await s.input(mine(s, arr, 0), owner=0)
        steps = [cmp.ltz_steps(x, k), cmp.eqz_steps(x, k), cmp.bit_decompose_steps(x, k)]
        steps += [cmp.trunc_steps(x, k, m, exact=True) for m in shifts]
        steps += [cmp.trunc_steps(x, k, m) for m in shifts]
        got = await run(s, parallel(steps))
        return [s.comparison_domain] + [await s.output(v) for v in got]

    res = await run_cluster(3, p, prog, session_options={"comparison": domain}, deadline=DEADLINE)
    for got in res:
        assert got[0] == ("binary" if domain == "auto" else domain)
        lt, eq, bits = got[1:4]
        assert [int(v) for v in lt] == [int(v < 0) for v in vals]
        assert [int(v) for v in eq] == [int(v == 0) for v in vals]
        b = np.asarray(bits, dtype=object).reshape(k, -1)
        assert set(b.reshape(-1).tolist()) <= {0, 1}
        assert [sum(int(b[i, j]) << i for i in range(k)) for j in range(len(vals))] == [
            v % 2**k for v in vals
        ]
        exact, prob = got[4 : 4 + len(shifts)], got[4 + len(shifts) :]
        for m, t, q in zip(shifts, exact, prob, strict=True):
            assert [int(v) for v in t] == [v >> m for v in vals], f"exact truncation by {m}"
            up = [int(v) - (w >> m) for v, w in zip(q, vals, strict=True)]
            assert set(up) <= {0, 1}, f"probabilistic truncation by {m}"
            assert not any(u for u, w in zip(up, vals, strict=True) if w % 2**m == 0)


@pytest.mark.parametrize("domain", ["binary", "field"])
@pytest.mark.parametrize(
    ("p", "k"), [(P127, 40), (P127, 8), (P61, 12)], ids=["p127-k40", "p127-k8", "p61-k12"]
)
async def test_ltz_offsets_exact_on_both_paths(domain: str, p: int, k: int) -> None:
    """``numeric.ltz_offsets_steps``: ``[a + o < 0]`` for several offsets from one opening, exact at the
    edges of every ``a + o``'s range; the binary path (one loose edaBit) draws no field random bit and
    no field triple."""
    from protocols.apps.numeric import ltz_offsets_steps

    top = 2 ** (k - 2)  # a and every a + o stay k-bit signed
    offsets = [0, 1, -1, top // 3, -(top // 5), top, -top + 1]
    vals = sorted(
        {v for v in sample_values(k - 1) if -top < v < top} | {0, 1, -1, top - 1, -top + 1, top // 3}
    )
    arr = np.array(vals, dtype=object)

    async def prog(s: Session) -> list[Any]:
        x = await s.input(mine(s, arr, 0), owner=0)
        pre = s.pre
        assert isinstance(pre, Counting)
        c0 = Counter(pre.counts)
        got = await run(s, ltz_offsets_steps(x, k, offsets))
        drawn = (pre.counts["bits"] - c0["bits"], pre.counts["triples"] - c0["triples"])
        return [s.comparison_domain, drawn] + [await s.output(v) for v in got]

    ics = {i: Cheat(pre=Counting) for i in range(3)}
    res = await run_cluster(
        3, p, prog, session_options={"comparison": domain}, interceptors=ics, deadline=DEADLINE
    )
    for got in res:
        assert got[0] == (domain if domain == "field" or cmp_loose(p, k) else "binary")
        if domain == "binary" and cmp_loose(p, k):
            assert got[1] == (0, 0), got[1]
        for o, lt in zip(offsets, got[2:], strict=True):
            assert [int(v) for v in lt] == [int(v + o < 0) for v in vals], f"offset {o}"


def cmp_loose(p: int, k: int) -> bool:
    from protocols.comparison_binary import loose_fits

    return loose_fits(get_field(p), 3, k, 40)


@pytest.mark.parametrize(
    ("p", "k"), [(P127, 32), (P127, 64), (P61, 16)], ids=["p127-k32", "p127-k64", "p61-k16"]
)
async def test_secret_int_comparisons_on_every_pair_of_edges(p: int, k: int) -> None:
    """The six comparisons of ``SecretInt`` (differences of ``k + 1`` bits) on the binary path."""
    e = edges(k)
    a = np.array([x for x in e for _ in e], dtype=object)
    b = np.array([y for _ in e for y in e], dtype=object)
    res = await run_cluster(
        3, p, compare_all, a, b, k, -(2 ** (k - 1)), session_options=BINARY, deadline=DEADLINE
    )
    check_all(res, expected_all(a, b, -(2 ** (k - 1))))


async def test_fixed_point_on_the_binary_path() -> None:
    """Products (probabilistic truncation from edaBits), comparisons and ``abs`` of ``SecretFix``."""
    xs = np.array([1.5, -2.25, 3.0, 0.0, -7.125, 1e-4])
    ys = np.array([2.0, 0.5, -1.25, 4.0, 1e-3, -3e3])

    async def prog(s: Session) -> list[Any]:
        x = await SecretFix.input(s, mine(s, xs, 0), owner=0)
        y = await SecretFix.input(s, mine(s, ys, 1), owner=1)
        prod, lt, mag = await gather(x * y, x < y, abs(x))
        return [await prod.reveal(), await lt.reveal(), await mag.reveal()]

    for prod, lt, mag in await run_cluster(2, P127, prog, session_options=BINARY, deadline=DEADLINE):
        q = np.round(xs * 2**20) * np.round(ys * 2**20) / 2.0**40  # the product of the encoded inputs
        assert np.allclose(prod, q, atol=2 * 2.0**-20, rtol=0)
        assert np.array_equal(lt, (xs < ys).astype(int))
        assert np.allclose(mag, np.abs(xs), atol=2.0**-20, rtol=0)


# ---------------------------------------------------------------------------------------- costs
def sklansky_gates(r: int) -> int:
    return sum(lv.upper.size + int(lv.with_p.sum()) for lv in _sklansky(r))


@pytest.mark.parametrize("k", [2, 9, 33, 64])
async def test_rounds_and_material_per_operation_do_not_depend_on_the_size(k: int) -> None:
    """Rounds (``s.stats["rounds"]``) per operation on the binary path are the same for 1 and 300
    elements and equal the stated counts; AND gates, daBits and edaBit bits are per element."""
    m = max(1, k // 3)
    kappa = cmp.KAPPA

    async def prog(s: Session, size: int) -> list[tuple[int, dict[str, int]]]:
        top = 2 ** (k - 1)
        vals = np.array([(j * 7919) % (2 * top) - top for j in range(size)], dtype=object)
        x = await s.input(mine(s, vals, 0), owner=0)
        pre = s.pre
        assert isinstance(pre, Counting)
        out = []
        for op in (
            lambda: cmp.ltz(s, x, k),
            lambda: cmp.eqz(s, x, k),
            lambda: cmp.bit_decompose(s, x, k),
            lambda: cmp.trunc(s, x, k, m),
            lambda: cmp.trunc_pr(s, x, k, m),
        ):
            r0, c0 = s.stats["rounds"], Counter(pre.counts)
            await op()
            out.append((s.stats["rounds"] - r0, dict(pre.counts - c0)))
        return out

    def count(pre: Preprocessing) -> Preprocessing:
        return Counting(pre)

    ics = {i: Cheat(pre=count) for i in range(2)}
    small = (await run_cluster(2, P127, prog, 1, session_options=BINARY, interceptors=ics))[0]
    ics = {i: Cheat(pre=count) for i in range(2)}
    large = (await run_cluster(2, P127, prog, 300, session_options=BINARY, interceptors=ics))[0]
    km = k - 1
    strict, loose = (2, k + kappa, 0, 0), (0, 0, 1, k)  # (edaBits, their bits, loose ones, their bits)
    want = [  # (rounds, AND gates, daBits, edaBit material) per element
        (2 + ceil_log2(km), 2 * (km - 1) - ceil_log2(km), 1, loose),
        (2 + ceil_log2(k), k - 1, 1, loose),
        (2 + ceil_log2(km), sklansky_gates(km), k, loose),
        (2 + ceil_log2(m), 2 * (m - 1) - ceil_log2(m), 1, strict),
        (1, 0, 0, strict),
    ]
    for size, got in ((1, small), (300, large)):
        for (rounds, counts), (w_rounds, ands, dabits, material) in zip(got, want, strict=True):
            assert rounds == w_rounds
            assert counts.get("and", 0) == ands * size
            assert counts.get("dabit", 0) == dabits * size
            kinds = ("edabit", "edabit_bits", "loose", "loose_bits")
            assert tuple(counts.get(kind, 0) for kind in kinds) == tuple(x * size for x in material)


async def test_gather_merges_binary_rounds() -> None:
    async def prog(s: Session) -> tuple[int, int]:
        x = await SecretInt.input(s, mine(s, [1, -2, 3], 0), owner=0)
        r0 = s.stats["rounds"]
        await (x < 0)
        r1 = s.stats["rounds"]
        await gather(x < 0, x > 1, x <= 2)
        return r1 - r0, s.stats["rounds"] - r1

    one, three = (await run_cluster(2, P127, prog, session_options=BINARY))[0]
    assert one == three == 2 + 5


# ---------------------------------------------------------------------------------------- choosing the path
async def test_the_path_is_a_session_option() -> None:
    """``field`` by default, ``auto`` takes binary where the preprocessing has it, ``binary`` refuses a
    source without it, and an explicit ``domain=`` overrides the session."""

    async def prog(s: Session) -> list[Any]:
        x = await s.input(mine(s, [3, -3, 0], 0), owner=0)
        r0 = s.stats["rounds"]
        lt = await cmp.ltz(s, x, 8)
        r1 = s.stats["rounds"]
        lt_b = await cmp.ltz(s, x, 8, domain="binary") if s.comparison_domain == "binary" else lt
        r2 = s.stats["rounds"]
        lt_f = await cmp.ltz(s, x, 8, domain="field")
        r3 = s.stats["rounds"]
        outs = [(await s.output(v)).tolist() for v in (lt, lt_b, lt_f)]
        return [s.comparison_domain, r1 - r0, r2 - r1, r3 - r2, *outs]

    field = (await run_cluster(2, P127, prog))[0]
    auto = (await run_cluster(2, P127, prog, session_options={"comparison": "auto"}))[0]
    assert field[0] == "field" and auto[0] == "binary"
    assert field[1] == 2 + 3 + 1 and auto[1] == auto[2] == 2 + 3 and auto[3] == field[1]  # Toft: log2(8) + 2
    assert field[4:] == auto[4:] == [[0, 1, 0]] * 3
    hidden = {i: Cheat(pre=FieldOnly) for i in range(2)}
    auto_off = (
        await run_cluster(2, P127, prog, session_options={"comparison": "auto"}, interceptors=hidden)
    )[0]
    assert auto_off[0] == "field"
    hidden = {i: Cheat(pre=FieldOnly) for i in range(2)}
    res = await run_each(2, P127, prog, session_options=BINARY, interceptors=hidden)
    assert all(isinstance(r, ValueError) and "MixedPreprocessing" in str(r) for r in res), res
    res = await run_each(2, P127, prog, session_options={"comparison": "nearest"})
    assert all(isinstance(r, ValueError) and "comparison must be" in str(r) for r in res), res

    async def forced(s: Session) -> Any:
        x = await s.input(mine(s, [3], 0), owner=0)
        return await cmp.ltz(s, x, 8, domain="binary")

    hidden = {i: Cheat(pre=FieldOnly) for i in range(2)}
    res = await run_each(2, P127, forced, interceptors=hidden)
    assert all(isinstance(r, MissingBinaryMaterial | AbortError) for r in res), res
    assert any(isinstance(r, MissingBinaryMaterial) for r in res), res


async def test_auto_compares_on_bits_and_truncates_on_field_bits_and_a_loose_edabit() -> None:
    """``auto``: comparisons, equality and bit decomposition draw loose edaBits; truncations by ``m``
    (exact and probabilistic) draw ``m`` field bits for the mask's low part (one more for the exact
    one's sign) and one loose edaBit for its high part, not ``K + kappa`` bits; ``binary`` moves
    truncations to strict edaBits."""
    vals = [5, -9, 1000, -1]

    async def prog(s: Session) -> list[Any]:
        x = await s.input(mine(s, vals, 0), owner=0)
        pre = s.pre
        assert isinstance(pre, Counting)
        out = []
        for op in (
            lambda: cmp.ltz(s, x, 16),
            lambda: cmp.eqz(s, x, 16),
            lambda: cmp.trunc(s, x, 16, 3),
            lambda: cmp.trunc_pr(s, x, 16, 3),
        ):
            c0 = Counter(pre.counts)
            r = await op()
            out.append((dict(pre.counts - c0), (await s.output(r)).tolist()))
        return [s.comparison_domain, s.truncation_domain, out]

    for mode in ("auto", "binary"):
        ics = {i: Cheat(pre=Counting) for i in range(2)}
        res = (await run_cluster(2, P127, prog, session_options={"comparison": mode}, interceptors=ics))[0]
        domain, tdomain, ops = res
        assert domain == "binary" and tdomain == ("loose" if mode == "auto" else "binary")
        (lt_c, lt), (eq_c, eq), (tr_c, tr), (pr_c, pr) = ops
        assert lt == [0, 1, 0, 1] and eq == [0, 0, 0, 0] and tr == [v >> 3 for v in vals]
        assert all(abs(p - v / 8) < 1 for p, v in zip(pr, vals, strict=True))
        assert lt_c.get("loose") == eq_c.get("loose") == len(vals) and "edabit" not in lt_c
        strict = "edabit" in tr_c and "edabit" in pr_c
        assert strict == (mode == "binary"), (tr_c, pr_c)
        if mode == "auto":
            assert tr_c["loose"] == pr_c["loose"] == len(vals) and tr_c["loose_bits"] == 16 * len(vals)
            assert tr_c["bits"] == 4 * len(vals) and pr_c["bits"] == 3 * len(vals), (tr_c, pr_c)


# ---------------------------------------------------------------------------------------- cheating
XS, YS = np.array([3, -4, 5, 0, 7]), np.array([-6, 7, 5, 0, 2**31 - 1])


async def cmp_prog(s: Session, reveal: bool = True) -> Any:
    """``x < y`` on 33 bits: the field opening at r0 + 1, AND layers at r0 + 2 .. r0 + 6, the daBit
    conversion at r0 + 7 (``r0`` the rounds before the comparison, which the control run returns)."""
    x = await SecretInt.input(s, mine(s, XS, 0), owner=0)
    y = await SecretInt.input(s, mine(s, YS, 1), owner=1)
    r0 = s.stats["rounds"]
    lt = await (x < y)
    if not reveal:  # the session's end (Session.finish) must check the binary openings by itself
        return r0
    return r0, await lt.reveal()


class FlipNet:
    """Flips bit 0 of the packed binary share this party sends at session step ``step`` (to every peer,
    or only to ``only_to``); with ``flip=False`` it only counts (the control run)."""

    def __init__(self, inner: Net, step: int, flip: bool = True, only_to: int | None = None) -> None:
        self.inner, self.party, self.n = inner, inner.party, inner.n
        self.step, self.flip, self.only_to = step, flip, only_to
        self.hits = 0
        self.sizes: list[int] = []

    async def send(self, to: int, step: int, msg: Any) -> None:
        msg = plain(msg)
        if step == self.step and isinstance(msg, bytes) and self.only_to in (None, to):
            self.hits += 1
            self.sizes.append(len(msg))
            if self.flip:
                msg = bytes([msg[0] ^ 1]) + msg[1:]
        await self.inner.send(to, step, msg)

    async def recv(self, frm: int, step: int) -> Any:
        return await self.inner.recv(frm, step)


def flipped(x: AuthBits, part: str, index: int = 0) -> AuthBits:
    bits, macs = x.bits.copy(), x.macs.copy()
    if part == "share":
        bits[index] ^= 1
    else:
        macs[index, 0] ^= np.uint64(1)
    return AuthBits(x.ctx, bits, macs)


class TamperBits(Forwarding):
    """Binary material whose first batch of ``kind`` has one share bit or MAC bit flipped (``part``:
    ``share``, ``mac``) or, for a daBit, its field share changed (``field``); ``which`` picks the
    triple's a, b or c."""

    def __init__(self, inner: Preprocessing, kind: str, part: str, which: int = 0) -> None:
        super().__init__(inner)
        self.kind, self.part, self.which = kind, part, which
        self.hits = 0

    def _due(self, kind: str) -> bool:
        due = kind == self.kind and not self.hits
        self.hits += due
        return due

    async def and_triples(self, n: int) -> tuple[AuthBits, AuthBits, AuthBits]:
        abc = list(await self.inner.and_triples(n))  # type: ignore[attr-defined]
        if self._due("and"):
            abc[self.which] = flipped(abc[self.which], self.part)
        return abc[0], abc[1], abc[2]

    async def edabits(self, n: int, k: int) -> tuple[SharedArray, AuthBits]:
        r, bits = await self.inner.edabits(n, k)  # type: ignore[attr-defined]
        if self._due("edabit"):
            # bit 1 of element 0: bit 0 of r' reaches no opening where c_0 = 1 (its generate is
            # 0 AND r_0, and the lowest propagate is never used), so neither does a change of it
            if self.part == "field":
                r = tamper(r, 1, "value")
            else:
                bits = flipped(bits, self.part, index=1)
        return r, bits

    async def loose_edabits(self, n: int, k: int) -> tuple[SharedArray, AuthBits]:
        r, bits = await self.inner.loose_edabits(n, k)  # type: ignore[attr-defined]
        if self._due("loose"):  # bit 1, as for edaBits
            if self.part == "field":
                r = tamper(r, 1, "value")
            else:
                bits = flipped(bits, self.part, index=1)
        return r, bits

    async def dabits(self, n: int) -> tuple[SharedArray, AuthBits]:
        f, bits = await self.inner.dabits(n)  # type: ignore[attr-defined]
        if self._due("dabit"):
            if self.part == "field":
                f = tamper(f, 1, "value")
            else:
                bits = flipped(bits, self.part)
        return f, bits


class Watch(Forwarding):
    """An honest party's source, kept so the test can see its keys after the session."""


PARTIES = [(2, 1), (3, 0), (3, 2)]
NET_CHEATS = {  # offset from r0, only_to (None: all), expected payload bytes (5 elements)
    "first-and-layer": (2, None, (2 * (16 + 15) * 5 + 7) // 8),
    "last-and-layer": (6, None, (2 * 1 * 5 + 7) // 8),
    "dabit-conversion": (7, None, 1),
    "dabit-conversion-to-one": (7, "first-honest", 1),
}


async def trunc_prog(s: Session, reveal: bool = True) -> Any:
    """Exact ``floor(x / 2^5)`` on 33 bits: the strict edaBits' path."""
    x = await s.input(mine(s, XS, 0), owner=0)
    r0 = s.stats["rounds"]
    q = await cmp.trunc(s, x, 33, 5)
    return r0, await s.output(q)


async def _run_attack(
    n: int, cheater: int, wrap: dict[str, Any], reveal: bool = True, prog: Any = cmp_prog
) -> tuple[list[Any], Any, list[Watch]]:
    honest = [i for i in range(n) if i != cheater]
    watches: list[Watch] = []

    def watch(pre: Preprocessing) -> Preprocessing:
        watches.append(Watch(pre))
        return watches[-1]

    cheat = Cheat(**wrap)
    ics: dict[int, Any] = {cheater: cheat, **{h: Cheat(pre=watch) for h in honest}}
    res = await run_each(n, P127, prog, reveal, session_options=BINARY, interceptors=ics, deadline=DEADLINE)
    return res, cheat, watches


def _assert_caught(res: list[Any], n: int, cheater: int, watches: list[Watch]) -> None:
    honest = [i for i in range(n) if i != cheater]
    assert_all_aborted(res, honest, "cheat in the binary part")
    assert any(isinstance(r, MacCheckError) for r in res), res
    assert all(not isinstance(r, tuple | int) for r in res)
    for w in watches:  # both MAC key shares of every honest party retired
        assert not w.inner.bctx.delta.any() and not w.inner.ctx.alpha.any()


@pytest.mark.parametrize(("n", "cheater"), PARTIES)
@pytest.mark.parametrize("case", sorted(NET_CHEATS))
async def test_a_flipped_share_in_a_binary_opening_is_caught(n: int, cheater: int, case: str) -> None:
    offset, only, size = NET_CHEATS[case]
    honest = [i for i in range(n) if i != cheater]
    to = honest[0] if only else None
    ok, control, _ = await _run_attack(n, cheater, {"net": lambda net: FlipNet(net, 0, flip=False)})
    r0 = ok[0][0]
    assert all(r[0] == r0 and np.array_equal(r[1], (XS < YS).astype(int)) for r in ok), ok
    step = r0 + offset
    ok, control, _ = await _run_attack(
        n, cheater, {"net": lambda net: FlipNet(net, step, flip=False, only_to=to)}
    )
    assert control.hits and set(control.nets[0].sizes) == {size}, control.nets[0].sizes  # the right opening
    assert all(np.array_equal(r[1], XS < YS) for r in ok), ok
    res, cheat, watches = await _run_attack(n, cheater, {"net": lambda net: FlipNet(net, step, only_to=to)})
    assert cheat.hits
    _assert_caught(res, n, cheater, watches)


PRE_CHEATS = {
    "and-triple-a-mac": ("and", "mac", 0),
    "and-triple-b-share": ("and", "share", 1),
    "and-triple-c-share": ("and", "share", 2),
    "edabit-mac": ("edabit", "mac", 0),
    "edabit-share": ("edabit", "share", 0),
    "edabit-field-share": ("edabit", "field", 0),
    "loose-mac": ("loose", "mac", 0),
    "loose-share": ("loose", "share", 0),
    "loose-field-share": ("loose", "field", 0),
    "dabit-binary-mac": ("dabit", "mac", 0),
    "dabit-binary-share": ("dabit", "share", 0),
    "dabit-field-share": ("dabit", "field", 0),
}


@pytest.mark.parametrize(("n", "cheater"), PARTIES)
@pytest.mark.parametrize("case", sorted(PRE_CHEATS))
async def test_wrong_binary_material_is_caught(n: int, cheater: int, case: str) -> None:
    """A wrong MAC share or share bit of an AND triple, an edaBit or a daBit, or a wrong field share of
    an edaBit or a daBit (caught by the field check)."""
    kind, part, which = PRE_CHEATS[case]
    prog = trunc_prog if kind == "edabit" else cmp_prog  # comparisons mask with loose edaBits
    res, cheat, watches = await _run_attack(
        n, cheater, {"pre": lambda pre: TamperBits(pre, kind, part, which)}, prog=prog
    )
    assert cheat.hits
    _assert_caught(res, n, cheater, watches)


async def trunc_pr_prog(s: Session, reveal: bool = True) -> Any:
    """Probabilistic and exact truncation by 20 of 64-bit values in an ``auto`` session: masks whose
    high part is a loose edaBit."""
    x = await s.input(mine(s, XS * 2**40, 0), owner=0)
    q, e = await run(s, parallel([cmp.trunc_steps(x, 64, 20), cmp.trunc_steps(x, 64, 20, exact=True)]))
    return [await s.output(q), await s.output(e)] if reveal else None


@pytest.mark.parametrize(("n", "cheater"), PARTIES)
@pytest.mark.parametrize("case", ["loose-field-share", "loose-mac"])
async def test_a_wrong_loose_edabit_in_a_truncation_mask_is_caught(n: int, cheater: int, case: str) -> None:
    kind, part, which = PRE_CHEATS[case]
    auto = {"comparison": "auto"}
    for q, e in await run_each(n, P127, trunc_pr_prog, session_options=auto, deadline=DEADLINE):
        assert list(e) == [int(x) << 20 for x in XS] and all(
            0 <= v - (x << 20) <= 1 for v, x in zip(q, XS, strict=True)
        )
    watches: list[Watch] = []

    def watch(pre: Preprocessing) -> Preprocessing:
        watches.append(Watch(pre))
        return watches[-1]

    cheat = Cheat(pre=lambda pre: TamperBits(pre, kind, part, which))
    ics: dict[int, Any] = {cheater: cheat, **{h: Cheat(pre=watch) for h in range(n) if h != cheater}}
    res = await run_each(n, P127, trunc_pr_prog, session_options=auto, interceptors=ics, deadline=DEADLINE)
    assert cheat.hits
    if part == "mac":  # a binary MAC of bits the truncation never opens: nothing to catch, and no harm
        assert all(isinstance(r, list) for r in res), res
        return
    _assert_caught(res, n, cheater, watches)


async def offsets_prog(s: Session, reveal: bool = True) -> Any:
    """``[x + o < 0]`` for three offsets from one loose edaBit (``numeric.ltz_offsets_steps``)."""
    from protocols.apps.numeric import ltz_offsets_steps

    x = await s.input(mine(s, XS, 0), owner=0)
    lts = await run(s, ltz_offsets_steps(x, 33, [0, 5, -3]))
    return [await s.output(v) for v in lts] if reveal else None


@pytest.mark.parametrize(("n", "cheater"), PARTIES)
@pytest.mark.parametrize(
    "case", ["loose-field-share", "loose-share", "and-triple-c-share", "dabit-field-share"]
)
async def test_wrong_material_in_a_comparison_with_offsets_is_caught(n: int, cheater: int, case: str) -> None:
    kind, part, which = PRE_CHEATS[case]
    ok = await run_each(n, P127, offsets_prog, session_options=BINARY, deadline=DEADLINE)
    for r in ok:
        assert [list(v) for v in r] == [[int(x + o < 0) for x in XS] for o in (0, 5, -3)]
    res, cheat, watches = await _run_attack(
        n, cheater, {"pre": lambda pre: TamperBits(pre, kind, part, which)}, prog=offsets_prog
    )
    assert cheat.hits
    _assert_caught(res, n, cheater, watches)


async def test_the_session_end_checks_binary_openings_without_any_output() -> None:
    """No output at all: ``Session.finish`` runs the binary check, and every honest party aborts."""
    ok = await run_each(3, P127, cmp_prog, False, session_options=BINARY, deadline=DEADLINE)
    r0 = ok[0]
    assert ok == [r0] * 3
    res, cheat, watches = await _run_attack(3, 1, {"net": lambda net: FlipNet(net, r0 + 3)}, reveal=False)
    assert cheat.hits
    _assert_caught(res, 3, 1, watches)


# ---------------------------------------------------------------------------------------- the circuits
@pytest.mark.parametrize("rows", [1, 2, 5, 8, 13])
async def test_binary_circuits_against_numpy(rows: int) -> None:
    """``and_rows``, ``carry_out``, ``prefix_carries``, ``lt_public`` and ``sub_public`` on random secret
    bits (edaBits, opened with ``OpenBits`` to know them), against numpy; ``And``, ``DaBits`` and
    ``ToField`` as requests of their own."""
    n = 37

    async def prog(s: Session) -> list[Any]:
        def circuits() -> Any:
            (_, r), (_, q) = yield [EdaBits(n, rows), EdaBits(n, rows)]
            r, q = by_position(r, n, rows), by_position(q, n, rows)
            (q,) = yield [And(q, ~r)]  # generate and propagate exclusive, as in an adder
            (df, db) = (yield [DaBits(n)])[0]
            c = np.random.default_rng(rows).integers(0, 2, size=(rows, n)).astype(np.uint8)  # public
            outs = yield from parallel(
                [
                    and_rows(r, n),
                    carry_out(r, q, n),
                    prefix_carries(r, q, n),
                    lt_public(c, r, n),
                    sub_public(c, r, n),
                ]
            )
            conv = yield [ToField(outs[3]), ToField(db)]
            opened = yield [OpenBits(v) for v in (r, q, db, *outs)]
            return c, opened, conv, df

        c, opened, conv, df = await run(s, circuits())
        return [c, [o.reshape(-1, n) for o in opened], [await s.output(v) for v in (*conv, df)]]

    for c, (r, q, db, all_, carry, prefix, lt, sub), (lt_f, db_f, df) in await run_cluster(
        3, P127, prog, session_options=BINARY
    ):
        assert np.array_equal(all_[0], np.bitwise_and.reduce(r, axis=0))
        g = np.zeros(n, dtype=np.uint8)  # carries: G_i = r_i OR (q_i AND G_{i-1}), row 0's q unused
        want_prefix = []
        for i in range(rows):
            g = r[i] | (q[i] & g) if i else r[0]
            want_prefix.append(g)
        assert np.array_equal(prefix, np.array(want_prefix)) and np.array_equal(carry[0], want_prefix[-1])
        weights = [1 << i for i in range(rows)]
        cv = sum(int(w) * c[i].astype(object) for i, w in enumerate(weights))
        rv = sum(int(w) * r[i].astype(object) for i, w in enumerate(weights))
        assert np.array_equal(lt[0], (cv < rv).astype(np.uint8)) and np.array_equal(lt_f, lt[0])
        dv = (cv - rv) % (1 << rows)
        assert np.array_equal(sub, np.array([(dv >> i) & 1 for i in range(rows)], dtype=np.uint8))
        assert np.array_equal(db_f, db[0]) and np.array_equal(df, db[0])


async def test_empty_inputs_on_the_binary_path() -> None:
    async def prog(s: Session) -> list[Any]:
        e = await SecretInt.input(s, mine(s, np.zeros(0, dtype=np.int64), 0), owner=0)
        lt, eq = await gather(e < 1, e == 0)
        bits = await cmp.bit_decompose(s, e.shares, 8)
        return [await lt.reveal(), await eq.reveal(), bits.size]

    for lt, eq, size in await run_cluster(2, P127, prog, session_options=BINARY):
        assert lt.shape == eq.shape == (0,) and size == 0
