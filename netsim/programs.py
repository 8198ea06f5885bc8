"""The programs a simulation runs, with their inputs and their plaintext answers.

A simulation must know the right answer to call an output wrong, so each ``SimProgram`` bundles the
SPMD program with a seeded input generator and a plaintext reference. The shapes matter to the
adversaries: a cheater's wrapper recognises a message by its wire format, and a commitment is a 32-byte
digest, so no program here ever opens a vector of exactly 32 bytes (vectors of 3 or 5 elements: 24/40
bytes at p = 2^61 - 1, 48/80 at p = 2^127 - 1; a Beaver opening holds 2x that).

``openings`` counts the program's opening rounds (Beaver, output, private output), ``checks`` its MAC
checks (each a coin toss and a commit-and-reveal of sigma), ``masks(n)`` its
requests for input masks (every input and every private output), ``triples`` its requests for triples
and ``owners(n)`` the parties that broadcast an input correction, in program order at ``n`` parties;
adversaries pick their targets among them.

Two programs run the binary domain (``protocols.binary``; ``binary`` says which of its steps, for the
adversaries that attack them): ``cmp-binary``, comparisons on the binary path over mixed material
(online: AND-layer openings, daBit conversions, the binary MAC check), dealt, or pooled by the offline
service on MASCOT, and ``bits``, which makes its own binary material inside the session
(``BinaryParty`` set-up, bit inputs, AND triples, daBits, edaBits strict and loose, with field material
from the session's preprocessing) and uses it. ``binary_openings(n, field)`` counts their binary openings
(sending steps of ``BitChecker.open``), ``preprocessing`` the sources a program can run on, ``batch``
its MASCOT batch sizes (on-demand batches small enough for one run). Their field messages are counted as
above (the binary domain's are not: ``netsim.adversaries.from_binary``), so the field strategies find
their targets in them too; where a count grows with ``n`` (``bits``: the daBits' XORs in the field), the
count at 2 parties is given, which every ``n`` has.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

import numpy as np

from protocols import comparison
from protocols.binary import AuthBits, BinaryParty, BitSession
from protocols.binary.dabits import bit_to_field, check_shape, generate_dabits
from protocols.binary.edabits import (
    HIDE,
    circuit_shape,
    edabit_cost,
    extra_bits,
    generate_edabits,
    generate_loose_edabits,
    ripple_add,
    sum_numbers,
)
from protocols.field import PrimeField
from protocols.online import Session
from protocols.shares import SharedArray

Inputs = list[list[int] | None]  # per party: its input vector, or None if it owns no input


@dataclass(frozen=True)
class SimProgram:
    """A program, its inputs per party (drawn from a seeded RNG) and its expected result per party."""

    name: str
    description: str
    prog: Callable[..., Awaitable[Any]]
    inputs: Callable[[random.Random, int], Inputs]
    expected: Callable[[Inputs, int], list[Any]]
    openings: int
    checks: int
    triples: int
    masks: Callable[[int], int]
    owners: Callable[[int], tuple[int, ...]]
    binary: frozenset[str] = frozenset()  # "openings", "dealt", "generation": see the module docstring
    binary_openings: Callable[[int, PrimeField], int] = lambda n, f: 0
    preprocessing: tuple[str, ...] = ("dealer", "mascot")
    batch: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    """MASCOT batch sizes by pool kind (field kinds and binary families) for this program, over the
    runner's default (8 of every field kind)."""


# ---------------------------------------------------------------------------------------------- mul
def _mul_inputs(rng: random.Random, n: int) -> Inputs:
    vec = [[rng.randint(-1000, 1000) for _ in range(3)] for _ in range(2)]
    return [vec[i] if i < 2 else None for i in range(n)]


BIG = 200_000  # elements of ``bigmul``: 1.6 MB frames in p61, several link pieces each


