"""Per-session mailboxes: where frames from peers wait until the session asks for them.

Messages are keyed by ``(sender, step)``, never by arrival order. A peer can run ahead of us, so
frames for a session we have not started yet are kept (within bounds) until it starts. A second
message for the same key, or too much buffered data, is a protocol violation that aborts the session.
An abort (ours or a peer's) wakes every waiter with ``AbortError``.

Bounds on what a peer can make us hold for sessions we have not started: at most
``MAX_PENDING_SESSIONS`` of them, and at most ``max_pending_bytes`` of payload per peer over all of
them (a submitted session's first round is the join, which every party must reach before any large
message: legitimate early data is small). A peer that goes beyond is named in the abort of every
session it was filling, everything held from it is dropped at once, and ``on_over_limit(peer)``
lets the owner disconnect it (the engine drops the peer's connection).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import structlog
import trio

from protocols.errors import AbortError, ProtocolError

from .throttle import Throttle

log = structlog.get_logger("spdz.mailbox")

MAX_PENDING_SESSIONS = 256
MAX_MESSAGES_PER_SESSION = 100_000
FINISHED_MEMORY = 4096
MAX_PENDING_BYTES = 256 * 1024 * 1024  # per peer, over every session not started here yet


def payload_bytes(msg: Any) -> int:
    """What a held message costs: its bytes (msgpack-decoded small values count as 64)."""
    if isinstance(msg, (bytes, bytearray)):
        return len(msg)
    if isinstance(msg, memoryview):
        return msg.nbytes
    if isinstance(msg, (list, tuple)):
        return 64 + sum(payload_bytes(m) for m in msg)
    return 64


class SessionMailbox:
    def __init__(self, session: str) -> None:
        self.session = session
        self.started = False
        self._msgs: dict[tuple[int, int], Any] = {}
        self._waiters: dict[tuple[int, int], trio.Event] = {}
        self._consumed: set[tuple[int, int]] = set()
        self.error: AbortError | None = None
        self.held: dict[int, int] = {}  # payload bytes per sender, while the session is not started

    def waiting(self) -> dict[tuple[int, int], Any]:
        """The messages delivered and not yet received, by ``(sender, step)`` (a copy)."""
        return dict(self._msgs)

    def deliver(self, frm: int, step: int, msg: Any) -> None:
        if self.error is not None:
            return
        key = (frm, step)
        if key in self._msgs or key in self._consumed:
            self.abort(ProtocolError(f"party {frm} sent two messages for step {step}", culprit=frm))
            return
        if len(self._msgs) >= MAX_MESSAGES_PER_SESSION:
            self.abort(ProtocolError(f"party {frm} flooded the session with messages", culprit=frm))
            return
        self._msgs[key] = msg
        ev = self._waiters.pop(key, None)
        if ev is not None:
            ev.set()

    async def recv(self, frm: int, step: int) -> Any:
        key = (frm, step)
        while True:
            if self.error is not None:
                raise self.error
            if key in self._msgs:
                self._consumed.add(key)
                return self._msgs.pop(key)
            ev = self._waiters.get(key)
            if ev is None:
                ev = self._waiters[key] = trio.Event()
            await ev.wait()

    def abort(self, err: AbortError) -> None:
        if self.error is None:
            self.error = err
        self._msgs.clear()
        self.held.clear()
        for ev in self._waiters.values():
            ev.set()
        self._waiters.clear()


class Router:
    """All of one party's session mailboxes."""

    def __init__(self, max_pending_bytes: int = MAX_PENDING_BYTES) -> None:
        self._boxes: dict[str, SessionMailbox] = {}
        self._finished: OrderedDict[str, None] = OrderedDict()
        self.max_pending_bytes = max_pending_bytes
        self._warn = Throttle()  # an outsider can trigger the warning: one line per peer per period
        # called with (sender, session) for a peer's first message in a session not started here
        # (the offline service joins the key epochs its leader opens this way)
        self.on_new_session: Callable[[int, str], None] | None = None
        self.on_over_limit: Callable[[int], None] | None = None

    def sessions(self) -> list[str]:
        """The sessions that have a mailbox now: running, or holding early frames."""
        return list(self._boxes)

    def mailbox(self, session: str) -> SessionMailbox | None:
        """The mailbox of ``session``, if it has one now."""
        return self._boxes.get(session)

    @property
    def finished(self) -> list[str]:
        """The finished sessions remembered (their late frames are dropped), oldest first."""
        return list(self._finished)

    def open(self, session: str) -> SessionMailbox:
        if session in self._finished:
            raise ValueError(f"session id {session!r} was already used")
        box = self._boxes.get(session)
        if box is None:
            box = self._boxes[session] = SessionMailbox(session)
        if box.started:
            raise ValueError(f"session {session!r} is already running")
        box.started = True
        box.held.clear()  # from now on the running session consumes what it holds
        return box

    def close(self, session: str) -> None:
        self._boxes.pop(session, None)
        self._finished[session] = None
        while len(self._finished) > FINISHED_MEMORY:
            self._finished.popitem(last=False)

    def _box_for(self, session: str) -> SessionMailbox | None:
        if session in self._finished:
            return None
        box = self._boxes.get(session)
        if box is None:
            pending = [sid for sid, b in self._boxes.items() if not b.started]
            if len(pending) >= MAX_PENDING_SESSIONS:
                # Placeholders for sessions a peer aborted before we started them are the first to go
                # (after a peer outage there can be many); live placeholders are kept.
                dead = next((sid for sid in pending if self._boxes[sid].error is not None), None)
                if dead is None:
                    log.warning("too_many_pending_sessions", session=session)
                    return None
                del self._boxes[dead]
                self._finished[dead] = None
            box = self._boxes[session] = SessionMailbox(session)
        return box

    def pending_bytes(self, frm: int) -> int:
        """Payload bytes held from ``frm`` for sessions not started here yet."""
        return sum(b.held.get(frm, 0) for b in self._boxes.values() if not b.started)

    def deliver(self, frm: int, session: str, step: int, msg: Any) -> None:
        box = self._box_for(session)
        if box is None:
            return
        if not box.started and box.error is None and frm not in box.held and self.on_new_session:
            self.on_new_session(frm, session)
        if not box.started and box.error is None:
            size = payload_bytes(msg)
            if self.pending_bytes(frm) + size > self.max_pending_bytes:
                self._warn.emit(
                    log.warning, "peer_over_pending_limit", key=frm, peer=frm, limit=self.max_pending_bytes
                )
                err = ProtocolError(
                    f"party {frm} sent more than {self.max_pending_bytes} bytes for sessions not "
                    "started here yet",
                    culprit=frm,
                )
                for b in [box, *(b for b in self._boxes.values() if not b.started and b.held.get(frm))]:
                    b.abort(err)
                if self.on_over_limit is not None:
                    self.on_over_limit(frm)
                return
            box.held[frm] = box.held.get(frm, 0) + size
        box.deliver(frm, step, msg)

    def peer_aborted(self, frm: int, session: str, reason: str) -> None:
        box = self._box_for(session)
        if box is not None:
            box.abort(AbortError(f"party {frm} aborted the session: {reason}", culprit=frm, remote=True))

    def abort_all(self, err_for: Any) -> None:
        """Abort every open session (e.g. a peer is gone); ``err_for(session)`` builds each error."""
        for sid, box in list(self._boxes.items()):
            box.abort(err_for(sid))
