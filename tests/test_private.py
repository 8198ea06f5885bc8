"""Owner-private values (``protocols.private``): local numpy at the owner, metadata everywhere, and the
input round when a private value meets a secret or another owner's value. 3 parties, p127, dealer."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from helpers import run_cluster, run_each

from protocols.errors import AbortError
from protocols.field import P127
from protocols.online import Session
from protocols.private import NotOwnerError, Private, owned, private, where
from protocols.sectypes import SecretFix, SecretInt, gather

N = 3


def data(seed: int = 0, sizes: tuple[int, ...] = (5, 7, 9)) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(2.0, 3.0, (n, 3)) for n in sizes]


def close(got: Any, want: Any, tol: float = 1e-4) -> None:
    g, w = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert g.shape == w.shape, (g.shape, w.shape)
    assert np.all(np.abs(g - w) <= tol * np.maximum(1.0, np.abs(w))), (g, w)


async def test_local_operations_follow_numpy_and_the_metadata_is_the_same_everywhere() -> None:
    parts = data()

    async def prog(s: Session, mine: np.ndarray) -> Any:
        xs = await owned(s, mine)
        x = xs[1]
        ops = {
            "gram": x.T @ x,
            "colsum": x.sum(axis=0),
            "scaled": (x - 1.5) * 2 / 4,
            "rowdot": x @ np.array([1.0, -1.0, 0.5]),
            "cols": x[:, [0, 2]].mean(axis=0),
            "pos": (x > 0).sum(axis=0),
            "where": where(x > 0, x, 0.0).sum(),
            "hist": x[:, 0].histogram([-10.0, 0.0, 2.0, 10.0]),
            "count": x.count(),
            "masked": x[x[:, 0] > 0][:, 1].sum(),
            "apply": x.apply(lambda a: np.linalg.norm(a, axis=0)),
            "var": x.var(axis=0, ddof=1),
        }
        meta = {k: (v.shape, v.kind) for k, v in ops.items()}
        values = {k: v.value for k, v in ops.items()} if x.mine else None
        return meta, values

    res = await run_cluster(N, P127, prog, per_party=[(p,) for p in parts])
    assert res[0][0] == res[1][0] == res[2][0], "parties derived different public metadata"
    meta, got = res[1]
    a = parts[1]
    want = {
        "gram": a.T @ a,
        "colsum": a.sum(axis=0),
        "scaled": (a - 1.5) * 2 / 4,
        "rowdot": a @ np.array([1.0, -1.0, 0.5]),
        "cols": a[:, [0, 2]].mean(axis=0),
        "pos": (a > 0).sum(axis=0),
        "where": np.where(a > 0, a, 0.0).sum(),
        "hist": np.histogram(a[:, 0], [-10.0, 0.0, 2.0, 10.0])[0],
        "count": np.asarray(len(a)),
        "masked": a[a[:, 0] > 0][:, 1].sum(),
        "apply": np.linalg.norm(a, axis=0),
        "var": a.var(axis=0, ddof=1),
    }
    for k, w in want.items():
        assert np.allclose(got[k], w), k
    # hidden row counts stay hidden, reductions over rows make them public shapes
    assert meta["gram"] == ((3, 3), "float") and meta["colsum"] == ((3,), "float")
    assert meta["scaled"] == ((None, 3), "float") and meta["rowdot"] == ((None,), "float")
    assert meta["pos"] == ((3,), "int") and meta["hist"] == ((3,), "int") and meta["count"] == ((), "int")
    assert meta["masked"] == ((), "float") and meta["where"] == ((), "float")


async def test_a_non_owner_cannot_read_the_value_or_branch_on_it() -> None:
    async def prog(s: Session) -> Any:
        x = private(s, np.arange(4.0) if s.party == 0 else None, owner=0, shape=(4,))
        if s.party == 0:
            assert x.mine and np.array_equal(x.value, np.arange(4.0))
            return "owner"
        with pytest.raises(NotOwnerError, match="party 0 does"):
            _ = x.value
        with pytest.raises(TypeError, match="no public truth value"):
            bool(x > 1)
        with pytest.raises(TypeError):
            iter(x)
        assert len(x) == 4  # a declared size is public
        return "other"

    assert await run_cluster(N, P127, prog) == ["owner", "other", "other"]


async def test_declared_metadata_is_checked_at_the_owner() -> None:
    async def prog(s: Session) -> Any:
        if s.party == 0:  # only the owner has a value to check
            with pytest.raises(ValueError, match="declared shape"):
                private(s, np.zeros((2, 3)), owner=0, shape=(None, 4))
        if s.party == 1:
            with pytest.raises(TypeError, match="declare kind"):
                private(s, np.arange(3), owner=1)
            assert private(s, np.arange(3), owner=1, kind="int").kind == "int"
        with pytest.raises(ValueError, match="passed none"):
            Private(s, s.party, None, None, "float")
        with pytest.raises(ValueError, match="passed a value"):
            Private(s, (s.party + 1) % s.n, np.zeros(2), None, "float")
        return True

    assert await run_cluster(N, P127, prog) == [True] * N


async def test_mixing_two_owners_and_a_private_with_a_secret() -> None:
    parts = data(seed=2, sizes=(4, 4, 4))

    async def prog(s: Session, mine: np.ndarray) -> Any:
        xs = await owned(s, mine)
        s0, s1 = xs[0].sum(axis=0), xs[1].sum(axis=0)
        both = s0 + s1  # two owners: a Pending with both input rounds
        assert not isinstance(both, Private)
        z = await both
        assert isinstance(z, SecretFix)
        secret = await xs[2].share()  # now a secret (4, 3)
        prod = await (xs[0] * secret)  # private * secret: input round, then a fixed-point product
        diff = await (secret - xs[1])  # secret - private: the reflected operator
        less = await (xs[0] < secret)  # a comparison: SecretInt bits
        ints = private(s, np.array([3, 4]) if s.party == 1 else None, owner=1, kind="int", shape=(2,))
        k = await (ints * SecretInt(s, (await ints.share()).shares, 32))
        g = await gather(xs[0].sum() + xs[2].sum(), xs[1].mean() * 2.0 + secret.sum())
        return [
            await z.reveal(),
            await prod.reveal(),
            await diff.reveal(),
            await less.reveal(),
            await k.reveal(),
            [await v.reveal() for v in g],
        ]

    res = await run_cluster(N, P127, prog, per_party=[(p,) for p in parts])
    a, b, c = parts
    z, prod, diff, less, k, g = res[0]
    close(z, a.sum(axis=0) + b.sum(axis=0))
    close(prod, a * c, 1e-3)
    close(diff, c - b)
    assert np.array_equal(less, (a < c).astype(np.int64))
    assert np.array_equal(k, np.array([9, 16]))
    close(g[0], a.sum() + c.sum())
    close(g[1], b.mean() * 2.0 + c.sum(), 1e-3)


async def test_share_reveals_only_the_shape_and_refuses_what_the_format_cannot_hold() -> None:
    async def prog(s: Session) -> Any:
        x = private(s, np.array([1.0, np.nan]) if s.party == 0 else None, owner=0, shape=(2,))
        return await (await x.share()).reveal()

    res = await run_each(N, P127, prog)
    assert all(isinstance(r, (ValueError, AbortError)) for r in res), res
    assert "NaN" in str(res[0])


async def test_a_malformed_metadata_announcement_aborts_naming_the_sender() -> None:
    from helpers import Cheat, CheatNet

    from protocols.field import get_field

    def garbage(f: Any, to: int, msg: Any) -> Any:
        return ["float", ["rows", 3]]

    async def prog(s: Session, mine: np.ndarray) -> Any:
        return await owned(s, mine)

    cheat = Cheat(net=lambda net: CheatNet(net, get_field(P127), ("other", 0), garbage))
    res = await run_each(N, P127, prog, per_party=[(p,) for p in data()], interceptors={2: cheat})
    assert cheat.hits
    for i in (0, 1):
        assert isinstance(res[i], AbortError) and "party 2" in str(res[i]), res[i]


@pytest.mark.parametrize("comparison", ["field", "auto"])
async def test_a_private_value_times_a_secret_on_both_paths(comparison: str) -> None:
    """``private * secret`` and ``@`` both ways, broadcasting a one-element secret, and integers: right
    on both paths; with ``comparison="auto"`` they are the owner's owned products (no Beaver triple
    drawn), on the field path triples."""
    from actors.plan import preprocessing_plan

    parts = data(seed=3, sizes=(4, 4, 4))
    w = np.array([0.5, -1.25, 2.0])

    async def prog(s: Session, mine: np.ndarray) -> Any:
        xs = await owned(s, mine)
        ws = await SecretFix.input(s, w if s.party == 2 else None, owner=2)
        sc = await SecretFix.input(s, np.array([1.5]) if s.party == 2 else None, owner=2)
        ints = private(s, np.array([3, -4]) if s.party == 1 else None, owner=1, kind="int", shape=(2,))
        si = await SecretInt.input(s, np.array([5, 6]) if s.party == 0 else None, owner=0, k=32)
        got = await gather(xs[0] @ ws, ws @ xs[1].T, xs[0] * sc, xs[0].sum(axis=0) * ws, ints * si, si * ints)
        return [await v.reveal() for v in got]

    opts = {"comparison": comparison}
    res = await run_cluster(N, P127, prog, per_party=[(p,) for p in parts], session_options=opts)
    a, b, _ = parts
    left, right, scaled, row, k, k2 = res[0]
    close(left, a @ w, 1e-3)
    close(right, w @ b.T, 1e-3)
    close(scaled, a * 1.5, 1e-3)
    close(row, a.sum(axis=0) * w, 1e-3)
    assert np.array_equal(k, np.array([15, -24])) and np.array_equal(k2, k)
    need = await preprocessing_plan(prog, N, parts[0], modulus=P127, comparison=comparison)
    owned_kinds = {key for key in need if key.startswith("owned")}
    if comparison == "auto":
        assert owned_kinds == {"owned0:32", "owned1:32"} and "triple" not in need, need
    else:
        assert not owned_kinds and need["triple"] == 12 + 12 + 12 + 3 + 2 + 2, need