def _bigmul_inputs(rng: random.Random, n: int) -> Inputs:
    vec = [[rng.randint(-1000, 1000) for _ in range(BIG)] for _ in range(2)]
    return [vec[i] if i < 2 else None for i in range(n)]


async def _mul(s: Session, mine: list[int] | None) -> tuple[Any, Any]:
    """x (party 0) times y (party 1); z to everyone, z + x to the last party only."""
    x = await s.input(np.array(mine) if s.party == 0 else None, owner=0)
    y = await s.input(np.array(mine) if s.party == 1 else None, owner=1)
    z = await s.mul(x, y)
    everyone = await s.output(z)
    private = await s.output(z + x, to=s.n - 1)
    return everyone, private


def _mul_expected(inputs: Inputs, n: int) -> list[Any]:
    xs, ys = inputs[0], inputs[1]
    assert xs is not None and ys is not None
    z = [a * b for a, b in zip(xs, ys, strict=True)]
    zx = [a + b for a, b in zip(z, xs, strict=True)]
    return [(z, zx if i == n - 1 else None) for i in range(n)]


# ---------------------------------------------------------------------------------------------- sum
def _sum_inputs(rng: random.Random, n: int) -> Inputs:
    return [[rng.randint(-(10**6), 10**6) for _ in range(5)] for _ in range(n)]


async def _sum(s: Session, mine: list[int] | None) -> Any:
    """Every party inputs a vector; everyone learns the elementwise sum."""
    total = None
    for owner in range(s.n):
        x = await s.input(np.array(mine) if s.party == owner else None, owner=owner)
        total = x if total is None else total + x
    assert total is not None
    return await s.output(total)


def _sum_expected(inputs: Inputs, n: int) -> list[Any]:
    vecs = [v for v in inputs if v is not None]
    total = [sum(col) for col in zip(*vecs, strict=True)]
    return [total] * n


# ---------------------------------------------------------------------------------------- cmp-binary
CMP_BITS = 16  # declared bit length of the compared differences (|x - y| <= 2,000)


def _cmp_inputs(rng: random.Random, n: int) -> Inputs:
    xs = [rng.randint(-1000, 1000) for _ in range(3)]
    ys = [x if rng.random() < 0.3 else rng.randint(-1000, 1000) for x in xs]  # some equal pairs
    return [xs if i == 0 else ys if i == 1 else None for i in range(n)]


async def _cmp_binary(s: Session, mine: list[int] | None) -> tuple[Any, Any]:
    """x (party 0) < y (party 1) to everyone and x == y to the last party, both on the binary path
    (edaBit masks, AND layers, daBit conversions, the binary MAC check in every output's check)."""
    x = await s.input(np.array(mine) if s.party == 0 else None, owner=0)
    y = await s.input(np.array(mine) if s.party == 1 else None, owner=1)
    lt = await comparison.ltz(s, x - y, CMP_BITS, domain="binary")
    eq = await comparison.eqz(s, x - y, CMP_BITS, domain="binary")
    return await s.output(lt), await s.output(eq, to=s.n - 1)


def _cmp_expected(inputs: Inputs, n: int) -> list[Any]:
    xs, ys = inputs[0], inputs[1]
    assert xs is not None and ys is not None
    lt = [int(a < b) for a, b in zip(xs, ys, strict=True)]
    eq = [int(a == b) for a, b in zip(xs, ys, strict=True)]
    return [(lt, eq if i == n - 1 else None) for i in range(n)]


# ---------------------------------------------------------------------------------------------- bits
BITS = 5  # input bits of parties 0 and 1
EDABITS, EDABIT_BITS = 3, 4  # edaBits the program makes, and their width
LOOSE, LOOSE_BITS = 2, 4  # loose edaBits the program makes, and their width
DABITS = BITS + EDABITS * EDABIT_BITS + LOOSE * LOOSE_BITS


