"""edaBits: a random ``r`` in ``[0, 2^k)`` shared in GF(p) as ``[r]`` and bit by bit as ``[[r_j]]``.

``generate_edabits(s, bs, n, k)`` returns ``n`` *strict* edaBits, ``r = sum_j 2^j r_j`` exactly (no
extra carry bits), checked against a malicious majority at statistical security 40. The protocol is
Escudero-Ghosh-Keller-Rachuri-Scholl's (CRYPTO 2020, "Improved primitives for MPC over mixed
arithmetic-binary circuits"): every party contributes private edaBits, they are summed with binary
adders, and cut-and-choose plus bucketing catches a party whose bits do not match its field value.
Layout: ``n * k`` bits element by element, least significant bit first (bit ``j`` of element ``e``
at ``e * k + j``), as ``MixedPreprocessing.edabits`` promises.

Per batch of ``m`` outputs, with ``(B, C) = edabit_parameters(m)`` and ``N = m B + C``:

1. **daBits and AND triples first** (``generate_dabits``; ``BitSession.and_triples``), for the
   carries and the adders below: their number is known in advance (``edabit_cost``).
2. **Private edaBits**: every party ``i`` draws ``N`` uniform ``r_i < 2^k`` and inputs them in the
   field (``Session.input``) and bit by bit in the binary domain (``BitSession.input``).
3. **Binary sum** of the ``n`` bit vectors, all ``N`` elements at once, gate layer by gate layer
   (``run_gates``: one AND per full adder, one round per layer): a carry-save layer turns three
   numbers into two while more than two are left, then a ripple-carry adder; ``k + L`` bits with
   ``L = bitlen(n (2^k - 1)) - k`` (1 for two parties, 2 for three). The field side adds the
   ``[r_i]``: ``sum_i r_i < n 2^k < p``, so nothing wraps mod p.
4. **Strict**: the ``L`` top bits ``t_j`` are removed with daBits ``(d, [[d]])``: open
   ``o = t_j XOR d`` (uniform), take ``[t_j] = o + [d] (1 - 2 o)`` and ``[r] -= 2^j [t_j]``. Now
   ``r = (sum_i r_i) mod 2^k``, uniform if one ``r_i`` is, with exactly its ``k`` bits. (The loose
   variant below keeps them, and ``HIDE`` more bits.)
5. **Cut-and-choose and bucketing**, from a coin tossed after everything above is fixed: a uniform
   permutation of the ``N`` items; the last ``C`` are opened in both domains and must agree; the
   others form ``m`` buckets of ``B``. In each bucket the first item ``a`` is the output and is
   checked against each other member ``f``: a ripple-carry adder gives the ``k + 1`` bits of
   ``a + f``, the carry ``c`` goes to the field through a daBit as in 4, and the parties open
   ``y = [a] + [f] - 2^k [c]`` and the ``k`` low bits of the sum, which must agree. ``y = (a + f) mod
   2^k`` is uniform whatever ``a`` is (``f`` is uniform and used once), and ``c XOR d`` is uniform:
   the check reveals nothing about the outputs. All of it (all ``B - 1`` checks of every bucket) is
   one adder over ``(B - 1) m`` pairs.
6. **MAC checks** of everything opened (field and binary), *then* the comparisons: every honest party
   compares the same authentic values, and a mismatch is a ``PreprocessingError`` everywhere.

**Soundness.** Call ``e = [r] - sum_j 2^j r_j`` (in GF(p)) an item's error after step 4; it is fixed
before the coin. The adders are exact (checked AND triples; a wrong share in any opening fails the
MAC check), and the daBits are consistent (their own check), so a bucket check of ``(a, f)`` passes
iff ``e_a + e_f = 0`` and an opened item passes iff ``e = 0``. A bucket with a bad output therefore
passes only if *all* its members are bad, and the adversary wins only if its bad items avoid the
``C`` opened ones and fill whole buckets: for ``t = j B`` bad items that has probability
``C(m, j) / C(m B + C, j B)`` (a uniform ``t``-subset of positions is a union of ``j`` buckets),
and 0 if ``B`` does not divide ``t``. ``edabit_parameters`` takes, for the batch size, the ``(B, C)``
with the largest such probability over ``j`` at most ``2^-40`` and the fewest daBits and adders.
(We do not count that the members' errors must also come in the pattern ``e, -e, ..., -e`` with
``e`` on the output: a bound, not an exact figure.) The ``j = m`` term, ``1 / C(m B + C, C)``, is why
``C`` is never 0: an adversary could otherwise make every item bad and hope. A wrong carry or sum bit
in any adder is a wrong share of an opened value or of a value the check opens, so the MAC checks
catch it; the generation's own failure events (daBits, AND triples, each ``2^-40``) add up.

**Loose edaBits** (``generate_loose_edabits``: the comparisons' masks; our variant, for review).
Every party draws ``R_i`` uniform in ``[0, 2^(k + HIDE))`` (``HIDE = 42``), inputs it in the field and
all its ``k + HIDE`` bits in binary; ``R = sum_i R_i`` in the field, and the binary sum keeps every
carry (``k + HIDE + L`` bits). Nothing is made strict, so no daBit is needed: the bucket check of
``(a, f)`` adds the two *full* binary values (one ripple-carry adder over ``k + HIDE + L`` bits) and
opens ``a + f`` in both domains, compared over the integers; cut-and-choose opens items whole. The
soundness argument above holds word for word (a check passes iff ``e_a + e_f = 0``, an opened item
iff ``e = 0``), so ``edabit_parameters`` is the same. The outputs are ``[R]`` and the ``k`` low bits
of ``R``: ``R mod 2^k`` is uniform (an honest ``R_h`` is), ``R < n 2^(k + HIDE)``, and ``floor(R /
2^k)`` holds an honest party's ``HIDE`` uniform bits. The check opens ``a + f``: its low ``k`` bits
are uniform (``f`` is used once), and its high part ``floor(a / 2^k) + floor(f / 2^k) + carry``
leaves ``floor(a / 2^k)`` within statistical distance about ``2^(1 - HIDE)`` of what it was, which is
what a later masked opening ``c = b + a`` needs to hide its own carry (``comparison_binary``). Why
not strict: for a comparison only ``R mod 2^k`` must be known in binary, and ``b mod 2^k = (c - R)
mod 2^k`` needs no field value of ``R mod 2^k``; the sign bit comes out of the binary subtraction,
so the ``B L + B - 1`` daBits of a strict edaBit (``n`` field triples each) are saved, for ``HIDE``
more bits in every adder. One loose edaBit also replaces the second edaBit of a strict mask (the
bounded ``r''``). Limit: ``a + f < 2 n 2^(k + HIDE)`` must fit the field (``loose_max_bits``: 82
bits at ``2^127 - 1`` for three parties, 16 at ``2^61 - 1``); above, the comparisons use strict
edaBits.

Cost per edaBit (``B`` from the batch size, ``C`` amortised away): ``B`` private edaBits per party,
``B (n - 1) + B - 1`` ``k``-bit adders (``k`` ANDs each, plus one per carry-save level), ``B L + B - 1``
daBits (``n`` field triples each): 5 daBits at ``n = 2`` and 8 at ``n = 3`` with ``B = 3``.
``edabit_cost`` gives the exact figures.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from ..commitments import coin_toss
from ..errors import PreprocessingError
from ..shares import SharedArray
from .bits import U64, AuthBits, BinaryContext, uniform_values
from .dabits import bit_to_field, check_count, empty_field, generate_dabits
from .session import MAX_BITS
from .triples import permutation

if TYPE_CHECKING:
    from ..field import PrimeField
    from ..online import Session
    from .session import BitSession

STAT_SEC = 40
ITEM_SLICE = 1 << 11
"""Items whose private values are input and summed at a time (the bucketing spans the whole batch):
bounds the authenticated input bits and the adders' widest layers to a slice (about 50 MB at 75
bits and three parties, with the binary inputs' OT buffers) instead of the batch."""
HIDE = STAT_SEC + 2
"""Loose edaBits: the uniform bits of every private value above the ``k`` that the binary side keeps;
they hide the carries of a masked opening (statistical distance about ``2^(1 - HIDE)``)."""
T = TypeVar("T")
Plane = AuthBits | None  # one bit position of every element; None is a known 0
Number = list[Plane]  # bit planes, least significant first
Gates = Generator[tuple[list[AuthBits], list[AuthBits]], list[AuthBits], T]
"""A circuit as a step generator: it yields one layer of AND gates (left and right operands, each a
list of equally long vectors) and receives the products; its return value is the result."""


