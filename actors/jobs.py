"""Submitted sessions at one party: checking a submit, joining the session, running it, the reply.

**Submits.** Every party submits the same session id and program, each with its own input; the
session starts at a party when *its* submit arrives, and frames from parties that started earlier
wait in the engine's mailbox. Its first round is a join: each party sends the program name and field
and waits for everyone's. That wait, and the wait for this party's preprocessing before it, are
bounded by the submit timeout (``--submit-timeout``, or per submit ``spdz submit --timeout``): a
session that never gets every party ends with an ``AbortError`` naming the missing ones, instead of
hanging; one whose parties named different programs aborts naming the culprit. After the join there
is no timeout (a long computation is not an error); a peer that vanishes mid-session is caught by
the links' ``peer_timeout``. A submit naming a program this daemon does not have is refused at once
(``unknown_program``), before it waits for anything and without using up its session id: resubmit
with the right name and the same id, and it joins the peers that are waiting in that session. A
submit whose input is malformed, or whose client could not parse its file, still runs the session,
only to abort it at once: the engine then
tells every peer, so the others get a clean ``AbortError`` ("party i rejected its own input")
rather than a timeout, and the submitter gets the detailed reason, which never leaves the machine.
A session that aborts in its join round has used no preprocessing, so it keeps the MAC key
(``UseTracked``); one that aborts later retires it, and the cluster re-keys (a second or so).
Session ids are single-use (``job/<id>``; without ``--session``, ``auto/<program>/<k>`` for the k-th
such submit of the program at this daemon, which matches across parties that submit the same jobs
in the same order).

**Large inputs.** An input of more than a few MiB arrives as a chunked upload on the control
connection (``actors.control``), at most ``--max-input-values`` values per submit (default 2^26,
512 MiB of float64: what one session input takes; more is a ``bad_request`` naming the limit). The
submit then sees it as a numpy array in ``input``, which the program's ``prepare`` checks without a
Python loop per value.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import structlog
import trio

from protocols.concurrency import only_cancelled
from protocols.dp.allowance import Declared
from protocols.errors import AbortError, BudgetExceeded
from protocols.field import PrimeField
from protocols.intercept import Forwarding, PassThrough
from protocols.online import Session
from protocols.preprocessing.base import Preprocessing

from . import privacy, programs
from .control import error_reply
from .party import Party
from .sessions import AUTO_PREFIX, JOB_PREFIX, is_submitted

log = structlog.get_logger("spdz.daemon")

SESSION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+-]{0,63}")
MAX_TIMEOUT = 7 * 24 * 3600.0
RECENT_JOBS = 20
REMEMBERED_SESSIONS = 4096
_SUBMIT_KEYS = {"op", "program", "session", "input", "timeout", "reject", "dp"}


class InputRejected(AbortError):
    """This party refused its own input: the session is aborted at every party."""


@dataclass
class Job:
    """One submitted session at this party, from submit to reply."""

    session: str
    sid: str
    program: str
    started: float
    state: str = "waiting"  # waiting (for preprocessing, then the other parties), running, done, failed
    kind: str | None = None
    error: str | None = None
    result: Any = None
    text: str = ""
    finished: float | None = None
    done: trio.Event = field(default_factory=trio.Event)

    def succeed(self, result: Any, text: str) -> None:
        self.state, self.result, self.text = "done", result, text

    def fail(self, kind: str, error: str) -> None:
        self.state, self.kind, self.error = "failed", kind, error

    def reply(self, warning: str | None) -> dict[str, Any]:
        seconds = (self.finished or self.started) - self.started
        extra = {"warning": warning} if warning else {}
        if self.state == "done":
            return {
                "ok": True,
                "session": self.session,
                "program": self.program,
                "result": self.result,
                "text": self.text,
                "seconds": seconds,
                **extra,
            }
        return error_reply(self.kind or "internal", self.error or "failed", session=self.session, **extra)


async def join_session(
    s: Session, program: str, field_name: str, timeout: float, dp: dict[str, Any] | None = None
) -> None:
    """The first round of every submitted session: all parties are here and agree on what to run.

    Each party sends ``{program, field, dp}`` and waits up to ``timeout`` seconds for everyone's.
    Missing parties (they never submitted this session id), a different program or a different
    declared privacy cost (``dp``: dataset, epsilon, delta, mechanism, bounds; a peer that claims a
    smaller cost is caught here) are an ``AbortError`` naming them; the engine then tells every party,
    so nobody waits any longer.
    """
    step = s.next_step()
    peers = [j for j in range(s.n) if j != s.party]
    mine = {"program": program, "field": field_name, "dp": dp}
    for j in peers:
        await s.net.send(j, step, mine)
    deadline = trio.current_time() + timeout
    got: dict[int, Any] = {}
    for j in peers:
        # after the deadline, messages already here are still taken (recv returns them at once)
        with trio.move_on_at(deadline):
            got[j] = await s.net.recv(j, step)
    missing = [j for j in peers if j not in got]
    if missing:
        who = f"part{'ies' if len(missing) > 1 else 'y'} {', '.join(map(str, missing))}"
        raise AbortError(
            f"{who} did not join the session within {timeout:g} s: every party must submit the same "
            f"session id (and its daemon must be running)"
        )
    for j, msg in got.items():
        theirs = msg.get("program") if isinstance(msg, dict) else None
        their_field = msg.get("field") if isinstance(msg, dict) else None
        if not isinstance(theirs, str) or not isinstance(their_field, str):
            raise AbortError(f"party {j} sent a malformed join message", culprit=j)
        if their_field != field_name:
            raise AbortError(
                f"party {j} computes in field {their_field[:16]!r}, party {s.party} in {field_name!r}"
            )
        if theirs != program:
            raise AbortError(
                f"party {j} submitted program {theirs[:64]!r} for this session, party {s.party} {program!r}",
                culprit=j,
            )
        privacy.check_declaration(j, msg.get("dp"), s.party, dp)


class UseTracked(Forwarding):
    """A submitted session's preprocessing that retires the MAC key only if the session touched it.

    Why: the engine calls ``compromised()`` after every aborted session, which makes the offline
    service retire the MAC key and re-key the whole cluster. That protects ``alpha_i`` when a MAC
    check may have leaked it; but a submitted session that aborts in its join round (a rejected
    input, a missing party, another program) has drawn no preprocessing, opened nothing and checked
    nothing, so it revealed nothing about ``alpha_i``. There, and only there, the key is kept. The
    parties decide alike: nobody passes the join before everybody has joined, so a join-round abort
    reaches every party before any of them draws (the exception, a party passing the join at the
    instant another times out, ends like any later abort). So the keys stay in step, without a
    cluster-wide re-key per mistyped input. Any draw (``triples``, ``input_masks``, ...) marks the
    session as a user of the key, and from then on an abort retires it as before.
    """

    def __init__(self, inner: Preprocessing, session: str) -> None:
        super().__init__(inner)
        self._session = session
        self.used = False

    def drawn(self, kind: str, n: int, owner: int | None = None) -> None:
        self.used = True

    def compromised(self) -> None:
        if self.used:
            self.inner.compromised()
        else:
            log.info("mac_key_kept", session=self._session, reason="aborted before using preprocessing")


class JobGuard(PassThrough):
    """The engine ``Interceptor`` that wraps submitted sessions' preprocessing in ``UseTracked``."""

    def wrap_preprocessing(self, session: str, pre: Preprocessing) -> Preprocessing:
        if is_submitted(session):
            return UseTracked(pre, session)  # type: ignore[return-value]
        return pre


