"""Round scheduling and bit-level circuits on shared vectors, for comparison and fixed point.

Everything the secure types do costs rounds, and a round costs about the same whether it opens ten
values or a million. So the protocols are written as *steps*: a protocol is a generator that yields a
list of requests, gets their results back, and yields again. Requests are

* round requests: ``Mul(x, y)`` (Beaver), ``Trunc(a, K, m)`` (probabilistic truncation) and
  ``Open(x, y)`` (open ``x + y``, unchecked);
* preprocessing requests: ``Bits(n)`` and ``Randoms(n)``, which cost no round;
* ``Input(values, owner)``: one party's values secret-shared (``Session.input``, two rounds of its
  own, run before the step's other requests): how an owner-private value (``private``) enters a
  computation that mixes it with secrets;
* binary-domain requests (``binary.circuits``: AND gates, bit openings, daBit conversions, edaBits),
  served after the field round by ``binary.circuits.fulfil`` in ONE binary opening: a step that has
  both field and binary round requests costs two rounds.

``Trunc`` takes its masks from the session's ``truncation_domain``: field random bits, or the field
halves of two edaBits (``binary``), or (``loose``: ``comparison="auto"`` with binary material) field
random bits for the low part and the field value of ONE loose edaBit for the high part
(``loose_high_width``). Inside ``with wide_rounding():`` a truncation in such a session takes two
*ranged randoms* instead (``ranged``: ``protocols.mascot.ranged``), a twelfth of the cost, for a
rounding error of up to ``n / 2 + 1`` units in the last place instead of 1 (``_TruncOp``).

``run`` executes one such generator: per step it fetches all preprocessing the step asks for (in
request order, identically at every party), then puts *all* its round requests into ONE opening.
``parallel`` runs several generators in lockstep, merging their steps, so independent sub-protocols
(a product tree, a one-hot table, a polynomial) share rounds without hand-interleaving; ``yield from``
composes them in sequence. The opened values go on the session's to-check list like every other
opening; the MAC check before any output covers them. While ``run`` advances a generator,
``current_session()`` is its session (a protocol with a field and a binary variant reads the session's
choice there).

Bit matrices. A secret ``(R, n)`` matrix of shared bits (``R`` bit positions of ``n`` elements) is a
flat ``SharedArray`` of ``R * n`` elements in row-major order: row ``i`` is ``[i*n, (i+1)*n)``. Rows are
contiguous, so a range of rows is a view and a circuit level is one vectorized operation over all
elements and all the rows it touches; Python loops run over bit positions and levels only.

Circuits here: ``prod_rows`` (product of all rows, a halving tree), ``prefix_carries`` (all carries of
an addition, Sklansky's parallel prefix on generate/propagate pairs), ``suffix_prods`` (all suffix
products, same network), ``demux`` (the one-hot vector of a few secret bits). Each takes
``ceil(log2 R)`` rounds.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any, TypeVar

import numpy as np

from .field import PrimeField
from .online import Session
from .shares import ShareContext, SharedArray

U64 = np.uint64
T = TypeVar("T")


# ---------------------------------------------------------------------------------------- requests
@dataclass(frozen=True, eq=False)
class Mul:
    """Round request: the elementwise product ``x * y`` (flat result)."""

    x: SharedArray
    y: SharedArray


@dataclass(frozen=True, eq=False)
class Trunc:
    """Round request: ``a / 2^m`` rounded probabilistically, ``a`` a ``k``-bit signed value; the masks
    from ``domain`` (``"field"`` or ``"binary"``; ``None``: the session's ``truncation_domain``)."""

    a: SharedArray
    k: int
    m: int
    kappa: int = 40
    domain: str | None = None
    # made inside ``wide_rounding()``: ranged masks where the session has them (``_trunc_domain``)
    wide: bool = dataclass_field(default_factory=lambda: _WIDE.get())


_WIDE: ContextVar[bool] = ContextVar("trio_spdz_wide_rounding", default=False)


@contextmanager
def wide_rounding() -> Iterator[None]:
    """Truncations requested inside (by this task) may round to within ``n / 2 + 1`` units in the
    last place instead of 1, for masks of ranged randoms (``protocols.mascot.ranged``) where the
    session has them (``ranged_available``): about a twelfth of the preprocessing of field random
    bits and a loose edaBit. The expectation is the same (unbiased, up to ``(n - 1) 2^-(m + 1)``
    units), and no party can move it: every party's part of the mask is uniform whatever it does.
    For iterative numerics whose own error dwarfs a few units of ``2^-f`` (``apps.logistic``)."""
    token = _WIDE.set(True)
    try:
        yield
    finally:
        _WIDE.reset(token)


def _serves(s: Session | None, method: str) -> bool:
    """Whether ``s`` compares on bits (so its preprocessing has the binary material that the pools of
    field kinds registered beside it live with, ``preprocessing.mixed``) and its preprocessing has
    ``method``."""
    return s is not None and s.comparison_domain == "binary" and callable(getattr(s.pre, method, None))


def ranged_available(s: Session | None) -> bool:
    """Whether ``s`` serves ranged randoms (``_serves``)."""
    return _serves(s, "ranged_randoms")


def ranged_widths(f: PrimeField, parties: int, k: int, m: int, kappa: int) -> tuple[int, int] | None:
    """``(m, W_h)``: the ranged randoms of a wide-rounding mask ``r = L + 2^m H`` of a ``k``-bit value
    truncated by ``m`` (``None`` where they do not fit). ``L`` (``m`` bits per party) is the low part;
    ``H`` (``W_h`` bits per party, ``W_h >= k - m + kappa + 1``, rounded up to a multiple of 8 where that
    fits, so that a program draws from few pools) hides ``floor(a / 2^m)`` and the low part's carry
    within ``2^-kappa``. Bound: ``2^k + 2^m + n 2^m + n 2^(m + W_h) < p``."""
    from .mascot.ranged import max_width

    top = max_width(f, parties)
    if not 1 <= m <= top:
        return None
    need = k - m + kappa + 1
    for wh in (-(-need // 8) * 8, need):
        fits = (1 << k) + (1 << m) + parties * (1 << m) + parties * (1 << (m + wh)) < f.modulus
        if 1 <= wh <= top and fits:
            return m, wh
    return None


@dataclass(frozen=True, eq=False)
class Open:
    """Round request: open ``x + y`` (``y`` optional); the result is the opened field vector."""

    x: SharedArray
    y: SharedArray | None = None


@dataclass(frozen=True, eq=False)
class Bits:
    """Preprocessing request: ``n`` random shared bits."""

    n: int


@dataclass(frozen=True, eq=False)
class Randoms:
    """Preprocessing request: ``n`` random shared field elements."""

    n: int


@dataclass(frozen=True, eq=False)
class Input:
    """Request: ``owner``'s values secret-shared; ``values`` are field integers at the owner (e.g.
    fixed-point encoded) and ``None`` at every other party. The result has the owner's shape."""

    values: Any
    owner: int


OWNED_WIDTH = 32
"""Products per group of an ``OwnedMul`` (the pool ``owned<j>:32``): a row of up to 32 features, or
32 rows of a column, share one opening of the secret factor."""


@dataclass(frozen=True, eq=False)
class OwnedMul:
    """Round request: ``x[e] * y[index[e]]`` (flat, ``x``'s length), where every element of ``x`` is
    party ``owner``'s own value: it knows it in the clear (it input it, or computed it from its inputs
    and public values). The caller vouches for that: the opening ``x - a`` would show ``x`` to the
    owner. Drawn from owned triples (``protocols.mascot.owned``): products with one ``y`` entry share a
    group of ``width``, so ``y[i] - b`` is opened once per group and ``x - a`` once per product, and
    the material costs a third of a triple's at three parties (``docs/offline.md``)."""

    x: SharedArray
    y: SharedArray
    index: np.ndarray
    owner: int
    width: int = OWNED_WIDTH


Request = Mul | Trunc | Open | Bits | Randoms | Input | OwnedMul
Steps = Generator[list[Request], list[Any], T]


# ---------------------------------------------------------------------------------------- one round
class _Op:
    """One round request turned into what it writes into the round's buffer and how it finishes."""

    size: int

    def write(self, value: np.ndarray, mac: np.ndarray) -> None:
        raise NotImplementedError

    def finish(self, opened: np.ndarray) -> Any:
        raise NotImplementedError


class _OpenOp(_Op):
    def __init__(self, x: SharedArray, y: SharedArray | None) -> None:
        self.x, self.y, self.size = x, y, x.size

    def write(self, value: np.ndarray, mac: np.ndarray) -> None:
        f = self.x.ctx.field
        if self.y is None:
            np.copyto(value, self.x.value)
            np.copyto(mac, self.x.mac)
        else:
            f.add(self.x.value, self.y.value, out=value)
            f.add(self.x.mac, self.y.mac, out=mac)

    def finish(self, opened: np.ndarray) -> np.ndarray:
        return opened


class _MulOp(_Op):
    """Beaver multiplication with the triple ``(a, b, c)``: opens ``x - a`` and ``y - b``."""

    def __init__(self, x: SharedArray, y: SharedArray, abc: tuple[SharedArray, SharedArray, SharedArray]):
        self.x, self.y, (self.a, self.b, self.c) = x, y, abc
        self.size = 2 * x.size

    def write(self, value: np.ndarray, mac: np.ndarray) -> None:
        f, n = self.x.ctx.field, self.x.size
        f.sub(self.x.value, self.a.value, out=value[:, :n])
        f.sub(self.y.value, self.b.value, out=value[:, n:])
        f.sub(self.x.mac, self.a.mac, out=mac[:, :n])
        f.sub(self.y.mac, self.b.mac, out=mac[:, n:])

    def finish(self, opened: np.ndarray) -> SharedArray:
        f, n = self.x.ctx.field, self.x.size
        if n == 0:
            return SharedArray(self.x.ctx, f.zeros(0), f.zeros(0))
        c, y, a = self.c, self.y, self.a
        zv, zm = f.beaver([c.value, c.mac], opened[:, :n], [y.value, y.mac], opened[:, n:], [a.value, a.mac])
        return SharedArray(self.x.ctx, zv, zm)


class _OwnedMulOp(_Op):
    """Beaver multiplication with owned triples: element ``e`` takes slot ``slot[e]`` of the groups,
    group ``g`` multiplies ``y[gy[g]]``; opens ``x - a[slot]`` and ``y[gy] - b``."""

    def __init__(self, x: SharedArray, y: SharedArray, index: np.ndarray, width: int) -> None:
        self.x, self.y = x, y
        order = np.argsort(index, kind="stable")
        keys, starts, counts = np.unique(index[order], return_index=True, return_counts=True)
        per = -(-counts // width)  # groups per y entry
        first = np.concatenate([[0], np.cumsum(per)[:-1]]).astype(np.int64)  # its first group
        self.gy = np.repeat(keys, per)
        rank = np.arange(order.size) - np.repeat(starts, counts)  # position among its y entry's
        slot = np.empty(order.size, dtype=np.int64)
        slot[order] = np.repeat(first, counts) * width + rank
        self.slot = slot
        self.group = slot // width
        self.groups = int(per.sum())
        self.size = x.size + self.groups

    def bind(self, abc: tuple[SharedArray, SharedArray, SharedArray]) -> None:
        a, b, c = abc
        self.a, self.b, self.c = a[self.slot], b, c[self.slot]
        self.ysel = self.y[self.gy]

    def write(self, value: np.ndarray, mac: np.ndarray) -> None:
        f, n = self.x.ctx.field, self.x.size
        f.sub(self.x.value, self.a.value, out=value[:, :n])
        f.sub(self.ysel.value, self.b.value, out=value[:, n:])
        f.sub(self.x.mac, self.a.mac, out=mac[:, :n])
        f.sub(self.ysel.mac, self.b.mac, out=mac[:, n:])

    def finish(self, opened: np.ndarray) -> SharedArray:
        f, n = self.x.ctx.field, self.x.size
        if n == 0:
            return SharedArray(self.x.ctx, f.zeros(0), f.zeros(0))
        y_e = self.ysel[self.group]  # each product's factor
        delta_e = np.ascontiguousarray(opened[:, n:][:, self.group])
        c, a = self.c, self.a
        zv, zm = f.beaver([c.value, c.mac], opened[:, :n], [y_e.value, y_e.mac], delta_e, [a.value, a.mac])
        return SharedArray(self.x.ctx, zv, zm)


class _TruncOp(_Op):
    """Catrina-Saxena probabilistic truncation (see ``comparison``): opens ``a + 2^(k-1) + r`` for
    ``r = r_low + 2^m r_high`` of ``k + kappa`` bits (field random bits, or edaBits: ``_fulfil``)."""

    def __init__(self, req: Trunc, r_low: SharedArray, r: SharedArray, parties: int = 0) -> None:
        """``parties`` > 0: ``r_low`` is a sum of ``parties`` uniform ``m``-bit values (ranged randoms),
        not one: the carry ``t = floor((a_low + h + r_low) / 2^m)`` runs from 0 to about ``n``, with
        mean ``(a_low + h) / 2^m + (n - 1) / 2`` (less ``(n - 1) 2^-(m + 1)``). A public ``h = 2^(m-1)``
        for even ``n`` and ``c0 = ceil((n - 1) / 2)`` subtracted centre it on ``a_low / 2^m``."""
        f = req.a.ctx.field
        self.a, self.m, self.size = req.a, req.m, req.a.size
        self.r_low = r_low
        self.h = (1 << (req.m - 1)) if parties and parties % 2 == 0 else 0
        self.c0 = parties // 2 if parties else 0  # ceil((n - 1) / 2)
        self.r_plus = r.add_public_field(f.from_ints([(1 << (req.k - 1)) + self.h]))

    def write(self, value: np.ndarray, mac: np.ndarray) -> None:
        f = self.a.ctx.field
        f.add(self.a.value, self.r_plus.value, out=value)
        f.add(self.a.mac, self.r_plus.mac, out=mac)

    def finish(self, opened: np.ndarray) -> SharedArray:
        f = self.a.ctx.field
        cm = public_mod2m(self.a.ctx, opened, self.m)
        if self.h:
            cm = f.sub(cm, f.from_ints([self.h]))
        low = (self.a + self.r_low).add_public_field(f.neg(cm))
        out = low.mul_public_field(inv_pow2(f, self.m))
        return out.add_public_field(f.from_ints([-self.c0])) if self.c0 else out


def pow2(f: PrimeField, e: int) -> np.ndarray:
    return f.from_ints([pow(2, e, f.modulus)])


def inv_pow2(f: PrimeField, e: int) -> np.ndarray:
    return f.from_ints([pow(2, -e, f.modulus)])


def loose_high_width(f: PrimeField, parties: int, k: int, m: int, kappa: int) -> int | None:
    """The width ``K_l`` of the loose edaBit whose field value ``R`` can be the high part ``r''`` of the
    mask ``r = r' + 2^m r''`` of a ``k``-bit value truncated by ``m`` (``None`` where none fits).

    What ``r''`` must be (Catrina and Saxena's ``TruncPr``): *bounded*, so that ``c = b + r`` never
    wraps, and wide enough to hide ``floor(b / 2^m)`` plus the low part's carry (below
    ``2^(k - m) + 1``) within ``2^-kappa``. Only ``r'`` (``m`` bits) must be exact: its field value is
    subtracted. A loose edaBit (``binary.edabits.generate_loose_edabits``) is exactly a bounded random:
    every party's ``R_i`` is uniform in ``[0, 2^(K_l + HIDE))`` and the cut-and-choose binds its field
    value to its bits, so ``R < n 2^(K_l + HIDE)``. So ``K_l + HIDE >= k - m + kappa + 1`` (rounded up to
    a multiple of 16 where that fits, so that a program draws from few pools) and ``2^k + 2^m + 2^m n
    2^(K_l + HIDE) < p``: at ``2^127 - 1`` and three parties up to ``k = 84``. Its cost is ``K_l +
    HIDE`` input bits and about ``(B n - 1)(K_l + HIDE)`` AND gates instead of ``k + kappa - m`` field
    random bits (a MASCOT triple each): ``docs/bits.md``."""
    from .binary.edabits import HIDE, loose_max_bits  # binary builds on this module

    need = max(1, k - m + kappa + 1 - HIDE)
    for width in (max(16, -(-need // 16) * 16), need):
        fits = (1 << k) + (1 << m) + parties * (1 << (m + width + HIDE)) < f.modulus
        if width <= loose_max_bits(f, parties) and fits:
            return width
    return None


def loose_width(s: Session | None, k: int, m: int, kappa: int) -> int | None:
    """The loose edaBit width for the high part of session ``s``'s mask of a ``k``-bit value truncated
    by ``m``: when ``s`` takes them (``truncation_domain == "loose"``) and one fits
    (``loose_high_width``); else ``None`` (field bits, or no session)."""
    if s is None or s.truncation_domain != "loose":
        return None
    return loose_high_width(s.field, s.n, k, m, kappa)


def masks(bits: SharedArray, n: int, m: int, total: int) -> tuple[SharedArray, SharedArray]:
    """``(r', r)`` from ``total`` rows of random bits: ``r'`` the low ``m`` rows, ``r`` all of them."""
    f = bits.ctx.field
    low = compose_bits(bits, n, 0, m)
    high = compose_bits(bits, n, m, total)
    return low, low + high.mul_public_field(pow2(f, m))


# preprocessing (bytes of triples and truncation masks) one round of products and truncations may draw
# at once: a larger step is fulfilled in slices (``_fulfil``)
STEP_BYTES = 64 << 20


def _prep_bytes(s: Session, r: Request) -> int:
    """Bytes of preprocessing that fulfilling round request ``r`` draws at this party."""
    e = s.field.elem_bytes
    if isinstance(r, (Mul, OwnedMul)):
        return 6 * e * r.x.size  # a triple: three values and their MACs (owned: about as much)
    if isinstance(r, Trunc):
        return 2 * e * (r.k + r.kappa) * r.a.size  # its mask's bits and their MACs
    return 0


def _sliced(r: Request, lo: int, hi: int) -> Request:
    if isinstance(r, OwnedMul):
        return OwnedMul(take(r.x, slice(lo, hi)), r.y, r.index[lo:hi], r.owner, r.width)
    if isinstance(r, Mul):
        return Mul(take(r.x, slice(lo, hi)), take(r.y, slice(lo, hi)))
    if isinstance(r, Trunc):
        return Trunc(take(r.a, slice(lo, hi)), r.k, r.m, r.kappa, r.domain, r.wide)
    assert isinstance(r, Open)
    return Open(take(r.x, slice(lo, hi)), None if r.y is None else take(r.y, slice(lo, hi)))


async def _fulfil(s: Session, reqs: Sequence[Request]) -> list[Any]:
    """A step of products, truncations and openings only that would draw more than ``STEP_BYTES`` of
    preprocessing runs as several rounds, each on a slice of every request (the same slices at every
    party), so that what it holds at once is bounded whatever the vectors' sizes; results are joined
    as if made at once. Any other step: ``_fulfil_step``."""
    if not reqs or not all(type(r) in (Mul, Trunc, Open, OwnedMul) for r in reqs):
        return await _fulfil_step(s, reqs)
    slices = -(-sum(_prep_bytes(s, r) for r in reqs) // STEP_BYTES)
    if slices <= 1:
        return await _fulfil_step(s, reqs)
    sizes = [r.a.size if isinstance(r, Trunc) else r.x.size for r in reqs]  # type: ignore[union-attr]
    for r in reqs:
        if isinstance(r, Mul) and r.x.size != r.y.size:
            raise ValueError(f"elementwise product of {r.x.size} and {r.y.size} elements")
    parts: list[list[Any]] = [[] for _ in reqs]
    for j in range(slices):
        which, sub = [], []
        for i, (r, n) in enumerate(zip(reqs, sizes, strict=True)):
            per = -(-n // slices)
            lo, hi = j * per, min(n, (j + 1) * per)
            if lo < hi:
                which.append(i)
                sub.append(_sliced(r, lo, hi))
        for i, got in zip(which, await _fulfil_step(s, sub), strict=True):
            parts[i].append(got)
    out: list[Any] = []
    for r, p in zip(reqs, parts, strict=True):
        if not p:  # an empty request among large ones
            out.append(s.field.zeros(0) if isinstance(r, Open) else _empty(s))
        else:
            out.append(np.concatenate(p, axis=1) if isinstance(r, Open) else _cat(p))
    return out


async def _fulfil_step(s: Session, reqs: Sequence[Request]) -> list[Any]:
    """Inputs first, then preprocessing (in request order), then every round request in one opening;
    then the binary requests (their preprocessing, then one binary opening)."""
    out: list[Any] = [None] * len(reqs)
    for i, r in enumerate(reqs):
        if isinstance(r, Input):
            out[i] = await s.input(r.values, owner=r.owner)
    bit_reqs = [i for i, r in enumerate(reqs) if isinstance(r, Bits)]
    trunc_reqs = [i for i, r in enumerate(reqs) if isinstance(r, Trunc)]
    mul_reqs = [i for i, r in enumerate(reqs) if isinstance(r, Mul)]
    domains = {i: _trunc_domain(s, reqs[i]) for i in trunc_reqs}  # type: ignore[arg-type]
    # one bits request for the step's Bits and its field truncations' masks (the low part only with
    # a loose edaBit for the high part)
    nbits = sum(reqs[i].n for i in bit_reqs)  # type: ignore[union-attr]
    for i in trunc_reqs:
        r = reqs[i]
        assert isinstance(r, Trunc)
        if domains[i] == "field":
            nbits += (r.k + r.kappa) * r.a.size
        elif domains[i] == "loose":
            nbits += r.m * r.a.size
    bits = await s.pre.bits(nbits) if nbits else None
    pos = 0
    for i in bit_reqs:
        cnt = reqs[i].n  # type: ignore[union-attr]
        out[i] = take(bits, slice(pos, pos + cnt)) if bits is not None else _empty(s)
        pos += cnt
    for i, r in enumerate(reqs):
        if isinstance(r, Randoms):
            out[i] = await s.pre.randoms(r.n)
    # Requests of one kind are merged into one op over their concatenation (one mask composition
    # per truncation shape, one Beaver recombination): fewer, longer numpy calls.
    ops: list[tuple[list[int], _Op]] = []
    groups: dict[tuple[int, int, int, str], list[int]] = {}
    for i in trunc_reqs:
        r = reqs[i]
        assert isinstance(r, Trunc)
        groups.setdefault((r.k, r.m, r.kappa, domains[i]), []).append(i)
    for (k, m, kappa, domain), idx in groups.items():
        a = _cat([reqs[i].a for i in idx])  # type: ignore[union-attr]
        if domain == "binary":  # r_low and r_high: the field halves of two edaBits (no binary work)
            from .binary.circuits import mixed_source  # binary.circuits builds on this module

            pre = mixed_source(s)
            r_low, _ = await pre.edabits(a.size, m)
            r_high, _ = await pre.edabits(a.size, k + kappa - m)
            r_all = r_low + r_high.mul_public_field(pow2(s.field, m))
        elif domain == "ranged":  # two ranged randoms: L (m bits a party) and H (rounding: _TruncOp)
            widths = ranged_widths(s.field, s.n, k, m, kappa)
            assert widths is not None
            r_low = await s.pre.ranged_randoms(a.size, widths[0])  # type: ignore[attr-defined]
            r_high = await s.pre.ranged_randoms(a.size, widths[1])  # type: ignore[attr-defined]
            r_all = r_low + r_high.mul_public_field(pow2(s.field, m))
        elif domain == "loose":  # r' of field bits, r'' the field value of one loose edaBit
            from .binary.circuits import mixed_source

            cnt = m * a.size
            assert bits is not None
            r_low = compose_bits(take(bits, slice(pos, pos + cnt)), a.size, 0, m)
            pos += cnt
            width = loose_width(s, k, m, kappa)
            assert width is not None
            r_high, _ = await mixed_source(s).loose_edabits(a.size, width)
            r_all = r_low + r_high.mul_public_field(pow2(s.field, m))
        else:
            cnt = (k + kappa) * a.size
            assert bits is not None
            r_low, r_all = masks(take(bits, slice(pos, pos + cnt)), a.size, m, k + kappa)
            pos += cnt
        spread = s.n if domain == "ranged" else 0  # r_low a sum of every party's m bits
        ops.append((idx, _TruncOp(Trunc(a, k, m, kappa), r_low, r_all, spread)))
    if mul_reqs:
        for i in mul_reqs:
            r = reqs[i]
            assert isinstance(r, Mul)
            if r.x.size != r.y.size:
                raise ValueError(f"elementwise product of {r.x.size} and {r.y.size} elements")
        x = _cat([reqs[i].x for i in mul_reqs])  # type: ignore[union-attr]
        y = _cat([reqs[i].y for i in mul_reqs])  # type: ignore[union-attr]
        ops.append((mul_reqs, _MulOp(x, y, await s.pre.triples(x.size))))
    for i, r in enumerate(reqs):
        if isinstance(r, OwnedMul):
            ops.append(([i], await _owned_op(s, r)))
    for i, r in enumerate(reqs):
        if isinstance(r, Open):
            ops.append(([i], _OpenOp(flat(r.x), None if r.y is None else flat(r.y))))
    if ops:
        for (idx, _), res in zip(ops, await _round(s, [op for _, op in ops]), strict=True):
            if len(idx) == 1:
                out[idx[0]] = res
                continue
            j = 0
            for i in idx:
                size = reqs[i].a.size if isinstance(reqs[i], Trunc) else reqs[i].x.size  # type: ignore[union-attr]
                out[i] = take(res, slice(j, j + size))
                j += size
    if any(getattr(r, "binary_request", False) for r in reqs):
        from .binary.circuits import fulfil  # binary.circuits builds on this module

        await fulfil(s, reqs, out)
    return out


async def _owned_op(s: Session, r: OwnedMul) -> _OwnedMulOp:
    """The op of one ``OwnedMul``, its groups drawn (from the session's ``owned_triples``)."""
    index = np.asarray(r.index, dtype=np.int64).reshape(-1)
    if index.size != r.x.size:
        raise ValueError(f"owned product of {r.x.size} elements with {index.size} indices")
    if index.size and (index.min() < 0 or index.max() >= r.y.size):
        raise ValueError(f"owned product: an index outside the {r.y.size} factors")
    if not 0 <= r.owner < s.n:
        raise ValueError(f"owned product: no party {r.owner}")
    op = _OwnedMulOp(flat(r.x), flat(r.y), index, r.width)
    if not hasattr(s.pre, "owned_triples"):
        raise ValueError("owned products need preprocessing with owned triples (a pool or the dealer)")
    op.bind(await s.pre.owned_triples(r.owner, op.groups, r.width))
    return op


def owned_available(s: Session | None) -> bool:
    """Whether ``s`` serves ``OwnedMul``: it compares on bits (so its preprocessing has the binary
    material the owned pools live beside) and its preprocessing makes owned triples. The callers take
    owned products where this holds and triples elsewhere."""
    return _serves(s, "owned_triples")


def _trunc_domain(s: Session, r: Trunc) -> str:
    """Where ``r``'s mask comes from: its own ``domain``, else the session's ``truncation_domain``,
    with ``loose`` falling back to ``field`` where no loose edaBit fits (``loose_width``)."""
    if r.domain:
        return r.domain
    if r.wide and ranged_available(s) and ranged_widths(s.field, s.n, r.k, r.m, r.kappa) is not None:
        return "ranged"
    if loose_width(s, r.k, r.m, r.kappa) is not None:
        return "loose"
    return "binary" if s.truncation_domain == "binary" else "field"


def _cat(parts: Sequence[SharedArray]) -> SharedArray:
    return flat(parts[0]) if len(parts) == 1 else stack(parts)


async def _round(s: Session, ops: Sequence[_Op]) -> list[Any]:
    """Every op writes into one buffer; ONE ``open_unchecked`` call opens it (no concatenation)."""
    f = s.field
    total = sum(op.size for op in ops)
    vbuf = np.empty((f.words, total), dtype=U64)
    mbuf = np.empty((f.words, total), dtype=U64)
    i = 0
    for op in ops:
        op.write(vbuf[:, i : i + op.size], mbuf[:, i : i + op.size])
        i += op.size
    if total:
        (opened,) = await s.open_unchecked([SharedArray(s.pre.ctx, vbuf, mbuf)])
    else:
        opened = f.zeros(0)
    out, i = [], 0
    for op in ops:
        out.append(op.finish(opened[:, i : i + op.size]))
        i += op.size
    return out


def _empty(s: Session) -> SharedArray:
    return SharedArray(s.pre.ctx, s.field.zeros(0), s.field.zeros(0))


_CURRENT: ContextVar[Session | None] = ContextVar("trio_spdz_current_session", default=None)


def current_session() -> Session | None:
    """The session whose ``run`` is advancing the calling step generator (``None`` outside ``run``)."""
    return _CURRENT.get()


def _advance(s: Session, steps: Steps[T], got: list[Any] | None) -> list[Request]:
    token = _CURRENT.set(s)
    try:
        return next(steps) if got is None else steps.send(got)
    finally:
        _CURRENT.reset(token)


async def run(s: Session, steps: Steps[T]) -> T:
    """Run a step generator against the session: one opening per round step."""
    try:
        reqs = _advance(s, steps, None)
        while True:
            if not reqs:
                raise ValueError("a protocol step asked for nothing")
            reqs = _advance(s, steps, await _fulfil(s, reqs))
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


# elements per slice of an elementwise protocol run by ``chunked``: its scratch (random bits, triples,
# limbs, circuit layers: ~10 kB per 32-bit comparison at n = 3 on p127) is that of one slice
CHUNK = 1 << 13


def over_chunk(n: int) -> bool:
    """Whether an elementwise protocol on ``n`` elements runs in slices (``chunked``)."""
    return n > CHUNK


def chunked(
    steps: Callable[[SharedArray], Steps[SharedArray]], a: SharedArray, rows: int = 1
) -> Steps[SharedArray]:
    """``steps`` of an elementwise protocol on flat ``a``, run on slices of at most ``CHUNK`` elements
    one after the other, so that what one run holds at once (its preprocessing and intermediate
    layers) is bounded whatever ``a.size``; the price is the protocol's rounds once per slice. The
    slices' results, bit matrices of ``rows`` rows (row-major, one column per element), are joined as
    if made at once. Small inputs run as one slice, with no copy."""
    n, size = a.size, CHUNK
    if n <= size:
        return (yield from steps(a))
    parts = []
    for lo in range(0, n, size):
        parts.append((yield from steps(take(a, slice(lo, min(n, lo + size))))))
    words = a.ctx.field.words
    joined = [
        np.concatenate([getattr(p, side).reshape(words, rows, -1) for p in parts], axis=2).reshape(words, -1)
        for side in ("value", "mac")
    ]
    return SharedArray(a.ctx, joined[0], joined[1])


def parallel(gens: Sequence[Steps[Any]]) -> Steps[list[Any]]:
    """Run several step generators in lockstep, merging each step's requests; returns their results."""
    results: list[Any] = [None] * len(gens)
    pending: dict[int, list[Request]] = {}
    for i, g in enumerate(gens):
        try:
            pending[i] = next(g)
        except StopIteration as stop:
            results[i] = stop.value
    while pending:
        order = list(pending)
        merged = [r for i in order for r in pending[i]]
        got = yield merged
        j = 0
        for i in order:
            cnt = len(pending[i])
            try:
                pending[i] = gens[i].send(got[j : j + cnt])
            except StopIteration as stop:
                results[i] = stop.value
                del pending[i]
            j += cnt
    return results


# ---------------------------------------------------------------------------------------- row helpers
def flat(x: SharedArray) -> SharedArray:
    return x if x.shape == (x.size,) else SharedArray(x.ctx, x.value, x.mac)


def take(x: SharedArray, sl: slice) -> SharedArray:
    return SharedArray(x.ctx, x.value[:, sl], x.mac[:, sl])


def rows(x: SharedArray, n: int, lo: int, hi: int) -> SharedArray:
    """Rows ``[lo, hi)`` of a bit matrix with ``n`` columns (a view)."""
    return take(x, slice(lo * n, hi * n))


def tile(x: SharedArray, times: int) -> SharedArray:
    """``x`` repeated as ``times`` rows."""
    return SharedArray(x.ctx, np.tile(x.value, (1, times)), np.tile(x.mac, (1, times)))


def stack(parts: Sequence[SharedArray]) -> SharedArray:
    return SharedArray.concat([flat(p) for p in parts])


def const(ctx: ShareContext, value: int, n: int) -> SharedArray:
    """The public constant ``value`` as a sharing (party 0 holds it, MACs are alpha_i * value)."""
    f = ctx.field
    zero = SharedArray(ctx, f.zeros(n), f.zeros(n))
    return zero.add_public_field(f.const(value, n))


def field_bits(ctx: ShareContext, bits: np.ndarray) -> np.ndarray:
    """A 0/1 array as a field vector."""
    f = ctx.field
    out = f.zeros(bits.size)
    out[0] = bits.reshape(-1).astype(U64)
    return out


def _alpha_times(x: SharedArray, c: np.ndarray) -> np.ndarray:
    """``alpha_i * c`` for a 0/1 vector ``c``: alpha_i or zero, no field multiplication."""
    out = np.empty_like(x.mac)
    for w in range(x.ctx.field.words):
        np.multiply(c, x.ctx.alpha[w, 0], out=out[w], casting="unsafe")
    return out


def add_public_bits(x: SharedArray, bits: np.ndarray) -> SharedArray:
    """``x + c`` for a public 0/1 vector ``c``."""
    ctx, f = x.ctx, x.ctx.field
    c = np.asarray(bits, dtype=bool).reshape(-1)
    value = f.add(x.value, field_bits(ctx, c)) if ctx.party == 0 else x.value
    return SharedArray(ctx, value, f.add(x.mac, _alpha_times(x, c)))


def xor_public(x: SharedArray, bits: np.ndarray) -> SharedArray:
    """``x XOR c`` for a shared bit vector ``x`` and a public bit vector ``c``: ``c ? 1 - x : x``."""
    f = x.ctx.field
    c = np.asarray(bits, dtype=bool).reshape(-1)
    if not c.any():
        return x
    neg = SharedArray(x.ctx, f.neg_where(x.value, c), f.neg_where(x.mac, c))
    return add_public_bits(neg, c)


def and_public(x: SharedArray, bits: np.ndarray) -> SharedArray:
    """``c * x`` for a public 0/1 vector ``c``."""
    c = np.asarray(bits, dtype=bool).reshape(-1)[None, :]
    return SharedArray(x.ctx, np.where(c, x.value, U64(0)), np.where(c, x.mac, U64(0)))


def one_minus(x: SharedArray) -> SharedArray:
    return (-x).add_public_field(x.ctx.field.const(1))


def xor_from_product(x: SharedArray, y: SharedArray, xy: SharedArray) -> SharedArray:
    """``x XOR y = x + y - 2xy`` given the product."""
    return x + y - (xy + xy)


def compose_bits(x: SharedArray, n: int, lo: int, hi: int) -> SharedArray:
    """``sum_{i in [lo, hi)} 2^(i - lo) * row_i``: the field's ``compose_pow2`` on the value and MAC
    shares (a linear map, so the result shares the composed value)."""
    f = x.ctx.field
    if hi <= lo:
        return SharedArray(x.ctx, f.zeros(n), f.zeros(n))
    sl = slice(lo * n, hi * n)
    return SharedArray(x.ctx, f.compose_pow2(x.value[:, sl], n), f.compose_pow2(x.mac[:, sl], n))


def public_low_bits(ctx: ShareContext, c: np.ndarray, m: int) -> np.ndarray:
    """The low ``m`` bits of opened field elements ``c``: an ``(m, n)`` uint8 matrix."""
    n = c.shape[1]
    out = np.empty((m, n), dtype=np.uint8)
    for i in range(m):
        w, b = divmod(i, 64)
        out[i] = (c[w] >> U64(b)) & U64(1)
    return out


def public_mod2m(ctx: ShareContext, c: np.ndarray, m: int) -> np.ndarray:
    """Opened field elements reduced mod ``2^m`` (``m`` below the field size), as a field vector."""
    f = ctx.field
    out = f.zeros(c.shape[1])
    for w in range(f.words):
        bits = min(64, max(0, m - 64 * w))
        if bits == 64:
            out[w] = c[w]
        elif bits:
            out[w] = c[w] & U64((1 << bits) - 1)
    return out


def weighted_rows(x: SharedArray, n: int, weights: Sequence[int], start: int = 0) -> SharedArray:
    """``sum_i weights[i] * row_{start + i}`` for public integer weights (zeros skipped, ones added)."""
    f = x.ctx.field
    acc_v, acc_m = f.zeros(n), f.zeros(n)
    for i, w in enumerate(weights):
        w %= f.modulus
        if w == 0:
            continue
        r = rows(x, n, start + i, start + i + 1)
        if w == 1:
            acc_v, acc_m = f.add(acc_v, r.value), f.add(acc_m, r.mac)
        else:
            c = f.from_ints([w])
            acc_v, acc_m = f.add(acc_v, f.mul(r.value, c)), f.add(acc_m, f.mul(r.mac, c))
    return SharedArray(x.ctx, acc_v, acc_m)


def sum_groups(x: SharedArray, groups: int) -> SharedArray:
    """Sums of ``groups`` contiguous equal-size groups of a flat array (a halving tree, vectorized)."""
    f, w = x.ctx.field, x.ctx.field.words
    size = x.size // groups if groups else 0
    if size == 0:
        return SharedArray(x.ctx, f.zeros(groups), f.zeros(groups))
    out = []
    for arr in (x.value, x.mac):
        cur = np.ascontiguousarray(arr.reshape(w, groups, size).transpose(0, 2, 1))  # (W, size, groups)
        while cur.shape[1] > 1:
            h = cur.shape[1] // 2
            tot = f.add(cur[:, :h].reshape(w, -1), cur[:, h : 2 * h].reshape(w, -1)).reshape(w, h, groups)
            cur = np.concatenate([tot, cur[:, 2 * h :]], axis=1) if cur.shape[1] % 2 else tot
        out.append(np.ascontiguousarray(cur[:, 0, :]))
    return SharedArray(x.ctx, out[0], out[1])


# ---------------------------------------------------------------------------------------- circuits
def prod_rows(x: SharedArray, n: int) -> Steps[SharedArray]:
    """The product of all ``R`` rows of an ``(R, n)`` matrix: a halving tree, ``ceil(log2 R)`` rounds."""
    r = x.size // n if n else 0
    if n == 0 or r == 0:
        return const(x.ctx, 1, n)
    while r > 1:
        h = r // 2
        (prod,) = yield [Mul(rows(x, n, 0, h), rows(x, n, h, 2 * h))]
        x = stack([prod, rows(x, n, 2 * h, r)]) if r % 2 else prod
        r = h + r % 2
    return x


def or_rows(x: SharedArray, n: int) -> Steps[SharedArray]:
    """The OR of all rows of a bit matrix: ``1 - prod (1 - row_i)``."""
    z = yield from prod_rows(one_minus(x), n)
    return one_minus(z)


@dataclass(frozen=True)
class _Level:
    upper: np.ndarray  # rows that combine with the top of the block below them
    tops: np.ndarray  # that top row, for each of ``upper``
    with_p: np.ndarray  # mask over ``upper``: the combined range does not start at row 0


def _sklansky(length: int) -> list[_Level]:
    """Sklansky's prefix network: at level ``l`` every row in an odd block of size ``2^l`` combines
    with the last row of the block before it. ``ceil(log2 length)`` levels, ``length/2`` ops each."""
    levels, b = [], 1
    idx = np.arange(length)
    while b < length:
        upper = idx[(idx // b) % 2 == 1]
        tops = (upper // b) * b - 1
        levels.append(_Level(upper, tops, upper >= 2 * b))
        b *= 2
    return levels


class _Rows:
    """A mutable ``(R, n)`` shared matrix (value and MAC arrays of shape ``(W, R, n)``)."""

    def __init__(self, x: SharedArray, n: int) -> None:
        w = x.value.shape[0]
        self.ctx, self.n = x.ctx, n
        self.v = x.value.reshape(w, -1, n).copy()
        self.m = x.mac.reshape(w, -1, n).copy()

    def get(self, idx: np.ndarray) -> SharedArray:
        w = self.v.shape[0]
        return SharedArray(self.ctx, self.v[:, idx, :].reshape(w, -1), self.m[:, idx, :].reshape(w, -1))

    def put(self, idx: np.ndarray, x: SharedArray) -> None:
        w = self.v.shape[0]
        self.v[:, idx, :] = x.value.reshape(w, len(idx), self.n)
        self.m[:, idx, :] = x.mac.reshape(w, len(idx), self.n)

    def shared(self) -> SharedArray:
        w = self.v.shape[0]
        return SharedArray(self.ctx, self.v.reshape(w, -1), self.m.reshape(w, -1))


def prefix_carries(g: SharedArray, p: SharedArray, n: int) -> Steps[SharedArray]:
    """All prefix generates ``G_i = g_i + p_i * G_{i-1}`` (with ``G_{-1} = 0``) of ``R`` positions.

    ``g`` and ``p`` are ``(R, n)`` bit matrices with ``g_i * p_i = 0`` (as for ``g = a AND b``,
    ``p = a XOR b``), so that OR is addition. Row 0's propagate is never used: fold a carry-in into
    ``g_0`` before calling. Returns the ``(R, n)`` matrix of ``G_i`` = carry out of position ``i``.
    """
    r = g.size // n if n else 0
    gr, pr = _Rows(g, n), _Rows(p, n)
    for lv in _sklansky(r):
        reqs: list[Request] = [Mul(pr.get(lv.upper), gr.get(lv.tops))]
        pu = lv.upper[lv.with_p]
        if pu.size:
            reqs.append(Mul(pr.get(pu), pr.get(lv.tops[lv.with_p])))
        prods = yield reqs
        gr.put(lv.upper, gr.get(lv.upper) + prods[0])
        if pu.size:
            pr.put(pu, prods[1])
    return gr.shared()


def suffix_prods(x: SharedArray, n: int) -> Steps[SharedArray]:
    """``z_i = prod_{j >= i} row_j`` for every row ``i`` of an ``(R, n)`` matrix (Sklansky, reversed)."""
    r = x.size // n if n else 0
    xr = _Rows(x, n)
    rev = np.arange(r)[::-1]  # position q of the network is row rev[q]
    for lv in _sklansky(r):
        (prod,) = yield [Mul(xr.get(rev[lv.upper]), xr.get(rev[lv.tops]))]
        xr.put(rev[lv.upper], prod)
    return xr.shared()


def demux(bits: Sequence[SharedArray]) -> Steps[SharedArray]:
    """The one-hot ``(2^L, n)`` matrix of ``L`` shared bits: row ``u`` is 1 iff ``sum 2^j bits[j] = u``.

    Groups are merged pairwise, one round per level. Merging one-hot groups of sizes ``M`` and ``N``
    multiplies only ``(M-1)(N-1)`` pairs: the last row and column follow linearly because each row
    (column) of the outer product sums to the other group's entry.
    """
    n = bits[0].size
    groups: list[list[SharedArray]] = [[one_minus(flat(b)), flat(b)] for b in bits]
    while len(groups) > 1:
        lefts, rights, plan = [], [], []
        for gi in range(0, len(groups) - 1, 2):
            lo, hi = groups[gi], groups[gi + 1]
            plan.append((lo, hi, len(lefts)))
            for b in range(len(hi) - 1):
                for a in range(len(lo) - 1):
                    lefts.append(lo[a])
                    rights.append(hi[b])
        (prod,) = yield [Mul(stack(lefts), stack(rights))]
        prods = [rows(prod, n, i, i + 1) for i in range(len(lefts))]
        merged = []
        for lo, hi, base in plan:
            m, k = len(lo), len(hi)
            h: list[list[Any]] = [[None] * k for _ in range(m)]
            for b in range(k - 1):
                for a in range(m - 1):
                    h[a][b] = prods[base + b * (m - 1) + a]
            for a in range(m - 1):  # last column: lo[a] minus the rest of its row
                h[a][k - 1] = _minus_all(lo[a], h[a][: k - 1])
            for b in range(k):  # last row: hi[b] minus the rest of its column
                h[m - 1][b] = _minus_all(hi[b], [h[a][b] for a in range(m - 1)])
            merged.append([h[a][b] for b in range(k) for a in range(m)])  # index a + m*b
        if len(groups) % 2:
            merged.append(groups[-1])
        groups = merged
    return stack(groups[0])


def _minus_all(x: SharedArray, parts: Sequence[SharedArray]) -> SharedArray:
    for p in parts:
        x = x - p
    return x


# ---------------------------------------------------------------------------------------- signed limbs
# Long sums of shares with small public coefficients (suffix sums, multiples) are cheaper in plain
# integers than as chains of modular additions: split every element of a Mersenne field into 32-bit
# limbs held in int64, do the whole sum with ordinary numpy arithmetic (signed, no reduction: each limb
# stays far below 2^62 for sums of up to ~2^20 terms with coefficients below 2^8), and reduce once.
_LIMB = 32
_LIMB_MASK = (1 << _LIMB) - 1


def limb_count(f: PrimeField) -> int:
    return -(-f.bits // _LIMB)


def to_limbs(f: PrimeField, a: np.ndarray) -> np.ndarray:
    """Canonical elements ``(W, N)`` as ``(L, N)`` int64 limbs of 32 bits, least significant first."""
    count, n = limb_count(f), a.shape[1]
    out = np.empty((count, n), dtype=np.int64)
    raw = out.view(U64)
    for i in range(count):
        w, half = divmod(i, 2)
        if half:
            np.right_shift(a[w], U64(_LIMB), out=raw[i])
        else:
            np.bitwise_and(a[w], U64(_LIMB_MASK), out=raw[i])
    return out


def from_limbs(f: PrimeField, limbs: np.ndarray) -> np.ndarray:
    """``sum_i limbs[i] 2^(32 i) mod p`` as canonical elements, for a Mersenne ``p = 2^B - 1`` and signed
    limbs below ``2^62`` in magnitude: ``(L, ...)`` in, ``(W, N)`` out with ``N`` the trailing elements in
    row-major order (``limbs`` may be a strided view; it is used as scratch). Carries run up with floor
    shifts; what passes bit ``B`` has weight ``2^B = 1`` and wraps to the bottom, until none does."""
    if f.modulus != (1 << f.bits) - 1:
        raise ValueError("signed-limb sums need a Mersenne prime field")
    count, rest = limbs.shape[0], limbs.shape[1:]
    top = f.bits - _LIMB * (count - 1)  # bits of the top limb
    carry = np.empty(rest, dtype=np.int64)
    while True:
        for i in range(count - 1):
            np.right_shift(limbs[i], _LIMB, out=carry)
            np.bitwise_and(limbs[i], _LIMB_MASK, out=limbs[i])
            np.add(limbs[i + 1], carry, out=limbs[i + 1])
        np.right_shift(limbs[count - 1], top, out=carry)
        np.bitwise_and(limbs[count - 1], (1 << top) - 1, out=limbs[count - 1])
        if not carry.any():
            break
        np.add(limbs[0], carry, out=limbs[0])
    out = np.empty((f.words, *rest), dtype=U64)
    for w in range(f.words):
        low = limbs[2 * w].view(U64)
        if 2 * w + 1 < count:
            np.left_shift(limbs[2 * w + 1].view(U64), U64(_LIMB), out=out[w])
            np.bitwise_or(out[w], low, out=out[w])
        else:
            out[w] = low
    full = limbs[count - 1] == (1 << top) - 1  # the value p (all ones) is zero
    for i in range(count - 1):
        full &= limbs[i] == _LIMB_MASK
    if full.any():
        out[:, full] = 0
    return out.reshape(f.words, -1)
