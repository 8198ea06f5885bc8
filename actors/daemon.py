"""``spdz party --config FILE``: one party as a long-running daemon.

The daemon is a ``Party`` (peer links over TLS, the MASCOT offline service, the online engine) plus
what an operator needs around it: the control socket (``actors.control``: status and submit), systemd
integration (``actors.sdnotify``), signals, and structured logs.

**Readiness.** ``READY=1`` is sent once the daemon *listens*: control socket bound, TLS port bound,
links running. It does not wait for the peers or for MASCOT's set-up, which needs every peer: a party
started before the others (or whose peers are down) must still come up, or systemd would kill it at
``TimeoutStartSec`` and restart it in a loop, and the cluster could never start one machine at a
time. Whether preprocessing is ready is reported in ``STATUS=`` and by ``spdz status``; a submit that
arrives before it is ready waits for it (bounded, see below).

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
(``_UseTracked``); one that aborts later retires it, and the cluster re-keys (a second or so).
Session ids are single-use (``job/<id>``; without ``--session``, ``auto/<program>/<k>`` for the k-th
such submit of the program at this daemon, which matches across parties that submit the same jobs
in the same order).

**Large inputs.** An input of more than a few MiB arrives as a chunked upload on the control
connection (``actors.control``), at most ``--max-input-values`` values per submit (default 2^26,
512 MiB of float64: what one session input takes; more is a ``bad_request`` naming the limit). The
submit then sees it as a numpy array in ``input``, which the program's ``prepare`` checks without a
Python loop per value.

**Signals.** SIGTERM or SIGINT: graceful stop: ``STOPPING=1``, new submits are refused, running
sessions get ``--grace`` seconds to finish, then the rest are cancelled (the engine tells the peers
the session is aborted, the submitters get an error), and the process exits 0. A second signal skips
the grace period. SIGHUP: re-read the config file; apply the log level and format, and reload the
TLS certificate, key and CA (connections made afterwards use them); changes to anything else are
logged as needing a restart. A config that no longer loads (a bad certificate) is logged and the old
one stays in use.

**Insecure dealer.** Only if the config says ``preprocessing = "dealer"`` and ``insecure_dealer =
true`` (``load_config`` refuses the first without the second). Its shared seed is derived from the
cluster CA certificate, which every party has: exactly as insecure as the dealer itself (anyone with
the CA certificate can compute every party's shares), for test clusters only. It is announced at
start, by the dealer at every session, and in every submit reply.
"""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import structlog
import trio

from protocols.concurrency import leaves, only_cancelled
from protocols.errors import AbortError, ConfigError
from protocols.field import get_field
from protocols.net import Net
from protocols.online import Session
from protocols.preprocessing.base import Preprocessing

from . import logs, programs
from .config import PartyConfig, load_config
from .control import MAX_UPLOAD_VALUES, ControlServer, error_reply
from .party import Party
from .sdnotify import Notifier
from .sessions import AUTO_PREFIX, JOB_PREFIX, is_offline, is_submitted

log = structlog.get_logger("spdz.daemon")

SESSION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+-]{0,63}")
MAX_TIMEOUT = 7 * 24 * 3600.0
RECENT_JOBS = 20
REMEMBERED_SESSIONS = 4096
INSECURE_WARNING = (
    "this cluster runs the INSECURE trusted dealer (insecure_dealer = true): anyone holding the "
    "cluster CA certificate can compute every party's input; use it for tests only"
)
_SUBMIT_KEYS = {"op", "program", "session", "input", "timeout", "reject"}


@dataclass(frozen=True)
class DaemonOptions:
    """Daemon behaviour not in the party config (command-line options of ``spdz party``)."""

    grace: float = 20.0  # seconds running sessions get to finish on SIGTERM
    submit_timeout: float = 60.0  # default bound on waiting for preprocessing and for the other parties
    handshake_timeout: float = 10.0
    status_interval: float = 2.0
    max_input_values: int = MAX_UPLOAD_VALUES  # per submit, for an input uploaded in chunks


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


async def join_session(s: Session, program: str, field_name: str, timeout: float) -> None:
    """The first round of every submitted session: all parties are here and agree on what to run.

    Each party sends ``{program, field}`` and waits up to ``timeout`` seconds for everyone's. Missing
    parties (they never submitted this session id) or a different program are an ``AbortError``
    naming them; the engine then tells every party, so nobody waits any longer.
    """
    step = s.next_step()
    peers = [j for j in range(s.n) if j != s.party]
    mine = {"program": program, "field": field_name}
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


