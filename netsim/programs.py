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
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

import numpy as np

from protocols.online import Session

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
