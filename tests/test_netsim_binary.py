"""netsim's binary-domain programs and adversaries (``docs/netsim.md``).

Two programs run the binary domain in a simulation: ``cmp-binary`` (x < y and x == y on the binary
path over the dealer's mixed material) and ``bits`` (a ``BinaryParty`` set up in the session, AND
triples, daBits and edaBits made there from the session's field preprocessing, then used). What must
hold:

* both compute the plaintext answer, honestly, at 2 and 3 parties, under faults, and on MASCOT:
  ``bits`` from its field material, ``cmp-binary`` on the binary material the offline service pools;
* each binary-domain adversary (``netsim.adversaries.BINARY``) fires, and every honest party aborts
  with the error of the check that catches it (its own, or another party's abort notice naming it),
  some honest party detecting it itself; no honest party ever returns an output; a control run of
  the same program and seed is right;
* they apply only to the programs with their target (``NotApplicable`` elsewhere), which they
  declare (``Adversary.programs``: what ``--adversary all`` runs them on); the field-domain
  adversaries work on the binary programs too;
* the programs' declared counts (openings, checks, material requests, binary openings) are what a run
  does: the adversaries pick their targets among them;
* SoftSpokenOT, MASCOT's default OT extension, is covered by ``mascot-ot``: its correlation check is
  what catches it.

Runs use p = 2^61 - 1 and no TLS unless a test says otherwise (each run is a whole ``simulate``).
"""

from __future__ import annotations

import random
from typing import Any

import pytest
import structlog.testing
import trio

import actors
from actors.cli import main as cli_main
from netsim import ADVERSARIES, SWEEP, Report, SimTls, simulate
from netsim.adversaries import (
    BINARY,
    BINARY_OPEN,
    FIELD,
    Adversary,
    AttackContext,
    NotApplicable,
    Outgoing,
    Send,
    SessionTap,
    make_adversary,
    origin,
)
from netsim.programs import PROGRAMS, SimProgram, normalize
from protocols.field import P61, get_field
from protocols.intercept import Forwarding
from protocols.preprocessing.base import Preprocessing

BINARY_PROGRAMS = ("cmp-binary", "bits")

# adversary -> the programs it attacks, and (error class, text every honest abort carries)
CAUGHT_BY: dict[str, tuple[tuple[str, ...], str, str]] = {
    # the binary MAC check; or the field one first, where parties saw different opened bits of a
    # daBit conversion inside daBit/edaBit generation (their field check runs before the binary one)
    "binary-share": (BINARY_PROGRAMS, "MacCheckError", "MAC check failed"),
    "binary-mac": (("cmp-binary",), "MacCheckError", "binary MAC check failed"),
    "binary-sigma": (BINARY_PROGRAMS, "MacCheckError", "binary MAC check failed"),
    "leaky-and": (("bits",), "MacCheckError", "binary relation check failed"),
    "edabit-mismatch": (("bits",), "PreprocessingError", "edaBit check failed"),
    "dabit-complement": (
        ("bits",),
        "PreprocessingError",
        "daBit check failed: the field and binary values of some daBit differ",
    ),
    "bit-auth-ot": (("bits",), "AbortError", "correlation check (inconsistent choice bits)"),
}
CASES = [(name, prog) for name, (progs, _, _) in CAUGHT_BY.items() for prog in progs]


@pytest.fixture(scope="module")
def tls3() -> SimTls:
    return SimTls.create(3)


def honest(report: Report) -> list[Any]:
    return [p for p in report.parties if p.status != "cheater"]


def assert_caught(report: Report, error: str, text: str) -> None:
    """The adversary deviated; every honest party aborted, and its abort names the check."""
    assert report.fired, f"the adversary never deviated: {report.describe()}"
    assert report.outcome == "abort", report.describe()
    for p in honest(report):
        assert p.status == "abort" and text in p.detail, report.describe()


def detected_itself(report: Report, error: str) -> bool:
    """Some honest party raised the check's error itself (not only another party's abort notice)."""
    return any(p.detail.startswith(f"{error}: ") for p in honest(report))


