"""Binary circuits in the online phase: AND layers of many elements in one opening each, and the carry
circuits of the mixed-domain comparisons (``protocols.comparison_binary``).

Step generators (``protocols.rounds``) yield these requests next to the field ones; ``rounds.run``
hands them to ``fulfil`` after the step's field round:

* ``And(x, y)``: ``x AND y`` elementwise for two ``AuthBits`` of one size (Beaver with one AND triple
  per gate: open ``d = x + a``, ``e = y + b``, then ``z = c + d b + e a + d e``);
* ``OpenBits(x)``: ``x`` opened, unchecked (on the session's binary to-check list);
* ``ToField(x)``: ``[[x]]`` brought into the field with one daBit ``([b], [[b]])`` per bit: ``x + b`` is
  opened in the binary domain and ``[x] = c + [b] - 2 c [b]`` computed locally (``rounds.xor_public``);
* ``EdaBits(n, k)`` and ``DaBits(n)``: preprocessing, no round.

Per step, the gates, openings and conversions of *every* binary request go into ONE binary opening,
with one ``and_triples`` and one ``dabits`` draw: a circuit layer costs one round whatever the number
of elements, and ``parallel`` merges the layers of independent protocols.

Every binary opening goes to the session's ``BitChecker`` (``checker(s)``), which is attached to the
``Session``: ``Session.mac_check`` runs the binary check too, so it precedes every output and
``finish``, and its failure aborts the session (and zeroes both MAC key shares) like the field
check's. A party that alters its share of an AND-layer opening or of a conversion, or holds a wrong MAC
share, is caught there with probability ``1 - 2^-114`` (``check.py``).

Bit matrices: a secret ``(R, n)`` matrix of bits (``R`` bit positions of ``n`` elements) is one flat
``AuthBits`` of ``R * n`` bits, row-major (row ``i`` at ``[i n, (i + 1) n)``), as ``rounds``' field bit
matrices; edaBits come element by element (``MixedPreprocessing``) and ``by_position`` transposes them.

Circuits (every AND layer over all elements and all rows at once):

* ``and_rows``: the AND of all ``R`` rows, a halving tree: ``ceil(log2 R)`` rounds, ``R - 1`` gates;
* ``carry_out``: the carry out of an ``R``-position addition from generate/propagate rows, a tree of
  ``(G, P) o (G', P') = (G + P G', P P')`` on adjacent blocks (the lowest block's ``P`` is never
  needed): ``ceil(log2 R)`` rounds, ``2 (R - 1) - ceil(log2 R)`` gates;
* ``prefix_carries``: every carry, Sklansky's network (``rounds._sklansky``): ``ceil(log2 R)`` rounds;
* ``lt_public``: ``[c < r]`` for a public ``c`` and secret bits ``r``: the carry out of ``r + NOT c``;
* ``sub_public``: the bits of ``(t - r) mod 2^R`` for a public ``t`` (``t + NOT r + 1``, every carry);
  the sum bits are XORs, local.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import numpy as np

from ..errors import SpdzError
from ..rounds import _sklansky, take, xor_public
from ..shares import SharedArray
from .bits import AuthBits
from .check import BitChecker

if TYPE_CHECKING:
    from ..online import Session

T = TypeVar("T")
BitSteps = Generator[list[Any], list[Any], T]


# ---------------------------------------------------------------------------------------- requests
class _Binary:
    binary_request: ClassVar[bool] = True  # what rounds._fulfil looks for


@dataclass(frozen=True, eq=False)
class And(_Binary):
    """Round request: ``x AND y`` elementwise (an ``AuthBits`` of the same size)."""

    x: AuthBits
    y: AuthBits


@dataclass(frozen=True, eq=False)
class OpenBits(_Binary):
    """Round request: open ``x`` (unchecked); the result is a uint8 0/1 array."""

    x: AuthBits


@dataclass(frozen=True, eq=False)
class ToField(_Binary):
    """Round request: the bits of ``x`` as field sharings (one daBit each); a flat ``SharedArray``."""

    x: AuthBits


@dataclass(frozen=True, eq=False)
class EdaBits(_Binary):
    """Preprocessing request: ``n`` edaBits of ``k`` bits, ``([r], [[r_j]])`` (``MixedPreprocessing``)."""

    n: int
    k: int


@dataclass(frozen=True, eq=False)
class LooseEdaBits(_Binary):
    """Preprocessing request: ``n`` comparison masks ``([R], [[R mod 2^k]])``
    (``MixedPreprocessing.loose_edabits``)."""

    n: int
    k: int


@dataclass(frozen=True, eq=False)
class DaBits(_Binary):
    """Preprocessing request: ``n`` daBits ``([b], [[b]])``."""

    n: int


class MissingBinaryMaterial(SpdzError, ValueError):
    """A binary-domain protocol ran on preprocessing that has no binary material."""


def checker(s: Session) -> BitChecker:
    """The session's binary to-check list (made on first use, attached to the session's MAC check)."""
    pre = mixed_source(s)
    return s.attach("binary", lambda: BitChecker(s, pre.bctx, pre.compromised))


def mixed_source(s: Session) -> Any:
    """The session's preprocessing, which must be a ``MixedPreprocessing``."""
    from ..online import has_binary_material

    if not has_binary_material(s.pre):
        raise MissingBinaryMaterial(
            "binary-domain protocols need preprocessing with binary material (MixedPreprocessing: "
            "AND triples, daBits, edaBits); this session's has none (use comparison='field')"
        )
    return s.pre