# ---------------------------------------------------------------------------------------- parameters
def _log2_comb(a: int, b: int) -> float:
    return (math.lgamma(a + 1) - math.lgamma(b + 1) - math.lgamma(a - b + 1)) / math.log(2)


def edabit_log2_failure(count: int, bucket: int, opened: int) -> float:
    """log2 of the bound in the module docstring: ``max_j C(m, j) / C(m B + C, j B)`` for ``m =
    count`` buckets of ``B = bucket`` and ``C = opened`` items cut and chosen.

    Over ``j`` the bound falls then rises (the ratio of consecutive terms is about ``((m - j) /
    j)^(1 - B)``), so above 4,096 buckets only the first and last 256 values of ``j`` and the powers of
    two between are evaluated; below, all of them."""
    total = count * bucket + opened
    if count <= 4096:
        js: Sequence[int] = range(1, count + 1)
    else:
        js = sorted(
            {*range(1, 257), *range(count - 255, count + 1), *(1 << i for i in range(count.bit_length()))}
        )
    return max(_log2_comb(count, j) - _log2_comb(total, j * bucket) for j in js if j <= count)


@lru_cache(maxsize=256)
def edabit_parameters(count: int, sec: int = STAT_SEC) -> tuple[int, int]:
    """``(B, C)`` for a batch of ``count`` edaBits: failure bound ``<= 2^-sec`` (above) at the least
    ``count (2 B - 1) + C`` (items made plus bucket checks, each roughly an adder and a daBit)."""
    if count <= 0:
        raise ValueError(f"edabit_parameters needs a positive count, got {count}")
    best: tuple[int, int, int] | None = None  # (cost, B, C)
    bucket = 2
    while best is None or count * (2 * bucket - 1) <= best[0]:
        cap = 64 * count + (1 << 12)
        if edabit_log2_failure(count, bucket, cap) <= -sec:
            lo, hi = 0, cap  # the smallest C that suffices (the bound falls as C grows)
            while lo < hi:
                mid = (lo + hi) // 2
                if edabit_log2_failure(count, bucket, mid) <= -sec:
                    hi = mid
                else:
                    lo = mid + 1
            cost = count * (2 * bucket - 1) + lo
            if best is None or cost < best[0]:
                best = (cost, bucket, lo)
        bucket += 1
        if bucket > 4 * sec:
            break
    assert best is not None
    return best[1], best[2]


