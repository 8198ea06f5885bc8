"""Owner-private values: data that exactly one party knows, computed on where it lives.

In the horizontally split setting every row belongs to one party. Whatever a single party's rows
determine (its count, sums, means, centred second moments, bin counts, ``X^T X`` and ``X^T y``) that
party computes in plaintext, at numpy speed; only the combination across parties needs MPC, and its
cost depends on the number of parties and columns, not on the rows. This reveals nothing beyond what
the combination reveals: the aggregate enters the MPC as a secret input, exactly like a row would,
and a malicious party could input any values it likes in either case. (MP-SPDZ calls such a value
``personal``; its users write the local pre-aggregation by hand.)

``Private`` is that value in a program. Every party holds a ``Private`` object for it; only the owner
holds the array. The others hold its *public metadata*, the same at every party:

* ``owner``;
* ``kind``: ``"float"``, ``"int"`` or ``"bool"``, which decides what it becomes when shared
  (``SecretFix`` for floats, ``SecretInt`` for integers and 0/1);
* ``shape``: a tuple whose entries are ``None`` where the size is hidden (the owner's row count, by
  default), or ``None`` altogether when the program never declared it.

A program reads as numpy, SPMD as always::

    xs = await owned(s, my_rows)             # every party's rows; xs[j] is party j's (None-row shape)
    m = xs[s.party].sum(axis=0)              # local: only the owner computes, others track metadata
    g = xs[0].T @ xs[0]                      # local (d, d) Gram matrix of party 0
    total = await (m + other_secret)         # meets a secret: a Pending that includes the input round
    sg = await g.share()                     # explicitly: one input round, a SecretFix (d, d)

Operations on one owner's values and public values are local and synchronous: arithmetic, comparisons
(giving ``"bool"`` values), ``@``, reductions (``sum``, ``mean``, ``min``, ``max``, ``var``), indexing,
reshaping, ``histogram``/``bincount`` counts, ``where``, ``apply`` for anything else. Shapes follow
numpy, with hidden sizes carried along (a hidden row count disappears under a reduction over rows).
A ``Private`` that meets a secret (``SecretInt``/``SecretFix``) or another party's ``Private`` is
shared first: the result is a ``Pending`` (``await`` it, or ``gather`` several) whose first round is
the input. Using the value at a party that does not own it raises ``NotOwnerError``; nothing about
it ever leaves the owner except through ``share`` (whose input protocol reveals its actual shape,
hidden sizes included, as every input does) or a result the program reveals.

A program must not branch on a private value at its owner in a way that changes the communication:
the other parties cannot follow. Everything public (shape, kind) is the same at every party, so
branching on it is fine.
"""

from __future__ import annotations

import math
import operator
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np

from . import fixedpoint as fx
from .comparison import trunc_steps
from .errors import ProtocolError
from .fixedpoint import FixedFormat
from .online import Session
from .rounds import Input, OwnedMul, Steps, flat, owned_available, sum_groups
from .sectypes import Pending, SecretFix, SecretInt, _matmul_plan, _Secret

__all__ = ["Kind", "NotOwnerError", "Private", "owned", "private", "where"]

Kind = Literal["float", "int", "bool"]
Shape = tuple[int | None, ...] | None
_DTYPES: dict[str, Any] = {"float": np.float64, "int": np.int64, "bool": np.bool_}
_KINDS = {"f": "float", "i": "int", "u": "int", "b": "bool"}
_MAX_NDIM = 8


class NotOwnerError(PermissionError):
    """The value of a ``Private`` was asked for at a party that does not own it."""


def _kind_of(arr: np.ndarray) -> Kind:
    kind = _KINDS.get(arr.dtype.kind)
    if kind is None:
        raise TypeError(f"private values are numbers or booleans, not {arr.dtype}")
    return kind  # type: ignore[return-value]


def _as_array(value: Any) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind == "u":
        arr = arr.astype(np.int64)
    if arr.dtype == object:
        raise TypeError("private values are numeric arrays (int64, float64 or bool), not Python objects")
    return arr


def _conforms(actual: tuple[int, ...], public: Shape) -> bool:
    if public is None:
        return True
    return len(actual) == len(public) and all(
        p is None or p == a for a, p in zip(actual, public, strict=True)
    )