async def fulfil(s: Session, reqs: Sequence[Any], out: list[Any]) -> None:
    """Serve a step's binary requests into ``out``: preprocessing in request order, then the triples and
    daBits of the round, then ONE binary opening for every gate, opening and conversion."""
    pre = mixed_source(s)
    idx = [i for i, r in enumerate(reqs) if getattr(r, "binary_request", False)]
    for i in idx:
        r = reqs[i]
        if isinstance(r, EdaBits):
            out[i] = await pre.edabits(r.n, r.k) if r.n else (_no_field(s), AuthBits.empty(pre.bctx))
        elif isinstance(r, LooseEdaBits):
            out[i] = await pre.loose_edabits(r.n, r.k) if r.n else (_no_field(s), AuthBits.empty(pre.bctx))
        elif isinstance(r, DaBits):
            out[i] = await pre.dabits(r.n) if r.n else (_no_field(s), AuthBits.empty(pre.bctx))
    ands = [i for i in idx if isinstance(reqs[i], And)]
    opens = [i for i in idx if isinstance(reqs[i], OpenBits)]
    convs = [i for i in idx if isinstance(reqs[i], ToField)]
    if not (ands or opens or convs):
        return
    for i in ands:
        if reqs[i].x.size != reqs[i].y.size:
            raise ValueError(f"AND of {reqs[i].x.size} and {reqs[i].y.size} bits")
    vectors: list[AuthBits] = []
    gates = sum(reqs[i].x.size for i in ands)
    if gates:
        x = _cat([reqs[i].x for i in ands])
        y = _cat([reqs[i].y for i in ands])
        a, b, c = await pre.and_triples(gates)
        vectors += [x ^ a, y ^ b]
    vectors += [reqs[i].x for i in opens]
    nconv = sum(reqs[i].x.size for i in convs)
    if nconv:
        bf, bb = await pre.dabits(nconv)
        vectors.append(_cat([reqs[i].x for i in convs]) ^ bb)
    opened = await checker(s).open(vectors) if vectors else []
    k = 0
    if gates:
        d, e = opened[0], opened[1]
        z = c ^ b.and_public(d) ^ a.and_public(e) ^ (d & e)
        for i, part in zip(ands, z.split([reqs[i].x.size for i in ands]), strict=True):
            out[i] = part
        k = 2
    elif ands:
        for i in ands:
            out[i] = AuthBits.empty(pre.bctx)
    for i in opens:
        out[i] = opened[k].copy()
        k += 1
    if nconv:
        field = xor_public(bf, opened[k])
        j = 0
        for i in convs:
            size = reqs[i].x.size
            out[i] = take(field, slice(j, j + size))
            j += size
    else:
        for i in convs:
            out[i] = _no_field(s)


