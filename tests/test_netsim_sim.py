"""netsim's simulations: the real parties over simulated streams, under faults and adversaries.

Every run here is a whole ``netsim.simulate`` (its own ``trio.run`` under an autojump ``MockClock``), so
the tests are plain functions; a run that would hang ends at its virtual deadline and is reported as
``hang``, never as a stuck test. What must hold (issue 6):

* faults without an adversary (resets, stalls, corruption, truncation, half-open links, partitions and
  crashes that heal within the peer timeout) never change the output;
* a partition longer than the peer timeout makes every party abort cleanly;
* each adversary in the catalogue makes the honest parties abort, or (for the deviations the link
  layer filters: replay, reorder, forge) leaves their output correct, and never makes an honest party
  accept a wrong output; MASCOT deviations are caught before any material enters a pool;
* every adversary of the sweep (``--adversary all``) fires on each of its own programs: the field ones
  on ``mul`` (all of them here), the binary ones on ``cmp-binary`` and ``bits``
  (``tests/test_netsim_binary.py`` has what catches each); a sweep without a program runs each on its
  own;
* the same seed gives the same fault schedule, adversary actions and outcome;
* ``spdz simulate`` runs, prints its table and exits non-zero exactly when a run failed.

Runs are small (3-element vectors, p = 2^61 - 1, MASCOT batches of 8) to keep the file under a minute.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
import trio

import actors
from actors.cli import main as cli_main
from actors.peerlink import LinkConfig
from actors.tls import TlsConnector, TlsListener
from actors.tlsstream import TlsStream
from netsim import ADVERSARIES, SWEEP, Network, Report, SimTls, SimTransport, simulate, sweep
from netsim.adversaries import FIELD, HONEST_PROGRAMS, program_for, programs_of
from netsim.programs import PROGRAMS
from protocols.concurrency import inline_compute, run_sync
from protocols.field import P61
from protocols.online import Session

ONLINE = [name for name in FIELD if not ADVERSARIES[name].mascot]
MASCOT = [name for name in FIELD if ADVERSARIES[name].mascot]


@pytest.fixture(scope="module")
def tls3() -> SimTls:
    """TLS material for three parties, shared by the module's runs (key generation is the slow part)."""
    return SimTls.create(3)


def honest(report: Report) -> list[Any]:
    return [p for p in report.parties if p.status != "cheater"]


def assert_clean(report: Report, *, filtered: bool) -> None:
    """No honest party accepted a wrong output, hung or failed uncleanly; unless the deviation may be
    filtered, someone noticed it (an abort, or a MASCOT check that retired the key)."""
    assert report.outcome in ("abort", "correct"), report.describe()
    assert all(p.status in ("abort", "correct") for p in honest(report)), report.describe()
    if not filtered:
        assert report.outcome == "abort" or report.detected, report.describe()


# ---------------------------------------------------------------------------------------- faults only
@pytest.mark.parametrize(
    "faults",
    [
        "flaky",
        "lossy",
        "storm",
        "cuts",
        "latency=2ms,reset=0.05",
        "latency=2ms,corrupt=0.05",
        "latency=2ms,truncate=0.03,half_open=0.02",
    ],
)
def test_faults_without_an_adversary_never_change_the_output(faults: str, tls3: SimTls) -> None:
    reports = [simulate("mul", 3, faults=faults, seed=s, tls=tls3) for s in range(6)]
    for r in reports:
        assert r.outcome == "correct", r.describe()
    injected = sum(sum(r.fault_counts.values()) for r in reports)
    assert injected > 0, "no fault struck: the test would prove nothing"


def test_frames_larger_than_a_connection_carries_get_through(tls3: SimTls) -> None:
    """``cuts``: every connection is reset after 320 KiB to 1 MiB, while ``bigmul`` sends 1.6 MB
    frames. The link moves each frame in pieces, every connection moves it on, and every run is
    right. (Frames resent whole never got through: every run hung.)"""
    reports = [simulate("bigmul", 3, faults="cuts", seed=s, tls=tls3) for s in range(3)]
    for r in reports:
        assert r.outcome == "correct", r.describe()
        assert r.fault_counts.get("cut", 0) >= 20, r.describe()


