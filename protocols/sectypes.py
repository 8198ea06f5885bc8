"""Secret integer and fixed-point arrays with numpy-like operators: what SPMD programs are written in.

A program reads like numpy, with ``await`` exactly where parties communicate::

    async def prog(s: Session, data: np.ndarray | None) -> np.ndarray:
        x = await SecretFix.input(s, data if s.party == 0 else None, owner=0)  # floats in
        y = await SecretFix.input(s, data if s.party == 1 else None, owner=1)
        z = x + y - 1.5                  # linear: local, no await
        w = await (x * y)                # a product communicates
        m = await (x < y)                # SecretInt bits (0/1), same shape
        big = await where(m, y, x)       # elementwise select
        p = await (w + big - z).sigmoid()
        return await p.reveal()          # MAC-checked output, as float64

Which operations communicate: anything that multiplies two secrets, multiplies a fixed-point secret
by a non-integer public value (that needs a truncation), compares, or evaluates a non-linear function.
Those return a ``Pending``: nothing happens until it is awaited, and ``gather`` awaits several with
one round count for all of them (their rounds are merged). Adding, subtracting, negating, multiplying
by public integers, summing, indexing and reshaping are local and synchronous.

Types:

* ``SecretInt(k)``: signed integers in ``[-2^(k-1), 2^(k-1))`` (default ``k = 32``). Comparisons are
  exact over the whole range (they compare ``k + 1``-bit differences); ``k + 1 + 40`` bits must fit the
  field, so p61 allows ``k <= 19`` and p127 ``k <= 85``. A comparison result is a ``SecretInt`` of 0/1.
  ``sum()`` widens ``k`` by ``log2(size)``; ``+`` and ``*`` keep the wider operand's ``k``, and a result
  that leaves its range raises ``RangeError`` when it is revealed.
* ``SecretFix(fmt)``: fixed point, ``fmt = FixedFormat(k=64, f=20)`` by default (p127 only; see
  ``fixedpoint`` for the error model and the ranges of the functions).

Elementwise operations take operands of one shape, or one of them a single element (a scalar secret
or a public scalar); public arrays broadcast to the secret's shape. Each value carries its
``Session``; values of different sessions do not mix.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from typing import Any, Generic, NoReturn, TypeVar

import numpy as np

from . import fixedpoint as fx
from .comparison import KAPPA, RangeError, check_bits, eqz_steps, ltz_steps, max_bits
from .fixedpoint import FixedFormat
from .online import Session
from .rounds import Mul, Steps, flat, parallel, run, sum_groups
from .shares import SharedArray

__all__ = [
    "FixedFormat",
    "Pending",
    "RangeError",
    "SecretFix",
    "SecretInt",
    "gather",
    "maximum",
    "minimum",
    "where",
]

T = TypeVar("T")
S = TypeVar("S", bound="_Secret")


class Pending(Generic[T]):
    """An operation that communicates. ``await`` it to run it; ``gather`` runs several together.

    It is lazy (nothing is sent before the ``await``) and using it as a value without awaiting it is
    a ``TypeError`` with a hint, not a silent wrong result.
    """

    __slots__ = ("session", "_steps", "_wrap", "_what")
    __array_ufunc__ = None

    def __init__(
        self, session: Session, steps: Callable[[], Steps[Any]], wrap: Callable[[Any], T], what: str
    ) -> None:
        self.session = session
        self._steps = steps
        self._wrap = wrap
        self._what = what

    def __repr__(self) -> str:
        return f"<Pending {self._what}: await it>"

    def __await__(self) -> Generator[Any, None, T]:
        return self._run().__await__()

    async def _run(self) -> T:
        return self._wrap(await run(self.session, self._steps()))

    def _misuse(self, *args: Any) -> NoReturn:
        raise TypeError(f"{self._what} needs communication: `await` it first, e.g. `z = await (x * y)`")

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _misuse
    __truediv__ = __rtruediv__ = __matmul__ = __rmatmul__ = __neg__ = _misuse
    __lt__ = __le__ = __gt__ = __ge__ = __getitem__ = __len__ = __iter__ = _misuse

    def __bool__(self) -> bool:
        self._misuse()


async def gather(*pending: Pending[Any]) -> list[Any]:
    """Await several pending operations of one session together: their rounds run side by side."""
    if not pending:
        return []
    s = pending[0].session
    if any(p.session is not s for p in pending):
        raise ValueError("gather: the operations belong to different sessions")
    results = await run(s, parallel([p._steps() for p in pending]))
    return [p._wrap(r) for p, r in zip(pending, results, strict=True)]


# ---------------------------------------------------------------------------------------- shared base
def _dp_at(dp: Any, scale: int, n: int) -> tuple[Any, int]:
    """``dp`` at the value's ``scale``, and how many bits its noise may add to the value's range."""
    if dp is None:
        return None, 0
    from .dp.output import at_scale

    return at_scale(dp, scale, n)


class _Secret:
    """What both secret types share: a session, authenticated shares with a shape, local linear ops."""

    __slots__ = ("session", "shares")
    __array_ufunc__ = None  # numpy operands on the left defer to our reflected operators
    __hash__ = None  # type: ignore[assignment]  # == is elementwise and secret

    def __init__(self, session: Session, shares: SharedArray) -> None:
        self.session = session
        self.shares = shares

    def _new(self: S, shares: SharedArray) -> S:
        raise NotImplementedError

    def _compare(self, other: Any, op: str) -> Pending[SecretInt]:
        raise NotImplementedError

    # comparisons give SecretInt bits (1 where true); each type's _compare says against what
    def __lt__(self, other: Any) -> Pending[SecretInt]:
        return self._compare(other, "lt")

    def __le__(self, other: Any) -> Pending[SecretInt]:
        return self._compare(other, "le")

    def __gt__(self, other: Any) -> Pending[SecretInt]:
        return self._compare(other, "gt")

    def __ge__(self, other: Any) -> Pending[SecretInt]:
        return self._compare(other, "ge")

    def __eq__(self, other: Any) -> Pending[SecretInt]:  # type: ignore[override]
        return self._compare(other, "eq")

    def __ne__(self, other: Any) -> Pending[SecretInt]:  # type: ignore[override]
        return self._compare(other, "ne")

    # -- shape
    @property
    def shape(self) -> tuple[int, ...]:
        return self.shares.shape

    @property
    def size(self) -> int:
        return self.shares.size

    @property
    def ndim(self) -> int:
        return self.shares.ndim

    def __len__(self) -> int:
        return len(self.shares)

    def reshape(self: S, *shape: Any) -> S:
        return self._new(self.shares.reshape(*shape))

    def flatten(self: S) -> S:
        return self._new(self.shares.flatten())

    def __getitem__(self: S, key: Any) -> S:
        return self._new(self.shares[key])

    def transpose(self: S, *axes: int) -> S:
        """Like ``numpy.transpose`` (a local permutation of the shares)."""
        idx = np.arange(self.size).reshape(self.shape).transpose(*(axes or ()))
        return self._new(_gather(self.shares, idx.reshape(-1)).reshape(idx.shape))

    @property
    def T(self: S) -> S:  # noqa: N802 (numpy's name)
        return self.transpose()

    def _axis_sums(self, axis: int) -> tuple[SharedArray, int]:
        """Sums along ``axis`` (local): the axis is moved last, then contiguous groups are added."""
        axis = axis % max(self.ndim, 1)
        order = [d for d in range(self.ndim) if d != axis] + [axis]
        idx = np.arange(self.size).reshape(self.shape).transpose(order)
        rest = idx.shape[:-1]
        sums = sum_groups(_gather(self.shares, idx.reshape(-1)), int(np.prod(rest)))
        return sums.reshape(rest), self.shape[axis]

    # -- helpers
    def _check_peer(self, other: _Secret) -> None:
        if other.session is not self.session:
            raise ValueError("secret values of different sessions do not mix")
        if other.size != self.size and 1 not in (other.size, self.size):
            raise ValueError(f"shapes {self.shape} and {other.shape} do not match")

    def _shape_with(self, other: _Secret) -> tuple[int, ...]:
        return other.shape if self.size == 1 and other.size != 1 else self.shape

    def _pending(self, steps: Callable[[], Steps[Any]], wrap: Callable[[Any], T], what: str) -> Pending[T]:
        return Pending(self.session, steps, wrap, what)


def _expand(x: SharedArray, n: int) -> SharedArray:
    """A one-element array repeated ``n`` times (flat)."""
    if x.size == n:
        return flat(x)
    return SharedArray(x.ctx, np.repeat(x.value, n, axis=1), np.repeat(x.mac, n, axis=1))


def _pair(a: SharedArray, b: SharedArray) -> tuple[SharedArray, SharedArray]:
    n = max(a.size, b.size)
    return _expand(a, n), _expand(b, n)


def _defer(v: Any) -> bool:
    """Operands that handle secrets themselves (an owner-private value shares itself first): our
    operators return ``NotImplemented`` so that Python calls theirs."""
    return bool(getattr(type(v), "__spdz_defer__", False))


def _is_int_like(v: Any) -> bool:
    arr = np.asarray(v)
    return arr.dtype.kind in "iub" or (arr.dtype == object and all(isinstance(e, int) for e in arr.flat))


def _bits_needed(c: Any) -> int:
    """Bits of a signed public integer (array): ``|c| < 2^(bits-1)``."""
    arr = np.asarray(c, dtype=object).reshape(-1)
    top = max((abs(int(v)) for v in arr), default=0)
    return top.bit_length() + 1


# ---------------------------------------------------------------------------------------- SecretInt
class SecretInt(_Secret):
    """A secret array of ``k``-bit signed integers."""

    __slots__ = ("k",)

    def __init__(self, session: Session, shares: SharedArray, k: int = 32) -> None:
        super().__init__(session, shares)
        check_bits(session.field, k + 1, KAPPA, f"SecretInt(k={k}) comparisons")
        self.k = k

    def __repr__(self) -> str:
        return f"<SecretInt k={self.k} shape={self.shape} party={self.session.party}>"

    def _new(self, shares: SharedArray, k: int | None = None) -> SecretInt:
        return SecretInt(self.session, shares, self.k if k is None else k)

    @classmethod
    async def input(cls, s: Session, values: Any = None, owner: int = 0, k: int = 32) -> SecretInt:
        """Secret-share the integers ``values`` held by ``owner`` (every other party passes ``None``)."""
        check_bits(s.field, k + 1, KAPPA, f"SecretInt(k={k}) comparisons")
        if s.party == owner and values is not None:
            arr = np.asarray(values)
            if arr.dtype.kind == "f" or not _is_int_like(arr):
                raise TypeError("SecretInt.input takes integers (use SecretFix for reals)")
            fx.check_range(arr.astype(object) if arr.dtype == object else arr, k, "SecretInt input")
        return cls(s, await s.input(values, owner=owner), k)

    async def reveal(self, to: int | None = None, dp: Any = None) -> np.ndarray | None:
        """The values, to every party (or to party ``to`` only; the others get ``None``), MAC-checked.
        With ``dp=protocols.dp.DP(...)``: plus integer noise for that guarantee, added inside the MPC
        (the ``DP``'s sensitivity in integers; its ``scale`` is set to 1)."""
        dp, wider = _dp_at(dp, 1, self.session.n)
        out = await self.session.output(self.shares, to, dp=dp)
        if out is None:
            return None
        fx.check_range(out, self.k + wider, "SecretInt result")
        return out

    # -- linear, local
    def _public(self, c: Any) -> Any:
        if not _is_int_like(c):
            raise TypeError("SecretInt works with integers: convert with SecretFix.from_int for reals")
        return c

    def __add__(self, other: Any) -> SecretInt:
        if _defer(other):
            return NotImplemented
        if isinstance(other, SecretFix):
            return NotImplemented
        if isinstance(other, SecretInt):
            self._check_peer(other)
            return SecretInt(
                self.session,
                (self.shares + other.shares).reshape(self._shape_with(other)),
                max(self.k, other.k),
            )
        return self._new(self.shares + self._public(other))

    __radd__ = __add__

    def __sub__(self, other: Any) -> SecretInt:
        if _defer(other):
            return NotImplemented
        if isinstance(other, SecretFix):
            return NotImplemented
        if isinstance(other, SecretInt):
            self._check_peer(other)
            return SecretInt(
                self.session,
                (self.shares - other.shares).reshape(self._shape_with(other)),
                max(self.k, other.k),
            )
        return self._new(self.shares - self._public(other))

    def __rsub__(self, other: Any) -> SecretInt:
        if _defer(other):
            return NotImplemented
        return self._new(self._public(other) - self.shares)

    def __neg__(self) -> SecretInt:
        return self._new(-self.shares)

    def with_bits(self, k: int) -> SecretInt:
        """The same values declared as ``k``-bit (an assertion by the program: nothing is checked now,
        a revealed result outside the range raises ``RangeError``, and comparisons of out-of-range
        values are wrong)."""
        return self._new(self.shares, k)

    def sum(self, axis: int | None = None) -> SecretInt:
        """The sum of all elements (0-d), or along ``axis``; ``k`` grows by ``ceil(log2 count)`` of
        the summed elements (capped by the field)."""
        if axis is None:
            sums, count = self.shares.sum(), self.size
        else:
            sums, count = self._axis_sums(axis)
        grow = math.ceil(math.log2(count)) if count > 1 else 0
        k = min(self.k + grow, max_bits(self.session.field, KAPPA) - 1)
        return self._new(sums, k)

    # -- communicating
    def __mul__(self, other: Any) -> Any:
        if _defer(other):
            return NotImplemented
        if isinstance(other, SecretFix):
            return NotImplemented
        if isinstance(other, SecretInt):
            return self.mul(other)
        return self._new(self.shares * self._public(other))

    __rmul__ = __mul__

    def mul(self, other: SecretInt) -> Pending[SecretInt]:
        """Elementwise product (one round)."""
        self._check_peer(other)
        shape, k = self._shape_with(other), max(self.k, other.k)
        a, b = _pair(self.shares, other.shares)

        def steps() -> Steps[SharedArray]:
            (z,) = yield [Mul(a, b)]
            return z  # type: ignore[no-any-return]

        return self._pending(steps, lambda z: SecretInt(self.session, z.reshape(shape), k), "secret product")

    def dot(self, other: SecretInt) -> Pending[SecretInt]:
        """Inner product of two vectors of the same size (one round)."""
        return _matmul_int(self.flatten(), other.flatten())

    def __matmul__(self, other: Any) -> Pending[SecretInt]:
        if _defer(other):
            return NotImplemented
        return _matmul_int(self, other)

    def __rmatmul__(self, other: Any) -> Pending[SecretInt]:
        if _defer(other):
            return NotImplemented
        return _matmul_int(other, self)

    def _compare(self, other: Any, op: str) -> Pending[SecretInt]:
        """``op`` in ``lt, le, gt, ge, eq, ne`` against a SecretInt or public integers."""
        if _defer(other):
            return NotImplemented
        if isinstance(other, SecretFix):
            return NotImplemented  # type: ignore[return-value]
        if isinstance(other, SecretInt):
            self._check_peer(other)
            bits = max(self.k, other.k) + 1
            diff = self.shares - other.shares
            shape = self._shape_with(other)
        else:
            other = self._public(other)
            bits = max(self.k, _bits_needed(other)) + 1
            diff = self.shares - other
            shape = np.broadcast_shapes(self.shape, np.shape(other))
        return _compare_pending(self.session, diff, bits, op, shape, self.k)

    def __abs__(self) -> Pending[SecretInt]:
        return _abs(self)


def _compare_pending(
    s: Session, diff: SharedArray, bits: int, op: str, shape: tuple[int, ...], k: int
) -> Pending[SecretInt]:
    """``diff`` (a ``bits``-bit value) against zero: ``lt: d < 0``, ``gt: d > 0`` (``-d < 0``), ``le: not
    gt``, ``ge: not lt``, ``eq``/``ne`` from the equality test."""
    check_bits(s.field, bits, KAPPA, "comparison")
    d = flat(diff)

    def steps() -> Steps[SharedArray]:
        if op in ("eq", "ne"):
            z = yield from eqz_steps(d, bits)
            return z if op == "eq" else _not(z)
        z = yield from ltz_steps(d if op in ("lt", "ge") else -d, bits)
        return z if op in ("lt", "gt") else _not(z)

    names = {"lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!="}
    return Pending(s, steps, lambda z: SecretInt(s, z.reshape(shape), max(k, 2)), f"comparison {names[op]}")


def _not(z: SharedArray) -> SharedArray:
    return (-z).add_public_field(z.ctx.field.const(1))


def _abs(x: SecretInt | SecretFix) -> Pending[Any]:
    """``|x| = x (1 - 2 [x < 0])``: a comparison and a product."""
    k = x.k if isinstance(x, SecretInt) else x.fmt.k
    a = flat(x.shares)

    def steps() -> Steps[SharedArray]:
        neg = yield from ltz_steps(a, k)
        (prod,) = yield [Mul(a, neg)]
        return a - (prod + prod)

    return x._pending(steps, lambda z: x._new(z.reshape(x.shape)), "abs")


def _matmul_int(a: Any, b: Any) -> Pending[SecretInt]:
    sec = a if isinstance(a, SecretInt) else b
    idx_a, idx_b, groups, shape = _matmul_plan(
        np.shape(a) if not isinstance(a, _Secret) else a.shape,
        np.shape(b) if not isinstance(b, _Secret) else b.shape,
    )
    if isinstance(a, SecretInt) and isinstance(b, SecretInt):
        if a.session is not b.session:
            raise ValueError("secret values of different sessions do not mix")
        xa, xb = _gather(a.shares, idx_a), _gather(b.shares, idx_b)

        def steps() -> Steps[SharedArray]:
            (z,) = yield [Mul(xa, xb)]
            return sum_groups(z, groups)

    else:
        pub = b if isinstance(a, SecretInt) else a
        if not _is_int_like(pub):
            raise TypeError("SecretInt matmul with public reals: use SecretFix")
        prod = _public_products(a, b, idx_a, idx_b, lambda c: np.asarray(c))

        def steps() -> Steps[SharedArray]:
            return sum_groups(prod, groups)
            yield  # pragma: no cover - a generator without a round

    k = a.k if isinstance(a, SecretInt) else b.k
    return sec._pending(steps, lambda z: SecretInt(sec.session, z.reshape(shape), k), "matrix product")


def _matmul_plan(
    sa: tuple[int, ...], sb: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray, int, tuple[int, ...]]:
    """Index arrays pairing the factors of ``A @ B`` so that each output's products are contiguous."""
    a2 = sa if len(sa) == 2 else (1, *sa)
    b2 = sb if len(sb) == 2 else (*sb, 1)
    if len(sa) not in (1, 2) or len(sb) not in (1, 2) or a2[1] != b2[0]:
        raise ValueError(f"matmul of shapes {sa} and {sb}")
    m, p, q = a2[0], a2[1], b2[1]
    i, j, l_ = np.meshgrid(np.arange(m), np.arange(q), np.arange(p), indexing="ij")
    idx_a = (i * p + l_).reshape(-1)
    idx_b = (l_ * q + j).reshape(-1)
    shape: tuple[int, ...] = (m, q)
    if len(sa) == 1:
        shape = shape[1:]
    if len(sb) == 1:
        shape = shape[:-1]
    return idx_a, idx_b, m * q, shape


def _gather(x: SharedArray, idx: np.ndarray) -> SharedArray:
    return SharedArray(x.ctx, x.value[:, idx], x.mac[:, idx])


def _public_products(
    a: Any, b: Any, idx_a: np.ndarray, idx_b: np.ndarray, enc: Callable[[Any], Any]
) -> SharedArray:
    """Secret times public factors, elementwise along the index arrays (local)."""
    if isinstance(a, _Secret):
        sec, pub, idx_s, idx_p = a, b, idx_a, idx_b
    else:
        sec, pub, idx_s, idx_p = b, a, idx_b, idx_a
    f = sec.shares.ctx.field
    coeffs = np.asarray(enc(pub)).reshape(-1)[idx_p]
    return _gather(sec.shares, idx_s).mul_public_field(f.encode(coeffs))


# ---------------------------------------------------------------------------------------- SecretFix
class SecretFix(_Secret):
    """A secret array of fixed-point reals (``FixedFormat``: ``k`` bits, ``f`` of them fractional)."""

    __slots__ = ("fmt",)

    def __init__(self, session: Session, shares: SharedArray, fmt: FixedFormat | None = None) -> None:
        super().__init__(session, shares)
        self.fmt = fmt or FixedFormat()
        self.fmt.check(session.field)

    def __repr__(self) -> str:
        return f"<SecretFix k={self.fmt.k} f={self.fmt.f} shape={self.shape} party={self.session.party}>"

    def _new(self, shares: SharedArray) -> SecretFix:
        return SecretFix(self.session, shares, self.fmt)

    @property
    def k(self) -> int:
        return self.fmt.k

    @classmethod
    async def input(
        cls, s: Session, values: Any = None, owner: int = 0, fmt: FixedFormat | None = None
    ) -> SecretFix:
        """Secret-share the reals ``values`` (a float array) held by ``owner``; others pass ``None``."""
        fmt = fmt or FixedFormat()
        fmt.check(s.field)
        enc = fx.encode(values, fmt) if s.party == owner and values is not None else values
        return cls(s, await s.input(enc, owner=owner), fmt)

    @classmethod
    def from_int(cls, x: SecretInt, fmt: FixedFormat | None = None) -> SecretFix:
        """The integers of ``x`` as fixed point (local: a multiplication by ``2^f``)."""
        fmt = fmt or FixedFormat()
        if x.k + fmt.f > fmt.k:
            raise RangeError(f"a {x.k}-bit SecretInt does not fit k = {fmt.k}, f = {fmt.f} fixed point")
        return cls(x.session, x.shares * (1 << fmt.f), fmt)

    async def reveal(self, to: int | None = None, dp: Any = None) -> np.ndarray | None:
        """The values as float64, to every party (or to party ``to`` only), MAC-checked. With
        ``dp=protocols.dp.DP(...)``: plus integer noise at the format's resolution ``2^-f`` for that
        guarantee, added inside the MPC (the ``DP``'s sensitivity in real units; its ``scale`` is
        set to ``2^f``, so a sensitivity above ``1,024 / 2^f`` is refused: use a smaller ``f``)."""
        dp, wider = _dp_at(dp, 1 << self.fmt.f, self.session.n)
        out = await self.session.output(self.shares, to, dp=dp)
        if out is None:
            return None
        fx.check_range(out, self.fmt.k + wider, "SecretFix result")
        return fx.decode(out, self.fmt)

    # -- linear, local
    def _fix_peer(self, other: SecretFix) -> None:
        self._check_peer(other)
        if other.fmt != self.fmt:
            raise ValueError(f"fixed-point formats differ: {self.fmt} and {other.fmt}")

    def _enc(self, c: Any) -> np.ndarray:
        return fx.encode(c, self.fmt)

    def __add__(self, other: Any) -> SecretFix:
        if _defer(other):
            return NotImplemented
        if isinstance(other, SecretInt):
            other = SecretFix.from_int(other, self.fmt)
        if isinstance(other, SecretFix):
            self._fix_peer(other)
            return self._new((self.shares + other.shares).reshape(self._shape_with(other)))
        return self._new(self.shares + self._enc(other))

    __radd__ = __add__

    def __sub__(self, other: Any) -> SecretFix:
        if _defer(other):
            return NotImplemented
        if isinstance(other, SecretInt):
            other = SecretFix.from_int(other, self.fmt)
        if isinstance(other, SecretFix):
            self._fix_peer(other)
            return self._new((self.shares - other.shares).reshape(self._shape_with(other)))
        return self._new(self.shares - self._enc(other))

    def __rsub__(self, other: Any) -> SecretFix:
        if _defer(other):
            return NotImplemented
        if isinstance(other, SecretInt):
            return SecretFix.from_int(other, self.fmt) - self
        return self._new(self._enc(other) - self.shares)

    def __neg__(self) -> SecretFix:
        return self._new(-self.shares)

    def sum(self, axis: int | None = None) -> SecretFix:
        """The sum of all elements (0-d), or along ``axis`` (local). It must fit the format."""
        return self._new(self.shares.sum() if axis is None else self._axis_sums(axis)[0])

    def mean(self) -> Pending[SecretFix]:
        """The mean: the sum times the public ``1 / size``, at full precision (one truncation)."""
        if not self.size:
            raise ValueError("mean of an empty array")
        return self.sum()._mul_public(1.0 / self.size)  # one value: the sum's shape is ()

    # -- products
    def __mul__(self, other: Any) -> Any:
        if _defer(other):
            return NotImplemented
        if isinstance(other, SecretFix):
            return self.mul(other)
        if isinstance(other, SecretInt):
            return self._times_int(other)
        if _is_int_like(other) and np.asarray(other).dtype != object:
            return self._new(self.shares * np.asarray(other).astype(np.int64))
        return self._mul_public(other)

    __rmul__ = __mul__

    def mul(self, other: SecretFix) -> Pending[SecretFix]:
        """Elementwise fixed-point product: a Beaver product and a truncation (2 rounds)."""
        self._fix_peer(other)
        shape = self._shape_with(other)
        a, b = _pair(self.shares, other.shares)
        return self._pending(lambda: fx.mul_steps(a, b, self.fmt), self._wrap(shape), "fixed-point product")

    def _times_int(self, other: SecretInt) -> Pending[SecretFix]:
        self._check_peer(other)
        shape = self._shape_with(other)
        a, b = _pair(self.shares, other.shares)

        def steps() -> Steps[SharedArray]:
            (z,) = yield [Mul(a, b)]
            return z  # type: ignore[no-any-return]

        return self._pending(steps, self._wrap(shape), "fixed-point times integer")

    def _mul_public(self, c: Any) -> Pending[SecretFix]:
        arr = np.asarray(c, dtype=np.float64)
        shape = np.broadcast_shapes(self.shape, arr.shape)
        sh = flat(self.shares) if self.size == math.prod(shape) else _expand(self.shares, math.prod(shape))
        vec = np.broadcast_to(arr, shape).reshape(-1) if arr.size > 1 else arr.reshape(-1)
        return self._pending(
            lambda: fx.mul_public_steps(sh, vec, self.fmt), self._wrap(shape), "x * public real"
        )

    def __truediv__(self, other: Any) -> Pending[SecretFix]:
        if _defer(other):
            return NotImplemented
        if isinstance(other, SecretInt):
            other = SecretFix.from_int(other, self.fmt)
        if isinstance(other, SecretFix):
            self._fix_peer(other)
            shape = self._shape_with(other)
            a, b = _pair(self.shares, other.shares)
            return self._pending(lambda: fx.div_steps(a, b, self.fmt), self._wrap(shape), "division")
        arr = np.asarray(other, dtype=np.float64)
        if np.any(arr == 0):
            raise ZeroDivisionError("division of a secret by a public zero")
        return self._mul_public(1.0 / arr)

    def __rtruediv__(self, other: Any) -> Pending[SecretFix]:
        if _defer(other):
            return NotImplemented
        c = np.asarray(other, dtype=np.float64)
        rec = self.reciprocal()
        if np.all(c == 1.0):
            return rec
        shape = np.broadcast_shapes(self.shape, c.shape)
        fmt = self.fmt

        def steps() -> Steps[SharedArray]:
            r = yield from rec._steps()
            return (yield from fx.mul_public_steps(flat(r), np.broadcast_to(c, shape).reshape(-1), fmt))

        return self._pending(steps, self._wrap(shape), "public / secret")

    def dot(self, other: SecretFix) -> Pending[SecretFix]:
        """Inner product of two vectors: one truncation for the whole sum (2 rounds)."""
        return _matmul_fix(self.flatten(), other.flatten())

    def __matmul__(self, other: Any) -> Pending[SecretFix]:
        if _defer(other):
            return NotImplemented
        return _matmul_fix(self, other)

    def __rmatmul__(self, other: Any) -> Pending[SecretFix]:
        if _defer(other):
            return NotImplemented
        return _matmul_fix(other, self)

    # -- comparisons
    def _compare(self, other: Any, op: str) -> Pending[SecretInt]:
        if _defer(other):
            return NotImplemented
        if isinstance(other, SecretInt):
            other = SecretFix.from_int(other, self.fmt)
        if isinstance(other, SecretFix):
            self._fix_peer(other)
            diff, shape = self.shares - other.shares, self._shape_with(other)
        else:
            enc = self._enc(other)
            diff, shape = self.shares - enc, np.broadcast_shapes(self.shape, np.shape(enc))
        return _compare_pending(self.session, diff, self.fmt.k + 1, op, shape, self.fmt.k)

    def __abs__(self) -> Pending[SecretFix]:
        return _abs(self)

    # -- functions
    def _fn(
        self, steps: Callable[[SharedArray, FixedFormat], Steps[SharedArray]], what: str
    ) -> Pending[SecretFix]:
        sh = flat(self.shares)
        return self._pending(lambda: steps(sh, self.fmt), self._wrap(self.shape), what)

    def reciprocal(self) -> Pending[SecretFix]:
        """``1 / x`` (``x = 0`` gives an arbitrary value)."""
        return self._fn(fx.reciprocal_steps, "reciprocal")

    def sqrt(self) -> Pending[SecretFix]:
        """``sqrt(x)``; 0 where ``x < 0``."""
        return self._fn(fx.sqrt_steps, "sqrt")

    def exp(self) -> Pending[SecretFix]:
        """``e^x``, saturating just below ``2^(k-1-f)``."""
        return self._fn(fx.exp_steps, "exp")

    def sigmoid(self) -> Pending[SecretFix]:
        """The logistic function ``1 / (1 + e^-x)``."""
        return self._fn(fx.sigmoid_steps, "sigmoid")

    def _wrap(self, shape: tuple[int, ...]) -> Callable[[SharedArray], SecretFix]:
        return lambda z: SecretFix(self.session, z.reshape(shape), self.fmt)


def _matmul_fix(a: Any, b: Any) -> Pending[SecretFix]:
    sec = a if isinstance(a, SecretFix) else b
    fmt = sec.fmt
    idx_a, idx_b, groups, shape = _matmul_plan(
        np.shape(a) if not isinstance(a, _Secret) else a.shape,
        np.shape(b) if not isinstance(b, _Secret) else b.shape,
    )
    if isinstance(a, SecretFix) and isinstance(b, SecretFix):
        if a.session is not b.session or a.fmt != b.fmt:
            raise ValueError("matmul of values from different sessions or fixed-point formats")
        xa, xb = _gather(a.shares, idx_a), _gather(b.shares, idx_b)
        steps: Callable[[], Steps[SharedArray]] = lambda: fx.dot_steps(xa, xb, groups, fmt)  # noqa: E731
    else:
        if isinstance(a, _Secret) and isinstance(b, _Secret):
            raise TypeError("matmul of SecretFix with SecretInt: convert with SecretFix.from_int")
        prod = _public_products(a, b, idx_a, idx_b, lambda c: fx.encode(c, fmt))

        def steps() -> Steps[SharedArray]:
            return (yield from fx.trunc_steps(sum_groups(prod, groups), fmt.k + fmt.f, fmt.f, fmt.kappa))

    return sec._pending(steps, sec._wrap(shape), "matrix product")


# ---------------------------------------------------------------------------------------- selection
def where(cond: SecretInt, a: Any, b: Any) -> Pending[Any]:
    """Elementwise ``cond ? a : b`` for a SecretInt of 0/1 and two secrets (or public values) of one
    type: ``b + cond (a - b)``, one product."""
    sec = a if isinstance(a, _Secret) else b
    if not isinstance(sec, _Secret):
        raise TypeError("where needs at least one secret branch")
    cls = type(sec)
    a = a if isinstance(a, _Secret) else sec * 0 + a
    b = b if isinstance(b, _Secret) else sec * 0 + b
    diff = a - b
    cond._check_peer(diff)
    shape = np.broadcast_shapes(cond.shape, diff.shape)
    n = math.prod(shape)
    c, d = _expand(cond.shares, n), _expand(diff.shares, n)
    base = _expand(b.shares, n)

    def steps() -> Steps[SharedArray]:
        (z,) = yield [Mul(c, d)]
        return base + z

    return Pending(
        sec.session,
        steps,
        lambda z: (
            sec._new(z.reshape(shape))
            if cls is SecretFix
            else SecretInt(sec.session, z.reshape(shape), sec.k)
        ),
        "where",
    )


def maximum(a: SecretInt | SecretFix, b: Any) -> Pending[Any]:
    """Elementwise maximum: ``b + [a > b] (a - b)``, a comparison and a product."""
    return _minmax(a, b, "gt")


def minimum(a: SecretInt | SecretFix, b: Any) -> Pending[Any]:
    """Elementwise minimum: ``b + [a < b] (a - b)``."""
    return _minmax(a, b, "lt")


def _minmax(a: SecretInt | SecretFix, b: Any, op: str) -> Pending[Any]:
    cmp = a._compare(b, op)
    b_sec = b if isinstance(b, _Secret) else a * 0 + b
    diff = a - b_sec
    shape = np.broadcast_shapes(a.shape, b_sec.shape)
    n = math.prod(shape)
    d, base = _expand(diff.shares, n), _expand(b_sec.shares, n)

    def steps() -> Steps[SharedArray]:
        bit = yield from cmp._steps()
        (z,) = yield [Mul(_expand(bit, n), d)]
        return base + z

    return Pending(
        a.session, steps, lambda z: diff._new(z.reshape(shape)), "maximum" if op == "gt" else "minimum"
    )
