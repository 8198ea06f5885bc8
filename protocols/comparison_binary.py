"""The binary-domain path of ``comparison``: mask and open in the field, the carry circuit on AND
triples, the result back in the field through daBits (Escudero, Ghosh, Keller, Rachuri and Scholl,
"Improved primitives for MPC over mixed arithmetic-binary circuits", CRYPTO 2020, §5; the structure of
MP-SPDZ's ``Mod2mField``/``PRandM`` with edaBits and ``BitLTL``, written for our rounds and bit layout).

``comparison`` picks this path when the session's ``comparison_domain`` is ``"binary"`` (or when asked
with ``domain="binary"``), and checks the declared range first; the functions here take flat, non-empty,
range-checked inputs. A separate module because it needs the binary domain (``binary.circuits``), which
the field path does not, and so that each path reads on its own; the API stays ``comparison``'s.

The common core, ``mod2m_steps``: for ``b`` in ``[0, 2^K)`` and ``0 < m <= K``, two edaBits give
``r = r' + 2^m r''``: ``r'`` of ``m`` bits whose bits are needed in the binary domain, and ``r''`` of
``K + kappa - m`` bits that is only ever used in the field (the field half of an edaBit: a *bounded*
random is what it must be, so that ``c`` does not wrap, and a field-only source of bounded randoms
does not exist in ``MixedPreprocessing``; its binary half is dropped). ``c = b + r`` is opened in the
field (``c < 2^K + 2^(K + kappa) < p``: no wrap; ``2^-kappa``-close to uniform), and
``b mod 2^m = c' - r' + 2^m [c' < r']`` with ``c' = c mod 2^m`` public: the borrow ``[c' < r']`` is
``binary.circuits.lt_public`` on the ``m`` bits of ``r'`` and comes back to the field through a daBit.
Then, all with ``kappa = 40``:

=============  =====================  =============================  ======  ===========
operation      rounds                 AND gates per element          daBits  edaBit bits
=============  =====================  =============================  ======  ===========
ltz            2 + ceil(log2(K - 1))  2 (K - 2) - ceil(log2(K - 1))  1       K + kappa
trunc, exact   2 + ceil(log2 m)       2 (m - 1) - ceil(log2 m)       1       K + kappa
eqz            2 + ceil(log2 K)       K - 1                          1       K + kappa
bit_decompose  2 + ceil(log2(K - 1))  Sklansky on K - 1 positions    K       K + kappa
trunc, prob.   1                      0                              0       K + kappa
=============  =====================  =============================  ======  ===========

(one field opening, the circuit's AND layers, one binary opening for the daBits; of the edaBit bits
only ``m`` (``K - 1``, ``m``, ``K``, ``K``, none) are used in the binary domain.)

* ``ltz``: ``m = K - 1`` on ``b = a + 2^(K-1)``: ``a < 0`` iff ``b - (b mod 2^m) = 0``.
* exact truncation: ``floor(a / 2^m) = (a - (b mod 2^m)) / 2^m`` (``2^(K-1)`` is a multiple of
  ``2^m``). The probabilistic one (``rounds.Trunc``) needs no borrow and no binary work at all: it takes
  the field halves of the same two edaBits (``rounds._fulfil``).
* ``eqz``: ``r'`` of ``K`` bits, ``t = (c - 2^(K-1)) mod 2^K`` public; ``a = 0`` iff ``r' = t`` bit for
  bit: the AND of the ``K`` bits ``r_j XNOR t_j`` (``and_rows``), converted with one daBit.
* ``bit_decompose``: the bits of ``(t - r') mod 2^K`` by a binary subtractor (``sub_public``: all
  carries, Sklansky), the sum bits XORs (local, unlike the field path's final multiplication), then
  ``K`` daBits convert them.

Every opening is unchecked and on a to-check list: the field one on the session's, the binary ones
on the session's attached ``BitChecker``, and ``Session.mac_check`` (before every output) runs both.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .binary.bits import AuthBits
from .binary.circuits import (
    EdaBits,
    LooseEdaBits,
    ToField,
    and_rows,
    bit_rows,
    by_position,
    lt_public,
    sub_public,
)
from .binary.edabits import HIDE, loose_max_bits
from .field import PrimeField
from .rounds import Open, Steps, inv_pow2, one_minus, parallel, pow2, public_low_bits, public_mod2m
from .shares import SharedArray


def masks_steps(
    f: PrimeField, n: int, m: int, total: int
) -> Steps[tuple[SharedArray, AuthBits, SharedArray]]:
    """``(r', [[r' bits]] as (m, n) rows, r = r' + 2^m r'')`` for ``r`` of ``total`` bits, from an
    ``m``-bit edaBit and the field half of a ``(total - m)``-bit one. No round."""
    (lo, lo_bits), (hi, _) = yield [EdaBits(n, m), EdaBits(n, total - m)]
    return lo, by_position(lo_bits, n, m), lo + hi.mul_public_field(pow2(f, m))


def mod2m_steps(b: SharedArray, k: int, m: int, kappa: int) -> Steps[SharedArray]:
    """``b mod 2^m`` for ``b`` in ``[0, 2^k)``, ``0 < m < k``: one field opening, ``ceil(log2 m)`` AND
    layers and one daBit conversion."""
    ctx, n = b.ctx, b.size
    f = ctx.field
    r_low, r_bits, r = yield from masks_steps(f, n, m, k + kappa)
    (c,) = yield [Open(b, r)]
    borrow = yield from lt_public(public_low_bits(ctx, c, m), r_bits, n)
    (u,) = yield [ToField(borrow)]
    return (u.mul_public_field(pow2(f, m)) - r_low).add_public_field(public_mod2m(ctx, c, m))


def loose_fits(f: PrimeField, parties: int, k: int, kappa: int) -> bool:
    """Whether ``k``-bit values can be masked with ONE loose edaBit (``loose_mask_steps``): its
    ``HIDE`` hiding bits must cover ``kappa`` and ``a + f`` in its bucket check must fit the field.
    Otherwise the two strict edaBits of ``masks_steps`` are used."""
    return kappa <= HIDE - 2 and k <= loose_max_bits(f, parties)


def loose_mask_steps(a: SharedArray, k: int) -> Steps[tuple[AuthBits, np.ndarray]]:
    """Open ``c = a + 2^(k-1) + R`` for one loose edaBit ``R``; return the ``(k, n)`` rows of
    ``rho = R mod 2^k`` and ``t = c mod 2^k`` as a ``(k, n)`` public bit matrix. With ``b = a +
    2^(k-1)`` in ``[0, 2^k)``: ``b = (t - rho) mod 2^k`` (``c = b + R`` over the integers, since
    ``b + R < 2^k + n 2^(k + HIDE) < p``). ``t`` is uniform (``rho`` is) and the rest of ``c``,
    ``floor(c / 2^k) = floor(R / 2^k) + [t < rho]``, hides the borrow within about ``2^(1 - HIDE)``.
    ``R``'s field value is never split: the bits of ``R`` above ``k`` are not needed anywhere."""
    ctx, n = a.ctx, a.size
    f = ctx.field
    ((r, r_bits),) = yield [LooseEdaBits(n, k)]
    (c,) = yield [Open(a.add_public_field(pow2(f, k - 1)), r)]
    return by_position(r_bits, n, k), public_low_bits(ctx, c, k)