def test_a_party_down_longer_than_the_peer_timeout_is_served_again_after_its_restart(
    tls3: SimTls,
) -> None:
    """``outage``: an honest party (the leader in one run, a follower in another) is killed during
    the first session and restarted 45 s later, after the others gave up on it (peer timeout 30 s)
    and retired their MAC key. The first session aborts everywhere; once it is back the parties
    agree on a new key epoch and the next session is right at every party. (With epochs counted per
    process, the restarted party's set-up never met the others': that session hung.)"""
    reports = [simulate("mul", 3, faults="outage", seed=s, tls=tls3) for s in (0, 1)]
    assert {r.restarts[0].split()[1] for r in reports} == {"0", "1"}, [r.restarts for r in reports]
    for r in reports:
        assert r.preprocessing == "mascot" and r.outcome == "abort", r.describe()
        for p in r.parties:  # session 0 aborted, the one after the restart was right
            assert p.status == "abort" and p.detail.startswith("sessions [0]: "), r.describe()


def test_a_silent_leader_after_a_restart_ends_in_an_abort_not_a_hang(tls3: SimTls) -> None:
    """The session after a restart waits for the honest parties' preprocessing no longer than the
    submit timeout, as a daemon's job does: with the leader corrupt and silent the set-up never
    completes, and the run must end in a clean abort (it hung for the 600 s deadline)."""
    r = simulate("mul", 3, faults="outage", adversary="silent", cheater=0, seed=17, tls=tls3)
    assert r.outcome == "abort", r.describe()
    for p in r.parties[1:]:
        assert p.status == "abort", r.describe()


def test_the_simulated_traffic_goes_through_the_production_tls_stream(
    tls3: SimTls, monkeypatch: pytest.MonkeyPatch
) -> None:
    """netsim's links run over ``actors.tlsstream.TlsStream``, the stream the daemons use (not a stand-in):
    every byte of the run's frames was encrypted by it, and PeerLink read large records through its
    ``receive_into``."""
    sent, into = [0], [0]
    plain_send, plain_into = TlsStream.send_all, TlsStream.receive_into

    async def send_all(self: TlsStream, data: Any) -> None:
        sent[0] += memoryview(data).nbytes
        await plain_send(self, data)

    async def receive_into(self: TlsStream, buffer: memoryview) -> int:
        into[0] += 1
        return await plain_into(self, buffer)

    monkeypatch.setattr(TlsStream, "send_all", send_all)
    monkeypatch.setattr(TlsStream, "receive_into", receive_into)
    r = simulate("bigmul", 3, seed=1, tls=tls3)
    assert r.outcome == "correct", r.describe()
    assert sent[0] >= 4 * 1_600_000 and into[0] > 0, (sent, into)


def test_corruption_is_caught_by_tls_and_recovered_from(tls3: SimTls) -> None:
    """Corrupted chunks really hit the links (each one breaks a TLS record, the link reconnects and
    resends), and every run still computes the right answer."""
    reports = [simulate("sum", 3, faults="latency=1ms,corrupt=0.1", seed=s, tls=tls3) for s in range(4)]
    assert sum(r.fault_counts.get("corrupt", 0) for r in reports) >= 4
    assert all(r.outcome == "correct" for r in reports), [r.describe() for r in reports]


def test_mascot_under_faults_in_virtual_time(tls3: SimTls) -> None:
    """MASCOT set-up and batches over a storm: its compute runs inline, so no virtual timeout fires
    during honest work, and the answer is right."""
    for seed in range(2):
        r = simulate("mul", 3, faults="storm", seed=seed, preprocessing="mascot", tls=tls3)
        assert r.outcome == "correct" and not r.detected, r.describe()


def _partition_everyone(duration: float | None, at: float = 0.002) -> Any:
    def script(net: Network) -> None:
        net.schedule(net.now() + at, lambda: net.partition([0], [1, 2], duration=duration))

    return script


def test_a_partition_that_heals_within_the_peer_timeout_changes_nothing(tls3: SimTls) -> None:
    for seed in range(3):
        r = simulate("mul", 3, faults="wan", seed=seed, tls=tls3, script=_partition_everyone(20.0))
        assert r.outcome == "correct", r.describe()
        assert [e.kind for e in r.events] == ["partition", "heal"]
        assert r.virtual_time > 20.0  # the session really waited for the heal


@pytest.mark.parametrize("duration", [None, 90.0], ids=["never-heals", "heals-after-the-timeout"])
def test_a_partition_longer_than_the_peer_timeout_aborts_every_party(
    duration: float | None, tls3: SimTls
) -> None:
    link = LinkConfig(peer_timeout=30.0)
    for seed in range(2):
        r = simulate(
            "mul", 3, faults="wan", seed=seed, tls=tls3, link=link, script=_partition_everyone(duration)
        )
        assert r.outcome == "abort", r.describe()
        assert [p.status for p in r.parties] == ["abort"] * 3, r.describe()
        assert all("lost party" in p.detail for p in r.parties), r.describe()
        assert 30.0 <= r.virtual_time < 100.0  # the peer timeout, not the run's deadline