# ---------------------------------------------------------------------------------------- programs
@pytest.mark.parametrize("program", BINARY_PROGRAMS)
@pytest.mark.parametrize("n", [2, 3])
def test_binary_programs_compute_the_plaintext_answer(program: str, n: int) -> None:
    for seed in range(2):
        r = simulate(program, n, seed=seed, tls=False)
        assert r.outcome == "correct" and r.preprocessing == "dealer", r.describe()


@pytest.mark.parametrize("program", BINARY_PROGRAMS)
def test_binary_programs_under_faults(program: str, tls3: SimTls) -> None:
    reports = [simulate(program, 3, faults=f, seed=s, tls=tls3) for f in ("flaky", "lossy") for s in range(2)]
    assert all(r.outcome == "correct" for r in reports), [r.describe() for r in reports]
    assert sum(sum(r.fault_counts.values()) for r in reports) > 0, "no fault struck"


def test_binary_material_from_mascot_field_material() -> None:
    """``bits`` makes its daBits and edaBits from MASCOT's field triples, bits and input masks."""
    r = simulate("bits", 3, seed=0, tls=False, preprocessing="mascot", batch=128)
    assert r.outcome == "correct" and r.preprocessing == "mascot", r.describe()
    cheat = simulate(
        "bits", 3, adversary="dabit-complement", seed=0, tls=False, preprocessing="mascot", batch=128
    )
    assert_caught(cheat, "PreprocessingError", CAUGHT_BY["dabit-complement"][2])


@pytest.mark.slow
def test_bits_after_an_outage(tls3: SimTls) -> None:
    """``outage`` (MASCOT; about 25 s): an honest party killed in the first session and restarted after
    the peer timeout; the first session aborts everywhere, the one after the restart makes its binary
    material again and is right at every party, with a cheater whose deviation came too late or not."""
    for seed, adversary in ((0, None), (1, "dabit-complement")):
        r = simulate("bits", 3, faults="outage", adversary=adversary, seed=seed, tls=tls3)
        assert r.preprocessing == "mascot" and r.outcome == "abort", r.describe()
        for p in honest(r):  # session 0 aborted, the one after the restart was right
            assert p.status == "abort" and p.detail.startswith("sessions [0]: "), r.describe()


def test_comparisons_on_binary_material_from_the_offline_service() -> None:
    """``cmp-binary`` on MASCOT (as ``outage`` runs it): its AND triples, daBits and loose edaBits come
    from the offline service's pools, made on demand in small batches (``SimProgram.batch``); a wrong
    binary MAC share of that material is caught by the binary MAC check."""
    r = simulate("cmp-binary", 3, seed=0, tls=False, preprocessing="mascot")
    assert r.outcome == "correct" and r.preprocessing == "mascot", r.describe()
    assert all(PROGRAMS[p].preprocessing == ("dealer", "mascot") for p in BINARY_PROGRAMS)
    cheat = simulate("cmp-binary", 3, adversary="binary-mac", seed=1, tls=False, preprocessing="mascot")
    assert_caught(cheat, "MacCheckError", CAUGHT_BY["binary-mac"][2])


# ---------------------------------------------------------------------------------------- adversaries
@pytest.mark.parametrize(("name", "program"), CASES)
def test_binary_adversary_is_caught_by_every_honest_party(name: str, program: str) -> None:
    _, error, text = CAUGHT_BY[name]
    reports = [simulate(program, 3, adversary=name, seed=s, tls=False) for s in range(4)]
    reports.append(simulate(program, 2, adversary=name, seed=4, tls=False))
    for r in reports:
        assert_caught(r, error, text)
    assert any(detected_itself(r, error) for r in reports), [r.describe() for r in reports]
    assert len({r.cheater for r in reports}) > 1, "every run corrupted the same party"
    for seed, n in ((0, 3), (4, 2)):  # control: the same program and seeds, nobody cheating
        ok = simulate(program, n, seed=seed, tls=False)
        assert ok.outcome == "correct", ok.describe()


