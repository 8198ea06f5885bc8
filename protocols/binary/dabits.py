"""daBits: random bits shared in both domains, ``[b]`` in GF(p) and ``[[b]]`` under the binary key.

``generate_dabits(s, bs, n)`` (``s`` the field ``Session``, ``bs`` its ``BitSession``) returns ``n``
daBits, checked. The generation is Rotaru-Wood's (INDOCRYPT 2019, "MArBled circuits"), the check is
the cheaper one of Escudero-Ghosh-Keller-Rachuri-Scholl (CRYPTO 2020, "Improved primitives for MPC
over mixed arithmetic-binary circuits", the daBit section; MP-SPDZ's ``DabitSacrifice::
sacrifice_and_check_bits`` for fields of 60 bits and more), instead of Rotaru-Wood's cut-and-choose
and bucketing, which costs a field multiplication per bucket member:

1. **Binary side**: ``[[b]] = bs.random_bits(N + c S)``: an XOR-sharing whose share ``u_i`` at party
   ``i`` is that party's own random bits (any XOR-sharing would do: only the shares are used below).
2. **Field side**: every party inputs its share ``u_i`` with ``Session.input`` (an authenticated
   input: one input mask, no triple), and the parties XOR them in the field,
   ``x XOR y = x + y - 2 x y``: ``n - 1`` multiplications (field triples), ``n - 1`` rounds.
   ``XOR`` so written is associative and commutative over the whole field, which the argument in 4
   uses.
3. **Bit check**: ``b_F (b_F - 1) = 0`` for every daBit, as one random linear combination
   ``sum_j rho_j (b_F,j - b_F,j^2)`` opened and compared with 0 (one triple per daBit; the combination
   is zero by chance with probability ``1/p``). Without it the parity check below cannot see a field
   value that is not a bit: an adversary who inputs 2 in place of 0 gets the field values ``2`` and
   ``-1 = p - 1``, which have the parities of 0 and 1.
4. **Parity check** (EGKRS): ``S = 40`` checks per chunk of at most ``chunk`` daBits. From a coin
   tossed after the daBits are fixed, check ``i`` picks a uniform subset ``T_i`` of the chunk; the
   parties open, in the field, ``y_i = sum_{j in T_i} b_F,j + b_F,mask_i + 2 M_i`` and, in binary,
   ``z_i = XOR_{j in T_i} b_B,j XOR b_B,mask_i``, and require ``lsb(y_i) = z_i``. ``mask_i`` is one
   of ``S`` extra daBits per chunk, used once and thrown away: it makes ``z_i`` uniform. ``M_i`` is an
   integer of ``lambda = 40 + bitlen(chunk + 1)`` uniform bits from the field's random bits
   (``pre.bits``, guaranteed bits: one triple each for MASCOT): it hides the count
   ``sum_{T_i} b_F,j`` within statistical distance ``2^-40``, and since every term is a bit and
   ``chunk + 1 + 2 (2^lambda - 1) < p`` the sum never wraps mod p, so ``lsb(y_i)`` is the parity of
   the count. (For ``p = 2^61 - 1`` that bounds a chunk at ``2^18`` daBits; with ``2^127 - 1`` a batch
   is one chunk.)

   **Soundness.** After the bit check, every field value is a bit; let ``delta_j = b_F,j XOR b_B,j``
   (1 for an inconsistent daBit). Check ``i`` passes iff ``sum_{T_i} delta_j + delta_mask_i = 0``
   mod 2. The subsets are drawn after the ``delta`` are fixed, so if some output daBit of the chunk is
   inconsistent, ``sum_{T_i} delta_j`` is a uniform bit, independent across checks, whatever the
   masks are: all ``S`` checks pass with probability ``2^-40``. Corrupt parties whose *inputs* are
   not bits gain nothing: with an honest ``u_h`` the result is ``T XOR u_h`` for the XOR ``T`` of the
   rest, i.e. ``T`` or ``1 - T``, and both are bits only if ``T`` is; so a daBit that passes the bit
   check is a bit ``T`` the adversary may know, XORed with the honest uniform ``u_h`` in both domains.

Everything opened is MAC-checked (``Session.mac_check``, ``BitSession.check``) before the values
are compared, so every honest party compares the same values and a failed comparison is a
``PreprocessingError`` at every honest party; a wrong share in an opening is a ``MacCheckError``.

Cost per daBit at ``n`` parties: ``n`` field triples (``n - 1`` XORs and the bit check), ``n``
field input masks, one random bit in the binary domain (``n - 1`` correlated OTs per party); per
chunk ``S`` extra daBits and ``S lambda`` field random bits (about 2,200 at 2^15 daBits).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..commitments import coin_toss
from ..errors import PreprocessingError
from ..prg import PRG
from ..shares import SharedArray
from .bits import U64, AuthBits
from .check import sub_seed

if TYPE_CHECKING:
    from ..field import PrimeField
    from ..online import Session
    from .session import BitSession

STAT_SEC = 40
PARITY_CHECKS = STAT_SEC
"""Parity checks per chunk: an inconsistent daBit passes all of them with probability 2^-40."""
MAX_DABITS = 1 << 24
"""The most daBits one call makes (a bound on memory; ask several times for more)."""


# ---------------------------------------------------------------------------------------- helpers
def check_count(count: int, what: str = "daBits", limit: int = MAX_DABITS) -> int:
    if not isinstance(count, (int, np.integer)) or isinstance(count, bool):
        raise TypeError(f"the number of {what} must be an int, got {type(count).__name__}")
    if count < 0:
        raise ValueError(f"the number of {what} must not be negative, got {count}")
    if count > limit:
        raise ValueError(f"at most {limit} {what} per call, got {count}")
    return int(count)


def mask_bits(chunk: int) -> int:
    """``lambda``: the bits of the mask ``M_i`` that hides a subset count of up to ``chunk + 1``."""
    return STAT_SEC + (chunk + 1).bit_length()


def max_chunk(field: PrimeField) -> int:
    """The largest power of two ``c`` with ``c + 1 + 2 (2^lambda(c) - 1) < p``: the most daBits one
    set of parity checks may cover without the opened sum wrapping mod p."""
    c = 1 << 30
    while c > 1 and c + 1 + 2 * ((1 << mask_bits(c)) - 1) >= field.modulus:
        c >>= 1
    if c + 1 + 2 * ((1 << mask_bits(c)) - 1) >= field.modulus:
        raise ValueError(f"the field {field!r} is too small for the daBit parity check")
    return c


def chunks(count: int, field: PrimeField) -> list[tuple[int, int]]:
    """The output ranges ``[lo, hi)`` that share one set of parity checks (equal sizes, at most
    ``max_chunk``)."""
    if count == 0:
        return []
    top = max_chunk(field)
    parts = -(-count // top)
    size = -(-count // parts)
    return [(lo, min(count, lo + size)) for lo in range(0, count, size)]


def empty_field(s: Session) -> SharedArray:
    f = s.field
    return SharedArray(s.ctx, f.zeros(0), f.zeros(0))


def field_xor(x: SharedArray, y: SharedArray, xy: SharedArray) -> SharedArray:
    """``x XOR y = x + y - 2 x y`` given the shared product ``xy``."""
    return x + y - xy * 2


def neg_where(x: SharedArray, mask: np.ndarray) -> SharedArray:
    """``-x`` where the public 0/1 ``mask`` is set, ``x`` elsewhere (local)."""
    f = x.ctx.field
    return SharedArray(x.ctx, f.neg_where(x.value, mask), f.neg_where(x.mac, mask), x.shape)


def bit_to_field(d_field: SharedArray, opened: np.ndarray) -> SharedArray:
    """The field sharing of ``o XOR d`` for a public bit vector ``o`` and a daBit's field side ``[d]``:
    ``o + d (1 - 2 o)``, local. (Used to carry a binary bit ``t`` into the field: open ``t XOR d``.)"""
    f = d_field.ctx.field
    return neg_where(d_field, opened).add_public_field(f.from_ints(opened.astype(U64)))


def field_shares_of_bits(bits: np.ndarray) -> np.ndarray:
    """The value a party inputs into the field for its binary shares (a hook: the tests make a
    cheater input something else here)."""
    return bits


# ---------------------------------------------------------------------------------------- protocol
async def generate_dabits(s: Session, bs: BitSession, n: int) -> tuple[SharedArray, AuthBits]:
    """``n`` daBits ``([b], [[b]])``: uniform bits nobody knows, the same in the field and in the
    binary domain, checked as in the module docstring (``PreprocessingError`` if a party's field
    and binary inputs differ, ``MacCheckError`` for a wrong share in an opening)."""
    count = check_count(n)
    if bs.s is not s:
        raise ValueError("the BitSession belongs to another session")
    if count == 0:
        return empty_field(s), AuthBits.empty(bs.ctx)
    return await _generate(s, bs, count)


async def _generate(s: Session, bs: BitSession, count: int) -> tuple[SharedArray, AuthBits]:
    f = s.field
    parts = chunks(count, f)
    checks = PARITY_CHECKS * len(parts)
    total = count + checks  # outputs first, then S masking daBits per chunk
    # 1. the binary side: an XOR-sharing; party i's share u_i is what it inputs into the field
    b_bin = await bs.random_bits(total)
    # 2. the field side: every party's share, input and XORed in the field (n - 1 products)
    mine = field_shares_of_bits(b_bin.bits)
    b_f: SharedArray | None = None
    for owner in range(s.n):
        u = await s.input(mine if s.party == owner else None, owner=owner)
        if b_f is None:
            b_f = u
        else:
            b_f = field_xor(b_f, u, await s.mul(b_f, u))
    assert b_f is not None
    # 3. squares for the bit check, and the mask bits of the parity check
    sq = await s.mul(b_f, b_f)
    lam = [mask_bits(hi - lo) for lo, hi in parts]
    mbits = await s.pre.bits(PARITY_CHECKS * sum(lam))
    # 4. the coin, tossed after everything above is fixed
    steps = (s.next_step(), s.next_step())
    seed = await coin_toss(s.net, steps, s.commit_context("dabit-check", steps[0]))
    rho = f.random(total, PRG(sub_seed(seed, "bit-check")))
    bitcheck = (b_f - sq).mul_public_field(rho).sum()
    ys: list[SharedArray] = []
    zs: list[AuthBits] = []
    offset = 0
    for g, (lo, hi) in enumerate(parts):
        masks = np.arange(count + g * PARITY_CHECKS, count + (g + 1) * PARITY_CHECKS)
        select = subsets(sub_seed(seed, "parity", g), hi - lo)
        rows = mbits[np.arange(offset, offset + PARITY_CHECKS * lam[g])]
        offset += PARITY_CHECKS * lam[g]
        big_m = SharedArray(
            s.ctx, f.compose_pow2(rows.value, PARITY_CHECKS), f.compose_pow2(rows.mac, PARITY_CHECKS)
        )
        ys.append(subset_sums(b_f[np.arange(lo, hi)], select) + b_f[masks] + big_m * 2)
        zs.append(subset_xors(b_bin[lo:hi], select) ^ b_bin[masks])
    y = SharedArray.concat(ys)
    z = AuthBits.concat(zs)
    y_open, bit_open = await s.open_unchecked([y, bitcheck])
    (z_open,) = await bs.open_unchecked([z])
    # 5. MAC checks first: the comparison below then runs on the same, authentic values everywhere
    await s.mac_check()
    await bs.check()
    if any(f.to_ints(bit_open)):
        raise PreprocessingError("daBit check failed: a field value is not a bit")
    parity = np.array([v & 1 for v in f.to_ints(y_open)], dtype=np.uint8)
    if not np.array_equal(parity, z_open):
        raise PreprocessingError(
            "daBit check failed: the field and binary values of some daBit differ "
            f"({int(np.count_nonzero(parity != z_open))} of {parity.size} parity checks)"
        )
    return b_f[np.arange(count)], b_bin[:count]


def subsets(seed: bytes, size: int) -> np.ndarray:
    """``PARITY_CHECKS`` uniform subsets of ``range(size)`` as a 0/1 matrix, the same at every party."""
    raw = PRG(seed).random_bytes(PARITY_CHECKS * (-(-size // 8)))
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(PARITY_CHECKS, -1)
    return np.unpackbits(rows, axis=1, bitorder="little")[:, :size]


def subset_sums(x: SharedArray, select: np.ndarray) -> SharedArray:
    """``sum_{j in T_i} x_j`` for every row ``T_i`` of ``select`` (local)."""
    f = x.ctx.field
    vals, macs = [], []
    for row in select:
        idx = np.flatnonzero(row)
        vals.append(f.sum(x.value[:, idx]))
        macs.append(f.sum(x.mac[:, idx]))
    return SharedArray(x.ctx, f.from_ints(vals), f.from_ints(macs))


def subset_xors(x: AuthBits, select: np.ndarray) -> AuthBits:
    """``XOR_{j in T_i} x_j`` for every row ``T_i`` of ``select`` (local)."""
    bits = ((select.astype(np.int64) @ x.bits.astype(np.int64)) & 1).astype(np.uint8)
    macs = np.zeros((select.shape[0], 2), dtype=U64)
    for i, row in enumerate(select):
        idx = np.flatnonzero(row)
        if idx.size:
            macs[i] = np.bitwise_xor.reduce(x.macs[idx], axis=0)
    return AuthBits(x.ctx, bits, macs)


def dabit_cost(count: int, field: PrimeField, n: int) -> dict[str, int]:
    """The material ``generate_dabits(count)`` draws at ``n`` parties (for the benchmarks and docs)."""
    parts = chunks(count, field)
    total = count + PARITY_CHECKS * len(parts)
    return {
        "triples": n * total if count else 0,
        "input_masks": n * total if count else 0,
        "field_bits": PARITY_CHECKS * sum(mask_bits(hi - lo) for lo, hi in parts),
        "binary_bits": total if count else 0,
    }


__all__ = ["MAX_DABITS", "PARITY_CHECKS", "dabit_cost", "generate_dabits"]
