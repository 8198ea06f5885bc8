"""netsim: the same actors over a simulated network that injects faults, in virtual time, from a seed.

``Network`` hands out trio streams between numbered parties (``dial``/``listen``, or ``connect``) with
per-link latency, jitter, bandwidth and flow control, and injects faults: resets, stalls, partitions,
corruption, truncation, half-open links, crashes. ``FaultProfile`` is a link's shape and fault rates, with
a spec language for the CLI (``FaultProfile.parse("flaky,latency=20ms")``) and named ``PROFILES``.
Every injected fault is in ``Network.events``; the same seed gives the same events.

On top of the streams: ``SimTransport`` runs the real ``StreamLinks``/``PeerLink`` (and TLS) over them,
``adversaries`` is the catalogue of malicious-party strategies and their interception interface, and
``simulate`` / ``sweep`` run seeded simulations of the real parties in virtual time and report how each
ended (``spdz simulate`` is their command line, registered by ``netsim.command``).

The names below are imported on first use, so that ``spdz --help`` (which loads the command's
registration from this package) does not import the simulator.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "adversaries": ("ADVERSARIES", "SWEEP", "Adversary", "AttackContext", "NotApplicable", "make_adversary"),
    "events": ("ConnId", "FaultEvent"),
    "network": ("INJECTABLE", "Network", "SimListener"),
    "profile": ("DEFAULT_WINDOW", "PROFILE_SPECS", "PROFILES", "FaultProfile", "FaultSpecError"),
    "programs": ("PROGRAMS", "SimProgram"),
    "runner": (
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
    ),
    "streams": ("CHUNK_FAULTS", "SimStream"),
    "transport": ("LinkHooks", "SimLinks", "SimTls", "SimTransport"),
}
_MODULE_OF = {name: module for module, names in _WHERE.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'netsim' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