def _dummy(shape: Shape, kind: Kind) -> np.ndarray:
    """A stand-in with the public metadata: hidden sizes are 0, so it costs nothing to compute on;
    for an unknown shape, an empty vector (good enough to learn a result's kind)."""
    if shape is None:
        return np.zeros(0, dtype=_DTYPES[kind])
    dims = tuple(0 if d is None else d for d in shape)
    if math.prod(dims) > 1 << 16:
        return np.broadcast_to(np.zeros((), dtype=_DTYPES[kind]), dims)
    return np.zeros(dims, dtype=_DTYPES[kind])


def _public_shape(out: np.ndarray, hidden: bool) -> Shape:
    """Metadata of a stand-in's result: where a hidden size went in, a 0 that comes out is hidden."""
    return tuple(None if hidden and d == 0 else int(d) for d in np.shape(out))


def _has_hidden(shape: Shape) -> bool:
    return shape is not None and None in shape


class Private:
    """A value that exactly one party, ``owner``, knows (see the module docstring)."""

    __slots__ = ("session", "owner", "kind", "shape", "_value")
    __array_ufunc__ = None  # numpy operands on the left defer to our reflected operators
    __hash__ = None  # type: ignore[assignment]
    __spdz_defer__ = True  # secret types return NotImplemented for us, so our reflected ops run

    def __init__(self, session: Session, owner: int, value: Any, shape: Shape, kind: Kind) -> None:
        """Internal: use ``private`` or ``owned``."""
        if not 0 <= owner < session.n:
            raise ValueError(f"owner {owner} is not a party of this session (n = {session.n})")
        if kind not in _DTYPES:
            raise ValueError(f"kind must be 'float', 'int' or 'bool', not {kind!r}")
        self.session = session
        self.owner = owner
        self.kind: Kind = kind
        self.shape: Shape = None if shape is None else tuple(shape)
        if session.party == owner:
            if value is None:
                raise ValueError(f"party {owner} owns this private value but passed none")
            arr = _as_array(value)
            if not _conforms(arr.shape, self.shape):
                raise ValueError(
                    f"private value of shape {arr.shape} does not have the declared shape {shape}"
                )
            if kind == "float":
                arr = arr.astype(np.float64, copy=False)
            elif _kind_of(arr) != kind:
                raise TypeError(f"private value of dtype {arr.dtype} declared as {kind!r}")
            self._value: np.ndarray | None = arr
        else:
            if value is not None:
                raise ValueError(f"party {session.party} passed a value for party {owner}'s private value")
            self._value = None

    # -- what the owner has
    @property
    def mine(self) -> bool:
        """Whether this party owns the value."""
        return self.session.party == self.owner

    @property
    def value(self) -> np.ndarray:
        """The array, at its owner; ``NotOwnerError`` anywhere else."""
        if self._value is None:
            raise NotOwnerError(
                f"party {self.session.party} does not own this private value (party {self.owner} does)"
            )
        return self._value

    def __repr__(self) -> str:
        return f"<Private owner={self.owner} kind={self.kind} shape={self.shape} party={self.session.party}>"

    @property
    def ndim(self) -> int | None:
        return None if self.shape is None else len(self.shape)

    def __len__(self) -> int:
        if self.shape is None or not self.shape or self.shape[0] is None:
            raise TypeError(
                "the length of this private value is hidden from the other parties: use x.count() "
                "(a private count) or x.value at the owner"
            )
        return int(self.shape[0])

    def __bool__(self) -> bool:
        raise TypeError("a private value has no public truth value (the other parties could not follow)")

    def __iter__(self) -> Any:
        raise TypeError("iterate over x.value at the owner; a program iterates over public things only")

    # -- local computation
    def _local(self, fn: Callable[..., Any], *others: Any, what: str = "operation") -> Private:
        """``fn(value, *other values)`` at the owner, the metadata everywhere: ``others`` are public
        values or private values of the same owner. The result's shape and kind come from running
        ``fn`` on stand-ins built from public metadata only, so every party derives the same."""
        s = self.session
        vals: list[Any] = []
        dums: list[Any] = []
        hidden = _has_hidden(self.shape)
        known = self.shape is not None
        for o in others:
            if isinstance(o, Private):
                if o.session is not s:
                    raise ValueError("private values of different sessions do not mix")
                if o.owner != self.owner:
                    raise ValueError("internal: mixing owners is not local")
                vals.append(o._value)
                dums.append(_dummy(o.shape, o.kind))
                hidden |= _has_hidden(o.shape)
                known &= o.shape is not None
            elif isinstance(o, _Secret | Pending):
                raise TypeError(f"{what} of a private value with a secret is not local")
            else:
                vals.append(o)
                dums.append(o)
        mine = _dummy(self.shape, self.kind)
        try:
            ref = np.asarray(fn(mine, *dums))
        except (ValueError, IndexError, TypeError) as e:
            if known:
                raise ValueError(f"{what} of a private value of shape {self.shape}: {e}") from None
            ref = None  # an unknown shape: nothing to infer from but the kinds
        shape = _public_shape(ref, hidden) if known and ref is not None else None
        kind = (
            _kind_of(ref)
            if ref is not None
            else _promote(
                self.kind, [o.kind if isinstance(o, Private) else _kind_of(_as_array(o)) for o in others]
            )
        )
        value = None
        if self.mine:
            res = _as_array(fn(self._value, *vals))
            if _kind_of(res) != kind:
                res = res.astype(_DTYPES[kind])
            if not _conforms(res.shape, shape):
                raise ValueError(f"{what}: the result's shape {res.shape} is not the public {shape}")
            value = res
        return Private(s, self.owner, value, shape, kind)

    def apply(
        self,
        fn: Callable[..., Any],
        *others: Any,
        shape: Shape | Literal["infer"] = "infer",
        kind: Kind | None = None,
    ) -> Private:
        """``fn(value, *others)`` computed by the owner: any numpy code on its own data. The result's
        public shape and kind are inferred by running ``fn`` on a stand-in with the hidden sizes set to
        0 (``shape="infer"``), or given (``shape=``, ``kind=``) when ``fn`` cannot run on that."""
        if shape == "infer":
            out = self._local(fn, *others, what="apply")
            return out if kind is None else out.astype(kind)
        vals = [o._value if isinstance(o, Private) else o for o in others]
        value = None
        if self.mine:
            value = _as_array(fn(self._value, *vals))
            value = value.astype(_DTYPES[kind]) if kind is not None else value
        if kind is None:
            raise TypeError("apply with a declared shape needs a declared kind too")
        return Private(self.session, self.owner, value, shape, kind)

    def _binary(self, other: Any, fn: Callable[[Any, Any], Any], symbol: str, reflected: bool = False) -> Any:
        """``self <fn> other``: local with public values and this owner's values (``fn`` on arrays);
        with a secret or another owner's value, ``fn`` on the secret types after the input rounds."""
        if isinstance(other, _Secret) or (isinstance(other, Private) and other.owner != self.owner):
            return _mixed(self, other, fn, symbol, reflected)
        if isinstance(other, Pending):
            return NotImplemented
        if reflected:
            return self._local(lambda a, b: fn(b, a), other, what=symbol)
        return self._local(fn, other, what=symbol)

    def __add__(self, o: Any) -> Any:
        return self._binary(o, operator.add, "+")

    def __radd__(self, o: Any) -> Any:
        return self._binary(o, operator.add, "+", True)

    def __sub__(self, o: Any) -> Any:
        return self._binary(o, operator.sub, "-")

    def __rsub__(self, o: Any) -> Any:
        return self._binary(o, operator.sub, "-", True)

    def __mul__(self, o: Any) -> Any:
        return self._binary(o, operator.mul, "*")

    def __rmul__(self, o: Any) -> Any:
        return self._binary(o, operator.mul, "*", True)

    def __truediv__(self, o: Any) -> Any:
        return self._binary(o, operator.truediv, "/")

    def __rtruediv__(self, o: Any) -> Any:
        return self._binary(o, operator.truediv, "/", True)

    def __floordiv__(self, o: Any) -> Any:
        return self._binary(o, operator.floordiv, "//")

    def __mod__(self, o: Any) -> Any:
        return self._binary(o, operator.mod, "%")

    def __pow__(self, o: Any) -> Any:
        return self._binary(o, operator.pow, "**")

    def __matmul__(self, o: Any) -> Any:
        return self._binary(o, operator.matmul, "@")

    def __rmatmul__(self, o: Any) -> Any:
        return self._binary(o, operator.matmul, "@", True)

    def __and__(self, o: Any) -> Any:
        return self._binary(o, np.logical_and, "&")

    __rand__ = __and__

    def __or__(self, o: Any) -> Any:
        return self._binary(o, np.logical_or, "|")

    __ror__ = __or__

    def __invert__(self) -> Private:
        return self._local(np.invert, what="~")

    def __neg__(self) -> Private:
        return self._local(np.negative, what="-")

    def __abs__(self) -> Private:
        return self._local(np.abs, what="abs")

    def __lt__(self, o: Any) -> Any:
        return self._binary(o, operator.lt, "<")

    def __le__(self, o: Any) -> Any:
        return self._binary(o, operator.le, "<=")

    def __gt__(self, o: Any) -> Any:
        return self._binary(o, operator.gt, ">")

    def __ge__(self, o: Any) -> Any:
        return self._binary(o, operator.ge, ">=")

    def __eq__(self, o: Any) -> Any:  # type: ignore[override]
        return self._binary(o, operator.eq, "==")

    def __ne__(self, o: Any) -> Any:  # type: ignore[override]
        return self._binary(o, operator.ne, "!=")

    # -- shape
    def __getitem__(self, key: Any) -> Private:
        if isinstance(key, Private):
            return self._masked(key)
        if isinstance(key, tuple) and any(isinstance(k, Private) for k in key):
            raise TypeError("index a private value by one private boolean mask, or by public indices")
        return self._local(lambda a: a[key], what="indexing")

    def _masked(self, mask: Private) -> Private:
        """``x[mask]`` for the owner's boolean mask: the number of selected rows is hidden."""
        if mask.owner != self.owner:
            raise ValueError("a private value can be indexed only by its own owner's mask")
        if mask.kind != "bool":
            raise TypeError("a private index must be a boolean mask")
        shape: Shape = None
        if self.shape is not None and mask.shape is not None:
            shape = (None, *self.shape[len(mask.shape) :])
        value = self._value[mask._value] if self.mine else None  # type: ignore[index]
        return Private(self.session, self.owner, value, shape, self.kind)

    def reshape(self, *shape: Any) -> Private:
        return self._local(lambda a: a.reshape(*shape), what="reshape")

    def flatten(self) -> Private:
        return self._local(lambda a: a.reshape(-1), what="flatten")

    def transpose(self, *axes: int) -> Private:
        return self._local(lambda a: a.transpose(*axes), what="transpose")

    @property
    def T(self) -> Private:  # noqa: N802 (numpy's name)
        return self.transpose()

    def astype(self, kind: Kind) -> Private:
        dt = _DTYPES[kind]
        return self._local(lambda a: a.astype(dt), what="astype")

    def clip(self, lo: Any, hi: Any) -> Private:
        return self._local(lambda a: np.clip(a, lo, hi), what="clip")

    # -- reductions (the usual way out of the hidden row count)
    def sum(self, axis: int | None = None) -> Private:
        return self._local(lambda a: a.sum(axis=axis), what="sum")

    def mean(self, axis: int | None = None) -> Private:
        """The mean (NaN where there is nothing to average, as numpy; ``share`` refuses NaN)."""
        return self._local(lambda a: _quiet(np.mean, a, axis=axis), what="mean")

    def var(self, axis: int | None = None, ddof: int = 0) -> Private:
        return self._local(lambda a: _quiet(np.var, a, axis=axis, ddof=ddof), what="var")

    def min(self, axis: int | None = None) -> Private:
        return self._local(lambda a: a.min(axis=axis), what="min")

    def max(self, axis: int | None = None) -> Private:
        return self._local(lambda a: a.max(axis=axis), what="max")

    def count(self) -> Private:
        """The number of rows (the length of axis 0) as a private integer."""
        return self.apply(
            lambda a: np.asarray(a.shape[0] if a.ndim else 1, dtype=np.int64), shape=(), kind="int"
        )

    def histogram(self, edges: Any) -> Private:
        """Counts in the bins of the public, increasing ``edges`` (``numpy.histogram(x, bins=edges)``)."""
        e = np.asarray(edges, dtype=np.float64).reshape(-1)
        if e.size < 2 or not np.all(np.diff(e) > 0) or not np.all(np.isfinite(e)):
            raise ValueError("histogram edges must be at least two finite, strictly increasing numbers")
        return self.apply(
            lambda a: np.histogram(a, bins=e)[0].astype(np.int64), shape=(e.size - 1,), kind="int"
        )

    def bincount(self, minlength: int) -> Private:
        """Counts of the integers ``0 .. minlength - 1`` (larger or negative values are an error at the
        owner: the length of a private result must be public)."""

        def fn(a: np.ndarray) -> np.ndarray:
            flat = a.reshape(-1).astype(np.int64)
            if flat.size and (flat.min() < 0 or flat.max() >= minlength):
                raise ValueError(f"bincount of values outside 0..{minlength - 1}")
            return np.bincount(flat, minlength=minlength).astype(np.int64)

        return self.apply(fn, shape=(minlength,), kind="int")

    # -- into the MPC
    def share(self, *, fmt: FixedFormat | None = None, k: int | None = None) -> Pending[Any]:
        """The value secret-shared (one input round): a ``SecretFix`` for floats (``fmt``, default
        ``FixedFormat()``), a ``SecretInt`` for integers and booleans (``k`` bits, default 32). The
        input protocol reveals the actual shape, hidden sizes included."""
        return Pending(self.session, lambda: self._share_steps(fmt, k), lambda x: x, "share a private value")

    def _share_steps(self, fmt: FixedFormat | None, k: int | None, like: _Secret | None = None) -> Steps[Any]:
        s = self.session
        as_fix = self.kind == "float" if like is None else isinstance(like, SecretFix)
        if as_fix:
            fmt = fmt or (like.fmt if isinstance(like, SecretFix) else FixedFormat())
            fmt.check(s.field)
            enc = fx.encode(self._value, fmt) if self.mine else None
            (sh,) = yield [Input(enc, self.owner)]
            return SecretFix(s, sh, fmt)
        if self.kind == "float":
            raise TypeError("a private float meets a SecretInt: convert one of them (SecretFix.from_int)")
        k = k or (like.k if isinstance(like, SecretInt) else 32)
        enc = None
        if self.mine:
            enc = np.asarray(self._value, dtype=np.int64)
            fx.check_range(enc, k, f"private value as SecretInt(k={k})")
        (sh,) = yield [Input(enc, self.owner)]
        return SecretInt(s, sh, k)