def test_jobs_fail_cleanly_when_set_up_cannot_finish_within_the_submit_timeout(tls3: SimTls) -> None:
    """A party whose host is down from the start: MASCOT set-up never completes, and every job fails
    with a clean abort after the submit timeout (as ``spdz submit`` does), not a hang."""

    def down(net: Network) -> None:
        net.crash(1)

    r = simulate("mul", 3, seed=0, tls=tls3, preprocessing="mascot", submit_timeout=45.0, script=down)
    assert r.outcome == "abort", r.describe()
    assert all("not ready after 45 s" in p.detail for p in r.parties), r.describe()
    assert 45.0 <= r.virtual_time < 50.0 and any("offline epoch" in s for s in r.state)


# ---------------------------------------------------------------------------------------- adversaries
@pytest.mark.parametrize("name", ONLINE)
def test_online_adversaries_are_caught_or_filtered(name: str, tls3: SimTls) -> None:
    filtered = ADVERSARIES[name].filtered
    reports = [simulate("mul", 3, adversary=name, seed=s, tls=tls3) for s in range(4)]
    reports.append(simulate("mul", 3, faults="flaky", adversary=name, seed=4, tls=tls3))
    if not ADVERSARIES[name].needs_triples:  # bad-triple has no target in a program without mul
        reports.append(simulate("sum", 3, adversary=name, seed=5, tls=tls3))
    for r in reports:
        assert r.fired, f"the adversary never deviated: {r.describe()}"
        assert_clean(r, filtered=filtered)
    assert len({r.cheater for r in reports}) > 1, "every run corrupted the same party"


@pytest.mark.parametrize("name", ONLINE)
def test_online_adversaries_at_two_parties(name: str) -> None:
    r = simulate("mul", 2, adversary=name, seed=1, tls=False)
    assert r.fired, r.describe()
    assert_clean(r, filtered=ADVERSARIES[name].filtered)


def test_filtered_adversaries_hit_both_layers(tls3: SimTls) -> None:
    """Replay, reorder and forge act on the session (the mailbox aborts a duplicate or garbage step)
    and on the link records (dropped as duplicates, or a reconnect): across seeds both happen, and the
    link-level ones leave the output correct."""
    for name in ("replay", "reorder", "forge"):
        reports = [simulate("mul", 3, adversary=name, seed=s, tls=tls3) for s in range(8)]
        assert {r.outcome for r in reports} <= {"abort", "correct"}
        assert any(r.outcome == "correct" for r in reports), name
        assert any("record" in r.plan for r in reports) and any("record" not in r.plan for r in reports), name
        for r in reports:
            if "record" in r.plan:
                assert r.outcome == "correct", r.describe()


@pytest.mark.parametrize("name", MASCOT)
def test_mascot_deviations_are_caught_before_material_is_used(name: str, tls3: SimTls) -> None:
    for seed in range(2):
        r = simulate("mul", 3, adversary=name, seed=seed, tls=tls3)
        assert r.preprocessing == "mascot" and r.fired, r.describe()
        assert_clean(r, filtered=False)
        # every honest party rejected the epoch the deviation was in (its key retired, its pool purged)
        caught = {int(d.split(":")[0].split()[1]) for d in r.detected}
        assert caught == {p.party for p in honest(r)}, r.describe()


def test_a_session_waiting_for_set_up_survives_a_failed_set_up(tls3: SimTls) -> None:
    """Sessions started before MASCOT set-up is done wait for it; when that set-up fails (a bad base-OT
    point) and the parties re-key, the waiting sessions must wake up on the next key, not wait on the
    failed epoch forever."""
    for seed in range(3):
        r = simulate("mul", 3, adversary="mascot-base-ot", seed=seed, tls=tls3, early_start=True)
        assert r.fired and r.outcome in ("correct", "abort"), r.describe()


def test_a_stray_incarnation_aborts_sessions_cleanly_and_the_link_heals(tls3: SimTls) -> None:
    """A second incarnation of the corrupt party dials a peer mid-session (the peer takes it for a
    restart), holds the link a while and leaves. Sessions that span it abort, never hang or go
    wrong; once it is gone the two real incarnations resynchronise, and later sessions are right."""
    reports = [
        simulate("mul", 3, adversary="stray-incarnation", seed=s, tls=tls3, sessions=3) for s in range(8)
    ]
    ran = [r for r in reports if r.outcome != "n/a"]
    assert len(ran) >= 4 and all(r.fired for r in ran)
    for r in ran:
        assert r.outcome in ("abort", "correct"), r.describe()
        assert any("restarted" in p.detail for p in r.parties), r.describe()
    # a short stray: the last session, after it left, computes the right answer at every party
    healed = [r for r in ran if all("2]" not in p.detail for p in honest(r))]
    assert healed, [r.describe() for r in ran]


