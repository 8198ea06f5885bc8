"""Loose edaBits from range proofs: the comparisons' masks with no cut-and-choose.

A loose edaBit (``protocols.binary.edabits``: ``[R]`` in the field with ``R = sum_i R_i``, every
party's ``R_i`` uniform in ``[0, 2^(k + HIDE))``, and the ``k`` bits of ``R mod 2^k`` in the binary
domain) needs every party's field value to match its bits. The cut-and-choose proves that on whole
sums, with ``B`` items per output (``B = 5`` for a thousand) and a ``k + HIDE``-bit adder per check:
about 1,150 AND triples per 40-bit mask at three parties. Here each party proves it about its OWN
contribution, on its own inputs, as ``ranged.py`` does:

1. **Inputs.** Every party ``P_i`` draws the ``k`` low bits ``b`` of ``R_i`` (per item), ``CHECKS``
   mask bits ``c``, the high part ``H_i`` uniform in ``[0, 2^HIDE)`` (as base-16 digits) and per check
   a field mask ``s_t`` uniform in ``[0, 2^S)`` (digits; ``S = 40 + bitlen(k count + 1)``). It
   authenticates ``b``, ``c`` and the digits in the field (MASCOT's input protocol, one COPE element
   each) and ``b``, ``c`` in the binary domain (``BitSession.input``).
2. **Parity checks** (coin after step 1): ``CHECKS`` uniform subsets ``T_t`` of the ``k count`` bits.
   Per owner, the parties open ``F_t = sum_(T_t) [b] + [c_t] + 2 [s_t]`` in the field and
   ``P_t = XOR_(T_t) [[b]] XOR [[c_t]]`` in the binary domain (both MAC-checked), and every party
   checks ``F_t = P_t (mod 2)``. If the owner's field bits differ from its binary bits anywhere (a set
   ``J``), ``|T_t cap J|`` is odd with probability 1/2 whatever it did with ``c_t``: it passes all
   ``CHECKS = 40`` with probability ``2^-40``. ``P_t`` is uniform (``c_t`` is used once) and ``F_t``
   reveals its sum's parity only (``s_t`` pads the sum by 40 bits).
3. **Range proofs** (``ranged.prove_ranges``): the field ``b`` and ``c`` are bits, the digits digits,
   so ``F_t`` cannot wrap mod p (that a parity of a field value means anything rests on it) and
   ``R_i = sum_j 2^j b_j + 2^k H_i`` is below ``2^(k + HIDE)``.
4. **Outputs.** ``[R] = sum_i [R_i]`` in the field; in binary, the ``n`` parties' ``k``-bit numbers are
   summed by adders (``edabits.sum_numbers``, ``edabits.sum_circuit_ands``: ``k`` ANDs per carry-save
   layer and the ripple), and the ``k`` low bits of the sum are the bits of ``R mod 2^k``.

An honest party's ``R_i`` is uniform in ``[0, 2^(k + HIDE))``, which is all the loose edaBit's contract
promises (``R mod 2^k`` uniform, ``floor(R / 2^k)`` holding ``HIDE`` uniform bits, ``R < n 2^(k +
HIDE)``): a cheater's ``R_i`` is in range too, and whatever its distribution, the sum with an honest
one is uniform mod ``2^k``. Cost per mask at three parties, ``k = 40``: ``k + HIDE / 4`` (51) inputs per
party and about 2 k AND triples (the sum), against ``B`` private edaBits and ``B (n - 1) + B - 1`` adders
of ``k + HIDE`` bits each.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from ..binary.bits import AuthBits
from ..binary.edabits import (
    HIDE,
    AndSupply,
    extra_bits,
    from_planes,
    loose_max_bits,
    planes_of,
    run_gates,
    solid,
    sum_circuit_ands,
    sum_numbers,
)
from ..commitments import coin_toss
from ..errors import PreprocessingError
from ..prg import PRG
from ..rounds import compose_bits, take
from ..shares import SharedArray
from .auth import authenticate
from .ranged import (
    DEGREE,
    compose_rows,
    digit_widths,
    prove_ranges,
    range_groups,
    small_to_field,
    uniform_below_pow2,
)

if TYPE_CHECKING:
    from ..binary.session import BitSession
    from ..online import Session
    from .cope import CopeReceiver, CopeSender

Tamper = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
CHECKS = 40  # parity checks per batch: a party whose bits differ passes with probability 2^-CHECKS
PAD = 40  # bits by which s_t pads a parity check's sum
MAX_SLICE_BITS = 1 << 18  # bits per slice: the subsets are CHECKS bytes per bit; 2 s_t must fit the field


def digit_rows(values: np.ndarray, width: int) -> np.ndarray:
    """Base-16 digits (``digit_widths(width)`` without the carry) of limbs ``values`` below
    ``2^width``: ``(rows, count)`` uint8, least significant first."""
    rows = []
    off = 0
    for bits in digit_widths(width)[:-1]:
        w, b = divmod(off, 64)
        d = (values[w] >> np.uint64(b)) & np.uint64((1 << bits) - 1)
        if b + bits > 64 and w + 1 < values.shape[0]:  # a digit across two words
            d |= (values[w + 1] << np.uint64(64 - b)) & np.uint64((1 << bits) - 1)
        rows.append(d.astype(np.uint8))
        off += bits
    return np.stack(rows)


async def generate_proven_loose(
    s: Session,
    bs: BitSession,
    cope_send: dict[int, CopeSender],
    cope_recv: dict[int, CopeReceiver],
    count: int,
    k: int,
    *,
    tamper: Tamper | None = None,
) -> tuple[SharedArray, AuthBits]:
    """``count`` loose edaBits of ``k`` bits (the contract of ``edabits.generate_loose_edabits``):
    ``([R], [[R mod 2^k]])``, bits element by element, LSB first. ``PreprocessingError`` if some
    party's field bits differ from its binary bits or a range proof fails, ``MacCheckError`` for a
    wrong share anywhere. ``tamper(bits, values)``: a cheating party's inputs (the tests): its binary
    bits (``k count + CHECKS``) and field values (those bits, then the digits) before they are input."""
    f, ctx = s.field, bs.ctx
    me, n = s.party, s.n
    top = loose_max_bits(f, n)
    if not 1 <= k <= top:
        raise ValueError(f"loose edaBits of {k} bits: this field and party count allow 1 to {top}")
    if count < 0:
        raise ValueError(f"the number of loose edaBits must not be negative, got {count}")
    if bs.s is not s:
        raise ValueError("the BitSession belongs to another session")
    if count == 0:
        return SharedArray(s.ctx, f.zeros(0), f.zeros(0)), AuthBits.empty(ctx)
    per = max(1, min(MAX_SLICE_BITS, (1 << (f.bits - 3 - PAD)) - 2) // k)
    if count > per:  # in slices: the parity checks' subsets and pads stay small (and fit p61)
        parts = [
            await generate_proven_loose(s, bs, cope_send, cope_recv, min(per, count - lo), k, tamper=tamper)
            for lo in range(0, count, per)
        ]
        return SharedArray.concat([p[0] for p in parts]), AuthBits.concat([p[1] for p in parts])
    nbits = count * k
    pad_width = PAD + (nbits + 1).bit_length()
    hide_rows, pad_rows = digit_widths(HIDE)[:-1], digit_widths(pad_width)[:-1]
    prg = PRG()

    # 1. inputs: bits (element by element) and check bits in both domains; the digits in the field
    bits = (np.frombuffer(prg.random_bytes(nbits + CHECKS), dtype=np.uint8) & 1).copy()
    high = digit_rows(uniform_below_pow2(prg, count, HIDE, f.words), HIDE)
    pads = digit_rows(uniform_below_pow2(prg, CHECKS, pad_width, f.words), pad_width)
    masks = f.random(DEGREE - 1, prg)
    values = np.concatenate([bits, high.reshape(-1), pads.reshape(-1)])
    if tamper is not None:
        bits, values = tamper(bits.copy(), values.copy())
    layout = [(1, nbits + CHECKS)] + [(b, count) for b in hide_rows] + [(b, CHECKS) for b in pad_rows]
    size = DEGREE - 1 + values.size
    keep: dict[int, np.ndarray] = {}
    fields = await authenticate(
        s, cope_send, cope_recv, f.concat([masks, small_to_field(f, values)]), [size] * n, keep=keep
    )
    binaries = [await bs.input(bits if owner == me else None, owner=owner) for owner in range(n)]

    # 2. parity checks, per owner, on subsets from a coin tossed now
    steps = (s.next_step(), s.next_step())
    seed = await coin_toss(s.net, steps, s.commit_context("proven-loose", steps[0]))
    coins = PRG(seed)
    qs_seeds = [coins.random_bytes(16) for _ in range(n)]
    sel = (np.frombuffer(coins.random_bytes(CHECKS * nbits), dtype=np.uint8) & 1).reshape(CHECKS, nbits)
    sel = sel.astype(bool)
    head = DEGREE - 1
    f_vals, f_macs, p_bits, p_macs = [], [], [], []
    hi_lo = head + nbits + CHECKS
    pad_lo = hi_lo + len(hide_rows) * count
    chosen = [np.flatnonzero(row) for row in sel]  # T_t, the same for every owner
    for i in range(n):
        x = fields[i]
        b = binaries[i]
        assert x is not None
        pad = compose_rows(take(x, slice(pad_lo, pad_lo + len(pad_rows) * CHECKS)), pad_rows, CHECKS)
        for t in range(CHECKS):
            cols = head + chosen[t]
            c_col = head + nbits + t
            f_vals.append(
                f.sum(x.value[:, cols])
                + f.sum(x.value[:, c_col : c_col + 1])
                + 2 * f.sum(pad.value[:, t : t + 1])
            )
            f_macs.append(
                f.sum(x.mac[:, cols]) + f.sum(x.mac[:, c_col : c_col + 1]) + 2 * f.sum(pad.mac[:, t : t + 1])
            )
            idx = np.concatenate([chosen[t], [nbits + t]])
            p_bits.append(np.bitwise_xor.reduce(b.bits[idx]))
            p_macs.append(np.bitwise_xor.reduce(b.macs[idx], axis=0))
    f_check = SharedArray(s.ctx, f.from_ints(f_vals), f.from_ints(f_macs))
    p_check = AuthBits(ctx, np.asarray(p_bits, dtype=np.uint8), np.stack(p_macs).astype(np.uint64))
    (f_open,) = await s.open_unchecked([f_check])
    (p_open,) = await bs.open_unchecked([p_check])
    await s.mac_check()
    await bs.check()
    parities = np.asarray([v & 1 for v in f.to_ints(f_open)], dtype=np.uint8)
    bad = np.flatnonzero(parities != np.asarray(p_open, dtype=np.uint8).reshape(-1))
    if bad.size:
        culprit = int(bad[0]) // CHECKS
        raise PreprocessingError(
            f"loose edaBits: party {culprit}'s field bits differ from its binary bits", culprit=culprit
        )

    # 3. range proofs: bits are bits, digits digits
    await prove_ranges(s, fields, keep, values, masks, range_groups(layout), qs_seeds)

    # 4. outputs: [R] = sum_i (sum_j 2^j b_j + 2^k H_i); the bits of the binary sum mod 2^k
    total: SharedArray | None = None
    numbers = []
    for i in range(n):
        x = fields[i]
        assert x is not None
        low_cols = take(x, slice(head, head + nbits))
        planes = SharedArray(  # element-major to plane-major (row j: bit j of every item)
            s.ctx,
            np.ascontiguousarray(low_cols.value.reshape(f.words, count, k).transpose(0, 2, 1)).reshape(
                f.words, nbits
            ),
            np.ascontiguousarray(low_cols.mac.reshape(f.words, count, k).transpose(0, 2, 1)).reshape(
                f.words, nbits
            ),
        )
        low = compose_bits(planes, count, 0, k)
        h = compose_rows(take(x, slice(hi_lo, pad_lo)), hide_rows, count)
        r_i = low + h.mul_public_field(f.from_ints([1 << k]))
        total = r_i if total is None else total + r_i
        numbers.append(planes_of(binaries[i][:nbits], k))
    assert total is not None
    full = k + extra_bits(n, k)
    supply = AndSupply(bs, count * sum_circuit_ands(n, k))
    sums = await run_gates(bs, supply, sum_numbers(numbers, full))
    assert supply.remaining == 0, "the AND triples were miscounted"
    return total, from_planes([solid(ctx, p, count) for p in sums[:k]])