def _quiet(fn: Callable[..., Any], a: Any, **kw: Any) -> Any:
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return fn(a, **kw)


def _promote(kind: Kind, others: Sequence[Kind]) -> Kind:
    order = ["bool", "int", "float"]
    return order[max(order.index(k) for k in [kind, *others])]  # type: ignore[return-value]


def _mixed(
    p: Private, other: Any, fn: Callable[[Any, Any], Any], symbol: str, reflected: bool
) -> Pending[Any]:
    """``p <fn> other`` where ``other`` is a secret or another owner's private value: share what is
    private (the input rounds), then apply ``fn`` to the secret types (local or not)."""
    s = p.session
    if other.session is not s:
        raise ValueError("values of different sessions do not mix")
    if fn not in _SECRET_OPS:
        raise TypeError(f"{symbol!r} is not defined between a private value and a secret")
    like = other if isinstance(other, _Secret) else None

    def steps() -> Steps[Any]:
        a = yield from p._share_steps(None, None, like)
        if isinstance(other, Private):
            b = yield from other._share_steps(None, None, a)
        else:
            b = other
        if fn in (operator.mul, operator.matmul) and owned_fits(s, a, b):
            return (yield from owned_product_steps(a, b, p.owner, fn is operator.matmul, reflected))
        left, right = (b, a) if reflected else (a, b)
        res = fn(left, right)
        if res is NotImplemented:
            raise TypeError(f"{symbol!r} of {type(left).__name__} and {type(right).__name__}")
        if isinstance(res, Pending):
            return res._wrap((yield from res._steps()))
        return res

    return Pending(s, steps, lambda x: x, f"private {symbol} secret")


