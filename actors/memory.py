"""The in-process transport: one bounded trio memory channel per ordered pair of parties.

Frames cross it as ``Frame`` objects, not bytes: serializing multi-megabyte vectors only to parse them
again in the same process would measure memcpy, not MPC. The receiving engine still runs every frame
through the same structural checks as a decoded one (``frames.check_frame``); payloads are immutable
bytes. The channel bound gives backpressure.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio

FrameHandler = Callable[[int, Any], None]


class MemoryHub:
    """Wires ``n`` parties together in one process."""

    def __init__(self, n: int, buffer: int = 4096) -> None:
        self.n = n
        self._send: dict[tuple[int, int], trio.MemorySendChannel[Any]] = {}
        self._recv: dict[tuple[int, int], trio.MemoryReceiveChannel[Any]] = {}
        for i in range(n):
            for j in range(n):
                if i != j:
                    s, r = trio.open_memory_channel[Any](buffer)
                    self._send[i, j], self._recv[i, j] = s, r
        self.bytes_sent = [0] * n
        self.bytes_by_service: dict[str, int] = {}  # "mascot" (offline sessions) or "online"

    def links(self, party: int) -> MemoryLinks:
        return MemoryLinks(self, party)


class MemoryLinks:
    """One party's view of the hub: ``send`` to a peer, ``serve`` to receive from all of them."""

    def __init__(self, hub: MemoryHub, party: int) -> None:
        self.hub = hub
        self.party = party
        self.n = hub.n

    async def send(self, to: int, frame: Any) -> None:
        size = _payload_bytes(getattr(frame, "payload", frame))
        self.hub.bytes_sent[self.party] += size
        session = getattr(frame, "session", "")
        service = session.split("/", 1)[0] if "/" in session else "online"
        self.hub.bytes_by_service[service] = self.hub.bytes_by_service.get(service, 0) + size
        await self.hub._send[self.party, to].send(frame)

    async def serve(
        self, on_frame: FrameHandler, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        async with trio.open_nursery() as nursery:
            for j in range(self.n):
                if j != self.party:
                    nursery.start_soon(self._pump, j, on_frame)
            task_status.started()

    async def _pump(self, frm: int, on_frame: FrameHandler) -> None:
        async for data in self.hub._recv[frm, self.party]:
            on_frame(frm, data)


def _payload_bytes(obj: Any) -> int:
    """Approximate wire size of a payload (the bytes it carries dominate)."""
    if isinstance(obj, (bytes, bytearray, str)):
        return len(obj)
    if isinstance(obj, memoryview):
        return obj.nbytes
    if isinstance(obj, (list, tuple)):
        return sum(_payload_bytes(o) for o in obj) + 1
    return 9
