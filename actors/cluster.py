"""``local_cluster``: n parties in one process, for tests, examples, benchmarks and embedding.

    async with actors.local_cluster(3, preprocessing="dealer") as c:
        results = await c.run(prog, data)      # one result per party

``run`` starts the same program at every party under one fresh session id and returns their results
in party order, or raises if any party's session failed. ``run_each`` returns results and exceptions
side by side, which is what tests with a cheating party look at.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import trio

from protocols.errors import AbortError, ConfigError
from protocols.field import P127, get_field
from protocols.preprocessing.dealer import InsecureDealer

from .engine import Interceptor, Program, new_session_id
from .memory import MemoryHub
from .offline import Watermarks
from .party import Party


class Cluster:
    def __init__(self, parties: list[Party], hub: MemoryHub | None = None) -> None:
        self.parties = parties
        self.n = len(parties)
        self.hub = hub

    async def run_each(
        self,
        prog: Program,
        *args: Any,
        session: str | None = None,
        per_party: Sequence[Sequence[Any]] | None = None,
    ) -> list[Any]:
        """Run ``prog`` at every party; each entry is that party's result or the exception it raised."""
        sid = session or new_session_id()
        out: list[Any] = [None] * self.n

        async def one(i: int) -> None:
            a = tuple(per_party[i]) if per_party is not None else args
            try:
                out[i] = await self.parties[i].run(prog, *a, session=sid)
            except Exception as e:
                out[i] = e

        async with trio.open_nursery() as nursery:
            for i in range(self.n):
                nursery.start_soon(one, i)
        return out

    async def run(self, prog: Program, *args: Any, **kw: Any) -> list[Any]:
        """Run ``prog`` at every party and return their results, or raise the first failure."""
        results = await self.run_each(prog, *args, **kw)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            aborts = [e for e in errors if isinstance(e, AbortError) and e.culprit is None]
            raise (aborts or errors)[0]
        return results


@asynccontextmanager
async def local_cluster(
    n: int,
    transport: str = "memory",
    modulus: int | str = P127,
    preprocessing: str = "mascot",
    *,
    seed: bytes | None = None,
    interceptors: dict[int, Interceptor] | None = None,
    session_options: dict[str, Any] | None = None,
    watermarks: Watermarks | None = None,
) -> AsyncIterator[Cluster]:
    """Start ``n`` parties in this process and yield a ``Cluster`` to run programs on.

    ``preprocessing="mascot"`` (the default) runs each party's MASCOT offline service and waits for
    its set-up; ``"dealer"`` is the INSECURE test dealer. ``watermarks`` sizes the MASCOT pools.
    """
    if n < 2:
        raise ConfigError(f"a cluster needs at least 2 parties, got {n}")
    field = get_field(modulus)
    if transport != "memory":
        raise ConfigError(f"transport {transport!r} is not available yet (only 'memory')")
    if preprocessing == "dealer":
        dealer_seed = seed if seed is not None else os.urandom(32)
        sources: list[Any] = [InsecureDealer(field, n, i, dealer_seed) for i in range(n)]
    elif preprocessing == "mascot":
        sources = [None] * n
    else:
        raise ConfigError(f"unknown preprocessing {preprocessing!r}: use 'mascot' or 'dealer'")
    hub = MemoryHub(n)
    interceptors = interceptors or {}
    parties = [
        Party(
            i, n, hub.links(i), sources[i], interceptor=interceptors.get(i), session_options=session_options
        )
        for i in range(n)
    ]
    if preprocessing == "mascot":
        for p in parties:
            p.use_mascot(field, watermarks)
    try:
        async with trio.open_nursery() as nursery:
            for p in parties:
                await nursery.start(p.serve)
            for p in parties:
                if p.offline is not None:
                    await p.offline.wait_ready()
            try:
                yield Cluster(parties, hub)
            finally:
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # The parties' nursery wraps whatever the caller's block raised; hand it back unwrapped
        # so that `except AbortError:` around the block works.
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise
