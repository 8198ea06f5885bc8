"""Ranged randoms: ``[R]`` with ``R = sum_i R_i``, every ``R_i`` uniform in ``[0, 2^W)``, range proven.

What a probabilistic truncation's mask needs is a random whose *range* is known (so that the masked
value never wraps mod p and the low part's field value is what the truncation subtracts) and which
hides what it masks. Field random bits give that exactly, at the price of a MASCOT triple per bit
(``MascotParty.bits``: a checked square, opened). Here every party proves the range of its OWN
contribution instead, which costs an input per bit:

1. **Commit.** Every party ``P_i`` draws ``v_i`` uniform in ``[0, 2^W)`` per item and authenticates it
   (MASCOT's input protocol, ``auth.authenticate``).
2. **Coin.** A jointly tossed ``rho_i`` in ``[0, 2^W)`` per item and party (after step 1 is fixed).
3. **Decompose.** ``P_i`` takes ``R_i = (v_i + rho_i) mod 2^W`` and its carry ``w_i``
   (``v_i + rho_i = R_i + 2^W w_i``) and authenticates the base-16 digits of ``R_i`` (``digit_widths``:
   the top one narrower if ``W`` is no multiple of 4) and ``w_i``, after ``DEGREE - 1`` random values
   that mask the proof below.
4. **Check, linear** (a coin after step 3): per owner, a random combination of
   ``sum_r 16^r [d_r] + 2^W [w] - [v] - rho`` over the items is opened and must be zero (MAC-checked).
5. **Check, ranges** (``prove_ranges``: QuickSilver's polynomial check, Yang-Sarkar-Weng-Wang, CCS
   2021, run on the COPE correlations themselves). For owner ``P_i`` and key holder ``P_j`` the
   authentication left ``t + q = alpha_j x`` for every authenticated ``x`` (``P_i`` holds ``t``,
   ``P_j`` holds ``q``: ``auth.authenticate(keep=...)``). With ``M = t`` and ``Delta = alpha_j``, ``q =
   Delta x - M``, so the holder's ``prod_(v in S) (q - v Delta)`` is, in the owner's terms, the
   polynomial ``prod_v ((x - v) Delta - M)`` in ``Delta``, whose top coefficient ``prod_v (x - v)``
   vanishes exactly when ``x`` is in the allowed set ``S`` (``{0 .. 15}`` for a digit, ``{0, 1}`` for
   the carry, homogenized to degree 16). The owner sends the other 16 coefficients, combined over the
   items with coin coefficients ``chi`` and masked by the polynomial ``sum_i Delta^(i-1) (Delta s_i -
   M_i)`` of its 15 random values ``s_i`` (uniform but for the one relation the holder checks); the
   holder checks ``sum_e U_e alpha_j^e = sum chi Delta^(16 - |S|) prod (q - v alpha_j) + sum_i
   alpha_j^(i-1) q_i``. A value outside its set leaves a degree-16 polynomial in ``alpha_j`` with a
   nonzero leading coefficient (except with probability ``2^-64`` over ``chi``), and ``alpha_j`` is
   unknown to the owner: it passes with probability about ``16 / p``. Every holder then tells every
   party its verdict; one failure aborts the batch everywhere (a party that lies about its verdict
   can only cause an abort, which it could anyway). The owner's coefficients come from a table:
   coefficient ``k`` is ``e_k(x - v : v in S) (-M)^(|S| - k)``, the elementary symmetric polynomials
   of a small digit times powers of ``-M`` (``_prover_poly``).

The output is ``[R] = sum_i ([v_i] + rho_i - 2^W [w_i])`` (= the digits' value, by step 4).

**Why each ``R_i`` is uniform, even a cheater's.** ``v_i`` is fixed before ``rho_i`` is drawn, so
``(v_i + rho_i) mod 2^W`` is uniform whatever ``v_i`` is, and steps 4-5 force ``R_i`` to be exactly
that (a wrong carry would put ``R_i`` outside ``[0, 2^W)``, which its digits cannot express). The
adversary *knows* its parties' ``R_i`` but cannot choose them: the distribution of ``R`` is the honest
one. An honest ``R_h`` is uniform and secret, so ``R mod 2^W`` is uniform and secret, and
``R < n 2^W``.

**What it is for** (``rounds.Trunc`` with ``rounds.wide_rounding``): a truncation mask whose low part
is ONE ranged random of ``m`` bits instead of ``m`` field random bits: the rounding then adds
``floor((a_low + L) / 2^m)`` for ``L = sum_i R_i`` (``0`` to ``n``, not ``0`` or ``1``), centred by a
public constant, so the result is within ``n / 2 + 1`` units in the last place instead of 1, with the
same expectation. And a high part of ``k + kappa - m`` bits in place of a loose edaBit.

Cost per item at ``n`` parties: every party authenticates ``ceil(W / 4) + 2`` values (``n - 1`` COPE
extensions each) and computes its proof (about 2 x 16 products per digit) and the others' checks (16
per digit each). At ``W = 40``, ``n = 3``, ``p = 2^127 - 1``: 0.56 ms and 48.8 kB per party, where 40
field random bits (40 MASCOT triples, each ``n (n - 1)`` Gilboa products and three authentications)
take 22.5 ms: about 40 times (``python benchmarks/offline_bench.py --sections mascot --only p127:3
--ot softspoken --ranged 40``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from ..commitments import coin_toss
from ..errors import PreprocessingError, ProtocolError
from ..field import PrimeField
from ..mac_check import combine
from ..net import expect_bytes
from ..prg import PRG
from ..rounds import take
from ..shares import SharedArray
from .auth import authenticate

if TYPE_CHECKING:
    from ..online import Session
    from .cope import CopeReceiver, CopeSender

U64 = np.uint64
_OK, _FAIL = b"\x01", b"\x00"


def max_width(field: PrimeField, parties: int) -> int:
    """The widest ``W``: the sum of ``n`` contributions below ``2^(W + bitlen(n))`` keeps two bits of
    room below the field's size (and fits its words)."""
    return max(0, min(64 * field.words, field.bits - 2 - max(1, parties).bit_length()))


