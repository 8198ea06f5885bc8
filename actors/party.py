"""The Party actor: one organisation's node, supervising its transport and its online engine.

Later issues add the TLS peer links, the offline (MASCOT) service and the control socket under the
same actor; the shape stays: a ``serve`` task that owns the party's children in one nursery, and
``run`` to start a session on it.
"""

from __future__ import annotations

from typing import Any

import trio

from protocols.field import PrimeField
from protocols.preprocessing.base import PreprocessingSource

from .engine import Engine, Interceptor, Program
from .offline import OfflineService, Watermarks


class Party:
    def __init__(
        self,
        party: int,
        n: int,
        links: Any,
        source: PreprocessingSource,
        *,
        interceptor: Interceptor | None = None,
        session_options: dict[str, Any] | None = None,
    ) -> None:
        self.id = party
        self.n = n
        self.links = links
        self.source = source
        self.engine = Engine(
            party, n, links, source, interceptor=interceptor, session_options=session_options
        )
        self.offline: OfflineService | None = None
        if hasattr(links, "on_peer_lost"):  # stream links: a peer gone too long aborts its sessions
            links.on_peer_lost = self.engine.abort_sessions_with

    def use_mascot(self, field: PrimeField, watermarks: Watermarks | None = None) -> OfflineService:
        """Make this party's preprocessing a MASCOT ``OfflineService`` (started by ``serve``)."""
        self.offline = OfflineService(self.engine, field, self.id, self.n, watermarks)
        self.engine.source = self.offline
        self.source = self.offline
        return self.offline

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the party's children (transport, offline service) until cancelled."""
        async with trio.open_nursery() as nursery:
            await nursery.start(self.links.serve, self.engine.on_frame)
            if self.offline is not None:
                await nursery.start(self.offline.serve)
            task_status.started()

    async def run(self, prog: Program, *args: Any, session: str | None = None) -> Any:
        return await self.engine.run(prog, *args, session=session)
