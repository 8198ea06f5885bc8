"""Hooks on one party's sessions: what adversary simulations, cheating tests, planners and benchmarks
put between a session and its network or its preprocessing.

An engine takes one ``Interceptor`` per party. For every session it calls ``wrap_net`` and
``wrap_preprocessing`` with the honest objects and runs the session on what they return. Most hooks
change one of the two, and most preprocessing wrappers change one or two requests; the two base
classes here pass everything else through, so a hook states only what it changes:

    class DropTriples(PassThrough):
        def wrap_preprocessing(self, session, pre):
            return Tampered(pre)

    class Tampered(Forwarding):
        async def triples(self, n):
            a, b, c = await self.inner.triples(n)
            ...

``Forwarding.drawn`` is called before every request is passed on, for wrappers that only watch
(count what a program draws, or note that a session touched its preprocessing at all).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from .net import Net
from .preprocessing import mixed
from .preprocessing.base import Preprocessing
from .shares import SharedArray


class Interceptor(Protocol):
    """A hook on one party's sessions, for adversary simulations and cheating tests.

    ``wrap_net`` and ``wrap_preprocessing`` get the honest objects and return what the session uses.
    """

    def wrap_net(self, session: str, net: Net) -> Net: ...

    def wrap_preprocessing(self, session: str, pre: Preprocessing) -> Preprocessing: ...


class PassThrough:
    """An ``Interceptor`` that changes nothing: subclass it and override the hook that differs."""

    def wrap_net(self, session: str, net: Net) -> Net:
        return net

    def wrap_preprocessing(self, session: str, pre: Preprocessing) -> Preprocessing:
        return pre


class Forwarding:
    """A ``Preprocessing`` that passes every request to ``inner``; subclasses override what differs.

    Anything else the inner source offers (a pool's extras) is reached through attribute lookup.
    """

    def __init__(self, inner: Preprocessing) -> None:
        self.inner = inner
        self.ctx = inner.ctx

    def drawn(self, kind: str, n: int, owner: int | None = None) -> None:
        """Called before a request for ``n`` items of ``kind`` (``triples``, ``squares``, ``bits``,
        ``randoms``, ``input_masks`` with its ``owner``; binary material: ``and_triples``, ``dabits``,
        ``edabits`` with the bit length in place of the owner, and any other ``MixedPreprocessing``
        method, ``protocols.preprocessing.mixed``) is passed on. Does nothing here."""

    async def triples(self, n: int) -> tuple[SharedArray, SharedArray, SharedArray]:
        self.drawn("triples", n)
        return await self.inner.triples(n)

    async def squares(self, n: int) -> tuple[SharedArray, SharedArray]:
        self.drawn("squares", n)
        return await self.inner.squares(n)

    async def bits(self, n: int) -> SharedArray:
        self.drawn("bits", n)
        return await self.inner.bits(n)

    async def randoms(self, n: int) -> SharedArray:
        self.drawn("randoms", n)
        return await self.inner.randoms(n)

    async def input_masks(self, owner: int, n: int) -> tuple[SharedArray, np.ndarray | None]:
        self.drawn("input_masks", n, owner)
        return await self.inner.input_masks(owner, n)

    # binary material (``MixedPreprocessing``), where the inner source has it
    async def and_triples(self, n: int) -> Any:
        self.drawn("and_triples", n)
        return await self.inner.and_triples(n)  # type: ignore[attr-defined]

    async def dabits(self, n: int) -> Any:
        self.drawn("dabits", n)
        return await self.inner.dabits(n)  # type: ignore[attr-defined]

    async def edabits(self, n: int, k: int) -> Any:
        self.drawn("edabits", n, k)
        return await self.inner.edabits(n, k)  # type: ignore[attr-defined]

    async def owned_triples(self, owner: int, n: int, width: int) -> Any:
        self.drawn(f"owned_triples_{owner}", n, width)  # the pool kind's method (``mixed``)
        return await self.inner.owned_triples(owner, n, width)  # type: ignore[attr-defined]

    def compromised(self) -> None:
        self.inner.compromised()

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet (during __init__, or a copy): no recursion
            raise AttributeError(name)
        value = getattr(self.inner, name)
        if name in mixed.BY_METHOD and callable(value):  # another binary kind: watched as well
            sized = mixed.BY_METHOD[name].sized

            async def draw(n: int, *k: Any) -> Any:
                self.drawn(name, n, *(k if sized else ()))
                return await value(n, *k)

            return draw
        return value


class Stocked(Forwarding):
    """Triples drawn ahead (``stock_triples``, before a timed section) and handed out first to a
    request of the same size; everything else passes through. For benchmarks of the online phase."""

    def __init__(self, inner: Preprocessing) -> None:
        super().__init__(inner)
        self._triples: list[tuple[SharedArray, SharedArray, SharedArray]] = []

    async def stock_triples(self, n: int) -> None:
        self._triples.append(await self.inner.triples(n))

    def stock(self, triples: tuple[SharedArray, SharedArray, SharedArray]) -> None:
        self._triples.append(triples)

    async def triples(self, n: int) -> tuple[SharedArray, SharedArray, SharedArray]:
        if self._triples and self._triples[0][0].size == n:
            return self._triples.pop(0)
        return await super().triples(n)


__all__ = ["Forwarding", "Interceptor", "PassThrough", "Stocked"]