def _no_field(s: Session) -> SharedArray:
    return SharedArray(s.ctx, s.field.zeros(0), s.field.zeros(0))


def _cat(parts: Sequence[AuthBits]) -> AuthBits:
    return parts[0] if len(parts) == 1 else AuthBits.concat(parts)


# ---------------------------------------------------------------------------------------- bit matrices
def by_position(x: AuthBits, n: int, k: int) -> AuthBits:
    """Bits given element by element (element ``e``'s bit ``j`` at ``e k + j``, as edaBits come) as a
    ``(k, n)`` row-major matrix (row ``j`` = bit ``j`` of every element)."""
    bits = np.ascontiguousarray(x.bits.reshape(n, k).T).reshape(-1)
    macs = np.ascontiguousarray(x.macs.reshape(n, k, 2).transpose(1, 0, 2)).reshape(-1, 2)
    return AuthBits(x.ctx, bits, macs)


def bit_rows(x: AuthBits, n: int, lo: int, hi: int) -> AuthBits:
    """Rows ``[lo, hi)`` of an ``(R, n)`` bit matrix (a view)."""
    return x[lo * n : hi * n]


class _Rows:
    """A mutable ``(R, n)`` bit matrix: shares ``(R, n)`` and MAC shares ``(R, n, 2)``."""

    def __init__(self, x: AuthBits, n: int) -> None:
        self.ctx, self.n = x.ctx, n
        self.b = x.bits.reshape(-1, n).copy()
        self.m = x.macs.reshape(-1, n, 2).copy()

    def get(self, idx: Any) -> AuthBits:
        b, m = self.b[idx], self.m[idx]
        return AuthBits(self.ctx, np.ascontiguousarray(b).reshape(-1), np.ascontiguousarray(m).reshape(-1, 2))

    def put(self, idx: Any, x: AuthBits) -> None:
        self.b[idx] = x.bits.reshape(-1, self.n)
        self.m[idx] = x.macs.reshape(-1, self.n, 2)

    def flat(self) -> AuthBits:
        return AuthBits(self.ctx, self.b.reshape(-1), self.m.reshape(-1, 2))


# ---------------------------------------------------------------------------------------- circuits
def and_rows(x: AuthBits, n: int) -> BitSteps[AuthBits]:
    """The AND of all ``R`` rows of an ``(R, n)`` matrix: ``ceil(log2 R)`` rounds, ``R - 1`` gates."""
    r = x.size // n if n else 0
    while r > 1:
        h = r // 2
        (z,) = yield [And(bit_rows(x, n, 0, h), bit_rows(x, n, h, 2 * h))]
        x = AuthBits.concat([z, bit_rows(x, n, 2 * h, r)]) if r % 2 else z
        r = h + r % 2
    return x


def carry_out(g: AuthBits, p: AuthBits, n: int) -> BitSteps[AuthBits]:
    """The carry out of the top of an ``R``-position addition, from its ``(R, n)`` generate and propagate
    rows with ``g_i p_i = 0`` (as for ``g = x AND y``, ``p = x XOR y``: OR is then XOR, and blocks keep
    the property); a carry-in folded into ``g_0``; row 0 of ``p`` is never used.

    A tree on adjacent blocks, pairs ``(2i, 2i + 1)`` per level, an odd top block passed up:
    ``G = G_hi + P_hi G_lo`` for every pair and ``P = P_hi P_lo`` for every pair but the lowest (whose
    ``P`` no later combination reads). Both ANDs of a level are one round."""
    r = g.size // n if n else 0
    if r == 0:
        return g
    gr, pr = _Rows(g, n), _Rows(p, n)
    while r > 1:
        h = r // 2
        lo, up = slice(0, 2 * h, 2), slice(1, 2 * h, 2)
        reqs: list[Any] = [And(pr.get(up), gr.get(lo))]
        if h > 1:
            reqs.append(And(pr.get(slice(3, 2 * h, 2)), pr.get(slice(2, 2 * h, 2))))
        got = yield reqs
        new_g = [gr.get(up) ^ got[0]]
        new_p = [pr.get(slice(1, 2))] + ([got[1]] if h > 1 else [])  # the lowest P: a placeholder
        if r % 2:
            new_g.append(gr.get(slice(r - 1, r)))
            new_p.append(pr.get(slice(r - 1, r)))
        gr, pr = _Rows(AuthBits.concat(new_g), n), _Rows(AuthBits.concat(new_p), n)
        r = h + r % 2
    return gr.flat()