class _UseTracked:
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
        self._inner = inner
        self._session = session
        self.ctx = inner.ctx
        self.used = False

    async def triples(self, n: int) -> Any:
        self.used = True
        return await self._inner.triples(n)

    async def squares(self, n: int) -> Any:
        self.used = True
        return await self._inner.squares(n)

    async def bits(self, n: int) -> Any:
        self.used = True
        return await self._inner.bits(n)

    async def randoms(self, n: int) -> Any:
        self.used = True
        return await self._inner.randoms(n)

    async def input_masks(self, owner: int, n: int) -> Any:
        self.used = True
        return await self._inner.input_masks(owner, n)

    def compromised(self) -> None:
        if self.used:
            self._inner.compromised()
        else:
            log.info("mac_key_kept", session=self._session, reason="aborted before using preprocessing")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _JobGuard:
    """The engine ``Interceptor`` that wraps submitted sessions' preprocessing in ``_UseTracked``."""

    def wrap_net(self, session: str, net: Net) -> Net:
        return net

    def wrap_preprocessing(self, session: str, pre: Preprocessing) -> Preprocessing:
        if is_submitted(session):
            return _UseTracked(pre, session)  # type: ignore[return-value]
        return pre


class PartyDaemon:
    """One party serving its peers and its control socket until stopped (``run`` adds signals)."""

    def __init__(
        self,
        cfg: PartyConfig,
        *,
        options: DaemonOptions | None = None,
        registry: programs.Registry | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.cfg = cfg
        self.options = options or DaemonOptions()
        self.registry = registry or programs.REGISTRY
        self.notifier = notifier or Notifier()
        self.field = get_field(cfg.field)
        hs = self.options.handshake_timeout
        self.insecure = cfg.preprocessing == "dealer"
        self.party = Party(cfg, interceptor=_JobGuard(), handshake_timeout=hs)
        self.connector, self.links = self.party.connector, self.party.links
        self.listener = self.party.listener
        self.control = ControlServer(
            cfg.control_socket, self.handle, max_upload_values=self.options.max_input_values
        )
        self.state = "starting"
        self.stopping = False
        self.port: int | None = None
        self.reloads = 0
        self.active: dict[str, Job] = {}
        self._seen: OrderedDict[str, Job] = OrderedDict()
        self._recent: list[Job] = []
        self._auto: dict[str, int] = {}
        self._t0 = 0.0
        self._ready_epoch: int | None = None
        self._last_status = ""
        self._nursery: trio.Nursery | None = None
        self._jobs: trio.Nursery | None = None
        self._jobs_scope = trio.CancelScope()
        self._jobs_closed = trio.Event()
        self._jobs_changed = trio.Event()

    # ------------------------------------------------------------------------------------ lifetime
    async def run(self) -> int:
        """Serve until SIGTERM/SIGINT (graceful stop, then 0); SIGHUP reloads."""
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._signals, signals, nursery.cancel_scope)
                await self.serve()
                nursery.cancel_scope.cancel()
        # Already stopped: a repeated SIGTERM/SIGINT from here to the exit must not kill the process
        # by signal (it would report a failure for a clean stop).
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, signal.SIG_IGN)
        self.notifier.close()
        log.info("daemon_stopped", party=self.cfg.party)
        return 0

    async def _signals(self, signals: Any, outer: trio.CancelScope) -> None:
        async for signum in signals:
            if signum == signal.SIGHUP:
                self.reload()
            elif self._nursery is None:  # still starting: nothing to drain
                log.info("daemon_stop_requested", party=self.cfg.party, signal=signal.Signals(signum).name)
                outer.cancel()
                return
            else:
                log.info("daemon_stop_requested", party=self.cfg.party, signal=signal.Signals(signum).name)
                try:
                    self._nursery.start_soon(self.stop)
                except RuntimeError:  # the nursery already closed: the stop is done
                    return

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Start everything, report READY, and run until ``stop`` has finished."""
        self.control.bind()  # before anything else: a second daemon of this party stops here
        try:
            await self._serve(task_status)
        finally:
            self.control.close()

    async def _serve(self, task_status: trio.TaskStatus[int]) -> None:
        self._t0 = trio.current_time()
        if self.insecure:
            log.warning("insecure_dealer_enabled", party=self.cfg.party, warning=INSECURE_WARNING)
        async with trio.open_nursery() as nursery:
            await nursery.start(self._run_jobs)
            try:  # before the links dial out: a second daemon of this party stops here too
                self.port = await nursery.start(self.listener.serve)
            except OSError as e:
                where = f"{self.cfg.listen.host}:{self.cfg.listen.port}"
                raise OSError(
                    e.errno, f"cannot listen on {where} ([listen] in {self.cfg.source}): {e.strerror}"
                ) from None
            await nursery.start(self.party.serve)
            if self.cfg.metrics_port:
                from .metrics import serve_metrics

                try:
                    await nursery.start(serve_metrics, self.cfg.metrics_port, self.status)
                except OSError as e:
                    raise OSError(
                        e.errno,
                        f"cannot serve metrics on 127.0.0.1:{self.cfg.metrics_port} (metrics_port in "
                        f"{self.cfg.source}): {e.strerror}",
                    ) from None
            await nursery.start(self.control.serve)
            nursery.start_soon(self._report_status)
            if self.party.offline is not None:
                nursery.start_soon(self._watch_offline)
            if self.notifier.watchdog_interval:
                nursery.start_soon(self._watchdog, self.notifier.watchdog_interval)
            self._nursery = nursery
            self.state = "serving"
            self._last_status = self.status_line()
            self.notifier.ready(self._last_status)
            log.info(
                "daemon_ready",
                party=self.cfg.party,
                parties=self.cfg.n,
                listen=f"{self.cfg.listen.host}:{self.port}",
                control=str(self.cfg.control_socket),
                field=self.cfg.field,
                preprocessing=self.cfg.preprocessing,
            )
            task_status.started(self.port)

    async def stop(self) -> None:
        """Graceful stop (see the module docstring); a second call skips the grace period."""
        if self.stopping:
            log.info("daemon_grace_skipped", party=self.cfg.party)
            self._jobs_scope.cancel()
            return
        self.stopping = True
        self.state = "stopping"
        self.notifier.stopping(f"stopping: {len(self.active)} sessions to finish")
        log.info("daemon_stopping", party=self.cfg.party, sessions=len(self.active), grace=self.options.grace)
        with trio.move_on_after(self.options.grace):
            while self.active:
                await self._jobs_changed.wait()
        if self.active:
            log.warning("daemon_aborting_sessions", party=self.cfg.party, sessions=sorted(self.active))
        self._jobs_scope.cancel()
        await self._jobs_closed.wait()  # the jobs told their peers and noted their outcome
        await self.control.drain(5.0)  # and their submitters got the reply
        await self.links.flush(5.0)  # and the peers got our last messages (final reveals, aborts)
        assert self._nursery is not None
        self._nursery.cancel_scope.cancel()

    async def _run_jobs(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Owns the submitted sessions, apart from the services, so that they can end first."""
        try:
            with self._jobs_scope:
                async with trio.open_nursery() as jobs:
                    self._jobs = jobs
                    task_status.started()
                    await trio.sleep_forever()
        finally:
            self._jobs = None
            self._jobs_closed.set()

    def reload(self) -> None:
        """SIGHUP: log level/format and TLS files from the config file; the rest needs a restart."""
        path = self.cfg.source
        if path is None:
            log.warning("reload_impossible", party=self.cfg.party, reason="config was not read from a file")
            return
        try:
            new = load_config(path)
        except ConfigError as e:
            log.error("reload_failed", party=self.cfg.party, error=str(e), kept="the running config")
            self.notifier.status(f"reload failed: {e}")
            return
        try:
            logs.configure(new.log_level, new.log_format)
            self.connector.reload()
            self.listener.reload()
        except (ConfigError, ValueError) as e:
            log.error("reload_failed", party=self.cfg.party, error=str(e), kept="the running certificates")
            self.notifier.status(f"reload failed: {e}")
            return
        skip = {"log_level", "log_format", "source"}
        changed = [
            f.name
            for f in dataclasses.fields(new)
            if f.name not in skip and getattr(new, f.name) != getattr(self.cfg, f.name)
        ]
        if changed:
            log.warning("reload_needs_restart", party=self.cfg.party, changed=changed)
        self.cfg = dataclasses.replace(self.cfg, log_level=new.log_level, log_format=new.log_format)
        self.reloads += 1
        log.info(
            "config_reloaded",
            party=self.cfg.party,
            log_level=new.log_level,
            log_format=new.log_format,
            cert=str(self.cfg.tls.cert),
        )
        self.notifier.status(self.status_line())

    # ------------------------------------------------------------------------------------ status
    async def _watchdog(self, interval: float) -> None:
        while True:
            self.notifier.watchdog()
            await trio.sleep(interval)

    async def _watch_offline(self) -> None:
        """Track which MAC-key epoch has finished its set-up (what ``status`` calls ready)."""
        offline = self.party.offline
        assert offline is not None
        while True:
            await offline.wait_ready()
            if self._ready_epoch != offline.epoch:
                self._ready_epoch = offline.epoch
                log.info("preprocessing_ready", party=self.cfg.party, epoch=offline.epoch)
            await trio.sleep(0.25)

    def preprocessing_ready(self) -> bool:
        offline = self.party.offline
        return offline is None or (offline.mascot is not None and self._ready_epoch == offline.epoch)

    async def _report_status(self) -> None:
        while True:
            await trio.sleep(self.options.status_interval)
            line = self.status_line()
            if line != self._last_status:
                self._last_status = line
                self.notifier.status(line)

    def status_line(self) -> str:
        """One line for systemd's STATUS=."""
        up = sum(1 for m in self.links.metrics().values() if m["up"])
        parts = [f"party {self.cfg.party}: {self.state}", f"links {up}/{self.cfg.n - 1} up"]
        offline = self.party.offline
        if offline is None:
            parts.append("INSECURE dealer")
        elif self.preprocessing_ready():
            parts.append(f"preprocessing ready, {offline.pool.level('triple')} triples")
        else:
            parts.append("preprocessing setting up")
        parts.append(f"{len(self.active)} sessions")
        return "; ".join(parts)

    def status(self) -> dict[str, Any]:
        """What ``spdz status`` shows (plain data: it goes over msgpack)."""
        now = trio.current_time()
        links = {}
        for j, m in self.links.metrics().items():
            addr = self.cfg.peers[j]
            links[str(j)] = {
                "address": f"{addr.host}:{addr.port}",
                "dials": "out" if self.cfg.party < j else "in",
                **{
                    k: m[k]
                    for k in (
                        "up",
                        "lost",
                        "connects",
                        "reconnects",
                        "bytes_sent",
                        "bytes_received",
                        "frames_sent",
                        "frames_resent",
                        "rejected_streams",
                        "peer_restarts",
                        "resyncs",
                        "disconnects",
                    )
                },
            }
        pool = None
        offline = self.party.offline
        if offline is not None:
            m = offline.metrics()
            pool = {
                "ready": self.preprocessing_ready(),
                "epoch": m["epoch"],
                "keys": m["keys"],
                "levels": m["levels"],
                "watermarks": {
                    k: list(self.cfg.watermarks.of(k)) for k in ("triple", "mask", "square", "bit")
                },
                "generated": m["generated"],
                "per_second": m["per_second"],
                "failures": m["failures"],
            }
        running = self.party.engine.running
        return {
            "party": self.cfg.party,
            "parties": self.cfg.n,
            "pid": os.getpid(),
            "state": self.state,
            "uptime": now - self._t0,
            "field": self.cfg.field,
            "preprocessing": "INSECURE dealer" if self.insecure else "mascot",
            "listen": f"{self.cfg.listen.host}:{self.port or self.cfg.listen.port}",
            "control": str(self.cfg.control_socket),
            "reloads": self.reloads,
            "links": links,
            "tls": {"dialer": self.connector.stats, "listener": self.listener.stats},
            "pool": pool,
            "sessions": {
                "jobs": len(self.active),
                "offline": sum(1 for s in running if is_offline(s)),
                "total": len(running),
            },
            "jobs": [
                {"session": j.session, "program": j.program, "state": j.state, "seconds": now - j.started}
                for j in self.active.values()
            ],
            "recent": [
                {
                    "session": j.session,
                    "program": j.program,
                    "state": j.state,
                    "seconds": (j.finished or now) - j.started,
                    "error": j.error,
                }
                for j in self._recent
            ],
            "aborts": [{"session": s, "reason": r} for s, r in self.party.engine.aborts[-10:]],
            "abort_counts": dict(self.party.engine.abort_counts),
        }

    # ------------------------------------------------------------------------------------ requests
    async def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        op = req["op"]
        if op == "status":
            return {"ok": True, "status": self.status()}
        if op == "submit":
            return await self.submit(req)
        return error_reply("bad_request", f"unknown operation {op[:40]!r} (known: status, submit)")

    async def submit(self, req: dict[str, Any]) -> dict[str, Any]:
        """Run this party's part of a session and return its output (module docstring: semantics)."""
        me = self.cfg.party
        if self.stopping or self._jobs is None:
            return error_reply("stopping", f"party {me}'s daemon is shutting down and takes no new sessions")
        unknown = sorted(set(req) - _SUBMIT_KEYS)
        if unknown:
            return error_reply(
                "bad_request", f"unknown submit fields {unknown} (known: {sorted(_SUBMIT_KEYS)})"
            )
        program, session = req.get("program"), req.get("session")
        timeout = req.get("timeout", self.options.submit_timeout)
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
                values = spec.prepare(req.get("input"), self.field, self.cfg.n)
            except programs.InputError as e:
                rejection, detail = "invalid input", f"input rejected: {e}"
        job = Job(session, sid, program, trio.current_time())
        self._remember(job)
        self.active[sid] = job
        self._jobs.start_soon(self._run_job, job, spec, values, rejection, detail, float(timeout))
        log.info("submit_accepted", party=me, session=session, program=program[:64], rejected=rejection)
        await job.done.wait()
        return job.reply(INSECURE_WARNING if self.insecure else None)

    def _remember(self, job: Job) -> None:
        self._seen[job.sid] = job
        while len(self._seen) > REMEMBERED_SESSIONS:
            self._seen.popitem(last=False)

    async def _run_job(
        self,
        job: Job,
        spec: programs.Program | None,
        values: np.ndarray | None,
        rejection: str | None,
        detail: str,
        timeout: float,
    ) -> None:
        me = self.cfg.party
        try:
            offline = self.party.offline
            if offline is not None:
                with trio.move_on_after(timeout) as waited:
                    await offline.wait_ready()
                if waited.cancelled_caught:
                    down = [str(j) for j, m in self.links.metrics().items() if not m["up"]]
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
                self._job_program, job, spec, values, rejection, timeout, session=job.sid
            )
            assert spec is not None
            job.succeed(result, spec.render(result))
        except InputRejected:
            job.fail("rejected", f"{detail}; session {job.session!r} was aborted at every party")
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
            self._recent.append(job)
            del self._recent[:-RECENT_JOBS]
            log.info(
                "submit_finished",
                party=me,
                session=job.session,
                program=job.program,
                state=job.state,
                seconds=round(job.finished - job.started, 3),
            )
            job.done.set()
            self._jobs_changed.set()
            self._jobs_changed = trio.Event()

    async def _job_program(
        self,
        s: Session,
        job: Job,
        spec: programs.Program | None,
        values: np.ndarray | None,
        rejection: str | None,
        timeout: float,
    ) -> Any:
        if rejection is not None or spec is None or values is None:
            raise InputRejected(f"party {s.party} rejected its own input for this session ({rejection})")
        await join_session(s, spec.name, self.field.name, timeout)
        job.state = "running"
        return await spec.run(s, values)