@pytest.mark.parametrize("name", BINARY)
def test_binary_adversaries_under_faults_never_lead_to_a_wrong_output(name: str, tls3: SimTls) -> None:
    progs, error, text = CAUGHT_BY[name]
    for seed, faults in ((0, "flaky"), (1, "lossy")):
        r = simulate(progs[-1], 3, adversary=name, faults=faults, seed=seed, tls=tls3)
        assert r.fired and r.outcome == "abort", r.describe()
        assert all(p.status == "abort" for p in honest(r)), r.describe()


def test_the_catalogue_covers_the_binary_steps() -> None:
    """Every binary adversary is in the sweep, on the programs it has a target in."""
    assert set(BINARY) == set(CAUGHT_BY)
    for name in BINARY:
        cls = ADVERSARIES[name]
        assert cls.binary and name in SWEEP and cls.__doc__ and cls.description
        assert cls.programs == CAUGHT_BY[name][0], name
    assert not set(BINARY) & set(FIELD)


@pytest.mark.parametrize("name", BINARY)
def test_binary_adversaries_apply_only_where_their_target_is(name: str) -> None:
    progs = CAUGHT_BY[name][0]
    for program in PROGRAMS:
        ctx = AttackContext(1, 3, get_field(P61), PROGRAMS[program], random.Random(0))  # noqa: S311
        if program in progs:
            make_adversary(name, ctx)
        else:
            with pytest.raises(NotApplicable):
                make_adversary(name, ctx)
    r = simulate("mul", 3, adversary=name, seed=0, tls=False)
    assert r.outcome == "n/a" and not r.fired, r.describe()


@pytest.mark.parametrize("program", BINARY_PROGRAMS)
def test_field_adversaries_on_the_binary_programs(program: str) -> None:
    """The field-domain catalogue finds its targets in the binary programs' field messages (the
    binary messages are classified apart) and never leads to a wrong output there."""
    online = [a for a in FIELD if not ADVERSARIES[a].mascot]
    for k, name in enumerate(online):
        r = simulate(program, 3, adversary=name, seed=k, tls=False)
        if r.outcome == "n/a":
            assert name == "bad-triple" and program == "cmp-binary", r.describe()
            continue
        assert r.fired and r.outcome in ("abort", "correct"), r.describe()
        assert ADVERSARIES[name].filtered or r.outcome == "abort", r.describe()


def test_edabit_mismatch_covers_loose_edabits() -> None:
    """``bits`` makes loose edaBits too; ``edabit-mismatch`` picks strict or loose by the seed, and a
    loose one whose field value does not match its bits is caught by the loose bucket check."""
    plans = {}
    for seed in range(8):
        r = simulate("bits", 3, adversary="edabit-mismatch", seed=seed, tls=False)
        assert_caught(r, *CAUGHT_BY["edabit-mismatch"][1:])
        plans["loose" in r.plan] = r
    assert set(plans) == {True, False}, [r.plan for r in plans.values()]
    assert any(a.startswith("loose edaBits: ") for a in plans[True].actions), plans[True].describe()


def test_the_same_seed_replays_a_binary_attack() -> None:
    a, b = (simulate("bits", 3, adversary="leaky-and", seed=9, tls=False) for _ in range(2))
    assert (a.cheater, a.plan, a.actions, a.outcome, a.reason) == (
        b.cheater,
        b.plan,
        b.actions,
        b.outcome,
        b.reason,
    )


def test_softspoken_ot_is_covered_by_mascot_ot() -> None:
    """``mascot-ot`` deviates in whichever OT extension MASCOT runs; SoftSpokenOT is the default, and
    its correlation check is what rejects the batch at the victim."""
    with structlog.testing.capture_logs() as logs:
        r = simulate("mul", 3, adversary="mascot-ot", seed=1, tls=False)
    assert r.fired and r.outcome == "abort" and r.detected, r.describe()
    assert any("of 64 rows" in a for a in r.actions), r.actions  # SoftSpokenOT (k = 2): 64 blocks
    reasons = [e.get("reason", "") for e in logs if e.get("event") == "session_aborted"]
    assert any(x.startswith("party") and "failed the SoftSpokenOT correlation check" in x for x in reasons), (
        reasons
    )