def uniform_below_pow2(prg: PRG, count: int, width: int, words: int) -> np.ndarray:
    """``count`` integers uniform in ``[0, 2^width)`` as ``(words, count)`` little-endian limbs."""
    out = prg.random_words((words, count)).astype(U64, copy=False)
    for w in range(words):
        lo = 64 * w
        if width <= lo:
            out[w] = 0
        elif width < lo + 64:
            out[w] &= U64((1 << (width - lo)) - 1)
    return out


def add_mod_pow2(a: np.ndarray, b: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """``(a + b) mod 2^width`` and its carry (0/1, uint8) for limbs below ``2^width``."""
    words, count = a.shape
    out = np.empty_like(a)
    carry = np.zeros(count, dtype=U64)
    for w in range(words):
        s = a[w] + b[w]
        c1 = (s < a[w]).astype(U64)
        s2 = s + carry
        c2 = (s2 < s).astype(U64)
        out[w] = s2
        carry = c1 | c2
    # the bit at position ``width`` is the carry out of [0, 2^width)
    wq, wb = divmod(width, 64)
    if wq < words:
        top = (out[wq] >> U64(wb)) & U64(1)
        out[wq] &= U64((1 << wb) - 1)
        for w in range(wq + 1, words):
            out[w] = 0
        return out, top.astype(np.uint8)
    return out, carry.astype(np.uint8)


def bit_planes(x: np.ndarray, width: int) -> np.ndarray:
    """The ``width`` bits of limbs ``x``, plane by plane: ``(width, count)`` uint8, LSB first."""
    count = x.shape[1]
    out = np.empty((width, count), dtype=np.uint8)
    for j in range(width):
        w, b = divmod(j, 64)
        out[j] = ((x[w] >> U64(b)) & U64(1)).astype(np.uint8)
    return out


DIGIT_BITS = 4
"""Bits per proven digit: base-16 digits, each checked by the degree-16 polynomial ``x (x - 1) .. (x -
15)``: a quarter of the inputs of bits (each input is ``n - 1`` COPE elements of 2 kB per peer at p127),
for about 50 field products per digit at its owner and 16 at each key holder."""


def digit_widths(width: int, digit_bits: int = DIGIT_BITS) -> list[int]:
    """The bits of each decomposition row of a ``width``-bit value: full digits, a narrower top digit
    if ``width`` is no multiple of ``digit_bits``, then the carry (1)."""
    nd = -(-width // digit_bits)
    return [digit_bits] * (nd - 1) + [width - digit_bits * (nd - 1), 1]


def decompose(v: np.ndarray, rho: np.ndarray, width: int) -> np.ndarray:
    """Step 3 at one party: the digits of ``R = (v + rho) mod 2^W`` (``digit_widths``, LSB first) and,
    as the last row, the carry: ``(rows, count)`` uint8."""
    r, carry = add_mod_pow2(v, rho, width)
    planes = bit_planes(r, width)
    rows, j = [], 0
    for bits in digit_widths(width)[:-1]:
        d = np.zeros(planes.shape[1], dtype=np.uint8)
        for b in range(bits):
            d |= planes[j + b] << np.uint8(b)
        rows.append(d)
        j += bits
    rows.append(carry)
    return np.stack(rows)


Decompose = Callable[[np.ndarray, np.ndarray, int], np.ndarray]


DEGREE = 1 << DIGIT_BITS  # of the digit check: the widest digit's number of values


Groups = list[tuple[list[int], int, int]]


def range_groups(parts: list[tuple[int, int]]) -> Groups:
    """``(allowed values, lo, hi)`` for ``prove_ranges``: consecutive segments ``(bits per value,
    values)`` of the authenticated vector (after the ``DEGREE - 1`` masks), a value of ``b`` bits in
    ``0 .. 2^b - 1``; neighbours with the same range merged."""
    out: Groups = []
    lo = DEGREE - 1
    for bits, size in parts:
        allowed = list(range(1 << bits))
        if out and out[-1][0] == allowed and out[-1][2] == lo:
            out[-1] = (allowed, out[-1][1], lo + size)
        else:
            out.append((allowed, lo, lo + size))
        lo += size
    return out


def compose_rows(x: SharedArray, rows: list[int], count: int) -> SharedArray:
    """``sum_r 2^(offset_r) row_r`` over consecutive rows of ``count`` values, row ``r`` holding
    ``rows[r]`` bits (a linear map of the shares: the digits' or bits' value)."""
    f = x.ctx.field
    out = SharedArray(x.ctx, f.zeros(count), f.zeros(count))
    off = 0
    for r, bits in enumerate(rows):
        out = out + take(x, slice(r * count, (r + 1) * count)).mul_public_field(f.from_ints([1 << off]))
        off += bits
    return out


@lru_cache(maxsize=32)
def _symmetric_table(allowed: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """``table[x][k] = e_k(x - v : v in allowed)`` for every allowed ``x`` (the index in ``allowed``)."""
    table = []
    for xv in allowed:
        e = [1]
        for val in allowed:
            a = xv - val
            e = [(e[k] if k < len(e) else 0) + (a * e[k - 1] if k else 0) for k in range(len(e) + 1)]
        table.append(tuple(e))
    return tuple(table)


def _prover_poly(field: PrimeField, x: np.ndarray, m: np.ndarray, allowed: list[int]) -> list[np.ndarray]:
    """The coefficients (of ``Delta^0 ..``) of ``prod_v ((x - v) Delta - M)`` over ``v`` in ``allowed``:
    the key holder's ``prod_v (q - v Delta)`` written in the owner's terms (``q = Delta x - M``). Its top
    coefficient ``prod_v (x - v)`` is zero for an allowed ``x``, which is all an honest owner has.

    Coefficient ``k`` is ``e_k(x - v : v) (-M)^(|allowed| - k)`` (``e_k`` the elementary symmetric
    polynomials of the ``x - v``, which depend on the small digit ``x`` only): a table and the powers
    of ``-M``, ``2 |allowed|`` products per element instead of ``|allowed|^2``."""
    f = field
    size = len(allowed)
    table = _symmetric_table(tuple(allowed))
    # an honest owner's digits are in range; a cheater's proof fails whatever it computes
    idx = np.clip(np.asarray(x, dtype=np.int64) - allowed[0], 0, size - 1)
    neg_m = f.neg(m)
    powers = [None, neg_m]
    for _ in range(size - 1):
        powers.append(f.mul(powers[-1], neg_m))
    out = []
    for k in range(size):
        col = f.from_ints([row[k] % f.modulus for row in table])[:, idx]
        out.append(f.mul(col, powers[size - k]))  # type: ignore[arg-type]
    return out


def small_to_field(field: PrimeField, bits: np.ndarray) -> np.ndarray:
    """Small non-negative integers (bits, digits) as a field vector (they fit its lowest word)."""
    out = field.zeros(bits.size)
    out[0] = bits.reshape(-1).astype(U64)
    return out


async def prove_ranges(
    s: Session,
    authenticated: list[SharedArray | None],
    keep: dict[int, np.ndarray],
    mine: np.ndarray,
    masks: np.ndarray,
    groups: Groups,
    seeds: list[bytes],
) -> None:
    """Step 5: every party proves that its authenticated values (``authenticate(..., keep=keep)`` of
    ``[masks, values]``, the ``DEGREE - 1`` masks first) lie in their allowed sets, to every other
    party, with QuickSilver's degree-``DEGREE`` check; then every party's verdict, and
    ``PreprocessingError`` everywhere if one failed. ``groups``: ``(allowed values, lo, hi)`` column
    ranges of the authenticated vectors (masks at ``0 .. DEGREE - 2``), the same at every party;
    ``mine``: our values in columns ``DEGREE - 1 ..``; ``seeds[i]``: owner ``i``'s coin seed."""
    f = s.field
    me, n = s.party, s.n
    head = DEGREE - 1
    step = s.next_step()
    for j in range(n):
        if j == me:
            continue
        t = keep[j][:, 1:]  # column 0 is auth's own mask
        coeffs = [0] * DEGREE
        prg = PRG(seeds[me])
        for allowed, lo, hi in groups:
            poly = _prover_poly(f, mine[lo - head : hi - head], t[:, lo:hi], allowed)
            shift = DEGREE - len(allowed)
            sums = combine(f, PRG(prg.random_bytes(16)), poly[: DEGREE - shift])
            for e, v_e in enumerate(sums):
                coeffs[e + shift] += v_e
        # the mask polynomial sum_i Delta^(i-1) (Delta s_i - M_i): coefficients -M_1, s_e - M_(e+1), s_(D-1)
        big = f.from_ints(coeffs)
        big[:, 0:1] = f.sub(big[:, 0:1], t[:, 0:1])
        for e in range(1, DEGREE - 1):
            big[:, e : e + 1] = f.sub(f.add(big[:, e : e + 1], masks[:, e - 1 : e]), t[:, e : e + 1])
        big[:, DEGREE - 1 :] = f.add(big[:, DEGREE - 1 :], masks[:, DEGREE - 2 : DEGREE - 1])
        await s.net.send(j, step, f.to_bytes(big))
    alpha = s.ctx.alpha
    powers = [f.from_ints([1])]
    for _ in range(DEGREE):
        powers.append(f.mul(powers[-1], alpha))
    v_alpha = [f.mul(f.from_ints([v]), alpha) for v in range(DEGREE)]  # v Delta, every digit value
    failed: list[int] = []
    for i in range(n):
        if i == me:
            continue
        d = authenticated[i]
        assert d is not None
        q = d.mac
        expect = f.zeros(1)
        prg = PRG(seeds[i])
        for allowed, lo, hi in groups:
            prod = f.sub(q[:, lo:hi], v_alpha[allowed[0]])
            for val in allowed[1:]:
                prod = f.mul(prod, f.sub(q[:, lo:hi], v_alpha[val]))
            (b_sum,) = combine(f, PRG(prg.random_bytes(16)), [prod])
            expect = f.add(expect, f.mul(f.from_ints([b_sum]), powers[DEGREE - len(allowed)]))
        for e in range(1, DEGREE):  # the masks: sum_i Delta^(i-1) q_i
            expect = f.add(expect, f.mul(q[:, e - 1 : e], powers[e - 1]))
        raw = expect_bytes(await s.net.recv(i, step), i, "a range proof", DEGREE * f.elem_bytes)
        got = f.from_bytes(raw, DEGREE)
        if not f.is_canonical(got):
            raise ProtocolError(f"party {i} sent an out-of-range proof value", culprit=i)
        lhs = f.zeros(1)
        for e in range(DEGREE):
            lhs = f.add(lhs, f.mul(got[:, e : e + 1], powers[e]))
        if not f.equal(lhs, expect):
            failed.append(i)
    verdict_step = s.next_step()
    mine_verdict = _FAIL if failed else _OK
    for j in range(n):
        if j != me:
            await s.net.send(j, verdict_step, mine_verdict)
    complaints = list(failed[:1])
    for j in range(n):
        if j != me:
            got_v = bytes(expect_bytes(await s.net.recv(j, verdict_step), j, "a range-proof verdict", 1))
            if got_v not in (_OK, _FAIL):
                raise ProtocolError(f"party {j} sent a malformed verdict", culprit=j)
            if got_v == _FAIL:
                complaints.append(j)
    if failed:
        raise PreprocessingError(f"party {failed[0]}'s digits failed the digit check", culprit=failed[0])
    if complaints:
        raise PreprocessingError(f"party {complaints[0]} reports a failed digit check", culprit=complaints[0])


async def generate_ranged(
    s: Session,
    cope_send: dict[int, CopeSender],
    cope_recv: dict[int, CopeReceiver],
    count: int,
    width: int,
    *,
    decompose: Decompose = decompose,
) -> SharedArray:
    """``count`` ranged randoms of ``width`` bits (module docstring): ``[R]``, ``R = sum_i R_i`` with
    every ``R_i`` uniform in ``[0, 2^width)``. Raises ``PreprocessingError`` if a check fails.
    ``decompose`` is this party's step 3 (a cheating party's, in the tests)."""
    f = s.field
    me, n = s.party, s.n
    top = max_width(f, n)
    if not 1 <= width <= top:
        raise ValueError(f"ranged randoms of {width} bits: {f.name} at {n} parties allows 1 to {top}")
    if count < 0:
        raise ValueError(f"the number of ranged randoms must not be negative, got {count}")
    if count == 0:
        return SharedArray(s.ctx, f.zeros(0), f.zeros(0))
    prg = PRG()  # our secret randomness (os.urandom-seeded)

    # 1. commit: v uniform in [0, 2^W)
    v = uniform_below_pow2(prg, count, width, f.words)
    committed = await authenticate(s, cope_send, cope_recv, v, [count] * n)

    # 2. coin: rho_i for every owner i and item
    steps = (s.next_step(), s.next_step())
    rho_seed = await coin_toss(s.net, steps, s.commit_context("ranged-rho", steps[0]))
    rho_prg = PRG(rho_seed)
    rhos = [uniform_below_pow2(rho_prg, count, width, f.words) for _ in range(n)]

    # 3. decompose: R = (v + rho) mod 2^W into digits and the carry w; authenticate the proof's D - 1
    # masks, then the rows
    widths = digit_widths(width)
    rows = decompose(v, rhos[me], width)
    masks = f.random(DEGREE - 1, prg)
    mine = f.concat([masks, small_to_field(f, rows)])
    keep: dict[int, np.ndarray] = {}
    size = DEGREE - 1 + len(widths) * count
    decomposed = await authenticate(s, cope_send, cope_recv, mine, [size] * n, keep=keep)
    head = DEGREE - 1  # the masks' columns

    # 4. the linear check, one opened value per owner
    steps = (s.next_step(), s.next_step())
    seed = await coin_toss(s.net, steps, s.commit_context("ranged-check", steps[0]))
    coins = PRG(seed)
    lin_seeds = [coins.random_bytes(16) for _ in range(n)]
    qs_seeds = [coins.random_bytes(16) for _ in range(n)]
    values, macs = [], []
    outs: list[SharedArray] = []
    for i in range(n):
        d = decomposed[i]
        c = committed[i]
        assert d is not None and c is not None
        composed = compose_rows(take(d, slice(head, None)), widths, count)  # sum 16^r d_r + 2^W w
        diff = (composed - c).add_public_field(f.neg(rhos[i]))
        val, mac = combine(f, PRG(lin_seeds[i]), [diff.value, diff.mac])
        values.append(val)
        macs.append(mac)
        # the output part of owner i: v + rho - 2^W w
        w_part = take(d, slice(head + (len(widths) - 1) * count, None))
        outs.append(c.add_public_field(rhos[i]) - w_part.mul_public_field(f.from_ints([1 << width])))
    check = SharedArray(s.ctx, f.from_ints(values), f.from_ints(macs))
    (opened,) = await s.open_unchecked([check])
    await s.mac_check()
    bad = [i for i, z in enumerate(f.to_ints(opened)) if z != 0]
    if bad:
        raise PreprocessingError(
            f"ranged randoms: party {bad[0]}'s digits do not add up to its committed value", culprit=bad[0]
        )

    # 5. the digit check (QuickSilver, degree DEGREE), every owner to every key holder, then verdicts
    await prove_ranges(
        s, decomposed, keep, rows.reshape(-1), masks, range_groups([(b, count) for b in widths]), qs_seeds
    )

    total = outs[0]
    for part in outs[1:]:
        total = total + part
    return total