def ltz_steps(a: SharedArray, k: int, kappa: int) -> Steps[SharedArray]:
    """``[a < 0]`` for ``k``-bit signed ``a`` (``k >= 2``): ``a < 0`` iff bit ``k - 1`` of ``b = a +
    2^(k-1)`` is 0, and that bit is ``t_(k-1) XOR rho_(k-1) XOR [t' < rho']`` on the low ``k - 1``
    bits. One loose edaBit where it fits (``loose_fits``), else two strict ones (``mod2m_steps``)."""
    f, n = a.ctx.field, a.size
    if not loose_fits(f, a.ctx.n, k, kappa):
        b = a.add_public_field(pow2(f, k - 1))
        low = yield from mod2m_steps(b, k, k - 1, kappa)
        return one_minus((b - low).mul_public_field(inv_pow2(f, k - 1)))
    rho, t = yield from loose_mask_steps(a, k)
    borrow = yield from lt_public(t[: k - 1], bit_rows(rho, n, 0, k - 1), n)
    top = bit_rows(rho, n, k - 1, k).xor_public(t[k - 1] ^ np.uint8(1))  # NOT (t XOR rho) at k - 1
    (out,) = yield [ToField(borrow ^ top)]
    return out  # type: ignore[no-any-return]


def ltz_offsets_steps(a: SharedArray, k: int, offsets: list[int]) -> Steps[list[SharedArray]]:
    """``[a + o < 0]`` for each public offset ``o`` (every ``a + o`` a ``k``-bit signed value) from ONE
    loose edaBit and ONE opening ``c = a + 2^(k-1) + R``: for each ``o``, ``c + o`` is the opening
    ``ltz_steps`` would have made of ``a + o`` with the same mask, so ``t_o = (c + o) mod 2^k`` is
    public and the sign of ``a + o`` is ``ltz_steps``' circuit on ``t_o`` and the same ``rho``. Each
    result leaves the binary domain through its own daBit, so the outputs reveal nothing together
    that they would not alone; the circuits of all offsets share their AND layers (``parallel``).
    The caller checks ``loose_fits``; ``c + o`` does not wrap because ``a + o + 2^(k-1) >= 0``."""
    lts = yield from ltz_offsets_bits_steps(a, k, offsets)

    def one(lt: AuthBits) -> Steps[SharedArray]:
        (out,) = yield [ToField(lt)]
        return out  # type: ignore[no-any-return]

    return (yield from parallel([one(lt) for lt in lts]))