def _bits_inputs(rng: random.Random, n: int) -> Inputs:
    vec = [[rng.randrange(2) for _ in range(BITS)] for _ in range(2)]
    return [vec[i] if i < 2 else None for i in range(n)]


def _to_field(d_field: SharedArray, opened: np.ndarray) -> SharedArray:
    return bit_to_field(d_field, opened)


def _composed(in_field: SharedArray, start: int, items: int, k: int, f: Any) -> SharedArray:
    """``sum_j 2^j b_j`` per item of the ``items`` k-bit numbers at ``in_field[start:]`` (bits element
    by element, least significant first)."""
    composed = None
    for j in range(k):
        bit_j = in_field[np.arange(start + j, start + items * k, k)]
        term = bit_j.mul_public_field(f.from_ints([1 << j] * items))
        composed = term if composed is None else composed + term
    assert composed is not None
    return composed


async def _bits(s: Session, mine: list[int] | None) -> tuple[Any, Any, Any, Any]:
    """Binary material made inside the session, then used: a ``BinaryParty`` (base OTs), the bits x
    (party 0) and y (party 1) authenticated, ``x AND y`` on freshly made AND triples, the result
    taken to the field through fresh daBits, and fresh edaBits, strict and loose, whose bits, taken
    to the field the same way, must compose to their field value (a loose one's ``R`` only modulo
    ``2^k``). Outputs: ``x AND y`` (binary output), the same from the field, ``r - sum_j 2^j r_j`` for
    every strict edaBit (zeros) and ``(R - sum_j 2^j R_j) mod 2^k`` for every loose one (zeros: ``R -
    sum_j 2^j R_j`` is ``R``'s high part times ``2^k``, opened here, which only a simulation may)."""
    party = BinaryParty(s.party, s.n)
    await party.setup(s)
    bs = BitSession(s, party)
    f = s.field
    x = await bs.input(mine if s.party == 0 else None, owner=0)
    y = await bs.input(mine if s.party == 1 else None, owner=1)
    z = await bs.and_(x, y, await bs.and_triples(BITS))
    d_field, d_bits = await generate_dabits(s, bs, DABITS)
    r_field, r_bits = await generate_edabits(s, bs, EDABITS, EDABIT_BITS)
    l_field, l_bits = await generate_loose_edabits(s, bs, LOOSE, LOOSE_BITS)
    # all into the field in one binary opening: z, the edaBits' bits, the loose ones' (item by item)
    (masked,) = await bs.open_unchecked([AuthBits.concat([z, r_bits, l_bits]) ^ d_bits])
    in_field = _to_field(d_field, masked)
    z_field = in_field[np.arange(BITS)]
    composed = _composed(in_field, BITS, EDABITS, EDABIT_BITS, f)
    loose = _composed(in_field, BITS + EDABITS * EDABIT_BITS, LOOSE, LOOSE_BITS, f)
    z_out = await bs.output(z)
    z_from_field = await s.output(z_field)
    zeros = await s.output(r_field - composed)
    high = await s.output(l_field - loose)  # signed: back to [0, p) before taking it modulo 2^k
    await bs.finish()
    low = [int(v) % f.modulus % (1 << LOOSE_BITS) for v in np.asarray(high).reshape(-1)]
    return z_out, z_from_field, zeros, low


def _bits_binary_openings(n: int, f: PrimeField) -> int:
    """``bits``' binary openings: 14, one per AND layer of the two daBit checks (the program's daBits
    and the strict edaBits' own: ``dabits.check_shape``) and one for each check's AND-triple
    bucketing, one per AND layer of the strict edaBits' sum
    of ``n`` numbers, and for the loose edaBits 2, one per AND layer of their sum and of their bucket
    check's adder (over the sum's full width: ``k + HIDE`` bits and the carries of ``n`` numbers)."""
    loose = LOOSE_BITS + HIDE
    full = loose + extra_bits(n, loose)
    checks = (
        check_shape(DABITS, f, n)[1] + check_shape(edabit_cost(EDABITS, EDABIT_BITS, n)["dabits"], f, n)[1]
    )
    return 14 + 2 + checks + _sum_layers(n, EDABIT_BITS) + 2 + _sum_layers(n, loose) + _ripple_layers(full)