class Jobs:
    """This party's submitted sessions, apart from the services so that they can end first.

    ``serve`` owns their tasks until ``cancel``; ``submit`` runs one and returns its reply.
    ``active`` are the sessions running now, ``recent`` the last ``RECENT_JOBS`` that ended.
    """

    def __init__(
        self,
        party: Party,
        registry: programs.Registry,
        field: PrimeField,
        *,
        submit_timeout: float,
        warning: str | None = None,
    ) -> None:
        self.party = party
        # the party's budgets as of the last charge, for status and metrics, without touching the
        # database from the event loop while a charge holds it in a worker thread; the ledger opens
        # here, at the daemon's start, so that a bad ledger path stops the start
        ledger = party.ledger
        self.budget_status: dict[str, dict[str, float]] = ledger.status() if ledger else {}
        self.me = party.id
        self.n = party.n
        self.registry = registry
        self.field = field
        self.submit_timeout = submit_timeout
        self.warning = warning  # added to every reply (the INSECURE dealer's)
        self.accepting = True
        self.active: dict[str, Job] = {}
        self.recent: list[Job] = []
        self.closed = trio.Event()  # set once every job has ended and noted its outcome
        self._seen: OrderedDict[str, Job] = OrderedDict()
        self._auto: dict[str, int] = {}
        self._nursery: trio.Nursery | None = None
        self._scope = trio.CancelScope()
        self._changed = trio.Event()

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            with self._scope:
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    task_status.started()
                    await trio.sleep_forever()
        finally:
            self._nursery = None
            self.closed.set()

    async def wait_idle(self) -> None:
        """Return once no session is running."""
        while self.active:
            await self._changed.wait()

    def cancel(self) -> None:
        """Cancel every running session (the engine tells the peers) and stop serving."""
        self._scope.cancel()

    async def submit(self, req: dict[str, Any]) -> dict[str, Any]:
        """Run this party's part of a session and return its output (module docstring: semantics)."""
        me = self.me
        if not self.accepting or self._nursery is None:
            return error_reply("stopping", f"party {me}'s daemon is shutting down and takes no new sessions")
        unknown = sorted(set(req) - _SUBMIT_KEYS)
        if unknown:
            return error_reply(
                "bad_request", f"unknown submit fields {unknown} (known: {sorted(_SUBMIT_KEYS)})"
            )
        program, session = req.get("program"), req.get("session")
        timeout = req.get("timeout", self.submit_timeout)
        reject = req.get("reject")
        if not isinstance(program, str) or not 0 < len(program) <= 64:
            return error_reply("bad_request", "program must be a name (a string of 1..64 characters)")
        if session is not None and (not isinstance(session, str) or not SESSION_RE.fullmatch(session)):
            return error_reply(
                "bad_request",
                f"session id {str(session)[:80]!r} is not valid: 1..64 of letters, digits and . _ : @ + -, "
                "starting with a letter or digit",
            )
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, (int, float))
            or not 0 < timeout <= MAX_TIMEOUT
        ):
            return error_reply("bad_request", f"timeout must be a number of seconds in (0, {MAX_TIMEOUT:g}]")
        if reject is not None and not isinstance(reject, str):
            return error_reply("bad_request", "reject must be a string")
        try:  # before anything waits, and before the session id is taken: a typo costs nothing
            spec = self.registry.get(program)
        except programs.UnknownProgram as e:
            return error_reply("unknown_program", str(e))
        declared: Declared | None = None
        if req.get("dp") is not None:
            try:
                declared = Declared.from_request(req["dp"])
            except ValueError as e:
                return error_reply("bad_request", f"dp: {e}")
            if spec.dp is None:
                return error_reply(
                    "bad_request",
                    f"program {program!r} has no differentially private output: submit it without dp",
                )
            if spec.dp == "bounds" and declared.bounds is None:
                return error_reply(
                    "bad_request",
                    f"program {program!r} needs public clipping bounds for its dp output (dp bounds: lo, hi)",
                )
        if session is None:
            k = self._auto[program] = self._auto.get(program, 0) + 1
            session, sid = f"{AUTO_PREFIX}{program}/{k}", f"{AUTO_PREFIX}{program}/{k}"
        else:
            sid = JOB_PREFIX + session
        if sid in self._seen:
            state = self._seen[sid].state
            return error_reply(
                "bad_request",
                f"session {session!r} was already submitted to party {me} ({state}); session ids are "
                "single-use: choose a new one",
            )

        # Whatever is wrong from here on, the session runs, to abort at every party (see docstring).
        rejection: str | None = None
        detail = ""
        values: np.ndarray | None = None
        if reject is not None:
            rejection = "".join(c for c in reject[:80] if c.isprintable()) or "malformed input"
            detail = f"the input was rejected by the client ({rejection})"
        else:
            try:
                values = spec.prepare(req.get("input"), self.field, self.n)
            except programs.InputError as e:
                rejection, detail = "invalid input", f"input rejected: {e}"
        job = Job(session, sid, program, trio.current_time())
        self._remember(job)
        self.active[sid] = job
        self._nursery.start_soon(self._run, job, spec, values, rejection, detail, float(timeout), declared)
        log.info("submit_accepted", party=me, session=session, program=program[:64], rejected=rejection)
        await job.done.wait()
        return job.reply(self.warning)

    def _charged(self, status: dict[str, dict[str, float]]) -> None:
        self.budget_status = status

    def _remember(self, job: Job) -> None:
        self._seen[job.sid] = job
        while len(self._seen) > REMEMBERED_SESSIONS:
            self._seen.popitem(last=False)

    async def _run(
        self,
        job: Job,
        spec: programs.Program | None,
        values: np.ndarray | None,
        rejection: str | None,
        detail: str,
        timeout: float,
        declared: Declared | None = None,
    ) -> None:
        me = self.me
        try:
            offline = self.party.offline
            if offline is not None:
                with trio.move_on_after(timeout) as waited:
                    await offline.wait_ready()
                if waited.cancelled_caught:
                    down = [str(j) for j, m in self.party.links.metrics().items() if not m["up"]]
                    why = (
                        f"links to parties {', '.join(down)} are down" if down else "MASCOT set-up is running"
                    )
                    job.fail(
                        "not_ready",
                        f"party {me}'s preprocessing is not ready after {timeout:g} s ({why}); "
                        f"session {job.session!r} was not started",
                    )
                    return
            result = await self.party.run(
                self._program,
                job,
                spec,
                values,
                rejection,
                timeout,
                declared,
                session=job.sid,
                options=spec.session if spec is not None else None,
            )
            assert spec is not None
            job.succeed(result, spec.render(result))
        except InputRejected:
            job.fail("rejected", f"{detail}; session {job.session!r} was aborted at every party")
        except BudgetExceeded as e:
            job.fail("budget_exceeded", f"session {job.session!r} refused: {e.reason}")
        except AbortError as e:
            job.fail("abort", f"session {job.session!r} aborted: {e.reason}")
        except BaseException as e:
            if not only_cancelled(e):
                log.error("session_failed", party=me, session=job.session, error=f"{type(e).__name__}: {e}")
                job.fail("internal", f"session {job.session!r} failed at party {me}: {type(e).__name__}: {e}")
            else:
                job.fail(
                    "stopped",
                    f"party {me}'s daemon stopped before session {job.session!r} finished; "
                    "the session was aborted at every party",
                )
                raise
        finally:
            job.finished = trio.current_time()
            self.active.pop(job.sid, None)
            self.recent.append(job)
            del self.recent[:-RECENT_JOBS]
            log.info(
                "submit_finished",
                party=me,
                session=job.session,
                program=job.program,
                state=job.state,
                seconds=round(job.finished - job.started, 3),
            )
            job.done.set()
            self._changed.set()
            self._changed = trio.Event()

    async def _program(
        self,
        s: Session,
        job: Job,
        spec: programs.Program | None,
        values: np.ndarray | None,
        rejection: str | None,
        timeout: float,
        declared: Declared | None,
    ) -> Any:
        if rejection is not None or spec is None or values is None:
            raise InputRejected(f"party {s.party} rejected its own input for this session ({rejection})")
        dp = None if declared is None else declared.describe()
        await join_session(s, spec.name, self.field.name, timeout, dp)
        if declared is not None:
            await privacy.charge_session(s, self.party, declared, timeout, self._charged)
        job.state = "running"
        return await spec.run(s, values)
