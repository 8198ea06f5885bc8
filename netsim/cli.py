"""``spdz simulate``: seeded adversarial simulations in virtual time, from the command line.

The argument parser is ``netsim.command`` (loaded by ``spdz`` as a plug-in, without the simulator);
this module turns the parsed arguments into a sweep, prints a line per run and a summary table, and
returns the exit status: 0 when no run accepted a wrong output, hung or failed with an unclean error,
1 otherwise, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import TextIO

from actors import logs
from protocols.errors import ConfigError

from .adversaries import ADVERSARIES, HONEST_PROGRAMS, SWEEP, catalogue, program_for, programs_of
from .profile import PROFILE_SPECS
from .programs import PROGRAMS
from .runner import SIM_PROFILES, SWEEP_PROFILES, Report, fault_profile, summary_table, sweep


def print_catalogue(out: TextIO | None = None) -> None:
    """``--list``: adversaries, fault profiles and programs, each with what it means."""
    out = out or sys.stdout
    print(
        "adversaries (--adversary NAME; 'all' runs the ones marked *; without --program each runs on its\n"
        "own programs, in [], a seed on one of them; 'none', the honest control, on "
        f"{', '.join(HONEST_PROGRAMS)}):",
        file=out,
    )
    for info in catalogue():
        tags = [t for t, on in (("MASCOT", info.mascot), ("may be filtered", info.filtered)) if on]
        mark = "*" if info.sweep else " "
        extra = f"  [{', '.join(tags)}]" if tags else ""
        print(f"  {mark} {info.name:<24s} [{', '.join(info.programs)}] {info.description}{extra}", file=out)
    print(f"\nfault profiles (--faults NAME or SPEC; 'all' = {', '.join(SWEEP_PROFILES)}):", file=out)
    for name, spec in {**PROFILE_SPECS, **SIM_PROFILES}.items():
        print(f"    {name:<10s} {spec or '(no faults)'}", file=out)
    print("\nprograms (--program NAME):", file=out)
    for name, prog in PROGRAMS.items():
        print(f"    {name:<10s} {prog.description}", file=out)


def _adversaries(given: list[str] | None) -> list[str | None]:
    names: list[str | None] = []
    for item in given or ["none"]:
        for name in item.split(","):
            name = name.strip()
            if name == "all":
                names += [None, *SWEEP]
            elif name == "none":
                names.append(None)
            elif name in ADVERSARIES:
                names.append(name)
            else:
                raise ConfigError(f"unknown adversary {name!r} (see spdz simulate --list)")
    return list(dict.fromkeys(names))


def _faults(given: list[str] | None) -> list[str]:
    specs: list[str] = []
    for spec in given or ["none"]:
        if spec == "all":
            specs += SWEEP_PROFILES
            continue
        fault_profile(spec)  # FaultSpecError (a ConfigError) names the bad term
        specs.append(spec)
    return list(dict.fromkeys(specs))


def main(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    if args.list:
        print_catalogue(out)
        return 0
    try:
        if args.program is not None and args.program not in PROGRAMS:
            raise ConfigError(f"unknown program {args.program!r}; programs: {', '.join(PROGRAMS)}")
        if args.parties < 2:
            raise ConfigError(f"a simulation needs at least 2 parties, got {args.parties}")
        adversaries = _adversaries(args.adversary)
        faults = _faults(args.faults)
    except ConfigError as e:
        print(f"spdz simulate: {e}", file=sys.stderr)
        return 2
    level = args.party_logs or "critical"
    logs.configure(level, args.log_format)
    seeds = [args.replay] if args.replay is not None else list(range(args.seed, args.seed + args.runs))
    total = len(adversaries) * len(faults) * len(seeds)
    jobs = args.jobs if args.jobs is not None else (min(2, os.cpu_count() or 1) if total > 20 else 1)
    options = {
        "n": args.parties,
        "field": args.field,
        "preprocessing": args.preprocessing,
        "tls": not args.no_tls,
        "deadline": args.deadline,
        "sessions": args.sessions,
        "early_start": args.early_start,
        "submit_timeout": args.submit_timeout,
        "cheater": args.cheater,
        "log_level": level,
    }

    def show(report: Report) -> None:
        if args.replay is not None or report.failed:
            print(report.describe(), file=out)  # a failed run's whole story: parties, schedule, state
        elif not args.quiet:
            print(report.line(), file=out)
        out.flush()

    if args.program is not None:
        programs = repr(args.program)
    else:  # each adversary on its own programs
        names = {p for a in adversaries for p in programs_of(a) if any(program_for(a, s) == p for s in seeds)}
        programs = ", ".join(repr(p) for p in PROGRAMS if p in names) + " (each adversary on its own)"
    print(
        f"spdz simulate: {total} run(s) of {programs} at {args.parties} parties: "
        f"{len(adversaries)} adversary setting(s) x {len(faults)} fault profile(s) x {len(seeds)} seed(s), "
        f"{jobs} worker(s); virtual time, TLS {'off' if args.no_tls else 'on'}",
        file=out,
    )
    t0 = time.perf_counter()
    reports = sweep(adversaries, faults, seeds, program=args.program, jobs=jobs, on_report=show, **options)
    elapsed = time.perf_counter() - t0
    print("\n" + summary_table(reports), file=out)
    failed = [r for r in reports if r.failed]
    unfired = [r for r in reports if r.adversary != "none" and r.outcome != "n/a" and not r.fired]
    count = {o: sum(r.outcome == o for r in reports) for o in ("wrong", "hang", "error")}
    print(
        f"\n{len(reports)} runs in {elapsed:.1f} s wall: {count['wrong']} WRONG OUTPUTS ACCEPTED, "
        f"{count['hang']} hangs, {count['error']} errors",
        file=out,
    )
    if unfired:
        print(f"note: the adversary never deviated in {len(unfired)} run(s) (no target met)", file=out)
    if failed:
        print("failed runs (replay one with --replay SEED and the same options):", file=out)
        for r in failed[:20]:
            print(
                f"  --program {r.program} --adversary {r.adversary} --faults {r.faults} --replay {r.seed}: "
                f"{r.outcome}",
                file=out,
            )
    return 1 if failed else 0


__all__ = ["main", "print_catalogue"]
