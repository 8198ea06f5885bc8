"""Secure integer primitives from masked openings: comparison, equality, truncation, bit decomposition.

All of them share one idea (Catrina and de Hoogh, "Improved primitives for secure multiparty integer
computation", SCN 2010). A secret ``a`` with a declared bit length ``K`` (``-2^(K-1) <= a < 2^(K-1)``)
is shifted to ``b = a + 2^(K-1)`` in ``[0, 2^K)`` and opened as ``c = b + r`` for a random
``r = r' + 2^m r''`` built from shared random bits (``r'`` the low ``m`` bits, whose bits stay
available, and ``r''`` another ``K + kappa - m`` bits). ``c`` is statistically ``2^-kappa``-close to
uniform whatever ``b`` is, and since ``c < 2^K + 2^(K+kappa) < p`` nothing wraps mod p, so
``b mod 2^m = (c mod 2^m - r') mod 2^m``: a public value minus a secret one given bit by bit. Then

* truncation (Catrina-Saxena, FC 2010; ``rounds.Trunc``): ``(a - (c mod 2^m) + r') / 2^m`` is
  ``floor(a / 2^m)`` or one more, rounding up with probability ``(a mod 2^m) / 2^m``. One round.
* ``ltz``: with ``m = K - 1``, ``a < 0`` iff the borrow of ``c mod 2^m - r'`` cancels the offset;
  the borrow is ``[c' < r']`` for a public ``c'`` and shared bits ``r'``. That comparison uses Toft's
  product trick (as MPyC does): for a random sign ``S = +-1`` and ``e_i = S + r_i - c_i + 3 sum_{j>i}
  (r_j XOR c_j)``, the product of all ``e_i`` (and of ``e_m = S - 1 + 3 sum_j (r_j XOR c_j)``, which
  catches ``c' = r'``) is zero exactly when the top differing bit agrees with ``S``; it is multiplied
  by a random field element and opened, which reveals only that zero-or-not, i.e. ``[c' < r'] XOR S``.
  ``K`` multiplications, ``2 + ceil(log2(K + 1))`` rounds.
* ``eqz``: ``a = 0`` iff ``r'`` equals the public ``c mod 2^K`` shifted back, bit for bit: the product
  of the ``K`` bits ``1 - (r_i XOR t_i)``. ``K - 1`` multiplications, ``1 + ceil(log2 K)`` rounds.
* ``bit_decompose``: the bits of ``(c mod 2^K - r') mod 2^K`` through a parallel-prefix subtractor:
  the two's complement bits of ``a``. About ``6K`` multiplications, ``2 + ceil(log2(K - 1))`` rounds.

Every opening goes through ``Session.open_unchecked``: on the to-check list, covered by the MAC check
that precedes every output. A party that alters its share of an opening changes what the others
compute, and the next check catches it before anything leaves the session.

Security and correctness both require the declared range: ``K + kappa`` must stay below the field size
(``check_bits``; with ``kappa = 40`` that is ``K <= 86`` for ``p = 2^127 - 1`` and ``K <= 20`` for
``2^61 - 1``), and a secret outside its declared range gives a wrong result *and* weakens the masking
of that opening. The secure types keep values in range by construction where they can and say so
where the user must.

Each protocol is a step generator (see ``rounds``) so that callers can run several in parallel; the
``async`` functions at the end run one on its own.

**Two paths.** Everything above is the *field* path: the carries are computed with field random bits and
field triples. The *binary* path (``comparison_binary``) masks and opens the same way but with edaBits,
computes the borrow, the equality or the subtraction in the binary domain on AND triples, and brings the
result back through daBits: the same openings in the field, binary openings checked by the session's
binary MAC check (part of ``Session.mac_check``). Each function takes ``domain="field" | "binary"``;
by default it follows the session that runs it (``Session(comparison=...)``, read through
``rounds.current_session()``: ``"field"`` unless the session says otherwise), and so does the
probabilistic truncation (``rounds.Trunc``). ``trunc_steps(..., exact=True)`` gives ``floor(a / 2^m)``
exactly on either path, at the cost of the borrow (an ``ltz`` with ``m`` for ``K - 1``).
"""

