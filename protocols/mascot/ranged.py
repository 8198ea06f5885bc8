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
   (``v_i + rho_i = R_i + 2^W w_i``) and authenticates the ``W`` bits of ``R_i`` and ``w_i``, with one
   more random value ``u`` that masks the proof below.
4. **Check, linear** (a coin after step 3): per owner, a random combination of
   ``sum_j 2^j [b_j] + 2^W [w] - [v] - rho`` over the items is opened and must be zero (MAC-checked).
5. **Check, bits** (QuickSilver's degree-2 check, Yang-Sarkar-Weng-Wang, CCS 2021, on the COPE
   correlations themselves): for owner ``P_i`` and key holder ``P_j`` the authentication left
   ``t + q = alpha_j x`` for every authenticated ``x`` (``P_i`` holds ``t``, ``P_j`` holds ``q``,
   ``auth.py``). Writing ``K = -q``, ``M = t``, ``Delta = alpha_j``: ``M = K + Delta x``, and
   ``K (K + Delta) = M^2 + Delta M (1 - 2 x) + Delta^2 (x^2 - x)``. So for bits the holder's
   ``B = q (q - alpha_j)`` equals ``A0 + alpha_j A1`` with ``A0 = M^2`` and ``A1 = M (1 - 2 x)``, both
   known to the owner. With coin coefficients ``chi`` the owner sends ``U = sum chi A0 + t_u`` and
   ``V = sum chi A1 - u``; the holder checks ``U + alpha_j V = sum chi B - q_u``. If some ``x`` is no
   bit, the difference is a degree-2 polynomial in ``alpha_j`` with leading coefficient
   ``sum chi (x^2 - x)``, nonzero except with probability ``2^-64`` over ``chi``, and ``alpha_j`` is
   unknown to the owner: it passes with probability about ``2 / p``. ``U, V`` are uniform given the
   holder's view (``u`` is uniform and used once), so the check reveals nothing. Every holder then
   tells every party its verdict; one failure aborts the batch everywhere (a party that lies about its
   verdict can only cause an abort, which it could anyway).

