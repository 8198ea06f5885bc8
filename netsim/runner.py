"""Seeded simulations of the real parties over the simulated network, in virtual time, and their reports.

    report = netsim.simulate("mul", 3, faults="flaky", adversary="wrong-share", seed=7)
    print(report.line())            # outcome, virtual and wall time, faults injected, bytes
    reports = netsim.sweep(["wrong-share", None], ["flaky", "lossy"], range(100), jobs=2)
    print(netsim.summary_table(reports))

One run
-------
``simulate`` builds ``n`` ``Party`` actors exactly as ``local_cluster`` does (engine, offline service,
``StreamLinks``/``PeerLink``), wired through ``SimTransport`` over a ``Network`` with the given fault
profile; one of them (``cheater``, from the seed unless given) carries the ``Adversary``. Every party
starts the program at once, as one session; the run ends when every honest party has a result or at
the virtual ``deadline``. Each honest party then has one of:

* ``correct``: it returned exactly the plaintext answer;
* ``abort``: it raised ``AbortError`` (a clean abort, with its reason);
* ``wrong``: it returned anything else: a WRONG OUTPUT ACCEPTED, the failure this simulator exists to find;
* ``hang``: no result by the deadline;
* ``error``: it raised something other than ``AbortError`` (a bug: a party must fail cleanly).

and the run's outcome is the worst of them, in the order wrong, error, hang, abort, correct. A run
where some honest parties aborted and the others returned the right answer is an ``abort``: SPDZ
promises security with abort, not fairness. The corrupt party's own result is not judged.

Virtual time. The whole run is one ``trio.run`` under ``MockClock(autojump_threshold=0)``: whenever every
task waits, the clock jumps to the next timer, so a 30-second peer timeout costs nothing. That is only
sound if nothing computes off the event loop while the clock jumps: MASCOT hands its heavy lifting to
worker threads, and a task waiting for a thread counts as blocked, so virtual time would race ahead
and fire timeouts during honest computation. The run therefore sets ``protocols.concurrency.
inline_compute``, under which the same calls run inline.

Determinism. The seed fixes the network's fault decisions (per-link RNGs, see ``network.py``), the
links' reconnect jitter, the program's inputs, the cheater and every choice of the adversary; and the
run seeds trio's scheduler (trio deliberately shuffles the order of runnable tasks; its RNG is private
API, which pytest-trio also seeds for Hypothesis), so the same seed replays the same fault schedule and
outcome. Secret randomness (shares, MAC keys, OT seeds) still comes from ``os.urandom``: it changes
message contents, never their sizes or the order of events.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import random
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import trio
import trio.testing

from actors import logs
from actors.offline import Watermarks
from actors.party import Party
from actors.peerlink import LinkConfig
from protocols.concurrency import inline_compute
from protocols.errors import AbortError
from protocols.field import PrimeField, get_field
from protocols.preprocessing.dealer import InsecureDealer

from .adversaries import (
    ADVERSARIES,
    Adversary,
    AttackContext,
    NotApplicable,
    make_adversary,
    program_for,
    programs_of,
)
from .events import FaultEvent
from .network import Network
from .profile import PROFILE_SPECS, FaultProfile
from .programs import PROGRAMS, SimProgram, normalize
from .transport import SimTls, SimTransport

OUTCOMES = ("correct", "abort", "wrong", "hang", "error", "n/a")
FAILURES = ("wrong", "hang", "error")
"""Outcomes that make ``spdz simulate`` exit non-zero."""

SIM_PROFILES: Mapping[str, str] = MappingProxyType(
    {
        "storm": "chaos,partition=1/s:1s,crash=0.5/s:500ms",
        "cuts": "latency=2ms,bandwidth=100MB,cut=320KiB:1MiB,reset=0.01",
        "outage": "latency=2ms,bandwidth=100MB,restart=45s",
    }
)
"""Named profiles of the simulator on top of ``PROFILE_SPECS``. ``storm`` is ``chaos`` with partitions
and crashes frequent enough to strike a session that lasts well under a virtual second. ``cuts``
resets every connection after 320 KiB to 1 MiB (and 1% of writes at random): shorter than the
frames of ``bigmul`` and of MASCOT batches. ``outage`` kills an honest party (kill -9) during the
first session and restarts it 45 s later, beyond the 30 s peer timeout: the others give up on it
and retire their MAC key; then one more session must be right at every party (MASCOT, whatever
the adversary: the key epochs must agree again)."""

SWEEP_PROFILES = ("flaky", "lossy", "storm", "cuts", "outage")
"""``--faults all``: resets and stalls; corruption, truncation and half-open links; everything at once
with frequent partitions (healing within a second) and host crashes (back after 500 ms); connections
cut after less than a large frame; a party down for longer than the peer timeout, restarted."""

DEFAULT_DEADLINE = 600.0
DEFAULT_SUBMIT_TIMEOUT = 60.0  # spdz party --submit-timeout's default
DEFAULT_LINK = LinkConfig(peer_timeout=30.0)  # the party config's default peer timeout
DEFAULT_BATCH = 8


@dataclass(frozen=True)
class PartyOutcome:
    """One party's end of a run: ``status`` is an outcome (or ``cheater``), ``detail`` says what."""

    party: int
    status: str
    detail: str = ""


