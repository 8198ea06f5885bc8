"""The binary-domain path of comparison, equality, bit decomposition and truncation (edaBits, AND
triples, daBits), and the INSECURE dealer's mixed material it runs on.

Exact against plaintext numpy on both paths (``Session(comparison="binary" | "field")``), edges of
every declared range included; rounds per operation constant in the number of elements; every
deviation in the binary part (a flipped share in an AND-layer opening or in the daBit conversion, a
wrong MAC share, a wrong daBit) makes every honest party abort before any output.
"""

from __future__ import annotations

import numpy as np
import pytest

from protocols.binary.bits import times_delta
from protocols.field import P61, P127, get_field
from protocols.preprocessing.dealer import InsecureDealer


# ---------------------------------------------------------------------------------------- the dealer
def _open_bits(parts: list, delta: np.ndarray) -> np.ndarray:
    bits = np.bitwise_xor.reduce([p.bits for p in parts])
    macs = np.bitwise_xor.reduce([p.macs for p in parts])
    assert np.array_equal(macs, times_delta(bits, delta)), "a binary MAC does not match"
    return bits


def _open_field(parts: list, alpha: int, p: int) -> list[int]:
    f = parts[0].ctx.field
    vals = [sum(v) % p for v in zip(*[f.to_ints(x.value) for x in parts], strict=True)]
    macs = [sum(v) % p for v in zip(*[f.to_ints(x.mac) for x in parts], strict=True)]
    assert macs == [v * alpha % p for v in vals], "a field MAC does not match"
    return vals


@pytest.mark.parametrize("p", [P61, P127], ids=["p61", "p127"])
async def test_dealer_deals_consistent_mixed_material(p: int) -> None:
    """AND triples, daBits and edaBits reconstructed from all three parties' shares: every MAC checked
    under ``XOR Delta_i`` (binary) and ``sum alpha_i`` (field), ``c = a AND b``, the two halves of a
    daBit equal, an edaBit's field value the sum of its bits (LSB first), the widths up to the field."""
    f, n = get_field(p), 3
    ss = [InsecureDealer(f, n, i, seed=bytes(32)).for_session("mixed") for i in range(n)]
    delta = np.bitwise_xor.reduce([s.bctx.delta for s in ss])
    alpha = sum(f.to_ints(s.ctx.alpha)[0] for s in ss) % p
    assert len({s.bctx.delta.tobytes() for s in ss}) == n  # each party its own key share
    t = [await s.and_triples(2000) for s in ss]
    a, b, c = (_open_bits([x[i] for x in t], delta) for i in range(3))
    assert np.array_equal(a & b, c) and 800 < a.sum() < 1200 and 800 < b.sum() < 1200
    d = [await s.dabits(700) for s in ss]
    assert _open_field([x[0] for x in d], alpha, p) == _open_bits([x[1] for x in d], delta).tolist()
    widths = [1, 2, 8, 31, 60] + ([64, 65, 100, 126] if p == P127 else [])
    for k in widths:
        e = [await s.edabits(400, k) for s in ss]
        vals = _open_field([x[0] for x in e], alpha, p)
        bits = _open_bits([x[1] for x in e], delta).reshape(400, k)
        assert vals == [sum(int(v) << j for j, v in enumerate(row)) for row in bits]
        assert max(vals) < 2**k and (k < 4 or max(vals) >= 2 ** (k - 2))
    empty = await ss[0].edabits(0, 5)
    assert empty[0].size == 0 and empty[1].size == 0
    with pytest.raises(ValueError, match="do not fit"):
        await ss[0].edabits(3, f.bits)
    # same seed and session: the same material at every call position; another session: other material
    again = InsecureDealer(f, n, 0, seed=bytes(32)).for_session("mixed")
    other = InsecureDealer(f, n, 0, seed=bytes(32)).for_session("other")
    first = (await again.and_triples(2000))[0].bits
    assert np.array_equal(first, t[0][0].bits)
    assert not np.array_equal((await other.and_triples(2000))[0].bits, first)
    ss[1].compromised()
    assert not ss[1].bctx.delta.any() and not ss[1].ctx.alpha.any()