from __future__ import annotations

import numpy as np

from . import comparison_binary as on_bits
from .binary.circuits import LooseEdaBits
from .errors import SpdzError
from .field import PrimeField
from .online import Session
from .rounds import (
    Bits,
    Mul,
    Open,
    Randoms,
    Steps,
    Trunc,
    and_public,
    chunked,
    compose_bits,
    current_session,
    field_bits,
    flat,
    from_limbs,
    inv_pow2,
    limb_count,
    loose_width,
    masks,
    one_minus,
    over_chunk,
    pow2,
    prefix_carries,
    prod_rows,
    public_low_bits,
    public_mod2m,
    rows,
    run,
    stack,
    to_limbs,
    xor_from_product,
    xor_public,
)
from .shares import SharedArray

KAPPA = 40  # statistical security of every masked opening, in bits


class RangeError(SpdzError, ValueError):
    """A declared bit length does not fit the field with the statistical-security margin, or a value
    (an input, a public constant or a revealed result) is outside its declared range."""


def max_bits(field: PrimeField, kappa: int = KAPPA) -> int:
    """The largest declared bit length ``K`` whose masked openings fit: ``K + kappa <= log2(p) - 1``."""
    return field.modulus.bit_length() - 1 - kappa


def check_bits(field: PrimeField, k: int, kappa: int = KAPPA, what: str = "value") -> None:
    """Raise ``RangeError`` unless ``k``-bit values can be masked with ``kappa`` bits in ``field``."""
    if kappa < KAPPA:
        raise RangeError(f"statistical security kappa = {kappa} is below the minimum of {KAPPA} bits")
    if k < 1:
        raise RangeError(f"{what}: bit length {k} must be positive")
    top = max_bits(field, kappa)
    if k > top:
        raise RangeError(
            f"{what}: {k}-bit values do not fit {field.name} (2^{field.bits}-1) with {kappa} bits of "
            f"statistical security: at most {top} bits here"
            + (" (use the p127 field for wider values)" if field.bits < 127 else "")
        )


DOMAINS = ("field", "binary")


def domain_of(domain: str | None) -> str:
    """``domain`` itself, or (``None``) the ``comparison_domain`` of the session running the caller
    (``"field"`` outside a session's ``run``)."""
    if domain is None:
        s = current_session()
        return s.comparison_domain if s is not None else "field"
    if domain not in DOMAINS:
        raise ValueError(f"domain must be 'field' or 'binary', not {domain!r}")
    return domain


# ---------------------------------------------------------------------------------------- truncation
def trunc_steps(
    a: SharedArray, k: int, m: int, kappa: int = KAPPA, *, exact: bool = False, domain: str | None = None
) -> Steps[SharedArray]:
    """``a / 2^m`` for ``a`` of ``k`` bits: rounded to a neighbouring integer at random (up with
    probability ``(a mod 2^m) / 2^m``; one round), or with ``exact`` to ``floor(a / 2^m)`` (the borrow
    of ``mod2m_steps`` on top: as many rounds as an ``ltz``)."""
    check_bits(a.ctx.field, k, kappa, "truncation input")
    if m == 0 or a.size == 0:
        return flat(a)
    if not 0 < m < k:
        raise ValueError(f"cannot truncate {k}-bit values by {m} bits")
    if not exact:
        (out,) = yield [Trunc(a, k, m, kappa, None if domain is None else domain_of(domain))]
        return out  # type: ignore[no-any-return]
    f, a = a.ctx.field, flat(a)
    where = (
        domain_of(domain)
        if domain is not None
        else ("binary" if truncation_domain() == "binary" else "field")
    )
    low = yield from mod2m_steps(a.add_public_field(pow2(f, k - 1)), k, m, kappa, domain=where)
    return (a - low).mul_public_field(inv_pow2(f, m))