def max_bits(field: PrimeField, parties: int) -> int:
    """The largest ``k`` this field supports: a private value must be a field input (at most
    ``(p - 1) / 2``), and the sum of the private values and ``a + f`` in the check must stay below p
    (60 bits for two parties and 59 for three with ``2^61 - 1``; 126 and 125 with ``2^127 - 1``)."""
    k = field.bits
    while k > 1 and (parties * ((1 << k) - 1) >= field.modulus or (1 << k) - 1 > field.half):
        k -= 1
    return k


def extra_bits(parties: int, k: int) -> int:
    """``L``: the bits of ``sum_i r_i`` above the ``k`` low ones."""
    return (parties * ((1 << k) - 1)).bit_length() - k


# ---------------------------------------------------------------------------------------- circuits
def _xor(values: Sequence[AuthBits]) -> Plane:
    out: Plane = None
    for v in values:
        out = v if out is None else out ^ v
    return out


def csa_layer(groups: Sequence[tuple[Number, Number, Number]]) -> Gates[list[tuple[Number, Number]]]:
    """Carry-save addition of several triples of numbers in one layer of ANDs: ``x + y + z = s + t``
    with ``s_j = x_j XOR y_j XOR z_j`` and ``t_{j+1} = MAJ(x_j, y_j, z_j)``, where ``MAJ(a, b, c) = c
    XOR ((a XOR c) AND (b XOR c))`` (one AND; ``a AND b`` if only two are there)."""
    lefts: list[AuthBits] = []
    rights: list[AuthBits] = []
    plan: list[list[tuple[int, AuthBits | None]]] = []  # per group, per position: (AND index or -1, c)
    sums: list[Number] = []
    for x, y, z in groups:
        width = max(len(x), len(y), len(z))
        s: Number = []
        per: list[tuple[int, AuthBits | None]] = []
        for j in range(width):
            ops = [v[j] for v in (x, y, z) if j < len(v) and v[j] is not None]
            s.append(_xor(ops))  # type: ignore[arg-type]
            if len(ops) == 3:
                a, b, c = ops
                per.append((len(lefts), c))
                lefts.append(a ^ c)  # type: ignore[operator]
                rights.append(b ^ c)  # type: ignore[operator]
            elif len(ops) == 2:
                per.append((len(lefts), None))
                lefts.append(ops[0])  # type: ignore[arg-type]
                rights.append(ops[1])  # type: ignore[arg-type]
            else:
                per.append((-1, None))
        sums.append(s)
        plan.append(per)
    products = (yield (lefts, rights)) if lefts else []
    out = []
    for s, per in zip(sums, plan, strict=True):
        t: Number = [None]
        for index, c in per:
            if index < 0:
                t.append(None)
            else:
                g = products[index]
                t.append(g if c is None else g ^ c)
        out.append((s, t))
    return out