@dataclass
class Report:
    """What one simulated run did and how it ended (see the module docstring for the outcomes)."""

    seed: int
    program: str
    n: int
    faults: str
    adversary: str
    cheater: int | None
    preprocessing: str
    tls: bool
    outcome: str = "n/a"
    reason: str = ""
    parties: list[PartyOutcome] = field(default_factory=list)
    virtual_time: float = 0.0
    wall_time: float = 0.0
    events: list[FaultEvent] = field(default_factory=list)
    bytes: int = 0
    plan: str = ""
    actions: list[str] = field(default_factory=list)
    detected: list[str] = field(default_factory=list)
    state: list[str] = field(default_factory=list)  # where each party stood if the run did not finish
    restarts: list[str] = field(default_factory=list)  # what a ``restart`` fault did

    @property
    def fired(self) -> bool:
        """Whether the adversary deviated at all (an adversary that never found its target proves nothing)."""
        return bool(self.actions)

    @property
    def failed(self) -> bool:
        return self.outcome in FAILURES

    @property
    def fault_counts(self) -> dict[str, int]:
        """Injected faults by kind (heals and restarts are the ends of faults, not faults)."""
        return dict(Counter(e.kind for e in self.events if e.kind not in ("heal", "restart")))

    def line(self) -> str:
        """One line for the CLI: seed, who, outcome, times, faults, bytes, and the reason."""
        counts = self.fault_counts
        faults = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "-"
        who = self.adversary if self.cheater is None else f"{self.adversary}@{self.cheater}"
        text = (
            f"seed={self.seed:<6d} {who:<26s} faults={self.faults:<10s} {self.outcome.upper():<8s}"
            f" virt={self.virtual_time:8.3f}s wall={self.wall_time:6.3f}s"
            f" injected={sum(counts.values())} ({faults}) bytes={self.bytes}"
        )
        if self.detected and self.outcome == "correct":
            text += " [offline deviation detected, key retired]"
        if self.reason and self.outcome != "correct":
            text += f" reason: {self.reason}"
        return text

    def describe(self) -> str:
        """Everything about the run, for ``--replay``: parties, adversary actions, the fault schedule."""
        out = [
            self.line(),
            f"  program={self.program} n={self.n} preprocessing={self.preprocessing} tls={self.tls}",
        ]
        if self.plan:
            out.append(f"  adversary plan: {self.plan}")
        out += [f"  adversary: {a}" for a in self.actions]
        out += [f"  restart: {r}" for r in self.restarts]
        out += [f"  party {p.party}: {p.status}{': ' + p.detail if p.detail else ''}" for p in self.parties]
        out += [f"  offline check failed: {d}" for d in self.detected]
        out += [f"  at the end, {s}" for s in self.state]
        out.append(f"  fault schedule ({len(self.events)} events):")
        out += [f"    {e}" for e in self.events]
        return "\n".join(out)