def test_the_sweep_runs_every_adversary_on_its_own_programs() -> None:
    """``--adversary all``: every strategy but ``withhold``; the field ones (every one of them tested
    on ``mul`` above) and the honest control on ``mul``, the binary ones on their programs, where each
    has its target; a seed picks one program, the same in a sweep as in its replay."""
    assert set(SWEEP) == {name for name in ADVERSARIES if name != "withhold"}
    assert set(FIELD) == set(ONLINE) | set(MASCOT) and HONEST_PROGRAMS == ("mul",)
    for name in FIELD:
        assert programs_of(name) == ("mul",), name
    for name in SWEEP:
        progs = programs_of(name)
        assert progs and set(progs) <= set(PROGRAMS), name
        assert {program_for(name, s) for s in range(4)} == set(progs), name  # seeds reach each program
    binary = [name for name in SWEEP if name not in FIELD]
    assert binary and all(set(programs_of(n)) <= {"cmp-binary", "bits"} for n in binary)
    reports = sweep(["binary-share", None], ["none"], [0, 1], tls=False, chunk=1)
    assert [(r.adversary, r.program, r.seed) for r in reports] == [
        ("binary-share", "cmp-binary", 0),
        ("binary-share", "bits", 1),
        ("none", "mul", 0),
        ("none", "mul", 1),
    ]
    assert [r.outcome for r in reports] == ["abort", "abort", "correct", "correct"], [
        r.describe() for r in reports
    ]
    fixed = sweep(["wrong-share"], ["none"], [0], program="sum", tls=False)
    assert [(r.program, r.fired) for r in fixed] == [("sum", True)]


def test_an_adversary_without_a_target_is_not_applicable() -> None:
    r = simulate("sum", 3, adversary="bad-triple", seed=0, tls=False)
    assert r.outcome == "n/a" and not r.fired and "multiplication" in r.reason


def test_a_withholding_party_is_caught_by_the_receive_timeout() -> None:
    """A cheater that keeps its links alive but stops sending protocol messages is not an unreachable
    peer (the peer timeout does not fire): the engine's receive timeout (600 s) aborts the session at
    every honest party, naming it. Not in the sweep: each run waits out that timeout."""
    r = simulate("mul", 3, adversary="withhold", seed=0, tls=False, deadline=900.0)
    assert r.fired and r.outcome == "abort" and "sent nothing" in r.describe(), r.describe()
    assert not ADVERSARIES["withhold"].sweep


# ---------------------------------------------------------------------------------------- determinism
@pytest.mark.parametrize(
    ("adversary", "faults", "preprocessing"),
    [(None, "storm", "dealer"), ("silent", "storm", "dealer"), ("mascot-triple", "flaky", "mascot")],
)
def test_the_same_seed_replays_the_same_run(adversary: str | None, faults: str, preprocessing: str) -> None:
    """Fresh TLS keys, fresh secret randomness, and still the same fault schedule (to the byte and the
    nanosecond), the same adversary actions and the same outcome; another seed gives another run."""
    runs = [
        simulate("mul", 3, faults=faults, adversary=adversary, seed=s, preprocessing=preprocessing)
        for s in (11, 11, 12)
    ]
    a, b, c = runs
    assert [str(e) for e in a.events] == [str(e) for e in b.events]
    assert (a.outcome, a.reason, a.actions, a.bytes, a.virtual_time, a.cheater) == (
        b.outcome,
        b.reason,
        b.actions,
        b.bytes,
        b.virtual_time,
        b.cheater,
    )
    assert ([str(e) for e in a.events], a.bytes) != ([str(e) for e in c.events], c.bytes)


def test_a_sweep_reports_each_seed_as_simulate_does() -> None:
    reports = sweep(["wrong-share", None], ["flaky"], [3, 4], tls=False, chunk=1)
    assert [(r.adversary, r.seed) for r in reports] == [
        ("wrong-share", 3),
        ("wrong-share", 4),
        ("none", 3),
        ("none", 4),
    ]
    again = simulate("mul", 3, faults="flaky", adversary="wrong-share", seed=4, tls=False)
    assert (reports[1].outcome, reports[1].actions, reports[1].bytes) == (
        again.outcome,
        again.actions,
        again.bytes,
    )


