"""The Party actor: one organisation's node, supervising its transport and its online engine.

Later issues add the TLS peer links, the offline (MASCOT) service and the control socket under the
same actor; the shape stays: a ``serve`` task that owns the party's children in one nursery, and
``run`` to start a session on it.
"""

from __future__ import annotations

from typing import Any

import trio

from protocols.preprocessing.base import PreprocessingSource

from .engine import Engine, Interceptor, Program


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

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the party's children until cancelled."""
        async with trio.open_nursery() as nursery:
            await nursery.start(self.links.serve, self.engine.on_frame)
            task_status.started()

    async def run(self, prog: Program, *args: Any, session: str | None = None) -> Any:
        return await self.engine.run(prog, *args, session=session)
