"""``local_cluster``: n parties in one process, for tests, examples, benchmarks and embedding.

    async with actors.local_cluster(3, preprocessing="dealer") as c:
        results = await c.run(prog, data)      # one result per party

``run`` starts the same program at every party under one fresh session id and returns their results
in party order, or raises if any party's session failed. ``run_each`` returns results and exceptions
side by side, which is what tests with a cheating party look at.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from protocols.errors import AbortError, ConfigError
from protocols.field import P127, get_field
from protocols.preprocessing.dealer import InsecureDealer

from .engine import Interceptor, Program, new_session_id
from .inprocess import LocalTls, MemoryConnector, MemoryHub
from .offline import Watermarks
from .party import Party


def free_ports(k: int) -> list[int]:
    """``k`` loopback ports that were free a moment ago (for parties started next)."""
    socks = [socket.socket() for _ in range(k)]
    for sk in socks:
        sk.bind(("127.0.0.1", 0))
    ports = [sk.getsockname()[1] for sk in socks]
    for sk in socks:
        sk.close()
    return ports


def loopback_configs(root: Path, n: int, **changes: Any) -> list[Path]:
    """A fresh cluster CA and ``n`` party configs under ``root`` (``spdz keygen``'s layout), each party
    on a free loopback port; ``changes`` are ``PartyConfig`` fields (``watermarks``, ``field``,
    ``log_level``, ...). For demos, benchmarks and tests that run one process per party."""
    from .config import Address, load_config, write_config
    from .pki import make_cluster

    make_cluster(root, n)
    ports = free_ports(n)
    paths = []
    for i in range(n):
        path = root / f"party{i}" / "party.toml"
        cfg = dataclasses.replace(
            load_config(path),
            listen=Address("127.0.0.1", ports[i]),
            peers={j: Address("127.0.0.1", ports[j]) for j in range(n) if j != i},
            **changes,
        )
        write_config(cfg, path)
        paths.append(path)
    return paths


def planned_configs(
    root: Path, n: int, need: dict[str, int], batch: int = 2048, *, ahead: bool = True
) -> list[Path]:
    """``loopback_configs`` for one planned job: MASCOT, pools sized to ``need`` (``Watermarks.for_plan``
    in each config's ``[pool]``; ``ahead=False``: its batch sizes only, nothing made before the plan
    is handed over with ``OfflineService.stop_refills(need)``), quiet logs and quick reconnects."""
    from .config import Backoff

    return loopback_configs(
        root,
        n,
        preprocessing="mascot",
        insecure_dealer=False,
        watermarks=Watermarks.for_plan(need, batch, ahead=ahead),
        log_level="error",
        reconnect=Backoff(0.05, 0.5),
    )


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

    async def stock(self, need: dict[str, int], *, poll: float = 0.25, wait: bool = True) -> None:
        """Wait until every party's offline pools hold ``need`` (pool name -> count, e.g. from
        ``protocols.preprocessing.plan``), then stop their refills: the next program runs on the
        planned material with no generation competing for the CPU (a job whose consumption is known
        in advance; ``Watermarks.for_plan`` sizes the pools). A job bigger than the pools' byte bound
        (``Watermarks.pool_bytes``) waits only until they are full; the rest of it is made while it
        runs (``OfflineService.stop_refills``). ``wait=False``: return at once, and the services make
        exactly what ``need`` lacks while the program runs (no refill past it: a pool the program
        drains below its watermark is not refilled). Without offline services (the dealer): returns
        at once."""
        services = [p.offline for p in self.parties if p.offline is not None]
        if wait:
            for svc in services:
                await svc.wait_for(need, poll)
        for svc in services:
            svc.stop_refills(need if not wait else None)

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
    transport: Any = "memory",
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
    ``transport``: ``"memory"`` (frames as objects), ``"stream"`` (reliable ``StreamLinks`` over
    in-memory byte streams), ``"tls"`` (real TLS 1.3 on loopback with a fresh CA in a temporary
    directory, removed on exit), or any object with ``links(party)`` such as a ``MemoryConnector`` or
    a ``LocalTls`` (whose listeners are then run too).
    """
    if n < 2:
        raise ConfigError(f"a cluster needs at least 2 parties, got {n}")
    field = get_field(modulus)
    hub: MemoryHub | None = None
    tls: LocalTls | None = None
    if transport == "tls":
        transport = tls = LocalTls(n)
    if transport == "memory":
        hub = MemoryHub(n)
        make_links: Callable[[int], Any] = hub.links
    elif transport == "stream":
        make_links = MemoryConnector(n).links
    elif not isinstance(transport, str) and callable(getattr(transport, "links", None)):
        make_links = transport.links
    else:
        raise ConfigError(f"transport {transport!r} is not available (use 'memory', 'stream' or 'tls')")
    if preprocessing == "dealer":
        dealer_seed = seed if seed is not None else os.urandom(32)
        sources: list[Any] = [InsecureDealer(field, n, i, dealer_seed) for i in range(n)]
    elif preprocessing == "mascot":
        sources = [None] * n
    else:
        raise ConfigError(f"unknown preprocessing {preprocessing!r}: use 'mascot' or 'dealer'")
    interceptors = interceptors or {}
    parties = [
        Party(
            i, n, make_links(i), sources[i], interceptor=interceptors.get(i), session_options=session_options
        )
        for i in range(n)
    ]
    for p in parties:
        if hasattr(p.links, "on_peer_lost"):  # stream links: a peer gone for good aborts sessions
            p.links.on_peer_lost = p.engine.abort_sessions_with
    if preprocessing == "mascot":
        for p in parties:
            p.use_mascot(field, watermarks)
    try:
        async with trio.open_nursery() as nursery:
            if isinstance(transport, LocalTls):
                await nursery.start(transport.serve)
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
    finally:
        if tls is not None:
            tls.close()