def owned_fits(s: Session, a: Any, b: Any) -> bool:
    """A product of the owner's shared value ``a`` with the secret ``b`` can be owned products: the
    session serves them (``rounds.owned_available``) and both are of one type (``SecretFix`` with one
    format, or ``SecretInt``)."""
    if not owned_available(s):
        return False
    if isinstance(a, SecretFix) and isinstance(b, SecretFix):
        return a.fmt == b.fmt and b.session is s
    return isinstance(a, SecretInt) and isinstance(b, SecretInt) and b.session is s


def owned_product_steps(a: Any, b: Any, owner: int, matmul: bool, reflected: bool = False) -> Steps[Any]:
    """``a * b`` or ``a @ b`` (``b @ a`` if ``reflected``) for ``a`` the owner's own value, shared: owned
    products (``rounds.OwnedMul``, a third of a triple each), with the secret types' own semantics
    (``SecretFix``: one truncation per result element, as ``mul_steps`` and ``dot_steps``)."""
    s = a.session
    if matmul:
        left, right = (b.shape, a.shape) if reflected else (a.shape, b.shape)
        idx_l, idx_r, groups, shape = _matmul_plan(left, right)
        idx_a, idx_b = (idx_r, idx_l) if reflected else (idx_l, idx_r)
    else:
        if a.size != b.size and 1 not in (a.size, b.size):
            raise ValueError(f"elementwise product of shapes {a.shape} and {b.shape}")
        size = max(a.size, b.size)
        shape = tuple(b.shape if a.size == 1 and b.size != 1 else a.shape)
        idx_a = np.zeros(size, dtype=np.int64) if a.size == 1 else np.arange(size)
        idx_b = np.zeros(size, dtype=np.int64) if b.size == 1 else np.arange(size)
        groups = 0
    xa = flat(a.shares)[idx_a]  # the owner's values, repeated where the product needs them
    (z,) = yield [OwnedMul(xa, flat(b.shares), idx_b, owner)]
    if groups:
        z = sum_groups(z, groups)
    if isinstance(a, SecretFix):
        fmt = a.fmt
        z = yield from trunc_steps(z, fmt.k + fmt.f, fmt.f, fmt.kappa)
        return SecretFix(s, z.reshape(shape), fmt)
    return SecretInt(s, z.reshape(shape), max(a.k, b.k) if not matmul else b.k if reflected else a.k)