def ltz_offsets_bits_steps(a: SharedArray, k: int, offsets: list[int]) -> Steps[list[AuthBits]]:
    """``ltz_offsets_steps``' results still in the binary domain (``AuthBits``, one per element), for
    a caller that combines them there before it converts what it needs (one daBit per converted bit)."""
    ctx, n = a.ctx, a.size
    f = ctx.field
    ((r, r_bits),) = yield [LooseEdaBits(n, k)]
    (c,) = yield [Open(a.add_public_field(pow2(f, k - 1)), r)]
    rho = by_position(r_bits, n, k)
    low, top = bit_rows(rho, n, 0, k - 1), bit_rows(rho, n, k - 1, k)

    def one(o: int) -> Steps[AuthBits]:
        t = public_low_bits(ctx, f.add(c, f.from_ints([o])) if o else c, k)
        borrow = yield from lt_public(t[: k - 1], low, n)
        return borrow ^ top.xor_public(t[k - 1] ^ np.uint8(1))

    return (yield from parallel([one(int(o)) for o in offsets]))


def trunc_steps(a: SharedArray, k: int, m: int, kappa: int) -> Steps[SharedArray]:
    """``floor(a / 2^m)`` exactly, ``a`` of ``k`` bits, ``0 < m < k``."""
    f = a.ctx.field
    low = yield from mod2m_steps(a.add_public_field(pow2(f, k - 1)), k, m, kappa)
    return (a - low).mul_public_field(inv_pow2(f, m))


def _masked_bits(a: SharedArray, k: int, kappa: int) -> Steps[tuple[AuthBits, Any]]:
    """Open ``c = a + 2^(k-1) + r``; the ``(k, n)`` rows of ``r mod 2^k`` and ``t = (c - 2^(k-1)) mod
    2^k`` as a ``(k, n)`` public bit matrix (``a = (t - r) mod 2^k`` in two's complement). ``r`` is
    one loose edaBit where it fits, else a strict ``k``-bit one plus the field half of another."""
    ctx, n = a.ctx, a.size
    f = ctx.field
    if loose_fits(f, ctx.n, k, kappa):
        r_bits, t = yield from loose_mask_steps(a, k)
    else:
        _, r_bits, r = yield from masks_steps(f, n, k, k + kappa)
        (c,) = yield [Open(a, r.add_public_field(pow2(f, k - 1)))]
        t = public_low_bits(ctx, c, k)
    t[k - 1] ^= 1
    return r_bits, t


def eqz_steps(a: SharedArray, k: int, kappa: int) -> Steps[SharedArray]:
    """``[a = 0]`` for ``k``-bit signed ``a``."""
    n = a.size
    r_bits, t = yield from _masked_bits(a, k, kappa)
    same = r_bits.xor_public(1 - t.reshape(-1))  # r_j XNOR t_j
    z = yield from and_rows(same, n)
    (out,) = yield [ToField(z)]
    return out  # type: ignore[no-any-return]


def bit_decompose_binary_steps(a: SharedArray, k: int, kappa: int) -> Steps[AuthBits]:
    """The ``k`` two's complement bits of ``a`` in the binary domain: ``(k, n)`` rows of ``AuthBits``."""
    r_bits, t = yield from _masked_bits(a, k, kappa)
    return (yield from sub_public(t, r_bits, a.size))


def bit_decompose_steps(a: SharedArray, k: int, kappa: int) -> Steps[SharedArray]:
    """The ``k`` two's complement bits of ``a`` as field sharings: a ``(k, n)`` row-major matrix."""
    bits = yield from bit_decompose_binary_steps(a, k, kappa)
    (out,) = yield [ToField(bits)]
    return out  # type: ignore[no-any-return]