def cmd_party(args: Any) -> int:
    """``spdz party``: load the config, set up logging, run the daemon; exit 0 after a graceful stop.

    Exit status 2 for a configuration problem (systemd should not restart into it), 1 for any other
    failure to start or run.
    """
    try:
        cfg = load_config(args.config)
    except ConfigError as e:
        print(f"spdz party: {e}", file=sys.stderr)
        return 2
    logs.configure(cfg.log_level, cfg.log_format)
    if not (args.grace >= 0 and args.submit_timeout > 0):
        print("spdz party: --grace must be >= 0 and --submit-timeout > 0 seconds", file=sys.stderr)
        return 2
    max_values = getattr(args, "max_input_values", None)
    max_values = MAX_UPLOAD_VALUES if max_values is None else max_values
    if not 1 <= max_values <= 1 << 40:
        print("spdz party: --max-input-values must be a positive number of values", file=sys.stderr)
        return 2
    options = DaemonOptions(grace=args.grace, submit_timeout=args.submit_timeout, max_input_values=max_values)
    t0 = time.monotonic()
    try:
        daemon = PartyDaemon(cfg, options=options)
        return trio.run(daemon.run)
    except KeyboardInterrupt:  # before the signal receiver was installed
        return 130
    except BaseException as e:
        errors = leaves(e)
        for leaf in errors:
            if isinstance(leaf, (ConfigError, OSError)):
                print(f"spdz party: {leaf}", file=sys.stderr)
            else:
                print(f"spdz party: failed: {type(leaf).__name__}: {leaf}", file=sys.stderr)
        log.error("daemon_failed", seconds=round(time.monotonic() - t0, 3), error=str(errors[0])[:300])
        if all(isinstance(leaf, ConfigError) for leaf in errors):
            return 2
        if any(isinstance(leaf, KeyboardInterrupt) for leaf in errors):
            return 130
        return 1
