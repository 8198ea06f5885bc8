"""The online engine: runs sessions (one SPMD program each) at one party.

The engine owns the session lifecycle: it opens a mailbox, builds the session's ``Net`` and its
preprocessing view, runs the program, runs the final MAC check, and only then hands back the result.
If the program raises anything, the peers are told the session is aborted (so nobody waits forever
for us) and the error propagates to the caller; the party itself carries on.
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import structlog
import trio

from protocols.concurrency import only_cancelled
from protocols.errors import (
    AbortError,
    CommitmentError,
    MacCheckError,
    PeerLostError,
    PeerTimeoutError,
    ProtocolError,
)
from protocols.intercept import Interceptor
from protocols.net import Net
from protocols.online import Session
from protocols.preprocessing.base import Preprocessing, PreprocessingSource

from .frames import ABORT, MSG, Frame, FrameError, check_frame, decode_frame
from .mailbox import Router, SessionMailbox

log = structlog.get_logger("spdz.engine")

Program = Callable[..., Awaitable[Any]]

ABORT_KINDS = (
    "mac_check",
    "commitment",
    "protocol",
    "peer_aborted",
    "peer_lost",
    "timeout",
    "abort",
    "cancelled",
    "error",
)


def abort_kind(e: AbortError) -> str:
    """A session abort's class, for counting (metrics): one of ``ABORT_KINDS``, never free text."""
    if isinstance(e, MacCheckError):
        return "mac_check"
    if isinstance(e, CommitmentError):
        return "commitment"
    if e.remote:
        return "peer_aborted"
    if isinstance(e, ProtocolError):
        return "protocol"
    if isinstance(e, PeerTimeoutError):
        return "timeout"
    if isinstance(e, PeerLostError):
        return "peer_lost"
    return "abort"


DEFAULT_RECV_TIMEOUT = 600.0  # s a session waits for one peer message before it aborts


class Links(Protocol):
    party: int
    n: int

    async def send(self, to: int, frame: Frame) -> None: ...


class SessionNet:
    """The ``Net`` a session's protocol code sees: steps in, framed bytes out."""

    def __init__(
        self, engine: Engine, session: str, box: SessionMailbox, recv_timeout: float | None = None
    ) -> None:
        self.party = engine.party
        self.n = engine.n
        self._engine = engine
        self._session = session
        self._box = box
        self._recv_timeout = recv_timeout

    def _check_peer(self, j: int) -> None:
        if not (0 <= j < self.n) or j == self.party:
            raise ValueError(f"party {j} is not a peer of party {self.party} (n = {self.n})")

    async def send(self, to: int, step: int, msg: Any) -> None:
        self._check_peer(to)
        if self._box.error is not None:
            raise self._box.error
        await self._engine.links.send(to, Frame(MSG, self._session, step, msg))

    async def recv(self, frm: int, step: int) -> Any:
        """The message of ``frm`` for ``step``. A peer that keeps its link up but stops sending (a
        withholding cheater, a stuck process) would stall the session forever: after
        ``recv_timeout`` seconds without that message the session aborts, naming the peer."""
        self._check_peer(frm)
        if self._recv_timeout is None:
            return await self._box.recv(frm, step)
        with trio.move_on_after(self._recv_timeout):
            return await self._box.recv(frm, step)
        raise PeerTimeoutError(frm, step, self._recv_timeout)