# ------------------------------------------------------------------------------------------ one run
def simulate(
    program: str | SimProgram = "mul",
    n: int = 3,
    *,
    faults: str | FaultProfile = "none",
    adversary: str | None = None,
    seed: int = 0,
    cheater: int | None = None,
    field: str | int = "p61",
    preprocessing: str = "auto",
    tls: bool | SimTls = True,
    link: LinkConfig = DEFAULT_LINK,
    deadline: float = DEFAULT_DEADLINE,
    batch: int | None = None,
    sessions: int = 1,
    early_start: bool = False,
    submit_timeout: float = DEFAULT_SUBMIT_TIMEOUT,
    script: Callable[[Network], None] | None = None,
) -> Report:
    """Run ``program`` at ``n`` parties over a simulated network and report how it ended.

    ``faults``: a fault profile (object, name from ``PROFILES`` or spec string). ``adversary``: a name
    from ``ADVERSARIES`` or None for an honest run. ``preprocessing``: ``dealer`` (the insecure test
    dealer: fast, for online-phase adversaries), ``mascot``, or ``auto`` (MASCOT exactly when the
    adversary attacks it). ``tls``: run TLS 1.3 under the links (needed for ``corrupt`` faults to be
    caught; pass a ``SimTls`` to reuse key material across runs). ``link``: the parties' link timing
    (``peer_timeout`` above all). ``deadline``: virtual seconds after which a party without a result
    counts as hung. ``batch``: MASCOT batch size of the field kinds (pools are filled on demand only;
    default ``DEFAULT_BATCH``, then the program's own sizes, ``SimProgram.batch``). ``sessions``: how
    many times the program runs, one session after another at each party (the adversary deviates in
    the first; the later ones show whether the parties recover). Sessions start once every honest
    party's MASCOT set-up is done, as with ``local_cluster`` and ``spdz submit``; like a submit, that
    wait is bounded by ``submit_timeout`` (virtual seconds; the daemon's default), after which every
    honest party fails cleanly without starting the session. ``early_start`` starts the sessions at
    once instead (jobs that reach ``Engine.run`` while set-up runs). ``script(net)`` runs when the
    parties start, to schedule faults by hand (``net.schedule``, ``net.partition``, ...).

    Synchronous: it runs its own ``trio.run`` with a ``MockClock``, so call it from outside trio.
    """
    prog = PROGRAMS[program] if isinstance(program, str) else program
    profile = fault_profile(faults)
    name = adversary or "none"
    if adversary is not None and adversary not in ADVERSARIES:
        raise KeyError(f"unknown adversary {adversary!r}; adversaries: {', '.join(ADVERSARIES)}")
    if preprocessing == "auto":
        # a restart needs MASCOT: the insecure dealer's streams cannot resynchronise with a party
        # that starts from the beginning again, and the key epochs agreeing is what it tests
        mascot = (adversary is not None and ADVERSARIES[adversary].mascot) or profile.restart > 0
        preprocessing = "mascot" if mascot else "dealer"
    if preprocessing not in ("dealer", "mascot"):
        raise ValueError(f"preprocessing must be 'auto', 'dealer' or 'mascot', not {preprocessing!r}")
    if n < 2:
        raise ValueError(f"a simulation needs at least 2 parties, got {n}")
    if sessions < 1:
        raise ValueError(f"a simulation runs at least one session, not {sessions}")
    if cheater is None and adversary is not None:
        cheater = random.Random(f"{seed}/cheater").randrange(n)  # noqa: S311 -- a simulation's choice
    material = tls if isinstance(tls, SimTls) else (SimTls.create(n) if tls else None)
    report = Report(
        seed, prog.name, n, _faults_name(faults, profile), name, cheater, preprocessing, material is not None
    )
    if preprocessing not in prog.preprocessing:  # e.g. mixed material under ``outage``, which needs MASCOT
        report.outcome = "n/a"
        report.reason = (
            f"{prog.name} runs on {' or '.join(prog.preprocessing)} preprocessing only, not {preprocessing}"
        )
        return report
    run = _Run(
        prog, n, profile, adversary, seed, cheater, get_field(field), preprocessing, material, link,
        deadline, batch, sessions, early_start, submit_timeout, script, report,
    )  # fmt: skip
    t0 = time.perf_counter()
    try:
        with _scheduler_seeded(seed):
            trio.run(run.main, clock=trio.testing.MockClock(autojump_threshold=0))
    except Exception as e:  # a bug must show up in the report, not kill a sweep of thousands of runs
        report.outcome = "error"
        report.reason = f"simulation failed: {type(e).__name__}: {e}"
        report.actions.append("".join(traceback.format_exception(e))[-2000:])
    report.wall_time = time.perf_counter() - t0
    return report


