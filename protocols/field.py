"""Prime fields GF(p) with vectorized numpy arithmetic.

Two moduli, both Mersenne primes, because folding ``2^k = 1 (mod p)`` replaces division by shifts:

* ``p = 2^61 - 1``: the fast path for integer work (sums, counts). An element is one uint64 word.
* ``p = 2^127 - 1``: the default. Fixed point and comparisons need ``k + s < log2 p`` headroom with
  ``s = 40`` bits of statistical security. An element is two uint64 words (low, high).

Layout: a field vector of ``n`` elements is a C-contiguous uint64 array of shape ``(W, n)`` where ``W``
is the number of words (1 or 2): word-major, so each word is a contiguous vector that numpy streams
through. Generic code indexes elements with ``a[:, idx]`` and concatenates along ``axis=1``.

Every array is kept canonical (each element in ``[0, p)``) so that equal values have equal bytes;
``from_bytes`` refuses anything else, because those bytes come from peers.

Why numpy limbs and not Python ints: ``benchmarks/field_bench.py`` measures object arrays at a few
million multiplications per second, the limb code here at tens of millions. Multiplication is done in
cache-sized chunks into reused scratch buffers: fresh large temporaries cost page faults.

Long vectors are split across a small per-field thread pool (``SPDZ_THREADS``, default: the number of
cores, at most 4). numpy releases the GIL inside each ufunc, so the chunks of one operation run on
several cores; each thread has its own scratch buffers. When a field is made, the process's BLAS is
limited to one thread (threadpoolctl): OpenBLAS's own spinning threads otherwise fight ours for the
cores, which made the MAC check's small matrix products 5-100x slower here.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from threadpoolctl import threadpool_limits

from .prg import PRG

U64 = np.uint64
M26 = U64((1 << 26) - 1)
M32 = U64(0xFFFFFFFF)
M61 = U64((1 << 61) - 1)
M63 = U64((1 << 63) - 1)
M64 = U64((1 << 64) - 1)
M23 = U64((1 << 23) - 1)
S3, S12, S14, S23, S26, S29, S32, S40, S52, S61, S63 = (
    U64(k) for k in (3, 12, 14, 23, 26, 29, 32, 40, 52, 61, 63)
)

P61 = (1 << 61) - 1
P127 = (1 << 127) - 1

_CHUNK = 16384
_PARALLEL_MIN = 1 << 17


def _default_threads() -> int:
    env = os.environ.get("SPDZ_THREADS")
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            raise ValueError(f"SPDZ_THREADS must be an integer, got {env!r}") from None
    return max(1, min(4, os.cpu_count() or 1))


class FieldError(ValueError):
    """A value or a byte string is not a valid element vector of this field."""


class PrimeField:
    """GF(p) for a Mersenne prime p; see the module docstring for the array layout."""

    modulus: int
    bits: int
    words: int
    name: str

    def __init__(self) -> None:
        self.elem_bytes = 8 * self.words
        self.half = (self.modulus - 1) // 2
        self._tls = threading.local()
        self.threads = _default_threads()
        threadpool_limits(1, user_api="blas")  # see the module docstring
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} p=2^{self.bits}-1>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PrimeField) and other.modulus == self.modulus

    def __hash__(self) -> int:
        return hash(self.modulus)

    # ----------------------------------------------------------------- shape helpers
    @staticmethod
    def length(a: np.ndarray) -> int:
        return a.shape[1]

    def zeros(self, n: int) -> np.ndarray:
        return np.zeros((self.words, n), dtype=U64)

    def concat(self, parts: Sequence[np.ndarray]) -> np.ndarray:
        if not parts:
            return self.zeros(0)
        return np.concatenate(parts, axis=1)

    def const(self, c: int, n: int = 1) -> np.ndarray:
        """The constant ``c`` (any integer, reduced mod p) repeated ``n`` times."""
        return np.repeat(self.from_ints([c]), n, axis=1)

    def _scratch_bufs(self, k: int, m: int) -> list[np.ndarray]:
        """``k`` reused uint64 buffers of length ``m <= _CHUNK`` (this thread's; valid until next call)."""
        tls = self._tls
        bufs = getattr(tls, "bufs", None)
        if bufs is None or len(bufs) < k:
            bufs = tls.bufs = [np.empty(_CHUNK, dtype=U64) for _ in range(k)]
        return [b[:m] for b in bufs[:k]]

    def _scratch_2d(self, key: str, rows: int, m: int) -> np.ndarray:
        tls = self._tls
        d = getattr(tls, "bufs2d", None)
        if d is None:
            d = tls.bufs2d = {}
        buf = d.get(key)
        if buf is None:
            buf = d[key] = np.empty((rows, _CHUNK), dtype=U64)
        return buf[:, :m]

    def _bool_scratch(self, m: int) -> np.ndarray:
        tls = self._tls
        b = getattr(tls, "bools", None)
        if b is None:
            b = tls.bools = np.empty(_CHUNK, dtype=bool)
        return b[:m]

    def run_chunks(self, n: int, body: Callable[[int, int], None]) -> None:
        """Call ``body(i, j)`` over ``[0, n)`` in pieces of at most 16384, spread over the thread pool.

        ``body`` may run in several threads at once, on disjoint ranges.
        """
        if n < _PARALLEL_MIN or self.threads <= 1:
            for i in range(0, n, _CHUNK):
                body(i, min(i + _CHUNK, n))
            return
        if self._pool is None:
            with self._pool_lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(self.threads - 1, thread_name_prefix="spdz-field")
        nchunks = -(-n // _CHUNK)
        per = -(-nchunks // self.threads)

        def run(lo: int, hi: int) -> None:
            for i in range(lo, hi, _CHUNK):
                body(i, min(i + _CHUNK, hi))

        bounds = [(t * per * _CHUNK, min(n, (t + 1) * per * _CHUNK)) for t in range(self.threads)]
        bounds = [(lo, hi) for lo, hi in bounds if lo < hi]
        futures = [self._pool.submit(run, lo, hi) for lo, hi in bounds[1:]]
        try:
            run(*bounds[0])
        finally:
            for f in futures:
                f.result()

    # ----------------------------------------------------------------- conversions
    @staticmethod
    def _int_array(values: Iterable[int] | np.ndarray) -> np.ndarray:
        """``values`` as an array; a list of Python ints that numpy would turn into floats stays exact."""
        if isinstance(values, np.ndarray):
            return values
        arr = np.asarray(values)
        if arr.dtype.kind == "f":
            obj = np.asarray(values, dtype=object)
            if all(isinstance(v, (int, np.integer)) for v in obj.reshape(-1).tolist()):
                return obj
        return arr

    def from_ints(self, values: Iterable[int] | np.ndarray) -> np.ndarray:
        """Any integers (Python ints or an integer array), reduced mod p."""
        arr = self._int_array(values)
        if arr.size and arr.dtype.kind == "u" and arr.dtype.itemsize <= 8:
            return self._from_uint64(arr.reshape(-1).astype(U64, copy=False))
        if arr.size and arr.dtype.kind == "i" and arr.dtype.itemsize <= 8:
            return self._from_int64(arr.reshape(-1).astype(np.int64, copy=False), check=False)
        obj = np.array([int(v) % self.modulus for v in arr.reshape(-1).tolist()], dtype=object)
        out = self.zeros(len(obj))
        for w in range(self.words):
            out[w] = ((obj >> (64 * w)) & ((1 << 64) - 1)).astype(U64) if len(obj) else 0
        return out

    def to_ints(self, a: np.ndarray) -> list[int]:
        """Canonical representatives in [0, p) as Python ints."""
        acc = a[0].astype(object)
        for w in range(1, self.words):
            acc = acc + (a[w].astype(object) << (64 * w))
        return [int(v) for v in acc]

    def encode(self, values: Iterable[int] | np.ndarray) -> np.ndarray:
        """Signed integers in ``[-(p-1)/2, (p-1)/2]`` to field elements; out of range is an error."""
        arr = self._int_array(values)
        if arr.dtype == bool:
            arr = arr.astype(np.int64)
        if arr.dtype.kind in "fc":
            raise FieldError("field encoding takes integers, not floats (use fixed point)")
        flat = arr.reshape(-1)
        if flat.dtype.kind == "u" and flat.dtype.itemsize <= 8:
            if flat.size and int(flat.max()) > self.half:
                raise FieldError(f"value {int(flat.max())} is outside the field's signed range +-(p-1)/2")
            return self._from_uint64(flat.astype(U64, copy=False))
        if flat.dtype.kind == "i" and flat.dtype.itemsize <= 8:
            return self._from_int64(flat.astype(np.int64, copy=False), check=True)
        ints = flat.tolist()
        for v in ints:
            if not isinstance(v, (int, np.integer)):
                raise FieldError(f"field encoding takes integers, got {type(v).__name__}")
            if not -self.half <= v <= self.half:
                raise FieldError(
                    f"value {v} is outside the field's signed range +-(p-1)/2 (p = 2^{self.bits}-1)"
                )
        return self.from_ints([int(v) for v in ints])

    def decode(self, a: np.ndarray) -> np.ndarray:
        """Field elements to signed integers: int64 where every value fits, else an object array."""
        raise NotImplementedError

    def _from_int64(self, x: np.ndarray, check: bool) -> np.ndarray:
        raise NotImplementedError

    def _from_uint64(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def to_bytes(self, a: np.ndarray) -> bytes:
        return np.ascontiguousarray(a, dtype=U64).tobytes()

    def to_wire(self, a: np.ndarray) -> memoryview:
        """A read-only byte view of ``a`` for sending, without the copy ``to_bytes`` makes.

        The array is frozen (``writeable = False``) so that nobody mutates a payload in flight.
        """
        arr = np.ascontiguousarray(a, dtype=U64)
        if not arr.size:
            return memoryview(b"")
        arr.flags.writeable = False
        return memoryview(arr).cast("B")

    def from_bytes(self, data: bytes | memoryview, n: int | None = None) -> np.ndarray:
        """Parse a peer's element vector: length and every element's range are checked."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise FieldError(f"expected bytes for a field vector, got {type(data).__name__}")
        nbytes = data.nbytes if isinstance(data, memoryview) else len(data)
        if nbytes % self.elem_bytes:
            raise FieldError(f"field vector of {nbytes} bytes is not a multiple of {self.elem_bytes}")
        count = nbytes // self.elem_bytes
        if n is not None and count != n:
            raise FieldError(f"field vector has {count} elements, expected {n}")
        a = np.frombuffer(data, dtype="<u8").reshape(self.words, count)
        if not self.is_canonical(a):
            raise FieldError(f"field vector holds values outside [0, 2^{self.bits}-1)")
        return a

    def is_canonical(self, a: np.ndarray) -> bool:
        raise NotImplementedError

    # ----------------------------------------------------------------- arithmetic
    def _check_pair(self, a: np.ndarray, b: np.ndarray, what: str, either: bool = False) -> int:
        n = b.shape[1] if either and a.shape[1] == 1 else a.shape[1]
        if b.shape[1] not in (1, n) or a.shape[1] not in (1, n):
            raise FieldError(f"cannot {what} vectors of {a.shape[1]} and {b.shape[1]} elements")
        return n

    def add(self, a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Elementwise sum; either operand may have one element, which is then broadcast.

        ``out``, if given, receives the result; it must not overlap ``a`` or ``b``.
        """
        return self._binary(a, b, self._add_chunk, "add", out)

    def sub(self, a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Elementwise difference; either operand may be broadcast; ``out`` as for ``add``."""
        return self._binary(a, b, self._sub_chunk, "subtract", out)

    def _binary(
        self, a: np.ndarray, b: np.ndarray, kernel: Callable[..., None], what: str, out: np.ndarray | None
    ) -> np.ndarray:
        """Run ``kernel`` chunk by chunk into one output: temporaries stay in cache."""
        n = self._check_pair(a, b, what, either=True)
        if out is None:
            out = np.empty((self.words, n), dtype=U64)
        elif out.shape != (self.words, n) or out.dtype != U64:
            raise FieldError(f"{what}: output must be uint64 of shape {(self.words, n)}")
        elif np.may_share_memory(out, a) or np.may_share_memory(out, b):
            raise FieldError(f"{what}: output overlaps an operand")

        def body(i: int, j: int) -> None:
            ac = np.broadcast_to(a, (self.words, j - i)) if a.shape[1] == 1 else a[:, i:j]
            kernel(ac, b if b.shape[1] == 1 else b[:, i:j], out[:, i:j])

        self.run_chunks(n, body)
        return out

    def _add_chunk(self, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
        raise NotImplementedError

    def _sub_chunk(self, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
        raise NotImplementedError

    def neg(self, a: np.ndarray) -> np.ndarray:
        return self.sub(self.zeros(1), a)

    def neg_where(self, a: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """``-a`` where the 0/1 vector ``mask`` is set, ``a`` elsewhere (a new array).

        For a Mersenne prime ``p = 2^B - 1``, ``p - a`` is ``a`` with its ``B`` bits complemented, so a
        conditional negation is an XOR with a mask (and zero, whose complement is ``p``, is put back).
        """
        c = np.asarray(mask, dtype=bool).reshape(-1)
        if self.modulus != (1 << self.bits) - 1:
            return np.where(c[None, :], self.neg(a), a)
        out = np.empty_like(a)
        ones = c.astype(U64)
        np.negative(ones, out=ones)  # all ones where c
        for w in range(self.words):
            width = min(64, self.bits - 64 * w)
            np.bitwise_and(ones, U64((1 << width) - 1), out=out[w])
            np.bitwise_xor(out[w], a[w], out=out[w])
        full = out[self.words - 1] == U64((1 << (self.bits - 64 * (self.words - 1))) - 1)
        for w in range(self.words - 1):
            full &= out[w] == M64
        if full.any():
            out[:, full] = 0
        return out

    def compose_pow2(self, a: np.ndarray, n: int) -> np.ndarray:
        """``sum_i 2^i * row_i`` over the rows of ``a``, ``R`` rows of ``n`` elements stored one after
        the other (shape ``(W, R * n)``, row ``i`` is ``a[:, i*n : (i+1)*n]``): the field elements that
        rows of bits stand for, least significant row first. Horner's rule, a doubling and an add per row.
        """
        if n == 0:
            return self.zeros(0)
        r = a.shape[1] // n
        if r == 0:
            return self.zeros(n)
        acc = a[:, (r - 1) * n : r * n].copy()
        b1, b2 = np.empty_like(acc), np.empty_like(acc)
        for i in range(r - 2, -1, -1):
            self.add(acc, acc, out=b1)
            self.add(b1, a[:, i * n : (i + 1) * n], out=b2)
            acc, b2 = b2, acc
        return acc

    def mul(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Elementwise product; ``b`` may have one element, which is then broadcast."""
        n = self._check_pair(a, b, "multiply")
        out = np.empty((self.words, n), dtype=U64)
        if n:
            self.mul_into(a, b, out)
        return out

    def mul_into(self, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
        """``mul`` writing into ``out`` (shape ``(W, n)``, uint64; may be ``a`` or ``b`` itself).

        For callers that multiply in a loop and want to skip a fresh allocation per call. A broadcast
        ``b`` is split into limbs once, not once per chunk.
        """
        n = self._check_pair(a, b, "multiply")
        if out.shape != (self.words, n) or out.dtype != U64:
            raise FieldError(f"mul_into needs a uint64 output of shape {(self.words, n)}")
        pre = self._prepare(b) if b.shape[1] == 1 else None

        def body(i: int, j: int) -> None:
            self._mul_chunk(a[:, i:j], b if pre is not None else b[:, i:j], out[:, i:j], pre)

        self.run_chunks(n, body)
        return out

    def beaver(
        self,
        cs: Sequence[np.ndarray],
        d: np.ndarray,
        ys: Sequence[np.ndarray],
        e: np.ndarray,
        as_: Sequence[np.ndarray],
    ) -> list[np.ndarray]:
        """``[c + d*y + e*a for each (c, y, a)]``: the Beaver recombination, fused where the field can.

        Several ``(c, y, a)`` (value and MAC shares) share the opened ``d`` and ``e``.
        """
        self._check_beaver(cs, d, ys, e, as_)
        return [
            self.add(c, self.add(self.mul(d, y), self.mul(e, a)))
            for c, y, a in zip(cs, ys, as_, strict=False)
        ]

    def _check_beaver(
        self,
        cs: Sequence[np.ndarray],
        d: np.ndarray,
        ys: Sequence[np.ndarray],
        e: np.ndarray,
        as_: Sequence[np.ndarray],
    ) -> int:
        n = d.shape[1]
        shape = (self.words, n)
        if not len(cs) == len(ys) == len(as_):
            raise FieldError("beaver: as many c, y and a vectors are needed")
        for arr in (d, e, *cs, *ys, *as_):
            if arr.shape != shape:
                raise FieldError(f"beaver: every vector must have shape {shape}, got {arr.shape}")
        return n

    def _prepare(self, b: np.ndarray) -> object:
        """Per-operand work (limb split) for a one-element ``b`` that every chunk reuses."""
        raise NotImplementedError

    def _mul_chunk(self, a: np.ndarray, b: np.ndarray, out: np.ndarray, pre: object) -> None:
        raise NotImplementedError

    def mul_scalar(self, a: np.ndarray, c: int) -> np.ndarray:
        return self.mul(a, self.from_ints([c]))

    def square(self, a: np.ndarray) -> np.ndarray:
        return self.mul(a, a)

    def pow(self, a: np.ndarray, e: int) -> np.ndarray:
        if e < 0:
            return self.pow(self.inv(a), -e)
        result = self.const(1, a.shape[1])
        base = a
        while e:
            if e & 1:
                result = self.mul(result, base)
            e >>= 1
            if e:
                base = self.square(base)
        return result

    def inv(self, a: np.ndarray) -> np.ndarray:
        """Elementwise inverse by Fermat's little theorem; zero has none."""
        if not np.all(np.any(a != 0, axis=0)):
            raise ZeroDivisionError("inverse of zero in GF(p)")
        return self.pow(a, self.modulus - 2)

    def sum(self, a: np.ndarray) -> int:
        """Sum of all elements, reduced, as a Python int (32-bit halves keep numpy sums exact)."""
        total = 0
        for w in range(self.words):
            lo = int(np.sum(a[w] & M32, dtype=U64))
            hi = int(np.sum(a[w] >> U64(32), dtype=U64))
            total += (lo + (hi << 32)) << (64 * w)
        return total % self.modulus

    def dot(self, a: np.ndarray, b: np.ndarray) -> int:
        """Inner product, exact: the products are reduced first, then summed by ``sum``."""
        return self.sum(self.mul(a, b))

    def random(self, n: int, prg: PRG) -> np.ndarray:
        """``n`` uniform elements: mask to ``bits`` bits and redraw the single value p, no bias."""
        raise NotImplementedError

    def equal(self, a: np.ndarray, b: np.ndarray) -> bool:
        return a.shape == b.shape and bool(np.array_equal(a, b))


def _shl128(lo: np.ndarray, hi: np.ndarray, s: int) -> tuple[np.ndarray, np.ndarray]:
    """``(lo, hi) << s`` mod ``2^128``, ``0 < s < 128``."""
    if s >= 64:
        return np.zeros_like(lo), lo << U64(s - 64)
    return lo << U64(s), (hi << U64(s)) | (lo >> U64(64 - s))


def _shr128(lo: np.ndarray, hi: np.ndarray, s: int) -> tuple[np.ndarray, np.ndarray]:
    """``(lo, hi) >> s``, ``0 < s < 128``."""
    if s >= 64:
        return hi >> U64(s - 64), np.zeros_like(hi)
    return (lo >> U64(s)) | (hi << U64(64 - s)), hi >> U64(s)


class Mersenne61(PrimeField):
    modulus = P61
    bits = 61
    words = 1
    name = "p61"

    def _from_int64(self, x: np.ndarray, check: bool) -> np.ndarray:
        if check and x.size:
            lo, hi = int(x.min()), int(x.max())
            if lo < -self.half or hi > self.half:
                bad = lo if lo < -self.half else hi
                raise FieldError(f"value {bad} is outside the field's signed range +-(2^60-1) (p = 2^61-1)")
        else:
            x = x % np.int64(P61)
        u = x.astype(U64)
        neg = x < 0
        u[neg] = M61 - (-x[neg]).astype(U64)
        return u.reshape(1, -1)

    def _from_uint64(self, x: np.ndarray) -> np.ndarray:
        s = x & M61
        s += x >> U64(61)
        return np.minimum(s, s - M61).reshape(1, -1)

    def decode(self, a: np.ndarray) -> np.ndarray:
        v = a[0].astype(np.int64)
        return np.where(v > self.half, v - np.int64(P61), v)

    def is_canonical(self, a: np.ndarray) -> bool:
        return a.shape[0] == 1 and not bool(np.any(a >= M61))

    def _add_chunk(self, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
        o = out[0]
        (t,) = self._scratch_bufs(1, len(o))
        np.add(a[0], b[0], o)
        np.subtract(o, M61, t)
        np.minimum(o, t, out=o)

    def _sub_chunk(self, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
        # a - b wraps to a huge value exactly when a < b; then adding p gives the smaller candidate
        o = out[0]
        (t,) = self._scratch_bufs(1, len(o))
        np.subtract(a[0], b[0], o)
        np.add(o, M61, t)
        np.minimum(o, t, out=o)

    def _prepare(self, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        y = b[0]
        return y & M32, y >> S32

    def _mul_chunk(self, a: np.ndarray, b: np.ndarray, out: np.ndarray, pre: object) -> None:
        """a*b = hh 2^64 + mid 2^32 + ll with 32-bit halves; reduce as (a*b mod 2^61) + floor(a*b / 2^61).

        The low 64 bits come from one wrapping multiply; floor(ab / 2^61) <= p - 3 and the low part <= p,
        so one conditional subtraction of p makes the sum canonical.
        """
        x, y, o = a[0], b[0], out[0]
        m = len(x)
        if pre is None:
            a0, a1, t, u, b0, b1 = self._scratch_bufs(6, m)
            np.bitwise_and(y, M32, b0)
            np.right_shift(y, S32, b1)
        else:
            a0, a1, t, u = self._scratch_bufs(4, m)
            b0, b1 = pre  # type: ignore[misc]
        np.bitwise_and(x, M32, a0)
        np.right_shift(x, S32, a1)
        np.multiply(a1, b0, t)
        np.multiply(a0, b1, u)
        np.add(t, u, t)  # mid < 2^62
        np.multiply(a0, b0, u)
        np.right_shift(u, S32, u)
        np.add(t, u, t)
        np.right_shift(t, S29, t)
        np.multiply(a1, b1, u)
        np.left_shift(u, S3, u)
        np.add(t, u, t)  # floor(ab / 2^61)
        np.multiply(x, y, u)  # ab mod 2^64
        np.bitwise_and(u, M61, u)
        np.add(t, u, t)
        np.subtract(t, M61, u)
        np.minimum(t, u, out=o)

    def random(self, n: int, prg: PRG) -> np.ndarray:
        v = prg.random_words((1, n))
        v &= M61
        while True:
            bad = np.flatnonzero(v[0] == M61)
            if not bad.size:
                return v
            fresh = prg.random_words(bad.size) & M61
            v[0, bad] = fresh


class Mersenne127(PrimeField):
    modulus = P127
    bits = 127
    words = 2
    name = "p127"

    def _from_int64(self, x: np.ndarray, check: bool) -> np.ndarray:
        out = self.zeros(len(x))
        neg = x < 0
        out[0] = x.astype(U64)
        out[0, neg] = M64 - (-(x[neg] + 1)).astype(U64) - U64(1)
        out[1, neg] = M63
        return out

    def _from_uint64(self, x: np.ndarray) -> np.ndarray:
        out = self.zeros(len(x))
        out[0] = x
        return out

    def decode(self, a: np.ndarray) -> np.ndarray:
        lo, hi = a[0], a[1]
        neg = hi >= U64(1 << 62)  # value > (p-1)/2 = 2^126 - 1
        # magnitude of negatives: p - v, as (mlo, mhi)
        mlo = M64 - lo
        mhi = M63 - hi
        small_pos = (~neg) & (hi == 0) & (lo < U64(1 << 63))
        small_neg = neg & (mhi == 0) & (mlo <= U64(1 << 63))
        if bool(np.all(small_pos | small_neg)):
            out = lo.astype(np.int64)
            # -(mlo) with mlo <= 2^63 in int64 arithmetic
            out[neg] = -(mlo[neg].astype(np.int64, casting="unsafe"))
            return out
        vals = [v - P127 if v > self.half else v for v in self.to_ints(a)]
        return np.array(vals, dtype=object)

    def is_canonical(self, a: np.ndarray) -> bool:
        if a.shape[0] != 2:
            return False
        hi = a[1]
        if bool(np.any(hi > M63)):
            return False
        top = hi == M63
        return not bool(np.any(a[0][top] == M64))

    @staticmethod
    def _canon(lo: np.ndarray, hi: np.ndarray) -> None:
        """Reduce (lo, hi), a value below 2^128, to canonical form in place."""
        top = hi >> U64(63)
        hi &= M63
        lo += top
        hi += lo < top  # carry
        # a value of exactly p (or 2^127 after the carry, which folds to 0 again) is zero
        full = hi >= M63
        if bool(np.any(full)):
            idx = np.flatnonzero(full)
            over = hi[idx] > M63
            is_p = (hi[idx] == M63) & (lo[idx] == M64)
            hi[idx[over]] = 0  # 2^127 + lo' with lo' tiny: fold bit 127 into lo
            lo[idx[over]] += U64(1)
            hi[idx[is_p]] = 0
            lo[idx[is_p]] = 0

    def _sub_words(
        self, a0: np.ndarray, a1: np.ndarray, b0: np.ndarray, b1: np.ndarray, out: np.ndarray
    ) -> None:
        """(a - b) mod p for a in [0, 2^127], b in [0, p]: a negative 128-bit difference has bit 127
        set, and adding p = 2^127 - 1 then means clearing that bit and subtracting one."""
        lo, hi = out[0], out[1]
        m = len(lo)
        (n,) = self._scratch_bufs(1, m)
        br = self._bool_scratch(m)
        np.less(a0, b0, br)
        np.subtract(a0, b0, lo)
        np.subtract(a1, b1, hi)
        np.subtract(hi, br, hi, casting="unsafe")
        np.right_shift(hi, S63, n)
        np.bitwise_and(hi, M63, hi)
        np.less(lo, n, br)
        np.subtract(lo, n, lo)
        np.subtract(hi, br, hi, casting="unsafe")

    def _add_chunk(self, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
        # a + b = a - (p - b), and p - b never borrows
        m = out.shape[1]
        nb0, nb1 = self._scratch_bufs(3, m)[1:]
        np.subtract(M64, b[0], nb0)
        np.subtract(M63, b[1], nb1)
        self._sub_words(a[0], a[1], nb0, nb1, out)

    def _sub_chunk(self, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
        self._sub_words(a[0], a[1], b[0], b[1], out)

    @staticmethod
    def _split(lo: np.ndarray, hi: np.ndarray, limbs: np.ndarray, t: np.ndarray) -> None:
        """(lo, hi) into five 26-bit limbs (the top one 23 bits): products stay below 2^52."""
        np.bitwise_and(lo, M26, limbs[0])
        np.right_shift(lo, S26, limbs[1])
        np.bitwise_and(limbs[1], M26, limbs[1])
        np.right_shift(lo, S52, limbs[2])
        np.left_shift(hi, S12, t)
        np.bitwise_or(limbs[2], t, limbs[2])
        np.bitwise_and(limbs[2], M26, limbs[2])
        np.right_shift(hi, S14, limbs[3])
        np.bitwise_and(limbs[3], M26, limbs[3])
        np.right_shift(hi, S40, limbs[4])

    def _split_b(self, b: np.ndarray, r: np.ndarray, t: np.ndarray) -> None:
        """Rows ``[8 b1, 8 b2, 8 b3, 8 b4, b0, .., b4]``: column k of the product is sum_i a_i r[4 + k - i],
        since limb products that wrap past 2^130 = 8 (mod p) pick up the factor 8."""
        self._split(b[0], b[1], r[4:], t)
        np.left_shift(r[5:], S3, r[:4])

    def _prepare(self, b: np.ndarray) -> np.ndarray:
        r = np.empty((9, 1), dtype=U64)
        self._split_b(b, r, np.empty(1, dtype=U64))
        return r

    def _mul_chunk(self, a: np.ndarray, b: np.ndarray, out: np.ndarray, pre: object) -> None:
        m = a.shape[1]
        al = self._scratch_2d("a", 5, m)
        c = self._scratch_2d("c", 5, m)
        prod = self._scratch_2d("prod", 5, m)
        (t,) = self._scratch_bufs(1, m)
        if pre is None:
            r = self._scratch_2d("b", 9, m)
            self._split_b(b, r, t)
        else:
            r = pre  # type: ignore[assignment]
        self._split(a[0], a[1], al, t)
        # schoolbook over the five columns at once: one multiply and one add per limb of a
        np.multiply(al[0:1], r[4:9], c)
        for i in range(1, 5):
            np.multiply(al[i : i + 1], r[4 - i : 9 - i], prod)
            np.add(c, prod, c)
        self._reduce_columns(c, out, t)  # columns < 5 * 8 * 2^52

    def beaver(
        self,
        cs: Sequence[np.ndarray],
        d: np.ndarray,
        ys: Sequence[np.ndarray],
        e: np.ndarray,
        as_: Sequence[np.ndarray],
    ) -> list[np.ndarray]:
        """Fused ``c + d*y + e*a``: both products accumulate in one set of limb columns (below
        2^60) and share one carry pass and one reduction; ``d`` and ``e`` are split once per chunk
        for all outputs."""
        n = self._check_beaver(cs, d, ys, e, as_)
        k = len(cs)
        out = [np.empty((2, n), dtype=U64) for _ in range(k)]

        def body(i: int, j: int) -> None:
            m = j - i
            rd = self._scratch_2d("bd", 9, m)
            re = self._scratch_2d("be", 9, m)
            al = self._scratch_2d("a", 5, m)
            acc = self._scratch_2d("c", 5, m)
            prod = self._scratch_2d("prod", 5, m)
            (t,) = self._scratch_bufs(1, m)
            self._split_b(d[:, i:j], rd, t)
            self._split_b(e[:, i:j], re, t)
            for q in range(k):
                self._split(cs[q][0, i:j], cs[q][1, i:j], acc, t)
                for src, r in ((ys[q], rd), (as_[q], re)):
                    self._split(src[0, i:j], src[1, i:j], al, t)
                    for li in range(5):
                        np.multiply(al[li : li + 1], r[4 - li : 9 - li], prod)
                        np.add(acc, prod, acc)
                self._reduce_columns(acc, out[q][:, i:j], t)

        self.run_chunks(n, body)
        return out

    def _reduce_columns(self, c: np.ndarray, out: np.ndarray, t: np.ndarray) -> None:
        """Five limb columns (each below 2^61) to a canonical element in ``out``; ``c`` and ``t`` are
        scratch. The product's and the Beaver sum's columns both end here: one carry pass, then the bits
        from 2^127 up (weight 1 mod p) fold into ``c[0]``, and the limbs go into two words."""
        m = c.shape[1]
        for k in range(4):
            np.right_shift(c[k], S26, t)
            np.add(c[k + 1], t, c[k + 1])
            np.bitwise_and(c[k], M26, c[k])
        np.right_shift(c[4], S23, t)
        np.bitwise_and(c[4], M23, c[4])
        np.add(c[0], t, c[0])  # < 2^39
        lo, hi = out[0], out[1]
        br = self._bool_scratch(m)
        np.left_shift(c[1], S26, lo)
        np.add(lo, c[0], lo)  # < 2^53
        np.left_shift(c[2], S52, t)
        np.add(lo, t, lo)
        np.less(lo, t, br)  # carry out of the low word
        np.right_shift(c[2], S12, hi)
        np.add(hi, br, hi, casting="unsafe")
        np.left_shift(c[3], S14, t)
        np.add(hi, t, hi)
        np.left_shift(c[4], S40, t)
        np.add(hi, t, hi)  # value < 2^127 + 2^39
        self._canon(lo, hi)

    # ----------------------------------------------------------------- composition by powers of two
    # A multiplication by 2^s is a rotation of the 127 bits (2^127 = 1), so composing rows needs no
    # multiplication: short rows go through a halving tree of rotate-and-add levels over whole matrices
    # (few numpy calls), long ones through Horner's rule with the doubling, the add and the carry fold
    # fused in place (less memory traffic). Both keep values below 2^127 and map p to zero at the end.
    _HORNER_MIN = 512  # row length from which one pass per row beats the tree (measured: 100 vs 1000)

    def compose_pow2(self, a: np.ndarray, n: int) -> np.ndarray:
        if n == 0:
            return self.zeros(0)
        r = a.shape[1] // n
        if r == 0:
            return self.zeros(n)
        return self._compose_horner(a, n, r) if n >= self._HORNER_MIN else self._compose_tree(a, n, r)

    @staticmethod
    def _times_pow2(lo: np.ndarray, hi: np.ndarray, s: int) -> tuple[np.ndarray, np.ndarray]:
        """``2^s v mod p`` for ``v < 2^127``: a rotation of the 127 bits by ``s``."""
        s %= 127
        if s == 0:
            return lo, hi
        l_lo, l_hi = _shl128(lo, hi, s)
        r_lo, r_hi = _shr128(lo, hi, 127 - s)
        return l_lo | r_lo, (l_hi & M63) | r_hi

    @staticmethod
    def _add_below_2_127(
        a_lo: np.ndarray, a_hi: np.ndarray, b_lo: np.ndarray, b_hi: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """``a + b`` for ``a, b < 2^127``, folded below ``2^127`` (``p`` itself may remain: it is zero)."""
        s_lo = a_lo + b_lo
        s_hi = a_hi + b_hi
        s_hi += s_lo < a_lo
        t = s_hi >> S63
        s_hi &= M63
        s_lo += t
        s_hi += s_lo < t
        return s_lo, s_hi

    @staticmethod
    def _p_to_zero(out: np.ndarray) -> np.ndarray:
        """``out`` (values below ``2^127``) canonical: the value ``p``, all ones, is zero."""
        full = (out[0] == M64) & (out[1] == M63)
        if full.any():
            out[:, full] = 0
        return out

    def _compose_horner(self, a: np.ndarray, n: int, r: int) -> np.ndarray:
        """Horner's rule over rows ``r-1 .. 0``, in place on two words: for long rows, where it touches
        less memory than the tree. Invariant: ``acc < 2^127`` (``p`` may occur: it is zero)."""
        alo = a[0, (r - 1) * n : r * n].copy()
        ahi = a[1, (r - 1) * n : r * n].copy()
        t = np.empty(n, dtype=U64)
        carry = np.empty(n, dtype=bool)
        one, s62 = U64(1), U64(62)
        for i in range(r - 2, -1, -1):
            rlo, rhi = a[0, i * n : (i + 1) * n], a[1, i * n : (i + 1) * n]
            np.right_shift(ahi, s62, out=t)  # doubling = rotation: bit 126 wraps to bit 0
            np.left_shift(ahi, one, out=ahi)
            np.bitwise_and(ahi, M63, out=ahi)
            np.bitwise_or(ahi, alo >> S63, out=ahi)
            np.left_shift(alo, one, out=alo)
            np.bitwise_or(alo, t, out=alo)
            np.add(alo, rlo, out=alo)  # + row, with the carry into the high word
            np.less(alo, rlo, out=carry)
            np.add(ahi, rhi, out=ahi)
            np.add(ahi, carry, out=ahi, casting="unsafe")
            np.right_shift(ahi, S63, out=t)  # fold bit 127 (weight 2^127 = 1)
            np.bitwise_and(ahi, M63, out=ahi)
            np.add(alo, t, out=alo)
            np.less(alo, t, out=carry)
            np.add(ahi, carry, out=ahi, casting="unsafe")
        return self._p_to_zero(np.stack([alo, ahi]))

    def _compose_tree(self, a: np.ndarray, n: int, r: int) -> np.ndarray:
        """A halving tree, ``y_j = x_2j + 2^s x_2j+1`` with ``s`` doubling per level; each level is a
        few whole-matrix operations, whatever the size."""
        cur_lo = a[0, : r * n].reshape(r, n)
        cur_hi = a[1, : r * n].reshape(r, n)
        shift = 1
        while r > 1:
            h = r // 2
            rot_lo, rot_hi = self._times_pow2(cur_lo[1 : 2 * h : 2], cur_hi[1 : 2 * h : 2], shift)
            s_lo, s_hi = self._add_below_2_127(cur_lo[0 : 2 * h : 2], cur_hi[0 : 2 * h : 2], rot_lo, rot_hi)
            if r % 2:
                s_lo = np.concatenate([s_lo, cur_lo[r - 1 :]])
                s_hi = np.concatenate([s_hi, cur_hi[r - 1 :]])
            cur_lo, cur_hi, r, shift = s_lo, s_hi, h + r % 2, 2 * shift
        return self._p_to_zero(np.stack([cur_lo[0], cur_hi[0]]))

    def random(self, n: int, prg: PRG) -> np.ndarray:
        v = prg.random_words((2, n))
        v[1] &= M63
        while True:
            bad = np.flatnonzero((v[1] == M63) & (v[0] == M64))
            if not bad.size:
                return v
            fresh = prg.random_words((2, bad.size))
            v[0, bad] = fresh[0]
            v[1, bad] = fresh[1] & M63


_FIELDS: dict[int, type[PrimeField]] = {P61: Mersenne61, P127: Mersenne127}
MODULI = {"p61": P61, "p127": P127, "2^61-1": P61, "2^127-1": P127}


def get_field(modulus: int | str = P127) -> PrimeField:
    """The field for ``modulus`` (2^61-1 or 2^127-1, as an int or a name such as ``"p127"``)."""
    if isinstance(modulus, str):
        key = modulus.strip().lower().replace(" ", "")
        if key not in MODULI:
            raise FieldError(f"unknown field {modulus!r}: use one of {sorted(MODULI)}")
        modulus = MODULI[key]
    cls = _FIELDS.get(int(modulus))
    if cls is None:
        raise FieldError(f"unsupported modulus {modulus}: trio-spdz supports 2^61-1 and 2^127-1")
    return cls()
