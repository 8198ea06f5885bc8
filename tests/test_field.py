"""GF(p) vector arithmetic against Python-int arithmetic, for both Mersenne moduli.

Edge values sit next to the word and limb boundaries where carries and folds go wrong; long vectors
cross the multiplication's chunk boundary.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.field import P61, P127, FieldError, Mersenne61, Mersenne127, PrimeField, get_field
from protocols.prg import PRG

FIELDS = [get_field(P61), get_field(P127)]
CHUNK = 16384


@pytest.fixture(params=FIELDS, ids=lambda f: f.name)
def field(request: pytest.FixtureRequest) -> PrimeField:
    return request.param


def edge_values(p: int) -> list[int]:
    """Canonical values near 0, p, (p +- 1)/2 and the 2^26 / 2^32 / 2^64 word and limb boundaries."""
    raw = {0, 1, 2, 3, p - 1, p - 2, p - 3, (p - 1) // 2, (p + 1) // 2, (p + 3) // 2}
    for k in (26, 32, 52, 61, 63, 64, 78, 104, 126):
        for d in (-1, 0, 1):
            raw.add(2**k + d)
            raw.add(p - 2**k + d)
    return sorted(v for v in raw if 0 <= v < p)


def rand_ints(p: int, n: int, seed: int) -> list[int]:
    rng = np.random.default_rng(seed)
    nbytes = (p.bit_length() + 7) // 8
    data = rng.bytes(nbytes * n)
    return [int.from_bytes(data[i * nbytes : (i + 1) * nbytes], "little") % p for i in range(n)]


def mixed(p: int, n: int, seed: int) -> list[int]:
    """Random values with all edge values planted at seed-dependent positions."""
    vals = rand_ints(p, n, seed)
    edges = edge_values(p)
    rng = np.random.default_rng(seed + 1000)
    for e, pos in zip(edges, rng.choice(n, size=min(n, len(edges)), replace=False), strict=False):
        vals[int(pos)] = e
    return vals


def vec(field: PrimeField, ints: list[int]) -> np.ndarray:
    return field.from_ints(ints)


def assert_vec(field: PrimeField, got: np.ndarray, want: list[int]) -> None:
    assert got.dtype == np.uint64
    assert got.shape == (field.words, len(want))
    assert field.is_canonical(got)
    assert field.to_ints(got) == want


# ---------------------------------------------------------------- get_field


def test_get_field_by_int_and_name() -> None:
    assert isinstance(get_field(P61), Mersenne61)
    assert isinstance(get_field(P127), Mersenne127)
    assert isinstance(get_field(), Mersenne127)
    for name, cls in (
        ("p61", Mersenne61),
        ("P127", Mersenne127),
        ("2^61-1", Mersenne61),
        (" 2^127 - 1", Mersenne127),
    ):
        assert isinstance(get_field(name), cls)
    assert get_field("p61") == get_field(P61)
    assert get_field("p61") != get_field("p127")
    assert hash(get_field(P127)) == hash(get_field("p127"))
    assert get_field(P61).words == 1 and get_field(P127).words == 2


@pytest.mark.parametrize("bad", [7, 2**31 - 1, 2**89 - 1, "p64", "foo"])
def test_get_field_unknown_raises(bad: int | str) -> None:
    with pytest.raises(FieldError):
        get_field(bad)


# ---------------------------------------------------------------- conversions


def test_from_ints_to_ints_roundtrip(field: PrimeField) -> None:
    p = field.modulus
    vals = edge_values(p) + rand_ints(p, 200, 1)
    a = field.from_ints(vals)
    assert a.shape == (field.words, len(vals)) and a.flags.c_contiguous
    assert_vec(field, a, vals)


def test_from_ints_reduces_any_int(field: PrimeField) -> None:
    p = field.modulus
    raw = [p, p + 1, 2 * p - 1, -1, -p, -p - 1, 2**64, 2**64 - 1, 2**63, 2**128 + 5, -(2**200), 3**100]
    assert_vec(field, field.from_ints(raw), [v % p for v in raw])
    for dtype in (np.int8, np.int32, np.int64, np.uint8, np.uint32, np.uint64):
        info = np.iinfo(dtype)
        arr = np.array([info.min, info.max, 0, 1, info.max // 2], dtype=dtype)
        assert_vec(field, field.from_ints(arr), [int(v) % p for v in arr.tolist()])
    assert_vec(field, field.from_ints([2**63, 2**64 - 1, 1]), [2**63 % p, (2**64 - 1) % p, 1])
    assert_vec(field, field.from_ints([]), [])
    assert_vec(field, field.from_ints(np.zeros(0, dtype=np.int64)), [])


def test_const_and_zeros(field: PrimeField) -> None:
    p = field.modulus
    assert_vec(field, field.const(-1, 3), [p - 1] * 3)
    assert_vec(field, field.const(p + 5), [5])
    assert_vec(field, field.zeros(4), [0] * 4)
    assert field.length(field.zeros(7)) == 7
    assert_vec(field, field.concat([field.const(1, 2), field.const(2, 1)]), [1, 1, 2])
    assert_vec(field, field.concat([]), [])


def test_encode_decode_int64(field: PrimeField) -> None:
    half = field.half
    vals = [0, 1, -1, 2**31, -(2**31), 2**62, -(2**62)]
    lim = min(half, 2**63 - 1)
    vals = [v for v in vals if -half <= v <= half] + [lim, -lim, lim - 1, -lim + 1]
    if half > 2**63:
        vals.append(-(2**63))
    arr = np.array(vals, dtype=np.int64)
    enc = field.encode(arr)
    assert_vec(field, enc, [v % field.modulus for v in vals])
    dec = field.decode(enc)
    assert dec.dtype == np.int64
    assert dec.tolist() == vals
    for dtype in (np.int8, np.int16, np.int32, np.uint8, np.uint32):
        small = np.array([0, 1, np.iinfo(dtype).max, np.iinfo(dtype).min], dtype=dtype)
        assert field.decode(field.encode(small)).tolist() == small.tolist()
    assert field.decode(field.encode(np.array([True, False]))).tolist() == [1, 0]


def test_encode_decode_python_ints_edges(field: PrimeField) -> None:
    half = field.half
    vals = [0, 1, -1, half, -half, half - 1, -half + 1, 2**63, -(2**63) - 1, 2**64, -(2**64)]
    vals = [v for v in vals if -half <= v <= half]
    enc = field.encode(vals)
    assert_vec(field, enc, [v % field.modulus for v in vals])
    assert [int(v) for v in field.decode(enc)] == vals
    # the edges map to the top and bottom of the field
    assert field.to_ints(field.encode([half, -half])) == [half, half + 1]
    # 2-D input is flattened
    assert field.decode(field.encode(np.array([[1, -2], [3, -4]]))).tolist() == [1, -2, 3, -4]


def test_decode_random_roundtrip(field: PrimeField) -> None:
    p, half = field.modulus, field.half
    ints = edge_values(p) + rand_ints(p, 300, 2)
    want = [v - p if v > half else v for v in ints]
    assert [int(v) for v in field.decode(field.from_ints(ints))] == want


def test_decode_uses_int64_when_it_fits(field: PrimeField) -> None:
    dec = field.decode(field.encode([5, -7]))
    assert dec.dtype == np.int64
    if field.half > 2**63:
        big = field.decode(field.encode([2**63, -3]))
        assert big.dtype == object and big.tolist() == [2**63, -3]
        edge = field.decode(field.encode([-(2**63), 2**63 - 1]))
        assert edge.dtype == np.int64 and edge.tolist() == [-(2**63), 2**63 - 1]


@pytest.mark.parametrize("offset", [1, 2, 2**70])
def test_encode_out_of_range_raises(field: PrimeField, offset: int) -> None:
    half = field.half
    for v in (half + offset, -half - offset):
        with pytest.raises(FieldError):
            field.encode([0, v])


def test_encode_int64_out_of_range_raises() -> None:
    f = get_field(P61)
    for v in (2**60, -(2**60), 2**63 - 1, -(2**63)):
        with pytest.raises(FieldError):
            f.encode(np.array([0, v], dtype=np.int64))
    with pytest.raises(FieldError):
        f.encode(np.array([2**64 - 1], dtype=np.uint64))
    assert f.decode(f.encode(np.array([2**60 - 1, -(2**60) + 1]))).tolist() == [2**60 - 1, -(2**60) + 1]


def test_encode_uint64_above_int64(field: PrimeField) -> None:
    if field.half < 2**64:
        return
    arr = np.array([2**64 - 1, 2**63, 5], dtype=np.uint64)
    assert field.to_ints(field.encode(arr)) == [2**64 - 1, 2**63, 5]


@pytest.mark.parametrize("bad", [[1.5], [1.0], np.array([0.0, 2.0]), np.array([1.0], dtype=np.float32)])
def test_encode_floats_raise(field: PrimeField, bad: object) -> None:
    with pytest.raises(FieldError):
        field.encode(bad)


def test_encode_float_objects_raise(field: PrimeField) -> None:
    with pytest.raises(FieldError):
        field.encode([1, 2.5])
    with pytest.raises(FieldError):
        field.encode(np.array([1, 2.0], dtype=object))


def test_mixed_big_python_ints_stay_exact(field: PrimeField) -> None:
    # numpy would coerce [2**63, -3] to float64
    p = field.modulus
    assert field.to_ints(field.from_ints([2**63 + 1, -3])) == [(2**63 + 1) % p, p - 3]
    if field.half > 2**64:
        assert field.to_ints(field.encode([2**63 + 1, -3])) == [2**63 + 1, p - 3]


# ---------------------------------------------------------------- bytes


def test_bytes_roundtrip(field: PrimeField) -> None:
    p = field.modulus
    for ints in ([], [0], edge_values(p), rand_ints(p, 100, 3)):
        a = field.from_ints(ints)
        data = field.to_bytes(a)
        assert isinstance(data, bytes) and len(data) == field.elem_bytes * len(ints)
        back = field.from_bytes(data, len(ints))
        assert field.equal(back, a)
        assert field.to_ints(field.from_bytes(memoryview(data))) == ints
        assert field.to_ints(field.from_bytes(bytearray(data))) == ints


def test_to_bytes_of_a_view(field: PrimeField) -> None:
    a = field.from_ints(list(range(10)))
    assert field.to_ints(field.from_bytes(field.to_bytes(a[:, 2:5]))) == [2, 3, 4]


def test_from_bytes_wrong_length(field: PrimeField) -> None:
    data = field.to_bytes(field.from_ints([1, 2, 3]))
    for bad in (data[:-1], data + b"\0", data[:1], data + b"\0" * 7):
        with pytest.raises(FieldError):
            field.from_bytes(bad)
    with pytest.raises(FieldError):
        field.from_bytes(data, 2)
    with pytest.raises(FieldError):
        field.from_bytes(data, 4)
    with pytest.raises(FieldError):
        field.from_bytes("not bytes")  # type: ignore[arg-type]
    with pytest.raises(FieldError):
        field.from_bytes(b"", 1)
    assert field.length(field.from_bytes(b"", 0)) == 0


def raw_bytes(field: PrimeField, ints: list[int]) -> bytes:
    """Word-major little-endian bytes of arbitrary (possibly non-canonical) ints."""
    words = np.array(
        [[(v >> (64 * w)) & (2**64 - 1) for v in ints] for w in range(field.words)], dtype=np.uint64
    )
    return words.astype("<u8").tobytes()


def test_from_bytes_rejects_non_canonical(field: PrimeField) -> None:
    p = field.modulus
    ok = raw_bytes(field, [0, p - 1, 5])
    assert field.to_ints(field.from_bytes(ok)) == [0, p - 1, 5]
    bad_values = [p, p + 1, 2 ** (64 * field.words) - 1]
    if field.words == 2:
        bad_values += [2**127, 2**127 + 5, (2**63) << 64, (2**64 - 1) << 64, p + 2**64]
    else:
        bad_values += [2**61, 2**63, 2**64 - 2]
    for v in bad_values:
        with pytest.raises(FieldError):
            field.from_bytes(raw_bytes(field, [1, v, 2]))


def test_from_bytes_p127_high_word_only() -> None:
    f = get_field(P127)
    lo_ok_hi_bad = np.array([[0], [2**63]], dtype=np.uint64).tobytes()
    with pytest.raises(FieldError):
        f.from_bytes(lo_ok_hi_bad)
    # a low word of all ones is fine unless the high word is at its maximum
    fine = np.array([[2**64 - 1], [2**63 - 2]], dtype=np.uint64).tobytes()
    assert f.to_ints(f.from_bytes(fine)) == [2**127 - 2**64 - 1]


def test_is_canonical_wrong_shape() -> None:
    assert not get_field(P61).is_canonical(np.zeros((2, 3), dtype=np.uint64))
    assert not get_field(P127).is_canonical(np.zeros((1, 3), dtype=np.uint64))


# ---------------------------------------------------------------- arithmetic


@pytest.mark.parametrize("n", [0, 1, 7, 300, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 5])
def test_add_sub_neg_mul(field: PrimeField, n: int) -> None:
    p = field.modulus
    xs, ys = mixed(p, n, 10 + n), mixed(p, n, 20 + n)
    a, b = vec(field, xs), vec(field, ys)
    assert_vec(field, field.add(a, b), [(x + y) % p for x, y in zip(xs, ys, strict=True)])
    assert_vec(field, field.sub(a, b), [(x - y) % p for x, y in zip(xs, ys, strict=True)])
    assert_vec(field, field.neg(a), [-x % p for x in xs])
    assert_vec(field, field.mul(a, b), [x * y % p for x, y in zip(xs, ys, strict=True)])
    assert_vec(field, field.square(a), [x * x % p for x in xs])
    # inputs are untouched
    assert field.to_ints(a) == xs and field.to_ints(b) == ys


def test_all_edge_pairs(field: PrimeField) -> None:
    """Every ordered pair of edge values, so each carry/fold corner meets every other."""
    p = field.modulus
    edges = edge_values(p)
    xs = [x for x in edges for _ in edges]
    ys = [y for _ in edges for y in edges]
    a, b = vec(field, xs), vec(field, ys)
    assert_vec(field, field.add(a, b), [(x + y) % p for x, y in zip(xs, ys, strict=True)])
    assert_vec(field, field.sub(a, b), [(x - y) % p for x, y in zip(xs, ys, strict=True)])
    assert_vec(field, field.mul(a, b), [x * y % p for x, y in zip(xs, ys, strict=True)])


def test_self_aliasing(field: PrimeField) -> None:
    p = field.modulus
    xs = mixed(p, 100, 4)
    a = vec(field, xs)
    assert_vec(field, field.add(a, a), [2 * x % p for x in xs])
    assert_vec(field, field.sub(a, a), [0] * 100)
    assert_vec(field, field.mul(a, a), [x * x % p for x in xs])


def test_non_contiguous_inputs(field: PrimeField) -> None:
    p = field.modulus
    xs, ys = mixed(p, 2 * CHUNK + 10, 5), mixed(p, 2 * CHUNK + 10, 6)
    a, b = vec(field, xs)[:, ::2], vec(field, ys)[:, 1::2]
    xe, ye = xs[::2], ys[1::2]
    assert_vec(field, field.mul(a, b), [x * y % p for x, y in zip(xe, ye, strict=True)])
    assert_vec(field, field.add(a, b), [(x + y) % p for x, y in zip(xe, ye, strict=True)])
    assert_vec(field, field.sub(a, b), [(x - y) % p for x, y in zip(xe, ye, strict=True)])
    assert field.dot(a, b) == sum(x * y for x, y in zip(xe, ye, strict=True)) % p


def test_read_only_inputs(field: PrimeField) -> None:
    p = field.modulus
    xs, ys = mixed(p, 50, 7), mixed(p, 50, 8)
    a = field.from_bytes(field.to_bytes(vec(field, xs)))
    b = field.from_bytes(field.to_bytes(vec(field, ys)))
    assert not a.flags.writeable
    assert_vec(field, field.mul(a, b), [x * y % p for x, y in zip(xs, ys, strict=True)])
    assert_vec(field, field.add(a, b), [(x + y) % p for x, y in zip(xs, ys, strict=True)])
    assert_vec(field, field.sub(a, b), [(x - y) % p for x, y in zip(xs, ys, strict=True)])


@pytest.mark.parametrize("n", [0, 1, 5, CHUNK + 3])
def test_mul_broadcast_and_scalar(field: PrimeField, n: int) -> None:
    p = field.modulus
    xs = mixed(p, n, 30 + n)
    a = vec(field, xs)
    for c in (0, 1, 2, p - 1, p - 2, (p + 1) // 2, 2**64 - 1, 2**64, p - 2**64, 12345678901234567):
        c %= p
        want = [x * c % p for x in xs]
        assert_vec(field, field.mul(a, field.from_ints([c])), want)
        assert_vec(field, field.mul_scalar(a, c), want)
    assert_vec(field, field.mul_scalar(a, -1), [-x % p for x in xs])
    assert_vec(field, field.mul_scalar(a, p + 3), [3 * x % p for x in xs])


def test_mul_length_mismatch(field: PrimeField) -> None:
    with pytest.raises(FieldError):
        field.mul(field.zeros(3), field.zeros(2))
    with pytest.raises(FieldError):
        field.mul(field.zeros(1), field.zeros(2))


@pytest.mark.parametrize("e", [0, 1, 2, 3, 5, 17, 2**64 + 1, -1, -3, P61 - 1, P127 - 1])
def test_pow(field: PrimeField, e: int) -> None:
    p = field.modulus
    xs = [1, 2, 3, p - 1, p - 2, 2**32 + 1, (p + 1) // 2] + rand_ints(p, 5, 9)
    a = vec(field, xs)
    assert_vec(field, field.pow(a, e), [pow(x, e, p) for x in xs])


def test_pow_of_zero(field: PrimeField) -> None:
    z = field.zeros(2)
    assert field.to_ints(field.pow(z, 0)) == [1, 1]
    assert field.to_ints(field.pow(z, 5)) == [0, 0]
    with pytest.raises(ZeroDivisionError):
        field.pow(z, -1)


def test_inv(field: PrimeField) -> None:
    p = field.modulus
    big = 2**64 - 1 if p > 2**64 else 2**60
    xs = [1, 2, p - 1, p - 2, (p - 1) // 2, (p + 1) // 2, big] + rand_ints(p, 20, 11)
    a = vec(field, xs)
    inv = field.inv(a)
    assert_vec(field, inv, [pow(x, -1, p) for x in xs])
    assert field.to_ints(field.mul(a, inv)) == [1] * len(xs)
    assert field.length(field.inv(field.zeros(0))) == 0


def test_inv_of_zero_raises(field: PrimeField) -> None:
    with pytest.raises(ZeroDivisionError):
        field.inv(field.from_ints([3, 0, 5]))
    with pytest.raises(ZeroDivisionError):
        field.inv(field.zeros(1))
    # zero low word alone is not zero
    if field.words == 2:
        assert field.to_ints(field.inv(field.from_ints([2**64]))) == [pow(2**64, -1, P127)]


@pytest.mark.parametrize("n", [0, 1, 1000, 3 * CHUNK + 1])
def test_sum_and_dot(field: PrimeField, n: int) -> None:
    p = field.modulus
    xs, ys = mixed(p, n, 40 + n), mixed(p, n, 50 + n)
    a, b = vec(field, xs), vec(field, ys)
    assert field.sum(a) == sum(xs) % p
    assert field.dot(a, b) == sum(x * y for x, y in zip(xs, ys, strict=True)) % p
    assert isinstance(field.sum(a), int) and isinstance(field.dot(a, b), int)


def test_sum_of_max_values_is_exact(field: PrimeField) -> None:
    p = field.modulus
    n = 100_000
    a = field.const(p - 1, n)
    assert field.sum(a) == (n * (p - 1)) % p
    assert field.dot(a, a) == n % p


def test_equal(field: PrimeField) -> None:
    a = field.from_ints([1, 2, 3])
    assert field.equal(a, field.from_ints([1, 2, 3]))
    assert not field.equal(a, field.from_ints([1, 2, 4]))
    assert not field.equal(a, field.from_ints([1, 2]))


# ---------------------------------------------------------------- random


def test_random_canonical_and_covers_range(field: PrimeField) -> None:
    n = 20_000
    a = field.random(n, PRG(b"0123456789abcdef"))
    assert a.shape == (field.words, n) and a.dtype == np.uint64
    assert field.is_canonical(a)
    top = a[-1]
    top_bits = field.bits - 64 * (field.words - 1)
    # the top bit and the one below it are each set about half the time
    for bit in (top_bits - 1, top_bits - 2):
        frac = float(np.mean((top >> np.uint64(bit)) & np.uint64(1)))
        assert 0.45 < frac < 0.55
    assert not np.any(top >> np.uint64(top_bits))
    if field.words == 2:
        assert 0.45 < float(np.mean(a[0] >> np.uint64(63))) < 0.55
    assert len(set(field.to_ints(a[:, :1000]))) == 1000


def test_random_deterministic_and_empty(field: PrimeField) -> None:
    a = field.random(100, PRG(b"seed-seed-seed-1"))
    b = field.random(100, PRG(b"seed-seed-seed-1"))
    c = field.random(100, PRG(b"seed-seed-seed-2"))
    assert field.equal(a, b) and not field.equal(a, c)
    assert field.random(0, PRG(b"seed-seed-seed-1")).shape == (field.words, 0)


class _ForcedPRG(PRG):
    """Yields all-ones words first, which mask to exactly p and must be redrawn."""

    def __init__(self, forced: int) -> None:
        super().__init__(b"forced-prg-seed!")
        self.forced = forced

    def random_words(self, shape: tuple[int, ...] | int) -> np.ndarray:
        out = super().random_words(shape)
        if self.forced:
            flat = out.reshape(-1)
            k = min(self.forced, flat.size)
            flat[:k] = np.uint64(2**64 - 1)
            self.forced -= k
        return out


def test_random_redraws_p(field: PrimeField) -> None:
    a = field.random(3, _ForcedPRG(forced=2 * field.words))
    assert field.is_canonical(a)
    assert p_not_in(field, a)


def p_not_in(field: PrimeField, a: np.ndarray) -> bool:
    return field.modulus not in field.to_ints(a)


# ---------------------------------------------------------------- properties

elem61 = st.integers(min_value=0, max_value=P61 - 1)
elem127 = st.integers(min_value=0, max_value=P127 - 1)


@settings(max_examples=60, deadline=None)
@given(xs=st.lists(st.tuples(elem61, elem61), max_size=40))
def test_property_p61(xs: list[tuple[int, int]]) -> None:
    check_ops(get_field(P61), xs)


@settings(max_examples=60, deadline=None)
@given(xs=st.lists(st.tuples(elem127, elem127), max_size=40))
def test_property_p127(xs: list[tuple[int, int]]) -> None:
    check_ops(get_field(P127), xs)


def check_ops(field: PrimeField, pairs: list[tuple[int, int]]) -> None:
    p = field.modulus
    x = [u for u, _ in pairs]
    y = [v for _, v in pairs]
    a, b = field.from_ints(x), field.from_ints(y)
    assert field.to_ints(field.add(a, b)) == [(u + v) % p for u, v in pairs]
    assert field.to_ints(field.sub(a, b)) == [(u - v) % p for u, v in pairs]
    assert field.to_ints(field.mul(a, b)) == [u * v % p for u, v in pairs]
    assert field.dot(a, b) == sum(u * v for u, v in pairs) % p
    assert field.from_bytes(field.to_bytes(a)).tolist() == a.tolist()


@settings(max_examples=60, deadline=None)
@given(v=st.integers(min_value=-(P127 // 2), max_value=P127 // 2))
def test_property_encode_decode_p127(v: int) -> None:
    f = get_field(P127)
    assert int(f.decode(f.encode([v]))[0]) == v


@settings(max_examples=60, deadline=None)
@given(v=st.integers(min_value=-(P61 // 2), max_value=P61 // 2))
def test_property_encode_decode_p61(v: int) -> None:
    f = get_field(P61)
    assert int(f.decode(f.encode([v]))[0]) == v
    assert int(f.decode(f.encode(np.array([v], dtype=np.int64)))[0]) == v


# ---------------------------------------------------------------- mul_into and broadcasting


@pytest.mark.parametrize("n", [1, 9, CHUNK + 2])
def test_mul_into(field: PrimeField, n: int) -> None:
    p = field.modulus
    xs, ys = mixed(p, n, 60 + n), mixed(p, n, 70 + n)
    a, b = vec(field, xs), vec(field, ys)
    want = [x * y % p for x, y in zip(xs, ys, strict=True)]
    out = np.empty((field.words, n), dtype=np.uint64)
    assert field.mul_into(a, b, out) is out
    assert_vec(field, out, want)
    field.mul_into(a, b, a)  # in place over an operand
    assert_vec(field, a, want)
    c = field.from_ints([ys[0]])
    field.mul_into(b, c, b)
    assert_vec(field, b, [y * ys[0] % p for y in ys])
    with pytest.raises(FieldError):
        field.mul_into(a, b, np.empty((field.words, n + 1), dtype=np.uint64))


def test_add_sub_broadcast_either_side(field: PrimeField) -> None:
    p = field.modulus
    xs = mixed(p, CHUNK + 3, 80)
    a = vec(field, xs)
    for c in (0, 1, p - 1, (p + 1) // 2):
        one = field.from_ints([c])
        assert_vec(field, field.add(a, one), [(x + c) % p for x in xs])
        assert_vec(field, field.add(one, a), [(x + c) % p for x in xs])
        assert_vec(field, field.sub(a, one), [(x - c) % p for x in xs])
        assert_vec(field, field.sub(one, a), [(c - x) % p for x in xs])
    with pytest.raises(FieldError):
        field.add(field.zeros(2), field.zeros(3))
    with pytest.raises(FieldError):
        field.sub(field.zeros(3), field.zeros(2))


# ---------------------------------------------------------------- fused Beaver, wire views, out=, threads
@pytest.mark.parametrize("n", [0, 1, 7, CHUNK + 1, (1 << 17) + 5])
def test_beaver_matches_mul_add(field: PrimeField, n: int) -> None:
    """The fused ``c + d*y + e*a`` equals the plain composition, for one and two outputs."""
    p = field.modulus
    pool = edge_values(p)
    ints = [[(pool[(i * 7 + k) % len(pool)] + i * k) % p for i in range(n)] for k in range(7)]
    c, d, y, e, a, c2, y2 = (vec(field, v) for v in ints)
    z, z2 = field.beaver([c, c2], d, [y, y2], e, [a, a])
    want = [
        (ci + di * yi + ei * ai) % p
        for ci, di, yi, ei, ai in zip(ints[0], ints[1], ints[2], ints[3], ints[4], strict=False)
    ]
    want2 = [
        (ci + di * yi + ei * ai) % p
        for ci, di, yi, ei, ai in zip(ints[5], ints[1], ints[6], ints[3], ints[4], strict=False)
    ]
    assert_vec(field, z, want)
    assert_vec(field, z2, want2)


def test_beaver_rejects_mismatched_shapes(field: PrimeField) -> None:
    v = field.zeros(3)
    with pytest.raises(FieldError):
        field.beaver([v], v, [field.zeros(2)], v, [v])
    with pytest.raises(FieldError):
        field.beaver([v, v], v, [v], v, [v])


def test_to_wire_is_read_only_and_round_trips(field: PrimeField) -> None:
    a = vec(field, edge_values(field.modulus))
    wire = field.to_wire(a)
    assert wire.readonly
    assert bytes(wire) == field.to_bytes(a)
    assert field.equal(field.from_bytes(wire, a.shape[1]), a)


def test_add_sub_into_out_and_overlap_refused(field: PrimeField) -> None:
    p = field.modulus
    xs, ys = rand_ints(p, 100, 1), rand_ints(p, 100, 2)
    a, b = vec(field, xs), vec(field, ys)
    out = np.empty((field.words, 100), dtype=np.uint64)
    assert field.add(a, b, out=out) is out
    assert_vec(field, out, [(x + y) % p for x, y in zip(xs, ys, strict=False)])
    field.sub(a, b, out=out)
    assert_vec(field, out, [(x - y) % p for x, y in zip(xs, ys, strict=False)])
    with pytest.raises(FieldError):
        field.add(a, b, out=a)
    with pytest.raises(FieldError):
        field.sub(a, b, out=np.empty((field.words, 99), dtype=np.uint64))


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_threaded_ops_match_single_thread(threads: int) -> None:
    """Vectors past the parallel threshold give the same results on any number of threads."""
    for f in (Mersenne61(), Mersenne127()):
        f.threads = threads
        n = (1 << 17) + 3 * CHUNK + 11
        a, b = f.random(n, PRG(b"a" * 16)), f.random(n, PRG(b"b" * 16))
        ref = Mersenne61() if f.words == 1 else Mersenne127()
        ref.threads = 1
        assert f.equal(f.mul(a, b), ref.mul(a, b))
        assert f.equal(f.add(a, b), ref.add(a, b))
        assert f.equal(f.sub(a, b), ref.sub(a, b))
        sample = np.arange(0, n, 997)
        got = f.to_ints(f.mul(a, b)[:, sample])
        want = [
            x * y % f.modulus for x, y in zip(f.to_ints(a[:, sample]), f.to_ints(b[:, sample]), strict=False)
        ]
        assert got == want


@pytest.mark.parametrize("n", [0, 1, 3, 700], ids=["empty", "one", "tree", "horner"])
@pytest.mark.parametrize("r", [0, 1, 2, 7, 64])
def test_compose_pow2(field: PrimeField, n: int, r: int) -> None:
    """``sum_i 2^i row_i`` against Python ints; p127 takes its rotation tree for short rows and Horner
    for long ones. Rows full of p - 1 make every level carry; 64+ rows wrap 2^i past 2^127."""
    p = field.modulus
    ints = mixed(p, r * n, seed=r + n) if r * n else []
    ints[::5] = [p - 1] * len(ints[::5])
    got = field.compose_pow2(vec(field, ints), n)
    want = [sum(ints[i * n + e] << i for i in range(r)) % p for e in range(n)]
    assert_vec(field, got, want)


def test_compose_pow2_of_a_view(field: PrimeField) -> None:
    a = vec(field, mixed(field.modulus, 40, seed=3))
    assert field.equal(field.compose_pow2(a[:, 8:32], 4), field.compose_pow2(a[:, 8:32].copy(), 4))


def test_neg_where(field: PrimeField) -> None:
    p = field.modulus
    ints = edge_values(p)
    mask = np.arange(len(ints)) % 3 != 1
    got = field.neg_where(vec(field, ints), mask.astype(np.uint8))
    assert_vec(field, got, [(-v) % p if m else v for v, m in zip(ints, mask, strict=True)])
