"""The MAC check's random linear combination against its Python-int definition."""

from __future__ import annotations

import pytest

from protocols.field import P61, P127, get_field
from protocols.mac_check import combine, combine_reference
from protocols.prg import PRG


@pytest.mark.parametrize("modulus", [P61, P127], ids=["p61", "p127"])
@pytest.mark.parametrize("n", [0, 1, 5, 16384, 16385, 70000])
def test_combine_matches_reference(modulus: int, n: int) -> None:
    f = get_field(modulus)
    vecs = [f.random(n, PRG()), f.random(n, PRG())]
    # all-max values make every limb product and partial sum as large as it gets
    vecs.append(f.from_ints([f.modulus - 1] * n))
    seed = b"s" * 16
    assert combine(f, PRG(seed), vecs) == combine_reference(f, PRG(seed), vecs)


def test_combine_detects_a_single_error() -> None:
    """One changed element changes the combination (coefficients are nonzero with overwhelming odds)."""
    f = get_field(P127)
    a = f.random(50000, PRG())
    b = a.copy()
    b[0, 31337] ^= 1
    seed = b"t" * 16
    assert combine(f, PRG(seed), [a]) != combine(f, PRG(seed), [b])


def test_combine_rejects_unequal_lengths() -> None:
    f = get_field(P61)
    with pytest.raises(ValueError):
        combine(f, PRG(), [f.zeros(3), f.zeros(4)])
