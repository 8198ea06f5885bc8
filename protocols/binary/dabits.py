"""daBits: random bits shared in both domains, ``[b]`` in GF(p) and ``[[b]]`` under the binary key.

``generate_dabits(s, bs, n)`` (``s`` the field ``Session``, ``bs`` its ``BitSession``) returns ``n``
daBits, checked: the field side is the XOR of every party's bits in the field, and one integer check
per chunk catches any field value that is not its binary bit.

1. **Binary side**: ``[[b]] = bs.random_bits(N)``, an XOR-sharing ``b = XOR_i u_i`` whose share
   ``u_i`` at party ``i`` is that party's own random bits.
2. **Field side** (Rotaru-Wood, INDOCRYPT 2019, "MArBled circuits"). Every party inputs its bits
   ``u_i`` with ``Session.input`` (an authenticated input: one input mask) and the parties XOR them
   in the field, ``x XOR y = x + y - 2 x y``: ``n - 1`` multiplications (field triples, MAC-checked
   like every product), ``n - 1`` rounds. Nothing checks here that a party input its bits: a corrupt
   party may input ``u_i + delta`` for any ``delta``, and the field value becomes
   ``b + delta prod_(j != i) (1 - 2 u_j)``: ``b`` plus an error that is non-zero exactly when
   ``delta`` is, whatever the honest bits are (so whether the check below fails tells the cheater
   nothing about them).

   (The products cannot come cheaper from the binary side's own correlated OTs: a hashed OT whose
   sender lies adds an error ``delta u_i`` that depends on the *receiver's* bit, so the check's
   outcome would tell the cheater that bit, and with it the daBit. Field triples have no such
   selective failure.)
3. **Integer check** (one per chunk of at most ``chunk`` daBits; in the spirit of the daBit checks of
   Escudero-Ghosh-Keller-Rachuri-Scholl, CRYPTO 2020, but over the integers and with no daBit
   sacrificed). Every party inputs ``Q`` private values ``R_i`` uniform in ``[0, 2^W)`` in both
   domains (field input and binary input, unchecked). Then a coin gives every daBit ``j`` of the
   chunk a public weight ``w_qj`` uniform in ``[0, 2^m)`` per check ``q``, and the parties open

   * in the field, ``y_q = sum_j w_qj [b_j] + sum_i [R_qi]``;
   * in binary, ``z_q = sum_j w_qj [[b_j]] + sum_i [[R_qi]]`` as an integer: every selected bit
     ``b_j`` (at the weights where ``w_qj`` has a 1) and every bit of the ``R``'s goes into a column
     of its weight, and carry-save layers (one AND per full adder) compress the columns to two
     rows, which a parallel-prefix adder adds (``compress``); about ``m c / 2`` ANDs per check, i.e.
     20 per daBit;

   and require ``y_q = z_q``. ``W = m + bitlen(chunk) + 40`` hides ``sum_j w_qj b_j`` (statistical
   distance ``2^-40``: an honest ``R_qi`` alone does it) and ``chunk (2^m - 1) + n (2^W - 1) < p``,
   so ``z_q`` never wraps mod p.

   **Soundness.** Let ``e_j`` be daBit ``j``'s field value minus its binary bit and ``eps_q`` the
   difference between the field and binary values of the ``R_qi`` (both fixed before the coin). Since
   ``z_q < p``, ``y_q = z_q`` iff ``sum_j w_qj e_j + eps_q = 0`` mod p. If some ``e_j != 0``, at most
   one value of ``w_qj`` in ``[0, 2^m)`` satisfies that (whatever the other weights), so a check
   passes with probability at most ``2^-m`` and all ``Q = ceil(40 / m)`` of them with at most
   ``2^-40``. Every output then has ``e_j = 0``: its field value is its binary bit, a bit. The
   ``R``'s need no check of their own: an inconsistent one can only make an honest chunk fail.
   With ``2^127 - 1``, ``m = 40`` and one check per chunk; with ``2^61 - 1`` chunks are smaller and
   ``m`` is a few bits (``check_plan``).

Everything opened is MAC-checked (``Session.mac_check``, ``BitSession.check``) before the values
are compared, so every honest party compares the same values and a failed comparison is a
``PreprocessingError`` at every honest party; a wrong share in an opening is a ``MacCheckError``.

Cost per daBit at ``n`` parties: ``n - 1`` field triples, ``n`` field input masks, one random bit in
the binary domain (``n - 1`` correlated OTs per party) and about 20 AND triples. (EGKRS's parity
check, used before, needs the field values to be bits first, i.e. one more triple per daBit for a
bit check, and ``40 (40 + log2 chunk)`` field random bits per chunk, each a triple with MASCOT.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..commitments import coin_toss
from ..errors import PreprocessingError
from ..prg import PRG
from ..shares import SharedArray
from .bits import U64, AuthBits, uniform_values
from .check import sub_seed

if TYPE_CHECKING:
    from ..field import PrimeField
    from ..online import Session
    from .edabits import Gates
    from .session import BitSession

STAT_SEC = 40
MAX_DABITS = 1 << 24
"""The most daBits one call makes (a bound on memory; ask several times for more)."""
MAX_CHUNK = 1 << 16
"""The most daBits one integer check covers: its columns hold about ``m / 2`` bits per daBit
(20 at ``m = 40``, about 22 MB at 2^16 daBits)."""
MIN_WEIGHT_BITS = 4
Column = AuthBits
Columns = list[Column | None]  # one check's columns, by weight


# ---------------------------------------------------------------------------------------- helpers
def check_count(count: int, what: str = "daBits", limit: int = MAX_DABITS) -> int:
    if not isinstance(count, (int, np.integer)) or isinstance(count, bool):
        raise TypeError(f"the number of {what} must be an int, got {type(count).__name__}")
    if count < 0:
        raise ValueError(f"the number of {what} must not be negative, got {count}")
    if count > limit:
        raise ValueError(f"at most {limit} {what} per call, got {count}")
    return int(count)


@dataclass(frozen=True)
class CheckPlan:
    """The integer check's parameters: ``chunk`` daBits per check set, weights of ``m`` bits,
    ``checks`` checks per chunk (``checks * m >= 40``), private values of ``width`` bits."""

    chunk: int
    m: int
    checks: int
    width: int


def _fits(field: PrimeField, parties: int, chunk: int, m: int) -> bool:
    width = m + chunk.bit_length() + STAT_SEC
    top = chunk * ((1 << m) - 1) + parties * ((1 << width) - 1)
    return top < field.modulus and (1 << width) - 1 <= field.half


def check_plan(field: PrimeField, parties: int) -> CheckPlan:
    """The largest chunk (a power of two, at most ``MAX_CHUNK``) whose check fits the field with
    weights of at least ``MIN_WEIGHT_BITS`` bits, and the widest weights (at most 40) it allows."""
    chunk = MAX_CHUNK
    while chunk > 1 and not _fits(field, parties, chunk, MIN_WEIGHT_BITS):
        chunk >>= 1
    if not _fits(field, parties, chunk, MIN_WEIGHT_BITS):
        raise ValueError(f"the field {field!r} is too small for the daBit check at {parties} parties")
    m = MIN_WEIGHT_BITS
    while m < STAT_SEC and _fits(field, parties, chunk, m + 1):
        m += 1
    return CheckPlan(chunk, m, -(-STAT_SEC // m), m + chunk.bit_length() + STAT_SEC)


def chunks(count: int, field: PrimeField, parties: int = 2) -> list[tuple[int, int]]:
    """The output ranges ``[lo, hi)`` that share one integer check (near-equal, at most the plan's
    chunk)."""
    if count == 0:
        return []
    top = check_plan(field, parties).chunk
    parts = -(-count // top)
    size = -(-count // parts)
    return [(lo, min(count, lo + size)) for lo in range(0, count, size)]


def empty_field(s: Session) -> SharedArray:
    f = s.field
    return SharedArray(s.ctx, f.zeros(0), f.zeros(0))


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


def field_xor(x: SharedArray, y: SharedArray, xy: SharedArray) -> SharedArray:
    """``x XOR y = x + y - 2 x y`` given the shared product ``xy``."""
    return x + y - xy * 2


# ---------------------------------------------------------------------------------------- circuits
def prefix_add(x: Sequence[AuthBits | None], y: Sequence[AuthBits | None]) -> Gates[list[AuthBits | None]]:
    """``x + y`` with ``max(len) + 1`` bits, a parallel-prefix (Sklansky) adder: one layer for the
    generates ``x_i AND y_i``, then ``ceil(log2 width)`` layers that combine ``(G, P)`` spans,
    ``G = G_hi XOR (P_hi AND G_lo)`` (the two terms are never both 1) and ``P = P_hi AND P_lo``.
    ``None`` is a known 0."""
    w = max(len(x), len(y))
    xs = [x[i] if i < len(x) else None for i in range(w)]
    ys = [y[i] if i < len(y) else None for i in range(w)]
    prop: list[AuthBits | None] = []
    both = []
    for i, (a, b) in enumerate(zip(xs, ys, strict=True)):
        prop.append(a ^ b if a is not None and b is not None else a if a is not None else b)
        if a is not None and b is not None:
            both.append(i)
    gen: list[AuthBits | None] = [None] * w
    if both:
        products = yield ([xs[i] for i in both], [ys[i] for i in both])  # type: ignore[misc]
        for i, g in zip(both, products, strict=True):
            gen[i] = g
    big_g, big_p = list(gen), list(prop)
    level = 0
    while (1 << level) < w:
        lefts: list[AuthBits] = []
        rights: list[AuthBits] = []
        plan: list[tuple[int, int, int]] = []  # (i, index of P_i AND G_j or -1, of P_i AND P_j or -1)
        for i in range(w):
            if not (i >> level) & 1:
                continue
            j = ((i >> level) << level) - 1
            pi, gj, pj = big_p[i], big_g[j], big_p[j]
            gi_at = pi_at = -1
            if pi is not None and gj is not None:
                gi_at = len(lefts)
                lefts.append(pi)
                rights.append(gj)
            if pi is not None and pj is not None:
                pi_at = len(lefts)
                lefts.append(pi)
                rights.append(pj)
            plan.append((i, gi_at, pi_at))
        products = (yield (lefts, rights)) if lefts else []
        for i, gi_at, pi_at in plan:
            if gi_at >= 0:
                gi = big_g[i]
                big_g[i] = products[gi_at] if gi is None else gi ^ products[gi_at]
            big_p[i] = products[pi_at] if pi_at >= 0 else None
        level += 1
    out: list[AuthBits | None] = [prop[0]]
    for i in range(1, w):
        a, c = prop[i], big_g[i - 1]
        out.append(a ^ c if a is not None and c is not None else a if a is not None else c)
    out.append(big_g[w - 1])
    return out


def dadda_stages(
    heights: Sequence[Sequence[int]],
) -> tuple[list[list[list[tuple[int, int]]]], list[list[int]]]:
    """Dadda's schedule for columns of these heights (``heights[q][t]``, one list per check): per
    stage, per check, per column, ``(full adders, half adders)``; and the heights left (at most 2).

    The stage targets are Dadda's sequence 2, 3, 4, 6, 9, 13, ... (each about 1.5 times the last),
    from the largest one below the tallest column down to 2; a column whose bits and incoming
    carries exceed the target gets just enough adders (each full adder takes three bits to one, a
    half adder two to one, and both send a carry one weight up, counted in the same stage), so the
    carries never ripple: one layer of ANDs per stage."""
    cols = [list(h) for h in heights]
    tallest = max((h for c in cols for h in c), default=0)
    seq = [2]
    while seq[-1] < tallest:
        seq.append(seq[-1] * 3 // 2)
    stages = []
    for d in reversed([x for x in seq if x < tallest]):
        stage = []
        for q, c in enumerate(cols):
            row: list[tuple[int, int]] = []
            carry = 0
            new: list[int] = []
            for h in c:
                excess = h + carry - d
                fa, ha = (excess // 2, excess % 2) if excess > 0 else (0, 0)
                assert 3 * fa + 2 * ha <= h, "Dadda's bound broken"
                row.append((fa, ha))
                new.append(h - 2 * fa - ha + carry)
                carry = fa + ha
            if carry:
                new.append(carry)
                row.append((0, 0))
            stage.append(row)
            cols[q] = new
        stages.append(stage)
    return stages, cols


def compress(columns: Sequence[Columns], zero: Column) -> Gates[list[Column | None]]:
    """The integer value of several weighted bit sets, one per check, in binary: ``columns[q][t]``
    holds the bits of weight ``2^t`` of check ``q`` (``None``: none). Dadda's carry-save stages
    (``dadda_stages``; one layer of ANDs each, all columns of all checks together) reduce every
    column to at most two bits, and a parallel-prefix adder (``prefix_add``) adds the two rows.
    Returns the planes of the results, one bit per check, LSB first (``zero``: a one-bit sharing of
    0, for padding)."""
    cols: list[list[AuthBits | None]] = [list(c) for c in columns]
    stages, _ = dadda_stages([[c.size if c is not None else 0 for c in check] for check in cols])
    for stage in stages:
        lefts: list[AuthBits] = []
        rights: list[AuthBits] = []
        plan: list[tuple[int, int, int, int, AuthBits | None]] = []
        for q, row in enumerate(stage):
            while len(cols[q]) < len(row):
                cols[q].append(None)
            for t, (fa, ha) in enumerate(row):
                if not fa and not ha:
                    continue
                col = cols[q][t]
                assert col is not None
                z = col[2 * fa : 3 * fa] if fa else None
                if fa:
                    lefts.append(col[0:fa] ^ z)
                    rights.append(col[fa : 2 * fa] ^ z)
                if ha:
                    lefts.append(col[3 * fa : 3 * fa + 1])
                    rights.append(col[3 * fa + 1 : 3 * fa + 2])
                plan.append((q, t, fa, ha, z))
        products = yield (lefts, rights)
        at = 0
        incoming: dict[tuple[int, int], list[AuthBits]] = {}
        for q, t, fa, ha, z in plan:
            col = cols[q][t]
            assert col is not None
            used = 3 * fa + 2 * ha
            parts = [col[used:]] if used < col.size else []
            if fa:
                assert z is not None
                g = products[at]
                at += 1
                parts.append(col[0:fa] ^ col[fa : 2 * fa] ^ z)
                incoming.setdefault((q, t + 1), []).append(g ^ z)
            if ha:
                g = products[at]
                at += 1
                parts.append(col[3 * fa : 3 * fa + 1] ^ col[3 * fa + 1 : 3 * fa + 2])
                incoming.setdefault((q, t + 1), []).append(g)
            cols[q][t] = AuthBits.concat(parts)
        for (q, t), parts in incoming.items():
            while len(cols[q]) <= t:
                cols[q].append(None)
            old = cols[q][t]
            cols[q][t] = AuthBits.concat(([old] if old is not None else []) + parts)
    width = max(len(c) for c in cols)
    rows: list[list[AuthBits | None]] = [[], []]
    for t in range(width):
        for r in range(2):
            have = [t < len(c) and c[t] is not None and c[t].size > r for c in cols]  # type: ignore[union-attr]
            if not any(have):
                rows[r].append(None)
                continue
            rows[r].append(
                AuthBits.concat([c[t][r : r + 1] if ok else zero for c, ok in zip(cols, have, strict=True)])  # type: ignore[index]
            )
    return (yield from prefix_add(rows[0], rows[1]))


def compress_shape(heights: Sequence[Sequence[int]]) -> tuple[int, int]:
    """``(AND gates, AND layers)`` of ``compress`` on columns of these heights (``heights[q][t]``):
    both depend on the heights only."""
    from .edabits import circuit_shape

    stages, cols = dadda_stages(heights)
    ands = sum(fa + ha for stage in stages for row in stage for fa, ha in row)
    layers = len(stages)
    width = max(len(c) for c in cols)
    present = [[any(t < len(c) and c[t] > r for c in cols) for t in range(width)] for r in range(2)]
    adder_ands, adder_layers = circuit_shape(
        lambda plane: prefix_add(
            [plane() if present[0][t] else None for t in range(width)],
            [plane() if present[1][t] else None for t in range(width)],
        )
    )
    # the final planes hold one bit per check
    return ands + adder_ands * len(cols), layers + adder_layers


def padded_height(selected: int) -> int:
    """The height a weight's column is padded to (with sharings of 0) when ``selected`` daBits are
    weighted: a bound that ``Binomial(selected, 1/2)`` exceeds with probability below 2^-100, so that
    the circuit, its AND count and its rounds depend on the chunk sizes only, not on the coin."""
    return min(selected, selected // 2 + 6 * math.isqrt(selected) + 8)


def check_heights(parts: Sequence[tuple[int, int]], plan: CheckPlan, parties: int) -> list[list[int]]:
    """The padded column heights of every check of a batch (chunks ``parts``)."""
    return [
        [(padded_height(hi - lo) if t < plan.m else 0) + parties for t in range(plan.width)]
        for lo, hi in parts
        for _ in range(plan.checks)
    ]


def check_shape(count: int, field: PrimeField, parties: int) -> tuple[int, int]:
    """``(AND gates, AND layers)`` of the integer checks of ``generate_dabits(count)``."""
    if not count:
        return 0, 0
    return compress_shape(check_heights(chunks(count, field, parties), check_plan(field, parties), parties))


# ---------------------------------------------------------------------------------------- protocol
async def generate_dabits(s: Session, bs: BitSession, n: int) -> tuple[SharedArray, AuthBits]:
    """``n`` daBits ``([b], [[b]])``: uniform bits nobody knows, the same in the field and in the
    binary domain, checked as in the module docstring (``PreprocessingError`` if some daBit's field
    value is not its bit, ``MacCheckError`` for a wrong share in an opening)."""
    count = check_count(n)
    if bs.s is not s:
        raise ValueError("the BitSession belongs to another session")
    if count == 0:
        return empty_field(s), AuthBits.empty(bs.ctx)
    return await _generate(s, bs, count)


async def _generate(s: Session, bs: BitSession, count: int) -> tuple[SharedArray, AuthBits]:
    from .edabits import AndSupply, run_gates, solid

    f, n, me = s.field, s.n, s.party
    ctx = bs.ctx
    plan = check_plan(f, n)
    parts = chunks(count, f, n)
    # 1. the binary side: an XOR-sharing; party i's share u_i is what it inputs into the field
    b_bin = await bs.random_bits(count)
    # 2. the field side: every party's share, input and XORed in the field (n - 1 products)
    mine = field_shares_of_bits(b_bin.bits)
    b_f: SharedArray | None = None
    for owner in range(n):
        u = await s.input(mine if me == owner else None, owner=owner)
        b_f = u if b_f is None else field_xor(b_f, u, await s.mul(b_f, u))
    assert b_f is not None
    # 3. the integer check: private values in both domains, then the coin, then the weighted sums
    q_all = plan.checks * len(parts)
    values, bits = uniform_values(q_all, plan.width)
    r_field: SharedArray | None = None
    r_bin: list[AuthBits] = []
    for owner in range(n):
        mine = me == owner
        x = await s.input(values if mine else None, owner=owner)
        r_field = x if r_field is None else r_field + x
        r_bin.append(await bs.input(bits if mine else None, owner=owner))
    assert r_field is not None
    steps = (s.next_step(), s.next_step())
    seed = await coin_toss(s.net, steps, s.commit_context("dabit-check", steps[0]))
    ys: list[SharedArray] = []
    columns: list[Columns] = []
    for g, (lo, hi) in enumerate(parts):
        weights = PRG(sub_seed(seed, "weights", g)).random_words((plan.checks, hi - lo))
        weights &= U64((1 << plan.m) - 1)
        chunk_f = b_f[np.arange(lo, hi)]
        for c in range(plan.checks):
            q = g * plan.checks + c
            w = weights[c]
            ys.append(chunk_f.mul_public_field(f.from_ints(w)).sum() + r_field[np.arange(q, q + 1)].sum())
            cols: Columns = []
            for t in range(plan.width):
                sel: list[AuthBits] = []
                if t < plan.m:
                    idx = np.flatnonzero((w >> U64(t)) & U64(1)) + lo
                    pad = padded_height(hi - lo) - idx.size
                    if pad < 0:  # probability below 2^-100 per column, whatever the parties do
                        raise RuntimeError("the daBit check's weights exceed their padded columns")
                    sel += [b_bin[idx], solid(ctx, None, pad)]
                for rb in r_bin:
                    sel.append(rb[q * plan.width + t : q * plan.width + t + 1])
                cols.append(AuthBits.concat(sel))
            columns.append(cols)
    heights = check_heights(parts, plan, n)
    assert heights == [[c_.size for c_ in cols] for cols in columns]
    supply = AndSupply(bs, compress_shape(heights)[0])
    planes = await run_gates(bs, supply, compress(columns, solid(ctx, None, 1)))
    del columns
    z = AuthBits.concat([solid(ctx, p, q_all) for p in planes])
    (y_open,) = await s.open_unchecked([SharedArray.concat(ys)])
    (z_open,) = await bs.open_unchecked([z])
    # 4. MAC checks first: the comparison below then runs on the same, authentic values everywhere
    await s.mac_check()
    await bs.check()
    got = f.to_ints(y_open)
    zb = z_open.reshape(len(planes), q_all)
    want = [sum(int(zb[t, q]) << t for t in range(len(planes))) for q in range(q_all)]
    bad = sum(1 for a, b in zip(got, want, strict=True) if a != b)
    if bad:
        raise PreprocessingError(
            f"daBit check failed: the field and binary values of some daBit differ ({bad} of {q_all} checks)"
        )
    assert supply.remaining == 0, "the AND triples were miscounted"
    return b_f, b_bin


def dabit_cost(count: int, field: PrimeField, n: int) -> dict[str, int]:
    """The material ``generate_dabits(count)`` draws at ``n`` parties (for the planning, benchmarks and
    docs): field triples, input masks (every owner's), binary bits, and AND triples (the check's:
    ``check_shape``)."""
    if not count:
        return {"triples": 0, "input_masks": 0, "field_bits": 0, "binary_bits": 0, "and_triples": 0}
    plan = check_plan(field, n)
    q_all = plan.checks * len(chunks(count, field, n))
    ands = check_shape(count, field, n)[0]
    return {
        "triples": (n - 1) * count,
        "input_masks": n * (count + q_all),
        "field_bits": 0,
        "binary_bits": count + q_all * plan.width,
        "and_triples": ands,
    }


__all__ = [
    "MAX_DABITS",
    "bit_to_field",
    "check_plan",
    "check_shape",
    "compress",
    "dabit_cost",
    "generate_dabits",
]