# ---------------------------------------------------------------------------------------- plumbing
async def test_local_cluster_runs_over_the_simulated_transport(autojump_clock: trio.abc.Clock) -> None:
    """The transport adapter is what ``local_cluster`` takes: StreamLinks and PeerLink over netsim."""

    async def square(s: Session, xs: list[int]) -> Any:
        x = await s.input(xs if s.party == 0 else None, owner=0)
        return await s.output(await s.mul(x, x))

    net = Network(5, 3, profile="flaky")
    transport = SimTransport(net, tls=SimTls.create(3), seed=5)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await nursery.start(net.run)
            async with actors.local_cluster(3, transport=transport, modulus=P61, preprocessing="dealer") as c:
                results = await c.run(square, [3, -4, 5])
            nursery.cancel_scope.cancel()
    assert all([int(v) for v in r] == [9, 16, 25] for r in results)
    assert sum(net.bytes_sent.values()) > 0


async def test_netsim_dials_and_listens_through_the_production_tls_transport(
    autojump_clock: trio.abc.Clock, tls3: SimTls
) -> None:
    """Simulated parties dial through ``TlsConnector`` and listen through ``TlsListener``: the links'
    connections are counted in their stats, and a client that speaks no TLS to a party's simulated
    port is refused by the production listener (counted by reason) while the session is right."""

    async def square(s: Session, xs: list[int]) -> Any:
        x = await s.input(xs if s.party == 0 else None, owner=0)
        return await s.output(await s.mul(x, x))

    net = Network(7, 3, profile="latency=1ms")
    transport = SimTransport(net, tls=tls3, seed=7)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await nursery.start(net.run)
            async with actors.local_cluster(3, transport=transport, modulus=P61, preprocessing="dealer") as c:
                garbage = await net.dial(2, 1)  # party 2's host, but no TLS
                await garbage.send_all(b"GET / HTTP/1.0\r\n\r\n" * 4)
                results = await c.run(square, [3, -4, 5])
                links = [p.links for p in c.parties]
                while not links[1].listener.stats["refused"]:
                    await trio.sleep(0.1)
            nursery.cancel_scope.cancel()
    assert all([int(v) for v in r] == [9, 16, 25] for r in results)
    assert isinstance(links[0].listener, TlsListener) and isinstance(links[0].connector.tls, TlsConnector)
    assert links[1].listener.stats["refused"] == {"tls_error": 1}, links[1].listener.stats
    assert links[1].listener.stats["accepted"] >= 1  # party 0 dialed party 1
    assert links[0].connector.tls.stats["connected"] >= 2  # party 0 dials 1 and 2


async def test_run_sync_computes_inline_only_inside_inline_compute() -> None:
    """MASCOT's worker-thread calls go inline in a simulation (virtual time must not run while they
    compute) and to a thread everywhere else."""
    here = threading.get_ident()
    assert await run_sync(threading.get_ident) != here
    with inline_compute():
        assert await run_sync(threading.get_ident) == here

        async def child(out: list[int]) -> None:
            out.append(await run_sync(threading.get_ident))

        got: list[int] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(child, got)
        assert got == [here]  # tasks started inside inherit the setting
    assert await run_sync(threading.get_ident) != here


# ---------------------------------------------------------------------------------------- CLI
def test_cli_lists_the_catalogue(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["simulate", "--list"]) == 0
    out = capsys.readouterr().out
    for name in [*ADVERSARIES, "flaky", "lossy", "storm", *PROGRAMS]:
        assert name in out
    assert "[cmp-binary, bits]" in out and "[mul]" in out


def test_cli_runs_a_sweep_and_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli_main(
        [
            "simulate",
            "--adversary",
            "wrong-share,none",
            "--faults",
            "flaky",
            "--runs",
            "2",
            "--no-tls",
            "--jobs",
            "1",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.count("seed=") == 4 and "ABORT" in out and "CORRECT" in out
    assert "wrong-share              flaky" in out and "0 WRONG OUTPUTS ACCEPTED, 0 hangs" in out


def test_cli_replay_prints_the_schedule_and_a_hang_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["simulate", "--faults", "flaky", "--replay", "2", "--no-tls"]) == 0
    out = capsys.readouterr().out
    assert "fault schedule" in out and "party 0: correct" in out
    code = cli_main(["simulate", "--adversary", "withhold", "--deadline", "60", "--no-tls"])
    out = capsys.readouterr().out
    assert code == 1 and "HANG" in out and "--program mul --adversary withhold" in out and "--replay 0" in out


def test_cli_rejects_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["simulate", "--faults", "reset=2"]) == 2
    assert "reset=2" in capsys.readouterr().err
    assert cli_main(["simulate", "--adversary", "nobody"]) == 2
    assert "nobody" in capsys.readouterr().err