# the operators the secret types define
_SECRET_OPS = frozenset(
    [
        operator.add,
        operator.sub,
        operator.mul,
        operator.truediv,
        operator.matmul,
        operator.lt,
        operator.le,
        operator.gt,
        operator.ge,
        operator.eq,
        operator.ne,
    ]
)


def private(s: Session, value: Any, owner: int, *, shape: Shape = None, kind: Kind | None = None) -> Private:
    """Party ``owner``'s value as a ``Private`` (no communication); every other party passes ``None``.

    ``shape`` and ``kind`` are public metadata that every party passes alike (``None`` entries in
    ``shape``: sizes hidden from the others). Without ``kind``, the value is a float unless the owner's
    array is integer or boolean, and then the program must say so at every party: the kind decides
    what the others do with it, so it must not come from the owner's data alone."""
    if kind is None:
        kind = "float"
        if s.party == owner and value is not None:
            got = _kind_of(_as_array(value))
            if got != "float":
                raise TypeError(f"party {owner}'s value is {got}: declare kind={got!r} at every party")
    return Private(s, owner, value, shape, kind)


async def owned(s: Session, mine: Any, *, hide: int = 1) -> list[Private | None]:
    """Every party's own array as a ``Private``, in party order (``result[s.party]`` holds ``mine``).

    One round: each party announces its array's kind and shape with the first ``hide`` sizes hidden
    (default: its row count), recorded for the broadcast check of the next MAC check. A party with
    no data passes ``None`` (or an empty array) and appears as ``None`` in the list. Every party learns
    the others' column counts and which parties have data, nothing else."""
    arr = None if mine is None else _as_array(mine)
    if arr is not None and arr.size == 0:
        arr = None
    meta: list[Any] = [None, None]
    if arr is not None:
        meta = [_kind_of(arr), [None] * min(hide, arr.ndim) + [int(d) for d in arr.shape[hide:]]]
    step = s.next_step()
    for j in range(s.n):
        if j != s.party:
            await s.net.send(j, step, meta)
    out = []
    for j in range(s.n):
        if j == s.party:
            kind, shape = meta
            value = arr
        else:
            kind, shape = _parse_meta(await s.net.recv(j, step), j)
            value = None
        s.record_broadcast(step, j, repr((kind, shape)).encode())
        out.append(None if kind is None else Private(s, j, value, tuple(shape), kind))  # type: ignore[arg-type]
    return out


def _parse_meta(raw: Any, frm: int) -> tuple[Kind | None, list[int | None] | None]:
    ok = isinstance(raw, (list, tuple)) and len(raw) == 2
    if ok:
        kind, shape = raw
        ok = (kind is None and shape is None) or (
            kind in _DTYPES
            and isinstance(shape, (list, tuple))
            and len(shape) <= _MAX_NDIM
            and all(
                d is None or (isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 1 << 40)
                for d in shape
            )
        )
    if not ok:
        raise ProtocolError(f"party {frm} sent malformed private-value metadata", culprit=frm)
    return kind, (None if shape is None else list(shape))  # type: ignore[return-value]


def where(cond: Private, a: Any, b: Any) -> Private:
    """``numpy.where(cond, a, b)`` at ``cond``'s owner: ``a`` and ``b`` public or its own."""
    if not isinstance(cond, Private):
        raise TypeError("where: the condition must be a private value")
    return cond._local(np.where, a, b, what="where")