def ripple_add(x: Number, y: Number) -> Gates[Number]:
    """``x + y`` with ``max(len) + 1`` bits: a ripple-carry adder, one AND and one layer per bit
    position that has two or three operands (the carry is ``MAJ`` as in ``csa_layer``)."""
    width = max(len(x), len(y))
    out: Number = []
    carry: Plane = None
    for j in range(width):
        a = x[j] if j < len(x) else None
        b = y[j] if j < len(y) else None
        ops = [v for v in (a, b, carry) if v is not None]
        out.append(_xor(ops))
        if len(ops) == 3:
            assert a is not None and b is not None and carry is not None
            (g,) = yield ([a ^ carry], [b ^ carry])
            carry = g ^ carry
        elif len(ops) == 2:
            (carry,) = yield ([ops[0]], [ops[1]])
        else:
            carry = None
    out.append(carry)
    return out


def sum_numbers(numbers: Sequence[Number], width: int) -> Gates[Number]:
    """The sum of several numbers, cut to ``width`` bits (the caller knows the sum fits): carry-save
    layers while more than two are left, then a ripple-carry adder."""
    nums = [list(v) for v in numbers]
    while len(nums) > 2:
        groups = [(nums[i], nums[i + 1], nums[i + 2]) for i in range(0, len(nums) - 2, 3)]
        rest = nums[3 * len(groups) :]
        pairs = yield from csa_layer(groups)
        nums = [v for pair in pairs for v in pair] + rest
    total = (yield from ripple_add(nums[0], nums[1])) if len(nums) == 2 else nums[0]
    total = total[:width]
    return total + [None] * (width - len(total))