def _state_of(party: Party) -> str:
    """Where a party stands when a run hits its deadline: its sessions, its key epoch, its links."""
    out = f"party {party.id}: sessions running {sorted(party.engine.running)}"
    if party.offline is not None:
        ready = party.offline.mascot is not None and party.offline.mascot.ready
        out += f"; offline epoch {party.offline.epoch} ({'ready' if ready else 'not ready'})"
    links = getattr(party.links, "metrics", None)
    if links is not None:
        ups = {j: ("up" if m["up"] else "LOST" if m["lost"] else "down") for j, m in links().items()}
        out += f"; links {ups}"
    return out


async def _offline_ready(parties: Sequence[Party]) -> None:
    """Return once every party's offline service has a set-up MAC key (virtual-time polling: the
    service's own ``wait_ready`` event is replaced, not set, when a failed set-up retires a key)."""
    while not all(
        p.offline is None or (p.offline.mascot is not None and p.offline.mascot.ready) for p in parties
    ):
        await trio.sleep(0.05)


def fault_profile(spec: str | FaultProfile) -> FaultProfile:
    """A profile from an object, a name (``PROFILES`` or ``SIM_PROFILES``) or a spec string."""
    if isinstance(spec, str) and spec in SIM_PROFILES:
        return FaultProfile.parse(SIM_PROFILES[spec])
    return FaultProfile.of(spec)


def _faults_name(given: str | FaultProfile, profile: FaultProfile) -> str:
    if isinstance(given, str) and (given in PROFILE_SPECS or given in SIM_PROFILES):
        return given
    return str(profile) or "none"


@contextlib.contextmanager
def _scheduler_seeded(seed: int) -> Iterator[None]:
    """Seed trio's task-order RNG for one run (restored after), so the run replays exactly."""
    rng = getattr(getattr(trio, "_core", None), "_run", None)
    rng = getattr(rng, "_r", None)
    if not isinstance(rng, random.Random):  # a trio without it: runs stay correct, only less replayable
        yield
        return
    state = rng.getstate()
    rng.seed(f"netsim/{seed}")
    try:
        yield
    finally:
        rng.setstate(state)


