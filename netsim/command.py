"""``spdz simulate``'s registration: netsim adds its own subcommand to the ``spdz`` command line.

``actors.cli`` knows nothing of the simulator; it loads every ``spdz.commands`` entry point (this
package declares ``simulate = "netsim.command:register"`` in ``pyproject.toml``) and calls it with
its subparsers. This module only builds the parser; the simulator is imported when the command runs.
"""

from __future__ import annotations

import argparse
from typing import Any


def _run(args: argparse.Namespace) -> int:
    from .cli import main

    return main(args)


def register(sub: Any) -> None:
    """Add ``simulate`` to ``sub`` (the ``spdz`` command line's subparsers)."""
    si = sub.add_parser(
        "simulate",
        help="adversarial simulations over a simulated network, in virtual time (netsim)",
        description="Runs the real parties over netsim with seeded faults and a malicious party; prints "
        "each run's outcome and a summary table. Exit status 1 if any run accepted a wrong output, hung "
        "or failed uncleanly.",
    )
    si.add_argument("--parties", type=int, default=3, help="number of parties (default 3)")
    si.add_argument(
        "--faults", action="append", metavar="SPEC", help="fault profile name or spec; 'all'; repeatable"
    )
    si.add_argument(
        "--adversary",
        action="append",
        metavar="NAME",
        help="adversary, 'none' or 'all' (every adversary but withhold, each on its own programs unless "
        "--program is given: the field ones on mul, the binary ones on cmp-binary and bits, a seed on "
        "one of them; see --list); comma-separated, repeatable",
    )
    si.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    si.add_argument(
        "--runs",
        type=int,
        default=1,
        help="seeds per adversary and profile (default 1; an adversary with several programs spreads them)",
    )
    si.add_argument(
        "--program",
        help="program every run runs (see --list); default: each adversary's own programs (mul for the "
        "field adversaries and 'none', cmp-binary and bits for the binary ones)",
    )
    si.add_argument("--replay", type=int, metavar="SEED", help="run SEED alone and print its full report")
    si.add_argument("--list", action="store_true", help="list adversaries, fault profiles and programs")
    si.add_argument(
        "--field",
        default="p61",
        choices=["p61", "p127"],
        help="prime field (default p61, unlike the daemons' p127: thousands of runs go faster, and "
        "the protocol logic under test is the same in both fields)",
    )
    si.add_argument("--preprocessing", default="auto", choices=["auto", "dealer", "mascot"])
    si.add_argument("--sessions", type=int, default=1, help="sessions per run, one after another (1)")
    si.add_argument("--early-start", action="store_true", help="start sessions before MASCOT set-up is done")
    si.add_argument("--cheater", type=int, help="the corrupt party (default: chosen by the seed)")
    si.add_argument("--deadline", type=float, default=600.0, help="virtual seconds before a hang (600)")
    si.add_argument(
        "--submit-timeout", type=float, default=60.0, help="virtual seconds a job waits for set-up (60)"
    )
    si.add_argument("--no-tls", action="store_true", help="links without TLS (corruption goes undetected)")
    si.add_argument("--jobs", type=int, help="worker processes (default: 2 for sweeps, else 1)")
    si.add_argument("--quiet", action="store_true", help="print only failed runs and the summary")
    si.add_argument("--party-logs", metavar="LEVEL", help="show the simulated parties' logs at LEVEL")
    si.set_defaults(func=_run)