def prefix_carries(g: AuthBits, p: AuthBits, n: int) -> BitSteps[AuthBits]:
    """Every prefix generate ``G_i = g_i + p_i G_{i-1}`` (``G_{-1} = 0``) of ``R`` positions, ``g_i p_i = 0``
    as for ``carry_out``: the carry out of each position (fold a carry-in into ``g_0``; row 0 of ``p``
    is never used). Sklansky's
    network, ``ceil(log2 R)`` rounds; the ``(R, n)`` matrix of the ``G_i``."""
    r = g.size // n if n else 0
    gr, pr = _Rows(g, n), _Rows(p, n)
    for lv in _sklansky(r):
        reqs: list[Any] = [And(pr.get(lv.upper), gr.get(lv.tops))]
        pu = lv.upper[lv.with_p]
        if pu.size:
            reqs.append(And(pr.get(pu), pr.get(lv.tops[lv.with_p])))
        got = yield reqs
        gr.put(lv.upper, gr.get(lv.upper) ^ got[0])
        if pu.size:
            pr.put(pu, got[1])
    return gr.flat() if r else g


def lt_public(c: np.ndarray, r: AuthBits, n: int) -> BitSteps[AuthBits]:
    """``[c < r]`` for public ``m``-bit ``c`` (an ``(m, n)`` 0/1 matrix, row ``j`` = bit ``j``) and the
    secret bits of ``r`` (``(m, n)`` rows): the carry out of ``r + NOT c``, which is ``2^m - 1 + r - c``
    and passes ``2^m`` iff ``r > c``. Generate ``r_j AND NOT c_j``, propagate ``r_j XOR NOT c_j``:
    both local. ``ceil(log2 m)`` rounds, ``2 (m - 1) - ceil(log2 m)`` AND gates per element."""
    not_c = (1 - c.astype(np.uint8)).reshape(-1)
    return (yield from carry_out(r.and_public(not_c), r.xor_public(not_c), n))


def sub_public(t: np.ndarray, r: AuthBits, n: int) -> BitSteps[AuthBits]:
    """The bits of ``(t - r) mod 2^k`` for public ``t`` (a ``(k, n)`` 0/1 matrix) and secret bits ``r``
    (``(k, n)`` rows), as ``(k, n)`` rows: ``t + NOT r + 1`` with every carry (Sklansky over the low
    ``k - 1`` positions, the carry-in folded into position 0: ``G_0 = t_0 OR NOT r_0``), then the sum
    bits ``p_i XOR C_{i-1}``, local."""
    k = t.shape[0]
    tf = t.astype(np.uint8).reshape(-1)
    not_r = ~r
    p = not_r.xor_public(tf)  # t_i XOR NOT r_i
    low = bit_rows(p, n, 0, 1).xor_public(1)  # bit 0: p_0 XOR the carry-in
    if k == 1:
        return low
    g0 = bit_rows(not_r, n, 0, 1).and_public(1 - t[0].astype(np.uint8)).xor_public(t[0])
    g = AuthBits.concat([g0, bit_rows(not_r, n, 1, k - 1).and_public(tf[n : (k - 1) * n])])
    carries = yield from prefix_carries(g, bit_rows(p, n, 0, k - 1), n)
    return AuthBits.concat([low, bit_rows(p, n, 1, k) ^ carries])