@dataclass
class _Run:
    """The inside of one ``simulate`` call (the trio part); the fields are ``simulate``'s arguments."""

    prog: SimProgram
    n: int
    profile: FaultProfile
    adversary_name: str | None
    seed: int
    cheater: int | None
    field: PrimeField
    preprocessing: str
    tls: SimTls | None
    link: LinkConfig
    deadline: float
    batch: int | None
    sessions: int
    early_start: bool
    submit_timeout: float
    script: Callable[[Network], None] | None
    report: Report
    results: dict[int, list[tuple[str, Any]]] = field(default_factory=dict)  # per party: (kind, value)s
    restarts: list[str] = field(default_factory=list)  # what the ``restart`` fault did

    @property
    def total_sessions(self) -> int:
        """The sessions each party runs: ``sessions``, and one more after a ``restart``."""
        return self.sessions + (1 if self.profile.restart else 0)

    def _adversary(self) -> Adversary | None:
        if self.adversary_name is None or self.cheater is None:
            return None
        rng = random.Random(f"{self.seed}/adversary/{self.adversary_name}")  # noqa: S311
        ctx = AttackContext(self.cheater, self.n, self.field, self.prog, rng)
        return make_adversary(self.adversary_name, ctx)

    def _party(self, i: int, transport: SimTransport, adversary: Adversary | None) -> Party:
        """Party ``i`` with fresh state (also a restarted one: new links, new incarnation)."""
        n, f = self.n, self.field
        dealer_seed = random.Random(f"{self.seed}/dealer").randbytes(32)  # noqa: S311 -- the insecure dealer
        sizes = dict.fromkeys(("triple", "mask", "square", "bit", "random"), self.batch or DEFAULT_BATCH)
        sizes.update({k: v for k, v in self.prog.batch.items() if self.batch is None or k not in sizes})
        source = InsecureDealer(f, n, i, dealer_seed) if self.preprocessing == "dealer" else None
        interceptor = adversary if i == self.cheater else None
        party = Party(i, n, transport.links(i), source, interceptor=interceptor)  # type: ignore[arg-type]
        if self.preprocessing == "mascot":
            party.use_mascot(f, Watermarks(triple=(0, 0), mask=(0, 0), batch=dict(sizes)))
        return party

    async def main(self) -> None:
        report = self.report
        try:
            adversary = self._adversary()
        except NotApplicable as e:
            report.outcome, report.reason = "n/a", str(e)
            return
        with inline_compute():
            await self._simulate(adversary)
        if adversary is not None:
            report.plan, report.actions = adversary.plan, list(adversary.actions)
        report.restarts = self.restarts

    async def _simulate(self, adversary: Adversary | None) -> None:
        n, report = self.n, self.report
        net = Network(self.seed, n, profile=self.profile)
        hooks = {self.cheater: adversary} if adversary is not None and self.cheater is not None else None
        transport = SimTransport(net, config=self.link, tls=self.tls, hooks=hooks, seed=self.seed)  # type: ignore[arg-type]
        parties = [self._party(i, transport, adversary) for i in range(n)]
        inputs = self.prog.inputs(random.Random(f"{self.seed}/inputs"), n)  # noqa: S311
        honest = [i for i in range(n) if i != self.cheater]
        done = trio.Event()
        scopes = [trio.CancelScope() for _ in range(n)]  # a party's life: its actor ...
        session_scopes = [trio.CancelScope() for _ in range(n)]  # ... and its sessions
        restarts = self.restarts
        restart = self.profile.restart
        if restart:
            who = random.Random(f"{self.seed}/restart")  # noqa: S311 -- a simulation's choice
            victim, at = who.choice(honest), who.uniform(0.0, 0.05)
            restarts.append(
                f"party {victim} is killed {at * 1000:.0f} ms into the first session, "
                f"back after {restart:g} s"
            )

        async def serve(i: int, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            with scopes[i]:
                await parties[i].serve(task_status=task_status)

        async def one_session(i: int, session: str) -> None:
            """Party ``i`` runs ``session``; its outcome goes into ``results[i]``."""
            try:
                out: tuple[str, Any] = (
                    "ok",
                    await parties[i].run(self.prog.prog, inputs[i], session=session),
                )
            except AbortError as e:
                out = ("abort", e)
            except Exception as e:
                out = ("error", e)
            self.results.setdefault(i, []).append(out)

        def note_finished() -> None:
            if all(len(self.results.get(h, ())) == self.total_sessions for h in honest):
                done.set()

        async def run_party(i: int) -> None:
            mine = self.results.setdefault(i, [])
            with session_scopes[i]:
                for k in range(self.sessions):
                    await one_session(i, f"sim-{k:04d}")
            if session_scopes[i].cancelled_caught:  # killed: the sessions it was in never finished here
                gone = AbortError(f"party {i} was killed (kill -9) during the session")
                mine += [("abort", gone)] * (self.sessions - len(mine))
                return
            if restart and i != victim:  # the victim's is run by its new incarnation
                await recover(i)
            note_finished()

        back = trio.Event()

        async def kill_and_restart(i: int) -> None:
            await trio.sleep(at)
            net.crash(i, duration=restart)  # its host is unreachable while it is down ...
            scopes[i].cancel()  # ... and the process is gone: no goodbye, no abort notices
            session_scopes[i].cancel()
            restarts.append(f"killed party {i} at {net.now():.3f} s")
            await trio.sleep(restart)
            parties[i] = self._party(i, transport, adversary)
            scopes[i] = trio.CancelScope()
            await nursery.start(serve, i)
            restarts.append(f"restarted party {i} at {net.now():.3f} s (new incarnation)")
            back.set()
            await recover(i)
            note_finished()

        async def recover(i: int) -> None:
            """After a restart: once every honest party is ready again, one more session at everyone.
            The wait is bounded by the submit timeout, as a daemon's job is: a corrupt party that
            never takes part again (a silent leader) must end the session in a clean abort, not a
            hang."""
            await back.wait()
            ready = False
            with trio.move_on_after(self.submit_timeout):
                await _offline_ready([parties[h] for h in honest])
                ready = True
            if ready:
                await one_session(i, "sim-after")
                return
            self.results.setdefault(i, []).append(
                (
                    "abort",
                    AbortError(
                        f"preprocessing not ready {self.submit_timeout:g} s after the restart (the "
                        "submit timeout); the session after it was not started"
                    ),
                )
            )

        async with trio.open_nursery() as nursery:
            await nursery.start(net.run)
            for i in range(n):
                await nursery.start(serve, i)
            if adversary is not None and self.cheater is not None:
                adversary.attach(parties[self.cheater], net, nursery)
            if self.script is not None:
                self.script(net)
            start = net.now()
            started = False
            with trio.move_on_after(self.deadline):
                if self.early_start or await self._ready_in_time([parties[i] for i in honest]):
                    started = True
                    for i in range(n):
                        nursery.start_soon(run_party, i)
                    if restart:
                        nursery.start_soon(kill_and_restart, victim)
                    await done.wait()
            report.virtual_time = net.now() - start
            for i in honest:  # before the shutdown, which retires the key of an interrupted batch
                offline = parties[i].offline
                if offline is not None:
                    report.detected += [f"party {i}: {f}" for f in offline.failures]
            if not (started and done.is_set()):  # for the report: where everyone was stuck
                report.state = [_state_of(p) for p in parties]
            nursery.cancel_scope.cancel()
        report.events = net.events
        report.bytes = sum(net.bytes_sent.values())
        self._judge(inputs, honest)

    async def _ready_in_time(self, honest: list[Party]) -> bool:
        """Wait, as ``spdz submit`` does, at most ``submit_timeout`` for every honest party's MASCOT
        set-up; if it does not come, every honest party's job fails cleanly (the daemon's ``not_ready``)
        and the session is not started."""
        with trio.move_on_after(self.submit_timeout):
            await _offline_ready(honest)
            return True
        err = AbortError(
            f"preprocessing not ready after {self.submit_timeout:g} s (the submit timeout); "
            "the session was not started"
        )
        for p in honest:
            self.results[p.id] = [("abort", err)] * self.total_sessions
        return False

    def _judge(self, inputs: Any, honest: list[int]) -> None:
        report = self.report
        expected = self.prog.expected(inputs, self.n)
        outcomes: list[PartyOutcome] = []
        for i in range(self.n):
            if i == self.cheater:
                outcomes.append(PartyOutcome(i, "cheater"))
                continue
            got = self.results.get(i, [])
            judged = [self._one(kind, value, expected[i]) for kind, value in got]
            judged += [("hang", f"no result after {self.deadline:g} virtual seconds")] * (
                self.total_sessions - len(got)
            )
            status, detail = min(judged, key=lambda sd: _SEVERITY.index(sd[0]))
            if self.total_sessions > 1:
                which = [k for k, (st, _) in enumerate(judged) if st == status]
                detail = f"sessions {which}: {detail}" if detail else f"sessions {which}"
            outcomes.append(PartyOutcome(i, status, detail))
        report.parties = outcomes
        mine = [o for o in outcomes if o.status != "cheater"]
        for status in _SEVERITY[:-1]:
            hit = [o for o in mine if o.status == status]
            if hit:
                report.outcome = status
                # the abort that found the problem, not an echo of a peer's notice, when there is one
                first = sorted(hit, key=lambda o: ("aborted the session" in o.detail, o.party))[0]
                report.reason = f"party {first.party}: {first.detail}" + (
                    f" ({len(hit)} of {len(mine)} honest parties)" if len(hit) < len(mine) else ""
                )
                return
        report.outcome = "correct"

    @staticmethod
    def _one(kind: str, value: Any, expected: Any) -> tuple[str, str]:
        if kind == "abort":
            who = "" if value.culprit is None else f" (culprit: party {value.culprit})"
            return "abort", f"{type(value).__name__}: {value.reason}{who}"
        if kind == "error":
            return "error", f"{type(value).__name__}: {value}"
        got = normalize(value)
        if got == expected:
            return "correct", ""
        return "wrong", f"returned {got!r}, expected {expected!r}"


_SEVERITY = ("wrong", "error", "hang", "abort", "correct")


# ------------------------------------------------------------------------------------------ sweeps
@dataclass(frozen=True)
class _Chunk:
    adversary: str | None
    program: str
    faults: str
    seeds: tuple[int, ...]
    options: dict[str, Any]


def _run_chunk(chunk: _Chunk) -> list[Report]:
    """A worker's share of a sweep: consecutive seeds of one adversary and fault profile."""
    opts = dict(chunk.options)
    level = opts.pop("log_level", None)
    if level is not None:  # a spawned worker starts with structlog's print-everything default
        logs.configure(level)
    if opts.pop("tls", True):
        opts["tls"] = SimTls.create(opts.get("n", 3))
    else:
        opts["tls"] = False
    return [
        simulate(chunk.program, faults=chunk.faults, adversary=chunk.adversary, seed=s, **opts)
        for s in chunk.seeds
    ]


def sweep(
    adversaries: Sequence[str | None],
    faults: Sequence[str],
    seeds: Iterable[int],
    *,
    program: str | None = None,
    jobs: int = 1,
    chunk: int = 10,
    on_report: Callable[[Report], None] | None = None,
    **options: Any,
) -> list[Report]:
    """``simulate`` for every adversary x fault profile x seed; ``options`` go to each run (and
    ``log_level`` configures the parties' logging in worker processes).

    ``program``: every run's program; None runs each adversary on its own programs
    (``Adversary.programs``: ``mul`` for the field strategies and the honest control, ``cmp-binary``
    and ``bits`` for the binary ones), a seed on one of them (``adversaries.program_for``): an
    adversary with two programs runs half of the seeds on each.

    ``jobs > 1`` spreads the runs over worker processes (each run is one process's ``trio.run``; runs
    share nothing). ``on_report`` sees each report as its chunk finishes (for progress output); the
    returned list is in sweep order whatever ``jobs`` is.
    """
    seeds = tuple(seeds)
    chunks = []
    for a in adversaries:
        for fa in faults:
            for prog in (program,) if program is not None else programs_of(a):
                mine = seeds if program is not None else tuple(s for s in seeds if program_for(a, s) == prog)
                for i in range(0, len(mine), chunk):
                    chunks.append(_Chunk(a, prog, fa, mine[i : i + chunk], options))
    results: list[list[Report]] = [[] for _ in chunks]
    if jobs <= 1:
        for k, c in enumerate(chunks):
            results[k] = _run_chunk(c)
            for r in results[k]:
                if on_report is not None:
                    on_report(r)
    else:
        ctx = multiprocessing.get_context("spawn")  # no forking of a process that may hold threads
        with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
            futures = [pool.submit(_run_chunk, c) for c in chunks]
            for k, fut in enumerate(futures):
                results[k] = fut.result()
                for r in results[k]:
                    if on_report is not None:
                        on_report(r)
    return [r for rs in results for r in rs]


def summary_table(reports: Sequence[Report]) -> str:
    """Outcome counts per adversary x fault profile, with totals (the CLI's closing table)."""
    groups: dict[tuple[str, str, str], list[Report]] = {}
    for r in reports:
        groups.setdefault((r.adversary, r.faults, r.program), []).append(r)
    cols = ("runs", *OUTCOMES, "fired", "detected", "wall s")
    head = f"{'adversary':<24s} {'faults':<10s} {'program':<10s} " + " ".join(f"{c:>8s}" for c in cols)
    lines = [head, "-" * len(head)]

    def row(label: str, faults: str, program: str, rs: Sequence[Report]) -> str:
        c = Counter(r.outcome for r in rs)
        vals = [len(rs), *(c.get(o, 0) for o in OUTCOMES)]
        vals += [sum(r.fired for r in rs), sum(bool(r.detected) for r in rs)]
        cells = [f"{v:>8d}" for v in vals] + [f"{sum(r.wall_time for r in rs):>8.1f}"]
        return f"{label:<24s} {faults:<10s} {program:<10s} " + " ".join(cells)

    for (adv, fa, prog), rs in groups.items():
        lines.append(row(adv, fa, prog, rs))
    lines.append("-" * len(head))
    lines.append(row("total", "", "", reports))
    return "\n".join(lines)


__all__ = [
    "DEFAULT_DEADLINE",
    "DEFAULT_LINK",
    "FAILURES",
    "OUTCOMES",
    "SIM_PROFILES",
    "SWEEP_PROFILES",
    "PartyOutcome",
    "Report",
    "fault_profile",
    "simulate",
    "summary_table",
    "sweep",
]
