"""The bases of ``protocols.intercept``: ``PassThrough``, ``Forwarding`` and ``Stocked``, on a fake source."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

from protocols.intercept import Forwarding, PassThrough, Stocked


class FakePre:
    """A preprocessing source that writes down what it is asked for and answers with fresh arrays of
    the requested size (a triple's parts are ``np.full(n, k)``, k counting the triple requests)."""

    def __init__(self) -> None:
        self.ctx = object()
        self.calls: list[tuple[Any, ...]] = []
        self.retired = 0
        self.extra = "pool's own attribute"

    async def triples(self, n: int) -> Any:
        self.calls.append(("triples", n))
        k = sum(c[0] == "triples" for c in self.calls)
        return np.full(n, k), np.full(n, k), np.full(n, k)

    async def squares(self, n: int) -> Any:
        self.calls.append(("squares", n))
        return np.zeros(n), np.zeros(n)

    async def bits(self, n: int) -> Any:
        self.calls.append(("bits", n))
        return np.zeros(n)

    async def randoms(self, n: int) -> Any:
        self.calls.append(("randoms", n))
        return np.ones(n)

    async def input_masks(self, owner: int, n: int) -> Any:
        self.calls.append(("input_masks", owner, n))
        return np.zeros(n), None

    def compromised(self) -> None:
        self.retired += 1

    def level(self, kind: str) -> int:
        return 7


class Watching(Forwarding):
    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.seen: list[tuple[str, int, int | None]] = []

    def drawn(self, kind: str, n: int, owner: int | None = None) -> None:
        self.seen.append((kind, n, owner))


async def test_forwarding_passes_every_request_on_and_reports_it_first() -> None:
    inner = FakePre()
    pre = Watching(inner)
    assert pre.ctx is inner.ctx and pre.inner is inner
    a, b, c = await pre.triples(2)
    assert a.size == b.size == c.size == 2
    assert (await pre.squares(3))[0].size == 3
    assert (await pre.bits(4)).size == 4
    assert (await pre.randoms(5)).size == 5
    r, clear = await pre.input_masks(1, 6)
    assert r.size == 6 and clear is None
    assert inner.calls == [("triples", 2), ("squares", 3), ("bits", 4), ("randoms", 5), ("input_masks", 1, 6)]
    assert pre.seen == [
        ("triples", 2, None),
        ("squares", 3, None),
        ("bits", 4, None),
        ("randoms", 5, None),
        ("input_masks", 6, 1),
    ]
    pre.compromised()
    assert inner.retired == 1


async def test_drawn_comes_before_the_request_reaches_the_source() -> None:
    inner = FakePre()
    order: list[str] = []

    class First(Forwarding):
        def drawn(self, kind: str, n: int, owner: int | None = None) -> None:
            order.append(f"drawn {kind} ({len(inner.calls)} calls so far)")

    await First(inner).bits(1)
    assert order == ["drawn bits (0 calls so far)"] and inner.calls == [("bits", 1)]


async def test_forwarding_without_drawn_changes_nothing() -> None:
    inner = FakePre()
    pre = Forwarding(inner)  # type: ignore[arg-type]
    assert (await pre.randoms(3)).tolist() == [1, 1, 1]
    assert inner.calls == [("randoms", 3)]


def test_unknown_attributes_reach_the_inner_source() -> None:
    inner = FakePre()
    pre = Watching(inner)
    assert pre.extra == "pool's own attribute"
    assert pre.level("triple") == 7
    with pytest.raises(AttributeError):
        _ = pre.no_such_thing
    dup = copy.copy(pre)  # no recursion through __getattr__ before ``inner`` is set
    assert dup.inner is inner and dup.extra == inner.extra


async def test_stocked_hands_out_a_stocked_triple_once_to_a_request_of_its_size() -> None:
    inner = FakePre()
    pre = Stocked(inner)  # type: ignore[arg-type]
    await pre.stock_triples(4)  # drawn now: triple request 1
    assert inner.calls == [("triples", 4)]
    other = await pre.triples(3)  # another size: passed on (request 2)
    assert other[0].tolist() == [2, 2, 2] and inner.calls[-1] == ("triples", 3)
    stocked = await pre.triples(4)
    assert stocked[0].tolist() == [1] * 4 and len(inner.calls) == 2  # from the stock, no new request
    again = await pre.triples(4)  # the stock is used up: passed on (request 3)
    assert again[0].tolist() == [3] * 4 and inner.calls[-1] == ("triples", 4)
    assert (await pre.bits(2)).size == 2 and inner.calls[-1] == ("bits", 2)  # the rest passes through


async def test_stocked_takes_given_triples_first_in_first_out() -> None:
    inner = FakePre()
    pre = Stocked(inner)  # type: ignore[arg-type]
    first = (np.full(2, 10), np.full(2, 11), np.full(2, 12))
    second = (np.full(2, 20), np.full(2, 21), np.full(2, 22))
    pre.stock(first)
    pre.stock(second)
    assert await pre.triples(2) is first
    assert await pre.triples(2) is second
    assert inner.calls == []
    await pre.triples(2)
    assert inner.calls == [("triples", 2)]


def test_pass_through_returns_its_arguments() -> None:
    hook = PassThrough()
    net, pre = object(), object()
    assert hook.wrap_net("s", net) is net  # type: ignore[arg-type]
    assert hook.wrap_preprocessing("s", pre) is pre  # type: ignore[arg-type]

    class OnlyNet(PassThrough):
        def wrap_net(self, session: str, net: Any) -> Any:
            return ("wrapped", net)

    assert OnlyNet().wrap_net("s", net) == ("wrapped", net)
    assert OnlyNet().wrap_preprocessing("s", pre) is pre  # type: ignore[arg-type]