def truncation_domain() -> str:
    """The ``truncation_domain`` of the session running the caller (``"field"`` outside one)."""
    s = current_session()
    return s.truncation_domain if s is not None else "field"


def mod2m_steps(
    b: SharedArray, k: int, m: int, kappa: int = KAPPA, *, domain: str | None = None
) -> Steps[SharedArray]:
    """``b mod 2^m`` for flat ``b`` in ``[0, 2^k)`` and ``0 < m < k``: open ``c = b + r``, then
    ``c' - r' + 2^m [c' < r']`` with the borrow from Toft's product trick (field) or a binary carry
    circuit (binary, ``comparison_binary``)."""
    if over_chunk(b.size):  # in bounded slices: its bits, triples and limbs are ~10 kB per element
        return (yield from chunked(lambda part: mod2m_steps(part, k, m, kappa, domain=domain), b))
    if domain_of(domain) == "binary":
        return (yield from on_bits.mod2m_steps(b, k, m, kappa))
    f, ctx, n = b.ctx.field, b.ctx, b.size
    width = loose_width(current_session(), k, m, kappa)
    if width is None:
        total = k + kappa
        bits, rho = yield [Bits((total + 1) * n), Randoms(n)]
        r_low, r = masks(bits, n, m, total)
        sign_bit = rows(bits, n, total, total + 1)
    else:  # r'' the field value of a loose edaBit (rounds.loose_width)
        bits, rho, (high, _) = yield [Bits((m + 1) * n), Randoms(n), LooseEdaBits(n, width)]
        r_low = compose_bits(bits, n, 0, m)
        r = r_low + high.mul_public_field(pow2(f, m))
        sign_bit = rows(bits, n, m, m + 1)
    (c,) = yield [Open(b, r)]
    borrow = yield from _bit_lt_public(c, rows(bits, n, 0, m), sign_bit, rho, m)
    # b mod 2^m = c' - r' + 2^m [c' < r']
    return (borrow.mul_public_field(pow2(f, m)) - r_low).add_public_field(public_mod2m(ctx, c, m))


# ---------------------------------------------------------------------------------------- comparison
def ltz_steps(a: SharedArray, k: int, kappa: int = KAPPA, *, domain: str | None = None) -> Steps[SharedArray]:
    """The shared bits ``[a < 0]`` for ``k``-bit signed ``a`` (flat, same size as ``a``)."""
    f, n = a.ctx.field, a.size
    check_bits(f, k, kappa, "comparison")
    a = flat(a)
    if n == 0:
        return a
    if k == 1:  # a in {-1, 0}
        return -a
    if domain_of(domain) == "binary":  # its own masking: one loose edaBit where it fits
        if over_chunk(n):
            return (yield from chunked(lambda part: ltz_steps(part, k, kappa, domain=domain), a))
        return (yield from on_bits.ltz_steps(a, k, kappa))
    m = k - 1
    b = a.add_public_field(pow2(f, k - 1))
    low = yield from mod2m_steps(b, k, m, kappa, domain=domain)
    # a < 0  iff  b - (b mod 2^m) = 0
    return one_minus((b - low).mul_public_field(inv_pow2(f, m)))