class AndSupply:
    """Checked AND triples for a circuit whose size is known, handed out in order. They are made in
    near-equal batches of at most ``CHUNK`` (``BitSession.and_triples``, one bucketing each), the next
    one when the current one runs out: memory stays at one batch, and every batch of 2^19 or so gets
    the smallest bucket (B = 3 from 276,325 triples)."""

    CHUNK = 1 << 19

    def __init__(self, bs: BitSession, need: int) -> None:
        self.bs = bs
        # a session that makes its AND triples in smaller sub-batches (the offline service's
        # ``mixed.BoundedBitSession``) gets requests of that size: no more is held at once
        chunk = min(self.CHUNK, getattr(bs, "and_chunk", self.CHUNK))
        parts = -(-need // chunk)
        self.plan = [need // parts + (1 if i < need % parts else 0) for i in range(parts)] if need else []
        self.a = self.b = self.c = AuthBits.empty(bs.ctx)
        self.used = 0

    @property
    def remaining(self) -> int:
        """Triples not handed out yet, made or still to be made."""
        return self.a.size - self.used + sum(self.plan)

    async def take(self, count: int) -> tuple[AuthBits, AuthBits, AuthBits]:
        if count > self.remaining:
            raise RuntimeError(f"{count} AND triples wanted, {self.remaining} left (a miscounted circuit)")
        while self.a.size - self.used < count:
            a, b, c = await self.bs.and_triples(self.plan.pop(0))
            rest = slice(self.used, None)
            self.a, self.b, self.c = (
                AuthBits.concat([old[rest], new]) for old, new in ((self.a, a), (self.b, b), (self.c, c))
            )
            self.used = 0
        lo, self.used = self.used, self.used + count
        return self.a[lo : self.used], self.b[lo : self.used], self.c[lo : self.used]


async def run_gates(bs: BitSession, supply: AndSupply, circuit: Gates[T]) -> T:
    """Evaluate a circuit: every layer's ANDs (all elements, all gates of the layer) in one ``and_``,
    i.e. one opening round per layer."""
    try:
        request = circuit.send(None)  # type: ignore[arg-type]
        while True:
            lefts, rights = request
            x, y = AuthBits.concat(lefts), AuthBits.concat(rights)
            z = await bs.and_(x, y, await supply.take(x.size))
            request = circuit.send(z.split([v.size for v in lefts]))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


def circuit_shape(make: Callable[[Callable[[], AuthBits]], Gates[Any]]) -> tuple[int, int]:
    """``(ANDs per element, AND layers)`` of a circuit: ``make(plane)`` builds it from one-element
    planes ``plane()``; neither depends on the values."""
    ctx = BinaryContext(0, 2, np.zeros(2, dtype=U64))

    def plane() -> AuthBits:
        return AuthBits(ctx, np.zeros(1, np.uint8), np.zeros((1, 2), U64))

    circuit = make(plane)
    ands = layers = 0
    try:
        request = circuit.send(None)  # type: ignore[arg-type]
        while True:
            lefts, _ = request
            ands += sum(v.size for v in lefts)
            layers += 1
            request = circuit.send([plane() for _ in lefts])
    except StopIteration:
        return ands, layers


def count_ands(make: Callable[[Callable[[], AuthBits]], Gates[Any]]) -> int:
    """The ANDs per element of a circuit (``circuit_shape``)."""
    return circuit_shape(make)[0]


def sum_circuit_ands(parties: int, k: int) -> int:
    width = k + extra_bits(parties, k)
    return count_ands(lambda plane: sum_numbers([[plane() for _ in range(k)] for _ in range(parties)], width))


def check_circuit_ands(k: int) -> int:
    return count_ands(lambda plane: ripple_add([plane() for _ in range(k)], [plane() for _ in range(k)]))


def edabit_cost(count: int, k: int, parties: int) -> dict[str, int]:
    """What ``generate_edabits(count, k)`` uses at ``parties`` parties: items, ``(B, C)``, daBits,
    AND triples, private input bits per party."""
    bucket, opened = edabit_parameters(count)
    items = count * bucket + opened
    checks = (bucket - 1) * count
    return {
        "B": bucket,
        "C": opened,
        "items": items,
        "dabits": items * extra_bits(parties, k) + checks,
        "and_triples": items * sum_circuit_ands(parties, k) + checks * check_circuit_ands(k),
        "input_bits": items * k,
    }


def loose_max_bits(field: PrimeField, parties: int) -> int:
    """The largest ``k`` for loose edaBits: ``a + f`` in a bucket check, below ``2 n 2^(k + HIDE)``,
    must stay below p (``2^127 - 1``: 83 bits for two parties, 82 for three; ``2^61 - 1``: 17, 16)."""
    return max(max_bits(field, 2 * parties) - HIDE, 0)


def loose_edabit_cost(count: int, k: int, parties: int) -> dict[str, int]:
    """What ``generate_loose_edabits(count, k)`` uses at ``parties`` parties (no daBits)."""
    bucket, opened = edabit_parameters(count)
    items = count * bucket + opened
    checks = (bucket - 1) * count
    width = k + HIDE
    return {
        "B": bucket,
        "C": opened,
        "items": items,
        "dabits": 0,
        "and_triples": items * sum_circuit_ands(parties, width)
        + checks * check_circuit_ands(width + extra_bits(parties, width)),
        "input_bits": items * width,
    }


# ---------------------------------------------------------------------------------------- layout
def planes_of(x: AuthBits, k: int) -> list[AuthBits]:
    """Bit planes of element-major bits (element ``e``'s bit ``j`` at ``e * k + j``)."""
    return [x[j::k] for j in range(k)]


def from_planes(planes: Sequence[AuthBits]) -> AuthBits:
    """Element-major bits from bit planes (the inverse of ``planes_of``)."""
    bits = np.stack([p.bits for p in planes], axis=1).reshape(-1)
    macs = np.stack([p.macs for p in planes], axis=1).reshape(-1, 2)
    return AuthBits(planes[0].ctx, bits, macs)


def solid(ctx: BinaryContext, plane: Plane, size: int) -> AuthBits:
    return plane if plane is not None else AuthBits(ctx, np.zeros(size, np.uint8), np.zeros((size, 2), U64))


def private_edabits(count: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """This party's private edaBits: ``bits.uniform_values(count, k)``. (A hook: the tests make a
    cheater return other values.)"""
    return uniform_values(count, k)


# ---------------------------------------------------------------------------------------- protocol
async def generate_edabits(s: Session, bs: BitSession, n: int, k: int) -> tuple[SharedArray, AuthBits]:
    """``n`` strict edaBits of ``k`` bits: ``([r], [[r_0]], ..., [[r_{k-1}]])`` with ``r`` uniform in
    ``[0, 2^k)`` and ``r = sum_j 2^j r_j`` exactly; bits element by element, least significant
    first. ``PreprocessingError`` if a party's private bits do not match its field values (or any
    item is inconsistent), ``MacCheckError`` for a wrong share anywhere in the adders or openings."""
    return await _request(s, bs, n, k, loose=False)


async def generate_loose_edabits(s: Session, bs: BitSession, n: int, k: int) -> tuple[SharedArray, AuthBits]:
    """``n`` *loose* edaBits for the comparisons' masks: ``([R], [[R_0]], ..., [[R_{k-1}]])`` with
    ``R = sum_i R_i`` for every party's private ``R_i`` uniform in ``[0, 2^(k + HIDE))``, so that
    ``R mod 2^k`` is uniform and ``floor(R / 2^k)`` holds ``HIDE`` uniform bits of an honest party;
    the ``k`` bits are those of ``R mod 2^k`` (``n * k`` bits, element by element, LSB first), and
    ``R < n 2^(k + HIDE)`` (see "Loose edaBits" in the module docstring). No daBits at all.
    ``PreprocessingError`` if some party's bits do not match its field values, ``MacCheckError`` for
    a wrong share anywhere."""
    return await _request(s, bs, n, k, loose=True)


async def _request(s: Session, bs: BitSession, n: int, k: int, *, loose: bool) -> tuple[SharedArray, Any]:
    """Check a request (before anything is sent), then make it."""
    what = "loose edaBits" if loose else "edaBits"
    count = check_count(n, what)
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool):
        raise TypeError(f"the bit length must be an int, got {type(k).__name__}")
    top = (loose_max_bits if loose else max_bits)(s.field, s.n)
    if not 1 <= k <= top:
        raise ValueError(f"{what} of {k} bits: this field and party count allow 1 to {top}")
    if bs.s is not s:
        raise ValueError("the BitSession belongs to another session")
    if count == 0:
        return empty_field(s), AuthBits.empty(bs.ctx)
    bucket, opened = edabit_parameters(count)
    if (count * bucket + opened) * (int(k) + (HIDE if loose else 0)) > MAX_BITS:
        raise ValueError(f"{count} {what} of {k} bits need more than {MAX_BITS} input bits: ask in parts")
    return await _generate(s, bs, count, int(k), bucket, opened, loose=loose)


async def _generate(
    s: Session, bs: BitSession, count: int, k: int, bucket: int, opened: int, *, loose: bool = False
) -> tuple[SharedArray, AuthBits]:
    f, ctx = s.field, bs.ctx
    items = count * bucket + opened
    checks = (bucket - 1) * count
    width = k + HIDE if loose else k  # the private values' bits
    extra = extra_bits(s.n, width)
    full = width + extra  # the sum's bits
    # 1. the daBits (strict only: the carries) and AND triples of the whole batch
    das = 0 if loose else items * extra + checks
    d_field, d_bin = await generate_dabits(s, bs, das) if das else (empty_field(s), AuthBits.empty(ctx))
    checked = full if loose else k  # the bits each bucket check adds
    need = items * sum_circuit_ands(s.n, width) + checks * check_circuit_ands(checked)
    supply = AndSupply(bs, need)
    # 2-3. private edaBits in both domains, and their sum, in slices of ITEM_SLICE items (their
    # authenticated input bits and the adders' layers are the batch's largest arrays)
    totals: list[SharedArray] = []
    sliced: list[list[AuthBits]] = []
    for lo in range(0, items, ITEM_SLICE):
        size = min(ITEM_SLICE, items - lo)
        values, bits = private_edabits(size, width)
        field_parts: list[SharedArray] = []
        numbers: list[Number] = []
        for owner in range(s.n):
            mine = s.party == owner
            field_parts.append(await s.input(values if mine else None, owner=owner))
            numbers.append(list(planes_of(await bs.input(bits if mine else None, owner=owner), width)))
        part_total = field_parts[0]
        for part in field_parts[1:]:
            part_total = part_total + part
        totals.append(part_total)
        sums = await run_gates(bs, supply, sum_numbers(numbers, full))
        sliced.append([solid(ctx, p, size) for p in sums])
        del numbers, field_parts
    total = totals[0] if len(totals) == 1 else SharedArray.concat(totals)
    planes = [p[0] if len(sliced) == 1 else AuthBits.concat(list(p)) for p in zip(*sliced, strict=True)]
    del sliced, totals
    # 4. strict: the carries above bit k leave the field value through daBits
    if extra and not loose:
        tops = AuthBits.concat(planes[k:])
        (masked,) = await bs.open_unchecked([tops ^ d_bin[: items * extra]])
        carries = bit_to_field(d_field[np.arange(items * extra)], masked)
        for j in range(extra):
            t = carries[np.arange(j * items, (j + 1) * items)]
            total = total - t.mul_public_field(f.from_ints([1 << (k + j)]))
        planes = planes[:k]
    # 5. cut-and-choose and bucketing from a coin tossed now
    steps = (s.next_step(), s.next_step())
    label = "loose-edabit-buckets" if loose else "edabit-buckets"
    seed = await coin_toss(s.net, steps, s.commit_context(label, steps[0]))
    perm = permutation(seed, items)
    cut = perm[count * bucket :]
    outputs = perm[0 : count * bucket : bucket]
    a_index = np.concatenate([outputs] * (bucket - 1))  # bucket >= 2: every output is checked
    f_index = np.concatenate([perm[r : count * bucket : bucket] for r in range(1, bucket)])
    a_planes = [p[a_index] for p in planes]
    f_planes = [p[f_index] for p in planes]
    sums = await run_gates(bs, supply, ripple_add(list(a_planes), list(f_planes)))
    y = total[a_index] + total[f_index]
    if loose:  # a + f over the integers, all its bits: no carry to take to the field
        low = AuthBits.concat([solid(ctx, p, checks) for p in sums])
    else:  # (a + f) mod 2^k: the carry leaves through a daBit
        carry = solid(ctx, sums[k], checks)
        (masked_c,) = await bs.open_unchecked([carry ^ d_bin[items * extra :]])
        c_field = bit_to_field(d_field[np.arange(items * extra, items * extra + checks)], masked_c)
        y = y - c_field.mul_public_field(f.from_ints([1 << k]))
        low = AuthBits.concat([solid(ctx, p, checks) for p in sums[:k]])
    cut_planes = AuthBits.concat([p[cut] for p in planes])
    y_open, cut_open = await s.open_unchecked([y, total[cut]])
    low_open, cut_bits = await bs.open_unchecked([low, cut_planes])
    # 6. MAC checks, then the comparisons on authentic values
    await s.mac_check()
    await bs.check()
    bad_checks = _mismatches(f, y_open, low_open, checks)
    bad_cut = _mismatches(f, cut_open, cut_bits, opened)
    if bad_checks or bad_cut:
        kind = "loose edaBit" if loose else "edaBit"
        raise PreprocessingError(
            f"{kind} check failed: the field value of some {kind} does not match its bits "
            f"({bad_cut} of {opened} opened items, {bad_checks} of {checks} bucket checks)"
        )
    assert supply.remaining == 0, "the AND triples were miscounted"
    return total[outputs], from_planes([p[outputs] for p in planes[:k]])


def _mismatches(f: PrimeField, field_open: np.ndarray, bits_open: np.ndarray, size: int) -> int:
    """How many opened field values differ from the value of their opened bits (``k`` planes of
    ``size`` bits each, concatenated, least significant first; composed in the field)."""
    if size == 0:
        return 0
    expected = f.compose_pow2(f.from_ints(bits_open), size)
    return int(np.count_nonzero(np.any(expected != field_open, axis=0)))


__all__ = [
    "AndSupply",
    "circuit_shape",
    "edabit_cost",
    "edabit_log2_failure",
    "edabit_parameters",
    "generate_edabits",
    "generate_loose_edabits",
    "loose_edabit_cost",
    "loose_max_bits",
    "max_bits",
    "ripple_add",
    "run_gates",
    "sum_numbers",
]