The output is ``[R] = sum_i ([v_i] + rho_i - 2^W [w_i])`` (= the bits' value, by step 4).

**Why each ``R_i`` is uniform, even a cheater's.** ``v_i`` is fixed before ``rho_i`` is drawn, so
``(v_i + rho_i) mod 2^W`` is uniform whatever ``v_i`` is, and steps 4-5 force ``R_i`` to be exactly
that (a wrong carry would put ``R_i`` outside ``[0, 2^W)``, which its bits cannot express). The
adversary *knows* its parties' ``R_i`` but cannot choose them: the distribution of ``R`` is the honest
one. An honest ``R_h`` is uniform and secret, so ``R mod 2^W`` is uniform and secret, and
``R < n 2^W``.

**What it is for** (``rounds.Trunc`` with ``rounds.wide_rounding``): a truncation mask whose low part
is ONE ranged random of ``m`` bits instead of ``m`` field random bits: the rounding then adds
``floor((a_low + L) / 2^m)`` for ``L = sum_i R_i`` (``0`` to ``n``, not ``0`` or ``1``), centred by a
public constant, so the result is within ``n / 2 + 1`` units in the last place instead of 1, with the
same expectation. And a high part of ``k + kappa - m`` bits in place of a loose edaBit.

Cost per item at ``n`` parties: every party authenticates ``W + 2`` values (``n - 1`` COPE extensions
each): at ``W = 40``, ``n = 3``, ``p = 2^127 - 1``, about 42 inputs per party where 40 field random
bits are 40 MASCOT triples (each ``n (n - 1)`` Gilboa products and three authentications): about 12
times faster (``benchmarks/offline_bench.py --ranged 40``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from ..commitments import coin_toss
from ..errors import PreprocessingError, ProtocolError
from ..field import PrimeField
from ..mac_check import combine
from ..net import expect_bytes
from ..prg import PRG
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


def decompose(v: np.ndarray, rho: np.ndarray, width: int) -> np.ndarray:
    """Step 3 at one party: the bit planes of ``R = (v + rho) mod 2^W`` and, as plane ``W``, the carry
    (``(W + 1, count)`` uint8)."""
    r, carry = add_mod_pow2(v, rho, width)
    return np.concatenate([bit_planes(r, width), carry[None, :]])


Decompose = Callable[[np.ndarray, np.ndarray, int], np.ndarray]


def _as_field(field: PrimeField, bits: np.ndarray) -> np.ndarray:
    out = field.zeros(bits.size)
    out[0] = bits.reshape(-1).astype(U64)
    return out


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

    # 3. decompose: R = (v + rho) mod 2^W, carry w; authenticate [u, bit planes of R, w]
    planes = decompose(v, rhos[me], width)  # (W + 1, count)
    u = f.random(1, prg)
    mine = f.concat([u, _as_field(f, planes)])
    keep: dict[int, np.ndarray] = {}
    decomposed = await authenticate(s, cope_send, cope_recv, mine, [1 + (width + 1) * count] * n, keep=keep)

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
        bits = SharedArray(s.ctx, d.value[:, 1:], d.mac[:, 1:])
        composed = SharedArray(
            s.ctx, f.compose_pow2(bits.value, count), f.compose_pow2(bits.mac, count)
        )  # sum_j 2^j b_j + 2^W w
        diff = (composed - c).add_public_field(f.neg(rhos[i]))
        val, mac = combine(f, PRG(lin_seeds[i]), [diff.value, diff.mac])
        values.append(val)
        macs.append(mac)
        # the output part of owner i: v + rho - 2^W w
        w_part = SharedArray(s.ctx, bits.value[:, width * count :], bits.mac[:, width * count :])
        outs.append(c.add_public_field(rhos[i]) - w_part.mul_public_field(f.from_ints([1 << width])))
    check = SharedArray(s.ctx, f.from_ints(values), f.from_ints(macs))
    (opened,) = await s.open_unchecked([check])
    await s.mac_check()
    bad = [i for i, z in enumerate(f.to_ints(opened)) if z != 0]
    if bad:
        raise PreprocessingError(
            f"ranged randoms: party {bad[0]}'s bits do not add up to its committed value", culprit=bad[0]
        )

    # 5. the bit check (QuickSilver), every owner to every key holder, then everyone's verdict
    step = s.next_step()
    x_mask = planes.reshape(-1).astype(bool)
    for j in range(n):
        if j == me:
            continue
        t = keep[j]  # column 0: auth's own mask; 1: u; then the planes
        t_u, t_b = t[:, 1:2], t[:, 2:]
        a0, a1 = combine(f, PRG(qs_seeds[me]), [f.square(t_b), f.neg_where(t_b, x_mask)])
        big_u = f.add(f.from_ints([a0]), t_u)
        big_v = f.sub(f.from_ints([a1]), u)
        await s.net.send(j, step, f.to_bytes(f.concat([big_u, big_v])))
    alpha = s.ctx.alpha
    failed: list[int] = []
    for i in range(n):
        if i == me:
            continue
        d = decomposed[i]
        assert d is not None
        q_u, q_b = d.mac[:, 0:1], d.mac[:, 1:]
        (b_sum,) = combine(f, PRG(qs_seeds[i]), [f.mul(q_b, f.sub(q_b, alpha))])
        raw = expect_bytes(await s.net.recv(i, step), i, "a ranged-random proof", 2 * f.elem_bytes)
        got = f.from_bytes(raw, 2)
        if not f.is_canonical(got):
            raise ProtocolError(f"party {i} sent an out-of-range proof value", culprit=i)
        lhs = f.add(got[:, 0:1], f.mul(got[:, 1:2], alpha))
        rhs = f.sub(f.from_ints([b_sum]), q_u)
        if not f.equal(lhs, rhs):
            failed.append(i)
    verdict_step = s.next_step()
    mine_verdict = _FAIL if failed else _OK
    for j in range(n):
        if j != me:
            await s.net.send(j, verdict_step, mine_verdict)
    complaints = list(failed[:1])
    for j in range(n):
        if j != me:
            got_v = bytes(expect_bytes(await s.net.recv(j, verdict_step), j, "a ranged-random verdict", 1))
            if got_v not in (_OK, _FAIL):
                raise ProtocolError(f"party {j} sent a malformed verdict", culprit=j)
            if got_v == _FAIL:
                complaints.append(j)
    if failed:
        raise PreprocessingError(
            f"ranged randoms: party {failed[0]}'s bits failed the bit check", culprit=failed[0]
        )
    if complaints:
        raise PreprocessingError(
            f"ranged randoms: party {complaints[0]} reports a failed bit check", culprit=complaints[0]
        )

    total = outs[0]
    for part in outs[1:]:
        total = total + part
    return total