def _bit_lt_public(
    c: np.ndarray, r_bits: SharedArray, sign_bit: SharedArray, rho: SharedArray, m: int
) -> Steps[SharedArray]:
    """``[c mod 2^m < r]`` for public ``c`` and the shared bits of ``r`` (Toft's product trick).

    With ``u_j = (1 - 2 c_j) r_j``, ``r_j XOR c_j = c_j + u_j``, so ``e_i = S + r_i + 3 sum_{j>i} u_j``
    plus the public ``3 sum_{j>i} c_j - c_i``. The secret part (value and MAC alike) is one signed
    suffix sum over the rows, computed in plain integers on 32-bit limbs (``rounds.to_limbs``) and
    reduced once; the public part joins the same sum (its MAC term: the small public integers times
    the limbs of ``alpha_i``).
    """
    ctx, n = r_bits.ctx, rho.size
    f = ctx.field
    cb = public_low_bits(ctx, c, m)  # (m, n)
    sign = 1 - 2 * cb.astype(np.int64)  # (m, n): +1 where c_j = 0, -1 where c_j = 1
    csum = np.cumsum(cb[::-1].astype(np.int64), axis=0)[::-1]  # sum_{j>=i} c_j
    public = np.empty((m + 1, n), dtype=np.int64)  # rows 0..m-1: 3 sum_{j>i} c_j - c_i; row m
    public[: m - 1] = 3 * csum[1:]
    public[m - 1] = 0
    public[:m] -= cb
    public[m] = 3 * csum[0] - 1
    sgn = one_minus(sign_bit + sign_bit)  # S = 1 - 2 sb
    count = limb_count(f)
    alpha = to_limbs(f, ctx.alpha)[:, 0]
    sign3 = 3 * sign
    out = []
    for bits, s_, last, mac in (
        (r_bits.value, sgn.value, rho.value, False),
        (r_bits.mac, sgn.mac, rho.mac, True),
    ):
        # rows of e in the layout (m + 2, L, n): every row contiguous; one row at a time from the top,
        # e_i = S + r_i + 3 sum_{j>i} u_j + public_i, with the running sum kept in ``acc``
        r = to_limbs(f, bits).reshape(count, m, n).transpose(1, 0, 2)
        sl = to_limbs(f, s_)
        e = np.empty((m + 2, count, n), dtype=np.int64)
        acc = np.zeros((count, n), dtype=np.int64)
        tmp = np.empty((count, n), dtype=np.int64)
        for i in range(m - 1, -1, -1):
            np.add(acc, r[i], out=e[i])
            np.multiply(r[i], sign3[i], out=tmp)
            np.add(acc, tmp, out=acc)
        e[m] = acc
        e[: m + 1] += sl
        e[m + 1] = to_limbs(f, last)
        if mac:  # the MAC share of the public part: alpha_i * public
            e[: m + 1] += public[:, None, :] * alpha[None, :, None]
        elif ctx.party == 0:  # party 0's value share carries the public part
            e[: m + 1, 0] += public
        out.append(from_limbs(f, np.ascontiguousarray(e.transpose(1, 0, 2))))
    z = yield from prod_rows(SharedArray(ctx, out[0], out[1]), n)
    (zc,) = yield [Open(z)]
    is_zero = ~np.any(zc != 0, axis=0)
    # S = +1: zero iff c' >= r';  S = -1: zero iff c' < r'.  So [c' < r'] = sb XOR (not zero)
    return xor_public(sign_bit, ~is_zero)


def masked_low_bits(a: SharedArray, k: int, kappa: int) -> Steps[tuple[SharedArray, np.ndarray]]:
    """Open ``c = a + 2^(k-1) + r`` for a random ``(k + kappa)``-bit ``r`` made of shared bits and return
    those bits (``(k + kappa) n`` of them, row-major per bit position) with the public
    ``t = (c - 2^(k-1)) mod 2^k`` as a ``(k, n)`` bit matrix: the common start of the equality test and
    the bit decomposition (``a`` flat, non-empty)."""
    f, n = a.ctx.field, a.size
    (bits,) = yield [Bits((k + kappa) * n)]
    _, r = masks(bits, n, k, k + kappa)
    (c,) = yield [Open(a, r.add_public_field(pow2(f, k - 1)))]
    t = public_low_bits(a.ctx, c, k)
    t[k - 1] ^= 1
    return bits, t