class Engine:
    def __init__(
        self,
        party: int,
        n: int,
        links: Links,
        source: PreprocessingSource,
        *,
        interceptor: Interceptor | None = None,
        session_options: dict[str, Any] | None = None,
        recv_timeout: float | None = DEFAULT_RECV_TIMEOUT,
    ) -> None:
        self.party = party
        self.n = n
        self.recv_timeout = recv_timeout
        self.links = links
        self.source = source
        self.router = Router()
        self.router.on_over_limit = self._peer_flooded
        self.interceptor = interceptor
        self.session_options = session_options or {}
        self.running: set[str] = set()
        self.aborts: list[tuple[str, str]] = []
        self.abort_counts: Counter[str] = Counter()  # by ``abort_kind``, since the start

    # ---------------------------------------------------------------- incoming
    def on_frame(self, frm: int, data: bytes | Frame) -> None:
        """Called by the transport for every frame from peer ``frm``; never raises on garbage."""
        try:
            if not isinstance(data, (bytes, bytearray, memoryview, Frame)):
                raise FrameError(f"frame of type {type(data).__name__}")
            if isinstance(data, Frame):
                frame = check_frame(data.kind, data.session, data.step, data.payload)
            else:
                frame = decode_frame(data)
        except FrameError as e:
            log.warning("bad_frame_dropped", peer=frm, party=self.party, error=str(e))
            return
        if frame.kind == MSG:
            self.router.deliver(frm, frame.session, frame.step, frame.payload)
        elif frame.kind == ABORT:
            self.router.peer_aborted(frm, frame.session, frame.payload)

    # ---------------------------------------------------------------- sessions
    async def run(
        self,
        prog: Program,
        *args: Any,
        session: str | None = None,
        pre: Preprocessing | None = None,
        idle_ok: bool = False,
        options: dict[str, Any] | None = None,
    ) -> Any:
        """Run ``prog`` as session ``session`` (default: a fresh id); ``pre`` overrides the party's
        preprocessing source (the offline service runs its own sessions with a key-only one).
        ``idle_ok``: the session may wait for a peer indefinitely (the offline service's lifeline and
        batch sessions, which wait for the leader's next plan); others abort after ``recv_timeout``.
        ``options`` override the engine's ``Session`` options for this session (the offline service's
        sessions compute no comparisons: they run with ``comparison="field"`` whatever the party's
        sessions use)."""
        sid = session or new_session_id()
        if pre is None:
            # a pooled source that is replacing its MAC key (after an abort) is waited for, not failed on
            wait_ready = getattr(self.source, "wait_ready", None)
            if wait_ready is not None:
                await wait_ready()
        box = self.router.open(sid)
        net: Net = SessionNet(self, sid, box, None if idle_ok else self.recv_timeout)
        try:
            if pre is None:
                pre = self.source.for_session(sid, net)
        except BaseException:
            self.router.close(sid)
            raise
        if self.interceptor is not None:
            net = self.interceptor.wrap_net(sid, net)
            pre = self.interceptor.wrap_preprocessing(sid, pre)
        sess = Session(net, pre, sid, **{**self.session_options, **(options or {})})
        self.running.add(sid)
        log.info("session_started", session=sid, party=self.party)
        try:
            result = await prog(sess, *args)
            await sess.finish()
        except AbortError as e:
            # Tell every peer, also when the abort came from one of them or from our mailbox: a
            # cheater may have told only some parties, and nobody must be left waiting.
            self._record_abort(sid, e.reason, kind=abort_kind(e))
            with trio.CancelScope(shield=True):
                await self._notify_abort(sid, e.reason)
            # Retire the key share on any abort, also one we only heard of: a cheater can equivocate
            # to one party in the reveal round after everyone revealed its sigma, which may expose
            # alpha times an error it chose.
            pre.compromised()
            raise
        except BaseException as e:
            reason = f"party {self.party} failed: {type(e).__name__}: {e}"
            cancelled = only_cancelled(e)
            if cancelled:
                reason = f"party {self.party} cancelled the session"
            self._record_abort(sid, reason, quiet=cancelled, kind="cancelled" if cancelled else "error")
            with trio.CancelScope(shield=True):
                await self._notify_abort(sid, reason)
            pre.compromised()
            raise
        finally:
            self.running.discard(sid)
            self.router.close(sid)
        log.info("session_finished", session=sid, party=self.party, **sess.stats)
        return result

    def abort_sessions_with(self, peer: int, reason: str) -> None:
        """Abort every open session because ``peer`` is gone (its link timed out, or it restarted).

        Each session runs at all n parties, so each one needs ``peer``: waiting on only hangs the
        callers. The sessions end with a ``PeerLostError`` naming the peer; the party carries on, and
        later sessions can run once the peer is back.
        """
        log.warning("sessions_aborted_peer_lost", party=self.party, peer=peer, reason=reason)
        self.router.abort_all(lambda sid: PeerLostError(peer, reason))

    def _peer_flooded(self, peer: int) -> None:
        """``peer`` sent more data for sessions not started here than the mailbox holds: drop its
        connection (it may come back; what it sent is gone, and the sessions it filled aborted)."""
        disconnect = getattr(self.links, "disconnect", None)
        if disconnect is not None:
            disconnect(peer, "it sent more data for sessions not started here than the limit")

    def _record_abort(self, sid: str, reason: str, quiet: bool = False, kind: str = "abort") -> None:
        """Log and remember an abort; a cancellation (the party shutting down) is not a warning."""
        (log.info if quiet else log.warning)("session_aborted", session=sid, party=self.party, reason=reason)
        self.aborts.append((sid, reason))
        del self.aborts[:-100]
        self.abort_counts[kind] += 1

    async def _notify_abort(self, sid: str, reason: str) -> None:
        # what we still hold for this session is of no use to anyone: do not let later sessions'
        # frames wait behind it (the abort notice goes after, and is never withdrawn)
        withdraw = getattr(self.links, "withdraw", None)
        if withdraw is not None:
            withdraw(sid)
        frame = Frame(ABORT, sid, 0, reason[:1000])
        for j in range(self.n):
            if j != self.party:
                with trio.move_on_after(5):
                    try:
                        await self.links.send(j, frame)
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        pass


def new_session_id() -> str:
    return "s-" + secrets.token_hex(8)