def _sum_layers(n: int, bits: int) -> int:
    """The AND layers of ``sum_numbers`` over ``n`` numbers of ``bits`` bits (edaBit generation)."""
    width = bits + extra_bits(n, bits)
    return circuit_shape(
        lambda plane: sum_numbers([[plane() for _ in range(bits)] for _ in range(n)], width)
    )[1]


def _ripple_layers(bits: int) -> int:
    """The AND layers of ``ripple_add`` on two numbers of ``bits`` bits (an edaBit bucket check)."""
    return circuit_shape(
        lambda plane: ripple_add([plane() for _ in range(bits)], [plane() for _ in range(bits)])
    )[1]


def _bits_expected(inputs: Inputs, n: int) -> list[Any]:
    xs, ys = inputs[0], inputs[1]
    assert xs is not None and ys is not None
    z = [a & b for a, b in zip(xs, ys, strict=True)]
    return [(z, z, [0] * EDABITS, [0] * LOOSE)] * n


_MUL = SimProgram(
    "mul",
    "inputs of parties 0 and 1, a Beaver multiplication, an output to all and one to the last party",
    _mul,
    _mul_inputs,
    _mul_expected,
    openings=3,
    checks=3,
    triples=1,
    masks=lambda n: 3,
    owners=lambda n: (0, 1),
)

PROGRAMS: Mapping[str, SimProgram] = MappingProxyType(
    {
        "mul": _MUL,
        "bigmul": replace(
            _MUL,
            name="bigmul",
            description=f"mul on vectors of {BIG:,}: frames of megabytes (for resets shorter than a frame)",
            inputs=_bigmul_inputs,
        ),
        "sum": SimProgram(
            "sum",
            "every party inputs a vector of 5; everyone learns the sum (no multiplication)",
            _sum,
            _sum_inputs,
            _sum_expected,
            openings=1,
            checks=2,
            triples=0,
            masks=lambda n: n,
            owners=lambda n: tuple(range(n)),
        ),
        "cmp-binary": SimProgram(
            "cmp-binary",
            "x < y and x == y on the binary path (dealt edaBits, AND triples, daBits; binary MAC check)",
            _cmp_binary,
            _cmp_inputs,
            _cmp_expected,
            openings=4,
            checks=3,
            triples=0,
            masks=lambda n: 3,
            owners=lambda n: (0, 1),
            binary=frozenset({"openings", "dealt"}),
            binary_openings=lambda n, f: 10,
            # its binary material from the offline service on MASCOT: small on-demand batches
            batch=MappingProxyType({"and_triple": 64, "dabit": 8, "loose": 8, "edabit": 8}),
        ),
        "bits": SimProgram(
            "bits",
            "AND triples, daBits and edaBits made in the session (BinaryParty, BitSession), then used",
            _bits,
            _bits_inputs,
            _bits_expected,
            openings=9,
            checks=7,
            triples=2,
            masks=lambda n: 6 * n,
            owners=lambda n: tuple(range(n)) * 6,
            binary=frozenset({"openings", "generation", "loose"}),
            binary_openings=_bits_binary_openings,
            batch=MappingProxyType({"triple": 256, "mask": 256}),
        ),
    }
)


def normalize(value: Any) -> Any:
    """A result as plain Python (ints, lists, tuples, None), so results compare with ``==``."""
    if isinstance(value, np.ndarray):
        return [int(v) for v in value.reshape(-1)]
    if isinstance(value, (list, tuple)):
        return type(value)(normalize(v) for v in value)
    if isinstance(value, np.integer):
        return int(value)
    return value


__all__ = ["PROGRAMS", "Inputs", "SimProgram", "normalize"]