def test_cli_runs_binary_adversaries(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["simulate", "--program", "bits", "--adversary", "leaky-and,dabit-complement", "--runs", "2"]
    assert cli_main([*argv, "--no-tls", "--quiet", "--jobs", "1"]) == 0
    out = capsys.readouterr().out
    assert "0 WRONG OUTPUTS ACCEPTED, 0 hangs, 0 errors" in out, out
    assert cli_main(["simulate", "--list"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in BINARY) and "cmp-binary" in listing and "bits" in listing


# ---------------------------------------------------------------------------------------- the counts
class _Counting(Forwarding):
    def __init__(self, inner: Preprocessing, log: list[tuple[str, int | None]]) -> None:
        super().__init__(inner)
        self.log = log

    def drawn(self, kind: str, n: int, owner: int | None = None) -> None:
        self.log.append((kind, owner))


class _Counter(Adversary):
    """Honest, counting what the party sends (by kind) and draws in its session."""

    name = "count"

    def __init__(self, ctx: AttackContext) -> None:
        super().__init__(ctx)
        self.taps: list[SessionTap] = []
        self.drawn: list[tuple[str, int | None]] = []
        self.binary_openings: list[int] = []

    def wrap_net(self, session: str, net: Any) -> Any:
        self.taps.append(SessionTap(net, self, session))
        return self.taps[-1]

    def wrap_preprocessing(self, session: str, pre: Preprocessing) -> Preprocessing:
        return _Counting(pre, self.drawn)

    def on_send(self, tap: SessionTap, out: Outgoing) -> list[Send]:
        if out.kind == "binary" and BINARY_OPEN in origin() and out.step not in self.binary_openings:
            self.binary_openings.append(out.step)
        return [(out.to, out.step, out.msg)]


async def _count(prog: SimProgram, n: int, party: int) -> _Counter:
    inputs = prog.inputs(random.Random(1), n)  # noqa: S311
    counter = _Counter(AttackContext(party, n, get_field(P61), prog, random.Random(0)))  # noqa: S311
    async with actors.local_cluster(
        n, modulus=P61, preprocessing="dealer", interceptors={party: counter}
    ) as c:
        out = await c.run_each(prog.prog, per_party=[(inputs[i],) for i in range(n)])
    assert not any(isinstance(o, Exception) for o in out), out
    assert [normalize(o) for o in out] == prog.expected(inputs, n)
    return counter


@pytest.mark.parametrize("program", BINARY_PROGRAMS)
@pytest.mark.parametrize("n", [2, 3, 4])
def test_declared_counts_are_what_the_programs_do(program: str, n: int) -> None:
    """If a protocol change moves these, update ``netsim/programs.py`` (the adversaries choose their
    targets among the declared openings, checks and requests)."""
    prog = PROGRAMS[program]
    for party in range(n):
        c = trio.run(_count, prog, n, party)
        kinds = {k: len(v) for k, v in c.taps[0]._kind_steps.items()}
        assert c.binary_openings and len(c.binary_openings) == prog.binary_openings(n, get_field(P61)), (
            program
        )
        at_least = kinds.get("share", 0) >= prog.openings and kinds.get("sigma-open", 0) == prog.checks
        assert at_least and (kinds.get("share", 0) == prog.openings or n > 2), (program, n, kinds)
        triples = sum(1 for kind, _ in c.drawn if kind == "triples")
        owners = tuple(o for kind, o in c.drawn if kind == "input_masks")
        assert triples >= prog.triples and (triples == prog.triples or n > 2), (program, n, c.drawn)
        assert len(owners) == prog.masks(n), (program, n, owners)
        assert kinds.get("correction", 0) == prog.owners(n).count(party), (program, n, party, kinds)
