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

**Submits** (``actors.jobs``): each party submits the same session id and program with its own
input; the session's first round is a join, bounded by the submit timeout, and its reply goes back on
the control connection. ``actors.status`` builds what ``spdz status`` shows.

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
import signal
from dataclasses import dataclass
from typing import Any

import structlog
import trio

from protocols.errors import ConfigError
from protocols.field import get_field

from . import logs, programs
from .config import PartyConfig, load_config
from .control import MAX_UPLOAD_VALUES, ControlServer, error_reply
from .jobs import JobGuard, Jobs
from .party import Party
from .sdnotify import Notifier
from .status import snapshot, status_line

log = structlog.get_logger("spdz.daemon")

INSECURE_WARNING = (
    "this cluster runs the INSECURE trusted dealer (insecure_dealer = true): anyone holding the "
    "cluster CA certificate can compute every party's input; use it for tests only"
)


@dataclass(frozen=True)
class DaemonOptions:
    """Daemon behaviour not in the party config (command-line options of ``spdz party``)."""

    grace: float = 20.0  # seconds running sessions get to finish on SIGTERM
    submit_timeout: float = 60.0  # default bound on waiting for preprocessing and for the other parties
    handshake_timeout: float = 10.0
    status_interval: float = 2.0
    max_input_values: int = MAX_UPLOAD_VALUES  # per submit, for an input uploaded in chunks


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
        self.party = Party(cfg, interceptor=JobGuard(), handshake_timeout=hs)
        self.connector, self.links = self.party.connector, self.party.links
        self.listener = self.party.listener
        self.control = ControlServer(
            cfg.control_socket, self.handle, max_upload_values=self.options.max_input_values
        )
        self.state = "starting"
        self.stopping = False
        self.port: int | None = None
        self.reloads = 0
        self.jobs = Jobs(
            self.party,
            self.registry,
            self.field,
            submit_timeout=self.options.submit_timeout,
            warning=INSECURE_WARNING if self.insecure else None,
        )
        self.started = 0.0
        self._ready_epoch: int | None = None
        self._last_status = ""
        self._nursery: trio.Nursery | None = None

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
            self.party.close_ledger()

    async def _serve(self, task_status: trio.TaskStatus[int]) -> None:
        self.started = trio.current_time()
        if self.insecure:
            log.warning("insecure_dealer_enabled", party=self.cfg.party, warning=INSECURE_WARNING)
        async with trio.open_nursery() as nursery:
            await nursery.start(self.jobs.serve)
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
        jobs = self.jobs
        if self.stopping:
            log.info("daemon_grace_skipped", party=self.cfg.party)
            jobs.cancel()
            return
        self.stopping = True
        jobs.accepting = False
        self.state = "stopping"
        self.notifier.stopping(f"stopping: {len(jobs.active)} sessions to finish")
        log.info("daemon_stopping", party=self.cfg.party, sessions=len(jobs.active), grace=self.options.grace)
        with trio.move_on_after(self.options.grace):
            await jobs.wait_idle()
        if jobs.active:
            log.warning("daemon_aborting_sessions", party=self.cfg.party, sessions=sorted(jobs.active))
        jobs.cancel()
        await jobs.closed.wait()  # the jobs told their peers and noted their outcome
        await self.control.drain(5.0)  # and their submitters got the reply
        await self.links.flush(5.0)  # and the peers got our last messages (final reveals, aborts)
        assert self._nursery is not None
        self._nursery.cancel_scope.cancel()

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
        return status_line(self)

    def status(self) -> dict[str, Any]:
        """What ``spdz status`` shows (``actors.status``)."""
        return snapshot(self)

    # ------------------------------------------------------------------------------------ requests
    async def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        op = req["op"]
        if op == "status":
            return {"ok": True, "status": self.status()}
        if op == "submit":
            return await self.jobs.submit(req)
        return error_reply("bad_request", f"unknown operation {op[:40]!r} (known: status, submit)")