def eqz_steps(a: SharedArray, k: int, kappa: int = KAPPA, *, domain: str | None = None) -> Steps[SharedArray]:
    """The shared bits ``[a = 0]`` for ``k``-bit signed ``a``."""
    f, n = a.ctx.field, a.size
    check_bits(f, k, kappa, "equality test")
    a = flat(a)
    if n == 0:
        return a
    if over_chunk(n):  # in bounded slices (see ``rounds.chunked``)
        return (yield from chunked(lambda part: eqz_steps(part, k, kappa, domain=domain), a))
    if domain_of(domain) == "binary":
        return (yield from on_bits.eqz_steps(a, k, kappa))
    bits, t = yield from masked_low_bits(a, k, kappa)  # a = 0 iff r' = t
    same = xor_public(rows(bits, n, 0, k), 1 - t)  # r_i XNOR t_i
    return (yield from prod_rows(same, n))


# ---------------------------------------------------------------------------------------- bit decomposition
def bit_decompose_steps(
    a: SharedArray, k: int, kappa: int = KAPPA, *, domain: str | None = None
) -> Steps[SharedArray]:
    """The ``k`` two's complement bits of ``k``-bit signed ``a``: a ``(k, n)`` matrix, row ``i`` = bit ``i``
    (row ``k - 1`` is the sign bit ``[a < 0]``)."""
    f, ctx, n = a.ctx.field, a.ctx, a.size
    check_bits(f, k, kappa, "bit decomposition")
    a = flat(a)
    if n == 0:
        return a
    if over_chunk(n):  # in bounded slices (see ``rounds.chunked``), rows joined
        return (yield from chunked(lambda part: bit_decompose_steps(part, k, kappa, domain=domain), a, k))
    if domain_of(domain) == "binary":
        return (yield from on_bits.bit_decompose_steps(a, k, kappa))
    bits, t = yield from masked_low_bits(a, k, kappa)  # a mod 2^k = (t - r') mod 2^k = t + NOT r' + 1
    q = one_minus(rows(bits, n, 0, k))
    p = xor_public(q, t)  # propagate
    if k == 1:
        return one_minus(p)
    # generate t_i AND q_i; at position 0 the carry-in 1 is folded in: G_0 = t_0 OR q_0
    q0 = rows(q, n, 0, 1)
    g0 = and_public(q0, 1 - t[0]).add_public_field(field_bits(ctx, t[0]))
    g = stack([g0, and_public(rows(q, n, 1, k - 1), t[1 : k - 1])])
    carries = yield from prefix_carries(g, rows(p, n, 0, k - 1), n)  # into positions 1..k-1
    p_hi = rows(p, n, 1, k)
    (prod,) = yield [Mul(p_hi, carries)]
    return stack([one_minus(rows(p, n, 0, 1)), xor_from_product(p_hi, carries, prod)])


# ---------------------------------------------------------------------------------------- one at a time
async def trunc_pr(
    s: Session, a: SharedArray, k: int, m: int, kappa: int = KAPPA, *, domain: str | None = None
) -> SharedArray:
    return await run(s, trunc_steps(a, k, m, kappa, domain=domain))


async def trunc(
    s: Session, a: SharedArray, k: int, m: int, kappa: int = KAPPA, *, domain: str | None = None
) -> SharedArray:
    """``floor(a / 2^m)`` exactly."""
    return await run(s, trunc_steps(a, k, m, kappa, exact=True, domain=domain))


async def ltz(
    s: Session, a: SharedArray, k: int, kappa: int = KAPPA, *, domain: str | None = None
) -> SharedArray:
    return await run(s, ltz_steps(a, k, kappa, domain=domain))


async def eqz(
    s: Session, a: SharedArray, k: int, kappa: int = KAPPA, *, domain: str | None = None
) -> SharedArray:
    return await run(s, eqz_steps(a, k, kappa, domain=domain))


async def bit_decompose(
    s: Session, a: SharedArray, k: int, kappa: int = KAPPA, *, domain: str | None = None
) -> SharedArray:
    return await run(s, bit_decompose_steps(a, k, kappa, domain=domain))
